//! Idempotent start: one id gives one execution, however often and however concurrently it is
//! started; a different task or input under the same id is a clear conflict.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::Arc;

use zart::{DurableScheduler, Error, ExecutionStatus, TaskRegistry};
use zart_tests::{count, init_tracing, tasks, TestDb};

fn registry() -> Arc<TaskRegistry> {
    let mut registry = TaskRegistry::new();
    registry.register("echo", tasks::Echo).unwrap();
    registry.register("echo-too", tasks::Echo).unwrap();
    Arc::new(registry)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_id_started_twice_gives_one_execution() {
    init_tracing();
    let db = TestDb::new().await;
    let durable = DurableScheduler::new(db.scheduler().await, registry());
    let input = serde_json::json!({"user": "u-42", "n": 1});
    let first = durable.start("twice", "echo", input.clone()).await.unwrap();
    let second = durable.start("twice", "echo", input.clone()).await.unwrap();
    assert!(first.created);
    assert!(!second.created);
    assert_eq!(second.status, ExecutionStatus::Scheduled);
    // Key order and spacing do not make a different input: JSON is compared as JSON.
    let reordered = serde_json::from_str(r#"{ "n": 1, "user": "u-42" }"#).unwrap();
    assert!(
        !durable
            .start("twice", "echo", reordered)
            .await
            .unwrap()
            .created
    );

    let client = db.client().await;
    assert_eq!(
        count(&client, "select count(*) from zart_executions").await,
        1
    );
    assert_eq!(count(&client, "select count(*) from zart_tasks").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_starts_of_one_id_give_one_execution() {
    init_tracing();
    let db = TestDb::new().await;
    let durable = DurableScheduler::new(db.scheduler().await, registry());
    let mut handles = Vec::new();
    for _ in 0..50 {
        let durable = durable.clone();
        handles.push(tokio::spawn(async move {
            durable
                .start("raced", "echo", serde_json::json!({"same": true}))
                .await
        }));
    }
    let mut created = 0;
    for handle in handles {
        if handle.await.unwrap().unwrap().created {
            created += 1;
        }
    }
    assert_eq!(
        created, 1,
        "exactly one of the 50 calls creates the execution"
    );
    let client = db.client().await;
    assert_eq!(
        count(&client, "select count(*) from zart_executions").await,
        1
    );
    assert_eq!(count(&client, "select count(*) from zart_tasks").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_id_with_another_task_or_input_is_a_conflict() {
    init_tracing();
    let db = TestDb::new().await;
    let durable = DurableScheduler::new(db.scheduler().await, registry());
    durable
        .start("order-7", "echo", serde_json::json!({"qty": 1}))
        .await
        .unwrap();

    let err = durable
        .start("order-7", "echo", serde_json::json!({"qty": 2}))
        .await
        .unwrap_err();
    match &err {
        Error::Conflict { id, detail } => {
            assert_eq!(id, "order-7");
            assert_eq!(
                detail,
                "execution \"order-7\" already exists with a different input"
            );
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "start conflict: execution \"order-7\" already exists with a different input"
    );

    let err = durable
        .start("order-7", "echo-too", serde_json::json!({"qty": 1}))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("already exists with task \"echo\", not \"echo-too\""),
        "{err}"
    );

    // Nothing changed.
    let status = durable.status("order-7").await.unwrap();
    assert_eq!(status.input, serde_json::json!({"qty": 1}));
    assert_eq!(status.task_name, "echo");
    let client = db.client().await;
    assert_eq!(
        count(&client, "select count(*) from zart_executions").await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_ids_are_data_and_bad_ones_are_refused_before_anything_is_written() {
    init_tracing();
    let db = TestDb::new().await;
    let durable = DurableScheduler::new(db.scheduler().await, registry());
    let long_ok = "x".repeat(255);
    let odd = [
        "it's",
        "a_b",
        "aXb",
        "50%",
        "back\\slash",
        "quote\"d",
        "🦀 crab",
        "'; drop table zart_executions; --",
        long_ok.as_str(),
    ];
    for id in odd {
        assert!(
            durable
                .start(id, "echo", serde_json::json!(id))
                .await
                .unwrap()
                .created,
            "{id}"
        );
    }
    for id in odd {
        let execution = durable.status(id).await.unwrap();
        assert_eq!(execution.id, id);
        assert_eq!(execution.input, serde_json::json!(id));
    }

    let too_long = "y".repeat(256);
    for (id, expected) in [
        ("", "invalid execution id: must not be empty"),
        (
            "nul\0byte",
            "invalid execution id: must not contain a NUL character (\\0)",
        ),
        (
            too_long.as_str(),
            "invalid execution id: 256 bytes is over the limit of 255 bytes",
        ),
    ] {
        let err = durable
            .start(id, "echo", serde_json::json!(1))
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), expected);
    }
    let small = DurableScheduler::new(db.scheduler().await, registry()).with_max_payload_bytes(64);
    let err = small
        .start("big", "echo", serde_json::json!("z".repeat(100)))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid input: 102 bytes of JSON is over the limit of 64 bytes"
    );

    let client = db.client().await;
    assert_eq!(
        count(&client, "select count(*) from zart_executions").await,
        odd.len() as i64,
        "refused starts wrote nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_typed_refuses_an_input_of_the_wrong_type() {
    init_tracing();
    let db = TestDb::new().await;
    let mut registry = TaskRegistry::new();
    registry
        .register(
            "counted",
            tasks::Counted {
                pool: zart_pg::PgPool::connect_lazy(&db.url, 1)
                    .unwrap()
                    .pool()
                    .clone(),
            },
        )
        .unwrap();
    let durable = DurableScheduler::new(db.scheduler().await, Arc::new(registry));
    let err = durable
        .start_typed("typed", "counted", &"not a CountedInput".to_owned())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains(
            "task \"counted\" takes zart_tests::tasks::CountedInput, not alloc::string::String"
        ),
        "{err}"
    );
    let ok = durable
        .start_typed(
            "typed",
            "counted",
            &tasks::CountedInput {
                steps: 1,
                step_ms: 0,
            },
        )
        .await
        .unwrap();
    assert!(ok.created);
}
