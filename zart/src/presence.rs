//! Workers seen: each running [`crate::Worker`] records itself in the store (`zart_workers`)
//! when it starts, every [`crate::WorkerConfig::presence_interval`] after, and when it stops,
//! so operators can see which workers run, where, on which queue and tasks, and which went
//! quiet (`zart workers`, the admin API's `GET /api/workers`).
//!
//! One write per worker per interval (60 s by default): an idle worker's cost stays far
//! under a statement a second. A record not refreshed for [`FORGET_AFTER`] is deleted when a
//! worker starts, so the table holds the fleet of about the last day.

use std::time::{Duration, SystemTime};

use crate::Error;

/// How long a worker's record stays after it was last seen (stopped or not).
pub const FORGET_AFTER: Duration = Duration::from_secs(24 * 3600);

/// A worker's record of itself ([`crate::Scheduler::record_presence`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerPresence {
    /// The worker id (its lease owner name).
    pub worker_id: String,
    /// The host it runs on.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// The queue it claims from.
    pub queue: String,
    /// The task names it runs.
    pub task_names: Vec<String>,
    /// Its slots.
    pub concurrency: u32,
    /// Executions running on it now.
    pub running: u32,
    /// How often it records itself: a record older than a few intervals is a worker gone
    /// quiet.
    pub interval: Duration,
    /// True on the worker's first record: the backend then also deletes the records not
    /// refreshed for [`FORGET_AFTER`] (once per start, not at every interval).
    pub starting: bool,
}

impl WorkerPresence {
    /// A record for `worker_id` on `queue`; the rest is filled in by the worker.
    pub fn new(worker_id: impl Into<String>, queue: impl Into<String>) -> Self {
        WorkerPresence {
            worker_id: worker_id.into(),
            host: host_name(),
            pid: std::process::id(),
            queue: queue.into(),
            task_names: Vec::new(),
            concurrency: 0,
            running: 0,
            interval: Duration::from_secs(60),
            starting: false,
        }
    }

    /// Checks the record before a backend writes it.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the field: an id, queue or task name that is not a valid
    /// name, a host over 255 bytes, or an interval of zero.
    pub fn check(&self) -> Result<(), Error> {
        crate::limits::check_name("worker id", &self.worker_id)?;
        crate::limits::check_name("queue", &self.queue)?;
        for name in &self.task_names {
            crate::limits::check_name("task name", name)?;
        }
        if self.host.len() > crate::limits::MAX_NAME_BYTES || self.host.contains('\0') {
            return Err(Error::invalid(
                "host",
                "must be at most 255 bytes without a NUL",
            ));
        }
        if self.interval.is_zero() {
            return Err(Error::invalid("presence interval", "must be above zero"));
        }
        Ok(())
    }
}

/// A worker as the store last saw it ([`crate::admin::Admin::list_workers`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerSeen {
    /// What it recorded.
    pub presence: WorkerPresence,
    /// When it first recorded itself (the store's clock).
    pub started_at: SystemTime,
    /// When it last recorded itself.
    pub seen_at: SystemTime,
    /// When it recorded that it stopped (a graceful shutdown); `None` while it runs, or if it
    /// died.
    pub stopped_at: Option<SystemTime>,
}

/// What a worker's record says of it at `now` (the store's clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerState {
    /// It recorded itself within the last [`LOST_AFTER_INTERVALS`] intervals.
    Alive,
    /// It shut down gracefully.
    Stopped,
    /// It has not recorded itself for [`LOST_AFTER_INTERVALS`] intervals: it died, hangs, or
    /// cannot reach the store.
    Lost,
}

/// Missed intervals after which a worker counts as [`WorkerState::Lost`].
pub const LOST_AFTER_INTERVALS: u32 = 3;

impl WorkerState {
    /// The name shown to operators.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerState::Alive => "alive",
            WorkerState::Stopped => "stopped",
            WorkerState::Lost => "lost",
        }
    }
}

impl WorkerSeen {
    /// A record as read back; for backends.
    pub fn new(presence: WorkerPresence, started_at: SystemTime, seen_at: SystemTime) -> Self {
        WorkerSeen {
            presence,
            started_at,
            seen_at,
            stopped_at: None,
        }
    }

    /// Its state at `now`.
    pub fn state(&self, now: SystemTime) -> WorkerState {
        if self.stopped_at.is_some() {
            return WorkerState::Stopped;
        }
        let quiet = now.duration_since(self.seen_at).unwrap_or_default();
        if quiet > self.presence.interval * LOST_AFTER_INTERVALS {
            WorkerState::Lost
        } else {
            WorkerState::Alive
        }
    }
}

/// The workers a store has seen, with its clock.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkersSeen {
    /// Every record, most recently seen first.
    pub workers: Vec<WorkerSeen>,
    /// The store's clock when they were read: what their states are judged against.
    pub now: SystemTime,
}

impl WorkersSeen {
    /// The records, read at `now`.
    pub fn new(workers: Vec<WorkerSeen>, now: SystemTime) -> Self {
        WorkersSeen { workers, now }
    }
}

/// The host name: `HOSTNAME`, else /etc/hostname, else `worker`.
pub(crate) fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_alive_until_it_misses_three_intervals() {
        let mut p = WorkerPresence::new("w1", "default");
        p.interval = Duration::from_secs(10);
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let mut seen = WorkerSeen::new(p, t0, t0);
        assert_eq!(seen.state(t0 + Duration::from_secs(30)), WorkerState::Alive);
        assert_eq!(seen.state(t0 + Duration::from_secs(31)), WorkerState::Lost);
        seen.stopped_at = Some(t0);
        assert_eq!(
            seen.state(t0 + Duration::from_secs(31)),
            WorkerState::Stopped
        );
    }

    #[test]
    fn records_are_checked_by_field() {
        let mut p = WorkerPresence::new("w1", "default");
        assert!(p.check().is_ok());
        p.task_names = vec![String::new()];
        assert!(p.check().unwrap_err().to_string().contains("task name"));
        let mut p = WorkerPresence::new("w1", "default");
        p.interval = Duration::ZERO;
        assert!(p.check().unwrap_err().to_string().contains("interval"));
    }
}
