//! Q2 and Q3: drains of pre-filled no-op executions (one step, three steps) by one worker at
//! `WorkerConfig::default()` in this process.
//!
//! The pre-fill starts the executions through `DurableScheduler::start_typed`, many at once so
//! the writer group-commits them, on a scheduler of its own that is closed before the drain.
//! The drain's timer starts when the worker is spawned. Its end is found as `zart-load` finds
//! it: the handler counts its entries and the driver sleeps until all have been entered, then
//! reads `not exists (select 1 from zart_tasks where task_name = ?)` every 10 ms on a
//! connection of its own (an execution leaves `zart_tasks` with its outcome). Afterwards one
//! query checks that all of them completed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures_util::{StreamExt, TryStreamExt};
use zart::{DurableScheduler, TaskRegistry};
use zart_sqlite::Synchronous;

use super::{default_worker, scheduler, stopped, Blocking};
use crate::drain::{Entries, NoOp, DRAIN_TIMEOUT};
use crate::progress::Bar;

/// Starts in flight at once during a pre-fill.
const PREFILL_CONCURRENCY: usize = 256;

/// How often the tail of a drain is polled.
const POLL: Duration = Duration::from_millis(10);

/// Starts `count` executions of `task` with input `steps` (ids `<task>-1..`), untimed.
///
/// # Errors
/// When a start fails or an id already existed.
pub async fn prefill(
    url: &str,
    sync: Synchronous,
    task: &str,
    count: u32,
    steps: u32,
) -> Result<()> {
    let scheduler = scheduler(url, sync, false).await?;
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

/// Drains the `count` pre-filled executions of `task` with one default worker (or one of
/// `concurrency` slots) and returns the time from its spawn to the last outcome seen
/// committed, after checking every execution completed.
///
/// # Errors
/// When the worker fails, the drain takes over [`DRAIN_TIMEOUT`], or an execution did not
/// complete.
pub async fn drain(
    url: &str,
    sync: Synchronous,
    watch: &Blocking,
    task: &str,
    count: u32,
    concurrency: Option<usize>,
    bar: &Bar,
) -> Result<Duration> {
    let entries = Arc::new(Entries::new(u64::from(count)));
    let scheduler = scheduler(url, sync, false).await?;
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
        while !drained(watch, task).await? {
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
    check_completed(watch, task, count).await?;
    Ok(elapsed)
}

/// Whether no execution of `task` is left in the queue.
async fn drained(watch: &Blocking, task: &str) -> Result<bool> {
    let task = task.to_owned();
    watch
        .run(move |conn| {
            Ok(conn.query_row(
                "select not exists (select 1 from zart_tasks where task_name = ?1)",
                [&task],
                |r| r.get(0),
            )?)
        })
        .await
}

/// Fails unless all `count` executions of `task` completed.
async fn check_completed(watch: &Blocking, task: &str, count: u32) -> Result<()> {
    let name = task.to_owned();
    let (completed, total, example): (i64, i64, Option<String>) = watch
        .run(move |conn| {
            Ok(conn.query_row(
                "select count(*) filter (where status = 'completed'), count(*),
                        max(case when status <> 'completed'
                                 then id || ': ' || status || coalesce(' ' || error, '') end)
                   from zart_executions where task_name = ?1",
                [&name],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?)
        })
        .await?;
    if completed != i64::from(count) || total != i64::from(count) {
        bail!(
            "{task}: {completed} of {total} executions completed, {count} expected{}",
            example.map_or_else(String::new, |e| format!(" (for example {e})"))
        );
    }
    Ok(())
}
