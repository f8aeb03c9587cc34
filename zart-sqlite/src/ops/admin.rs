//! The operator reads (`Admin::list_executions`, `Admin::describe_execution`), run on a read
//! connection inside one read transaction, so the parts of a detail agree with each other.

use std::time::SystemTime;

use rusqlite::{Connection, OptionalExtension, Row};
use zart::admin::{
    ExecutionDetail, ExecutionPage, ExecutionSummary, ListExecutionsParams, PendingEvent,
    QueueStats, StepRecord, TaskState,
};
use zart::{Error, Execution, ExecutionStatus};

use crate::clock;
use crate::errors::{error_record, from_json, SqlResult};
use crate::queries;
use crate::Settings;

pub(crate) fn time(text: &str) -> Result<SystemTime, Error> {
    clock::parse_stored(text, "a stored time").map(clock::to_system)
}

pub(crate) fn opt_time(text: Option<String>) -> Result<Option<SystemTime>, Error> {
    text.as_deref().map(time).transpose()
}

fn stored(t: Option<SystemTime>) -> Option<String> {
    t.map(|t| clock::format(clock::system_ms(t)))
}

fn count(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(0)
}

/// The raw columns of an execution summary.
type SummaryRow = (
    String,
    String,
    String,
    String,
    i64,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
);

fn summary_row(r: &Row<'_>) -> rusqlite::Result<SummaryRow> {
    SummaryRow::try_from(r)
}

fn summary(row: SummaryRow) -> Result<ExecutionSummary, Error> {
    let (id, task_name, queue, status, attempts, parent_id, created, started, finished) = row;
    let mut s = ExecutionSummary::new(id, task_name, ExecutionStatus::parse(&status)?);
    s.queue = queue;
    s.attempts = count(attempts);
    s.parent_id = parent_id;
    s.created_at = time(&created)?;
    s.started_at = opt_time(started)?;
    s.finished_at = opt_time(finished)?;
    Ok(s)
}

/// One page of executions, newest first.
pub(crate) fn list_executions(
    conn: &Connection,
    p: &ListExecutionsParams,
) -> Result<ExecutionPage, Error> {
    p.check()?;
    let what = "listing executions";
    let tx = conn.unchecked_transaction().or_db(conn, what)?;
    let cursor: Option<String> = match &p.after {
        None => None,
        Some(id) => Some(
            tx.query_row(queries::LIST_CURSOR, [id], |r| r.get(0))
                .optional()
                .or_db(conn, what)?
                .ok_or_else(|| Error::NotFound { id: id.clone() })?,
        ),
    };
    let statuses = (!p.statuses.is_empty()).then(|| {
        serde_json::Value::from(p.statuses.iter().map(|s| s.as_str()).collect::<Vec<_>>())
            .to_string()
    });
    let limit = i64::from(p.limit) + 1;
    let mut stmt = tx.prepare(queries::LIST_EXECUTIONS).or_db(conn, what)?;
    let rows = stmt
        .query_map(
            rusqlite::params![
                statuses,
                p.task_name,
                p.queue,
                stored(p.created_since),
                stored(p.created_until),
                cursor,
                p.after,
                limit,
                p.id_prefix
            ],
            summary_row,
        )
        .or_db(conn, what)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .or_db(conn, what)?;
    let mut executions = rows
        .into_iter()
        .map(summary)
        .collect::<Result<Vec<_>, _>>()?;
    let more = executions.len() > p.limit as usize;
    executions.truncate(p.limit as usize);
    let next_after = more
        .then(|| executions.last().map(|e| e.id.clone()))
        .flatten();
    Ok(ExecutionPage::new(executions, next_after))
}

/// The raw columns of an execution.
type ExecutionRow = (
    (String, String, String, String, String),
    (
        Option<String>,
        Option<String>,
        i64,
        Option<String>,
        Option<String>,
    ),
    (String, Option<String>, String, Option<String>),
);

/// One execution in full, or `None`.
pub(crate) fn describe_execution(
    conn: &Connection,
    settings: &Settings,
    id: &str,
) -> Result<Option<ExecutionDetail>, Error> {
    let what = "describing an execution";
    let tx = conn.unchecked_transaction().or_db(conn, what)?;
    let row: Option<ExecutionRow> = tx
        .query_row(queries::DESCRIBE_EXECUTION, [id], |r| {
            Ok((
                (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?),
                (r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?, r.get(9)?),
                (r.get(10)?, r.get(11)?, r.get(12)?, r.get(13)?),
            ))
        })
        .optional()
        .or_db(conn, what)?;
    let Some((
        (id, task_name, queue, status, input),
        (output, error, attempts, parent_id, deadline),
        (created, started, updated, finished),
    )) = row
    else {
        return Ok(None);
    };
    let now = clock::to_system(clock::now(&tx, settings.test_clock)?);
    let mut execution = Execution::new(id.clone(), task_name, ExecutionStatus::parse(&status)?);
    execution.queue = queue;
    execution.input = from_json(&input, "an execution's input")?;
    execution.output = output
        .map(|o| from_json(&o, "an execution's output"))
        .transpose()?;
    execution.error = error.as_deref().map(error_record);
    execution.attempts = count(attempts);
    execution.created_at = time(&created)?;
    execution.started_at = opt_time(started)?;
    execution.finished_at = opt_time(finished)?;
    let mut detail = ExecutionDetail::new(execution, now);
    detail.execution.parent_id = parent_id;
    detail.deadline_at = opt_time(deadline)?;
    detail.updated_at = time(&updated)?;

    type TaskRow = (
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        i64,
    );
    let task: Option<TaskRow> = tx
        .query_row(queries::DESCRIBE_TASK, [&id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .optional()
        .or_db(conn, what)?;
    if let Some((run_at, locked_by, wait_kind, wait_name, recoveries)) = task {
        let mut task = TaskState::new(opt_time(run_at)?);
        task.locked_by = locked_by;
        task.wait_kind = wait_kind;
        task.wait_name = wait_name;
        task.recoveries = count(recoveries);
        detail.task = Some(task);
    }

    type StepRow = (
        (i64, String, String, String, i64),
        (
            Option<String>,
            Option<String>,
            Option<String>,
            String,
            String,
        ),
    );
    let mut stmt = tx.prepare(queries::DESCRIBE_STEPS).or_db(conn, what)?;
    let steps = stmt
        .query_map([&id], |r| -> rusqlite::Result<StepRow> {
            Ok((
                (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?),
                (r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?, r.get(9)?),
            ))
        })
        .or_db(conn, what)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .or_db(conn, what)?;
    for ((seq, name, kind, status, attempts), (output, error, wake_at, created, updated)) in steps {
        let mut step = StepRecord::new(count(seq), name, kind, status);
        step.attempts = count(attempts);
        step.output = output
            .map(|o| from_json(&o, "a step's output"))
            .transpose()?;
        step.error = error.as_deref().map(error_record);
        step.wake_at = opt_time(wake_at)?;
        step.created_at = time(&created)?;
        step.updated_at = time(&updated)?;
        detail.steps.push(step);
    }

    let mut stmt = tx.prepare(queries::DESCRIBE_CHILDREN).or_db(conn, what)?;
    let children = stmt
        .query_map([&id], summary_row)
        .or_db(conn, what)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .or_db(conn, what)?;
    detail.children = children
        .into_iter()
        .map(summary)
        .collect::<Result<Vec<_>, _>>()?;

    let mut stmt = tx.prepare(queries::DESCRIBE_EVENTS).or_db(conn, what)?;
    let events = stmt
        .query_map([&id], |r| -> rusqlite::Result<(String, String, String)> {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .or_db(conn, what)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .or_db(conn, what)?;
    for (name, payload, created) in events {
        detail.pending_events.push(PendingEvent::new(
            name,
            from_json(&payload, "an event's payload")?,
            time(&created)?,
        ));
    }
    Ok(Some(detail))
}

/// The live queue by queue and status, with the due backlog at the store's clock.
pub(crate) fn queue_stats(
    conn: &Connection,
    settings: &Settings,
) -> Result<Vec<QueueStats>, Error> {
    let what = "reading queue statistics";
    let tx = conn.unchecked_transaction().or_db(conn, what)?;
    let now_ms = clock::now(&tx, settings.test_clock)?;
    let now = clock::format(now_ms);
    let mut stmt = tx.prepare(queries::QUEUE_STATS).or_db(conn, what)?;
    let rows = stmt
        .query_map([&now], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, Option<String>>(4)?,
            ))
        })
        .or_db(conn, what)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .or_db(conn, what)?;
    let mut groups = Vec::with_capacity(rows.len());
    for (queue, status, executions, due, oldest) in rows {
        let oldest_due_age = match oldest {
            Some(at) => {
                let at = clock::parse_stored(&at, "a stored time")?;
                Some(clock::duration(now_ms.saturating_sub(at)))
            }
            None => None,
        };
        groups.push((
            queue,
            ExecutionStatus::parse(&status)?,
            u64::try_from(executions).unwrap_or(0),
            u64::try_from(due).unwrap_or(0),
            oldest_due_age,
        ));
    }
    Ok(QueueStats::collect(groups))
}
