//! Durable waits on a real PostgreSQL: sleeps on the test clock, events (buffered, woken at
//! once, timed out, typed), human-in-the-loop approvals delivered by a trigger, executions
//! started by a trigger, and worker processes killed while executions sleep or wait.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use zart::{
    DurableScheduler, Error, EventOutcome, ExecutionStatus, Scheduler, TaskContext, TaskError,
    TaskHandler, TaskRegistry, WorkerConfig,
};
use zart_pg::PgPool;
use zart_tests::{
    count, init_tracing, kill_process, spawn_worker_process, tasks, wait_for, Harness, TestDb,
};

/// The worker process that crash tests kill.
const WORKER_BIN: &str = env!("CARGO_BIN_EXE_zart-test-worker");

const WAIT: Option<Duration> = Some(Duration::from_secs(30));
const HOUR: Duration = Duration::from_secs(3600);
const MINUTE: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// Workflows of this suite (the shared `sleeper`, `approver` and `echo` are in tasks.rs).

/// Sleeps until the instant in its input (milliseconds since the epoch), then takes one step.
struct SleepUntil;

#[async_trait]
impl TaskHandler for SleepUntil {
    type Data = u64;
    type Output = String;

    async fn run(
        &self,
        ctx: &mut TaskContext<impl Scheduler>,
        epoch_ms: u64,
    ) -> Result<String, TaskError> {
        ctx.sleep_until("until", UNIX_EPOCH + Duration::from_millis(epoch_ms))
            .await?;
        ctx.step("after", || async {
            Ok::<_, std::io::Error>("woke".to_owned())
        })
        .await
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct WaitInput {
    event: String,
    timeout_secs: Option<u64>,
}

/// Waits for the event named in its input, then records how the wait ended in step `after`,
/// which is also the output: `{"received": payload}` or `{"timed_out": true}`.
struct Waiter;

#[async_trait]
impl TaskHandler for Waiter {
    type Data = WaitInput;
    type Output = serde_json::Value;

    async fn run(
        &self,
        ctx: &mut TaskContext<impl Scheduler>,
        input: WaitInput,
    ) -> Result<serde_json::Value, TaskError> {
        let timeout = input.timeout_secs.map(Duration::from_secs);
        let outcome = ctx
            .wait_for_event::<serde_json::Value>(&input.event, timeout)
            .await?;
        ctx.step("after", || async move {
            Ok::<_, std::io::Error>(match outcome {
                EventOutcome::Received(payload) => serde_json::json!({ "received": payload }),
                EventOutcome::TimedOut => serde_json::json!({ "timed_out": true }),
                EventOutcome::Malformed { payload, .. } => {
                    serde_json::json!({ "malformed": payload })
                }
            })
        })
        .await
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Order {
    order_id: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Approval {
    approved: bool,
}

/// The human-in-the-loop workflow: waits for a typed `approval` and records the decision.
struct ApproveOrder;

#[async_trait]
impl TaskHandler for ApproveOrder {
    type Data = Order;
    type Output = String;

    async fn run(
        &self,
        ctx: &mut TaskContext<impl Scheduler>,
        order: Order,
    ) -> Result<String, TaskError> {
        let approval = match ctx.wait_for_event::<Approval>("approval", None).await? {
            EventOutcome::Received(approval) => approval,
            EventOutcome::Malformed { error, .. } => {
                return Err(TaskError::failed(format!("unreadable approval: {error}")))
            }
            EventOutcome::TimedOut => {
                return Err(TaskError::failed(
                    "an approval without timeout cannot time out",
                ))
            }
        };
        ctx.step("record-decision", || async move {
            let outcome = if approval.approved {
                "approved"
            } else {
                "rejected"
            };
            Ok::<_, std::io::Error>(format!("order {} {outcome}", order.order_id))
        })
        .await
    }
}

/// The tasks of this suite that need no side-effect table.
fn local_registry() -> TaskRegistry {
    let mut registry = TaskRegistry::new();
    registry
        .register("sleep-until", SleepUntil)
        .unwrap()
        .register("waiter", Waiter)
        .unwrap()
        .register("approve-order", ApproveOrder)
        .unwrap()
        .register("echo", tasks::Echo)
        .unwrap();
    registry
}

/// Step `before` signals `entered` and holds until `release`; then waits for `approval` and
/// returns its payload. Lets a test act while the workflow runs, before it reaches its wait.
struct Gated {
    entered: Arc<Notify>,
    release: Arc<Notify>,
}

#[async_trait]
impl TaskHandler for Gated {
    type Data = ();
    type Output = serde_json::Value;

    async fn run(
        &self,
        ctx: &mut TaskContext<impl Scheduler>,
        _: (),
    ) -> Result<serde_json::Value, TaskError> {
        let (entered, release) = (self.entered.clone(), self.release.clone());
        ctx.step("before", || async move {
            entered.notify_one();
            release.notified().await;
            Ok::<_, std::io::Error>(())
        })
        .await?;
        Ok(ctx
            .wait_for_event::<serde_json::Value>("approval", None)
            .await?
            .received()
            .unwrap_or_default())
    }
}

/// A worker whose safety sweep is too slow to matter: anything it does within a test's wait
/// was started by a wake-up (a NOTIFY), not by the sweep.
fn notify_only_worker() -> WorkerConfig {
    WorkerConfig::default().with_sweep_interval(Duration::from_secs(600))
}

// ---------------------------------------------------------------------------------------------
// Helpers.

/// What `zart_waiting` shows for one execution.
#[derive(Debug, Clone, PartialEq)]
struct Waiting {
    status: String,
    task_name: String,
    wait_kind: String,
    wait_name: String,
    /// `wakes_at` as text, for exact comparisons.
    wakes_at: Option<String>,
    /// Seconds from the database clock to `wakes_at`.
    wakes_in_secs: Option<f64>,
    attempts: i32,
}

async fn waiting(client: &tokio_postgres::Client, id: &str) -> Option<Waiting> {
    client
        .query_opt(
            "select w.status, w.task_name, w.wait_kind, w.wait_name, w.wakes_at::text,
                    extract(epoch from w.wakes_at - zart_current_time())::float8, e.attempts
               from zart_waiting w join zart_executions e on e.id = w.execution_id
              where w.execution_id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .map(|r| Waiting {
            status: r.get(0),
            task_name: r.get(1),
            wait_kind: r.get(2),
            wait_name: r.get(3),
            wakes_at: r.get(4),
            wakes_in_secs: r.get(5),
            attempts: r.get(6),
        })
}

/// Waits until `id` is suspended (it shows in `zart_waiting`) after at least `attempts` claims.
async fn suspended(client: &tokio_postgres::Client, id: &str, attempts: i32) -> Waiting {
    wait_for(
        &format!("{id} to suspend after claim {attempts}"),
        Duration::from_secs(15),
        || async { waiting(client, id).await.filter(|w| w.attempts >= attempts) },
    )
    .await
}

async fn status(client: &tokio_postgres::Client, id: &str) -> String {
    client
        .query_one(
            "select status from zart_execution_status where id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .get(0)
}

/// How often the side effect of `step` of `id` happened.
async fn side_effects(client: &tokio_postgres::Client, id: &str, step: &str) -> i64 {
    client
        .query_one(
            "select count(*) from zart_test_side_effects where execution_id = $1 and step = $2",
            &[&id, &step],
        )
        .await
        .unwrap()
        .get(0)
}

/// One step row: (kind, status, output).
async fn step_row(
    client: &tokio_postgres::Client,
    id: &str,
    name: &str,
) -> (String, String, Option<serde_json::Value>) {
    let row = client
        .query_one(
            "select kind, status, output from zart_steps where execution_id = $1 and name = $2",
            &[&id, &name],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1), row.get(2))
}

/// The events of `id` in arrival order: (payload, consumed, consumed_by).
async fn events(
    client: &tokio_postgres::Client,
    id: &str,
) -> Vec<(serde_json::Value, bool, Option<String>)> {
    client
        .query(
            "select payload, consumed_at is not null, consumed_by from zart_events
              where execution_id = $1 order by event_id",
            &[&id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

fn epoch_ms(t: SystemTime) -> u64 {
    u64::try_from(t.duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Sleeps.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sleep_suspends_without_a_slot_and_resumes_when_the_clock_passes_it() {
    init_tracing();
    let h = Harness::new().await;
    // One slot: while "napper" sleeps, "meanwhile" must still run.
    h.spawn_worker(WorkerConfig::default().with_concurrency(1));
    let client = h.db.client().await;
    h.durable
        .start("napper", "sleeper", serde_json::json!(3600))
        .await
        .unwrap();

    let w = suspended(&client, "napper", 1).await;
    assert_eq!(w.status, "sleeping");
    assert_eq!(w.task_name, "sleeper");
    assert_eq!(w.wait_kind, "sleep");
    assert_eq!(w.wait_name, "nap");
    let wakes_in = w.wakes_in_secs.expect("a sleep has a wake time");
    assert!(
        (3590.0..=3600.0).contains(&wakes_in),
        "the sleep ends about 1 h from now on the database clock, not in {wakes_in} s"
    );
    assert_eq!(status(&client, "napper").await, "sleeping");
    assert_eq!(
        h.durable.status("napper").await.unwrap().status,
        ExecutionStatus::Sleeping
    );
    assert_eq!(
        count(
            &client,
            "select count(*) from zart_tasks where execution_id = 'napper' and locked_by is null"
        )
        .await,
        1,
        "a sleeping execution holds no lease"
    );
    let (kind, step_status, _) = step_row(&client, "napper", "nap").await;
    assert_eq!((kind.as_str(), step_status.as_str()), ("sleep", "waiting"));
    assert_eq!(side_effects(&client, "napper", "before").await, 1);
    assert_eq!(side_effects(&client, "napper", "after").await, 0);

    // The only slot is free: another execution runs to completion meanwhile.
    h.durable
        .start(
            "meanwhile",
            "echo",
            serde_json::json!({"while": "sleeping"}),
        )
        .await
        .unwrap();
    let other = h.durable.wait("meanwhile", WAIT).await.unwrap();
    assert_eq!(other.status, ExecutionStatus::Completed);
    assert_eq!(other.output, Some(serde_json::json!({"while": "sleeping"})));
    assert_eq!(status(&client, "napper").await, "sleeping");

    h.db.advance_clock(HOUR + Duration::from_secs(1)).await;
    let done = h.durable.wait("napper", WAIT).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Completed);
    assert_eq!(done.output, Some(serde_json::json!(3600)));
    assert_eq!(
        done.attempts, 2,
        "claimed once before and once after the sleep"
    );
    assert_eq!(side_effects(&client, "napper", "before").await, 1);
    assert_eq!(side_effects(&client, "napper", "after").await, 1);
    let (kind, step_status, _) = step_row(&client, "napper", "nap").await;
    assert_eq!(
        (kind.as_str(), step_status.as_str()),
        ("sleep", "completed")
    );
    assert_eq!(count(&client, "select count(*) from zart_waiting").await, 0);
    assert_eq!(count(&client, "select count(*) from zart_tasks").await, 0);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sleep_until_a_past_time_returns_without_suspending() {
    init_tracing();
    let h = Harness::with_registry(local_registry()).await;
    h.spawn_worker(WorkerConfig::default());
    let client = h.db.client().await;
    let an_hour_ago = epoch_ms(SystemTime::now() - HOUR);
    h.durable
        .start("past", "sleep-until", serde_json::json!(an_hour_ago))
        .await
        .unwrap();

    let done = h.durable.wait("past", WAIT).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Completed);
    assert_eq!(done.output, Some(serde_json::json!("woke")));
    assert_eq!(done.attempts, 1, "a past time never suspends the execution");
    let (kind, step_status, _) = step_row(&client, "past", "until").await;
    assert_eq!(
        (kind.as_str(), step_status.as_str()),
        ("sleep", "completed")
    );
    let (_, after_status, _) = step_row(&client, "past", "after").await;
    assert_eq!(after_status, "completed");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sleep_until_a_future_time_suspends_until_the_clock_passes_it() {
    init_tracing();
    let h = Harness::with_registry(local_registry()).await;
    h.spawn_worker(WorkerConfig::default());
    let client = h.db.client().await;
    let in_two_hours = epoch_ms(SystemTime::now() + 2 * HOUR);
    h.durable
        .start("future", "sleep-until", serde_json::json!(in_two_hours))
        .await
        .unwrap();

    let w = suspended(&client, "future", 1).await;
    assert_eq!(
        (
            w.status.as_str(),
            w.wait_kind.as_str(),
            w.wait_name.as_str()
        ),
        ("sleeping", "sleep", "until")
    );
    let wakes_at_ms: i64 = client
        .query_one(
            "select (extract(epoch from wakes_at) * 1000)::bigint from zart_waiting
              where execution_id = 'future'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        wakes_at_ms,
        i64::try_from(in_two_hours).unwrap(),
        "it wakes at the time given"
    );

    // One hour later it is not due yet. An execution started after the clock moved completes,
    // so the worker has looked for due work since then.
    h.db.advance_clock(HOUR).await;
    h.durable
        .start("probe", "echo", serde_json::json!(1))
        .await
        .unwrap();
    let probe = h.durable.wait("probe", WAIT).await.unwrap();
    assert_eq!(probe.status, ExecutionStatus::Completed);
    assert_eq!(status(&client, "future").await, "sleeping");
    assert_eq!(waiting(&client, "future").await.unwrap().attempts, 1);

    h.db.advance_clock(HOUR + Duration::from_secs(1)).await;
    let done = h.durable.wait("future", WAIT).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Completed);
    assert_eq!(done.output, Some(serde_json::json!("woke")));
    assert_eq!(done.attempts, 2);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_sleep_ends_on_time_on_a_worker_that_did_not_start_it() {
    init_tracing();
    let h = Harness::new().await;
    let first = h.spawn_worker(notify_only_worker());
    let client = h.db.client().await;
    h.durable
        .start("short", "sleeper", serde_json::json!(2))
        .await
        .unwrap();
    suspended(&client, "short", 1).await;
    // The worker that knows the wake time leaves; a new one learns it from the database and
    // wakes for it without the (here 600 s) sweep and without the clock being moved.
    first.shutdown();
    h.spawn_worker(notify_only_worker());
    let done = h
        .durable
        .wait("short", Some(Duration::from_secs(15)))
        .await
        .unwrap();
    assert_eq!(done.status, ExecutionStatus::Completed);
    assert_eq!(done.attempts, 2);
    let slept: f64 = client
        .query_one(
            "select extract(epoch from a.at - b.at)::float8
               from zart_test_side_effects a, zart_test_side_effects b
              where a.step = 'after' and b.step = 'before'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(slept >= 2.0, "the sleep lasted its 2 s, not {slept} s");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sleep_keeps_its_wake_time_when_replayed_after_a_restart() {
    init_tracing();
    let h = Harness::new().await;
    let first = h.spawn_worker(WorkerConfig::default());
    let client = h.db.client().await;
    h.durable
        .start("steady", "sleeper", serde_json::json!(3600))
        .await
        .unwrap();
    let before = suspended(&client, "steady", 1).await;
    let wakes_at = before.wakes_at.clone().unwrap();
    h.db.advance_clock(30 * MINUTE).await;

    // Restart the worker, and make the task due early so the new worker claims it and replays
    // the workflow up to the sleep while the sleep still has 30 minutes to go.
    first.shutdown();
    h.spawn_worker(WorkerConfig::default());
    client
        .execute(
            "update zart_tasks set run_at = zart_current_time() where execution_id = 'steady'",
            &[],
        )
        .await
        .unwrap();
    client
        .execute("select pg_notify('zart_work', 'default')", &[])
        .await
        .unwrap();
    let replayed = suspended(&client, "steady", 2).await;
    assert_eq!(replayed.status, "sleeping");
    assert_eq!(replayed.wait_name, "nap");
    assert_eq!(
        replayed.wakes_at.as_deref(),
        Some(wakes_at.as_str()),
        "the replayed sleep keeps the wake time of its first reach"
    );
    let left = replayed.wakes_in_secs.unwrap();
    assert!(
        (1790.0..=1800.0).contains(&left),
        "30 minutes are left, not {left} s"
    );
    assert_eq!(side_effects(&client, "steady", "before").await, 1);

    // 30 + 31 minutes is past the hour: it completes.
    h.db.advance_clock(31 * MINUTE).await;
    let done = h.durable.wait("steady", WAIT).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Completed);
    assert_eq!(done.attempts, 3);
    assert_eq!(side_effects(&client, "steady", "before").await, 1);
    assert_eq!(side_effects(&client, "steady", "after").await, 1);
    h.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Events.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_sent_before_the_wait_is_buffered_and_delivered() {
    init_tracing();
    let h = Harness::new().await;
    let client = h.db.client().await;
    h.durable
        .start("early", "approver", serde_json::json!({}))
        .await
        .unwrap();
    // No worker runs yet: the event arrives long before the workflow reaches its wait.
    h.durable
        .send_event("early", "approval", &serde_json::json!({"by": "alice"}))
        .await
        .unwrap();
    assert_eq!(status(&client, "early").await, "scheduled");
    assert_eq!(
        events(&client, "early").await,
        vec![(serde_json::json!({"by": "alice"}), false, None)]
    );

    h.spawn_worker(WorkerConfig::default());
    let done = h.durable.wait("early", WAIT).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Completed);
    assert_eq!(done.output, Some(serde_json::json!({"by": "alice"})));
    assert_eq!(
        done.attempts, 1,
        "the buffered event was taken without suspending"
    );
    assert_eq!(
        events(&client, "early").await,
        vec![(
            serde_json::json!({"by": "alice"}),
            true,
            Some("event:approval".to_owned())
        )]
    );
    let (kind, step_status, output) = step_row(&client, "early", "event:approval").await;
    assert_eq!(
        (kind.as_str(), step_status.as_str()),
        ("event", "completed")
    );
    assert_eq!(
        output,
        Some(serde_json::json!({"received": {"by": "alice"}}))
    );
    assert_eq!(side_effects(&client, "early", "before").await, 1);
    assert_eq!(side_effects(&client, "early", "after").await, 1);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_sent_while_waiting_wakes_the_execution_at_once() {
    init_tracing();
    let h = Harness::new().await;
    h.spawn_worker(notify_only_worker());
    let client = h.db.client().await;
    h.durable
        .start("waits", "approver", serde_json::json!({}))
        .await
        .unwrap();
    let w = suspended(&client, "waits", 1).await;
    assert_eq!(
        (
            w.status.as_str(),
            w.wait_kind.as_str(),
            w.wait_name.as_str()
        ),
        ("waiting", "event", "approval")
    );
    assert_eq!(w.wakes_at, None, "a wait without timeout has no wake time");
    assert_eq!(
        h.durable.status("waits").await.unwrap().status,
        ExecutionStatus::Waiting
    );
    assert_eq!(
        count(
            &client,
            "select count(*) from zart_tasks where execution_id = 'waits' and locked_by is null"
        )
        .await,
        1
    );

    h.durable
        .send_event("waits", "approval", &serde_json::json!({"approved": true}))
        .await
        .unwrap();
    // Well under the worker's sweep (600 s here, 5 s by default): only the wake-up can do it.
    let done = match h.durable.wait("waits", Some(Duration::from_secs(2))).await {
        Ok(done) => done,
        Err(err) => panic!("the event did not wake the execution within 2 s: {err}"),
    };
    assert_eq!(done.status, ExecutionStatus::Completed);
    assert_eq!(done.output, Some(serde_json::json!({"approved": true})));
    assert_eq!(done.attempts, 2);
    assert_eq!(side_effects(&client, "waits", "before").await, 1);
    assert_eq!(side_effects(&client, "waits", "after").await, 1);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_wait_times_out_and_the_workflow_carries_on() {
    init_tracing();
    let h = Harness::with_registry(local_registry()).await;
    h.spawn_worker(WorkerConfig::default());
    let client = h.db.client().await;
    let input = WaitInput {
        event: "approval".into(),
        timeout_secs: Some(600),
    };
    h.durable
        .start_typed("patient", "waiter", &input)
        .await
        .unwrap();
    let w = suspended(&client, "patient", 1).await;
    assert_eq!(
        (
            w.status.as_str(),
            w.wait_kind.as_str(),
            w.wait_name.as_str()
        ),
        ("waiting", "event", "approval")
    );
    let wakes_in = w
        .wakes_in_secs
        .expect("a wait with a timeout has a wake time");
    assert!(
        (590.0..=600.0).contains(&wakes_in),
        "the timeout ends 10 minutes from now, not in {wakes_in} s"
    );

    h.db.advance_clock(11 * MINUTE).await;
    let done = h.durable.wait("patient", WAIT).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Completed);
    assert_eq!(done.output, Some(serde_json::json!({"timed_out": true})));
    let (kind, step_status, output) = step_row(&client, "patient", "event:approval").await;
    assert_eq!(
        (kind.as_str(), step_status.as_str()),
        ("event", "completed")
    );
    assert_eq!(output, Some(serde_json::json!({"timed_out": true})));
    let shown: String = client
        .query_one(
            "select status from zart_step_timeline where execution_id = 'patient' and name = 'event:approval'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(shown, "timed_out", "the timeline shows the timeout as one");
    let detail = zart::admin::Admin::describe_execution(&*h.scheduler, "patient")
        .await
        .unwrap()
        .unwrap();
    let wait = detail
        .steps
        .iter()
        .find(|s| s.name == "event:approval")
        .unwrap();
    assert_eq!(
        (wait.status.as_str(), wait.outcome()),
        ("completed", "timed_out")
    );
    let (_, after_status, after_output) = step_row(&client, "patient", "after").await;
    assert_eq!(after_status, "completed");
    assert_eq!(after_output, Some(serde_json::json!({"timed_out": true})));

    // A late event for the finished execution is refused, and nothing is stored.
    let err = h
        .durable
        .send_event("patient", "approval", &serde_json::json!("late"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Finished { id, status, .. } if id == "patient" && status == "completed"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "execution \"patient\" has finished (completed): the event was not stored"
    );
    assert_eq!(events(&client, "patient").await, vec![]);
    assert_eq!(status(&client, "patient").await, "completed");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_sent_while_the_workflow_runs_before_its_wait_is_not_lost() {
    init_tracing();
    let entered = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let mut registry = local_registry();
    registry
        .register(
            "gated",
            Gated {
                entered: entered.clone(),
                release: release.clone(),
            },
        )
        .unwrap();
    let h = Harness::with_registry(registry).await;
    h.spawn_worker(notify_only_worker());
    let client = h.db.client().await;
    h.durable
        .start("busy", "gated", serde_json::json!(null))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(15), entered.notified())
        .await
        .expect("the workflow did not start its first step");

    // The workflow runs (leased) and has not reached its wait: the event can only be buffered.
    assert_eq!(status(&client, "busy").await, "running");
    h.durable
        .send_event("busy", "approval", &serde_json::json!({"during": "before"}))
        .await
        .unwrap();
    release.notify_one();

    let done = h.durable.wait("busy", WAIT).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Completed);
    assert_eq!(done.output, Some(serde_json::json!({"during": "before"})));
    assert_eq!(done.attempts, 1, "the wait found the event buffered");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_sent_at_any_moment_of_many_waits_are_all_delivered() {
    init_tracing();
    const N: usize = 40;
    let h = Harness::new().await;
    // The sweep is out of the picture and a wait without timeout is never due by itself: an
    // event whose wake-up was lost would leave its execution waiting for good.
    h.spawn_worker(notify_only_worker().with_concurrency(8));
    let client = h.db.client().await;
    for i in 0..N {
        h.durable
            .start(&format!("many-{i}"), "approver", serde_json::json!({}))
            .await
            .unwrap();
    }
    // Events land before, during and after the workflows reach their waits.
    let mut senders = Vec::new();
    for i in 0..N {
        let durable = h.durable.clone();
        senders.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis((i as u64 % 10) * 15)).await;
            durable
                .send_event(
                    &format!("many-{i}"),
                    "approval",
                    &serde_json::json!({"i": i}),
                )
                .await
        }));
    }
    for sender in senders {
        sender.await.unwrap().unwrap();
    }
    for i in 0..N {
        let done = h.durable.wait(&format!("many-{i}"), WAIT).await.unwrap();
        assert_eq!(done.status, ExecutionStatus::Completed, "many-{i}");
        assert_eq!(done.output, Some(serde_json::json!({"i": i})), "many-{i}");
    }
    assert_eq!(
        count(
            &client,
            "select count(*) from zart_events where consumed_at is not null"
        )
        .await,
        N as i64
    );
    assert_eq!(
        count(
            &client,
            "select count(*) from zart_test_side_effects where step = 'before'"
        )
        .await,
        N as i64,
        "no step before a wait ran twice"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payload_that_does_not_fit_the_type_is_handed_to_the_workflow_consumed() {
    init_tracing();
    let h = Harness::with_registry(local_registry()).await;
    h.spawn_worker(WorkerConfig::default());
    let client = h.db.client().await;
    h.durable
        .start_typed(
            "order-typo",
            "approve-order",
            &Order {
                order_id: "typo".into(),
            },
        )
        .await
        .unwrap();
    suspended(&client, "order-typo", 1).await;
    h.durable
        .send_event(
            "order-typo",
            "approval",
            &serde_json::json!({"approved": "yes"}),
        )
        .await
        .unwrap();

    // The workflow got the bad payload as EventOutcome::Malformed and chose to fail.
    let done = h.durable.wait("order-typo", WAIT).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Failed);
    let error = done.error.unwrap();
    assert_eq!(
        error.message,
        "unreadable approval: invalid type: string \"yes\", expected a boolean"
    );
    assert_eq!(
        count(
            &client,
            "select count(*) from zart_events where execution_id = 'order-typo' and consumed_by = 'event:approval'"
        )
        .await,
        1,
        "the event was consumed by the wait"
    );
    assert_eq!(
        count(
            &client,
            "select count(*) from zart_steps where execution_id = 'order-typo' and name = 'record-decision'"
        )
        .await,
        0,
        "no decision was recorded"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_events_with_one_name_the_first_is_consumed_and_the_second_stays() {
    init_tracing();
    let h = Harness::new().await;
    let client = h.db.client().await;
    h.durable
        .start("twice", "approver", serde_json::json!({}))
        .await
        .unwrap();
    h.durable
        .send_event("twice", "approval", &serde_json::json!({"n": 1}))
        .await
        .unwrap();
    h.durable
        .send_event("twice", "approval", &serde_json::json!({"n": 2}))
        .await
        .unwrap();

    h.spawn_worker(WorkerConfig::default());
    let done = h.durable.wait("twice", WAIT).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Completed);
    assert_eq!(
        done.output,
        Some(serde_json::json!({"n": 1})),
        "oldest first"
    );
    assert_eq!(
        events(&client, "twice").await,
        vec![
            (
                serde_json::json!({"n": 1}),
                true,
                Some("event:approval".to_owned())
            ),
            (serde_json::json!({"n": 2}), false, None),
        ]
    );
    assert_eq!(
        count(
            &client,
            "select count(*) from zart_events where execution_id = 'twice' and consumed_at is null"
        )
        .await,
        1
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_event_sends_are_refused_before_anything_is_written() {
    init_tracing();
    let h = Harness::with_registry(local_registry()).await;
    let client = h.db.client().await;
    let input = WaitInput {
        event: "approval".into(),
        timeout_secs: None,
    };
    h.durable
        .start_typed("exists", "waiter", &input)
        .await
        .unwrap();
    let payload = serde_json::json!({"approved": true});

    let err = h
        .durable
        .send_event("nobody", "approval", &payload)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::NotFound { id } if id == "nobody"),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "execution \"nobody\" not found");

    let long = "e".repeat(256);
    let cases: [(&str, &str, &str); 4] = [
        ("exists", "", "invalid event name: must not be empty"),
        (
            "exists",
            &long,
            "invalid event name: 256 bytes is over the limit of 255 bytes",
        ),
        (
            "exists",
            "appro\0val",
            "invalid event name: must not contain a NUL character (\\0)",
        ),
        ("", "approval", "invalid execution id: must not be empty"),
    ];
    for (id, name, message) in cases {
        let err = h.durable.send_event(id, name, &payload).await.unwrap_err();
        assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
        assert_eq!(err.to_string(), message);
    }
    let small = h.durable.clone().with_max_payload_bytes(16);
    let big = serde_json::json!({"note": "longer than sixteen bytes"});
    let size = serde_json::to_string(&big).unwrap().len();
    let err = small
        .send_event("exists", "approval", &big)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("invalid event payload: {size} bytes of JSON is over the limit of 16 bytes")
    );
    let err = h
        .durable
        .send_event("exists", "approval", &serde_json::json!({"s": "a\u{0}b"}))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid event payload: JSON strings must not contain a NUL character (\\u0000): \
         PostgreSQL cannot store it"
    );
    assert_eq!(count(&client, "select count(*) from zart_events").await, 0);

    // The same refusals from SQL, with their SQLSTATEs.
    let sql_err = |sql: &'static str| {
        let client = &client;
        async move {
            let err = client.query_one(sql, &[]).await.unwrap_err();
            let db = err.as_db_error().expect("a database error");
            (db.code().code().to_owned(), db.message().to_owned())
        }
    };
    assert_eq!(
        sql_err("select zart_emit_event('nobody', 'approval', '{}')").await,
        (
            "ZA007".to_owned(),
            "execution \"nobody\" not found".to_owned()
        )
    );
    assert_eq!(
        sql_err("select zart_emit_event('exists', '', '{}')").await,
        (
            "ZA004".to_owned(),
            "invalid event name: must not be empty".to_owned()
        )
    );
    assert_eq!(
        sql_err("select zart_emit_event('exists', repeat('e', 256), '{}')").await,
        (
            "ZA004".to_owned(),
            "invalid event name: 256 bytes is over the limit of 255 bytes".to_owned()
        )
    );
    assert_eq!(count(&client, "select count(*) from zart_events").await, 0);

    // A workflow waiting for an invalid name fails, naming the field.
    let bad = WaitInput {
        event: String::new(),
        timeout_secs: None,
    };
    h.durable
        .start_typed("bad-wait", "waiter", &bad)
        .await
        .unwrap();
    h.spawn_worker(WorkerConfig::default());
    let done = h.durable.wait("bad-wait", WAIT).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Failed);
    let error = done.error.unwrap();
    assert_eq!(error.kind, "failed");
    assert_eq!(error.message, "invalid event name: must not be empty");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zart_emit_event_from_sql_reports_whether_it_woke_the_execution() {
    init_tracing();
    let h = Harness::with_registry(local_registry()).await;
    let client = h.db.client().await;
    let emit = |id: &'static str, name: &'static str, payload: serde_json::Value| {
        let client = &client;
        async move {
            client
                .query_one(
                    "select zart_emit_event($1, $2, $3)",
                    &[&id, &name, &payload],
                )
                .await
                .unwrap()
                .get::<_, bool>(0)
        }
    };
    let input = |event: &str| WaitInput {
        event: event.into(),
        timeout_secs: None,
    };
    h.durable
        .start_typed("sql-early", "waiter", &input("approval"))
        .await
        .unwrap();
    h.durable
        .start_typed("sql-waiting", "waiter", &input("approval"))
        .await
        .unwrap();

    // Not yet waiting (no worker runs): buffered, nobody woken.
    assert!(!emit("sql-early", "approval", serde_json::json!({"early": true})).await);

    h.spawn_worker(notify_only_worker());
    let early = h.durable.wait("sql-early", WAIT).await.unwrap();
    assert_eq!(early.status, ExecutionStatus::Completed);
    assert_eq!(
        early.output,
        Some(serde_json::json!({"received": {"early": true}}))
    );
    suspended(&client, "sql-waiting", 1).await;

    // Waiting, but for another event: buffered, not woken.
    assert!(!emit("sql-waiting", "shipping", serde_json::json!(1)).await);
    assert_eq!(
        count(
            &client,
            "select count(*) from zart_tasks where execution_id = 'sql-waiting' and run_at = 'infinity'"
        )
        .await,
        1,
        "an event of another name leaves the wait alone"
    );
    assert_eq!(status(&client, "sql-waiting").await, "waiting");

    // Waiting for it: woken, and the NOTIFY at commit brings a worker at once.
    assert!(
        emit(
            "sql-waiting",
            "approval",
            serde_json::json!({"from": "sql"})
        )
        .await
    );
    let done = h.durable.wait("sql-waiting", WAIT).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Completed);
    assert_eq!(
        done.output,
        Some(serde_json::json!({"received": {"from": "sql"}}))
    );

    // Finished: refused (ZA008), nothing stored.
    let err = client
        .query_one(
            "select zart_emit_event('sql-waiting', 'approval', '{\"again\": true}')",
            &[],
        )
        .await
        .unwrap_err();
    assert_eq!(err.code().unwrap().code(), "ZA008", "{err:?}");
    assert_eq!(
        events(&client, "sql-waiting").await,
        vec![
            (serde_json::json!(1), false, None),
            (
                serde_json::json!({"from": "sql"}),
                true,
                Some("event:approval".to_owned())
            ),
        ]
    );
    h.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Human in the loop: an INSERT into a business table delivers the event through a trigger.

const APPROVALS_SQL: &str = "
    create table approvals (order_id text primary key, approved boolean not null);
    create function approvals_emit() returns trigger language plpgsql as $$
    begin
        perform zart_emit_event('order-' || new.order_id, 'approval',
                                jsonb_build_object('approved', new.approved));
        return new;
    end
    $$;
    create trigger approvals_emit after insert on approvals
        for each row execute function approvals_emit();";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_insert_into_approvals_resumes_the_approve_order_workflow() {
    init_tracing();
    let h = Harness::with_registry(local_registry()).await;
    h.spawn_worker(notify_only_worker());
    let client = h.db.client().await;
    client.batch_execute(APPROVALS_SQL).await.unwrap();
    h.durable
        .start_typed(
            "order-42",
            "approve-order",
            &Order {
                order_id: "42".into(),
            },
        )
        .await
        .unwrap();
    let w = suspended(&client, "order-42", 1).await;
    assert_eq!(
        (
            w.status.as_str(),
            w.wait_kind.as_str(),
            w.wait_name.as_str()
        ),
        ("waiting", "event", "approval")
    );

    // A plain INSERT, as any application or a DBA at a psql prompt would do.
    client
        .execute(
            "insert into approvals (order_id, approved) values ('42', true)",
            &[],
        )
        .await
        .unwrap();
    let done = h.durable.wait("order-42", WAIT).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Completed);
    assert_eq!(done.output, Some(serde_json::json!("order 42 approved")));
    let (_, step_status, output) = step_row(&client, "order-42", "record-decision").await;
    assert_eq!(step_status, "completed");
    assert_eq!(output, Some(serde_json::json!("order 42 approved")));
    assert_eq!(
        events(&client, "order-42").await,
        vec![(
            serde_json::json!({"approved": true}),
            true,
            Some("event:approval".to_owned())
        )]
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_back_approval_delivers_nothing() {
    init_tracing();
    let h = Harness::with_registry(local_registry()).await;
    h.spawn_worker(notify_only_worker());
    let mut client = h.db.client().await;
    client.batch_execute(APPROVALS_SQL).await.unwrap();
    h.durable
        .start_typed(
            "order-7",
            "approve-order",
            &Order {
                order_id: "7".into(),
            },
        )
        .await
        .unwrap();
    suspended(&client, "order-7", 1).await;

    let tx = client.transaction().await.unwrap();
    tx.execute(
        "insert into approvals (order_id, approved) values ('7', true)",
        &[],
    )
    .await
    .unwrap();
    // Inside the transaction the event is there and the wait is woken...
    assert_eq!(
        tx.query_one("select count(*) from zart_events", &[])
            .await
            .unwrap()
            .get::<_, i64>(0),
        1,
        "the trigger sent the event in the transaction"
    );
    tx.rollback().await.unwrap();

    // ...and the rollback takes both back.
    assert_eq!(count(&client, "select count(*) from zart_events").await, 0);
    assert_eq!(count(&client, "select count(*) from approvals").await, 0);
    let w = waiting(&client, "order-7").await.expect("still waiting");
    assert_eq!((w.status.as_str(), w.wakes_at), ("waiting", None));
    assert_eq!(w.attempts, 1);

    // A committed rejection then resumes it: the rolled-back approval left nothing behind.
    client
        .execute(
            "insert into approvals (order_id, approved) values ('7', false)",
            &[],
        )
        .await
        .unwrap();
    let done = h.durable.wait("order-7", WAIT).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Completed);
    assert_eq!(done.output, Some(serde_json::json!("order 7 rejected")));
    assert_eq!(done.attempts, 2);
    h.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Start from a trigger.

const ORDERS_SQL: &str = "
    create table orders (id bigint primary key, item text not null, quantity integer not null);
    create function orders_start() returns trigger language plpgsql as $$
    begin
        perform zart_start('order-' || new.id, 'echo', to_jsonb(new));
        return new;
    end
    $$;
    create trigger orders_start after insert on orders
        for each row execute function orders_start();";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_committed_insert_starts_an_execution_from_a_trigger() {
    init_tracing();
    let h = Harness::with_registry(local_registry()).await;
    h.spawn_worker(notify_only_worker());
    let client = h.db.client().await;
    client.batch_execute(ORDERS_SQL).await.unwrap();

    client
        .execute(
            "insert into orders (id, item, quantity) values (7, 'book', 2)",
            &[],
        )
        .await
        .unwrap();
    let done = h.durable.wait("order-7", WAIT).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Completed);
    assert_eq!(done.task_name, "echo");
    let row = serde_json::json!({"id": 7, "item": "book", "quantity": 2});
    assert_eq!(done.input, row);
    assert_eq!(done.output, Some(row));
    assert_eq!(
        count(&client, "select count(*) from zart_executions").await,
        1
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_back_insert_starts_nothing() {
    init_tracing();
    let h = Harness::with_registry(local_registry()).await;
    h.spawn_worker(notify_only_worker());
    let mut client = h.db.client().await;
    client.batch_execute(ORDERS_SQL).await.unwrap();
    let before = count(&client, "select count(*) from zart_executions").await;
    assert_eq!(before, 0);

    let tx = client.transaction().await.unwrap();
    tx.execute(
        "insert into orders (id, item, quantity) values (8, 'lamp', 1)",
        &[],
    )
    .await
    .unwrap();
    assert_eq!(
        tx.query_one(
            "select count(*) from zart_executions where id = 'order-8'",
            &[]
        )
        .await
        .unwrap()
        .get::<_, i64>(0),
        1,
        "the trigger started the execution inside the transaction"
    );
    tx.rollback().await.unwrap();
    assert_eq!(
        count(&client, "select count(*) from zart_executions").await,
        before
    );
    assert_eq!(count(&client, "select count(*) from zart_tasks").await, 0);

    // The next committed insert starts and completes normally; order 8 never existed.
    client
        .execute(
            "insert into orders (id, item, quantity) values (9, 'desk', 1)",
            &[],
        )
        .await
        .unwrap();
    let done = h.durable.wait("order-9", WAIT).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Completed);
    assert!(matches!(
        h.durable.status("order-8").await,
        Err(Error::NotFound { .. })
    ));
    assert_eq!(
        count(&client, "select count(*) from zart_executions").await,
        1
    );
    h.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Worker processes killed while executions sleep or wait.

/// A client for sending events and reading statuses, with no worker in this process.
async fn client_for(db: &TestDb) -> DurableScheduler<zart_pg::PostgresScheduler> {
    let pool = PgPool::connect_lazy(&db.url, 2).unwrap();
    DurableScheduler::new(
        db.scheduler().await,
        Arc::new(tasks::registry(pool.pool().clone())),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_while_an_execution_sleeps_is_replaced_and_the_sleep_ends() {
    init_tracing();
    let db = TestDb::new().await;
    let client = db.client().await;
    client.batch_execute(tasks::SETUP_SQL).await.unwrap();
    let durable = client_for(&db).await;

    let first = spawn_worker_process(WORKER_BIN, &db).await;
    let first_pid = first.id().unwrap() as i32;
    client
        .execute("select zart_start('dozer', 'sleeper', '3600')", &[])
        .await
        .unwrap();
    let w = suspended(&client, "dozer", 1).await;
    assert_eq!(
        (w.status.as_str(), w.wait_kind.as_str()),
        ("sleeping", "sleep")
    );
    kill_process(first).await;

    let second = spawn_worker_process(WORKER_BIN, &db).await;
    let second_pid = second.id().unwrap() as i32;
    advance_past_the_nap(&db, &durable, "dozer").await;
    assert_eq!(
        tasks::side_effect_pids(&client, "dozer", "before").await,
        vec![first_pid]
    );
    assert_eq!(
        tasks::side_effect_pids(&client, "dozer", "after").await,
        vec![second_pid]
    );
    kill_process(second).await;
}

async fn advance_past_the_nap(
    db: &TestDb,
    durable: &DurableScheduler<zart_pg::PostgresScheduler>,
    id: &str,
) {
    db.advance_clock(HOUR + Duration::from_secs(1)).await;
    let done = durable.wait(id, WAIT).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Completed);
    assert_eq!(done.output, Some(serde_json::json!(3600)));
    assert_eq!(done.attempts, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_while_an_execution_waits_gets_the_event_sent_meanwhile() {
    init_tracing();
    let db = TestDb::new().await;
    let client = db.client().await;
    client.batch_execute(tasks::SETUP_SQL).await.unwrap();
    let durable = client_for(&db).await;

    let first = spawn_worker_process(WORKER_BIN, &db).await;
    let first_pid = first.id().unwrap() as i32;
    durable
        .start("patient", "approver", serde_json::json!({"order": 5}))
        .await
        .unwrap();
    let w = suspended(&client, "patient", 1).await;
    assert_eq!(
        (w.status.as_str(), w.wait_kind.as_str()),
        ("waiting", "event")
    );
    kill_process(first).await;

    // No worker runs: the event is stored and the execution made due, nothing more.
    durable
        .send_event(
            "patient",
            "approval",
            &serde_json::json!({"approved": true}),
        )
        .await
        .unwrap();
    assert_eq!(status(&client, "patient").await, "waiting");
    assert_eq!(
        count(
            &client,
            "select count(*) from zart_tasks where execution_id = 'patient'
                and locked_by is null and run_at <= zart_current_time()"
        )
        .await,
        1,
        "the event made the execution due"
    );

    let second = spawn_worker_process(WORKER_BIN, &db).await;
    let second_pid = second.id().unwrap() as i32;
    let done = durable.wait("patient", WAIT).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Completed);
    assert_eq!(done.output, Some(serde_json::json!({"approved": true})));
    assert_eq!(done.attempts, 2);
    assert_eq!(
        tasks::side_effect_pids(&client, "patient", "before").await,
        vec![first_pid]
    );
    assert_eq!(
        tasks::side_effect_pids(&client, "patient", "after").await,
        vec![second_pid]
    );
    kill_process(second).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_consumed_before_a_crash_is_replayed_not_consumed_again() {
    init_tracing();
    let db = TestDb::new().await;
    let client = db.client().await;
    client.batch_execute(tasks::SETUP_SQL).await.unwrap();
    let durable = client_for(&db).await;

    let first = spawn_worker_process(WORKER_BIN, &db).await;
    let first_pid = first.id().unwrap() as i32;
    // Step "after" holds on its first run: the kill lands after the event was consumed.
    durable
        .start(
            "consumer",
            "approver",
            serde_json::json!({"hold_after_ms": 60000}),
        )
        .await
        .unwrap();
    durable
        .send_event("consumer", "approval", &serde_json::json!({"n": 1}))
        .await
        .unwrap();
    wait_for("step after to begin", Duration::from_secs(15), || async {
        (side_effects(&client, "consumer", "after").await == 1).then_some(())
    })
    .await;
    kill_process(first).await;
    let (_, step_status, output) = step_row(&client, "consumer", "event:approval").await;
    assert_eq!(step_status, "completed");
    assert_eq!(output, Some(serde_json::json!({"received": {"n": 1}})));

    // A second event of the same name arrives before the replay.
    durable
        .send_event("consumer", "approval", &serde_json::json!({"n": 2}))
        .await
        .unwrap();
    let second = spawn_worker_process(WORKER_BIN, &db).await;
    let second_pid = second.id().unwrap() as i32;
    let done = durable.wait("consumer", WAIT).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Completed);
    assert_eq!(
        done.output,
        Some(serde_json::json!({"n": 1})),
        "the replay returns the recorded event"
    );
    assert_eq!(
        events(&client, "consumer").await,
        vec![
            (
                serde_json::json!({"n": 1}),
                true,
                Some("event:approval".to_owned())
            ),
            (serde_json::json!({"n": 2}), false, None),
        ]
    );
    assert_eq!(
        tasks::side_effect_pids(&client, "consumer", "before").await,
        vec![first_pid]
    );
    // Only the step in flight at the kill ran again.
    assert_eq!(
        tasks::side_effect_pids(&client, "consumer", "after").await,
        vec![first_pid, second_pid]
    );
    kill_process(second).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_name_of_255_bytes_can_be_sent_and_waited_for() {
    init_tracing();
    let h = Harness::with_registry(local_registry()).await;
    let name = "e".repeat(255);
    let input = WaitInput {
        event: name.clone(),
        timeout_secs: None,
    };
    h.durable
        .start_typed("long-name", "waiter", &input)
        .await
        .unwrap();
    // Accepted: 255 bytes is within the documented limit for event names.
    h.durable
        .send_event("long-name", &name, &serde_json::json!(1))
        .await
        .unwrap();
    h.spawn_worker(WorkerConfig::default());
    let done = h.durable.wait("long-name", WAIT).await.unwrap();
    assert_eq!(
        (done.status, done.error.map(|e| e.message)),
        (ExecutionStatus::Completed, None),
        "the event sent under a valid name is delivered"
    );
    assert_eq!(done.output, Some(serde_json::json!({"received": 1})));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_timeout_over_the_limit_fails_the_execution_naming_it() {
    init_tracing();
    let h = Harness::with_registry(local_registry()).await;
    h.spawn_worker(WorkerConfig::default().with_lease_duration(Duration::from_secs(1)));
    let client = h.db.client().await;
    let input = WaitInput {
        event: "approval".into(),
        // Duration::from_secs(u64::MAX): "practically forever".
        timeout_secs: Some(u64::MAX),
    };
    h.durable
        .start_typed("forever", "waiter", &input)
        .await
        .unwrap();
    // Refused with a clear error, not abandoned and claimed again and again.
    assert_fails_over_the_limit(&h, &client, "waiting", "event timeout").await;
    h.stop().await;
}

/// Waits until "forever" settles (in `waiting_status`, or failed) and checks it failed with
/// the 100-year limit of `field`.
async fn assert_fails_over_the_limit(
    h: &Harness,
    client: &tokio_postgres::Client,
    waiting_status: &str,
    field: &str,
) {
    let settled = wait_for(
        "the execution to settle",
        Duration::from_secs(10),
        || async {
            let s = status(client, "forever").await;
            (s == waiting_status || s == "failed").then_some(s)
        },
    )
    .await;
    assert_eq!(settled, "failed");
    let error = h.durable.status("forever").await.unwrap().error.unwrap();
    assert!(
        error.message.starts_with(&format!("invalid {field}: "))
            && error.message.ends_with("is over the limit of 100 years"),
        "{}",
        error.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sleep_over_the_limit_fails_the_execution_naming_it() {
    init_tracing();
    let h = Harness::new().await;
    h.spawn_worker(WorkerConfig::default().with_lease_duration(Duration::from_secs(1)));
    let client = h.db.client().await;
    h.durable
        .start("forever", "sleeper", serde_json::json!(u64::MAX))
        .await
        .unwrap();
    assert_fails_over_the_limit(&h, &client, "sleeping", "sleep").await;
    h.stop().await;
}

/// EventOutcome::TimedOut means "the timeout passed first": the timeout passes (10 min) before
/// the event is sent (at 11 min), and no worker looks at the wait in between; the late event
/// still does not count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_sent_after_the_timeout_does_not_count_even_if_no_worker_ran() {
    init_tracing();
    let h = Harness::with_registry(local_registry()).await;
    let first = h.spawn_worker(WorkerConfig::default());
    let client = h.db.client().await;
    let input = WaitInput {
        event: "approval".into(),
        timeout_secs: Some(600),
    };
    h.durable
        .start_typed("late", "waiter", &input)
        .await
        .unwrap();
    suspended(&client, "late", 1).await;
    first.shutdown();
    h.db.advance_clock(11 * MINUTE).await;
    h.durable
        .send_event("late", "approval", &serde_json::json!("late"))
        .await
        .unwrap();
    h.spawn_worker(WorkerConfig::default());
    let done = h.durable.wait("late", WAIT).await.unwrap();
    assert_eq!(done.output, Some(serde_json::json!({"timed_out": true})));
    h.stop().await;
}
