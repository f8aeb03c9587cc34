//! The backend conformance suite (`zart-conformance`) run against PostgreSQL.
//!
//! Each case gets a fresh database cloned from a migrated template (the same template, built
//! the same way, as the `tests` crate's suites use), with `zart.test_clock = on` so that
//! `advance_clock` moves `zart_current_time()` for every session. The server comes from
//! `ZART_TEST_DATABASE_URL` or `DATABASE_URL`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::hash::{Hash, Hasher};
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio_postgres::{Client, Config, NoTls};
use zart::scheduler::{DynScheduler, StepKind, StepStatus};
use zart::{ErrorRecord, ExecutionStatus};
use zart_conformance::{Backend, ExecutionRow, Fixture, Harness, StepRow};
use zart_pg::{PgPool, PostgresScheduler};

/// Serialises template creation across test processes (the `tests` crate uses the same key).
const TEMPLATE_LOCK: i64 = 7_215_201_002;

struct Postgres;

#[async_trait]
impl Backend for Postgres {
    async fn fresh(&self) -> Harness {
        let db = TestDb::create().await;
        let scheduler: DynScheduler = Arc::new(PostgresScheduler::new(
            PgPool::connect_lazy(&db.url(), 8).unwrap(),
        ));
        Harness::new(scheduler, db)
    }
}

zart_conformance::suite!(Postgres);

/// The server tests run against.
fn server() -> Config {
    let url = std::env::var("ZART_TEST_DATABASE_URL")
        .or_else(|_| std::env::var("DATABASE_URL"))
        .expect("set DATABASE_URL to a PostgreSQL server (ci/test does it through ci/pg-up)");
    Config::from_str(&url).expect("DATABASE_URL does not parse")
}

async fn connect(config: &Config) -> Client {
    let (client, connection) = config
        .connect(NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to PostgreSQL: {e}"));
    tokio::spawn(connection);
    client
}

fn with_db(config: &Config, db: &str) -> Config {
    let mut config = config.clone();
    config.dbname(db);
    config
}

/// The template's name: it changes whenever a migration or the functions change.
fn template_name() -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    zart_pg::FUNCTIONS_SQL.hash(&mut hasher);
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in files {
        std::fs::read_to_string(&f).unwrap().hash(&mut hasher);
    }
    format!("zart_tpl_{:016x}", hasher.finish())
}

/// Creates the migrated template once per server; a template is marked ready by a comment.
async fn ensure_template(admin: &Client, server: &Config) -> String {
    let name = template_name();
    admin
        .execute("select pg_advisory_lock($1)", &[&TEMPLATE_LOCK])
        .await
        .unwrap();
    let ready: Option<String> = admin
        .query_opt(
            "select shobj_description(oid, 'pg_database') from pg_database where datname = $1",
            &[&name],
        )
        .await
        .unwrap()
        .and_then(|r| r.get(0));
    if ready.as_deref() != Some("ready") {
        for sql in [
            format!("drop database if exists {name} with (force)"),
            format!("create database {name}"),
        ] {
            admin.batch_execute(&sql).await.unwrap();
        }
        zart_pg::migrate(&with_db(server, &name))
            .await
            .unwrap_or_else(|e| panic!("migrating the template failed: {e:#?}"));
        admin
            .batch_execute(&format!("comment on database {name} is 'ready'"))
            .await
            .unwrap();
    }
    admin
        .execute("select pg_advisory_unlock($1)", &[&TEMPLATE_LOCK])
        .await
        .unwrap();
    name
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A database of one case, cloned from the template and dropped with this value (kept when the
/// case fails, for inspection; `ci/test` drops leftovers).
struct TestDb {
    name: String,
    server: Config,
    client: Client,
}

impl TestDb {
    async fn create() -> TestDb {
        let server = server();
        let admin = connect(&with_db(&server, "postgres")).await;
        let template = ensure_template(&admin, &server).await;
        let name = format!(
            "zart_t_conf_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let mut tries = 0;
        while let Err(e) = admin
            .batch_execute(&format!("create database {name} template {template}"))
            .await
        {
            // "source database is being accessed by other users": another clone in flight.
            tries += 1;
            assert!(tries < 100, "cannot create test database {name}: {e}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        admin
            .batch_execute(&format!("alter database {name} set zart.test_clock = 'on'"))
            .await
            .unwrap();
        let client = connect(&with_db(&server, &name)).await;
        TestDb {
            name,
            server,
            client,
        }
    }

    fn url(&self) -> String {
        let host = match self.server.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            _ => "localhost".to_owned(),
        };
        let port = self.server.get_ports().first().copied().unwrap_or(5432);
        let user = self.server.get_user().unwrap_or("postgres");
        let password = self
            .server
            .get_password()
            .map(|p| format!(":{}", encode(&String::from_utf8_lossy(p))))
            .unwrap_or_default();
        format!(
            "postgres://{}{password}@{host}:{port}/{}",
            encode(user),
            self.name
        )
    }
}

/// Percent-encodes everything but unreserved URL characters.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn error_record(value: Option<serde_json::Value>) -> Option<ErrorRecord> {
    value.map(|v| serde_json::from_value(v).unwrap())
}

fn count(n: i32) -> u32 {
    u32::try_from(n).unwrap()
}

#[async_trait]
impl Fixture for TestDb {
    async fn advance_clock(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap();
        self.client
            .execute(
                "insert into zart_clock (clock_offset) values ($1::bigint * interval '1 millisecond')
                 on conflict (singleton) do update
                 set clock_offset = zart_clock.clock_offset + excluded.clock_offset",
                &[&ms],
            )
            .await
            .unwrap();
        self.client
            .execute("select pg_notify('zart_work', 'default')", &[])
            .await
            .unwrap();
    }

    async fn execution(&self, id: &str) -> Option<ExecutionRow> {
        let row = self
            .client
            .query_opt(
                "select status, output, error, attempts, parent_id from zart_executions
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
                status: serde_json::from_value::<StepStatus>(serde_json::json!(
                    r.get::<_, String>(2)
                ))
                .unwrap(),
                kind: serde_json::from_value::<StepKind>(serde_json::json!(r.get::<_, String>(3)))
                    .unwrap(),
                attempts: count(r.get(4)),
                output: r.get(5),
                error: error_record(r.get(6)),
            })
            .collect()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("keeping test database {} for inspection", self.name);
            return;
        }
        let (admin, name) = (with_db(&self.server, "postgres"), self.name.clone());
        // Drop from a thread with its own runtime: Drop cannot await.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                if let Ok((client, connection)) = admin.connect(NoTls).await {
                    tokio::spawn(connection);
                    let _ = client
                        .batch_execute(&format!("drop database if exists {name} with (force)"))
                        .await;
                }
            });
        })
        .join();
    }
}
