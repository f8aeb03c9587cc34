//! Fencing and suspension: whether a lease is held, why a fenced write is refused, and giving
//! a held lease up until a time (`zart_lock_task`, `zart_fence_code`, `zart_suspend`).

use super::Cached;
use rusqlite::OptionalExtension;
use zart::scheduler::Lease;
use zart::Error;

use super::queues::limit_freed;
use super::Tx;
use crate::errors::SqlResult;
use crate::queries;

/// Succeeds while `lease` is held (the task exists, its fence is this one, it is locked);
/// else [`Error::Cancelled`] if the execution was cancelled, [`Error::LeaseLost`] otherwise.
pub(super) fn hold(tx: &Tx<'_>, lease: &Lease) -> Result<(), Error> {
    let held: i64 = tx
        .conn
        .row_cached(
            queries::HELD_TASK,
            rusqlite::params![lease.execution_id, lease.fence],
            |r| r.get(0),
        )
        .or_db(tx.conn, "checking a lease")?;
    if held == 0 {
        return Err(refused(tx, &lease.execution_id)?);
    }
    Ok(())
}

/// Why a fenced write of `id` was refused.
pub(super) fn refused(tx: &Tx<'_>, id: &str) -> Result<Error, Error> {
    let status: Option<String> = tx
        .conn
        .row_cached(queries::EXECUTION_STATUS, [id], |r| r.get(0))
        .optional()
        .or_db(tx.conn, "checking a lease")?;
    Ok(if status.as_deref() == Some("cancelled") {
        Error::Cancelled { id: id.to_owned() }
    } else {
        Error::LeaseLost { id: id.to_owned() }
    })
}

/// Gives a held lease up: the execution gets `status`, the task is due at `run_at` (capped by
/// the deadline: a deadline cuts any wait short) and records what it waits for. The run ends:
/// in a limited queue, that wakes the queue's workers.
pub(super) fn suspend(
    tx: &mut Tx<'_>,
    lease: &Lease,
    run_at: String,
    status: &str,
    wait_kind: &str,
    wait_name: &str,
) -> Result<(), Error> {
    let (deadline, queue): (Option<String>, Option<String>) = tx
        .conn
        .row_cached(queries::DEADLINE_AND_PARENT, [&lease.execution_id], |r| {
            Ok((r.get(0)?, r.get(2)?))
        })
        .optional()
        .or_db(tx.conn, "suspending an execution")?
        .unwrap_or_default();
    tx.conn
        .exec_cached(
            queries::SUSPEND_EXECUTION,
            rusqlite::params![lease.execution_id, status, tx.now_text()],
        )
        .or_db(tx.conn, "suspending an execution")?;
    let run_at = match deadline {
        Some(deadline) if deadline < run_at => deadline,
        _ => run_at,
    };
    tx.conn
        .exec_cached(
            queries::SUSPEND_TASK,
            rusqlite::params![
                lease.execution_id,
                lease.fence,
                run_at,
                wait_kind,
                wait_name
            ],
        )
        .or_db(tx.conn, "suspending an execution")?;
    match queue {
        Some(queue) => limit_freed(tx, &queue),
        None => Ok(()),
    }
}

/// Makes `id` due now if it is suspended waiting for exactly this (kind, name); returns its
/// queue if it was woken.
pub(super) fn wake_waiter(
    tx: &Tx<'_>,
    id: &str,
    wait_kind: &str,
    wait_name: &str,
) -> Result<Option<String>, Error> {
    tx.conn
        .row_cached(
            queries::WAKE_WAITER,
            rusqlite::params![id, wait_kind, wait_name, tx.now_text()],
            |r| r.get(0),
        )
        .optional()
        .or_db(tx.conn, "waking a waiting execution")
}
