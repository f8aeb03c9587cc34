//! Statement counts: a scheduler built with `count_statements` counts what its write and read
//! connections run, by kind; one built without counts nothing; the `data_version` probe is
//! never counted as a statement.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::Duration;

use zart::scheduler::StartExecutionParams;
use zart::Scheduler;
use zart_sqlite::{SqliteOptions, SqliteScheduler, StatementCounts};

fn start(id: &str) -> StartExecutionParams {
    StartExecutionParams {
        id: id.to_owned(),
        task_name: "t".to_owned(),
        input: serde_json::json!({}),
        queue: "default".to_owned(),
        parent_id: None,
        deadline: None,
        start: None,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_are_counted_only_when_asked_and_polls_are_not_statements() {
    let dir = std::env::temp_dir().join(format!("zart-sqlite-stmts-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("zart.db").display());
    zart_sqlite::migrate(&url).await.unwrap();
    let counted =
        SqliteScheduler::connect_with(&url, SqliteOptions::default().count_statements(true))
            .await
            .unwrap();
    let plain = SqliteScheduler::connect(&url).await.unwrap();
    assert_eq!(counted.statement_counts(), StatementCounts::default());

    counted.start_execution(start("a")).await.unwrap();
    let after_write = counted.statement_counts();
    assert!(after_write.zart_tables > 0, "{after_write:?}");
    assert!(
        after_write.control >= 2,
        "begin and commit: {after_write:?}"
    );

    counted.get_execution("a").await.unwrap().unwrap();
    let after_read = counted.statement_counts();
    assert!(
        after_read.zart_tables > after_write.zart_tables,
        "{after_read:?}"
    );

    // The poller reads data_version many times a second; none of it is a statement here.
    let _rx = counted.subscribe();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(counted.poll_count() > 0);
    assert_eq!(counted.statement_counts(), after_read);

    plain.start_execution(start("b")).await.unwrap();
    plain.get_execution("b").await.unwrap().unwrap();
    assert_eq!(plain.statement_counts(), StatementCounts::default());
    assert_eq!(
        counted.statement_counts(),
        after_read,
        "another scheduler's work"
    );
    drop((counted, plain));
    let _ = std::fs::remove_dir_all(&dir);
}
