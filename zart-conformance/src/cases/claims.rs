//! Claims: which tasks a claim takes, what it returns for replay, and when tasks are due.

use std::time::Duration;

use serde_json::json;
use zart::scheduler::{
    CommitStepParams, NextRunAtParams, RecordedStep, SleepParams, StepKind, StepStatus, WakeAt,
};
use zart::{Error, ExecutionStatus, Scheduler};

use crate::env::FAKE_LEASE;
use crate::{Backend, Env};

/// A claim takes only due tasks of the names asked for, each once while its lease holds, and
/// at most `limit`.
pub async fn claims_take_only_due_tasks_of_the_names_asked_for(backend: &impl Backend) {
    let env = Env::new(backend).await;
    for id in ["e1", "e2", "e3"] {
        env.start(id, "echo", json!(id)).await;
    }
    env.start("s1", "steps", json!(1)).await;

    let first = env.claim("w1", &["echo"], 2).await;
    assert_eq!(first.len(), 2, "at most the limit");
    assert!(first.iter().all(|t| t.task_name == "echo"));
    let rest = env.claim("w2", &["echo"], 10).await;
    assert_eq!(rest.len(), 1, "leased tasks are not claimed again");
    assert!(env.claim("w3", &["echo"], 10).await.is_empty());
    let mut ids: Vec<String> = first
        .iter()
        .chain(&rest)
        .map(|t| t.lease.execution_id.clone())
        .collect();
    ids.sort();
    assert_eq!(ids, ["e1", "e2", "e3"]);

    let other = env.claim("w3", &["steps"], 10).await;
    assert_eq!(other.len(), 1);
    assert_eq!(other[0].lease.execution_id, "s1");
    assert_eq!(other[0].attempts, 1);
    assert_eq!(other[0].recoveries, 0);
    for task in first.iter().chain(&rest).chain(&other) {
        assert_eq!(
            env.execution(&task.lease.execution_id).await.status,
            ExecutionStatus::Running
        );
    }
    assert_ne!(
        first[0].lease.fence, first[1].lease.fence,
        "every claim draws its own fence"
    );
}

/// A claim returns the input and every recorded step, so a replay needs no other read.
pub async fn a_claim_returns_the_recorded_steps_for_replay(backend: &impl Backend) {
    let env = Env::new(backend).await;
    env.start("r", "steps", json!(3)).await;
    let first = env.claim_one("w1", "steps").await;
    assert_eq!(first.input, json!(3));
    assert_eq!(first.task_name, "steps");
    assert_eq!(first.queue, "default");
    assert_eq!(first.parent_id, None);
    assert_eq!(first.deadline_in, None);
    assert!(first.steps.is_empty());
    env.commit(&first, "step-0", 0, json!(5)).await.unwrap();
    assert_eq!(env.release("w1", &first).await, 1);

    let second = env.claim_one("w2", "steps").await;
    assert_eq!(second.attempts, 2);
    assert_eq!(second.recoveries, 0, "a released task is not a recovery");
    assert_eq!(
        second.steps,
        vec![RecordedStep {
            name: "step-0".into(),
            seq: 0,
            status: StepStatus::Completed,
            output: Some(json!(5)),
            error: None,
            attempts: 1,
            kind: StepKind::Step,
        }]
    );
    assert_eq!(env.execution("r").await.attempts, 2);
}

/// A final step result is recorded once: a second commit of the same step is refused with
/// `StepAlreadyRecorded` and changes nothing.
pub async fn a_final_step_result_is_recorded_once(backend: &impl Backend) {
    let env = Env::new(backend).await;
    env.start("r", "steps", json!(1)).await;
    let task = env.claim_one("w", "steps").await;
    env.commit(&task, "step-0", 0, json!(5)).await.unwrap();
    let err = env.commit(&task, "step-0", 0, json!(6)).await.unwrap_err();
    assert!(
        matches!(err, Error::StepAlreadyRecorded { ref step, .. } if step == "step-0"),
        "{err:?}"
    );
    assert_eq!(err.code(), "step_already_recorded");
    let failed = env
        .scheduler
        .commit_step(CommitStepParams {
            lease: task.lease.clone(),
            name: "step-0".into(),
            seq: 0,
            status: StepStatus::Failed,
            output: None,
            error: Some(zart::ErrorRecord {
                kind: "step_failed".into(),
                message: "late".into(),
                step: Some("step-0".into()),
                attempts: Some(2),
                ..Default::default()
            }),
            attempts: 2,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(failed, Error::StepAlreadyRecorded { .. }),
        "{failed:?}"
    );
    let steps = env.steps("r").await;
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0].output, Some(json!(5)));
    assert_eq!(steps[0].status, StepStatus::Completed);
}

/// `next_run_at` reports how long until the next task of the names asked for is due: none for
/// an empty queue, zero for a due task, the lease expiry for a leased one, the wake time for a
/// sleeping one; a sleeping task is not claimed before it is due.
pub async fn next_run_at_reports_the_earliest_due_task(backend: &impl Backend) {
    let env = Env::new(backend).await;
    let next = || {
        env.scheduler.next_run_at(NextRunAtParams {
            queue: "default".into(),
            task_names: vec!["sleeper".into()],
        })
    };
    assert_eq!(next().await.unwrap(), None, "nothing queued");
    env.start("other", "echo", json!(1)).await;
    assert_eq!(
        next().await.unwrap(),
        None,
        "tasks of other names do not count"
    );
    env.start("napper", "sleeper", json!({"secs": 3600})).await;
    assert_eq!(next().await.unwrap(), Some(Duration::ZERO), "due now");

    let task = env.claim_one("w", "sleeper").await;
    let lease_left = next().await.unwrap().unwrap();
    assert!(
        lease_left > FAKE_LEASE - Duration::from_secs(5) && lease_left <= FAKE_LEASE,
        "a leased task is due again when its lease expires, not in {lease_left:?}"
    );
    env.commit(&task, "before", 0, json!(null)).await.unwrap();
    let left = env
        .scheduler
        .sleep(SleepParams {
            lease: task.lease.clone(),
            queue: "default".into(),
            name: "nap".into(),
            seq: 1,
            until: WakeAt::After(Duration::from_secs(3600)),
        })
        .await
        .unwrap()
        .expect("an hour's sleep suspends");
    assert!(
        left > Duration::from_secs(3590) && left <= Duration::from_secs(3600),
        "{left:?}"
    );
    let due_in = next().await.unwrap().unwrap();
    assert!(
        due_in > Duration::from_secs(3590) && due_in <= Duration::from_secs(3600),
        "{due_in:?}"
    );
    assert!(
        env.claim("w2", &["sleeper"], 10).await.is_empty(),
        "not due yet"
    );
    assert_eq!(
        env.execution("napper").await.status,
        ExecutionStatus::Sleeping
    );

    env.advance_clock(Duration::from_secs(3601)).await;
    assert_eq!(next().await.unwrap(), Some(Duration::ZERO));
    let woken = env.claim_one("w2", "sleeper").await;
    assert_eq!(woken.attempts, 2);
    assert_eq!(woken.recoveries, 0, "a suspension is not a recovery");
}
