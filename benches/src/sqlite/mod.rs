//! The parts of `zart-load-sqlite`, the SQLite load driver: a scratch database file, the raw
//! rusqlite baselines (S0, S1, SB), drains (Q2, Q3), the worker process of Q4x and Q6x, and an
//! idle worker's cost (Q6, Q6x). The backend-neutral phases (pickup sampling, the drain loop,
//! the worker process's protocol) are in [`crate::common`].
//!
//! Every connection, raw or Zart's, uses the settings Zart uses: `journal_mode=WAL` and the
//! run's `synchronous` (FULL unless `--synchronous normal`).

pub mod child;
pub mod drain;
pub mod idle;
pub mod raw;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use rusqlite::Connection;
use zart_sqlite::{SqliteOptions, SqliteScheduler, Synchronous};

/// A database file in a fresh temporary directory, deleted with the directory on drop.
#[derive(Debug)]
pub struct ScratchFile {
    dir: PathBuf,
    path: PathBuf,
}

impl ScratchFile {
    /// Creates `<temp dir>/zart-load-sqlite-<pid>-<nonce>/` and names `zart.db` in it (the
    /// file is created by [`zart_sqlite::migrate`]).
    ///
    /// # Errors
    /// When the directory cannot be created.
    pub fn create(nonce: &str) -> Result<ScratchFile> {
        let dir =
            std::env::temp_dir().join(format!("zart-load-sqlite-{}-{nonce}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join("zart.db");
        Ok(ScratchFile { dir, path })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file as a `sqlite://` URL.
    pub fn url(&self) -> String {
        url_of(&self.path)
    }
}

impl Drop for ScratchFile {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            eprintln!(
                "zart-load-sqlite: could not delete {}: {e}",
                self.dir.display()
            );
        }
    }
}

/// `path` as a `sqlite://` URL (absolute paths give `sqlite:///...`).
pub fn url_of(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

/// The `PRAGMA synchronous` value of `sync`.
pub fn pragma_value(sync: Synchronous) -> &'static str {
    match sync {
        Synchronous::Full => "full",
        Synchronous::Normal => "normal",
    }
}

/// Opens a plain rusqlite connection to `path` with Zart's settings: WAL, `sync`, and the
/// busy timeout of [`SqliteOptions::default`] (5 s).
///
/// # Errors
/// When the file cannot be opened or a pragma fails.
pub fn raw_connection(path: &Path, sync: Synchronous) -> Result<Connection> {
    let conn = Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let _mode: String = conn.query_row("pragma journal_mode = wal", [], |r| r.get(0))?;
    conn.pragma_update(None, "synchronous", pragma_value(sync))?;
    Ok(conn)
}

/// A scheduler on `url` with `sync`, counting its statements when `count` (see
/// [`SqliteOptions::count_statements`]).
///
/// # Errors
/// When the database cannot be opened.
pub async fn scheduler(url: &str, sync: Synchronous, count: bool) -> Result<Arc<SqliteScheduler>> {
    let options = SqliteOptions::default()
        .synchronous(sync)
        .count_statements(count);
    let scheduler = SqliteScheduler::connect_with(url, options)
        .await
        .with_context(|| format!("opening {url}"))?;
    Ok(Arc::new(scheduler))
}

/// A rusqlite connection used from async code: each call runs on tokio's blocking pool.
#[derive(Clone)]
pub struct Blocking(Arc<Mutex<Connection>>);

impl Blocking {
    /// Wraps `conn`.
    pub fn new(conn: Connection) -> Blocking {
        Blocking(Arc::new(Mutex::new(conn)))
    }

    /// Runs `work` with the connection on the blocking pool.
    ///
    /// # Errors
    /// What `work` returns, or a failed blocking task.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let conn = self.0.clone();
        tokio::task::spawn_blocking(move || {
            let conn = conn
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            work(&conn)
        })
        .await
        .context("a blocking SQLite task failed")?
    }
}
