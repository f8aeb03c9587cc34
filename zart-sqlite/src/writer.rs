//! The one writer: every write (claims included) goes through a [`zart::group_commit::Batcher`]
//! to the single write connection.
//!
//! [`Writer::write_batch`] runs the queued operations in one `BEGIN IMMEDIATE` transaction,
//! each inside its own `SAVEPOINT` (except step results, which write one statement after their
//! checks), so an operation that is refused (a lost lease, a conflict) rolls back alone and the
//! others commit; [`Writer::write_one`] runs one operation in a transaction of its own (the
//! batcher's fallback when a whole batch fails). The batcher runs on a thread of its own
//! (`Batcher::start_blocking`) that calls rusqlite directly, one batch at a time, with the
//! connection behind a mutex (shared with reads for `sqlite::memory:`). Wake-ups of an
//! operation are sent only after its transaction commits.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::broadcast;
use zart::group_commit::BlockingBatchWriter;
use zart::scheduler::{
    AwaitEventParams, ChildWait, ClaimTasksParams, ClaimedTask, CommitStepParams,
    CompleteExecutionParams, EventWait, HeartbeatParams, Lease, ReleaseTasksParams,
    RetryStepParams, SendEventParams, SleepParams, StartChildParams, StartExecutionParams,
    StartOutcome, Wakeup,
};
use zart::Error;

use crate::counting::{counting, Counters};
use crate::errors::SqlResult;
use crate::ops::{self, Cached, Tx};
use crate::Settings;

/// One write, as queued for the writer.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    Start(StartExecutionParams),
    Claim(ClaimTasksParams),
    Commit(CommitStepParams),
    Retry(RetryStepParams),
    Complete(CompleteExecutionParams),
    Sleep(SleepParams),
    AwaitEvent(AwaitEventParams),
    SendEvent(SendEventParams),
    StartChild(StartChildParams),
    Cancel(String),
    Heartbeat(HeartbeatParams),
    Release(ReleaseTasksParams),
    AdvanceClock(Duration),
}

impl Op {
    /// Whether the operation writes with at most one statement, after any check that can
    /// refuse it: it needs no savepoint of its own in a batch, since SQLite undoes a failed
    /// statement by itself. Step results are most writes, so this is most of a batch.
    fn writes_once(&self) -> bool {
        matches!(self, Op::Commit(_))
    }
}

/// What a write answers.
#[derive(Debug)]
pub(crate) enum Reply {
    Started(StartOutcome),
    Claimed(Vec<ClaimedTask>),
    Done,
    Slept(Option<Duration>),
    Event(EventWait),
    Child(ChildWait),
    Cancelled(Vec<String>),
    Renewed(Vec<Lease>),
    Released(u64),
}

/// The write connection and where its wake-ups go.
pub(crate) struct Writer {
    conn: Arc<Mutex<Connection>>,
    settings: Settings,
    wakeups: broadcast::Sender<Wakeup>,
    counters: Arc<Counters>,
}

type Answers = (Vec<Result<Reply, Error>>, Vec<Wakeup>);

impl Writer {
    pub(crate) fn new(
        conn: Arc<Mutex<Connection>>,
        settings: Settings,
        wakeups: broadcast::Sender<Wakeup>,
        counters: Arc<Counters>,
    ) -> Self {
        Writer {
            conn,
            settings,
            wakeups,
            counters,
        }
    }

    /// Runs `work` with the write connection (on the batcher's writer thread), then sends the
    /// wake-ups of what committed.
    fn run<T>(
        &self,
        work: impl FnOnce(&Connection, &Settings) -> Result<(T, Vec<Wakeup>), Error>,
    ) -> Result<T, Error> {
        let (value, wakeups) =
            counting(&self.counters, || work(&lock(&self.conn), &self.settings))?;
        for wakeup in wakeups {
            let _ = self.wakeups.send(wakeup);
        }
        Ok(value)
    }
}

/// Locks a connection; a poisoned lock is taken over (the transaction it held was rolled back
/// or is rolled back by the next `begin`).
pub(crate) fn lock(conn: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    conn.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Starts a write transaction, ending any left open first.
fn begin(conn: &Connection) -> Result<(), Error> {
    if !conn.is_autocommit() {
        conn.execute_batch("rollback")
            .or_db(conn, "ending an unfinished transaction")?;
    }
    conn.execute_batch("begin immediate")
        .or_db(conn, "starting a write transaction")
}

fn commit(conn: &Connection) -> Result<(), Error> {
    conn.execute_batch("commit")
        .or_db(conn, "committing")
        .inspect_err(|_| {
            let _ = conn.execute_batch("rollback");
        })
}

/// One operation in its own transaction.
fn write_one(
    conn: &Connection,
    settings: &Settings,
    op: &Op,
) -> Result<(Reply, Vec<Wakeup>), Error> {
    begin(conn)?;
    let mut tx = Tx::new(conn, settings)?;
    match ops::run(&mut tx, op) {
        Ok(reply) => {
            let wakeups = tx.into_wakeups();
            commit(conn)?;
            Ok((reply, wakeups))
        }
        Err(err) => {
            let _ = conn.execute_batch("rollback");
            Err(err)
        }
    }
}

/// Many operations in one transaction, each in its own savepoint (but those that write once).
fn write_batch(
    conn: &Connection,
    settings: &Settings,
    items: &[Arc<Op>],
) -> Result<Answers, Error> {
    begin(conn)?;
    let mut answers = Vec::with_capacity(items.len());
    let mut wakeups = Vec::new();
    for op in items {
        let step = (|| {
            if op.writes_once() {
                let mut tx = Tx::new(conn, settings)?;
                let answer = ops::run(&mut tx, op);
                return Ok::<_, Error>((answer, tx.into_wakeups()));
            }
            conn.exec_cached("savepoint zart_item", [])
                .or_db(conn, "opening a savepoint")?;
            let mut tx = Tx::new(conn, settings)?;
            let answer = ops::run(&mut tx, op);
            if answer.is_ok() {
                conn.exec_cached("release zart_item", [])
                    .or_db(conn, "closing a savepoint")?;
            } else {
                conn.execute_batch("rollback to zart_item; release zart_item")
                    .or_db(conn, "closing a savepoint")?;
            }
            Ok::<_, Error>((answer, tx.into_wakeups()))
        })();
        match step {
            Ok((answer, item_wakeups)) => {
                if answer.is_ok() {
                    wakeups.extend(item_wakeups);
                }
                answers.push(answer);
            }
            Err(err) => {
                let _ = conn.execute_batch("rollback");
                return Err(err);
            }
        }
    }
    commit(conn)?;
    Ok((answers, wakeups))
}

impl BlockingBatchWriter<Arc<Op>, Reply> for Writer {
    fn write_batch(&mut self, items: &[Arc<Op>]) -> Result<Vec<Result<Reply, Error>>, Error> {
        self.run(|conn, settings| write_batch(conn, settings, items))
    }

    fn write_one(&mut self, item: &Arc<Op>) -> Result<Reply, Error> {
        self.run(|conn, settings| write_one(conn, settings, item))
    }
}
