//! Presence: the worker records itself in the store at start and every
//! [`WorkerConfig::presence_interval`](super::WorkerConfig::presence_interval), with how many
//! executions it runs, and that it stopped at a graceful shutdown (see [`crate::presence`]).
//! A failed record is logged and tried again at the next interval; a backend without a
//! workers table ends the loop.

use std::time::Duration;

use super::{lock, RunningMap};
use crate::presence::WorkerPresence;
use crate::scheduler::DynScheduler;
use crate::Error;

/// Records `presence` every `interval` (the first at once) until aborted.
pub(super) async fn presence_loop(
    scheduler: DynScheduler,
    presence: WorkerPresence,
    interval: Duration,
    running: RunningMap,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut starting = true;
    loop {
        ticker.tick().await;
        let mut now = presence.clone();
        now.running = u32::try_from(lock(&running).len()).unwrap_or(u32::MAX);
        now.starting = starting;
        match scheduler.record_presence(&now).await {
            Ok(()) => starting = false,
            Err(Error::Unsupported { .. }) => {
                tracing::debug!("this backend does not record workers; presence is off");
                return;
            }
            Err(err) => tracing::warn!(
                error = %crate::error::error_chain(&err),
                "recording this worker's presence failed; trying again at the next interval"
            ),
        }
    }
}

/// Records that the worker stopped, giving up after a few seconds (shutdown must not hang on
/// an unreachable store: the record then goes quiet and reads as lost).
pub(super) async fn record_departure(scheduler: &DynScheduler, worker_id: &str) {
    let call = scheduler.record_departure(worker_id);
    match tokio::time::timeout(Duration::from_secs(5), call).await {
        Ok(Ok(_)) | Ok(Err(Error::Unsupported { .. })) => {}
        Ok(Err(err)) => tracing::warn!(
            error = %crate::error::error_chain(&err),
            "recording this worker's stop failed"
        ),
        Err(_) => tracing::warn!("recording this worker's stop timed out"),
    }
}
