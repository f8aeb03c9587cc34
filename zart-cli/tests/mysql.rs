//! The `zart` binary on a MySQL/MariaDB URL (`ZART_MYSQL_URL`, default
//! `mysql://root@127.0.0.1:3306`; `ci/test` brings one up): `doctor` before and after
//! `migrate`, and on a database that does not exist.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::process::{Command, Output};

use zart_tests::mysql::{drop_database, fresh_database};

fn zart(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_zart"))
        .env("DATABASE_URL", url)
        .args(args)
        .output()
        .unwrap()
}

fn checks(out: &Output) -> Vec<(String, String)> {
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["level"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn doctor_fails_the_schema_until_migrate_and_then_passes() {
    let name = format!("zart_cli_doctor_{}", std::process::id());
    let url = fresh_database(&name).await;

    let before = zart(&url, &["doctor", "--json"]);
    assert_eq!(before.status.code(), Some(1), "{before:?}");
    let found = checks(&before);
    let names: Vec<&str> = found.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["server", "schema", "durability", "clock"]);
    assert!(
        found.contains(&("schema".to_owned(), "fail".to_owned())),
        "{found:?}"
    );
    assert!(
        found.contains(&("server".to_owned(), "ok".to_owned())),
        "{found:?}"
    );

    let migrated = zart(&url, &["migrate"]);
    assert!(migrated.status.success(), "{migrated:?}");
    let after = zart(&url, &["doctor"]);
    let text = String::from_utf8_lossy(&after.stdout);
    assert_eq!(after.status.code(), Some(0), "{text}");
    assert!(text.contains("ok    schema  version"), "{text}");
    assert!(text.contains("clock"), "{text}");

    drop_database(&name).await;
    let gone = zart(&url, &["doctor"]);
    let err = String::from_utf8_lossy(&gone.stderr);
    assert_ne!(gone.status.code(), Some(0));
    assert!(err.contains(&name), "names the missing database: {err}");
}

#[test]
fn doctor_says_it_does_not_check_sqlite() {
    let out = zart("sqlite::memory:", &["doctor"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not supported on sqlite"), "{err}");
}
