//! Child workflows and parallel steps.

use serde_json::json;
use zart::scheduler::{
    ChildSpec, ChildWait, ClaimedTask, CompleteExecutionParams, Outcome, StartChildrenParams,
    StepKind, StepStatus,
};
use zart::{ExecutionStatus, Scheduler, WorkerConfig};

use crate::tasks::ParentInput;
use crate::{Backend, Env};

fn parent(task: &str, input: serde_json::Value) -> serde_json::Value {
    serde_json::to_value(ParentInput {
        task: task.into(),
        input,
    })
    .unwrap()
}

/// A parent starts its child `<parent>/<name>` once, waits without a lease, and is woken with
/// the child's output when the child completes.
pub async fn a_child_output_is_returned_to_the_waiting_parent(backend: &impl Backend) {
    let env = Env::new(backend).await;
    // One slot: the child can only run if the waiting parent gave its slot up.
    env.spawn_worker_with(zart::WorkerConfig::default().with_concurrency(1));
    env.start("order", "parent", parent("echo", json!(21)))
        .await;
    let done = env.finished("order").await;
    assert_eq!(done.status, ExecutionStatus::Completed, "{:?}", done.error);
    assert_eq!(done.output, Some(json!({"ok": 21})));
    assert_eq!(
        done.attempts, 2,
        "claimed once to start the child, once after it"
    );

    let kid = env.execution("order/kid").await;
    assert_eq!(kid.status, ExecutionStatus::Completed);
    assert_eq!(kid.output, Some(json!(21)));
    assert_eq!(kid.parent_id.as_deref(), Some("order"));
    let status = env.durable.status("order/kid").await.unwrap();
    assert_eq!(
        status.parent_id.as_deref(),
        Some("order"),
        "the client sees the parent too"
    );
    assert_eq!(env.durable.status("order").await.unwrap().parent_id, None);
    assert_eq!(env.counts.get("order/kid", "echo"), 1);
    assert_eq!(
        env.counts.get("order", "before"),
        1,
        "replay skipped the step before"
    );
    let steps: Vec<(String, StepKind, StepStatus)> = env
        .steps("order")
        .await
        .into_iter()
        .map(|s| (s.name, s.kind, s.status))
        .collect();
    assert_eq!(
        steps,
        vec![
            ("before".into(), StepKind::Step, StepStatus::Completed),
            ("kid".into(), StepKind::Child, StepStatus::Completed),
            ("after".into(), StepKind::Step, StepStatus::Completed),
        ]
    );
    env.stop().await;
}

/// A failed child fails the parent's child step (kind `child_failed`, the child's message and
/// id), which the parent may handle.
pub async fn a_failed_child_fails_the_parent_step(backend: &impl Backend) {
    let env = Env::new(backend).await;
    env.spawn_worker();
    env.start("checkout", "parent", parent("fails", json!(null)))
        .await;
    let done = env.finished("checkout").await;
    assert_eq!(done.status, ExecutionStatus::Completed, "{:?}", done.error);
    assert_eq!(
        done.output,
        Some(json!({"failed": "card declined", "kind": "child_failed"}))
    );
    let kid = env.execution("checkout/kid").await;
    assert_eq!(kid.status, ExecutionStatus::Failed);
    assert_eq!(
        kid.error.map(|e| e.message),
        Some("card declined".to_owned())
    );
    let step = env
        .steps("checkout")
        .await
        .into_iter()
        .find(|s| s.name == "kid")
        .unwrap();
    assert_eq!(
        (step.kind, step.status),
        (StepKind::Child, StepStatus::Failed)
    );
    let error = step.error.unwrap();
    assert_eq!(error.kind, "child_failed");
    assert_eq!(error.message, "card declined");
    assert_eq!(
        step.error_json.unwrap()["child_id"],
        json!("checkout/kid"),
        "the stored record names the child"
    );
    env.stop().await;
}

/// A child id already taken by an execution of another task fails the parent at once with the
/// conflict, instead of leaving it to be retried until its recovery limit; the execution that
/// holds the id is untouched and nothing is recorded for the child step.
pub async fn a_child_id_taken_by_another_execution_fails_the_parent(backend: &impl Backend) {
    let env = Env::new(backend).await;
    env.spawn_worker();
    env.start("clash/kid", "echo", json!(1)).await;
    env.finished("clash/kid").await;
    env.start("clash", "parent", parent("fails", json!(null)))
        .await;
    let done = env.finished("clash").await;
    assert_eq!(done.status, ExecutionStatus::Failed);
    let error = done.error.unwrap();
    assert_eq!(error.kind, "failed");
    assert!(
        error
            .message
            .contains("\"clash/kid\" already exists with task \"echo\", not \"fails\""),
        "{}",
        error.message
    );
    assert_eq!(done.attempts, 1, "failed on its first run, not retried");
    let kid = env.execution("clash/kid").await;
    assert_eq!(kid.status, ExecutionStatus::Completed);
    let names: Vec<String> = env
        .steps("clash")
        .await
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["before"]);
    env.stop().await;
}

/// `wait_all` runs its steps, records each once at the positions they were added in, and
/// returns the results in that order.
pub async fn wait_all_runs_every_step_once_in_order(backend: &impl Backend) {
    let env = Env::new(backend).await;
    env.spawn_worker();
    env.start("fan", "parallel", json!(null)).await;
    let done = env.finished("fan").await;
    assert_eq!(done.status, ExecutionStatus::Completed, "{:?}", done.error);
    assert_eq!(done.output, Some(json!([1, 2, 3])));
    for step in ["a", "b", "c"] {
        assert_eq!(env.counts.get("fan", step), 1, "{step}");
    }
    assert_eq!(
        env.step_summary("fan").await,
        vec![
            ("a".into(), 0, StepStatus::Completed, 1),
            ("b".into(), 1, StepStatus::Completed, 1),
            ("c".into(), 2, StepStatus::Completed, 1),
        ]
    );
    env.stop().await;
}

/// After a crash in the middle of a `wait_all`, only the steps not recorded run again.
pub async fn wait_all_after_a_crash_runs_only_the_unfinished_steps(backend: &impl Backend) {
    let env = Env::new(backend).await;
    env.start("fan", "parallel", json!(null)).await;
    let crashed = env.claim_one("crashed", "parallel").await;
    env.commit(&crashed, "b", 1, json!(20)).await.unwrap();
    env.release("crashed", &crashed).await;

    env.spawn_worker();
    let done = env.finished("fan").await;
    assert_eq!(done.status, ExecutionStatus::Completed, "{:?}", done.error);
    assert_eq!(
        done.output,
        Some(json!([1, 20, 3])),
        "b returned its recorded 20"
    );
    assert_eq!(env.counts.get("fan", "a"), 1);
    assert_eq!(env.counts.get("fan", "b"), 0);
    assert_eq!(env.counts.get("fan", "c"), 1);
    env.stop().await;
}

/// A detached child starts once and the parent goes on without it: the parent can finish
/// first; the child has no parent, so cancelling the parent leaves it running; the step is
/// recorded at once with the child's id.
pub async fn a_detached_child_runs_on_its_own(backend: &impl Backend) {
    let env = Env::new(backend).await;
    env.spawn_worker_with(zart::WorkerConfig::default().with_concurrency(4));
    env.start("boss", "launcher", json!({"task": "gated"}))
        .await;
    let boss = env.finished("boss").await;
    assert_eq!(boss.status, ExecutionStatus::Completed, "{:?}", boss.error);
    assert_eq!(boss.output, Some(json!("boss/audit")));
    crate::env::wait_for("the detached child to run", || async {
        (env.counts.get("boss/audit", "gated") == 1).then_some(())
    })
    .await;
    let child = env.durable.status("boss/audit").await.unwrap();
    assert_eq!(child.parent_id, None, "a detached child has no parent");
    assert!(
        !child.status.is_terminal(),
        "it outlives the parent: {}",
        child.status
    );
    let step = env
        .steps("boss")
        .await
        .into_iter()
        .find(|s| s.name == "audit")
        .unwrap();
    assert_eq!(
        (step.kind, step.status),
        (StepKind::Child, StepStatus::Completed)
    );

    env.start("boss2", "launcher", json!({"task": "gated", "wait": true}))
        .await;
    env.wait_status("boss2", ExecutionStatus::Waiting).await;
    let cancelled = env.durable.cancel("boss2").await.unwrap();
    assert_eq!(
        cancelled,
        ["boss2"],
        "the detached child is not cancelled with it"
    );
    env.counts.open_gate(2);
    for id in ["boss/audit", "boss2/audit"] {
        let done = env.finished(id).await;
        assert_eq!(
            done.status,
            ExecutionStatus::Completed,
            "{id}: {:?}",
            done.error
        );
    }
    env.stop().await;
}

/// `wait_all` with children: they are started together and run at once, every member's result
/// comes back in the order added, each child is started once with the parent as its parent,
/// and the parent is claimed at most once per child after its first run. A failed child is the
/// failure returned, once every child has ended.
pub async fn wait_all_runs_children_together_and_returns_their_results_in_order(
    backend: &impl Backend,
) {
    let env = Env::new(backend).await;
    env.spawn_worker_with(WorkerConfig::default().with_concurrency(2));
    env.start("fan", "fan-out", json!({"children": 3, "failing": null}))
        .await;
    let done = env.finished("fan").await;
    assert_eq!(done.status, ExecutionStatus::Completed, "{:?}", done.error);
    assert_eq!(done.output, Some(json!({"ok": ["local", 0, 1, 2]})));
    assert!(
        (1..=4).contains(&done.attempts),
        "claimed {} times: at most once per child after the first run",
        done.attempts
    );
    assert_eq!(env.counts.get("fan", "local"), 1, "replays skip the step");
    for i in 0..3 {
        let kid = env.execution(&format!("fan/c-{i}")).await;
        assert_eq!(kid.status, ExecutionStatus::Completed);
        assert_eq!(kid.parent_id.as_deref(), Some("fan"));
        assert_eq!(env.counts.get(&format!("fan/c-{i}"), "echo"), 1);
    }
    let steps: Vec<(String, u32, StepKind, StepStatus)> = env
        .steps("fan")
        .await
        .into_iter()
        .map(|s| (s.name, s.seq, s.kind, s.status))
        .collect();
    assert_eq!(
        steps,
        vec![
            ("local".into(), 0, StepKind::Step, StepStatus::Completed),
            ("c-0".into(), 1, StepKind::Child, StepStatus::Completed),
            ("c-1".into(), 2, StepKind::Child, StepStatus::Completed),
            ("c-2".into(), 3, StepKind::Child, StepStatus::Completed),
        ]
    );

    env.start("fan-fail", "fan-out", json!({"children": 3, "failing": 1}))
        .await;
    let done = env.finished("fan-fail").await;
    assert_eq!(
        done.output,
        Some(json!({"failed": "c-1", "message": "card declined"}))
    );
    for i in [0, 2] {
        let kid = env.execution(&format!("fan-fail/c-{i}")).await;
        assert_eq!(
            kid.status,
            ExecutionStatus::Completed,
            "every child ended first"
        );
    }
    env.stop().await;
}

fn waiter_child(parent: &str, i: u32) -> ChildSpec {
    ChildSpec {
        name: format!("k-{i}"),
        seq: i,
        child_id: format!("{parent}/k-{i}"),
        task_name: "waiter".into(),
        input: json!({"event": "go", "timeout_secs": null}),
    }
}

async fn start_children(
    env: &Env,
    task: &ClaimedTask,
    suspend: bool,
) -> Result<Vec<ChildWait>, zart::Error> {
    env.scheduler
        .start_children(StartChildrenParams {
            lease: task.lease.clone(),
            queue: "default".into(),
            children: vec![waiter_child("p", 0), waiter_child("p", 1)],
            suspend,
        })
        .await
}

/// `start_children`: each child is started once; without `suspend` the parent keeps its
/// lease; with it, the parent waits without a lease and only the first unfinished child in
/// order wakes it (a later one ending first does not); the next call records every finished
/// child's outcome and keeps the lease.
pub async fn start_children_waits_for_the_first_unfinished_child_in_order(backend: &impl Backend) {
    let env = Env::new(backend).await;
    env.start("p", "fan-out", json!({"children": 0, "failing": null}))
        .await;
    let task = env.claim_one("fake", "fan-out").await;
    assert_eq!(
        start_children(&env, &task, false).await.unwrap(),
        vec![ChildWait::Waiting, ChildWait::Waiting]
    );
    env.commit(&task, "still-held", 2, json!(true))
        .await
        .expect("without suspend the lease is kept");
    assert_eq!(
        start_children(&env, &task, true).await.unwrap(),
        vec![ChildWait::Waiting, ChildWait::Waiting]
    );
    assert_eq!(env.execution("p").await.status, ExecutionStatus::Waiting);
    assert!(
        env.commit(&task, "late", 3, json!(1)).await.is_err(),
        "suspending gave the lease up"
    );

    // Both children were started once, with the parent as theirs.
    let kids = env.claim("kids", &["waiter"], 10).await;
    assert_eq!(kids.len(), 2);
    let finish = |i: usize| {
        let kid = kids
            .iter()
            .find(|k| k.lease.execution_id == format!("p/k-{i}"))
            .unwrap()
            .clone();
        let scheduler = env.scheduler.clone();
        async move {
            scheduler
                .complete_execution(CompleteExecutionParams {
                    lease: kid.lease,
                    outcome: Outcome::Completed(json!(format!("done-{i}"))),
                })
                .await
                .unwrap();
        }
    };
    finish(1).await;
    assert!(
        env.claim("fake2", &["fan-out"], 1).await.is_empty(),
        "a later child ending first does not wake the parent"
    );
    finish(0).await;
    let task = env.claim_one("fake2", "fan-out").await;
    assert_eq!(
        start_children(&env, &task, true).await.unwrap(),
        vec![
            ChildWait::Finished {
                status: ExecutionStatus::Completed,
                output: Some(json!("done-0")),
                error: None,
            },
            ChildWait::Finished {
                status: ExecutionStatus::Completed,
                output: Some(json!("done-1")),
                error: None,
            },
        ]
    );
    env.commit(&task, "after", 3, json!(1))
        .await
        .expect("nothing left to wait for: the lease is kept");
    let steps: Vec<(String, StepStatus)> = env
        .steps("p")
        .await
        .into_iter()
        .filter(|s| s.kind == StepKind::Child)
        .map(|s| (s.name, s.status))
        .collect();
    assert_eq!(
        steps,
        vec![
            ("k-0".into(), StepStatus::Completed),
            ("k-1".into(), StepStatus::Completed)
        ]
    );
    assert_eq!(env.execution("p/k-0").await.attempts, 1, "started once");
}
