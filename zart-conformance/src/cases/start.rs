//! Idempotent start and its conflict rules; delayed starts.

use std::time::{Duration, SystemTime};

use serde_json::json;
use zart::scheduler::{NextRunAtParams, StartExecutionParams};
use zart::{Error, ExecutionStatus, Scheduler, StartOptions};

use crate::{Backend, Env};

fn params(id: &str, task: &str, input: serde_json::Value) -> StartExecutionParams {
    StartExecutionParams {
        id: id.to_owned(),
        task_name: task.to_owned(),
        input,
        queue: "default".to_owned(),
        parent_id: None,
        deadline: None,
        start: None,
        ..Default::default()
    }
}

/// The same id, task and input started twice gives one execution; the second start reports it
/// was not created, with its current status.
pub async fn start_is_idempotent(backend: &impl Backend) {
    let env = Env::new(backend).await;
    let first = env
        .scheduler
        .start_execution(params("order-7", "echo", json!({"qty": 1})))
        .await
        .unwrap();
    assert!(first.created);
    assert_eq!(first.status, ExecutionStatus::Scheduled);
    let again = env
        .scheduler
        .start_execution(params("order-7", "echo", json!({"qty": 1})))
        .await
        .unwrap();
    assert!(!again.created, "the second start finds the first");
    assert_eq!(again.status, ExecutionStatus::Scheduled);

    let row = env.execution("order-7").await;
    assert_eq!(row.status, ExecutionStatus::Scheduled);
    assert_eq!(row.attempts, 0);
    assert_eq!(row.parent_id, None);
    assert_eq!(
        env.claim("w", &["echo"], 10).await.len(),
        1,
        "one task, not two"
    );
}

/// The same id with another input is a conflict, and the stored execution is unchanged.
pub async fn start_with_another_input_is_a_conflict(backend: &impl Backend) {
    let env = Env::new(backend).await;
    env.start("order-7", "echo", json!({"qty": 1})).await;
    let err = env
        .scheduler
        .start_execution(params("order-7", "echo", json!({"qty": 2})))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Conflict { ref id, .. } if id == "order-7"),
        "{err:?}"
    );
    assert_eq!(err.code(), "conflict");
    assert!(!err.is_transient());
    let stored = env.durable.status("order-7").await.unwrap();
    assert_eq!(stored.input, json!({"qty": 1}));
    assert_eq!(env.claim("w", &["echo"], 10).await.len(), 1);
}

/// The same id with another task is a conflict, and the stored execution is unchanged.
pub async fn start_with_another_task_is_a_conflict(backend: &impl Backend) {
    let env = Env::new(backend).await;
    env.start("order-7", "echo", json!({"qty": 1})).await;
    let err = env
        .scheduler
        .start_execution(params("order-7", "steps", json!({"qty": 1})))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Conflict { ref id, .. } if id == "order-7"),
        "{err:?}"
    );
    let stored = env.durable.status("order-7").await.unwrap();
    assert_eq!(stored.task_name, "echo");
    assert!(
        env.claim("w", &["steps"], 10).await.is_empty(),
        "no task of the other name"
    );
}

/// Starting a finished execution again returns it as it ended (not created, completed), and
/// runs nothing; another input is still a conflict.
pub async fn start_of_a_finished_execution_returns_it(backend: &impl Backend) {
    let env = Env::new(backend).await;
    env.spawn_worker();
    env.start("once", "echo", json!("hello")).await;
    assert_eq!(
        env.finished("once").await.status,
        ExecutionStatus::Completed
    );

    let again = env
        .durable
        .start("once", "echo", json!("hello"))
        .await
        .unwrap();
    assert!(!again.created);
    assert_eq!(again.status, ExecutionStatus::Completed);
    let err = env
        .durable
        .start("once", "echo", json!("other"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
    let row = env.execution("once").await;
    assert_eq!(row.status, ExecutionStatus::Completed);
    assert_eq!(row.output, Some(json!("hello")));
    assert_eq!(row.attempts, 1);
    assert_eq!(env.counts.get("once", "echo"), 1, "nothing ran again");
    env.stop().await;
}

/// A delayed start is stored at once as `scheduled` and is not claimed before its time (a
/// delay on the store's clock, or a time); `next_run_at` reports it, so an idle worker wakes
/// then. Its deadline counts from its start. A start time already past means now. A repeated
/// start with another delay finds the execution. A delay over 100 years is refused.
pub async fn a_delayed_start_runs_at_its_time(backend: &impl Backend) {
    let env = Env::new(backend).await;
    let hour = Duration::from_secs(3600);
    let later = StartOptions::new()
        .with_delay(hour)
        .with_deadline(Duration::from_secs(600));
    let started = env
        .durable
        .start_with("later", "echo", json!(1), later.clone())
        .await
        .unwrap();
    assert_eq!(
        (started.created, started.status),
        (true, ExecutionStatus::Scheduled)
    );
    assert!(
        env.claim("w", &["echo"], 10).await.is_empty(),
        "not due yet"
    );
    let next = env
        .scheduler
        .next_run_at(NextRunAtParams {
            queue: "default".into(),
            task_names: vec!["echo".into()],
        })
        .await
        .unwrap()
        .expect("a due time");
    assert!(
        next > hour - Duration::from_secs(60) && next <= hour,
        "due in about an hour: {next:?}"
    );
    let again = env
        .durable
        .start_with(
            "later",
            "echo",
            json!(1),
            later.with_delay(Duration::from_secs(7200)),
        )
        .await
        .unwrap();
    assert!(!again.created, "a repeated start finds the execution");

    // A time already past: due now.
    env.durable
        .start_with(
            "overdue",
            "echo",
            json!(2),
            StartOptions::new().with_start_at(SystemTime::now() - hour),
        )
        .await
        .unwrap();
    let claimed = env.claim("w", &["echo"], 10).await;
    let ids: Vec<&str> = claimed
        .iter()
        .map(|t| t.lease.execution_id.as_str())
        .collect();
    assert_eq!(ids, ["overdue"]);

    // An hour on: it runs, and its ten-minute deadline, counted from its start, holds.
    env.spawn_worker();
    env.advance_clock(hour + Duration::from_secs(1)).await;
    let done = env.finished("later").await;
    assert_eq!(done.status, ExecutionStatus::Completed, "{:?}", done.error);

    let err = env
        .durable
        .start_with(
            "never",
            "echo",
            json!(3),
            StartOptions::new().with_delay(Duration::from_secs(200 * 365 * 24 * 3600)),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidInput { field, .. } if field == "start delay"),
        "{err:?}"
    );
    env.stop().await;
}
