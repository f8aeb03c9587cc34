//! The operator reads (`Admin::list_executions`, `Admin::describe_execution`,
//! `Admin::queue_stats`) on a pooled connection. Under READ COMMITTED each statement sees the
//! latest commit, so the parts of a detail are each current but may be from moments apart.

use std::time::SystemTime;

use zart::admin::{
    ExecutionDetail, ExecutionPage, ExecutionSummary, ListExecutionsParams, PendingEvent,
    QueueStats, StepRecord, TaskState,
};
use zart::{Error, Execution, ExecutionStatus};

use super::{col, p, Tx};
use crate::clock;
use crate::errors::{error_record, from_json};
use crate::queries;

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
pub(crate) async fn list_executions(
    tx: &mut Tx<'_>,
    p: &ListExecutionsParams,
) -> Result<ExecutionPage, Error> {
    p.check()?;
    let what = "listing executions";
    let cursor: Option<String> = match &p.after {
        None => None,
        Some(id) => Some(
            tx.first::<String>(queries::LIST_CURSOR, p![id], what)
                .await?
                .ok_or_else(|| Error::NotFound { id: id.clone() })?,
        ),
    };
    let statuses = (!p.statuses.is_empty()).then(|| {
        serde_json::Value::from(p.statuses.iter().map(|s| s.as_str()).collect::<Vec<_>>())
            .to_string()
    });
    let limit = i64::from(p.limit) + 1;
    let rows: Vec<SummaryRow> = tx
        .all(
            queries::LIST_EXECUTIONS,
            p![
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
            what,
        )
        .await?;
    let mut executions = rows
        .into_iter()
        .map(summary)
        .collect::<Result<Vec<_>, _>>()?;
    let page = usize::try_from(p.limit).unwrap_or(usize::MAX);
    let more = executions.len() > page;
    executions.truncate(page);
    let next_after = more
        .then(|| executions.last().map(|e| e.id.clone()))
        .flatten();
    Ok(ExecutionPage::new(executions, next_after))
}

/// One execution in full, or `None`.
pub(crate) async fn describe_execution(
    tx: &mut Tx<'_>,
    id: &str,
) -> Result<Option<ExecutionDetail>, Error> {
    let what = "describing an execution";
    let row: Option<mysql_async::Row> = tx.first(queries::DESCRIBE_EXECUTION, p![id], what).await?;
    let Some(mut r) = row else {
        return Ok(None);
    };
    let id: String = col(&mut r, 0, what)?;
    let task_name: String = col(&mut r, 1, what)?;
    let status: String = col(&mut r, 3, what)?;
    let mut execution = Execution::new(id.clone(), task_name, ExecutionStatus::parse(&status)?);
    execution.queue = col(&mut r, 2, what)?;
    execution.input = from_json(&col::<String>(&mut r, 4, what)?, "an execution's input")?;
    execution.output = col::<Option<String>>(&mut r, 5, what)?
        .map(|o| from_json(&o, "an execution's output"))
        .transpose()?;
    execution.error = col::<Option<String>>(&mut r, 6, what)?
        .as_deref()
        .map(error_record);
    execution.attempts = count(col(&mut r, 7, what)?);
    execution.created_at = time(&col::<String>(&mut r, 10, what)?)?;
    execution.started_at = opt_time(col(&mut r, 11, what)?)?;
    execution.finished_at = opt_time(col(&mut r, 13, what)?)?;
    let mut detail = ExecutionDetail::new(execution, clock::to_system(tx.now()));
    detail.execution.parent_id = col(&mut r, 8, what)?;
    detail.deadline_at = opt_time(col(&mut r, 9, what)?)?;
    detail.updated_at = time(&col::<String>(&mut r, 12, what)?)?;

    type TaskRow = (
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        i64,
    );
    let task: Option<TaskRow> = tx.first(queries::DESCRIBE_TASK, p![id], what).await?;
    if let Some((run_at, locked_by, wait_kind, wait_name, recoveries)) = task {
        let mut task = TaskState::new(opt_time(run_at)?);
        task.locked_by = locked_by;
        task.wait_kind = wait_kind;
        task.wait_name = wait_name;
        task.recoveries = count(recoveries);
        detail.task = Some(task);
    }

    type StepRow = (
        i64,
        String,
        String,
        String,
        i64,
        Option<String>,
        Option<String>,
        Option<String>,
        String,
        String,
    );
    let steps: Vec<StepRow> = tx.all(queries::DESCRIBE_STEPS, p![id], what).await?;
    for (seq, name, kind, status, attempts, output, error, wake_at, created, updated) in steps {
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

    let children: Vec<SummaryRow> = tx.all(queries::DESCRIBE_CHILDREN, p![id], what).await?;
    detail.children = children
        .into_iter()
        .map(summary)
        .collect::<Result<Vec<_>, _>>()?;

    let events: Vec<(String, String, String)> =
        tx.all(queries::DESCRIBE_EVENTS, p![id], what).await?;
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
pub(crate) async fn queue_stats(tx: &mut Tx<'_>) -> Result<Vec<QueueStats>, Error> {
    let what = "reading queue statistics";
    let now_ms = tx.now();
    let now = clock::format(now_ms);
    let rows: Vec<(String, String, i64, i64, Option<String>)> =
        tx.all(queries::QUEUE_STATS, p![now], what).await?;
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
