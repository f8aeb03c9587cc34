//! Q4x and Q6x on MySQL/MariaDB: a default worker in ANOTHER process on the scratch database
//! (`zart-load-mysql worker --db NAME`, with the server's URL in the environment variable
//! [`SERVER_ENV`] so a password does not show in the process list), spoken to as
//! [`crate::common::child`] says. It sees the driver's starts only through the scheduler's
//! change-probe poller (the cross-process wake-up source, 20 ms after a change backing off to
//! 2 s while idle).
//!
//! Its scheduler connects through a [`Meter`] of its own, which counts its statements for
//! Q6x; its `counts` line is `counts <probes> <zart tables> <other> <protocol> <connections>
//! <polls>` (the meter's counts so far, then the scheduler's `poll_count()`). The relay is on
//! its connections during Q4x too: a loopback hop per round trip, far below the poll interval
//! that Q4x's pickups wait for.

use std::ffi::OsString;

use anyhow::{anyhow, bail, Context, Result};

use super::meter::{Meter, MeterCounts};
use super::{close, scheduler, Scratch, Server};
use crate::common::child::{self as common, WorkerProcess};

/// The environment variable the server's URL is passed to the worker process in.
pub const SERVER_ENV: &str = "ZART_LOAD_MYSQL_SERVER";

/// What a worker process has run so far.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    /// Its scheduler's commands, as its meter counted them.
    pub meter: MeterCounts,
    /// Its scheduler's change-probe reads (`MySqlScheduler::poll_count`).
    pub polls: u64,
}

/// The child side: a default worker with the pickup probe on database `db` of the server in
/// [`SERVER_ENV`], through a meter.
///
/// # Errors
/// When the database cannot be reached, the worker fails, or stdout is closed.
pub async fn run_child(db: &str) -> Result<()> {
    let url = std::env::var(SERVER_ENV)
        .with_context(|| format!("the worker process needs {SERVER_ENV}"))?;
    let server = Server::parse(&url)?;
    let meter = Meter::start(server.address()).await?;
    let scheduler = scheduler(&server.url_via(meter.port(), db)).await?;
    let counted = scheduler.clone();
    let served = common::run_child(scheduler.clone(), move || {
        let mut numbers = meter.counts().numbers().to_vec();
        numbers.push(counted.poll_count());
        numbers
    })
    .await;
    close(scheduler).await;
    served
}

/// Spawns the worker process on `scratch` and waits for it to be ready.
///
/// # Errors
/// As [`WorkerProcess::spawn`].
pub async fn spawn(scratch: &Scratch, server_url: &str) -> Result<WorkerProcess> {
    let args: Vec<OsString> = vec!["worker".into(), "--db".into(), scratch.name().into()];
    WorkerProcess::spawn(&args, &[(SERVER_ENV, server_url)]).await
}

/// The process's counts so far.
///
/// # Errors
/// When it does not answer, or answers something else than six numbers.
pub async fn counts(process: &mut WorkerProcess) -> Result<Counts> {
    let numbers = process.counts().await?;
    let Some((polls, meter)) = numbers.split_last() else {
        bail!("the worker process reported no counts");
    };
    let meter = MeterCounts::from_numbers(meter)
        .ok_or_else(|| anyhow!("the worker process reported {numbers:?} as its counts"))?;
    Ok(Counts {
        meter,
        polls: *polls,
    })
}
