//! Retention: deleting finished executions, their steps and their events once they are old.
//!
//! [`Retention`] says how long each finished status is kept and how large a batch is;
//! [`prune`] runs it once to the end, batch by batch, through [`Scheduler::prune`]. A worker
//! with [`crate::WorkerConfig::retention`] set runs it every [`Retention::interval`], paced so
//! that it takes a small share of the database; the `zart prune` command runs it at once.
//! Unfinished executions are never touched, nor a finished child whose parent has not
//! finished; only one prune runs at a time across the fleet (the others see
//! [`PruneOutcome::Busy`] and try again at their next interval).

use std::time::{Duration, Instant};

use crate::scheduler::{PruneOutcome, PruneParams, PRUNE_LIMIT_MAX};
use crate::{Error, ExecutionStatus, Scheduler};

const DAY: Duration = Duration::from_secs(24 * 3600);

/// How long finished executions are kept, and how they are deleted.
///
/// The defaults keep completed executions 7 days and failed and cancelled ones 30 days:
/// a completed execution is rarely looked at after its result was used, and its id stops
/// being an idempotency key when it goes (a start with that id runs again), so a week covers
/// retried requests and most investigations; a failure or a cancellation is what someone has
/// to look into, so it stays a month.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use zart::retention::Retention;
///
/// let retention = Retention::default()
///     .with_completed(Some(Duration::from_secs(24 * 3600)))
///     .with_cancelled(None); // keep cancelled executions forever
/// assert_eq!(retention.failed, Some(Duration::from_secs(30 * 24 * 3600)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Retention {
    /// Completed executions older than this (since they finished) are deleted; `None` keeps
    /// them. Default 7 days.
    pub completed: Option<Duration>,
    /// Failed executions older than this are deleted; `None` keeps them. Default 30 days.
    pub failed: Option<Duration>,
    /// Cancelled executions older than this are deleted; `None` keeps them. Default 30 days.
    pub cancelled: Option<Duration>,
    /// Executions deleted per transaction. Default 1,000: each batch holds its row locks for
    /// milliseconds.
    pub batch: u32,
    /// How often a worker runs retention. Default 1 minute.
    pub interval: Duration,
    /// A worker waits this many times as long as a batch took before the next one, so that
    /// retention takes at most `1 / (1 + pace)` of one connection's time. Default 4 (a
    /// fifth). [`prune`] called directly (`zart prune`) does not wait.
    pub pace: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            completed: Some(7 * DAY),
            failed: Some(30 * DAY),
            cancelled: Some(30 * DAY),
            batch: 1_000,
            interval: Duration::from_secs(60),
            pace: 4,
        }
    }
}

impl Retention {
    /// Sets [`Retention::completed`].
    pub fn with_completed(mut self, age: Option<Duration>) -> Self {
        self.completed = age;
        self
    }
    /// Sets [`Retention::failed`].
    pub fn with_failed(mut self, age: Option<Duration>) -> Self {
        self.failed = age;
        self
    }
    /// Sets [`Retention::cancelled`].
    pub fn with_cancelled(mut self, age: Option<Duration>) -> Self {
        self.cancelled = age;
        self
    }
    /// Sets [`Retention::batch`].
    pub fn with_batch(mut self, batch: u32) -> Self {
        self.batch = batch;
        self
    }
    /// Sets [`Retention::interval`].
    pub fn with_interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }
    /// Sets [`Retention::pace`].
    pub fn with_pace(mut self, pace: u32) -> Self {
        self.pace = pace;
        self
    }

    /// The age of each finished status, in the order they are pruned (`None`: kept).
    pub fn ages(&self) -> [(ExecutionStatus, Option<Duration>); 3] {
        [
            (ExecutionStatus::Completed, self.completed),
            (ExecutionStatus::Failed, self.failed),
            (ExecutionStatus::Cancelled, self.cancelled),
        ]
    }

    /// Refuses a batch or interval out of range and ages over 100 years, naming the field.
    ///
    /// # Errors
    /// [`Error::InvalidInput`].
    pub fn check(&self) -> Result<(), Error> {
        if self.batch == 0 || self.batch > PRUNE_LIMIT_MAX {
            return Err(Error::invalid(
                "retention batch",
                format!("{} is outside 1 to {PRUNE_LIMIT_MAX}", self.batch),
            ));
        }
        if self.interval.is_zero() {
            return Err(Error::invalid("retention interval", "must be above zero"));
        }
        for (status, age) in self.ages() {
            if age.is_some_and(|a| a > crate::limits::MAX_WAIT) {
                return Err(Error::invalid(
                    format!("{status} age"),
                    "must be at most 100 years",
                ));
            }
        }
        Ok(())
    }
}

/// What [`prune`] did: executions deleted (or counted, in a dry run) per status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PruneReport {
    /// Completed executions deleted or counted.
    pub completed: u64,
    /// Failed executions deleted or counted.
    pub failed: u64,
    /// Cancelled executions deleted or counted.
    pub cancelled: u64,
    /// True when another prune was running, so this one stopped early (what it did before
    /// is counted).
    pub busy: bool,
    /// True for a dry run: the counts are what would be deleted.
    pub dry_run: bool,
}

impl PruneReport {
    /// The executions deleted (or counted) over all statuses.
    pub fn total(&self) -> u64 {
        self.completed + self.failed + self.cancelled
    }

    fn add(&mut self, status: ExecutionStatus, n: u64) {
        match status {
            ExecutionStatus::Completed => self.completed += n,
            ExecutionStatus::Failed => self.failed += n,
            _ => self.cancelled += n,
        }
    }
}

/// How [`prune`] runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PruneOptions {
    /// Count what would be deleted, delete nothing.
    pub dry_run: bool,
    /// Wait [`Retention::pace`] times a batch's duration after it (the worker does).
    pub paced: bool,
}

impl PruneOptions {
    /// Delete, without pauses (what `zart prune` does).
    pub fn new() -> Self {
        PruneOptions::default()
    }
    /// Sets [`PruneOptions::dry_run`].
    pub fn with_dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }
    /// Sets [`PruneOptions::paced`].
    pub fn with_paced(mut self, paced: bool) -> Self {
        self.paced = paced;
        self
    }
}

/// Runs `retention` once to the end: for each status with an age, deletes batches until none
/// of that age is left (or counts them, in a dry run), calling `progress` with the status and
/// the count after each batch. Stops early, with [`PruneReport::busy`], when another prune
/// is running.
///
/// # Errors
/// [`Error::InvalidInput`] for a retention that [`Retention::check`] refuses; otherwise the
/// first error of a batch (the batches before it stay deleted).
///
/// # Examples
/// ```no_run
/// # use zart::retention::{prune, PruneOptions, Retention};
/// # async fn example(scheduler: impl zart::Scheduler) -> Result<(), zart::Error> {
/// let report = prune(&scheduler, &Retention::default(), PruneOptions::new(), |_, _| {}).await?;
/// println!("deleted {} executions", report.total());
/// # Ok(()) }
/// ```
pub async fn prune<S: Scheduler + ?Sized>(
    scheduler: &S,
    retention: &Retention,
    options: PruneOptions,
    mut progress: impl FnMut(ExecutionStatus, u64),
) -> Result<PruneReport, Error> {
    retention.check()?;
    let mut report = PruneReport {
        dry_run: options.dry_run,
        ..PruneReport::default()
    };
    for (status, age) in retention.ages() {
        let Some(older_than) = age else { continue };
        loop {
            let params = PruneParams {
                status,
                older_than,
                limit: retention.batch,
                dry_run: options.dry_run,
            };
            let started = Instant::now();
            let n = match scheduler.prune(params).await? {
                PruneOutcome::Busy => {
                    report.busy = true;
                    return Ok(report);
                }
                PruneOutcome::Counted(n) => {
                    report.add(status, n);
                    progress(status, n);
                    break;
                }
                PruneOutcome::Deleted(n) => n,
            };
            report.add(status, n);
            progress(status, n);
            if n < u64::from(retention.batch) {
                break;
            }
            if options.paced && retention.pace > 0 {
                tokio::time::sleep(started.elapsed() * retention.pace).await;
            }
        }
    }
    Ok(report)
}
