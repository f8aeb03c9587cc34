//! The SQL surface: every example in docs/sql.md runs, in order, against a database where
//! workflows started, waited, failed and were cancelled from SQL, and returns what it should.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::Duration;

use async_trait::async_trait;
use tokio_postgres::SimpleQueryMessage;
use zart::{
    EventOutcome, ExecutionStatus, Scheduler, TaskContext, TaskError, TaskHandler, TaskRegistry,
    WorkerConfig,
};
use zart_tests::{init_tracing, wait_for, Harness};

/// Reserves stock, waits for a human approval, then ships or fails.
struct FulfilOrder;

#[async_trait]
impl TaskHandler for FulfilOrder {
    type Data = serde_json::Value;
    type Output = serde_json::Value;

    async fn run(
        &self,
        ctx: &mut TaskContext<impl Scheduler>,
        order: serde_json::Value,
    ) -> Result<serde_json::Value, TaskError> {
        let sku = order["sku"].as_str().unwrap_or_default().to_owned();
        ctx.step("reserve", || async move { Ok::<_, std::io::Error>(sku) })
            .await?;
        let approval = match ctx
            .wait_for_event::<serde_json::Value>("approval", None)
            .await?
        {
            EventOutcome::Received(approval) => approval,
            EventOutcome::TimedOut => return Err(TaskError::failed("no approval")),
            EventOutcome::Malformed { error, .. } => return Err(TaskError::failed(error)),
        };
        if approval["approved"] != serde_json::json!(true) {
            return Err(TaskError::failed("order rejected"));
        }
        ctx.step("ship", || async {
            Ok::<_, std::io::Error>("shipped".to_owned())
        })
        .await?;
        Ok(approval)
    }
}

/// The ```sql blocks of docs/sql.md, in order.
fn sql_examples() -> Vec<String> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/sql.md"))
        .expect("docs/sql.md");
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in doc.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sql") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), text) => {
                block.push_str(text);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    assert!(current.is_none(), "an unclosed ```sql block in docs/sql.md");
    blocks
}

/// Runs a block; returns the rows of its last statement as text.
async fn run(client: &tokio_postgres::Client, sql: &str) -> Vec<Vec<Option<String>>> {
    let messages = client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("docs/sql.md example failed: {e}\n{sql}"));
    let mut rows = Vec::new();
    for message in messages {
        match message {
            SimpleQueryMessage::Row(row) => rows.push(
                (0..row.len())
                    .map(|i| row.get(i).map(str::to_owned))
                    .collect(),
            ),
            SimpleQueryMessage::CommandComplete(_) => {}
            _ => {}
        }
    }
    rows
}

fn text(v: &str) -> Option<String> {
    Some(v.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_in_the_sql_guide_runs_and_shows_the_state() {
    init_tracing();
    let mut registry = TaskRegistry::new();
    registry.register("fulfil-order", FulfilOrder).unwrap();
    let h = Harness::with_registry(registry).await;
    h.spawn_worker(WorkerConfig::default());
    let client = h.db.client().await;

    // The state the examples talk about: an order to cancel, one that keeps waiting, one whose
    // task no worker runs (overdue once the clock moves), and an event nobody consumes.
    run(
        &client,
        "select zart_start('order-44', 'fulfil-order', '{\"order_id\": 44, \"sku\": \"C-3\"}');
         select zart_start('order-45', 'fulfil-order', '{\"order_id\": 45, \"sku\": \"D-4\"}');
         select zart_start('orphan-1', 'nobody-runs-this', '{}');
         select zart_emit_event('orphan-1', 'hello', '\"world\"');",
    )
    .await;
    wait_for(
        "order-44 and order-45 to wait",
        Duration::from_secs(10),
        || async {
            let rows = run(&client, "select count(*) from zart_waiting").await;
            (rows[0][0] == text("2")).then_some(())
        },
    )
    .await;

    let examples = sql_examples();
    assert!(
        examples.len() >= 10,
        "docs/sql.md lost examples: {}",
        examples.len()
    );
    let mut checked = 0;
    for sql in &examples {
        if sql.contains("zart_execution_counts") {
            // Queries look at the settled state: order-42 shipped, order-43 rejected.
            for (id, status) in [
                ("order-42", ExecutionStatus::Completed),
                ("order-43", ExecutionStatus::Failed),
            ] {
                let done = h
                    .durable
                    .wait(id, Some(Duration::from_secs(15)))
                    .await
                    .unwrap();
                assert_eq!(done.status, status, "{id}");
            }
            // Two minutes later the orphan is overdue.
            h.db.advance_clock(Duration::from_secs(120)).await;
        }
        // A worker of its own holds the orphan while the running example reads, in a
        // transaction rolled back after it (the overdue example wants the orphan unclaimed).
        let holds = sql.contains("from zart_execution_status");
        if holds {
            let claimed = run(
                &client,
                "begin;
                 select execution_id from zart_claim_tasks(
                     'sql-guide', 'default', array['nobody-runs-this'], 1, 600000)",
            )
            .await;
            assert_eq!(
                claimed,
                vec![vec![text("orphan-1")]],
                "the orphan is claimed"
            );
        }
        let rows = run(&client, sql).await;
        let mut stored = None;
        if holds {
            // The stored row, and what a repeated start says of the held execution.
            stored = Some(
                run(
                    &client,
                    "select e.status, s.created, s.status
                       from zart_executions e,
                            zart_start_execution(zart_bucket('orphan-1'), 'orphan-1',
                                                 'nobody-runs-this', '{}', 'default', null, null) s
                      where e.id = 'orphan-1'",
                )
                .await,
            );
            run(&client, "rollback").await;
        }
        if sql.starts_with("select zart_start('order-42'") {
            assert_eq!(rows, vec![vec![text("t")]]);
            checked += 1;
        } else if sql.contains("select zart_cancel('order-44')") {
            assert_eq!(rows, vec![vec![text("1")]]);
            checked += 1;
        } else if sql.contains("from zart_execution_counts") {
            assert_eq!(
                rows,
                vec![
                    vec![text("fulfil-order"), text("cancelled"), text("1")],
                    vec![text("fulfil-order"), text("completed"), text("1")],
                    vec![text("fulfil-order"), text("failed"), text("1")],
                    vec![text("fulfil-order"), text("waiting"), text("1")],
                    vec![text("nobody-runs-this"), text("scheduled"), text("1")],
                ]
            );
            checked += 1;
        } else if sql.contains("from zart_execution_status") {
            // Only the orphan, claimed above, holds a lease; its stored row still says
            // scheduled (a claim writes only the task row), and a repeated start says running.
            assert_eq!(rows.len(), 1, "{rows:?}");
            assert_eq!(
                rows[0][..3],
                [text("orphan-1"), text("nobody-runs-this"), text("1")]
            );
            assert_eq!(
                stored,
                Some(vec![vec![text("scheduled"), text("f"), text("running")]])
            );
            checked += 1;
        } else if sql.contains("from zart_step_timeline") {
            let names: Vec<_> = rows
                .iter()
                .map(|r| (r[1].clone(), r[2].clone(), r[3].clone()))
                .collect();
            assert_eq!(
                names,
                vec![
                    (text("reserve"), text("step"), text("completed")),
                    (text("event:approval"), text("event"), text("completed")),
                    (text("ship"), text("step"), text("completed")),
                ]
            );
            checked += 1;
        } else if sql.contains("from zart_waiting") {
            assert_eq!(rows.len(), 1);
            assert_eq!(rows[0][0], text("order-45"));
            assert_eq!(rows[0][2], text("event"));
            assert_eq!(rows[0][3], text("approval"));
            assert_eq!(rows[0][4], None, "no timeout: wakes_at is null");
            checked += 1;
        } else if sql.contains("from zart_overdue") {
            assert_eq!(rows.len(), 1);
            assert_eq!(rows[0][0], text("orphan-1"));
            assert_eq!(rows[0][3], text("due, not claimed"));
            checked += 1;
        } else if sql.contains("where status = 'failed'") {
            assert_eq!(
                rows,
                vec![vec![
                    text("order-43"),
                    text("fulfil-order"),
                    text("failed"),
                    None,
                    text("order rejected")
                ]]
            );
            checked += 1;
        } else if sql.contains("from zart_events") {
            assert_eq!(rows.len(), 1);
            assert_eq!(rows[0][0], text("orphan-1"));
            assert_eq!(rows[0][2], text("\"world\""));
            checked += 1;
        }
    }
    assert_eq!(checked, 9, "every query example was checked");

    // The trigger started order-43 with the inserted row as input; order-42's output is the
    // approval that resumed it.
    let o43 = h.durable.status("order-43").await.unwrap();
    assert_eq!(o43.input, serde_json::json!({"order_id": 43, "sku": "B-2"}));
    let o42 = h.durable.status("order-42").await.unwrap();
    assert_eq!(
        o42.output,
        Some(serde_json::json!({"approved": true, "by": "dana"}))
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_functions_refuse_bad_input_naming_the_field() {
    init_tracing();
    let h = Harness::new().await;
    let client = h.db.client().await;
    for (sql, message) in [
        (
            "select zart_start('', 'echo')",
            "invalid execution id: must not be empty",
        ),
        (
            "select zart_start('x', '')",
            "invalid task name: must not be empty",
        ),
        (
            "select zart_start(repeat('x', 256), 'echo')",
            "invalid execution id: 256 bytes is over the limit of 255 bytes",
        ),
        (
            "select zart_emit_event('nobody', 'e')",
            "execution \"nobody\" not found",
        ),
        (
            "select zart_cancel('nobody')",
            "execution \"nobody\" not found",
        ),
    ] {
        let err = client.simple_query(sql).await.unwrap_err();
        let db = err.as_db_error().unwrap();
        assert_eq!(db.message(), message, "{sql}");
        assert!(
            db.code().code().starts_with("ZA"),
            "{sql}: {}",
            db.code().code()
        );
    }
    // Payloads over the limit: 1 MiB of JSON text by default; the owner changes it in
    // zart_settings (a session's SET does nothing).
    let err = client
        .simple_query(
            "select zart_start('big', 'echo', jsonb_build_object('k', repeat('x', 1048576)))",
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.as_db_error().unwrap().message(),
        "invalid input: 1048585 bytes of JSON is over the limit of 1048576 bytes"
    );
    let err = client
        .simple_query(
            "update zart_settings set max_payload_bytes = 100;
             select zart_emit_event('nobody', 'e', jsonb_build_object('k', repeat('x', 200)))",
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.as_db_error().unwrap().message(),
        "invalid event payload: 209 bytes of JSON is over the limit of 100 bytes"
    );
    client
        .simple_query("update zart_settings set max_payload_bytes = default")
        .await
        .unwrap();
    // Injection attempts are data.
    let rows = run(
        &client,
        "select zart_start($$x'); drop table zart_executions; --$$, 'echo')",
    )
    .await;
    assert_eq!(rows, vec![vec![text("t")]]);
    let rows = run(&client, "select count(*) from zart_executions").await;
    assert_eq!(rows, vec![vec![text("1")]]);
    h.stop().await;
}
