//! [`Worker`]: claims due executions of registered tasks and runs them.
//!
//! A worker claims up to its free slots in one call, runs each execution on its own tokio task,
//! renews all its leases with one heartbeat call per interval, and sleeps without polling until
//! a wake-up (new work, a timer, a free slot with a backlog) or a slow safety sweep. On
//! shutdown it stops claiming, lets runs finish up to a timeout, and releases the rest.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::AbortHandle;
use tracing::Instrument;

use crate::backoff::Backoff;
use crate::context::panic_message;
use crate::execution::ErrorRecord;
use crate::scheduler::{
    ClaimTasksParams, ClaimedTask, CompleteExecutionParams, DynScheduler, HeartbeatParams, Lease,
    NextRunAtParams, Outcome, ReleaseTasksParams, Wakeup,
};
use crate::{Error, Scheduler, TaskContext, TaskError, TaskRegistry};

/// Settings of a [`Worker`]. The defaults are meant for production; change them with the
/// `with_*` methods.
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
    /// Sets [`WorkerConfig::worker_id`].
    pub fn with_worker_id(mut self, id: impl Into<String>) -> Self {
        self.worker_id = Some(id.into());
        self
    }

    fn check(&self) -> Result<(), Error> {
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
        Ok(())
    }
}

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

/// Runs registered tasks: claims due executions and drives them to a verdict.
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

/// One execution running on this worker.
struct Running {
    lease: Lease,
    abort: AbortHandle,
}

/// Sent when a run ends, however it ends (even when aborted: it is sent from `Drop`).
struct RunEnded {
    execution_id: String,
    due_again_in: Option<Duration>,
}

struct EndGuard {
    tx: mpsc::UnboundedSender<RunEnded>,
    execution_id: String,
    due_again_in: Option<Duration>,
}

impl Drop for EndGuard {
    fn drop(&mut self) {
        let _ = self.tx.send(RunEnded {
            execution_id: std::mem::take(&mut self.execution_id),
            due_again_in: self.due_again_in,
        });
    }
}

type RunningMap = Arc<Mutex<HashMap<String, Running>>>;

fn lock(map: &RunningMap) -> MutexGuard<'_, HashMap<String, Running>> {
    // A poisoned map only means a panic elsewhere while holding it; the data is still usable.
    map.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
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
        };
        core.claim_loop(&mut shutdown_rx).await;
        core.shut_down().await;
        heartbeat.abort();
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
}

impl Core {
    async fn claim_loop(&mut self, shutdown_rx: &mut watch::Receiver<bool>) {
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
            let running = lock(&self.running).len();
            let free = self.config.concurrency.saturating_sub(running);
            if backlog && free > 0 && (free >= batch || running == 0) {
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
            tokio::select! {
                _ = shutdown_rx.changed() => {}
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
        let tasks = self
            .scheduler
            .claim_tasks(ClaimTasksParams {
                worker_id: self.worker_id.clone(),
                queue: self.config.queue.clone(),
                task_names: self.task_names.clone(),
                limit: u32::try_from(free).unwrap_or(u32::MAX),
                lease: self.config.lease_duration,
            })
            .instrument(tracing::debug_span!("zart.worker.claim", limit = free))
            .await?;
        metrics::histogram!("zart_claim_duration_seconds").record(started.elapsed().as_secs_f64());
        metrics::counter!("zart_claimed_total").increment(tasks.len() as u64);
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

    fn spawn_run(&self, task: ClaimedTask) {
        let execution_id = task.lease.execution_id.clone();
        let guard = EndGuard {
            tx: self.ended.0.clone(),
            execution_id: execution_id.clone(),
            due_again_in: None,
        };
        let run = run_execution(
            self.scheduler.clone(),
            self.registry.clone(),
            task.clone(),
            RunLimits {
                durable_backoff_threshold: self.config.durable_backoff_threshold,
                max_recoveries: self.config.max_recoveries,
            },
            guard,
        );
        // Hold the map lock across the spawn so the run cannot end before it is registered.
        let mut running = lock(&self.running);
        let handle = tokio::spawn(run);
        running.insert(
            execution_id,
            Running {
                lease: task.lease,
                abort: handle.abort_handle(),
            },
        );
    }

    /// Stops claiming, lets runs finish up to the timeout, then aborts and releases the rest.
    async fn shut_down(&mut self) {
        let deadline = Instant::now() + self.config.shutdown_timeout;
        let pending = lock(&self.running).len();
        if pending > 0 {
            tracing::info!(
                running = pending,
                timeout_ms = self.config.shutdown_timeout.as_millis() as u64,
                "zart worker shutting down; waiting for running executions"
            );
        }
        while !lock(&self.running).is_empty() {
            tokio::select! {
                Some(ended) = self.ended.1.recv() => {
                    lock(&self.running).remove(&ended.execution_id);
                }
                _ = tokio::time::sleep_until(deadline.into()) => break,
            }
        }
        let leftover: Vec<Running> = lock(&self.running).drain().map(|(_, r)| r).collect();
        if leftover.is_empty() {
            return;
        }
        for run in &leftover {
            run.abort.abort();
        }
        let leases: Vec<Lease> = leftover.into_iter().map(|r| r.lease).collect();
        let count = leases.len();
        match self
            .scheduler
            .release_tasks(ReleaseTasksParams {
                worker_id: self.worker_id.clone(),
                queue: self.config.queue.clone(),
                leases,
            })
            .await
        {
            Ok(released) => tracing::info!(
                released,
                "released leases of executions still running at shutdown"
            ),
            Err(err) => tracing::warn!(
                count,
                error = %crate::error::error_chain(&err),
                "could not release leases at shutdown; they will be taken over when they expire"
            ),
        }
    }
}

/// Runs one claimed execution to a verdict (or to a suspension or abandonment).
/// The per-run settings taken from [`WorkerConfig`].
#[derive(Debug, Clone, Copy)]
struct RunLimits {
    durable_backoff_threshold: Duration,
    max_recoveries: u32,
}

async fn run_execution(
    scheduler: DynScheduler,
    registry: Arc<TaskRegistry>,
    task: ClaimedTask,
    limits: RunLimits,
    mut guard: EndGuard,
) {
    let span = tracing::info_span!(
        "zart.task.run",
        execution.id = %task.lease.execution_id,
        task.name = %task.task_name,
        claims = task.claims,
    );
    let lease = task.lease.clone();
    let started = Instant::now();
    let outcome = async {
        let Some(handler) = registry.get(&task.task_name) else {
            return Some(Outcome::Failed(ErrorRecord {
                kind: "unknown_task".to_owned(),
                message: format!("no handler is registered for task {:?}", task.task_name),
                step: None,
                attempts: None,
            }));
        };
        if task.deadline_in.is_some_and(|left| left.is_zero()) {
            return Some(Outcome::Failed(deadline_error()));
        }
        if task.recoveries > limits.max_recoveries {
            return Some(Outcome::Failed(ErrorRecord {
                kind: "too_many_recoveries".to_owned(),
                message: format!(
                    "the execution was taken over {} times from a worker that died or stalled \
                     while running it; giving up (WorkerConfig::max_recoveries is {})",
                    task.recoveries, limits.max_recoveries
                ),
                step: None,
                attempts: None,
            }));
        }
        let mut ctx =
            TaskContext::from_claim(scheduler.clone(), &task, limits.durable_backoff_threshold);
        let run = AssertUnwindSafe(handler.run(&mut ctx, task.input.clone())).catch_unwind();
        let result = match task.deadline_in {
            Some(left) => match tokio::time::timeout(left, run).await {
                Ok(result) => result,
                Err(_) => return Some(Outcome::Failed(deadline_error())),
            },
            None => run.await,
        };
        guard.due_again_in = ctx.due_again_in();
        if ctx.is_suspended() && !matches!(result, Ok(Err(TaskError::Suspended))) {
            // The handler swallowed a suspension instead of propagating it: the execution is
            // suspended all the same, and its verdict must not be recorded now.
            tracing::warn!("the handler did not propagate TaskError::Suspended; use `?` on waits");
            return None;
        }
        match result {
            Ok(Ok(output)) => Some(Outcome::Completed(output)),
            Ok(Err(err)) if err.is_control_flow() => {
                match &err {
                    TaskError::Suspended => tracing::debug!("execution suspended"),
                    TaskError::Storage(e) => tracing::warn!(
                        error = %crate::error::error_chain(e),
                        "could not record a step; abandoning this run (its lease will expire)"
                    ),
                    other => tracing::info!(reason = %other, "run stopped"),
                }
                None
            }
            Ok(Err(err)) => Some(Outcome::Failed(error_record(&err))),
            Err(panic) => Some(Outcome::Failed(ErrorRecord {
                kind: "panic".to_owned(),
                message: format!("task panicked: {}", panic_message(&*panic)),
                step: None,
                attempts: None,
            })),
        }
    }
    .instrument(span.clone())
    .await;

    let Some(outcome) = outcome else {
        return;
    };
    let mut backoff = Backoff::new();
    let mut outcome = outcome;
    for attempt in 1..=5 {
        let params = CompleteExecutionParams {
            lease: lease.clone(),
            outcome: outcome.clone(),
        };
        match scheduler.complete_execution(params).await {
            // The backend refused the output itself (over the payload limit): running the
            // workflow again would produce it again, so the execution fails with the reason.
            Err(err @ Error::InvalidInput { .. }) if matches!(outcome, Outcome::Completed(_)) => {
                outcome = Outcome::Failed(ErrorRecord {
                    kind: "error".to_owned(),
                    message: format!("the output could not be recorded: {err}"),
                    step: None,
                    attempts: None,
                });
            }
            Ok(()) => {
                let status = match &outcome {
                    Outcome::Completed(_) => "completed",
                    Outcome::Failed(_) => "failed",
                };
                metrics::counter!("zart_executions_finished_total", "status" => status)
                    .increment(1);
                metrics::histogram!("zart_run_duration_seconds")
                    .record(started.elapsed().as_secs_f64());
                span.in_scope(|| tracing::debug!(status, "execution finished"));
                return;
            }
            Err(err) if err.is_transient() && attempt < 5 => {
                tokio::time::sleep(backoff.next()).await;
            }
            Err(err) => {
                span.in_scope(|| {
                    tracing::warn!(
                        error = %crate::error::error_chain(&err),
                        "could not record the verdict; another run will redo it"
                    )
                });
                return;
            }
        }
    }
}

fn deadline_error() -> ErrorRecord {
    ErrorRecord {
        kind: "deadline_exceeded".to_owned(),
        message: "the execution's deadline passed before it finished".to_owned(),
        step: None,
        attempts: None,
    }
}

/// The recorded form of a failure that ends an execution.
fn error_record(err: &TaskError) -> ErrorRecord {
    match err {
        TaskError::StepFailed {
            step,
            message,
            attempts,
            ..
        } => ErrorRecord {
            kind: err.kind().to_owned(),
            message: message.clone(),
            step: Some(step.clone()),
            attempts: Some(*attempts),
        },
        TaskError::NonDeterminism { step, .. } | TaskError::DuplicateStep { step } => ErrorRecord {
            kind: err.kind().to_owned(),
            message: err.to_string(),
            step: Some(step.clone()),
            attempts: None,
        },
        other => ErrorRecord {
            kind: other.kind().to_owned(),
            message: crate::error::error_chain(other),
            step: None,
            attempts: None,
        },
    }
}

/// Renews every lease this worker holds, once per interval, in one call.
async fn heartbeat_loop(
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

fn spawn_signal_listener(handle: ShutdownHandle) {
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = term.recv() => {}
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("signal received; shutting down gracefully");
        handle.shutdown();
    });
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn default_worker_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".to_owned());
    format!(
        "{host}:{}:{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}
