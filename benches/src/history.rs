//! Z7: a large history of finished executions, filled fast with set-based SQL, and the sizes
//! of Zart's tables.

use anyhow::{Context, Result};
use serde::Serialize;
use tokio_postgres::Client;

use crate::progress::Bar;

/// The task name of the history rows (no worker ever runs it).
pub const HISTORY_TASK: &str = "history-noop1";

/// Rows per statement while filling.
const CHUNK: i64 = 50_000;

/// Inserts `total` completed executions, each with one completed step, as a one-step no-op
/// drain leaves them (input `1`, output `null`, finished a day ago); then vacuums, analyses
/// and checkpoints so the next phase does not pay for the fill.
///
/// # Errors
/// When a statement fails.
pub async fn fill(client: &Client, total: u64, bar: &Bar) -> Result<()> {
    let total = i64::try_from(total).unwrap_or(i64::MAX);
    let mut from = 1;
    while from <= total {
        let to = (from + CHUNK - 1).min(total);
        client
            .execute(
                "with e as (
                   insert into public.zart_executions
                       (bucket, id, task_name, queue, input, status, output, attempts,
                        created_at, started_at, updated_at, finished_at)
                   select public.zart_bucket(h.id), h.id, $3, 'default', to_jsonb(1),
                          'completed', 'null'::jsonb, 1, h.at, h.at, h.at, h.at
                     from (select $3 || '-' || g as id,
                                  now() - interval '1 day' + g * interval '1 millisecond' as at
                             from generate_series($1::int8, $2::int8) g) h
                   returning bucket, id, created_at
                 )
                 insert into public.zart_steps
                     (bucket, execution_id, name, seq, status, output, attempts,
                      created_at, updated_at, kind)
                 select e.bucket, e.id, 's0', 0, 'completed', 'null'::jsonb, 1,
                        e.created_at, e.created_at, 'step'
                   from e",
                &[&from, &to, &HISTORY_TASK],
            )
            .await
            .with_context(|| format!("Z7: filling history rows {from}..={to}"))?;
        bar.set(u64::try_from(to).unwrap_or(0));
        from = to + 1;
    }
    client
        .batch_execute(
            "vacuum analyze public.zart_executions, public.zart_steps, public.zart_tasks",
        )
        .await
        .context("Z7: vacuum analyze after the fill")?;
    // Not fatal: a role without the privilege just leaves the checkpoint to the server.
    if let Err(e) = client.batch_execute("checkpoint").await {
        eprintln!("zart-load: note: checkpoint after the history fill failed: {e}");
    }
    Ok(())
}

/// The size of one relation.
#[derive(Debug, Clone, Serialize)]
pub struct RelationSize {
    /// The table or index.
    pub name: String,
    /// `table` or `index`.
    pub kind: &'static str,
    /// Rows, as estimated by the last vacuum or analyse (`reltuples`; tables only).
    pub rows: Option<i64>,
    /// `pg_relation_size`, bytes.
    pub relation_bytes: i64,
    /// `pg_indexes_size`, bytes (tables only).
    pub indexes_bytes: Option<i64>,
    /// `pg_total_relation_size`, bytes (tables only).
    pub total_bytes: Option<i64>,
    /// The same, as `pg_size_pretty` prints them.
    pub pretty: String,
}

/// Sizes of `zart_tasks` (and each of its indexes), `zart_executions` and `zart_steps`.
///
/// # Errors
/// When the query fails.
pub async fn sizes(client: &Client) -> Result<Vec<RelationSize>> {
    let mut out = Vec::new();
    for table in ["zart_tasks", "zart_executions", "zart_steps"] {
        let row = client
            .query_one(
                "select greatest(c.reltuples, 0)::int8,
                        pg_relation_size(c.oid), pg_indexes_size(c.oid),
                        pg_total_relation_size(c.oid),
                        pg_size_pretty(pg_relation_size(c.oid)) || ' heap, ' ||
                        pg_size_pretty(pg_indexes_size(c.oid)) || ' indexes, ' ||
                        pg_size_pretty(pg_total_relation_size(c.oid)) || ' total'
                   from pg_class c
                  where c.oid = ('public.' || $1)::regclass",
                &[&table],
            )
            .await
            .with_context(|| format!("reading the size of {table}"))?;
        out.push(RelationSize {
            name: table.to_owned(),
            kind: "table",
            rows: Some(row.try_get(0)?),
            relation_bytes: row.try_get(1)?,
            indexes_bytes: Some(row.try_get(2)?),
            total_bytes: Some(row.try_get(3)?),
            pretty: row.try_get(4)?,
        });
        if table == "zart_tasks" {
            let rows = client
                .query(
                    "select i.indexrelid::regclass::text, pg_relation_size(i.indexrelid),
                            pg_size_pretty(pg_relation_size(i.indexrelid))
                       from pg_index i
                      where i.indrelid = 'public.zart_tasks'::regclass
                      order by 1",
                    &[],
                )
                .await
                .context("reading the index sizes of zart_tasks")?;
            for row in rows {
                out.push(RelationSize {
                    name: row.try_get(0)?,
                    kind: "index",
                    rows: None,
                    relation_bytes: row.try_get(1)?,
                    indexes_bytes: None,
                    total_bytes: None,
                    pretty: row.try_get(2)?,
                });
            }
        }
    }
    Ok(out)
}
