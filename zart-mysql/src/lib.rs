//! MySQL and MariaDB backend for Zart: [`MySqlScheduler`] implements [`zart::Scheduler`] on a
//! MariaDB 10.6+ or MySQL 8.0+ database, so a fleet of workers on many machines shares one
//! store.
//!
//! # Why mysql_async
//!
//! The driver is [`mysql_async`]: pure Rust (no C client library to install or link), built on
//! tokio, with a connection pool and a per-connection prepared-statement cache, and actively
//! maintained. It speaks to MariaDB and MySQL alike. sqlx's MySQL driver would do too, but
//! brings its macros, its own pool and a much larger dependency tree for nothing Zart uses;
//! mysql_async is built here without TLS or C compression (`minimal-rust`).
//!
//! # How it works
//!
//! - **One writer per scheduler.** Every write, claims included, goes through one
//!   [`zart::group_commit::Batcher`] to one connection: what queues while a transaction is in
//!   flight is written in the next one, so step results and outcomes of many executions share
//!   a commit. An operation that is refused (a lost lease, a conflict, bad input) is rolled
//!   back to its savepoint and gets its error while the others commit; a batch whose
//!   transaction fails (a deadlock, a lost connection) is written again item by item.
//! - **Claims** read the due rows of the narrow ready table `zart_tasks` (one row per
//!   unfinished execution) through its claim index with `FOR UPDATE SKIP LOCKED`, sized to the
//!   free slots, and lease them in the same transaction: workers in other processes skip rows
//!   a claim holds instead of waiting. Fenced writes lock the task row (`FOR UPDATE`) when they
//!   check the fence, so a take-over and a stale write are serialised by InnoDB.
//! - **Sessions** run READ COMMITTED (set on each pooled connection), with the time zone UTC,
//!   `utf8mb4`, and a strict `sql_mode` without engine substitution.
//! - **Time** is the server's clock (`UTC_TIMESTAMP(6)`), plus the `zart_clock` offset when
//!   built with a test clock ([`MySqlOptions::test_clock`]), read once per transaction. Times
//!   are stored as fixed-width ISO-8601 UTC text (`2026-12-06T22:00:00.123Z`), as zart-sqlite
//!   stores them, so text order is time order and `select` shows them readably.
//! - **Identifiers** (execution ids, task names, queues, keys, step names) are `VARBINARY`:
//!   compared byte for byte, so ids differing only in case or trailing spaces are distinct,
//!   and any UTF-8 round-trips. **JSON** is stored as `utf8mb4` text, exactly as serialised
//!   (not the `JSON` type, which reorders keys on MySQL), so it reads back byte for byte.
//! - **Wake-ups**: this process's writes wake its workers and `wait()` calls at once (sent
//!   after commit); writes of other processes are seen by [`zart::wakeups::Poller`] reading a
//!   cheap change probe (three index look-ups, no write; 20 ms after a change, backing off to
//!   2 s while idle; see [`POLL_SETTINGS`]).
//! - **Errors**: deadlock (1213) and lock wait timeout (1205) are [`Error::Contention`]; a
//!   refused or lost connection is [`Error::Unavailable`]; both are transient.
//! - **Checks at connect**: a server older than MariaDB 10.6 / MySQL 8.0,
//!   `binlog_format=STATEMENT`, or a default storage engine other than InnoDB is refused with
//!   an [`Error::Database`] naming the setting.
//!
//! - **Operator reads**: [`zart::admin::Admin`] (`zart list`, `zart show`) on pooled
//!   connections.
//!
//! - **Step transactions**: `ctx.step_tx(name, |tx: zart_mysql::StepTx| ..)` runs the body
//!   in a transaction on a pooled connection and records the step (fenced) in it before it
//!   commits, so the body's writes to your tables in the same database and the step's record
//!   are stored together or not at all ([`StepTx`]).
//!
//! What it does not offer (yet): push wake-ups across processes (MySQL has no NOTIFY: they
//! are polled); tenancy and buckets; `zart doctor`.
//!
//! ```no_run
//! use std::sync::Arc;
//! use zart_mysql::MySqlScheduler;
//!
//! # async fn example() -> Result<(), zart::Error> {
//! zart_mysql::migrate("mysql://zart@127.0.0.1:3306/app").await?;
//! let scheduler = Arc::new(MySqlScheduler::connect("mysql://zart@127.0.0.1:3306/app").await?);
//! # Ok(()) }
//! ```

pub mod clock;
mod doctor;
mod errors;
mod ops;
pub mod queries;
mod schema;
mod server;
mod step_tx;
mod wakeups;
mod writer;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use mysql_async::{Conn, Pool};
use tokio::sync::broadcast;
use zart::group_commit::{Batcher, DEFAULT_MAX_BATCH};
use zart::queues::{QueueLimits, QueueLimitsRow};
use zart::schedule::{Schedule, ScheduleRow};
use zart::scheduler::{
    AwaitEventParams, ChildWait, ClaimSchedulesParams, ClaimTasksParams, ClaimedTask,
    CommitStepParams, CompleteExecutionParams, DueSchedule, EventWait, FireOutcome,
    FireScheduleParams, HeartbeatParams, Lease, NextRunAtParams, PruneOutcome, PruneParams,
    ReleaseTasksParams, RetryStepParams, SendEventParams, SleepParams, StartChildParams,
    StartChildrenParams, StartExecutionParams, StartOutcome, Wakeup,
};
use zart::wakeups::{PollSettings, Poller};
use zart::{Error, Execution, Scheduler};

pub use doctor::doctor;
pub use schema::{migrate, Migration, MigrationReport, MIGRATIONS, SCHEMA_VERSION};
pub use server::pool_for;
pub use step_tx::{StepConn, StepTx};
pub use wakeups::POLL_SETTINGS;

use errors::{from_mysql, internal};
use ops::Tx;
use writer::{Op, Reply, Writer};

/// How many wake-ups a slow subscriber may fall behind before it is told to resync.
const WAKEUP_BUFFER: usize = 4096;

/// Settings of a [`MySqlScheduler`].
#[derive(Debug, Clone)]
pub struct MySqlOptions {
    max_payload_bytes: usize,
    test_clock: bool,
    max_batch: usize,
    poll: PollSettings,
}

impl Default for MySqlOptions {
    fn default() -> Self {
        MySqlOptions {
            max_payload_bytes: zart::limits::DEFAULT_MAX_PAYLOAD_BYTES,
            test_clock: false,
            max_batch: DEFAULT_MAX_BATCH,
            poll: POLL_SETTINGS,
        }
    }
}

impl MySqlOptions {
    /// The largest JSON text stored for an input, output, error or event payload (default
    /// 1 MiB); larger ones are refused with [`Error::InvalidInput`] naming the field.
    pub fn max_payload_bytes(mut self, bytes: usize) -> Self {
        self.max_payload_bytes = bytes;
        self
    }

    /// Adds the offset in `zart_clock` to the server's time, so tests can move time forward
    /// ([`MySqlScheduler::advance_test_clock`]). Off by default.
    pub fn test_clock(mut self, on: bool) -> Self {
        self.test_clock = on;
        self
    }

    /// How often other processes' writes are looked for (default [`POLL_SETTINGS`]).
    pub fn poll(mut self, settings: PollSettings) -> Self {
        self.poll = settings;
        self
    }
}

/// What every operation needs to know about the scheduler's settings.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) test_clock: bool,
    pub(crate) max_payload_bytes: usize,
}

/// The MySQL/MariaDB [`Scheduler`].
pub struct MySqlScheduler {
    pool: Pool,
    writer: Batcher<Arc<Op>, Reply>,
    settings: Settings,
    wakeups: broadcast::Sender<Wakeup>,
    poller: OnceLock<Poller>,
    poll_settings: PollSettings,
    step_slots: Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Debug for MySqlScheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MySqlScheduler")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Runs a read on a pooled connection, with the time read once (`read!(self, timed, ..)`) or
/// not at all, for a read that needs no time (one statement fewer).
macro_rules! read {
    ($self:ident, timed, |$tx:ident| $body:expr) => {{
        let mut conn = $self.conn().await?;
        let mut $tx = Tx::new(&mut conn, &$self.settings).await?;
        $body.await
    }};
    ($self:ident, |$tx:ident| $body:expr) => {{
        let mut conn = $self.conn().await?;
        let mut $tx = Tx::at(&mut conn, &$self.settings, 0);
        $body.await
    }};
}

impl MySqlScheduler {
    /// Connects to the database at `url` with default options; see
    /// [`MySqlScheduler::connect_with`].
    ///
    /// # Errors
    /// As [`MySqlScheduler::connect_with`].
    pub async fn connect(url: &str) -> Result<Self, Error> {
        Self::connect_with(url, MySqlOptions::default()).await
    }

    /// Connects to the database at `url` (`mysql://user:password@host:3306/database`, or
    /// `mariadb://...`), checks the server and the schema, and starts the writer.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a URL that is not `mysql:` or `mariadb:` or names no
    /// database; [`Error::Unavailable`] when the server cannot be reached; [`Error::Database`]
    /// for a wrong user or password, a missing database, or a server setting Zart refuses
    /// (naming it); [`Error::Schema`] when the database is not migrated.
    ///
    /// # Examples
    /// ```no_run
    /// use zart_mysql::{MySqlOptions, MySqlScheduler};
    /// # async fn example() -> Result<(), zart::Error> {
    /// let scheduler = MySqlScheduler::connect_with(
    ///     "mysql://zart@db:3306/app",
    ///     MySqlOptions::default().max_payload_bytes(4 << 20),
    /// )
    /// .await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect_with(url: &str, options: MySqlOptions) -> Result<Self, Error> {
        let pool = pool_for(url)?;
        let mut conn = pool
            .get_conn()
            .await
            .map_err(|e| from_mysql(e, &server::describe(url)))?;
        server::check(&mut conn).await?;
        schema::check(&mut conn).await?;
        drop(conn);
        let settings = Settings {
            test_clock: options.test_clock,
            max_payload_bytes: options.max_payload_bytes,
        };
        let (wakeups, _) = broadcast::channel(WAKEUP_BUFFER);
        let writer = Writer::start(url, settings.clone(), wakeups.clone())?;
        Ok(MySqlScheduler {
            writer: Batcher::start("mysql", Arc::new(writer), options.max_batch),
            pool,
            settings,
            wakeups,
            poller: OnceLock::new(),
            poll_settings: options.poll,
            step_slots: step_tx::slots(server::MAX_CONNECTIONS),
        })
    }

    /// How many times the cross-process change probe has been read since the first
    /// [`Scheduler::subscribe`]; 0 before it.
    pub fn poll_count(&self) -> u64 {
        self.poller.get().map_or(0, Poller::polls)
    }

    /// How many write batches failed as a whole and were written item by item since connect
    /// ([`zart::group_commit::Batcher::splits`]).
    pub fn batch_splits(&self) -> u64 {
        self.writer.splits()
    }

    /// Moves the test clock forward by `by` for every connection and process using this
    /// database, and tells every worker to look for due work.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] unless the scheduler was built with
    /// [`MySqlOptions::test_clock`]; the database errors of every write.
    pub async fn advance_test_clock(&self, by: Duration) -> Result<(), Error> {
        self.write(Op::AdvanceClock(by)).await.map(|_| ())
    }

    /// Closes the scheduler: writes what is already queued, stops polling, and disconnects
    /// the pool.
    pub async fn close(self) {
        let MySqlScheduler {
            writer,
            pool,
            mut poller,
            ..
        } = self;
        writer.close().await;
        if let Some(poller) = poller.take() {
            poller.stop().await;
        }
        let _ = pool.disconnect().await;
    }

    async fn write(&self, op: Op) -> Result<Reply, Error> {
        self.writer.submit(Arc::new(op)).await
    }

    async fn conn(&self) -> Result<Conn, Error> {
        self.pool
            .get_conn()
            .await
            .map_err(|e| from_mysql(e, "taking a connection from the pool"))
    }
}

fn unexpected(reply: Reply) -> Error {
    internal(format!(
        "the MySQL writer answered {reply:?} to another call"
    ))
}

#[async_trait]
impl zart::audit::AuditLog for MySqlScheduler {
    async fn audit_begin(&self, entry: &zart::audit::AuditEntry) -> Result<i64, Error> {
        match self.write(Op::AuditBegin(entry.clone())).await? {
            Reply::AuditId(id) => Ok(id),
            other => Err(unexpected(other)),
        }
    }

    async fn audit_finish(&self, id: i64, outcome: &str, detail: &str) -> Result<bool, Error> {
        match self
            .write(Op::AuditFinish(id, outcome.to_owned(), detail.to_owned()))
            .await?
        {
            Reply::AuditFinished(done) => Ok(done),
            other => Err(unexpected(other)),
        }
    }

    async fn list_audit(
        &self,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<zart::audit::AuditRecord>, Error> {
        read!(self, |tx| ops::audit::list_audit(&mut tx, before, limit))
    }
}

#[async_trait]
impl zart::admin::Admin for MySqlScheduler {
    async fn list_executions(
        &self,
        params: zart::admin::ListExecutionsParams,
    ) -> Result<zart::admin::ExecutionPage, Error> {
        read!(self, |tx| ops::admin::list_executions(&mut tx, &params))
    }

    async fn describe_execution(
        &self,
        id: &str,
    ) -> Result<Option<zart::admin::ExecutionDetail>, Error> {
        read!(self, timed, |tx| ops::admin::describe_execution(
            &mut tx, id
        ))
    }

    async fn queue_stats(&self) -> Result<Vec<zart::admin::QueueStats>, Error> {
        read!(self, timed, |tx| ops::admin::queue_stats(&mut tx))
    }

    async fn list_workers(&self) -> Result<zart::presence::WorkersSeen, Error> {
        read!(self, timed, |tx| ops::audit::list_workers(&mut tx))
    }
}

#[async_trait]
impl Scheduler for MySqlScheduler {
    async fn check_schema(&self) -> Result<(), Error> {
        let mut conn = self.conn().await?;
        schema::check(&mut conn).await
    }

    async fn start_execution(&self, p: StartExecutionParams) -> Result<StartOutcome, Error> {
        match self.write(Op::Start(p)).await? {
            Reply::Started(outcome) => Ok(outcome),
            other => Err(unexpected(other)),
        }
    }

    async fn claim_tasks(&self, p: ClaimTasksParams) -> Result<Vec<ClaimedTask>, Error> {
        ops::check_lease(p.lease)?;
        if p.task_names.is_empty() || p.limit == 0 {
            return Ok(Vec::new());
        }
        // Nothing due: no write transaction (an idle worker's sweep).
        let ask = NextRunAtParams {
            queue: p.queue.clone(),
            task_names: p.task_names.clone(),
        };
        if !read!(self, |tx| ops::read::anything_due(&mut tx, &ask))? {
            return Ok(Vec::new());
        }
        match self.write(Op::Claim(p)).await? {
            Reply::Claimed(tasks) => Ok(tasks),
            other => Err(unexpected(other)),
        }
    }

    async fn commit_step(&self, p: CommitStepParams) -> Result<(), Error> {
        self.write(Op::Commit(p)).await.map(|_| ())
    }

    async fn retry_step(&self, p: RetryStepParams) -> Result<(), Error> {
        self.write(Op::Retry(p)).await.map(|_| ())
    }

    async fn complete_execution(&self, p: CompleteExecutionParams) -> Result<(), Error> {
        self.write(Op::Complete(p)).await.map(|_| ())
    }

    async fn sleep(&self, p: SleepParams) -> Result<Option<Duration>, Error> {
        match self.write(Op::Sleep(p)).await? {
            Reply::Slept(left) => Ok(left),
            other => Err(unexpected(other)),
        }
    }

    async fn await_event(&self, p: AwaitEventParams) -> Result<EventWait, Error> {
        match self.write(Op::AwaitEvent(p)).await? {
            Reply::Event(wait) => Ok(wait),
            other => Err(unexpected(other)),
        }
    }

    async fn send_event(&self, p: SendEventParams) -> Result<(), Error> {
        self.write(Op::SendEvent(p)).await.map(|_| ())
    }

    async fn start_child(&self, p: StartChildParams) -> Result<ChildWait, Error> {
        match self.write(Op::StartChild(p)).await? {
            Reply::Child(wait) => Ok(wait),
            other => Err(unexpected(other)),
        }
    }

    async fn start_children(&self, p: StartChildrenParams) -> Result<Vec<ChildWait>, Error> {
        match self.write(Op::StartChildren(p)).await? {
            Reply::Children(waits) => Ok(waits),
            other => Err(unexpected(other)),
        }
    }

    async fn cancel_execution(&self, id: &str) -> Result<Vec<String>, Error> {
        match self.write(Op::Cancel(id.to_owned())).await? {
            Reply::Cancelled(ids) => Ok(ids),
            other => Err(unexpected(other)),
        }
    }

    async fn retry_execution(&self, id: &str) -> Result<Vec<String>, Error> {
        match self.write(Op::RetryExecution(id.to_owned())).await? {
            Reply::Retried(ids) => Ok(ids),
            other => Err(unexpected(other)),
        }
    }

    async fn heartbeat(&self, p: HeartbeatParams) -> Result<Vec<Lease>, Error> {
        match self.write(Op::Heartbeat(p)).await? {
            Reply::Renewed(leases) => Ok(leases),
            other => Err(unexpected(other)),
        }
    }

    async fn release_tasks(&self, p: ReleaseTasksParams) -> Result<u64, Error> {
        match self.write(Op::Release(p)).await? {
            Reply::Released(n) => Ok(n),
            other => Err(unexpected(other)),
        }
    }

    async fn next_run_at(&self, p: NextRunAtParams) -> Result<Option<Duration>, Error> {
        read!(self, |tx| ops::read::next_run_at(&mut tx, &p))
    }

    async fn get_execution(&self, id: &str) -> Result<Option<Execution>, Error> {
        read!(self, |tx| ops::read::get_execution(&mut tx, id))
    }

    async fn prune(&self, p: PruneParams) -> Result<PruneOutcome, Error> {
        p.check()?;
        if p.dry_run {
            return read!(self, timed, |tx| ops::prune::count(&mut tx, &p));
        }
        match self.write(Op::Prune(p)).await? {
            Reply::Pruned(outcome) => Ok(outcome),
            other => Err(unexpected(other)),
        }
    }

    async fn upsert_schedule(&self, schedule: Schedule) -> Result<bool, Error> {
        match self.write(Op::UpsertSchedule(schedule)).await? {
            Reply::Upserted(new) => Ok(new),
            other => Err(unexpected(other)),
        }
    }

    async fn pause_schedule(&self, id: &str, paused: bool) -> Result<(), Error> {
        self.write(Op::PauseSchedule(id.to_owned(), paused))
            .await
            .map(|_| ())
    }

    async fn delete_schedule(&self, id: &str) -> Result<bool, Error> {
        match self.write(Op::DeleteSchedule(id.to_owned())).await? {
            Reply::Deleted(deleted) => Ok(deleted),
            other => Err(unexpected(other)),
        }
    }

    async fn list_schedules(&self) -> Result<Vec<ScheduleRow>, Error> {
        read!(self, |tx| ops::schedules::list_schedules(&mut tx))
    }

    async fn claim_schedules(&self, p: ClaimSchedulesParams) -> Result<Vec<DueSchedule>, Error> {
        match self.write(Op::ClaimSchedules(p)).await? {
            Reply::SchedulesClaimed(due) => Ok(due),
            other => Err(unexpected(other)),
        }
    }

    async fn fire_schedule(&self, p: FireScheduleParams) -> Result<FireOutcome, Error> {
        match self.write(Op::FireSchedule(p)).await? {
            Reply::Fired(outcome) => Ok(outcome),
            other => Err(unexpected(other)),
        }
    }

    async fn next_schedule_at(&self, p: NextRunAtParams) -> Result<Option<Duration>, Error> {
        read!(self, timed, |tx| ops::schedules::next_schedule_at(
            &mut tx, &p
        ))
    }

    async fn set_queue_limits(
        &self,
        queue: &str,
        limits: Option<QueueLimits>,
    ) -> Result<bool, Error> {
        match self
            .write(Op::SetQueueLimits(queue.to_owned(), limits))
            .await?
        {
            Reply::LimitsSet(limited) => Ok(limited),
            other => Err(unexpected(other)),
        }
    }

    async fn list_queue_limits(&self) -> Result<Vec<QueueLimitsRow>, Error> {
        read!(self, timed, |tx| ops::queues::list_queue_limits(&mut tx))
    }

    async fn get_state(&self, id: &str) -> Result<Vec<zart::scheduler::StateValue>, Error> {
        read!(self, |tx| ops::read::get_state(&mut tx, id))
    }

    async fn record_presence(
        &self,
        presence: &zart::presence::WorkerPresence,
    ) -> Result<(), Error> {
        self.write(Op::WorkerSeen(presence.clone()))
            .await
            .map(|_| ())
    }

    async fn record_departure(&self, worker_id: &str) -> Result<bool, Error> {
        match self.write(Op::WorkerGone(worker_id.to_owned())).await? {
            Reply::Departed(was_running) => Ok(was_running),
            other => Err(unexpected(other)),
        }
    }

    async fn begin_step_tx(&self) -> Result<Box<dyn zart::scheduler::StepTransaction>, Error> {
        step_tx::begin(&self.pool, &self.step_slots, &self.settings).await
    }

    fn subscribe(&self) -> broadcast::Receiver<Wakeup> {
        let rx = self.wakeups.subscribe();
        if tokio::runtime::Handle::try_current().is_ok() {
            self.poller.get_or_init(|| {
                Poller::start(
                    Arc::new(wakeups::ChangeCounterProbe::new(self.pool.clone())),
                    self.poll_settings,
                    self.wakeups.clone(),
                )
            });
        }
        rx
    }
}
