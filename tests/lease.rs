//! Leases and fencing: an expired lease is taken over, and the old holder's late writes are
//! refused and change nothing; heartbeats keep a long step's lease alive.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::Duration;

use zart::scheduler::{
    ClaimTasksParams, ClaimedTask, CommitStepParams, CompleteExecutionParams, HeartbeatParams,
    Outcome, StepStatus,
};
use zart::{Error, ExecutionStatus, Scheduler, WorkerConfig};
use zart_pg::PostgresScheduler;
use zart_tests::{count, init_tracing, tasks, wait_for, Harness};

async fn claim(scheduler: &PostgresScheduler, worker: &str, lease: Duration) -> Vec<ClaimedTask> {
    scheduler
        .claim_tasks(ClaimTasksParams {
            worker_id: worker.to_owned(),
            queue: "default".to_owned(),
            task_names: vec!["echo".to_owned()],
            limit: 10,
            lease,
            ..Default::default()
        })
        .await
        .unwrap()
}

fn commit(task: &ClaimedTask, output: serde_json::Value) -> CommitStepParams {
    CommitStepParams {
        lease: task.lease.clone(),
        name: "echo".to_owned(),
        seq: 0,
        status: StepStatus::Completed,
        output: Some(output),
        error: None,
        attempts: 1,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_is_taken_over_and_the_late_commit_is_refused() {
    init_tracing();
    let h = echo_harness().await;
    let (db, durable, scheduler) = (&h.db, &h.durable, &h.scheduler);
    durable
        .start("contended", "echo", serde_json::json!("real"))
        .await
        .unwrap();

    // A slow worker claims with a short lease and then stalls.
    let zombie = claim(scheduler, "zombie", Duration::from_secs(1)).await;
    assert_eq!(zombie.len(), 1);
    // While its lease holds, nobody else can claim it.
    assert!(claim(scheduler, "successor", Duration::from_secs(30))
        .await
        .is_empty());

    // Once it expires, the ordinary claim takes it over with a new fence.
    let successor = wait_for("the lease to expire", Duration::from_secs(10), || {
        let scheduler = scheduler.clone();
        async move {
            let claimed = claim(&scheduler, "successor", Duration::from_secs(30)).await;
            (!claimed.is_empty()).then_some(claimed)
        }
    })
    .await;
    assert_ne!(successor[0].lease.fence, zombie[0].lease.fence);
    assert_eq!(successor[0].attempts, 2);

    // The zombie wakes up and tries to write: every write is refused.
    let err = scheduler
        .commit_step(commit(&zombie[0], serde_json::json!("zombie")))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::LeaseLost { ref id } if id == "contended"),
        "{err:?}"
    );
    let held = scheduler
        .heartbeat(HeartbeatParams {
            worker_id: "zombie".to_owned(),
            lease: Duration::from_secs(30),
            leases: vec![zombie[0].lease.clone()],
        })
        .await
        .unwrap();
    assert!(held.is_empty(), "the zombie's heartbeat renews nothing");

    // The successor's writes go through.
    scheduler
        .commit_step(commit(&successor[0], serde_json::json!("real")))
        .await
        .unwrap();
    scheduler
        .complete_execution(CompleteExecutionParams {
            lease: successor[0].lease.clone(),
            outcome: Outcome::Completed(serde_json::json!("real")),
        })
        .await
        .unwrap();

    // A late outcome from the zombie after completion is refused as well.
    let err = scheduler
        .complete_execution(CompleteExecutionParams {
            lease: zombie[0].lease.clone(),
            outcome: Outcome::Completed(serde_json::json!("zombie")),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::LeaseLost { .. }), "{err:?}");

    let execution = durable.status("contended").await.unwrap();
    assert_eq!(execution.status, ExecutionStatus::Completed);
    assert_eq!(execution.output, Some(serde_json::json!("real")));
    let client = db.client().await;
    let step: serde_json::Value = client
        .query_one(
            "select output from zart_steps where execution_id = 'contended'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        step,
        serde_json::json!("real"),
        "the zombie changed nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_workers_execution_is_finished_by_a_live_worker() {
    init_tracing();
    let h = echo_harness().await;
    let (db, durable, scheduler) = (&h.db, &h.durable, &h.scheduler);
    durable
        .start("stalled", "echo", serde_json::json!(7))
        .await
        .unwrap();
    let zombie = claim(scheduler, "zombie", Duration::from_secs(1)).await;
    assert_eq!(zombie.len(), 1);

    // A live worker finds it once the lease expires, without being told (its sweep and its
    // knowledge of the next due time wake it).
    h.spawn_worker(WorkerConfig::default());
    let done = durable
        .wait("stalled", Some(Duration::from_secs(15)))
        .await
        .unwrap();
    assert_eq!(done.status, ExecutionStatus::Completed);
    assert_eq!(done.attempts, 2);

    let err = scheduler
        .commit_step(commit(&zombie[0], serde_json::json!("late")))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::LeaseLost { .. }), "{err:?}");
    let client = db.client().await;
    assert_eq!(
        count(
            &client,
            "select count(*) from zart_steps where output = '\"late\"'"
        )
        .await,
        0
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_keep_a_long_step_from_being_taken_over() {
    init_tracing();
    let h = Harness::new().await;
    let client = h.db.client().await;
    // Two workers with a 1 s lease; the step takes 3 s. Without heartbeats the second worker
    // would take the execution over and run the step again.
    let config = WorkerConfig::default()
        .with_lease_duration(Duration::from_secs(1))
        .with_sweep_interval(Duration::from_millis(200));
    h.spawn_worker(config.clone());
    h.spawn_worker(config);
    let durable = &h.durable;
    durable
        .start_typed(
            "long-step",
            "counted",
            &tasks::CountedInput {
                steps: 1,
                step_ms: 3000,
            },
        )
        .await
        .unwrap();
    let done = durable
        .wait("long-step", Some(Duration::from_secs(20)))
        .await
        .unwrap();
    assert_eq!(done.status, ExecutionStatus::Completed);
    assert_eq!(done.attempts, 1, "never claimed a second time");
    assert_eq!(
        count(&client, "select count(*) from zart_test_side_effects").await,
        1,
        "the step body ran once"
    );
    h.stop().await;
}

async fn echo_harness() -> Harness {
    let mut registry = zart::TaskRegistry::new();
    registry.register("echo", tasks::Echo).unwrap();
    Harness::with_registry(registry).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_user_transaction_emitting_an_event_does_not_hold_up_heartbeats() {
    init_tracing();
    let h = echo_harness().await;
    for id in ["a", "b"] {
        h.durable
            .start(id, "echo", serde_json::json!(id))
            .await
            .unwrap();
    }
    let claimed = claim(&h.scheduler, "w", Duration::from_secs(30)).await;
    assert_eq!(claimed.len(), 2);
    // A user transaction sends an event to a running execution and stays open.
    let user = h.db.client().await;
    user.batch_execute("begin; select zart_emit_event('a', 'e', '1')")
        .await
        .unwrap();
    // The worker's heartbeat renews both leases meanwhile; it used to wait for that
    // transaction, and a transaction longer than the lease cost the worker all its leases.
    let held = tokio::time::timeout(
        Duration::from_secs(5),
        h.scheduler.heartbeat(HeartbeatParams {
            worker_id: "w".to_owned(),
            lease: Duration::from_secs(30),
            leases: claimed.iter().map(|t| t.lease.clone()).collect(),
        }),
    )
    .await
    .expect("the heartbeat waited for the user's transaction")
    .unwrap();
    assert_eq!(held.len(), 2);
    user.batch_execute("commit").await.unwrap();
    let client = h.db.client().await;
    assert_eq!(
        count(
            &client,
            "select count(*) from zart_events where execution_id = 'a'"
        )
        .await,
        1
    );
    h.stop().await;
}
