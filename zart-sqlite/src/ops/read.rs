//! The reads (`zart_next_run_at`, `zart_get_execution`), run on a read connection.

use super::Cached;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension};
use zart::scheduler::NextRunAtParams;
use zart::{Error, Execution, ExecutionStatus};

use crate::clock;
use crate::errors::{error_record, from_json, SqlResult};
use crate::queries;
use crate::Settings;

/// How long until the next timed task of the queue with one of the names is due.
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
    let at = clock::parse_stored(&earliest, "a run time")?;
    Ok(Some(clock::duration(at - now)))
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
    Ok(Some(execution))
}

/// `PRAGMA data_version`: changes whenever another connection commits.
pub(crate) fn data_version(conn: &Connection) -> Result<u64, Error> {
    let version: i64 = conn
        .row_cached(queries::DATA_VERSION, [], |r| r.get(0))
        .or_db(conn, "reading data_version")?;
    Ok(u64::try_from(version).unwrap_or(0))
}
