//! Retrying a failed execution: from the step that failed it, keeping the steps before it,
//! reviving the children it was waiting on, and refusing what is not failed.

use std::time::Duration;

use serde_json::json;
use zart::scheduler::{CompleteExecutionParams, Outcome, StepStatus};
use zart::{Error, ErrorRecord, ExecutionStatus, Scheduler, StartOptions};

use crate::tasks::FIX;
use crate::{Backend, Env};

/// A failed execution retried after its cause is fixed runs again from its failed step: the
/// steps recorded before it are not run again, the failed step runs with fresh attempts, and
/// the execution completes; `wait()` returns the new outcome.
pub async fn retry_reruns_a_failed_execution_from_its_failed_step(backend: &impl Backend) {
    let env = Env::new(backend).await;
    env.spawn_worker();
    env.start("repair", "fixable", json!(null)).await;
    let failed = env.finished("repair").await;
    assert_eq!(failed.status, ExecutionStatus::Failed);
    let error = failed.error.unwrap();
    assert_eq!(
        (error.step.as_deref(), error.message.as_str()),
        (Some("risky"), "not fixed yet")
    );

    env.counts.hit(FIX.0, FIX.1);
    assert_eq!(
        env.durable.retry("repair").await.unwrap(),
        vec!["repair".to_owned()]
    );
    let done = env.finished("repair").await;
    assert_eq!(done.status, ExecutionStatus::Completed, "{:?}", done.error);
    assert_eq!(done.output, Some(json!(3)));
    assert!(done.error.is_none(), "the old error is cleared");
    assert!(done.attempts >= 2, "attempts count on: {}", done.attempts);
    assert_eq!(env.counts.get("repair", "first"), 1, "kept, not run again");
    assert_eq!(env.counts.get("repair", "risky"), 2);
    assert_eq!(env.counts.get("repair", "last"), 1);
    assert_eq!(
        env.step_summary("repair").await,
        vec![
            ("first".into(), 0, StepStatus::Completed, 1),
            ("risky".into(), 1, StepStatus::Completed, 1),
            ("last".into(), 2, StepStatus::Completed, 1),
        ],
        "the failed attempt's row was replaced, with fresh attempts"
    );

    let again = env.durable.retry("repair").await.unwrap_err();
    assert!(
        matches!(&again, Error::NotRetryable { id, reason }
            if id == "repair" && reason.starts_with("it is completed")),
        "{again:?}"
    );
    assert_eq!(again.code(), "not_retryable");
    env.stop().await;
}

/// Retrying a parent that failed because its child failed revives the child too: the child
/// runs again from its own failed step, and the parent completes with its output.
pub async fn retry_revives_the_failed_child_with_its_parent(backend: &impl Backend) {
    let env = Env::new(backend).await;
    env.spawn_worker();
    env.start("order", "fixable", json!({"kid": true})).await;
    let failed = env.finished("order").await;
    assert_eq!(failed.status, ExecutionStatus::Failed);
    assert_eq!(failed.error.unwrap().kind, "child_failed");
    assert_eq!(
        env.execution("order/kid").await.status,
        ExecutionStatus::Failed
    );

    env.counts.hit(FIX.0, FIX.1);
    assert_eq!(
        env.durable.retry("order").await.unwrap(),
        vec!["order".to_owned(), "order/kid".to_owned()]
    );
    let done = env.finished("order").await;
    assert_eq!(done.status, ExecutionStatus::Completed, "{:?}", done.error);
    assert_eq!(done.output, Some(json!(3)));
    let kid = env.finished("order/kid").await;
    assert_eq!(kid.status, ExecutionStatus::Completed, "{:?}", kid.error);
    for (id, step, runs) in [
        ("order", "first", 1),
        ("order/kid", "first", 1),
        ("order/kid", "risky", 2),
        ("order", "risky", 1),
        ("order", "last", 1),
    ] {
        assert_eq!(env.counts.get(id, step), runs, "{id} {step}");
    }
    env.stop().await;
}

/// Only a failed execution can be retried: unknown ids are not found; scheduled, cancelled
/// and completed ones, and one past its deadline, are refused with nothing changed. A lease
/// held before the failure cannot write after the retry.
pub async fn retry_refuses_what_is_not_failed_and_fences_old_leases(backend: &impl Backend) {
    let env = Env::new(backend).await;
    let missing = env.durable.retry("nobody").await.unwrap_err();
    assert!(
        matches!(&missing, Error::NotFound { id } if id == "nobody"),
        "{missing:?}"
    );

    env.start("queued", "echo", json!(1)).await;
    let refused = |id: &'static str, status: &'static str| {
        move |err: Error| {
            assert!(
                matches!(&err, Error::NotRetryable { id: i, reason }
                    if i == id && reason.starts_with(&format!("it is {status}"))),
                "{id}: {err:?}"
            );
        }
    };
    refused("queued", "scheduled")(env.durable.retry("queued").await.unwrap_err());
    env.durable.cancel("queued").await.unwrap();
    refused("queued", "cancelled")(env.durable.retry("queued").await.unwrap_err());
    assert_eq!(
        env.execution("queued").await.status,
        ExecutionStatus::Cancelled
    );

    // A run fails its execution; the retry makes it due under a new claim.
    env.start("stale", "echo", json!(2)).await;
    let old = env.claim_one("w1", "echo").await;
    fail(&env, &old).await;
    assert_eq!(
        env.durable.retry("stale").await.unwrap(),
        vec!["stale".to_owned()]
    );
    assert_eq!(
        env.execution("stale").await.status,
        ExecutionStatus::Scheduled
    );
    let new = env.claim_one("w2", "echo").await;
    assert_ne!(new.lease.fence, old.lease.fence);
    let late = env
        .commit(&old, "echo", 0, json!("late"))
        .await
        .unwrap_err();
    assert!(matches!(late, Error::LeaseLost { .. }), "{late:?}");
    assert!(
        env.steps("stale").await.is_empty(),
        "the late write left nothing"
    );
    env.commit(&new, "echo", 0, json!(2)).await.unwrap();

    // Past its deadline, a retry would fail at once: refused.
    env.durable
        .start_with(
            "late",
            "echo",
            json!(3),
            StartOptions::new().with_deadline(Duration::from_secs(60)),
        )
        .await
        .unwrap();
    let task = env.claim_one("w3", "echo").await;
    fail(&env, &task).await;
    env.advance_clock(Duration::from_secs(120)).await;
    let err = env.durable.retry("late").await.unwrap_err();
    assert!(
        matches!(&err, Error::NotRetryable { reason, .. } if reason.starts_with("its deadline passed")),
        "{err:?}"
    );
    assert_eq!(env.execution("late").await.status, ExecutionStatus::Failed);
}

/// Fails the claimed execution as a run whose workflow returned an error would.
async fn fail(env: &Env, task: &zart::scheduler::ClaimedTask) {
    env.scheduler
        .complete_execution(CompleteExecutionParams {
            lease: task.lease.clone(),
            outcome: Outcome::Failed(ErrorRecord {
                kind: "failed".into(),
                message: "it broke".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap();
}
