//! Step results and outcomes (`zart_commit_step`, `zart_retry_step`,
//! `zart_complete_execution`): fenced writes of a claimed run.

use super::p;
use std::sync::Arc;

use mysql_async::Value;

use zart::limits::check_name;
use zart::scheduler::{
    CommitStepParams, CompleteExecutionParams, Lease, Outcome, RetryStepParams, StepStatus, Wakeup,
};
use zart::{Error, ErrorRecord};

use super::cancel::cancel_tree;
use super::fence::{hold, refused, suspend, wake_waiter};
use super::queues::limit_freed;
use super::{check_size, check_wait, Tx};
use crate::clock;
use crate::errors::to_json;
use crate::queries;
use crate::writer::Reply;

/// A step's kind by its name: `patch:` marks a versioning marker, `state:` and `state#` a
/// state value (as `zart_commit_step` on PostgreSQL).
pub(super) fn step_kind(name: &str) -> &'static str {
    if name.starts_with("patch:") {
        "patch"
    } else if name.starts_with("state:") || name.starts_with("state#") {
        "state"
    } else {
        "step"
    }
}

/// One step result to record, checked and serialized (nothing read yet).
#[derive(Clone)]
pub(super) struct StepRow<'a> {
    pub(super) lease: &'a Lease,
    pub(super) name: &'a str,
    seq: u32,
    status: StepStatus,
    output: Option<String>,
    error: Option<String>,
    attempts: u32,
}

impl<'a> StepRow<'a> {
    /// A commit's result, or why it is refused.
    pub(super) fn of(tx: &Tx<'_>, p: &'a CommitStepParams) -> Result<Self, Error> {
        Self::checked(
            tx,
            &p.lease,
            &p.name,
            p.seq,
            p.status,
            p.output.as_ref(),
            p.error.as_ref(),
            p.attempts,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn checked(
        tx: &Tx<'_>,
        lease: &'a Lease,
        name: &'a str,
        seq: u32,
        status: StepStatus,
        output: Option<&serde_json::Value>,
        error: Option<&ErrorRecord>,
        attempts: u32,
    ) -> Result<Self, Error> {
        if status == StepStatus::Waiting {
            return Err(Error::invalid(
                "step status",
                "\"waiting\" is not completed, failed or retrying",
            ));
        }
        check_name("step name", name)?;
        let output = output.map(|v| to_json(v, "a step output")).transpose()?;
        if let Some(text) = &output {
            check_size(tx, "step output", text)?;
        }
        let error = error.map(|e| to_json(e, "a step error")).transpose()?;
        if let Some(text) = &error {
            check_size(tx, "step error", text)?;
        }
        Ok(StepRow {
            lease,
            name,
            seq,
            status,
            output,
            error,
            attempts,
        })
    }

    /// The row's columns in `zart_steps` order: execution_id, name, seq, kind, status, output,
    /// error, attempts, created_at, updated_at.
    pub(super) fn values(&self, now: &str) -> [Value; 10] {
        [
            Value::from(&self.lease.execution_id),
            Value::from(self.name),
            Value::from(self.seq),
            Value::from(step_kind(self.name)),
            Value::from(self.status.as_str()),
            Value::from(&self.output),
            Value::from(&self.error),
            Value::from(self.attempts),
            Value::from(now),
            Value::from(now),
        ]
    }
}

pub(super) async fn commit_step(tx: &mut Tx<'_>, p: &CommitStepParams) -> Result<Reply, Error> {
    let row = StepRow::of(tx, p)?;
    record_step(tx, &row).await?;
    Ok(Reply::Done)
}

pub(super) async fn retry_step(tx: &mut Tx<'_>, p: &RetryStepParams) -> Result<Reply, Error> {
    let delay = clock::millis(p.delay);
    check_wait("retry delay", delay)?;
    let row = StepRow::checked(
        tx,
        &p.lease,
        &p.name,
        p.seq,
        StepStatus::Retrying,
        None,
        Some(&p.error),
        p.attempts,
    )?;
    record_step(tx, &row).await?;
    let run_at = clock::format(tx.now.saturating_add(delay));
    suspend(tx, &p.lease, run_at, "sleeping", "retry", &p.name).await?;
    tx.wake(Wakeup::Timer {
        queue: p.queue.clone(),
    });
    Ok(Reply::Done)
}

/// Records a step result under a held lease; a final result is never overwritten.
async fn record_step(tx: &mut Tx<'_>, s: &StepRow<'_>) -> Result<(), Error> {
    // Locks the task row while the lease is held: a take-over waits for this commit (the
    // upsert's own check reads without a lock under READ COMMITTED).
    hold(tx, s.lease).await?;
    let written = tx
        .exec(
            queries::UPSERT_STEP,
            p![
                s.lease.execution_id,
                s.name,
                s.seq,
                s.status.as_str(),
                s.output,
                s.error,
                s.attempts,
                tx.now_text(),
                s.lease.fence,
                step_kind(s.name)
            ],
            "recording a step",
        )
        .await?;
    if written == 0 {
        // Nothing written: the lease is not held, or the step has its final result.
        hold(tx, s.lease).await?;
        return Err(Error::StepAlreadyRecorded {
            id: s.lease.execution_id.clone(),
            step: s.name.to_owned(),
        });
    }
    Ok(())
}

/// An outcome's columns as stored: its status, output and error, serialized and checked
/// against the payload limit.
pub(super) type OutcomeColumns = (&'static str, Option<String>, Option<String>);

/// `outcome` as [`OutcomeColumns`], or why it is refused.
pub(super) fn outcome_columns(tx: &Tx<'_>, outcome: &Outcome) -> Result<OutcomeColumns, Error> {
    Ok(match outcome {
        Outcome::Completed(value) => {
            let text = to_json(value, "an output")?;
            check_size(tx, "output", &text)?;
            ("completed", Some(text), None)
        }
        Outcome::Failed(record) => {
            let text = to_json(record, "an error record")?;
            check_size(tx, "error", &text)?;
            ("failed", None, Some(text))
        }
    })
}

pub(super) async fn complete_execution(
    tx: &mut Tx<'_>,
    p: &CompleteExecutionParams,
) -> Result<Reply, Error> {
    let id = &p.lease.execution_id;
    let (status, output, error) = outcome_columns(tx, &p.outcome)?;
    let removed = tx
        .exec(
            queries::DELETE_HELD_TASK,
            p![id, p.lease.fence],
            "recording an outcome",
        )
        .await?;
    if removed == 0 {
        return Err(refused(tx, id).await?);
    }
    let (parent, queue): (Option<String>, Option<String>) = tx
        .first::<(Option<String>, Option<String>, Option<String>)>(
            queries::DEADLINE_AND_PARENT,
            p![id],
            "recording an outcome",
        )
        .await?
        .map(|(_, p, q)| (p, q))
        .unwrap_or_default();
    tx.exec(
        queries::FINISH_EXECUTION,
        p![id, status, output, error, tx.now_text()],
        "recording an outcome",
    )
    .await?;
    let mut finished = vec![id.clone()];
    if status == "failed" {
        // A failed execution's unfinished descendants are cancelled, as a cancelled one's are.
        finished.extend(cancel_tree(tx, id, false).await?);
    }
    tx.wake(Wakeup::Finished {
        execution_ids: Arc::from(finished),
    });
    // The run ended: in a limited queue, a waiting claim may go.
    if let Some(queue) = queue {
        limit_freed(tx, &queue).await?;
    }
    if let Some(parent) = parent {
        if let Some(queue) = wake_waiter(tx, &parent, "child", id).await? {
            tx.wake(Wakeup::Work { queue });
        }
    }
    Ok(Reply::Done)
}
