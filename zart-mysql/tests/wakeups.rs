//! Wake-ups: this process's writes wake its subscribers at once; another process's writes
//! (here another scheduler on the same database, with its own pool) arrive through the change
//! probe's poller as `Resync`, within 3 s on an idle watcher, and an idle watcher reads the
//! probe about once every 3 s.
//!
//! Needs a server: `eval "$(ci/mariadb-up)"` (or `ZART_MYSQL_URL`, default
//! `mysql://root@127.0.0.1:3306`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod support;

use std::time::{Duration, Instant};

use zart::scheduler::{SendEventParams, StartExecutionParams, Wakeup};
use zart::Scheduler;
use zart_mysql::MySqlScheduler;

fn start(id: &str) -> StartExecutionParams {
    StartExecutionParams {
        id: id.to_owned(),
        task_name: "t".to_owned(),
        input: serde_json::json!({}),
        queue: "default".to_owned(),
        ..Default::default()
    }
}

/// Waits for the watcher's next `Resync`; returns how long it took from `sent`.
async fn resync(rx: &mut tokio::sync::broadcast::Receiver<Wakeup>, sent: Instant) -> Duration {
    loop {
        let got = tokio::time::timeout(Duration::from_secs(3), rx.recv())
            .await
            .expect("no wake-up from the other scheduler's write")
            .unwrap();
        if got == Wakeup::Resync {
            return sent.elapsed();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_of_another_process_arrive_through_the_poller() {
    let name = format!("zart_wake_{}", std::process::id());
    let url = support::fresh_database(&name).await;
    zart_mysql::migrate(&url).await.unwrap();
    let writer = MySqlScheduler::connect(&url).await.unwrap();
    let watcher = MySqlScheduler::connect(&url).await.unwrap();
    assert_eq!(watcher.poll_count(), 0);

    let mut own = writer.subscribe();
    let mut other = watcher.subscribe();
    // Let the poller take its first reading and back off to idle.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let mut waits = Vec::new();
    for n in 0..5 {
        let sent = Instant::now();
        writer
            .start_execution(start(&format!("a{n}")))
            .await
            .unwrap();
        // The writer's own poller may have sent a `Resync` for an earlier write; the start's
        // own wake-up is there the moment the call returns.
        let mut seen = Vec::new();
        while let Ok(w) = own.try_recv() {
            seen.push(w);
        }
        assert!(
            seen.contains(&Wakeup::Work {
                queue: "default".to_owned()
            }),
            "in-process wake-ups are sent at commit: {seen:?}"
        );
        waits.push(resync(&mut other, sent).await);
        // Idle again before the next (the interval back at its longest).
        tokio::time::sleep(Duration::from_millis(6300)).await;
    }
    // An event, too, is seen.
    let sent = Instant::now();
    writer
        .send_event(SendEventParams {
            execution_id: "a0".to_owned(),
            name: "go".to_owned(),
            payload: serde_json::json!(1),
        })
        .await
        .unwrap();
    waits.push(resync(&mut other, sent).await);
    waits.sort();
    eprintln!("cross-process wake-up after an idle spell: {waits:?}");
    assert!(
        waits.iter().all(|w| *w < Duration::from_millis(3500)),
        "{waits:?}"
    );

    // Idle, it backs off to one probe every 3 s.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let before = watcher.poll_count();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let idle = watcher.poll_count() - before;
    eprintln!("{idle} probes in 10 idle seconds");
    assert!((3..=5).contains(&idle), "{idle} probes in 10 idle seconds");

    writer.close().await;
    watcher.close().await;
    support::drop_database(&name).await;
}
