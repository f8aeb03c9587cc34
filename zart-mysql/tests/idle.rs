//! What an idle worker costs the server: statements a second, read from the server's global
//! `Questions` counter around a quiet spell. Ignored by default (the counter is the whole
//! server's: anything else running at the time counts too); run it alone on a quiet server:
//!
//! ```text
//! cargo test -p zart-mysql --test idle -- --ignored --nocapture
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use mysql_async::prelude::Queryable;
use zart::{Scheduler, TaskContext, TaskError, TaskHandler, TaskRegistry, Worker, WorkerConfig};
use zart_mysql::MySqlScheduler;

/// A task that never runs here: the worker needs one to start.
struct Noop;

#[async_trait]
impl TaskHandler for Noop {
    type Data = serde_json::Value;
    type Output = ();

    async fn run(
        &self,
        _ctx: &mut TaskContext<impl Scheduler>,
        _data: serde_json::Value,
    ) -> Result<(), TaskError> {
        Ok(())
    }
}

async fn questions(pool: &mysql_async::Pool) -> u64 {
    let mut conn = pool.get_conn().await.unwrap();
    let row: Option<(String, String)> = conn
        .query_first("show global status like 'Questions'")
        .await
        .unwrap();
    row.unwrap().1.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement of the whole server's counter; run alone on a quiet server"]
async fn an_idle_worker_costs_about_one_statement_a_second() {
    let name = format!("zart_idle_{}", std::process::id());
    let url = support::fresh_database(&name).await;
    zart_mysql::migrate(&url).await.unwrap();
    let meter = mysql_async::Pool::new(support::server_url().as_str());

    // The server alone (the meter's own statement counts once per reading).
    let before = questions(&meter).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let quiet = questions(&meter).await - before;

    let scheduler = Arc::new(MySqlScheduler::connect(&url).await.unwrap());
    let worker = Worker::new(
        scheduler.clone(),
        {
            let mut registry = TaskRegistry::new();
            registry.register("noop", Noop).unwrap();
            Arc::new(registry)
        },
        WorkerConfig::default().with_handle_signals(false),
    );
    let stop = worker.shutdown_handle();
    let running = tokio::spawn(worker.run());
    // Settle: the poller backs off to its idle interval.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (start, before) = (Instant::now(), questions(&meter).await);
    tokio::time::sleep(Duration::from_secs(60)).await;
    let spent = questions(&meter).await - before;
    let secs = start.elapsed().as_secs_f64();
    let per_second = (spent.saturating_sub(quiet * 6)) as f64 / secs;
    eprintln!(
        "idle worker: {spent} statements in {secs:.1} s ({per_second:.2}/s after the server's \
         own {quiet} per 10 s); probes {}",
        scheduler.poll_count()
    );
    stop.shutdown();
    running.await.unwrap().unwrap();
    meter.disconnect().await.unwrap();
    Arc::into_inner(scheduler).unwrap().close().await;
    support::drop_database(&name).await;
}
