//! Child workflows and parallel steps.

use serde_json::json;
use zart::scheduler::{StepKind, StepStatus};
use zart::ExecutionStatus;

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
