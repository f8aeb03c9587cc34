//! PostgreSQL backend for Zart: [`PostgresScheduler`] implements [`zart::Scheduler`] with one
//! stored-procedure round trip per call.
//!
//! - Every call is one unnamed statement (`query_typed`): no prepare round trip, a fresh plan.
//! - Claims use `FOR UPDATE SKIP LOCKED` and return the input and recorded steps with the claim.
//! - Writes for a claimed execution are fenced by its token; a stale one fails with SQLSTATE
//!   `ZA002`, mapped to [`zart::Error::LeaseLost`].
//! - Wake-ups travel by LISTEN/NOTIFY on a dedicated connection, which may go to another
//!   address than the pool ([`PgPool::with_listen_url`], for pools behind a transaction-mode
//!   pooler) and checks at start that notifications arrive; the Rust paths send their NOTIFYs
//!   after commit, batched (see `notifier`).
//! - Every connection (pool, LISTEN, migrate) uses the TLS of the URL's `sslmode` and
//!   `sslrootcert`, checked as libpq checks them (see [`Tls`] and `docs/tls.md`).
//!
//! ```no_run
//! use std::sync::Arc;
//! use zart_pg::{PgPool, PostgresScheduler};
//!
//! # async fn example() -> Result<(), zart::Error> {
//! let pool = PgPool::connect("postgres://postgres@127.0.0.1/app").await?;
//! zart_pg::migrate(&pool).await?;
//! let scheduler = Arc::new(PostgresScheduler::new(pool));
//! # Ok(()) }
//! ```

pub mod admin;
mod audit;
/// The guide to `ctx.step_tx` (docs/reference/step-tx.md in the repository), included here
/// so its examples compile against this crate.
#[doc = include_str!("../../docs/reference/step-tx.md")]
pub mod step_tx_guide {}
mod citus;
pub mod doctor;
mod errors;
mod group_commit;
mod listener;
mod migrate;
mod notifier;
mod pool;
pub mod queries;
mod queues;
mod schedules;
mod step_tx;
mod tls;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use postgres_types::{ToSql, Type};
use tokio::sync::broadcast;
use tracing::Instrument;
use zart::scheduler::{
    AwaitEventParams, ChildWait, ClaimTasksParams, ClaimedTask, CommitStepParams,
    CompleteExecutionParams, EventWait, HeartbeatParams, Lease, NextRunAtParams, PruneOutcome,
    PruneParams, RecordedStep, ReleaseTasksParams, RetryStepParams, SendEventParams, SleepParams,
    StartChildParams, StartChildrenParams, StartExecutionParams, StartOutcome, WakeAt, Wakeup,
};
use zart::{Error, ErrorRecord, Execution, ExecutionStatus, Scheduler};

pub use errors::sqlstate;
pub use listener::PROBE_TIMEOUT;
pub use migrate::{
    migrate, migration_names, migration_plan, MigrateTarget, MigrationPlan, MigrationReport,
    PendingMigration, CITUS_SQL, FUNCTIONS_SQL, HISTORY_TABLE, REQUIRED_SCHEMA_VERSION, ROLES_SQL,
};
pub use pool::{PgPool, DEFAULT_POOL_SIZE, DEFAULT_WAIT_TIMEOUT, LISTEN_URL_ENV};
pub use step_tx::StepTx;
pub use tls::{split_url, SslMode, Tls};
/// The driver [`StepTx`] dereferences to, re-exported so a body's statements name the same
/// version (`zart_pg::tokio_postgres::types::ToSql`).
pub use tokio_postgres;

use errors::{from_pg, from_pool, Call};

/// How many wake-ups a slow subscriber may fall behind before it is told to resync.
const WAKEUP_BUFFER: usize = 4096;

/// The PostgreSQL [`Scheduler`].
pub struct PostgresScheduler {
    pool: PgPool,
    wakeups: broadcast::Sender<Wakeup>,
    listener: OnceLock<listener::Listener>,
    listen_health: listener::ListenHealth,
    notifier: OnceLock<notifier::Notifier>,
    group_commit: OnceLock<group_commit::GroupCommit>,
    /// Room for `ctx.step_tx` transactions: half the pool (see `step_tx`).
    step_tx_slots: Arc<tokio::sync::Semaphore>,
    /// Set while a write NOTIFYs inside its own statement (see [`InlineNotify`]).
    inline_notify: AtomicBool,
    /// The free slots of this process's workers on this scheduler (in-process hand-off).
    handoffs: Arc<zart::handoff::Handoffs>,
    /// On Citus, the shards claims walk (read on first use; empty on plain PostgreSQL).
    shards: Arc<citus::ShardMap>,
}

/// Held by the one write at a time that NOTIFYs inside its own statement.
struct InlineNotify<'a>(&'a AtomicBool);

impl Drop for InlineNotify<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl std::fmt::Debug for PostgresScheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresScheduler")
            .field("pool", &self.pool)
            .field("listening", &self.listener.get().is_some())
            .finish()
    }
}

impl PostgresScheduler {
    /// A scheduler over `pool`. Nothing is connected until first use; the listener and the
    /// notification sender start on the first call made inside a tokio runtime.
    pub fn new(pool: PgPool) -> Self {
        let (wakeups, _) = broadcast::channel(WAKEUP_BUFFER);
        let shards = Arc::new(citus::ShardMap::new(pool.pool().clone()));
        let step_tx_slots = Arc::new(tokio::sync::Semaphore::new(step_tx::slots_for(
            pool.pool().status().max_size,
        )));
        PostgresScheduler {
            pool,
            step_tx_slots,
            wakeups,
            listener: OnceLock::new(),
            listen_health: listener::ListenHealth::default(),
            notifier: OnceLock::new(),
            inline_notify: AtomicBool::new(false),
            group_commit: OnceLock::new(),
            handoffs: Arc::default(),
            shards,
        }
    }

    /// Connects to `url` with a default pool; see [`PgPool::connect`].
    ///
    /// # Errors
    /// As [`PgPool::connect`].
    pub async fn connect(url: &str) -> Result<Self, Error> {
        Ok(PostgresScheduler::new(PgPool::connect(url).await?))
    }

    /// The pool, for your own queries.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Whether notifications reach this scheduler's LISTEN connection: `Some(true)` when the
    /// probe it sends through the pool each time LISTEN takes effect came back, `Some(false)`
    /// when it did not within [`PROBE_TIMEOUT`] (a transaction-mode pooler in the way: see
    /// [`PgPool::with_listen_url`]; a warning was logged), `None` before the first probe
    /// ended or when it could not be sent. The listener starts on the first `subscribe()`.
    pub fn notifications_delivered(&self) -> Option<bool> {
        self.listen_health.delivered()
    }

    /// Lets a write NOTIFY inside its own statement if it is alone: no after-commit wake-up is
    /// queued or in flight (see the notifier module) and no other write of this process is
    /// notifying inline. Overlapping writes get `None` and use the after-commit path, so they
    /// never queue on NOTIFY's commit lock.
    fn notify_inline(&self) -> Option<InlineNotify<'_>> {
        if !self.notifier.get().is_none_or(notifier::Notifier::is_idle) {
            return None;
        }
        self.inline_notify
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| InlineNotify(&self.inline_notify))
    }

    /// Queues a NOTIFY to be sent after the commit that just happened.
    fn notify_after_commit(&self, channel: &'static str, payload: &str) {
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        self.notifier
            .get_or_init(|| notifier::Notifier::start(self.pool.pool().clone()))
            .notify(channel, payload.to_owned());
    }

    /// The group-commit writer, started on first use (always inside the runtime: only async
    /// methods call it).
    fn group_commit(&self) -> &group_commit::GroupCommit {
        self.group_commit.get_or_init(|| {
            group_commit::GroupCommit::start(self.pool.pool().clone(), self.shards.clone())
        })
    }

    /// The shards a claim walks: none on plain PostgreSQL (see [`citus`]).
    async fn shards(&self) -> Result<&citus::Shards, Error> {
        self.shards.get().await
    }

    /// How long until the time a `(queue, task names)` function returns as milliseconds
    /// (`zart_next_run_at`, `zart_next_schedule_at`); `None` for null.
    pub(crate) async fn due_in(
        &self,
        sql: &str,
        p: &NextRunAtParams,
        call: Call<'_>,
    ) -> Result<Option<Duration>, Error> {
        let rows = self
            .query(
                sql,
                &[(&p.queue, Type::TEXT), (&p.task_names, Type::TEXT_ARRAY)],
                call,
            )
            .await?;
        let ms: Option<i64> = first_value(&rows, call)?;
        Ok(ms.map(ms_to_duration))
    }

    /// Runs one of the start statements ([`queries::START_EXECUTION`] and its variants): with
    /// `claim`, the hand-off's, which also returns the task it leased.
    async fn start(
        &self,
        sql: &str,
        p: &StartExecutionParams,
        claim: Option<&zart::handoff::HandoffClaim>,
    ) -> Result<(StartOutcome, Option<ClaimedTask>), Error> {
        let call = Call::execution("start", &p.id);
        let (start_after, start_at) = match p.start {
            None => (None, None),
            Some(WakeAt::After(delay)) => (Some(millis(delay)), None),
            Some(WakeAt::At(at)) => (None, Some(at)),
        };
        let (start_key, start_key_ms, debounce) = match &p.start_key {
            Some(k) => (Some(k.key.as_str()), Some(millis(k.window)), k.debounce),
            None => (None, None, false),
        };
        let deadline = p.deadline.map(millis);
        let worker_id = claim.map(|c| c.worker_id.as_str());
        let lease_ms = claim.map(|c| millis(c.lease));
        let mut params: Vec<(&(dyn ToSql + Sync), Type)> = vec![
            (&p.id, Type::TEXT),
            (&p.task_name, Type::TEXT),
            (&p.input, Type::JSONB),
            (&p.queue, Type::TEXT),
            (&p.parent_id, Type::TEXT),
            (&deadline, Type::INT8),
            (&start_after, Type::INT8),
            (&start_at, Type::TIMESTAMPTZ),
            (&p.priority, Type::INT2),
            (&p.limit_key, Type::TEXT),
            (&start_key, Type::TEXT),
            (&start_key_ms, Type::INT8),
            (&debounce, Type::BOOL),
        ];
        if claim.is_some() {
            params.push((&worker_id, Type::TEXT));
            params.push((&lease_ms, Type::INT8));
        }
        let rows = self.query(sql, &params, call).await?;
        let row = rows.first().ok_or_else(|| Error::Database {
            message: "zart_start_execution returned no row".to_owned(),
            source: None,
        })?;
        let get_err = |e| from_pg(e, call);
        let created: bool = row.try_get(0).map_err(get_err)?;
        let status: String = row.try_get(1).map_err(get_err)?;
        let id: String = row.try_get(2).map_err(get_err)?;
        let leased = match claim {
            Some(_)
                if row
                    .try_get::<_, Option<i64>>("fence")
                    .map_err(get_err)?
                    .is_some() =>
            {
                Some(claimed_task(row)?)
            }
            _ => None,
        };
        let outcome = StartOutcome {
            created,
            status: ExecutionStatus::parse(&status)?,
            id,
        };
        Ok((outcome, leased))
    }

    async fn query(
        &self,
        sql: &str,
        params: &[(&(dyn ToSql + Sync), Type)],
        call: Call<'_>,
    ) -> Result<Vec<tokio_postgres::Row>, Error> {
        query(self.pool.pool(), sql, params, call).await
    }

    /// `leases` as the arrays the lease functions take: one set, or on Citus one per shard
    /// (a statement stays on one shard).
    async fn lease_groups(&self, leases: &[Lease]) -> Result<Vec<LeaseArrays>, Error> {
        let shards = self.shards().await?;
        if !shards.distributed() {
            return Ok(vec![lease_arrays(leases)?]);
        }
        citus::split(shards, leases, bucket_of)?
            .into_iter()
            .map(|(_, part)| lease_arrays(&part))
            .collect()
    }

    /// One `zart_claim_tasks` of up to `limit` tasks, within `buckets` when given.
    async fn claim_in(
        &self,
        p: &ClaimTasksParams,
        limit: u32,
        buckets: Option<&[i16]>,
    ) -> Result<Vec<ClaimedTask>, Error> {
        let call = Call::new("claim");
        let limit = int4(limit);
        let rows = self
            .query(
                queries::CLAIM_TASKS,
                &[
                    (&p.worker_id, Type::TEXT),
                    (&p.queue, Type::TEXT),
                    (&p.task_names, Type::TEXT_ARRAY),
                    (&limit, Type::INT4),
                    (&millis(p.lease), Type::INT8),
                    (&p.oldest_first, Type::BOOL),
                    (&buckets, citus::BUCKETS),
                ],
                call,
            )
            .await?;
        rows.iter().map(claimed_task).collect()
    }
}

/// A row of `zart_claim_tasks` (or `zart_claim_started`'s columns) as a claimed task.
fn claimed_task(row: &tokio_postgres::Row) -> Result<ClaimedTask, Error> {
    let get_err = |e| row_error(e, "reading a claimed task");
    let execution_id: String = row.try_get("execution_id").map_err(get_err)?;
    let attempts: i32 = row.try_get("attempts").map_err(get_err)?;
    let steps: serde_json::Value = row.try_get("steps").map_err(get_err)?;
    let steps: Vec<RecordedStep> =
        serde_json::from_value(steps).map_err(|source| Error::Serialization {
            action: "deserialize",
            what: format!("the recorded steps of execution {execution_id:?}"),
            source,
        })?;
    Ok(ClaimedTask {
        lease: Lease {
            backend_key: i64::from(row.try_get::<_, i16>("bucket").map_err(get_err)?),
            execution_id,
            fence: row.try_get("fence").map_err(get_err)?,
        },
        task_name: row.try_get("task_name").map_err(get_err)?,
        queue: row.try_get("queue").map_err(get_err)?,
        parent_id: row.try_get("parent_id").map_err(get_err)?,
        attempts: u32::try_from(attempts).unwrap_or(0),
        recoveries: u32::try_from(row.try_get::<_, i32>("recoveries").map_err(get_err)?)
            .unwrap_or(0),
        input: row.try_get("input").map_err(get_err)?,
        deadline_in: row
            .try_get::<_, Option<i64>>("deadline_in_ms")
            .map_err(get_err)?
            .map(|ms| ms_to_duration(ms.max(0))),
        steps,
    })
}

/// A row of `zart_start_child` or `zart_start_children` (state, created, child_status, output,
/// error): what it says of the child, and whether it was created.
fn child_wait(row: &tokio_postgres::Row, call: Call<'_>) -> Result<(ChildWait, bool), Error> {
    let get_err = |e| from_pg(e, call);
    let created: bool = row.try_get("created").map_err(get_err)?;
    let state: String = row.try_get("state").map_err(get_err)?;
    let wait = match state.as_str() {
        "finished" => {
            let status: String = row.try_get("child_status").map_err(get_err)?;
            let error: Option<serde_json::Value> = row.try_get("error").map_err(get_err)?;
            ChildWait::Finished {
                status: ExecutionStatus::parse(&status)?,
                output: row.try_get("output").map_err(get_err)?,
                error: error.map(error_record),
            }
        }
        "detached" => ChildWait::Detached,
        _ => ChildWait::Waiting,
    };
    Ok((wait, created))
}

/// A recorded error as JSON.
pub(crate) fn error_json(error: &ErrorRecord) -> Result<serde_json::Value, Error> {
    to_json(error, "an error record")
}

fn to_json<T: serde::Serialize>(value: &T, what: &str) -> Result<serde_json::Value, Error> {
    serde_json::to_value(value).map_err(|source| Error::Serialization {
        action: "serialize",
        what: what.to_owned(),
        source,
    })
}

/// Runs one unnamed statement (`query_typed`: one round trip) on a pooled connection, in a
/// `zart.pg.query` span (debug level) that names the call, its execution and step, and the
/// batch size for the group-commit batches.
pub(crate) async fn query(
    pool: &deadpool_postgres::Pool,
    sql: &str,
    params: &[(&(dyn ToSql + Sync), Type)],
    call: Call<'_>,
) -> Result<Vec<tokio_postgres::Row>, Error> {
    let span = tracing::debug_span!(
        "zart.pg.query",
        db.operation = call.what,
        execution.id = call.execution_id,
        step.name = call.step,
        batch.size = call.batch,
    );
    async {
        let client = pool.get().await.map_err(|e| from_pool(e, call))?;
        client
            .query_typed(sql, params)
            .await
            .map_err(|e| from_pg(e, call))
    }
    .instrument(span)
    .await
}

/// A count or position as an SQL `integer` (saturating; ours never come near the limit).
pub(crate) fn int4(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The bucket a lease carries as its backend key (the claim put it there).
pub(crate) fn bucket_of(lease: &Lease) -> Result<i16, Error> {
    i16::try_from(lease.backend_key).map_err(|_| {
        Error::invalid(
            "lease",
            format!(
                "backend key {} of execution {:?} is not a zart-pg bucket (a lease from another backend?)",
                lease.backend_key, lease.execution_id
            ),
        )
    })
}

type LeaseArrays = (Vec<i16>, Vec<String>, Vec<i64>);

fn lease_arrays(leases: &[Lease]) -> Result<LeaseArrays, Error> {
    let mut buckets = Vec::with_capacity(leases.len());
    let mut ids = Vec::with_capacity(leases.len());
    let mut fences = Vec::with_capacity(leases.len());
    for l in leases {
        buckets.push(bucket_of(l)?);
        ids.push(l.execution_id.clone());
        fences.push(l.fence);
    }
    Ok((buckets, ids, fences))
}

fn row_error(err: tokio_postgres::Error, what: &'static str) -> Error {
    from_pg(err, Call::new(what))
}

fn no_row(function: &str) -> Error {
    Error::Database {
        message: format!("{function} returned no row"),
        source: None,
    }
}

/// The first column of the first row, for functions that return one value.
pub(crate) fn first_value<'a, T: postgres_types::FromSql<'a>>(
    rows: &'a [tokio_postgres::Row],
    call: Call<'_>,
) -> Result<T, Error> {
    rows.first()
        .ok_or_else(|| no_row(call.what))?
        .try_get(0)
        .map_err(|e| from_pg(e, call))
}

fn ms_to_duration(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// A recorded error, read leniently: a JSON value that is not an [`ErrorRecord`] is kept whole
/// as the message.
fn error_record(value: serde_json::Value) -> ErrorRecord {
    ErrorRecord::from_stored(value)
}

#[async_trait]
impl Scheduler for PostgresScheduler {
    async fn check_schema(&self) -> Result<(), Error> {
        let rows = self
            .query(
                queries::SCHEMA_VERSION,
                &[],
                Call::new("checking the schema"),
            )
            .await?;
        let row = rows.first().ok_or_else(errors::missing_schema)?;
        let get_err = |e| row_error(e, "checking the schema");
        let version: i32 = row.try_get(0).map_err(get_err)?;
        if version < REQUIRED_SCHEMA_VERSION {
            return Err(errors::outdated_schema(version, REQUIRED_SCHEMA_VERSION));
        }
        let standby: bool = row.try_get(1).map_err(get_err)?;
        let read_only: bool = row.try_get(2).map_err(get_err)?;
        if standby || read_only {
            return Err(errors::read_only_database(standby));
        }
        Ok(())
    }

    async fn start_execution(&self, p: StartExecutionParams) -> Result<StartOutcome, Error> {
        let inline = self.notify_inline();
        let sql = if inline.is_some() {
            queries::START_EXECUTION_NOTIFY
        } else {
            queries::START_EXECUTION
        };
        let (outcome, _) = self.start(sql, &p, None).await?;
        if outcome.created && inline.is_none() {
            self.notify_after_commit(queries::CHANNEL_WORK, &p.queue);
        }
        Ok(outcome)
    }

    fn handoffs(&self) -> Option<&Arc<zart::handoff::Handoffs>> {
        Some(&self.handoffs)
    }

    async fn start_handed(
        &self,
        p: StartExecutionParams,
        claim: &zart::handoff::HandoffClaim,
    ) -> Result<(StartOutcome, Option<ClaimedTask>), Error> {
        let (outcome, leased) = self
            .start(queries::START_EXECUTION_HANDED, &p, Some(claim))
            .await?;
        if outcome.created && leased.is_none() {
            self.notify_after_commit(queries::CHANNEL_WORK, &p.queue);
        }
        Ok((outcome, leased))
    }

    async fn claim_tasks(&self, p: ClaimTasksParams) -> Result<Vec<ClaimedTask>, Error> {
        let shards = self.shards().await?;
        if !shards.distributed() {
            return self.claim_in(&p, p.limit, None).await;
        }
        // On Citus: shard by shard, each first in turn, until the slots are full.
        let mut claimed = Vec::new();
        for buckets in shards.in_turn() {
            let left = p
                .limit
                .saturating_sub(u32::try_from(claimed.len()).unwrap_or(u32::MAX));
            if left == 0 {
                break;
            }
            claimed.extend(self.claim_in(&p, left, Some(buckets)).await?);
        }
        Ok(claimed)
    }

    async fn commit_step(&self, p: CommitStepParams) -> Result<(), Error> {
        self.group_commit().commit_step(p).await
    }

    async fn retry_step(&self, p: RetryStepParams) -> Result<(), Error> {
        let call = Call::execution("scheduling a retry", &p.lease.execution_id).step(&p.name);
        let error = to_json(&p.error, "a step error")?;
        let seq = int4(p.seq);
        let attempts = int4(p.attempts);
        self.query(
            queries::RETRY_STEP,
            &[
                (&bucket_of(&p.lease)?, Type::INT2),
                (&p.lease.execution_id, Type::TEXT),
                (&p.lease.fence, Type::INT8),
                (&p.name, Type::TEXT),
                (&seq, Type::INT4),
                (&error, Type::JSONB),
                (&attempts, Type::INT4),
                (&millis(p.delay), Type::INT8),
            ],
            call,
        )
        .await?;
        self.notify_after_commit(queries::CHANNEL_TIMER, &p.queue);
        Ok(())
    }

    async fn complete_execution(&self, p: CompleteExecutionParams) -> Result<(), Error> {
        let execution_id = p.lease.execution_id.clone();
        let parent_queue = self.group_commit().complete(p).await?;
        self.notify_after_commit(queries::CHANNEL_DONE, &execution_id);
        // A parent waiting for this child was made due: wake its workers.
        if let Some(queue) = parent_queue {
            self.notify_after_commit(queries::CHANNEL_WORK, &queue);
        }
        Ok(())
    }

    async fn sleep(&self, p: SleepParams) -> Result<Option<Duration>, Error> {
        let call = Call::execution("sleeping", &p.lease.execution_id).step(&p.name);
        let seq = int4(p.seq);
        let (delay_ms, wake_at) = match p.until {
            WakeAt::After(d) => (Some(millis(d)), None),
            WakeAt::At(t) => (None, Some(t)),
        };
        let rows = self
            .query(
                queries::SLEEP,
                &[
                    (&bucket_of(&p.lease)?, Type::INT2),
                    (&p.lease.execution_id, Type::TEXT),
                    (&p.lease.fence, Type::INT8),
                    (&p.name, Type::TEXT),
                    (&seq, Type::INT4),
                    (&delay_ms, Type::INT8),
                    (&wake_at, Type::TIMESTAMPTZ),
                ],
                call,
            )
            .await?;
        let left: Option<i64> = first_value(&rows, call)?;
        if left.is_some() {
            self.notify_after_commit(queries::CHANNEL_TIMER, &p.queue);
        }
        Ok(left.map(ms_to_duration))
    }

    async fn await_event(&self, p: AwaitEventParams) -> Result<EventWait, Error> {
        let call = Call::execution("waiting for an event", &p.lease.execution_id).step(&p.name);
        let seq = int4(p.seq);
        let timeout_ms = p.timeout.map(millis);
        let rows = self
            .query(
                queries::AWAIT_EVENT,
                &[
                    (&bucket_of(&p.lease)?, Type::INT2),
                    (&p.lease.execution_id, Type::TEXT),
                    (&p.lease.fence, Type::INT8),
                    (&p.name, Type::TEXT),
                    (&seq, Type::INT4),
                    (&p.event_name, Type::TEXT),
                    (&timeout_ms, Type::INT8),
                ],
                call,
            )
            .await?;
        let row = rows.first().ok_or_else(|| no_row("zart_await_event"))?;
        let get_err = |e| from_pg(e, call);
        let state: String = row.try_get("state").map_err(get_err)?;
        Ok(match state.as_str() {
            "received" => EventWait::Received(
                row.try_get::<_, Option<serde_json::Value>>("payload")
                    .map_err(get_err)?
                    .unwrap_or_default(),
            ),
            "timed_out" => EventWait::TimedOut,
            _ => {
                let left: Option<i64> = row.try_get("wake_in_ms").map_err(get_err)?;
                if left.is_some() {
                    self.notify_after_commit(queries::CHANNEL_TIMER, &p.queue);
                }
                EventWait::Waiting {
                    timeout_in: left.map(ms_to_duration),
                }
            }
        })
    }

    async fn send_event(&self, p: SendEventParams) -> Result<(), Error> {
        let call = Call::execution("sending an event", &p.execution_id);
        let inline = self.notify_inline();
        let rows = self
            .query(
                if inline.is_some() {
                    queries::SEND_EVENT_NOTIFY
                } else {
                    queries::SEND_EVENT
                },
                &[
                    (&p.execution_id, Type::TEXT),
                    (&p.name, Type::TEXT),
                    (&p.payload, Type::JSONB),
                ],
                call,
            )
            .await?;
        let woken: Option<String> = first_value(&rows, call)?;
        if let Some(queue) = woken.filter(|_| inline.is_none()) {
            self.notify_after_commit(queries::CHANNEL_WORK, &queue);
        }
        Ok(())
    }

    async fn start_child(&self, p: StartChildParams) -> Result<ChildWait, Error> {
        let call = Call::execution("starting a child", &p.lease.execution_id).step(&p.name);
        let seq = int4(p.seq);
        let rows = self
            .query(
                queries::START_CHILD,
                &[
                    (&bucket_of(&p.lease)?, Type::INT2),
                    (&p.lease.execution_id, Type::TEXT),
                    (&p.lease.fence, Type::INT8),
                    (&p.name, Type::TEXT),
                    (&seq, Type::INT4),
                    (&p.child_id, Type::TEXT),
                    (&p.task_name, Type::TEXT),
                    (&p.input, Type::JSONB),
                    (&p.queue, Type::TEXT),
                    (&p.detached, Type::BOOL),
                ],
                call,
            )
            .await?;
        let row = rows.first().ok_or_else(|| no_row("zart_start_child"))?;
        let (wait, created) = child_wait(row, call)?;
        if created {
            self.notify_after_commit(queries::CHANNEL_WORK, &p.queue);
        }
        Ok(wait)
    }

    async fn start_children(&self, p: StartChildrenParams) -> Result<Vec<ChildWait>, Error> {
        let call = Call::execution("starting children", &p.lease.execution_id);
        let mut names = Vec::with_capacity(p.children.len());
        let mut seqs = Vec::with_capacity(p.children.len());
        let mut ids = Vec::with_capacity(p.children.len());
        let mut tasks = Vec::with_capacity(p.children.len());
        let mut inputs = Vec::with_capacity(p.children.len());
        for child in &p.children {
            names.push(child.name.as_str());
            seqs.push(int4(child.seq));
            ids.push(child.child_id.as_str());
            tasks.push(child.task_name.as_str());
            inputs.push(&child.input);
        }
        let rows = self
            .query(
                queries::START_CHILDREN,
                &[
                    (&bucket_of(&p.lease)?, Type::INT2),
                    (&p.lease.execution_id, Type::TEXT),
                    (&p.lease.fence, Type::INT8),
                    (&names, Type::TEXT_ARRAY),
                    (&seqs, Type::INT4_ARRAY),
                    (&ids, Type::TEXT_ARRAY),
                    (&tasks, Type::TEXT_ARRAY),
                    (&inputs, Type::JSONB_ARRAY),
                    (&p.queue, Type::TEXT),
                    (&p.suspend, Type::BOOL),
                ],
                call,
            )
            .await?;
        let mut waits = Vec::with_capacity(rows.len());
        let mut any_created = false;
        for row in &rows {
            let (wait, created) = child_wait(row, call)?;
            any_created |= created;
            waits.push(wait);
        }
        if any_created {
            self.notify_after_commit(queries::CHANNEL_WORK, &p.queue);
        }
        Ok(waits)
    }

    async fn cancel_execution(&self, id: &str) -> Result<Vec<String>, Error> {
        let call = Call::execution("cancelling", id);
        let rows = self
            .query(queries::CANCEL_EXECUTION, &[(&id, Type::TEXT)], call)
            .await?;
        let mut cancelled = Vec::new();
        for row in &rows {
            let get_err = |e| from_pg(e, call);
            let execution_id: String = row.try_get("execution_id").map_err(get_err)?;
            if row.try_get::<_, bool>("cancelled").map_err(get_err)? {
                self.notify_after_commit(queries::CHANNEL_DONE, &execution_id);
                cancelled.push(execution_id);
            } else if let Some(queue) = row
                .try_get::<_, Option<String>>("woken_queue")
                .map_err(get_err)?
            {
                self.notify_after_commit(queries::CHANNEL_WORK, &queue);
            }
        }
        // The execution asked for first, then its descendants.
        cancelled.sort_by_key(|c| c != id);
        Ok(cancelled)
    }

    async fn retry_execution(&self, id: &str) -> Result<Vec<String>, Error> {
        let call = Call::execution("retrying", id);
        let rows = self
            .query(queries::RETRY_EXECUTION, &[(&id, Type::TEXT)], call)
            .await?;
        let mut revived = Vec::with_capacity(rows.len());
        let mut queues: Vec<String> = Vec::new();
        for row in &rows {
            let get_err = |e| from_pg(e, call);
            revived.push(row.try_get::<_, String>(0).map_err(get_err)?);
            let queue: String = row.try_get(1).map_err(get_err)?;
            if !queues.contains(&queue) {
                self.notify_after_commit(queries::CHANNEL_WORK, &queue);
                queues.push(queue);
            }
        }
        Ok(revived)
    }

    async fn upsert_schedule(&self, schedule: zart::schedule::Schedule) -> Result<bool, Error> {
        self.pg_upsert_schedule(schedule).await
    }

    async fn pause_schedule(&self, id: &str, paused: bool) -> Result<(), Error> {
        self.pg_pause_schedule(id, paused).await
    }

    async fn delete_schedule(&self, id: &str) -> Result<bool, Error> {
        self.pg_delete_schedule(id).await
    }

    async fn list_schedules(&self) -> Result<Vec<zart::schedule::ScheduleRow>, Error> {
        self.pg_list_schedules().await
    }

    async fn claim_schedules(
        &self,
        p: zart::scheduler::ClaimSchedulesParams,
    ) -> Result<Vec<zart::scheduler::DueSchedule>, Error> {
        self.pg_claim_schedules(p).await
    }

    async fn fire_schedule(
        &self,
        p: zart::scheduler::FireScheduleParams,
    ) -> Result<zart::scheduler::FireOutcome, Error> {
        self.pg_fire_schedule(p).await
    }

    async fn next_schedule_at(&self, p: NextRunAtParams) -> Result<Option<Duration>, Error> {
        self.pg_next_schedule_at(p).await
    }

    async fn set_queue_limits(
        &self,
        queue: &str,
        limits: Option<zart::queues::QueueLimits>,
    ) -> Result<bool, Error> {
        self.pg_set_queue_limits(queue, limits).await
    }

    async fn list_queue_limits(&self) -> Result<Vec<zart::queues::QueueLimitsRow>, Error> {
        self.pg_list_queue_limits().await
    }

    async fn get_state(&self, id: &str) -> Result<Vec<zart::scheduler::StateValue>, Error> {
        let call = Call::execution("reading state", id);
        let rows = self
            .query(queries::GET_STATE, &[(&id, Type::TEXT)], call)
            .await?;
        rows.iter()
            .map(|r| {
                let get_err = |e| from_pg(e, call);
                Ok(zart::scheduler::StateValue {
                    name: r.try_get(0).map_err(get_err)?,
                    value: r.try_get(1).map_err(get_err)?,
                    set_at: r.try_get(2).map_err(get_err)?,
                })
            })
            .collect()
    }

    async fn record_presence(
        &self,
        presence: &zart::presence::WorkerPresence,
    ) -> Result<(), Error> {
        audit::record_presence(self.pool.pool(), presence).await
    }

    async fn record_departure(&self, worker_id: &str) -> Result<bool, Error> {
        audit::record_departure(self.pool.pool(), worker_id).await
    }

    async fn begin_step_tx(&self) -> Result<Box<dyn zart::scheduler::StepTransaction>, Error> {
        let tx = step_tx::begin(self.pool.pool(), Arc::clone(&self.step_tx_slots)).await?;
        Ok(Box::new(tx))
    }

    async fn heartbeat(&self, p: HeartbeatParams) -> Result<Vec<Lease>, Error> {
        // Ids are unique (the bucket is a function of the id).
        let mut renewed = std::collections::HashSet::new();
        for (buckets, ids, fences) in self.lease_groups(&p.leases).await? {
            let rows = self
                .query(
                    queries::HEARTBEAT,
                    &[
                        (&p.worker_id, Type::TEXT),
                        (&millis(p.lease), Type::INT8),
                        (&buckets, Type::INT2_ARRAY),
                        (&ids, Type::TEXT_ARRAY),
                        (&fences, Type::INT8_ARRAY),
                    ],
                    Call::new("heartbeat"),
                )
                .await?;
            for r in &rows {
                renewed.insert(
                    r.try_get::<_, String>(1)
                        .map_err(|e| row_error(e, "heartbeat"))?,
                );
            }
        }
        Ok(p.leases
            .into_iter()
            .filter(|l| renewed.contains(&l.execution_id))
            .collect())
    }

    async fn release_tasks(&self, p: ReleaseTasksParams) -> Result<u64, Error> {
        let mut released = 0;
        for (buckets, ids, fences) in self.lease_groups(&p.leases).await? {
            let rows = self
                .query(
                    queries::RELEASE_TASKS,
                    &[
                        (&p.worker_id, Type::TEXT),
                        (&buckets, Type::INT2_ARRAY),
                        (&ids, Type::TEXT_ARRAY),
                        (&fences, Type::INT8_ARRAY),
                    ],
                    Call::new("releasing leases"),
                )
                .await?;
            released += rows
                .first()
                .map(|r| r.try_get::<_, i32>(0))
                .transpose()
                .map_err(|e| row_error(e, "releasing leases"))?
                .unwrap_or(0);
        }
        if released > 0 {
            // The released tasks are due now: wake other workers.
            self.notify_after_commit(queries::CHANNEL_WORK, &p.queue);
        }
        Ok(u64::try_from(released).unwrap_or(0))
    }

    async fn next_run_at(&self, p: NextRunAtParams) -> Result<Option<Duration>, Error> {
        let call = Call::new("next_run_at");
        let shards = self.shards().await?;
        if !shards.distributed() {
            return self.due_in(queries::NEXT_RUN_AT, &p, call).await;
        }
        let mut soonest: Option<i64> = None;
        for buckets in shards.in_turn() {
            let rows = self
                .query(
                    queries::NEXT_RUN_AT_IN,
                    &[
                        (&p.queue, Type::TEXT),
                        (&p.task_names, Type::TEXT_ARRAY),
                        (&buckets, citus::BUCKETS),
                    ],
                    call,
                )
                .await?;
            if let Some(ms) = first_value::<Option<i64>>(&rows, call)? {
                soonest = Some(soonest.map_or(ms, |s| s.min(ms)));
            }
        }
        Ok(soonest.map(ms_to_duration))
    }

    async fn get_execution(&self, id: &str) -> Result<Option<Execution>, Error> {
        let call = Call::execution("reading an execution", id);
        let rows = self
            .query(queries::GET_EXECUTION, &[(&id, Type::TEXT)], call)
            .await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let get_err = |e| from_pg(e, call);
        let status: String = row.try_get(3).map_err(get_err)?;
        let error: Option<serde_json::Value> = row.try_get(6).map_err(get_err)?;
        let error = error.map(error_record);
        let attempts: i32 = row.try_get(7).map_err(get_err)?;
        let mut execution = Execution::new(
            row.try_get(0).map_err(get_err)?,
            row.try_get(1).map_err(get_err)?,
            ExecutionStatus::parse(&status)?,
        );
        execution.queue = row.try_get(2).map_err(get_err)?;
        execution.input = row.try_get(4).map_err(get_err)?;
        execution.output = row.try_get(5).map_err(get_err)?;
        execution.error = error;
        execution.attempts = u32::try_from(attempts).unwrap_or(0);
        execution.created_at = row.try_get::<_, SystemTime>(8).map_err(get_err)?;
        execution.started_at = row.try_get(9).map_err(get_err)?;
        execution.finished_at = row.try_get(10).map_err(get_err)?;
        execution.parent_id = row.try_get(11).map_err(get_err)?;
        execution.priority = row.try_get(12).map_err(get_err)?;
        Ok(Some(execution))
    }

    async fn prune(&self, p: PruneParams) -> Result<PruneOutcome, Error> {
        p.check()?;
        let call = Call::new("pruning finished executions");
        let limit = int4(p.limit);
        let status = p.status.as_str();
        let rows = self
            .query(
                queries::PRUNE,
                &[
                    (&status, Type::TEXT),
                    (&millis(p.older_than), Type::INT8),
                    (&limit, Type::INT4),
                    (&p.dry_run, Type::BOOL),
                ],
                call,
            )
            .await?;
        let count: Option<i64> = first_value(&rows, call)?;
        let count = count.map(|n| u64::try_from(n).unwrap_or(0));
        Ok(match (count, p.dry_run) {
            (None, _) => PruneOutcome::Busy,
            (Some(n), true) => PruneOutcome::Counted(n),
            (Some(n), false) => PruneOutcome::Deleted(n),
        })
    }

    fn subscribe(&self) -> broadcast::Receiver<Wakeup> {
        let rx = self.wakeups.subscribe();
        if tokio::runtime::Handle::try_current().is_ok() {
            self.listener.get_or_init(|| {
                let (config, tls) = self.pool.listen_config();
                listener::Listener::start(listener::ListenerSetup {
                    config: config.clone(),
                    tls: tls.clone(),
                    pool: self.pool.pool().clone(),
                    tx: self.wakeups.clone(),
                    health: self.listen_health.clone(),
                })
            });
        }
        rx
    }
}
