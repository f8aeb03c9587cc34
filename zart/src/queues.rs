//! Limits per queue, enforced by the store across every worker: how many runs at once, how
//! many runs started per interval, and the same per limit key within the queue.
//!
//! A *run* is one claim of an execution: its first start, and every resume after a sleep, an
//! event, a child, a retry back-off or a crash. A run holds a concurrency slot from its claim
//! until it ends (the execution finishes or suspends, its lease is released, or its lease runs
//! out) and counts against a rate from its claim for one interval. An execution's limit key
//! comes from [`crate::StartOptions::with_limit_key`]. How the claim enforces them, and what a
//! waiting worker does: docs/scheduling.md.
//!
//! # Examples
//! ```
//! use std::time::Duration;
//! use zart::queues::{QueueLimits, Rate};
//!
//! // A partner API: at most 8 calls at once, 100 per minute, one at a time per customer.
//! let limits = QueueLimits::new()
//!     .with_max_running(8)
//!     .with_rate(Rate::new(100, Duration::from_secs(60)))
//!     .with_key_max_running(1);
//! assert!(limits.validate().is_ok());
//! ```

use std::time::Duration;

use crate::Error;

/// At most `count` runs started per `per` (a sliding window: any interval of that length).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// How many runs may start within one interval (at least 1).
    pub count: u32,
    /// The interval (1 ms to 100 years).
    pub per: Duration,
}

impl Rate {
    /// `count` runs per `per`.
    pub fn new(count: u32, per: Duration) -> Self {
        Rate { count, per }
    }
}

/// The limits of one queue. Every limit is optional; a queue without any has none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueLimits {
    /// At most this many runs of the queue at once, across the fleet.
    pub max_running: Option<u32>,
    /// At most this many runs of the queue started per interval.
    pub rate: Option<Rate>,
    /// At most this many runs at once per limit key.
    pub key_max_running: Option<u32>,
    /// At most this many runs started per interval per limit key.
    pub key_rate: Option<Rate>,
}

impl QueueLimits {
    /// No limits.
    pub fn new() -> Self {
        QueueLimits::default()
    }

    /// Sets [`QueueLimits::max_running`].
    pub fn with_max_running(mut self, max: u32) -> Self {
        self.max_running = Some(max);
        self
    }

    /// Sets [`QueueLimits::rate`].
    pub fn with_rate(mut self, rate: Rate) -> Self {
        self.rate = Some(rate);
        self
    }

    /// Sets [`QueueLimits::key_max_running`].
    pub fn with_key_max_running(mut self, max: u32) -> Self {
        self.key_max_running = Some(max);
        self
    }

    /// Sets [`QueueLimits::key_rate`].
    pub fn with_key_rate(mut self, rate: Rate) -> Self {
        self.key_rate = Some(rate);
        self
    }

    /// True when no limit is set.
    pub fn is_empty(&self) -> bool {
        *self == QueueLimits::default()
    }

    /// Checks the limits as every backend does before storing them.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a count of 0, or a rate interval under 1 ms or over 100
    /// years.
    pub fn validate(&self) -> Result<(), Error> {
        for (field, count) in [
            ("max running", self.max_running),
            ("key max running", self.key_max_running),
            ("rate count", self.rate.map(|r| r.count)),
            ("key rate count", self.key_rate.map(|r| r.count)),
        ] {
            if count == Some(0) {
                return Err(Error::invalid(field, "must be at least 1"));
            }
        }
        for (field, rate) in [
            ("rate interval", self.rate),
            ("key rate interval", self.key_rate),
        ] {
            if let Some(rate) = rate {
                if rate.per < Duration::from_millis(1) {
                    return Err(Error::invalid(field, "must be at least 1 ms"));
                }
                crate::limits::check_wait(field, rate.per)?;
            }
        }
        Ok(())
    }
}

/// One queue's limits as stored, with what counts against them now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueLimitsRow {
    /// The queue.
    pub queue: String,
    /// Its limits.
    pub limits: QueueLimits,
    /// Runs holding a slot now.
    pub running: u32,
    /// Runs started within the queue's rate interval (0 without a rate).
    pub started_in_window: u32,
}

/// A key on a start: within `window`, another start of the same task with the same key
/// returns the execution the key names instead of starting one (see
/// [`crate::StartOptions::with_dedup`] and [`crate::StartOptions::with_debounce`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartKey {
    /// The key (1 to 255 bytes of UTF-8, no NUL), per task name.
    pub key: String,
    /// How long the key holds.
    pub window: Duration,
    /// Debounce: the execution starts when the window ends, and each start within it replaces
    /// its input and starts the window again, until a worker first claims it.
    pub debounce: bool,
}

impl StartKey {
    /// Checks the key and window as every backend does.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad key or a window under 1 ms or over 100 years.
    pub fn validate(&self) -> Result<(), Error> {
        crate::limits::check_name("start key", &self.key)?;
        if self.window < Duration::from_millis(1) {
            return Err(Error::invalid("start key window", "must be at least 1 ms"));
        }
        crate::limits::check_wait("start key window", self.window)
    }
}
