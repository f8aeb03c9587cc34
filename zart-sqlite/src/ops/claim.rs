//! Claims (`zart_claim_tasks`): due tasks of the names asked for, names in turn from a random
//! first one, each leased with a new random 62-bit fence; a claim ends the sleep its task was
//! woken from and returns everything a replay needs.

use super::Cached;
use std::collections::HashSet;

use zart::scheduler::{ClaimTasksParams, ClaimedTask, Lease, RecordedStep};
use zart::Error;

use super::{check_lease, parse_name, Tx};
use crate::clock;
use crate::errors::{error_record, from_json, to_json, SqlResult};
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

pub(super) fn claim_tasks(tx: &mut Tx<'_>, p: &ClaimTasksParams) -> Result<Reply, Error> {
    let lease_ms = check_lease(p.lease)?;
    let names = claim_order(&p.task_names);
    if names.is_empty() || p.limit == 0 {
        return Ok(Reply::Claimed(Vec::new()));
    }

    let now = tx.now_text();
    let limit = usize::try_from(p.limit).unwrap_or(usize::MAX);
    let mut due: Vec<Due> = Vec::new();
    let mut seen = HashSet::new();
    let mut select = tx
        .conn
        .prepare_cached(queries::DUE_TASKS)
        .or_db(tx.conn, "claiming")?;
    for name in names {
        let left = limit - due.len();
        if left == 0 {
            break;
        }
        let rows = select
            .query_map(
                rusqlite::params![p.queue, name, now, i64::try_from(left).unwrap_or(i64::MAX)],
                |r| {
                    Ok(Due {
                        id: r.get(0)?,
                        wait_kind: r.get(1)?,
                        wait_name: r.get(2)?,
                        task_name: r.get(3)?,
                        attempts: r.get::<_, i64>(4)?.saturating_add(1),
                        recoveries: r.get(5)?,
                    })
                },
            )
            .or_db(tx.conn, "claiming")?;
        for row in rows {
            let row = row.or_db(tx.conn, "claiming")?;
            if seen.insert(row.id.clone()) {
                due.push(row);
            }
        }
    }
    drop(select);

    let lease_until = clock::format(tx.now.saturating_add(lease_ms));
    let mut claimed = Vec::with_capacity(due.len());
    for task in due {
        claimed.push(claim_one(tx, p, task, &lease_until)?);
    }
    Ok(Reply::Claimed(claimed))
}

/// A due task as the claim read it: the claim count and recoveries it will have once claimed.
struct Due {
    id: String,
    wait_kind: Option<String>,
    wait_name: Option<String>,
    task_name: String,
    attempts: i64,
    recoveries: i64,
}

fn claim_one(
    tx: &Tx<'_>,
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
    } = task;
    let id = id.as_str();
    let now = tx.now_text();
    let fence = new_fence();
    tx.conn
        .exec_cached(
            queries::CLAIM_TASK,
            rusqlite::params![id, p.worker_id, lease_until, fence, attempts, recoveries],
        )
        .or_db(tx.conn, "claiming")?;
    if wait_kind.as_deref() == Some("sleep") {
        // A sleep that is over ends here, as `sleep` would end it, so the replay finds it
        // completed (written under this claim: if the claim is lost, so is this).
        tx.conn
            .exec_cached(
                queries::END_WOKEN_SLEEP,
                rusqlite::params![id, wait_name, to_json(&now, "the time")?, now],
            )
            .or_db(tx.conn, "claiming")?;
    }
    tx.conn
        .exec_cached(queries::START_RUNNING, rusqlite::params![id, attempts, now])
        .or_db(tx.conn, "claiming")?;
    let (parent_id, input, deadline_at): (Option<String>, String, Option<String>) = tx
        .conn
        .row_cached(queries::CLAIMED_EXECUTION, [id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .or_db(tx.conn, "claiming")?;
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
        recorded_steps(tx, id)?
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

fn recorded_steps(tx: &Tx<'_>, id: &str) -> Result<Vec<RecordedStep>, Error> {
    let mut stmt = tx
        .conn
        .prepare_cached(queries::RECORDED_STEPS)
        .or_db(tx.conn, "reading recorded steps")?;
    let rows = stmt
        .query_map([id], |r| r.try_into())
        .or_db(tx.conn, "reading recorded steps")?;
    let mut steps = Vec::new();
    for row in rows {
        let (name, seq, status, output, error, attempts, kind): StepRow =
            row.or_db(tx.conn, "reading recorded steps")?;
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
