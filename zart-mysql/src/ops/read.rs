//! The reads (`zart_next_run_at`, `zart_get_execution`), run on a read connection.
//! `next_run_at` in a limited queue asks `pick_tasks` whether a claim would take anything.

use super::{col, p};
use std::time::Duration;

use super::Tx;
use zart::scheduler::NextRunAtParams;
use zart::{Error, Execution, ExecutionStatus};

use super::claim::claim_order;
use super::pick::{pick_tasks, Pick};
use super::queues::{next_rate_slot, queue_limits, Limits};
use crate::clock;
use crate::errors::{error_record, from_json};
use crate::queries;

/// How long until the next timed task of the queue with one of the names is due (0: one is
/// due). In a limited queue, due tasks its limits hold back do not count as due: then it is
/// the time until the next task falls due, a lease runs out or a rate window lets one more
/// start, whichever comes first (a run that ends sends a wake-up of its own); `None` if none.
pub(crate) async fn next_run_at(
    tx: &mut Tx<'_>,
    p: &NextRunAtParams,
) -> Result<Option<Duration>, Error> {
    let earliest = earliest_by_name(tx, queries::NEXT_RUN_AT, "next_run_at", p, None).await?;
    let Some(earliest) = earliest else {
        return Ok(None);
    };
    // The clock only when there is something to compare it with: an idle worker's look costs
    // one statement.
    let now = tx.read_clock().await?;
    let mut at = clock::parse_stored(&earliest, "a run time")?;
    if at <= now {
        if let Some(limits) = queue_limits(tx, &p.queue).await? {
            if held_back(tx, p, &limits, now).await? {
                let Some(next) = next_change(tx, p, &limits, now).await? else {
                    return Ok(None);
                };
                at = next;
            }
        }
    }
    Ok(Some(clock::duration(at - now)))
}

/// Whether a claim of the names could take anything now: a due task of one of them (its
/// limits aside). Reads the clock only when some task has a time. A claim asks this first,
/// outside the writer, so an idle worker's sweep costs one or two statements rather than a
/// write transaction.
pub(crate) async fn anything_due(tx: &mut Tx<'_>, p: &NextRunAtParams) -> Result<bool, Error> {
    let earliest = earliest_by_name(tx, queries::NEXT_RUN_AT, "claiming", p, None).await?;
    let Some(earliest) = earliest else {
        return Ok(false);
    };
    let now = tx.read_clock().await?;
    Ok(clock::parse_stored(&earliest, "a run time")? <= now)
}

/// Whether a claim of one task of the names would take nothing now (the queue's limits hold
/// every due task back). Writes nothing.
async fn held_back(
    tx: &mut Tx<'_>,
    p: &NextRunAtParams,
    limits: &Limits,
    now: i64,
) -> Result<bool, Error> {
    let names = claim_order(&p.task_names);
    let pick = Pick {
        queue: &p.queue,
        names: &names,
        limit: 1,
        now,
        oldest_first: false,
    };
    Ok(pick_tasks(tx, &pick, Some(limits)).await?.is_empty())
}

/// The next time anything can change for a held-back queue without a wake-up: a task falls
/// due or a lease runs out, or a rate window (the queue's or a key's) lets one more start.
async fn next_change(
    tx: &mut Tx<'_>,
    p: &NextRunAtParams,
    limits: &Limits,
    now: i64,
) -> Result<Option<i64>, Error> {
    let now_text = clock::format(now);
    let due = earliest_by_name(
        tx,
        queries::NEXT_RUN_AFTER,
        "next_run_at",
        p,
        Some(&now_text),
    )
    .await?
    .map(|at| clock::parse_stored(&at, "a run time"))
    .transpose()?;
    let rate = next_rate_slot(tx, &p.queue, limits, now).await?;
    Ok(match (due, rate) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    })
}

/// The earliest of the times `sql` reads for each of `p.task_names` (parameters: the queue,
/// the name, and `now` when given; one row, one nullable time each; times compare as text),
/// or `None` when every one is null.
pub(crate) async fn earliest_by_name(
    tx: &mut Tx<'_>,
    sql: &str,
    what: &str,
    p: &NextRunAtParams,
    now: Option<&str>,
) -> Result<Option<String>, Error> {
    let mut earliest: Option<String> = None;
    for name in &p.task_names {
        let at: Option<Option<String>> = match now {
            Some(now) => tx.first(sql, p![p.queue, name, now], what).await?,
            None => tx.first(sql, p![p.queue, name], what).await?,
        };
        let at = at.flatten();
        if let Some(at) = at {
            if earliest.as_ref().is_none_or(|e| at < *e) {
                earliest = Some(at);
            }
        }
    }
    Ok(earliest)
}

/// The values an execution published, the latest of each name, by name.
pub(crate) async fn get_state(
    tx: &mut Tx<'_>,
    id: &str,
) -> Result<Vec<zart::scheduler::StateValue>, Error> {
    let rows: Vec<(String, Option<String>, String)> =
        tx.all(queries::GET_STATE, p![id], "reading state").await?;
    let mut values = Vec::new();
    for row in rows {
        let (name, output, at) = row;
        values.push(zart::scheduler::StateValue {
            name,
            value: from_json(output.as_deref().unwrap_or("null"), "a published state")?,
            set_at: clock::to_system(clock::parse_stored(&at, "a stored time")?),
        });
    }
    Ok(values)
}

/// One execution, or `None`.
pub(crate) async fn get_execution(tx: &mut Tx<'_>, id: &str) -> Result<Option<Execution>, Error> {
    let row: Option<mysql_async::Row> = tx
        .first(queries::GET_EXECUTION, p![id], "reading an execution")
        .await?;
    let Some(mut row) = row else {
        return Ok(None);
    };
    let what = "reading an execution";
    let id: String = col(&mut row, 0, what)?;
    let task_name: String = col(&mut row, 1, what)?;
    let queue: String = col(&mut row, 2, what)?;
    let status: String = col(&mut row, 3, what)?;
    let input: String = col(&mut row, 4, what)?;
    let output: Option<String> = col(&mut row, 5, what)?;
    let error: Option<String> = col(&mut row, 6, what)?;
    let attempts: i64 = col(&mut row, 7, what)?;
    let created: String = col(&mut row, 8, what)?;
    let started: Option<String> = col(&mut row, 9, what)?;
    let finished: Option<String> = col(&mut row, 10, what)?;
    let parent_id: Option<String> = col(&mut row, 11, what)?;
    let priority: i64 = col(&mut row, 12, what)?;
    let time = |t: &str| clock::parse_stored(t, "a stored time").map(clock::to_system);
    let mut execution = Execution::new(id, task_name, ExecutionStatus::parse(&status)?);
    execution.queue = queue;
    execution.input = from_json(&input, "an execution's input")?;
    execution.output = output
        .map(|o| from_json(&o, "an execution's output"))
        .transpose()?;
    execution.error = error.as_deref().map(error_record);
    execution.attempts = u32::try_from(attempts).unwrap_or(0);
    execution.created_at = time(&created)?;
    execution.started_at = started.as_deref().map(time).transpose()?;
    execution.finished_at = finished.as_deref().map(time).transpose()?;
    execution.parent_id = parent_id;
    execution.priority = i16::try_from(priority).unwrap_or_default();
    Ok(Some(execution))
}
