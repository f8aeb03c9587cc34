//! The one writer: every write (claims included) goes through a [`zart::group_commit::Batcher`]
//! to the single write connection.
//!
//! [`Writer::write_batch`] runs the queued operations in one `BEGIN IMMEDIATE` transaction. An
//! operation that is refused (a lost lease, a conflict) has written nothing, so it gets its
//! error and the others commit; one that fails after writing (the connection's change count
//! moved) rolls the whole batch back. [`Writer::write_one`] runs one operation in a
//! transaction of its own: the batcher's fallback when a whole batch fails, so no item is
//! lost to another's failure and none is half-written. The batcher runs on a thread of its own
//! (`Batcher::start_blocking`) that calls rusqlite directly, one batch at a time, with the
//! connection behind a mutex (shared with reads for `sqlite::memory:`). Wake-ups of an
//! operation are sent only after its transaction commits.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::broadcast;
use zart::group_commit::BlockingBatchWriter;
use zart::queues::QueueLimits;
use zart::schedule::Schedule;
use zart::scheduler::{
    AwaitEventParams, ChildWait, ClaimSchedulesParams, ClaimTasksParams, ClaimedTask,
    CommitStepParams, CompleteExecutionParams, DueSchedule, EventWait, FireOutcome,
    FireScheduleParams, HeartbeatParams, Lease, PruneOutcome, PruneParams, ReleaseTasksParams,
    RetryStepParams, SendEventParams, SleepParams, StartChildParams, StartChildrenParams,
    StartExecutionParams, StartOutcome, Wakeup,
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
    StartChildren(StartChildrenParams),
    Cancel(String),
    RetryExecution(String),
    Heartbeat(HeartbeatParams),
    Release(ReleaseTasksParams),
    AdvanceClock(Duration),
    Prune(PruneParams),
    UpsertSchedule(Schedule),
    /// A schedule's id, and true to pause it, false to resume it.
    PauseSchedule(String, bool),
    DeleteSchedule(String),
    ClaimSchedules(ClaimSchedulesParams),
    FireSchedule(FireScheduleParams),
    /// A queue and its new limits (`None`: none).
    SetQueueLimits(String, Option<QueueLimits>),
    AuditBegin(zart::audit::AuditEntry),
    /// An audit entry's id, its outcome and detail.
    AuditFinish(i64, String, String),
    WorkerSeen(zart::presence::WorkerPresence),
    /// A worker's id.
    WorkerGone(String),
}

impl Op {
    /// Whether the operation only takes or extends leases (a claim, a heartbeat, a claim of
    /// schedules). A batch of nothing else commits without waiting for the disk (see
    /// [`relaxed`]).
    fn leases_only(&self) -> bool {
        matches!(
            self,
            Op::Claim(_) | Op::Heartbeat(_) | Op::ClaimSchedules(_)
        )
    }
}

/// Runs `work` with `synchronous=NORMAL` when `relax` (a batch of claims and heartbeats
/// under `synchronous=FULL`), and sets FULL again after, whatever `work` returned.
///
/// A lease that a power cut takes back is safe to lose: SQLite runs on one machine, so the
/// cut also stopped every worker that could hold it, and the next commit that waits for the
/// disk writes the WAL in order, the claim before anything done under it. So no step result
/// can outlive the claim it was written under. What can be lost is the claim itself, with the
/// claim count and recovery count it added, and a sleep it ended: after the restart the task
/// is due as before the claim and is claimed again. A schedule's hold is the same: a lost one
/// is claimed again, and a fire under it (which waits for the disk) commits after it. A
/// process crash loses nothing either way.
fn relaxed<T>(
    conn: &Connection,
    relax: bool,
    work: impl FnOnce() -> Result<T, Error>,
) -> Result<T, Error> {
    if !relax {
        return work();
    }
    conn.exec_cached("pragma synchronous = normal", [])
        .or_db(conn, "relaxing synchronous for a claim")?;
    let result = work();
    let restored = conn
        .exec_cached("pragma synchronous = full", [])
        .or_db(conn, "setting synchronous back to full");
    let value = result?;
    restored?;
    Ok(value)
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
    Children(Vec<ChildWait>),
    Cancelled(Vec<String>),
    Retried(Vec<String>),
    Renewed(Vec<Lease>),
    Released(u64),
    Pruned(PruneOutcome),
    /// Whether the schedule was new.
    Upserted(bool),
    /// Whether there was a schedule to delete.
    Deleted(bool),
    SchedulesClaimed(Vec<DueSchedule>),
    Fired(FireOutcome),
    /// Whether the queue has limits now.
    LimitsSet(bool),
    /// The id of the audit entry written.
    AuditId(i64),
    /// Whether the audit entry was finished by this call.
    AuditFinished(bool),
    /// Whether the worker had a running record.
    Departed(bool),
}

/// The write connection and where its wake-ups go.
#[derive(Clone)]
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

    /// Runs `work` on `conn` (the write connection, locked by the caller), then sends the
    /// wake-ups of what committed.
    fn run_on<T>(
        &self,
        conn: &Connection,
        work: impl FnOnce(&Connection, &Settings) -> Result<(T, Vec<Wakeup>), Error>,
    ) -> Result<T, Error> {
        let (value, wakeups) = counting(&self.counters, || work(conn, &self.settings))?;
        for wakeup in wakeups {
            let _ = self.wakeups.send(wakeup);
        }
        Ok(value)
    }

    /// Writes `op` in a transaction of its own on the calling thread, if the write connection
    /// is free this instant; `None` if it is busy (the caller then queues the op).
    ///
    /// The caller must be allowed to block (a tokio worker inside `block_in_place`).
    pub(crate) fn try_write_one(&self, op: &Op) -> Option<Result<Reply, Error>> {
        let conn = match self.conn.try_lock() {
            Ok(conn) => conn,
            Err(std::sync::TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return None,
        };
        Some(self.write_one_on(&conn, op))
    }

    /// Writes `op` in a transaction of its own on `conn` (the locked write connection), without
    /// waiting for the disk if it only takes or extends leases.
    fn write_one_on(&self, conn: &Connection, op: &Op) -> Result<Reply, Error> {
        let relax = self.settings.full_sync && op.leases_only();
        self.run_on(conn, |conn, settings| {
            relaxed(conn, relax, || write_one(conn, settings, op))
        })
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

/// Many operations in one transaction, without savepoints: an operation that is refused has
/// written nothing (every operation checks before it writes, and a statement that fails is
/// undone by SQLite), which the connection's change count confirms; one that fails after
/// writing fails the batch, and the batcher then writes each item on its own.
fn write_batch(
    conn: &Connection,
    settings: &Settings,
    items: &[Arc<Op>],
) -> Result<Answers, Error> {
    begin(conn)?;
    let mut answers = Vec::with_capacity(items.len());
    let mut wakeups = Vec::new();
    for op in items {
        let before = conn.total_changes();
        let answer = Tx::new(conn, settings).map(|mut tx| {
            let answer = ops::run(&mut tx, op);
            (answer, tx.into_wakeups())
        });
        match answer {
            Ok((Ok(reply), item_wakeups)) => {
                wakeups.extend(item_wakeups);
                answers.push(Ok(reply));
            }
            // Refused before it wrote anything (a lost lease, a conflict, bad input): its
            // answer, and the batch goes on.
            Ok((Err(err), _)) if conn.total_changes() == before => answers.push(Err(err)),
            // Failed after writing: nothing can undo it alone, so the batch is rolled back and
            // the batcher writes each item in a transaction of its own.
            Ok((Err(err), _)) | Err(err) => {
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
        let relax = self.settings.full_sync && items.iter().all(|op| op.leases_only());
        self.run_on(&lock(&self.conn), |conn, settings| {
            relaxed(conn, relax, || write_batch(conn, settings, items))
        })
    }

    fn write_one(&mut self, item: &Arc<Op>) -> Result<Reply, Error> {
        self.write_one_on(&lock(&self.conn), item)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn synchronous(conn: &Connection) -> i64 {
        conn.query_row("pragma synchronous", [], |r| r.get(0))
            .unwrap()
    }

    /// A lease-only batch commits with NORMAL (1); FULL (2) is back after it, even when the
    /// batch failed; other batches never change it.
    #[test]
    fn relaxed_batches_set_full_again_whatever_happened() {
        let conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "synchronous", "full").unwrap();
        let seen = relaxed(&conn, true, || Ok(synchronous(&conn))).unwrap();
        assert_eq!((seen, synchronous(&conn)), (1, 2));
        let failed = relaxed(&conn, true, || {
            assert_eq!(synchronous(&conn), 1);
            Err::<(), _>(Error::invalid("claim", "refused"))
        });
        assert!(failed.is_err());
        assert_eq!(synchronous(&conn), 2);
        let seen = relaxed(&conn, false, || Ok(synchronous(&conn))).unwrap();
        assert_eq!(seen, 2);
    }
}
