//! The `zart` binary on a SQLite URL: migrate (idempotent), start, status, list, show, cancel,
//! retry; and a URL whose scheme no backend serves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::process::{Command, Output};

fn zart(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_zart"))
        .env("DATABASE_URL", url)
        .args(args)
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "zart failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn migrate_start_and_status_on_sqlite() {
    let dir = std::env::temp_dir().join(format!("zart-cli-sqlite-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("zart.db").display());

    assert!(stdout(&zart(&url, &["migrate"]))
        .contains("applied 9 (V1__init, V2__check_without_in_lists, V3__retention, V4__patches, V5__delayed_starts, V6__schedules, V7__priorities_limits_dedup, V8__state, V9__audit_and_lists)"));
    assert!(stdout(&zart(&url, &["migrate"])).contains("schema is up to date (version 9)"));
    // --database-url works as DATABASE_URL does.
    let out = Command::new(env!("CARGO_BIN_EXE_zart"))
        .args([
            "--database-url",
            &url,
            "start",
            "order-7",
            "checkout",
            r#"{"n": 7}"#,
        ])
        .output()
        .unwrap();
    assert!(stdout(&out).contains("started execution \"order-7\""));
    assert!(stdout(&zart(
        &url,
        &["start", "order-7", "checkout", r#"{"n": 7}"#]
    ))
    .contains("already had"));
    let status: serde_json::Value =
        serde_json::from_str(&stdout(&zart(&url, &["status", "order-7"]))).unwrap();
    assert_eq!(status["status"], "scheduled");
    assert_eq!(status["input"], serde_json::json!({"n": 7}));

    // list and show read SQLite through the same Admin trait.
    assert!(stdout(&zart(&url, &["start", "order-8", "refund"])).contains("started"));
    let page: serde_json::Value =
        serde_json::from_str(&stdout(&zart(&url, &["list", "--json", "--limit", "1"]))).unwrap();
    assert_eq!(page["executions"][0]["id"], "order-8");
    assert_eq!(page["next_after"], "order-8");
    let page: serde_json::Value = serde_json::from_str(&stdout(&zart(
        &url,
        &["list", "--json", "--after", "order-8", "--task", "checkout"],
    )))
    .unwrap();
    assert_eq!(page["executions"][0]["id"], "order-7");
    let shown: serde_json::Value =
        serde_json::from_str(&stdout(&zart(&url, &["show", "order-7", "--json"]))).unwrap();
    assert_eq!(shown["waiting"][0]["reason"], "due");
    // retry: only a failed execution; a cancelled one is refused (exit 1) and stays cancelled.
    let out = zart(&url, &["retry", "order-8"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be retried: it is scheduled"));
    assert_eq!(zart(&url, &["retry", "nope"]).status.code(), Some(3));
    assert!(stdout(&zart(&url, &["cancel", "order-7"])).contains("cancelled 1 execution"));
    assert_eq!(zart(&url, &["retry", "order-7"]).status.code(), Some(1));
    assert_eq!(zart(&url, &["show", "nope"]).status.code(), Some(3));

    // prune: the cancelled one is a second old, kept at 30 days, gone at 0s.
    let kept: serde_json::Value =
        serde_json::from_str(&stdout(&zart(&url, &["prune", "--dry-run", "--json"]))).unwrap();
    assert_eq!(kept["total"], 0);
    let out = stdout(&zart(&url, &["prune", "--cancelled-older-than", "0s"]));
    assert_eq!(
        out,
        "zart: deleted 1 finished execution(s): 0 completed, 0 failed, 1 cancelled\n"
    );
    assert_eq!(zart(&url, &["show", "order-7"]).status.code(), Some(3));
    let out = zart(&url, &["prune", "--completed-older-than", "-7d"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("negative"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_unknown_scheme_names_the_ones_served() {
    // mysql:// is served since zart-mysql; a scheme no backend serves is refused.
    let out = zart("redis://localhost/db", &["migrate"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("sqlite://"), "{err}");
    assert!(err.contains("postgres://"), "{err}");
    assert!(err.contains("mysql://"), "{err}");
}

/// A `--limit` above one read's chunk (1,000) is read in chunks through the cursor: the page
/// holds exactly the executions asked for, newest first, with the cursor of its last one; the
/// next page picks up there; piped, nothing is drawn on standard error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_list_is_read_in_chunks_and_pages_on() {
    let dir = std::env::temp_dir().join(format!("zart-cli-sqlite-long-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("zart.db").display());
    zart_sqlite::migrate(&url).await.unwrap();
    let scheduler = zart_sqlite::SqliteScheduler::connect_with(
        &url,
        zart_sqlite::SqliteOptions::default().synchronous(zart_sqlite::Synchronous::Normal),
    )
    .await
    .unwrap();
    for i in 0..1_200 {
        zart::Scheduler::start_execution(
            &scheduler,
            zart::scheduler::StartExecutionParams {
                id: format!("job-{i:04}"),
                task_name: "t".to_owned(),
                input: serde_json::json!({ "i": i }),
                queue: "default".to_owned(),
                parent_id: None,
                deadline: None,
                start: None,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    }
    scheduler.close().await;

    let list = |args: &[&str]| -> (serde_json::Value, String) {
        let out = zart(&url, args);
        let page = serde_json::from_str(&stdout(&out)).unwrap();
        (page, String::from_utf8(out.stderr).unwrap())
    };
    let (page, stderr) = list(&["list", "--json", "--limit", "1100"]);
    assert!(stderr.is_empty(), "nothing drawn when piped: {stderr}");
    let ids: Vec<&str> = page["executions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 1_100);
    let mut unique = ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), 1_100, "no execution twice");
    assert_eq!(page["next_after"], serde_json::json!(ids[1_099]));

    let (rest, _) = list(&["list", "--json", "--limit", "5000", "--after", ids[1_099]]);
    let rest = rest["executions"].as_array().unwrap();
    assert_eq!(rest.len(), 100);
    assert!(rest
        .iter()
        .all(|e| !ids.contains(&e["id"].as_str().unwrap())));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ui_serves_the_api_with_a_token_and_refuses_to_start_without_one() {
    use std::io::{Read, Write};
    let dir = std::env::temp_dir().join(format!("zart-cli-ui-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("zart.db").display());
    stdout(&zart(&url, &["migrate"]));
    stdout(&zart(&url, &["start", "order-7", "checkout"]));

    let out = zart(&url, &["ui"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("zart ui needs a token"));

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Command::new(env!("CARGO_BIN_EXE_zart"))
        .env("DATABASE_URL", &url)
        .env("ZART_UI_TOKENS", "abc, def")
        .args([
            "ui",
            "--read-only",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .spawn()
        .unwrap();
    let get = |path: &str, token: &str| -> Option<String> {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\nAuthorization: Bearer {token}\r\n\r\n"
        )
        .ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        Some(out)
    };
    let mut answer = None;
    for _ in 0..100 {
        answer = get("/api/executions", "def");
        if answer.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let answer = answer.expect("zart ui answers");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"id\":\"order-7\""), "{answer}");
    let config = get("/api/config", "abc").unwrap();
    assert!(config.contains("\"read_only\":true"), "{config}");
    let refused = get("/api/executions", "nope").unwrap();
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    server.kill().unwrap();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
