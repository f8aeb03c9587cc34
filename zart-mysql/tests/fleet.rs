//! Two schedulers on one database (two pools and writers, as two processes would have) claim
//! the same queue at once: `FOR UPDATE SKIP LOCKED` hands every task to exactly one of them,
//! and both take part.
//!
//! Needs a server: `eval "$(ci/mariadb-up)"` (or `ZART_MYSQL_URL`, default
//! `mysql://root@127.0.0.1:3306`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use zart::scheduler::{ClaimTasksParams, StartExecutionParams};
use zart::Scheduler;
use zart_mysql::MySqlScheduler;

const TASKS: usize = 300;

async fn drain(scheduler: Arc<MySqlScheduler>, worker: &str) -> Vec<String> {
    let mut claimed = Vec::new();
    let mut empty = 0;
    while empty < 3 {
        let tasks = scheduler
            .claim_tasks(ClaimTasksParams {
                queue: "default".to_owned(),
                task_names: vec!["t".to_owned()],
                worker_id: worker.to_owned(),
                limit: 7,
                lease: Duration::from_secs(600),
                ..Default::default()
            })
            .await
            .unwrap();
        if tasks.is_empty() {
            empty += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        } else {
            empty = 0;
            claimed.extend(tasks.into_iter().map(|t| t.lease.execution_id));
        }
    }
    claimed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claims_of_two_schedulers_never_hand_out_a_task_twice() {
    let name = format!("zart_fleet_{}", std::process::id());
    let url = support::fresh_database(&name).await;
    zart_mysql::migrate(&url).await.unwrap();
    let a = Arc::new(MySqlScheduler::connect(&url).await.unwrap());
    let b = Arc::new(MySqlScheduler::connect(&url).await.unwrap());
    for n in 0..TASKS {
        a.start_execution(StartExecutionParams {
            id: format!("e{n}"),
            task_name: "t".to_owned(),
            input: serde_json::json!(n),
            queue: "default".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let (from_a, from_b) = tokio::join!(
        tokio::spawn(drain(a.clone(), "a")),
        tokio::spawn(drain(b.clone(), "b"))
    );
    let (from_a, from_b) = (from_a.unwrap(), from_b.unwrap());
    let all: Vec<&String> = from_a.iter().chain(&from_b).collect();
    let distinct: HashSet<&String> = all.iter().copied().collect();
    assert_eq!(distinct.len(), all.len(), "a task was claimed twice");
    assert_eq!(all.len(), TASKS);
    assert!(
        !from_a.is_empty() && !from_b.is_empty(),
        "both take part: a {} b {}",
        from_a.len(),
        from_b.len()
    );
    Arc::into_inner(a).unwrap().close().await;
    Arc::into_inner(b).unwrap().close().await;
    support::drop_database(&name).await;
}
