//! Test support: a fresh, migrated PostgreSQL database per test, cloned from a template, and
//! helpers to wait for conditions without fixed sleeps.
//!
//! The server comes from `ZART_TEST_DATABASE_URL` or `DATABASE_URL` (`ci/pg-up` sets it). Tests
//! fail, never skip, when no server is reachable.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

pub mod citus;
pub mod faults;
pub mod logins;
pub mod mysql;
pub mod pg_up;
pub mod sidecar;
pub mod tasks;

pub use pg_up::is_root;

use std::future::Future;
use std::hash::{Hash, Hasher};
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_postgres::NoTls;
use zart_pg::{PgPool, PostgresScheduler};

/// The server URL tests run against.
pub fn server_url() -> String {
    std::env::var("ZART_TEST_DATABASE_URL")
        .or_else(|_| std::env::var("DATABASE_URL"))
        .expect(
            "set DATABASE_URL to a PostgreSQL server for the tests (ci/test does it through ci/pg-up)",
        )
}

/// `url` with its database name replaced.
pub fn url_with_db(url: &str, db: &str) -> String {
    let mut config = tokio_postgres::Config::from_str(url).expect("DATABASE_URL does not parse");
    config.dbname(db);
    // Rebuild a URL from the parts tests need (host, port, user, password).
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(p)) => urlencode(&p.to_string_lossy()),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("postgres");
    let auth = match config.get_password() {
        Some(pw) => format!(
            "{}:{}",
            urlencode(user),
            urlencode(&String::from_utf8_lossy(pw))
        ),
        None => urlencode(user),
    };
    // A Citus cluster's nodes offer TLS with a certificate rustls refuses (docs/scale.md):
    // its URL says sslmode=disable, and so must every URL made from it.
    let query = match config.get_ssl_mode() {
        tokio_postgres::config::SslMode::Disable => "?sslmode=disable",
        _ => "",
    };
    format!("postgres://{auth}@{host}:{port}/{}{query}", urlencode(db))
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"));
    tokio::spawn(conn);
    client
}

/// The template's name: it changes whenever a migration or the functions change.
fn template_name() -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    zart_pg::FUNCTIONS_SQL.hash(&mut hasher);
    zart_pg::ROLES_SQL.hash(&mut hasher);
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../zart-pg/migrations");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("migrations folder")
        .map(|e| e.expect("dir entry").path())
        .collect();
    files.sort();
    for f in files {
        std::fs::read_to_string(&f)
            .expect("migration")
            .hash(&mut hasher);
    }
    format!("zart_tpl_{:016x}", hasher.finish())
}

/// Creates the migrated template once per server (serialised by an advisory lock).
async fn ensure_template(admin: &tokio_postgres::Client, server: &str) -> String {
    let name = template_name();
    admin
        .execute("select pg_advisory_lock(7215201002)", &[])
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
        admin
            .batch_execute(&format!("drop database if exists {name} with (force)"))
            .await
            .unwrap();
        admin
            .batch_execute(&format!("create database {name}"))
            .await
            .unwrap();
        let config = tokio_postgres::Config::from_str(&url_with_db(server, &name)).unwrap();
        zart_pg::migrate(&config)
            .await
            .unwrap_or_else(|e| panic!("migrating the template failed: {e:#?}"));
        admin
            .batch_execute(&format!("comment on database {name} is 'ready'"))
            .await
            .unwrap();
    }
    admin
        .execute("select pg_advisory_unlock(7215201002)", &[])
        .await
        .unwrap();
    name
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A fresh migrated database, dropped when this value is dropped.
pub struct TestDb {
    pub name: String,
    pub url: String,
    server: String,
    /// On a Citus cluster: always dropped, even after a failure (each database there keeps
    /// background workers and connections on every node, and a run of failures would use
    /// them up).
    citus: bool,
}

impl TestDb {
    /// Creates a database cloned from the migrated template (on a Citus cluster: a database
    /// of its own on every node, migrated; see [`citus`]).
    pub async fn new() -> TestDb {
        let server = server_url();
        let admin = connect(&url_with_db(&server, "postgres")).await;
        if let Some(workers) = citus::workers(&admin).await {
            return citus::new_db(&server, &workers).await;
        }
        let template = ensure_template(&admin, &server).await;
        let name = format!(
            "zart_t_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst),
            rand_suffix()
        );
        let mut tries = 0;
        loop {
            match admin
                .batch_execute(&format!("create database {name} template {template}"))
                .await
            {
                Ok(()) => break,
                // "source database is being accessed by other users": another clone in flight.
                Err(e) if tries < 50 => {
                    tries += 1;
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("cannot create test database {name}: {e}"),
            }
        }
        // Every session of a test database runs on the test clock (see advance_clock).
        admin
            .batch_execute(&format!("alter database {name} set zart.test_clock = 'on'"))
            .await
            .unwrap();
        TestDb {
            url: url_with_db(&server, &name),
            name,
            server,
            citus: false,
        }
    }

    /// Moves the database clock (`zart_current_time()`) forward by `by` for every session, then
    /// wakes the workers of the default queue so they look for work due at the new time.
    pub async fn advance_clock(&self, by: Duration) {
        let client = self.client().await;
        let ms = i64::try_from(by.as_millis()).unwrap();
        client
            .execute(
                "insert into zart_clock (clock_offset) values ($1::bigint * interval '1 millisecond')
                 on conflict (singleton) do update
                 set clock_offset = zart_clock.clock_offset + excluded.clock_offset",
                &[&ms],
            )
            .await
            .unwrap();
        client
            .execute("select pg_notify('zart_work', 'default')", &[])
            .await
            .unwrap();
    }

    /// An empty database with no Zart schema.
    pub async fn empty() -> TestDb {
        let server = server_url();
        let admin = connect(&url_with_db(&server, "postgres")).await;
        let name = format!(
            "zart_t_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst),
            rand_suffix()
        );
        admin
            .batch_execute(&format!("create database {name}"))
            .await
            .unwrap();
        TestDb {
            url: url_with_db(&server, &name),
            name,
            server,
            citus: false,
        }
    }

    /// A scheduler on this database.
    pub async fn scheduler(&self) -> Arc<PostgresScheduler> {
        Arc::new(PostgresScheduler::new(
            PgPool::connect_lazy(&self.url, 8).unwrap(),
        ))
    }

    /// A plain client, for assertions in SQL.
    pub async fn client(&self) -> tokio_postgres::Client {
        connect(&self.url).await
    }

    /// The connection settings.
    pub fn config(&self) -> tokio_postgres::Config {
        tokio_postgres::Config::from_str(&self.url).unwrap()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if std::thread::panicking() && !self.citus {
            eprintln!("keeping test database {} for inspection", self.name);
            return;
        }
        let admin_url = url_with_db(&self.server, "postgres");
        let name = self.name.clone();
        // Drop from a thread with its own runtime: Drop cannot await.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                if let Ok((client, conn)) = tokio_postgres::connect(&admin_url, NoTls).await {
                    tokio::spawn(conn);
                    let workers = citus::workers(&client).await.unwrap_or_default();
                    let _ = client
                        .batch_execute(&format!("drop database if exists {name} with (force)"))
                        .await;
                    for worker in workers {
                        citus::drop_db(&worker, &name).await;
                    }
                }
            });
        })
        .join();
    }
}

fn rand_suffix() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    nanos % 100_000
}

/// Polls `check` until it returns `Some`, or panics naming `what` after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One integer from a SQL query.
pub async fn count(client: &tokio_postgres::Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

/// The first column of every row of a SQL query, in row order.
pub async fn column<T: tokio_postgres::types::FromSqlOwned>(
    client: &tokio_postgres::Client,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Vec<T> {
    client
        .query(sql, params)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Logs to the test output when `RUST_LOG` is set.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off")),
        )
        .with_test_writer()
        .try_init();
}

/// Starts the `zart-test-worker` binary (pass `env!("CARGO_BIN_EXE_zart-test-worker")`, which
/// only integration tests can name) on `db` with 1.5 s leases, and waits until it is ready.
pub async fn spawn_worker_process(bin: &str, db: &TestDb) -> tokio::process::Child {
    spawn_worker_process_with(bin, db, &[]).await
}

/// [`spawn_worker_process`] with extra environment variables (`ZART_TEST_LEASE_MS`,
/// `ZART_TEST_CONCURRENCY`, `ZART_TEST_MAX_RECOVERIES`).
pub async fn spawn_worker_process_with(
    bin: &str,
    db: &TestDb,
    env: &[(&str, &str)],
) -> tokio::process::Child {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(bin)
        .envs(env.iter().copied())
        .env("DATABASE_URL", &db.url)
        .env(
            "ZART_TEST_LEASE_MS",
            env.iter()
                .find(|(k, _)| *k == "ZART_TEST_LEASE_MS")
                .map_or("1500", |(_, v)| *v),
        )
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn zart-test-worker");
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("worker did not start in time")
        .unwrap()
        .expect("worker exited before it was ready");
    assert!(
        line.starts_with("ready"),
        "unexpected worker output {line:?}"
    );
    child
}

/// Kills a worker process with SIGKILL and reaps it.
pub async fn kill_process(mut child: tokio::process::Child) {
    child.start_kill().unwrap();
    child.wait().await.unwrap();
}

/// A migrated database with a scheduler, a registry, a client and any number of in-process
/// workers: the setup most suites share.
pub struct Harness {
    pub db: TestDb,
    pub scheduler: Arc<PostgresScheduler>,
    pub registry: Arc<zart::TaskRegistry>,
    pub durable: zart::DurableScheduler<PostgresScheduler>,
    workers: std::sync::Mutex<Vec<RunningWorker>>,
}

type RunningWorker = (
    zart::ShutdownHandle,
    tokio::task::JoinHandle<Result<(), zart::Error>>,
);

impl Harness {
    /// A fresh database with the side-effect table and every task of [`tasks::registry`].
    pub async fn new() -> Harness {
        let db = TestDb::new().await;
        db.client()
            .await
            .batch_execute(tasks::SETUP_SQL)
            .await
            .unwrap();
        let pool = PgPool::connect_lazy(&db.url, 4).unwrap();
        let registry = tasks::registry(pool.pool().clone());
        Harness::build(db, registry).await
    }

    /// A fresh database and the given registry.
    pub async fn with_registry(registry: zart::TaskRegistry) -> Harness {
        Harness::build(TestDb::new().await, registry).await
    }

    async fn build(db: TestDb, registry: zart::TaskRegistry) -> Harness {
        let scheduler = db.scheduler().await;
        let registry = Arc::new(registry);
        let durable = zart::DurableScheduler::new(scheduler.clone(), registry.clone());
        Harness {
            db,
            scheduler,
            registry,
            durable,
            workers: std::sync::Mutex::default(),
        }
    }

    /// Starts an in-process worker (signal handling off); [`Harness::stop`] ends it.
    pub fn spawn_worker(&self, config: zart::WorkerConfig) -> zart::ShutdownHandle {
        let worker = zart::Worker::new(
            self.scheduler.clone(),
            self.registry.clone(),
            config.with_handle_signals(false),
        );
        let stop = worker.shutdown_handle();
        let handle = tokio::spawn(worker.run());
        self.workers.lock().unwrap().push((stop.clone(), handle));
        stop
    }

    /// Shuts every worker down and checks each ended without error.
    pub async fn stop(self) {
        let workers = std::mem::take(&mut *self.workers.lock().unwrap());
        for (stop, _) in &workers {
            stop.shutdown();
        }
        for (_, handle) in workers {
            handle.await.unwrap().unwrap();
        }
    }
}

/// Where the binary `name` of this package is: next to the running executable (a driver such
/// as `zart-chaos` finds `zart-test-worker` so). When it is missing and the driver was launched
/// by `cargo run` (which builds only the selected binary), it is built with the same profile
/// first, so the documented commands work on a fresh checkout.
///
/// # Errors
/// When it is missing and cannot be built.
pub fn sibling_binary(name: &str) -> anyhow::Result<std::path::PathBuf> {
    use anyhow::{bail, Context as _};
    use std::path::Path;
    let exe = std::env::current_exe().context("locating the running executable")?;
    let path = exe.with_file_name(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if path.exists() {
        return Ok(path);
    }
    let profile = exe
        .parent()
        .and_then(Path::file_name)
        .and_then(|p| p.to_str())
        .unwrap_or("debug")
        .to_owned();
    if let Ok(cargo) = std::env::var("CARGO") {
        let mut cmd = std::process::Command::new(cargo);
        cmd.args(["build", "-p", "zart-tests", "--bin", name]);
        match profile.as_str() {
            "debug" => {}
            "release" => {
                cmd.arg("--release");
            }
            other => {
                cmd.args(["--profile", other]);
            }
        }
        eprintln!(
            "zart-chaos: {} is missing; building it: {cmd:?}",
            path.display()
        );
        let status = cmd.status().context("running cargo build")?;
        if status.success() && path.exists() {
            return Ok(path);
        }
    }
    let release = if profile == "release" {
        " --release"
    } else {
        ""
    };
    bail!(
        "the worker binary {} does not exist: build it first with \
         `cargo build{release} -p zart-tests --bins`",
        path.display()
    )
}

/// Runs a driver binary (`zart-chaos`, `zart-soak`: pass `env!("CARGO_BIN_EXE_<name>")`) with
/// `args` and `--json <a temporary file>`, without the environment variables `unset`, for at
/// most `limit`; prints its output (workers' log lines left out), fails the test unless it
/// exits 0, and returns its JSON report.
pub async fn run_driver(
    bin: &str,
    args: &[&str],
    unset: &[&str],
    limit: Duration,
) -> serde_json::Value {
    static N: AtomicU32 = AtomicU32::new(0);
    let name = std::path::Path::new(bin)
        .file_name()
        .map_or_else(|| "driver".into(), |n| n.to_string_lossy().into_owned());
    let json = std::env::temp_dir().join(format!(
        "{name}-{}-{}.json",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let mut command = tokio::process::Command::new(bin);
    command
        .args(args)
        .arg("--json")
        .arg(&json)
        .kill_on_drop(true);
    for key in unset {
        command.env_remove(key);
    }
    let out = tokio::time::timeout(limit, command.output())
        .await
        .unwrap_or_else(|_| panic!("{name} did not finish within {limit:?}"))
        .unwrap_or_else(|e| panic!("run {name}: {e}"));
    eprintln!(
        "{}{}",
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| !l.starts_with("[worker"))
            .collect::<Vec<_>>()
            .join("\n"),
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        out.status.success(),
        "{name} {args:?} failed: {}",
        out.status
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("the JSON report")).unwrap();
    let _ = std::fs::remove_file(&json);
    report
}

/// Transactions committed in this database so far (flushing this session's counts first).
pub async fn transactions(client: &tokio_postgres::Client) -> i64 {
    let rows = client
        .simple_query(
            "select pg_stat_force_next_flush();
             select xact_commit + xact_rollback from pg_stat_database where datname = current_database()",
        )
        .await
        .unwrap();
    rows.iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
            _ => None,
        })
        .last()
        .unwrap()
        .parse()
        .unwrap()
}
