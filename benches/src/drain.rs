//! Drains of pre-filled executions by one in-process worker at `WorkerConfig::default()`
//! (figures Z2, Z3 and Z7), and the no-op workflow every drain runs.
//!
//! Waiting for the end must not disturb what is measured: the handler counts its entries, the
//! driver sleeps until all executions have been entered (no database traffic), and only then
//! polls `not exists (select 1 from zart_tasks where task_name = $1)` every 10 ms until the
//! last outcomes have committed (an execution leaves `zart_tasks` with its outcome).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use async_trait::async_trait;
use tokio::sync::Notify;
use tokio_postgres::{Client, Config};
use zart::{Scheduler, TaskContext, TaskError, TaskHandler, TaskRegistry, Worker, WorkerConfig};
use zart_pg::{PgPool, PostgresScheduler};

use crate::dbstats::{Delta, Watcher};
use crate::progress::Bar;

/// The longest a drain may take before the run fails.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(600);

/// How often the tail of a drain is polled.
const POLL: Duration = Duration::from_millis(10);

/// Counts handler entries and wakes a waiter when a target is reached.
#[derive(Debug)]
pub struct Entries {
    count: AtomicU64,
    target: u64,
    reached: Notify,
}

impl Entries {
    /// A counter that signals [`Entries::reached`] when it gets to `target`.
    pub fn new(target: u64) -> Entries {
        Entries {
            count: AtomicU64::new(0),
            target,
            reached: Notify::new(),
        }
    }

    /// Entries so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn enter(&self) {
        if self.count.fetch_add(1, Ordering::Relaxed) + 1 == self.target {
            self.reached.notify_one();
        }
    }

    /// Resolves once the target has been reached (at once if it already was).
    pub async fn reached(&self) {
        if self.count() >= self.target {
            return;
        }
        self.reached.notified().await;
    }
}

/// A workflow of `Data` no-op steps. It counts every entry and, if asked, records the
/// execution id of each entry (in memory; never written to the database).
pub struct NoOp {
    entries: Arc<Entries>,
    ids: Option<Arc<Mutex<Vec<String>>>>,
}

impl NoOp {
    /// A no-op workflow counting into `entries`, recording ids into `ids` if given.
    pub fn new(entries: Arc<Entries>, ids: Option<Arc<Mutex<Vec<String>>>>) -> NoOp {
        NoOp { entries, ids }
    }
}

#[async_trait]
impl TaskHandler for NoOp {
    type Data = u32;
    type Output = ();

    async fn run(
        &self,
        ctx: &mut TaskContext<impl Scheduler>,
        steps: u32,
    ) -> Result<(), TaskError> {
        if let Some(ids) = &self.ids {
            ids.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(ctx.execution_id().to_owned());
        }
        self.entries.enter();
        for i in 0..steps {
            ctx.step(&format!("s{i}"), || async { Ok::<_, std::io::Error>(()) })
                .await?;
        }
        Ok(())
    }
}

/// Starts `count` executions of `task` (input: `steps`, ids `<task>-1..`) in one statement,
/// without notifications, then vacuums and analyses.
///
/// # Errors
/// When a statement fails.
pub async fn prefill(client: &Client, task: &str, count: u32, steps: u32) -> Result<()> {
    prefill_at_priorities(client, task, count, steps, 1).await
}

/// [`prefill`] with the executions spread over `levels` priorities (0 to `levels - 1`, in
/// turn).
///
/// # Errors
/// When a statement fails.
pub async fn prefill_at_priorities(
    client: &Client,
    task: &str,
    count: u32,
    steps: u32,
    levels: i16,
) -> Result<()> {
    start_many_at(client, task, steps, 1, count, levels).await?;
    client
        .batch_execute("vacuum analyze")
        .await
        .context("vacuum analyze after the pre-fill")
}

/// Starts `count` executions of `task` with ids `<task>-<from>..` and input `steps` in one
/// statement (`zart_start_execution` per row, as `DurableScheduler::start` calls it, but
/// without the wake-up notification).
///
/// # Errors
/// When the statement fails.
pub async fn start_many(
    client: &Client,
    task: &str,
    steps: u32,
    from: i64,
    count: u32,
) -> Result<()> {
    start_many_at(client, task, steps, from, count, 1).await
}

/// [`start_many`] at `levels` priorities in turn (0 to `levels - 1`).
async fn start_many_at(
    client: &Client,
    task: &str,
    steps: u32,
    from: i64,
    count: u32,
    levels: i16,
) -> Result<()> {
    client
        .execute(
            "select public.zart_start_execution(public.zart_bucket(id), id, $1, to_jsonb($2::int),
                                                'default', null, null,
                                                p_priority => (g % $5::int2)::int2)
               from (select $1 || '-' || g as id, g
                       from generate_series($3::int8, $3::int8 + $4::int8 - 1) g) ids",
            &[
                &task,
                &i32::try_from(steps).unwrap_or(i32::MAX),
                &from,
                &i64::from(count),
                &levels.max(1),
            ],
        )
        .await
        .with_context(|| format!("starting {count} executions of {task}"))?;
    Ok(())
}

/// Fails unless all `count` executions of `task` (of `tenant`, if given) completed.
///
/// # Errors
/// When some did not complete (with the first error recorded), or the query fails.
pub async fn check_completed(
    client: &Client,
    task: &str,
    tenant: Option<&str>,
    count: u32,
) -> Result<()> {
    let row = client
        .query_one(
            "select /* zart-load watcher */ count(*) filter (where status = 'completed'), count(*),
                    (array_agg(id || ': ' || status || coalesce(' ' || error::text, ''))
                        filter (where status <> 'completed'))[1]
               from public.zart_executions
              where task_name = $1 and ($2::text is null or tenant = $2)",
            &[&task, &tenant],
        )
        .await
        .with_context(|| format!("checking the executions of {task}"))?;
    let completed: i64 = row.try_get(0)?;
    let total: i64 = row.try_get(1)?;
    let example: Option<String> = row.try_get(2)?;
    if completed != i64::from(count) || total != i64::from(count) {
        bail!(
            "{task}: {completed} of {total} executions completed, {count} expected{}",
            example.map_or_else(String::new, |e| format!(" (for example {e})"))
        );
    }
    Ok(())
}

/// The outcome of one drain.
#[derive(Debug, Clone, Copy)]
pub struct Drained {
    /// From the worker's spawn to the last outcome seen committed.
    pub elapsed: Duration,
    /// Executions per second.
    pub rate: f64,
    /// The database's work during the window (worker start to worker stop).
    pub delta: Delta,
}

/// Drains `count` pre-filled executions of `task` with one worker at its defaults (or at
/// `concurrency`), connected with `config`, inside a statistics window of `watcher`, then
/// checks they all completed. With `tenant`, only that tenant's executions of `task` are
/// drained and checked (other tenants' stay: the worker's login may not claim them).
///
/// # Errors
/// When the worker fails, the drain takes over [`DRAIN_TIMEOUT`], or an execution did not
/// complete.
pub async fn drain(
    config: &Config,
    watcher: &mut Watcher,
    task: &str,
    tenant: Option<&str>,
    count: u32,
    concurrency: Option<usize>,
    bar: &Bar,
) -> Result<Drained> {
    let mut worker_config = WorkerConfig::default().with_handle_signals(false);
    if let Some(concurrency) = concurrency {
        worker_config = worker_config.with_concurrency(concurrency);
    }
    drain_with(config, watcher, task, tenant, count, worker_config, bar).await
}

/// [`drain`] with a worker of `worker_config` (e.g. with retention on).
///
/// # Errors
/// As [`drain`].
pub async fn drain_with(
    config: &Config,
    watcher: &mut Watcher,
    task: &str,
    tenant: Option<&str>,
    count: u32,
    worker_config: WorkerConfig,
    bar: &Bar,
) -> Result<Drained> {
    let mark = watcher.begin(true).await?;
    let entries = Arc::new(Entries::new(u64::from(count)));
    let (elapsed, worker_result) = {
        let pool = PgPool::from_config(config.clone(), zart_pg::DEFAULT_POOL_SIZE)?;
        let scheduler = Arc::new(PostgresScheduler::new(pool));
        let mut registry = TaskRegistry::new();
        registry.register(task, NoOp::new(entries.clone(), None))?;
        let worker = Worker::new(scheduler, Arc::new(registry), worker_config);
        let stop = worker.shutdown_handle();
        let started = Instant::now();
        let handle = tokio::spawn(worker.run());
        let waited = wait_drained(
            watcher,
            task,
            tenant,
            count,
            started,
            || entries.count(),
            entries.reached(),
            || handle.is_finished(),
            bar,
        )
        .await;
        stop.shutdown();
        let stopped = tokio::time::timeout(Duration::from_secs(60), handle).await;
        (waited, stopped)
    };
    // The worker, its scheduler and pool are gone: their connections close.
    let elapsed = elapsed?;
    match worker_result {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => return Err(e).context("the worker failed"),
        Ok(Err(e)) => return Err(e).context("the worker task panicked"),
        Err(_) => bail!("the worker did not stop within 60 s"),
    }
    let delta = watcher.end(mark).await?;
    check_completed(watcher.client(), task, tenant, count).await?;
    Ok(Drained {
        elapsed,
        rate: f64::from(count) / elapsed.as_secs_f64(),
        delta,
    })
}

/// Waits for a drain: first until `all_entered` resolves (moving `bar` with `progress`, no
/// database traffic), then polls the queue every 10 ms until no task of `task` (of `tenant`,
/// if given) is left.
/// Returns the time since `started`. Fails when `worker_ended` turns true first or after
/// [`DRAIN_TIMEOUT`].
#[allow(clippy::too_many_arguments)]
pub async fn wait_drained(
    watcher: &mut Watcher,
    task: &str,
    tenant: Option<&str>,
    count: u32,
    started: Instant,
    progress: impl Fn() -> u64,
    all_entered: impl std::future::Future<Output = ()>,
    worker_ended: impl Fn() -> bool,
    bar: &Bar,
) -> Result<Duration> {
    let deadline = tokio::time::Instant::from_std(started + DRAIN_TIMEOUT);
    tokio::pin!(all_entered);
    loop {
        tokio::select! {
            () = &mut all_entered => break,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {
                if worker_ended() {
                    bail!("{task}: the worker stopped during the drain ({} of {count} entered)", progress());
                }
                bar.set(progress());
                if tokio::time::Instant::now() >= deadline {
                    bail!(
                        "{task}: drain did not finish in {} minutes ({} of {count} entered)",
                        DRAIN_TIMEOUT.as_secs() / 60,
                        progress()
                    );
                }
            }
        }
    }
    bar.set(progress());
    while !watcher.drained(task, tenant).await? {
        if tokio::time::Instant::now() >= deadline {
            return Err(anyhow!(
                "{task}: drain did not finish in {} minutes (all entered, some outcomes missing)",
                DRAIN_TIMEOUT.as_secs() / 60
            ));
        }
        if worker_ended() {
            bail!("{task}: the worker stopped during the drain (all entered)");
        }
        tokio::time::sleep(POLL).await;
    }
    Ok(started.elapsed())
}
