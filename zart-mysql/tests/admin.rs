//! The operator reads (`zart list`, `zart show`, queue stats) on MySQL: pages newest first with
//! a cursor and a status filter, one execution in full, and the live queue by status.
//!
//! Needs a server: `eval "$(ci/mariadb-up)"` (or `ZART_MYSQL_URL`, default
//! `mysql://root@127.0.0.1:3306`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod support;

use zart::admin::{Admin, ListExecutionsParams};
use zart::scheduler::{SendEventParams, StartExecutionParams};
use zart::{ExecutionStatus, Scheduler};
use zart_mysql::MySqlScheduler;

#[tokio::test]
async fn executions_are_listed_described_and_counted() {
    let name = format!("zart_admin_{}", std::process::id());
    let url = support::fresh_database(&name).await;
    zart_mysql::migrate(&url).await.unwrap();
    let scheduler = MySqlScheduler::connect(&url).await.unwrap();
    for id in ["a", "b", "c"] {
        scheduler
            .start_execution(StartExecutionParams {
                id: id.to_owned(),
                task_name: "t".to_owned(),
                input: serde_json::json!({ "id": id }),
                queue: "default".to_owned(),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    scheduler.cancel_execution("b").await.unwrap();
    scheduler
        .send_event(SendEventParams {
            execution_id: "c".to_owned(),
            name: "go".to_owned(),
            payload: serde_json::json!(1),
        })
        .await
        .unwrap();

    let first = scheduler
        .list_executions(ListExecutionsParams::new(2))
        .await
        .unwrap();
    let ids: Vec<&str> = first.executions.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["c", "b"], "newest first");
    let mut next = ListExecutionsParams::new(2);
    next.after = first.next_after.clone();
    let second = scheduler.list_executions(next).await.unwrap();
    let ids: Vec<&str> = second.executions.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["a"]);
    let mut cancelled = ListExecutionsParams::new(10);
    cancelled.statuses = vec![ExecutionStatus::Cancelled];
    let only = scheduler.list_executions(cancelled).await.unwrap();
    let ids: Vec<&str> = only.executions.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["b"]);

    let detail = scheduler.describe_execution("c").await.unwrap().unwrap();
    assert_eq!(detail.execution.input, serde_json::json!({ "id": "c" }));
    assert!(detail.task.is_some());
    assert_eq!(detail.pending_events.len(), 1);
    assert!(scheduler.describe_execution("zz").await.unwrap().is_none());

    let stats = scheduler.queue_stats().await.unwrap();
    assert_eq!(stats.len(), 1);
    assert_eq!(stats[0].queue, "default");
    assert_eq!(stats[0].due, 2, "{stats:?}");

    scheduler.close().await;
    support::drop_database(&name).await;
}

#[tokio::test]
async fn the_audit_log_holds_its_contract_and_ids_are_searched_by_prefix() {
    let name = format!("zart_admin_audit_{}", std::process::id());
    let url = support::fresh_database(&name).await;
    zart_mysql::migrate(&url).await.unwrap();
    let scheduler = MySqlScheduler::connect(&url).await.unwrap();
    zart_conformance::audit::audit_log_contract(&scheduler).await;

    for id in ["order-1", "order-2", "Order-3", "order_4", "ordér-5"] {
        scheduler
            .start_execution(StartExecutionParams {
                id: id.to_owned(),
                task_name: "t".to_owned(),
                input: serde_json::json!(1),
                queue: "default".to_owned(),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    for (prefix, expected) in [
        ("order-", &["order-1", "order-2"][..]),
        ("ordé", &["ordér-5"][..]),
        ("order%", &[][..]),
    ] {
        let mut p = ListExecutionsParams::new(10);
        p.id_prefix = Some(prefix.to_owned());
        let mut ids: Vec<String> = scheduler
            .list_executions(p)
            .await
            .unwrap()
            .executions
            .into_iter()
            .map(|e| e.id)
            .collect();
        ids.sort();
        assert_eq!(ids, expected, "{prefix}");
    }
    scheduler.close().await;
    support::drop_database(&name).await;
}

#[tokio::test]
async fn workers_are_recorded_and_listed() {
    let name = format!("zart_admin_workers_{}", std::process::id());
    let url = support::fresh_database(&name).await;
    zart_mysql::migrate(&url).await.unwrap();
    let scheduler = MySqlScheduler::connect(&url).await.unwrap();
    zart_conformance::presence::presence_contract(&scheduler).await;
    scheduler.close().await;
    support::drop_database(&name).await;
}
