//! Connections: the pragmas of each kind, and the small pool of read connections.
//!
//! Every connection has a busy timeout and `foreign_keys=OFF`; the write connection (and the
//! migration's) also sets `journal_mode=WAL` and the chosen `synchronous`. Reads
//! (`get_execution`, `next_run_at`, `check_schema`) take the pool's connections in turn and
//! run on tokio's blocking pool; under WAL they never wait for the writer.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use zart::Error;

use crate::counting::{counting, Counters};
use crate::errors::{internal, SqlResult};
use crate::writer::lock;
use crate::{SqliteOptions, Synchronous};

/// Sets the write connection's pragmas. Switching a new file to WAL needs the file to itself
/// for a moment, and SQLite answers `SQLITE_BUSY` at once (without waiting) when two
/// connections try it together; so a busy answer is tried again until the busy timeout.
pub(crate) fn configure_writer(conn: &Connection, options: &SqliteOptions) -> Result<(), Error> {
    let deadline = std::time::Instant::now() + options.busy_timeout;
    loop {
        match set_writer_pragmas(conn, options) {
            Err(Error::Contention { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            other => return other,
        }
    }
}

fn set_writer_pragmas(conn: &Connection, options: &SqliteOptions) -> Result<(), Error> {
    // WAL persists in the file; an in-memory database answers "memory" and keeps it.
    let _mode: String = conn
        .query_row("pragma journal_mode = wal", [], |r| r.get(0))
        .or_db(conn, "switching to WAL")?;
    let sync = match options.synchronous {
        Synchronous::Full => "full",
        Synchronous::Normal => "normal",
    };
    conn.pragma_update(None, "synchronous", sync)
        .or_db(conn, "setting synchronous")?;
    conn.pragma_update(None, "foreign_keys", "off")
        .or_db(conn, "setting foreign_keys")?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(())
}

/// Prepared statements kept per connection: more than the writer's distinct statements (all
/// constants in `queries.rs`), so none is parsed twice.
const STATEMENT_CACHE: usize = 96;

/// Sets a read connection's pragmas.
pub(crate) fn configure_reader(conn: &Connection) -> Result<(), Error> {
    conn.pragma_update(None, "foreign_keys", "off")
        .or_db(conn, "setting foreign_keys")?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.pragma_update(None, "query_only", "on")
        .or_db(conn, "setting query_only")
}

/// Read connections, taken in turn.
pub(crate) struct ReadPool {
    conns: Vec<Arc<Mutex<Connection>>>,
    next: AtomicUsize,
    counters: Arc<Counters>,
}

impl ReadPool {
    pub(crate) fn new(conns: Vec<Arc<Mutex<Connection>>>, counters: Arc<Counters>) -> Self {
        ReadPool {
            conns,
            next: AtomicUsize::new(0),
            counters,
        }
    }

    /// Runs `read` on the next connection, on the blocking pool.
    pub(crate) async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let conn = self
            .conns
            .get(n % self.conns.len().max(1))
            .ok_or_else(|| internal("no read connection"))?
            .clone();
        let counters = self.counters.clone();
        tokio::task::spawn_blocking(move || counting(&counters, || read(&lock(&conn))))
            .await
            .map_err(|e| internal(format!("a SQLite read task failed: {e}")))?
    }
}
