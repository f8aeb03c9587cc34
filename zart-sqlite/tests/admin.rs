//! The operator side on SQLite: the audit log's contract (`zart_conformance::audit`), its
//! rows readable with plain SQL, and the executions list's id prefix search.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod support;

use zart::admin::{Admin, ListExecutionsParams};
use zart::scheduler::StartExecutionParams;
use zart::Scheduler;
use zart_sqlite::SqliteOptions;

#[tokio::test]
async fn the_audit_log_holds_its_contract_and_reads_with_sql() {
    let db = support::db_with("audit", SqliteOptions::default()).await;
    zart_conformance::audit::audit_log_contract(&db.s).await;
    let conn = db.conn.lock().unwrap();
    let (actor, db_role): (String, String) = conn
        .query_row(
            "select actor, db_role from zart_audit_log order by id limit 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((actor.as_str(), db_role.as_str()), ("alice", "sqlite"));
}

#[tokio::test]
async fn the_list_searches_ids_by_prefix() {
    let db = support::db_with("prefix", SqliteOptions::default()).await;
    for id in ["order-1", "order-2", "Order-3", "order_4", "ordér-5"] {
        db.s.start_execution(StartExecutionParams {
            id: id.to_owned(),
            task_name: "t".to_owned(),
            input: serde_json::json!(1),
            queue: "default".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let search = |prefix: &str| {
        let mut p = ListExecutionsParams::new(10);
        p.id_prefix = Some(prefix.to_owned());
        p
    };
    let ids = |page: zart::admin::ExecutionPage| {
        let mut ids: Vec<String> = page.executions.into_iter().map(|e| e.id).collect();
        ids.sort();
        ids
    };
    assert_eq!(
        ids(db.s.list_executions(search("order-")).await.unwrap()),
        ["order-1", "order-2"]
    );
    assert_eq!(
        ids(db.s.list_executions(search("ordé")).await.unwrap()),
        ["ordér-5"]
    );
    assert!(ids(db.s.list_executions(search("order%")).await.unwrap()).is_empty());
    let err = db.s.list_executions(search("")).await.unwrap_err();
    assert_eq!(err.code(), "invalid_input", "{err}");
}

#[tokio::test]
async fn workers_are_recorded_and_listed() {
    let db = support::db_with("workers", SqliteOptions::default()).await;
    zart_conformance::presence::presence_contract(&db.s).await;
}
