//! The raw PostgreSQL throughput baselines, plain tokio-postgres with no Zart, at the driver's
//! concurrency. Every statement is sent unnamed in one round trip (`query_typed`), as Zart
//! sends its own, so each is one transaction.
//!
//! - **C**: single-row autocommit inserts.
//! - **U**: claim ONE row with `FOR UPDATE SKIP LOCKED` (one statement, one commit), then
//!   mark it done by deleting it (a second commit).
//! - **B**: the same, 100 rows per claim.
//!
//! Each function only runs the timed part; the `prepare_*` ones create and fill the tables
//! beforehand, and [`drop_table`] removes them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio_postgres::types::Type;
use tokio_postgres::{Client, Config};

use crate::progress::Bar;
use crate::scratch::connect;

/// The table C inserts into.
pub const INSERT_TABLE: &str = "bench_inserts";

/// Creates the table C inserts into.
///
/// # Errors
/// When the statement fails.
pub async fn prepare_inserts(client: &Client) -> Result<()> {
    client
        .batch_execute(&format!(
            "create table {INSERT_TABLE} (id bigserial primary key, payload jsonb not null)"
        ))
        .await
        .context("C: creating the insert table")
}

/// Creates `table` as a job queue with `count` due rows, vacuumed and analysed.
///
/// # Errors
/// When a statement fails.
pub async fn prepare_queue(client: &Client, table: &str, count: u32) -> Result<()> {
    client
        .batch_execute(&format!(
            "create table {table} (id bigserial primary key,
                                   run_at timestamptz not null default now(),
                                   locked_by text);
             create index {table}_run_at_idx on {table} (run_at);"
        ))
        .await
        .with_context(|| format!("creating {table}"))?;
    client
        .execute(
            &format!("insert into {table} (run_at) select now() from generate_series(1, $1::int)"),
            &[&i32::try_from(count).unwrap_or(i32::MAX)],
        )
        .await
        .with_context(|| format!("filling {table}"))?;
    client
        .batch_execute(&format!("vacuum analyze {table}"))
        .await
        .with_context(|| format!("vacuuming {table}"))
}

/// Drops a baseline table.
///
/// # Errors
/// When the statement fails.
pub async fn drop_table(client: &Client, table: &str) -> Result<()> {
    client
        .batch_execute(&format!("drop table if exists {table}"))
        .await
        .with_context(|| format!("dropping {table}"))
}

/// Opens `clients` connections (before any timing starts).
async fn open(config: &Config, clients: u32) -> Result<Vec<Client>> {
    let mut out = Vec::with_capacity(clients as usize);
    for _ in 0..clients {
        out.push(connect(config).await.context("opening a client")?);
    }
    Ok(out)
}

/// C: `count` single-row autocommit inserts from `clients` connections at once; returns
/// the rows inserted and the time they took.
///
/// # Errors
/// When a statement fails.
pub async fn inserts(
    config: &Config,
    count: u32,
    clients: u32,
    bar: &Bar,
) -> Result<(u64, Duration)> {
    let per_client = count / clients.max(1);
    let connections = open(config, clients).await?;
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client in connections {
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            let sql = format!("insert into {INSERT_TABLE} (payload) values ($1)");
            for i in 0..per_client {
                let payload = serde_json::json!({ "n": i });
                client.query_typed(&sql, &[(&payload, Type::JSONB)]).await?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    wait_all(tasks, &done, bar).await?;
    Ok((u64::from(per_client * clients), started.elapsed()))
}

/// U and B: `clients` connections drain the queue `table` (filled by [`prepare_queue`]),
/// each claiming `batch` rows per statement with `FOR UPDATE SKIP LOCKED` and then deleting
/// them by id; returns the rows done and the time it took.
///
/// # Errors
/// When a statement fails.
pub async fn claims(
    config: &Config,
    table: &str,
    batch: i32,
    clients: u32,
    bar: &Bar,
) -> Result<(u64, Duration)> {
    let connections = open(config, clients).await?;
    let done = Arc::new(AtomicU64::new(0));
    let claim = format!(
        "update {table} j set locked_by = $1
           from (select id from {table} where locked_by is null and run_at <= now()
                  order by run_at limit $2 for update skip locked) c
          where j.id = c.id returning j.id"
    );
    let delete = format!("delete from {table} where id = any($1)");
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (c, client) in connections.into_iter().enumerate() {
        let (claim, delete, done) = (claim.clone(), delete.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let worker = format!("w{c}");
            loop {
                let rows = client
                    .query_typed(&claim, &[(&worker, Type::TEXT), (&batch, Type::INT4)])
                    .await?;
                if rows.is_empty() {
                    return Ok::<_, anyhow::Error>(());
                }
                let ids = rows
                    .iter()
                    .map(|r| r.try_get(0))
                    .collect::<Result<Vec<i64>, _>>()?;
                client
                    .query_typed(&delete, &[(&ids, Type::INT8_ARRAY)])
                    .await?;
                done.fetch_add(ids.len() as u64, Ordering::Relaxed);
            }
        }));
    }
    wait_all(tasks, &done, bar).await?;
    Ok((done.load(Ordering::Relaxed), started.elapsed()))
}

/// Awaits the client tasks, moving `bar` along with `done` meanwhile.
async fn wait_all(
    tasks: Vec<tokio::task::JoinHandle<Result<()>>>,
    done: &AtomicU64,
    bar: &Bar,
) -> Result<()> {
    let all = futures_util::future::try_join_all(tasks);
    tokio::pin!(all);
    loop {
        tokio::select! {
            results = &mut all => {
                for result in results? {
                    result?;
                }
                bar.set(done.load(Ordering::Relaxed));
                return Ok(());
            }
            _ = tokio::time::sleep(Duration::from_millis(100)) => {
                bar.set(done.load(Ordering::Relaxed));
            }
        }
    }
}
