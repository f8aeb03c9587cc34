//! Q2 and Q3: drains of pre-filled no-op executions (one step, three steps) by one worker at
//! `WorkerConfig::default()` in this process ([`crate::common::drain`]), on MySQL/MariaDB. The
//! end of a drain is read with `select not exists (select 1 from zart_tasks where task_name =
//! ?)` on a connection of its own; afterwards one query checks that all of them completed.

use std::time::Duration;

use anyhow::{anyhow, Result};
use mysql_async::prelude::Queryable;
use mysql_async::Pool;

use super::{close, scheduler};
use crate::common::drain as common;
use crate::progress::Bar;

/// Starts `count` executions of `task` with input `steps` (ids `<task>-1..`), untimed, on a
/// scheduler of its own, closed afterwards.
///
/// # Errors
/// When a start fails or an id already existed.
pub async fn prefill(url: &str, task: &str, count: u32, steps: u32) -> Result<()> {
    let scheduler = scheduler(url).await?;
    let result = common::prefill(scheduler.clone(), task, count, steps).await;
    close(scheduler).await;
    result
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
    watch: &Pool,
    task: &str,
    count: u32,
    concurrency: Option<usize>,
    bar: &Bar,
) -> Result<Duration> {
    let scheduler = scheduler(url).await?;
    let took = common::drain(scheduler.clone(), task, count, concurrency, bar, || {
        drained(watch, task)
    })
    .await;
    close(scheduler).await;
    let took = took?;
    check_completed(watch, task, count).await?;
    Ok(took)
}

/// Whether no execution of `task` is left in the queue.
async fn drained(watch: &Pool, task: &str) -> Result<bool> {
    let mut conn = watch.get_conn().await?;
    let left: Option<i64> = conn
        .exec_first(
            "select not exists (select 1 from zart_tasks where task_name = ?)",
            (task,),
        )
        .await?;
    Ok(left == Some(1))
}

/// Fails unless all `count` executions of `task` completed.
async fn check_completed(watch: &Pool, task: &str, count: u32) -> Result<()> {
    let mut conn = watch.get_conn().await?;
    let row: Option<(Option<i64>, i64, Option<Vec<u8>>)> = conn
        .exec_first(
            "select cast(sum(status = 'completed') as signed), count(*),
                    max(case when status <> 'completed'
                             then concat(id, ': ', status, coalesce(concat(' ', error), ''))
                        end)
               from zart_executions where task_name = ?",
            (task,),
        )
        .await?;
    let (completed, total, example) =
        row.ok_or_else(|| anyhow!("{task}: the completion check returned no row"))?;
    common::check_completed(
        task,
        count,
        completed.unwrap_or(0),
        total,
        example.map(|e| String::from_utf8_lossy(&e).into_owned()),
    )
}
