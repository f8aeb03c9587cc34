//! [`Env`]: one case's world: a fresh store, the registry of [`crate::tasks`], a client,
//! in-process workers, and the calls of a fake worker that claims and writes by hand.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use zart::scheduler::{
    ClaimTasksParams, ClaimedTask, CommitStepParams, DynScheduler, ReleaseTasksParams, StepStatus,
};
use zart::{
    DurableScheduler, Error, Execution, ShutdownHandle, TaskRegistry, Worker, WorkerConfig,
};

use crate::tasks::{self, Counts};
use crate::{Backend, ExecutionRow, Fixture, Harness, StepRow};

/// How long a case waits for anything before it fails.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// The lease a fake worker takes: long enough never to expire unless the clock moves.
pub const FAKE_LEASE: Duration = Duration::from_secs(60);

type RunningWorker = (ShutdownHandle, tokio::task::JoinHandle<Result<(), Error>>);

/// One case's world. Dropping it leaves workers running until the runtime ends; call
/// [`Env::stop`] at the end of a case to check they shut down cleanly.
pub struct Env {
    harness: Harness,
    /// The scheduler under test, as workers and the client hold it.
    pub scheduler: Arc<DynScheduler>,
    /// Every task of [`crate::tasks`].
    pub registry: Arc<TaskRegistry>,
    /// The client.
    pub durable: DurableScheduler<DynScheduler>,
    /// How often each step body ran.
    pub counts: Counts,
    workers: Mutex<Vec<RunningWorker>>,
}

impl Env {
    /// A fresh store from `backend`, with the registry of every test task.
    pub async fn new(backend: &impl Backend) -> Env {
        let harness = backend.fresh().await;
        let scheduler = Arc::new(harness.scheduler().clone());
        let counts = Counts::default();
        let registry = Arc::new(tasks::registry(&counts));
        let durable = DurableScheduler::new(scheduler.clone(), registry.clone());
        Env {
            harness,
            scheduler,
            registry,
            durable,
            counts,
            workers: Mutex::default(),
        }
    }

    /// The backend's fixture (clock and read-only view).
    pub fn fixture(&self) -> &dyn Fixture {
        self.harness.fixture()
    }

    /// Moves the store's clock forward.
    pub async fn advance_clock(&self, by: Duration) {
        self.fixture().advance_clock(by).await;
    }

    /// One execution as stored; fails the case if it does not exist.
    pub async fn execution(&self, id: &str) -> ExecutionRow {
        self.fixture()
            .execution(id)
            .await
            .unwrap_or_else(|| panic!("execution {id:?} is not stored"))
    }

    /// The step rows of an execution, in `seq` order.
    pub async fn steps(&self, id: &str) -> Vec<StepRow> {
        self.fixture().steps(id).await
    }

    /// `(name, seq, status, attempts)` of each step row, for compact assertions.
    pub async fn step_summary(&self, id: &str) -> Vec<(String, u32, StepStatus, u32)> {
        self.steps(id)
            .await
            .into_iter()
            .map(|s| (s.name, s.seq, s.status, s.attempts))
            .collect()
    }

    /// Starts an execution through the client.
    pub async fn start(&self, id: &str, task: &str, input: Value) {
        self.durable.start(id, task, input).await.unwrap();
    }

    /// Waits for an execution to finish (completed, failed or cancelled).
    pub async fn finished(&self, id: &str) -> Execution {
        match self.durable.wait(id, Some(PATIENCE)).await {
            Ok(execution) => execution,
            Err(err) => panic!("execution {id:?} did not finish: {err}"),
        }
    }

    /// Starts an in-process worker for every task (signal handling off) with a default config.
    pub fn spawn_worker(&self) -> ShutdownHandle {
        self.spawn_worker_with(WorkerConfig::default())
    }

    /// Starts an in-process worker with `config` (signal handling off).
    pub fn spawn_worker_with(&self, config: WorkerConfig) -> ShutdownHandle {
        let worker = Worker::new(
            self.scheduler.clone(),
            self.registry.clone(),
            config.with_handle_signals(false),
        );
        let stop = worker.shutdown_handle();
        let handle = tokio::spawn(worker.run());
        self.workers.lock().unwrap().push((stop.clone(), handle));
        stop
    }

    /// Shuts every worker down and checks each ended without error.
    pub async fn stop(self) {
        self.stop_workers().await;
    }

    /// Shuts every worker started so far down, waits until each has stopped, and checks each
    /// ended without error. The store stays usable.
    pub async fn stop_workers(&self) {
        let workers = std::mem::take(&mut *self.workers.lock().unwrap());
        for (stop, _) in &workers {
            stop.shutdown();
        }
        for (_, handle) in workers {
            handle.await.unwrap().unwrap();
        }
    }

    /// Waits until `id` has `status` as stored.
    pub async fn wait_status(&self, id: &str, status: zart::ExecutionStatus) -> ExecutionRow {
        wait_for(&format!("{id:?} to be {status}"), || async {
            self.fixture()
                .execution(id)
                .await
                .filter(|e| e.status == status)
        })
        .await
    }

    /// Claims as a fake worker: up to `limit` due tasks of `names`, with [`FAKE_LEASE`].
    pub async fn claim(&self, worker: &str, names: &[&str], limit: u32) -> Vec<ClaimedTask> {
        self.scheduler
            .claim_tasks(ClaimTasksParams {
                worker_id: worker.to_owned(),
                queue: "default".to_owned(),
                task_names: names.iter().map(|n| (*n).to_owned()).collect(),
                limit,
                lease: FAKE_LEASE,
                ..Default::default()
            })
            .await
            .unwrap()
    }

    /// Claims exactly one task of `task` as a fake worker.
    pub async fn claim_one(&self, worker: &str, task: &str) -> ClaimedTask {
        let mut claimed = self.claim(worker, &[task], 1).await;
        assert_eq!(claimed.len(), 1, "{worker} claims one {task} task");
        claimed.remove(0)
    }

    /// Records a completed step under a fake worker's claim.
    pub async fn commit(
        &self,
        task: &ClaimedTask,
        name: &str,
        seq: u32,
        output: Value,
    ) -> Result<(), Error> {
        self.scheduler
            .commit_step(CommitStepParams {
                lease: task.lease.clone(),
                name: name.to_owned(),
                seq,
                status: StepStatus::Completed,
                output: Some(output),
                error: None,
                attempts: 1,
            })
            .await
    }

    /// Gives a fake worker's claim back.
    pub async fn release(&self, worker: &str, task: &ClaimedTask) -> u64 {
        self.scheduler
            .release_tasks(ReleaseTasksParams {
                worker_id: worker.to_owned(),
                queue: "default".to_owned(),
                leases: vec![task.lease.clone()],
            })
            .await
            .unwrap()
    }
}

/// Polls `check` until it returns `Some`, or fails the case naming `what` after [`PATIENCE`].
pub async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {PATIENCE:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
