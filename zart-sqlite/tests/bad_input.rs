//! Bad input gets a clear error naming the path or field and what to do, and nothing is
//! half-written: missing directories and files, files that are not databases, databases locked
//! by another program or migrated by a newer Zart, bad URLs, payloads over the limit.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use zart::scheduler::{SendEventParams, StartExecutionParams};
use zart::{Error, Scheduler};
use zart_sqlite::{SqliteOptions, SqliteScheduler};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A fresh, empty directory for one test.
fn dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "zart-sqlite-bad-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn url(path: &std::path::Path) -> String {
    format!("sqlite://{}", path.display())
}

fn start(id: &str, input: serde_json::Value) -> StartExecutionParams {
    StartExecutionParams {
        id: id.to_owned(),
        task_name: "t".to_owned(),
        input,
        queue: "default".to_owned(),
        parent_id: None,
        deadline: None,
        start: None,
        ..Default::default()
    }
}

#[tokio::test]
async fn a_missing_directory_is_named_and_nothing_is_created() {
    let base = dir();
    let missing = base.join("no-such-dir");
    let err = zart_sqlite::migrate(&url(&missing.join("zart.db")))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("does not exist"), "{text}");
    assert!(text.contains(&missing.display().to_string()), "{text}");
    assert!(!missing.exists());
}

#[tokio::test]
async fn a_missing_file_says_to_run_migrate_and_is_not_created() {
    let file = dir().join("zart.db");
    let err = SqliteScheduler::connect(&url(&file)).await.unwrap_err();
    assert!(matches!(err, Error::Schema(_)), "{err:?}");
    assert!(err.to_string().contains("zart migrate"), "{err}");
    assert!(!file.exists());
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_refused_and_left_alone() {
    let file = dir().join("notes.txt");
    let text = "these are my notes, not a database\n".repeat(20);
    std::fs::write(&file, &text).unwrap();
    for err in [
        zart_sqlite::migrate(&url(&file)).await.unwrap_err(),
        SqliteScheduler::connect(&url(&file)).await.unwrap_err(),
    ] {
        let message = err.to_string();
        assert!(message.contains("not a SQLite database"), "{message}");
        assert!(message.contains("notes.txt"), "{message}");
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
}

/// Makes `path` unwritable for this process: mode 0444 for an ordinary user; for root, who
/// writes through file modes, the immutable attribute (`chattr +i`). Returns how to undo it.
fn make_read_only(path: &std::path::Path) -> impl FnOnce() {
    use std::os::unix::fs::PermissionsExt;
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false);
    let owned = path.to_owned();
    if root {
        let status = std::process::Command::new("chattr")
            .arg("+i")
            .arg(path)
            .status()
            .expect("chattr (e2fsprogs) runs");
        assert!(status.success(), "chattr +i {} failed", path.display());
        Box::new(move || {
            let _ = std::process::Command::new("chattr")
                .arg("-i")
                .arg(&owned)
                .status();
        }) as Box<dyn FnOnce()>
    } else {
        let mode = std::fs::metadata(path).unwrap().permissions().mode();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o444 & mode)).unwrap();
        Box::new(move || {
            let _ = std::fs::set_permissions(&owned, std::fs::Permissions::from_mode(mode));
        })
    }
}

#[tokio::test]
async fn a_read_only_file_or_directory_is_named_and_what_it_holds_is_kept() {
    let base = dir();
    let file = base.join("zart.db");
    zart_sqlite::migrate(&url(&file)).await.unwrap();
    let scheduler = SqliteScheduler::connect(&url(&file)).await.unwrap();
    scheduler
        .start_execution(start("kept", serde_json::json!({"n": 1})))
        .await
        .unwrap();
    scheduler.close().await;
    assert!(
        !base.join("zart.db-wal").exists(),
        "close removes the -wal file"
    );

    // The file itself.
    let undo = make_read_only(&file);
    let errors = [
        SqliteScheduler::connect(&url(&file)).await.map(|_| ()),
        zart_sqlite::migrate(&url(&file)).await.map(|_| ()),
    ];
    undo();
    for err in errors {
        let message = err.unwrap_err().to_string();
        assert!(message.contains("read-only"), "{message}");
        assert!(message.contains(&file.display().to_string()), "{message}");
    }

    // The directory: SQLite cannot create the -wal and -shm files beside the database.
    let undo = make_read_only(&base);
    let err = match SqliteScheduler::connect(&url(&file)).await {
        Err(err) => err,
        Ok(s) => s
            .get_execution("kept")
            .await
            .expect_err("a database in a read-only directory was read"),
    };
    undo();
    let message = err.to_string();
    assert!(message.contains("read-only"), "{message}");
    assert!(message.contains(&base.display().to_string()), "{message}");

    let scheduler = SqliteScheduler::connect(&url(&file)).await.unwrap();
    let kept = scheduler.get_execution("kept").await.unwrap().unwrap();
    assert_eq!(kept.input, serde_json::json!({"n": 1}));
}

#[tokio::test]
async fn a_database_migrated_by_a_newer_zart_is_refused() {
    let file = dir().join("zart.db");
    zart_sqlite::migrate(&url(&file)).await.unwrap();
    let conn = rusqlite::Connection::open(&file).unwrap();
    conn.execute(
        "insert into zart_schema_history (version, name, applied_on) values (99, 'future', 'x')",
        [],
    )
    .unwrap();
    drop(conn);
    for err in [
        zart_sqlite::migrate(&url(&file)).await.unwrap_err(),
        SqliteScheduler::connect(&url(&file)).await.unwrap_err(),
    ] {
        assert!(matches!(err, Error::Schema(_)), "{err:?}");
        assert!(err.to_string().contains("newer Zart"), "{err}");
    }
}

#[tokio::test]
async fn migrate_is_idempotent_and_safe_from_two_callers_at_once() {
    let file = dir().join("zart.db");
    let u = url(&file);
    let (a, b) = tokio::join!(zart_sqlite::migrate(&u), zart_sqlite::migrate(&u));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(
        a.applied.len() + b.applied.len(),
        zart_sqlite::MIGRATIONS.len(),
        "{a:?} {b:?}"
    );
    let again = zart_sqlite::migrate(&u).await.unwrap();
    assert!(again.applied.is_empty());
    assert_eq!(again.schema_version, zart_sqlite::SCHEMA_VERSION);
}

#[tokio::test]
async fn a_database_locked_by_another_program_is_transient_contention_naming_it() {
    let file = dir().join("zart.db");
    zart_sqlite::migrate(&url(&file)).await.unwrap();
    let scheduler = SqliteScheduler::connect_with(
        &url(&file),
        SqliteOptions::default().busy_timeout(Duration::from_millis(200)),
    )
    .await
    .unwrap();
    let other = rusqlite::Connection::open(&file).unwrap();
    other.execute_batch("begin immediate").unwrap();
    let err = scheduler
        .start_execution(start("a", serde_json::json!({})))
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert!(err.to_string().contains("locked"), "{err}");
    assert!(err.to_string().contains("zart.db"), "{err}");
    other.execute_batch("rollback").unwrap();
    // Nothing was half-written, and the same call passes once the lock is gone.
    assert!(scheduler.get_execution("a").await.unwrap().is_none());
    scheduler
        .start_execution(start("a", serde_json::json!({})))
        .await
        .unwrap();
}

#[tokio::test]
async fn urls_that_are_not_sqlite_are_refused() {
    for bad in ["postgres://localhost/db", "sqlite://", "zart.db"] {
        let err = SqliteScheduler::connect(bad).await.unwrap_err();
        assert_eq!(err.code(), "invalid_input", "{bad}: {err}");
    }
}

#[tokio::test]
async fn payloads_over_the_limit_are_refused_naming_the_field() {
    let scheduler = SqliteScheduler::connect_with(
        "sqlite::memory:",
        SqliteOptions::default().max_payload_bytes(64),
    )
    .await
    .unwrap();
    let big = serde_json::json!("x".repeat(100));
    match scheduler.start_execution(start("a", big.clone())).await {
        Err(Error::InvalidInput { field, reason }) => {
            assert_eq!(field, "input");
            assert!(reason.contains("limit of 64 bytes"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert!(scheduler.get_execution("a").await.unwrap().is_none());
    scheduler
        .start_execution(start("a", serde_json::json!({})))
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
}

#[tokio::test]
async fn memory_databases_are_private_to_their_scheduler() {
    let a = SqliteScheduler::connect("sqlite::memory:").await.unwrap();
    let b = SqliteScheduler::connect("sqlite::memory:").await.unwrap();
    a.check_schema().await.unwrap();
    a.start_execution(start("x", serde_json::json!({"n": 1})))
        .await
        .unwrap();
    let seen = a.get_execution("x").await.unwrap().unwrap();
    assert_eq!(seen.input, serde_json::json!({"n": 1}));
    assert!(b.get_execution("x").await.unwrap().is_none());
}

/// A claim that fails after it has written (an input that no longer parses, damaged by hand)
/// leaves nothing of itself behind, even inside a batch with other writes: the batch is rolled
/// back and each item written on its own, so the others still succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_fails_halfway_leaves_nothing_and_spares_its_batch() {
    let file = dir().join("zart.db");
    zart_sqlite::migrate(&url(&file)).await.unwrap();
    let scheduler = std::sync::Arc::new(SqliteScheduler::connect(&url(&file)).await.unwrap());
    scheduler
        .start_execution(start("damaged", serde_json::json!({"n": 1})))
        .await
        .unwrap();
    let raw = rusqlite::Connection::open(&file).unwrap();
    raw.execute(
        "update zart_executions set input = 'not json' where id = 'damaged'",
        [],
    )
    .unwrap();

    // Hold the write lock so that the writer stalls on a first write while the claim and the
    // starts queue up behind it; they then go out as one batch.
    raw.execute_batch("begin immediate").unwrap();
    let first = {
        let scheduler = scheduler.clone();
        tokio::spawn(async move {
            scheduler
                .start_execution(start("first", serde_json::json!({})))
                .await
        })
    };
    let start_other = |i: usize| {
        let scheduler = scheduler.clone();
        tokio::spawn(async move {
            let mut params = start(&format!("other-{i}"), serde_json::json!({ "i": i }));
            params.task_name = "u".to_owned();
            scheduler.start_execution(params).await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The writer thread takes what is queued now as one batch and waits for the connection;
    // the claim and the starts after it queue behind, and go out together.
    let mut starts: Vec<_> = (0..10).map(start_other).collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let claim = {
        let scheduler = scheduler.clone();
        tokio::spawn(async move {
            scheduler
                .claim_tasks(zart::scheduler::ClaimTasksParams {
                    worker_id: "w".to_owned(),
                    queue: "default".to_owned(),
                    task_names: vec!["t".to_owned()],
                    limit: 10,
                    lease: Duration::from_secs(30),
                    ..Default::default()
                })
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    starts.extend((10..20).map(start_other));
    tokio::time::sleep(Duration::from_millis(100)).await;
    raw.execute_batch("commit").unwrap();
    first.await.unwrap().unwrap();
    let err = claim.await.unwrap().unwrap_err();
    assert!(err.to_string().contains("damaged"), "{err}");
    for s in starts {
        assert!(s.await.unwrap().unwrap().created);
    }

    let (locked_by, attempts, status): (Option<String>, i64, String) = raw
        .query_row(
            "select t.locked_by, t.attempts, e.status from zart_tasks t
             join zart_executions e on e.id = t.execution_id where e.id = 'damaged'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        (locked_by, attempts, status.as_str()),
        (None, 0, "scheduled")
    );
    let others: i64 = raw
        .query_row(
            "select count(*) from zart_executions where id like 'other-%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(others, 20);
}
