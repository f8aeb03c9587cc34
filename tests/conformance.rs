//! The backend conformance suite (`zart-conformance`) run against PostgreSQL.
//!
//! Each case gets a fresh database from the support crate ([`TestDb`], cloned from the migrated
//! template, `zart.test_clock = on`), so `advance_clock` moves `zart_current_time()` for every
//! session. The server comes from `ZART_TEST_DATABASE_URL` or `DATABASE_URL`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::Duration;

use async_trait::async_trait;
use zart::scheduler::{DynScheduler, StepKind, StepStatus};
use zart::{ErrorRecord, ExecutionStatus};
use zart_conformance::{Backend, ExecutionRow, Fixture, Harness, StepRow};
use zart_tests::TestDb;

struct Postgres;

#[async_trait]
impl Backend for Postgres {
    async fn fresh(&self) -> Harness {
        let db = TestDb::new().await;
        let scheduler: DynScheduler = db.scheduler().await;
        let client = db.client().await;
        Harness::new(scheduler, Inspector { db, client })
    }
}

zart_conformance::suite!(Postgres);

/// The case's database, and a connection that reads it.
struct Inspector {
    db: TestDb,
    client: tokio_postgres::Client,
}

fn error_record(value: Option<serde_json::Value>) -> Option<ErrorRecord> {
    value.map(|v| serde_json::from_value(v).unwrap())
}

fn count(n: i32) -> u32 {
    u32::try_from(n).unwrap()
}

fn parse<T: serde::de::DeserializeOwned>(name: String) -> T {
    serde_json::from_value(serde_json::Value::String(name)).unwrap()
}

#[async_trait]
impl Fixture for Inspector {
    async fn advance_clock(&self, by: Duration) {
        self.db.advance_clock(by).await;
    }

    async fn reopen(&self) -> Option<DynScheduler> {
        Some(self.db.scheduler().await)
    }

    async fn execution(&self, id: &str) -> Option<ExecutionRow> {
        let row = self
            .client
            .query_opt(
                "select status, output, error, attempts, parent_id from zart_execution_status
                  where id = $1",
                &[&id],
            )
            .await
            .unwrap()?;
        Some(ExecutionRow {
            status: ExecutionStatus::parse(row.get(0)).unwrap(),
            output: row.get(1),
            error: error_record(row.get(2)),
            attempts: count(row.get(3)),
            parent_id: row.get(4),
        })
    }

    async fn steps(&self, id: &str) -> Vec<StepRow> {
        let rows = self
            .client
            .query(
                "select name, seq, status, kind, attempts, output, error from zart_steps
                  where execution_id = $1 order by seq",
                &[&id],
            )
            .await
            .unwrap();
        rows.iter()
            .map(|r| StepRow {
                name: r.get(0),
                seq: count(r.get(1)),
                status: parse::<StepStatus>(r.get(2)),
                kind: parse::<StepKind>(r.get(3)),
                attempts: count(r.get(4)),
                output: r.get(5),
                error: error_record(r.get(6)),
                error_json: r.get(6),
            })
            .collect()
    }
}
