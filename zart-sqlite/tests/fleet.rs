//! Two worker processes drain one SQLite file together: every execution completes, each step
//! body runs exactly once (no execution is claimed by both), and both processes take part.
//!
//! The workers are this test binary run again with `--ignored --exact fleet_worker_process`
//! and `ZART_FLEET_URL` set; each step body appends `<pid> <execution id>` to the file named
//! by `ZART_FLEET_LOG` (one `write` of a short line to a file opened for appending, so lines
//! from the two processes never interleave).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use zart::{
    DurableScheduler, Scheduler, TaskContext, TaskError, TaskHandler, TaskRegistry, Worker,
    WorkerConfig,
};
use zart_sqlite::SqliteScheduler;

const URL_VAR: &str = "ZART_FLEET_URL";
const LOG_VAR: &str = "ZART_FLEET_LOG";
const EXECUTIONS: usize = 600;

/// One step that logs which process ran it, for which execution.
struct Logged;

#[async_trait]
impl TaskHandler for Logged {
    type Data = serde_json::Value;
    type Output = ();

    async fn run(
        &self,
        ctx: &mut TaskContext<impl Scheduler>,
        _data: serde_json::Value,
    ) -> Result<(), TaskError> {
        let id = ctx.execution_id().to_owned();
        ctx.step("log", || async move {
            let path = std::env::var(LOG_VAR).expect("run by two_worker_processes_share_one_file");
            let mut log = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .unwrap();
            log.write_all(format!("{} {id}\n", std::process::id()).as_bytes())
                .unwrap();
            // Until the other process has run a step too, hold this slot (at most 10 s): a
            // process that woke first cannot drain every burst alone, so both take part
            // whatever the timing (the other claims what these held slots leave).
            let deadline = Instant::now() + Duration::from_secs(10);
            while pids_in(&path) < 2 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Ok::<_, std::io::Error>(())
        })
        .await
    }
}

/// How many processes have logged a step so far.
fn pids_in(log: &str) -> usize {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let pids: std::collections::BTreeSet<&str> =
        text.lines().filter_map(|l| l.split(' ').next()).collect();
    pids.len()
}

fn registry() -> Arc<TaskRegistry> {
    let mut registry = TaskRegistry::new();
    registry.register("logged", Logged).unwrap();
    Arc::new(registry)
}

/// A worker process: runs until it is killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a worker process of two_worker_processes_share_one_file, which runs it"]
async fn fleet_worker_process() {
    let url = std::env::var(URL_VAR).expect("run by two_worker_processes_share_one_file");
    let scheduler = Arc::new(SqliteScheduler::connect(&url).await.unwrap());
    // Tell the test this process is up (a file beside the log), so no work is started
    // before both processes can claim it.
    let log = std::env::var(LOG_VAR).expect("run by two_worker_processes_share_one_file");
    std::fs::write(format!("{log}.ready.{}", std::process::id()), "").unwrap();
    Worker::new(
        scheduler,
        registry(),
        // Few slots, so the held ones (see `Logged`) leave work for the other process.
        WorkerConfig::default()
            .with_concurrency(4)
            .with_handle_signals(false),
    )
    .run()
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_worker_processes_share_one_file() {
    let dir = std::env::temp_dir().join(format!("zart-sqlite-fleet-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("zart.db");
    let log = dir.join("runs.log");
    std::fs::write(&log, "").unwrap();
    let url = format!("sqlite://{}", file.display());
    zart_sqlite::migrate(&url).await.unwrap();
    let scheduler = Arc::new(SqliteScheduler::connect(&url).await.unwrap());
    let durable = DurableScheduler::new(scheduler.clone(), registry());

    let spawn = || {
        Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "fleet_worker_process",
                "--nocapture",
            ])
            .env(URL_VAR, &url)
            .env(LOG_VAR, &log)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap()
    };
    let mut workers = [spawn(), spawn()];
    let pids: Vec<u32> = workers.iter().map(|c| c.id()).collect();
    let up = Instant::now() + Duration::from_secs(30);
    while !pids
        .iter()
        .all(|pid| std::path::Path::new(&format!("{}.ready.{pid}", log.display())).exists())
    {
        assert!(Instant::now() < up, "the worker processes did not start");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Started while both run, in bursts, so both have work to claim at once.
    for i in 0..EXECUTIONS {
        durable
            .start(&format!("job-{i}"), "logged", serde_json::json!({}))
            .await
            .unwrap();
        if i % 50 == 49 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    let reader = rusqlite::Connection::open(&file).unwrap();
    reader.busy_timeout(Duration::from_secs(5)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done: i64 = reader
            .query_row(
                "select count(*) from zart_executions where status = 'completed'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        if done == EXECUTIONS as i64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {done} of {EXECUTIONS} executions completed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for child in &mut workers {
        child.kill().unwrap();
        child.wait().unwrap();
    }

    // Each step body ran once, in one of the two processes, and both took part.
    let mut runs: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for line in std::fs::read_to_string(&log).unwrap().lines() {
        let (pid, id) = line.split_once(' ').unwrap();
        runs.entry(id.to_owned())
            .or_default()
            .push(pid.parse().unwrap());
    }
    assert_eq!(runs.len(), EXECUTIONS, "every execution ran its step");
    let twice: Vec<_> = runs.iter().filter(|(_, p)| p.len() != 1).collect();
    assert!(
        twice.is_empty(),
        "step bodies run more than once: {twice:?}"
    );
    for pid in &pids {
        let n = runs.values().filter(|p| p[0] == *pid).count();
        assert!(n > 0, "worker process {pid} ran nothing");
    }
    let claims_over_one: i64 = reader
        .query_row(
            "select count(*) from zart_executions where attempts <> 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        claims_over_one, 0,
        "an execution was claimed more than once"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
