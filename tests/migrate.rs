//! `zart migrate`: idempotent, safe when run concurrently, and required before use.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::Arc;

use zart::{DurableScheduler, Error, Worker, WorkerConfig};
use zart_tests::{count, init_tracing, tasks, TestDb};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_twice_is_a_no_op() {
    init_tracing();
    let db = TestDb::empty().await;
    let first = zart_pg::migrate(&db.config()).await.unwrap();
    assert_eq!(first.applied, zart_pg::migration_names());
    assert_eq!(first.applied[0], "V1__init");
    assert_eq!(first.schema_version, zart_pg::REQUIRED_SCHEMA_VERSION);
    let second = zart_pg::migrate(&db.config()).await.unwrap();
    assert!(second.applied.is_empty());
    let client = db.client().await;
    assert_eq!(
        count(&client, "select count(*) from zart_schema_history").await,
        zart_pg::migration_names().len() as i64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_migrations_are_safe() {
    init_tracing();
    let db = TestDb::empty().await;
    let mut handles = Vec::new();
    for _ in 0..4 {
        let config = db.config();
        handles.push(tokio::spawn(async move { zart_pg::migrate(&config).await }));
    }
    let mut applied = 0;
    for handle in handles {
        applied += handle.await.unwrap().unwrap().applied.len();
    }
    assert_eq!(
        applied,
        zart_pg::migration_names().len(),
        "each migration is applied by exactly one of the runs"
    );
    let client = db.client().await;
    for table in ["zart_executions", "zart_tasks", "zart_steps", "zart_events"] {
        let exists: bool = client
            .query_one("select to_regclass($1) is not null", &[&table])
            .await
            .unwrap()
            .get(0);
        assert!(exists, "{table} exists");
    }
    // The migrated schema works.
    let started: bool = client
        .query_one("select zart_start('after-migrate', 'echo')", &[])
        .await
        .unwrap()
        .get(0);
    assert!(started);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmigrated_database_is_refused_with_a_hint_to_migrate() {
    init_tracing();
    let db = TestDb::empty().await;
    let scheduler = db.scheduler().await;
    let mut registry = zart::TaskRegistry::new();
    registry.register("echo", tasks::Echo).unwrap();
    let registry = Arc::new(registry);

    let worker = Worker::new(
        scheduler.clone(),
        registry.clone(),
        WorkerConfig::default().with_handle_signals(false),
    );
    let err = worker.run().await.unwrap_err();
    assert!(matches!(err, Error::Schema(_)), "{err:?}");
    assert!(err.to_string().contains("run `zart migrate`"), "{err}");

    let durable = DurableScheduler::new(scheduler, registry);
    let err = durable
        .start("x", "echo", serde_json::json!({}))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("run `zart migrate`"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_schema_is_refused_with_a_hint_to_migrate() {
    init_tracing();
    let db = TestDb::new().await;
    let client = db.client().await;
    client
        .batch_execute(
            "create or replace function public.zart_schema_version() returns integer \
             language sql immutable as $$ select 0 $$",
        )
        .await
        .unwrap();
    let mut registry = zart::TaskRegistry::new();
    registry.register("echo", tasks::Echo).unwrap();
    let worker = Worker::new(
        db.scheduler().await,
        Arc::new(registry),
        WorkerConfig::default().with_handle_signals(false),
    );
    let err = worker.run().await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "the Zart schema in this database is version 0, but this build needs version {}: \
             run `zart migrate` with DATABASE_URL pointing at it",
            zart_pg::REQUIRED_SCHEMA_VERSION
        )
    );
    // Migrating again repairs it.
    zart_pg::migrate(&db.config()).await.unwrap();
}
