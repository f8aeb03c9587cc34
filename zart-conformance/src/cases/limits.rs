//! Priorities and limits per queue: the order claims take due tasks in, and what a claim may
//! take while a queue's limits hold (docs/scheduling.md).

use std::time::Duration;

use serde_json::json;
use zart::queues::{QueueLimits, Rate};
use zart::scheduler::{ClaimTasksParams, ClaimedTask, NextRunAtParams};
use zart::{Error, Scheduler, StartOptions, WorkerConfig};

use crate::env::FAKE_LEASE;
use crate::{Backend, Env};

/// Starts `id` of `echo` with `options`, then moves the clock on a little, so the next start
/// falls due strictly later whatever the backend's clock resolution.
async fn start(env: &Env, id: &str, options: StartOptions) {
    env.durable
        .start_with(id, "echo", json!(id), options)
        .await
        .unwrap();
    env.advance_clock(Duration::from_millis(5)).await;
}

/// Claims up to `limit` `echo` tasks as `worker`, oldest first when asked; returns their ids.
async fn claim(env: &Env, worker: &str, limit: u32, oldest_first: bool) -> Vec<ClaimedTask> {
    env.scheduler
        .claim_tasks(ClaimTasksParams {
            worker_id: worker.to_owned(),
            queue: "default".to_owned(),
            task_names: vec!["echo".to_owned()],
            limit,
            lease: FAKE_LEASE,
            oldest_first,
        })
        .await
        .unwrap()
}

fn ids(tasks: &[ClaimedTask]) -> Vec<&str> {
    tasks
        .iter()
        .map(|t| t.lease.execution_id.as_str())
        .collect()
}

async fn next_run_at(env: &Env) -> Option<Duration> {
    env.scheduler
        .next_run_at(NextRunAtParams {
            queue: "default".into(),
            task_names: vec!["echo".into()],
        })
        .await
        .unwrap()
}

/// A worker's claims do not starve a low priority: with one slot and a queue saturated with
/// higher-priority work started after it, the low-priority execution runs within the first ten
/// claims (every tenth claim of a worker takes the longest due), not after the whole backlog.
pub async fn a_low_priority_is_not_starved_by_a_saturated_queue(backend: &impl Backend) {
    const HIGH: usize = 40;
    let env = Env::new(backend).await;
    start(&env, "starved?", StartOptions::new().with_priority(-5)).await;
    for i in 0..HIGH {
        env.durable
            .start_with(
                &format!("busy-{i}"),
                "echo",
                json!(i),
                StartOptions::new().with_priority(5),
            )
            .await
            .unwrap();
    }
    env.spawn_worker_with(WorkerConfig::default().with_concurrency(1));
    let low = env.finished("starved?").await;
    let mut before = 0;
    for i in 0..HIGH {
        let high = env.finished(&format!("busy-{i}")).await;
        if high.finished_at < low.finished_at {
            before += 1;
        }
    }
    assert!(
        before < 10,
        "{before} of {HIGH} higher-priority executions ran before the low one; the tenth \
         claim at the latest should have taken it"
    );
    env.stop().await;
}

/// Claims take higher priorities first and, within one priority, the earliest due first; an
/// oldest-first claim takes the longest due whatever its priority.
pub async fn higher_priorities_are_claimed_first_fifo_within_one(backend: &impl Backend) {
    let env = Env::new(backend).await;
    let at = |p: i16| StartOptions::new().with_priority(p);
    start(&env, "low-1", at(-1)).await;
    start(&env, "mid-1", at(0)).await;
    start(&env, "high-1", at(5)).await;
    start(&env, "mid-2", StartOptions::new()).await;
    start(&env, "high-2", at(5)).await;
    start(&env, "low-2", at(-1)).await;

    let mut order = Vec::new();
    for _ in 0..3 {
        order.extend(
            ids(&claim(&env, "w", 1, false).await)
                .iter()
                .map(|s| s.to_string()),
        );
    }
    assert_eq!(order, ["high-1", "high-2", "mid-1"], "priority, then FIFO");
    assert_eq!(env.durable.status("high-1").await.unwrap().priority, 5);
    assert_eq!(env.durable.status("low-1").await.unwrap().priority, -1);
    assert_eq!(
        ids(&claim(&env, "w", 1, true).await),
        ["low-1"],
        "oldest first, whatever the priority"
    );
    assert_eq!(ids(&claim(&env, "w", 5, false).await), ["mid-2", "low-2"]);

    let again = env
        .durable
        .start_with("mid-1", "echo", json!("mid-1"), at(3))
        .await;
    assert!(
        matches!(again, Err(Error::Conflict { .. })),
        "the same id at another priority is a conflict: {again:?}"
    );
}

/// With at most 2 running, a claim takes 2 and the next takes none; the idle worker is told to
/// wait rather than look again at once; a run that ends, or a lease that runs out, frees a
/// slot.
pub async fn a_concurrency_limit_holds_claims_back_until_a_run_ends(backend: &impl Backend) {
    let env = Env::new(backend).await;
    assert!(env
        .durable
        .set_queue_limits("default", QueueLimits::new().with_max_running(2))
        .await
        .unwrap());
    for id in ["c1", "c2", "c3", "c4"] {
        start(&env, id, StartOptions::new()).await;
    }
    let first = claim(&env, "w1", 10, false).await;
    assert_eq!(ids(&first), ["c1", "c2"], "two at once");
    assert!(
        claim(&env, "w2", 10, false).await.is_empty(),
        "the limit holds"
    );
    assert!(
        claim(&env, "w2", 10, true).await.is_empty(),
        "oldest-first claims too"
    );
    let wait = next_run_at(&env).await.expect("a time to look again");
    assert!(
        wait > Duration::ZERO && wait <= FAKE_LEASE,
        "not due now, at the latest when a lease runs out: {wait:?}"
    );

    assert_eq!(env.release("w1", &first[0]).await, 1);
    let after_release = claim(&env, "w2", 10, false).await;
    assert_eq!(after_release.len(), 1, "one slot freed");
    assert_eq!(
        env.durable.queue_limits().await.unwrap()[0].running,
        2,
        "two running"
    );

    env.advance_clock(FAKE_LEASE + Duration::from_secs(1)).await;
    let recovered = claim(&env, "w3", 10, false).await;
    assert_eq!(recovered.len(), 2, "expired leases free their slots");
    assert!(claim(&env, "w3", 10, false).await.is_empty());
}

/// At most 2 runs start per minute: the third waits for the window, and the idle worker is
/// told when it opens.
pub async fn a_rate_limit_lets_runs_start_per_interval(backend: &impl Backend) {
    let env = Env::new(backend).await;
    let minute = Duration::from_secs(60);
    env.durable
        .set_queue_limits(
            "default",
            QueueLimits::new().with_rate(Rate::new(2, minute)),
        )
        .await
        .unwrap();
    for id in ["r1", "r2", "r3", "r4", "r5"] {
        start(&env, id, StartOptions::new()).await;
    }
    let first = claim(&env, "w", 10, false).await;
    assert_eq!(ids(&first), ["r1", "r2"]);
    for task in &first {
        env.release("w", task).await;
    }
    assert!(
        claim(&env, "w", 10, false).await.is_empty(),
        "runs that ended still count within the window"
    );
    let wait = next_run_at(&env).await.expect("when the window opens");
    assert!(
        wait > minute - Duration::from_secs(5) && wait <= minute,
        "about a minute: {wait:?}"
    );
    env.advance_clock(minute).await;
    assert_eq!(claim(&env, "w", 10, false).await.len(), 2);
    assert!(claim(&env, "w", 10, false).await.is_empty());
}

/// With one run per key at once, a claim passes over the busy key's other task and takes the
/// next key's; the passed-over task runs once its key's run ends. A key's rate holds the same
/// way.
pub async fn per_key_limits_pass_over_a_busy_key(backend: &impl Backend) {
    let env = Env::new(backend).await;
    env.durable
        .set_queue_limits(
            "default",
            QueueLimits::new()
                .with_key_max_running(1)
                .with_key_rate(Rate::new(2, Duration::from_secs(3600))),
        )
        .await
        .unwrap();
    let key = |k: &str| StartOptions::new().with_limit_key(k);
    start(&env, "a1", key("acme")).await;
    start(&env, "a2", key("acme")).await;
    start(&env, "a3", key("acme")).await;
    start(&env, "b1", key("bolt")).await;
    start(&env, "n1", StartOptions::new()).await;

    let first = claim(&env, "w", 10, false).await;
    assert_eq!(
        ids(&first),
        ["a1", "b1", "n1"],
        "a2 waits for a1; no key: no key limit"
    );
    assert!(claim(&env, "w", 10, false).await.is_empty());
    env.release("w", &first[0]).await;
    let second = claim(&env, "w", 10, false).await;
    assert_eq!(
        ids(&second),
        ["a2"],
        "the earliest due of the key goes first (a1, released, is due from now)"
    );
    env.release("w", &second[0]).await;
    assert!(
        claim(&env, "w", 10, false).await.is_empty(),
        "acme started twice this hour: its rate holds a1 and a3"
    );
}

/// Limits are set, listed, replaced and removed; bad limits are refused and change nothing.
pub async fn queue_limits_are_set_listed_and_removed(backend: &impl Backend) {
    let env = Env::new(backend).await;
    let limits = QueueLimits::new()
        .with_max_running(3)
        .with_rate(Rate::new(10, Duration::from_secs(1)));
    assert!(env
        .durable
        .set_queue_limits("default", limits)
        .await
        .unwrap());
    assert!(env
        .durable
        .set_queue_limits("other", QueueLimits::new().with_key_max_running(1))
        .await
        .unwrap());
    let rows = env.durable.queue_limits().await.unwrap();
    assert_eq!(
        rows.iter().map(|r| r.queue.as_str()).collect::<Vec<_>>(),
        ["default", "other"]
    );
    assert_eq!(rows[0].limits, limits);
    assert_eq!((rows[0].running, rows[0].started_in_window), (0, 0));

    for bad in [
        QueueLimits::new().with_max_running(0),
        QueueLimits::new().with_rate(Rate::new(1, Duration::ZERO)),
        QueueLimits::new().with_key_rate(Rate::new(0, Duration::from_secs(1))),
    ] {
        let refused = env.durable.set_queue_limits("default", bad).await;
        assert!(
            matches!(refused, Err(Error::InvalidInput { .. })),
            "{bad:?}: {refused:?}"
        );
        let refused = env.scheduler.set_queue_limits("default", Some(bad)).await;
        assert!(
            matches!(refused, Err(Error::InvalidInput { .. })),
            "the backend checks too: {refused:?}"
        );
    }
    assert_eq!(env.durable.queue_limits().await.unwrap()[0].limits, limits);

    assert!(!env.durable.clear_queue_limits("other").await.unwrap());
    assert!(!env
        .durable
        .set_queue_limits("default", QueueLimits::new())
        .await
        .unwrap());
    assert!(env.durable.queue_limits().await.unwrap().is_empty());
}
