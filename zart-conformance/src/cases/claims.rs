//! Claims: which tasks a claim takes, what it returns for replay, and when tasks are due.

use std::time::Duration;

use serde_json::json;
use zart::scheduler::{
    CommitStepParams, CompleteExecutionParams, Lease, NextRunAtParams, Outcome, RecordedStep,
    SleepParams, StepKind, StepStatus, WakeAt,
};
use zart::{Error, ErrorRecord, ExecutionStatus, Scheduler};

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

/// Step results and outcomes written at the same moment (which a backend may write together,
/// as one group-committed batch) each get their own answer: a result already recorded, a stale
/// lease, a cancelled execution and bad input are refused and write nothing, and every other
/// write of the same moment is stored.
pub async fn concurrent_writes_each_get_their_own_answer(backend: &impl Backend) {
    let env = Env::new(backend).await;
    let ids: Vec<String> = (0..10).map(|i| format!("g{i}")).collect();
    for id in &ids {
        env.start(id, "steps", json!(id)).await;
    }
    let mut tasks = env.claim("w", &["steps"], 10).await;
    assert_eq!(tasks.len(), 10);
    tasks.sort_by(|a, b| a.lease.execution_id.cmp(&b.lease.execution_id));
    env.commit(&tasks[1], "step-0", 0, json!("first"))
        .await
        .unwrap();
    env.scheduler.cancel_execution("g2").await.unwrap();
    let mut stale = tasks[3].lease.clone();
    stale.fence = stale.fence.wrapping_add(1);

    let commit = |lease: Lease, name: &str, output: serde_json::Value| CommitStepParams {
        lease,
        name: name.to_owned(),
        seq: 1,
        status: StepStatus::Completed,
        output: Some(output),
        error: None,
        attempts: 1,
    };
    let complete = |lease: Lease, output: serde_json::Value| CompleteExecutionParams {
        lease,
        outcome: Outcome::Completed(output),
    };
    let lease = |i: usize| tasks[i].lease.clone();
    let commits = vec![
        ("a new step", commit(lease(0), "step-1", json!("g0"))),
        (
            "a second step of the same run",
            commit(lease(0), "step-2", json!("g0+")),
        ),
        (
            "a step already recorded",
            commit(lease(1), "step-0", json!("second")),
        ),
        (
            "a step of a cancelled run",
            commit(lease(2), "step-1", json!("g2")),
        ),
        (
            "a step under a stale lease",
            commit(stale.clone(), "step-1", json!("g3")),
        ),
        (
            "a step with an empty name",
            commit(lease(4), "", json!("g4")),
        ),
        ("a new step", commit(lease(4), "step-1", json!("g4"))),
        ("a new step", commit(lease(5), "step-1", json!("g5"))),
    ];
    let completes = vec![
        (
            "an outcome of a cancelled run",
            complete(lease(2), json!("g2")),
        ),
        (
            "an outcome under a stale lease",
            complete(stale, json!("g3")),
        ),
        ("an outcome", complete(lease(6), json!("done 6"))),
        ("an outcome", complete(lease(7), json!("done 7"))),
        ("an outcome", complete(lease(8), json!("done 8"))),
        (
            "a failure",
            CompleteExecutionParams {
                lease: lease(9),
                outcome: Outcome::Failed(ErrorRecord {
                    kind: "app".into(),
                    message: "nine".into(),
                    ..Default::default()
                }),
            },
        ),
    ];
    let mut pending = Vec::new();
    for (what, p) in commits {
        let scheduler = env.scheduler.clone();
        pending.push((
            what,
            tokio::spawn(async move { scheduler.commit_step(p).await }),
        ));
    }
    for (what, p) in completes {
        let scheduler = env.scheduler.clone();
        pending.push((
            what,
            tokio::spawn(async move { scheduler.complete_execution(p).await }),
        ));
    }
    let mut codes = Vec::new();
    for (what, handle) in pending {
        let answer = handle.await.expect("the write's task panicked");
        codes.push((
            what,
            answer.map_or_else(|e| e.code().to_owned(), |()| "ok".to_owned()),
        ));
    }
    let expected = [
        ("a new step", "ok"),
        ("a second step of the same run", "ok"),
        ("a step already recorded", "step_already_recorded"),
        ("a step of a cancelled run", "cancelled"),
        ("a step under a stale lease", "lease_lost"),
        ("a step with an empty name", "invalid_input"),
        ("a new step", "ok"),
        ("a new step", "ok"),
        ("an outcome of a cancelled run", "cancelled"),
        ("an outcome under a stale lease", "lease_lost"),
        ("an outcome", "ok"),
        ("an outcome", "ok"),
        ("an outcome", "ok"),
        ("a failure", "ok"),
    ];
    let expected: Vec<(&str, String)> = expected
        .iter()
        .map(|(w, c)| (*w, (*c).to_owned()))
        .collect();
    assert_eq!(codes, expected);

    let env = &env;
    // By name: the steps written at once may share a position.
    let outputs = |id: &'static str| async move {
        let mut steps = env
            .steps(id)
            .await
            .into_iter()
            .map(|s| (s.name, s.output))
            .collect::<Vec<_>>();
        steps.sort_by(|a, b| a.0.cmp(&b.0));
        steps
    };
    assert_eq!(
        outputs("g0").await,
        vec![
            ("step-1".to_owned(), Some(json!("g0"))),
            ("step-2".to_owned(), Some(json!("g0+")))
        ]
    );
    assert_eq!(
        outputs("g1").await,
        vec![("step-0".to_owned(), Some(json!("first")))],
        "a final result is never overwritten"
    );
    assert!(
        outputs("g2").await.is_empty(),
        "the cancelled run wrote nothing"
    );
    assert!(
        outputs("g3").await.is_empty(),
        "the stale lease wrote nothing"
    );
    assert_eq!(
        outputs("g4").await,
        vec![("step-1".to_owned(), Some(json!("g4")))]
    );
    assert_eq!(env.execution("g2").await.status, ExecutionStatus::Cancelled);
    assert_eq!(env.execution("g3").await.status, ExecutionStatus::Running);
    for (id, output) in [("g6", "done 6"), ("g7", "done 7"), ("g8", "done 8")] {
        let row = env.execution(id).await;
        assert_eq!(row.status, ExecutionStatus::Completed, "{id}");
        assert_eq!(row.output, Some(json!(output)), "{id}");
    }
    let failed = env.execution("g9").await;
    assert_eq!(failed.status, ExecutionStatus::Failed);
    assert_eq!(failed.error.map(|e| e.message), Some("nine".to_owned()));
    // The outcomes removed their tasks; the others are still held by "w".
    let left = env.claim("w2", &["steps"], 10).await;
    assert!(left.is_empty(), "held or finished: {left:?}");
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
