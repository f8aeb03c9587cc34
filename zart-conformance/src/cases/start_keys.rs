//! Dedup and debounce keys on start, beside idempotency by id (docs/scheduling.md).

use std::time::Duration;

use serde_json::json;
use zart::{Error, ExecutionStatus, StartOptions};

use crate::{Backend, Env};

/// Within its window, a start with the same task and dedup key starts nothing and returns the
/// first execution, whatever its id and input; after the window, the key starts a new one.
pub async fn a_dedup_key_returns_the_first_execution_within_its_window(backend: &impl Backend) {
    let env = Env::new(backend).await;
    let minute = Duration::from_secs(60);
    let dedup = || StartOptions::new().with_dedup("welcome:u-42", minute);
    let first = env
        .durable
        .start_with("mail-1", "echo", json!(1), dedup())
        .await
        .unwrap();
    assert_eq!(
        (first.created, first.id.as_str()),
        (true, "mail-1"),
        "a new key starts its execution"
    );
    let second = env
        .durable
        .start_with("mail-2", "echo", json!(2), dedup())
        .await
        .unwrap();
    assert_eq!(
        (second.created, second.id.as_str(), second.status),
        (false, "mail-1", ExecutionStatus::Scheduled),
        "the key names the first execution"
    );
    assert!(
        env.fixture().execution("mail-2").await.is_none(),
        "nothing else was started"
    );
    let other_task = env
        .durable
        .start_with(
            "steps-1",
            "steps",
            json!(1),
            StartOptions::new().with_dedup("welcome:u-42", minute),
        )
        .await
        .unwrap();
    assert!(other_task.created, "keys are per task");

    let debounce = env
        .durable
        .start_with(
            "mail-3",
            "echo",
            json!(3),
            StartOptions::new().with_debounce("welcome:u-42", minute),
        )
        .await;
    assert!(
        matches!(debounce, Err(Error::Conflict { .. })),
        "a dedup key is not a debounce key: {debounce:?}"
    );

    env.advance_clock(minute + Duration::from_secs(1)).await;
    let later = env
        .durable
        .start_with("mail-4", "echo", json!(4), dedup())
        .await
        .unwrap();
    assert_eq!(
        (later.created, later.id.as_str()),
        (true, "mail-4"),
        "after the window, the key starts anew"
    );
    let bad = env
        .durable
        .start_with(
            "mail-5",
            "echo",
            json!(5),
            StartOptions::new().with_dedup("", minute),
        )
        .await;
    assert!(matches!(bad, Err(Error::InvalidInput { .. })), "{bad:?}");
}

/// A debounced start runs a window after the last start with its key, with the last input;
/// once a worker has claimed it, the key starts a new execution.
pub async fn a_debounce_key_runs_the_last_input_once_quiet(backend: &impl Backend) {
    let env = Env::new(backend).await;
    let window = Duration::from_secs(10);
    let debounce = || StartOptions::new().with_debounce("sync:acme", window);
    let first = env
        .durable
        .start_with("sync-1", "echo", json!(1), debounce())
        .await
        .unwrap();
    assert!(first.created);
    env.advance_clock(Duration::from_secs(6)).await;
    assert!(env.claim("w", &["echo"], 10).await.is_empty(), "not yet");
    let second = env
        .durable
        .start_with("sync-2", "echo", json!(2), debounce())
        .await
        .unwrap();
    assert_eq!((second.created, second.id.as_str()), (false, "sync-1"));
    env.advance_clock(Duration::from_secs(6)).await;
    assert!(
        env.claim("w", &["echo"], 10).await.is_empty(),
        "the second start moved the window"
    );
    env.advance_clock(Duration::from_secs(5)).await;
    let claimed = env.claim_one("w", "echo").await;
    assert_eq!(claimed.lease.execution_id, "sync-1");
    assert_eq!(claimed.input, json!(2), "with the last input");

    let third = env
        .durable
        .start_with("sync-3", "echo", json!(3), debounce())
        .await
        .unwrap();
    assert_eq!(
        (third.created, third.id.as_str()),
        (true, "sync-3"),
        "once claimed, the key starts a new execution"
    );
    let delayed = env
        .durable
        .start_with(
            "sync-4",
            "echo",
            json!(4),
            debounce().with_delay(Duration::from_secs(1)),
        )
        .await;
    assert!(
        matches!(delayed, Err(Error::InvalidInput { .. })),
        "{delayed:?}"
    );
    let too_big = env
        .durable
        .start_with("sync-5", "echo", json!("x".repeat(2_000_000)), debounce())
        .await;
    assert!(
        matches!(too_big, Err(Error::InvalidInput { .. })),
        "{too_big:?}"
    );
}
