//! Leases and fencing: a write under a lease that is no longer held is refused and changes
//! nothing; heartbeats keep a lease; take-overs of expired leases count as recoveries, and the
//! worker fails an execution past its recovery limit.

use std::time::Duration;

use serde_json::json;
use zart::scheduler::{
    AwaitEventParams, ClaimedTask, CompleteExecutionParams, HeartbeatParams, Outcome,
    ReleaseTasksParams, RetryStepParams, SleepParams, StartChildParams, WakeAt,
};
use zart::{Error, ErrorRecord, ExecutionStatus, Scheduler, WorkerConfig};

use crate::env::FAKE_LEASE;
use crate::{Backend, Env};

/// Tries every fenced write under `task`'s lease; each must fail with `LeaseLost`.
async fn every_fenced_write_is_lease_lost(env: &Env, task: &ClaimedTask, worker: &str) {
    let lease = &task.lease;
    let id = lease.execution_id.as_str();
    let lost = |what: &str, err: Error| {
        assert!(
            matches!(err, Error::LeaseLost { id: ref got } if got == id),
            "{what}: {err:?}"
        );
        assert_eq!(err.code(), "lease_lost");
        assert!(!err.is_transient(), "{what}");
    };
    lost(
        "commit_step",
        env.commit(task, "late", 7, json!("late"))
            .await
            .unwrap_err(),
    );
    let retry = env.scheduler.retry_step(RetryStepParams {
        lease: lease.clone(),
        queue: "default".into(),
        name: "late".into(),
        seq: 7,
        error: ErrorRecord {
            kind: "step_failed".into(),
            message: "late".into(),
            step: Some("late".into()),
            attempts: Some(1),
            ..Default::default()
        },
        attempts: 1,
        delay: Duration::from_secs(3600),
    });
    lost("retry_step", retry.await.unwrap_err());
    let sleep = env.scheduler.sleep(SleepParams {
        lease: lease.clone(),
        queue: "default".into(),
        name: "late-nap".into(),
        seq: 7,
        until: WakeAt::After(Duration::from_secs(3600)),
    });
    lost("sleep", sleep.await.unwrap_err());
    let wait = env.scheduler.await_event(AwaitEventParams {
        lease: lease.clone(),
        queue: "default".into(),
        name: "event:late".into(),
        seq: 7,
        event_name: "late".into(),
        timeout: None,
    });
    lost("await_event", wait.await.unwrap_err());
    let child = env.scheduler.start_child(StartChildParams {
        lease: lease.clone(),
        name: "late-kid".into(),
        seq: 7,
        child_id: format!("{id}/late-kid"),
        task_name: "echo".into(),
        input: json!(1),
        queue: "default".into(),
        detached: false,
    });
    lost("start_child", child.await.unwrap_err());
    let complete = env.scheduler.complete_execution(CompleteExecutionParams {
        lease: lease.clone(),
        outcome: Outcome::Completed(json!("late")),
    });
    lost("complete_execution", complete.await.unwrap_err());
    let held = env
        .scheduler
        .heartbeat(HeartbeatParams {
            worker_id: worker.into(),
            lease: FAKE_LEASE,
            leases: vec![lease.clone()],
        })
        .await
        .unwrap();
    assert!(held.is_empty(), "the heartbeat renews nothing");
    let released = env
        .scheduler
        .release_tasks(ReleaseTasksParams {
            worker_id: worker.into(),
            queue: "default".into(),
            leases: vec![lease.clone()],
        })
        .await
        .unwrap();
    assert_eq!(released, 0, "the release gives nothing back");
    assert!(
        env.fixture()
            .execution(&format!("{id}/late-kid"))
            .await
            .is_none(),
        "no child was started"
    );
}

/// After a take-over, every write of the old lease (step, retry, sleep, event wait, child,
/// outcome, heartbeat, release) is refused with `LeaseLost` and changes nothing, while the new
/// holder's writes go through.
pub async fn a_stale_lease_writes_nothing(backend: &impl Backend) {
    let env = Env::new(backend).await;
    env.start("contended", "echo", json!("real")).await;
    let zombie = env.claim_one("zombie", "echo").await;
    assert!(
        env.claim("successor", &["echo"], 10).await.is_empty(),
        "the lease holds"
    );

    env.advance_clock(FAKE_LEASE + Duration::from_secs(1)).await;
    let successor = env.claim_one("successor", "echo").await;
    assert_ne!(successor.lease.fence, zombie.lease.fence);
    assert_eq!(successor.attempts, 2);
    assert_eq!(successor.recoveries, 1, "taken over from an expired lease");

    every_fenced_write_is_lease_lost(&env, &zombie, "zombie").await;
    let row = env.execution("contended").await;
    assert_eq!(row.status, ExecutionStatus::Running);
    assert_eq!(row.attempts, 2);
    assert_eq!(row.output, None);
    assert!(
        env.steps("contended").await.is_empty(),
        "no step row was written"
    );

    env.commit(&successor, "echo", 0, json!("real"))
        .await
        .unwrap();
    env.scheduler
        .complete_execution(CompleteExecutionParams {
            lease: successor.lease.clone(),
            outcome: Outcome::Completed(json!("real")),
        })
        .await
        .unwrap();
    // After the outcome, the zombie's outcome is refused too.
    let late = env.scheduler.complete_execution(CompleteExecutionParams {
        lease: zombie.lease.clone(),
        outcome: Outcome::Completed(json!("zombie")),
    });
    assert!(matches!(late.await.unwrap_err(), Error::LeaseLost { .. }));
    let row = env.execution("contended").await;
    assert_eq!(row.status, ExecutionStatus::Completed);
    assert_eq!(row.output, Some(json!("real")));
    let steps = env.steps("contended").await;
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0].output, Some(json!("real")));
}

/// A released lease is given up: its writes are refused, the execution is `scheduled` again
/// and due at once, and the next claim is not a recovery.
pub async fn a_released_lease_writes_nothing_and_the_task_is_due_at_once(backend: &impl Backend) {
    let env = Env::new(backend).await;
    env.start("given-back", "steps", json!(2)).await;
    let first = env.claim_one("w1", "steps").await;
    env.commit(&first, "step-0", 0, json!(0)).await.unwrap();
    assert_eq!(env.release("w1", &first).await, 1);
    assert_eq!(
        env.execution("given-back").await.status,
        ExecutionStatus::Scheduled
    );

    let err = env
        .commit(&first, "step-1", 1, json!(10))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::LeaseLost { .. }), "{err:?}");
    let outcome = env.scheduler.complete_execution(CompleteExecutionParams {
        lease: first.lease.clone(),
        outcome: Outcome::Completed(json!(null)),
    });
    assert!(matches!(
        outcome.await.unwrap_err(),
        Error::LeaseLost { .. }
    ));
    assert_eq!(env.steps("given-back").await.len(), 1);

    let second = env.claim_one("w2", "steps").await;
    assert_eq!(second.attempts, 2);
    assert_eq!(second.recoveries, 0);
    assert_eq!(second.steps.len(), 1);
}

/// A heartbeat renews a lease from the time it is sent, so a task whose worker keeps beating
/// is not taken over; once the beats stop and the lease runs out, it is.
pub async fn a_heartbeat_keeps_the_lease(backend: &impl Backend) {
    let env = Env::new(backend).await;
    env.start("beating", "echo", json!(1)).await;
    let task = env.claim_one("w1", "echo").await;
    let beat = || {
        env.scheduler.heartbeat(HeartbeatParams {
            worker_id: "w1".into(),
            lease: FAKE_LEASE,
            leases: vec![task.lease.clone()],
        })
    };
    env.advance_clock(FAKE_LEASE * 2 / 3).await;
    assert_eq!(
        beat().await.unwrap(),
        vec![task.lease.clone()],
        "still held"
    );
    env.advance_clock(FAKE_LEASE * 2 / 3).await;
    assert!(
        env.claim("w2", &["echo"], 10).await.is_empty(),
        "renewed past its first expiry"
    );
    env.advance_clock(FAKE_LEASE / 2).await;
    let taken = env.claim_one("w2", "echo").await;
    assert_eq!(taken.recoveries, 1);
    assert!(
        beat().await.unwrap().is_empty(),
        "the old holder's heartbeat renews nothing"
    );
}

/// Each claim that takes a task over from an expired lease counts a recovery; a worker that
/// claims a task past `WorkerConfig::max_recoveries` fails it (kind `too_many_recoveries`)
/// without running it.
pub async fn the_recovery_limit_fails_a_poison_execution(backend: &impl Backend) {
    let env = Env::new(backend).await;
    env.start("poisoned", "steps", json!(1)).await;
    // Three workers in a row claim it and die (their leases expire).
    for i in 0..3 {
        let task = env.claim_one("crasher", "steps").await;
        assert_eq!(task.attempts, i + 1);
        assert_eq!(task.recoveries, i);
        env.advance_clock(FAKE_LEASE + Duration::from_secs(1)).await;
    }
    env.spawn_worker_with(WorkerConfig::default().with_max_recoveries(2));
    let done = env.finished("poisoned").await;
    assert_eq!(done.status, ExecutionStatus::Failed);
    assert_eq!(done.attempts, 4);
    let error = done.error.unwrap();
    assert_eq!(error.kind, "too_many_recoveries");
    assert_eq!(
        error.message,
        "the execution was taken over 3 times from a worker that died or stalled while running \
         it; giving up (WorkerConfig::max_recoveries is 2)"
    );
    assert_eq!(
        env.counts.get("poisoned", "step-0"),
        0,
        "it was not run again"
    );
    assert!(env.steps("poisoned").await.is_empty());
    env.stop().await;
}
