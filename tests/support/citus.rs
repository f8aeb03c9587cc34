//! Test databases on a Citus cluster (issue #19's proof, `ci/citus-proof`): when the server
//! under test is a Citus coordinator (its `postgres` database has the extension and worker
//! nodes), each test database is created on every node, given the extension, the nodes are
//! registered in it, and it is migrated (`zart migrate` then distributes the tables). No
//! template: a clone would copy the coordinator's metadata but not the workers' shards.

use std::str::FromStr;

use tokio_postgres::NoTls;

use crate::{connect, rand_suffix, url_with_db, TestDb, COUNTER};

/// The worker nodes (`host:port`) of the cluster `admin` is connected to, or `None` when it is
/// not a Citus coordinator with workers.
pub async fn workers(admin: &tokio_postgres::Client) -> Option<Vec<(String, u16)>> {
    let has_citus: bool = admin
        .query_one(
            "select exists (select from pg_extension where extname = 'citus')",
            &[],
        )
        .await
        .ok()?
        .get(0);
    if !has_citus {
        return None;
    }
    let rows = admin
        .query(
            "select nodename::text, nodeport from pg_dist_node where groupid <> 0 order by nodeid",
            &[],
        )
        .await
        .ok()?;
    let workers: Vec<(String, u16)> = rows
        .iter()
        .map(|r| (r.get(0), u16::try_from(r.get::<_, i32>(1)).unwrap()))
        .collect();
    (!workers.is_empty()).then_some(workers)
}

/// The URL of database `db` on the node at `host:port`, with the coordinator's credentials.
fn node_url(server: &str, (host, port): (&str, u16), db: &str) -> String {
    let mut config = tokio_postgres::Config::from_str(&url_with_db(server, db)).unwrap();
    config.host(host).port(port);
    let user = config.get_user().unwrap_or("postgres").to_owned();
    format!("postgres://{user}@{host}:{port}/{db}?sslmode=disable")
}

/// Creates database `db` on one node with the citus extension and the test clock on.
async fn create_on(url_postgres: &str, url_db: &str, db: &str) {
    let admin = connect(url_postgres).await;
    admin
        .batch_execute(&format!("create database {db}"))
        .await
        .unwrap_or_else(|e| panic!("cannot create {db} at {url_postgres}: {e}"));
    admin
        .batch_execute(&format!("alter database {db} set zart.test_clock = 'on'"))
        .await
        .unwrap();
    let client = connect(url_db).await;
    client
        .batch_execute("create extension citus")
        .await
        .unwrap_or_else(|e| panic!("cannot create the citus extension at {url_db}: {e}"));
}

/// A fresh database on every node of the cluster, its workers registered, migrated.
pub async fn new_db(server: &str, workers: &[(String, u16)]) -> TestDb {
    let name = format!(
        "zart_t_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst),
        rand_suffix()
    );
    let coordinator = tokio_postgres::Config::from_str(server).unwrap();
    let host = match coordinator.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => panic!("a Citus coordinator is reached over TCP in these tests"),
    };
    let port = coordinator.get_ports().first().copied().unwrap_or(5432);
    let url = url_with_db(server, &name);
    create_on(&url_with_db(server, "postgres"), &url, &name).await;
    for (h, p) in workers {
        create_on(
            &node_url(server, (h, *p), "postgres"),
            &node_url(server, (h, *p), &name),
            &name,
        )
        .await;
    }
    let client = connect(&url).await;
    client
        .query_one(
            "select citus_set_coordinator_host($1, $2)",
            &[&host, &i32::from(port)],
        )
        .await
        .unwrap();
    for (h, p) in workers {
        client
            .query_one("select citus_add_node($1, $2)", &[h, &i32::from(*p)])
            .await
            .unwrap_or_else(|e| panic!("cannot add node {h}:{p} to {name}: {e}"));
    }
    zart_pg::migrate(&tokio_postgres::Config::from_str(&url).unwrap())
        .await
        .unwrap_or_else(|e| panic!("migrating {name} on Citus failed: {e:#?}"));
    TestDb {
        url,
        name,
        server: server.to_owned(),
        citus: true,
    }
}

/// Drops database `db` on a worker node (the coordinator's copy is dropped by the caller).
pub async fn drop_db(worker: &(String, u16), db: &str) {
    let url = format!(
        "postgres://postgres@{}:{}/postgres?sslmode=disable",
        worker.0, worker.1
    );
    if let Ok((client, conn)) = tokio_postgres::connect(&url, NoTls).await {
        tokio::spawn(conn);
        let _ = client
            .batch_execute(&format!("drop database if exists {db} with (force)"))
            .await;
    }
}
