//! Retries (in the worker and durable), step timeouts and attempt timeouts.

use std::time::Duration;

use serde_json::json;
use zart::scheduler::StepStatus;
use zart::ExecutionStatus;

use crate::tasks::FlakyInput;
use crate::{Backend, Env};

fn flaky(failures: usize, max_attempts: u32, base_ms: u64) -> serde_json::Value {
    serde_json::to_value(FlakyInput {
        failures,
        max_attempts,
        base_ms,
    })
    .unwrap()
}

/// Short back-offs stay in the worker: the step is retried until it succeeds, recorded once
/// with its attempt count, and the execution is claimed once.
pub async fn step_with_retry_retries_until_it_succeeds(backend: &impl Backend) {
    let env = Env::new(backend).await;
    env.spawn_worker();
    env.start("flaky", "flaky", flaky(2, 3, 10)).await;
    let done = env.finished("flaky").await;
    assert_eq!(done.status, ExecutionStatus::Completed, "{:?}", done.error);
    assert_eq!(done.output, Some(json!(3)));
    assert_eq!(done.attempts, 1);
    assert_eq!(env.counts.get("flaky", "flaky"), 3);
    assert_eq!(
        env.step_summary("flaky").await,
        vec![("flaky".into(), 0, StepStatus::Completed, 3)]
    );
    env.stop().await;
}

/// When the attempts run out the step is recorded failed and the execution fails with the
/// step's error, its name and its attempt count.
pub async fn retries_exhausted_fail_the_execution(backend: &impl Backend) {
    let env = Env::new(backend).await;
    env.spawn_worker();
    env.start("hopeless", "flaky", flaky(10, 3, 10)).await;
    let done = env.finished("hopeless").await;
    assert_eq!(done.status, ExecutionStatus::Failed);
    let error = done.error.unwrap();
    assert_eq!(error.kind, "step_failed");
    assert_eq!(error.step.as_deref(), Some("flaky"));
    assert_eq!(error.attempts, Some(3));
    assert_eq!(error.message, "attempt 3 failed on purpose");
    assert_eq!(
        env.counts.get("hopeless", "flaky"),
        3,
        "exactly max_attempts attempts ran"
    );
    let steps = env.steps("hopeless").await;
    assert_eq!(steps.len(), 1);
    assert_eq!(
        (steps[0].status, steps[0].attempts),
        (StepStatus::Failed, 3)
    );
    assert_eq!(
        steps[0].error.as_ref().map(|e| e.message.as_str()),
        Some("attempt 3 failed on purpose")
    );
    env.stop().await;
}

/// A back-off longer than the worker's threshold is durable: the attempt is recorded as
/// `retrying`, the execution sleeps without a lease, and it is retried once the store's clock
/// passes the back-off.
pub async fn a_durable_backoff_suspends_until_the_clock_passes_it(backend: &impl Backend) {
    let env = Env::new(backend).await;
    env.spawn_worker();
    env.start("patient", "flaky", flaky(1, 2, 3_600_000)).await;
    let row = env.wait_status("patient", ExecutionStatus::Sleeping).await;
    assert_eq!(row.attempts, 1);
    let steps = env.steps("patient").await;
    assert_eq!(
        (steps[0].status, steps[0].attempts),
        (StepStatus::Retrying, 1),
        "the failed attempt is recorded"
    );
    assert_eq!(
        steps[0].error.as_ref().map(|e| e.message.as_str()),
        Some("attempt 1 failed on purpose")
    );
    assert!(
        env.claim("other", &["flaky"], 10).await.is_empty(),
        "not due during the back-off"
    );

    env.advance_clock(Duration::from_secs(3601)).await;
    let done = env.finished("patient").await;
    assert_eq!(done.status, ExecutionStatus::Completed, "{:?}", done.error);
    assert_eq!(done.output, Some(json!(2)));
    assert_eq!(done.attempts, 2);
    assert_eq!(env.counts.get("patient", "flaky"), 2);
    assert_eq!(
        env.step_summary("patient").await,
        vec![("flaky".into(), 0, StepStatus::Completed, 2)]
    );
    env.stop().await;
}

/// A step body that runs past its timeout is dropped and the step fails with kind `timeout`.
pub async fn a_step_past_its_timeout_fails_with_kind_timeout(backend: &impl Backend) {
    let env = Env::new(backend).await;
    env.spawn_worker();
    env.start("hang", "hangs", json!(null)).await;
    let done = env.finished("hang").await;
    assert_eq!(done.status, ExecutionStatus::Failed);
    let error = done.error.unwrap();
    assert_eq!(error.kind, "timeout");
    assert_eq!(error.step.as_deref(), Some("quote"));
    assert_eq!(error.attempts, Some(1));
    assert_eq!(error.message, "step timed out after 200ms");
    let steps = env.steps("hang").await;
    assert_eq!(
        (steps[0].status, steps[0].attempts),
        (StepStatus::Failed, 1)
    );
    assert_eq!(
        steps[0].error.as_ref().map(|e| e.kind.as_str()),
        Some("timeout")
    );
    env.stop().await;
}

/// An attempt past its attempt timeout is retried, and the next attempt's result is recorded.
pub async fn a_timed_out_attempt_is_retried(backend: &impl Backend) {
    let env = Env::new(backend).await;
    env.spawn_worker();
    env.start("slow", "slow-once", json!(null)).await;
    let done = env.finished("slow").await;
    assert_eq!(done.status, ExecutionStatus::Completed, "{:?}", done.error);
    assert_eq!(done.output, Some(json!(2)));
    assert_eq!(done.attempts, 1, "the short back-off stayed in the worker");
    assert_eq!(
        env.step_summary("slow").await,
        vec![("quote".into(), 0, StepStatus::Completed, 2)]
    );
    env.stop().await;
}

/// An application error is stored as such on the step and the execution (its kind, message,
/// details, `retryable`), one that is not retryable ends `step_with_retry` at its first
/// attempt, and a workflow's own application error is recorded without a step.
pub async fn an_application_error_is_recorded_with_its_kind_and_details(backend: &impl Backend) {
    let env = Env::new(backend).await;
    env.spawn_worker();
    env.start("declined", "declines", json!({ "in": "step" }))
        .await;
    env.start("rejected", "declines", json!({ "in": "workflow" }))
        .await;

    let declined = env.finished("declined").await;
    assert_eq!(declined.status, ExecutionStatus::Failed);
    let error = declined.error.unwrap();
    let app = error.app_error().expect("an application error");
    assert_eq!(
        (app.kind.as_str(), app.message.as_str(), app.retryable),
        ("card_declined", "the card was declined", false)
    );
    assert_eq!(
        app.details,
        Some(json!({ "decline_code": "insufficient_funds" }))
    );
    assert_eq!(
        (error.step.as_deref(), error.attempts),
        (Some("charge"), Some(1))
    );
    assert_eq!(env.counts.get("declined", "charge"), 1, "not retried");
    let step = env
        .steps("declined")
        .await
        .into_iter()
        .find(|s| s.name == "charge")
        .unwrap();
    assert_eq!((step.status, step.attempts), (StepStatus::Failed, 1));
    let stored = step.error_json.unwrap();
    assert_eq!(stored["kind"], json!("card_declined"));
    assert_eq!(
        stored["details"]["decline_code"],
        json!("insufficient_funds")
    );
    assert_eq!(stored["retryable"], json!(false));
    assert_eq!(env.execution("declined").await.error, Some(error));

    let rejected = env.finished("rejected").await;
    assert_eq!(rejected.status, ExecutionStatus::Failed);
    let error = rejected.error.unwrap();
    assert_eq!(
        (error.kind.as_str(), error.step.as_deref(), error.retryable),
        ("order_rejected", None, Some(true))
    );
    assert_eq!(error.details, Some(json!({ "reason": "fraud_check" })));
    assert!(env.steps("rejected").await.is_empty());
    env.stop().await;
}
