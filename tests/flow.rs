//! Flow primitives on a real PostgreSQL: parallel steps, child workflows, cancellation and
//! step timeouts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::{Barrier, Semaphore};
use zart::error::BoxError;
use zart::scheduler::{
    ClaimTasksParams, ClaimedTask, CommitStepParams, CompleteExecutionParams, HeartbeatParams,
    Outcome, ReleaseTasksParams, StartChildParams, StepStatus,
};
use zart::{
    Error, ExecutionStatus, FailureKind, Parallel, RetryConfig, Scheduler, TaskContext, TaskError,
    TaskHandler, TaskRegistry, WorkerConfig,
};
use zart_pg::PostgresScheduler;
use zart_tests::{column, count, init_tracing, tasks, wait_for, Harness};

const WAIT: Option<Duration> = Some(Duration::from_secs(30));
const CONDITION: Duration = Duration::from_secs(20);
const HOUR: Duration = Duration::from_secs(3600);

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn counters(n: usize) -> Arc<Vec<AtomicU32>> {
    Arc::new((0..n).map(|_| AtomicU32::new(0)).collect())
}

fn loads(counters: &[AtomicU32]) -> Vec<u32> {
    counters.iter().map(|c| c.load(Ordering::SeqCst)).collect()
}

/// The status column of an execution, if it exists.
async fn status_of(client: &tokio_postgres::Client, id: &str) -> Option<String> {
    client
        .query_opt(
            "select status from zart_execution_status where id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .map(|r| r.get(0))
}

/// Waits until execution `id` has the status `status`.
async fn wait_status(client: &tokio_postgres::Client, id: &str, status: &str) {
    wait_for(&format!("{id:?} to be {status}"), CONDITION, || async {
        (status_of(client, id).await.as_deref() == Some(status)).then_some(())
    })
    .await;
}

/// `(name, seq, kind, status, attempts)` of every step of an execution, in call order.
async fn steps_of(
    client: &tokio_postgres::Client,
    id: &str,
) -> Vec<(String, i32, String, String, i32)> {
    client
        .query(
            "select name, seq, kind, status, attempts from zart_steps
              where execution_id = $1 order by seq",
            &[&id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect()
}

fn step_row(
    name: &str,
    seq: i32,
    kind: &str,
    status: &str,
    attempts: i32,
) -> (String, i32, String, String, i32) {
    (name.into(), seq, kind.into(), status.into(), attempts)
}

/// Claims as a fake worker (one that will "crash" instead of running the handler).
async fn fake_claim(scheduler: &PostgresScheduler, task: &str) -> ClaimedTask {
    let mut claimed = scheduler
        .claim_tasks(ClaimTasksParams {
            worker_id: "fake-worker".into(),
            queue: "default".into(),
            task_names: vec![task.into()],
            limit: 1,
            lease: Duration::from_secs(60),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1, "the fake worker claims the execution");
    claimed.remove(0)
}

async fn fake_commit(
    scheduler: &PostgresScheduler,
    task: &ClaimedTask,
    name: &str,
    seq: u32,
    output: serde_json::Value,
) -> Result<(), Error> {
    scheduler
        .commit_step(CommitStepParams {
            lease: task.lease.clone(),
            name: name.into(),
            seq,
            status: StepStatus::Completed,
            output: Some(output),
            error: None,
            attempts: 1,
        })
        .await
}

async fn fake_release(scheduler: &PostgresScheduler, task: &ClaimedTask) {
    let released = scheduler
        .release_tasks(ReleaseTasksParams {
            worker_id: "fake-worker".into(),
            queue: "default".into(),
            leases: vec![task.lease.clone()],
        })
        .await
        .unwrap();
    assert_eq!(released, 1);
}

// ---------------------------------------------------------------------------------------------
// Parallel steps
// ---------------------------------------------------------------------------------------------

/// Meets the other body at the barrier, or fails if it never comes (bodies run one by one).
async fn meet(barrier: &Barrier) -> Result<(), io::Error> {
    tokio::time::timeout(Duration::from_secs(10), barrier.wait())
        .await
        .map(|_| ())
        .map_err(|_| io::Error::other("the other body never reached the barrier"))
}

/// Two bodies that can only finish together (a two-party barrier); "second" then finishes
/// before "first". One plain step follows.
struct Rendezvous {
    barrier: Arc<Barrier>,
}

#[async_trait]
impl TaskHandler for Rendezvous {
    type Data = ();
    type Output = Vec<String>;

    async fn run(
        &self,
        ctx: &mut TaskContext<impl Scheduler>,
        _: (),
    ) -> Result<Vec<String>, TaskError> {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (b1, b2) = (self.barrier.clone(), self.barrier.clone());
        let mut results = ctx
            .wait_all(
                Parallel::new()
                    .step("first", move || async move {
                        meet(&b1).await?;
                        // Ends only once "second" has ended.
                        rx.await
                            .map_err(|_| io::Error::other("second ended without a word"))?;
                        Ok::<_, io::Error>("first".to_owned())
                    })
                    .step("second", move || async move {
                        meet(&b2).await?;
                        let _ = tx.send(());
                        Ok::<_, io::Error>("second".to_owned())
                    }),
            )
            .await?;
        let after = ctx
            .step("after", || async { Ok::<_, io::Error>("after".to_owned()) })
            .await?;
        results.push(after);
        Ok(results)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_bodies_run_concurrently_and_return_in_added_order() {
    init_tracing();
    let mut registry = TaskRegistry::new();
    registry
        .register(
            "rendezvous",
            Rendezvous {
                barrier: Arc::new(Barrier::new(2)),
            },
        )
        .unwrap();
    let h = Harness::with_registry(registry).await;
    h.spawn_worker(WorkerConfig::default());
    h.durable
        .start_typed("meet-1", "rendezvous", &())
        .await
        .unwrap();

    let done = h.durable.wait("meet-1", WAIT).await.unwrap();
    assert_eq!(
        done.status,
        ExecutionStatus::Completed,
        "a sequential wait_all deadlocks at the barrier: {:?}",
        done.error
    );
    assert_eq!(done.output, Some(json!(["first", "second", "after"])));

    let client = h.db.client().await;
    assert_eq!(
        steps_of(&client, "meet-1").await,
        vec![
            step_row("first", 0, "step", "completed", 1),
            step_row("second", 1, "step", "completed", 1),
            step_row("after", 2, "step", "completed", 1),
        ]
    );
    let outputs: Vec<serde_json::Value> = column(
        &client,
        "select output from zart_steps where execution_id = 'meet-1' order by seq",
        &[],
    )
    .await;
    assert_eq!(
        outputs,
        vec![json!("first"), json!("second"), json!("after")]
    );
    h.stop().await;
}

/// Three parallel bodies; body `i` returns `10 * (i + 1)` and counts its runs in `runs[i]`.
struct Fanout {
    runs: Arc<Vec<AtomicU32>>,
}

#[async_trait]
impl TaskHandler for Fanout {
    type Data = ();
    type Output = Vec<u32>;

    async fn run(
        &self,
        ctx: &mut TaskContext<impl Scheduler>,
        _: (),
    ) -> Result<Vec<u32>, TaskError> {
        let mut parallel = Parallel::new();
        for i in 0..3u32 {
            let runs = self.runs.clone();
            parallel = parallel.step(format!("p{i}"), move || async move {
                runs[i as usize].fetch_add(1, Ordering::SeqCst);
                Ok::<_, io::Error>(10 * (i + 1))
            });
        }
        ctx.wait_all(parallel).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_steps_are_each_recorded_and_run_once() {
    init_tracing();
    let runs = counters(3);
    let mut registry = TaskRegistry::new();
    registry
        .register("fanout", Fanout { runs: runs.clone() })
        .unwrap();
    let h = Harness::with_registry(registry).await;
    h.spawn_worker(WorkerConfig::default());
    h.durable.start_typed("fan-1", "fanout", &()).await.unwrap();
    let done = h.durable.wait("fan-1", WAIT).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Completed, "{:?}", done.error);
    assert_eq!(done.output, Some(json!([10, 20, 30])));
    assert_eq!(loads(&runs), vec![1, 1, 1]);
    let client = h.db.client().await;
    assert_eq!(
        steps_of(&client, "fan-1").await,
        vec![
            step_row("p0", 0, "step", "completed", 1),
            step_row("p1", 1, "step", "completed", 1),
            step_row("p2", 2, "step", "completed", 1),
        ]
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_crash_only_the_unfinished_parallel_steps_run_again() {
    init_tracing();
    let runs = counters(3);
    let mut registry = TaskRegistry::new();
    registry
        .register("fanout", Fanout { runs: runs.clone() })
        .unwrap();
    let h = Harness::with_registry(registry).await;
    let (db, durable, scheduler) = (&h.db, &h.durable, &h.scheduler);
    durable
        .start_typed("fan-crash", "fanout", &())
        .await
        .unwrap();

    // A first run recorded p0 and p2 (with values the bodies would not return now), then died.
    let claimed = fake_claim(scheduler, "fanout").await;
    fake_commit(scheduler, &claimed, "p0", 0, json!(100))
        .await
        .unwrap();
    fake_commit(scheduler, &claimed, "p2", 2, json!(300))
        .await
        .unwrap();
    fake_release(scheduler, &claimed).await;

    h.spawn_worker(WorkerConfig::default());
    let done = durable.wait("fan-crash", WAIT).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Completed, "{:?}", done.error);
    assert_eq!(
        done.output,
        Some(json!([100, 20, 300])),
        "recorded steps return their recorded values; only p1 ran"
    );
    assert_eq!(loads(&runs), vec![0, 1, 0], "only the unfinished body ran");
    assert_eq!(done.attempts, 2);

    let client = db.client().await;
    assert_eq!(
        steps_of(&client, "fan-crash").await,
        vec![
            step_row("p0", 0, "step", "completed", 1),
            step_row("p1", 1, "step", "completed", 1),
            step_row("p2", 2, "step", "completed", 1),
        ]
    );
    h.stop().await;
}

/// Four parallel bodies: ok, panics, fails, ok. With `handle` the workflow returns the failure
/// it got as its output; without, it propagates it.
struct Mixed {
    runs: Arc<Vec<AtomicU32>>,
}

#[async_trait]
impl TaskHandler for Mixed {
    type Data = bool;
    type Output = serde_json::Value;

    async fn run(
        &self,
        ctx: &mut TaskContext<impl Scheduler>,
        handle: bool,
    ) -> Result<serde_json::Value, TaskError> {
        let r = self.runs.clone();
        let (r0, r1, r2, r3) = (r.clone(), r.clone(), r.clone(), r);
        // Always true; a runtime value keeps the code after the panic reachable.
        let explode = !ctx.execution_id().is_empty();
        let result = ctx
            .wait_all(
                Parallel::new()
                    .step("ok-a", move || async move {
                        r0[0].fetch_add(1, Ordering::SeqCst);
                        Ok::<u32, io::Error>(1)
                    })
                    .step("boom", move || async move {
                        r1[1].fetch_add(1, Ordering::SeqCst);
                        if explode {
                            panic!("exploded");
                        }
                        Ok::<u32, io::Error>(2)
                    })
                    .step("bad", move || async move {
                        r2[2].fetch_add(1, Ordering::SeqCst);
                        Err::<u32, io::Error>(io::Error::other("card declined"))
                    })
                    .step("ok-b", move || async move {
                        r3[3].fetch_add(1, Ordering::SeqCst);
                        Ok::<u32, io::Error>(4)
                    }),
            )
            .await;
        if !handle {
            return Ok(json!(result?));
        }
        match result {
            Err(TaskError::StepFailed {
                step,
                message,
                attempts,
                kind,
                ..
            }) => Ok(json!({
                "step": step, "message": message, "attempts": attempts, "kind": kind.as_str()
            })),
            Err(other) => Err(other),
            Ok(values) => Err(TaskError::failed(format!(
                "expected a failure, got {values:?}"
            ))),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_parallel_step_keeps_its_kind_and_the_others_are_recorded() {
    init_tracing();
    let runs = counters(4);
    let mut registry = TaskRegistry::new();
    registry
        .register("mixed", Mixed { runs: runs.clone() })
        .unwrap();
    let h = Harness::with_registry(registry).await;
    h.spawn_worker(WorkerConfig::default());
    let (db, durable) = (&h.db, &h.durable);

    // Handled: the first failure in added order is "boom", a panic.
    durable
        .start_typed("mixed-handled", "mixed", &true)
        .await
        .unwrap();
    let done = durable.wait("mixed-handled", WAIT).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Completed, "{:?}", done.error);
    assert_eq!(
        done.output,
        Some(json!({
            "step": "boom",
            "message": "step panicked: exploded",
            "attempts": 1,
            "kind": "panic",
        }))
    );
    assert_eq!(loads(&runs), vec![1, 1, 1, 1], "every body ran, once");

    let client = db.client().await;
    let rows = |id: &'static str| {
        let client = &client;
        async move {
            client
                .query(
                    "select name, seq, status, output, error->>'kind', error->>'message'
                       from zart_steps where execution_id = $1 order by seq",
                    &[&id],
                )
                .await
                .unwrap()
                .iter()
                .map(|r| {
                    (
                        r.get::<_, String>(0),
                        r.get::<_, i32>(1),
                        r.get::<_, String>(2),
                        r.get::<_, Option<serde_json::Value>>(3),
                        r.get::<_, Option<String>>(4),
                        r.get::<_, Option<String>>(5),
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    let expected = vec![
        (
            "ok-a".to_owned(),
            0,
            "completed".to_owned(),
            Some(json!(1)),
            None,
            None,
        ),
        (
            "boom".to_owned(),
            1,
            "failed".to_owned(),
            None,
            Some("panic".to_owned()),
            Some("step panicked: exploded".to_owned()),
        ),
        (
            "bad".to_owned(),
            2,
            "failed".to_owned(),
            None,
            Some("step_failed".to_owned()),
            Some("card declined".to_owned()),
        ),
        (
            "ok-b".to_owned(),
            3,
            "completed".to_owned(),
            Some(json!(4)),
            None,
            None,
        ),
    ];
    assert_eq!(rows("mixed-handled").await, expected);

    // Propagated: the execution fails with the panic's kind, step and message.
    durable
        .start_typed("mixed-propagated", "mixed", &false)
        .await
        .unwrap();
    let failed = durable.wait("mixed-propagated", WAIT).await.unwrap();
    assert_eq!(failed.status, ExecutionStatus::Failed);
    let error = failed.error.unwrap();
    assert_eq!(error.kind, "panic");
    assert_eq!(error.step.as_deref(), Some("boom"));
    assert_eq!(error.message, "step panicked: exploded");
    assert_eq!(error.attempts, Some(1));
    assert_eq!(rows("mixed-propagated").await, expected);
    assert_eq!(loads(&runs), vec![2, 2, 2, 2]);
    h.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Child workflows
// ---------------------------------------------------------------------------------------------

/// Child: doubles its input in one step, counting runs.
struct Double {
    runs: Arc<AtomicU32>,
}

#[async_trait]
impl TaskHandler for Double {
    type Data = u32;
    type Output = u32;

    async fn run(&self, ctx: &mut TaskContext<impl Scheduler>, n: u32) -> Result<u32, TaskError> {
        let runs = self.runs.clone();
        ctx.step("double", || async move {
            runs.fetch_add(1, Ordering::SeqCst);
            Ok::<_, io::Error>(n * 2)
        })
        .await
    }
}

/// Child: doubles its input once the test opens the gate; counts the bodies that started.
struct Gated {
    started: Arc<AtomicU32>,
    gate: Arc<Semaphore>,
}

#[async_trait]
impl TaskHandler for Gated {
    type Data = u32;
    type Output = u32;

    async fn run(&self, ctx: &mut TaskContext<impl Scheduler>, n: u32) -> Result<u32, TaskError> {
        let (started, gate) = (self.started.clone(), self.gate.clone());
        ctx.step("work", || async move {
            started.fetch_add(1, Ordering::SeqCst);
            let _permit = gate.acquire().await?;
            Ok::<_, BoxError>(n * 2)
        })
        .await
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct ParentInput {
    task: String,
    n: u32,
}

/// Parent: step "before" (returns 1), child "kid" of `task` with `n`, step "after" (sum).
struct Parent {
    before_runs: Arc<AtomicU32>,
}

#[async_trait]
impl TaskHandler for Parent {
    type Data = ParentInput;
    type Output = u32;

    async fn run(
        &self,
        ctx: &mut TaskContext<impl Scheduler>,
        data: ParentInput,
    ) -> Result<u32, TaskError> {
        let before_runs = self.before_runs.clone();
        let before: u32 = ctx
            .step("before", || async move {
                before_runs.fetch_add(1, Ordering::SeqCst);
                Ok::<_, io::Error>(1)
            })
            .await?;
        let child: u32 = ctx.child("kid", &data.task, &data.n).await?;
        ctx.step(
            "after",
            || async move { Ok::<_, io::Error>(child + before) },
        )
        .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_parent_holds_no_slot_and_gets_the_child_output() {
    init_tracing();
    let started = Arc::new(AtomicU32::new(0));
    let gate = Arc::new(Semaphore::new(0));
    let before_runs = Arc::new(AtomicU32::new(0));
    let mut registry = TaskRegistry::new();
    registry
        .register(
            "parent",
            Parent {
                before_runs: before_runs.clone(),
            },
        )
        .unwrap()
        .register(
            "gated",
            Gated {
                started: started.clone(),
                gate: gate.clone(),
            },
        )
        .unwrap();
    let h = Harness::with_registry(registry).await;
    // One slot: the child can only run if the waiting parent gave its slot up.
    h.spawn_worker(WorkerConfig::default().with_concurrency(1));
    let (db, durable) = (&h.db, &h.durable);
    let input = ParentInput {
        task: "gated".into(),
        n: 21,
    };
    durable
        .start_typed("order-7", "parent", &input)
        .await
        .unwrap();

    wait_for("the child to start", CONDITION, || async {
        (started.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await;
    let client = db.client().await;
    let parent = client
        .query_one(
            "select e.status, t.wait_kind, t.wait_name, t.locked_by
               from zart_executions e join zart_tasks t on t.execution_id = e.id
              where e.id = 'order-7'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(parent.get::<_, String>(0), "waiting");
    assert_eq!(parent.get::<_, Option<String>>(1).as_deref(), Some("child"));
    assert_eq!(
        parent.get::<_, Option<String>>(2).as_deref(),
        Some("order-7/kid")
    );
    assert_eq!(
        parent.get::<_, Option<String>>(3),
        None,
        "the parent holds no lease"
    );
    let child = client
        .query_one(
            "select task_name, parent_id, input, status from zart_execution_status where id = 'order-7/kid'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(child.get::<_, String>(0), "gated");
    assert_eq!(
        child.get::<_, Option<String>>(1).as_deref(),
        Some("order-7")
    );
    assert_eq!(child.get::<_, serde_json::Value>(2), json!(21));
    assert_eq!(child.get::<_, String>(3), "running");

    gate.add_permits(1);
    let done = durable.wait("order-7", WAIT).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Completed, "{:?}", done.error);
    assert_eq!(done.output, Some(json!(43)));
    assert_eq!(
        done.attempts, 2,
        "claimed once to start the child, once after it"
    );
    let kid = durable.status("order-7/kid").await.unwrap();
    assert_eq!(kid.status, ExecutionStatus::Completed);
    assert_eq!(kid.output, Some(json!(42)));
    assert_eq!(started.load(Ordering::SeqCst), 1);
    assert_eq!(before_runs.load(Ordering::SeqCst), 1);
    assert_eq!(
        steps_of(&client, "order-7").await,
        vec![
            step_row("before", 0, "step", "completed", 1),
            step_row("kid", 1, "child", "completed", 1),
            step_row("after", 2, "step", "completed", 1),
        ]
    );
    assert_eq!(
        count(
            &client,
            "select count(*) from zart_executions where parent_id = 'order-7'"
        )
        .await,
        1
    );
    assert_eq!(count(&client, "select count(*) from zart_tasks").await, 0);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_a_parent_reuses_the_child_it_started() {
    init_tracing();
    let doubles = Arc::new(AtomicU32::new(0));
    let before_runs = Arc::new(AtomicU32::new(0));
    let mut registry = TaskRegistry::new();
    registry
        .register(
            "parent",
            Parent {
                before_runs: before_runs.clone(),
            },
        )
        .unwrap()
        .register(
            "double",
            Double {
                runs: doubles.clone(),
            },
        )
        .unwrap();
    let h = Harness::with_registry(registry).await;
    let (db, durable, scheduler) = (&h.db, &h.durable, &h.scheduler);
    let input = ParentInput {
        task: "double".into(),
        n: 21,
    };
    durable
        .start_typed("p-crash", "parent", &input)
        .await
        .unwrap();

    // A first run recorded "before" as 5 and started the child, then its process died.
    let claimed = fake_claim(scheduler, "parent").await;
    fake_commit(scheduler, &claimed, "before", 0, json!(5))
        .await
        .unwrap();
    let wait = scheduler
        .start_child(StartChildParams {
            lease: claimed.lease.clone(),
            name: "kid".into(),
            seq: 1,
            child_id: "p-crash/kid".into(),
            task_name: "double".into(),
            input: json!(21),
            queue: "default".into(),
            detached: false,
        })
        .await
        .unwrap();
    assert_eq!(wait, zart::scheduler::ChildWait::Waiting);

    h.spawn_worker(WorkerConfig::default());
    let done = durable.wait("p-crash", WAIT).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Completed, "{:?}", done.error);
    assert_eq!(
        done.output,
        Some(json!(47)),
        "42 from the child + 5 recorded"
    );
    assert_eq!(
        before_runs.load(Ordering::SeqCst),
        0,
        "\"before\" was replayed"
    );
    assert_eq!(doubles.load(Ordering::SeqCst), 1, "the child ran once");

    let client = db.client().await;
    assert_eq!(
        count(
            &client,
            "select count(*) from zart_executions where parent_id = 'p-crash'"
        )
        .await,
        1,
        "exactly one child"
    );
    assert_eq!(
        count(&client, "select count(*) from zart_executions").await,
        2,
        "the parent and its one child"
    );
    let kid = durable.status("p-crash/kid").await.unwrap();
    assert_eq!(kid.status, ExecutionStatus::Completed);
    assert_eq!(kid.attempts, 1);
    assert_eq!(
        steps_of(&client, "p-crash").await,
        vec![
            step_row("before", 0, "step", "completed", 1),
            step_row("kid", 1, "child", "completed", 1),
            step_row("after", 2, "step", "completed", 1),
        ]
    );

    // Running the same parent id again is a no-op: no new child either.
    let again = durable
        .start_typed("p-crash", "parent", &input)
        .await
        .unwrap();
    assert!(!again.created);
    assert_eq!(
        count(&client, "select count(*) from zart_executions").await,
        2
    );
    h.stop().await;
}

/// Child: its one step fails with "card declined" (whatever its input).
struct Fails;

#[async_trait]
impl TaskHandler for Fails {
    type Data = serde_json::Value;
    type Output = u32;

    async fn run(
        &self,
        ctx: &mut TaskContext<impl Scheduler>,
        _: serde_json::Value,
    ) -> Result<u32, TaskError> {
        ctx.step("charge", || async {
            Err::<u32, _>(io::Error::other("card declined"))
        })
        .await
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct HandlesInput {
    task: String,
    input: serde_json::Value,
    /// Sleep an hour at the end (so the whole run is replayed once more).
    nap: bool,
}

impl HandlesInput {
    fn new(task: &str, input: serde_json::Value) -> Self {
        HandlesInput {
            task: task.into(),
            input,
            nap: false,
        }
    }
}

/// Parent: runs child "kid"; a failed child (kind `Child`) is handled and a step "fallback"
/// runs. Every run notes the child outcome it saw (or the error it propagated).
struct Handles {
    seen: Arc<Mutex<Vec<String>>>,
}

#[async_trait]
impl TaskHandler for Handles {
    type Data = HandlesInput;
    type Output = serde_json::Value;

    async fn run(
        &self,
        ctx: &mut TaskContext<impl Scheduler>,
        data: HandlesInput,
    ) -> Result<serde_json::Value, TaskError> {
        let child = ctx
            .child::<_, serde_json::Value>("kid", &data.task, &data.input)
            .await;
        let outcome = match child {
            Ok(value) => json!({ "ok": value }),
            Err(TaskError::StepFailed {
                step,
                message,
                kind: FailureKind::Child,
                ..
            }) => json!({ "step": step, "message": message }),
            Err(other) => {
                self.seen.lock().unwrap().push(other.kind().to_owned());
                return Err(other);
            }
        };
        self.seen.lock().unwrap().push(outcome.to_string());
        let fallback = ctx
            .step("fallback", || async {
                Ok::<_, io::Error>("refund issued".to_owned())
            })
            .await?;
        if data.nap {
            ctx.sleep("nap", HOUR).await?;
        }
        Ok(json!({ "child": outcome, "fallback": fallback }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_child_fails_the_parent_step_with_its_message_and_can_be_handled() {
    init_tracing();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut registry = TaskRegistry::new();
    registry
        .register("handles", Handles { seen: seen.clone() })
        .unwrap()
        .register("fails", Fails)
        .unwrap();
    let h = Harness::with_registry(registry).await;
    h.spawn_worker(WorkerConfig::default());
    let (db, durable) = (&h.db, &h.durable);
    durable
        .start_typed(
            "checkout-1",
            "handles",
            &HandlesInput::new("fails", json!(null)),
        )
        .await
        .unwrap();
    let done = durable.wait("checkout-1", WAIT).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Completed, "{:?}", done.error);
    assert_eq!(
        done.output,
        Some(json!({
            "child": { "step": "kid", "message": "card declined" },
            "fallback": "refund issued",
        }))
    );
    let kid = durable.status("checkout-1/kid").await.unwrap();
    assert_eq!(kid.status, ExecutionStatus::Failed);
    let kid_error = kid.error.unwrap();
    assert_eq!(kid_error.message, "card declined");
    assert_eq!(kid_error.step.as_deref(), Some("charge"));

    let client = db.client().await;
    assert_eq!(
        steps_of(&client, "checkout-1").await,
        vec![
            step_row("kid", 0, "child", "failed", 1),
            step_row("fallback", 1, "step", "completed", 1),
        ]
    );
    // First run: suspended (not handled); second: the child's failure, handled.
    assert_eq!(
        *seen.lock().unwrap(),
        vec![
            "suspended".to_owned(),
            json!({ "step": "kid", "message": "card declined" }).to_string()
        ]
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unhandled_child_failure_fails_the_parent_with_kind_child_failed() {
    init_tracing();
    let mut registry = TaskRegistry::new();
    registry
        .register(
            "parent",
            Parent {
                before_runs: Arc::default(),
            },
        )
        .unwrap()
        .register("fails", Fails)
        .unwrap();
    let h = Harness::with_registry(registry).await;
    h.spawn_worker(WorkerConfig::default());
    let durable = &h.durable;
    let input = ParentInput {
        task: "fails".into(),
        n: 0,
    };
    durable
        .start_typed("unhandled-1", "parent", &input)
        .await
        .unwrap();
    let done = durable.wait("unhandled-1", WAIT).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Failed);
    let error = done.error.unwrap();
    assert_eq!(error.kind, "child_failed");
    assert_eq!(error.step.as_deref(), Some("kid"));
    assert_eq!(error.message, "card declined");
    assert_eq!(error.attempts, Some(1));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_child_fails_the_waiting_parent_step_with_kind_child() {
    init_tracing();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let woke = Arc::new(AtomicU32::new(0));
    let mut registry = TaskRegistry::new();
    registry
        .register("handles", Handles { seen: seen.clone() })
        .unwrap()
        .register("nest", Nest { woke: woke.clone() })
        .unwrap();
    let h = Harness::with_registry(registry).await;
    h.spawn_worker(WorkerConfig::default());
    let (db, durable) = (&h.db, &h.durable);
    let input = HandlesInput {
        nap: true,
        ..HandlesInput::new("nest", json!(0))
    };
    durable
        .start_typed("checkout-2", "handles", &input)
        .await
        .unwrap();
    let client = db.client().await;
    wait_status(&client, "checkout-2/kid", "sleeping").await;
    wait_status(&client, "checkout-2", "waiting").await;

    let cancelled = durable.cancel("checkout-2/kid").await.unwrap();
    assert_eq!(
        cancelled,
        vec!["checkout-2/kid".to_owned()],
        "the parent is not cancelled"
    );
    // The parent wakes, handles the failure, and naps; after the nap it is replayed again.
    wait_status(&client, "checkout-2", "sleeping").await;
    db.advance_clock(2 * HOUR).await;
    let done = durable.wait("checkout-2", WAIT).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Completed, "{:?}", done.error);
    let handled = json!({ "step": "kid", "message": "execution was cancelled" });
    assert_eq!(
        done.output,
        Some(json!({ "child": handled, "fallback": "refund issued" }))
    );
    assert_eq!(
        *seen.lock().unwrap(),
        vec![
            "suspended".to_owned(),
            handled.to_string(),
            handled.to_string()
        ]
    );
    assert_eq!(
        status_of(&client, "checkout-2/kid").await.as_deref(),
        Some("cancelled")
    );
    assert_eq!(
        woke.load(Ordering::SeqCst),
        0,
        "the cancelled child never woke"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handled_child_failure_replays_as_the_same_failure() {
    init_tracing();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut registry = TaskRegistry::new();
    registry
        .register("handles", Handles { seen: seen.clone() })
        .unwrap()
        .register("fails", Fails)
        .unwrap();
    let h = Harness::with_registry(registry).await;
    h.spawn_worker(WorkerConfig::default());
    let (db, durable) = (&h.db, &h.durable);
    let input = HandlesInput {
        nap: true,
        ..HandlesInput::new("fails", json!(null))
    };
    durable
        .start_typed("checkout-3", "handles", &input)
        .await
        .unwrap();
    let client = db.client().await;
    wait_status(&client, "checkout-3", "sleeping").await;
    // The nap ends: the third run replays the failed child step from its record.
    db.advance_clock(2 * HOUR).await;
    let done = durable.wait("checkout-3", WAIT).await.unwrap();
    let handled = json!({ "step": "kid", "message": "card declined" });
    assert_eq!(
        *seen.lock().unwrap(),
        vec![
            "suspended".to_owned(),
            handled.to_string(),
            handled.to_string()
        ],
        "the replay must see the failure the first observation saw"
    );
    assert_eq!(done.status, ExecutionStatus::Completed, "{:?}", done.error);
    assert_eq!(
        done.output,
        Some(json!({ "child": handled, "fallback": "refund issued" }))
    );
    let row = client
        .query_one(
            "select status, error->>'kind', error->>'step', error->>'message' from zart_steps
              where execution_id = 'checkout-3' and name = 'kid'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "failed");
    assert_eq!(row.get::<_, String>(1), "child_failed");
    assert_eq!(row.get::<_, String>(2), "kid");
    assert_eq!(row.get::<_, String>(3), "card declined");
    h.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Cancellation
// ---------------------------------------------------------------------------------------------

/// At depth 0: sleeps an hour, then a counted step. Above: runs child "kid" at depth - 1.
struct Nest {
    woke: Arc<AtomicU32>,
}

#[async_trait]
impl TaskHandler for Nest {
    type Data = u32;
    type Output = u32;

    async fn run(
        &self,
        ctx: &mut TaskContext<impl Scheduler>,
        depth: u32,
    ) -> Result<u32, TaskError> {
        if depth == 0 {
            ctx.sleep("nap", HOUR).await?;
            let woke = self.woke.clone();
            return ctx
                .step("woke", || async move {
                    woke.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, io::Error>(0)
                })
                .await;
        }
        let below: u32 = ctx.child("kid", "nest", &(depth - 1)).await?;
        Ok(below + 1)
    }
}

fn nest_registry(woke: &Arc<AtomicU32>) -> TaskRegistry {
    let mut registry = TaskRegistry::new();
    registry
        .register("nest", Nest { woke: woke.clone() })
        .unwrap()
        .register("echo", tasks::Echo)
        .unwrap();
    registry
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_sleeping_execution_ends_it_at_once() {
    init_tracing();
    let woke = Arc::new(AtomicU32::new(0));
    let h = Harness::with_registry(nest_registry(&woke)).await;
    h.spawn_worker(WorkerConfig::default());
    let (db, durable) = (&h.db, &h.durable);
    durable.start_typed("napper", "nest", &0u32).await.unwrap();
    let client = db.client().await;
    wait_status(&client, "napper", "sleeping").await;

    let waiter = tokio::spawn({
        let durable = durable.clone();
        async move { durable.wait("napper", WAIT).await }
    });
    let cancelled = durable.cancel("napper").await.unwrap();
    assert_eq!(cancelled, vec!["napper".to_owned()]);

    let status = durable.status("napper").await.unwrap();
    assert_eq!(status.status, ExecutionStatus::Cancelled);
    let error = status.error.clone().unwrap();
    assert_eq!(error.kind, "cancelled");
    assert!(status.finished_at.is_some());
    assert_eq!(
        count(
            &client,
            "select count(*) from zart_tasks where execution_id = 'napper'"
        )
        .await,
        0,
        "the task row is gone"
    );
    let waited = waiter.await.unwrap().unwrap();
    assert_eq!(waited.status, ExecutionStatus::Cancelled);

    // Even once the hour has passed, the sleep never resumes.
    db.advance_clock(2 * HOUR).await;
    durable.start("marker", "echo", json!(1)).await.unwrap();
    assert_eq!(
        durable.wait("marker", WAIT).await.unwrap().status,
        ExecutionStatus::Completed
    );
    assert_eq!(woke.load(Ordering::SeqCst), 0);
    assert_eq!(
        durable.status("napper").await.unwrap().status,
        ExecutionStatus::Cancelled
    );
    assert_eq!(
        steps_of(&client, "napper").await,
        vec![step_row("nap", 0, "sleep", "waiting", 0)]
    );
    h.stop().await;
}

/// Step "first", then step "long" (waits for the gate), then step "third"; all counted.
struct Long {
    started: Arc<AtomicU32>,
    finished: Arc<AtomicU32>,
    third: Arc<AtomicU32>,
    gate: Arc<Semaphore>,
}

#[async_trait]
impl TaskHandler for Long {
    type Data = ();
    type Output = u32;

    async fn run(&self, ctx: &mut TaskContext<impl Scheduler>, _: ()) -> Result<u32, TaskError> {
        ctx.step("first", || async { Ok::<_, io::Error>(1) })
            .await?;
        let (started, finished, gate) = (
            self.started.clone(),
            self.finished.clone(),
            self.gate.clone(),
        );
        ctx.step("long", || async move {
            started.fetch_add(1, Ordering::SeqCst);
            let _permit = gate.acquire().await?;
            finished.fetch_add(1, Ordering::SeqCst);
            Ok::<_, BoxError>(2)
        })
        .await?;
        let third = self.third.clone();
        ctx.step("third", || async move {
            third.fetch_add(1, Ordering::SeqCst);
            Ok::<_, io::Error>(3)
        })
        .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_running_execution_refuses_its_next_commit() {
    init_tracing();
    let started = Arc::new(AtomicU32::new(0));
    let finished = Arc::new(AtomicU32::new(0));
    let third = Arc::new(AtomicU32::new(0));
    let gate = Arc::new(Semaphore::new(0));
    let mut registry = TaskRegistry::new();
    registry
        .register(
            "long",
            Long {
                started: started.clone(),
                finished: finished.clone(),
                third: third.clone(),
                gate: gate.clone(),
            },
        )
        .unwrap()
        .register("echo", tasks::Echo)
        .unwrap();
    let h = Harness::with_registry(registry).await;
    // One slot, so the marker below runs only once the cancelled run has ended; a heartbeat
    // far away, so it is the commit, not a lost lease, that stops the run.
    h.spawn_worker(
        WorkerConfig::default()
            .with_concurrency(1)
            .with_lease_duration(Duration::from_secs(300))
            .with_heartbeat_interval(Duration::from_secs(200)),
    );
    let (db, durable) = (&h.db, &h.durable);
    durable.start_typed("long-1", "long", &()).await.unwrap();
    wait_for("the long step to start", CONDITION, || async {
        (started.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await;

    let cancelled = durable.cancel("long-1").await.unwrap();
    assert_eq!(cancelled, vec!["long-1".to_owned()]);
    assert_eq!(
        durable.status("long-1").await.unwrap().status,
        ExecutionStatus::Cancelled,
        "cancelled at once, while its step still runs"
    );

    gate.add_permits(1);
    wait_for("the long body to end", CONDITION, || async {
        (finished.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await;
    durable.start("marker", "echo", json!(1)).await.unwrap();
    assert_eq!(
        durable.wait("marker", WAIT).await.unwrap().status,
        ExecutionStatus::Completed,
        "the slot came free: the cancelled run stopped"
    );

    let client = db.client().await;
    assert_eq!(
        steps_of(&client, "long-1").await,
        vec![step_row("first", 0, "step", "completed", 1)],
        "the long step's commit was refused and nothing followed"
    );
    assert_eq!(third.load(Ordering::SeqCst), 0);
    let status = durable.status("long-1").await.unwrap();
    assert_eq!(status.status, ExecutionStatus::Cancelled);
    assert_eq!(status.error.unwrap().kind, "cancelled");
    assert_eq!(status.output, None);
    assert_eq!(count(&client, "select count(*) from zart_tasks").await, 0);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_of_a_cancelled_run_is_refused_as_cancelled() {
    init_tracing();
    let mut registry = TaskRegistry::new();
    registry.register("echo", tasks::Echo).unwrap();
    let h = Harness::with_registry(registry).await;
    let (durable, scheduler) = (&h.durable, &h.scheduler);
    durable.start("fenced", "echo", json!(1)).await.unwrap();
    let claimed = fake_claim(scheduler, "echo").await;
    assert_eq!(
        durable.status("fenced").await.unwrap().status,
        ExecutionStatus::Running
    );
    assert_eq!(
        durable.cancel("fenced").await.unwrap(),
        vec!["fenced".to_owned()]
    );

    let err = fake_commit(scheduler, &claimed, "echo", 0, json!(1))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Cancelled { ref id } if id == "fenced"),
        "{err:?}"
    );
    let err = scheduler
        .complete_execution(CompleteExecutionParams {
            lease: claimed.lease.clone(),
            outcome: Outcome::Completed(json!(1)),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Cancelled { .. }), "{err:?}");
    let held = scheduler
        .heartbeat(HeartbeatParams {
            worker_id: "fake-worker".into(),
            lease: Duration::from_secs(60),
            leases: vec![claimed.lease.clone()],
        })
        .await
        .unwrap();
    assert!(held.is_empty());
    // And the error a workflow sees is the control-flow Cancelled.
    assert!(matches!(TaskError::from(err), TaskError::Cancelled));

    let status = durable.status("fenced").await.unwrap();
    assert_eq!(status.status, ExecutionStatus::Cancelled);
    assert_eq!(status.output, None);
    let client = h.db.client().await;
    assert_eq!(count(&client, "select count(*) from zart_steps").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_parent_cancels_its_waiting_descendants() {
    init_tracing();
    let woke = Arc::new(AtomicU32::new(0));
    let h = Harness::with_registry(nest_registry(&woke)).await;
    h.spawn_worker(WorkerConfig::default());
    let (db, durable) = (&h.db, &h.durable);
    // root waits for root/kid, which waits for root/kid/kid, which sleeps.
    durable.start_typed("root", "nest", &2u32).await.unwrap();
    let client = db.client().await;
    wait_status(&client, "root/kid/kid", "sleeping").await;
    wait_status(&client, "root/kid", "waiting").await;
    wait_status(&client, "root", "waiting").await;

    let waiter = tokio::spawn({
        let durable = durable.clone();
        async move { durable.wait("root/kid/kid", WAIT).await }
    });
    let cancelled = durable.cancel("root").await.unwrap();
    assert_eq!(cancelled.len(), 3, "{cancelled:?}");
    assert_eq!(cancelled[0], "root", "the execution asked for comes first");
    let mut rest = cancelled[1..].to_vec();
    rest.sort();
    assert_eq!(rest, vec!["root/kid".to_owned(), "root/kid/kid".to_owned()]);

    for id in ["root", "root/kid", "root/kid/kid"] {
        let e = durable.status(id).await.unwrap();
        assert_eq!(e.status, ExecutionStatus::Cancelled, "{id}");
        assert_eq!(e.error.unwrap().kind, "cancelled", "{id}");
    }
    assert_eq!(count(&client, "select count(*) from zart_tasks").await, 0);
    assert_eq!(
        waiter.await.unwrap().unwrap().status,
        ExecutionStatus::Cancelled
    );

    // Nothing wakes later: not the sleeper, not the parents.
    db.advance_clock(2 * HOUR).await;
    durable.start("marker", "echo", json!(1)).await.unwrap();
    durable.wait("marker", WAIT).await.unwrap();
    assert_eq!(woke.load(Ordering::SeqCst), 0);
    for id in ["root", "root/kid", "root/kid/kid"] {
        assert_eq!(status_of(&client, id).await.as_deref(), Some("cancelled"));
    }
    h.stop().await;
}

/// A parent that failed while it waited for a child (which its failure cancelled), retried from
/// SQL: both are revived in the caller's transaction, the NOTIFY at commit wakes a worker, the
/// child resumes where it was and the parent completes with its output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zart_retry_from_sql_revives_the_children_a_failure_cancelled() {
    init_tracing();
    let woke = Arc::new(AtomicU32::new(0));
    let h = Harness::with_registry(nest_registry(&woke)).await;
    let (db, durable, s) = (&h.db, &h.durable, &h.scheduler);
    let client = db.client().await;
    durable.start_typed("fam", "nest", &1u32).await.unwrap();

    // A fake worker runs the parent up to its child wait, then fails it while it waits.
    // (The child is a `nest` task too: the second claim takes it as well, and holds it.)
    let claim = |id: &'static str| async move {
        s.claim_tasks(ClaimTasksParams {
            worker_id: "fake".into(),
            queue: "default".into(),
            task_names: vec!["nest".into()],
            limit: 2,
            lease: HOUR,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.lease.execution_id == id)
        .unwrap()
    };
    let first = claim("fam").await;
    s.start_child(StartChildParams {
        lease: first.lease.clone(),
        name: "kid".into(),
        seq: 0,
        child_id: "fam/kid".into(),
        task_name: "nest".into(),
        input: json!(0),
        queue: "default".into(),
        detached: false,
    })
    .await
    .unwrap();
    client
        .batch_execute(
            "update zart_tasks set run_at = zart_current_time() where execution_id = 'fam'",
        )
        .await
        .unwrap();
    let second = claim("fam").await;
    s.complete_execution(CompleteExecutionParams {
        lease: second.lease,
        outcome: Outcome::Failed(zart::ErrorRecord {
            kind: "failed".into(),
            message: "the warehouse was unreachable".into(),
            ..Default::default()
        }),
    })
    .await
    .unwrap();
    assert_eq!(
        status_of(&client, "fam/kid").await.as_deref(),
        Some("cancelled")
    );

    h.spawn_worker(WorkerConfig::default().with_sweep_interval(Duration::from_secs(600)));
    let n: i32 = client
        .query_one("select zart_retry('fam')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2, "the parent and the child its failure cancelled");
    wait_status(&client, "fam/kid", "sleeping").await;
    wait_status(&client, "fam", "waiting").await;
    db.advance_clock(2 * HOUR).await;
    let done = durable.wait("fam", WAIT).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Completed, "{:?}", done.error);
    assert_eq!(done.output, Some(json!(1)));
    assert_eq!(woke.load(Ordering::SeqCst), 1);

    // Done: nothing to retry; from SQL the refusal has its own SQLSTATE.
    let err = client
        .query_one("select zart_retry('fam')", &[])
        .await
        .unwrap_err();
    let db_error = err.as_db_error().expect("a database error");
    assert_eq!(db_error.code().code(), "ZA009", "{db_error}");
    assert_eq!(
        db_error.message(),
        "execution \"fam\" cannot be retried: it is completed (only a failed execution can be)"
    );
    h.stop().await;
}

/// A schedule declared from SQL is armed and fired by a worker; one whose expression does not
/// parse (SQL cannot check it) gets the worker's error and does not fire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_declared_from_sql_fire_and_bad_ones_record_the_error() {
    init_tracing();
    let woke = Arc::new(AtomicU32::new(0));
    let h = Harness::with_registry(nest_registry(&woke)).await;
    let (db, durable) = (&h.db, &h.durable);
    let client = db.client().await;
    client
        .batch_execute(
            "select zart_schedule('sql-tick', '0 * * * *', 'echo', '\"hi\"');
             select zart_schedule('sql-bad', 'every tuesday', 'echo');",
        )
        .await
        .unwrap();
    h.spawn_worker(WorkerConfig::default());
    let error = wait_for("the bad schedule's error", CONDITION, || async {
        durable
            .schedules()
            .await
            .unwrap()
            .into_iter()
            .find(|r| r.schedule.id == "sql-bad")
            .and_then(|r| r.error)
    })
    .await;
    assert!(
        error.starts_with("invalid cron: \"every tuesday\""),
        "{error}"
    );
    let next = wait_for("sql-tick to be armed", CONDITION, || async {
        durable
            .schedules()
            .await
            .unwrap()
            .into_iter()
            .find(|r| r.schedule.id == "sql-tick")
            .and_then(|r| r.next_fire_at)
    })
    .await;
    db.advance_clock(HOUR).await;
    let id = zart::schedule::execution_id("sql-tick", next);
    let done = wait_for("the firing to finish", CONDITION, || async {
        durable
            .status(&id)
            .await
            .ok()
            .filter(|e| e.status.is_terminal())
    })
    .await;
    assert_eq!(done.output, Some(json!("hi")));

    let err = client
        .query_one("select zart_pause_schedule('nope')", &[])
        .await
        .unwrap_err();
    assert_eq!(err.as_db_error().unwrap().code().code(), "ZA007");
    let err = client
        .query_one("select zart_schedule('a@b', '* * * * *', 'echo')", &[])
        .await
        .unwrap_err();
    assert_eq!(err.as_db_error().unwrap().code().code(), "ZA004");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zart_cancel_from_sql_cancels_the_tree_and_returns_the_count() {
    init_tracing();
    let woke = Arc::new(AtomicU32::new(0));
    let h = Harness::with_registry(nest_registry(&woke)).await;
    h.spawn_worker(WorkerConfig::default());
    let (db, durable) = (&h.db, &h.durable);
    durable
        .start_typed("sql-root", "nest", &1u32)
        .await
        .unwrap();
    let client = db.client().await;
    wait_status(&client, "sql-root/kid", "sleeping").await;
    wait_status(&client, "sql-root", "waiting").await;

    let waiter = tokio::spawn({
        let durable = durable.clone();
        async move { durable.wait("sql-root", WAIT).await }
    });
    let n: i32 = client
        .query_one("select zart_cancel('sql-root')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
    assert_eq!(
        waiter.await.unwrap().unwrap().status,
        ExecutionStatus::Cancelled,
        "wait() wakes on the notification sent at commit"
    );
    assert_eq!(
        status_of(&client, "sql-root/kid").await.as_deref(),
        Some("cancelled")
    );
    let kind: String = client
        .query_one(
            "select error->>'kind' from zart_executions where id = 'sql-root'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(kind, "cancelled");
    assert_eq!(count(&client, "select count(*) from zart_tasks").await, 0);

    // Again: nothing left to cancel.
    let n: i32 = client
        .query_one("select zart_cancel('sql-root')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
    // An unknown id is an error with its own SQLSTATE.
    let err = client
        .query_one("select zart_cancel('nobody')", &[])
        .await
        .unwrap_err();
    let db_error = err.as_db_error().expect("a database error");
    assert_eq!(db_error.code().code(), "ZA007", "{db_error}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_matches_ids_exactly() {
    init_tracing();
    let woke = Arc::new(AtomicU32::new(0));
    let h = Harness::with_registry(nest_registry(&woke)).await;
    h.spawn_worker(WorkerConfig::default());
    let (db, durable) = (&h.db, &h.durable);
    let roots = ["a_b", "aXb", "a%", "ab"];
    for id in roots {
        durable.start_typed(id, "nest", &1u32).await.unwrap();
    }
    let client = db.client().await;
    for id in roots {
        wait_status(&client, &format!("{id}/kid"), "sleeping").await;
        wait_status(&client, id, "waiting").await;
    }

    // `_` and `%` are LIKE wildcards: they must match nothing but themselves.
    assert_eq!(
        durable.cancel("a_b").await.unwrap(),
        vec!["a_b".to_owned(), "a_b/kid".to_owned()]
    );
    let n: i32 = client
        .query_one("select zart_cancel('a%')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2);

    let mut statuses: Vec<(String, String)> = client
        .query("select id, status from zart_executions order by id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    statuses.sort();
    let expected: Vec<(String, String)> = [
        ("a%", "cancelled"),
        ("a%/kid", "cancelled"),
        ("aXb", "waiting"),
        ("aXb/kid", "sleeping"),
        ("a_b", "cancelled"),
        ("a_b/kid", "cancelled"),
        ("ab", "waiting"),
        ("ab/kid", "sleeping"),
    ]
    .iter()
    .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
    .collect::<std::collections::BTreeSet<_>>()
    .into_iter()
    .collect();
    assert_eq!(statuses, expected);
    let mut tasks: Vec<String> = column(&client, "select execution_id from zart_tasks", &[]).await;
    tasks.sort();
    assert_eq!(tasks, vec!["aXb", "aXb/kid", "ab", "ab/kid"]);

    // The untouched ones still run to the end once their hour has passed.
    db.advance_clock(2 * HOUR).await;
    for id in ["aXb", "ab"] {
        let done = durable.wait(id, WAIT).await.unwrap();
        assert_eq!(
            done.status,
            ExecutionStatus::Completed,
            "{id}: {:?}",
            done.error
        );
        assert_eq!(done.output, Some(json!(1)));
    }
    assert_eq!(woke.load(Ordering::SeqCst), 2);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_finished_execution_changes_nothing_and_unknown_ids_are_not_found() {
    init_tracing();
    let h = Harness::new().await;
    h.spawn_worker(WorkerConfig::default());
    let (db, durable) = (&h.db, &h.durable);

    durable
        .start("done-ok", "echo", json!({"a": 1}))
        .await
        .unwrap();
    let completed = durable.wait("done-ok", WAIT).await.unwrap();
    assert_eq!(completed.status, ExecutionStatus::Completed);
    durable
        .start_typed("done-failed", "panicky", &"boom".to_owned())
        .await
        .unwrap();
    let failed = durable.wait("done-failed", WAIT).await.unwrap();
    assert_eq!(failed.status, ExecutionStatus::Failed);

    for before in [&completed, &failed] {
        assert_eq!(
            durable.cancel(&before.id).await.unwrap(),
            Vec::<String>::new(),
            "{}",
            before.id
        );
        let after = durable.status(&before.id).await.unwrap();
        assert_eq!(&after, before, "cancel changed {}", before.id);
    }
    let client = db.client().await;
    let n: i32 = client
        .query_one("select zart_cancel('done-ok')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
    assert_eq!(durable.status("done-ok").await.unwrap(), completed);

    let err = durable.cancel("nobody").await.unwrap_err();
    assert!(
        matches!(err, Error::NotFound { ref id } if id == "nobody"),
        "{err:?}"
    );
    h.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Timeouts
// ---------------------------------------------------------------------------------------------

/// A step whose body never ends, under a 200 ms timeout.
struct Hangs;

#[async_trait]
impl TaskHandler for Hangs {
    type Data = ();
    type Output = u32;

    async fn run(&self, ctx: &mut TaskContext<impl Scheduler>, _: ()) -> Result<u32, TaskError> {
        ctx.step_with_timeout("quote", Duration::from_millis(200), || async {
            std::future::pending::<()>().await;
            Ok::<u32, io::Error>(1)
        })
        .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_past_its_timeout_fails_the_execution_with_kind_timeout() {
    init_tracing();
    let mut registry = TaskRegistry::new();
    registry.register("hangs", Hangs).unwrap();
    let h = Harness::with_registry(registry).await;
    h.spawn_worker(WorkerConfig::default());
    let (db, durable) = (&h.db, &h.durable);
    durable.start_typed("hang-1", "hangs", &()).await.unwrap();
    let done = durable.wait("hang-1", WAIT).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Failed);
    let error = done.error.unwrap();
    assert_eq!(error.kind, "timeout");
    assert_eq!(error.step.as_deref(), Some("quote"));
    assert_eq!(error.attempts, Some(1));
    assert_eq!(error.message, "step timed out after 200ms");

    let client = db.client().await;
    let row = client
        .query_one(
            "select status, error->>'kind', error->>'message' from zart_steps
              where execution_id = 'hang-1' and name = 'quote'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "failed");
    assert_eq!(row.get::<_, String>(1), "timeout");
    assert_eq!(row.get::<_, String>(2), "step timed out after 200ms");
    h.stop().await;
}

/// A retried step whose first attempt hangs past the attempt timeout; later ones answer.
struct SlowOnce {
    attempts: Arc<AtomicU32>,
    seen: Arc<Mutex<Vec<String>>>,
}

#[async_trait]
impl TaskHandler for SlowOnce {
    type Data = ();
    type Output = u32;

    async fn run(&self, ctx: &mut TaskContext<impl Scheduler>, _: ()) -> Result<u32, TaskError> {
        let attempts = self.attempts.clone();
        let retry = RetryConfig::exponential(3, Duration::from_millis(10))
            .with_attempt_timeout(Duration::from_secs(1));
        let result = ctx
            .step_with_retry("quote", retry, || {
                let n = attempts.fetch_add(1, Ordering::SeqCst) + 1;
                async move {
                    if n == 1 {
                        std::future::pending::<()>().await;
                    }
                    Ok::<u32, io::Error>(n)
                }
            })
            .await;
        self.seen.lock().unwrap().push(format!("{result:?}"));
        result
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_attempt_is_retried_and_the_next_one_succeeds() {
    init_tracing();
    let attempts = Arc::new(AtomicU32::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut registry = TaskRegistry::new();
    registry
        .register(
            "slow-once",
            SlowOnce {
                attempts: attempts.clone(),
                seen: seen.clone(),
            },
        )
        .unwrap();
    let h = Harness::with_registry(registry).await;
    h.spawn_worker(WorkerConfig::default());
    let (db, durable) = (&h.db, &h.durable);
    durable
        .start_typed("slow-1", "slow-once", &())
        .await
        .unwrap();
    let done = durable.wait("slow-1", WAIT).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Completed, "{:?}", done.error);
    assert_eq!(done.output, Some(json!(2)));
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
    assert_eq!(done.attempts, 1, "the short back-off stayed in the worker");
    let client = db.client().await;
    assert_eq!(
        steps_of(&client, "slow-1").await,
        vec![step_row("quote", 0, "step", "completed", 2)]
    );
    assert_eq!(*seen.lock().unwrap(), vec!["Ok(2)".to_owned()]);
    h.stop().await;
}
