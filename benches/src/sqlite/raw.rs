//! The raw SQLite baselines, plain rusqlite on one connection with Zart's settings, no Zart:
//! **S0**, one single-row insert commit after an idle gap, as a pickup's `start()` comes (the
//! floor under any durable start on an idle machine);
//! **S1**, single-row inserts, one row per transaction (commits/s); **SB**, a job queue with an
//! index on `run_at`, drained 100 rows per transaction: select the 100 most overdue rows,
//! delete them one by one with a prepared statement, commit (rows/s).
//!
//! Each baseline makes its table in the scratch database and drops it afterwards.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use zart_sqlite::Synchronous;

use crate::stats::{Gap, Rng};

use super::raw_connection;

/// Rows claimed per SB transaction.
pub const SB_BATCH: usize = 100;

/// S1: `count` single-row inserts, each its own transaction (autocommit) on one connection;
/// returns the time they took. Blocking.
///
/// # Errors
/// When a statement fails.
pub fn inserts(path: &Path, sync: Synchronous, count: u32) -> Result<Duration> {
    let conn = raw_connection(path, sync)?;
    conn.execute_batch(
        "drop table if exists bench_s1;
         create table bench_s1 (id integer primary key, payload text not null)",
    )?;
    let took = {
        let mut insert = conn.prepare("insert into bench_s1 (payload) values (?1)")?;
        let started = Instant::now();
        for i in 0..count {
            insert.execute([format!("{{\"n\":{i}}}")])?;
        }
        started.elapsed()
    };
    conn.execute_batch("drop table bench_s1")?;
    Ok(took)
}

/// SB: fills a queue of `count` due rows (one transaction, untimed), then drains it
/// [`SB_BATCH`] rows per `begin immediate` transaction: select the most overdue rows through
/// the `run_at` index, delete each, commit. Returns the rows done and the time the drain took.
/// Blocking.
///
/// # Errors
/// When a statement fails, or the drain did not take every row.
pub fn claims(path: &Path, sync: Synchronous, count: u32) -> Result<(u64, Duration)> {
    let mut conn = raw_connection(path, sync)?;
    conn.execute_batch(
        "drop table if exists bench_sb;
         create table bench_sb (id integer primary key, run_at integer not null,
                                payload text not null);
         create index bench_sb_run_at_idx on bench_sb (run_at);",
    )?;
    {
        let tx = conn.transaction()?;
        {
            let mut insert =
                tx.prepare("insert into bench_sb (run_at, payload) values (?1, ?2)")?;
            for i in 0..count {
                insert.execute((i64::from(i), format!("{{\"n\":{i}}}")))?;
            }
        }
        tx.commit()?;
    }
    conn.execute_batch("analyze")?;
    let now = i64::from(count) + 1;
    let mut done = 0u64;
    let started = Instant::now();
    loop {
        conn.execute_batch("begin immediate")?;
        let ids = {
            let mut due = conn.prepare_cached(
                "select id from bench_sb where run_at <= ?1 order by run_at limit ?2",
            )?;
            let rows = due.query_map((now, SB_BATCH as i64), |r| r.get::<_, i64>(0))?;
            rows.collect::<rusqlite::Result<Vec<i64>>>()?
        };
        {
            let mut delete = conn.prepare_cached("delete from bench_sb where id = ?1")?;
            for id in &ids {
                delete.execute([id])?;
            }
        }
        conn.execute_batch("commit")?;
        done += ids.len() as u64;
        if ids.len() < SB_BATCH || done == u64::from(count) {
            break;
        }
    }
    let took = started.elapsed();
    conn.execute_batch("drop table bench_sb")?;
    if done != u64::from(count) {
        bail!("SB: {done} of {count} rows were done");
    }
    Ok((done, took))
}

/// S0: `warmup + samples` single-row insert commits, each after a random idle `gap` (the
/// pickup phases' gaps); returns the measured ones. The commit runs on the calling thread,
/// as the raw floor under Zart's `start()`.
///
/// # Errors
/// When a statement fails.
pub async fn idle_commits(
    path: &Path,
    sync: Synchronous,
    warmup: usize,
    samples: usize,
    gap: Gap,
    rng: &mut Rng,
) -> Result<Vec<Duration>> {
    let conn = raw_connection(path, sync)?;
    conn.execute_batch(
        "drop table if exists bench_s0;
         create table bench_s0 (id integer primary key, payload text not null)",
    )?;
    let mut out = Vec::with_capacity(samples);
    for i in 0..warmup + samples {
        gap.sleep(rng).await;
        let started = Instant::now();
        conn.prepare_cached("insert into bench_s0 (payload) values (?1)")?
            .execute([format!("{{\"n\":{i}}}")])?;
        let took = started.elapsed();
        if i >= warmup {
            out.push(took);
        }
    }
    conn.execute_batch("drop table bench_s0")?;
    Ok(out)
}
