//! Durable sleeps on the store's clock.

use std::time::{Duration, SystemTime};

use serde_json::json;
use zart::scheduler::{StepKind, StepStatus};
use zart::ExecutionStatus;

use crate::tasks::epoch_ms;
use crate::{Backend, Env};

const HOUR: Duration = Duration::from_secs(3600);

/// A sleep suspends the execution (recorded as a waiting `sleep` step, no slot held) until the
/// store's clock passes its wake time; then the run goes on after it, and steps before it are
/// not run again.
pub async fn a_sleep_suspends_until_the_clock_passes_it(backend: &impl Backend) {
    let env = Env::new(backend).await;
    // One slot: while "napper" sleeps, "meanwhile" must still run.
    env.spawn_worker_with(zart::WorkerConfig::default().with_concurrency(1));
    env.start("napper", "sleeper", json!({"secs": 3600})).await;
    env.wait_status("napper", ExecutionStatus::Sleeping).await;
    let nap = env
        .steps("napper")
        .await
        .into_iter()
        .find(|s| s.name == "nap")
        .unwrap();
    assert_eq!(
        (nap.kind, nap.status, nap.seq),
        (StepKind::Sleep, StepStatus::Waiting, 1)
    );

    env.start("meanwhile", "echo", json!(1)).await;
    assert_eq!(
        env.finished("meanwhile").await.status,
        ExecutionStatus::Completed
    );
    assert_eq!(
        env.execution("napper").await.status,
        ExecutionStatus::Sleeping
    );

    env.advance_clock(HOUR + Duration::from_secs(1)).await;
    let done = env.finished("napper").await;
    assert_eq!(done.status, ExecutionStatus::Completed, "{:?}", done.error);
    assert_eq!(done.output, Some(json!("woke")));
    assert_eq!(
        done.attempts, 2,
        "claimed once before and once after the sleep"
    );
    assert_eq!(env.counts.get("napper", "before"), 1);
    assert_eq!(env.counts.get("napper", "after"), 1);
    let kinds: Vec<(String, StepKind, StepStatus)> = env
        .steps("napper")
        .await
        .into_iter()
        .map(|s| (s.name, s.kind, s.status))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("before".into(), StepKind::Step, StepStatus::Completed),
            ("nap".into(), StepKind::Sleep, StepStatus::Completed),
            ("after".into(), StepKind::Step, StepStatus::Completed),
        ]
    );
    env.stop().await;
}

/// `sleep_until` a time already past records the sleep as completed and never suspends.
pub async fn sleep_until_a_past_time_does_not_suspend(backend: &impl Backend) {
    let env = Env::new(backend).await;
    env.spawn_worker();
    let an_hour_ago = epoch_ms(SystemTime::now() - HOUR);
    env.start("past", "sleeper", json!({"until_ms": an_hour_ago}))
        .await;
    let done = env.finished("past").await;
    assert_eq!(done.status, ExecutionStatus::Completed, "{:?}", done.error);
    assert_eq!(done.attempts, 1, "a past time never suspends the execution");
    let nap = env
        .steps("past")
        .await
        .into_iter()
        .find(|s| s.name == "nap")
        .unwrap();
    assert_eq!(
        (nap.kind, nap.status),
        (StepKind::Sleep, StepStatus::Completed)
    );
    env.stop().await;
}

/// `sleep_until` a future time suspends until the store's clock reaches it, not before.
pub async fn sleep_until_a_future_time_suspends_until_then(backend: &impl Backend) {
    let env = Env::new(backend).await;
    env.spawn_worker();
    let in_two_hours = epoch_ms(SystemTime::now() + 2 * HOUR);
    env.start("future", "sleeper", json!({"until_ms": in_two_hours}))
        .await;
    env.wait_status("future", ExecutionStatus::Sleeping).await;

    // An hour later it is not due: a probe started after the clock moved completes, so the
    // worker has looked for due work since then.
    env.advance_clock(HOUR).await;
    env.start("probe", "echo", json!(1)).await;
    assert_eq!(
        env.finished("probe").await.status,
        ExecutionStatus::Completed
    );
    let row = env.execution("future").await;
    assert_eq!((row.status, row.attempts), (ExecutionStatus::Sleeping, 1));

    env.advance_clock(HOUR + Duration::from_secs(1)).await;
    let done = env.finished("future").await;
    assert_eq!(done.status, ExecutionStatus::Completed, "{:?}", done.error);
    assert_eq!(done.attempts, 2);
    assert_eq!(env.counts.get("future", "after"), 1);
    env.stop().await;
}
