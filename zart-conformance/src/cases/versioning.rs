//! Versioning: `ctx.patched` lets new code run beside executions started on the old code.

use std::time::Duration;

use serde_json::json;
use zart::scheduler::{StepKind, StepStatus};
use zart::ExecutionStatus;

use crate::tasks::DEPLOYED;
use crate::{Backend, Env};

/// An execution started on the old code and past the patch point when the new code is
/// deployed replays on the old path (`patched` is false, recorded so); one started on the new
/// code takes the new path (true). Each answer is recorded once, as a `patch` row that takes
/// no position, and every later run (a resume is a replay) gets it again, twice in one run
/// too. Steps run once each.
pub async fn patched_keeps_old_executions_on_their_path_and_new_ones_on_the_new(
    backend: &impl Backend,
) {
    let env = Env::new(backend).await;
    env.spawn_worker();
    env.start("old", "billing", json!(null)).await;
    env.wait_status("old", ExecutionStatus::Sleeping).await;

    env.counts.hit(DEPLOYED.0, DEPLOYED.1);
    env.start("new", "billing", json!(null)).await;
    env.wait_status("new", ExecutionStatus::Sleeping).await;
    let new_marker = patch_row(&env, "new")
        .await
        .expect("recorded on first reach");
    assert_eq!(
        new_marker,
        (1, json!(true)),
        "at the position of the step after it"
    );
    assert!(
        patch_row(&env, "old").await.is_none(),
        "the old execution has not run since the upgrade"
    );

    env.advance_clock(Duration::from_secs(2 * 3600)).await;
    let old = env.finished("old").await;
    assert_eq!(old.status, ExecutionStatus::Completed, "{:?}", old.error);
    assert_eq!(
        old.output,
        Some(json!({"charged": "v1", "patched": [false, false]}))
    );
    let new = env.finished("new").await;
    assert_eq!(new.status, ExecutionStatus::Completed, "{:?}", new.error);
    assert_eq!(
        new.output,
        Some(json!({"charged": "v2", "patched": [true, true]}))
    );
    assert_eq!(patch_row(&env, "old").await, Some((1, json!(false))));
    assert_eq!(patch_row(&env, "new").await, Some((1, json!(true))));
    for (id, step, runs) in [
        ("old", "order", 1),
        ("old", "charge", 1),
        ("old", "charge-v2", 0),
        ("old", "receipt", 1),
        ("new", "order", 1),
        ("new", "charge", 0),
        ("new", "charge-v2", 1),
        ("new", "receipt", 1),
    ] {
        assert_eq!(env.counts.get(id, step), runs, "{id} {step}");
    }
    // The marker takes no position: the steps keep the old code's numbering.
    let positions: Vec<(String, u32)> = env
        .steps("old")
        .await
        .into_iter()
        .filter(|s| s.kind != StepKind::Patch)
        .map(|s| (s.name, s.seq))
        .collect();
    assert_eq!(
        positions,
        [
            ("order".to_owned(), 0),
            ("charge".to_owned(), 1),
            ("settle".to_owned(), 2),
            ("receipt".to_owned(), 3)
        ]
    );
    env.stop().await;
}

/// The `patch:new-billing` row of an execution: its position and recorded answer.
async fn patch_row(env: &Env, id: &str) -> Option<(u32, serde_json::Value)> {
    let row = env
        .steps(id)
        .await
        .into_iter()
        .find(|s| s.name == "patch:new-billing")?;
    assert_eq!(
        (row.kind, row.status),
        (StepKind::Patch, StepStatus::Completed)
    );
    Some((row.seq, row.output.unwrap_or_default()))
}
