//! Drains of pre-filled no-op executions (one step, three steps) by one worker at
//! `WorkerConfig::default()` in this process, on any scheduler.
//!
//! The pre-fill starts the executions through `DurableScheduler::start_typed`, many at once so
//! the scheduler's writer group-commits them, on a scheduler of its own that the backend
//! closes before the drain. The drain's timer starts when the worker is spawned. Its end is
//! found as `zart-load` finds it: the handler counts its entries and the driver sleeps until
//! all have been entered, then asks the backend's `drained` check (does `zart_tasks` still
//! hold an execution of the task? an execution leaves it with its outcome) every 10 ms on a
//! connection of its own.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures_util::{StreamExt, TryStreamExt};
use zart::{DurableScheduler, Scheduler, TaskRegistry};

use super::{default_worker, stopped};
use crate::drain::{Entries, NoOp, DRAIN_TIMEOUT};
use crate::progress::Bar;

/// Starts in flight at once during a pre-fill.
const PREFILL_CONCURRENCY: usize = 256;

/// How often the tail of a drain is polled.
const POLL: Duration = Duration::from_millis(10);

/// Starts `count` executions of `task` with input `steps` (ids `<task>-1..`) through
/// `scheduler`, untimed.
///
/// # Errors
/// When a start fails or an id already existed.
pub async fn prefill<S: Scheduler + 'static>(
    scheduler: Arc<S>,
    task: &str,
    count: u32,
    steps: u32,
) -> Result<()> {
    let mut registry = TaskRegistry::new();
    registry.register(task, NoOp::new(Arc::new(Entries::new(u64::MAX)), None))?;
    let durable = DurableScheduler::new(scheduler, Arc::new(registry));
    futures_util::stream::iter(1..=count)
        .map(|i| {
            let durable = durable.clone();
            async move {
                let id = format!("{task}-{i}");
                let outcome = durable
                    .start_typed(&id, task, &steps)
                    .await
                    .with_context(|| format!("pre-fill: starting {id}"))?;
                if !outcome.created {
                    bail!("pre-fill: {id} already existed");
                }
                Ok(())
            }
        })
        .buffer_unordered(PREFILL_CONCURRENCY)
        .try_collect::<()>()
        .await
}

/// Drains the `count` pre-filled executions of `task` with one default worker on
/// `scheduler` (or one of `concurrency` slots) and returns the time from its spawn to the
/// first `drained()` that says yes. The caller checks the outcomes afterwards.
///
/// # Errors
/// When the worker fails, `drained` fails, or the drain takes over [`DRAIN_TIMEOUT`].
pub async fn drain<S, F, Fut>(
    scheduler: Arc<S>,
    task: &str,
    count: u32,
    concurrency: Option<usize>,
    bar: &Bar,
    mut drained: F,
) -> Result<Duration>
where
    S: Scheduler + 'static,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool>>,
{
    let entries = Arc::new(Entries::new(u64::from(count)));
    let mut registry = TaskRegistry::new();
    registry.register(task, NoOp::new(entries.clone(), None))?;
    let worker = default_worker(scheduler, Arc::new(registry), concurrency);
    let stop = worker.shutdown_handle();
    let started = Instant::now();
    let handle = tokio::spawn(worker.run());
    let deadline = started + DRAIN_TIMEOUT;
    let waited = async {
        let reached = entries.reached();
        tokio::pin!(reached);
        loop {
            tokio::select! {
                () = &mut reached => break,
                _ = tokio::time::sleep(Duration::from_millis(100)) => {
                    bar.set(entries.count());
                    if handle.is_finished() {
                        bail!("{task}: the worker stopped during the drain ({} of {count} entered)", entries.count());
                    }
                    if Instant::now() >= deadline {
                        bail!("{task}: the drain did not finish in {} minutes", DRAIN_TIMEOUT.as_secs() / 60);
                    }
                }
            }
        }
        bar.set(entries.count());
        while !drained().await? {
            if Instant::now() >= deadline {
                bail!("{task}: the drain did not finish (all entered, some outcomes missing)");
            }
            tokio::time::sleep(POLL).await;
        }
        Ok(started.elapsed())
    }
    .await;
    stop.shutdown();
    let ended = stopped(task, handle).await;
    let elapsed = waited?;
    ended?;
    Ok(elapsed)
}

/// Fails unless all `count` executions of `task` completed, given the backend's `completed`
/// and `total` counts and an example of one that did not.
///
/// # Errors
/// As said.
pub fn check_completed(
    task: &str,
    count: u32,
    completed: i64,
    total: i64,
    example: Option<String>,
) -> Result<()> {
    if completed != i64::from(count) || total != i64::from(count) {
        bail!(
            "{task}: {completed} of {total} executions completed, {count} expected{}",
            example.map_or_else(String::new, |e| format!(" (for example {e})"))
        );
    }
    Ok(())
}
