//! Retention: pruning old finished executions (`Scheduler::prune`, `zart::retention::prune`).

use std::time::Duration;

use serde_json::json;
use zart::retention::{prune, PruneOptions, Retention};
use zart::scheduler::{
    ChildWait, CompleteExecutionParams, Outcome, PruneOutcome, PruneParams, StartChildParams,
};
use zart::{Error, ExecutionStatus};

use crate::tasks::{ParentInput, SleepInput};
use crate::{Backend, Env};

const DAY: Duration = Duration::from_secs(24 * 3600);

fn params(status: ExecutionStatus, older_than: Duration, limit: u32) -> PruneParams {
    PruneParams {
        status,
        older_than,
        limit,
        dry_run: false,
    }
}

/// Finished executions past their status's age go with their steps; younger ones, unfinished
/// ones and a finished child whose parent has not finished stay (the parent resumes with the
/// child's outcome afterwards); a dry run counts without deleting; batches are bounded; a
/// pruned id starts again as a new execution.
pub async fn prune_deletes_only_finished_executions_past_their_age(backend: &impl Backend) {
    let env = Env::new(backend).await;

    // Finished ones of each status, and an unfinished sleeper.
    env.spawn_worker();
    env.start("done-old", "echo", json!(1)).await;
    env.start("failed-old", "fails", json!(null)).await;
    env.start(
        "sleeper",
        "sleeper",
        serde_json::to_value(SleepInput {
            secs: Some(3600 * 24 * 365),
            until_ms: None,
        })
        .unwrap(),
    )
    .await;
    env.start(
        "cancelled-old",
        "sleeper",
        serde_json::to_value(SleepInput {
            secs: Some(3600),
            until_ms: None,
        })
        .unwrap(),
    )
    .await;
    assert_eq!(
        env.finished("done-old").await.status,
        ExecutionStatus::Completed
    );
    assert_eq!(
        env.finished("failed-old").await.status,
        ExecutionStatus::Failed
    );
    env.wait_status("sleeper", ExecutionStatus::Sleeping).await;
    env.wait_status("cancelled-old", ExecutionStatus::Sleeping)
        .await;
    env.durable.cancel("cancelled-old").await.unwrap();
    env.stop_workers().await;
    assert_eq!(env.steps("done-old").await.len(), 1);

    // A parent (run by hand, no worker running) waiting on a child that has completed: the
    // parent is due again but unfinished, so its child must stay.
    env.start(
        "parent",
        "parent",
        serde_json::to_value(ParentInput {
            task: "echo".into(),
            input: json!(5),
        })
        .unwrap(),
    )
    .await;
    let parent = env.claim_one("hand", "parent").await;
    env.commit(&parent, "before", 0, json!(null)).await.unwrap();
    let wait = env
        .scheduler
        .start_child(StartChildParams {
            lease: parent.lease.clone(),
            name: "kid".into(),
            seq: 1,
            child_id: "parent/kid".into(),
            task_name: "echo".into(),
            input: json!(5),
            queue: "default".into(),
            detached: false,
        })
        .await
        .unwrap();
    assert_eq!(wait, ChildWait::Waiting);
    let kid = env.claim_one("hand", "echo").await;
    env.commit(&kid, "echo", 0, json!(5)).await.unwrap();
    env.scheduler
        .complete_execution(CompleteExecutionParams {
            lease: kid.lease.clone(),
            outcome: Outcome::Completed(json!(5)),
        })
        .await
        .unwrap();

    env.advance_clock(8 * DAY).await;
    // Finished after the clock moved (by hand: a worker would resume the parent).
    env.start("done-new", "echo", json!(2)).await;
    let new = env.claim_one("hand", "echo").await;
    env.scheduler
        .complete_execution(CompleteExecutionParams {
            lease: new.lease.clone(),
            outcome: Outcome::Completed(json!(2)),
        })
        .await
        .unwrap();

    // A dry run counts the one completed execution old enough (not the child: its parent is
    // unfinished), and deletes nothing.
    let counted = env
        .scheduler
        .prune(PruneParams {
            dry_run: true,
            ..params(ExecutionStatus::Completed, 7 * DAY, 1)
        })
        .await
        .unwrap();
    assert_eq!(counted, PruneOutcome::Counted(1));
    assert!(env.fixture().execution("done-old").await.is_some());

    // The defaults: completed after 7 days, failed and cancelled after 30.
    let report = prune(
        &*env.scheduler,
        &Retention::default().with_batch(1),
        PruneOptions::new(),
        |_, _| {},
    )
    .await
    .unwrap();
    assert_eq!(
        (report.completed, report.failed, report.cancelled),
        (1, 0, 0)
    );
    assert!(!report.busy);
    assert_eq!(env.fixture().execution("done-old").await, None);
    assert!(env.steps("done-old").await.is_empty(), "its steps went too");
    for kept in [
        "done-new",
        "failed-old",
        "cancelled-old",
        "sleeper",
        "parent",
        "parent/kid",
    ] {
        assert!(
            env.fixture().execution(kept).await.is_some(),
            "{kept} was deleted"
        );
    }
    assert_eq!(env.steps("failed-old").await.len(), 1);

    // 23 days later the failed and cancelled ones are past 30 days; the sleeper is not
    // finished, whatever its age, and the child stays while its parent waits.
    env.advance_clock(23 * DAY).await;
    for (status, expect) in [
        (ExecutionStatus::Failed, "failed-old"),
        (ExecutionStatus::Cancelled, "cancelled-old"),
    ] {
        // A batch of one, then nothing left.
        let first = env.scheduler.prune(params(status, 30 * DAY, 1)).await;
        assert_eq!(first.unwrap(), PruneOutcome::Deleted(1), "{status}");
        let again = env.scheduler.prune(params(status, 30 * DAY, 1)).await;
        assert_eq!(again.unwrap(), PruneOutcome::Deleted(0), "{status}");
        assert_eq!(env.fixture().execution(expect).await, None);
        assert!(env.steps(expect).await.is_empty());
    }
    let everything = params(ExecutionStatus::Completed, Duration::ZERO, 1000);
    assert_eq!(
        env.scheduler.prune(everything.clone()).await.unwrap(),
        PruneOutcome::Deleted(1),
        "only done-new: the child of the unfinished parent stays"
    );
    assert!(env.fixture().execution("sleeper").await.is_some());
    assert!(env.fixture().execution("parent/kid").await.is_some());

    // The parent resumes with its child's outcome; once it has finished, the child may go.
    env.spawn_worker();
    let done = env.finished("parent").await;
    assert_eq!(done.output, Some(json!({"ok": 5})), "{:?}", done.error);
    env.stop_workers().await;
    // An age of zero takes what finished before now: not in the same millisecond (SQLite's
    // clock resolution), so the clock moves on first.
    env.advance_clock(Duration::from_secs(1)).await;
    assert_eq!(
        env.scheduler.prune(everything).await.unwrap(),
        PruneOutcome::Deleted(2)
    );

    // A pruned id is free again: starting it creates a new execution.
    let started = env
        .durable
        .start("done-old", "echo", json!(1))
        .await
        .unwrap();
    assert!(started.created, "a pruned id starts a new execution");
    env.stop().await;
}

/// A prune refuses what it cannot mean, naming the field, and deletes nothing.
pub async fn prune_refuses_bad_input(backend: &impl Backend) {
    let env = Env::new(backend).await;
    env.spawn_worker();
    env.start("done", "echo", json!(1)).await;
    env.finished("done").await;
    env.stop_workers().await;
    let refused = [
        params(ExecutionStatus::Running, Duration::ZERO, 10),
        params(ExecutionStatus::Completed, Duration::ZERO, 0),
        params(ExecutionStatus::Completed, Duration::ZERO, 100_001),
        params(
            ExecutionStatus::Completed,
            zart::limits::MAX_WAIT + Duration::from_secs(1),
            10,
        ),
    ];
    for p in refused {
        let err = env.scheduler.prune(p.clone()).await.unwrap_err();
        assert!(matches!(err, Error::InvalidInput { .. }), "{p:?}: {err:?}");
    }
    assert!(env.fixture().execution("done").await.is_some());
    env.stop().await;
}
