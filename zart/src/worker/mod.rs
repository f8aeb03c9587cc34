//! [`Worker`]: claims due executions of registered tasks and runs them.
//!
//! A worker claims up to its free slots in one call, runs each execution on its own tokio task,
//! renews all its leases with one heartbeat call per interval, and sleeps without polling until
//! a wake-up (new work, a timer, a free slot with a backlog) or a slow safety sweep. On
//! shutdown it stops claiming, lets runs finish up to a timeout, and releases the rest.
//!
//! The parts, one file each: `config` (the settings and their defaults), `claim` (the claim
//! loop), `run` (one claimed execution), `heartbeat` (lease renewal), `presence` (the worker's record
//! in `zart_workers`), `retention` (pruning old finished executions, when configured), `signals` (graceful shutdown). This file holds the public types, the state they share while the worker runs,
//! and [`Worker::run`], which wires them together.

mod claim;
mod config;
mod heartbeat;
mod presence;
mod retention;
mod run;
mod schedules;
mod signals;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;

use crate::backoff::Backoff;
use crate::handoff::{Handed, HandoffClaim, OfferHandle};
use crate::scheduler::{DynScheduler, Lease};
use crate::{Error, Scheduler, TaskRegistry};

pub use config::WorkerConfig;

use config::default_worker_id;
use heartbeat::heartbeat_loop;
use run::RunEnded;
use signals::spawn_signal_listener;

/// Asks a running [`Worker`] to shut down gracefully. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ShutdownHandle {
    tx: Arc<watch::Sender<bool>>,
}

impl ShutdownHandle {
    /// Starts a graceful shutdown: stop claiming, finish or release running executions.
    pub fn shutdown(&self) {
        self.tx.send_replace(true);
    }

    /// True once shutdown was asked for.
    pub fn is_shutdown(&self) -> bool {
        *self.tx.borrow()
    }
}

/// Runs registered tasks: claims due executions and drives them to an outcome.
///
/// # Examples
/// ```no_run
/// # use std::sync::Arc;
/// # use zart::{Scheduler, TaskRegistry, Worker, WorkerConfig};
/// # async fn example<S: Scheduler>(scheduler: Arc<S>, registry: TaskRegistry) -> Result<(), zart::Error> {
/// let worker = Worker::new(scheduler, Arc::new(registry), WorkerConfig::default());
/// let stop = worker.shutdown_handle();
/// tokio::spawn(async move {
///     tokio::time::sleep(std::time::Duration::from_secs(60)).await;
///     stop.shutdown();
/// });
/// worker.run().await?;
/// # Ok(()) }
/// ```
pub struct Worker<S: Scheduler> {
    scheduler: Arc<S>,
    registry: Arc<TaskRegistry>,
    config: WorkerConfig,
    worker_id: String,
    shutdown_tx: Arc<watch::Sender<bool>>,
}

impl<S: Scheduler> std::fmt::Debug for Worker<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("worker_id", &self.worker_id)
            .field("config", &self.config)
            .field("registry", &self.registry)
            .finish()
    }
}

impl<S: Scheduler> Worker<S> {
    /// A worker for `registry`'s tasks on `scheduler`.
    pub fn new(scheduler: Arc<S>, registry: Arc<TaskRegistry>, config: WorkerConfig) -> Self {
        let worker_id = config.worker_id.clone().unwrap_or_else(default_worker_id);
        let (tx, _rx) = watch::channel(false);
        Worker {
            scheduler,
            registry,
            config,
            worker_id,
            shutdown_tx: Arc::new(tx),
        }
    }

    /// The id this worker records as lease owner.
    pub fn id(&self) -> &str {
        &self.worker_id
    }

    /// A handle that shuts this worker down gracefully.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            tx: self.shutdown_tx.clone(),
        }
    }

    /// Runs until shut down (by a [`ShutdownHandle`], or SIGINT/SIGTERM when
    /// [`WorkerConfig::handle_signals`] is on).
    ///
    /// # Errors
    /// Fails at start if the configuration or registry is invalid, or the database schema is
    /// missing or too old ([`Error::Schema`], which says to run `zart migrate`). Once running,
    /// database errors are logged and retried with back-off, never returned.
    pub async fn run(self) -> Result<(), Error> {
        self.config.check()?;
        self.registry.validate()?;
        let mut shutdown_rx = self.shutdown_tx.subscribe();
        if self.config.handle_signals {
            spawn_signal_listener(self.shutdown_handle());
        }
        self.wait_for_schema(&mut shutdown_rx).await?;

        let scheduler: DynScheduler = self.scheduler.clone();
        let running: RunningMap = Arc::default();
        let heartbeat = tokio::spawn(heartbeat_loop(
            scheduler.clone(),
            self.worker_id.clone(),
            self.config.clone(),
            running.clone(),
        ));
        let retention =
            self.config.retention.clone().map(|retention| {
                tokio::spawn(retention::retention_loop(scheduler.clone(), retention))
            });
        let presence = self.config.presence_interval.map(|interval| {
            let mut record =
                crate::presence::WorkerPresence::new(self.worker_id.clone(), &self.config.queue);
            record.task_names = self.registry.task_names();
            record.concurrency = u32::try_from(self.config.concurrency).unwrap_or(u32::MAX);
            record.interval = interval;
            tokio::spawn(presence::presence_loop(
                scheduler.clone(),
                record,
                interval,
                running.clone(),
            ))
        });
        let schedules = tokio::spawn(schedules::schedule_loop(
            scheduler.clone(),
            self.worker_id.clone(),
            self.config.queue.clone(),
            self.registry.task_names(),
        ));
        tracing::info!(
            worker.id = %self.worker_id,
            queue = %self.config.queue,
            concurrency = self.config.concurrency,
            tasks = ?self.registry.task_names(),
            "zart worker started"
        );
        let mut core = Core {
            scheduler,
            registry: self.registry.clone(),
            config: self.config.clone(),
            worker_id: self.worker_id.clone(),
            task_names: self.registry.task_names(),
            running,
            ended: mpsc::unbounded_channel(),
            claims: 0,
            handoff: self.scheduler.handoffs().map(|handoffs| {
                handoffs.offer(
                    &self.config.queue,
                    self.registry.task_names(),
                    HandoffClaim {
                        worker_id: self.worker_id.clone(),
                        lease: self.config.lease_duration,
                    },
                )
            }),
            handed_pending: 0,
        };
        core.claim_loop(&mut shutdown_rx).await;
        core.withdraw_offer();
        if let Some(retention) = &retention {
            retention.abort();
        }
        schedules.abort();
        core.shut_down().await;
        heartbeat.abort();
        if let Some(presence_task) = presence {
            presence_task.abort();
            presence::record_departure(&core.scheduler, &self.worker_id).await;
        }
        tracing::info!(worker.id = %self.worker_id, "zart worker stopped");
        Ok(())
    }

    /// Checks the schema, retrying while the database is unreachable.
    async fn wait_for_schema(&self, shutdown_rx: &mut watch::Receiver<bool>) -> Result<(), Error> {
        let mut backoff = Backoff::new();
        loop {
            match self.scheduler.check_schema().await {
                Ok(()) => return Ok(()),
                Err(err) if err.is_transient() => {
                    let delay = backoff.next();
                    tracing::warn!(
                        error = %crate::error::error_chain(&err),
                        retry_in_ms = delay.as_millis() as u64,
                        "zart worker cannot reach the database; retrying"
                    );
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = shutdown_rx.changed() => return Ok(()),
                    }
                }
                Err(err) => return Err(err),
            }
        }
    }
}

/// One execution running on this worker.
struct Running {
    lease: Lease,
    abort: AbortHandle,
}

type RunningMap = Arc<Mutex<HashMap<String, Running>>>;

fn lock(map: &RunningMap) -> MutexGuard<'_, HashMap<String, Running>> {
    // A poisoned map only means a panic elsewhere while holding it; the data is still usable.
    map.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The worker's state while it runs.
struct Core {
    scheduler: DynScheduler,
    registry: Arc<TaskRegistry>,
    config: WorkerConfig,
    worker_id: String,
    task_names: Vec<String>,
    running: RunningMap,
    ended: (
        mpsc::UnboundedSender<RunEnded>,
        mpsc::UnboundedReceiver<RunEnded>,
    ),
    /// Claims made so far: every [`OLDEST_FIRST_EVERY`]th takes the oldest due tasks.
    claims: u64,
    /// Its offer of free slots to in-process starts, and what they hand it
    /// ([`crate::handoff`]); `None` when the backend has no hand-off.
    handoff: Option<(OfferHandle, mpsc::UnboundedReceiver<Handed>)>,
    /// Slots reserved by starts whose task (or notice) has not arrived yet.
    handed_pending: usize,
}

/// One claim in this many takes the longest due tasks whatever their priority, so that no
/// priority starves (docs/scheduling.md).
pub(crate) const OLDEST_FIRST_EVERY: u64 = 10;
