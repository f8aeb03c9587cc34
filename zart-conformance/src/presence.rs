//! The workers-seen contract ([`zart::Scheduler::record_presence`],
//! [`zart::Scheduler::record_departure`], [`zart::admin::Admin::list_workers`]), run by each
//! backend's own tests over a fresh store.

use std::time::Duration;

use zart::admin::Admin;
use zart::presence::{WorkerPresence, WorkerState};
use zart::Scheduler;

/// Checks `backend`, which must have no worker records: a record is listed alive with what it
/// said, refreshed in place, stopped by a departure (once), alive again when it records
/// itself after a stop, and refused by field when bad (writing nothing). Panics on a breach.
pub async fn presence_contract<B: Scheduler + Admin + ?Sized>(backend: &B) {
    assert!(backend.list_workers().await.unwrap().workers.is_empty());
    let mut w = WorkerPresence::new("host-a:42:0001", "default");
    w.task_names = vec!["fulfil".to_owned(), "notify 🚀".to_owned()];
    w.concurrency = 8;
    w.interval = Duration::from_secs(30);
    backend.record_presence(&w).await.unwrap();
    let mut other = WorkerPresence::new("host-b:7:0002", "emails");
    other.interval = Duration::from_secs(30);
    backend.record_presence(&other).await.unwrap();

    let seen = backend.list_workers().await.unwrap();
    assert_eq!(seen.workers.len(), 2);
    let a = seen
        .workers
        .iter()
        .find(|s| s.presence.worker_id == w.worker_id)
        .unwrap();
    assert_eq!(a.presence, w, "the record reads back as written");
    assert_eq!(a.state(seen.now), WorkerState::Alive);
    assert!(a.stopped_at.is_none() && a.seen_at >= a.started_at);

    w.running = 3;
    backend.record_presence(&w).await.unwrap();
    let seen = backend.list_workers().await.unwrap();
    assert_eq!(seen.workers.len(), 2, "refreshed in place");
    let a = seen
        .workers
        .iter()
        .find(|s| s.presence.worker_id == w.worker_id)
        .unwrap();
    assert_eq!(a.presence.running, 3);
    assert_eq!(
        seen.workers[0].presence.worker_id, w.worker_id,
        "most recently seen first"
    );

    assert!(backend.record_departure(&w.worker_id).await.unwrap());
    assert!(
        !backend.record_departure(&w.worker_id).await.unwrap(),
        "stopped once"
    );
    assert!(!backend.record_departure("nobody").await.unwrap());
    let seen = backend.list_workers().await.unwrap();
    let a = seen
        .workers
        .iter()
        .find(|s| s.presence.worker_id == w.worker_id)
        .unwrap();
    assert_eq!(a.state(seen.now), WorkerState::Stopped);
    assert_eq!(a.presence.running, 0);
    backend.record_presence(&w).await.unwrap();
    let seen = backend.list_workers().await.unwrap();
    let a = seen
        .workers
        .iter()
        .find(|s| s.presence.worker_id == w.worker_id)
        .unwrap();
    assert_eq!(a.state(seen.now), WorkerState::Alive, "back after a stop");

    let mut bad = WorkerPresence::new("", "default");
    let err = backend.record_presence(&bad).await.unwrap_err();
    assert_eq!(err.code(), "invalid_input", "{err}");
    bad = WorkerPresence::new("w", "default");
    bad.task_names = vec!["x\0".to_owned()];
    let err = backend.record_presence(&bad).await.unwrap_err();
    assert_eq!(err.code(), "invalid_input", "{err}");
    assert_eq!(backend.list_workers().await.unwrap().workers.len(), 2);
}
