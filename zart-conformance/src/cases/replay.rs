//! Replay: recorded steps return their recorded results without running again, and a replay
//! that meets other steps than recorded fails instead of mixing results.

use std::time::Duration;

use serde_json::json;
use zart::scheduler::StepStatus;
use zart::{Error, ExecutionStatus};

use crate::env::FAKE_LEASE;
use crate::{Backend, Env};

/// A run that recorded a step and gave its lease back is resumed by a worker that returns the
/// recorded value and runs only the steps not recorded.
pub async fn replay_skips_recorded_steps(backend: &impl Backend) {
    let env = Env::new(backend).await;
    env.start("r", "steps", json!(3)).await;
    let first = env.claim_one("first", "steps").await;
    env.commit(&first, "step-0", 0, json!(5)).await.unwrap();
    env.release("first", &first).await;

    env.spawn_worker();
    let done = env.finished("r").await;
    assert_eq!(done.status, ExecutionStatus::Completed, "{:?}", done.error);
    assert_eq!(
        done.output,
        Some(json!([5, 10, 20])),
        "step-0 returned its recorded 5"
    );
    assert_eq!(
        env.counts.get("r", "step-0"),
        0,
        "the recorded step did not run again"
    );
    assert_eq!(env.counts.get("r", "step-1"), 1);
    assert_eq!(env.counts.get("r", "step-2"), 1);
    assert_eq!(
        env.step_summary("r").await,
        vec![
            ("step-0".into(), 0, StepStatus::Completed, 1),
            ("step-1".into(), 1, StepStatus::Completed, 1),
            ("step-2".into(), 2, StepStatus::Completed, 1),
        ]
    );
    assert_eq!(env.execution("r").await.attempts, 2);
    env.stop().await;
}

/// A worker that stalls past its lease loses the execution: a live worker takes it over when
/// the lease expires, resumes after the recorded step without running it again, and the
/// stalled worker's late write is refused.
pub async fn a_run_whose_lease_expired_is_resumed_without_rerunning_steps(backend: &impl Backend) {
    let env = Env::new(backend).await;
    env.start("r", "steps", json!(2)).await;
    let zombie = env.claim_one("zombie", "steps").await;
    env.commit(&zombie, "step-0", 0, json!(0)).await.unwrap();

    env.spawn_worker();
    env.advance_clock(FAKE_LEASE + Duration::from_secs(1)).await;
    let done = env.finished("r").await;
    assert_eq!(done.status, ExecutionStatus::Completed, "{:?}", done.error);
    assert_eq!(done.output, Some(json!([0, 10])));
    assert_eq!(done.attempts, 2);
    assert_eq!(env.counts.get("r", "step-0"), 0);
    assert_eq!(env.counts.get("r", "step-1"), 1);

    let err = env
        .commit(&zombie, "step-1", 1, json!("zombie"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::LeaseLost { .. }), "{err:?}");
    assert_eq!(
        env.steps("r").await[1].output,
        Some(json!(10)),
        "the zombie changed nothing"
    );
    env.stop().await;
}

/// Replay that meets another step name at a recorded position fails the execution with
/// `non_determinism`, records nothing for the diverging step, and runs no body.
pub async fn replay_that_meets_another_step_fails_with_non_determinism(backend: &impl Backend) {
    let env = Env::new(backend).await;
    env.start("changed", "steps", json!(1)).await;
    // An older version of the workflow recorded "validate" first.
    let old = env.claim_one("old-version", "steps").await;
    env.commit(&old, "validate", 0, json!(true)).await.unwrap();
    env.release("old-version", &old).await;

    env.spawn_worker();
    let done = env.finished("changed").await;
    assert_eq!(done.status, ExecutionStatus::Failed);
    let error = done.error.unwrap();
    assert_eq!(error.kind, "non_determinism");
    assert_eq!(error.step.as_deref(), Some("step-0"));
    assert_eq!(
        error.message,
        "non-deterministic workflow at step \"step-0\": step 0 was recorded as \"validate\", \
         but the workflow now asks for \"step-0\""
    );
    assert_eq!(env.counts.get("changed", "step-0"), 0);
    assert_eq!(
        env.step_summary("changed").await,
        vec![("validate".into(), 0, StepStatus::Completed, 1)]
    );
    env.stop().await;
}

/// A step name used twice in one run fails the execution with `duplicate_step`.
pub async fn a_step_name_used_twice_fails_the_execution(backend: &impl Backend) {
    let env = Env::new(backend).await;
    env.spawn_worker();
    env.start("dup", "repeats", json!(null)).await;
    let done = env.finished("dup").await;
    assert_eq!(done.status, ExecutionStatus::Failed);
    let error = done.error.unwrap();
    assert_eq!(error.kind, "duplicate_step");
    assert_eq!(
        error.message,
        "step name \"same\" is used twice in one execution; step names must be unique"
    );
    assert_eq!(
        env.step_summary("dup").await,
        vec![("same".into(), 0, StepStatus::Completed, 1)]
    );
    env.stop().await;
}

/// `is_replaying` is false all through a first run, and on a resumed run true up to the last
/// step recorded before it (here, the sleep it was suspended on) and false after it; code that
/// runs only when not replaying runs once per point across the two runs.
pub async fn is_replaying_is_true_until_the_last_recorded_step(backend: &impl Backend) {
    let env = Env::new(backend).await;
    env.spawn_worker();
    env.start("aware", "replay-aware", json!(3600)).await;
    env.wait_status("aware", ExecutionStatus::Sleeping).await;
    let notes = |point: &str, replaying: bool| {
        env.counts
            .get("aware", &format!("replaying@{point}={replaying}"))
    };
    // The first run, up to the sleep.
    assert_eq!((notes("start", false), notes("start", true)), (1, 0));
    assert_eq!(
        (notes("after-first", false), notes("after-first", true)),
        (1, 0)
    );

    env.advance_clock(Duration::from_secs(3601)).await;
    let done = env.finished("aware").await;
    assert_eq!(done.status, ExecutionStatus::Completed, "{:?}", done.error);
    assert_eq!(done.attempts, 2);
    // The resumed run replays "first" and the sleep, then runs on.
    assert_eq!(notes("start", true), 1, "resumed before the recorded steps");
    assert_eq!(
        notes("after-first", true),
        1,
        "the sleep after it was recorded too"
    );
    assert_eq!(
        (notes("after-pause", false), notes("after-pause", true)),
        (1, 0),
        "past the last recorded step"
    );
    assert_eq!(notes("after-second", false), 1);
    for point in ["start", "after-first", "after-pause", "after-second"] {
        assert_eq!(
            env.counts.get("aware", &format!("quiet@{point}")),
            1,
            "the quiet path at {point} ran once in two runs"
        );
    }
    assert_eq!(env.counts.get("aware", "first"), 1);
    assert_eq!(env.counts.get("aware", "second"), 1);
    env.stop().await;
}
