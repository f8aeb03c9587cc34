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

/// `wait_all` and `wait_any` wait for several executions in one loop: `wait_any` returns the
/// one that finishes while the others still run, woken by its finish; `wait_all` returns every
/// one in the order asked (a repeated id at each place); an unfinished one makes `wait_all`
/// time out naming it; `wait_any` of nothing is refused.
pub async fn the_client_waits_for_several_executions_at_once(backend: &impl Backend) {
    let env = Env::new(backend).await;
    env.spawn_worker_with(WorkerConfig::default().with_sweep_interval(Duration::from_secs(600)));
    env.start("held", "gated", json!(null)).await;
    for id in ["a", "b"] {
        env.start(id, "echo", json!(id)).await;
    }
    let any = env
        .durable
        .wait_any(&["held", "b"], Some(Duration::from_secs(20)))
        .await
        .unwrap();
    assert_eq!(
        (any.id.as_str(), any.status),
        ("b", ExecutionStatus::Completed)
    );

    let all = env
        .durable
        .wait_all(&["b", "a", "b"], Some(Duration::from_secs(20)))
        .await
        .unwrap();
    let got: Vec<(&str, ExecutionStatus)> = all.iter().map(|e| (e.id.as_str(), e.status)).collect();
    assert_eq!(
        got,
        [
            ("b", ExecutionStatus::Completed),
            ("a", ExecutionStatus::Completed),
            ("b", ExecutionStatus::Completed)
        ]
    );

    let timed_out = env
        .durable
        .wait_all(&["a", "held"], Some(Duration::from_millis(300)))
        .await;
    assert!(
        matches!(&timed_out, Err(Error::WaitTimeout { id, .. }) if id == "held"),
        "{timed_out:?}"
    );
    let waiter = tokio::spawn({
        let durable = env.durable.clone();
        async move {
            durable
                .wait_all(&["a", "held"], Some(Duration::from_secs(20)))
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let opened = Instant::now();
    env.counts.open_gate(1);
    let all = waiter.await.unwrap().unwrap();
    assert!(
        opened.elapsed() < Duration::from_secs(4),
        "woken by the finish, not the 5 s sweep: {:?}",
        opened.elapsed()
    );
    assert_eq!(all[1].status, ExecutionStatus::Completed);
    assert!(matches!(
        env.durable.wait_any(&[], None).await,
        Err(Error::InvalidInput { .. })
    ));
    assert!(env.durable.wait_all(&[], None).await.unwrap().is_empty());
    env.stop().await;
}

/// A workflow publishes values while it runs (`set_state`); the client reads the latest of
/// each name before it finishes and after; each publication is a step of kind `state`,
/// recorded once; a bad name fails the execution.
pub async fn published_state_is_readable_while_the_execution_runs(backend: &impl Backend) {
    let env = Env::new(backend).await;
    env.spawn_worker_with(WorkerConfig::default().with_sweep_interval(Duration::from_secs(600)));
    env.start("import", "publisher", json!(null)).await;
    wait_for("the gated step to start", || async {
        (env.counts.get("import", "gated") == 1).then_some(())
    })
    .await;
    let read = |state: Vec<zart::scheduler::StateValue>| -> Vec<(String, serde_json::Value)> {
        state.into_iter().map(|s| (s.name, s.value)).collect()
    };
    assert_eq!(
        read(env.durable.state("import").await.unwrap()),
        [
            ("phase".to_owned(), json!("loading")),
            ("progress".to_owned(), json!(2))
        ],
        "the latest of each name, while it runs"
    );
    assert_eq!(
        env.durable
            .state_value::<u32>("import", "progress")
            .await
            .unwrap(),
        Some(2)
    );
    env.counts.open_gate(1);
    let done = env.finished("import").await;
    assert_eq!(done.status, ExecutionStatus::Completed, "{:?}", done.error);
    assert_eq!(
        read(env.durable.state("import").await.unwrap()),
        [
            ("phase".to_owned(), json!("done")),
            ("progress".to_owned(), json!(3))
        ]
    );
    assert_eq!(
        env.durable
            .state_value::<u32>("import", "nothing")
            .await
            .unwrap(),
        None
    );
    assert!(matches!(
        env.durable.state_value::<u32>("import", "phase").await,
        Err(Error::Serialization { .. })
    ));
    assert!(env.durable.state("nobody").await.unwrap().is_empty());
    let steps: Vec<(String, zart::scheduler::StepKind)> = env
        .steps("import")
        .await
        .into_iter()
        .map(|s| (s.name, s.kind))
        .collect();
    let state = zart::scheduler::StepKind::State;
    assert_eq!(
        steps,
        [
            ("state:progress".to_owned(), state),
            ("state:phase".to_owned(), state),
            ("state#2:progress".to_owned(), state),
            ("gated".to_owned(), zart::scheduler::StepKind::Step),
            ("state#3:progress".to_owned(), state),
            ("state#2:phase".to_owned(), state),
        ]
    );

    env.start("bad-name", "publisher", json!("")).await;
    let failed = env.finished("bad-name").await;
    assert_eq!(failed.status, ExecutionStatus::Failed);
    assert!(
        failed.error.unwrap().message.contains("state name"),
        "the error names the field"
    );
    env.stop().await;
}
