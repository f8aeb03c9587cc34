//! Leases, timers and due times follow the database clock only: a worker process whose own
//! wall clock is 10 minutes ahead (run under libfaketime) neither fires a sleep early nor takes
//! over a lease that is still held.
//!
//! Needs `faketime` (Debian/Ubuntu: `apt-get install -y faketime`); without it these tests fail
//! saying so.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::Duration;

use zart::ExecutionStatus;
use zart_tests::{
    init_tracing, kill_process, spawn_worker_process, spawn_worker_process_with, tasks, wait_for,
    Harness,
};

const WORKER_BIN: &str = env!("CARGO_BIN_EXE_zart-test-worker");
const WAIT: Option<Duration> = Some(Duration::from_secs(30));
/// How far ahead the skewed worker's wall clock runs.
const SKEW: &str = "+10m";
const SKEW_SECS: i64 = 600;

/// The environment a worker runs with to see its wall clock [`SKEW`] ahead.
fn skewed_env() -> Vec<(String, String)> {
    zart_tests::faults::faketime_env(SKEW, SKEW_SECS).unwrap_or_else(|e| panic!("{e}"))
}

async fn spawn_skewed_worker(h: &Harness) -> (tokio::process::Child, i32) {
    let env = skewed_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let child = spawn_worker_process_with(WORKER_BIN, &h.db, &env).await;
    let pid = i32::try_from(child.id().unwrap()).unwrap();
    // The worker itself runs with libfaketime loaded.
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    assert!(
        maps.contains("libfaketime"),
        "libfaketime is not loaded in the skewed worker {pid}"
    );
    (child, pid)
}

/// The task row of `id`: (locked_by, fence, claims, run_at > database now).
async fn task_row(client: &tokio_postgres::Client, id: &str) -> (Option<String>, i64, i32, bool) {
    let row = client
        .query_one(
            "select locked_by, fence, attempts, run_at > zart_current_time()
               from zart_tasks where execution_id = $1",
            &[&id],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1), row.get(2), row.get(3))
}

/// Runs a one-step `counted` execution and returns the pid that ran its step: proof that a
/// worker claimed since, with every due task in reach.
async fn probe(h: &Harness, id: &str) -> i32 {
    h.durable
        .start(id, "counted", serde_json::json!({"steps": 1, "step_ms": 0}))
        .await
        .unwrap();
    let done = h.durable.wait(id, WAIT).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Completed, "{id}");
    let pids = tasks::side_effect_pids(&h.db.client().await, id, "step-0").await;
    assert_eq!(pids.len(), 1, "{id}");
    pids[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_with_a_fast_clock_does_not_fire_a_sleep_early() {
    init_tracing();
    let h = Harness::new().await;
    let client = h.db.client().await;

    // A normal worker reaches a two-minute sleep, then goes away.
    let normal = spawn_worker_process(WORKER_BIN, &h.db).await;
    let normal_pid = i32::try_from(normal.id().unwrap()).unwrap();
    h.durable
        .start("nap", "sleeper", serde_json::json!(120))
        .await
        .unwrap();
    wait_for("the sleep to start", Duration::from_secs(30), || async {
        (h.durable.status("nap").await.unwrap().status == ExecutionStatus::Sleeping).then_some(())
    })
    .await;
    let wakes_in: f64 = client
        .query_one(
            "select extract(epoch from wake_at - zart_current_time())::float8
               from zart_steps where execution_id = 'nap' and name = 'nap'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(wakes_in > 100.0 && wakes_in <= 120.0, "{wakes_in}");
    kill_process(normal).await;
    let before = task_row(&client, "nap").await;
    assert_eq!(before.0, None, "a sleeping execution holds no lease");
    assert!(before.3, "due in the future");

    // A worker whose wall clock is 10 minutes ahead: past the wake time by its own clock.
    let (skewed, skewed_pid) = spawn_skewed_worker(&h).await;
    for i in 0..3 {
        // Woken to look at the timers, then made to claim (it runs the probe): its claims do
        // not take the sleeper.
        client
            .batch_execute("select pg_notify('zart_timer', 'default')")
            .await
            .unwrap();
        assert_eq!(probe(&h, &format!("probe-{i}")).await, skewed_pid);
        assert_eq!(task_row(&client, "nap").await, before, "after probe {i}");
        assert_eq!(
            h.durable.status("nap").await.unwrap().status,
            ExecutionStatus::Sleeping
        );
        assert!(tasks::side_effect_pids(&client, "nap", "after")
            .await
            .is_empty());
    }

    // Once the database clock passes the wake time, the skewed worker runs the rest.
    h.db.advance_clock(Duration::from_secs(121)).await;
    let done = h.durable.wait("nap", WAIT).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Completed);
    assert_eq!(done.output, Some(serde_json::json!(120)));
    assert_eq!(
        tasks::side_effect_pids(&client, "nap", "before").await,
        vec![normal_pid]
    );
    assert_eq!(
        tasks::side_effect_pids(&client, "nap", "after").await,
        vec![skewed_pid]
    );
    kill_process(skewed).await;
    zart_tests::faults::remove_faketime_leftovers(skewed_pid as u32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_with_a_fast_clock_does_not_take_over_a_held_lease_early() {
    init_tracing();
    let h = Harness::new().await;
    let client = h.db.client().await;

    // A normal worker with one slot and a 20 s lease runs a long step (`after` holds for
    // 10 minutes on its first run), heartbeating.
    let normal = spawn_worker_process_with(
        WORKER_BIN,
        &h.db,
        &[
            ("ZART_TEST_LEASE_MS", "20000"),
            ("ZART_TEST_CONCURRENCY", "1"),
        ],
    )
    .await;
    let normal_pid = i32::try_from(normal.id().unwrap()).unwrap();
    h.durable
        .start(
            "held",
            "approver",
            serde_json::json!({"hold_after_ms": 600_000}),
        )
        .await
        .unwrap();
    wait_for("the approval wait", Duration::from_secs(30), || async {
        (h.durable.status("held").await.unwrap().status == ExecutionStatus::Waiting).then_some(())
    })
    .await;
    h.durable
        .send_event("held", "approval", &serde_json::json!({"ok": true}))
        .await
        .unwrap();
    wait_for(
        "the long step to start",
        Duration::from_secs(30),
        || async {
            (tasks::side_effect_pids(&client, "held", "after").await == vec![normal_pid])
                .then_some(())
        },
    )
    .await;
    let (holder, fence, claims, leased) = task_row(&client, "held").await;
    let holder = holder.expect("the normal worker holds the lease");
    assert!(
        leased,
        "the lease runs into the future on the database clock"
    );

    // The skewed worker, 10 minutes ahead, would see the lease long expired by its own clock.
    let (skewed, skewed_pid) = spawn_skewed_worker(&h).await;
    for i in 0..3 {
        // Only the skewed worker has a free slot, so it runs the probe.
        assert_eq!(probe(&h, &format!("probe-{i}")).await, skewed_pid);
        assert_eq!(
            task_row(&client, "held").await,
            (Some(holder.clone()), fence, claims, true),
            "after probe {i}: the lease is untouched"
        );
        assert_eq!(
            tasks::side_effect_pids(&client, "held", "after").await,
            vec![normal_pid]
        );
    }

    // The holder dies mid-step. Its lease still runs on the database clock: not taken yet.
    kill_process(normal).await;
    assert_eq!(probe(&h, "probe-after-kill").await, skewed_pid);
    assert_eq!(
        task_row(&client, "held").await,
        (Some(holder.clone()), fence, claims, true)
    );

    // Past the lease on the database clock, the skewed worker takes over and finishes.
    h.db.advance_clock(Duration::from_secs(21)).await;
    let done = h.durable.wait("held", WAIT).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Completed);
    assert_eq!(done.output, Some(serde_json::json!({"ok": true})));
    assert_eq!(
        done.attempts, 3,
        "claimed for the wait, the step, and the takeover"
    );
    assert_eq!(
        tasks::side_effect_pids(&client, "held", "after").await,
        vec![normal_pid, skewed_pid]
    );
    kill_process(skewed).await;
    zart_tests::faults::remove_faketime_leftovers(skewed_pid as u32);
}
