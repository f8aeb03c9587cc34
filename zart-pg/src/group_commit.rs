//! Group commit: step results and outcomes from many executions share transactions.
//!
//! Callers queue their write and wait for its own result; a background task takes everything
//! queued, writes it with one statement in one transaction (`zart_commit_steps`,
//! `zart_complete_executions`), and answers each caller. While one batch is in flight the next
//! accumulates, so batches grow with load, and a lone write on an idle worker goes out at once:
//! no flush timer ever delays it. A step still returns to its workflow only once its own result
//! is durable. If a whole batch fails (an unexpected error), its items are retried one by one,
//! so one bad item cannot fail the others.

use std::sync::Arc;

use async_trait::async_trait;
use deadpool_postgres::Pool;
use postgres_types::Type;
use zart::group_commit::{BatchWriter, Batcher, DEFAULT_MAX_BATCH};
use zart::scheduler::{CommitStepParams, CompleteExecutionParams, Outcome};
use zart::Error;

use crate::citus::{ByShard, ShardMap};
use crate::errors::{from_pg, Call};
use crate::queries;
use crate::{int4, query};

/// The two batchers (steps, outcomes) over one pool; their writer tasks stop when this is
/// dropped.
pub(crate) struct GroupCommit {
    steps: Batcher<CommitStepParams, ()>,
    outcomes: Batcher<CompleteExecutionParams, Option<String>>,
}

impl GroupCommit {
    /// Starts the writer tasks on the current runtime.
    pub(crate) fn start(pool: Pool, shards: Arc<ShardMap>) -> Self {
        let steps = ByShard::new(
            Steps(pool.clone()),
            shards.clone(),
            |p: &CommitStepParams| crate::bucket_of(&p.lease),
        );
        let outcomes = ByShard::new(Outcomes(pool), shards, |p: &CompleteExecutionParams| {
            crate::bucket_of(&p.lease)
        });
        GroupCommit {
            steps: Batcher::start("steps", Arc::new(steps), DEFAULT_MAX_BATCH),
            outcomes: Batcher::start("outcomes", Arc::new(outcomes), DEFAULT_MAX_BATCH),
        }
    }

    /// Records one step result, sharing a transaction with whatever else is queued.
    pub(crate) async fn commit_step(&self, params: CommitStepParams) -> Result<(), Error> {
        self.steps.submit(params).await
    }

    /// Records one outcome; returns the queue of a parent it woke.
    pub(crate) async fn complete(
        &self,
        params: CompleteExecutionParams,
    ) -> Result<Option<String>, Error> {
        self.outcomes.submit(params).await
    }
}

/// Step results: `zart_commit_steps`, or `zart_commit_step` one by one.
struct Steps(Pool);

#[async_trait]
impl BatchWriter<CommitStepParams, ()> for Steps {
    async fn write_batch(
        &self,
        items: &[CommitStepParams],
    ) -> Result<Vec<Result<(), Error>>, Error> {
        write_steps_batch(&self.0, items).await
    }

    async fn write_one(&self, item: &CommitStepParams) -> Result<(), Error> {
        write_step(&self.0, item).await
    }
}

/// Outcomes: `zart_complete_executions`, or `zart_complete_execution` one by one.
struct Outcomes(Pool);

#[async_trait]
impl BatchWriter<CompleteExecutionParams, Option<String>> for Outcomes {
    async fn write_batch(
        &self,
        items: &[CompleteExecutionParams],
    ) -> Result<Vec<Result<Option<String>, Error>>, Error> {
        write_outcomes_batch(&self.0, items).await
    }

    async fn write_one(&self, item: &CompleteExecutionParams) -> Result<Option<String>, Error> {
        write_outcome(&self.0, item).await
    }
}

/// The call of a batch, for its span and errors: a batch of one names its execution (and step).
fn batch_call<'a>(
    what: &'static str,
    items: usize,
    first: Option<(&'a str, Option<&'a str>)>,
) -> Call<'a> {
    let call = match first.filter(|_| items == 1) {
        Some((id, Some(step))) => Call::execution(what, id).step(step),
        Some((id, None)) => Call::execution(what, id),
        None => Call::new(what),
    };
    call.batch(items)
}

/// Maps a per-item code from the batch functions.
fn item_result(code: Option<&str>, id: &str, step: Option<&str>) -> Result<(), Error> {
    match code {
        None => Ok(()),
        // "ZA004 invalid <field>: <reason>": an item the engine would never write.
        Some(c) if c.starts_with(crate::sqlstate::INVALID_INPUT) => Err(
            crate::errors::invalid_input(c[crate::sqlstate::INVALID_INPUT.len()..].trim_start()),
        ),
        Some(crate::sqlstate::CANCELLED) => Err(Error::Cancelled { id: id.to_owned() }),
        Some(crate::sqlstate::STEP_RECORDED) => Err(Error::StepAlreadyRecorded {
            id: id.to_owned(),
            step: step.unwrap_or_default().to_owned(),
        }),
        Some(_) => Err(Error::LeaseLost { id: id.to_owned() }),
    }
}

async fn write_steps_batch(
    pool: &Pool,
    items: &[CommitStepParams],
) -> Result<Vec<Result<(), Error>>, Error> {
    let n = items.len();
    let mut buckets = Vec::with_capacity(n);
    let mut ids = Vec::with_capacity(n);
    let mut fences = Vec::with_capacity(n);
    let mut names = Vec::with_capacity(n);
    let mut seqs = Vec::with_capacity(n);
    let mut statuses = Vec::with_capacity(n);
    let mut outputs = Vec::with_capacity(n);
    let mut errors = Vec::with_capacity(n);
    let mut attempts = Vec::with_capacity(n);
    for p in items {
        buckets.push(crate::bucket_of(&p.lease)?);
        ids.push(p.lease.execution_id.as_str());
        fences.push(p.lease.fence);
        names.push(p.name.as_str());
        seqs.push(int4(p.seq));
        statuses.push(p.status.as_str());
        outputs.push(p.output.clone());
        errors.push(p.error.as_ref().map(crate::error_json).transpose()?);
        attempts.push(int4(p.attempts));
    }
    let rows = query(
        pool,
        queries::COMMIT_STEPS,
        &[
            (&buckets, Type::INT2_ARRAY),
            (&ids, Type::TEXT_ARRAY),
            (&fences, Type::INT8_ARRAY),
            (&names, Type::TEXT_ARRAY),
            (&seqs, Type::INT4_ARRAY),
            (&statuses, Type::TEXT_ARRAY),
            (&outputs, Type::JSONB_ARRAY),
            (&errors, Type::JSONB_ARRAY),
            (&attempts, Type::INT4_ARRAY),
        ],
        batch_call(
            "recording steps",
            items.len(),
            items
                .first()
                .map(|p| (p.lease.execution_id.as_str(), Some(p.name.as_str()))),
        ),
    )
    .await?;
    let codes: Vec<Option<String>> = rows
        .first()
        .map(|r| r.try_get(0))
        .transpose()
        .map_err(|e| from_pg(e, Call::new("recording steps")))?
        .unwrap_or_default();
    Ok(items
        .iter()
        .enumerate()
        .map(|(i, p)| {
            item_result(
                codes.get(i).and_then(|c| c.as_deref()),
                &p.lease.execution_id,
                Some(&p.name),
            )
        })
        .collect())
}

async fn write_step(pool: &Pool, p: &CommitStepParams) -> Result<(), Error> {
    let call = Call::execution("recording a step", &p.lease.execution_id).step(&p.name);
    let error = p.error.as_ref().map(crate::error_json).transpose()?;
    let seq = int4(p.seq);
    let attempts = int4(p.attempts);
    query(
        pool,
        queries::COMMIT_STEP,
        &[
            (&crate::bucket_of(&p.lease)?, Type::INT2),
            (&p.lease.execution_id, Type::TEXT),
            (&p.lease.fence, Type::INT8),
            (&p.name, Type::TEXT),
            (&seq, Type::INT4),
            (&p.status.as_str(), Type::TEXT),
            (&p.output, Type::JSONB),
            (&error, Type::JSONB),
            (&attempts, Type::INT4),
        ],
        call,
    )
    .await?;
    Ok(())
}

fn outcome_parts(
    p: &CompleteExecutionParams,
) -> Result<
    (
        &'static str,
        Option<serde_json::Value>,
        Option<serde_json::Value>,
    ),
    Error,
> {
    Ok(match &p.outcome {
        Outcome::Completed(output) => ("completed", Some(output.clone()), None),
        Outcome::Failed(error) => ("failed", None, Some(crate::error_json(error)?)),
    })
}

async fn write_outcomes_batch(
    pool: &Pool,
    items: &[CompleteExecutionParams],
) -> Result<Vec<Result<Option<String>, Error>>, Error> {
    let n = items.len();
    let mut buckets = Vec::with_capacity(n);
    let mut ids = Vec::with_capacity(n);
    let mut fences = Vec::with_capacity(n);
    let mut statuses = Vec::with_capacity(n);
    let mut outputs = Vec::with_capacity(n);
    let mut errors = Vec::with_capacity(n);
    for p in items {
        let (status, output, error) = outcome_parts(p)?;
        buckets.push(crate::bucket_of(&p.lease)?);
        ids.push(p.lease.execution_id.as_str());
        fences.push(p.lease.fence);
        statuses.push(status);
        outputs.push(output);
        errors.push(error);
    }
    let call = batch_call(
        "completing executions",
        n,
        items.first().map(|p| (p.lease.execution_id.as_str(), None)),
    );
    let rows = query(
        pool,
        queries::COMPLETE_EXECUTIONS,
        &[
            (&buckets, Type::INT2_ARRAY),
            (&ids, Type::TEXT_ARRAY),
            (&fences, Type::INT8_ARRAY),
            (&statuses, Type::TEXT_ARRAY),
            (&outputs, Type::JSONB_ARRAY),
            (&errors, Type::JSONB_ARRAY),
        ],
        call,
    )
    .await?;
    if rows.len() != n {
        return Err(Error::Database {
            message: format!(
                "zart_complete_executions returned {} rows for {n}",
                rows.len()
            ),
            source: None,
        });
    }
    items
        .iter()
        .zip(&rows)
        .map(|(p, row)| {
            let code: Option<String> = row.try_get("code").map_err(|e| from_pg(e, call))?;
            let queue: Option<String> =
                row.try_get("parent_queue").map_err(|e| from_pg(e, call))?;
            Ok(item_result(code.as_deref(), &p.lease.execution_id, None).map(|()| queue))
        })
        .collect()
}

async fn write_outcome(pool: &Pool, p: &CompleteExecutionParams) -> Result<Option<String>, Error> {
    let call = Call::execution("completing an execution", &p.lease.execution_id);
    let (status, output, error) = outcome_parts(p)?;
    let rows = query(
        pool,
        queries::COMPLETE_EXECUTION,
        &[
            (&crate::bucket_of(&p.lease)?, Type::INT2),
            (&p.lease.execution_id, Type::TEXT),
            (&p.lease.fence, Type::INT8),
            (&status, Type::TEXT),
            (&output, Type::JSONB),
            (&error, Type::JSONB),
        ],
        call,
    )
    .await?;
    rows.first()
        .map(|r| r.try_get(0))
        .transpose()
        .map_err(|e| from_pg(e, call))
        .map(Option::flatten)
}
