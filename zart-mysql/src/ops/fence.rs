//! Fencing and suspension: whether a lease is held, why a fenced write is refused, and giving
//! a held lease up until a time (`zart_lock_task`, `zart_fence_code`, `zart_suspend`).

use super::p;
use zart::scheduler::Lease;
use zart::Error;

use super::queues::limit_freed;
use super::Tx;
use crate::queries;

/// Succeeds while `lease` is held (the task exists, its fence is this one, it is locked);
/// else [`Error::Cancelled`] if the execution was cancelled, [`Error::LeaseLost`] otherwise.
pub(super) async fn hold(tx: &mut Tx<'_>, lease: &Lease) -> Result<(), Error> {
    let held: i64 = tx
        .one(
            queries::HELD_TASK,
            p![lease.execution_id, lease.fence],
            "checking a lease",
        )
        .await?;
    if held == 0 {
        return Err(refused(tx, &lease.execution_id).await?);
    }
    Ok(())
}

/// Why a fenced write of `id` was refused.
pub(super) async fn refused(tx: &mut Tx<'_>, id: &str) -> Result<Error, Error> {
    let status: Option<String> = tx
        .first::<(String, Option<String>)>(queries::EXECUTION_STATUS, p![id], "checking a lease")
        .await?
        .map(|(status, _)| status);
    Ok(if status.as_deref() == Some("cancelled") {
        Error::Cancelled { id: id.to_owned() }
    } else {
        Error::LeaseLost { id: id.to_owned() }
    })
}

/// Gives a held lease up: the execution gets `status`, the task is due at `run_at` (capped by
/// the deadline: a deadline cuts any wait short) and records what it waits for. The run ends:
/// in a limited queue, that wakes the queue's workers.
pub(super) async fn suspend(
    tx: &mut Tx<'_>,
    lease: &Lease,
    run_at: String,
    status: &str,
    wait_kind: &str,
    wait_name: &str,
) -> Result<(), Error> {
    let (deadline, queue): (Option<String>, Option<String>) = tx
        .first::<(Option<String>, Option<String>, Option<String>)>(
            queries::DEADLINE_AND_PARENT,
            p![&lease.execution_id],
            "suspending an execution",
        )
        .await?
        .map(|(d, _, q)| (d, q))
        .unwrap_or_default();
    tx.exec(
        queries::SUSPEND_EXECUTION,
        p![lease.execution_id, status, tx.now_text()],
        "suspending an execution",
    )
    .await?;
    let run_at = match deadline {
        Some(deadline) if deadline < run_at => deadline,
        _ => run_at,
    };
    tx.exec(
        queries::SUSPEND_TASK,
        p![
            lease.execution_id,
            lease.fence,
            run_at,
            wait_kind,
            wait_name
        ],
        "suspending an execution",
    )
    .await?;
    match queue {
        Some(queue) => limit_freed(tx, &queue).await,
        None => Ok(()),
    }
}

/// Makes `id` due now if it is suspended waiting for exactly this (kind, name); returns its
/// queue if it was woken.
pub(super) async fn wake_waiter(
    tx: &mut Tx<'_>,
    id: &str,
    wait_kind: &str,
    wait_name: &str,
) -> Result<Option<String>, Error> {
    let what = "waking a waiting execution";
    lock_task(tx, id, what).await?;
    let woken = tx
        .exec(
            queries::WAKE_WAITER,
            p![id, wait_kind, wait_name, tx.now_text()],
            what,
        )
        .await?;
    if woken == 0 {
        return Ok(None);
    }
    tx.first(queries::TASK_QUEUE, p![id], what).await
}

/// Locks `id`'s task row until commit (see `queries::LOCK_TASK`).
pub(super) async fn lock_task(tx: &mut Tx<'_>, id: &str, what: &str) -> Result<(), Error> {
    let _: i64 = tx.one(queries::LOCK_TASK, p![id], what).await?;
    Ok(())
}
