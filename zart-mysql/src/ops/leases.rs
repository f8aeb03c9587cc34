//! Leases without a step (`zart_heartbeat`, `zart_release_tasks`), and the test clock.

use super::p;
use std::time::Duration;

use zart::scheduler::{HeartbeatParams, ReleaseTasksParams, Wakeup};
use zart::Error;

use super::{check_lease, Tx};
use crate::clock;
use crate::queries;
use crate::writer::Reply;

pub(super) async fn heartbeat(tx: &mut Tx<'_>, p: &HeartbeatParams) -> Result<Reply, Error> {
    let lease_ms = check_lease(p.lease)?;
    let until = clock::format(tx.now.saturating_add(lease_ms));
    let mut renewed = Vec::new();
    for lease in &p.leases {
        let n = tx
            .exec(
                queries::RENEW_LEASE,
                p![lease.execution_id, lease.fence, p.worker_id, until],
                "heartbeat",
            )
            .await?;
        if n > 0 {
            renewed.push(lease.clone());
        }
    }
    Ok(Reply::Renewed(renewed))
}

pub(super) async fn release_tasks(tx: &mut Tx<'_>, p: &ReleaseTasksParams) -> Result<Reply, Error> {
    let now = tx.now_text();
    let mut released = 0_u64;
    for lease in &p.leases {
        let n = tx
            .exec(
                queries::RELEASE_TASK,
                p![lease.execution_id, lease.fence, p.worker_id, now],
                "releasing leases",
            )
            .await?;
        if n > 0 {
            tx.exec(
                queries::RESCHEDULE_EXECUTION,
                p![lease.execution_id, now],
                "releasing leases",
            )
            .await?;
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
pub(super) async fn advance_clock(tx: &mut Tx<'_>, by: Duration) -> Result<Reply, Error> {
    if !tx.settings.test_clock {
        return Err(Error::invalid(
            "clock",
            "this scheduler uses the system clock; build it with SqliteOptions::test_clock(true) \
             to move time in tests",
        ));
    }
    tx.exec(
        queries::ADVANCE_CLOCK,
        p![clock::millis(by)],
        "moving the test clock",
    )
    .await?;
    tx.wake(Wakeup::Resync);
    Ok(Reply::Done)
}
