//! Cron schedules: fired by workers on the store's clock, exactly once per fire time, with
//! their overlap and catch-up policies; paused, resumed, listed and deleted.

use std::time::Duration;

use serde_json::json;
use zart::schedule::{execution_id, CatchUp, Overlap, Schedule, ScheduleRow};
use zart::{Error, ExecutionStatus, Scheduler};

use crate::env::wait_for;
use crate::{Backend, Env};

const HOUR: Duration = Duration::from_secs(3600);

async fn row(env: &Env, id: &str) -> Option<ScheduleRow> {
    env.scheduler
        .list_schedules()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.schedule.id == id)
}

/// Waits until a worker has computed the schedule's next fire time, and returns the row.
async fn armed(env: &Env, id: &str) -> ScheduleRow {
    wait_for(&format!("schedule {id:?} to be armed"), || async {
        row(env, id).await.filter(|r| r.next_fire_at.is_some())
    })
    .await
}

/// Waits until the schedule's last execution is `want`.
async fn fired(env: &Env, id: &str, want: &str) -> ScheduleRow {
    wait_for(&format!("schedule {id:?} to fire {want:?}"), || async {
        row(env, id)
            .await
            .filter(|r| r.last_execution_id.as_deref() == Some(want))
    })
    .await
}

/// A declared schedule fires once per fire time, by the store's clock, starting the execution
/// `<id>@<fire time>`, which runs; two workers fire it once; after a gap only the latest missed
/// time fires (the default catch-up); its next fire time moves on.
pub async fn a_schedule_fires_once_per_fire_time(backend: &impl Backend) {
    let env = Env::new(backend).await;
    let created = env
        .scheduler
        .upsert_schedule(Schedule::new("tick", "0 * * * *", "echo").input(json!("tock")))
        .await
        .unwrap();
    assert!(created);
    env.spawn_worker();
    env.spawn_worker();
    let first = armed(&env, "tick").await.next_fire_at.unwrap();
    assert!(
        row(&env, "tick").await.unwrap().last_execution_id.is_none(),
        "nothing due yet"
    );

    env.advance_clock(HOUR).await;
    let id = execution_id("tick", first);
    let after = fired(&env, "tick", &id).await;
    assert_eq!(after.last_fire_at, Some(first));
    assert_eq!(after.next_fire_at, Some(first + HOUR));
    let done = env.finished(&id).await;
    assert_eq!(done.status, ExecutionStatus::Completed, "{:?}", done.error);
    assert_eq!(done.output, Some(json!("tock")));
    assert_eq!(
        env.counts.get(&id, "echo"),
        1,
        "two workers, one execution, one run"
    );

    // Three hours unattended: the latest missed time fires, once.
    env.stop_workers().await;
    env.advance_clock(3 * HOUR).await;
    env.spawn_worker();
    let latest = first + 3 * HOUR;
    fired(&env, "tick", &execution_id("tick", latest)).await;
    for skipped in [first + HOUR, first + 2 * HOUR] {
        assert!(
            env.fixture()
                .execution(&execution_id("tick", skipped))
                .await
                .is_none(),
            "catch-up latest: {skipped:?} not fired"
        );
    }
    assert_eq!(
        armed(&env, "tick").await.next_fire_at,
        Some(first + 4 * HOUR)
    );
    env.stop().await;
}

/// Overlap skip: a firing while the previous execution runs is skipped. Overlap
/// cancel-previous: the previous is cancelled and the new one starts. Catch-up all (limit 2):
/// the latest two missed times fire.
pub async fn schedule_overlap_and_catch_up_policies_hold(backend: &impl Backend) {
    let env = Env::new(backend).await;
    for (id, overlap) in [("skip", Overlap::Skip), ("cancel", Overlap::CancelPrevious)] {
        env.scheduler
            .upsert_schedule(
                Schedule::new(id, "0 * * * *", "gated")
                    .input(json!(null))
                    .overlap(overlap),
            )
            .await
            .unwrap();
    }
    env.scheduler
        .upsert_schedule(
            // Allow: with skip, the first missed time's execution would still be running when
            // the second fires, and the second would be skipped.
            Schedule::new("all", "0 * * * *", "echo")
                .input(json!(1))
                .overlap(Overlap::Allow)
                .catch_up(CatchUp::All(2)),
        )
        .await
        .unwrap();
    env.spawn_worker();
    let first = armed(&env, "skip").await.next_fire_at.unwrap();
    armed(&env, "cancel").await;
    armed(&env, "all").await;

    env.advance_clock(HOUR).await;
    let one = |s: &str| execution_id(s, first);
    fired(&env, "skip", &one("skip")).await;
    fired(&env, "cancel", &one("cancel")).await;
    env.wait_status(&one("skip"), ExecutionStatus::Running)
        .await;
    env.wait_status(&one("cancel"), ExecutionStatus::Running)
        .await;

    env.advance_clock(HOUR).await;
    let two = |s: &str| execution_id(s, first + HOUR);
    fired(&env, "cancel", &two("cancel")).await;
    assert_eq!(
        env.finished(&one("cancel")).await.status,
        ExecutionStatus::Cancelled,
        "cancel-previous"
    );
    wait_for("skip's second fire time to pass", || async {
        row(&env, "skip")
            .await
            .filter(|r| r.next_fire_at == Some(first + 2 * HOUR))
    })
    .await;
    assert!(
        env.fixture().execution(&two("skip")).await.is_none(),
        "skipped while the first ran"
    );
    assert_eq!(
        row(&env, "skip").await.unwrap().last_execution_id,
        Some(one("skip"))
    );
    // Let the held runs go (cancelled, their next write is refused) before the workers stop.
    env.durable.cancel(&one("skip")).await.unwrap();
    env.durable.cancel(&two("cancel")).await.unwrap();
    env.counts.open_gate(10);
    env.stop_workers().await;

    // "all" missed two hours while no worker ran; with limit 2 both fire.
    env.advance_clock(2 * HOUR).await;
    env.spawn_worker();
    fired(&env, "all", &execution_id("all", first + 3 * HOUR)).await;
    assert!(env
        .fixture()
        .execution(&execution_id("all", first + 2 * HOUR))
        .await
        .is_some());
    env.stop().await;
}

/// Declarations are checked; a paused schedule does not fire and fires its latest missed
/// time on resume; a redeclared expression is armed again; delete removes it; an unknown id
/// is not found.
pub async fn schedules_are_declared_paused_resumed_and_deleted(backend: &impl Backend) {
    let env = Env::new(backend).await;
    let next = || {
        env.scheduler
            .next_schedule_at(zart::scheduler::NextRunAtParams {
                queue: "default".into(),
                task_names: vec!["echo".into()],
            })
    };
    assert_eq!(
        next().await.unwrap(),
        None,
        "no schedule: nothing is due, ever"
    );
    let bad = env
        .scheduler
        .upsert_schedule(Schedule::new("bad", "61 * * * *", "echo"))
        .await
        .unwrap_err();
    assert!(
        matches!(&bad, Error::InvalidInput { field, .. } if field == "cron"),
        "{bad:?}"
    );
    let missing = env
        .scheduler
        .pause_schedule("nope", true)
        .await
        .unwrap_err();
    assert!(matches!(&missing, Error::NotFound { .. }), "{missing:?}");
    assert!(!env.scheduler.delete_schedule("nope").await.unwrap());

    env.scheduler
        .upsert_schedule(Schedule::new("nightly", "0 2 * * *", "echo").input(json!(2)))
        .await
        .unwrap();
    env.spawn_worker();
    let first = armed(&env, "nightly").await.next_fire_at.unwrap();
    let due_in = next().await.unwrap().expect("armed: due at its fire time");
    assert!(due_in > Duration::ZERO && due_in <= 24 * HOUR, "{due_in:?}");
    env.scheduler.pause_schedule("nightly", true).await.unwrap();
    assert_eq!(next().await.unwrap(), None, "paused: not due");
    assert!(row(&env, "nightly").await.unwrap().paused);
    env.advance_clock(48 * HOUR).await;
    env.start("marker", "echo", json!(0)).await;
    env.finished("marker").await;
    assert!(
        row(&env, "nightly")
            .await
            .unwrap()
            .last_execution_id
            .is_none(),
        "paused: nothing fired"
    );
    env.scheduler
        .pause_schedule("nightly", false)
        .await
        .unwrap();
    let latest = first + 24 * HOUR;
    fired(&env, "nightly", &execution_id("nightly", latest)).await;

    // Redeclared with another input: the same expression keeps its next fire time.
    let next = armed(&env, "nightly").await.next_fire_at;
    assert!(!env
        .scheduler
        .upsert_schedule(Schedule::new("nightly", "0 2 * * *", "echo").input(json!(3)))
        .await
        .unwrap());
    let kept = row(&env, "nightly").await.unwrap();
    assert_eq!(kept.next_fire_at, next);
    assert_eq!(kept.schedule.input, json!(3));

    // A claim takes what is due within its look-ahead, and only that.
    let claim = |ahead: Duration| {
        env.scheduler
            .claim_schedules(zart::scheduler::ClaimSchedulesParams {
                worker_id: "probe".into(),
                queue: "default".into(),
                task_names: vec!["echo".into()],
                limit: 10,
                lease: Duration::from_secs(30),
                ahead,
            })
    };
    assert!(
        claim(Duration::ZERO).await.unwrap().is_empty(),
        "not due yet"
    );
    let ahead = claim(25 * HOUR).await.unwrap();
    assert_eq!(ahead.len(), 1);
    assert_eq!(ahead[0].row.next_fire_at, next);

    assert!(env.scheduler.delete_schedule("nightly").await.unwrap());
    assert!(row(&env, "nightly").await.is_none());
    assert!(
        env.fixture()
            .execution(&execution_id("nightly", latest))
            .await
            .is_some(),
        "its executions stay"
    );
    env.stop().await;
}
