//! Versioning with real worker processes: an execution started by a worker on the old code,
//! the worker replaced by one on the new code (`ctx.patched`) while it sleeps, a new execution
//! on the new code whose worker is killed with SIGKILL after it recorded the patch, and the
//! query of docs/authoring.md that lists what can still take the old path.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::Duration;

use zart_tests::{
    column, init_tracing, kill_process, spawn_worker_process_with, tasks, wait_for, TestDb,
};

const WORKER: &str = env!("CARGO_BIN_EXE_zart-test-worker");
const PATIENCE: Duration = Duration::from_secs(30);

/// docs/authoring.md, "Versioning": unfinished executions of the task without a `true` marker.
const OLD_PATH: &str = "select e.id, e.status, s.output as patched
    from zart_executions e
    left join zart_steps s
      on s.execution_id = e.id and s.name = 'patch:new-billing'
   where e.task_name = 'billing'
     and e.status not in ('completed', 'failed', 'cancelled')
     and s.output is distinct from 'true'";

async fn status(client: &tokio_postgres::Client, id: &str) -> String {
    client
        .query_one("select status from zart_executions where id = $1", &[&id])
        .await
        .unwrap()
        .get(0)
}

async fn wait_status(client: &tokio_postgres::Client, id: &str, want: &str) {
    wait_for(&format!("{id} to be {want}"), PATIENCE, || async {
        (status(client, id).await == want).then_some(())
    })
    .await;
}

async fn old_path(client: &tokio_postgres::Client) -> Vec<String> {
    column(
        client,
        &format!("select id from ({OLD_PATH}) q order by id"),
        &[],
    )
    .await
}

async fn runs(client: &tokio_postgres::Client, id: &str, step: &str) -> Vec<i32> {
    tasks::side_effect_pids(client, id, step).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_mid_run_and_a_crash_keep_each_execution_on_its_path() {
    init_tracing();
    let db = TestDb::new().await;
    let client = db.client().await;
    client.batch_execute(tasks::SETUP_SQL).await.unwrap();

    // The old release starts an order and sleeps past the point the patch will be at.
    let old_worker = spawn_worker_process_with(WORKER, &db, &[("ZART_TEST_CODE", "old")]).await;
    let old_pid = old_worker.id().unwrap() as i32;
    client
        .batch_execute("select zart_start('old-1', 'billing')")
        .await
        .unwrap();
    wait_status(&client, "old-1", "sleeping").await;
    kill_process(old_worker).await;
    assert_eq!(old_path(&client).await, ["old-1"], "no marker yet: listed");

    // The new release: a new order takes the new path; its worker dies inside charge-v2,
    // after the patch was recorded.
    let doomed = spawn_worker_process_with(
        WORKER,
        &db,
        &[("ZART_TEST_CODE", "new"), ("ZART_TEST_HOLD_MS", "60000")],
    )
    .await;
    let doomed_pid = doomed.id().unwrap() as i32;
    client
        .batch_execute("select zart_start('new-1', 'billing')")
        .await
        .unwrap();
    wait_for("charge-v2 to start", PATIENCE, || async {
        (!runs(&client, "new-1", "charge-v2").await.is_empty()).then_some(())
    })
    .await;
    let marker: Vec<serde_json::Value> = column(
        &client,
        "select output from zart_steps where execution_id = 'new-1' and kind = 'patch'",
        &[],
    )
    .await;
    assert_eq!(marker, [serde_json::json!(true)]);
    assert_eq!(
        old_path(&client).await,
        ["old-1"],
        "new-1 has recorded true"
    );
    kill_process(doomed).await;

    // Another worker on the new release takes new-1 over when its lease expires: the patch
    // is read back, and charge-v2 runs again (a body runs at least once), never charge.
    let worker = spawn_worker_process_with(WORKER, &db, &[("ZART_TEST_CODE", "new")]).await;
    let pid = worker.id().unwrap() as i32;
    wait_status(&client, "new-1", "sleeping").await;
    assert_eq!(runs(&client, "new-1", "charge-v2").await, [doomed_pid, pid]);
    assert!(runs(&client, "new-1", "charge").await.is_empty());

    // Both wake on the new release: old-1 replays its old path and records false; new-1
    // replays past charge-v2, where only its recorded true keeps it on the new path.
    db.advance_clock(Duration::from_secs(2 * 3600)).await;
    wait_status(&client, "old-1", "completed").await;
    wait_status(&client, "new-1", "completed").await;
    let outputs: Vec<serde_json::Value> = column(
        &client,
        "select output from zart_executions where id in ('old-1', 'new-1') order by id",
        &[],
    )
    .await;
    assert_eq!(outputs, [serde_json::json!("v2"), serde_json::json!("v1")]);
    assert_eq!(runs(&client, "old-1", "charge").await, [old_pid]);
    assert!(runs(&client, "old-1", "charge-v2").await.is_empty());
    assert_eq!(runs(&client, "old-1", "receipt").await, [pid]);
    let markers: Vec<(String, serde_json::Value)> = client
        .query(
            "select execution_id, output from zart_steps where kind = 'patch' order by execution_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        markers,
        [
            ("new-1".to_owned(), serde_json::json!(true)),
            ("old-1".to_owned(), serde_json::json!(false))
        ]
    );
    assert!(old_path(&client).await.is_empty(), "safe to retire");
    kill_process(worker).await;
}

/// `misuse`: with input `"step"`, a step body named like a patch marker; with `"empty"`, a
/// patch with an empty id.
struct Misuse;

#[zart::async_trait]
impl zart::TaskHandler for Misuse {
    type Data = String;
    type Output = ();

    async fn run(
        &self,
        ctx: &mut zart::TaskContext<impl zart::Scheduler>,
        what: String,
    ) -> Result<(), zart::TaskError> {
        if what == "step" {
            ctx.step("patch:sneaky", || async { Ok::<_, std::io::Error>(()) })
                .await
        } else {
            ctx.patched("").await.map(|_| ())
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_names_are_reserved_and_an_empty_patch_id_is_refused() {
    init_tracing();
    let mut registry = zart::TaskRegistry::new();
    registry.register("misuse", Misuse).unwrap();
    let h = zart_tests::Harness::with_registry(registry).await;
    h.spawn_worker(zart::WorkerConfig::default());
    for (id, message) in [
        (
            "step",
            "invalid step name: \"patch:sneaky\": names starting with \"patch:\" are \
             ctx.patched's markers",
        ),
        ("empty", "invalid patch id: must not be empty"),
    ] {
        h.durable
            .start(id, "misuse", serde_json::json!(id))
            .await
            .unwrap();
        let done = h.durable.wait(id, Some(PATIENCE)).await.unwrap();
        assert_eq!(done.status, zart::ExecutionStatus::Failed);
        assert_eq!(done.error.unwrap().message, message, "{id}");
        let steps: Vec<String> = column(
            &h.db.client().await,
            "select name from zart_steps where execution_id = $1",
            &[&id],
        )
        .await;
        assert!(steps.is_empty(), "{id}: nothing recorded: {steps:?}");
    }
    h.stop().await;
}
