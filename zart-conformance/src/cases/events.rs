//! Events: buffered before the wait, delivered during it, timed out, late, oldest first; and
//! unknown execution ids.

use std::time::{Duration, Instant};

use serde_json::json;
use zart::scheduler::{SendEventParams, StepKind, StepStatus};
use zart::{Error, ExecutionStatus, Scheduler, WorkerConfig};

use crate::tasks::WaitInput;
use crate::{Backend, Env};

fn waiter(timeout_secs: Option<u64>) -> serde_json::Value {
    serde_json::to_value(WaitInput {
        event: "approval".into(),
        timeout_secs,
    })
    .unwrap()
}

/// An event sent before the workflow reaches its wait is buffered and delivered at the wait,
/// without suspending; the wait step records what it received.
pub async fn an_event_sent_before_the_wait_is_delivered(backend: &impl Backend) {
    let env = Env::new(backend).await;
    env.start("early", "waiter", waiter(None)).await;
    env.durable
        .send_event("early", "approval", &json!({"by": "alice"}))
        .await
        .unwrap();
    assert_eq!(
        env.execution("early").await.status,
        ExecutionStatus::Scheduled
    );

    env.spawn_worker();
    let done = env.finished("early").await;
    assert_eq!(done.status, ExecutionStatus::Completed, "{:?}", done.error);
    assert_eq!(done.output, Some(json!({"received": {"by": "alice"}})));
    assert_eq!(
        done.attempts, 1,
        "the buffered event was taken without suspending"
    );
    let wait = env
        .steps("early")
        .await
        .into_iter()
        .find(|s| s.name == "event:approval")
        .unwrap();
    assert_eq!(
        (wait.kind, wait.status, wait.seq),
        (StepKind::Event, StepStatus::Completed, 1)
    );
    assert_eq!(wait.output, Some(json!({"received": {"by": "alice"}})));
    env.stop().await;
}

/// An event sent while the execution waits for it wakes it at once (well before any sweep).
pub async fn an_event_sent_during_the_wait_wakes_the_execution(backend: &impl Backend) {
    let env = Env::new(backend).await;
    env.spawn_worker_with(WorkerConfig::default().with_sweep_interval(Duration::from_secs(600)));
    env.start("waits", "waiter", waiter(None)).await;
    let row = env.wait_status("waits", ExecutionStatus::Waiting).await;
    assert_eq!(row.attempts, 1);
    let wait = env
        .steps("waits")
        .await
        .into_iter()
        .find(|s| s.name == "event:approval")
        .unwrap();
    assert_eq!(
        (wait.kind, wait.status),
        (StepKind::Event, StepStatus::Waiting)
    );

    let sent = Instant::now();
    env.durable
        .send_event("waits", "approval", &json!({"approved": true}))
        .await
        .unwrap();
    let done = match env
        .durable
        .wait("waits", Some(Duration::from_secs(3)))
        .await
    {
        Ok(done) => done,
        Err(err) => panic!("the event did not wake the execution within 3 s: {err}"),
    };
    assert!(sent.elapsed() < Duration::from_secs(3));
    assert_eq!(done.status, ExecutionStatus::Completed, "{:?}", done.error);
    assert_eq!(done.output, Some(json!({"received": {"approved": true}})));
    assert_eq!(done.attempts, 2);
    assert_eq!(env.counts.get("waits", "before"), 1);
    assert_eq!(env.counts.get("waits", "after"), 1);
    env.stop().await;
}

/// A wait with a timeout ends `timed_out` once the store's clock passes it; the workflow goes
/// on, and an event sent after it finished is refused with [`Error::Finished`].
pub async fn an_event_wait_times_out(backend: &impl Backend) {
    let env = Env::new(backend).await;
    env.spawn_worker();
    env.start("patient", "waiter", waiter(Some(600))).await;
    env.wait_status("patient", ExecutionStatus::Waiting).await;

    env.advance_clock(Duration::from_secs(660)).await;
    let done = env.finished("patient").await;
    assert_eq!(done.status, ExecutionStatus::Completed, "{:?}", done.error);
    assert_eq!(done.output, Some(json!({"timed_out": true})));
    let wait = env
        .steps("patient")
        .await
        .into_iter()
        .find(|s| s.name == "event:approval")
        .unwrap();
    assert_eq!(
        (wait.kind, wait.status),
        (StepKind::Event, StepStatus::Completed)
    );
    assert_eq!(wait.output, Some(json!({"timed_out": true})));

    // The execution has finished: an event for it is refused, not stored.
    let err = env
        .durable
        .send_event("patient", "approval", &json!("late"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Finished { id, status, .. } if id == "patient" && status == "completed"),
        "{err:?}"
    );
    let row = env.execution("patient").await;
    assert_eq!(row.status, ExecutionStatus::Completed);
    assert_eq!(row.output, Some(json!({"timed_out": true})));
    env.stop().await;
}

/// An event sent after the timeout passed does not count, even when no worker looked at the
/// wait between the timeout and the event.
pub async fn an_event_sent_after_the_timeout_does_not_count(backend: &impl Backend) {
    let env = Env::new(backend).await;
    env.spawn_worker();
    env.start("late", "waiter", waiter(Some(600))).await;
    env.wait_status("late", ExecutionStatus::Waiting).await;
    env.stop_workers().await;

    env.advance_clock(Duration::from_secs(660)).await;
    env.durable
        .send_event("late", "approval", &json!("late"))
        .await
        .unwrap();
    env.spawn_worker();
    let done = env.finished("late").await;
    assert_eq!(done.output, Some(json!({"timed_out": true})));
    env.stop().await;
}

/// Of two events with one name sent before the wait, the oldest is delivered.
pub async fn the_oldest_of_two_events_is_delivered_first(backend: &impl Backend) {
    let env = Env::new(backend).await;
    env.start("twice", "waiter", waiter(None)).await;
    for n in [1, 2] {
        env.durable
            .send_event("twice", "approval", &json!({"n": n}))
            .await
            .unwrap();
    }
    env.spawn_worker();
    let done = env.finished("twice").await;
    assert_eq!(
        done.output,
        Some(json!({"received": {"n": 1}})),
        "oldest first"
    );
    env.stop().await;
}

/// Events and cancellations addressed to an unknown id fail with `NotFound`, and reading it
/// finds nothing.
pub async fn unknown_executions_are_not_found(backend: &impl Backend) {
    let env = Env::new(backend).await;
    let err = env
        .scheduler
        .send_event(SendEventParams {
            execution_id: "nobody".into(),
            name: "approval".into(),
            payload: json!(1),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::NotFound { ref id } if id == "nobody"),
        "{err:?}"
    );
    assert_eq!(err.code(), "not_found");
    let err = env.scheduler.cancel_execution("nobody").await.unwrap_err();
    assert!(
        matches!(err, Error::NotFound { ref id } if id == "nobody"),
        "{err:?}"
    );
    assert_eq!(env.scheduler.get_execution("nobody").await.unwrap(), None);
    assert!(env.fixture().execution("nobody").await.is_none());
    let err = env.durable.status("nobody").await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
}

/// An event name is a channel: one workflow waits for `item` four times. Two events sent
/// before it runs are taken in order without suspending; the third wait suspends and the next
/// event sent wakes it into that wait (not an earlier one); a payload that does not fit the
/// wait's type is handed to the workflow as malformed and consumed; nothing is delivered
/// twice, and every wait is its own step.
pub async fn an_event_name_is_a_channel_in_order_none_lost_none_twice(backend: &impl Backend) {
    let env = Env::new(backend).await;
    let input = serde_json::to_value(crate::tasks::ChannelInput {
        event: "item".into(),
        waits: 4,
        timeout_secs: None,
    })
    .unwrap();
    env.start("cart", "channel", input).await;
    for n in [1, 2] {
        env.durable
            .send_event("cart", "item", &json!(n))
            .await
            .unwrap();
    }
    env.spawn_worker_with(WorkerConfig::default().with_sweep_interval(Duration::from_secs(600)));
    env.wait_status("cart", ExecutionStatus::Waiting).await;
    let waiting: Vec<(String, StepStatus)> = env
        .steps("cart")
        .await
        .into_iter()
        .map(|s| (s.name, s.status))
        .collect();
    assert_eq!(
        waiting,
        [
            ("event:item".to_owned(), StepStatus::Completed),
            ("event#2:item".to_owned(), StepStatus::Completed),
            ("event#3:item".to_owned(), StepStatus::Waiting),
        ]
    );
    env.durable
        .send_event("cart", "item", &json!("not a number"))
        .await
        .unwrap();
    env.durable
        .send_event("cart", "item", &json!(4))
        .await
        .unwrap();
    env.durable
        .send_event("cart", "item", &json!(5))
        .await
        .unwrap();
    let done = env.finished("cart").await;
    assert_eq!(done.status, ExecutionStatus::Completed, "{:?}", done.error);
    assert_eq!(
        done.output,
        Some(json!([1, 2, {"malformed": "not a number"}, 4])),
        "in order, the bad one handed over, the fifth left for nobody"
    );
    assert_eq!(env.counts.get("cart", "after"), 1);
    let names: Vec<String> = env
        .steps("cart")
        .await
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(
        names,
        [
            "event:item",
            "event#2:item",
            "event#3:item",
            "event#4:item",
            "after"
        ]
    );
    env.stop().await;
}
