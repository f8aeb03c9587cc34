//! Step transactions (`ctx.step_tx`): a backend either records a step inside its own
//! transaction, committed with it or not at all, or refuses plainly.

use serde_json::json;
use zart::scheduler::{ClaimedTask, CommitStepParams, StepStatus, StepTransaction};
use zart::{Error, ExecutionStatus, Scheduler};

use crate::{Backend, Env};

fn completed(
    task: &ClaimedTask,
    name: &str,
    seq: u32,
    output: serde_json::Value,
) -> CommitStepParams {
    CommitStepParams {
        lease: task.lease.clone(),
        name: name.to_owned(),
        seq,
        status: StepStatus::Completed,
        output: Some(output),
        error: None,
        attempts: 1,
    }
}

async fn begin(env: &Env) -> Box<dyn StepTransaction> {
    env.scheduler.begin_step_tx().await.unwrap()
}

/// A step transaction records its step when it commits and not when it rolls back; the record
/// is fenced like `commit_step` (a final result is kept, a lost lease writes nothing). A backend
/// without one says so with `Error::Unsupported`. Either way, a workflow whose `ctx.step_tx`
/// cannot run (here: a body taking a handle no backend gives) fails with the reason, and
/// nothing is recorded for the step.
pub async fn a_step_transaction_records_its_step_only_when_it_commits(backend: &impl Backend) {
    let env = Env::new(backend).await;
    env.start("tx", "echo", json!("x")).await;
    let task = env.claim_one("w1", "echo").await;
    match env.scheduler.begin_step_tx().await {
        Err(Error::Unsupported {
            feature, backend, ..
        }) => {
            assert_eq!(feature, "ctx.step_tx");
            assert!(!backend.is_empty());
        }
        Err(other) => panic!("begin_step_tx: {other:?}"),
        Ok(tx) => {
            tx.rollback().await;
            assert!(
                env.steps("tx").await.is_empty(),
                "a rollback records nothing"
            );

            begin(&env)
                .await
                .commit_with_step(completed(&task, "one", 0, json!(1)))
                .await
                .unwrap();
            assert_eq!(
                env.step_summary("tx").await,
                vec![("one".into(), 0, StepStatus::Completed, 1)]
            );

            let again = begin(&env)
                .await
                .commit_with_step(completed(&task, "one", 0, json!(2)))
                .await
                .unwrap_err();
            assert!(
                matches!(again, Error::StepAlreadyRecorded { .. }),
                "{again:?}"
            );
            assert_eq!(env.steps("tx").await[0].output, Some(json!(1)));

            env.release("w1", &task).await;
            let late = begin(&env)
                .await
                .commit_with_step(completed(&task, "two", 1, json!(2)))
                .await
                .unwrap_err();
            assert!(matches!(late, Error::LeaseLost { .. }), "{late:?}");
            assert_eq!(
                env.steps("tx").await.len(),
                1,
                "a lost lease writes nothing"
            );
        }
    }

    env.spawn_worker();
    env.start("tx-wrong", "tx-unit", json!(null)).await;
    let done = env.finished("tx-wrong").await;
    assert_eq!(done.status, ExecutionStatus::Failed);
    let message = done.error.map(|e| e.message).unwrap_or_default();
    assert!(message.contains("ctx.step_tx"), "{message}");
    assert!(env.steps("tx-wrong").await.is_empty());
    assert_eq!(env.counts.get("tx-wrong", "t"), 0, "the body never ran");
    env.stop().await;
}
