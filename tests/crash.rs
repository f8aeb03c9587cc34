//! Crash recovery with real processes: a worker process killed with SIGKILL in the middle of
//! workflows is replaced by another, which finishes them without re-running completed steps.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::HashSet;
use std::time::Duration;

use zart_tests::{
    count, init_tracing, kill_process, spawn_worker_process, tasks, wait_for, TestDb,
};

/// The worker process that crash tests kill.
const WORKER_BIN: &str = env!("CARGO_BIN_EXE_zart-test-worker");

const EXECUTIONS: usize = 4;
const STEPS: u32 = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_is_replaced_and_completed_steps_do_not_run_again() {
    init_tracing();
    let db = TestDb::new().await;
    let client = db.client().await;
    client.batch_execute(tasks::SETUP_SQL).await.unwrap();

    let first = spawn_worker_process(WORKER_BIN, &db).await;
    let first_pid = first.id().unwrap() as i32;
    for i in 0..EXECUTIONS {
        client
            .execute(
                "select zart_start($1, 'counted', $2)",
                &[
                    &format!("crash-{i}"),
                    &serde_json::json!({"steps": STEPS, "step_ms": 200}),
                ],
            )
            .await
            .unwrap();
    }

    // Kill it mid-flight: some steps recorded, none of the executions finished.
    wait_for(
        "some steps to be recorded",
        Duration::from_secs(30),
        || async { (count(&client, "select count(*) from zart_steps").await >= 4).then_some(()) },
    )
    .await;
    kill_process(first).await;
    let recorded_at_kill: HashSet<(String, String)> = client
        .query("select execution_id, name from zart_steps", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert!(!recorded_at_kill.is_empty());
    assert_eq!(
        count(
            &client,
            "select count(*) from zart_executions where status = 'completed'"
        )
        .await,
        0,
        "the kill came before any execution finished"
    );

    let second = spawn_worker_process(WORKER_BIN, &db).await;
    let second_pid = second.id().unwrap() as i32;
    wait_for(
        "every execution to complete",
        Duration::from_secs(60),
        || async {
            (count(
                &client,
                "select count(*) from zart_executions where status = 'completed'",
            )
            .await
                == EXECUTIONS as i64)
                .then_some(())
        },
    )
    .await;

    // Every step has exactly one recorded result, and the outputs are the handler's.
    assert_eq!(
        count(
            &client,
            "select count(*) from zart_steps where status = 'completed'"
        )
        .await,
        (EXECUTIONS as i64) * i64::from(STEPS)
    );
    assert_eq!(
        count(
            &client,
            "select count(*) from zart_executions where output = '5'::jsonb"
        )
        .await,
        EXECUTIONS as i64
    );
    assert_eq!(count(&client, "select count(*) from zart_tasks").await, 0);

    let effects = client
        .query(
            "select execution_id, step, count(*), array_agg(distinct pid)
               from zart_test_side_effects group by 1, 2",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        effects.len(),
        EXECUTIONS * STEPS as usize,
        "every step body ran"
    );
    let mut repeated_per_execution = std::collections::HashMap::<String, usize>::new();
    for row in &effects {
        let (execution, step): (String, String) = (row.get(0), row.get(1));
        let runs: i64 = row.get(2);
        let pids: Vec<i32> = row.get(3);
        if recorded_at_kill.contains(&(execution.clone(), step.clone())) {
            assert_eq!(
                runs, 1,
                "{execution}/{step} was recorded before the kill and ran again"
            );
            assert_eq!(pids, vec![first_pid]);
        } else if runs > 1 {
            // Only a step in flight at the kill runs twice: once in each process.
            assert_eq!(runs, 2, "{execution}/{step} ran {runs} times");
            let mut pids = pids;
            pids.sort();
            let mut expected = vec![first_pid, second_pid];
            expected.sort();
            assert_eq!(pids, expected);
            *repeated_per_execution.entry(execution).or_default() += 1;
        }
    }
    for (execution, repeated) in repeated_per_execution {
        assert!(repeated <= 1, "{execution} re-ran {repeated} steps");
    }

    // The second process resumed the work: it recorded what the first had not.
    let resumed = count(
        &client,
        &format!("select count(*) from zart_test_side_effects where pid = {second_pid}"),
    )
    .await;
    assert!(resumed > 0);
    kill_process(second).await;
}
