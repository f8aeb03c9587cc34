//! A step commit that fails on contention (a serialization failure or a deadlock, which roll
//! the write back) is tried again, so the run goes on instead of waiting out its lease; the
//! step body still runs once. The backend is SQLite in memory behind a wrapper that makes the
//! first commits fail with `Error::Contention`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::broadcast;
use zart::scheduler::*;
use zart::{
    DurableScheduler, Error, Execution, ExecutionStatus, Scheduler, TaskContext, TaskError,
    TaskHandler, TaskRegistry, Worker, WorkerConfig,
};
use zart_sqlite::SqliteScheduler;

/// Delegates every call to `inner`, but fails the first `fail_commits` step commits.
struct Contended {
    inner: SqliteScheduler,
    fail_commits: u32,
    commits: AtomicU32,
}

#[async_trait]
impl Scheduler for Contended {
    async fn check_schema(&self) -> Result<(), Error> {
        self.inner.check_schema().await
    }
    async fn start_execution(&self, p: StartExecutionParams) -> Result<StartOutcome, Error> {
        self.inner.start_execution(p).await
    }
    async fn claim_tasks(&self, p: ClaimTasksParams) -> Result<Vec<ClaimedTask>, Error> {
        self.inner.claim_tasks(p).await
    }
    async fn commit_step(&self, p: CommitStepParams) -> Result<(), Error> {
        if self.commits.fetch_add(1, Ordering::SeqCst) < self.fail_commits {
            return Err(Error::Contention {
                message: "deadlock detected (injected)".to_owned(),
                source: None,
            });
        }
        self.inner.commit_step(p).await
    }
    async fn retry_step(&self, p: RetryStepParams) -> Result<(), Error> {
        self.inner.retry_step(p).await
    }
    async fn complete_execution(&self, p: CompleteExecutionParams) -> Result<(), Error> {
        self.inner.complete_execution(p).await
    }
    async fn sleep(&self, p: SleepParams) -> Result<Option<Duration>, Error> {
        self.inner.sleep(p).await
    }
    async fn await_event(&self, p: AwaitEventParams) -> Result<EventWait, Error> {
        self.inner.await_event(p).await
    }
    async fn prune(&self, p: PruneParams) -> Result<PruneOutcome, Error> {
        self.inner.prune(p).await
    }
    async fn send_event(&self, p: SendEventParams) -> Result<(), Error> {
        self.inner.send_event(p).await
    }
    async fn start_child(&self, p: StartChildParams) -> Result<ChildWait, Error> {
        self.inner.start_child(p).await
    }
    async fn start_children(&self, p: StartChildrenParams) -> Result<Vec<ChildWait>, Error> {
        self.inner.start_children(p).await
    }
    async fn cancel_execution(&self, id: &str) -> Result<Vec<String>, Error> {
        self.inner.cancel_execution(id).await
    }
    async fn retry_execution(&self, id: &str) -> Result<Vec<String>, Error> {
        self.inner.retry_execution(id).await
    }
    async fn heartbeat(&self, p: HeartbeatParams) -> Result<Vec<Lease>, Error> {
        self.inner.heartbeat(p).await
    }
    async fn release_tasks(&self, p: ReleaseTasksParams) -> Result<u64, Error> {
        self.inner.release_tasks(p).await
    }
    async fn next_run_at(&self, p: NextRunAtParams) -> Result<Option<Duration>, Error> {
        self.inner.next_run_at(p).await
    }
    async fn get_execution(&self, id: &str) -> Result<Option<Execution>, Error> {
        self.inner.get_execution(id).await
    }
    async fn upsert_schedule(&self, s: zart::schedule::Schedule) -> Result<bool, Error> {
        self.inner.upsert_schedule(s).await
    }
    async fn pause_schedule(&self, id: &str, paused: bool) -> Result<(), Error> {
        self.inner.pause_schedule(id, paused).await
    }
    async fn delete_schedule(&self, id: &str) -> Result<bool, Error> {
        self.inner.delete_schedule(id).await
    }
    async fn list_schedules(&self) -> Result<Vec<zart::schedule::ScheduleRow>, Error> {
        self.inner.list_schedules().await
    }
    async fn claim_schedules(&self, p: ClaimSchedulesParams) -> Result<Vec<DueSchedule>, Error> {
        self.inner.claim_schedules(p).await
    }
    async fn fire_schedule(&self, p: FireScheduleParams) -> Result<FireOutcome, Error> {
        self.inner.fire_schedule(p).await
    }
    async fn next_schedule_at(&self, p: NextRunAtParams) -> Result<Option<Duration>, Error> {
        self.inner.next_schedule_at(p).await
    }
    async fn set_queue_limits(
        &self,
        queue: &str,
        limits: Option<zart::queues::QueueLimits>,
    ) -> Result<bool, Error> {
        self.inner.set_queue_limits(queue, limits).await
    }
    async fn list_queue_limits(&self) -> Result<Vec<zart::queues::QueueLimitsRow>, Error> {
        self.inner.list_queue_limits().await
    }
    async fn get_state(&self, id: &str) -> Result<Vec<zart::scheduler::StateValue>, Error> {
        self.inner.get_state(id).await
    }
    fn subscribe(&self) -> broadcast::Receiver<Wakeup> {
        self.inner.subscribe()
    }
}

/// One step that counts its runs.
struct Counted(Arc<AtomicU32>);

#[async_trait]
impl TaskHandler for Counted {
    type Data = ();
    type Output = u32;

    async fn run(&self, ctx: &mut TaskContext<impl Scheduler>, _: ()) -> Result<u32, TaskError> {
        let runs = self.0.clone();
        ctx.step("count", || async move {
            Ok::<_, std::io::Error>(runs.fetch_add(1, Ordering::SeqCst) + 1)
        })
        .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_commit_that_hits_contention_is_tried_again() {
    let scheduler = Arc::new(Contended {
        inner: SqliteScheduler::connect("sqlite::memory:").await.unwrap(),
        fail_commits: 2,
        commits: AtomicU32::new(0),
    });
    let runs = Arc::new(AtomicU32::new(0));
    let mut registry = TaskRegistry::new();
    registry.register("counted", Counted(runs.clone())).unwrap();
    let registry = Arc::new(registry);
    let worker = Worker::new(
        scheduler.clone(),
        registry.clone(),
        WorkerConfig::default().with_handle_signals(false),
    );
    let stop = worker.shutdown_handle();
    let running = tokio::spawn(worker.run());
    let durable = DurableScheduler::new(scheduler.clone(), registry);
    durable.start_typed("c-1", "counted", &()).await.unwrap();
    // Well inside the default 30 s lease: the run was not abandoned to it.
    let done = durable
        .wait("c-1", Some(Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(done.status, ExecutionStatus::Completed, "{:?}", done.error);
    assert_eq!(done.output, Some(serde_json::json!(1)));
    assert_eq!(runs.load(Ordering::SeqCst), 1, "the step body ran once");
    assert_eq!(
        scheduler.commits.load(Ordering::SeqCst),
        3,
        "two refused, one recorded"
    );
    stop.shutdown();
    running.await.unwrap().unwrap();
}
