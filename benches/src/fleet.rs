//! Z8: several worker PROCESSES drain one database. The driver spawns its own executable
//! (`zart-load worker ...`, a hidden subcommand) once per worker, so no extra binary is
//! needed.
//!
//! The protocol on the child's stdout, one item per line:
//! `ready` (scheduler built, schema checked, one connection open), then after the driver
//! writes `go` to its stdin, `progress <entries>` now and then, and once it has been told to
//! stop (stdin closed, or SIGTERM) and has shut down gracefully, `ids <n>` followed by the
//! `n` execution ids its handler was entered with (in entry order, duplicates kept), and
//! `end`. The driver merges the lists: an id entered more than once is a double claim (there
//! are no crashes in this figure, so there must be none), and every pre-filled id must be
//! there.

use std::collections::HashMap;
use std::io::Write;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_postgres::Config;
use zart::{Scheduler, TaskRegistry, Worker, WorkerConfig};
use zart_pg::{PgPool, PostgresScheduler};

use crate::dbstats::{Delta, Watcher};
use crate::drain::{check_completed, wait_drained, Entries, NoOp};
use crate::progress::Bar;

/// How long the children get to start, and to stop and report.
const CHILD_TIMEOUT: Duration = Duration::from_secs(60);

/// The child side: runs one worker for `task` on the database at `config` and speaks the
/// protocol above on stdin/stdout. Returns when the worker has stopped and the ids are out.
///
/// # Errors
/// When the database cannot be reached, the worker fails, or stdout is closed.
pub async fn run_child(config: Config, task: &str, concurrency: Option<usize>) -> Result<()> {
    let pool = PgPool::from_config(config, zart_pg::DEFAULT_POOL_SIZE)?;
    let scheduler = Arc::new(PostgresScheduler::new(pool));
    scheduler
        .check_schema()
        .await
        .context("worker process: checking the schema")?;
    let entries = Arc::new(Entries::new(u64::MAX));
    let ids = Arc::new(Mutex::new(Vec::new()));
    let mut registry = TaskRegistry::new();
    registry.register(task, NoOp::new(entries.clone(), Some(ids.clone())))?;
    let mut worker_config = WorkerConfig::default().with_handle_signals(false);
    if let Some(concurrency) = concurrency {
        worker_config = worker_config.with_concurrency(concurrency);
    }
    let worker = Worker::new(scheduler, Arc::new(registry), worker_config);
    let stop = worker.shutdown_handle();

    say("ready")?;
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    loop {
        match stdin.next_line().await? {
            Some(line) if line.trim() == "go" => break,
            Some(_) => {}
            None => return Ok(()), // the driver gave up before starting us
        }
    }
    let handle = tokio::spawn(worker.run());
    tokio::spawn(async move {
        let stdin_closed = async { while let Ok(Some(_)) = stdin.next_line().await {} };
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        () = stdin_closed => {}
                        _ = term.recv() => {}
                    }
                }
                Err(_) => stdin_closed.await,
            }
        }
        #[cfg(not(unix))]
        stdin_closed.await;
        stop.shutdown();
    });
    let mut reported = 0;
    while !handle.is_finished() {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let n = entries.count();
        if n != reported {
            say(&format!("progress {n}"))?;
            reported = n;
        }
    }
    handle
        .await
        .context("worker process: the worker task panicked")?
        .context("worker process: the worker failed")?;
    let ids = std::mem::take(&mut *ids.lock().unwrap_or_else(|p| p.into_inner()));
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    writeln!(out, "progress {}", entries.count())?;
    writeln!(out, "ids {}", ids.len())?;
    for id in &ids {
        writeln!(out, "{id}")?;
    }
    writeln!(out, "end")?;
    out.flush()?;
    Ok(())
}

/// Writes one protocol line to stdout and flushes it.
fn say(line: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(())
}

/// What the worker processes did.
#[derive(Debug, Clone, Serialize)]
pub struct FleetResult {
    /// Worker processes.
    pub workers: u32,
    /// Executions pre-filled.
    pub count: u32,
    /// From `go` to the last outcome seen committed, seconds.
    pub secs: f64,
    /// Executions per second.
    pub rate: f64,
    /// Handler entries reported, all processes together.
    pub entries: u64,
    /// Handler entries per process.
    pub entries_per_worker: Vec<u64>,
    /// Executions entered more than once (double claims).
    pub double_claimed: u64,
    /// A few of them.
    pub double_claimed_examples: Vec<String>,
    /// Pre-filled executions no process entered.
    pub missing: u64,
    /// A few of them.
    pub missing_examples: Vec<String>,
    /// The database's work during the window (spawn to the last process gone).
    #[serde(skip)]
    pub delta: Option<Delta>,
}

/// One spawned worker process.
struct Child1 {
    child: Child,
    stdin: Option<ChildStdin>,
    ready: Option<oneshot::Receiver<()>>,
    progress: Arc<AtomicU64>,
    reader: JoinHandle<Result<Vec<String>>>,
}

/// The driver side: spawns `workers` processes of this executable on the scratch database
/// `dbname` of the server at `url`, lets them drain `count` pre-filled executions of `task`
/// (ids `<task>-1..<task>-<count>`), stops them and merges what they report.
///
/// # Errors
/// When a process cannot be started or fails, the drain takes over 10 minutes, or an
/// execution did not complete. Double claims and missing ids are reported in the result, not
/// as errors.
#[allow(clippy::too_many_arguments)]
pub async fn drain(
    url: &str,
    dbname: &str,
    watcher: &mut Watcher,
    task: &str,
    count: u32,
    workers: u32,
    concurrency: Option<usize>,
    bar: &Bar,
) -> Result<FleetResult> {
    let exe = std::env::current_exe().context("finding this executable")?;
    let mark = watcher.begin(true).await?;
    let mut children = Vec::with_capacity(workers as usize);
    for _ in 0..workers {
        let mut command = Command::new(&exe);
        command
            .arg("worker")
            .arg("--dbname")
            .arg(dbname)
            .arg("--task")
            .arg(task)
            .env("DATABASE_URL", url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if let Some(concurrency) = concurrency {
            command.arg("--concurrency").arg(concurrency.to_string());
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {}", exe.display()))?;
        let stdin = child
            .stdin
            .take()
            .context("the worker process has no stdin")?;
        let stdout = child
            .stdout
            .take()
            .context("the worker process has no stdout")?;
        let (ready_tx, ready) = oneshot::channel();
        let progress = Arc::new(AtomicU64::new(0));
        let reader = tokio::spawn(read_child(stdout, ready_tx, progress.clone()));
        children.push(Child1 {
            child,
            stdin: Some(stdin),
            ready: Some(ready),
            progress,
            reader,
        });
    }
    for (i, c) in children.iter_mut().enumerate() {
        let ready = c.ready.take().context("ready twice")?;
        match tokio::time::timeout(CHILD_TIMEOUT, ready).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => bail!("worker process {i} exited before it was ready"),
            Err(_) => bail!("worker process {i} was not ready within {CHILD_TIMEOUT:?}"),
        }
    }

    let started = Instant::now();
    for c in &mut children {
        if let Some(stdin) = &mut c.stdin {
            stdin.write_all(b"go\n").await?;
            stdin.flush().await?;
        }
    }
    let progress: Vec<Arc<AtomicU64>> = children.iter().map(|c| c.progress.clone()).collect();
    let total = || {
        progress
            .iter()
            .map(|p| p.load(Ordering::Relaxed))
            .sum::<u64>()
    };
    let all_entered = async {
        while total() < u64::from(count) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let readers: Vec<&JoinHandle<_>> = children.iter().map(|c| &c.reader).collect();
    let elapsed = wait_drained(
        watcher,
        task,
        None,
        count,
        started,
        &total,
        all_entered,
        || readers.iter().any(|r| r.is_finished()),
        bar,
    )
    .await?;

    // Stop: closing stdin asks each process for a graceful shutdown and its ids.
    for c in &mut children {
        c.stdin = None;
    }
    let mut seen: HashMap<String, u64> = HashMap::with_capacity(count as usize);
    let mut entries_per_worker = Vec::with_capacity(children.len());
    for (i, mut c) in children.into_iter().enumerate() {
        let ids = match tokio::time::timeout(CHILD_TIMEOUT, &mut c.reader).await {
            Ok(Ok(ids)) => ids.with_context(|| format!("worker process {i}"))?,
            Ok(Err(e)) => return Err(e).context("a reader task panicked"),
            Err(_) => bail!("worker process {i} did not report within {CHILD_TIMEOUT:?}"),
        };
        let status = tokio::time::timeout(CHILD_TIMEOUT, c.child.wait())
            .await
            .map_err(|_| anyhow!("worker process {i} did not exit"))??;
        if !status.success() {
            bail!("worker process {i} exited with {status}");
        }
        entries_per_worker.push(ids.len() as u64);
        for id in ids {
            *seen.entry(id).or_insert(0) += 1;
        }
    }
    let delta = watcher.end(mark).await?;

    let mut doubles: Vec<String> = seen
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, n)| format!("{id} ({n}x)"))
        .collect();
    doubles.sort();
    let missing: Vec<String> = (1..=count)
        .map(|g| format!("{task}-{g}"))
        .filter(|id| !seen.contains_key(id))
        .collect();
    check_completed(watcher.client(), task, None, count).await?;
    Ok(FleetResult {
        workers,
        count,
        secs: elapsed.as_secs_f64(),
        rate: f64::from(count) / elapsed.as_secs_f64(),
        entries: entries_per_worker.iter().sum(),
        entries_per_worker,
        double_claimed: doubles.len() as u64,
        double_claimed_examples: doubles.into_iter().take(5).collect(),
        missing: missing.len() as u64,
        missing_examples: missing.into_iter().take(5).collect(),
        delta: Some(delta),
    })
}

/// Reads one child's stdout: signals `ready`, keeps `progress` current, and returns the ids.
async fn read_child(
    stdout: ChildStdout,
    ready: oneshot::Sender<()>,
    progress: Arc<AtomicU64>,
) -> Result<Vec<String>> {
    let mut lines = BufReader::new(stdout).lines();
    let mut ready = Some(ready);
    while let Some(line) = lines.next_line().await? {
        if line == "ready" {
            if let Some(ready) = ready.take() {
                let _ = ready.send(());
            }
        } else if let Some(n) = line.strip_prefix("progress ") {
            progress.store(n.parse().context("a bad progress line")?, Ordering::Relaxed);
        } else if let Some(n) = line.strip_prefix("ids ") {
            let n: usize = n.parse().context("a bad ids line")?;
            let mut ids = Vec::with_capacity(n);
            for _ in 0..n {
                ids.push(
                    lines
                        .next_line()
                        .await?
                        .context("the id list was cut short")?,
                );
            }
            if lines.next_line().await?.as_deref() != Some("end") {
                bail!("the id list did not end with `end`");
            }
            return Ok(ids);
        }
    }
    bail!("the worker process exited without reporting its ids")
}
