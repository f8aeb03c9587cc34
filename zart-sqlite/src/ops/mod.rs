//! The write operations, one module per group of `Scheduler` methods, each run by the writer
//! inside its transaction (see [`crate::writer`]); and what they share: the transaction's
//! clock and wake-ups ([`Tx`]), validation, and fencing ([`fence`]).
//!
//! Each operation follows the function of the same name in `zart-pg/sql/zart.sql`, and checks
//! everything that can refuse it before its first write. An operation that still returns an
//! error after writing part of its work (a damaged row, a full disk) makes the writer roll the
//! transaction back, so nothing of it is stored.

pub(crate) mod admin;
pub(crate) mod audit;
mod cancel;
mod claim;
mod fence;
mod leases;
mod pick;
pub(crate) mod prune;
pub(crate) mod queues;
pub(crate) mod read;
mod retry;
pub(crate) mod schedules;
mod start;
mod start_key;
mod steps;
mod waits;

use rusqlite::{Connection, Params, Row};
use zart::scheduler::Wakeup;
use zart::Error;

use crate::clock;
use crate::writer::{Op, Reply};
use crate::Settings;

/// Statements through the connection's prepared-statement cache: every statement Zart runs is
/// one of a few dozen constants in `queries.rs`, so each is parsed once per connection rather
/// than once per call.
pub(crate) trait Cached {
    /// [`Connection::execute`], with the statement from the cache.
    fn exec_cached<P: Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize>;
    /// [`Connection::query_row`], with the statement from the cache.
    fn row_cached<T, P: Params, F: FnOnce(&Row<'_>) -> rusqlite::Result<T>>(
        &self,
        sql: &str,
        params: P,
        f: F,
    ) -> rusqlite::Result<T>;
}

impl Cached for Connection {
    fn exec_cached<P: Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    fn row_cached<T, P: Params, F: FnOnce(&Row<'_>) -> rusqlite::Result<T>>(
        &self,
        sql: &str,
        params: P,
        f: F,
    ) -> rusqlite::Result<T> {
        self.prepare_cached(sql)?.query_row(params, f)
    }
}

/// One operation's view of the write transaction: the connection, the time (read once, inside
/// the transaction), the settings, and the wake-ups to send once it commits.
pub(crate) struct Tx<'a> {
    conn: &'a Connection,
    now: i64,
    settings: &'a Settings,
    wakeups: Vec<Wakeup>,
}

impl<'a> Tx<'a> {
    /// Reads the clock inside the open transaction.
    pub(crate) fn new(conn: &'a Connection, settings: &'a Settings) -> Result<Self, Error> {
        Ok(Tx {
            conn,
            now: clock::now(conn, settings.test_clock)?,
            settings,
            wakeups: Vec::new(),
        })
    }

    /// The wake-ups to send after commit.
    pub(crate) fn into_wakeups(self) -> Vec<Wakeup> {
        self.wakeups
    }

    fn now_text(&self) -> String {
        clock::format(self.now)
    }

    fn wake(&mut self, wakeup: Wakeup) {
        self.wakeups.push(wakeup);
    }
}

/// Runs one operation.
pub(crate) fn run(tx: &mut Tx<'_>, op: &Op) -> Result<Reply, Error> {
    match op {
        Op::Start(p) => start::start_execution(tx, p),
        Op::Claim(p) => claim::claim_tasks(tx, p),
        Op::Commit(p) => steps::commit_step(tx, p),
        Op::Retry(p) => steps::retry_step(tx, p),
        Op::Complete(p) => steps::complete_execution(tx, p),
        Op::Sleep(p) => waits::sleep(tx, p),
        Op::AwaitEvent(p) => waits::await_event(tx, p),
        Op::SendEvent(p) => waits::send_event(tx, p),
        Op::StartChild(p) => waits::start_child(tx, p),
        Op::StartChildren(p) => waits::start_children(tx, p),
        Op::Cancel(id) => cancel::cancel_execution(tx, id),
        Op::RetryExecution(id) => retry::retry_execution(tx, id),
        Op::Heartbeat(p) => leases::heartbeat(tx, p),
        Op::Release(p) => leases::release_tasks(tx, p),
        Op::AdvanceClock(by) => leases::advance_clock(tx, *by),
        Op::Prune(p) => prune::prune(tx, p),
        Op::UpsertSchedule(s) => schedules::upsert_schedule(tx, s),
        Op::PauseSchedule(id, paused) => schedules::pause_schedule(tx, id, *paused),
        Op::DeleteSchedule(id) => schedules::delete_schedule(tx, id),
        Op::ClaimSchedules(p) => schedules::claim_schedules(tx, p),
        Op::FireSchedule(p) => schedules::fire_schedule(tx, p),
        Op::SetQueueLimits(queue, limits) => queues::set_queue_limits(tx, queue, limits.as_ref()),
        Op::AuditBegin(entry) => audit::audit_begin(tx, entry),
        Op::AuditFinish(id, outcome, detail) => audit::audit_finish(tx, *id, outcome, detail),
        Op::WorkerSeen(p) => audit::worker_seen(tx, p),
        Op::WorkerGone(id) => audit::worker_gone(tx, id),
    }
}

/// Refuses JSON text over the payload limit, naming the field.
fn check_size(tx: &Tx<'_>, field: &str, json: &str) -> Result<(), Error> {
    let limit = tx.settings.max_payload_bytes;
    if json.len() > limit {
        return Err(Error::invalid(
            field,
            format!(
                "{} bytes of JSON is over the limit of {limit} bytes",
                json.len()
            ),
        ));
    }
    Ok(())
}

/// Refuses a duration over 100 years (`zart::limits::MAX_WAIT`), naming the field.
fn check_wait(field: &str, ms: i64) -> Result<(), Error> {
    if ms < 0 || ms > clock::millis(zart::limits::MAX_WAIT) {
        return Err(Error::invalid(
            field,
            format!("{ms} ms is outside 0 ms to 100 years"),
        ));
    }
    Ok(())
}

/// A lease length in milliseconds, refused outside 1 ms to 100 years.
fn check_lease(lease: std::time::Duration) -> Result<i64, Error> {
    let ms = clock::millis(lease);
    if ms < 1 || ms > clock::millis(zart::limits::MAX_WAIT) {
        return Err(Error::invalid(
            "lease",
            format!("{ms} ms is outside 1 ms to 100 years"),
        ));
    }
    Ok(ms)
}

/// Parses a stored status name with serde (step statuses and kinds).
fn parse_name<T: serde::de::DeserializeOwned>(name: &str, what: &str) -> Result<T, Error> {
    serde_json::from_value(serde_json::Value::String(name.to_owned())).map_err(|source| {
        Error::Serialization {
            action: "deserialize",
            what: format!("{what} {name:?}"),
            source,
        }
    })
}
