//! Claims (`zart_claim_tasks`): the due tasks `pick_tasks` picks (priorities first, names in
//! turn from a random first one, within a limited queue's limits), each leased with a new
//! random 62-bit fence and, in a limited queue, recorded as a run; a claim ends the sleep its
//! task was woken from and returns everything a replay needs.

use super::p;
use std::collections::HashMap;

use mysql_async::Value;
use zart::scheduler::{ClaimTasksParams, ClaimedTask, Lease, RecordedStep};
use zart::Error;

use super::group::{case, marks, padded, CHUNK};
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
    for chunk in due.chunks(CHUNK) {
        let tasks = claim_chunk(tx, p, chunk, &lease_until).await?;
        if limits.is_some() {
            for (task, due) in tasks.iter().zip(chunk) {
                record_run(tx, &p.queue, &task.lease, due.limit_key.as_deref()).await?;
            }
        }
        claimed.extend(tasks);
    }
    Ok(Reply::Claimed(claimed))
}

/// Leases `due` (distinct tasks, at most [`CHUNK`]) with three list statements whatever
/// their number (see [`super::group`]), plus one per task woken from a sleep and one per task
/// claimed before (its recorded steps); returns them in the order given.
async fn claim_chunk(
    tx: &mut Tx<'_>,
    p: &ClaimTasksParams,
    due: &[Due],
    lease_until: &str,
) -> Result<Vec<ClaimedTask>, Error> {
    let what = "claiming";
    let now = tx.now_text();
    let fences: Vec<i64> = due.iter().map(|_| new_fence()).collect();
    let rows = padded(&due.iter().zip(&fences).collect::<Vec<_>>());
    let n = rows.len();
    let arms = |value: &dyn Fn(&Due, i64) -> Value| -> Vec<Value> {
        rows.iter()
            .flat_map(|(d, fence)| [Value::from(&d.id), value(d, **fence)])
            .collect()
    };
    let ids = || rows.iter().map(|(d, _)| Value::from(&d.id));
    let mut params = vec![Value::from(&p.worker_id), Value::from(lease_until)];
    params.extend(arms(&|_, fence| Value::from(fence)));
    params.extend(arms(&|d, _| Value::from(d.attempts)));
    params.extend(arms(&|d, _| Value::from(d.recoveries)));
    params.extend(ids());
    let sql = format!(
        "update zart_tasks set locked_by = ?, run_at = ?, {}, {}, {},
            wait_kind = null, wait_name = null
         where execution_id in ({})",
        case("fence", "execution_id", n),
        case("attempts", "execution_id", n),
        case("recoveries", "execution_id", n),
        marks(n, "?")
    );
    tx.exec_list(&sql, params, what).await?;
    for d in due {
        if d.wait_kind.as_deref() == Some("sleep") {
            // A sleep that is over ends here, as `sleep` would end it, so the replay finds it
            // completed (written under this claim: if the claim is lost, so is this).
            tx.exec(
                queries::END_WOKEN_SLEEP,
                p![d.id, d.wait_name, to_json(&now, "the time")?, now],
                what,
            )
            .await?;
        }
    }
    let mut params = arms(&|d, _| Value::from(d.attempts));
    params.extend([Value::from(&now), Value::from(&now)]);
    params.extend(ids());
    let sql = format!(
        "update zart_executions set status = 'running', {},
            started_at = coalesce(started_at, ?), updated_at = ?
         where id in ({})",
        case("attempts", "id", n),
        marks(n, "?")
    );
    tx.exec_list(&sql, params, what).await?;
    let sql = format!(
        "select id, parent_id, input, deadline_at from zart_executions where id in ({})",
        marks(n, "?")
    );
    let mut read: HashMap<String, (Option<String>, String, Option<String>)> = tx
        .all_list::<(String, Option<String>, String, Option<String>)>(&sql, ids().collect(), what)
        .await?
        .into_iter()
        .map(|(id, parent, input, deadline)| (id, (parent, input, deadline)))
        .collect();
    let mut claimed = Vec::with_capacity(due.len());
    for (d, fence) in due.iter().zip(fences) {
        let (parent_id, input, deadline_at) = read.remove(&d.id).ok_or_else(|| {
            crate::errors::internal(format!("claiming: execution {:?} has no row", d.id))
        })?;
        claimed.push(claimed_task(tx, p, d, fence, parent_id, &input, deadline_at).await?);
    }
    Ok(claimed)
}

/// What a claim hands the worker for one task.
async fn claimed_task(
    tx: &mut Tx<'_>,
    p: &ClaimTasksParams,
    d: &Due,
    fence: i64,
    parent_id: Option<String>,
    input: &str,
    deadline_at: Option<String>,
) -> Result<ClaimedTask, Error> {
    let id = d.id.as_str();
    let deadline_in = match deadline_at {
        Some(at) => Some(clock::duration(
            clock::parse_stored(&at, "a deadline")? - tx.now,
        )),
        None => None,
    };
    // Steps are written only under a claim, so a first claim has none to read.
    let steps = if d.attempts <= 1 {
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
        task_name: d.task_name.clone(),
        queue: p.queue.clone(),
        parent_id,
        attempts: u32::try_from(d.attempts).unwrap_or(u32::MAX),
        recoveries: u32::try_from(d.recoveries).unwrap_or(u32::MAX),
        input: from_json(input, &format!("the input of execution {id:?}"))?,
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
