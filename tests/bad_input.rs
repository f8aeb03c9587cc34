//! Bad input from Rust, the `zart` CLI and SQL: odd ids and names round-trip exactly, bad ones
//! and oversized payloads are refused naming the field and the limit, injection attempts are
//! data, and a refused call changes no execution's state.
//!
//! What needs a JSON object: no call does. An execution's input and an event's payload may be
//! any JSON value (`zart_start` defaults to `{}`, `zart_emit_event` to `null`), because what
//! fits is decided by the handler's Rust type: a `serde_json::Value` handler takes strings,
//! numbers and arrays; a handler whose `Data` (or event payload type) is a struct needs an
//! object with its fields, and anything else fails the execution when it runs, with kind
//! `serialization` and serde's reason. Malformed JSON cannot be built in Rust; from SQL it is
//! refused by PostgreSQL's `jsonb` parser (SQLSTATE 22P02), from the CLI naming the `input`
//! argument.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use zart::{
    Error, ExecutionStatus, Scheduler, TaskContext, TaskError, TaskHandler, TaskRegistry,
    WorkerConfig,
};
use zart_tests::{column, count, init_tracing, tasks, wait_for, Harness};

const WAIT: Option<Duration> = Some(Duration::from_secs(30));

/// A queue name with every awkward character class in it.
const ODD_QUEUE: &str = "queue 'q' \"%_\\ 🦀";

/// Ids and names that are valid (1..=255 bytes, no NUL) but awkward: quotes, LIKE wildcards,
/// backslashes, emoji, whitespace, dollar quotes and injection attempts. The last is exactly
/// 255 bytes.
fn odd_strings() -> Vec<String> {
    let mut odd: Vec<String> = [
        "it's",
        "say \"hi\"",
        "100%",
        "a_b",
        "back\\slash\\",
        "🦀 emoji ✓ ünïcödé",
        "'; drop table zart_executions; --",
        "\"); delete from zart_tasks; --",
        "%_\\'\"",
        "line\nbreak\ttab",
        "  spaces  ",
        "$$dollar$$ $x$",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    odd.push(format!("{}abc", "🦀".repeat(63)));
    assert_eq!(odd.last().unwrap().len(), 255);
    odd
}

/// 10 KB of awkward text, for payloads (where it must round-trip) and names (where it is over
/// the limit).
fn ten_kb() -> String {
    let unit = "'\"%_\\🦀$$;-- ";
    let mut s = String::new();
    while s.len() < 10 * 1024 {
        s.push_str(unit);
    }
    s
}

#[derive(Debug, Serialize, Deserialize)]
struct OddInput {
    step: String,
    event: String,
}

/// One step named by its input (returning that name), then a wait for the event named by its
/// input; returns `{"step": .., "payload": ..}`.
struct OddNames;

#[async_trait]
impl TaskHandler for OddNames {
    type Data = OddInput;
    type Output = serde_json::Value;

    async fn run(
        &self,
        ctx: &mut TaskContext<impl Scheduler>,
        input: OddInput,
    ) -> Result<serde_json::Value, TaskError> {
        let name = input.step.clone();
        let echoed: String = ctx
            .step(&input.step, || async move { Ok::<_, std::io::Error>(name) })
            .await?;
        let payload = ctx
            .wait_for_event::<serde_json::Value>(&input.event, None)
            .await?
            .received()
            .unwrap_or_default();
        Ok(serde_json::json!({"step": echoed, "payload": payload}))
    }
}

/// A struct input: only a JSON object with these fields fits.
#[derive(Debug, Serialize, Deserialize)]
struct OrderInput {
    sku: String,
    qty: u32,
}

/// Takes an [`OrderInput`] and returns its quantity.
struct Order;

#[async_trait]
impl TaskHandler for Order {
    type Data = OrderInput;
    type Output = u32;

    async fn run(
        &self,
        ctx: &mut TaskContext<impl Scheduler>,
        order: OrderInput,
    ) -> Result<u32, TaskError> {
        ctx.step(
            "reserve",
            || async move { Ok::<_, std::io::Error>(order.qty) },
        )
        .await
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Decision {
    approved: bool,
}

/// Waits for the event `decision`, whose payload must be a [`Decision`] object; fails with its
/// own error when it is not (the payload is handed over as `Malformed`).
struct Decide;

#[async_trait]
impl TaskHandler for Decide {
    type Data = ();
    type Output = bool;

    async fn run(&self, ctx: &mut TaskContext<impl Scheduler>, _: ()) -> Result<bool, TaskError> {
        match ctx.wait_for_event::<Decision>("decision", None).await? {
            zart::EventOutcome::Received(d) => Ok(d.approved),
            zart::EventOutcome::Malformed { error, .. } => {
                Err(TaskError::failed(format!("unreadable decision: {error}")))
            }
            zart::EventOutcome::TimedOut => Ok(false),
        }
    }
}

/// `echo` and `echo` again under every odd name, `odd-names`, `order` and `decide`.
fn registry() -> TaskRegistry {
    let mut registry = TaskRegistry::new();
    registry
        .register("echo", tasks::Echo)
        .unwrap()
        .register("odd-names", OddNames)
        .unwrap()
        .register("order", Order)
        .unwrap()
        .register("decide", Decide)
        .unwrap();
    for name in odd_strings() {
        registry.register(name, tasks::Echo).unwrap();
    }
    registry
}

/// Row count and digest of each Zart table: equal snapshots mean no execution, task, step or
/// event changed.
async fn snapshot(client: &tokio_postgres::Client) -> Vec<(String, i64, String)> {
    let mut out = Vec::new();
    for (table, key) in [
        ("zart_executions", "x.bucket, x.id"),
        ("zart_tasks", "x.bucket, x.execution_id"),
        ("zart_steps", "x.bucket, x.execution_id, x.name"),
        ("zart_events", "x.bucket, x.execution_id, x.event_id"),
    ] {
        let row = client
            .query_one(
                &format!(
                    "select count(*), md5(coalesce(string_agg(to_jsonb(x)::text, ',' order by {key}), ''))
                       from {table} x"
                ),
                &[],
            )
            .await
            .unwrap();
        out.push((table.to_owned(), row.get(0), row.get(1)));
    }
    out
}

/// The message and SQLSTATE of a refused SQL call.
async fn sql_refusal(
    client: &tokio_postgres::Client,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> (String, String) {
    let err = client
        .query(sql, params)
        .await
        .expect_err(&format!("{sql} should have been refused"));
    let db = err
        .as_db_error()
        .unwrap_or_else(|| panic!("{sql}: not a database error: {err:?}"));
    (db.code().code().to_owned(), db.message().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_ids_and_names_round_trip_through_rust_sql_and_status() {
    init_tracing();
    let h = Harness::with_registry(registry()).await;
    h.spawn_worker(WorkerConfig::default());
    h.spawn_worker(WorkerConfig::default().with_queue(ODD_QUEUE));
    let odd_queue = h.durable.clone().with_queue(ODD_QUEUE);
    let client = h.db.client().await;
    let odd = odd_strings();
    let blob = ten_kb();

    for (i, s) in odd.iter().enumerate() {
        let input = serde_json::json!({"name": s, "blob": blob, "n": i});
        // The odd string as execution id and as task name.
        assert!(
            h.durable.start(s, s, input.clone()).await.unwrap().created,
            "{s:?}"
        );
        // From SQL, with bound parameters, under another id.
        let sql_id = format!("sql:{i}:{s}");
        let sql_id = if sql_id.len() > 255 {
            format!("sql:{i}")
        } else {
            sql_id
        };
        let created: bool = client
            .query_one("select zart_start($1, $2, $3)", &[&sql_id, s, &input])
            .await
            .unwrap()
            .get(0);
        assert!(created, "{sql_id:?}");
        // The odd string as step name and event name; the event comes from Rust or from SQL.
        let id = format!("odd-names-{i}");
        h.durable
            .start(&id, "odd-names", serde_json::json!({"step": s, "event": s}))
            .await
            .unwrap();
        let payload = serde_json::json!({"for": s, "blob": blob});
        if i % 2 == 0 {
            h.durable.send_event(&id, s, &payload).await.unwrap();
        } else {
            client
                .query("select zart_emit_event($1, $2, $3)", &[&id, s, &payload])
                .await
                .unwrap();
        }
        // The odd string as queue name.
        odd_queue
            .start(&format!("queued-{i}"), "echo", serde_json::json!(s))
            .await
            .unwrap();
    }

    for (i, s) in odd.iter().enumerate() {
        let input = serde_json::json!({"name": s, "blob": blob, "n": i});
        let done = h.durable.wait(s, WAIT).await.unwrap();
        assert_eq!(done.status, ExecutionStatus::Completed, "{s:?}");
        assert_eq!(&done.id, s);
        assert_eq!(&done.task_name, s);
        assert_eq!(done.input, input);
        assert_eq!(done.output, Some(input.clone()));
        // The same row read back in SQL, by equality: no wildcard, no escaping on the way.
        let row = client
            .query_one(
                "select id, task_name, queue, input from zart_executions where id = $1",
                &[s],
            )
            .await
            .unwrap();
        assert_eq!(row.get::<_, String>(0), *s);
        assert_eq!(row.get::<_, String>(1), *s);
        assert_eq!(row.get::<_, String>(2), "default");
        assert_eq!(row.get::<_, serde_json::Value>(3), input);

        let id = format!("odd-names-{i}");
        let done = h.durable.wait(&id, WAIT).await.unwrap();
        assert_eq!(done.status, ExecutionStatus::Completed, "{s:?}");
        assert_eq!(
            done.output,
            Some(serde_json::json!({"step": s, "payload": {"for": s, "blob": blob}}))
        );
        let steps: Vec<(String, String)> = client
            .query(
                "select name, kind from zart_steps where execution_id = $1 order by seq",
                &[&id],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        assert_eq!(
            steps,
            vec![
                (s.clone(), "step".to_owned()),
                (format!("event:{s}"), "event".to_owned())
            ]
        );
        let event = client
            .query_one(
                "select name, consumed_by from zart_events where execution_id = $1",
                &[&id],
            )
            .await
            .unwrap();
        assert_eq!(event.get::<_, String>(0), *s);
        assert_eq!(event.get::<_, String>(1), format!("event:{s}"));

        let queued = h.durable.wait(&format!("queued-{i}"), WAIT).await.unwrap();
        assert_eq!(queued.status, ExecutionStatus::Completed);
        assert_eq!(queued.queue, ODD_QUEUE);
        assert_eq!(queued.output, Some(serde_json::json!(s)));
    }
    for (i, s) in odd.iter().enumerate() {
        let sql_id = format!("sql:{i}:{s}");
        let sql_id = if sql_id.len() > 255 {
            format!("sql:{i}")
        } else {
            sql_id
        };
        let done = h.durable.wait(&sql_id, WAIT).await.unwrap();
        assert_eq!(done.status, ExecutionStatus::Completed, "{sql_id:?}");
        assert_eq!(&done.task_name, s);
        assert_eq!(
            done.output,
            Some(serde_json::json!({"name": s, "blob": blob, "n": i}))
        );
    }

    // Ids are compared as data: LIKE wildcards match nothing but themselves.
    for pattern in ["%", "_", "100_", "a%", "%b", "it''s"] {
        let err = h.durable.status(pattern).await.unwrap_err();
        assert!(
            matches!(&err, Error::NotFound { id } if id == pattern),
            "{pattern:?}: {err:?}"
        );
    }
    // The injection attempts were data: every table is still there, with every row.
    let n = i64::try_from(odd.len()).unwrap();
    assert_eq!(
        count(&client, "select count(*) from zart_executions").await,
        4 * n
    );
    assert_eq!(count(&client, "select count(*) from zart_tasks").await, 0);
    assert_eq!(count(&client, "select count(*) from zart_events").await, n);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_ids_names_and_payloads_from_rust_are_refused_and_change_nothing() {
    init_tracing();
    let h = Harness::with_registry(registry()).await;
    h.spawn_worker(WorkerConfig::default());
    let client = h.db.client().await;
    let durable = &h.durable;

    // State that must survive every refused call: a finished execution, one waiting for an
    // event, and one that no worker runs.
    durable
        .start("done", "echo", serde_json::json!({"keep": 1}))
        .await
        .unwrap();
    durable
        .start(
            "waiting",
            "odd-names",
            serde_json::json!({"step": "s", "event": "go"}),
        )
        .await
        .unwrap();
    client
        .query("select zart_start('orphan', 'nobody-runs-this')", &[])
        .await
        .unwrap();
    durable.send_event("waiting", "other", &1).await.unwrap();
    durable.wait("done", WAIT).await.unwrap();
    wait_for("`waiting` to wait", Duration::from_secs(15), || async {
        (durable.status("waiting").await.unwrap().status == ExecutionStatus::Waiting).then_some(())
    })
    .await;

    let long = ten_kb();
    let nul = "a\0b";
    let nul_reason = "must not contain a NUL character (\\0)";
    let long_reason = format!("{} bytes is over the limit of 255 bytes", long.len());
    let expect = |field: &str, reason: &str| format!("invalid {field}: {reason}");
    let small = durable.clone().with_max_payload_bytes(1000);

    // (call, expected message) pairs; each call is made between two snapshots.
    let before = snapshot(&client).await;
    let mut checked = 0;
    macro_rules! refused {
        ($call:expr, $message:expr) => {{
            let err = $call.await.expect_err(stringify!($call));
            assert_eq!(err.to_string(), $message, "{}", stringify!($call));
            assert_eq!(snapshot(&client).await, before, "{}", stringify!($call));
            checked += 1;
            err
        }};
    }

    // Execution ids.
    let one = serde_json::json!(1);
    refused!(
        durable.start("", "echo", one.clone()),
        expect("execution id", "must not be empty")
    );
    refused!(
        durable.start(nul, "echo", one.clone()),
        expect("execution id", nul_reason)
    );
    refused!(
        durable.start(&long, "echo", one.clone()),
        expect("execution id", &long_reason)
    );
    // Task names, including one nobody registered.
    refused!(
        durable.start("t", "", one.clone()),
        expect("task name", "must not be empty")
    );
    refused!(
        durable.start("t", nul, one.clone()),
        expect("task name", nul_reason)
    );
    refused!(
        durable.start("t", &long, one.clone()),
        expect("task name", &long_reason)
    );
    let err = refused!(
        durable.start("t", "no-such-task", one.clone()),
        "unknown task \"no-such-task\": register it with TaskRegistry::register before starting it"
    );
    assert!(matches!(err, Error::UnknownTask { ref name } if name == "no-such-task"));
    // Queues.
    refused!(
        durable
            .clone()
            .with_queue("")
            .start("t", "echo", one.clone()),
        expect("queue", "must not be empty")
    );
    refused!(
        durable
            .clone()
            .with_queue(nul)
            .start("t", "echo", one.clone()),
        expect("queue", nul_reason)
    );
    refused!(
        durable
            .clone()
            .with_queue(long.as_str())
            .start("t", "echo", one.clone()),
        expect("queue", &long_reason)
    );
    // Inputs: one byte over a configured limit, over the default 1 MiB, NUL in a string or a key.
    let at_limit = serde_json::json!("x".repeat(998)); // 1000 bytes of JSON with the quotes
    let over_limit = serde_json::json!("x".repeat(999));
    refused!(
        small.start("t", "echo", over_limit.clone()),
        expect(
            "input",
            "1001 bytes of JSON is over the limit of 1000 bytes"
        )
    );
    let over_default = serde_json::json!("x".repeat(1024 * 1024 - 1));
    refused!(
        durable.start("t", "echo", over_default),
        expect(
            "input",
            "1048577 bytes of JSON is over the limit of 1048576 bytes"
        )
    );
    let nul_json_reason =
        "JSON strings must not contain a NUL character (\\u0000): PostgreSQL cannot store it";
    refused!(
        durable.start("t", "echo", serde_json::json!({"k": ["x\u{0}"]})),
        expect("input", nul_json_reason)
    );
    refused!(
        durable.start("t", "echo", serde_json::json!({"k\u{0}": 1})),
        expect("input", nul_json_reason)
    );
    // The same id with another input.
    refused!(
        durable.start("done", "echo", serde_json::json!({"keep": 2})),
        "start conflict: execution \"done\" already exists with a different input"
    );
    // Events: bad ids, names and payloads, and an unknown execution.
    refused!(
        durable.send_event("", "go", &1),
        expect("execution id", "must not be empty")
    );
    refused!(
        durable.send_event(nul, "go", &1),
        expect("execution id", nul_reason)
    );
    refused!(
        durable.send_event(&long, "go", &1),
        expect("execution id", &long_reason)
    );
    refused!(
        durable.send_event("waiting", "", &1),
        expect("event name", "must not be empty")
    );
    refused!(
        durable.send_event("waiting", nul, &1),
        expect("event name", nul_reason)
    );
    refused!(
        durable.send_event("waiting", &long, &1),
        expect("event name", &long_reason)
    );
    refused!(
        small.send_event("waiting", "go", &over_limit),
        expect(
            "event payload",
            "1001 bytes of JSON is over the limit of 1000 bytes"
        )
    );
    refused!(
        durable.send_event("waiting", "go", &"\u{0}"),
        expect("event payload", nul_json_reason)
    );
    refused!(
        durable.send_event("nobody", "go", &1),
        "execution \"nobody\" not found"
    );
    // Reads and cancels of bad or unknown ids.
    refused!(
        durable.status(""),
        expect("execution id", "must not be empty")
    );
    refused!(durable.status(nul), expect("execution id", nul_reason));
    refused!(durable.status(&long), expect("execution id", &long_reason));
    refused!(durable.status("nobody"), "execution \"nobody\" not found");
    refused!(
        durable.cancel(""),
        expect("execution id", "must not be empty")
    );
    refused!(durable.cancel("nobody"), "execution \"nobody\" not found");
    assert_eq!(checked, 30);

    // Exactly at the limits is accepted.
    assert!(
        small
            .start("at-limit", "echo", at_limit.clone())
            .await
            .unwrap()
            .created
    );
    let max_id = "m".repeat(255);
    assert!(durable.start(&max_id, "echo", one).await.unwrap().created);
    small.send_event("waiting", "go", &at_limit).await.unwrap();
    let done = durable.wait("waiting", WAIT).await.unwrap();
    assert_eq!(
        done.output,
        Some(serde_json::json!({"step": "s", "payload": at_limit}))
    );
    assert_eq!(
        durable.wait("at-limit", WAIT).await.unwrap().output,
        Some(at_limit)
    );
    assert_eq!(
        durable.wait(&max_id, WAIT).await.unwrap().status,
        ExecutionStatus::Completed
    );
    // A 1 MiB input, exactly the default limit, runs.
    let max_input = serde_json::json!("y".repeat(1024 * 1024 - 2));
    durable
        .start("one-mib", "echo", max_input.clone())
        .await
        .unwrap();
    assert_eq!(
        durable.wait("one-mib", WAIT).await.unwrap().output,
        Some(max_input)
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_from_sql_is_refused_and_injection_is_inert() {
    init_tracing();
    let h = Harness::with_registry(registry()).await;
    h.spawn_worker(WorkerConfig::default());
    let client = h.db.client().await;
    let durable = &h.durable;
    client
        .batch_execute(
            "select zart_start('done', 'echo', '{\"keep\": 1}');
             select zart_start('waiting', 'odd-names', '{\"step\": \"s\", \"event\": \"go\"}');
             select zart_start('orphan', 'nobody-runs-this');",
        )
        .await
        .unwrap();
    durable.wait("done", WAIT).await.unwrap();
    wait_for("`waiting` to wait", Duration::from_secs(15), || async {
        (durable.status("waiting").await.unwrap().status == ExecutionStatus::Waiting).then_some(())
    })
    .await;

    let long = ten_kb();
    let long_reason = format!("{} bytes is over the limit of 255 bytes", long.len());
    let before = snapshot(&client).await;
    let nul = "a\0b";
    let over = serde_json::json!("x".repeat(999));
    let nul_json = serde_json::json!({"k": "\u{0}"});
    let none: Option<serde_json::Value> = None;
    type Case<'a> = (
        &'a str,
        Vec<&'a (dyn tokio_postgres::types::ToSql + Sync)>,
        &'a str,
        String,
    );
    let zart = |reason: &str, field: &str| format!("invalid {field}: {reason}");
    let cases: Vec<Case<'_>> = vec![
        (
            "select zart_start('', 'echo')",
            vec![],
            "ZA004",
            zart("must not be empty", "execution id"),
        ),
        (
            "select zart_start($1, 'echo')",
            vec![&long],
            "ZA004",
            zart(&long_reason, "execution id"),
        ),
        (
            "select zart_start('t', '')",
            vec![],
            "ZA004",
            zart("must not be empty", "task name"),
        ),
        (
            "select zart_start('t', $1)",
            vec![&long],
            "ZA004",
            zart(&long_reason, "task name"),
        ),
        (
            "select zart_start('t', 'echo', '{}', '')",
            vec![],
            "ZA004",
            zart("must not be empty", "queue"),
        ),
        (
            "select zart_start('t', 'echo', '{}', $1)",
            vec![&long],
            "ZA004",
            zart(&long_reason, "queue"),
        ),
        (
            "select zart_start('t', 'echo', $1)",
            vec![&none],
            "ZA004",
            "invalid input: must not be null".to_owned(),
        ),
        (
            "select zart_start('done', 'echo', '{\"keep\": 2}')",
            vec![],
            "ZA003",
            "execution \"done\" already exists with a different input".to_owned(),
        ),
        // Malformed JSON never reaches Zart: the jsonb parser refuses it.
        (
            "select zart_start('t', 'echo', '{bad')",
            vec![],
            "22P02",
            "invalid input syntax for type json".to_owned(),
        ),
        // PostgreSQL text cannot hold NUL: the server refuses the bound parameter itself, and
        // jsonb refuses the \u0000 escape.
        (
            "select zart_start($1, 'echo')",
            vec![&nul],
            "22021",
            "invalid byte sequence for encoding \"UTF8\": 0x00".to_owned(),
        ),
        (
            "select zart_start('t', 'echo', $1)",
            vec![&nul_json],
            "22P05",
            "unsupported Unicode escape sequence".to_owned(),
        ),
        (
            "select zart_emit_event('', 'go')",
            vec![],
            "ZA004",
            zart("must not be empty", "execution id"),
        ),
        (
            "select zart_emit_event('waiting', '')",
            vec![],
            "ZA004",
            zart("must not be empty", "event name"),
        ),
        (
            "select zart_emit_event('waiting', $1)",
            vec![&long],
            "ZA004",
            zart(&long_reason, "event name"),
        ),
        (
            "select zart_emit_event('nobody', 'go')",
            vec![],
            "ZA007",
            "execution \"nobody\" not found".to_owned(),
        ),
        (
            "select zart_emit_event('waiting', 'go', '\"\\u0000\"')",
            vec![],
            "22P05",
            "unsupported Unicode escape sequence".to_owned(),
        ),
        (
            "select zart_cancel('')",
            vec![],
            "ZA004",
            zart("must not be empty", "execution id"),
        ),
        (
            "select zart_cancel('nobody')",
            vec![],
            "ZA007",
            "execution \"nobody\" not found".to_owned(),
        ),
        (
            "select * from zart_start_execution(zart_bucket('t'), 't', 'echo', '{}', 'default', null, null, 1000, now())",
            vec![],
            "ZA004",
            "invalid start: give a delay or a start time, not both".to_owned(),
        ),
        (
            "select * from zart_start_execution(zart_bucket('t'), 't', 'echo', '{}', 'default', null, null, -1, null)",
            vec![],
            "ZA004",
            zart("-1 ms is outside 0 ms to 100 years", "start delay"),
        ),
        (
            "select zart_start('t', 'echo', '{}', 'default', '3000-01-01 00:00:00+00')",
            vec![],
            "ZA004",
            "invalid start time: 3000-01-01 00:00:00+00 is more than 100 years ahead".to_owned(),
        ),
        (
            "select zart_retry('')",
            vec![],
            "ZA004",
            zart("must not be empty", "execution id"),
        ),
        (
            "select zart_retry('nobody')",
            vec![],
            "ZA007",
            "execution \"nobody\" not found".to_owned(),
        ),
        (
            "select zart_retry('waiting')",
            vec![],
            "ZA009",
            "execution \"waiting\" cannot be retried: it is waiting (only a failed execution can be)"
                .to_owned(),
        ),
        // The default payload limit: 1 MiB of JSON text.
        (
            "select zart_start('t', 'echo', to_jsonb(repeat('x', 1048575)))",
            vec![],
            "ZA004",
            zart(
                "1048577 bytes of JSON is over the limit of 1048576 bytes",
                "input",
            ),
        ),
        (
            "select zart_emit_event('waiting', 'go', to_jsonb(repeat('x', 1048575)))",
            vec![],
            "ZA004",
            zart(
                "1048577 bytes of JSON is over the limit of 1048576 bytes",
                "event payload",
            ),
        ),
    ];
    let n_cases = cases.len();
    for (sql, params, code, message) in cases {
        let (got_code, got_message) = sql_refusal(&client, sql, &params).await;
        assert_eq!(got_code, code, "{sql}: {got_message}");
        assert_eq!(got_message, message, "{sql}");
        assert_eq!(snapshot(&client).await, before, "{sql} changed the state");
    }
    assert_eq!(n_cases, 26);

    // A configured limit (zart_settings.max_payload_bytes, set by the owner) counts bytes of
    // JSON text.
    client
        .batch_execute("update zart_settings set max_payload_bytes = 1000")
        .await
        .unwrap();
    for (sql, field) in [
        ("select zart_start('t', 'echo', $1)", "input"),
        (
            "select zart_emit_event('waiting', 'go', $1)",
            "event payload",
        ),
    ] {
        let (code, message) = sql_refusal(&client, sql, &[&over]).await;
        assert_eq!(code, "ZA004");
        assert_eq!(
            message,
            format!("invalid {field}: 1001 bytes of JSON is over the limit of 1000 bytes")
        );
        assert_eq!(snapshot(&client).await, before, "{sql} changed the state");
    }
    let at_limit = serde_json::json!("x".repeat(998));
    let created: bool = client
        .query_one("select zart_start('at-limit', 'echo', $1)", &[&at_limit])
        .await
        .unwrap()
        .get(0);
    assert!(created);
    client
        .batch_execute("update zart_settings set max_payload_bytes = default")
        .await
        .unwrap();

    // Injection attempts in every text argument are stored as data.
    let attacks = [
        "x'); drop table zart_executions; --",
        "'; delete from zart_tasks where '1'='1",
        "\\'; truncate zart_events; --",
        "$$; drop table zart_steps; $$",
    ];
    for (i, attack) in attacks.iter().enumerate() {
        let literal: String = client
            .query_one("select quote_literal($1)", &[attack])
            .await
            .unwrap()
            .get(0);
        // Interpolated as a properly quoted literal, and as a bound parameter.
        client
            .batch_execute(&format!(
                "select zart_start({literal}, 'echo', jsonb_build_object('a', {literal}))"
            ))
            .await
            .unwrap();
        let id = format!("bound-{i}");
        client
            .query(
                "select zart_start($1, 'echo', jsonb_build_object('a', $2::text))",
                &[&id, attack],
            )
            .await
            .unwrap();
        client
            .query(
                "select zart_emit_event('waiting', $1, to_jsonb($1::text))",
                &[attack],
            )
            .await
            .unwrap();
        for id in [attack.to_string(), id] {
            let done = durable.wait(&id, WAIT).await.unwrap();
            assert_eq!(done.status, ExecutionStatus::Completed, "{id:?}");
            assert_eq!(done.output, Some(serde_json::json!({"a": attack})));
        }
    }
    let names: Vec<String> = column(
        &client,
        "select name from zart_events where execution_id = 'waiting' order by event_id",
        &[],
    )
    .await;
    assert_eq!(names, attacks);
    for table in ["zart_executions", "zart_tasks", "zart_steps", "zart_events"] {
        let exists: bool = client
            .query_one("select to_regclass($1) is not null", &[&table])
            .await
            .unwrap()
            .get(0);
        assert!(exists, "{table} was dropped");
    }
    assert_eq!(
        count(&client, "select count(*) from zart_executions").await,
        4 + 2 * i64::try_from(attacks.len()).unwrap()
    );
    // The waiting execution still waits for its own event.
    assert_eq!(
        durable.status("waiting").await.unwrap().status,
        ExecutionStatus::Waiting
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_input_or_payload_that_does_not_fit_the_handler_type_fails_the_execution() {
    init_tracing();
    let h = Harness::with_registry(registry()).await;
    h.spawn_worker(WorkerConfig::default());
    let client = h.db.client().await;
    let durable = &h.durable;
    let expected = "could not deserialize the input of task \"order\" as JSON: ";
    let cases = [
        // serde reads a struct from an array of its fields in order, so an array is checked
        // field by field (`["A", 2]` would be accepted).
        (
            serde_json::json!([1, 2]),
            "invalid type: integer `1`, expected a string",
        ),
        (
            serde_json::json!("text"),
            "invalid type: string \"text\", expected struct OrderInput",
        ),
        (
            serde_json::json!(42),
            "invalid type: integer `42`, expected struct OrderInput",
        ),
        (
            serde_json::Value::Null,
            "invalid type: null, expected struct OrderInput",
        ),
        (serde_json::json!({}), "missing field `sku`"),
        (
            serde_json::json!({"sku": 5, "qty": 1}),
            "invalid type: integer `5`, expected a string",
        ),
        (
            serde_json::json!({"sku": "A", "qty": -1}),
            "invalid value: integer `-1`, expected u32",
        ),
    ];
    for (i, (input, _)) in cases.iter().enumerate() {
        durable
            .start(&format!("rust-{i}"), "order", input.clone())
            .await
            .unwrap();
        client
            .query(
                "select zart_start($1, 'order', $2)",
                &[&format!("sql-{i}"), input],
            )
            .await
            .unwrap();
    }
    // Beside them a well-formed order, and a Value handler that takes any JSON.
    durable
        .start("good", "order", serde_json::json!({"sku": "A", "qty": 3}))
        .await
        .unwrap();
    durable
        .start("good-array", "order", serde_json::json!(["A", 2]))
        .await
        .unwrap();
    for (i, (input, _)) in cases.iter().enumerate() {
        durable
            .start(&format!("echo-{i}"), "echo", input.clone())
            .await
            .unwrap();
    }
    // An event payload that does not fit the type the workflow waits for.
    durable
        .start("decide", "decide", serde_json::Value::Null)
        .await
        .unwrap();
    durable
        .send_event("decide", "decision", &"yes")
        .await
        .unwrap();
    durable
        .start("decide-ok", "decide", serde_json::Value::Null)
        .await
        .unwrap();
    durable
        .send_event(
            "decide-ok",
            "decision",
            &serde_json::json!({"approved": true}),
        )
        .await
        .unwrap();

    for (i, (input, reason)) in cases.iter().enumerate() {
        for id in [format!("rust-{i}"), format!("sql-{i}")] {
            let done = durable.wait(&id, WAIT).await.unwrap();
            assert_eq!(done.status, ExecutionStatus::Failed, "{id}");
            assert_eq!(done.attempts, 1, "{id}: not retried");
            let error = done.error.unwrap();
            assert_eq!(error.kind, "serialization", "{id}");
            assert_eq!(error.message, format!("{expected}{reason}"), "{id}");
            assert_eq!(
                &done.input, input,
                "{id}: the input is kept as it was given"
            );
        }
        let echoed = durable.wait(&format!("echo-{i}"), WAIT).await.unwrap();
        assert_eq!(echoed.output.as_ref(), Some(input));
    }
    let good = durable.wait("good", WAIT).await.unwrap();
    assert_eq!(good.status, ExecutionStatus::Completed);
    assert_eq!(good.output, Some(serde_json::json!(3)));
    let good = durable.wait("good-array", WAIT).await.unwrap();
    assert_eq!(good.output, Some(serde_json::json!(2)));
    let decided = durable.wait("decide", WAIT).await.unwrap();
    assert_eq!(decided.status, ExecutionStatus::Failed);
    let error = decided.error.unwrap();
    assert_eq!(
        error.message,
        "unreadable decision: invalid type: string \"yes\", expected struct Decision",
        "the workflow was handed the bad payload and chose to fail"
    );
    assert_eq!(
        durable.wait("decide-ok", WAIT).await.unwrap().output,
        Some(serde_json::json!(true))
    );
    h.stop().await;
}

// ---------------------------------------------------------------------------------------------
// The CLI.

/// The `zart` binary of this build, built once (`cargo build -p zart-cli`) if need be.
fn zart_cli() -> PathBuf {
    static CLI: OnceLock<PathBuf> = OnceLock::new();
    CLI.get_or_init(|| {
        let exe = std::env::current_exe().unwrap();
        // target/<profile>/deps/<this test> -> target/<profile>
        let profile_dir = exe
            .parent()
            .and_then(std::path::Path::parent)
            .expect("test binary outside target/<profile>/deps")
            .to_owned();
        let profile = profile_dir
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let mut build = std::process::Command::new(env!("CARGO"));
        build.args(["build", "-q", "-p", "zart-cli"]);
        if profile != "debug" {
            build.args(["--profile", &profile]);
        }
        let status = build
            .status()
            .unwrap_or_else(|e| panic!("cannot run cargo to build the zart CLI: {e}"));
        let bin = profile_dir.join("zart");
        assert!(
            status.success() && bin.exists(),
            "building the zart CLI failed ({status}); build it with `cargo build -p zart-cli` \
             so that {} exists",
            bin.display()
        );
        bin
    })
    .clone()
}

struct CliRun {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

async fn cli(url: Option<&str>, args: &[&str]) -> CliRun {
    let mut command = tokio::process::Command::new(zart_cli());
    command.args(args).env_remove("RUST_LOG");
    match url {
        Some(url) => command.env("DATABASE_URL", url),
        None => command.env_remove("DATABASE_URL"),
    };
    let out = command.output().await.expect("run the zart CLI");
    let run = CliRun {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    };
    assert!(
        !run.stderr.contains("panicked"),
        "the CLI panicked on {args:?}: {}",
        run.stderr
    );
    run
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_round_trips_odd_ids_and_refuses_bad_input_naming_the_argument() {
    init_tracing();
    let h = Harness::with_registry(registry()).await;
    h.spawn_worker(WorkerConfig::default());
    let client = h.db.client().await;
    let url = h.db.url.as_str();
    let durable = &h.durable;

    // Odd ids and task names work exactly, started and read back through the CLI.
    let blob = ten_kb();
    let mut started = Vec::new();
    for (i, s) in odd_strings().iter().enumerate() {
        let id = format!("cli:{i}:{s}");
        if id.len() > 255 {
            continue;
        }
        let input = serde_json::json!({"name": s, "blob": blob});
        let input_text = input.to_string();
        let run = cli(Some(url), &["start", "--", &id, s, &input_text]).await;
        assert_eq!(run.code, Some(0), "{id:?}: {}", run.stderr);
        assert_eq!(
            run.stdout,
            format!("zart: started execution {id:?} of task {s:?}\n")
        );
        started.push((id, s.clone(), input));
    }
    // An id that looks like an option, after `--`.
    let run = cli(Some(url), &["start", "--", "-dash", "echo", "[1, \"two\"]"]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    started.push((
        "-dash".to_owned(),
        "echo".to_owned(),
        serde_json::json!([1, "two"]),
    ));
    for (id, task, input) in &started {
        durable.wait(id, WAIT).await.unwrap();
        let run = cli(Some(url), &["status", "--", id]).await;
        assert_eq!(run.code, Some(0), "{id:?}: {}", run.stderr);
        let status: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        assert_eq!(status["id"], serde_json::json!(id));
        assert_eq!(status["task"], serde_json::json!(task));
        assert_eq!(status["status"], "completed");
        assert_eq!(&status["input"], input);
        assert_eq!(&status["output"], input);
    }
    // The default input is {}; starting the same id again is a no-op.
    let run = cli(Some(url), &["start", "plain", "echo"]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let run = cli(Some(url), &["start", "plain", "echo", "{}"]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(
        run.stdout,
        "zart: already had execution \"plain\" of task \"echo\"\n"
    );
    assert_eq!(
        durable.wait("plain", WAIT).await.unwrap().output,
        Some(serde_json::json!({}))
    );

    // Refusals: exit code 1, one line naming the argument and the limit, nothing changed.
    durable
        .start("done-differently", "echo", serde_json::json!(0))
        .await
        .unwrap();
    durable.wait("done-differently", WAIT).await.unwrap();
    let long = ten_kb();
    let over_limit_input = serde_json::json!({"k": "x".repeat(200)}).to_string();
    // (DATABASE_URL, arguments, the whole message or, without the `zart: ` prefix, a part)
    let cases: Vec<(Option<&str>, Vec<&str>, String)> = vec![
        (
            Some(url),
            vec!["start", "t", "echo", "{bad"],
            "zart: invalid input: \"{bad\" is not valid JSON: key must be a string at line 1 column 2"
                .to_owned(),
        ),
        (
            Some(url),
            vec!["start", "t", "echo", "{\"a\": 1"],
            "zart: invalid input: \"{\\\"a\\\": 1\" is not valid JSON: EOF while parsing an object at line 1 column 7"
                .to_owned(),
        ),
        (
            Some(url),
            vec!["start", "t", "echo", ""],
            "zart: invalid input: \"\" is not valid JSON: EOF while parsing a value at line 1 column 0"
                .to_owned(),
        ),
        (
            Some(url),
            vec!["start", "", "echo"],
            "zart: invalid execution id: must not be empty".to_owned(),
        ),
        (
            Some(url),
            vec!["start", &long, "echo"],
            format!(
                "zart: invalid execution id: {} bytes is over the limit of 255 bytes",
                long.len()
            ),
        ),
        (
            Some(url),
            vec!["start", "t", ""],
            "zart: invalid task name: must not be empty".to_owned(),
        ),
        (
            Some(url),
            vec!["start", "t", &long],
            format!(
                "zart: invalid task name: {} bytes is over the limit of 255 bytes",
                long.len()
            ),
        ),
        (
            Some(url),
            vec!["start", "t", "echo", "{}", "--queue", ""],
            "zart: invalid queue: must not be empty".to_owned(),
        ),
        (
            Some(url),
            vec!["start", "t", "echo", "\"\\u0000\""],
            "zart: invalid input: JSON strings must not contain a NUL character (\\u0000): \
             PostgreSQL cannot store it"
                .to_owned(),
        ),
        (
            Some(url),
            vec!["start", "done-differently", "echo", "1"],
            "execution \"done-differently\" already exists with a different input".to_owned(),
        ),
        (
            Some(url),
            vec!["status", "nobody"],
            "zart: execution \"nobody\" not found".to_owned(),
        ),
        (
            None,
            vec!["start", "t", "echo"],
            "zart: no database given: set DATABASE_URL or pass --database-url \
             (postgres://user:pass@host/db, sqlite://path/to/zart.db or \
             mysql://user:pass@host:3306/db)"
                .to_owned(),
        ),
    ];
    let before = snapshot(&client).await;
    for (url, args, message) in cases {
        let run = cli(url, &args).await;
        // docs/cli.md: 1 the database refused the call, 2 bad input, 3 no such execution.
        let expected = if message.contains("already exists") {
            1
        } else if message.contains("not found") {
            3
        } else {
            2
        };
        assert_eq!(run.code, Some(expected), "{args:?}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{args:?}: {}", run.stdout);
        let line = run.stderr.trim_end();
        if message.starts_with("zart: ") {
            assert_eq!(line, message, "{args:?}");
        } else {
            assert!(line.starts_with("zart: "), "{line}");
            assert!(line.contains(&message), "{args:?}: {line}");
        }
        assert!(!line.contains('\n'), "one line: {line}");
        assert_eq!(
            snapshot(&client).await,
            before,
            "{args:?} changed the state"
        );
    }

    // The owner's payload limit holds for the CLI too.
    client
        .batch_execute("update zart_settings set max_payload_bytes = 100")
        .await
        .unwrap();
    let run = cli(Some(url), &["start", "t", "echo", &over_limit_input]).await;
    client
        .batch_execute("update zart_settings set max_payload_bytes = default")
        .await
        .unwrap();
    // Refused by the database, but a refused value all the same: bad input, exit 2.
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("invalid input: 209 bytes of JSON is over the limit of 100 bytes"),
        "{}",
        run.stderr
    );
    assert_eq!(snapshot(&client).await, before);

    // Injection attempts through the CLI are data too.
    let attack = "x'); drop table zart_executions; --";
    let run = cli(Some(url), &["start", attack, "echo", "{\"a\": \"'; --\"}"]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let done = durable.wait(attack, WAIT).await.unwrap();
    assert_eq!(done.output, Some(serde_json::json!({"a": "'; --"})));
    assert!(
        count(&client, "select count(*) from zart_executions").await
            >= i64::try_from(started.len()).unwrap() + 3
    );
    h.stop().await;
}
