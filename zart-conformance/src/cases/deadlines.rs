//! Execution deadlines on the store's clock.

use std::time::Duration;

use serde_json::json;
use zart::scheduler::NextRunAtParams;
use zart::{ExecutionStatus, Scheduler, StartOptions};

use crate::{Backend, Env};

const DEADLINE_MESSAGE: &str = "the execution's deadline passed before it finished";

/// A run still going when its deadline passes is stopped, and the execution fails with kind
/// `deadline_exceeded`; the unfinished step is not recorded.
pub async fn a_running_execution_past_its_deadline_fails(backend: &impl Backend) {
    let env = Env::new(backend).await;
    env.spawn_worker();
    env.durable
        .start_with(
            "busy",
            "gated",
            json!(null),
            StartOptions::new().with_deadline(Duration::from_millis(500)),
        )
        .await
        .unwrap();
    let done = env.finished("busy").await;
    assert_eq!(done.status, ExecutionStatus::Failed);
    let error = done.error.unwrap();
    assert_eq!(error.kind, "deadline_exceeded");
    assert_eq!(error.message, DEADLINE_MESSAGE);
    assert_eq!(
        env.counts.get("busy", "gated"),
        1,
        "the gated step was running"
    );
    let names: Vec<String> = env
        .steps("busy")
        .await
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["first"], "the unfinished step was not recorded");
    env.stop().await;
}

/// A deadline caps every suspension: a sleep longer than the time left wakes at the deadline,
/// and the execution fails then.
pub async fn a_deadline_cuts_a_sleep_short(backend: &impl Backend) {
    let env = Env::new(backend).await;
    env.spawn_worker();
    env.durable
        .start_with(
            "sleepy",
            "sleeper",
            json!({"secs": 7200}),
            StartOptions::new().with_deadline(Duration::from_secs(3600)),
        )
        .await
        .unwrap();
    env.wait_status("sleepy", ExecutionStatus::Sleeping).await;
    let due_in = env
        .scheduler
        .next_run_at(NextRunAtParams {
            queue: "default".into(),
            task_names: vec!["sleeper".into()],
        })
        .await
        .unwrap()
        .unwrap();
    assert!(
        due_in > Duration::from_secs(3500) && due_in <= Duration::from_secs(3600),
        "the wake-up is capped at the deadline (1 h), not the 2 h sleep: {due_in:?}"
    );

    env.advance_clock(Duration::from_secs(3601)).await;
    let done = env.finished("sleepy").await;
    assert_eq!(done.status, ExecutionStatus::Failed);
    let error = done.error.unwrap();
    assert_eq!(error.kind, "deadline_exceeded");
    assert_eq!(error.message, DEADLINE_MESSAGE);
    assert_eq!(env.counts.get("sleepy", "after"), 0);
    env.stop().await;
}
