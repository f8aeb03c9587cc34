//! The `zart` binary on a SQLite URL: migrate (idempotent), start, status, list, show, cancel;
//! and a URL whose scheme no backend serves.
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
        .contains("applied 3 (V1__init, V2__check_without_in_lists, V3__retention)"));
    assert!(stdout(&zart(&url, &["migrate"])).contains("schema is up to date (version 3)"));
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
    assert!(stdout(&zart(&url, &["cancel", "order-7"])).contains("cancelled 1 execution"));
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
    let out = zart("mysql://localhost/db", &["migrate"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("sqlite://"), "{err}");
    assert!(err.contains("postgres://"), "{err}");
}
