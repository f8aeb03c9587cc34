//! Per-execution deadlines: a running or waiting execution that outlives its deadline fails
//! with kind `deadline_exceeded`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::Duration;

use async_trait::async_trait;
use zart::{
    Error, ExecutionStatus, Scheduler, StartOptions, TaskContext, TaskError, TaskHandler,
    TaskRegistry, WorkerConfig,
};
use zart_tests::{count, init_tracing, wait_for, Harness};

/// Sleeps for the number of seconds in its input, in one step or durably.
struct Slow;

#[async_trait]
impl TaskHandler for Slow {
    type Data = (String, u64);
    type Output = ();

    async fn run(
        &self,
        ctx: &mut TaskContext<impl Scheduler>,
        (how, secs): (String, u64),
    ) -> Result<(), TaskError> {
        if how == "durable" {
            ctx.sleep("nap", Duration::from_secs(secs)).await?;
        } else {
            ctx.step("busy", || async move {
                tokio::time::sleep(Duration::from_secs(secs)).await;
                Ok::<_, std::io::Error>(())
            })
            .await?;
        }
        ctx.step("after", || async { Ok::<_, std::io::Error>(()) })
            .await?;
        Ok(())
    }
}

async fn harness() -> Harness {
    let mut registry = TaskRegistry::new();
    registry.register("slow", Slow).unwrap();
    let h = Harness::with_registry(registry).await;
    h.spawn_worker(WorkerConfig::default());
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_execution_past_its_deadline_fails() {
    init_tracing();
    let h = harness().await;
    h.durable
        .start_with(
            "busy",
            "slow",
            serde_json::json!(["busy", 30]),
            StartOptions::new().with_deadline(Duration::from_millis(500)),
        )
        .await
        .unwrap();
    let done = h
        .durable
        .wait("busy", Some(Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(done.status, ExecutionStatus::Failed);
    let error = done.error.unwrap();
    assert_eq!(error.kind, "deadline_exceeded");
    assert_eq!(
        error.message,
        "the execution's deadline passed before it finished"
    );
    let client = h.db.client().await;
    assert_eq!(count(&client, "select count(*) from zart_steps").await, 0);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_cuts_a_durable_sleep_short() {
    init_tracing();
    let h = harness().await;
    h.durable
        .start_with(
            "sleepy",
            "slow",
            serde_json::json!(["durable", 7200]),
            StartOptions::new().with_deadline(Duration::from_secs(3600)),
        )
        .await
        .unwrap();
    let client = h.db.client().await;
    let wakes_in_hours: f64 = wait_for("the sleep to start", Duration::from_secs(10), || async {
        client
            .query_opt(
                "select (extract(epoch from run_at - now()) / 3600)::float8 from zart_tasks
                  where locked_by is null and wait_kind = 'sleep'",
                &[],
            )
            .await
            .unwrap()
            .map(|r| r.get(0))
    })
    .await;
    assert!(
        wakes_in_hours > 0.99 && wakes_in_hours < 1.01,
        "the wake-up is capped at the deadline (1 h), not the 2 h sleep: {wakes_in_hours}"
    );

    h.db.advance_clock(Duration::from_secs(3601)).await;
    let done = h
        .durable
        .wait("sleepy", Some(Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(done.status, ExecutionStatus::Failed);
    assert_eq!(done.error.unwrap().kind, "deadline_exceeded");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_deadline_is_refused() {
    init_tracing();
    let h = harness().await;
    let err = h
        .durable
        .start_with(
            "zero",
            "slow",
            serde_json::json!(["busy", 1]),
            StartOptions::new().with_deadline(Duration::ZERO),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
    assert_eq!(err.to_string(), "invalid deadline: must be at least 1 ms");
    h.stop().await;
}
