//! The writer: every write (claims included) goes through a [`zart::group_commit::Batcher`] to
//! one connection, so writes from many executions share a transaction.
//!
//! [`Writer`] runs the queued operations in one transaction (READ COMMITTED); the step results
//! and the outcomes go in groups of their kind ([`ops::group`]), a few statements for all of
//! them. Every operation checks what can refuse it before its first write, so an operation
//! that is refused (a lost lease, a conflict, bad input) has written nothing and gets its error
//! while the others commit; one refused after it wrote fails the batch. An error of the
//! transaction itself (a deadlock, a lock wait timeout, a lost
//! connection, a server error) fails the batch, and the batcher then writes each item in a
//! transaction of its own, so no item is lost to another's failure and none is half-written.
//! The clock is read once per transaction. Wake-ups are sent only after commit.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Pool};
use tokio::sync::{broadcast, mpsc, oneshot};
use zart::group_commit::BatchWriter;
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

use crate::errors::from_mysql;
use crate::ops::group::Slots;
use crate::ops::{self, Tx};
use crate::{clock, pool_for, Settings};

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

/// The writer: a thread of its own with a single-threaded runtime, which owns the write
/// connection (taken on first use, and again after it failed). A batch's statements then wait
/// only for the server, never behind the workflow tasks of a busy runtime: each statement is a
/// round trip, and a batch takes a dozen of them.
pub(crate) struct Writer {
    jobs: mpsc::UnboundedSender<Job>,
}

/// A batch to write and where its answer goes.
struct Job {
    items: Vec<Arc<Op>>,
    answer: oneshot::Sender<Result<Vec<Result<Reply, Error>>, Error>>,
}

type Answers = (Vec<Result<Reply, Error>>, Vec<Wakeup>);

impl Writer {
    /// Starts the writer's thread, which connects to `url` on first use.
    pub(crate) fn start(
        url: &str,
        settings: Settings,
        wakeups: broadcast::Sender<Wakeup>,
    ) -> Result<Self, Error> {
        let (jobs, mut queue) = mpsc::unbounded_channel::<Job>();
        let url = url.to_owned();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Unavailable {
                message: format!("cannot start the MySQL writer's runtime: {e}"),
                source: None,
            })?;
        std::thread::Builder::new()
            .name("zart-mysql-writer".to_owned())
            .spawn(move || {
                runtime.block_on(async move {
                    let mut connection = Connection {
                        pool: None,
                        url,
                        conn: None,
                        settings,
                        wakeups,
                    };
                    while let Some(job) = queue.recv().await {
                        let answer = connection.write(&job.items).await;
                        let _ = job.answer.send(answer);
                    }
                    connection.close().await;
                });
            })
            .map_err(|e| Error::Unavailable {
                message: format!("cannot start the MySQL writer thread: {e}"),
                source: None,
            })?;
        Ok(Writer { jobs })
    }

    async fn write(&self, items: &[Arc<Op>]) -> Result<Vec<Result<Reply, Error>>, Error> {
        let (answer, answered) = oneshot::channel();
        let stopped = || Error::Unavailable {
            message: "the MySQL writer thread has stopped".to_owned(),
            source: None,
        };
        self.jobs
            .send(Job {
                items: items.to_vec(),
                answer,
            })
            .map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }
}

/// The writer thread's side: its pool (made on first use, on the thread's runtime), the
/// write connection, and where wake-ups go.
struct Connection {
    pool: Option<Pool>,
    url: String,
    conn: Option<Conn>,
    settings: Settings,
    wakeups: broadcast::Sender<Wakeup>,
}

impl Connection {
    /// Writes `items` in one transaction on the write connection, then sends the wake-ups of
    /// what committed. A failed transaction gives the connection back to the pool's care (it
    /// may be broken) and takes a new one next time.
    async fn write(&mut self, items: &[Arc<Op>]) -> Result<Vec<Result<Reply, Error>>, Error> {
        let conn = match self.conn.as_mut() {
            Some(conn) => conn,
            None => {
                let pool = match &self.pool {
                    Some(pool) => pool,
                    None => self.pool.insert(pool_for(&self.url)?),
                };
                let conn = pool
                    .get_conn()
                    .await
                    .map_err(|e| from_mysql(e, "connecting the writer"))?;
                self.conn.insert(conn)
            }
        };
        match write_batch(conn, &self.settings, items).await {
            Ok((answers, wakeups)) => {
                for wakeup in wakeups {
                    let _ = self.wakeups.send(wakeup);
                }
                Ok(answers)
            }
            Err(err) => {
                if matches!(err, Error::Unavailable { .. }) {
                    self.conn = None;
                }
                Err(err)
            }
        }
    }

    async fn close(mut self) {
        drop(self.conn.take());
        if let Some(pool) = self.pool.take() {
            let _ = pool.disconnect().await;
        }
    }
}

/// Whether an operation's error leaves the transaction usable (a refusal) rather than failing
/// it (the server rolled it back, or the connection is gone).
fn refusal(err: &Error) -> bool {
    !(err.is_transient() || matches!(err, Error::Database { .. } | Error::Schema(_)))
}

async fn rollback(conn: &mut Conn) {
    let _ = conn.query_drop("rollback").await;
}

/// How a batch's items are written: the step results and the outcomes in groups of their kind
/// when there are several (see [`ops::group`]), every other item on its own, first.
struct Plan<'a> {
    alone: Vec<(usize, &'a Op)>,
    commits: Vec<(usize, &'a CommitStepParams)>,
    completes: Vec<(usize, &'a CompleteExecutionParams)>,
}

impl<'a> Plan<'a> {
    fn of(items: &'a [Arc<Op>]) -> Self {
        let mut plan = Plan {
            alone: Vec::new(),
            commits: Vec::new(),
            completes: Vec::new(),
        };
        let mut steps: HashSet<(&str, &str)> = HashSet::new();
        let mut outcomes: HashSet<&str> = HashSet::new();
        for (i, op) in items.iter().enumerate() {
            match &**op {
                // A group writes each (execution, step) and each outcome once; a repeat goes
                // alone.
                Op::Commit(p) if steps.insert((&p.lease.execution_id, &p.name)) => {
                    plan.commits.push((i, p));
                }
                Op::Complete(p) if outcomes.insert(&p.lease.execution_id) => {
                    plan.completes.push((i, p));
                }
                op => plan.alone.push((i, op)),
            }
        }
        if plan.commits.len() < 2 {
            plan.alone
                .extend(plan.commits.drain(..).map(|(i, _)| (i, &*items[i])));
        }
        if plan.completes.len() < 2 {
            plan.alone
                .extend(plan.completes.drain(..).map(|(i, _)| (i, &*items[i])));
        }
        plan
    }
}

/// Many operations in one transaction. An operation refused before it changed a row leaves
/// nothing to undo; one refused after that fails the batch when it is not alone in it (the
/// batcher then writes each item alone), so no savepoint is needed.
async fn write_batch(
    conn: &mut Conn,
    settings: &Settings,
    items: &[Arc<Op>],
) -> Result<Answers, Error> {
    conn.query_drop("start transaction")
        .await
        .map_err(|e| from_mysql(e, "starting a write transaction"))?;
    match write_items(conn, settings, items).await {
        Ok(Written::Commit(answers)) => {
            if let Err(e) = conn.query_drop("commit").await {
                rollback(conn).await;
                return Err(from_mysql(e, "committing"));
            }
            Ok(answers)
        }
        Ok(Written::Refused(err)) => {
            // The only item, refused after it wrote: nothing of it is kept.
            rollback(conn).await;
            Ok((vec![Err(err)], Vec::new()))
        }
        Err(err) => {
            rollback(conn).await;
            Err(err)
        }
    }
}

/// What a transaction's items came to.
enum Written {
    /// Commit, then answer.
    Commit(Answers),
    /// Roll back: the batch's only item was refused after it wrote.
    Refused(Error),
}

/// Writes `items` inside the open transaction; an error means it must be rolled back.
async fn write_items(
    conn: &mut Conn,
    settings: &Settings,
    items: &[Arc<Op>],
) -> Result<Written, Error> {
    let now = clock::now(conn, settings.test_clock).await?;
    let plan = Plan::of(items);
    let mut answers = Slots::new(items.len());
    let mut wakeups = Vec::new();
    for (i, op) in plan.alone {
        let mut tx = Tx::at(conn, settings, now);
        let answer = ops::run(&mut tx, op).await;
        let wrote = tx.wrote();
        let item_wakeups = tx.into_wakeups();
        match answer {
            Ok(reply) => {
                wakeups.extend(item_wakeups);
                answers.set(i, Ok(reply));
            }
            Err(err) if refusal(&err) && !wrote => answers.set(i, Err(err)),
            Err(err) if refusal(&err) && items.len() == 1 => return Ok(Written::Refused(err)),
            Err(err) => return Err(err),
        }
    }
    let mut tx = Tx::at(conn, settings, now);
    if !plan.commits.is_empty() {
        let params: Vec<_> = plan.commits.iter().map(|(_, p)| *p).collect();
        let written = ops::group::commit_steps(&mut tx, &params).await?;
        for ((i, _), answer) in plan.commits.iter().zip(written) {
            answers.set(*i, answer);
        }
    }
    if !plan.completes.is_empty() {
        let params: Vec<_> = plan.completes.iter().map(|(_, p)| *p).collect();
        let written = ops::group::complete_executions(&mut tx, &params).await?;
        for ((i, _), answer) in plan.completes.iter().zip(written) {
            answers.set(*i, answer);
        }
    }
    wakeups.extend(tx.into_wakeups());
    Ok(Written::Commit((answers.into_answers(), wakeups)))
}

#[async_trait]
impl BatchWriter<Arc<Op>, Reply> for Writer {
    async fn write_batch(&self, items: &[Arc<Op>]) -> Result<Vec<Result<Reply, Error>>, Error> {
        self.write(items).await
    }

    async fn write_one(&self, item: &Arc<Op>) -> Result<Reply, Error> {
        let mut answers = self.write(std::slice::from_ref(item)).await?;
        answers
            .pop()
            .unwrap_or_else(|| Err(crate::errors::internal("the writer answered nothing")))
    }
}
