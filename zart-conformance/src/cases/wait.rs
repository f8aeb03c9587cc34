//! `DurableScheduler::wait`: woken by the backend when an execution finishes.

use std::time::{Duration, Instant};

use serde_json::json;
use zart::{Error, ExecutionStatus, WorkerConfig};

use crate::env::wait_for;
use crate::{Backend, Env};

/// `wait()` returns soon after the execution finishes, woken by the backend's finish
/// notification rather than its 5 s safety check.
pub async fn wait_wakes_when_the_execution_finishes(backend: &impl Backend) {
    let env = Env::new(backend).await;
    env.spawn_worker_with(WorkerConfig::default().with_sweep_interval(Duration::from_secs(600)));
    env.start("held", "gated", json!(null)).await;
    wait_for("the gated step to start", || async {
        (env.counts.get("held", "gated") == 1).then_some(())
    })
    .await;
    let waiter = tokio::spawn({
        let durable = env.durable.clone();
        async move { durable.wait("held", Some(Duration::from_secs(20))).await }
    });
    // Let the waiter subscribe and take its first look.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let opened = Instant::now();
    env.counts.open_gate(1);
    let done = waiter.await.unwrap().unwrap();
    let took = opened.elapsed();
    assert_eq!(done.status, ExecutionStatus::Completed, "{:?}", done.error);
    assert_eq!(done.output, Some(json!(3)));
    assert!(
        took < Duration::from_secs(3),
        "wait() returned {took:?} after the gate opened"
    );
    env.stop().await;
}

/// `wait()` with a timeout on an execution that does not finish fails with `WaitTimeout`.
pub async fn wait_times_out_on_an_unfinished_execution(backend: &impl Backend) {
    let env = Env::new(backend).await;
    env.start("idle", "echo", json!(1)).await;
    let started = Instant::now();
    let err = env
        .durable
        .wait("idle", Some(Duration::from_millis(300)))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::WaitTimeout { ref id, .. } if id == "idle"),
        "{err:?}"
    );
    assert_eq!(err.code(), "wait_timeout");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        env.execution("idle").await.status,
        ExecutionStatus::Scheduled
    );
}
