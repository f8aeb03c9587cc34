//! [`WorkerConfig`]: a worker's settings, their defaults and their checks.
//!
//! The defaults are meant for production. [`Worker::run`](super::Worker::run) checks the
//! settings before it claims anything and refuses invalid ones with an error naming the field.

use std::time::Duration;

use crate::retention::Retention;
use crate::Error;

/// Settings of a [`Worker`](super::Worker). The defaults are meant for production; change
/// them with the `with_*` methods.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use zart::WorkerConfig;
///
/// let config = WorkerConfig::default()
///     .with_concurrency(8)
///     .with_shutdown_timeout(Duration::from_secs(10));
/// assert_eq!(config.concurrency, 8);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WorkerConfig {
    /// The queue to claim from. Default `"default"`.
    pub queue: String,
    /// How many executions run at once. Default 512: runs are tokio tasks waiting mostly on
    /// I/O, and more of them in flight lets claims and group commit fill their batches.
    /// Measured with `zart-load` on a 2-core machine (one-step drain / three-step steps per
    /// second): 15.1k / 27.5k at 128, 20.8k / 39.4k at 512, 22.0k / 36.4k at 1024; 512 is
    /// where the three-step figure stops growing. Each run holds its input and recorded steps
    /// in memory, so lower it for large payloads (512 runs x 1 MiB is 512 MiB).
    pub concurrency: usize,
    /// How long a claim holds an execution unless renewed. Default 30 s.
    pub lease_duration: Duration,
    /// How often leases are renewed (one statement for all runs). Default 10 s.
    pub heartbeat_interval: Duration,
    /// The safety sweep: the longest an idle worker sleeps without looking for work, covering
    /// wake-ups lost while the listener reconnects. Default 5 s.
    pub sweep_interval: Duration,
    /// How long shutdown waits for running executions before releasing them. Default 30 s.
    pub shutdown_timeout: Duration,
    /// Retry back-offs longer than this suspend the execution durably instead of sleeping in
    /// the worker. Default 1 s.
    pub durable_backoff_threshold: Duration,
    /// Shut down gracefully on SIGINT and SIGTERM. Default true.
    pub handle_signals: bool,
    /// The worker id recorded as lease owner. Default: host name, process id and a random part.
    pub worker_id: Option<String>,
    /// Recoveries (take-overs from an expired lease, counted since the execution last
    /// suspended) after which an execution is failed instead of run again: a workflow that
    /// kills or hangs its worker every time (a poison workflow) stops here. Default 10.
    pub max_recoveries: u32,
    /// Deletes old finished executions every [`Retention::interval`] when set (one worker of
    /// the fleet at a time; see [`crate::retention`]). Default `None`: nothing is deleted
    /// unless asked for, since deleting history cannot be undone and an execution's id stops
    /// being an idempotency key once it is gone.
    pub retention: Option<Retention>,
    /// How often the worker records itself in the store (`zart_workers`: who runs, where, on
    /// which queue and tasks; see [`crate::presence`]): at start, every interval, and at a
    /// graceful stop. Default 60 s (one write per interval: an idle worker's whole cost stays
    /// under a statement a second on every backend); `None` records nothing.
    pub presence_interval: Option<Duration>,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            queue: "default".to_owned(),
            concurrency: 512,
            lease_duration: Duration::from_secs(30),
            heartbeat_interval: Duration::from_secs(10),
            sweep_interval: Duration::from_secs(5),
            shutdown_timeout: Duration::from_secs(30),
            durable_backoff_threshold: Duration::from_secs(1),
            handle_signals: true,
            worker_id: None,
            max_recoveries: 10,
            retention: None,
            presence_interval: Some(Duration::from_secs(60)),
        }
    }
}

impl WorkerConfig {
    /// Sets [`WorkerConfig::queue`].
    pub fn with_queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = queue.into();
        self
    }
    /// Sets [`WorkerConfig::concurrency`] (at least 1).
    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.max(1);
        self
    }
    /// Sets [`WorkerConfig::lease_duration`] and a heartbeat of a third of it.
    pub fn with_lease_duration(mut self, lease: Duration) -> Self {
        self.lease_duration = lease;
        self.heartbeat_interval = lease / 3;
        self
    }
    /// Sets [`WorkerConfig::heartbeat_interval`].
    pub fn with_heartbeat_interval(mut self, interval: Duration) -> Self {
        self.heartbeat_interval = interval;
        self
    }
    /// Sets [`WorkerConfig::sweep_interval`].
    pub fn with_sweep_interval(mut self, interval: Duration) -> Self {
        self.sweep_interval = interval;
        self
    }
    /// Sets [`WorkerConfig::shutdown_timeout`].
    pub fn with_shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }
    /// Sets [`WorkerConfig::durable_backoff_threshold`].
    pub fn with_durable_backoff_threshold(mut self, threshold: Duration) -> Self {
        self.durable_backoff_threshold = threshold;
        self
    }
    /// Sets [`WorkerConfig::handle_signals`].
    pub fn with_handle_signals(mut self, handle: bool) -> Self {
        self.handle_signals = handle;
        self
    }
    /// Sets [`WorkerConfig::max_recoveries`].
    pub fn with_max_recoveries(mut self, max: u32) -> Self {
        self.max_recoveries = max;
        self
    }
    /// Sets [`WorkerConfig::retention`]: this worker deletes finished executions older than
    /// `retention`'s ages.
    pub fn with_retention(mut self, retention: Retention) -> Self {
        self.retention = Some(retention);
        self
    }
    /// Sets [`WorkerConfig::presence_interval`] (`None`: the worker records nothing).
    pub fn with_presence_interval(mut self, interval: Option<Duration>) -> Self {
        self.presence_interval = interval;
        self
    }
    /// Sets [`WorkerConfig::worker_id`].
    pub fn with_worker_id(mut self, id: impl Into<String>) -> Self {
        self.worker_id = Some(id.into());
        self
    }

    pub(super) fn check(&self) -> Result<(), Error> {
        crate::limits::check_name("queue", &self.queue)?;
        if self.lease_duration < Duration::from_secs(1) {
            return Err(Error::invalid("lease duration", "must be at least 1 s"));
        }
        if self.heartbeat_interval.is_zero() || self.heartbeat_interval >= self.lease_duration {
            return Err(Error::invalid(
                "heartbeat interval",
                format!(
                    "must be above zero and shorter than the lease duration ({:?})",
                    self.lease_duration
                ),
            ));
        }
        if self.sweep_interval.is_zero() {
            return Err(Error::invalid("sweep interval", "must be above zero"));
        }
        if let Some(retention) = &self.retention {
            retention.check()?;
        }
        if self
            .presence_interval
            .is_some_and(|i| i < Duration::from_secs(1))
        {
            return Err(Error::invalid("presence interval", "must be at least 1 s"));
        }
        Ok(())
    }
}

pub(super) fn default_worker_id() -> String {
    format!(
        "{}:{}:{:08x}",
        crate::presence::host_name(),
        std::process::id(),
        rand::random::<u32>()
    )
}
