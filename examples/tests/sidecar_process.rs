//! The sidecar as a real process (the `sidecar` example binary): ready, runs work, `/metrics`
//! counts what ran, SIGTERM exits 0 within the grace period; bad configuration, a database
//! that is down and a schema that is missing each exit with their documented code; and a
//! supervisor loop that follows `deploy/zart-sidecar.service` (restart on failure, stop with
//! SIGTERM). PostgreSQL through tests/support (a fresh database per test), SQLite files, and
//! MySQL/MariaDB (`ZART_MYSQL_URL`, a fresh database).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use zart::scheduler::StartExecutionParams;
use zart::{ExecutionStatus, Scheduler};
use zart_tests::sidecar::{free_port, get, sample, Sidecar, TempDir};
use zart_tests::{wait_for, TestDb};

const BIN: &str = env!("CARGO_BIN_EXE_sidecar");

async fn start_onboarding(s: &impl Scheduler, id: &str, queue: &str) {
    s.start_execution(StartExecutionParams {
        id: id.into(),
        task_name: "onboarding".into(),
        input: json!({"user_id": id, "email": format!("{id}@example.com")}),
        queue: queue.into(),
        parent_id: None,
        deadline: None,
        start: None,
        ..Default::default()
    })
    .await
    .unwrap();
}

/// Every line of the log is a JSON object (ZART_LOG_FORMAT=json).
fn assert_json_log(log: &str) {
    assert!(!log.trim().is_empty(), "no log at all");
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let value: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(value.get("level").is_some(), "{line}");
    }
}

#[tokio::test]
async fn runs_work_counts_it_in_metrics_and_stops_cleanly_on_sigterm() {
    const N: usize = 5;
    let db = TestDb::new().await;
    let scheduler = db.scheduler().await;
    // Work on a queue the sidecar does not serve: its gauges must show it waiting.
    for i in 0..3 {
        start_onboarding(&*scheduler, &format!("elsewhere-{i}"), "other").await;
    }
    let mut sidecar = Sidecar::start(
        BIN,
        &db.url,
        &[
            ("ZART_LOG_LEVEL", "info,zart_pg=debug"),
            ("ZART_LOG_SPANS", "close"),
        ],
    );
    sidecar.ready().await;
    assert_eq!(
        get(sidecar.port, "/livez").await,
        Some((200, "ok\n".to_owned()))
    );
    assert_eq!(get(sidecar.port, "/nope").await.map(|r| r.0), Some(404));

    for i in 0..N {
        start_onboarding(&*scheduler, &format!("signup-{i}"), "default").await;
    }
    // The first billing call of the process fails: one execution retries after 2 s.
    for i in 0..N {
        let id = format!("signup-{i}");
        wait_for(
            &format!("{id} completed"),
            Duration::from_secs(30),
            || async {
                let e = scheduler.get_execution(&id).await.unwrap()?;
                (e.status == ExecutionStatus::Completed).then_some(())
            },
        )
        .await;
    }

    let page = wait_for(
        "the gauges to catch up",
        Duration::from_secs(10),
        || async {
            let page = sidecar.metrics().await;
            let settled = sample(
                &page,
                r#"zart_queue_depth{queue="default",status="scheduled"}"#,
            ) == Some(0.0)
                && sample(
                    &page,
                    r#"zart_queue_depth{queue="default",status="sleeping"}"#,
                ) == Some(0.0)
                && sample(
                    &page,
                    r#"zart_queue_depth{queue="other",status="scheduled"}"#,
                ) == Some(3.0);
            settled.then_some(page)
        },
    )
    .await;
    let n = N as f64;
    assert_eq!(
        sample(
            &page,
            r#"zart_executions_finished_total{status="completed"}"#
        ),
        Some(n),
        "{page}"
    );
    assert_eq!(
        sample(&page, r#"zart_executions_finished_total{status="failed"}"#),
        Some(0.0)
    );
    // Each execution claimed once, and the one whose billing failed once more after its
    // durable back-off.
    assert_eq!(sample(&page, "zart_claimed_total"), Some(n + 1.0), "{page}");
    assert_eq!(
        sample(&page, r#"zart_runs_in_flight{queue="default"}"#),
        Some(0.0)
    );
    assert_eq!(
        sample(&page, r#"zart_lease_losses_total{detected_by="heartbeat"}"#),
        Some(0.0)
    );
    assert_eq!(
        sample(&page, r#"zart_lease_losses_total{detected_by="write"}"#),
        Some(0.0)
    );
    assert_eq!(sample(&page, "zart_queue_stats_errors_total"), Some(0.0));
    assert_eq!(sample(&page, r#"zart_queue_due{queue="other"}"#), Some(3.0));
    assert!(sample(&page, r#"zart_queue_oldest_due_age_seconds{queue="other"}"#).unwrap() > 0.0);
    assert_eq!(
        sample(&page, r#"zart_queue_due{queue="default"}"#),
        Some(0.0)
    );
    // Histograms with buckets, counted per run and per step (2 steps, one retried: 2N + 1).
    assert!(
        page.contains("# TYPE zart_run_duration_seconds histogram"),
        "{page}"
    );
    assert_eq!(sample(&page, "zart_run_duration_seconds_count"), Some(n));
    assert_eq!(
        sample(&page, "zart_step_duration_seconds_count"),
        Some(2.0 * n + 1.0)
    );
    assert!(page.contains("# HELP zart_queue_depth "), "{page}");

    let (code, took, log) = sidecar.terminate().await;
    assert_eq!(code, Some(0), "{log}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert_json_log(&log);
    assert!(log.contains("zart-sidecar ready"), "{log}");
    assert!(log.contains("stopped cleanly"), "{log}");
    // The database call that scheduled the billing retry, as a span naming its execution
    // and step.
    let retry_span = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|line| {
            let span = &line["span"];
            span["name"] == "zart.pg.query"
                && span["db.operation"] == "scheduling a retry"
                && span["step.name"] == "setup-billing"
                && span["execution.id"]
                    .as_str()
                    .is_some_and(|id| id.starts_with("signup-"))
        });
    assert!(
        retry_span.is_some(),
        "no zart.pg.query span for the retry:\n{log}"
    );
}

#[tokio::test]
async fn sqlite_with_migrate_runs_work_and_stops_cleanly() {
    let dir = TempDir::new();
    let url = format!("sqlite://{}", dir.0.join("zart.db").display());
    let mut sidecar = Sidecar::start(
        BIN,
        &url,
        &[("ZART_MIGRATE", "true"), ("ZART_LOG_FORMAT", "text")],
    );
    sidecar.ready().await;
    let scheduler = zart_sqlite::SqliteScheduler::connect(&url).await.unwrap();
    start_onboarding(&scheduler, "lite-1", "default").await;
    wait_for("lite-1 finished", Duration::from_secs(30), || async {
        let e = scheduler.get_execution("lite-1").await.unwrap()?;
        e.status.is_terminal().then_some(e.status)
    })
    .await;
    let page = wait_for("the outcome counted", Duration::from_secs(10), || async {
        let page = sidecar.metrics().await;
        (sample(
            &page,
            r#"zart_executions_finished_total{status="completed"}"#,
        ) == Some(1.0))
        .then_some(page)
    })
    .await;
    assert!(sample(&page, "zart_wakeup_polls_total").is_some(), "{page}");
    // The queue gauges on SQLite: work on a queue nobody serves is counted as due.
    start_onboarding(&scheduler, "lite-other-1", "other").await;
    start_onboarding(&scheduler, "lite-other-2", "other").await;
    wait_for(
        "the other queue's gauges",
        Duration::from_secs(10),
        || async {
            let page = sidecar.metrics().await;
            let counted = sample(
                &page,
                r#"zart_queue_depth{queue="other",status="scheduled"}"#,
            ) == Some(2.0)
                && sample(&page, r#"zart_queue_due{queue="other"}"#) == Some(2.0)
                && sample(
                    &page,
                    r#"zart_queue_depth{queue="default",status="scheduled"}"#,
                ) == Some(0.0)
                && sample(&page, "zart_queue_stats_errors_total") == Some(0.0);
            counted.then_some(())
        },
    )
    .await;
    let (code, _, log) = sidecar.terminate().await;
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("migrated the database"), "{log}");
}

/// The sidecar on a `mysql://` URL: migrates, runs the getting-started workflow and stops
/// cleanly (the machine's MariaDB or the one `ci/mariadb-up` starts: `ZART_MYSQL_URL`).
#[tokio::test]
async fn mysql_with_migrate_runs_work_and_stops_cleanly() {
    let name = format!("zart_sidecar_{}", std::process::id());
    let url = zart_tests::mysql::fresh_database(&name).await;
    let mut sidecar = Sidecar::start(
        BIN,
        &url,
        &[("ZART_MIGRATE", "true"), ("ZART_LOG_FORMAT", "text")],
    );
    sidecar.ready().await;
    let scheduler = zart_mysql::MySqlScheduler::connect(&url).await.unwrap();
    start_onboarding(&scheduler, "my-1", "default").await;
    let status = wait_for("my-1 finished", Duration::from_secs(30), || async {
        let e = scheduler.get_execution("my-1").await.unwrap()?;
        e.status.is_terminal().then_some(e.status)
    })
    .await;
    assert_eq!(status, zart::ExecutionStatus::Completed);
    wait_for("the outcome counted", Duration::from_secs(10), || async {
        let page = sidecar.metrics().await;
        (sample(
            &page,
            r#"zart_executions_finished_total{status="completed"}"#,
        ) == Some(1.0))
        .then_some(())
    })
    .await;
    let (code, _, log) = sidecar.terminate().await;
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("migrated the database"), "{log}");
    scheduler.close().await;
    zart_tests::mysql::drop_database(&name).await;
}

/// Runs the binary to its end with `env` (and no database needed); the code and stderr.
async fn run_to_end(env: &[(&str, &str)], args: &[&str]) -> (Option<i32>, String) {
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new(BIN)
            .env_clear()
            .envs(env.iter().copied())
            .args(args)
            .output(),
    )
    .await
    .expect("did not exit in 30 s")
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[tokio::test]
async fn bad_configuration_exits_2_with_a_message_naming_the_setting() {
    let sqlite = ("DATABASE_URL", "sqlite:///nonexistent/zart.db");
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[], "--database-url"),
        (&[sqlite, ("ZART_LEASE", "500ms")], "invalid ZART_LEASE"),
        (&[sqlite, ("ZART_LEASE", "forever")], "forever"),
        (&[sqlite, ("ZART_CONCURRENCY", "many")], "many"),
        (&[sqlite, ("ZART_LOG_FORMAT", "xml")], "xml"),
        (
            &[sqlite, ("ZART_LOG_LEVEL", "info,[")],
            "invalid ZART_LOG_LEVEL",
        ),
        (&[sqlite, ("ZART_QUEUES", "a,a")], "listed twice"),
        (
            &[("DATABASE_URL", "redis://db/x")],
            "unsupported scheme \"redis\"",
        ),
    ];
    for (env, expected) in cases {
        let (code, text) = run_to_end(env, &[]).await;
        assert_eq!(code, Some(2), "{env:?}: {text}");
        assert!(
            text.contains(expected),
            "{env:?}: expected {expected:?} in {text}"
        );
    }
    let (code, help) = run_to_end(&[], &["--help"]).await;
    assert_eq!(code, Some(0), "{help}");
    for var in [
        "DATABASE_URL",
        "ZART_QUEUES",
        "ZART_CONCURRENCY",
        "ZART_LEASE",
        "ZART_SHUTDOWN_GRACE",
        "ZART_LISTEN",
        "ZART_LOG_FORMAT",
        "ZART_LOG_LEVEL",
        "ZART_LOG_SPANS",
        "ZART_STATS_INTERVAL",
        "ZART_CONNECT_TIMEOUT",
        "ZART_MIGRATE",
        "Exit codes:",
    ] {
        assert!(help.contains(var), "--help does not mention {var}:\n{help}");
    }
}

#[tokio::test]
async fn a_database_down_at_start_exits_4_and_a_missing_schema_exits_5() {
    let started = Instant::now();
    let (code, log) = run_to_end(
        &[
            ("DATABASE_URL", "postgres://postgres@127.0.0.1:1/zart"),
            ("ZART_CONNECT_TIMEOUT", "1s"),
            ("ZART_LISTEN", format!("127.0.0.1:{}", free_port()).as_str()),
        ],
        &[],
    )
    .await;
    assert_eq!(code, Some(4), "{log}");
    assert!(log.contains("could not be reached"), "{log}");
    assert!(started.elapsed() < Duration::from_secs(15));

    let empty = TestDb::empty().await;
    let (code, log) = run_to_end(
        &[
            ("DATABASE_URL", empty.url.as_str()),
            ("ZART_LISTEN", format!("127.0.0.1:{}", free_port()).as_str()),
        ],
        &[],
    )
    .await;
    assert_eq!(code, Some(5), "{log}");
    assert!(log.contains("zart migrate"), "{log}");

    // The port taken: exit 6.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, log) = run_to_end(
        &[
            ("DATABASE_URL", empty.url.as_str()),
            ("ZART_LISTEN", addr.as_str()),
        ],
        &[],
    )
    .await;
    assert_eq!(code, Some(6), "{log}");
}

/// The service settings of a systemd unit file that the supervisor below honours.
struct Unit {
    env: Vec<(String, String)>,
    restart_on_failure: bool,
    prevent: Vec<i32>,
    stop_timeout: Duration,
}

fn read_unit(path: &Path) -> Unit {
    let text = std::fs::read_to_string(path).unwrap();
    let mut unit = Unit {
        env: Vec::new(),
        restart_on_failure: false,
        prevent: Vec::new(),
        stop_timeout: Duration::from_secs(90),
    };
    for line in text.lines().map(str::trim) {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        match key {
            "Environment" => {
                let (k, v) = value.split_once('=').unwrap();
                unit.env.push((k.to_owned(), v.to_owned()));
            }
            "Restart" => unit.restart_on_failure = value == "on-failure",
            "RestartPreventExitStatus" => {
                unit.prevent = value
                    .split_whitespace()
                    .map(|c| c.parse().unwrap())
                    .collect();
            }
            "TimeoutStopSec" => {
                unit.stop_timeout = zart_sidecar::parse_duration(value).unwrap();
            }
            "KillSignal" => assert_eq!(value, "SIGTERM"),
            _ => {}
        }
    }
    unit
}

/// Supervises the sidecar as `deploy/zart-sidecar.service` says systemd would: its
/// environment, a restart after a failure exit (unless the code is in
/// RestartPreventExitStatus), SIGTERM to stop, which must end before TimeoutStopSec. The
/// first start finds no schema (exit 5, restarted); an operator migrates; the next start is
/// ready, runs work and stops with 0, which is not restarted.
#[tokio::test]
async fn a_supervisor_following_the_unit_file_restarts_on_failure_and_stops_with_sigterm() {
    let unit_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/zart-sidecar.service");
    let unit = read_unit(&unit_path);
    assert!(unit.restart_on_failure);
    assert_eq!(unit.prevent, [2], "bad configuration is not restarted");
    let grace = unit
        .env
        .iter()
        .find(|(k, _)| k == "ZART_SHUTDOWN_GRACE")
        .map(|(_, v)| zart_sidecar::parse_duration(v).unwrap())
        .unwrap();
    assert!(
        grace + Duration::from_secs(15) <= unit.stop_timeout,
        "the stop must fit"
    );
    verify_unit_with_systemd(&unit_path);

    let db = TestDb::empty().await;
    let mut env: Vec<(String, String)> = unit.env.clone();
    env.retain(|(k, _)| k != "ZART_LISTEN");
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();

    let mut codes = Vec::new();
    let mut migrated = false;
    for attempt in 1..=3 {
        let mut sidecar = Sidecar::start(BIN, &db.url, &env);
        // Ready, or exited: what a supervisor sees.
        let deadline = Instant::now() + Duration::from_secs(30);
        let exited = loop {
            if let Some((200, _)) = get(sidecar.port, "/readyz").await {
                break None;
            }
            if let Ok(Some(status)) = sidecar.child.try_wait() {
                break Some(status.code());
            }
            assert!(
                Instant::now() < deadline,
                "attempt {attempt}:\n{}",
                sidecar.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let code = match exited {
            Some(code) => {
                assert_json_log(&sidecar.log());
                code
            }
            None => {
                let scheduler = db.scheduler().await;
                start_onboarding(&*scheduler, "supervised", "default").await;
                wait_for("supervised done", Duration::from_secs(30), || async {
                    let e = scheduler.get_execution("supervised").await.unwrap()?;
                    e.status.is_terminal().then_some(())
                })
                .await;
                let (code, took, log) = sidecar.terminate().await;
                assert!(took < unit.stop_timeout, "{log}");
                code
            }
        };
        codes.push(code);
        let restart = code != Some(0)
            && unit.restart_on_failure
            && !code.is_some_and(|c| unit.prevent.contains(&c));
        if !restart {
            break;
        }
        if code == Some(5) && !migrated {
            // The operator's `zart migrate`, between two restarts.
            let pool = zart_pg::PgPool::connect(&db.url).await.unwrap();
            zart_pg::migrate(&pool).await.unwrap();
            migrated = true;
        }
    }
    assert_eq!(codes, [Some(5), Some(0)]);
}

/// `systemd-analyze verify` on the unit, with ExecStart pointed at the built binary. This
/// machine's systemd is not running (a container), so the unit is checked, not started.
fn verify_unit_with_systemd(unit_path: &Path) {
    let Ok(out) = std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
    else {
        eprintln!("systemd-analyze is not installed: the unit file's syntax is not checked");
        return;
    };
    assert!(out.status.success());
    let dir = TempDir::new();
    let copy = dir.0.join("zart-sidecar.service");
    let text = std::fs::read_to_string(unit_path)
        .unwrap()
        .replace("/usr/local/bin/zart-sidecar", BIN);
    std::fs::write(&copy, text).unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    // Only complaints about this unit count (the host's own units may be incomplete).
    let ours: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("zart-sidecar.service"))
        .collect();
    assert!(ours.is_empty() && out.status.success(), "{text}");
}
