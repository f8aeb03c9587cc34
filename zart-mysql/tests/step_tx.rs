//! `ctx.step_tx` on MySQL/MariaDB: a step body's writes to a table in the same database commit
//! together with the step's recorded result, or not at all; a body that fails is rolled back;
//! a body that ends its transaction itself (MariaDB) or keeps its handle fails the step.
//!
//! Needs a server: `eval "$(ci/mariadb-up)"` (or `ZART_MYSQL_URL`, default
//! `mysql://root@127.0.0.1:3306`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mysql_async::prelude::Queryable;
use serde::{Deserialize, Serialize};
use zart::{
    DurableScheduler, ExecutionStatus, RetryConfig, Scheduler, TaskContext, TaskError, TaskHandler,
    TaskRegistry, Worker, WorkerConfig,
};
use zart_mysql::{MySqlScheduler, StepTx};

/// What the step body does after writing its `biz` row.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
enum Case {
    Ok,
    Fail,
    Commit,
    Leak,
}

struct TxCases;

#[async_trait]
impl TaskHandler for TxCases {
    type Data = Case;
    type Output = i64;

    async fn run(
        &self,
        ctx: &mut TaskContext<impl Scheduler>,
        case: Case,
    ) -> Result<i64, TaskError> {
        let id = ctx.execution_id().to_owned();
        let retry = RetryConfig::fixed(3, Duration::from_millis(10));
        ctx.step_tx_with_retry("w", retry, |tx: StepTx| {
            let id = id.clone();
            async move {
                tx.conn()
                    .await?
                    .exec_drop("insert into biz (execution_id) values (?)", (&id,))
                    .await?;
                match case {
                    Case::Ok => {}
                    Case::Fail => return Err("the body gave up".into()),
                    Case::Commit => tx.conn().await?.query_drop("commit").await?,
                    Case::Leak => {
                        tokio::spawn(async move {
                            tokio::time::sleep(Duration::from_millis(500)).await;
                            drop(tx);
                        });
                        return Ok(0);
                    }
                }
                let n: Option<i64> = tx
                    .conn()
                    .await?
                    .exec_first("select count(*) from biz where execution_id = ?", (&id,))
                    .await?;
                Ok::<i64, Box<dyn std::error::Error + Send + Sync>>(n.unwrap_or(0))
            }
        })
        .await
    }
}

async fn count(pool: &mysql_async::Pool, sql: &str, id: &str) -> i64 {
    let mut conn = pool.get_conn().await.unwrap();
    let n: Option<i64> = conn.exec_first(sql, (id,)).await.unwrap();
    n.unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_transaction_commits_the_body_writes_with_the_step_or_not_at_all() {
    let name = format!("zart_steptx_{}", std::process::id());
    let url = support::fresh_database(&name).await;
    zart_mysql::migrate(&url).await.unwrap();
    let reads = mysql_async::Pool::new(url.as_str());
    reads
        .get_conn()
        .await
        .unwrap()
        .query_drop("create table biz (execution_id varbinary(255) not null) engine = InnoDB")
        .await
        .unwrap();
    let scheduler = Arc::new(MySqlScheduler::connect(&url).await.unwrap());
    let mut registry = TaskRegistry::new();
    registry.register("tx-cases", TxCases).unwrap();
    let registry = Arc::new(registry);
    let durable = DurableScheduler::new(scheduler.clone(), registry.clone());
    let worker = Worker::new(
        scheduler.clone(),
        registry,
        WorkerConfig::default().with_handle_signals(false),
    );
    let stop = worker.shutdown_handle();
    let running = tokio::spawn(worker.run());

    let run = |id: &'static str, case: Case| {
        let durable = &durable;
        async move {
            durable
                .start(id, "tx-cases", serde_json::to_value(case).unwrap())
                .await
                .unwrap();
            durable
                .wait(id, Some(Duration::from_secs(30)))
                .await
                .unwrap()
        }
    };
    let biz = "select count(*) from biz where execution_id = ?";
    let steps = "select count(*) from zart_steps where execution_id = ? and status = 'completed'";

    let done = run("ok", Case::Ok).await;
    assert_eq!(done.status, ExecutionStatus::Completed, "{:?}", done.error);
    assert_eq!(
        done.output,
        Some(serde_json::json!(1)),
        "the body saw its write"
    );
    assert_eq!(count(&reads, biz, "ok").await, 1);
    assert_eq!(count(&reads, steps, "ok").await, 1);

    let done = run("fail", Case::Fail).await;
    assert_eq!(done.status, ExecutionStatus::Failed);
    assert_eq!(
        count(&reads, biz, "fail").await,
        0,
        "every attempt rolled back"
    );

    let done = run("leak", Case::Leak).await;
    assert_eq!(done.status, ExecutionStatus::Failed);
    let message = done.error.map(|e| e.message).unwrap_or_default();
    assert!(message.contains("kept its transaction handle"), "{message}");
    assert_eq!(count(&reads, biz, "leak").await, 0, "rolled back");

    let mut conn = reads.get_conn().await.unwrap();
    let version: Option<String> = conn.query_first("select version()").await.unwrap();
    drop(conn);
    if version
        .unwrap_or_default()
        .to_lowercase()
        .contains("mariadb")
    {
        let done = run("commit", Case::Commit).await;
        assert_eq!(done.status, ExecutionStatus::Failed);
        let message = done.error.map(|e| e.message).unwrap_or_default();
        assert!(
            message.contains("ended its transaction itself"),
            "{message}"
        );
        assert_eq!(count(&reads, steps, "commit").await, 0);
    }

    stop.shutdown();
    running.await.unwrap().unwrap();
    drop(durable);
    reads.disconnect().await.unwrap();
    Arc::into_inner(scheduler).unwrap().close().await;
    support::drop_database(&name).await;
}
