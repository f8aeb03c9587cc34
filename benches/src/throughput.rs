//! The raw PostgreSQL throughput baselines, plain tokio-postgres with no Zart, at the driver's
//! concurrency. Every statement is sent unnamed in one round trip (`query_typed`), as Zart
//! sends its own, so each is one transaction.
//!
//! - **C**: single-row autocommit inserts.
//! - **U**: claim ONE row with `FOR UPDATE SKIP LOCKED` (one statement, one commit), then
//!   mark it done by deleting it (a second commit).
//! - **B**: the same, 100 rows per claim.
//! - **BZ** ([`zart_shaped`]): Zart's own writes for a workflow of `steps` no-op steps, in
//!   plain SQL on Zart's own tables (pre-filled as a drain is): claim 100 task rows with a
//!   lease (the claim index entry moves, the execution's input is read, the commit does not
//!   wait for its flush), then for each step one statement that locks the leased task rows
//!   and inserts the step rows, then one that deletes the task rows and records the outcomes.
//!   No functions, no engine: what Zart's data model costs at the least, next to B's bare queue.
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

/// BZ's claim: 100 due task rows leased as `zart_claim_tasks` leases them (the lease moves
/// `run_at`, so the claim index entry moves), the input read from the execution rows; its
/// commit does not wait for the WAL flush, as the claim's does not.
const SHAPED_CLAIM: &str = "
    with due as materialized (
        select t.bucket, t.execution_id from public.zart_tasks t
         where t.queue = 'default' and t.task_name = $1 and t.priority = 0 and t.run_at <= now()
         order by t.run_at limit $2 for update skip locked
    ), claimed as (
        update public.zart_tasks t
           set locked_by = $3, run_at = now() + interval '5 minutes', fence = t.fence + 1,
               attempts = t.attempts + 1, started_at = coalesce(t.started_at, now())
          from due
         where t.bucket = due.bucket and t.execution_id = due.execution_id
        returning t.bucket, t.execution_id, t.fence
    )
    select c.bucket, c.execution_id, c.fence, e.input,
           set_config('synchronous_commit', 'off', true)
      from claimed c join public.zart_executions e on e.bucket = c.bucket and e.id = c.execution_id";

/// BZ's statements start from the leased task rows of a claimed batch (`$1`-`$3`: buckets,
/// ids, fences), locked with `lock` once their fence is checked.
fn shaped_held(lock: &str) -> String {
    format!(
        "with held as (
             select u.bucket, u.execution_id
               from unnest($1::int2[], $2::text[], $3::int8[]) as u(bucket, execution_id, fence)
              cross join lateral (
                    select 1 from public.zart_tasks t
                     where t.bucket = u.bucket and t.execution_id = u.execution_id
                       and t.fence = u.fence and t.locked_by is not null
                       for {lock}) l
         )"
    )
}

/// BZ's step: the leased task rows locked, the step rows inserted.
const SHAPED_STEP: &str = "
    insert into public.zart_steps
        (bucket, execution_id, name, seq, kind, status, output, attempts, created_at, updated_at)
    select h.bucket, h.execution_id, $4, $5, 'step', 'completed', to_jsonb($5), 1, now(), now()
      from held h";

/// BZ's outcome: the leased task rows deleted, the execution rows completed.
const SHAPED_COMPLETE: &str = "
    , removed as (
        delete from public.zart_tasks t using held h
         where t.bucket = h.bucket and t.execution_id = h.execution_id
        returning t.bucket, t.execution_id, t.attempts, t.started_at
    )
    update public.zart_executions e
       set status = 'completed', output = 'null', finished_at = now(), updated_at = now(),
           attempts = r.attempts, started_at = coalesce(e.started_at, r.started_at)
      from removed r
     where e.bucket = r.bucket and e.id = r.execution_id";

/// BZ: `clients` connections drain the pre-filled executions of `task` (due, one priority) in
/// plain SQL with Zart's writes, `batch` per claim, each claimed batch through `steps` step
/// statements and one outcome statement; returns executions done and the time taken.
///
/// # Errors
/// When a statement fails, or a step or outcome statement wrote fewer rows than it was given.
pub async fn zart_shaped(
    config: &Config,
    task: &str,
    steps: u32,
    batch: i32,
    clients: u32,
    bar: &Bar,
) -> Result<(u64, Duration)> {
    let step_sql = format!("{} {SHAPED_STEP}", shaped_held("no key update"));
    let complete_sql = format!("{} {SHAPED_COMPLETE}", shaped_held("update"));
    let connections = open(config, clients).await?;
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (c, client) in connections.into_iter().enumerate() {
        let (task, done) = (task.to_owned(), done.clone());
        let (step_sql, complete_sql) = (step_sql.clone(), complete_sql.clone());
        tasks.push(tokio::spawn(async move {
            let worker = format!("bz{c}");
            loop {
                let rows = client
                    .query_typed(
                        SHAPED_CLAIM,
                        &[
                            (&task, Type::TEXT),
                            (&batch, Type::INT4),
                            (&worker, Type::TEXT),
                        ],
                    )
                    .await
                    .context("BZ: claim")?;
                if rows.is_empty() {
                    return Ok::<_, anyhow::Error>(());
                }
                let mut buckets = Vec::with_capacity(rows.len());
                let mut ids = Vec::with_capacity(rows.len());
                let mut fences = Vec::with_capacity(rows.len());
                for row in &rows {
                    buckets.push(row.try_get::<_, i16>(0)?);
                    ids.push(row.try_get::<_, String>(1)?);
                    fences.push(row.try_get::<_, i64>(2)?);
                }
                let keys: [(&(dyn tokio_postgres::types::ToSql + Sync), Type); 3] = [
                    (&buckets, Type::INT2_ARRAY),
                    (&ids, Type::TEXT_ARRAY),
                    (&fences, Type::INT8_ARRAY),
                ];
                for seq in 0..steps {
                    let name = format!("step-{seq}");
                    let seq = i32::try_from(seq).unwrap_or(i32::MAX);
                    let mut params = keys.to_vec();
                    params.push((&name, Type::TEXT));
                    params.push((&seq, Type::INT4));
                    let written = client
                        .execute_typed(&step_sql, &params)
                        .await
                        .context("BZ: step")?;
                    if written != rows.len() as u64 {
                        anyhow::bail!("BZ: a step wrote {written} of {} rows", rows.len());
                    }
                }
                let completed = client
                    .execute_typed(&complete_sql, &keys)
                    .await
                    .context("BZ: outcome")?;
                if completed != rows.len() as u64 {
                    anyhow::bail!("BZ: {completed} of {} outcomes were written", rows.len());
                }
                done.fetch_add(completed, Ordering::Relaxed);
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
