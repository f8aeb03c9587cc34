//! The backend conformance suite (`zart-conformance`) run against SQLite.
//!
//! Each case gets a fresh, migrated database file in its own temporary directory, and a
//! scheduler with the test clock on, so `advance_clock` moves the `zart_clock` offset that
//! every connection reads. The fixture reads executions and steps with plain SQL on a
//! connection of its own. A failed case's directory is kept for inspection.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension};
use zart::scheduler::{DynScheduler, StepKind, StepStatus};
use zart::{ErrorRecord, ExecutionStatus};
use zart_conformance::{Backend, ExecutionRow, Fixture, Harness, StepRow};
use zart_sqlite::{SqliteOptions, SqliteScheduler};

struct Sqlite;

static COUNTER: AtomicU32 = AtomicU32::new(0);

#[async_trait]
impl Backend for Sqlite {
    async fn fresh(&self) -> Harness {
        let dir = std::env::temp_dir().join(format!(
            "zart-sqlite-conf-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("zart.db");
        let url = format!("sqlite://{}", file.display());
        zart_sqlite::migrate(&url).await.unwrap();
        let scheduler = Arc::new(
            SqliteScheduler::connect_with(&url, SqliteOptions::default().test_clock(true))
                .await
                .unwrap(),
        );
        let conn = Connection::open(&file).unwrap();
        conn.busy_timeout(Duration::from_secs(5)).unwrap();
        let store = Store {
            dir,
            url,
            scheduler: scheduler.clone(),
            conn: Mutex::new(conn),
        };
        let scheduler: DynScheduler = scheduler;
        Harness::new(scheduler, store)
    }
}

zart_conformance::suite!(Sqlite);

/// One case's database: its directory, the scheduler (for the clock) and a read connection.
struct Store {
    dir: PathBuf,
    url: String,
    scheduler: Arc<SqliteScheduler>,
    conn: Mutex<Connection>,
}

fn json(text: Option<String>) -> Option<serde_json::Value> {
    text.map(|t| serde_json::from_str(&t).unwrap())
}

fn error_record(text: Option<String>) -> Option<ErrorRecord> {
    text.map(|t| serde_json::from_str(&t).unwrap())
}

fn count(n: i64) -> u32 {
    u32::try_from(n).unwrap()
}

#[async_trait]
impl Fixture for Store {
    async fn advance_clock(&self, by: Duration) {
        self.scheduler.advance_test_clock(by).await.unwrap();
    }

    async fn reopen(&self) -> Option<DynScheduler> {
        // The clock's offset is in the file: the new scheduler sees the same time.
        let scheduler =
            SqliteScheduler::connect_with(&self.url, SqliteOptions::default().test_clock(true))
                .await
                .unwrap();
        Some(Arc::new(scheduler))
    }

    async fn execution(&self, id: &str) -> Option<ExecutionRow> {
        let conn = self.conn.lock().unwrap();
        conn.query_row(
            "select status, output, error, attempts, parent_id from zart_executions where id = ?1",
            [id],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, Option<String>>(4)?,
                ))
            },
        )
        .optional()
        .unwrap()
        .map(
            |(status, output, error, attempts, parent_id)| ExecutionRow {
                status: ExecutionStatus::parse(&status).unwrap(),
                output: json(output),
                error: error_record(error),
                attempts: count(attempts),
                parent_id,
            },
        )
    }

    async fn steps(&self, id: &str) -> Vec<StepRow> {
        let conn = self.conn.lock().unwrap();
        let mut stmt = conn
            .prepare(
                "select name, seq, status, kind, attempts, output, error from zart_steps
                  where execution_id = ?1 order by seq",
            )
            .unwrap();
        stmt.query_map([id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, Option<String>>(5)?,
                r.get::<_, Option<String>>(6)?,
            ))
        })
        .unwrap()
        .map(|row| {
            let (name, seq, status, kind, attempts, output, error) = row.unwrap();
            StepRow {
                name,
                seq: count(seq),
                status: serde_json::from_value::<StepStatus>(serde_json::json!(status)).unwrap(),
                kind: serde_json::from_value::<StepKind>(serde_json::json!(kind)).unwrap(),
                attempts: count(attempts),
                output: json(output),
                error: error_record(error.clone()),
                error_json: json(error),
            }
        })
        .collect()
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "keeping test database {} for inspection",
                self.dir.display()
            );
            return;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
