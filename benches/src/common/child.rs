//! A default worker in ANOTHER process, for the pickups and idle cost of a worker that only
//! sees other processes' writes through its backend's cross-process wake-up source. The
//! driver spawns its own executable with a hidden subcommand (`<driver> worker ...`), as
//! `zart-load`'s Z8 fleet does; the subcommand builds its backend's scheduler and calls
//! [`run_child`].
//!
//! The child's protocol on stdout, one item per line: `ready` once its worker runs;
//! `entered <id> <unix ns>` when the first step body of probe execution `<id>` runs (wall
//! clock, which both processes share); `counts <n> <n> ..` in answer to a `counts` line on
//! its stdin (what the backend counts, in the backend's order); and `end` once its worker has
//! stopped after its stdin closed.

use std::ffi::OsString;
use std::io::Write;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use zart::{DurableScheduler, Scheduler, TaskRegistry};

use super::pickup::{self, FirstStep, PickupPlan, Pickups, PICKUP_TASK};
use super::{default_worker, stopped};
use crate::progress::Bar;
use crate::stats::Rng;

/// Now, in nanoseconds since the Unix epoch.
pub fn unix_nanos() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

/// Writes one protocol line to stdout and flushes it.
fn say(line: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(())
}

/// The child side: runs a default worker with the pickup probe on `scheduler` and speaks the
/// protocol above until its stdin closes; `counts` answers a `counts` line.
///
/// # Errors
/// When the worker fails or stdout is closed.
pub async fn run_child<S: Scheduler + 'static>(
    scheduler: Arc<S>,
    counts: impl Fn() -> Vec<u64>,
) -> Result<()> {
    let mut registry = TaskRegistry::new();
    registry.register(
        PICKUP_TASK,
        FirstStep::new(Arc::new(|id: &str| {
            // Nothing to do if the driver has gone.
            let _ = say(&format!("entered {id} {}", unix_nanos()));
        })),
    )?;
    let worker = default_worker(scheduler, Arc::new(registry), None);
    let stop = worker.shutdown_handle();
    let handle = tokio::spawn(worker.run());
    say("ready")?;
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = stdin.next_line().await? {
        if line.trim() == "counts" {
            let numbers: Vec<String> = counts().iter().map(u64::to_string).collect();
            say(&format!("counts {}", numbers.join(" ")))?;
        }
    }
    stop.shutdown();
    stopped("worker process", handle).await?;
    say("end")
}

/// The driver's side of one worker process.
pub struct WorkerProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    entered: mpsc::UnboundedReceiver<(String, i128)>,
    counts: mpsc::UnboundedReceiver<Vec<u64>>,
    ended: mpsc::UnboundedReceiver<()>,
    reader: JoinHandle<Result<()>>,
}

impl WorkerProcess {
    /// Spawns this executable with `args` (its hidden `worker` subcommand and options) and
    /// `envs` added to its environment (for what should not show in a process list, such
    /// as a URL with a password), and waits for `ready`.
    ///
    /// # Errors
    /// When it cannot be spawned or does not get ready within 60 s.
    pub async fn spawn(args: &[OsString], envs: &[(&str, &str)]) -> Result<WorkerProcess> {
        let exe = std::env::current_exe().context("finding this executable")?;
        let mut child = Command::new(exe)
            .args(args)
            .envs(envs.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("spawning the worker process")?;
        let stdin = child.stdin.take();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("the worker process has no stdout"))?;
        let (ready_tx, mut ready) = mpsc::unbounded_channel();
        let (entered_tx, entered) = mpsc::unbounded_channel();
        let (counts_tx, counts) = mpsc::unbounded_channel();
        let (ended_tx, ended) = mpsc::unbounded_channel();
        let reader = tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Some(line) = lines.next_line().await? {
                let words: Vec<&str> = line.split_whitespace().collect();
                // The receivers go only when the driver stops listening.
                match words.as_slice() {
                    ["ready"] => drop(ready_tx.send(())),
                    ["entered", id, nanos] => {
                        drop(entered_tx.send(((*id).to_owned(), nanos.parse()?)));
                    }
                    ["counts", numbers @ ..] => drop(
                        counts_tx.send(numbers.iter().map(|n| n.parse::<u64>()).collect::<Result<
                            Vec<u64>,
                            _,
                        >>(
                        )?),
                    ),
                    ["end"] => drop(ended_tx.send(())),
                    _ => bail!("the worker process said {line:?}"),
                }
            }
            Ok(())
        });
        tokio::time::timeout(Duration::from_secs(60), ready.recv())
            .await
            .map_err(|_| anyhow!("the worker process was not ready within 60 s"))?
            .ok_or_else(|| anyhow!("the worker process ended before it was ready"))?;
        Ok(WorkerProcess {
            child,
            stdin,
            entered,
            counts,
            ended,
            reader,
        })
    }

    /// The process's counts so far, in its backend's order.
    ///
    /// # Errors
    /// When it does not answer within 10 s.
    pub async fn counts(&mut self) -> Result<Vec<u64>> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| anyhow!("the worker process's stdin is closed"))?;
        stdin.write_all(b"counts\n").await?;
        stdin.flush().await?;
        tokio::time::timeout(Duration::from_secs(10), self.counts.recv())
            .await
            .map_err(|_| anyhow!("the worker process did not report its counts within 10 s"))?
            .ok_or_else(|| anyhow!("the worker process ended"))
    }

    /// Closes its stdin, so its worker shuts down gracefully, and waits for it to exit.
    ///
    /// # Errors
    /// When it does not say `end` and exit successfully within 60 s.
    pub async fn stop(mut self) -> Result<()> {
        drop(self.stdin.take());
        let limit = Duration::from_secs(60);
        tokio::time::timeout(limit, self.ended.recv())
            .await
            .map_err(|_| anyhow!("the worker process did not stop within {limit:?}"))?
            .ok_or_else(|| anyhow!("the worker process ended without saying so"))?;
        let status = tokio::time::timeout(limit, self.child.wait())
            .await
            .map_err(|_| anyhow!("the worker process did not exit within {limit:?}"))??;
        self.reader.await.context("the output reader panicked")??;
        if !status.success() {
            bail!("the worker process exited with {status}");
        }
        Ok(())
    }
}

/// Pickups by the worker in `process`, started from this process through `scheduler` (which
/// runs no worker, so only the child can pick up). A pickup is the wall-clock time from just
/// before `start` here to the child's first-step report.
///
/// # Errors
/// As [`pickup::sample`].
pub async fn pickups<S: Scheduler + 'static>(
    scheduler: Arc<S>,
    process: &mut WorkerProcess,
    prefix: &str,
    plan: PickupPlan<'_>,
    rng: &mut Rng,
    bar: &Bar,
) -> Result<Pickups> {
    let mut registry = TaskRegistry::new();
    registry.register(PICKUP_TASK, FirstStep::silent())?;
    let durable = DurableScheduler::new(scheduler, Arc::new(registry));
    pickup::sample(
        &durable,
        prefix,
        plan,
        rng,
        bar,
        &mut process.entered,
        unix_nanos,
        |started, at| Duration::from_nanos(u64::try_from(at - started).unwrap_or(0)),
    )
    .await
}
