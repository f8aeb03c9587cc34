//! TLS on every connection path (the pool, the scheduler's LISTEN connection, `migrate`) and
//! each `sslmode`, against a private throwaway cluster with `ssl = on` and a certificate for
//! `localhost` and `127.0.0.1` signed by a CA made here (rcgen). The cluster is started with
//! `ci/pg-up` (never the shared server) and stopped with `ci/pg-down` when the test ends, even
//! on failure.
//!
//! One cluster serves every case, run one after another in a single test; a panicking case
//! fails the test with its name, and the others still run. The database `zart_tls` takes only
//! TLS connections (pg_hba.conf `hostnossl ... reject`): a path that connected without TLS
//! fails there even where nothing can be asked of its connection (`migrate`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::future::Future;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use zart::scheduler::Wakeup;
use zart::{Error, Scheduler};
use zart_pg::{PgPool, PostgresScheduler};
use zart_tests::pg_up::PgUp;
use zart_tests::{init_tracing, wait_for};

/// The database that refuses connections without TLS.
const TLS_ONLY_DB: &str = "zart_tls";

// ---------------------------------------------------------------------------------------------
// The private cluster, with certificates.

/// The private cluster and the CA files, deleted when dropped.
struct TlsCluster {
    /// Stops and deletes the cluster when dropped.
    _cluster: PgUp,
    port: u16,
    dir: PathBuf,
    /// The CA that signed the server's certificate.
    ca: PathBuf,
    /// A CA that signed nothing the server has.
    other_ca: PathBuf,
}

impl Drop for TlsCluster {
    fn drop(&mut self) {
        for file in [&self.ca, &self.other_ca] {
            let _ = std::fs::remove_file(file);
        }
    }
}

/// A CA certificate and key.
fn make_ca(name: &str) -> (rcgen::Certificate, rcgen::KeyPair) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    (params.self_signed(&key).unwrap(), key)
}

impl TlsCluster {
    /// Starts the cluster, installs a server certificate (`ssl` stays off until
    /// [`TlsCluster::set_ssl`]) and lets only TLS into `TLS_ONLY_DB` (blocking: call it from
    /// `spawn_blocking`).
    fn start() -> TlsCluster {
        let cluster = PgUp::start();
        let tmp = std::env::temp_dir();
        let pid = std::process::id();
        let cluster = TlsCluster {
            port: cluster.port(),
            dir: cluster.dir(),
            ca: tmp.join(format!("zart-tls-ca-{pid}.pem")),
            other_ca: tmp.join(format!("zart-tls-other-ca-{pid}.pem")),
            _cluster: cluster,
        };

        let (ca, ca_key) = make_ca("zart test CA");
        let (other_ca, _) = make_ca("zart other CA");
        let server_key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "localhost");
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let server = params.signed_by(&server_key, &ca, &ca_key).unwrap();
        std::fs::write(&cluster.ca, ca.pem()).unwrap();
        std::fs::write(&cluster.other_ca, other_ca.pem()).unwrap();

        // The server runs as the data dir's owner and wants its key readable by it alone.
        let owner = std::fs::metadata(&cluster.dir).unwrap();
        let install = |name: &str, text: String| {
            let path = cluster.dir.join(name);
            std::fs::write(&path, text).unwrap();
            std::os::unix::fs::chown(&path, Some(owner.uid()), Some(owner.gid())).unwrap();
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .unwrap();
        };
        install("server.crt", server.pem());
        install("server.key", server_key.serialize_pem());
        // Plain connections are refused for TLS_ONLY_DB alone (the first matching line wins).
        let hba = cluster.dir.join("pg_hba.conf");
        let rules = std::fs::read_to_string(&hba).unwrap();
        std::fs::write(
            &hba,
            format!("hostnossl {TLS_ONLY_DB} all all reject\n{rules}"),
        )
        .unwrap();
        cluster
    }

    /// A URL on this cluster: `host`, then `query` (without the `?`).
    fn url(&self, host: &str, db: &str, query: &str) -> String {
        format!("postgres://postgres@{host}:{}/{db}?{query}", self.port)
    }

    /// A plain connection to the `postgres` database, for setting the server up.
    async fn admin(&self) -> tokio_postgres::Client {
        let url = self.url("127.0.0.1", "postgres", "sslmode=disable");
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"));
        tokio::spawn(conn);
        client
    }

    /// Sets `ssl` and waits until new connections see it.
    async fn set_ssl(&self, on: bool) {
        let admin = self.admin().await;
        // Two statements: ALTER SYSTEM refuses to run in a (multi-statement) transaction.
        for sql in [
            format!("alter system set ssl = {on}"),
            "select pg_reload_conf()".into(),
        ] {
            admin.batch_execute(&sql).await.unwrap();
        }
        let want = if on { "on" } else { "off" };
        wait_for(
            &format!("ssl = {want} in new sessions"),
            Duration::from_secs(10),
            || async {
                let shown: String = self
                    .admin()
                    .await
                    .query_one("show ssl", &[])
                    .await
                    .ok()?
                    .get(0);
                (shown == want).then_some(())
            },
        )
        .await;
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers.

/// Whether the pooled connection's session is encrypted.
async fn pool_ssl(pool: &PgPool) -> bool {
    let client = pool.pool().get().await.unwrap();
    client
        .query_one(
            "select ssl from pg_stat_ssl where pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

/// Connects a pool to `url`, which must work, and says whether it is encrypted.
async fn connects_with_ssl(url: &str) -> bool {
    let pool = PgPool::connect(url)
        .await
        .unwrap_or_else(|e| panic!("{url}: {}", zart::error::error_chain(&e)));
    pool_ssl(&pool).await
}

/// Connects a pool to `url`, which must fail, and returns the error's whole message.
async fn refused(url: &str) -> (Error, String) {
    match PgPool::connect(url).await {
        Ok(pool) => panic!("{url} connected (ssl: {})", pool_ssl(&pool).await),
        Err(e) => {
            let chain = zart::error::error_chain(&e);
            (e, chain)
        }
    }
}

/// Asserts `url` is refused for a TLS reason that contains `why`, as a permanent error.
async fn assert_tls_refused(url: &str, why: &str) {
    let (err, chain) = refused(url).await;
    eprintln!("    refused as expected: {chain}");
    assert!(
        matches!(err, Error::Database { .. }),
        "a refused handshake is not transient: {err:?}"
    );
    assert!(
        chain.contains("TLS handshake failed") && chain.contains(why),
        "{url}: {chain}"
    );
}

// ---------------------------------------------------------------------------------------------
// The cases.

type Case = for<'a> fn(&'a TlsCluster) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        [$((stringify!($name), (|c| Box::pin($name(c))) as Case)),*]
    };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls() {
    init_tracing();
    let cluster = Arc::new(
        tokio::task::spawn_blocking(TlsCluster::start)
            .await
            .unwrap(),
    );
    cluster.set_ssl(true).await;
    cluster
        .admin()
        .await
        .batch_execute(&format!("create database {TLS_ONLY_DB}"))
        .await
        .unwrap();

    // In order: the last one turns ssl off.
    let cases = cases![
        require_encrypts_the_pool_the_listener_and_migrate,
        disable_connects_without_tls,
        prefer_gets_tls_from_a_tls_server,
        verify_full_with_the_ca_connects_to_names_in_the_certificate,
        verify_full_refuses_another_ca,
        verify_full_refuses_a_name_not_in_the_certificate,
        verify_ca_checks_the_chain_but_not_the_name,
        bad_settings_are_refused_before_connecting,
        require_refuses_a_server_without_tls,
    ];
    let mut failed = Vec::new();
    for (name, case) in cases {
        eprintln!("--- tls case: {name}");
        let c = cluster.clone();
        // A task of its own, so that a panic fails this case alone.
        let outcome = tokio::spawn(async move { case(&c).await }).await;
        if outcome.is_err() {
            failed.push(name);
        }
    }
    assert!(failed.is_empty(), "failed TLS cases: {failed:?}");
}

async fn require_encrypts_the_pool_the_listener_and_migrate(c: &TlsCluster) {
    let url = c.url("127.0.0.1", TLS_ONLY_DB, "sslmode=require");
    let pool = PgPool::connect(&url).await.unwrap();
    assert!(pool_ssl(&pool).await, "the pool's session is encrypted");

    // migrate: TLS_ONLY_DB would refuse it without TLS.
    let report = zart_pg::migrate(&pool)
        .await
        .unwrap_or_else(|e| panic!("migrate over TLS: {}", zart::error::error_chain(&e)));
    assert_eq!(report.schema_version, zart_pg::REQUIRED_SCHEMA_VERSION);

    // The LISTEN connection: it gets a NOTIFY, and its session is encrypted.
    let scheduler = PostgresScheduler::new(pool.clone());
    let mut wakeups = scheduler.subscribe();
    let first = tokio::time::timeout(Duration::from_secs(10), wakeups.recv())
        .await
        .expect("the listener connected within 10 s");
    assert!(matches!(first, Ok(Wakeup::Resync)), "{first:?}");
    let client = pool.pool().get().await.unwrap();
    client
        .batch_execute("notify zart_work, 'tls-queue'")
        .await
        .unwrap();
    let woken = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match wakeups.recv().await {
                Ok(Wakeup::Work { queue }) if queue == "tls-queue" => break,
                Ok(_) => continue,
                Err(e) => panic!("wake-ups ended: {e}"),
            }
        }
    })
    .await;
    assert!(woken.is_ok(), "the NOTIFY reached the listener");
    let listener_ssl: Vec<bool> = client
        .query(
            "select s.ssl from pg_stat_activity a join pg_stat_ssl s using (pid)
              where a.query = $1 and a.datname = $2",
            &[&zart_pg::queries::LISTEN, &TLS_ONLY_DB],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(listener_ssl, [true], "one encrypted LISTEN session");
}

async fn disable_connects_without_tls(c: &TlsCluster) {
    let url = c.url("127.0.0.1", "postgres", "sslmode=disable");
    assert!(!connects_with_ssl(&url).await, "disable: no TLS");
    // And the TLS-only database refuses it: the check of the other cases can fail.
    let (_, chain) = refused(&c.url("127.0.0.1", TLS_ONLY_DB, "sslmode=disable")).await;
    assert!(chain.contains("no encryption"), "{chain}");
}

async fn prefer_gets_tls_from_a_tls_server(c: &TlsCluster) {
    let url = c.url("127.0.0.1", TLS_ONLY_DB, "sslmode=prefer");
    assert!(connects_with_ssl(&url).await, "prefer: TLS when offered");
    // No sslmode is prefer, as in libpq.
    assert!(connects_with_ssl(&c.url("127.0.0.1", TLS_ONLY_DB, "")).await);
}

async fn verify_full_with_the_ca_connects_to_names_in_the_certificate(c: &TlsCluster) {
    let query = format!("sslmode=verify-full&sslrootcert={}", c.ca.display());
    for host in ["localhost", "127.0.0.1"] {
        let url = c.url(host, TLS_ONLY_DB, &query);
        assert!(connects_with_ssl(&url).await, "verify-full to {host}");
    }
}

async fn verify_full_refuses_another_ca(c: &TlsCluster) {
    let query = format!("sslmode=verify-full&sslrootcert={}", c.other_ca.display());
    assert_tls_refused(&c.url("localhost", TLS_ONLY_DB, &query), "UnknownIssuer").await;
    // Without sslrootcert, the built-in public roots: they do not know a private CA either.
    assert_tls_refused(
        &c.url("localhost", TLS_ONLY_DB, "sslmode=verify-full"),
        "UnknownIssuer",
    )
    .await;
}

async fn verify_full_refuses_a_name_not_in_the_certificate(c: &TlsCluster) {
    // hostaddr: the server listens on 127.0.0.1 only; the name checked is the host's.
    for host in ["127.0.0.2", "db.zart.invalid"] {
        let query = format!(
            "hostaddr=127.0.0.1&sslmode=verify-full&sslrootcert={}",
            c.ca.display()
        );
        assert_tls_refused(&c.url(host, TLS_ONLY_DB, &query), "not valid for name").await;
    }
}

async fn verify_ca_checks_the_chain_but_not_the_name(c: &TlsCluster) {
    let query = format!(
        "hostaddr=127.0.0.1&sslmode=verify-ca&sslrootcert={}",
        c.ca.display()
    );
    let url = c.url("db.zart.invalid", TLS_ONLY_DB, &query);
    assert!(connects_with_ssl(&url).await, "verify-ca ignores the name");
    let query = format!("sslmode=verify-ca&sslrootcert={}", c.other_ca.display());
    assert_tls_refused(&c.url("localhost", TLS_ONLY_DB, &query), "UnknownIssuer").await;
}

async fn bad_settings_are_refused_before_connecting(c: &TlsCluster) {
    let not_pem = c.dir.join("pg_hba.conf");
    for (query, field, says) in [
        (
            "sslmode=verify".to_owned(),
            "sslmode",
            "\"verify\"".to_owned(),
        ),
        (
            "sslmode=verify-full&sslrootcert=/nonexistent/ca.pem".to_owned(),
            "sslrootcert",
            "/nonexistent/ca.pem".to_owned(),
        ),
        (
            format!("sslmode=verify-full&sslrootcert={}", not_pem.display()),
            "sslrootcert",
            not_pem.display().to_string(),
        ),
    ] {
        let (err, chain) = refused(&c.url("localhost", TLS_ONLY_DB, &query)).await;
        eprintln!("    refused as expected: {chain}");
        match err {
            Error::InvalidInput { field: f, reason } => {
                assert_eq!(f, field, "{chain}");
                assert!(reason.contains(&says), "{chain}");
            }
            other => panic!("{query}: expected InvalidInput, got {other:?}"),
        }
    }
}

async fn require_refuses_a_server_without_tls(c: &TlsCluster) {
    c.set_ssl(false).await;
    assert_tls_refused(
        &c.url("127.0.0.1", "postgres", "sslmode=require"),
        "server does not support TLS",
    )
    .await;
    let query = format!("sslmode=verify-full&sslrootcert={}", c.ca.display());
    assert_tls_refused(
        &c.url("localhost", "postgres", &query),
        "server does not support TLS",
    )
    .await;
    // prefer falls back to a plain session.
    let url = c.url("127.0.0.1", "postgres", "sslmode=prefer");
    assert!(
        !connects_with_ssl(&url).await,
        "prefer: plain when TLS is off"
    );
}
