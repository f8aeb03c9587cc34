//! The `zart` binary on PostgreSQL: list, show, send-event, cancel, retry, migrate --dry-run and
//! doctor, each with its happy path, bad input, an unknown id and a database that is down, and
//! the exit codes `zart --help` documents. A fresh migrated database per test (tests/support).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::process::Output;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use zart::scheduler::{
    AwaitEventParams, ClaimTasksParams, Lease, RetryStepParams, SleepParams, StartChildParams,
    StartExecutionParams, WakeAt,
};
use zart::{ErrorRecord, Scheduler};
use zart_tests::logins::Logins;
use zart_tests::TestDb;

/// A URL whose port nothing listens on.
const DOWN: &str = "postgres://postgres@127.0.0.1:1/zart";

async fn zart(url: &str, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_zart"))
        .env("DATABASE_URL", url)
        .args(args)
        .output()
        .await
        .unwrap()
}

fn text(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts the exit code, showing the output when it differs.
fn expect_code(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        text(out),
        stderr(out)
    );
}

async fn json_of(url: &str, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = zart(url, &all).await;
    expect_code(&out, 0);
    serde_json::from_str(&text(&out)).unwrap()
}

fn ids(page: &Value) -> Vec<&str> {
    page["executions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect()
}

async fn start(s: &impl Scheduler, id: &str, task: &str, queue: &str) {
    s.start_execution(StartExecutionParams {
        id: id.into(),
        task_name: task.into(),
        input: json!({"id": id}),
        queue: queue.into(),
        parent_id: None,
        deadline: None,
        start: None,
        ..Default::default()
    })
    .await
    .unwrap();
}

/// Claims the one due task of `task` on the default queue, as a worker would.
async fn claim(s: &impl Scheduler, task: &str) -> Lease {
    let mut claimed = s
        .claim_tasks(ClaimTasksParams {
            worker_id: "cli-test-worker".into(),
            queue: "default".into(),
            task_names: vec![task.into()],
            limit: 1,
            lease: Duration::from_secs(30),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1, "nothing of {task} to claim");
    claimed.remove(0).lease
}

#[tokio::test]
async fn list_filters_pages_and_refuses_bad_input() {
    let db = TestDb::new().await;
    let s = db.scheduler().await;
    start(&*s, "a-1", "checkout", "default").await;
    start(&*s, "a-2", "refund", "default").await;
    start(&*s, "a-3", "checkout", "slow").await;
    s.cancel_execution("a-1").await.unwrap();

    let all = json_of(&db.url, &["list"]).await;
    assert_eq!(ids(&all), ["a-3", "a-2", "a-1"], "newest first");
    assert_eq!(all["next_after"], Value::Null);
    assert_eq!(
        ids(&json_of(&db.url, &["list", "--task", "checkout"]).await),
        ["a-3", "a-1"]
    );
    assert_eq!(
        ids(&json_of(&db.url, &["list", "--queue", "slow"]).await),
        ["a-3"]
    );
    assert_eq!(
        ids(&json_of(&db.url, &["list", "--status", "cancelled"]).await),
        ["a-1"]
    );
    assert_eq!(
        ids(&json_of(&db.url, &["list", "--status", "cancelled,scheduled"]).await).len(),
        3
    );
    assert_eq!(
        ids(&json_of(&db.url, &["list", "--since", "1h"]).await).len(),
        3
    );
    assert!(ids(&json_of(&db.url, &["list", "--until", "2000-01-01"]).await).is_empty());

    // Pages: two, then the rest after the last id shown.
    let first = json_of(&db.url, &["list", "--limit", "2"]).await;
    assert_eq!(ids(&first), ["a-3", "a-2"]);
    assert_eq!(first["next_after"], "a-2");
    let rest = json_of(&db.url, &["list", "--limit", "2", "--after", "a-2"]).await;
    assert_eq!(ids(&rest), ["a-1"]);
    assert_eq!(rest["next_after"], Value::Null);

    // Text: a table, and the flag for the next page.
    let out = zart(&db.url, &["list", "--limit", "2"]).await;
    expect_code(&out, 0);
    let table = text(&out);
    assert!(table.starts_with("ID"), "{table}");
    assert!(
        table.contains("a-3") && table.contains("checkout"),
        "{table}"
    );
    assert!(table.contains("more: add --after a-2"), "{table}");

    // Bad input is exit 2, an unknown cursor exit 3, each with a message.
    for args in [
        &["list", "--limit", "0"][..],
        &["list", "--since", "yesterday"],
        &["list", "--status", "sleepy"],
    ] {
        let out = zart(&db.url, args).await;
        expect_code(&out, 2);
        assert!(!stderr(&out).is_empty());
    }
    let out = zart(&db.url, &["list", "--after", "no-such-id"]).await;
    expect_code(&out, 3);
    assert!(
        stderr(&out).contains("\"no-such-id\" not found"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn show_says_why_an_execution_waits() {
    let db = TestDb::new().await;
    let s = db.scheduler().await;

    // Sleeping for an hour.
    start(&*s, "sleeper", "nap", "default").await;
    let lease = claim(&*s, "nap").await;
    s.sleep(SleepParams {
        lease,
        queue: "default".into(),
        name: "nap".into(),
        seq: 0,
        until: WakeAt::After(Duration::from_secs(3600)),
    })
    .await
    .unwrap();
    let shown = json_of(&db.url, &["show", "sleeper"]).await;
    assert_eq!(shown["execution"]["status"], "sleeping");
    assert_eq!(shown["waiting"][0]["reason"], "sleeping");
    assert_eq!(shown["waiting"][0]["step"], "nap");
    assert_eq!(shown["steps"][0]["kind"], "sleep");
    let out = zart(&db.url, &["show", "sleeper"]).await;
    expect_code(&out, 0);
    assert!(
        text(&out).contains("sleeping (\"nap\") until"),
        "{}",
        text(&out)
    );

    // Waiting for an event, with a step recorded before it and an event not consumed.
    start(&*s, "approver", "approve", "default").await;
    let lease = claim(&*s, "approve").await;
    s.commit_step(zart::scheduler::CommitStepParams {
        lease: lease.clone(),
        name: "prepare".into(),
        seq: 0,
        status: zart::scheduler::StepStatus::Completed,
        output: Some(json!({"ready": true})),
        error: None,
        attempts: 1,
    })
    .await
    .unwrap();
    s.await_event(AwaitEventParams {
        lease,
        queue: "default".into(),
        name: "event:approval".into(),
        seq: 1,
        event_name: "approval".into(),
        timeout: None,
    })
    .await
    .unwrap();
    let out = zart(&db.url, &["send-event", "approver", "other", r#"{"n": 1}"#]).await;
    expect_code(&out, 0);
    let shown = json_of(&db.url, &["show", "approver"]).await;
    assert_eq!(shown["waiting"][0]["reason"], "event");
    assert_eq!(shown["waiting"][0]["event"], "approval");
    assert_eq!(shown["waiting"][0]["timeout_at"], Value::Null);
    assert_eq!(shown["steps"].as_array().unwrap().len(), 2);
    assert_eq!(shown["steps"][0]["output"], json!({"ready": true}));
    assert_eq!(shown["pending_events"][0]["name"], "other");
    let out = zart(&db.url, &["show", "approver"]).await;
    let shown_text = text(&out);
    assert!(
        shown_text.contains("waiting for event \"approval\" since"),
        "{shown_text}"
    );
    assert!(shown_text.contains("no timeout"), "{shown_text}");
    assert!(shown_text.contains("prepare") && shown_text.contains("events not consumed"));

    // In a retry back-off.
    start(&*s, "retrier", "flaky", "default").await;
    let lease = claim(&*s, "flaky").await;
    s.retry_step(RetryStepParams {
        lease,
        queue: "default".into(),
        name: "charge".into(),
        seq: 0,
        error: ErrorRecord {
            kind: "step_failed".into(),
            message: "card declined".into(),
            step: Some("charge".into()),
            attempts: Some(1),
            ..Default::default()
        },
        attempts: 1,
        delay: Duration::from_secs(600),
    })
    .await
    .unwrap();
    let shown = json_of(&db.url, &["show", "retrier"]).await;
    assert_eq!(shown["waiting"][0]["reason"], "retrying");
    assert_eq!(shown["waiting"][0]["attempts"], 1);
    let out = zart(&db.url, &["show", "retrier"]).await;
    assert!(text(&out).contains("in back-off after attempt 1 of step \"charge\""));
    assert!(text(&out).contains("card declined"));

    // Waiting for a child, which is due and not claimed.
    start(&*s, "parent", "family", "default").await;
    let lease = claim(&*s, "family").await;
    s.start_child(StartChildParams {
        lease,
        name: "kid".into(),
        seq: 0,
        child_id: "parent/kid".into(),
        task_name: "kid-task".into(),
        input: json!({}),
        queue: "default".into(),
        detached: false,
    })
    .await
    .unwrap();
    let shown = json_of(&db.url, &["show", "parent"]).await;
    assert_eq!(shown["waiting"][0]["reason"], "child");
    assert_eq!(shown["waiting"][0]["child_id"], "parent/kid");
    assert_eq!(shown["children"][0]["id"], "parent/kid");
    let kid = json_of(&db.url, &["show", "parent/kid"]).await;
    assert_eq!(kid["execution"]["parent_id"], "parent");
    assert_eq!(kid["waiting"][0]["reason"], "due");
    let out = zart(&db.url, &["show", "parent/kid"]).await;
    assert!(text(&out).contains("not claimed: no worker for task \"kid-task\""));

    // Finished: nothing to wait for.
    s.cancel_execution("sleeper").await.unwrap();
    let shown = json_of(&db.url, &["show", "sleeper"]).await;
    assert_eq!(shown["waiting"], json!([]));
    assert_eq!(shown["task"], Value::Null);

    let out = zart(&db.url, &["show", "no-such-id"]).await;
    expect_code(&out, 3);
    assert!(stderr(&out).contains("execution \"no-such-id\" not found"));
    let out = zart(&db.url, &["show"]).await;
    expect_code(&out, 2);
}

#[tokio::test]
async fn send_event_resumes_a_wait_and_refuses_what_it_cannot_deliver() {
    let db = TestDb::new().await;
    let s = db.scheduler().await;
    start(&*s, "waiter", "approve", "default").await;
    let lease = claim(&*s, "approve").await;
    s.await_event(AwaitEventParams {
        lease,
        queue: "default".into(),
        name: "event:approval".into(),
        seq: 0,
        event_name: "approval".into(),
        timeout: None,
    })
    .await
    .unwrap();

    let out = zart(
        &db.url,
        &["send-event", "waiter", "approval", r#"{"ok": true}"#],
    )
    .await;
    expect_code(&out, 0);
    assert!(text(&out).contains("sent event \"approval\" to execution \"waiter\""));
    // The wait took the event: the execution is due again.
    let shown = json_of(&db.url, &["show", "waiter"]).await;
    assert_eq!(shown["steps"][0]["status"], "completed");
    assert_eq!(shown["steps"][0]["output"]["received"], json!({"ok": true}));
    assert_eq!(shown["waiting"][0]["reason"], "due");

    // The payload from standard input, and as JSON output.
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_zart"))
        .env("DATABASE_URL", &db.url)
        .args(["send-event", "waiter", "later", "-", "--json"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"[1, 2]").await.unwrap();
    }
    let out = child.wait_with_output().await.unwrap();
    expect_code(&out, 0);
    let sent: Value = serde_json::from_str(&text(&out)).unwrap();
    assert_eq!(
        sent,
        json!({"id": "waiter", "event": "later", "sent": true})
    );

    let out = zart(&db.url, &["send-event", "waiter", "approval", "{not json"]).await;
    expect_code(&out, 2);
    assert!(stderr(&out).contains("invalid payload"), "{}", stderr(&out));
    let out = zart(&db.url, &["send-event", "waiter", ""]).await;
    expect_code(&out, 2);
    assert!(
        stderr(&out).contains("invalid event name"),
        "{}",
        stderr(&out)
    );
    let out = zart(&db.url, &["send-event", "no-such-id", "approval"]).await;
    expect_code(&out, 3);
    assert!(stderr(&out).contains("not found"), "{}", stderr(&out));
    s.cancel_execution("waiter").await.unwrap();
    let out = zart(&db.url, &["send-event", "waiter", "approval"]).await;
    expect_code(&out, 1);
    assert!(
        stderr(&out).contains("has finished (cancelled)"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn cancel_cancels_children_too_and_only_once() {
    let db = TestDb::new().await;
    let s = db.scheduler().await;
    start(&*s, "order-1", "family", "default").await;
    let lease = claim(&*s, "family").await;
    s.start_child(StartChildParams {
        lease,
        name: "kid".into(),
        seq: 0,
        child_id: "order-1/kid".into(),
        task_name: "kid-task".into(),
        input: json!({}),
        queue: "default".into(),
        detached: false,
    })
    .await
    .unwrap();

    let cancelled = json_of(&db.url, &["cancel", "order-1"]).await;
    assert_eq!(
        cancelled,
        json!({"id": "order-1", "cancelled": ["order-1", "order-1/kid"]})
    );
    let shown = json_of(&db.url, &["show", "order-1/kid"]).await;
    assert_eq!(shown["execution"]["status"], "cancelled");
    let out = zart(&db.url, &["cancel", "order-1"]).await;
    expect_code(&out, 0);
    assert!(
        text(&out).contains("had already finished"),
        "{}",
        text(&out)
    );

    let out = zart(&db.url, &["cancel", "no-such-id"]).await;
    expect_code(&out, 3);
    assert!(stderr(&out).contains("not found"), "{}", stderr(&out));
    let out = zart(&db.url, &["cancel", &"x".repeat(300)]).await;
    expect_code(&out, 2);
}

/// `pay`: step `before`, then step `charge`, which fails while [`Pay::broken`] is set.
struct Pay {
    broken: Arc<AtomicBool>,
    runs: Arc<AtomicUsize>,
}

#[async_trait::async_trait]
impl zart::TaskHandler for Pay {
    type Data = Value;
    type Output = String;

    async fn run(
        &self,
        ctx: &mut zart::TaskContext<impl Scheduler>,
        _: Value,
    ) -> Result<String, zart::TaskError> {
        let runs = self.runs.clone();
        ctx.step("before", || async move {
            runs.fetch_add(1, Ordering::SeqCst);
            Ok::<_, std::io::Error>(())
        })
        .await?;
        let broken = self.broken.load(Ordering::SeqCst);
        ctx.step("charge", || async move {
            if broken {
                return Err(std::io::Error::other("gateway down"));
            }
            Ok("paid".to_owned())
        })
        .await
    }
}

#[tokio::test]
async fn retry_runs_a_failed_execution_again_and_wakes_the_worker() {
    let db = TestDb::new().await;
    let s = db.scheduler().await;
    let broken = Arc::new(AtomicBool::new(true));
    let runs = Arc::new(AtomicUsize::new(0));
    let mut registry = zart::TaskRegistry::new();
    registry
        .register(
            "pay",
            Pay {
                broken: broken.clone(),
                runs: runs.clone(),
            },
        )
        .unwrap();
    // The sweep is far away: the worker hears of the retry through its wake-up or not at all.
    let registry = Arc::new(registry);
    let worker = zart::Worker::new(
        s.clone(),
        registry.clone(),
        zart::WorkerConfig::default()
            .with_sweep_interval(Duration::from_secs(600))
            .with_handle_signals(false),
    );
    let stop = worker.shutdown_handle();
    let running = tokio::spawn(worker.run());
    let durable = zart::DurableScheduler::new(s.clone(), registry);
    durable.start("pay-1", "pay", json!({})).await.unwrap();
    let failed = durable
        .wait("pay-1", Some(Duration::from_secs(20)))
        .await
        .unwrap();
    assert_eq!(failed.status, zart::ExecutionStatus::Failed);

    // Not failed yet / unknown / bad id: refused, nothing changes.
    start(&*s, "queued", "other", "default").await;
    let out = zart(&db.url, &["retry", "queued"]).await;
    expect_code(&out, 1);
    assert!(
        stderr(&out).contains("cannot be retried: it is scheduled"),
        "{}",
        stderr(&out)
    );
    expect_code(&zart(&db.url, &["retry", "no-such-id"]).await, 3);
    expect_code(&zart(&db.url, &["retry", ""]).await, 2);

    let shown = zart(&db.url, &["show", "pay-1"]).await;
    expect_code(&shown, 0);
    assert!(
        text(&shown).contains("zart retry pay-1 (runs it again from its failed step)"),
        "{}",
        text(&shown)
    );
    let shown = json_of(&db.url, &["show", "pay-1"]).await;
    assert_eq!(shown["execution"]["error"]["step"], "charge");
    assert_eq!(shown["execution"]["error"]["message"], "gateway down");

    broken.store(false, Ordering::SeqCst);
    let retried = json_of(&db.url, &["retry", "pay-1"]).await;
    assert_eq!(retried, json!({"id": "pay-1", "retried": ["pay-1"]}));
    let done = durable
        .wait("pay-1", Some(Duration::from_secs(20)))
        .await
        .unwrap();
    assert_eq!(
        done.status,
        zart::ExecutionStatus::Completed,
        "{:?}",
        done.error
    );
    assert_eq!(done.output, Some(json!("paid")));
    assert_eq!(runs.load(Ordering::SeqCst), 1, "step `before` was kept");

    let out = zart(&db.url, &["retry", "pay-1"]).await;
    expect_code(&out, 1);
    assert!(
        stderr(&out).contains("cannot be retried: it is completed"),
        "{}",
        stderr(&out)
    );
    stop.shutdown();
    running.await.unwrap().unwrap();
}

#[tokio::test]
async fn start_with_a_delay_or_a_time_is_scheduled_for_then() {
    let db = TestDb::new().await;
    let started = json_of(&db.url, &["start", "later-1", "report", "--delay", "2h"]).await;
    assert_eq!(started["created"], true);
    let shown = json_of(&db.url, &["show", "later-1"]).await;
    assert_eq!(shown["execution"]["status"], "scheduled");
    assert_eq!(shown["waiting"][0]["reason"], "scheduled", "{shown}");
    let client = db.client().await;
    let ahead: f64 = client
        .query_one(
            "select extract(epoch from run_at - zart_current_time())::float8
               from zart_tasks where execution_id = 'later-1'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!((7100.0..=7200.0).contains(&ahead), "{ahead}");

    json_of(
        &db.url,
        &["start", "at-1", "report", "--at", "2100-01-01T09:00:00Z"],
    )
    .await;
    let at: String = client
        .query_one(
            "select to_char(run_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI')
               from zart_tasks where execution_id = 'at-1'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(at, "2100-01-01 09:00");

    for (args, message) in [
        (
            &["start", "x", "report", "--at", "2h"][..],
            "is a duration: use --delay 2h",
        ),
        (
            &["start", "x", "report", "--delay", "soon"],
            "is not a delay",
        ),
        (
            &["start", "x", "report", "--delay", "40000d"],
            "over 100 years",
        ),
        (
            &["start", "x", "report", "--at", "2999-01-01"],
            "invalid start time: 2999-01-01 00:00:00+00 is more than 100 years ahead",
        ),
        (
            &[
                "start",
                "x",
                "report",
                "--delay",
                "1h",
                "--at",
                "2100-01-01",
            ],
            "cannot be used with",
        ),
    ] {
        let out = zart(&db.url, args).await;
        expect_code(&out, 2);
        assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
    }
}

#[tokio::test]
async fn start_takes_a_priority_a_limit_key_and_start_keys() {
    let db = TestDb::new().await;
    let first = json_of(
        &db.url,
        &[
            "start",
            "p-1",
            "report",
            "--priority",
            "-3",
            "--limit-key",
            "acme",
            "--dedup",
            "daily",
            "--window",
            "1h",
        ],
    )
    .await;
    assert_eq!(
        (first["created"].as_bool(), first["id"].as_str()),
        (Some(true), Some("p-1"))
    );
    let again = json_of(
        &db.url,
        &[
            "start", "p-2", "report", "--dedup", "daily", "--window", "1h",
        ],
    )
    .await;
    assert_eq!(
        (again["created"].as_bool(), again["id"].as_str()),
        (Some(false), Some("p-1")),
        "the key names the first: {again}"
    );
    let client = db.client().await;
    let row = client
        .query_one(
            "select t.priority, t.limit_key, (select count(*) from zart_executions) n
               from zart_tasks t where t.execution_id = 'p-1'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (
            row.get::<_, i16>(0),
            row.get::<_, String>(1),
            row.get::<_, i64>(2)
        ),
        (-3, "acme".to_owned(), 1)
    );

    let debounced = json_of(
        &db.url,
        &[
            "start",
            "d-1",
            "report",
            "--debounce",
            "sync",
            "--window",
            "30s",
        ],
    )
    .await;
    assert_eq!(debounced["status"], "scheduled");
    for (args, message) in [
        (&["start", "x", "report", "--dedup", "k"][..], "--window"),
        (
            &["start", "x", "report", "--window", "1m"],
            "--window goes with --dedup or --debounce",
        ),
        (
            &["start", "x", "report", "--dedup", "", "--window", "1m"],
            "start key",
        ),
        (&["start", "x", "report", "--priority", "40000"], "40000"),
        (
            &[
                "start",
                "x",
                "report",
                "--debounce",
                "k",
                "--window",
                "1m",
                "--delay",
                "1m",
            ],
            "cannot be used with",
        ),
    ] {
        let out = zart(&db.url, args).await;
        expect_code(&out, 2);
        assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
    }
}

#[tokio::test]
async fn state_shows_what_an_execution_published() {
    let db = TestDb::new().await;
    let s = db.scheduler().await;
    start(&s, "import-1", "import", "default").await;
    let lease = claim(&s, "import").await;
    for (seq, name, value) in [
        (0, "state:progress", json!(10)),
        (1, "state:phase", json!("loading")),
        (2, "state#2:progress", json!(20)),
    ] {
        s.commit_step(zart::scheduler::CommitStepParams {
            lease: lease.clone(),
            name: name.into(),
            seq,
            status: zart::scheduler::StepStatus::Completed,
            output: Some(value),
            error: None,
            attempts: 1,
        })
        .await
        .unwrap();
    }
    let all = json_of(&db.url, &["state", "import-1"]).await;
    assert_eq!(all["state"][0]["name"], "phase");
    assert_eq!(all["state"][1]["value"], 20, "{all}");
    let one = zart(&db.url, &["state", "import-1", "progress"]).await;
    expect_code(&one, 0);
    assert_eq!(text(&one).trim(), "20");
    let table = zart(&db.url, &["state", "import-1"]).await;
    assert!(text(&table).contains("\"loading\""), "{}", text(&table));
    expect_code(&zart(&db.url, &["state", "import-1", "nothing"]).await, 3);
    expect_code(&zart(&db.url, &["state", "nobody"]).await, 3);
    let client = db.client().await;
    let viewed: i64 = client
        .query_one(
            "select count(*) from zart_state where execution_id = 'import-1'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(viewed, 2, "the view holds the latest of each name");
}

#[tokio::test]
async fn limits_commands_set_list_and_clear() {
    let db = TestDb::new().await;
    let set = json_of(
        &db.url,
        &[
            "limits",
            "set",
            "partner",
            "--max-running",
            "4",
            "--rate",
            "100/1m",
            "--key-max-running",
            "1",
        ],
    )
    .await;
    assert_eq!(set["limits"]["max_running"], 4);
    assert_eq!(set["limits"]["rate"]["per_ms"], 60_000);
    let listed = json_of(&db.url, &["limits", "list"]).await;
    assert_eq!(listed["queues"][0]["queue"], "partner");
    assert_eq!(listed["queues"][0]["limits"]["key_max_running"], 1);
    assert_eq!(listed["queues"][0]["running"], 0);
    let table = zart(&db.url, &["limits", "list"]).await;
    expect_code(&table, 0);
    assert!(text(&table).contains("100/1m"), "{}", text(&table));

    for (args, message) in [
        (&["limits", "set", "partner"][..], "give at least one of"),
        (&["limits", "set", "partner", "--rate", "5"], "has no '/'"),
        (
            &["limits", "set", "partner", "--rate", "x/1m"],
            "is not a count",
        ),
        (
            &["limits", "set", "partner", "--max-running", "0"],
            "max running: must be at least 1",
        ),
        (&["limits", "set", "", "--max-running", "1"], "queue"),
    ] {
        let out = zart(&db.url, args).await;
        expect_code(&out, 2);
        assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
    }
    assert_eq!(
        json_of(&db.url, &["limits", "list"]).await["queues"][0]["limits"]["max_running"],
        4,
        "unchanged"
    );
    json_of(&db.url, &["limits", "clear", "partner"]).await;
    assert_eq!(
        json_of(&db.url, &["limits", "list"]).await["queues"],
        serde_json::json!([])
    );
}

#[tokio::test]
async fn schedule_commands_declare_list_pause_resume_and_delete() {
    let db = TestDb::new().await;
    let set = json_of(
        &db.url,
        &[
            "schedule",
            "set",
            "nightly",
            "0 2 * * *",
            "report",
            r#"{"scope": "all"}"#,
            "--tz",
            "Europe/Paris",
            "--catch-up",
            "all:3",
            "--overlap",
            "cancel-previous",
        ],
    )
    .await;
    assert_eq!(set, json!({"id": "nightly", "created": true}));
    let listed = json_of(&db.url, &["schedule", "list"]).await;
    let row = &listed["schedules"][0];
    assert_eq!(row["id"], "nightly");
    assert_eq!(row["time_zone"], "Europe/Paris");
    assert_eq!(row["catch_up"], "all");
    assert_eq!(row["catch_up_limit"], 3);
    assert_eq!(row["overlap"], "cancel_previous");
    assert_eq!(row["input"], json!({"scope": "all"}));
    assert_eq!(row["paused"], false);

    let out = zart(&db.url, &["schedule", "pause", "nightly"]).await;
    expect_code(&out, 0);
    assert_eq!(text(&out), "zart: paused schedule \"nightly\"\n");
    let listed = zart(&db.url, &["schedule", "list"]).await;
    assert!(text(&listed).contains("paused"), "{}", text(&listed));
    expect_code(&zart(&db.url, &["schedule", "resume", "nightly"]).await, 0);
    let again = json_of(
        &db.url,
        &["schedule", "set", "nightly", "0 3 * * *", "report"],
    )
    .await;
    assert_eq!(again["created"], false);

    for (args, code, message) in [
        (
            &["schedule", "set", "x", "61 * * * *", "report"][..],
            2,
            "invalid cron",
        ),
        (
            &[
                "schedule",
                "set",
                "x",
                "* * * * *",
                "report",
                "--tz",
                "Mars/Base",
            ],
            2,
            "invalid time zone",
        ),
        (
            &[
                "schedule",
                "set",
                "x",
                "* * * * *",
                "report",
                "--catch-up",
                "all:0",
            ],
            2,
            "catch-up limit",
        ),
        (
            &[
                "schedule",
                "set",
                "x",
                "* * * * *",
                "report",
                "--overlap",
                "never",
            ],
            2,
            "--overlap",
        ),
        (
            &["schedule", "set", "a@b", "* * * * *", "report"],
            2,
            "must not contain @",
        ),
        (&["schedule", "pause", "nope"], 3, "not found"),
        (&["schedule", "delete", "nope"], 3, "not found"),
    ] {
        let out = zart(&db.url, args).await;
        expect_code(&out, code);
        assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
    }
    let deleted = json_of(&db.url, &["schedule", "delete", "nightly"]).await;
    assert_eq!(deleted["deleted"], true);
    let out = zart(&db.url, &["schedule", "list"]).await;
    assert_eq!(text(&out), "zart: no schedules\n");
}

#[tokio::test]
async fn migrate_dry_run_prints_the_sql_and_changes_nothing() {
    let empty = TestDb::empty().await;
    let out = zart(&empty.url, &["migrate", "--dry-run"]).await;
    expect_code(&out, 0);
    let sql = text(&out);
    for part in [
        "-- ==== migration V1__init ====",
        "-- ==== migration V4__security ====",
        "-- ==== sql/zart.sql (every run) ====",
        "-- ==== sql/roles.sql (every run) ====",
        "create table public.zart_executions",
    ] {
        assert!(sql.contains(part), "missing {part:?}");
    }
    let client = empty.client().await;
    let tables = zart_tests::count(
        &client,
        "select count(*) from pg_tables where tablename like 'zart\\_%'",
    )
    .await;
    assert_eq!(tables, 0, "a dry run created tables");

    // Migrated: no migration pending, the functions and grants still listed.
    let db = TestDb::new().await;
    let plan = json_of(&db.url, &["migrate", "--dry-run"]).await;
    assert_eq!(plan["pending"], json!([]));
    assert!(plan["sql"].as_str().unwrap().contains("zart_claim_tasks"));

    let out = zart("sqlite://x.db", &["migrate", "--dry-run"]).await;
    expect_code(&out, 2);
}

#[tokio::test]
async fn doctor_passes_for_the_owner_and_names_what_a_bare_login_lacks() {
    let db = TestDb::new().await;
    let report = json_of(&db.url, &["doctor"]).await;
    assert_eq!(report["passed"], true, "{report:#}");
    let names: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "server",
            "schema",
            "roles",
            "client",
            "worker",
            "reader",
            "durability",
            "clock",
            "notify"
        ]
    );
    let out = zart(&db.url, &["doctor"]).await;
    expect_code(&out, 0);
    assert!(text(&out).contains("LISTEN/NOTIFY works"), "{}", text(&out));

    // A reader: may read, may execute neither the client's nor the worker's entry points.
    let logins = Logins::new(&db);
    let admin = db.client().await;
    let reader = logins.create(&admin, "reader", &["zart_reader"]).await;
    let bare = logins.create(&admin, "bare", &[]).await;
    let config = db.config();
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "127.0.0.1".to_owned(),
    };
    let url_of = |role: &str| format!("postgres://{role}@{host}:{port}/{}", db.name);
    let report = json_of(&url_of(&reader), &["doctor"]).await;
    let level = |report: &Value, name: &str| {
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap()["level"]
            .clone()
    };
    assert_eq!(report["passed"], true, "{report:#}");
    assert_eq!(level(&report, "client"), "info");
    assert_eq!(level(&report, "reader"), "ok");
    // The reader lists; a bare login is refused, and doctor says why (exit 1).
    json_of(&url_of(&reader), &["list"]).await;
    let out = zart(&url_of(&bare), &["doctor", "--json"]).await;
    expect_code(&out, 1);
    let report: Value = serde_json::from_str(&text(&out)).unwrap();
    assert_eq!(level(&report, "schema"), "fail");
    assert_eq!(level(&report, "roles"), "warn");
}

#[tokio::test]
async fn a_database_that_is_down_is_exit_4_for_every_command() {
    for args in [
        &["list"][..],
        &["show", "x"],
        &["send-event", "x", "e"],
        &["cancel", "x"],
        &["retry", "x"],
        &["schedule", "list"],
        &["doctor"],
        &["migrate"],
        &["migrate", "--dry-run"],
        &["status", "x"],
        &["start", "x", "t"],
    ] {
        let out = zart(DOWN, args).await;
        expect_code(&out, 4);
        let err = stderr(&out);
        assert!(err.contains("database unavailable"), "{args:?}: {err}");
        assert!(err.contains("is the server running"), "{args:?}: {err}");
    }
    // No URL at all is a usage error.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_zart"))
        .env_remove("DATABASE_URL")
        .arg("list")
        .output()
        .await
        .unwrap();
    expect_code(&out, 2);
    assert!(stderr(&out).contains("no database given"));
}

#[tokio::test]
async fn help_documents_the_exit_codes() {
    let out = zart(DOWN, &["--help"]).await;
    expect_code(&out, 0);
    let help = text(&out);
    for line in [
        "3  no execution has the id",
        "4  the database cannot be reached",
    ] {
        assert!(help.contains(line), "{help}");
    }
}

#[tokio::test]
async fn prune_deletes_old_finished_executions_counts_in_a_dry_run_and_refuses_bad_ages() {
    let db = TestDb::new().await;
    let s = db.scheduler().await;
    for id in ["old-1", "old-2"] {
        start(&*s, id, "report", "default").await;
        let lease = claim(&*s, "report").await;
        s.complete_execution(zart::scheduler::CompleteExecutionParams {
            lease,
            outcome: zart::scheduler::Outcome::Completed(json!(1)),
        })
        .await
        .unwrap();
    }
    start(&*s, "unfinished", "report", "default").await;
    db.advance_clock(Duration::from_secs(8 * 24 * 3600)).await;

    let counted = json_of(&db.url, &["prune", "--dry-run"]).await;
    assert_eq!(counted["completed"], 2, "{counted}");
    assert_eq!(counted["dry_run"], true);
    assert_eq!(counted["total"], 2);

    // Piped: no progress bar, one line of text.
    let out = zart(&db.url, &["prune", "--batch", "1"]).await;
    expect_code(&out, 0);
    assert_eq!(stderr(&out), "", "nothing on standard error when piped");
    assert_eq!(
        text(&out),
        "zart: deleted 2 finished execution(s): 2 completed, 0 failed, 0 cancelled\n"
    );
    assert!(s.get_execution("old-1").await.unwrap().is_none());
    assert!(s.get_execution("unfinished").await.unwrap().is_some());

    for (args, says) in [
        (&["prune", "--completed-older-than", "-7d"][..], "negative"),
        (&["prune", "--failed-older-than=-1s"][..], "negative"),
        (
            &["prune", "--cancelled-older-than", "7 days"][..],
            "not an age",
        ),
        (&["prune", "--batch", "0"][..], "invalid --batch"),
    ] {
        let out = zart(&db.url, args).await;
        expect_code(&out, 2);
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    }
    // `never` keeps a status.
    let kept = json_of(
        &db.url,
        &["prune", "--dry-run", "--completed-older-than", "never"],
    )
    .await;
    assert_eq!(kept["total"], 0);
}
