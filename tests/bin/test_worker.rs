//! A worker process for crash tests: runs the test tasks on `DATABASE_URL` until killed or
//! sent SIGTERM. Prints `ready` on stdout once it runs.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use zart::{Worker, WorkerConfig};
use zart_pg::{PgPool, PostgresScheduler};

#[tokio::main]
async fn main() {
    zart_tests::init_tracing();
    let url = std::env::var("DATABASE_URL").expect("DATABASE_URL");
    let lease_ms: u64 = std::env::var("ZART_TEST_LEASE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let concurrency: usize = std::env::var("ZART_TEST_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let pool = PgPool::connect(&url).await.expect("connect");
    let scheduler = Arc::new(PostgresScheduler::new(pool.clone()));
    let registry = Arc::new(zart_tests::tasks::registry(pool.pool().clone()));
    let max_recoveries: u32 = std::env::var("ZART_TEST_MAX_RECOVERIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    // ZART_TEST_RETENTION_S: completed executions older than this are deleted, checked every
    // tenth of that (at least a second); the soak driver sets it.
    let retention = std::env::var("ZART_TEST_RETENTION_S")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map(|secs| {
            zart::retention::Retention::default()
                .with_completed(Some(Duration::from_secs(secs)))
                .with_interval(Duration::from_secs((secs / 10).max(1)))
        });
    let mut config = WorkerConfig::default()
        .with_max_recoveries(max_recoveries)
        .with_lease_duration(Duration::from_millis(lease_ms))
        .with_concurrency(concurrency)
        .with_shutdown_timeout(Duration::from_secs(5));
    if let Some(retention) = retention {
        config = config.with_retention(retention);
    }
    let worker = Worker::new(scheduler, registry, config);
    println!("ready {}", worker.id());
    worker.run().await.expect("worker failed");
}
