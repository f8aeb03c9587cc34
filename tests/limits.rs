//! Queue limits across processes: three worker processes, each with room for eight runs, share
//! a queue whose limits the database enforces. Every run of the handler records its entry and
//! exit on the database clock, so the number running at once is counted from the handlers'
//! own intervals, not from the engine's bookkeeping.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::HashMap;
use std::time::Duration;

use tokio_postgres::Client;
use zart_tests::{count, init_tracing, spawn_worker_process, tasks, wait_for, TestDb};

const WORKER_BIN: &str = env!("CARGO_BIN_EXE_zart-test-worker");
const PROCESSES: usize = 3;

/// Starts `n` executions of `held` (each run holding `ms`), the i-th under limit key
/// `key(i)`.
async fn start_held(
    client: &Client,
    prefix: &str,
    n: usize,
    ms: u64,
    key: impl Fn(usize) -> Option<String>,
) {
    for i in 0..n {
        client
            .execute(
                "select zart_start($1, 'held', $2, p_limit_key => $3)",
                &[
                    &format!("{prefix}-{i}"),
                    &serde_json::json!({ "ms": ms }),
                    &key(i),
                ],
            )
            .await
            .unwrap();
    }
}

/// Every run's interval (entry, exit) in microseconds on the database clock, with its
/// execution id, from the `enter`/`exit` side effects; pairs a run's entry with its exit.
async fn runs(client: &Client, prefix: &str) -> Vec<(String, i64, i64)> {
    let rows = client
        .query(
            "select execution_id, step, (extract(epoch from at) * 1000000)::bigint
               from zart_test_side_effects where execution_id like $1 || '-%'
              order by at",
            &[&prefix],
        )
        .await
        .unwrap();
    let mut open: HashMap<String, i64> = HashMap::new();
    let mut done = Vec::new();
    for row in rows {
        let (id, step, at): (String, String, i64) = (row.get(0), row.get(1), row.get(2));
        if step == "enter" {
            assert!(
                open.insert(id.clone(), at).is_none(),
                "{id} entered twice at once"
            );
        } else {
            let entered = open
                .remove(&id)
                .unwrap_or_else(|| panic!("{id} exited unentered"));
            done.push((id, entered, at));
        }
    }
    assert!(open.is_empty(), "runs that never exited: {open:?}");
    done
}

/// The most intervals open at one instant (an exit at the same instant as an entry closes
/// first).
fn most_at_once<'a>(intervals: impl Iterator<Item = &'a (String, i64, i64)>) -> usize {
    let mut edges: Vec<(i64, i32)> = Vec::new();
    for (_, enter, exit) in intervals {
        edges.push((*enter, 1));
        edges.push((*exit, -1));
    }
    edges.sort();
    let (mut now, mut most) = (0i32, 0i32);
    for (_, step) in edges {
        now += step;
        most = most.max(now);
    }
    usize::try_from(most).unwrap()
}

async fn all_completed(client: &Client, prefix: &str, n: usize) {
    wait_for(
        "every execution to complete",
        Duration::from_secs(60),
        || async {
            (count(
                client,
                &format!(
                    "select count(*) from zart_executions where id like '{prefix}-%' and status = 'completed'"
                ),
            )
            .await
                == i64::try_from(n).unwrap())
            .then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_limit_holds_across_three_worker_processes() {
    init_tracing();
    let db = TestDb::new().await;
    let client = db.client().await;
    client.batch_execute(tasks::SETUP_SQL).await.unwrap();
    // Each process could run 8 at once (24 in all); the queue allows 3, and 2 per key.
    client
        .batch_execute(
            "select zart_set_queue_limits('default', p_max_running => 3, p_key_max_running => 2)",
        )
        .await
        .unwrap();
    let mut workers = Vec::new();
    for _ in 0..PROCESSES {
        workers.push(spawn_worker_process(WORKER_BIN, &db).await);
    }

    start_held(&client, "q", 24, 60, |_| None).await;
    all_completed(&client, "q", 24).await;
    let queue_runs = runs(&client, "q").await;
    assert_eq!(queue_runs.len(), 24, "one run each");
    assert_eq!(
        most_at_once(queue_runs.iter()),
        3,
        "never more than the limit, and the limit was reached"
    );

    // Per key: 4 customers, 6 executions each; at most 2 of a customer at once, 3 in all.
    start_held(&client, "k", 24, 60, |i| {
        Some(format!("customer-{}", i % 4))
    })
    .await;
    all_completed(&client, "k", 24).await;
    let key_runs = runs(&client, "k").await;
    assert_eq!(
        most_at_once(key_runs.iter()),
        3,
        "the queue's limit still holds"
    );
    for customer in 0..4 {
        let theirs: Vec<_> = key_runs
            .iter()
            .filter(|(id, _, _)| {
                id.trim_start_matches("k-").parse::<usize>().unwrap() % 4 == customer
            })
            .cloned()
            .collect();
        assert_eq!(theirs.len(), 6);
        assert!(
            most_at_once(theirs.iter()) <= 2,
            "customer-{customer}: {theirs:?}"
        );
    }
    drop(workers);
}

/// A worker whose only work is held back by a limit does not poll: with one run holding the
/// only slot for three seconds and more work due, the three processes claim a handful of
/// times, not in a loop. Claims are counted by the server (`track_functions`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_held_back_by_a_limit_do_not_poll() {
    init_tracing();
    let db = TestDb::new().await;
    let client = db.client().await;
    client.batch_execute(tasks::SETUP_SQL).await.unwrap();
    client
        .batch_execute(&format!(
            "alter database \"{}\" set track_functions = 'pl';
             select zart_set_queue_limits('default', p_max_running => 1);",
            db.name
        ))
        .await
        .unwrap();
    let mut workers = Vec::new();
    for _ in 0..PROCESSES {
        workers.push(spawn_worker_process(WORKER_BIN, &db).await);
    }
    start_held(&client, "p", 3, 3000, |_| None).await;
    all_completed(&client, "p", 3).await;
    let runs = runs(&client, "p").await;
    assert_eq!(most_at_once(runs.iter()), 1);
    // Let the workers' sessions report their counts (at most once a second while idle).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let claims = count(
        &client,
        "select coalesce(sum(calls), 0)::bigint from pg_stat_user_functions where funcname = 'zart_claim_tasks'",
    )
    .await;
    // About 9 s of work: each run's end wakes the three processes once (plus the start's
    // wake-ups and lease-expiry looks): tens of claims. A loop would make thousands.
    assert!(claims > 0, "claims were counted");
    assert!(claims < 100, "{claims} claims in about 9 s");
    eprintln!("claims while held back: {claims}");
    drop(workers);
}

/// From SQL: a start with a key is checked as a new start would be, even when the key names an
/// execution (nothing stored changes); a retried execution keeps its priority and limit key.
#[tokio::test]
async fn sql_starts_with_keys_check_their_input_and_a_retry_keeps_priority() {
    init_tracing();
    let db = TestDb::new().await;
    let client = db.client().await;
    let keyed = "select zart_start($1, 'held', $2, p_priority => 7, p_limit_key => 'acme', \
                 p_start_key => 'k', p_start_key_ms => 60000)";
    let first: bool = client
        .query_one(keyed, &[&"s-1", &serde_json::json!({"ms": 1})])
        .await
        .unwrap()
        .get(0);
    assert!(first);
    let too_big = serde_json::json!({ "pad": "x".repeat(1_100_000) });
    let err = client
        .query_one(keyed, &[&"s-2", &too_big])
        .await
        .expect_err("an input over the limit is refused, whatever the key names");
    let db_err = err.as_db_error().unwrap();
    assert_eq!(db_err.code().code(), "ZA004", "{db_err:?}");
    assert!(
        db_err.message().starts_with("invalid input:"),
        "{}",
        db_err.message()
    );
    let row = client
        .query_one(
            "select e.input, t.priority, t.limit_key from zart_executions e
               join zart_tasks t on t.execution_id = e.id where e.id = 's-1'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        row.get::<_, serde_json::Value>(0),
        serde_json::json!({"ms": 1})
    );
    assert_eq!(
        (row.get::<_, i16>(1), row.get::<_, String>(2)),
        (7, "acme".to_owned())
    );

    // Fail it under a claim, then retry: the new task row carries the priority and key.
    let claimed = client
        .query_one(
            "select bucket, fence from zart_claim_tasks('w', 'default', array['held'], 1, 60000)",
            &[],
        )
        .await
        .unwrap();
    let (bucket, fence): (i16, i64) = (claimed.get(0), claimed.get(1));
    client
        .execute(
            "select zart_complete_execution($1, 's-1', $2, 'failed', null,
                    '{\"kind\": \"application\", \"message\": \"no\", \"step\": \"x\", \"attempts\": 1}')",
            &[&bucket, &fence],
        )
        .await
        .unwrap();
    client
        .execute("select zart_retry('s-1')", &[])
        .await
        .unwrap();
    let again = client
        .query_one(
            "select priority, limit_key from zart_tasks where execution_id = 's-1'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (again.get::<_, i16>(0), again.get::<_, String>(1)),
        (7, "acme".to_owned())
    );
}
