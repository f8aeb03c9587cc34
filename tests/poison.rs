//! Poison workflows: a step that kills its worker process every time it runs stops after a
//! bounded number of recoveries and fails with that reason, while other work goes on.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::Duration;

use zart_tests::{count, init_tracing, spawn_worker_process_with, tasks, wait_for, TestDb};

/// The worker process the poison kills.
const WORKER_BIN: &str = env!("CARGO_BIN_EXE_zart-test-worker");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_that_kills_its_worker_every_time_fails_after_the_recovery_limit() {
    init_tracing();
    let db = TestDb::new().await;
    let client = db.client().await;
    client.batch_execute(tasks::SETUP_SQL).await.unwrap();
    client
        .execute("select zart_start('poisoned', 'poison', 'null')", &[])
        .await
        .unwrap();

    // Respawn a worker each time the poison kills it, as a supervisor would. Each run also
    // finishes an ordinary execution started beside it: other work goes on.
    let env = [
        ("ZART_TEST_LEASE_MS", "1000"),
        ("ZART_TEST_MAX_RECOVERIES", "2"),
    ];
    let mut spawned = 0;
    loop {
        client
            .execute(
                "select zart_start($1, 'echo', '\"beside the poison\"')",
                &[&format!("ordinary-{spawned}")],
            )
            .await
            .unwrap();
        let mut worker = spawn_worker_process_with(WORKER_BIN, &db, &env).await;
        spawned += 1;
        let gave_up = async {
            wait_for("the poison to fail", Duration::from_secs(20), || async {
                let status: String = client
                    .query_one(
                        "select status from zart_executions where id = 'poisoned'",
                        &[],
                    )
                    .await
                    .unwrap()
                    .get(0);
                (status == "failed").then_some(())
            })
            .await
        };
        tokio::select! {
            exited = worker.wait() => {
                let exited = exited.unwrap();
                assert!(!exited.success(), "the worker died of the poison: {exited:?}");
                assert!(spawned < 8, "the poison is still retried after {spawned} workers");
            }
            () = gave_up => {
                // This worker failed the poison instead of running it, and runs on: the
                // ordinary work, including what died with earlier workers, completes on it.
                wait_for("the ordinary executions", Duration::from_secs(20), || async {
                    let done = count(
                        &client,
                        "select count(*) from zart_executions where task_name = 'echo' and status = 'completed'",
                    )
                    .await;
                    (done == i64::from(spawned)).then_some(())
                })
                .await;
                worker.start_kill().unwrap();
                worker.wait().await.unwrap();
                break;
            }
        }
    }

    // Claimed 4 times: the first run, then recoveries 1 and 2 ran it again, and the claim that
    // counted recovery 3 (over the limit of 2) failed it without running it.
    assert_eq!(spawned, 4);
    let row = client
        .query_one(
            "select attempts, error->>'kind', error->>'message' from zart_executions where id = 'poisoned'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 4);
    assert_eq!(
        row.get::<_, Option<String>>(1).as_deref(),
        Some("too_many_recoveries")
    );
    assert_eq!(
        row.get::<_, Option<String>>(2).as_deref(),
        Some(
            "the execution was taken over 3 times from a worker that died or stalled while \
             running it; giving up (WorkerConfig::max_recoveries is 2)"
        )
    );
    // The step before the poison ran once; the poison step never got a record.
    assert_eq!(
        count(
            &client,
            "select count(*) from zart_steps where execution_id = 'poisoned'"
        )
        .await,
        1
    );
}
