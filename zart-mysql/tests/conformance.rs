//! The backend conformance suite (`zart-conformance`) run against MySQL or MariaDB.
//!
//! Each case gets a fresh database `zart_c_<pid>_<n>` on the server named by `ZART_MYSQL_URL`
//! (default `mysql://root@127.0.0.1:3306`; `eval "$(ci/mariadb-up)"` prints one for a reachable
//! server, starting a throwaway MariaDB when none answers), migrated, and a scheduler with the
//! test clock on, so `advance_clock` moves the `zart_clock` offset every connection reads. The
//! fixture reads executions and steps with plain SQL on a connection of its own. The database
//! is dropped with the harness, except a failed case's, kept for inspection.
//!
//! ```text
//! ZART_MYSQL_URL=mysql://root@127.0.0.1:3306 cargo test -p zart-mysql --test conformance
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mysql_async::prelude::Queryable;
use support::server_url;
use zart::scheduler::{DynScheduler, StepKind, StepStatus};
use zart::{ErrorRecord, ExecutionStatus};
use zart_conformance::{Backend, ExecutionRow, Fixture, Harness, StepRow};
use zart_mysql::{MySqlOptions, MySqlScheduler};

struct MySql;

static COUNTER: AtomicU32 = AtomicU32::new(0);

#[async_trait]
impl Backend for MySql {
    async fn fresh(&self) -> Harness {
        let (scheduler, store) = fresh_store().await;
        let scheduler: DynScheduler = scheduler;
        Harness::new(scheduler, store)
    }
}

zart_conformance::suite!(MySql);

/// A fresh database, migrated, and a scheduler on it with the test clock on.
async fn fresh_store() -> (Arc<MySqlScheduler>, Store) {
    let name = format!(
        "zart_c_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    );
    let url = support::fresh_database(&name).await;
    // Kept to drop the database when the harness goes (see `Drop for Store`).
    let admin = mysql_async::Pool::new(server_url().as_str());
    zart_mysql::migrate(&url).await.unwrap();
    let scheduler = Arc::new(
        MySqlScheduler::connect_with(&url, MySqlOptions::default().test_clock(true))
            .await
            .unwrap(),
    );
    let store = Store {
        name,
        admin,
        reads: mysql_async::Pool::new(url.as_str()),
        url,
        scheduler: scheduler.clone(),
    };
    (scheduler, store)
}

/// The suite's backend, keeping every scheduler it made.
#[derive(Default)]
struct Watched(std::sync::Mutex<Vec<Arc<MySqlScheduler>>>);

#[async_trait]
impl Backend for Watched {
    async fn fresh(&self) -> Harness {
        let (scheduler, store) = fresh_store().await;
        self.0.lock().unwrap().push(scheduler.clone());
        let scheduler: DynScheduler = scheduler;
        Harness::new(scheduler, store)
    }
}

/// The step results and outcomes of `concurrent_writes_each_get_their_own_answer` are
/// written as groups (`zart_mysql`'s writer): the case passes with no batch falling back to
/// the one-item path, which would give the same answers and hide a broken group.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_writes_are_written_as_groups_not_item_by_item() {
    let backend = Watched::default();
    zart_conformance::cases::concurrent_writes_each_get_their_own_answer(&backend).await;
    let schedulers = backend.0.lock().unwrap().clone();
    assert_eq!(schedulers.len(), 1);
    assert_eq!(
        schedulers[0].batch_splits(),
        0,
        "a batch fell back to item by item"
    );
}

/// One case's database: its name, the scheduler (for the clock) and read connections.
struct Store {
    name: String,
    admin: mysql_async::Pool,
    reads: mysql_async::Pool,
    url: String,
    scheduler: Arc<MySqlScheduler>,
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

type ExecutionTuple = (String, Option<String>, Option<String>, i64, Option<String>);
type StepTuple = (
    String,
    i64,
    String,
    String,
    i64,
    Option<String>,
    Option<String>,
);

#[async_trait]
impl Fixture for Store {
    async fn advance_clock(&self, by: Duration) {
        self.scheduler.advance_test_clock(by).await.unwrap();
    }

    async fn reopen(&self) -> Option<DynScheduler> {
        // The clock's offset is in the database: the new scheduler sees the same time.
        let scheduler =
            MySqlScheduler::connect_with(&self.url, MySqlOptions::default().test_clock(true))
                .await
                .unwrap();
        Some(Arc::new(scheduler))
    }

    async fn execution(&self, id: &str) -> Option<ExecutionRow> {
        let mut conn = self.reads.get_conn().await.unwrap();
        let row: Option<ExecutionTuple> = conn
            .exec_first(
                "select status, output, error, attempts, parent_id from zart_executions
                  where id = ?",
                (id,),
            )
            .await
            .unwrap();
        row.map(
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
        let mut conn = self.reads.get_conn().await.unwrap();
        let rows: Vec<StepTuple> = conn
            .exec(
                "select name, seq, status, kind, attempts, output, error from zart_steps
                  where execution_id = ? order by seq",
                (id,),
            )
            .await
            .unwrap();
        rows.into_iter()
            .map(
                |(name, seq, status, kind, attempts, output, error)| StepRow {
                    name,
                    seq: count(seq),
                    status: serde_json::from_value::<StepStatus>(serde_json::json!(status))
                        .unwrap(),
                    kind: serde_json::from_value::<StepKind>(serde_json::json!(kind)).unwrap(),
                    attempts: count(attempts),
                    output: json(output),
                    error: error_record(error.clone()),
                    error_json: json(error),
                },
            )
            .collect()
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("keeping test database {} for inspection", self.name);
            return;
        }
        let (admin, reads, name) = (self.admin.clone(), self.reads.clone(), self.name.clone());
        // Dropped inside the test's runtime: drop the database on a thread of its own.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let _ = reads.disconnect().await;
                if let Ok(mut conn) = admin.get_conn().await {
                    let _ = conn
                        .query_drop(format!("drop database if exists {name}"))
                        .await;
                }
                drop(admin);
            });
        })
        .join();
    }
}
