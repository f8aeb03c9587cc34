//! Retention in a worker: every interval, prune finished executions past their age, paced so
//! that it takes a small share of the database (see [`crate::retention`]).
//!
//! Each worker with retention configured tries; the backend lets one prune run at a time, so
//! the others find it busy and wait for their next interval. A failed prune is logged and
//! tried again at the next interval.

use crate::retention::{prune, PruneOptions, Retention};
use crate::scheduler::DynScheduler;

/// Runs `retention` every interval until aborted.
pub(super) async fn retention_loop(scheduler: DynScheduler, retention: Retention) {
    let mut interval = tokio::time::interval(retention.interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let options = PruneOptions::new().with_paced(true);
        match prune(&*scheduler, &retention, options, |_, _| {}).await {
            Ok(report) if report.total() > 0 => tracing::info!(
                completed = report.completed,
                failed = report.failed,
                cancelled = report.cancelled,
                busy = report.busy,
                "zart retention deleted finished executions"
            ),
            Ok(report) => tracing::debug!(busy = report.busy, "zart retention: nothing to delete"),
            Err(err) => tracing::warn!(
                error = %crate::error::error_chain(&err),
                "zart retention failed; trying again at the next interval"
            ),
        }
    }
}
