//! The sidecar's graceful shutdown as a real process: on SIGTERM `/readyz` turns 503, a run
//! that ends within `ZART_SHUTDOWN_GRACE` completes, a run that does not is released for
//! another worker (status `scheduled`, no lease), and the process exits 0 once the grace is
//! over. (examples/tests/sidecar_process.rs covers the rest of the sidecar.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::{Duration, Instant};

use zart::scheduler::StartExecutionParams;
use zart::{ExecutionStatus, Scheduler};
use zart_tests::sidecar::{get, sample, Sidecar};
use zart_tests::tasks::CountedInput;
use zart_tests::{count, wait_for, TestDb};

const BIN: &str = env!("CARGO_BIN_EXE_zart-test-sidecar");

async fn start_counted(s: &impl Scheduler, id: &str, step_ms: u64) {
    s.start_execution(StartExecutionParams {
        id: id.into(),
        task_name: "counted".into(),
        input: serde_json::to_value(CountedInput { steps: 1, step_ms }).unwrap(),
        queue: "default".into(),
        parent_id: None,
        deadline: None,
        start: None,
        ..Default::default()
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_what_fits_in_the_grace_and_releases_the_rest() {
    let db = TestDb::new().await;
    let client = db.client().await;
    client
        .batch_execute(zart_tests::tasks::SETUP_SQL)
        .await
        .unwrap();
    let scheduler = db.scheduler().await;
    let mut sidecar = Sidecar::start(BIN, &db.url, &[("ZART_SHUTDOWN_GRACE", "3s")]);
    sidecar.ready().await;
    start_counted(&*scheduler, "short", 1_000).await;
    start_counted(&*scheduler, "long", 60_000).await;
    wait_for("both runs in flight", Duration::from_secs(15), || async {
        let page = sidecar.metrics().await;
        (sample(&page, r#"zart_runs_in_flight{queue="default"}"#) == Some(2.0)).then_some(())
    })
    .await;

    let sent = Instant::now();
    sidecar.sigterm();
    let (status, body) = wait_for("/readyz to turn 503", Duration::from_secs(2), || async {
        get(sidecar.port, "/readyz")
            .await
            .filter(|(s, _)| *s == 503)
    })
    .await;
    assert_eq!((status, body.as_str()), (503, "not ready: shutting down\n"));

    let (code, took, log) = sidecar.wait_exit(sent).await;
    assert_eq!(code, Some(0), "{log}");
    // Waited for the grace period (the long run never ends), and not much longer.
    assert!(
        took >= Duration::from_millis(2_900),
        "exited after {took:?}:\n{log}"
    );
    assert!(
        took < Duration::from_secs(8),
        "exited after {took:?}:\n{log}"
    );

    let short = scheduler.get_execution("short").await.unwrap().unwrap();
    assert_eq!(short.status, ExecutionStatus::Completed, "{log}");
    let long = scheduler.get_execution("long").await.unwrap().unwrap();
    assert_eq!(long.status, ExecutionStatus::Scheduled, "{log}");
    let leased = count(
        &client,
        "select count(*) from zart_tasks where execution_id = 'long' and locked_by is not null",
    )
    .await;
    assert_eq!(leased, 0, "the long run's lease was released");
    assert!(log.contains("released"), "{log}");
}
