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
pub(crate) mod group;
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

use mysql_async::prelude::{FromRow, Queryable};
use mysql_async::{Conn, Params, Value};
use zart::scheduler::Wakeup;
use zart::Error;

use crate::errors::from_mysql;
use crate::Settings;

use crate::clock;
use crate::writer::{Op, Reply};

/// One operation's view of the database: a connection (inside the writer's transaction for a
/// write, autocommit for a read), the time (read once per call from the server's clock), the
/// settings, and the wake-ups to send once it commits.
pub(crate) struct Tx<'a> {
    conn: &'a mut Conn,
    now: i64,
    settings: &'a Settings,
    wakeups: Vec<Wakeup>,
    /// Whether a statement of this view changed a row: an operation refused after that
    /// must be rolled back, one refused before it left nothing to undo.
    wrote: bool,
}

impl<'a> Tx<'a> {
    /// Reads the clock on `conn` (inside the open transaction, if any).
    pub(crate) async fn new(conn: &'a mut Conn, settings: &'a Settings) -> Result<Self, Error> {
        let now = clock::now(conn, settings.test_clock).await?;
        Ok(Tx {
            conn,
            now,
            settings,
            wakeups: Vec::new(),
            wrote: false,
        })
    }

    /// A view at a time already read (the next operation of the same batch).
    pub(crate) fn at(conn: &'a mut Conn, settings: &'a Settings, now: i64) -> Self {
        Tx {
            conn,
            now,
            settings,
            wakeups: Vec::new(),
            wrote: false,
        }
    }

    /// The time this call reads, in ms since the epoch.
    pub(crate) fn now(&self) -> i64 {
        self.now
    }

    /// Reads the clock now (a read that needs the time only on some paths); returns it.
    pub(crate) async fn read_clock(&mut self) -> Result<i64, Error> {
        self.now = clock::now(self.conn, self.settings.test_clock).await?;
        Ok(self.now)
    }

    /// The wake-ups to send after commit.
    pub(crate) fn into_wakeups(self) -> Vec<Wakeup> {
        self.wakeups
    }

    /// Whether a statement of this view changed a row.
    pub(crate) fn wrote(&self) -> bool {
        self.wrote
    }

    fn now_text(&self) -> String {
        clock::format(self.now)
    }

    fn wake(&mut self, wakeup: Wakeup) {
        self.wakeups.push(wakeup);
    }

    /// Runs a statement; returns the rows it changed.
    pub(crate) async fn exec(
        &mut self,
        sql: &str,
        params: Vec<Value>,
        what: &str,
    ) -> Result<u64, Error> {
        let changed = exec(self.conn, sql, params, what).await?;
        self.wrote |= changed > 0;
        Ok(changed)
    }

    /// Runs a statement written with plain positional `?`s (one built for a list, see
    /// [`group`]); returns the rows it changed.
    pub(crate) async fn exec_list(
        &mut self,
        sql: &str,
        params: Vec<Value>,
        what: &str,
    ) -> Result<u64, Error> {
        let changed = exec_params(self.conn, sql, Params::Positional(params), what).await?;
        self.wrote |= changed > 0;
        Ok(changed)
    }

    /// Every row of a query written with plain positional `?`s.
    pub(crate) async fn all_list<T: FromRow + Send + 'static>(
        &mut self,
        sql: &str,
        params: Vec<Value>,
        what: &str,
    ) -> Result<Vec<T>, Error> {
        all_params(self.conn, sql, Params::Positional(params), what).await
    }

    /// The first row of a query, if any.
    pub(crate) async fn first<T: FromRow + Send + 'static>(
        &mut self,
        sql: &str,
        params: Vec<Value>,
        what: &str,
    ) -> Result<Option<T>, Error> {
        first(self.conn, sql, params, what).await
    }

    /// The first row of a query that always returns one.
    pub(crate) async fn one<T: FromRow + Send + 'static>(
        &mut self,
        sql: &str,
        params: Vec<Value>,
        what: &str,
    ) -> Result<T, Error> {
        first(self.conn, sql, params, what)
            .await?
            .ok_or_else(|| crate::errors::internal(format!("{what}: the query returned no row")))
    }

    /// Every row of a query.
    pub(crate) async fn all<T: FromRow + Send + 'static>(
        &mut self,
        sql: &str,
        params: Vec<Value>,
        what: &str,
    ) -> Result<Vec<T>, Error> {
        all(self.conn, sql, params, what).await
    }
}

/// Runs a statement on `conn`; returns the rows it changed.
pub(crate) async fn exec(
    conn: &mut Conn,
    sql: &str,
    params: Vec<Value>,
    what: &str,
) -> Result<u64, Error> {
    let (sql, params) = positional(sql, params);
    exec_params(conn, &sql, params, what).await
}

/// Runs `sql` (positional `?`s) with `params`; returns the rows it changed.
async fn exec_params(conn: &mut Conn, sql: &str, params: Params, what: &str) -> Result<u64, Error> {
    conn.exec_drop(sql, params)
        .await
        .map_err(|e| from_mysql(e, what))?;
    Ok(conn.affected_rows())
}

/// The first row of a query on `conn`, if any.
pub(crate) async fn first<T: FromRow + Send + 'static>(
    conn: &mut Conn,
    sql: &str,
    params: Vec<Value>,
    what: &str,
) -> Result<Option<T>, Error> {
    let (sql, params) = positional(sql, params);
    let row: Option<mysql_async::Row> = conn
        .exec_first(sql.as_str(), params)
        .await
        .map_err(|e| from_mysql(e, what))?;
    row.map(|row| convert(row, what)).transpose()
}

/// Every row of a query on `conn`.
pub(crate) async fn all<T: FromRow + Send + 'static>(
    conn: &mut Conn,
    sql: &str,
    params: Vec<Value>,
    what: &str,
) -> Result<Vec<T>, Error> {
    let (sql, params) = positional(sql, params);
    all_params(conn, &sql, params, what).await
}

/// Every row of `sql` (positional `?`s) with `params`.
async fn all_params<T: FromRow + Send + 'static>(
    conn: &mut Conn,
    sql: &str,
    params: Params,
    what: &str,
) -> Result<Vec<T>, Error> {
    let rows: Vec<mysql_async::Row> = conn
        .exec(sql, params)
        .await
        .map_err(|e| from_mysql(e, what))?;
    rows.into_iter().map(|row| convert(row, what)).collect()
}

/// A row as `T`, or an error saying what did not fit (the driver's own conversion panics).
fn convert<T: FromRow>(row: mysql_async::Row, what: &str) -> Result<T, Error> {
    T::from_row_opt(row)
        .map_err(|e| crate::errors::internal(format!("{what}: a row did not convert: {:?}", e.0)))
}

/// `queries.rs` numbers its parameters (`?1`, used as often as needed); MySQL's are
/// positional (`?`). Rewrites the statement and orders the values to match.
fn positional(sql: &str, params: Vec<Value>) -> (String, Params) {
    let bytes = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut values = Vec::new();
    let mut i = 0;
    let mut copied = 0;
    while i < bytes.len() {
        if bytes[i] == b'?' {
            let mut j = i + 1;
            while j < bytes.len() && bytes[j].is_ascii_digit() {
                j += 1;
            }
            if j > i + 1 {
                let n: usize = sql[i + 1..j].parse().unwrap_or(0);
                out.push_str(&sql[copied..i]);
                out.push('?');
                values.push(
                    params
                        .get(n.wrapping_sub(1))
                        .cloned()
                        .unwrap_or(Value::NULL),
                );
                copied = j;
                i = j;
                continue;
            }
        }
        i += 1;
    }
    out.push_str(&sql[copied..]);
    let params = if values.is_empty() {
        Params::Empty
    } else {
        Params::Positional(values)
    };
    (out, params)
}

/// Column `i` of a row read whole (statements of more than 12 columns, past the tuples
/// mysql_async converts).
pub(crate) fn col<T: mysql_async::prelude::FromValue>(
    row: &mut mysql_async::Row,
    i: usize,
    what: &str,
) -> Result<T, Error> {
    match row.take_opt::<T, usize>(i) {
        Some(Ok(value)) => Ok(value),
        Some(Err(e)) => Err(crate::errors::internal(format!("{what}: column {i}: {e}"))),
        None => Err(crate::errors::internal(format!("{what}: no column {i}"))),
    }
}

/// Parameter values for [`Tx::exec`] and friends.
macro_rules! p {
    ($($v:expr),* $(,)?) => {
        vec![$(mysql_async::Value::from(&$v)),*]
    };
}
pub(crate) use p;

/// Runs one operation.
pub(crate) async fn run(tx: &mut Tx<'_>, op: &Op) -> Result<Reply, Error> {
    match op {
        Op::Start(p) => start::start_execution(tx, p).await,
        Op::Claim(p) => claim::claim_tasks(tx, p).await,
        Op::Commit(p) => steps::commit_step(tx, p).await,
        Op::Retry(p) => steps::retry_step(tx, p).await,
        Op::Complete(p) => steps::complete_execution(tx, p).await,
        Op::Sleep(p) => waits::sleep(tx, p).await,
        Op::AwaitEvent(p) => waits::await_event(tx, p).await,
        Op::SendEvent(p) => waits::send_event(tx, p).await,
        Op::StartChild(p) => waits::start_child(tx, p).await,
        Op::StartChildren(p) => waits::start_children(tx, p).await,
        Op::Cancel(id) => cancel::cancel_execution(tx, id).await,
        Op::RetryExecution(id) => retry::retry_execution(tx, id).await,
        Op::Heartbeat(p) => leases::heartbeat(tx, p).await,
        Op::Release(p) => leases::release_tasks(tx, p).await,
        Op::AdvanceClock(by) => leases::advance_clock(tx, *by).await,
        Op::Prune(p) => prune::prune(tx, p).await,
        Op::UpsertSchedule(s) => schedules::upsert_schedule(tx, s).await,
        Op::PauseSchedule(id, paused) => schedules::pause_schedule(tx, id, *paused).await,
        Op::DeleteSchedule(id) => schedules::delete_schedule(tx, id).await,
        Op::ClaimSchedules(p) => schedules::claim_schedules(tx, p).await,
        Op::FireSchedule(p) => schedules::fire_schedule(tx, p).await,
        Op::SetQueueLimits(queue, limits) => {
            queues::set_queue_limits(tx, queue, limits.as_ref()).await
        }
        Op::AuditBegin(entry) => audit::audit_begin(tx, entry).await,
        Op::AuditFinish(id, outcome, detail) => audit::audit_finish(tx, *id, outcome, detail).await,
        Op::WorkerSeen(w) => audit::worker_seen(tx, w).await,
        Op::WorkerGone(id) => audit::worker_gone(tx, id).await,
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
pub(crate) fn check_lease(lease: std::time::Duration) -> Result<i64, Error> {
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
