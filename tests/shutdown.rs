//! Graceful shutdown: in-flight runs finish within the timeout; the rest are released so
//! another worker takes them at once instead of after the lease expires.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::{Duration, Instant};

use zart::{ExecutionStatus, WorkerConfig};
use zart_tests::{count, init_tracing, tasks::CountedInput, wait_for, Harness};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_that_finish_within_the_timeout_complete_normally() {
    init_tracing();
    let h = Harness::new().await;
    let stop =
        h.spawn_worker(WorkerConfig::default().with_shutdown_timeout(Duration::from_secs(10)));
    let client = h.db.client().await;
    h.durable
        .start_typed(
            "finishes",
            "counted",
            &CountedInput {
                steps: 2,
                step_ms: 300,
            },
        )
        .await
        .unwrap();
    wait_for(
        "the first step to start",
        Duration::from_secs(10),
        || async {
            (count(&client, "select count(*) from zart_test_side_effects").await > 0).then_some(())
        },
    )
    .await;
    stop.shutdown();
    h.durable
        .wait("finishes", Some(Duration::from_secs(10)))
        .await
        .unwrap();
    let done = h.durable.status("finishes").await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Completed);
    assert_eq!(done.attempts, 1);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_still_going_at_the_timeout_are_released_for_another_worker() {
    init_tracing();
    let h = Harness::new().await;
    // A 30 s lease: without the release, the second worker would wait that long.
    let config = WorkerConfig::default().with_shutdown_timeout(Duration::from_millis(200));
    let first = h.spawn_worker(config.clone());
    let client = h.db.client().await;
    h.durable
        .start_typed(
            "long",
            "counted",
            &CountedInput {
                steps: 1,
                step_ms: 60_000,
            },
        )
        .await
        .unwrap();
    wait_for("the step to start", Duration::from_secs(10), || async {
        (count(&client, "select count(*) from zart_test_side_effects").await > 0).then_some(())
    })
    .await;

    first.shutdown();
    wait_for(
        "the lease to be released",
        Duration::from_secs(10),
        || async {
            let row = client
                .query_one(
                    "select t.locked_by is null, e.status from zart_tasks t
                   join zart_executions e on e.id = t.execution_id where t.execution_id = 'long'",
                    &[],
                )
                .await
                .ok()?;
            (row.get::<_, bool>(0) && row.get::<_, String>(1) == "scheduled").then_some(())
        },
    )
    .await;

    // The next worker claims it at once (well inside the 10 s wait, far from the 30 s lease)
    // and runs the unrecorded step again: step bodies are at-least-once.
    let released_at = Instant::now();
    h.spawn_worker(config);
    wait_for(
        "the second worker to claim it",
        Duration::from_secs(10),
        || async {
            (count(&client, "select count(*) from zart_test_side_effects").await == 2).then_some(())
        },
    )
    .await;
    let pickup = released_at.elapsed();
    eprintln!("pickup after a graceful release: {pickup:?} (lease is 30 s)");
    let attempts: i32 = client
        .query_one(
            "select attempts from zart_execution_status where id = 'long'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(attempts, 2, "claimed again after the release");
    // Leave the 60 s step behind: shut the second worker down the same way.
    h.stop().await;
}
