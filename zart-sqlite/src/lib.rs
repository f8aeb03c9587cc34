//! Embedded SQLite backend for Zart: [`SqliteScheduler`] implements [`zart::Scheduler`] on one
//! database file, for development, tests and single-machine deployments.
//!
//! # Why rusqlite, bundled
//!
//! The driver is [`rusqlite`] with its `bundled` feature: SQLite is compiled into this crate,
//! so no system library is needed and every build runs the same SQLite. rusqlite is
//! well-kept and synchronous, which gives full control of transactions (`BEGIN IMMEDIATE`)
//! and pragmas; async comes from a writer thread of its own for writes and tokio's blocking
//! pool for reads, with one writer at a time.
//!
//! # How it works
//!
//! - **One writer.** Every write, claims included, goes through one
//!   [`zart::group_commit::Batcher`] to the single write connection: what queues while a
//!   transaction is in flight is written in the next one. An operation that is refused (a
//!   lost lease, a conflict) writes nothing and gets its error while the others commit; if
//!   one fails after writing, the batch rolls back and its operations are written one by one.
//!   A lone write on an idle scheduler runs on the caller's thread instead (multi-threaded
//!   tokio only). Claims never conflict within a process; across processes on one file,
//!   `BEGIN IMMEDIATE` plus a busy timeout (5 s) serialises writers.
//! - **Reads** (`get_execution`, `next_run_at`, `list_schedules`, `next_schedule_at`,
//!   `list_queue_limits`, `check_schema`, the [`zart::admin::Admin`] reads, a dry-run prune)
//!   use a small pool of read connections; under WAL they never wait for the writer.
//! - **Durability.** `journal_mode=WAL`, `synchronous=FULL` by default: a committed call
//!   survives a power loss, except a batch of claims and heartbeats only, which commits
//!   without waiting for the disk (a lease lost to a power cut is claimed again; nothing
//!   written under it can outlive it). [`Synchronous::Normal`] is faster; a power loss (not a
//!   process crash) may then lose the last commits, but never corrupts the database.
//! - **Priorities, queue limits and start keys** as in zart-pg (`zart_pick_tasks`,
//!   `zart_start_key`): the writer runs one operation at a time, so they need no row locks.
//! - **Fencing** as in zart-pg: each claim draws a random 62-bit fence; fenced writes check the
//!   fence and that the lease is still held. [`zart::scheduler::Lease::backend_key`] is 0.
//! - **Time** is the system clock, plus the `zart_clock` offset when built with a test clock
//!   ([`SqliteOptions::test_clock`]), read inside each transaction.
//! - **Wake-ups**: this process's writes wake its workers and `wait()` calls at once (sent
//!   after commit); writes of other processes are seen by polling `PRAGMA data_version` (see
//!   [`SqliteScheduler::poll_count`]).
//! - **Statement counts** (off by default): with [`SqliteOptions::count_statements`],
//!   [`SqliteScheduler::statement_counts`] reports the statements the write and read
//!   connections ran (an SQLite trace hook).
//! - **Tables** have the names and columns of zart-pg's where the types allow (JSON as text,
//!   times as ISO-8601 UTC text), so `sqlite3 zart.db "select * from zart_executions"` reads
//!   well. There is no `bucket` and no tenancy.
//!
//! What it cannot offer: workers on more than one machine (one file, one host), and concurrent
//! writers (they are serialised).
//!
//! ```no_run
//! use std::sync::Arc;
//! use zart_sqlite::SqliteScheduler;
//!
//! # async fn example() -> Result<(), zart::Error> {
//! zart_sqlite::migrate("sqlite://zart.db").await?;
//! let scheduler = Arc::new(SqliteScheduler::connect("sqlite://zart.db").await?);
//! # Ok(()) }
//! ```

pub mod clock;
mod counting;
mod errors;
mod ops;
mod pool;
pub mod queries;
mod schema;
pub mod url;
mod wakeups;
mod writer;

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::Connection;
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
use zart::wakeups::Poller;
use zart::{Error, Execution, Scheduler};

pub use counting::StatementCounts;
pub use schema::{migrate, Migration, MigrationReport, MIGRATIONS, SCHEMA_VERSION};
pub use url::Location;
pub use wakeups::POLL_SETTINGS;

use counting::Counters;
use errors::internal;
use pool::ReadPool;
use writer::{Op, Reply, Writer};

/// How many wake-ups a slow subscriber may fall behind before it is told to resync.
const WAKEUP_BUFFER: usize = 4096;

/// How durable a commit is (`PRAGMA synchronous`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// Every commit is on disk before the call returns (the default), except a batch of
    /// claims and heartbeats only, whose loss in a power cut is harmless (see the crate docs).
    #[default]
    Full,
    /// Faster commits; a power loss or OS crash may lose the last commits (never corrupt the
    /// database). A process crash loses nothing.
    Normal,
}

/// Settings of a [`SqliteScheduler`].
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    synchronous: Synchronous,
    max_payload_bytes: usize,
    test_clock: bool,
    read_connections: usize,
    busy_timeout: Duration,
    max_batch: usize,
    count_statements: bool,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            synchronous: Synchronous::Full,
            max_payload_bytes: zart::limits::DEFAULT_MAX_PAYLOAD_BYTES,
            test_clock: false,
            read_connections: 4,
            busy_timeout: Duration::from_secs(5),
            max_batch: DEFAULT_MAX_BATCH,
            count_statements: false,
        }
    }
}

impl SqliteOptions {
    /// The durability of commits (default [`Synchronous::Full`]).
    pub fn synchronous(mut self, synchronous: Synchronous) -> Self {
        self.synchronous = synchronous;
        self
    }

    /// The largest JSON text stored for an input, output, error or event payload (default
    /// 1 MiB); larger ones are refused with [`Error::InvalidInput`] naming the field.
    pub fn max_payload_bytes(mut self, bytes: usize) -> Self {
        self.max_payload_bytes = bytes;
        self
    }

    /// Adds the offset in `zart_clock` to the system time, so tests can move time forward
    /// ([`SqliteScheduler::advance_test_clock`]). Off by default.
    pub fn test_clock(mut self, on: bool) -> Self {
        self.test_clock = on;
        self
    }

    /// How many read connections to open (default 4, at least 1).
    pub fn read_connections(mut self, n: usize) -> Self {
        self.read_connections = n.max(1);
        self
    }

    /// How long a connection waits for another process's write lock (default 5 s).
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// Counts the statements the write and read connections run, for
    /// [`SqliteScheduler::statement_counts`] (off by default: each statement then calls an
    /// SQLite trace hook, a small cost per statement).
    pub fn count_statements(mut self, on: bool) -> Self {
        self.count_statements = on;
        self
    }
}

/// What every operation needs to know about the scheduler's settings.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) test_clock: bool,
    pub(crate) max_payload_bytes: usize,
    /// Commits wait for the disk (`synchronous=FULL`); lease-only batches then relax it.
    pub(crate) full_sync: bool,
}

/// The SQLite [`Scheduler`].
pub struct SqliteScheduler {
    location: Location,
    writer: Batcher<Arc<Op>, Reply>,
    /// The same writer, for a lone write on the caller's thread (see `write`).
    inline_writer: Writer,
    reads: ReadPool,
    settings: Settings,
    wakeups: broadcast::Sender<Wakeup>,
    probe: Option<Arc<Mutex<Connection>>>,
    poller: OnceLock<Poller>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for SqliteScheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteScheduler")
            .field("database", &self.location.display())
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// The connections a scheduler opens.
struct Opened {
    writer: Arc<Mutex<Connection>>,
    readers: Vec<Arc<Mutex<Connection>>>,
    probe: Option<Arc<Mutex<Connection>>>,
}

fn open(location: &Location, options: &SqliteOptions) -> Result<Opened, Error> {
    let memory = location.is_memory();
    let writer = location.open(memory, options.busy_timeout)?;
    pool::configure_writer(&writer, options)?;
    if options.count_statements {
        counting::hook(&writer);
    }
    if memory {
        // Nothing else can reach a private in-memory database: create its schema now.
        schema::migrate_connection(&writer)?;
    } else {
        schema::check(&writer)?;
    }
    let writer = Arc::new(Mutex::new(writer));
    if memory {
        // One connection for everything: shared-cache connections lock tables against each
        // other rather than reading snapshots, and no other process can write.
        return Ok(Opened {
            readers: vec![writer.clone()],
            writer,
            probe: None,
        });
    }
    let reader = || -> Result<Arc<Mutex<Connection>>, Error> {
        let conn = location.open(false, options.busy_timeout)?;
        pool::configure_reader(&conn)?;
        Ok(Arc::new(Mutex::new(conn)))
    };
    let hooked_reader = || -> Result<Arc<Mutex<Connection>>, Error> {
        let conn = reader()?;
        if options.count_statements {
            counting::hook(&writer::lock(&conn));
        }
        Ok(conn)
    };
    let readers = (0..options.read_connections.max(1))
        .map(|_| hooked_reader())
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Opened {
        writer,
        readers,
        probe: Some(reader()?),
    })
}

impl SqliteScheduler {
    /// Opens the database at `url` with default options; see [`SqliteScheduler::connect_with`].
    ///
    /// # Errors
    /// As [`SqliteScheduler::connect_with`].
    pub async fn connect(url: &str) -> Result<Self, Error> {
        Self::connect_with(url, SqliteOptions::default()).await
    }

    /// Opens the database at `url`: `sqlite://relative/path.db`, `sqlite:///absolute/path.db`,
    /// or `sqlite::memory:` (a new private database, migrated at once, gone with the
    /// scheduler). A file must exist and be migrated (`zart migrate`).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a URL that is not `sqlite:`; [`Error::Schema`] when the file
    /// does not exist, is not migrated, or was migrated by a newer Zart; [`Error::Database`]
    /// naming the path for a missing directory, a read-only file or one that is not a
    /// database; [`Error::Contention`] when another program keeps it locked past the busy
    /// timeout.
    ///
    /// # Examples
    /// ```no_run
    /// use zart_sqlite::{SqliteOptions, SqliteScheduler, Synchronous};
    /// # async fn example() -> Result<(), zart::Error> {
    /// let scheduler = SqliteScheduler::connect_with(
    ///     "sqlite:///var/lib/app/zart.db",
    ///     SqliteOptions::default().synchronous(Synchronous::Normal),
    /// )
    /// .await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect_with(url: &str, options: SqliteOptions) -> Result<Self, Error> {
        let location = Location::parse(url)?;
        let opened = {
            let (location, options) = (location.clone(), options.clone());
            tokio::task::spawn_blocking(move || open(&location, &options))
                .await
                .map_err(|e| internal(format!("opening the database failed: {e}")))??
        };
        let settings = Settings {
            test_clock: options.test_clock,
            max_payload_bytes: options.max_payload_bytes,
            full_sync: options.synchronous == Synchronous::Full,
        };
        let (wakeups, _) = broadcast::channel(WAKEUP_BUFFER);
        let counters = Arc::new(Counters::default());
        let writer = Writer::new(
            opened.writer,
            settings.clone(),
            wakeups.clone(),
            counters.clone(),
        );
        Ok(SqliteScheduler {
            location,
            inline_writer: writer.clone(),
            writer: Batcher::start_blocking("sqlite", writer, options.max_batch)?,
            reads: ReadPool::new(opened.readers, counters.clone()),
            settings,
            wakeups,
            probe: opened.probe,
            poller: OnceLock::new(),
            counters,
        })
    }

    /// Where the database is.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// How many times the cross-process change probe (`PRAGMA data_version`) has been read
    /// since the first [`Scheduler::subscribe`]; 0 before it, and for in-memory databases,
    /// which have no other process to watch.
    pub fn poll_count(&self) -> u64 {
        self.poller.get().map_or(0, Poller::polls)
    }

    /// How many statements this scheduler's write and read connections have run since it was
    /// opened, on Zart's tables and otherwise (transaction control, pragmas); all zero unless
    /// built with [`SqliteOptions::count_statements`]. The `data_version` probe is not
    /// counted here: see [`SqliteScheduler::poll_count`].
    pub fn statement_counts(&self) -> StatementCounts {
        self.counters.get()
    }

    /// Moves the test clock forward by `by` for every connection and process using this
    /// database, and tells every worker to look for due work.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] unless the scheduler was built with
    /// [`SqliteOptions::test_clock`]; the database errors of every write.
    pub async fn advance_test_clock(&self, by: Duration) -> Result<(), Error> {
        self.write(Op::AdvanceClock(by)).await.map(|_| ())
    }

    /// Closes the database: writes what is already queued, stops watching for other
    /// processes' changes, and closes every connection. The last connection to a file folds
    /// the write-ahead log back into it and removes the `-wal` and `-shm` files, so the file
    /// can then be copied, moved or deleted on its own. Dropping the scheduler instead closes
    /// its connections in the background, abandoning queued writes. A scheduler shared in an
    /// `Arc` is closed with `Arc::into_inner(scheduler)` once the workers using it have
    /// stopped.
    pub async fn close(self) {
        let SqliteScheduler {
            writer,
            inline_writer,
            reads,
            probe,
            mut poller,
            ..
        } = self;
        writer.close().await;
        if let Some(poller) = poller.take() {
            poller.stop().await;
        }
        drop((inline_writer, reads, probe));
    }

    /// Writes `op`: through the group-commit writer, or, when nothing is queued or being
    /// written and the runtime can lend this thread (multi-threaded tokio), right here in a
    /// transaction of its own. A lone write on an idle scheduler (a start, the claim that
    /// picks it up) then costs its commit and no hand-off to the writer thread and back; under
    /// load the writer is busy and writes keep sharing commits.
    async fn write(&self, op: Op) -> Result<Reply, Error> {
        if can_block_in_place() {
            let alone = self.writer.write_alone(|| {
                tokio::task::block_in_place(|| self.inline_writer.try_write_one(&op))
            });
            if let Some(answer) = alone {
                return answer;
            }
        }
        self.writer.submit(Arc::new(op)).await
    }
}

/// Whether this thread runs a multi-threaded tokio runtime, where `block_in_place` may lend
/// it to blocking work.
fn can_block_in_place() -> bool {
    tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
}

fn unexpected(reply: Reply) -> Error {
    internal(format!(
        "the SQLite writer answered {reply:?} to another call"
    ))
}

#[async_trait]
impl zart::audit::AuditLog for SqliteScheduler {
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
        self.reads
            .read(move |conn| ops::audit::list_audit(conn, before, limit))
            .await
    }
}

#[async_trait]
impl zart::admin::Admin for SqliteScheduler {
    async fn list_executions(
        &self,
        params: zart::admin::ListExecutionsParams,
    ) -> Result<zart::admin::ExecutionPage, Error> {
        self.reads
            .read(move |conn| ops::admin::list_executions(conn, &params))
            .await
    }

    async fn describe_execution(
        &self,
        id: &str,
    ) -> Result<Option<zart::admin::ExecutionDetail>, Error> {
        let id = id.to_owned();
        let settings = self.settings.clone();
        self.reads
            .read(move |conn| ops::admin::describe_execution(conn, &settings, &id))
            .await
    }

    async fn queue_stats(&self) -> Result<Vec<zart::admin::QueueStats>, Error> {
        let settings = self.settings.clone();
        self.reads
            .read(move |conn| ops::admin::queue_stats(conn, &settings))
            .await
    }

    async fn list_workers(&self) -> Result<zart::presence::WorkersSeen, Error> {
        let settings = self.settings.clone();
        self.reads
            .read(move |conn| ops::audit::list_workers(conn, &settings))
            .await
    }
}

#[async_trait]
impl Scheduler for SqliteScheduler {
    async fn check_schema(&self) -> Result<(), Error> {
        self.reads.read(schema::check).await
    }

    async fn start_execution(&self, p: StartExecutionParams) -> Result<StartOutcome, Error> {
        match self.write(Op::Start(p)).await? {
            Reply::Started(outcome) => Ok(outcome),
            other => Err(unexpected(other)),
        }
    }

    async fn claim_tasks(&self, p: ClaimTasksParams) -> Result<Vec<ClaimedTask>, Error> {
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
        let settings = self.settings.clone();
        self.reads
            .read(move |conn| ops::read::next_run_at(conn, &settings, &p))
            .await
    }

    async fn get_execution(&self, id: &str) -> Result<Option<Execution>, Error> {
        let id = id.to_owned();
        self.reads
            .read(move |conn| ops::read::get_execution(conn, &id))
            .await
    }

    async fn prune(&self, p: PruneParams) -> Result<PruneOutcome, Error> {
        p.check()?;
        if p.dry_run {
            let settings = self.settings.clone();
            return self
                .reads
                .read(move |conn| ops::prune::count(conn, &settings, &p))
                .await;
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
        self.reads.read(ops::schedules::list_schedules).await
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
        let settings = self.settings.clone();
        self.reads
            .read(move |conn| ops::schedules::next_schedule_at(conn, &settings, &p))
            .await
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
        let settings = self.settings.clone();
        self.reads
            .read(move |conn| ops::queues::list_queue_limits(conn, &settings))
            .await
    }

    async fn get_state(&self, id: &str) -> Result<Vec<zart::scheduler::StateValue>, Error> {
        let id = id.to_owned();
        self.reads
            .read(move |conn| ops::read::get_state(conn, &id))
            .await
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
        Err(Error::Unsupported {
            feature: "ctx.step_tx".to_owned(),
            backend: "sqlite".to_owned(),
            hint: "a step cannot share a transaction with your writes here (the engine's file \
                   has one writer, the worker's own connection); use ctx.step and make its \
                   effect idempotent, or run on PostgreSQL (zart-pg)"
                .to_owned(),
        })
    }

    fn subscribe(&self) -> broadcast::Receiver<Wakeup> {
        let rx = self.wakeups.subscribe();
        if let Some(probe) = &self.probe {
            if tokio::runtime::Handle::try_current().is_ok() {
                self.poller.get_or_init(|| {
                    Poller::start(
                        Arc::new(wakeups::DataVersionProbe::new(probe.clone())),
                        POLL_SETTINGS,
                        self.wakeups.clone(),
                    )
                });
            }
        }
        rx
    }
}
