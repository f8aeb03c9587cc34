//! A polling wake-up source for backends without push notifications (zart-sqlite).
//!
//! The backend supplies a [`ChangeProbe`]: a cheap reading that changes whenever another
//! process may have written (SQLite's `PRAGMA data_version`, a counter row). A [`Poller`]
//! reads it on its own task, every `min_interval` after a change and backing off towards
//! `max_interval` while nothing changes, and broadcasts [`Wakeup::Resync`] when it moves:
//! workers then claim and `wait()` calls look again, so a write from another process is seen
//! within one interval. Writes of the backend's own process wake its subscribers at once
//! (the backend sends those itself); the poller only covers other processes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::scheduler::Wakeup;
use crate::Error;

/// A reading that changes whenever the store may have been written by another process.
#[async_trait]
pub trait ChangeProbe: Send + Sync + 'static {
    /// The current value. Only whether it differs from the last reading matters.
    ///
    /// # Errors
    /// When the store cannot be read; the poller logs it, sends [`Wakeup::Resync`] (changes may
    /// have been missed) and tries again after `max_interval`.
    async fn version(&self) -> Result<u64, Error>;
}

/// How often a [`Poller`] reads its probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollSettings {
    /// The interval right after a change (and the first).
    pub min_interval: Duration,
    /// The longest interval, reached by doubling while nothing changes.
    pub max_interval: Duration,
}

impl PollSettings {
    /// A fixed interval.
    pub fn every(interval: Duration) -> Self {
        PollSettings {
            min_interval: interval,
            max_interval: interval,
        }
    }
}

/// The polling task; it stops when the poller is dropped.
#[derive(Debug)]
pub struct Poller {
    task: JoinHandle<()>,
    polls: Arc<AtomicU64>,
    changes: Arc<AtomicU64>,
}

impl Drop for Poller {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Poller {
    /// Starts polling `probe` on the current tokio runtime, sending wake-ups to `wakeups`.
    pub fn start(
        probe: Arc<dyn ChangeProbe>,
        settings: PollSettings,
        wakeups: broadcast::Sender<Wakeup>,
    ) -> Poller {
        let polls = Arc::new(AtomicU64::new(0));
        let changes = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(poll_loop(
            probe,
            settings,
            wakeups,
            polls.clone(),
            changes.clone(),
        ));
        Poller {
            task,
            polls,
            changes,
        }
    }

    /// Stops polling and returns once the task has ended (and dropped its probe).
    pub async fn stop(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }

    /// How many times the probe has been read.
    pub fn polls(&self) -> u64 {
        self.polls.load(Ordering::Relaxed)
    }

    /// How many changes it has seen (each one a [`Wakeup::Resync`]).
    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::Relaxed)
    }
}

async fn poll_loop(
    probe: Arc<dyn ChangeProbe>,
    settings: PollSettings,
    wakeups: broadcast::Sender<Wakeup>,
    polls: Arc<AtomicU64>,
    changes: Arc<AtomicU64>,
) {
    let min = settings.min_interval.max(Duration::from_millis(1));
    let max = settings.max_interval.max(min);
    let mut last: Option<u64> = None;
    let mut interval = min;
    loop {
        polls.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(crate::telemetry::WAKEUP_POLLS).increment(1);
        match probe.version().await {
            Ok(version) => {
                if last.is_some_and(|l| l != version) {
                    changes.fetch_add(1, Ordering::Relaxed);
                    let _ = wakeups.send(Wakeup::Resync);
                    interval = min;
                } else if last.is_some() {
                    interval = (interval * 2).min(max);
                }
                last = Some(version);
            }
            Err(err) => {
                tracing::warn!(
                    error = %crate::error::error_chain(&err),
                    "could not read the store's change counter; trying again"
                );
                // The next successful reading may have missed changes: look again then.
                last = None;
                let _ = wakeups.send(Wakeup::Resync);
                interval = max;
            }
        }
        tokio::time::sleep(interval).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    struct Counter(Arc<AtomicU64>);

    #[async_trait]
    impl ChangeProbe for Counter {
        async fn version(&self) -> Result<u64, Error> {
            Ok(self.0.load(Ordering::SeqCst))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_change_is_a_resync_and_idle_polls_back_off() {
        let value = Arc::new(AtomicU64::new(0));
        let (tx, mut rx) = broadcast::channel(16);
        let poller = Poller::start(
            Arc::new(Counter(value.clone())),
            PollSettings {
                min_interval: Duration::from_millis(10),
                max_interval: Duration::from_millis(80),
            },
            tx,
        );
        // Idle for a second: intervals 10, 20, 40, 80, 80, ... so about 15 polls, not 100.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let idle = poller.polls();
        assert!((10..=20).contains(&idle), "{idle} polls in an idle second");
        assert!(rx.try_recv().is_err(), "no change, no wake-up");

        value.store(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(81)).await;
        assert!(matches!(rx.try_recv(), Ok(Wakeup::Resync)));
        assert_eq!(poller.changes(), 1);
        // Right after a change it polls at the short interval again (at 80 ms, as before the
        // change, there would be no poll within 35 ms).
        let before = poller.polls();
        tokio::time::sleep(Duration::from_millis(35)).await;
        assert!(poller.polls() > before, "no poll within 35 ms of a change");
    }
}
