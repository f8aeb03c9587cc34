//! Group commit: many executions' step results and outcomes share a transaction, and one
//! item's stale lease fails only that item.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::Duration;

use futures_util::future::join_all;
use zart::scheduler::{
    ClaimTasksParams, ClaimedTask, CommitStepParams, CompleteExecutionParams, Lease, Outcome,
    ReleaseTasksParams, StepStatus,
};
use zart::{Error, Scheduler, TaskRegistry};
use zart_tests::{column, count, init_tracing, tasks, Harness};

async fn echo_harness() -> Harness {
    let mut registry = TaskRegistry::new();
    registry.register("echo", tasks::Echo).unwrap();
    Harness::with_registry(registry).await
}

fn step(lease: &Lease, value: i64) -> CommitStepParams {
    CommitStepParams {
        lease: lease.clone(),
        name: "echo".into(),
        seq: 0,
        status: StepStatus::Completed,
        output: Some(serde_json::json!(value)),
        error: None,
        attempts: 1,
    }
}

/// Claims up to `limit` echo tasks of `queue` as worker "w", with a 30 s lease.
async fn claim(h: &Harness, queue: &str, limit: u32) -> Vec<ClaimedTask> {
    h.scheduler
        .claim_tasks(ClaimTasksParams {
            worker_id: "w".into(),
            queue: queue.into(),
            task_names: vec!["echo".into()],
            limit,
            lease: Duration::from_secs(30),
            ..Default::default()
        })
        .await
        .unwrap()
}

/// The (buckets, execution ids, fences) arrays of `leases`, as the batch functions take them.
fn lease_arrays(leases: &[Lease]) -> (Vec<i16>, Vec<String>, Vec<i64>) {
    (
        leases
            .iter()
            .map(|l| i16::try_from(l.backend_key).unwrap())
            .collect(),
        leases.iter().map(|l| l.execution_id.clone()).collect(),
        leases.iter().map(|l| l.fence).collect(),
    )
}

/// Runs `sql` (an int4 first column; params: the arrays of `leases`) on a connection of its
/// own and returns once that connection waits for a lock, with the task that finishes it.
async fn run_until_blocked(
    h: &Harness,
    sql: &'static str,
    leases: &[Lease],
    what: &str,
) -> tokio::task::JoinHandle<Result<i32, tokio_postgres::Error>> {
    let watcher = h.db.client().await;
    let other = h.db.client().await;
    let pid: i32 = other
        .query_one("select pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let (buckets, ids, fences) = lease_arrays(leases);
    let task = tokio::spawn(async move {
        other
            .query_one(sql, &[&buckets, &ids, &fences])
            .await
            .map(|row| row.get::<_, i32>(0))
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !watcher
        .query_one("select cardinality(pg_blocking_pids($1)) > 0", &[&pid])
        .await
        .unwrap()
        .get::<_, bool>(0)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} never waited for a lock"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    task
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commits_share_batches_and_a_stale_lease_fails_only_its_own_item() {
    init_tracing();
    let h = echo_harness().await;
    for i in 0..40 {
        h.durable
            .start(&format!("g-{i}"), "echo", serde_json::json!(i))
            .await
            .unwrap();
    }
    let claimed = claim(&h, "default", 40).await;
    assert_eq!(claimed.len(), 40);
    // Give one lease back: its run may write nothing more.
    let stale = claimed[7].lease.clone();
    h.scheduler
        .release_tasks(ReleaseTasksParams {
            worker_id: "w".into(),
            queue: "default".into(),
            leases: vec![stale.clone()],
        })
        .await
        .unwrap();

    let results = join_all(
        claimed
            .iter()
            .enumerate()
            .map(|(i, t)| h.scheduler.commit_step(step(&t.lease, i as i64))),
    )
    .await;
    for (i, result) in results.iter().enumerate() {
        if i == 7 {
            assert!(
                matches!(result, Err(Error::LeaseLost { id }) if *id == stale.execution_id),
                "{result:?}"
            );
        } else {
            assert!(result.is_ok(), "item {i}: {result:?}");
        }
    }
    let outcomes = join_all(claimed.iter().map(|t| {
        h.scheduler.complete_execution(CompleteExecutionParams {
            lease: t.lease.clone(),
            outcome: Outcome::Completed(serde_json::json!("done")),
        })
    }))
    .await;
    assert_eq!(outcomes.iter().filter(|r| r.is_ok()).count(), 39);
    assert!(
        matches!(outcomes[7], Err(Error::LeaseLost { .. })),
        "{:?}",
        outcomes[7]
    );

    let client = h.db.client().await;
    assert_eq!(count(&client, "select count(*) from zart_steps").await, 39);
    assert_eq!(
        count(
            &client,
            "select count(*) from zart_executions where status = 'completed'"
        )
        .await,
        39
    );
    let stale_status: String = client
        .query_one(
            "select status from zart_executions where id = $1",
            &[&stale.execution_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        stale_status, "scheduled",
        "the released execution is untouched"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_batch_functions_report_each_item_on_its_own() {
    init_tracing();
    let h = echo_harness().await;
    let client = h.db.client().await;
    client
        .batch_execute(
            "select zart_start('a', 'echo'); select zart_start('b', 'echo'); select zart_start('c', 'echo');
             select zart_claim_tasks('w', 'default', array['echo'], 3, 30000);
             select zart_cancel('c');",
        )
        .await
        .unwrap();
    let fence = |id: &'static str| {
        let client = &client;
        async move {
            client
                .query_one(
                    "select fence from zart_executions e left join zart_tasks t
                         on t.bucket = e.bucket and t.execution_id = e.id where e.id = $1",
                    &[&id],
                )
                .await
                .unwrap()
                .get::<_, Option<i64>>(0)
                // c's task row went with the cancel: any fence is stale for it.
                .unwrap_or(0)
        }
    };
    let (a, b, c) = (fence("a").await, fence("b").await, fence("c").await);
    let stale_b = b.wrapping_add(1);
    // a: good; b: wrong fence; c: cancelled; a again: already recorded.
    let codes: Vec<Option<String>> = client
        .query_one(
            "select zart_commit_steps(
                 array[zart_bucket('a'), zart_bucket('b'), zart_bucket('c'), zart_bucket('a')],
                 array['a', 'b', 'c', 'a'], array[$1, $2, $3, $1]::bigint[],
                 array['s', 's', 's', 's'], array[0, 0, 0, 0], array['completed', 'completed', 'completed', 'completed'],
                 array['1', '2', '3', '4']::jsonb[], array[null, null, null, null]::jsonb[], array[1, 1, 1, 1])",
            &[&a, &stale_b, &c],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        codes,
        vec![
            None,
            Some("ZA002".into()),
            Some("ZA001".into()),
            Some("ZA006".into())
        ]
    );
    let codes: Vec<Option<String>> = column(
        &client,
        "select code, parent_queue from zart_complete_executions(
             array[zart_bucket('a'), zart_bucket('b')], array['a', 'b'], array[$1, $2]::bigint[],
             array['completed', 'completed'], array['\"ok\"', '\"no\"']::jsonb[],
             array[null, null]::jsonb[])",
        &[&a, &stale_b],
    )
    .await;
    assert_eq!(codes, vec![None, Some("ZA002".into())]);
    assert_eq!(
        count(
            &client,
            "select count(*) from zart_executions where status = 'completed'"
        )
        .await,
        1
    );
    h.stop().await;
}

/// A heartbeat that updates a task row while a batch waits for that row's lock must not make
/// the batch miss it (a delete addressed by the row's old ctid once did: the outcome came back
/// "lease lost" and the execution sat until its lease ran out).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_that_wait_behind_a_heartbeat_still_record_their_items() {
    init_tracing();
    let h = echo_harness().await;
    let mut holder = h.db.client().await;
    let client = h.db.client().await;
    client
        .batch_execute(
            "select zart_start('hb', 'echo');
             select zart_claim_tasks('w', 'default', array['echo'], 1, 30000);",
        )
        .await
        .unwrap();
    let fence: i64 = client
        .query_one(
            "select fence from zart_tasks where execution_id = 'hb'",
            &[],
        )
        .await
        .unwrap()
        .get(0);

    for (what, batch) in [
        (
            "the step",
            "select (zart_commit_steps(array[zart_bucket('hb')], array['hb'], array[$1::bigint],
                 array['s'], array[0], array['completed'], array['1']::jsonb[],
                 array[null]::jsonb[], array[1]))[1]",
        ),
        (
            "the outcome",
            "select code from zart_complete_executions(array[zart_bucket('hb')], array['hb'],
                 array[$1::bigint], array['completed'], array['\"ok\"']::jsonb[],
                 array[null]::jsonb[])",
        ),
    ] {
        // The heartbeat's update holds the row; the batch queues behind it.
        let tx = holder.transaction().await.unwrap();
        tx.execute(
            "update zart_tasks set run_at = run_at + interval '1 second' where execution_id = 'hb'",
            &[],
        )
        .await
        .unwrap();
        let waiting = {
            let client = h.db.client().await;
            tokio::spawn(async move {
                let code: Option<String> = client.query_one(batch, &[&fence]).await.unwrap().get(0);
                code
            })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !waiting.is_finished(),
            "{what} should wait for the row lock"
        );
        tx.commit().await.unwrap();
        let code = waiting.await.unwrap();
        assert_eq!(code, None, "{what} is recorded after the heartbeat commits");
    }
    assert_eq!(
        count(
            &client,
            "select count(*) from zart_executions where id = 'hb' and status = 'completed'"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &client,
            "select count(*) from zart_tasks where execution_id = 'hb'"
        )
        .await,
        0
    );
    h.stop().await;
}

/// A heartbeat (or a release) renews its leases in whatever order the worker lists them, while
/// a batch locks its rows in key order. If the heartbeat locked in list order too, the two
/// would deadlock on a pair of shared rows, and PostgreSQL would abort one of them a second
/// later: a lost batch or a skipped renewal. Both lock in key order, so one waits for the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_and_releases_lock_in_key_order_so_they_never_deadlock_with_a_batch() {
    init_tracing();
    let h = echo_harness().await;
    let mut holder = h.db.client().await;
    for round in ["heartbeat", "release"] {
        let ids = [format!("{round}-a"), format!("{round}-b")];
        for id in &ids {
            h.durable
                .start(id, "echo", serde_json::json!(null))
                .await
                .unwrap();
        }
        let claimed = claim(&h, "default", 2).await;
        assert_eq!(claimed.len(), 2);
        // (bucket, execution id): the order the batch functions lock in.
        let mut leases: Vec<_> = claimed.iter().map(|c| c.lease.clone()).collect();
        leases.sort_by(|a, b| {
            (a.backend_key, &a.execution_id).cmp(&(b.backend_key, &b.execution_id))
        });
        let commit_step = |lease: &Lease| {
            format!(
                "select (zart_commit_steps(array[{}::smallint], array['{}'], array[{}::bigint],
                     array['s'], array[0], array['completed'], array['1']::jsonb[],
                     array[null]::jsonb[], array[1]))[1]",
                lease.backend_key, lease.execution_id, lease.fence
            )
        };

        // A batch holds the first row in key order.
        let tx = holder.transaction().await.unwrap();
        let code: Option<String> = tx
            .query_one(&commit_step(&leases[0]), &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(code, None);
        // The heartbeat (or release) lists the rows the other way round, and waits.
        let reversed: Vec<Lease> = leases.iter().rev().cloned().collect();
        let sql = if round == "heartbeat" {
            "select count(*)::int from zart_heartbeat('w', 30000, $1, $2, $3)"
        } else {
            "select zart_release_tasks('w', $1, $2, $3)"
        };
        let renewal = run_until_blocked(&h, sql, &reversed, round).await;
        // The batch goes on to the second row. Had the waiting heartbeat taken it first (list
        // order), this would be a deadlock.
        let code: Option<String> = tx
            .query_one(&commit_step(&leases[1]), &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(code, None);
        tx.commit().await.unwrap();
        assert_eq!(renewal.await.unwrap().unwrap(), 2, "{round}: both leases");
        // Finish them, so the next round claims its own two.
        if round == "heartbeat" {
            for lease in &leases {
                h.scheduler
                    .complete_execution(CompleteExecutionParams {
                        lease: lease.clone(),
                        outcome: Outcome::Completed(serde_json::json!(null)),
                    })
                    .await
                    .unwrap();
            }
        }
    }
    h.stop().await;
}

/// An outcome batch takes the wait lock of each finished child's parent. Two batches finishing
/// children of the same two parents, listed in opposite orders, would deadlock if each took
/// those locks in list order; they take them in one order, so one waits for the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcome_batches_take_parent_wait_locks_in_one_order_so_they_never_deadlock() {
    init_tracing();
    let h = echo_harness().await;
    let mut holder = h.db.client().await;
    let client = h.db.client().await;
    // Parents p1 and p2 (never run here), each with children a and b.
    client
        .batch_execute(
            "select zart_start('p1', 'echo'); select zart_start('p2', 'echo');
             select zart_start_execution(zart_bucket(c.id), c.id, 'echo', 'null', 'kids', c.parent, null)
               from (values ('p1-a', 'p1'), ('p1-b', 'p1'), ('p2-a', 'p2'), ('p2-b', 'p2')) c(id, parent);",
        )
        .await
        .unwrap();
    let claimed = claim(&h, "kids", 4).await;
    assert_eq!(claimed.len(), 4);
    let lease = |id: &str| {
        claimed
            .iter()
            .find(|c| c.lease.execution_id == id)
            .unwrap()
            .lease
            .clone()
    };
    let leases = |ids: &[&str]| -> Vec<Lease> { ids.iter().map(|id| lease(id)).collect() };
    const BATCH: &str = "select count(*) filter (where code is null)::int
        from zart_complete_executions($1::smallint[], $2::text[], $3::bigint[],
             array_fill('completed'::text, array[cardinality($2)]),
             array_fill('null'::jsonb, array[cardinality($2)]),
             array_fill(null::jsonb, array[cardinality($2)]))";

    // One batch holds p1's wait lock.
    let tx = holder.transaction().await.unwrap();
    let (b, i, f) = lease_arrays(&leases(&["p1-a"]));
    let done: i32 = tx.query_one(BATCH, &[&b, &i, &f]).await.unwrap().get(0);
    assert_eq!(done, 1);
    // Another lists p2's child before p1's, and waits.
    let second = run_until_blocked(&h, BATCH, &leases(&["p2-b", "p1-b"]), "the second batch").await;
    // The first batch goes on to p2's other child. Had the waiting batch taken p2's lock first
    // (list order), this would be a deadlock.
    let (b, i, f) = lease_arrays(&leases(&["p2-a"]));
    let done: i32 = tx.query_one(BATCH, &[&b, &i, &f]).await.unwrap().get(0);
    assert_eq!(done, 1);
    tx.commit().await.unwrap();
    assert_eq!(second.await.unwrap().unwrap(), 2);
    assert_eq!(
        count(
            &client,
            "select count(*) from zart_executions where parent_id is not null and status = 'completed'"
        )
        .await,
        4
    );
    h.stop().await;
}
