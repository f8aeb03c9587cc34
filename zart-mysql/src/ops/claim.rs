//! Claims (`zart_claim_tasks`): the due tasks `pick_tasks` picks (priorities first, names in
//! turn from a random first one, within a limited queue's limits), each leased with a new
//! random 62-bit fence and, in a limited queue, recorded as a run; a claim ends the sleep its
//! task was woken from and returns everything a replay needs.

use super::p;
use zart::scheduler::{ClaimTasksParams, ClaimedTask, Lease, RecordedStep};
use zart::Error;

use super::pick::{pick_tasks, Due, Pick};
use super::queues::{delete_spent_runs, lock_queue_limits, record_run};
use super::{check_lease, parse_name, Tx};
use crate::clock;
use crate::errors::{error_record, from_json, to_json};
use crate::queries;
use crate::writer::Reply;

/// A fence no earlier claim handed out (62 random bits).
fn new_fence() -> i64 {
    rand::random::<i64>() & ((1_i64 << 62) - 1)
}

/// The task names a claim walks, each once, from a random first one: which name goes first
/// rotates, so a flood of one task name cannot starve the others.
pub(super) fn claim_order(task_names: &[String]) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::with_capacity(task_names.len());
    for name in task_names {
        if !names.contains(&name.as_str()) {
            names.push(name);
        }
    }
    if !names.is_empty() {
        let first = rand::random_range(0..names.len());
        names.rotate_left(first);
    }
    names
}

pub(super) async fn claim_tasks(tx: &mut Tx<'_>, p: &ClaimTasksParams) -> Result<Reply, Error> {
    let lease_ms = check_lease(p.lease)?;
    let names = claim_order(&p.task_names);
    if names.is_empty() || p.limit == 0 {
        return Ok(Reply::Claimed(Vec::new()));
    }
    let limits = lock_queue_limits(tx, &p.queue).await?;
    if let Some(limits) = &limits {
        delete_spent_runs(tx, &p.queue, limits).await?;
    }
    let due = pick_tasks(
        tx,
        &Pick {
            queue: &p.queue,
            names: &names,
            limit: usize::try_from(p.limit).unwrap_or(usize::MAX),
            now: tx.now,
            oldest_first: p.oldest_first,
        },
        limits.as_ref(),
    )
    .await?;

    let lease_until = clock::format(tx.now.saturating_add(lease_ms));
    let mut claimed = Vec::with_capacity(due.len());
    for task in due {
        let limit_key = task.limit_key.clone();
        let task = claim_one(tx, p, task, &lease_until).await?;
        if limits.is_some() {
            record_run(tx, &p.queue, &task.lease, limit_key.as_deref()).await?;
        }
        claimed.push(task);
    }
    Ok(Reply::Claimed(claimed))
}

async fn claim_one(
    tx: &mut Tx<'_>,
    p: &ClaimTasksParams,
    task: Due,
    lease_until: &str,
) -> Result<ClaimedTask, Error> {
    let Due {
        id,
        wait_kind,
        wait_name,
        task_name,
        attempts,
        recoveries,
        ..
    } = task;
    let id = id.as_str();
    let now = tx.now_text();
    let fence = new_fence();
    tx.exec(
        queries::CLAIM_TASK,
        p![id, p.worker_id, lease_until, fence, attempts, recoveries],
        "claiming",
    )
    .await?;
    if wait_kind.as_deref() == Some("sleep") {
        // A sleep that is over ends here, as `sleep` would end it, so the replay finds it
        // completed (written under this claim: if the claim is lost, so is this).
        tx.exec(
            queries::END_WOKEN_SLEEP,
            p![id, wait_name, to_json(&now, "the time")?, now],
            "claiming",
        )
        .await?;
    }
    tx.exec(queries::START_RUNNING, p![id, attempts, now], "claiming")
        .await?;
    let (parent_id, input, deadline_at): (Option<String>, String, Option<String>) = tx
        .one(queries::CLAIMED_EXECUTION, p![id], "claiming")
        .await?;
    let deadline_in = match deadline_at {
        Some(at) => Some(clock::duration(
            clock::parse_stored(&at, "a deadline")? - tx.now,
        )),
        None => None,
    };
    // Steps are written only under a claim, so a first claim has none to read.
    let steps = if attempts <= 1 {
        Vec::new()
    } else {
        recorded_steps(tx, id).await?
    };
    Ok(ClaimedTask {
        lease: Lease {
            backend_key: 0,
            execution_id: id.to_owned(),
            fence,
        },
        task_name,
        queue: p.queue.clone(),
        parent_id,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        recoveries: u32::try_from(recoveries).unwrap_or(u32::MAX),
        input: from_json(&input, &format!("the input of execution {id:?}"))?,
        deadline_in,
        steps,
    })
}

type StepRow = (
    String,
    i64,
    String,
    Option<String>,
    Option<String>,
    i64,
    String,
);

async fn recorded_steps(tx: &mut Tx<'_>, id: &str) -> Result<Vec<RecordedStep>, Error> {
    let rows: Vec<StepRow> = tx
        .all(queries::RECORDED_STEPS, p![id], "reading recorded steps")
        .await?;
    let mut steps = Vec::new();
    for row in rows {
        let (name, seq, status, output, error, attempts, kind) = row;
        let output = match output {
            Some(text) => Some(from_json(&text, &format!("the output of step {name:?}"))?),
            None => None,
        };
        steps.push(RecordedStep {
            seq: u32::try_from(seq).unwrap_or(0),
            status: parse_name(&status, "a step status")?,
            output,
            error: error.as_deref().map(error_record),
            attempts: u32::try_from(attempts).unwrap_or(0),
            kind: parse_name(&kind, "a step kind")?,
            name,
        });
    }
    Ok(steps)
}
