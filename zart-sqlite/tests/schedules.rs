//! Cron schedules on SQLite: declaring, pausing and deleting them, claims that hold a schedule
//! for one worker until the hold passes, fires under each overlap policy, fires refused to a
//! worker that does not hold the schedule, and `next_schedule_at`.
//!
//! Each test gets a fresh, migrated database file in a temporary directory and a scheduler
//! with the test clock on; a plain connection reads what the API does not show (the hold, the
//! declaration time).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod support;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use support::Db;
use zart::schedule::{execution_id, CatchUp, Overlap, Schedule, ScheduleRow};
use zart::scheduler::{
    ClaimSchedulesParams, ClaimTasksParams, DueSchedule, FireOutcome, FireScheduleParams,
    NextRunAtParams, StartChildParams, StartExecutionParams, Wakeup,
};
use zart::{Error, ExecutionStatus, Scheduler};
use zart_sqlite::SqliteOptions;

const TASK: &str = "report";
const LEASE: Duration = Duration::from_secs(30);

async fn db_with(options: SqliteOptions) -> Db {
    support::db_with("sched", options).await
}

async fn db() -> Db {
    db_with(SqliteOptions::default()).await
}

impl Db {
    async fn claim(&self, worker: &str) -> Vec<DueSchedule> {
        self.s
            .claim_schedules(ClaimSchedulesParams {
                worker_id: worker.to_owned(),
                queue: "default".to_owned(),
                task_names: vec![TASK.to_owned()],
                limit: 10,
                lease: LEASE,
                ahead: Duration::ZERO,
            })
            .await
            .unwrap()
    }

    /// Fires nothing for held schedule `id`, storing `error` (as a worker that cannot read its
    /// timing does), which stops it.
    async fn stop(&self, worker: &str, id: &str, error: &str) {
        self.s
            .fire_schedule(FireScheduleParams {
                worker_id: worker.to_owned(),
                id: id.to_owned(),
                fires: Vec::new(),
                next_fire_at: None,
                error: Some(error.to_owned()),
            })
            .await
            .unwrap();
    }

    /// Claims `id` as `worker`, which must find it due.
    async fn claim_one(&self, worker: &str, id: &str) -> DueSchedule {
        let mut due = self.claim(worker).await;
        assert_eq!(due.len(), 1, "{due:?}");
        let due = due.remove(0);
        assert_eq!(due.row.schedule.id, id);
        due
    }

    async fn fire(
        &self,
        worker: &str,
        id: &str,
        times: &[SystemTime],
        next: Option<SystemTime>,
    ) -> Result<FireOutcome, Error> {
        self.s
            .fire_schedule(FireScheduleParams {
                worker_id: worker.to_owned(),
                id: id.to_owned(),
                fires: times.iter().map(|t| (*t, execution_id(id, *t))).collect(),
                next_fire_at: next,
                error: None,
            })
            .await
    }

    /// An hour later (so the schedule is due), claims and fires `times` as worker `w`, the
    /// next fire time a minute after the last.
    async fn claim_and_fire(&self, id: &str, times: &[SystemTime]) -> FireOutcome {
        self.advance(Duration::from_secs(3600)).await;
        self.claim_one("w", id).await;
        let next = times.last().map(|t| *t + Duration::from_secs(60));
        self.fire("w", id, times, next).await.unwrap()
    }

    async fn row(&self, id: &str) -> ScheduleRow {
        let rows = self.s.list_schedules().await.unwrap();
        rows.into_iter()
            .find(|r| r.schedule.id == id)
            .unwrap_or_else(|| panic!("no schedule {id}"))
    }

    async fn next(&self) -> Option<Duration> {
        self.s
            .next_schedule_at(NextRunAtParams {
                queue: "default".to_owned(),
                task_names: vec![TASK.to_owned(), "other".to_owned()],
            })
            .await
            .unwrap()
    }

    async fn status(&self, id: &str) -> Option<ExecutionStatus> {
        self.s.get_execution(id).await.unwrap().map(|e| e.status)
    }

    /// The hold and the declaration time, which the API does not show.
    fn stored(&self, id: &str) -> (Option<String>, Option<String>, String) {
        self.conn
            .lock()
            .unwrap()
            .query_row(
                "select locked_by, locked_until, updated_at from zart_schedules where id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap()
    }

    async fn advance(&self, by: Duration) {
        self.s.advance_test_clock(by).await.unwrap();
    }
}

fn nightly() -> Schedule {
    Schedule::new("nightly", "0 2 * * *", TASK).input(json!({"scope": "all"}))
}

/// Whole seconds `n` minutes after `base` (fire times are whole seconds).
fn minute(base: SystemTime, n: u64) -> SystemTime {
    let secs = base.duration_since(UNIX_EPOCH).unwrap().as_secs();
    UNIX_EPOCH + Duration::from_secs(secs - secs % 60 + 60 * n)
}

fn close_to(got: Option<Duration>, want: Duration) {
    let got = got.unwrap_or_else(|| panic!("no next schedule, expected about {want:?}"));
    assert!(
        got <= want && got + Duration::from_secs(5) >= want,
        "{got:?} is not about {want:?}"
    );
}

#[tokio::test]
async fn upsert_stores_new_schedules_and_resets_the_fire_time_only_for_a_new_timing() {
    let db = db().await;
    assert!(db.s.upsert_schedule(nightly()).await.unwrap(), "new");
    let row = db.row("nightly").await;
    assert_eq!(row.schedule, nightly());
    assert_eq!(
        (row.paused, row.next_fire_at, row.last_fire_at, row.error),
        (false, None, None, None)
    );
    let declared = db.stored("nightly").2;

    // A worker fires it once: next fire time and history are stored.
    let due = db.claim_one("w", "nightly").await;
    let t1 = minute(due.now, 0);
    let next = minute(due.now, 10);
    assert_eq!(
        db.fire("w", "nightly", &[t1], Some(next)).await.unwrap(),
        FireOutcome {
            started: vec![execution_id("nightly", t1)],
            ..Default::default()
        }
    );

    // Another input and policies: not new; fire time, history and declaration time stay.
    db.advance(Duration::from_secs(5)).await;
    let changed = nightly()
        .input(json!({"scope": "eu"}))
        .overlap(Overlap::Allow)
        .catch_up(CatchUp::All(5));
    assert!(!db.s.upsert_schedule(changed.clone()).await.unwrap());
    let row = db.row("nightly").await;
    assert_eq!(row.schedule, changed);
    assert_eq!(row.next_fire_at, Some(next));
    assert_eq!(row.last_fire_at, Some(t1));
    assert_eq!(row.last_execution_id, Some(execution_id("nightly", t1)));
    assert_eq!(
        db.stored("nightly").2,
        declared,
        "the timing did not change"
    );

    // Another cron expression: the fire time is computed again, from the new declaration.
    let mut recron = changed.clone();
    recron.cron = "30 3 * * *".to_owned();
    assert!(!db.s.upsert_schedule(recron.clone()).await.unwrap());
    let row = db.row("nightly").await;
    assert_eq!(row.next_fire_at, None);
    assert_eq!(row.last_execution_id, Some(execution_id("nightly", t1)));
    let redeclared = db.stored("nightly").2;
    assert!(redeclared > declared, "{redeclared} after {declared}");
    let due = db.claim_one("w", "nightly").await;
    assert_eq!(
        zart_sqlite::clock::format(
            i64::try_from(
                due.declared_at
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .as_millis()
            )
            .unwrap()
        ),
        redeclared,
        "declared_at is the declaration time"
    );
    db.fire("w", "nightly", &[], Some(next)).await.unwrap();

    // Another time zone: the same.
    db.advance(Duration::from_secs(5)).await;
    assert!(!db
        .s
        .upsert_schedule(recron.clone().time_zone("Europe/Paris"))
        .await
        .unwrap());
    assert_eq!(db.row("nightly").await.next_fire_at, None);
    assert!(db.stored("nightly").2 > redeclared);
}

#[tokio::test]
async fn an_upsert_clears_the_error_and_keeps_the_pause() {
    let db = db().await;
    db.s.upsert_schedule(nightly()).await.unwrap();
    db.claim_one("w", "nightly").await;
    db.stop("w", "nightly", "cron: it never fires").await;
    let row = db.row("nightly").await;
    assert_eq!(row.error.as_deref(), Some("cron: it never fires"));
    assert!(db.claim("w").await.is_empty(), "a stopped schedule");
    assert_eq!(db.next().await, None);

    db.s.pause_schedule("nightly", true).await.unwrap();
    assert!(!db.s.upsert_schedule(nightly()).await.unwrap());
    let row = db.row("nightly").await;
    assert_eq!(row.error, None);
    assert!(row.paused, "the pause stays");
}

#[tokio::test]
async fn invalid_declarations_are_refused_naming_the_field_and_nothing_is_stored() {
    let db = db_with(SqliteOptions::default().max_payload_bytes(64)).await;
    let cases = [
        (Schedule::new("a", "61 * * * *", TASK), "cron"),
        (Schedule::new("a", "0 0 30 2 *", TASK), "cron"),
        (
            Schedule::new("a", "* * * * *", TASK).time_zone("Mars/Olympus"),
            "time zone",
        ),
        (Schedule::new("a@b", "* * * * *", TASK), "schedule id"),
        (Schedule::new("", "* * * * *", TASK), "schedule id"),
        (Schedule::new("a", "* * * * *", ""), "task name"),
        (Schedule::new("a", "* * * * *", TASK).queue(""), "queue"),
        (
            Schedule::new("a", "* * * * *", TASK).catch_up(CatchUp::All(1001)),
            "catch-up limit",
        ),
        (
            Schedule::new("a", "* * * * *", TASK).input(json!("x".repeat(100))),
            "input",
        ),
    ];
    for (schedule, want) in cases {
        match db.s.upsert_schedule(schedule.clone()).await {
            Err(Error::InvalidInput { field, reason }) => {
                assert_eq!(field, want, "{schedule:?}: {reason}");
            }
            other => panic!("{schedule:?}: {other:?}"),
        }
    }
    assert!(db.s.list_schedules().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_paused_schedule_is_not_claimed_until_resumed() {
    let db = db().await;
    db.s.upsert_schedule(nightly()).await.unwrap();
    db.s.pause_schedule("nightly", true).await.unwrap();
    db.s.pause_schedule("nightly", true).await.unwrap();
    assert!(db.row("nightly").await.paused);
    assert!(db.claim("w").await.is_empty());
    assert_eq!(db.next().await, None);

    let mut rx = db.s.subscribe();
    db.s.pause_schedule("nightly", false).await.unwrap();
    assert!(!db.row("nightly").await.paused);
    assert!(drain(&mut rx).contains(&Wakeup::Work {
        queue: "default".to_owned()
    }));
    assert_eq!(db.next().await, Some(Duration::ZERO));
    db.claim_one("w", "nightly").await;

    match db.s.pause_schedule("nope", true).await {
        Err(Error::NotFound { id }) => assert_eq!(id, "nope"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_schedule_paused_while_held_fires_nothing_and_keeps_its_times() {
    let db = db().await;
    db.s.upsert_schedule(nightly()).await.unwrap();
    let due = db.claim_one("w", "nightly").await;
    db.s.pause_schedule("nightly", true).await.unwrap();
    let t1 = minute(due.now, 0);
    let out = db
        .fire("w", "nightly", &[t1], Some(minute(due.now, 1)))
        .await
        .unwrap();
    assert_eq!(out, FireOutcome::default());
    assert_eq!(db.status(&execution_id("nightly", t1)).await, None);
    let row = db.row("nightly").await;
    assert_eq!((row.next_fire_at, row.last_fire_at), (None, None));
    assert_eq!(db.stored("nightly").0, None, "the hold is given up");
    db.s.pause_schedule("nightly", false).await.unwrap();
    db.claim_one("w2", "nightly").await;
}

#[tokio::test]
async fn a_claim_holds_the_schedule_against_other_workers_until_the_hold_passes() {
    let db = db().await;
    db.s.upsert_schedule(nightly()).await.unwrap();
    let due = db.claim_one("w1", "nightly").await;
    assert_eq!(due.row.schedule, nightly());
    assert!(due.declared_at <= due.now);
    let (by, until, _) = db.stored("nightly");
    assert_eq!(by.as_deref(), Some("w1"));
    assert!(until.is_some());

    assert!(db.claim("w2").await.is_empty(), "held by w1");
    close_to(db.next().await, LEASE);
    db.advance(LEASE - Duration::from_secs(5)).await;
    assert!(db.claim("w2").await.is_empty(), "still held");
    db.advance(Duration::from_secs(5) + Duration::from_millis(1))
        .await;
    let taken = db.claim_one("w2", "nightly").await;

    // w1's late fire changes nothing.
    let before = db.row("nightly").await;
    let t1 = minute(taken.now, 0);
    match db
        .fire("w1", "nightly", &[t1], Some(minute(taken.now, 5)))
        .await
    {
        Err(Error::LeaseLost { id }) => assert_eq!(id, "nightly"),
        other => panic!("{other:?}"),
    }
    assert_eq!(db.row("nightly").await, before);
    assert_eq!(db.stored("nightly").0.as_deref(), Some("w2"));
    assert_eq!(db.status(&execution_id("nightly", t1)).await, None);

    // w2 fires: started, stored, the hold given up.
    let out = db
        .fire("w2", "nightly", &[t1], Some(minute(taken.now, 5)))
        .await
        .unwrap();
    assert_eq!(out.started, [execution_id("nightly", t1)]);
    assert_eq!(db.stored("nightly").0, None);
    assert!(
        db.claim("w1").await.is_empty(),
        "not due before its next time"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claims_hand_a_schedule_to_one_worker() {
    let db = Arc::new(db().await);
    db.s.upsert_schedule(nightly()).await.unwrap();
    let claims: Vec<_> = (0..16)
        .map(|i| {
            let db = db.clone();
            tokio::spawn(async move { db.claim(&format!("w{i}")).await.len() })
        })
        .collect();
    let mut taken = 0;
    for claim in claims {
        taken += claim.await.unwrap();
    }
    assert_eq!(taken, 1);
}

#[tokio::test]
async fn claims_take_only_the_queue_and_task_names_asked_for_up_to_the_limit() {
    let db = db().await;
    for (id, task, queue) in [
        ("a", TASK, "default"),
        ("b", TASK, "default"),
        ("c", "other-task", "default"),
        ("d", TASK, "elsewhere"),
    ] {
        db.s.upsert_schedule(Schedule::new(id, "* * * * *", task).queue(queue))
            .await
            .unwrap();
    }
    let one =
        db.s.claim_schedules(ClaimSchedulesParams {
            worker_id: "w".to_owned(),
            queue: "default".to_owned(),
            task_names: vec![TASK.to_owned(), TASK.to_owned()],
            limit: 1,
            lease: LEASE,
            ahead: Duration::ZERO,
        })
        .await
        .unwrap();
    assert_eq!(one.len(), 1);
    let rest: Vec<String> = db
        .claim("w")
        .await
        .into_iter()
        .map(|d| d.row.schedule.id)
        .collect();
    assert_eq!(rest.len(), 1);
    assert_ne!(rest[0], one[0].row.schedule.id);
    assert!(["a", "b"].contains(&rest[0].as_str()));
    assert!(db.claim("w").await.is_empty());
}

#[tokio::test]
async fn overlap_skip_skips_a_firing_while_the_last_execution_is_unfinished() {
    let db = db().await;
    db.s.upsert_schedule(nightly()).await.unwrap();
    let base = db.claim_one("w", "nightly").await.now;
    let (t1, t2, t3, t4) = (
        minute(base, 1),
        minute(base, 2),
        minute(base, 3),
        minute(base, 4),
    );
    let (e1, e2, e3, e4) = (
        execution_id("nightly", t1),
        execution_id("nightly", t2),
        execution_id("nightly", t3),
        execution_id("nightly", t4),
    );
    // Two times in one fire: the second finds the first unfinished.
    let out = db
        .fire("w", "nightly", &[t1, t2], Some(minute(base, 3)))
        .await
        .unwrap();
    assert_eq!(
        out,
        FireOutcome {
            started: vec![e1.clone()],
            skipped: vec![e2.clone()],
            cancelled: vec![],
        }
    );
    assert_eq!(db.status(&e1).await, Some(ExecutionStatus::Scheduled));
    assert_eq!(db.status(&e2).await, None);
    let row = db.row("nightly").await;
    assert_eq!(row.last_execution_id.as_deref(), Some(e1.as_str()));
    assert_eq!(row.last_fire_at, Some(t1));
    assert_eq!(row.next_fire_at, Some(minute(base, 3)));

    // Once it has finished, the next firing starts.
    db.s.cancel_execution(&e1).await.unwrap();
    let out = db.claim_and_fire("nightly", &[t3]).await;
    assert_eq!(out.started, [e3]);
    assert!(out.skipped.is_empty());

    // Completed counts as finished too.
    let claimed =
        db.s.claim_tasks(ClaimTasksParams {
            worker_id: "runner".to_owned(),
            queue: "default".to_owned(),
            task_names: vec![TASK.to_owned()],
            limit: 1,
            lease: LEASE,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].input, json!({"scope": "all"}));
    db.s.complete_execution(zart::scheduler::CompleteExecutionParams {
        lease: claimed[0].lease.clone(),
        outcome: zart::scheduler::Outcome::Completed(json!("done")),
    })
    .await
    .unwrap();
    assert_eq!(db.claim_and_fire("nightly", &[t4]).await.started, [e4]);
}

#[tokio::test]
async fn overlap_allow_starts_beside_the_unfinished_execution() {
    let db = db().await;
    db.s.upsert_schedule(nightly().overlap(Overlap::Allow))
        .await
        .unwrap();
    let base = db.claim_one("w", "nightly").await.now;
    let (t1, t2) = (minute(base, 1), minute(base, 2));
    let out = db
        .fire("w", "nightly", &[t1, t2], Some(minute(base, 3)))
        .await
        .unwrap();
    assert_eq!(
        out.started,
        [execution_id("nightly", t1), execution_id("nightly", t2)]
    );
    assert!(out.skipped.is_empty() && out.cancelled.is_empty());
    let row = db.row("nightly").await;
    assert_eq!(row.last_execution_id, Some(execution_id("nightly", t2)));
    assert_eq!(row.last_fire_at, Some(t2));
    for t in [t1, t2] {
        let e =
            db.s.get_execution(&execution_id("nightly", t))
                .await
                .unwrap()
                .unwrap();
        assert_eq!(
            (e.task_name.as_str(), e.queue.as_str(), &e.input),
            (TASK, "default", &json!({"scope": "all"}))
        );
    }
}

#[tokio::test]
async fn overlap_cancel_previous_cancels_the_last_execution_and_its_children_first() {
    let db = db().await;
    db.s.upsert_schedule(nightly().overlap(Overlap::CancelPrevious))
        .await
        .unwrap();
    let base = db.claim_one("w", "nightly").await.now;
    let (t1, t2) = (minute(base, 1), minute(base, 2));
    let (e1, e2) = (execution_id("nightly", t1), execution_id("nightly", t2));
    assert_eq!(
        db.fire("w", "nightly", &[t1], Some(t2))
            .await
            .unwrap()
            .started,
        std::slice::from_ref(&e1)
    );
    // e1 runs and starts a child, which is unfinished too.
    let claimed =
        db.s.claim_tasks(ClaimTasksParams {
            worker_id: "runner".to_owned(),
            queue: "default".to_owned(),
            task_names: vec![TASK.to_owned()],
            limit: 1,
            lease: LEASE,
            ..Default::default()
        })
        .await
        .unwrap();
    db.s.start_child(StartChildParams {
        lease: claimed[0].lease.clone(),
        name: "part".to_owned(),
        seq: 0,
        child_id: "child-1".to_owned(),
        task_name: "part".to_owned(),
        input: json!(1),
        queue: "default".to_owned(),
        detached: false,
    })
    .await
    .unwrap();

    let mut rx = db.s.subscribe();
    let out = db.claim_and_fire("nightly", &[t2]).await;
    assert_eq!(
        out,
        FireOutcome {
            started: vec![e2.clone()],
            skipped: vec![],
            cancelled: vec![e1.clone(), "child-1".to_owned()],
        }
    );
    assert_eq!(db.status(&e1).await, Some(ExecutionStatus::Cancelled));
    assert_eq!(db.status("child-1").await, Some(ExecutionStatus::Cancelled));
    assert_eq!(db.status(&e2).await, Some(ExecutionStatus::Scheduled));
    let wakeups = drain(&mut rx);
    assert!(
        wakeups.contains(&Wakeup::Finished {
            execution_ids: vec![e1.clone(), "child-1".to_owned()].into()
        }),
        "{wakeups:?}"
    );
    assert!(wakeups.contains(&Wakeup::Work {
        queue: "default".to_owned()
    }));

    // A finished previous execution is left alone.
    db.s.cancel_execution(&e2).await.unwrap();
    let t3 = minute(base, 3);
    let out = db.claim_and_fire("nightly", &[t3]).await;
    assert_eq!(out.started, [execution_id("nightly", t3)]);
    assert!(out.cancelled.is_empty());
}

#[tokio::test]
async fn a_fire_time_whose_execution_exists_starts_nothing_and_is_not_an_error() {
    let db = db().await;
    db.s.upsert_schedule(nightly().overlap(Overlap::CancelPrevious))
        .await
        .unwrap();
    let base = db.claim_one("w", "nightly").await.now;
    let (t1, t2) = (minute(base, 1), minute(base, 2));
    let (e1, e2) = (execution_id("nightly", t1), execution_id("nightly", t2));
    // Another worker (or a client) started both ids already, one with another input.
    for (id, input) in [(&e1, json!({"scope": "all"})), (&e2, json!("other"))] {
        db.s.start_execution(StartExecutionParams {
            id: id.clone(),
            task_name: TASK.to_owned(),
            input,
            queue: "default".to_owned(),
            parent_id: None,
            deadline: None,
            start: None,
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let out = db
        .fire("w", "nightly", &[t1, t2], Some(minute(base, 3)))
        .await
        .unwrap();
    assert_eq!(out, FireOutcome::default(), "nothing started or cancelled");
    assert_eq!(db.status(&e1).await, Some(ExecutionStatus::Scheduled));
    let row = db.row("nightly").await;
    assert_eq!(row.last_execution_id, Some(e2));
    assert_eq!(row.last_fire_at, Some(t2));
    assert_eq!(row.next_fire_at, Some(minute(base, 3)));
}

#[tokio::test]
async fn a_new_timing_takes_the_hold_back_so_the_old_fire_is_refused() {
    let db = db().await;
    db.s.upsert_schedule(nightly()).await.unwrap();
    let due = db.claim_one("w", "nightly").await;
    let mut retimed = nightly();
    retimed.cron = "0 3 * * *".to_owned();
    db.s.upsert_schedule(retimed).await.unwrap();
    let t1 = minute(due.now, 0);
    assert!(matches!(
        db.fire("w", "nightly", &[t1], Some(minute(due.now, 1)))
            .await,
        Err(Error::LeaseLost { .. })
    ));
    assert_eq!(db.status(&execution_id("nightly", t1)).await, None);
    assert_eq!(db.row("nightly").await.next_fire_at, None);
    db.claim_one("w2", "nightly").await;
}

#[tokio::test]
async fn next_schedule_at_counts_due_future_held_paused_and_stopped_schedules() {
    let db = db().await;
    assert_eq!(db.next().await, None, "no schedule");
    db.s.upsert_schedule(Schedule::new("elsewhere", "* * * * *", TASK).queue("other-queue"))
        .await
        .unwrap();
    db.s.upsert_schedule(Schedule::new("not-mine", "* * * * *", "unknown-task"))
        .await
        .unwrap();
    assert_eq!(db.next().await, None, "other queues and task names");

    db.s.upsert_schedule(nightly()).await.unwrap();
    assert_eq!(
        db.next().await,
        Some(Duration::ZERO),
        "not computed yet: now"
    );
    let due = db.claim_one("w", "nightly").await;
    close_to(db.next().await, LEASE);
    let next = due.now + Duration::from_secs(90);
    db.fire("w", "nightly", &[], Some(next)).await.unwrap();
    close_to(db.next().await, Duration::from_secs(90));

    db.s.upsert_schedule(Schedule::new("soon", "* * * * *", "other"))
        .await
        .unwrap();
    assert_eq!(db.next().await, Some(Duration::ZERO), "the earliest counts");
    db.s.pause_schedule("soon", true).await.unwrap();
    close_to(db.next().await, Duration::from_secs(90));

    db.advance(Duration::from_secs(120)).await;
    assert_eq!(db.next().await, Some(Duration::ZERO), "past: zero");
    db.claim_one("w", "nightly").await;
    db.stop("w", "nightly", "time zone: gone").await;
    assert_eq!(db.next().await, None, "a stopped schedule does not count");
}

#[tokio::test]
async fn delete_removes_the_schedule_but_not_its_executions() {
    let db = db().await;
    db.s.upsert_schedule(nightly()).await.unwrap();
    let base = db.claim_one("w", "nightly").await.now;
    let t1 = minute(base, 0);
    db.fire("w", "nightly", &[t1], Some(minute(base, 1)))
        .await
        .unwrap();
    assert!(db.s.delete_schedule("nightly").await.unwrap());
    assert!(!db.s.delete_schedule("nightly").await.unwrap());
    assert!(db.s.list_schedules().await.unwrap().is_empty());
    assert_eq!(
        db.status(&execution_id("nightly", t1)).await,
        Some(ExecutionStatus::Scheduled)
    );
    assert!(matches!(
        db.fire("w", "nightly", &[minute(base, 1)], None).await,
        Err(Error::LeaseLost { .. })
    ));
    assert_eq!(db.next().await, None);
    // Declared again, it is new.
    assert!(db.s.upsert_schedule(nightly()).await.unwrap());
}

#[tokio::test]
async fn list_returns_every_schedule_by_id() {
    let db = db().await;
    for id in ["c", "a", "b"] {
        db.s.upsert_schedule(Schedule::new(id, "*/5 * * * *", TASK))
            .await
            .unwrap();
    }
    let ids: Vec<String> =
        db.s.list_schedules()
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.schedule.id)
            .collect();
    assert_eq!(ids, ["a", "b", "c"]);
}

/// The wake-ups received so far.
fn drain(rx: &mut tokio::sync::broadcast::Receiver<Wakeup>) -> Vec<Wakeup> {
    let mut got = Vec::new();
    while let Ok(w) = rx.try_recv() {
        got.push(w);
    }
    got
}
