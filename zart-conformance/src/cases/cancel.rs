//! Cancellation: immediate for waiting executions, refused writes for running ones, a cascade
//! to children, no effect on finished ones.

use std::time::Duration;

use serde_json::json;
use zart::scheduler::{CompleteExecutionParams, HeartbeatParams, Outcome, SleepParams, WakeAt};
use zart::{Error, ExecutionStatus, Scheduler};

use crate::env::FAKE_LEASE;
use crate::tasks::ParentInput;
use crate::{Backend, Env};

const HOUR: Duration = Duration::from_secs(3600);

/// Cancelling a sleeping execution ends it at once (status `cancelled`, error kind
/// `cancelled`, `wait()` returns), and it never wakes.
pub async fn cancel_ends_a_sleeping_execution_at_once(backend: &impl Backend) {
    let env = Env::new(backend).await;
    env.spawn_worker();
    env.start("napper", "sleeper", json!({"secs": 3600})).await;
    env.wait_status("napper", ExecutionStatus::Sleeping).await;

    assert_eq!(
        env.durable.cancel("napper").await.unwrap(),
        vec!["napper".to_owned()]
    );
    let done = env.finished("napper").await;
    assert_eq!(done.status, ExecutionStatus::Cancelled);
    assert_eq!(done.error.map(|e| e.kind), Some("cancelled".to_owned()));

    env.advance_clock(2 * HOUR).await;
    env.start("marker", "echo", json!(1)).await;
    env.finished("marker").await;
    assert_eq!(env.counts.get("napper", "after"), 0, "it never woke");
    assert_eq!(
        env.execution("napper").await.status,
        ExecutionStatus::Cancelled
    );
    env.stop().await;
}

/// Cancelling a parent cancels its unfinished descendants; the id asked for comes first.
pub async fn cancel_cascades_to_children(backend: &impl Backend) {
    let env = Env::new(backend).await;
    env.spawn_worker();
    // root waits for root/kid, which waits for root/kid/kid, which sleeps.
    env.start("root", "nest", json!(2)).await;
    env.wait_status("root/kid/kid", ExecutionStatus::Sleeping)
        .await;
    env.wait_status("root/kid", ExecutionStatus::Waiting).await;
    env.wait_status("root", ExecutionStatus::Waiting).await;

    let cancelled = env.durable.cancel("root").await.unwrap();
    assert_eq!(
        cancelled.first().map(String::as_str),
        Some("root"),
        "{cancelled:?}"
    );
    let mut rest = cancelled[1..].to_vec();
    rest.sort();
    assert_eq!(rest, ["root/kid", "root/kid/kid"]);
    for id in ["root", "root/kid", "root/kid/kid"] {
        let row = env.execution(id).await;
        assert_eq!(row.status, ExecutionStatus::Cancelled, "{id}");
        assert_eq!(
            row.error.map(|e| e.kind),
            Some("cancelled".to_owned()),
            "{id}"
        );
    }

    env.advance_clock(2 * HOUR).await;
    env.start("marker", "echo", json!(1)).await;
    env.finished("marker").await;
    assert_eq!(
        env.counts.get("root/kid/kid", "woke"),
        0,
        "nothing woke later"
    );
    env.stop().await;
}

/// Once an execution is cancelled, every write of the run that holds it is refused with
/// `Cancelled` (not `LeaseLost`), its heartbeat renews nothing, and nothing is recorded.
pub async fn cancel_refuses_every_write_of_a_claimed_run(backend: &impl Backend) {
    let env = Env::new(backend).await;
    env.start("fenced", "echo", json!(1)).await;
    let task = env.claim_one("w", "echo").await;
    assert_eq!(
        env.execution("fenced").await.status,
        ExecutionStatus::Running
    );
    assert_eq!(
        env.durable.cancel("fenced").await.unwrap(),
        vec!["fenced".to_owned()]
    );

    let cancelled = |what: &str, err: Error| {
        assert!(
            matches!(err, Error::Cancelled { ref id } if id == "fenced"),
            "{what}: {err:?}"
        );
        assert_eq!(err.code(), "cancelled");
    };
    cancelled(
        "commit_step",
        env.commit(&task, "echo", 0, json!(1)).await.unwrap_err(),
    );
    let sleep = env.scheduler.sleep(SleepParams {
        lease: task.lease.clone(),
        queue: "default".into(),
        name: "nap".into(),
        seq: 0,
        until: WakeAt::After(HOUR),
    });
    cancelled("sleep", sleep.await.unwrap_err());
    let outcome = env.scheduler.complete_execution(CompleteExecutionParams {
        lease: task.lease.clone(),
        outcome: Outcome::Completed(json!(1)),
    });
    cancelled("complete_execution", outcome.await.unwrap_err());
    let held = env
        .scheduler
        .heartbeat(HeartbeatParams {
            worker_id: "w".into(),
            lease: FAKE_LEASE,
            leases: vec![task.lease.clone()],
        })
        .await
        .unwrap();
    assert!(held.is_empty());

    let row = env.execution("fenced").await;
    assert_eq!(row.status, ExecutionStatus::Cancelled);
    assert_eq!(row.output, None);
    assert!(env.steps("fenced").await.is_empty());
    assert!(
        env.claim("w2", &["echo"], 10).await.is_empty(),
        "a cancelled task is never claimed"
    );
}

/// Cancelling a finished execution returns no ids and changes nothing.
pub async fn cancelling_a_finished_execution_changes_nothing(backend: &impl Backend) {
    let env = Env::new(backend).await;
    env.spawn_worker();
    env.start("ok", "echo", json!({"a": 1})).await;
    env.start("bad", "fails", json!(null)).await;
    env.finished("ok").await;
    env.finished("bad").await;
    for id in ["ok", "bad"] {
        let before = env.execution(id).await;
        assert_eq!(
            env.durable.cancel(id).await.unwrap(),
            Vec::<String>::new(),
            "{id}"
        );
        assert_eq!(env.execution(id).await, before, "cancel changed {id}");
    }
    env.stop().await;
}

/// Cancelling a child the parent waits for wakes the parent, whose child step fails (kind
/// `child_failed`); the parent itself is not cancelled.
pub async fn a_cancelled_child_fails_the_waiting_parent_step(backend: &impl Backend) {
    let env = Env::new(backend).await;
    env.spawn_worker();
    let input = serde_json::to_value(ParentInput {
        task: "nest".into(),
        input: json!(0),
    })
    .unwrap();
    env.start("checkout", "parent", input).await;
    env.wait_status("checkout/kid", ExecutionStatus::Sleeping)
        .await;
    env.wait_status("checkout", ExecutionStatus::Waiting).await;

    let cancelled = env.durable.cancel("checkout/kid").await.unwrap();
    assert_eq!(
        cancelled,
        vec!["checkout/kid".to_owned()],
        "the parent is not cancelled"
    );
    let done = env.finished("checkout").await;
    assert_eq!(done.status, ExecutionStatus::Completed, "{:?}", done.error);
    assert_eq!(
        done.output,
        Some(json!({"failed": "execution was cancelled", "kind": "child_failed"}))
    );
    env.stop().await;
}
