//! Priorities, limits per queue and start keys on SQLite: claims take higher priorities first
//! (FIFO within one) or, oldest first, the longest due; a limited queue's claims stop at its
//! concurrency and rate limits and pass over a limit key at its own; a run that ends (or whose
//! lease runs out) frees its slot, and a run ending in a limited queue wakes its workers;
//! `next_run_at` of a held-back queue is the next time something can change; dedup keys
//! return the first execution, debounce keys move it; conflicts and bad input write nothing.
//!
//! Each test gets a fresh, migrated database file and a scheduler with the test clock on; a
//! plain connection counts rows the API does not show.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod support;

use std::time::Duration;

use serde_json::json;
use support::{db_with, Db};
use tokio::sync::broadcast;
use zart::queues::{QueueLimits, Rate, StartKey};
use zart::scheduler::{
    ClaimTasksParams, ClaimedTask, CompleteExecutionParams, NextRunAtParams, Outcome, SleepParams,
    StartExecutionParams, StartOutcome, WakeAt, Wakeup,
};
use zart::{Error, ExecutionStatus, Scheduler};
use zart_sqlite::SqliteOptions;

const TASK: &str = "call";
const QUEUE: &str = "partner";
const LEASE: Duration = Duration::from_secs(30);

async fn db() -> Db {
    db_with("limits", SqliteOptions::default()).await
}

fn start(id: &str) -> StartExecutionParams {
    StartExecutionParams {
        id: id.to_owned(),
        task_name: TASK.to_owned(),
        input: json!({ "id": id }),
        queue: QUEUE.to_owned(),
        ..Default::default()
    }
}

fn with_priority(id: &str, priority: i16) -> StartExecutionParams {
    StartExecutionParams {
        priority,
        ..start(id)
    }
}

fn with_limit_key(id: &str, key: &str) -> StartExecutionParams {
    StartExecutionParams {
        limit_key: Some(key.to_owned()),
        ..start(id)
    }
}

fn keyed(id: &str, input: serde_json::Value, key: &str, debounce: bool) -> StartExecutionParams {
    StartExecutionParams {
        input,
        start_key: Some(StartKey {
            key: key.to_owned(),
            window: Duration::from_secs(10),
            debounce,
        }),
        ..start(id)
    }
}

fn ids(claimed: &[ClaimedTask]) -> Vec<&str> {
    claimed
        .iter()
        .map(|t| t.lease.execution_id.as_str())
        .collect()
}

/// `got` is `want`, or a little less (the system clock runs under the test clock).
fn close_to(got: Option<Duration>, want: Duration) {
    let got = got.unwrap_or_else(|| panic!("no next run, expected about {want:?}"));
    assert!(
        got <= want && got + Duration::from_secs(2) >= want,
        "{got:?} is not about {want:?}"
    );
}

impl Db {
    /// Starts each execution 1 ms after the last, so their due times are in start order.
    async fn start_all(&self, starts: Vec<StartExecutionParams>) {
        for p in starts {
            assert!(self.s.start_execution(p).await.unwrap().created);
            self.advance(Duration::from_millis(1)).await;
        }
    }

    async fn claim_with(&self, names: &[&str], limit: u32, oldest_first: bool) -> Vec<ClaimedTask> {
        self.s
            .claim_tasks(ClaimTasksParams {
                worker_id: "w".to_owned(),
                queue: QUEUE.to_owned(),
                task_names: names.iter().map(|n| (*n).to_owned()).collect(),
                limit,
                lease: LEASE,
                oldest_first,
            })
            .await
            .unwrap()
    }

    async fn claim(&self, limit: u32) -> Vec<ClaimedTask> {
        self.claim_with(&[TASK], limit, false).await
    }

    async fn complete(&self, task: &ClaimedTask) {
        self.s
            .complete_execution(CompleteExecutionParams {
                lease: task.lease.clone(),
                outcome: Outcome::Completed(json!(null)),
            })
            .await
            .unwrap();
    }

    async fn limit(&self, limits: QueueLimits) {
        assert!(self.s.set_queue_limits(QUEUE, Some(limits)).await.unwrap());
    }

    async fn next(&self) -> Option<Duration> {
        self.s
            .next_run_at(NextRunAtParams {
                queue: QUEUE.to_owned(),
                task_names: vec![TASK.to_owned()],
            })
            .await
            .unwrap()
    }

    async fn advance(&self, by: Duration) {
        self.s.advance_test_clock(by).await.unwrap();
    }

    async fn input(&self, id: &str) -> Option<serde_json::Value> {
        self.s.get_execution(id).await.unwrap().map(|e| e.input)
    }

    fn count(&self, table: &str) -> i64 {
        self.conn
            .lock()
            .unwrap()
            .query_row(&format!("select count(*) from {table}"), [], |r| r.get(0))
            .unwrap()
    }

    /// Rows of every table a start or a limit writes.
    fn rows(&self) -> [i64; 5] {
        [
            "zart_executions",
            "zart_tasks",
            "zart_start_keys",
            "zart_queue_limits",
            "zart_limit_runs",
        ]
        .map(|t| self.count(t))
    }
}

/// Whether `rx` holds a `Work` wake-up for the queue (everything sent so far is drained).
fn woken(rx: &mut broadcast::Receiver<Wakeup>) -> bool {
    let mut found = false;
    while let Ok(wakeup) = rx.try_recv() {
        found |= wakeup
            == Wakeup::Work {
                queue: QUEUE.to_owned(),
            };
    }
    found
}

#[tokio::test]
async fn priorities_are_claimed_highest_first_and_in_due_order_within_one() {
    let db = db().await;
    db.start_all(vec![
        with_priority("low", 0),
        with_priority("high-1", 5),
        with_priority("lowest", -3),
        with_priority("high-2", 5),
        with_priority("mid", 1),
    ])
    .await;
    let mut order = Vec::new();
    for _ in 0..5 {
        let claimed = db.claim(1).await;
        order.extend(ids(&claimed).into_iter().map(str::to_owned));
    }
    assert_eq!(order, ["high-1", "high-2", "mid", "low", "lowest"]);

    // Across task names: the priority first, whichever name's turn it is.
    let db = crate::db().await;
    db.start_all(vec![
        StartExecutionParams {
            task_name: "other".to_owned(),
            ..with_priority("other-low", 0)
        },
        with_priority("call-high", 2),
    ])
    .await;
    for _ in 0..10 {
        let claimed = db.claim_with(&["other", TASK], 1, false).await;
        assert_eq!(ids(&claimed), ["call-high"]);
        db.s.release_tasks(zart::scheduler::ReleaseTasksParams {
            worker_id: "w".to_owned(),
            queue: QUEUE.to_owned(),
            leases: vec![claimed[0].lease.clone()],
        })
        .await
        .unwrap();
    }
    let both = db.claim_with(&["other", TASK], 10, false).await;
    assert_eq!(ids(&both), ["call-high", "other-low"]);
}

#[tokio::test]
async fn an_oldest_first_claim_takes_the_longest_due_whatever_the_priority() {
    let db = db().await;
    db.start_all(vec![
        with_priority("old-low", 0),
        with_priority("new-high", 9),
        with_priority("older-mid", 3),
    ])
    .await;
    let claimed = db.claim_with(&[TASK], 2, true).await;
    assert_eq!(ids(&claimed), ["old-low", "new-high"]);
    let claimed = db.claim_with(&[TASK], 2, false).await;
    assert_eq!(ids(&claimed), ["older-mid"]);

    // In a limited queue too, passing over a key at its limit.
    let db = crate::db().await;
    db.limit(QueueLimits::new().with_key_max_running(1)).await;
    db.start_all(vec![
        StartExecutionParams {
            priority: 0,
            ..with_limit_key("x1", "acme")
        },
        StartExecutionParams {
            priority: 9,
            ..with_limit_key("x2", "acme")
        },
        with_priority("y", 5),
    ])
    .await;
    let claimed = db.claim_with(&[TASK], 10, true).await;
    assert_eq!(ids(&claimed), ["x1", "y"]);
}

#[tokio::test]
async fn max_running_bounds_claims_and_an_ended_run_frees_its_slot_and_wakes_workers() {
    let db = db().await;
    db.limit(QueueLimits::new().with_max_running(2)).await;
    db.start_all((0..4).map(|i| start(&format!("e{i}"))).collect())
        .await;
    let first = db.claim(10).await;
    assert_eq!(ids(&first), ["e0", "e1"]);
    assert!(db.claim(10).await.is_empty(), "at the limit");
    let rows = db.s.list_queue_limits().await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].running, rows[0].started_in_window), (2, 0));

    // Completing a run frees a slot and wakes the queue's workers.
    let mut rx = db.s.subscribe();
    db.complete(&first[0]).await;
    assert!(
        woken(&mut rx),
        "a completion in a limited queue wakes workers"
    );
    let next = db.claim(10).await;
    assert_eq!(ids(&next), ["e2"]);

    // So does a suspension (a sleep).
    db.s.sleep(SleepParams {
        lease: first[1].lease.clone(),
        queue: QUEUE.to_owned(),
        name: "nap".to_owned(),
        seq: 0,
        until: WakeAt::After(Duration::from_secs(3600)),
    })
    .await
    .unwrap();
    assert!(woken(&mut rx), "a sleep in a limited queue wakes workers");
    assert_eq!(ids(&db.claim(10).await), ["e3"]);
    assert!(db.claim(10).await.is_empty());

    // Without limits, a sleep wakes no worker for work.
    db.s.set_queue_limits(QUEUE, None).await.unwrap();
    assert!(woken(&mut rx), "setting limits wakes workers");
    assert!(db.claim(10).await.is_empty(), "e2 and e3 still run");
    db.s.sleep(SleepParams {
        lease: next[0].lease.clone(),
        queue: QUEUE.to_owned(),
        name: "nap".to_owned(),
        seq: 0,
        until: WakeAt::After(Duration::from_secs(3600)),
    })
    .await
    .unwrap();
    assert!(!woken(&mut rx));
}

#[tokio::test]
async fn an_expired_lease_frees_its_slot() {
    let db = db().await;
    db.limit(QueueLimits::new().with_max_running(1)).await;
    db.start_all(vec![start("a"), start("b")]).await;
    assert_eq!(ids(&db.claim(10).await), ["a"]);
    assert!(db.claim(10).await.is_empty());
    db.advance(LEASE + Duration::from_millis(1)).await;
    // a's lease ran out: the slot is free, and b, due first, takes it.
    assert_eq!(ids(&db.claim(10).await), ["b"]);
    assert!(db.claim(10).await.is_empty());
    let rows = db.s.list_queue_limits().await.unwrap();
    assert_eq!(rows[0].running, 1);
}

#[tokio::test]
async fn a_rate_limit_counts_the_runs_started_within_its_interval() {
    let db = db().await;
    let per = Duration::from_secs(10);
    db.limit(QueueLimits::new().with_rate(Rate::new(2, per)))
        .await;
    db.start_all((0..5).map(|i| start(&format!("e{i}"))).collect())
        .await;
    let first = db.claim(10).await;
    assert_eq!(ids(&first), ["e0", "e1"]);
    for task in &first {
        db.complete(task).await;
    }
    // Nothing runs, but two started within the interval.
    assert!(db.claim(10).await.is_empty());
    let rows = db.s.list_queue_limits().await.unwrap();
    assert_eq!((rows[0].running, rows[0].started_in_window), (0, 2));
    // Held back: the next time one can start is when the first start leaves the window.
    close_to(db.next().await, per);

    db.advance(per - Duration::from_secs(1)).await;
    assert!(db.claim(10).await.is_empty());
    db.advance(Duration::from_secs(1)).await;
    assert_eq!(ids(&db.claim(10).await), ["e2", "e3"]);
    // The spent runs are gone; the two new ones are kept.
    assert_eq!(db.count("zart_limit_runs"), 2);
}

#[tokio::test]
async fn a_limit_key_at_its_limit_is_passed_over() {
    let db = db().await;
    db.limit(QueueLimits::new().with_key_max_running(1)).await;
    db.start_all(vec![
        with_limit_key("a1", "acme"),
        with_limit_key("a2", "acme"),
        start("free"),
        with_limit_key("b1", "bolt"),
    ])
    .await;
    let claimed = db.claim(10).await;
    assert_eq!(ids(&claimed), ["a1", "free", "b1"], "a2 waits for a1");
    assert!(db.claim(10).await.is_empty());
    db.complete(&claimed[0]).await;
    assert_eq!(ids(&db.claim(10).await), ["a2"]);

    // A key rate counts the picks of the claim itself.
    let db = crate::db().await;
    db.limit(QueueLimits::new().with_key_rate(Rate::new(1, Duration::from_secs(60))))
        .await;
    db.start_all(vec![
        with_limit_key("a1", "acme"),
        with_limit_key("a2", "acme"),
        with_limit_key("b1", "bolt"),
    ])
    .await;
    let claimed = db.claim(10).await;
    assert_eq!(ids(&claimed), ["a1", "b1"]);
    for task in &claimed {
        db.complete(task).await;
    }
    assert!(
        db.claim(10).await.is_empty(),
        "acme started one this minute"
    );
    db.advance(Duration::from_secs(60)).await;
    assert_eq!(ids(&db.claim(10).await), ["a2"]);
}

#[tokio::test]
async fn next_run_at_of_a_held_back_queue_is_when_something_can_change() {
    let db = db().await;
    db.start_all(vec![start("a"), start("b")]).await;
    assert_eq!(db.next().await, Some(Duration::ZERO));
    db.limit(QueueLimits::new().with_max_running(1)).await;
    assert_eq!(db.next().await, Some(Duration::ZERO), "a slot is free");
    assert_eq!(ids(&db.claim(1).await), ["a"]);
    // b is due but held back until a's lease runs out (or a ends, which wakes workers).
    close_to(db.next().await, LEASE);
    // A delayed start falling due sooner comes first.
    db.s.start_execution(StartExecutionParams {
        start: Some(WakeAt::After(Duration::from_secs(5))),
        ..start("later")
    })
    .await
    .unwrap();
    close_to(db.next().await, Duration::from_secs(5));
    // Without limits, b is due now.
    assert!(!db.s.set_queue_limits(QUEUE, None).await.unwrap());
    assert_eq!(db.next().await, Some(Duration::ZERO));
}

#[tokio::test]
async fn a_dedup_key_returns_the_first_execution_until_its_window_ends() {
    let db = db().await;
    let first =
        db.s.start_execution(keyed("d1", json!(1), "welcome", false))
            .await
            .unwrap();
    assert_eq!(
        first,
        StartOutcome {
            created: true,
            status: ExecutionStatus::Scheduled,
            id: "d1".to_owned(),
        }
    );
    assert_eq!(
        db.next().await,
        Some(Duration::ZERO),
        "a dedup start is not delayed"
    );
    let again =
        db.s.start_execution(keyed("d2", json!(2), "welcome", false))
            .await
            .unwrap();
    assert_eq!((again.created, again.id.as_str()), (false, "d1"));
    assert_eq!(db.input("d2").await, None);
    assert_eq!(db.input("d1").await, Some(json!(1)));

    // Once the window ended, the key starts anew and names the new execution.
    db.advance(Duration::from_secs(10)).await;
    let later =
        db.s.start_execution(keyed("d3", json!(3), "welcome", false))
            .await
            .unwrap();
    assert_eq!((later.created, later.id.as_str()), (true, "d3"));
    let again =
        db.s.start_execution(keyed("d4", json!(4), "welcome", false))
            .await
            .unwrap();
    assert_eq!((again.created, again.id.as_str()), (false, "d3"));

    // An execution the key names that was pruned is started anew.
    db.conn
        .lock()
        .unwrap()
        .execute_batch("delete from zart_tasks; delete from zart_executions where id = 'd3'")
        .unwrap();
    let anew =
        db.s.start_execution(keyed("d5", json!(5), "welcome", false))
            .await
            .unwrap();
    assert_eq!((anew.created, anew.id.as_str()), (true, "d5"));
}

#[tokio::test]
async fn a_debounce_key_replaces_the_input_and_moves_the_start_until_claimed() {
    let db = db().await;
    let window = Duration::from_secs(10);
    let first =
        db.s.start_execution(StartExecutionParams {
            deadline: Some(Duration::from_secs(60)),
            ..keyed("b1", json!(1), "sync", true)
        })
        .await
        .unwrap();
    assert_eq!((first.created, first.id.as_str()), (true, "b1"));
    close_to(db.next().await, window);

    db.advance(Duration::from_secs(6)).await;
    let again =
        db.s.start_execution(keyed("b2", json!(2), "sync", true))
            .await
            .unwrap();
    assert_eq!(
        again,
        StartOutcome {
            created: false,
            status: ExecutionStatus::Scheduled,
            id: "b1".to_owned(),
        }
    );
    assert_eq!(db.input("b1").await, Some(json!(2)));
    assert_eq!(db.input("b2").await, None);
    close_to(db.next().await, window);

    db.advance(Duration::from_secs(6)).await;
    assert!(db.claim(10).await.is_empty(), "moved past the first window");
    db.advance(Duration::from_secs(4)).await;
    let claimed = db.claim(10).await;
    assert_eq!(ids(&claimed), ["b1"]);
    assert_eq!(claimed[0].input, json!(2));
    // The deadline moved with the start: 60 s from it.
    let left = claimed[0].deadline_in.unwrap();
    assert!(
        left > Duration::from_secs(58) && left <= Duration::from_secs(60),
        "{left:?}"
    );

    // Claimed: the next start with the key creates a new execution.
    let next =
        db.s.start_execution(keyed("b3", json!(3), "sync", true))
            .await
            .unwrap();
    assert_eq!((next.created, next.id.as_str()), (true, "b3"));
    assert_eq!(db.input("b1").await, Some(json!(2)));
}

#[tokio::test]
async fn conflicts_and_bad_input_write_nothing() {
    let db = db().await;
    db.s.start_execution(StartExecutionParams {
        priority: 2,
        limit_key: Some("acme".to_owned()),
        ..keyed("k1", json!({ "id": "k1" }), "once", false)
    })
    .await
    .unwrap();
    let before = db.rows();

    let conflict = |err: Error, what: &str| {
        assert!(
            matches!(&err, Error::Conflict { detail, .. } if detail.contains(what)),
            "{what}: {err:?}"
        );
    };
    let err =
        db.s.start_execution(with_priority("k1", 3))
            .await
            .unwrap_err();
    conflict(err, "with priority 2, not 3");
    let err =
        db.s.start_execution(StartExecutionParams {
            priority: 2,
            ..start("k1")
        })
        .await
        .unwrap_err();
    conflict(err, "with limit key \"acme\", not none");
    let err =
        db.s.start_execution(keyed("k2", json!(2), "once", true))
            .await
            .unwrap_err();
    conflict(err, "is a dedup key, not a debounce key");
    db.s.start_execution(keyed("k3", json!(3), "twice", true))
        .await
        .unwrap();
    let before = {
        let after_k3 = db.rows();
        assert_eq!(after_k3[..3], [before[0] + 1, before[1] + 1, before[2] + 1]);
        after_k3
    };
    let err =
        db.s.start_execution(keyed("k4", json!(4), "twice", false))
            .await
            .unwrap_err();
    conflict(err, "is a debounce key, not a dedup key");

    let invalid = |err: Error, field: &str| {
        assert!(
            matches!(&err, Error::InvalidInput { field: f, .. } if f == field),
            "{field}: {err:?}"
        );
    };
    let err =
        db.s.start_execution(StartExecutionParams {
            start: Some(WakeAt::After(Duration::from_secs(5))),
            ..keyed("k5", json!(5), "new", true)
        })
        .await
        .unwrap_err();
    invalid(err, "start");
    let err =
        db.s.start_execution(keyed("k6", json!(6), "", false))
            .await
            .unwrap_err();
    invalid(err, "start key");
    let mut zero = keyed("k7", json!(7), "new", false);
    zero.start_key.as_mut().unwrap().window = Duration::ZERO;
    let err = db.s.start_execution(zero).await.unwrap_err();
    invalid(err, "start key window");
    let err =
        db.s.start_execution(with_limit_key("k8", ""))
            .await
            .unwrap_err();
    invalid(err, "limit key");
    // A key start whose id is taken with another input: refused before the key is written.
    let err =
        db.s.start_execution(keyed("k1", json!("other"), "fresh", false))
            .await
            .unwrap_err();
    conflict(err, "different input");

    let err =
        db.s.set_queue_limits(QUEUE, Some(QueueLimits::new().with_max_running(0)))
            .await
            .unwrap_err();
    invalid(err, "max running");
    let err =
        db.s.set_queue_limits(
            QUEUE,
            Some(QueueLimits::new().with_rate(Rate::new(1, Duration::ZERO))),
        )
        .await
        .unwrap_err();
    invalid(err, "rate interval");
    let err =
        db.s.set_queue_limits("", Some(QueueLimits::new().with_max_running(1)))
            .await
            .unwrap_err();
    invalid(err, "queue");
    assert_eq!(db.rows(), before);
}

#[tokio::test]
async fn queue_limits_are_set_listed_replaced_and_cleared() {
    let db = db().await;
    assert!(db.s.list_queue_limits().await.unwrap().is_empty());
    let limits = QueueLimits::new()
        .with_max_running(8)
        .with_rate(Rate::new(100, Duration::from_secs(60)))
        .with_key_max_running(1)
        .with_key_rate(Rate::new(5, Duration::from_millis(1500)));
    db.limit(limits).await;
    db.limit(QueueLimits::new().with_max_running(3)).await;
    assert!(db.s.set_queue_limits("other", Some(limits)).await.unwrap());
    let rows = db.s.list_queue_limits().await.unwrap();
    let listed: Vec<_> = rows.iter().map(|r| (r.queue.as_str(), r.limits)).collect();
    assert_eq!(
        listed,
        [
            ("other", limits),
            (QUEUE, QueueLimits::new().with_max_running(3))
        ]
    );

    db.start_all(vec![start("a")]).await;
    db.claim(1).await;
    assert_eq!(db.count("zart_limit_runs"), 1);
    assert!(
        !db.s
            .set_queue_limits(QUEUE, Some(QueueLimits::new()))
            .await
            .unwrap(),
        "empty limits remove them"
    );
    assert_eq!(db.count("zart_limit_runs"), 0, "and the queue's runs");
    assert!(!db.s.set_queue_limits("other", None).await.unwrap());
    assert!(db.s.list_queue_limits().await.unwrap().is_empty());
}
