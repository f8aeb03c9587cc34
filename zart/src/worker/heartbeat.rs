//! The heartbeat: renews every lease the worker holds, in one call per interval.
//!
//! A run whose lease the backend no longer grants (it expired and may have been taken over)
//! is aborted at that heartbeat, so this worker stops running an execution it does not hold.
//! A failed heartbeat is logged and tried again at the next interval.

use super::run::lease_lost;
use super::{lock, RunningMap, WorkerConfig};
use crate::scheduler::{DynScheduler, HeartbeatParams, Lease};
use crate::telemetry;

/// Renews every lease this worker holds, once per interval, in one call.
pub(super) async fn heartbeat_loop(
    scheduler: DynScheduler,
    worker_id: String,
    config: WorkerConfig,
    running: RunningMap,
) {
    let mut interval = tokio::time::interval(config.heartbeat_interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval.tick().await;
    loop {
        interval.tick().await;
        let leases: Vec<Lease> = lock(&running).values().map(|r| r.lease.clone()).collect();
        if leases.is_empty() {
            continue;
        }
        let params = HeartbeatParams {
            worker_id: worker_id.clone(),
            lease: config.lease_duration,
            leases: leases.clone(),
        };
        match scheduler.heartbeat(params).await {
            Ok(held) => {
                metrics::counter!(telemetry::LEASE_RENEWALS).increment(held.len() as u64);
                let held: std::collections::HashSet<Lease> = held.into_iter().collect();
                let running = lock(&running);
                for lease in leases.iter().filter(|l| !held.contains(*l)) {
                    if let Some(run) = running.get(&lease.execution_id) {
                        if run.lease == *lease {
                            tracing::warn!(
                                execution.id = %lease.execution_id,
                                "lease lost; stopping this run"
                            );
                            run.abort.abort();
                            lease_lost("heartbeat");
                        }
                    }
                }
            }
            Err(err) => tracing::warn!(
                error = %crate::error::error_chain(&err),
                "heartbeat failed; leases may expire"
            ),
        }
    }
}
