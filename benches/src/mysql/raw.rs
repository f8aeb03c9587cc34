//! The raw MySQL/MariaDB baselines, plain mysql_async on ONE connection from
//! [`zart_mysql::pool_for`] (Zart's session settings: READ COMMITTED, UTC, utf8mb4, prepared
//! statements cached), no Zart:
//! **M0**, one single-row insert commit after an idle gap, as a pickup's `start()` comes (the
//! floor under any durable start on an idle server);
//! **M1**, single-row autocommit inserts, one row per transaction (commits/s);
//! **MB**, a job queue drained 100 rows per transaction: `start transaction`, select the 100
//! lowest ids `for update skip locked` (primary-key order), delete them with one
//! `delete .. where id in (..)`, `commit` (rows/s; `start transaction` and `commit` as
//! statements, as Zart's writer sends them).
//!
//! Each baseline makes its InnoDB table in the scratch database and drops it afterwards.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Pool, Value};

use crate::stats::{Gap, Rng};

/// Rows claimed per MB transaction.
pub const MB_BATCH: usize = 100;

/// Rows per insert statement while MB's queue is filled (untimed).
const FILL_BATCH: u32 = 1000;

/// Creates `table` (dropping a leftover) with a key, and `columns`.
async fn create(conn: &mut Conn, table: &str, columns: &str) -> Result<()> {
    conn.query_drop(format!("drop table if exists {table}"))
        .await?;
    conn.query_drop(format!(
        "create table {table} (id bigint not null auto_increment primary key, {columns}) \
         engine = InnoDB"
    ))
    .await?;
    Ok(())
}

/// M1: `count` single-row inserts, each its own transaction (autocommit) on one connection;
/// returns the time they took.
///
/// # Errors
/// When a statement fails.
pub async fn inserts(pool: &Pool, count: u32) -> Result<Duration> {
    let mut conn = pool.get_conn().await?;
    create(&mut conn, "bench_m1", "payload text not null").await?;
    let insert = "insert into bench_m1 (payload) values (?)";
    conn.exec_drop(insert, (String::from("{\"n\":-1}"),))
        .await?;
    let started = Instant::now();
    for i in 0..count {
        conn.exec_drop(insert, (format!("{{\"n\":{i}}}"),)).await?;
    }
    let took = started.elapsed();
    conn.query_drop("drop table bench_m1").await?;
    Ok(took)
}

/// MB: fills a queue of `count` rows (untimed), then drains it [`MB_BATCH`] rows per
/// transaction: `start transaction`; `select id from bench_mb order by id limit 100 for
/// update skip locked`; `delete from bench_mb where id in (..)`; `commit`. Returns the rows
/// done and the time the drain took.
///
/// # Errors
/// When a statement fails, or the drain did not take every row.
pub async fn claims(pool: &Pool, count: u32) -> Result<(u64, Duration)> {
    let mut conn = pool.get_conn().await?;
    create(&mut conn, "bench_mb", "payload text not null").await?;
    conn.query_drop("start transaction").await?;
    let mut next = 0u32;
    while next < count {
        let end = (next + FILL_BATCH).min(count);
        let rows: Vec<String> = (next..end).map(|i| format!("('{{\"n\":{i}}}')")).collect();
        conn.query_drop(format!(
            "insert into bench_mb (payload) values {}",
            rows.join(", ")
        ))
        .await?;
        next = end;
    }
    conn.query_drop("commit").await?;
    conn.query_drop("analyze table bench_mb").await?;
    let select =
        format!("select id from bench_mb order by id limit {MB_BATCH} for update skip locked");
    let mut done = 0u64;
    let started = Instant::now();
    loop {
        conn.query_drop("start transaction").await?;
        let ids: Vec<i64> = conn.exec(select.as_str(), ()).await?;
        if !ids.is_empty() {
            let marks = vec!["?"; ids.len()].join(", ");
            let params: Vec<Value> = ids.iter().map(|id| Value::Int(*id)).collect();
            conn.exec_drop(
                format!("delete from bench_mb where id in ({marks})"),
                params,
            )
            .await?;
        }
        conn.query_drop("commit").await?;
        done += ids.len() as u64;
        if ids.len() < MB_BATCH || done == u64::from(count) {
            break;
        }
    }
    let took = started.elapsed();
    conn.query_drop("drop table bench_mb").await?;
    if done != u64::from(count) {
        bail!("MB: {done} of {count} rows were done");
    }
    Ok((done, took))
}

/// M0: `warmup + samples` single-row autocommit insert commits, each after a random idle
/// `gap` (the pickup phases' gaps); returns the measured ones.
///
/// # Errors
/// When a statement fails.
pub async fn idle_commits(
    pool: &Pool,
    warmup: usize,
    samples: usize,
    gap: Gap,
    rng: &mut Rng,
) -> Result<Vec<Duration>> {
    let mut conn = pool.get_conn().await?;
    create(&mut conn, "bench_m0", "payload text not null").await?;
    let mut out = Vec::with_capacity(samples);
    for i in 0..warmup + samples {
        gap.sleep(rng).await;
        let started = Instant::now();
        conn.exec_drop(
            "insert into bench_m0 (payload) values (?)",
            (format!("{{\"n\":{i}}}"),),
        )
        .await?;
        let took = started.elapsed();
        if i >= warmup {
            out.push(took);
        }
    }
    conn.query_drop("drop table bench_m0").await?;
    Ok(out)
}
