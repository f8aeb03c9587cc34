//! [`zart::admin::Admin`] for PostgreSQL: lists and details read straight from the tables.
//!
//! The reads need `SELECT` on the tables, which `zart_reader` has (and the owner); with tenancy
//! on, row-level security keeps them to the session's tenants. A detail is read in one
//! repeatable-read, read-only transaction, so its parts agree with each other.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use postgres_types::Type;
use tokio_postgres::Row;
use zart::admin::{
    Admin, ExecutionDetail, ExecutionPage, ExecutionSummary, ListExecutionsParams, PendingEvent,
    QueueStats, StepRecord, TaskState,
};
use zart::{Error, Execution, ExecutionStatus};

use crate::errors::{from_pg, from_pool, Call};
use crate::{error_record, queries, PgPool, PostgresScheduler};

/// Cancels an execution and its unfinished descendants as
/// [`zart::Scheduler::cancel_execution`] does, with the wake-ups sent inside the same
/// statement (delivered at its commit) instead of after it; returns the ids cancelled, the one
/// asked for first (empty if it had already finished).
///
/// For short-lived processes (the `zart` command, scripts) that may exit before an
/// after-commit wake-up goes out. Needs `zart_client`.
///
/// # Errors
/// [`Error::NotFound`] when no execution has the id; the transient and database errors of
/// every call.
pub async fn cancel(pool: &PgPool, id: &str) -> Result<Vec<String>, Error> {
    let call = Call::execution("cancelling", id);
    let rows = crate::query(
        pool.pool(),
        queries::CANCEL_EXECUTION_NOTIFY,
        &[(&id, Type::TEXT)],
        call,
    )
    .await?;
    let mut cancelled = Vec::new();
    for row in &rows {
        if row.try_get::<_, bool>(1).map_err(|e| from_pg(e, call))? {
            cancelled.push(row.try_get::<_, String>(0).map_err(|e| from_pg(e, call))?);
        }
    }
    cancelled.sort_by_key(|c| c != id);
    Ok(cancelled)
}

/// Runs a failed execution again from its failed step as [`zart::Scheduler::retry_execution`]
/// does, with the wake-ups sent inside the same statement (delivered at its commit); returns
/// the ids made due, the one asked for first. For short-lived processes, as [`cancel`]. Needs
/// `zart_client`.
///
/// # Errors
/// [`Error::NotFound`] when no execution has the id; [`Error::NotRetryable`] when it is not
/// failed or its deadline has passed; the transient and database errors of every call.
pub async fn retry(pool: &PgPool, id: &str) -> Result<Vec<String>, Error> {
    let call = Call::execution("retrying", id);
    let rows = crate::query(
        pool.pool(),
        queries::RETRY_EXECUTION_NOTIFY,
        &[(&id, Type::TEXT)],
        call,
    )
    .await?;
    rows.iter()
        .map(|row| row.try_get::<_, String>(0).map_err(|e| from_pg(e, call)))
        .collect()
}

#[async_trait]
impl Admin for PostgresScheduler {
    async fn list_executions(&self, p: ListExecutionsParams) -> Result<ExecutionPage, Error> {
        p.check()?;
        let call = Call::new("listing executions");
        let client = self
            .pool()
            .pool()
            .get()
            .await
            .map_err(|e| from_pool(e, call))?;
        let (cursor_at, cursor_id) = match &p.after {
            None => (None, None),
            Some(id) => {
                let call = Call::execution("listing executions after", id);
                let row = client
                    .query_typed(queries::LIST_CURSOR, &[(id, Type::TEXT)])
                    .await
                    .map_err(|e| from_pg(e, call))?;
                let row = row
                    .first()
                    .ok_or_else(|| Error::NotFound { id: id.clone() })?;
                let at: SystemTime = row.try_get(0).map_err(|e| from_pg(e, call))?;
                (Some(at), Some(id.clone()))
            }
        };
        let statuses: Option<Vec<&str>> =
            (!p.statuses.is_empty()).then(|| p.statuses.iter().map(|s| s.as_str()).collect());
        // One more than asked for: whether there is a next page.
        let limit = i64::from(p.limit) + 1;
        let rows = client
            .query_typed(
                queries::LIST_EXECUTIONS,
                &[
                    (&statuses, Type::TEXT_ARRAY),
                    (&p.task_name, Type::TEXT),
                    (&p.queue, Type::TEXT),
                    (&p.created_since, Type::TIMESTAMPTZ),
                    (&p.created_until, Type::TIMESTAMPTZ),
                    (&cursor_at, Type::TIMESTAMPTZ),
                    (&cursor_id, Type::TEXT),
                    (&limit, Type::INT8),
                    (&p.id_prefix, Type::TEXT),
                ],
            )
            .await
            .map_err(|e| from_pg(e, call))?;
        let mut executions = rows
            .iter()
            .map(|row| summary(row, call))
            .collect::<Result<Vec<_>, _>>()?;
        let more = executions.len() > p.limit as usize;
        executions.truncate(p.limit as usize);
        let next_after = more
            .then(|| executions.last().map(|e| e.id.clone()))
            .flatten();
        Ok(ExecutionPage::new(executions, next_after))
    }

    async fn describe_execution(&self, id: &str) -> Result<Option<ExecutionDetail>, Error> {
        let call = Call::execution("describing", id);
        let mut client = self
            .pool()
            .pool()
            .get()
            .await
            .map_err(|e| from_pool(e, call))?;
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(|e| from_pg(e, call))?;
        let read = |sql: &'static str| {
            let tx = &tx;
            async move {
                tx.query_typed(sql, &[(&id, Type::TEXT)])
                    .await
                    .map_err(|e| from_pg(e, call))
            }
        };
        let rows = read(queries::DESCRIBE_EXECUTION).await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let get_err = |e| from_pg(e, call);
        let mut execution = Execution::new(
            row.try_get("id").map_err(get_err)?,
            row.try_get("task_name").map_err(get_err)?,
            status(row, call)?,
        );
        execution.queue = row.try_get("queue").map_err(get_err)?;
        execution.input = row.try_get("input").map_err(get_err)?;
        execution.output = row.try_get("output").map_err(get_err)?;
        execution.error = row
            .try_get::<_, Option<serde_json::Value>>("error")
            .map_err(get_err)?
            .map(error_record);
        execution.attempts = count(row, "attempts", call)?;
        execution.created_at = row.try_get("created_at").map_err(get_err)?;
        execution.started_at = row.try_get("started_at").map_err(get_err)?;
        execution.finished_at = row.try_get("finished_at").map_err(get_err)?;
        let parent_id = row.try_get("parent_id").map_err(get_err)?;
        let deadline_at = row.try_get("deadline_at").map_err(get_err)?;
        let updated_at = row.try_get("updated_at").map_err(get_err)?;
        let now = row.try_get("now").map_err(get_err)?;

        let task = read(queries::DESCRIBE_TASK)
            .await?
            .first()
            .map(|row| -> Result<TaskState, Error> {
                let mut task = TaskState::new(row.try_get("run_at").map_err(get_err)?);
                task.locked_by = row.try_get("locked_by").map_err(get_err)?;
                task.wait_kind = row.try_get("wait_kind").map_err(get_err)?;
                task.wait_name = row.try_get("wait_name").map_err(get_err)?;
                task.recoveries = count(row, "recoveries", call)?;
                Ok(task)
            })
            .transpose()?;
        let steps = read(queries::DESCRIBE_STEPS)
            .await?
            .iter()
            .map(|row| step(row, call))
            .collect::<Result<Vec<_>, _>>()?;
        let children = read(queries::DESCRIBE_CHILDREN)
            .await?
            .iter()
            .map(|row| summary(row, call))
            .collect::<Result<Vec<_>, _>>()?;
        let pending_events = read(queries::DESCRIBE_EVENTS)
            .await?
            .iter()
            .map(|row| -> Result<PendingEvent, Error> {
                Ok(PendingEvent::new(
                    row.try_get("name").map_err(get_err)?,
                    row.try_get("payload").map_err(get_err)?,
                    row.try_get("created_at").map_err(get_err)?,
                ))
            })
            .collect::<Result<Vec<_>, _>>()?;
        tx.commit().await.map_err(|e| from_pg(e, call))?;
        let mut detail = ExecutionDetail::new(execution, now);
        detail.execution.parent_id = parent_id;
        detail.deadline_at = deadline_at;
        detail.updated_at = updated_at;
        detail.steps = steps;
        detail.children = children;
        detail.pending_events = pending_events;
        detail.task = task;
        Ok(Some(detail))
    }

    async fn queue_stats(&self) -> Result<Vec<QueueStats>, Error> {
        queue_stats(self.pool().pool()).await
    }

    async fn list_workers(&self) -> Result<zart::presence::WorkersSeen, Error> {
        crate::audit::list_workers(self.pool().pool()).await
    }
}

/// The rows of [`queries::QUEUE_STATS`] grouped by queue.
async fn queue_stats(pool: &deadpool_postgres::Pool) -> Result<Vec<QueueStats>, Error> {
    let call = Call::new("reading queue statistics");
    let rows = crate::query(pool, queries::QUEUE_STATS, &[], call).await?;
    let get_err = |e| from_pg(e, call);
    let mut groups = Vec::with_capacity(rows.len());
    for row in &rows {
        let executions: i64 = row.try_get("executions").map_err(get_err)?;
        let due: i64 = row.try_get("due").map_err(get_err)?;
        let oldest: Option<i64> = row.try_get("oldest_due_ms").map_err(get_err)?;
        groups.push((
            row.try_get("queue").map_err(get_err)?,
            status(row, call)?,
            u64::try_from(executions).unwrap_or(0),
            u64::try_from(due).unwrap_or(0),
            oldest.map(|ms| Duration::from_millis(u64::try_from(ms).unwrap_or(0))),
        ));
    }
    Ok(QueueStats::collect(groups))
}

fn status(row: &Row, call: Call<'_>) -> Result<ExecutionStatus, Error> {
    let status: String = row.try_get("status").map_err(|e| from_pg(e, call))?;
    ExecutionStatus::parse(&status)
}

fn count(row: &Row, column: &str, call: Call<'_>) -> Result<u32, Error> {
    let n: i32 = row.try_get(column).map_err(|e| from_pg(e, call))?;
    Ok(u32::try_from(n).unwrap_or(0))
}

fn summary(row: &Row, call: Call<'_>) -> Result<ExecutionSummary, Error> {
    let get_err = |e| from_pg(e, call);
    let mut s = ExecutionSummary::new(
        row.try_get("id").map_err(get_err)?,
        row.try_get("task_name").map_err(get_err)?,
        status(row, call)?,
    );
    s.queue = row.try_get("queue").map_err(get_err)?;
    s.attempts = count(row, "attempts", call)?;
    s.parent_id = row.try_get("parent_id").map_err(get_err)?;
    s.created_at = row.try_get("created_at").map_err(get_err)?;
    s.started_at = row.try_get("started_at").map_err(get_err)?;
    s.finished_at = row.try_get("finished_at").map_err(get_err)?;
    Ok(s)
}

fn step(row: &Row, call: Call<'_>) -> Result<StepRecord, Error> {
    let get_err = |e| from_pg(e, call);
    let mut s = StepRecord::new(
        count(row, "seq", call)?,
        row.try_get("name").map_err(get_err)?,
        row.try_get("kind").map_err(get_err)?,
        row.try_get("status").map_err(get_err)?,
    );
    s.attempts = count(row, "attempts", call)?;
    s.output = row.try_get("output").map_err(get_err)?;
    s.error = row
        .try_get::<_, Option<serde_json::Value>>("error")
        .map_err(get_err)?
        .map(error_record);
    s.wake_at = row.try_get("wake_at").map_err(get_err)?;
    s.created_at = row.try_get("created_at").map_err(get_err)?;
    s.updated_at = row.try_get("updated_at").map_err(get_err)?;
    Ok(s)
}
