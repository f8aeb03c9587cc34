//! `ctx.step_tx` on PostgreSQL: a step body's writes commit together with the step's recorded
//! result, or not at all. Worker processes killed between a body's write and its commit leave
//! exactly one write per recorded step; misuse of the transaction fails the step and never
//! leaves a connection open in a transaction.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::json;
use zart::scheduler::{ClaimTasksParams, CommitStepParams, ReleaseTasksParams, StepStatus};
use zart::{
    Error, ExecutionStatus, RetryConfig, Scheduler, StartOptions, TaskContext, TaskError,
    TaskHandler, TaskRegistry, WorkerConfig,
};
use zart_pg::StepTx;
use zart_tests::tasks::{LedgerInput, LEDGER_SQL, SETUP_SQL};
use zart_tests::{
    count, init_tracing, kill_process, spawn_worker_process, wait_for, Harness, TestDb,
};

/// The worker process the crash test kills.
const WORKER_BIN: &str = env!("CARGO_BIN_EXE_zart-test-worker");

/// The business table of [`TxCases`], with a deferred check that refuses the first commit of a
/// row with `n = 99` (a sequence, which no rollback undoes, counts the commits tried).
const BIZ_SQL: &str = "
create table biz (execution_id text not null, n integer not null);
create sequence biz_gate_seq;
create function biz_gate() returns trigger language plpgsql as $$
begin
    if nextval('biz_gate_seq') = 1 then
        raise exception 'the gate refuses the first commit';
    end if;
    return null;
end $$;
create constraint trigger biz_gate after insert on biz deferrable initially deferred
    for each row when (new.n = 99) execute function biz_gate();
";

/// What [`TxCases`]'s step body does after writing its `biz` row.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
enum Case {
    /// Returns the row count it sees.
    Ok,
    /// Returns an error.
    Fail,
    /// Panics.
    Panic,
    /// Runs `COMMIT` itself.
    Commit,
    /// Moves its handle into a task that outlives the body.
    Leak,
    /// Writes `n = 99`, which the deferred check refuses on the first commit (retried).
    Deferred,
    /// Never returns (the worker is shut down under it).
    Hang,
}

/// One transactional step `w` that writes a `biz` row, then does what the case says.
struct TxCases;

#[async_trait]
impl TaskHandler for TxCases {
    type Data = Case;
    type Output = i64;

    async fn run(
        &self,
        ctx: &mut TaskContext<impl Scheduler>,
        case: Case,
    ) -> Result<i64, TaskError> {
        let id = ctx.execution_id().to_owned();
        let n: i32 = if matches!(case, Case::Deferred) {
            99
        } else {
            1
        };
        let retry = RetryConfig::fixed(3, Duration::from_millis(10));
        ctx.step_tx_with_retry("w", retry, |tx: StepTx| {
            let id = id.clone();
            async move {
                tx.execute(
                    "insert into biz (execution_id, n) values ($1, $2)",
                    &[&id, &n],
                )
                .await?;
                match case {
                    Case::Ok | Case::Deferred => {}
                    Case::Fail => return Err("the body gave up".into()),
                    Case::Panic => panic!("the body panicked"),
                    Case::Commit => tx.batch_execute("commit").await?,
                    Case::Leak => {
                        tokio::spawn(async move {
                            tokio::time::sleep(Duration::from_millis(500)).await;
                            drop(tx);
                        });
                        return Ok(0);
                    }
                    Case::Hang => tokio::time::sleep(Duration::from_secs(3600)).await,
                }
                let row = tx
                    .query_one("select count(*) from biz where execution_id = $1", &[&id])
                    .await?;
                Ok::<i64, Box<dyn std::error::Error + Send + Sync>>(row.get(0))
            }
        })
        .await
    }
}

async fn harness() -> Harness {
    let mut registry = TaskRegistry::new();
    registry.register("tx-cases", TxCases).unwrap();
    let h = Harness::with_registry(registry).await;
    h.db.client().await.batch_execute(BIZ_SQL).await.unwrap();
    h
}

async fn run_case(h: &Harness, id: &str, case: Case) -> zart::Execution {
    h.durable
        .start_with(
            id,
            "tx-cases",
            serde_json::to_value(case).unwrap(),
            StartOptions::default(),
        )
        .await
        .unwrap();
    h.durable
        .wait(id, Some(Duration::from_secs(30)))
        .await
        .unwrap()
}

async fn biz_rows(h: &Harness, id: &str) -> i64 {
    let client = h.db.client().await;
    client
        .query_one("select count(*) from biz where execution_id = $1", &[&id])
        .await
        .unwrap()
        .get(0)
}

/// Sessions of the test database left inside a transaction (none may be: a step transaction
/// that did not end goes out of the pool).
async fn open_transactions(h: &Harness) -> i64 {
    let client = h.db.client().await;
    client
        .query_one(
            "select count(*) from pg_stat_activity
              where datname = current_database() and state like 'idle in transaction%'",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

/// The recorded steps of `id`: (status, attempts), in order.
async fn steps(h: &Harness, id: &str) -> Vec<(String, i32)> {
    let client = h.db.client().await;
    client
        .query(
            "select status, attempts from zart_steps where execution_id = $1 order by seq",
            &[&id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

fn error_message(done: &zart::Execution) -> String {
    done.error
        .as_ref()
        .map(|e| e.message.clone())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_body_write_and_the_step_result_commit_together() {
    init_tracing();
    let h = harness().await;
    h.spawn_worker(WorkerConfig::default());
    let done = run_case(&h, "ok", Case::Ok).await;
    assert_eq!(done.status, ExecutionStatus::Completed, "{:?}", done.error);
    // The body saw its own write, inside its transaction.
    assert_eq!(done.output, Some(json!(1)));
    assert_eq!(biz_rows(&h, "ok").await, 1);
    assert_eq!(steps(&h, "ok").await, [("completed".to_owned(), 1)]);
    assert_eq!(open_transactions(&h).await, 0);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_or_panicking_body_rolls_its_writes_back_and_records_the_failure() {
    init_tracing();
    let h = harness().await;
    h.spawn_worker(WorkerConfig::default());
    for (id, case, message) in [
        ("fail", Case::Fail, "the body gave up"),
        ("panic", Case::Panic, "step panicked: the body panicked"),
    ] {
        let done = run_case(&h, id, case).await;
        assert_eq!(done.status, ExecutionStatus::Failed);
        assert_eq!(error_message(&done), message);
        assert_eq!(
            biz_rows(&h, id).await,
            0,
            "{id}: every attempt was rolled back"
        );
        // A panic is not retried; an error is, up to the 3 attempts.
        let attempts = if matches!(case, Case::Panic) { 1 } else { 3 };
        assert_eq!(
            steps(&h, id).await,
            [("failed".to_owned(), attempts)],
            "{id}"
        );
    }
    assert_eq!(open_transactions(&h).await, 0);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_refused_by_the_database_is_a_failed_attempt_and_is_retried() {
    init_tracing();
    let h = harness().await;
    h.spawn_worker(WorkerConfig::default());
    let done = run_case(&h, "gate", Case::Deferred).await;
    assert_eq!(done.status, ExecutionStatus::Completed, "{:?}", done.error);
    assert_eq!(
        biz_rows(&h, "gate").await,
        1,
        "the refused commit wrote nothing"
    );
    assert_eq!(steps(&h, "gate").await, [("completed".to_owned(), 2)]);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_ends_or_keeps_its_transaction_fails_the_step() {
    init_tracing();
    let h = harness().await;
    h.spawn_worker(WorkerConfig::default());

    let done = run_case(&h, "commit", Case::Commit).await;
    assert_eq!(done.status, ExecutionStatus::Failed);
    let message = error_message(&done);
    assert!(
        message.contains("ended its transaction itself"),
        "{message}"
    );
    // What the body committed itself stays: that is the misuse the message names.
    assert_eq!(
        biz_rows(&h, "commit").await,
        3,
        "one row per attempt, each committed by the body"
    );

    let done = run_case(&h, "leak", Case::Leak).await;
    assert_eq!(done.status, ExecutionStatus::Failed);
    let message = error_message(&done);
    assert!(message.contains("kept its StepTx"), "{message}");
    assert_eq!(biz_rows(&h, "leak").await, 0, "rolled back");

    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(open_transactions(&h).await, 0);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_dropped_mid_body_closes_its_connection_and_writes_nothing() {
    init_tracing();
    let h = harness().await;
    let stop =
        h.spawn_worker(WorkerConfig::default().with_shutdown_timeout(Duration::from_millis(300)));
    h.durable
        .start_with("hang", "tx-cases", json!("Hang"), StartOptions::default())
        .await
        .unwrap();
    let client = h.db.client().await;
    wait_for("the body to write", Duration::from_secs(20), || async {
        (count(&client, "select count(*) from pg_stat_activity where datname = current_database() and state like 'idle in transaction%'").await == 1).then_some(())
    })
    .await;
    stop.shutdown();
    wait_for(
        "the transaction to be gone",
        Duration::from_secs(20),
        || async { (open_transactions(&h).await == 0).then_some(()) },
    )
    .await;
    assert_eq!(biz_rows(&h, "hang").await, 0);
    assert!(steps(&h, "hang").await.is_empty());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_lease_refuses_the_commit_and_rolls_the_writes_back() {
    init_tracing();
    let h = harness().await;
    h.durable
        .start_with("lost", "tx-cases", json!("Ok"), StartOptions::default())
        .await
        .unwrap();
    let claim = |worker: &str| ClaimTasksParams {
        worker_id: worker.to_owned(),
        queue: "default".to_owned(),
        task_names: vec!["tx-cases".to_owned()],
        limit: 1,
        lease: Duration::from_secs(60),
        ..Default::default()
    };
    let task = h
        .scheduler
        .claim_tasks(claim("w1"))
        .await
        .unwrap()
        .remove(0);
    let tx = h.scheduler.begin_step_tx().await.unwrap();
    let handle = *tx.handle().downcast::<StepTx>().unwrap();
    handle
        .execute("insert into biz (execution_id, n) values ('lost', 1)", &[])
        .await
        .unwrap();
    drop(handle);
    // Another worker takes the execution over while the transaction is open.
    h.scheduler
        .release_tasks(ReleaseTasksParams {
            worker_id: "w1".into(),
            queue: "default".into(),
            leases: vec![task.lease.clone()],
        })
        .await
        .unwrap();
    let taken = h.scheduler.claim_tasks(claim("w2")).await.unwrap();
    assert_eq!(taken.len(), 1);
    let err = tx
        .commit_with_step(CommitStepParams {
            lease: task.lease.clone(),
            name: "w".into(),
            seq: 0,
            status: StepStatus::Completed,
            output: Some(json!(1)),
            error: None,
            attempts: 1,
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::LeaseLost { .. }), "{err:?}");
    assert_eq!(biz_rows(&h, "lost").await, 0);
    assert!(steps(&h, "lost").await.is_empty());
    assert_eq!(open_transactions(&h).await, 0);
}

/// Worker processes are killed while a step body's write is not yet committed, three times;
/// the replacements finish every execution. Each recorded step has exactly one ledger row
/// (the killed bodies' writes were rolled back with their connections), and the bodies ran
/// more often than that (the kills did land between a write and its commit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_workers_leave_exactly_one_write_per_recorded_step() {
    init_tracing();
    const EXECUTIONS: usize = 4;
    const STEPS: u32 = 4;
    let db = TestDb::new().await;
    let client = db.client().await;
    client.batch_execute(SETUP_SQL).await.unwrap();
    client.batch_execute(LEDGER_SQL).await.unwrap();
    for i in 0..EXECUTIONS {
        client
            .execute(
                "select zart_start($1, 'ledger', $2)",
                &[
                    &format!("ledger-{i}"),
                    &serde_json::to_value(LedgerInput {
                        steps: STEPS,
                        step_ms: 400,
                    })
                    .unwrap(),
                ],
            )
            .await
            .unwrap();
    }
    let bodies = "select count(*) from zart_test_side_effects";
    let recorded = "select count(*) from zart_steps";
    for kill in 0..3 {
        let worker = spawn_worker_process(WORKER_BIN, &db).await;
        let pid = worker.id().unwrap() as i32;
        // This worker has a body that wrote and did not commit: it ran more bodies than its
        // committed ledger rows (visible only once committed).
        let in_flight = format!(
            "select (select count(*) from zart_test_side_effects where pid = {pid})
                  - (select count(*) from zart_test_ledger where pid = {pid})"
        );
        let uncommitted = wait_for("a body in flight", Duration::from_secs(30), || async {
            let n = count(&client, &in_flight).await;
            (n > 0).then_some(n)
        })
        .await;
        kill_process(worker).await;
        eprintln!("kill {kill}: {uncommitted} bodies of pid {pid} had written and not committed");
    }
    let _last = spawn_worker_process(WORKER_BIN, &db).await;
    wait_for(
        "every execution to complete",
        Duration::from_secs(90),
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

    let total = i64::from(STEPS) * EXECUTIONS as i64;
    assert_eq!(count(&client, recorded).await, total);
    assert_eq!(
        count(&client, "select count(*) from zart_test_ledger").await,
        total
    );
    assert_eq!(
        count(
            &client,
            "select count(*) from zart_steps s
              where (select count(*) from zart_test_ledger l
                      where l.execution_id = s.execution_id and l.step = s.name) <> 1"
        )
        .await,
        0,
        "every recorded step has exactly one ledger row"
    );
    let ran = count(&client, bodies).await;
    eprintln!("bodies run {ran}, writes committed {total}");
    assert!(
        ran > total,
        "some body's write was rolled back by a kill ({ran} runs)"
    );
}
