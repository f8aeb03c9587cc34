//! The reads (`zart_next_run_at`, `zart_get_execution`), run on a read connection.
//! `next_run_at` in a limited queue asks `pick_tasks` whether a claim would take anything.

use super::Cached;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension};
use zart::scheduler::NextRunAtParams;
use zart::{Error, Execution, ExecutionStatus};

use super::claim::claim_order;
use super::pick::{pick_tasks, Pick};
use super::queues::{next_rate_slot, queue_limits, Limits};
use crate::clock;
use crate::errors::{error_record, from_json, SqlResult};
use crate::queries;
use crate::Settings;

/// How long until the next timed task of the queue with one of the names is due (0: one is
/// due). In a limited queue, due tasks its limits hold back do not count as due: then it is
/// the time until the next task falls due, a lease runs out or a rate window lets one more
/// start, whichever comes first (a run that ends sends a wake-up of its own); `None` if none.
pub(crate) fn next_run_at(
    conn: &Connection,
    settings: &Settings,
    p: &NextRunAtParams,
) -> Result<Option<Duration>, Error> {
    let earliest = earliest_by_name(conn, queries::NEXT_RUN_AT, "next_run_at", p, None)?;
    let Some(earliest) = earliest else {
        return Ok(None);
    };
    let now = clock::now(conn, settings.test_clock)?;
    let mut at = clock::parse_stored(&earliest, "a run time")?;
    if at <= now {
        if let Some(limits) = queue_limits(conn, &p.queue)? {
            if held_back(conn, p, &limits, now)? {
                let Some(next) = next_change(conn, p, &limits, now)? else {
                    return Ok(None);
                };
                at = next;
            }
        }
    }
    Ok(Some(clock::duration(at - now)))
}

/// Whether a claim of one task of the names would take nothing now (the queue's limits hold
/// every due task back). Writes nothing.
fn held_back(
    conn: &Connection,
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
    Ok(pick_tasks(conn, &pick, Some(limits))?.is_empty())
}

/// The next time anything can change for a held-back queue without a wake-up: a task falls
/// due or a lease runs out, or a rate window (the queue's or a key's) lets one more start.
fn next_change(
    conn: &Connection,
    p: &NextRunAtParams,
    limits: &Limits,
    now: i64,
) -> Result<Option<i64>, Error> {
    let now_text = clock::format(now);
    let due = earliest_by_name(
        conn,
        queries::NEXT_RUN_AFTER,
        "next_run_at",
        p,
        Some(&now_text),
    )?
    .map(|at| clock::parse_stored(&at, "a run time"))
    .transpose()?;
    let rate = next_rate_slot(conn, &p.queue, limits, now)?;
    Ok(match (due, rate) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    })
}

/// The earliest of the times `sql` reads for each of `p.task_names` (parameters: the queue,
/// the name, and `now` when given; one row, one nullable time each; times compare as text),
/// or `None` when every one is null.
pub(crate) fn earliest_by_name(
    conn: &Connection,
    sql: &str,
    what: &str,
    p: &NextRunAtParams,
    now: Option<&str>,
) -> Result<Option<String>, Error> {
    let mut earliest: Option<String> = None;
    let mut stmt = conn.prepare_cached(sql).or_db(conn, what)?;
    for name in &p.task_names {
        let at: Option<String> = match now {
            Some(now) => stmt.query_row(rusqlite::params![p.queue, name, now], |r| r.get(0)),
            None => stmt.query_row(rusqlite::params![p.queue, name], |r| r.get(0)),
        }
        .or_db(conn, what)?;
        if let Some(at) = at {
            if earliest.as_ref().is_none_or(|e| at < *e) {
                earliest = Some(at);
            }
        }
    }
    Ok(earliest)
}

/// The values an execution published, the latest of each name, by name.
pub(crate) fn get_state(
    conn: &Connection,
    id: &str,
) -> Result<Vec<zart::scheduler::StateValue>, Error> {
    let mut stmt = conn
        .prepare_cached(queries::GET_STATE)
        .or_db(conn, "reading state")?;
    let rows = stmt
        .query_map([id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, String>(2)?,
            ))
        })
        .or_db(conn, "reading state")?;
    let mut values = Vec::new();
    for row in rows {
        let (name, output, at) = row.or_db(conn, "reading state")?;
        values.push(zart::scheduler::StateValue {
            name,
            value: from_json(output.as_deref().unwrap_or("null"), "a published state")?,
            set_at: clock::to_system(clock::parse_stored(&at, "a stored time")?),
        });
    }
    Ok(values)
}

/// One execution, or `None`.
pub(crate) fn get_execution(conn: &Connection, id: &str) -> Result<Option<Execution>, Error> {
    type Row = (
        String,
        String,
        String,
        String,
        String,
        Option<String>,
        Option<String>,
        i64,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        i64,
    );
    let row: Option<Row> = conn
        .row_cached(queries::GET_EXECUTION, [id], |r| r.try_into())
        .optional()
        .or_db(conn, "reading an execution")?;
    let Some((
        id,
        task_name,
        queue,
        status,
        input,
        output,
        error,
        attempts,
        created,
        started,
        finished,
        parent_id,
        priority,
    )) = row
    else {
        return Ok(None);
    };
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

/// `PRAGMA data_version`: changes whenever another connection commits.
pub(crate) fn data_version(conn: &Connection) -> Result<u64, Error> {
    let version: i64 = conn
        .row_cached(queries::DATA_VERSION, [], |r| r.get(0))
        .or_db(conn, "reading data_version")?;
    Ok(u64::try_from(version).unwrap_or(0))
}
