//! Q4x and Q6x on SQLite: a default worker in ANOTHER process on the same file
//! (`zart-load-sqlite worker --db PATH --synchronous ..`, spoken to as
//! [`crate::common::child`] says). The child's scheduler counts its statements
//! ([`zart_sqlite::SqliteOptions::count_statements`]); its `counts` line is
//! `counts <zart tables> <control> <polls>` (its statements so far, and its `data_version`
//! reads).

use std::ffi::OsString;
use std::path::Path;

use anyhow::{bail, Result};
use zart_sqlite::{StatementCounts, Synchronous};

use super::{pragma_value, scheduler, url_of};
use crate::common::child::{self as common, WorkerProcess};

/// What a worker process has run so far.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    /// Statements of its scheduler's write and read connections.
    pub statements: StatementCounts,
    /// Its `PRAGMA data_version` reads.
    pub polls: u64,
}

/// The child side: a default worker with the pickup probe on the database at `path`.
///
/// # Errors
/// When the database cannot be opened, the worker fails, or stdout is closed.
pub async fn run_child(path: &Path, sync: Synchronous) -> Result<()> {
    let scheduler = scheduler(&url_of(path), sync, true).await?;
    let counted = scheduler.clone();
    common::run_child(scheduler, move || {
        let c = counted.statement_counts();
        vec![c.zart_tables, c.control, counted.poll_count()]
    })
    .await
}

/// Spawns the worker process on `path` and waits for it to be ready.
///
/// # Errors
/// As [`WorkerProcess::spawn`].
pub async fn spawn(path: &Path, sync: Synchronous) -> Result<WorkerProcess> {
    let args: Vec<OsString> = vec![
        "worker".into(),
        "--db".into(),
        path.into(),
        "--synchronous".into(),
        pragma_value(sync).into(),
    ];
    WorkerProcess::spawn(&args, &[]).await
}

/// The process's statement and poll counts so far.
///
/// # Errors
/// When it does not answer, or answers something else than three numbers.
pub async fn counts(process: &mut WorkerProcess) -> Result<Counts> {
    match process.counts().await?.as_slice() {
        [zart_tables, control, polls] => Ok(Counts {
            statements: StatementCounts {
                zart_tables: *zart_tables,
                control: *control,
            },
            polls: *polls,
        }),
        other => bail!("the worker process reported {other:?} as its counts"),
    }
}
