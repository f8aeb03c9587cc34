//! Leases without a step (`zart_heartbeat`, `zart_release_tasks`), and the test clock.

use super::Cached;
use std::time::Duration;

use zart::scheduler::{HeartbeatParams, ReleaseTasksParams, Wakeup};
use zart::Error;

use super::{check_lease, Tx};
use crate::clock;
use crate::errors::SqlResult;
use crate::queries;
use crate::writer::Reply;

pub(super) fn heartbeat(tx: &mut Tx<'_>, p: &HeartbeatParams) -> Result<Reply, Error> {
    let lease_ms = check_lease(p.lease)?;
    let until = clock::format(tx.now.saturating_add(lease_ms));
    let mut renewed = Vec::new();
    for lease in &p.leases {
        let n = tx
            .conn
            .exec_cached(
                queries::RENEW_LEASE,
                rusqlite::params![lease.execution_id, lease.fence, p.worker_id, until],
            )
            .or_db(tx.conn, "heartbeat")?;
        if n > 0 {
            renewed.push(lease.clone());
        }
    }
    Ok(Reply::Renewed(renewed))
}

pub(super) fn release_tasks(tx: &mut Tx<'_>, p: &ReleaseTasksParams) -> Result<Reply, Error> {
    let now = tx.now_text();
    let mut released = 0_u64;
    for lease in &p.leases {
        let n = tx
            .conn
            .exec_cached(
                queries::RELEASE_TASK,
                rusqlite::params![lease.execution_id, lease.fence, p.worker_id, now],
            )
            .or_db(tx.conn, "releasing leases")?;
        if n > 0 {
            tx.conn
                .exec_cached(
                    queries::RESCHEDULE_EXECUTION,
                    rusqlite::params![lease.execution_id, now],
                )
                .or_db(tx.conn, "releasing leases")?;
            released += 1;
        }
    }
    if released > 0 {
        // The released tasks are due now: wake other workers.
        tx.wake(Wakeup::Work {
            queue: p.queue.clone(),
        });
    }
    Ok(Reply::Released(released))
}

/// Moves the test clock forward for every connection, and tells every worker to look again.
pub(super) fn advance_clock(tx: &mut Tx<'_>, by: Duration) -> Result<Reply, Error> {
    if !tx.settings.test_clock {
        return Err(Error::invalid(
            "clock",
            "this scheduler uses the system clock; build it with SqliteOptions::test_clock(true) \
             to move time in tests",
        ));
    }
    tx.conn
        .exec_cached(queries::ADVANCE_CLOCK, [clock::millis(by)])
        .or_db(tx.conn, "moving the test clock")?;
    tx.wake(Wakeup::Resync);
    Ok(Reply::Done)
}
