//! The in-process hand-off (issue #20 item 3): a start through the scheduler an idle local
//! worker uses leases the execution in the start's own transaction and hands it over; the
//! worker's concurrency still holds, and a start it cannot take wakes the other workers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Semaphore;
use zart::{
    DurableScheduler, ExecutionStatus, Scheduler, TaskContext, TaskError, TaskHandler,
    TaskRegistry, Worker, WorkerConfig,
};
use zart_tests::{init_tracing, tasks, Harness};

const WAIT: Option<Duration> = Some(Duration::from_secs(15));

/// Waits at a gate, counting how many runs are inside at once.
struct Gated {
    gate: Arc<Semaphore>,
    inside: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
}

#[async_trait]
impl TaskHandler for Gated {
    type Data = serde_json::Value;
    type Output = serde_json::Value;

    async fn run(
        &self,
        _ctx: &mut TaskContext<impl Scheduler>,
        data: serde_json::Value,
    ) -> Result<serde_json::Value, TaskError> {
        let now = self.inside.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        self.gate.acquire().await.unwrap().forget();
        self.inside.fetch_sub(1, Ordering::SeqCst);
        Ok(data)
    }
}

fn gated() -> (Gated, Arc<Semaphore>, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let gate = Arc::new(Semaphore::new(0));
    let inside = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let task = Gated {
        gate: gate.clone(),
        inside: inside.clone(),
        most: most.clone(),
    };
    (task, gate, inside, most)
}

/// Whether the execution was first leased in the transaction that created it (one `now()`).
async fn leased_by_its_start(h: &Harness, id: &str) -> bool {
    h.db.client()
        .await
        .query_one(
            "select started_at = created_at from zart_executions where id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_local_worker_gets_the_start_leased_in_its_own_transaction() {
    init_tracing();
    let mut registry = TaskRegistry::new();
    registry.register("echo", tasks::Echo).unwrap();
    let h = Harness::with_registry(registry).await;
    h.spawn_worker(WorkerConfig::default());
    // Another process's client: a scheduler of its own, so no worker of its offers a slot.
    let other = DurableScheduler::new(h.db.scheduler().await, h.registry.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;

    for (id, durable) in [("local", &h.durable), ("remote", &other)] {
        durable
            .start(id, "echo", serde_json::json!(id))
            .await
            .unwrap();
        let done = h.durable.wait(id, WAIT).await.unwrap();
        assert_eq!(done.status, ExecutionStatus::Completed, "{id}");
        assert_eq!(done.attempts, 1, "{id}");
        // Let the worker park again before the next start.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(leased_by_its_start(&h, "local").await, "handed over");
    assert!(
        !leased_by_its_start(&h, "remote").await,
        "claimed after a wake-up, in a transaction of its own"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_local_starts_never_overfill_the_worker() {
    init_tracing();
    let (task, gate, inside, most) = gated();
    let mut registry = TaskRegistry::new();
    registry.register("gated", task).unwrap();
    let h = Harness::with_registry(registry).await;
    h.spawn_worker(WorkerConfig::default().with_concurrency(2));
    tokio::time::sleep(Duration::from_millis(300)).await;
    // One run the worker claims itself (started by another process): it parks after that
    // claim with one slot free, and must offer one, not the two it had before the claim.
    let other = DurableScheduler::new(h.db.scheduler().await, h.registry.clone());
    other
        .start("g-claimed", "gated", serde_json::json!(null))
        .await
        .unwrap();
    zart_tests::wait_for("the claimed run", Duration::from_secs(10), || async {
        (inside.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await;

    let mut starts = Vec::new();
    for n in 0..12 {
        let durable = h.durable.clone();
        starts.push(tokio::spawn(async move {
            durable
                .start(&format!("g-{n}"), "gated", serde_json::json!(n))
                .await
                .unwrap()
        }));
    }
    for s in starts {
        assert!(s.await.unwrap().created);
    }
    gate.add_permits(13);
    for n in 0..12 {
        let done = h.durable.wait(&format!("g-{n}"), WAIT).await.unwrap();
        assert_eq!(done.status, ExecutionStatus::Completed, "g-{n}");
    }
    assert!(
        most.load(Ordering::SeqCst) <= 2,
        "at most the worker's 2 slots at once, saw {}",
        most.load(Ordering::SeqCst)
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_the_busy_local_worker_cannot_take_wakes_another_process() {
    init_tracing();
    let (task, gate, inside, _most) = gated();
    let mut registry = TaskRegistry::new();
    registry.register("gated", task).unwrap();
    registry.register("echo", tasks::Echo).unwrap();
    let h = Harness::with_registry(registry).await;
    h.spawn_worker(WorkerConfig::default().with_concurrency(1));
    tokio::time::sleep(Duration::from_millis(300)).await;
    h.durable
        .start("busy", "gated", serde_json::json!(null))
        .await
        .unwrap();
    zart_tests::wait_for("the gated run", Duration::from_secs(10), || async {
        (inside.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await;

    // Another process's worker (its own scheduler), with a sweep far beyond the wait below:
    // only the start's wake-up can bring it the work.
    let other = Worker::new(
        h.db.scheduler().await,
        h.registry.clone(),
        WorkerConfig::default()
            .with_handle_signals(false)
            .with_sweep_interval(Duration::from_secs(600)),
    );
    let stop_other = other.shutdown_handle();
    let other = tokio::spawn(other.run());
    tokio::time::sleep(Duration::from_millis(300)).await;

    h.durable
        .start("next", "echo", serde_json::json!(1))
        .await
        .unwrap();
    let done = h
        .durable
        .wait("next", Some(Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(done.status, ExecutionStatus::Completed);
    assert!(!leased_by_its_start(&h, "next").await);
    gate.add_permits(1);
    stop_other.shutdown();
    other.await.unwrap().unwrap();
    h.stop().await;
}
