//! Wake-ups: this process's writes wake its subscribers at once; another connection's writes
//! (another process, here another scheduler on the same file) arrive through the
//! `data_version` poller as `Resync`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::{Duration, Instant};

use zart::scheduler::{StartExecutionParams, Wakeup};
use zart::Scheduler;
use zart_sqlite::SqliteScheduler;

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
async fn writes_of_another_connection_arrive_through_the_poller() {
    let dir = std::env::temp_dir().join(format!("zart-sqlite-wake-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("zart.db").display());
    zart_sqlite::migrate(&url).await.unwrap();
    let writer = SqliteScheduler::connect(&url).await.unwrap();
    let watcher = SqliteScheduler::connect(&url).await.unwrap();
    assert_eq!(watcher.poll_count(), 0);

    let mut own = writer.subscribe();
    let mut other = watcher.subscribe();
    // Let the poller take its first reading.
    tokio::time::sleep(Duration::from_millis(50)).await;

    let sent = Instant::now();
    writer.start_execution(start("a")).await.unwrap();
    assert_eq!(
        own.try_recv().unwrap(),
        Wakeup::Work {
            queue: "default".to_owned()
        },
        "in-process wake-ups are sent at commit"
    );
    let got = tokio::time::timeout(Duration::from_secs(3), other.recv())
        .await
        .expect("no wake-up from the other connection's write")
        .unwrap();
    assert_eq!(got, Wakeup::Resync);
    let waited = sent.elapsed();
    assert!(waited < Duration::from_millis(500), "{waited:?}");
    assert!(watcher.poll_count() > 0);

    // Idle, it backs off to 40 ms: about 25 polls a second, not 100.
    let before = watcher.poll_count();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = watcher.poll_count() - before;
    assert!((10..=40).contains(&idle), "{idle} polls in an idle second");
    let _ = std::fs::remove_dir_all(&dir);
}
