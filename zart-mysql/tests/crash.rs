//! A worker process killed with SIGKILL mid-execution has its execution taken over by a worker
//! in another process on the same file: the recorded step is not run again, the execution
//! completes, and the take-over counts as a recovery.
//!
//! Needs a server: `eval "$(ci/mariadb-up)"` (or `ZART_MYSQL_URL`, default
//! `mysql://root@127.0.0.1:3306`).
//!
//! The killed worker is this test binary run again with `--ignored --exact
//! crash_worker_process` and `ZART_CRASH_URL` set: a real second process on the database.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod support;

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use mysql_async::prelude::Queryable;
use zart::{
    DurableScheduler, ExecutionStatus, Scheduler, TaskContext, TaskError, TaskHandler,
    TaskRegistry, Worker, WorkerConfig,
};
use zart_mysql::MySqlScheduler;

const URL_VAR: &str = "ZART_CRASH_URL";

static STEP_ONE_RUNS: AtomicU32 = AtomicU32::new(0);
static STEP_TWO_RUNS: AtomicU32 = AtomicU32::new(0);

/// Step one records; step two hangs in the worker process that is to be killed.
struct Crashy;

#[async_trait]
impl TaskHandler for Crashy {
    type Data = serde_json::Value;
    type Output = String;

    async fn run(
        &self,
        ctx: &mut TaskContext<impl Scheduler>,
        _data: serde_json::Value,
    ) -> Result<String, TaskError> {
        ctx.step("one", || async {
            STEP_ONE_RUNS.fetch_add(1, Ordering::SeqCst);
            Ok::<_, std::io::Error>(1)
        })
        .await?;
        ctx.step("two", || async {
            if std::env::var_os(URL_VAR).is_some() {
                // The process to be killed: hang here, after step one is recorded.
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            STEP_TWO_RUNS.fetch_add(1, Ordering::SeqCst);
            Ok::<_, std::io::Error>(2)
        })
        .await?;
        Ok("done".to_owned())
    }
}

fn registry() -> Arc<TaskRegistry> {
    let mut registry = TaskRegistry::new();
    registry.register("crashy", Crashy).unwrap();
    Arc::new(registry)
}

fn config() -> WorkerConfig {
    WorkerConfig::default()
        .with_lease_duration(Duration::from_secs(1))
        .with_heartbeat_interval(Duration::from_millis(250))
        .with_handle_signals(false)
}

/// The worker process: runs until it is killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the worker process of a_killed_worker_process_is_taken_over, which runs it"]
async fn crash_worker_process() {
    let url = std::env::var(URL_VAR).expect("run by a_killed_worker_process_is_taken_over");
    let scheduler = Arc::new(MySqlScheduler::connect(&url).await.unwrap());
    Worker::new(scheduler, registry(), config())
        .run()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_process_is_taken_over() {
    let server = support::server_url();
    let name = format!("zart_crash_{}", std::process::id());
    let admin = mysql_async::Pool::new(server.as_str());
    let mut conn = admin.get_conn().await.unwrap();
    conn.query_drop(format!("drop database if exists {name}"))
        .await
        .unwrap();
    conn.query_drop(format!("create database {name}"))
        .await
        .unwrap();
    let url = format!("{server}/{name}");
    zart_mysql::migrate(&url).await.unwrap();
    let scheduler = Arc::new(MySqlScheduler::connect(&url).await.unwrap());
    let registry = registry();
    let durable = DurableScheduler::new(scheduler.clone(), registry.clone());
    durable
        .start("crash-1", "crashy", serde_json::json!({}))
        .await
        .unwrap();

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "crash_worker_process",
            "--nocapture",
        ])
        .env(URL_VAR, &url)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();

    // Wait until the other process has recorded step one (and hangs in step two).
    let reads = mysql_async::Pool::new(url.as_str());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut reader = reads.get_conn().await.unwrap();
        let recorded: Option<i64> = reader
            .query_first(
                "select count(*) from zart_steps where execution_id = 'crash-1' and name = 'one'",
            )
            .await
            .unwrap();
        drop(reader);
        let recorded = recorded.unwrap_or(0);
        if recorded == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the worker process never recorded step one"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let worker = Worker::new(scheduler.clone(), registry, config());
    let stop = worker.shutdown_handle();
    let running = tokio::spawn(worker.run());
    let finished = durable
        .wait("crash-1", Some(Duration::from_secs(30)))
        .await
        .unwrap();
    stop.shutdown();
    running.await.unwrap().unwrap();

    assert_eq!(finished.status, ExecutionStatus::Completed, "{finished:?}");
    assert_eq!(finished.output, Some(serde_json::json!("done")));
    assert_eq!(
        STEP_ONE_RUNS.load(Ordering::SeqCst),
        0,
        "step one was recorded by the killed process and is not run again"
    );
    assert_eq!(STEP_TWO_RUNS.load(Ordering::SeqCst), 1);
    assert_eq!(
        finished.attempts, 2,
        "claimed by the killed worker, then taken over"
    );
    reads.disconnect().await.unwrap();
    conn.query_drop(format!("drop database if exists {name}"))
        .await
        .unwrap();
    drop(conn);
    admin.disconnect().await.unwrap();
}
