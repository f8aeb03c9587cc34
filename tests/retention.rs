//! Retention on PostgreSQL (`zart_prune`): events go with their execution, one pruner at a
//! time (a second one is told it is busy, never waits, never deletes twice), bad input from
//! SQL is refused, and a worker with retention configured prunes on its own. The
//! backend-neutral rules are the conformance cases `prune_*`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use zart::retention::{prune, PruneOptions, Retention};
use zart::scheduler::{PruneOutcome, PruneParams};
use zart::{ExecutionStatus, Scheduler, WorkerConfig};
use zart_tests::{count, wait_for, Harness, TestDb};

const DAY: Duration = Duration::from_secs(24 * 3600);

/// Inserts `n` completed executions `<prefix>-1..n`, finished `days` days ago, each with one
/// step, one consumed and one unconsumed event (as a finished execution may keep one that
/// raced its outcome).
async fn finished_rows(client: &tokio_postgres::Client, prefix: &str, n: i64, days: i64) {
    client
        .execute(
            "with e as (
               insert into zart_executions (bucket, id, task_name, queue, input, status, output,
                                            attempts, created_at, updated_at, finished_at)
               select zart_bucket($1 || '-' || g), $1 || '-' || g, 'echo', 'default', '1',
                      'completed', 'null', 1, t, t, t
                 from generate_series(1, $2::int8) g,
                      lateral (select now() - $3::int8 * interval '1 day' as t) tm
               returning bucket, id, finished_at
             ), s as (
               insert into zart_steps (bucket, execution_id, name, seq, status, output, attempts,
                                       created_at, updated_at)
               select bucket, id, 'echo', 0, 'completed', '1', 1, finished_at, finished_at from e
             )
             insert into zart_events (bucket, execution_id, name, payload, created_at,
                                      consumed_at, consumed_by)
             select bucket, id, 'ping', 'null', finished_at, c, case when c is not null then 'event:ping' end
               from e, (values (now()), (null::timestamptz)) v(c)",
            &[&prefix, &n, &days],
        )
        .await
        .unwrap();
}

fn completed(older_than: Duration, limit: u32) -> PruneParams {
    PruneParams {
        status: ExecutionStatus::Completed,
        older_than,
        limit,
        dry_run: false,
    }
}

#[tokio::test]
async fn a_prune_deletes_the_steps_and_every_event_of_what_it_deletes() {
    let db = TestDb::new().await;
    let client = db.client().await;
    finished_rows(&client, "old", 30, 10).await;
    finished_rows(&client, "new", 5, 1).await;
    let scheduler = db.scheduler().await;
    let outcome = scheduler.prune(completed(7 * DAY, 1000)).await.unwrap();
    assert_eq!(outcome, PruneOutcome::Deleted(30));
    for (table, column, left) in [
        ("zart_executions", "id", 5),
        ("zart_steps", "execution_id", 5),
        ("zart_events", "execution_id", 10),
    ] {
        let sql = format!("select count(*) from {table} where {column} like 'old-%'");
        assert_eq!(count(&client, &sql).await, 0, "{table}");
        let sql = format!("select count(*) from {table}");
        assert_eq!(count(&client, &sql).await, left, "{table}");
    }
}

#[tokio::test]
async fn a_second_pruner_is_told_busy_at_once_and_nothing_is_deleted_twice() {
    let db = TestDb::new().await;
    let client = db.client().await;
    finished_rows(&client, "old", 20_000, 10).await;

    // A prune whose transaction stays open holds the prune lock: another returns Busy at
    // once instead of waiting.
    let mut holder = db.client().await;
    let tx = holder.transaction().await.unwrap();
    let held: Option<i64> = tx
        .query_one("select zart_prune('completed', 0, 10)", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(held, Some(10));
    let scheduler = db.scheduler().await;
    let busy = tokio::time::timeout(
        Duration::from_secs(5),
        scheduler.prune(completed(Duration::ZERO, 10)),
    )
    .await
    .expect("a second prune waited for the first");
    assert_eq!(busy.unwrap(), PruneOutcome::Busy);
    tx.rollback().await.unwrap();

    // Four pruners at once, small batches: every row deleted exactly once, no error (a
    // deadlock would be one), and each stops when it finds another running or nothing left.
    let retention = Retention::default().with_batch(500);
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let scheduler: Arc<dyn Scheduler> = db.scheduler().await;
        let retention = retention.clone().with_completed(Some(Duration::ZERO));
        tasks.push(tokio::spawn(async move {
            let mut total = 0;
            loop {
                let report = prune(&*scheduler, &retention, PruneOptions::new(), |_, _| {})
                    .await
                    .unwrap();
                total += report.completed;
                if !report.busy {
                    return total;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    let mut deleted = 0;
    for task in tasks {
        deleted += task.await.unwrap();
    }
    assert_eq!(deleted, 20_000, "each row counted once");
    assert_eq!(
        count(&client, "select count(*) from zart_executions").await,
        0
    );
    assert_eq!(count(&client, "select count(*) from zart_steps").await, 0);
}

#[tokio::test]
async fn zart_prune_refuses_bad_input_from_sql() {
    let db = TestDb::new().await;
    let client = db.client().await;
    finished_rows(&client, "old", 3, 10).await;
    for (sql, says) in [
        ("select zart_prune('completed', -1, 10)", "invalid age"),
        ("select zart_prune('completed', null, 10)", "invalid age"),
        ("select zart_prune('running', 0, 10)", "invalid status"),
        ("select zart_prune(null, 0, 10)", "invalid status"),
        ("select zart_prune('completed', 0, 0)", "invalid batch"),
        ("select zart_prune('completed', 0, 100001)", "invalid batch"),
    ] {
        let err = client.query_one(sql, &[]).await.unwrap_err();
        let db_err = err.as_db_error().expect("a database error");
        assert_eq!(db_err.code().code(), "ZA004", "{sql}");
        assert!(
            db_err.message().contains(says),
            "{sql}: {}",
            db_err.message()
        );
    }
    assert_eq!(
        count(&client, "select count(*) from zart_executions").await,
        3
    );
    // The dry run counts without the lock or a limit.
    let counted: Option<i64> = client
        .query_one("select zart_prune('completed', 0, 1, true)", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(counted, Some(3));
}

#[tokio::test]
async fn a_worker_with_retention_prunes_old_finished_executions() {
    let h = Harness::new().await;
    let client = h.db.client().await;
    finished_rows(&client, "old", 2_500, 10).await;
    finished_rows(&client, "new", 10, 1).await;
    h.spawn_worker(
        WorkerConfig::default().with_retention(
            Retention::default()
                .with_completed(Some(7 * DAY))
                .with_batch(1000)
                .with_interval(Duration::from_millis(200)),
        ),
    );
    wait_for("the worker to prune", Duration::from_secs(30), || async {
        (count(
            &client,
            "select count(*) from zart_executions where id like 'old-%'",
        )
        .await
            == 0)
            .then_some(())
    })
    .await;
    assert_eq!(
        count(&client, "select count(*) from zart_executions").await,
        10
    );
    h.stop().await;
}

#[tokio::test]
async fn a_worker_login_prunes_only_its_tenants_and_a_client_or_reader_may_not_prune() {
    let db = TestDb::new().await;
    let admin = db.client().await;
    finished_rows(&admin, "a", 3, 10).await;
    finished_rows(&admin, "b", 2, 10).await;
    admin
        .batch_execute(
            "update zart_executions set tenant = 'shop-' || split_part(id, '-', 1);
             update zart_settings set tenancy = true;",
        )
        .await
        .unwrap();
    let logins = zart_tests::logins::Logins::new(&db);
    let worker = logins.create(&admin, "worker", &["zart_worker"]).await;
    logins.create(&admin, "client", &["zart_client"]).await;
    logins.create(&admin, "reader", &["zart_reader"]).await;
    admin
        .execute(
            "insert into zart_tenant_access (role_name, tenant) values ($1, 'shop-a')",
            &[&worker],
        )
        .await
        .unwrap();

    for name in ["client", "reader"] {
        let err = logins
            .client(name)
            .await
            .query_one("select zart_prune('completed', 0, 10)", &[])
            .await
            .unwrap_err();
        assert_eq!(err.code().unwrap().code(), "42501", "{name}");
    }
    let deleted: Option<i64> = logins
        .client("worker")
        .await
        .query_one("select zart_prune('completed', 0, 100)", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(deleted, Some(3), "only shop-a's executions");
    assert_eq!(
        count(
            &admin,
            "select count(*) from zart_executions where tenant = 'shop-b'"
        )
        .await,
        2
    );
}
