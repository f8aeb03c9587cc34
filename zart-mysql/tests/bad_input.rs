//! Bad input gets a clear error naming the setting, user, database or field and what to do,
//! and nothing is half-written: a dead server, a wrong password, a missing database or schema,
//! a schema from a newer Zart, bad URLs, payloads and ids over the limits. Ids that differ only
//! in case or trailing spaces stay distinct executions, and 4-byte UTF-8 round-trips.
//!
//! Needs a server: `eval "$(ci/mariadb-up)"` (or `ZART_MYSQL_URL`, default
//! `mysql://root@127.0.0.1:3306`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod support;

use std::sync::atomic::{AtomicU32, Ordering};

use mysql_async::prelude::Queryable;
use serde_json::json;
use support::{admin, server_url};
use zart::scheduler::{SendEventParams, StartExecutionParams};
use zart::{Error, Scheduler};
use zart_mysql::{MySqlOptions, MySqlScheduler};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A fresh, empty database, dropped with the guard.
struct Db {
    name: String,
    url: String,
}

impl Db {
    async fn new() -> Self {
        let name = format!(
            "zart_bad_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        admin(&format!("drop database if exists {name}")).await;
        admin(&format!("create database {name}")).await;
        let url = format!("{}/{name}", server_url());
        Db { name, url }
    }

    async fn migrated() -> Self {
        let db = Db::new().await;
        zart_mysql::migrate(&db.url).await.unwrap();
        db
    }

    async fn drop_now(self) {
        admin(&format!("drop database if exists {}", self.name)).await;
    }
}

fn start(id: &str, input: serde_json::Value) -> StartExecutionParams {
    StartExecutionParams {
        id: id.to_owned(),
        task_name: "t".to_owned(),
        input,
        queue: "default".to_owned(),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_dead_server_is_unavailable_and_transient() {
    // Port 9 (discard) on loopback: nothing listens there.
    let url = "mysql://root@127.0.0.1:9/zart";
    for err in [
        MySqlScheduler::connect(url).await.unwrap_err(),
        zart_mysql::migrate(url).await.unwrap_err(),
    ] {
        assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
        assert!(err.is_transient(), "{err:?}");
        assert!(err.to_string().contains("127.0.0.1"), "{err}");
    }
}

#[tokio::test]
async fn a_wrong_password_names_the_user() {
    let db = Db::new().await;
    let url = db
        .url
        .replacen("mysql://root@", "mysql://root:wrong-password@", 1);
    assert_ne!(url, db.url, "the test needs a root URL without a password");
    let err = MySqlScheduler::connect(&url).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("access denied"), "{text}");
    assert!(text.contains("\"root\""), "{text}");
    assert!(!text.contains("wrong-password"), "{text}");
    db.drop_now().await;
}

#[tokio::test]
async fn a_missing_database_is_named() {
    let url = format!(
        "{}/zart_no_such_database_{}",
        server_url(),
        std::process::id()
    );
    for err in [
        MySqlScheduler::connect(&url).await.unwrap_err(),
        zart_mysql::migrate(&url).await.unwrap_err(),
    ] {
        let text = err.to_string();
        assert!(text.contains("zart_no_such_database"), "{text}");
        assert!(text.contains("create the database"), "{text}");
    }
}

#[tokio::test]
async fn a_missing_schema_says_to_run_migrate() {
    let db = Db::new().await;
    let err = MySqlScheduler::connect(&db.url).await.unwrap_err();
    assert!(matches!(err, Error::Schema(_)), "{err:?}");
    assert!(err.to_string().contains("zart migrate"), "{err}");
    db.drop_now().await;
}

#[tokio::test]
async fn a_database_migrated_by_a_newer_zart_is_refused() {
    let db = Db::migrated().await;
    admin(&format!(
        "insert into {}.zart_schema_history (version, name, applied_on)
         values (99, 'future', 'x')",
        db.name
    ))
    .await;
    for err in [
        zart_mysql::migrate(&db.url).await.unwrap_err(),
        MySqlScheduler::connect(&db.url).await.unwrap_err(),
    ] {
        assert!(matches!(err, Error::Schema(_)), "{err:?}");
        assert!(err.to_string().contains("newer Zart"), "{err}");
    }
    db.drop_now().await;
}

#[tokio::test]
async fn migrate_is_idempotent_and_safe_from_two_callers_at_once() {
    let db = Db::new().await;
    let (a, b) = tokio::join!(zart_mysql::migrate(&db.url), zart_mysql::migrate(&db.url));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(
        a.applied.len() + b.applied.len(),
        zart_mysql::MIGRATIONS.len(),
        "{a:?} {b:?}"
    );
    let again = zart_mysql::migrate(&db.url).await.unwrap();
    assert!(again.applied.is_empty());
    assert_eq!(again.schema_version, zart_mysql::SCHEMA_VERSION);
    db.drop_now().await;
}

#[tokio::test]
async fn urls_that_are_not_mysql_are_refused() {
    for bad in [
        "postgres://localhost/db",
        "sqlite://zart.db",
        "mysql://127.0.0.1:3306",
        "mysql://127.0.0.1:3306/",
    ] {
        let err = MySqlScheduler::connect(bad).await.unwrap_err();
        assert_eq!(err.code(), "invalid_input", "{bad}: {err}");
    }
}

#[tokio::test]
async fn mariadb_urls_are_accepted() {
    let db = Db::migrated().await;
    let url = db.url.replacen("mysql://", "mariadb://", 1);
    let scheduler = MySqlScheduler::connect(&url).await.unwrap();
    scheduler.close().await;
    db.drop_now().await;
}

#[tokio::test]
async fn ids_differing_in_case_or_trailing_spaces_are_distinct_and_utf8_round_trips() {
    let db = Db::migrated().await;
    let scheduler = MySqlScheduler::connect(&db.url).await.unwrap();
    let ids = [
        "order-1",
        "ORDER-1",
        "order-1 ",
        "order-1  ",
        "café",
        "cafe\u{301}",
        "🦀-1",
    ];
    for (n, id) in ids.iter().enumerate() {
        let outcome = scheduler
            .start_execution(start(
                id,
                json!({ "n": n, "emoji": "🦀🎉", "z": 1, "a": 2 }),
            ))
            .await
            .unwrap();
        assert!(outcome.created, "{id:?} must be a new execution");
    }
    for (n, id) in ids.iter().enumerate() {
        let execution = scheduler.get_execution(id).await.unwrap().unwrap();
        assert_eq!(execution.id, *id);
        assert_eq!(
            execution.input,
            json!({ "n": n, "emoji": "🦀🎉", "z": 1, "a": 2 })
        );
    }
    // The JSON text is stored exactly as serialised (MySQL's JSON type would rewrite it).
    let pool = mysql_async::Pool::new(db.url.as_str());
    let mut conn = pool.get_conn().await.unwrap();
    let text: Option<String> = conn
        .exec_first("select input from zart_executions where id = ?", ("🦀-1",))
        .await
        .unwrap();
    let serialised =
        serde_json::to_string(&json!({ "n": 6, "emoji": "🦀🎉", "z": 1, "a": 2 })).unwrap();
    assert_eq!(text, Some(serialised));
    drop(conn);
    pool.disconnect().await.unwrap();
    scheduler.close().await;
    db.drop_now().await;
}

#[tokio::test]
async fn ids_and_names_over_255_bytes_are_refused_naming_the_field() {
    let db = Db::migrated().await;
    let scheduler = MySqlScheduler::connect(&db.url).await.unwrap();
    // 128 two-byte characters: 256 bytes.
    let long = "é".repeat(128);
    let err = scheduler
        .start_execution(start(&long, json!({})))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidInput { field, .. } if field == "execution id"),
        "{err:?}"
    );
    let err = scheduler
        .start_execution(start("", json!({})))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidInput { field, .. } if field == "execution id"),
        "{err:?}"
    );
    // 255 bytes is fine.
    let ok = format!("{}x", "é".repeat(127));
    assert_eq!(ok.len(), 255);
    scheduler
        .start_execution(start(&ok, json!({})))
        .await
        .unwrap();
    assert!(scheduler.get_execution(&ok).await.unwrap().is_some());
    scheduler.close().await;
    db.drop_now().await;
}

#[tokio::test]
async fn payloads_over_the_limit_are_refused_naming_the_field() {
    let db = Db::migrated().await;
    let scheduler =
        MySqlScheduler::connect_with(&db.url, MySqlOptions::default().max_payload_bytes(64))
            .await
            .unwrap();
    let big = json!("x".repeat(100));
    match scheduler.start_execution(start("a", big.clone())).await {
        Err(Error::InvalidInput { field, reason }) => {
            assert_eq!(field, "input");
            assert!(reason.contains("limit of 64 bytes"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert!(scheduler.get_execution("a").await.unwrap().is_none());
    scheduler
        .start_execution(start("a", json!({})))
        .await
        .unwrap();
    let err = scheduler
        .send_event(SendEventParams {
            execution_id: "a".to_owned(),
            name: "e".to_owned(),
            payload: big,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidInput { field, .. } if field == "event payload"),
        "{err:?}"
    );
    scheduler.close().await;
    db.drop_now().await;
}

#[tokio::test]
async fn the_default_payload_limit_is_one_mebibyte() {
    let db = Db::migrated().await;
    let scheduler = MySqlScheduler::connect(&db.url).await.unwrap();
    // Just under 1 MiB of JSON text is stored; just over is refused.
    let under = json!("x".repeat(1024 * 1024 - 2));
    scheduler
        .start_execution(start("under", under.clone()))
        .await
        .unwrap();
    assert_eq!(
        scheduler
            .get_execution("under")
            .await
            .unwrap()
            .unwrap()
            .input,
        under
    );
    let over = json!("x".repeat(1024 * 1024));
    let err = scheduler
        .start_execution(start("over", over))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidInput { field, .. } if field == "input"),
        "{err:?}"
    );
    scheduler.close().await;
    db.drop_now().await;
}
