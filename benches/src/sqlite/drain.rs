//! Q2 and Q3: drains of pre-filled no-op executions (one step, three steps) by one worker at
//! `WorkerConfig::default()` in this process ([`crate::common::drain`]), on SQLite. The end
//! of a drain is read with `not exists (select 1 from zart_tasks where task_name = ?)` on a
//! rusqlite connection of its own; afterwards one query checks that all of them completed.

use std::time::Duration;

use anyhow::Result;
use zart_sqlite::Synchronous;

use super::{scheduler, Blocking};
use crate::common::drain as common;
use crate::progress::Bar;

/// Starts `count` executions of `task` with input `steps` (ids `<task>-1..`), untimed, on a
/// scheduler of its own.
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
    common::prefill(scheduler(url, sync, false).await?, task, count, steps).await
}

/// Drains the `count` pre-filled executions of `task` with one default worker (or one of
/// `concurrency` slots) and returns the time from its spawn to the last outcome seen
/// committed, after checking every execution completed.
///
/// # Errors
/// When the worker fails, the drain takes over [`crate::drain::DRAIN_TIMEOUT`], or an
/// execution did not complete.
pub async fn drain(
    url: &str,
    sync: Synchronous,
    watch: &Blocking,
    task: &str,
    count: u32,
    concurrency: Option<usize>,
    bar: &Bar,
) -> Result<Duration> {
    let scheduler = scheduler(url, sync, false).await?;
    let took = common::drain(scheduler, task, count, concurrency, bar, || {
        drained(watch, task)
    })
    .await?;
    check_completed(watch, task, count).await?;
    Ok(took)
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
    common::check_completed(task, count, completed, total, example)
}
