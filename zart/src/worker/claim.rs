//! The claim loop: claims due executions into the worker's free slots and sleeps between claims.
//!
//! It never runs more than `concurrency` executions at once, claims in batches under load, and
//! sleeps without polling until a wake-up for its queue, a run ending, the next due time it
//! knows of, or the sweep; a lagged or closed wake-up stream makes it look again, so no
//! wake-up is lost.

use std::time::Instant;

use tokio::sync::{broadcast, mpsc, watch};
use tracing::Instrument;

use super::run::RunEnded;
use super::{lock, Core};
use crate::backoff::Backoff;
use crate::handoff::{Handed, OfferHandle};
use crate::scheduler::{ClaimTasksParams, NextRunAtParams, Wakeup};
use crate::{telemetry, Error};

impl Core {
    pub(super) async fn claim_loop(&mut self, shutdown_rx: &mut watch::Receiver<bool>) {
        let mut wakeups = self.scheduler.subscribe();
        // There may be work we were not told about: look at once.
        let mut backlog = true;
        let mut next_due: Option<Instant> = None;
        let mut backoff = Backoff::new();
        let mut next_sweep = Instant::now() + self.config.sweep_interval;

        // Under load, claim in batches: wait for a quarter of the slots to free up rather than
        // claim one execution per finished run (each claim is a commit).
        let batch = (self.config.concurrency / 4).max(1);
        while !*shutdown_rx.borrow() {
            let free = self.free_slots();
            let idle = free == self.config.concurrency;
            if backlog && free > 0 && (free >= batch || idle) {
                match self.claim(free).await {
                    Ok(claimed) => {
                        backoff.reset();
                        backlog = claimed == free;
                        if !backlog {
                            next_due = self.next_due().await;
                        }
                        next_sweep = Instant::now() + self.config.sweep_interval;
                        if backlog {
                            continue;
                        }
                    }
                    Err(err) => {
                        let delay = backoff.next();
                        tracing::warn!(
                            error = %crate::error::error_chain(&err),
                            retry_in_ms = delay.as_millis() as u64,
                            "claim failed; retrying"
                        );
                        tokio::select! {
                            _ = tokio::time::sleep(delay) => {}
                            _ = shutdown_rx.changed() => {}
                        }
                        continue;
                    }
                }
            }

            let wake_at = next_due.map_or(next_sweep, |due| due.min(next_sweep));
            // Parked: in-process starts may fill the free slots meanwhile (never while the
            // worker claims, so the two cannot overfill it). Counted afresh: a claim above
            // may have just taken some of the slots `free` counted.
            let offered = if backlog { 0 } else { self.free_slots() };
            if let Some((offer, _)) = &self.handoff {
                offer.open(offered);
            }
            let mut handed = None;
            tokio::select! {
                _ = shutdown_rx.changed() => {}
                Some(h) = recv_handed(&mut self.handoff) => handed = Some(h),
                Some(ended) = self.ended.1.recv() => {
                    self.on_run_ended(ended, &mut next_due);
                    while let Ok(more) = self.ended.1.try_recv() {
                        self.on_run_ended(more, &mut next_due);
                    }
                }
                wakeup = wakeups.recv() => match wakeup {
                    Ok(Wakeup::Work { queue }) if queue == self.config.queue => backlog = true,
                    Ok(Wakeup::Timer { queue }) if queue == self.config.queue => {
                        next_due = earliest(next_due, self.next_due().await);
                    }
                    Ok(Wakeup::Resync) | Err(broadcast::error::RecvError::Lagged(_)) => backlog = true,
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Closed) => {
                        wakeups = self.scheduler.subscribe();
                        backlog = true;
                    }
                },
                _ = tokio::time::sleep_until(wake_at.into()) => {
                    backlog = true;
                    next_due = None;
                    next_sweep = Instant::now() + self.config.sweep_interval;
                }
            }
            if let Some((offer, _)) = &self.handoff {
                self.handed_pending += offer.close(offered);
            }
            if let Some(h) = handed {
                self.take_handed(h);
            }
        }
    }

    /// Slots neither running nor reserved by an in-process start whose task has not arrived.
    fn free_slots(&self) -> usize {
        let taken = lock(&self.running).len() + self.handed_pending;
        self.config.concurrency.saturating_sub(taken)
    }

    /// Starts' answers to reserved slots, this one and any queued behind it: each leased task
    /// runs at once.
    fn take_handed(&mut self, first: Handed) {
        let mut next = Some(first);
        while let Some(handed) = next {
            self.handed_pending = self.handed_pending.saturating_sub(1);
            self.run_handed(handed);
            next = self.handoff.as_mut().and_then(|(_, rx)| rx.try_recv().ok());
        }
    }

    /// Runs a task a start leased for this worker (counted as claimed, as a claim's are);
    /// an unused reservation runs nothing.
    fn run_handed(&self, handed: Handed) {
        if let Handed::Task(task) = handed {
            metrics::counter!(telemetry::CLAIMED).increment(1);
            self.spawn_run(*task);
        }
    }

    /// At shutdown: no more offers; a task already handed runs (the shutdown then finishes or
    /// releases it with the others), and a start that hands one later finds the worker gone
    /// and releases its lease.
    pub(super) fn withdraw_offer(&mut self) {
        if let Some((offer, mut rx)) = self.handoff.take() {
            drop(offer);
            rx.close();
            while let Ok(handed) = rx.try_recv() {
                self.run_handed(handed);
            }
        }
    }

    fn on_run_ended(&self, ended: RunEnded, next_due: &mut Option<Instant>) {
        lock(&self.running).remove(&ended.execution_id);
        if let Some(delay) = ended.due_again_in {
            *next_due = earliest(*next_due, Some(Instant::now() + delay));
        }
    }

    /// Claims up to `free` tasks and starts them; returns how many were claimed.
    async fn claim(&mut self, free: usize) -> Result<usize, Error> {
        let started = Instant::now();
        self.claims += 1;
        let tasks = self
            .scheduler
            .claim_tasks(ClaimTasksParams {
                worker_id: self.worker_id.clone(),
                queue: self.config.queue.clone(),
                task_names: self.task_names.clone(),
                limit: u32::try_from(free).unwrap_or(u32::MAX),
                lease: self.config.lease_duration,
                oldest_first: self.claims.is_multiple_of(super::OLDEST_FIRST_EVERY),
            })
            .instrument(tracing::debug_span!("zart.worker.claim", limit = free))
            .await?;
        metrics::histogram!(telemetry::CLAIM_DURATION).record(started.elapsed().as_secs_f64());
        metrics::counter!(telemetry::CLAIMED).increment(tasks.len() as u64);
        let count = tasks.len();
        for task in tasks {
            self.spawn_run(task);
        }
        Ok(count)
    }

    async fn next_due(&self) -> Option<Instant> {
        let params = NextRunAtParams {
            queue: self.config.queue.clone(),
            task_names: self.task_names.clone(),
        };
        match self.scheduler.next_run_at(params).await {
            Ok(delay) => delay.map(|d| Instant::now() + d),
            Err(err) => {
                tracing::debug!(error = %err, "next_run_at failed; relying on the sweep");
                None
            }
        }
    }
}

/// The next answer of an in-process start, or never when the worker has no offer.
async fn recv_handed(
    handoff: &mut Option<(OfferHandle, mpsc::UnboundedReceiver<Handed>)>,
) -> Option<Handed> {
    match handoff {
        Some((_, rx)) => rx.recv().await,
        None => std::future::pending().await,
    }
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
