//! End-to-end workflows on a real PostgreSQL: the seed workflow, retries, panics, claiming.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use zart::{
    Error, ExecutionStatus, RetryConfig, Scheduler, TaskContext, TaskError, TaskHandler,
    TaskRegistry, WorkerConfig,
};
use zart_tests::tasks::{self, FlakyInput};
use zart_tests::{count, init_tracing, wait_for, Harness};

const WAIT: Option<Duration> = Some(Duration::from_secs(30));

#[derive(Debug, Serialize, Deserialize)]
struct OnboardingData {
    user_id: String,
    email: String,
}

/// The workflow of the getting-started page, with its two calls counted.
struct OnboardingTask {
    emails: Arc<AtomicU32>,
    billing: Arc<AtomicU32>,
}

#[async_trait]
impl TaskHandler for OnboardingTask {
    type Data = OnboardingData;
    type Output = ();

    async fn run(
        &self,
        ctx: &mut TaskContext<impl Scheduler>,
        data: OnboardingData,
    ) -> Result<(), TaskError> {
        let emails = self.emails.clone();
        ctx.step("send-email", || async {
            emails.fetch_add(1, Ordering::SeqCst);
            Ok::<_, std::io::Error>(format!("sent to {}", data.email))
        })
        .await?;

        let billing = self.billing.clone();
        ctx.step_with_retry(
            "setup-billing",
            // The first back-off (1.2 s) is over the 1 s threshold: a durable suspension.
            RetryConfig::exponential(3, Duration::from_millis(1200)),
            || async {
                if billing.fetch_add(1, Ordering::SeqCst) == 0 {
                    return Err(std::io::Error::other("billing down"));
                }
                Ok(format!("customer for {}", data.user_id))
            },
        )
        .await?;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_workflow_completes_and_wait_returns_final_status() {
    init_tracing();
    let emails = Arc::new(AtomicU32::new(0));
    let billing = Arc::new(AtomicU32::new(0));
    let mut registry = TaskRegistry::new();
    registry
        .register(
            "onboarding",
            OnboardingTask {
                emails: emails.clone(),
                billing: billing.clone(),
            },
        )
        .unwrap();
    let h = Harness::with_registry(registry).await;
    h.spawn_worker(WorkerConfig::default());
    let (db, durable) = (&h.db, &h.durable);
    let data = OnboardingData {
        user_id: "u-42".into(),
        email: "alice@example.com".into(),
    };
    let started = durable
        .start_typed("signup-user-42", "onboarding", &data)
        .await
        .unwrap();
    assert!(started.created);

    let finished = durable.wait("signup-user-42", WAIT).await.unwrap();
    assert_eq!(finished.status, ExecutionStatus::Completed);
    assert_eq!(finished.output, Some(serde_json::Value::Null));
    assert!(finished.finished_at.is_some());
    // The durable back-off suspended the execution, so it was claimed twice.
    assert_eq!(finished.attempts, 2);
    // The email step ran once: the second claim replayed it from its record.
    assert_eq!(emails.load(Ordering::SeqCst), 1);
    assert_eq!(billing.load(Ordering::SeqCst), 2);

    let client = db.client().await;
    let rows = client
        .query(
            "select name, status, attempts, seq from zart_steps where execution_id = $1 order by seq",
            &[&"signup-user-42"],
        )
        .await
        .unwrap();
    let steps: Vec<(String, String, i32, i32)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(
        steps,
        vec![
            ("send-email".into(), "completed".into(), 1, 0),
            ("setup-billing".into(), "completed".into(), 2, 1),
        ]
    );
    assert_eq!(count(&client, "select count(*) from zart_tasks").await, 0);

    // Starting it again is a no-op that reports the finished execution.
    let again = durable
        .start_typed("signup-user-42", "onboarding", &data)
        .await
        .unwrap();
    assert!(!again.created);
    assert_eq!(again.status, ExecutionStatus::Completed);

    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_exhausted_fail_the_execution_with_the_error_visible() {
    init_tracing();
    let h = Harness::new().await;
    h.spawn_worker(WorkerConfig::default());
    let (db, durable) = (&h.db, &h.durable);

    let input = FlakyInput {
        failures: 10,
        max_attempts: 3,
        base_ms: 10,
    };
    durable
        .start_typed("always-fails", "flaky", &input)
        .await
        .unwrap();
    let finished = durable.wait("always-fails", WAIT).await.unwrap();
    assert_eq!(finished.status, ExecutionStatus::Failed);
    let error = finished
        .error
        .expect("a failed execution records its error");
    assert_eq!(error.kind, "step_failed");
    assert_eq!(error.step.as_deref(), Some("flaky"));
    assert_eq!(error.attempts, Some(3));
    assert_eq!(error.message, "attempt 3 failed on purpose");

    let client = db.client().await;
    let row = client
        .query_one(
            "select e.status, e.error->>'message', s.status, s.attempts
               from zart_executions e join zart_steps s on s.execution_id = e.id
              where e.id = 'always-fails'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "failed");
    assert_eq!(row.get::<_, String>(1), "attempt 3 failed on purpose");
    assert_eq!(row.get::<_, String>(2), "failed");
    assert_eq!(row.get::<_, i32>(3), 3);
    assert_eq!(
        count(&client, "select count(*) from zart_test_side_effects").await,
        3,
        "exactly max_attempts attempts ran"
    );

    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_backoff_holds_no_worker_slot() {
    init_tracing();
    let h = Harness::new().await;
    // One slot: while "slow-retry" waits out its back-off, "echo-1" must still run.
    h.spawn_worker(WorkerConfig::default().with_concurrency(1));
    let (db, durable) = (&h.db, &h.durable);
    let input = FlakyInput {
        failures: 1,
        max_attempts: 2,
        base_ms: 3000,
    };
    durable
        .start_typed("slow-retry", "flaky", &input)
        .await
        .unwrap();

    let client = db.client().await;
    wait_for(
        "the execution to suspend",
        Duration::from_secs(10),
        || async {
            let row = client
                .query_one(
                    "select e.status, t.locked_by is null from zart_executions e
                   join zart_tasks t on t.execution_id = e.id where e.id = 'slow-retry'",
                    &[],
                )
                .await
                .ok()?;
            (row.get::<_, String>(0) == "sleeping" && row.get::<_, bool>(1)).then_some(())
        },
    )
    .await;
    let step_status: String = client
        .query_one(
            "select status from zart_steps where execution_id = 'slow-retry'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(step_status, "retrying");

    durable
        .start("echo-1", "echo", serde_json::json!({"during": "backoff"}))
        .await
        .unwrap();
    let echo = durable
        .wait("echo-1", Some(Duration::from_secs(2)))
        .await
        .unwrap();
    assert_eq!(echo.status, ExecutionStatus::Completed);
    assert_eq!(echo.output, Some(serde_json::json!({"during": "backoff"})));
    let slow = durable.status("slow-retry").await.unwrap();
    assert_eq!(
        slow.status,
        ExecutionStatus::Sleeping,
        "echo ran during the back-off"
    );

    let done = durable.wait("slow-retry", WAIT).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Completed);
    assert_eq!(done.output, Some(serde_json::json!(2)));

    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_step_fails_the_execution_and_releases_the_lease() {
    init_tracing();
    let h = Harness::new().await;
    h.spawn_worker(WorkerConfig::default());
    let (db, durable) = (&h.db, &h.durable);

    durable
        .start_typed("panics", "panicky", &"the flux capacitor melted".to_owned())
        .await
        .unwrap();
    let finished = durable.wait("panics", WAIT).await.unwrap();
    assert_eq!(finished.status, ExecutionStatus::Failed);
    let error = finished.error.unwrap();
    assert_eq!(error.kind, "panic");
    assert_eq!(error.step.as_deref(), Some("boom"));
    assert_eq!(error.message, "step panicked: the flux capacitor melted");

    let client = db.client().await;
    assert_eq!(
        count(&client, "select count(*) from zart_tasks").await,
        0,
        "the lease is released with the outcome"
    );
    let boom: String = client
        .query_one(
            "select error->>'message' from zart_steps where execution_id = 'panics' and name = 'boom'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(boom, "step panicked: the flux capacitor melted");

    // The worker survives the panic and keeps running other work.
    durable
        .start("after-panic", "echo", serde_json::json!(1))
        .await
        .unwrap();
    let next = durable.wait("after-panic", WAIT).await.unwrap();
    assert_eq!(next.status, ExecutionStatus::Completed);

    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_never_claims_a_task_name_it_has_not_registered() {
    init_tracing();
    let mut registry = TaskRegistry::new();
    registry.register("echo", tasks::Echo).unwrap();
    let h = Harness::with_registry(registry).await;
    h.spawn_worker(WorkerConfig::default());
    let (db, durable) = (&h.db, &h.durable);

    // Started from SQL: the client registry is not consulted there.
    let client = db.client().await;
    client
        .execute("select zart_start('foreign-1', 'not-mine', '{}')", &[])
        .await
        .unwrap();
    // Work started after it completes, so the worker has claimed at least twice by then.
    durable
        .start("mine-1", "echo", serde_json::json!(1))
        .await
        .unwrap();
    durable.wait("mine-1", WAIT).await.unwrap();
    durable
        .start("mine-2", "echo", serde_json::json!(2))
        .await
        .unwrap();
    durable.wait("mine-2", WAIT).await.unwrap();

    let foreign = durable.status("foreign-1").await.unwrap();
    assert_eq!(foreign.status, ExecutionStatus::Scheduled);
    assert_eq!(foreign.attempts, 0);
    let locked: Option<String> = client
        .query_one(
            "select locked_by from zart_tasks where execution_id = 'foreign-1'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(locked, None);

    // And the client refuses to start a task it does not know.
    let err = durable
        .start("foreign-2", "not-mine", serde_json::json!({}))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::UnknownTask { ref name } if name == "not-mine"),
        "{err}"
    );
    assert_eq!(
        count(
            &client,
            "select count(*) from zart_executions where id = 'foreign-2'"
        )
        .await,
        0
    );

    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_times_out_with_a_clear_error_and_status_reports_unknown_ids() {
    init_tracing();
    let h = Harness::new().await;
    let durable = &h.durable;
    // No worker runs: the execution stays scheduled.
    durable
        .start("stays", "echo", serde_json::json!(null))
        .await
        .unwrap();
    let err = durable
        .wait("stays", Some(Duration::from_millis(300)))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::WaitTimeout { .. }), "{err}");
    assert!(
        err.to_string().contains("\"stays\" did not finish within"),
        "{err}"
    );

    let err = durable.status("nobody").await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    let err = durable.wait("nobody", None).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_on_executions_that_finish_together_all_wake_on_the_shared_notification() {
    init_tracing();
    let h = Harness::new().await;
    let durable = &h.durable;
    // No worker yet: every execution is still scheduled when its wait first looks.
    let ids: Vec<String> = (0..40).map(|i| format!("together-{i}")).collect();
    for id in &ids {
        durable
            .start(id, "echo", serde_json::json!(id))
            .await
            .unwrap();
    }
    let waits: Vec<_> = ids
        .iter()
        .map(|id| {
            let (durable, id) = (durable.clone(), id.clone());
            tokio::spawn(async move { durable.wait(&id, WAIT).await })
        })
        .collect();
    // Every wait has looked once and sleeps until a wake-up or its 5 s safety sweep.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = std::time::Instant::now();
    h.spawn_worker(WorkerConfig::default());
    for (id, wait) in ids.iter().zip(waits) {
        let done = wait.await.unwrap().unwrap();
        assert_eq!(done.status, ExecutionStatus::Completed, "{id}");
    }
    // The worker finishes them in a few group commits, so their ids share zart_done
    // payloads; a wait that missed its id would sleep until its sweep, 5 s after it looked.
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(4),
        "the waits returned after {took:?}: woken by their sweep, not by zart_done"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_that_meets_other_steps_than_recorded_fails_with_non_determinism() {
    use zart::scheduler::{ClaimTasksParams, CommitStepParams, ReleaseTasksParams, StepStatus};
    init_tracing();
    let h = Harness::new().await;
    let (db, durable, scheduler) = (&h.db, &h.durable, &h.scheduler);
    durable
        .start("changed-code", "echo", serde_json::json!(1))
        .await
        .unwrap();

    // An older version of the workflow recorded a step "validate" first, then stopped.
    let claimed = scheduler
        .claim_tasks(ClaimTasksParams {
            worker_id: "old-version".into(),
            queue: "default".into(),
            task_names: vec!["echo".into()],
            limit: 1,
            lease: Duration::from_secs(30),
            ..Default::default()
        })
        .await
        .unwrap();
    scheduler
        .commit_step(CommitStepParams {
            lease: claimed[0].lease.clone(),
            name: "validate".into(),
            seq: 0,
            status: StepStatus::Completed,
            output: Some(serde_json::json!(true)),
            error: None,
            attempts: 1,
        })
        .await
        .unwrap();
    scheduler
        .release_tasks(ReleaseTasksParams {
            worker_id: "old-version".into(),
            queue: "default".into(),
            leases: vec![claimed[0].lease.clone()],
        })
        .await
        .unwrap();

    // The current code's first step is "echo": replay must refuse to mix the two.
    h.spawn_worker(WorkerConfig::default());
    let done = durable.wait("changed-code", WAIT).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Failed);
    let error = done.error.unwrap();
    assert_eq!(error.kind, "non_determinism");
    assert_eq!(error.step.as_deref(), Some("echo"));
    assert_eq!(
        error.message,
        "non-deterministic workflow at step \"echo\": step 0 was recorded as \"validate\", \
         but the workflow now asks for \"echo\""
    );
    let client = db.client().await;
    assert_eq!(
        count(
            &client,
            "select count(*) from zart_steps where execution_id = 'changed-code'"
        )
        .await,
        1,
        "no result was recorded for the diverging step"
    );
    h.stop().await;
}

/// Uses one step name twice.
struct Repeats;

#[async_trait]
impl TaskHandler for Repeats {
    type Data = ();
    type Output = ();

    async fn run(&self, ctx: &mut TaskContext<impl Scheduler>, _: ()) -> Result<(), TaskError> {
        for _ in 0..2 {
            ctx.step("same", || async { Ok::<_, std::io::Error>(()) })
                .await?;
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_name_used_twice_fails_the_execution_clearly() {
    init_tracing();
    let mut registry = TaskRegistry::new();
    registry.register("repeats", Repeats).unwrap();
    let h = Harness::with_registry(registry).await;
    h.spawn_worker(WorkerConfig::default());
    let durable = &h.durable;
    durable.start_typed("dup", "repeats", &()).await.unwrap();
    let done = durable.wait("dup", WAIT).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Failed);
    let error = done.error.unwrap();
    assert_eq!(error.kind, "duplicate_step");
    assert_eq!(
        error.message,
        "step name \"same\" is used twice in one execution; step names must be unique"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_input_fails_the_execution_naming_the_problem() {
    init_tracing();
    let h = Harness::new().await;
    h.spawn_worker(WorkerConfig::default());
    let (db, durable) = (&h.db, &h.durable);
    // From SQL nothing checks the input against the Rust type; the run reports it.
    let client = db.client().await;
    client
        .execute(
            "select zart_start('bad-input', 'counted', '{\"steps\": \"many\"}')",
            &[],
        )
        .await
        .unwrap();
    let done = durable.wait("bad-input", WAIT).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Failed);
    let error = done.error.unwrap();
    assert_eq!(error.kind, "serialization");
    assert!(
        error
            .message
            .starts_with("could not deserialize the input of task \"counted\" as JSON: invalid type: string \"many\", expected u32"),
        "{}",
        error.message
    );
    h.stop().await;
}

/// Swallows the suspension of its sleep and claims to be done.
struct SwallowsSuspension;

#[async_trait]
impl TaskHandler for SwallowsSuspension {
    type Data = ();
    type Output = String;

    async fn run(&self, ctx: &mut TaskContext<impl Scheduler>, _: ()) -> Result<String, TaskError> {
        let slept = ctx.sleep("nap", Duration::from_secs(3600)).await;
        // Wrong: the error must be propagated. Any further step is refused as well.
        let after = ctx
            .step("after", || async { Ok::<_, std::io::Error>(1) })
            .await;
        assert!(matches!(after, Err(TaskError::Suspended)), "{after:?}");
        Ok(format!("done anyway: {slept:?}"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swallowed_suspension_does_not_complete_the_execution() {
    init_tracing();
    let mut registry = TaskRegistry::new();
    registry.register("swallows", SwallowsSuspension).unwrap();
    let h = Harness::with_registry(registry).await;
    h.spawn_worker(WorkerConfig::default());
    h.durable
        .start_typed("swallower", "swallows", &())
        .await
        .unwrap();
    let client = h.db.client().await;
    wait_for(
        "the execution to sleep",
        Duration::from_secs(10),
        || async {
            let status = h.durable.status("swallower").await.unwrap().status;
            (status == ExecutionStatus::Sleeping).then_some(())
        },
    )
    .await;
    // Give the (wrong) outcome time to be attempted, then check nothing was recorded.
    let err = h
        .durable
        .wait("swallower", Some(Duration::from_millis(500)))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::WaitTimeout { .. }), "{err:?}");
    assert_eq!(
        count(
            &client,
            "select count(*) from zart_tasks where wait_kind = 'sleep'"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &client,
            "select count(*) from zart_steps where name = 'after'"
        )
        .await,
        0
    );
    h.stop().await;
}

/// Autovacuum and autoanalyze passes over every table of this database so far, catalogs too.
async fn autovacuum_runs(client: &tokio_postgres::Client) -> i64 {
    client
        .query_one(
            "select coalesce(sum(autovacuum_count + autoanalyze_count), 0)::bigint
               from pg_stat_all_tables",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_worker_does_not_poll() {
    init_tracing();
    let mut registry = TaskRegistry::new();
    registry.register("echo", tasks::Echo).unwrap();
    let h = Harness::with_registry(registry).await;
    // Autovacuum's work in this database counts as transactions too (a throwaway cluster has
    // it on): keep it off these tables, so the window counts the worker.
    h.db.client()
        .await
        .batch_execute(
            "do $$ declare t record; begin
                 for t in select c.oid::regclass as rel from pg_class c
                           where c.relnamespace = 'public'::regnamespace and c.relkind = 'r'
                 loop
                     execute format('alter table %s set (autovacuum_enabled = false)', t.rel);
                 end loop;
             end $$",
        )
        .await
        .unwrap();
    h.spawn_worker(WorkerConfig::default().with_sweep_interval(Duration::from_secs(60)));
    // A burst of work first, then the queue is empty and the worker idle. Each start wakes
    // the worker's loops; the burst's wake-ups must not keep any of them looking afterwards
    // (the schedule loop once took them one look a second, for minutes after a burst).
    for n in 0..300 {
        h.durable
            .start(&format!("burst-{n}"), "echo", serde_json::json!(n))
            .await
            .unwrap();
    }
    for n in 0..300 {
        h.durable.wait(&format!("burst-{n}"), WAIT).await.unwrap();
    }
    let client = h.db.client().await;
    // PostgreSQL 15 reports an idle backend's counts up to 10 s late: let the run's own
    // transactions (and the harness's) land before the window opens.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let before = zart_tests::transactions(&client).await;
    let autovacuum_before = autovacuum_runs(&client).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let after = zart_tests::transactions(&client).await;
    let autovacuum = autovacuum_runs(&client).await - autovacuum_before;
    eprintln!(
        "idle window: {} transactions, {autovacuum} autovacuum passes",
        after - before
    );
    // An idle worker adds nothing (it used to spin on claim + next_run_at when the queue was
    // empty: ~800 transactions a second). The window counts this test's own reads, and the
    // transactions of autovacuum passes over the system catalogs (which cannot be turned off
    // per table; a busy cluster visits this new database with them): up to two per table it
    // vacuumed or analyzed. A worker that looked every 100 ms would add 60, one that looked
    // every second 6.
    assert!(
        after - before <= 5 + 2 * autovacuum,
        "{} transactions in 6 s while idle ({autovacuum} autovacuum passes)",
        after - before
    );
    h.stop().await;
}
