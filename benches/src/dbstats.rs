//! Where a phase's work goes in the database: deltas of `pg_stat_database` (transactions,
//! tuples written) and, when the `pg_stat_statements` extension is loaded, the number of
//! top-level statements (= round trips), around one phase.
//!
//! PostgreSQL 15 keeps a backend's statistics in the backend until it flushes them: at once
//! when it has not flushed for a second, else up to 10 s later when idle, and always when it
//! exits. So a phase window is opened when no other client is connected to the scratch
//! database, and closed after every connection the phase opened has gone (the phase drops its
//! pools); the [`Watcher`]'s own statements are counted and subtracted, and its SQL carries the
//! marker `zart-load watcher` so `pg_stat_statements` sums leave it out.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, Config, Row};

use crate::scratch::connect;

/// The `pg_stat_statements` rows (alias `s`) that are round trips of this database's clients:
/// top-level, not the watcher's, and not the body of a SQL-language function. PostgreSQL 15
/// counts an immutable SQL function that the planner evaluates with constant arguments (such
/// as `zart_bucket($1)` once the id is known, or `zart_schema_version()`) as a top-level
/// statement of its own; those entries are recognised by comparing their text with the
/// function bodies, constants and parameters blanked out on both sides.
const ROUND_TRIPS: &str = r#"s.dbid = (select oid from pg_database where datname = current_database())
    and s.toplevel
    and s.query not like '%zart-load watcher%'
    and not exists (
        select 1 from pg_proc p
         where p.prolang = (select oid from pg_language where lanname = 'sql')
           and regexp_replace(
                   regexp_replace(btrim(p.prosrc, E' \n\r\t;'), '\s+', ' ', 'g'),
                   '''[^'']*''|\$[0-9]+|(?<![[:alnum:]_])[0-9]+(\.[0-9]+)?', '?', 'g')
             = regexp_replace(
                   regexp_replace(btrim(s.query, E' \n\r\t;'), '\s+', ' ', 'g'),
                   '\$[0-9]+', '?', 'g'))"#;

/// How long [`Watcher::end`] waits for the phase's connections to close.
const QUIET_TIMEOUT: Duration = Duration::from_secs(15);

/// The driver's connection to the scratch database that reads the statistics and polls for
/// drained queues.
pub struct Watcher {
    client: Client,
    /// Statements this connection ran (each is a transaction of its own).
    own: u64,
    statements: bool,
}

/// The statistics at the start of a window.
#[derive(Debug, Clone, Copy)]
pub struct Mark {
    xacts: i64,
    tuples: i64,
    own_before: u64,
    at: Instant,
}

/// What the database did during one window.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Delta {
    /// Committed transactions (`xact_commit`), the watcher's own subtracted.
    pub xacts: i64,
    /// Rows inserted, updated and deleted (`tup_inserted + tup_updated + tup_deleted`).
    pub tuples: i64,
    /// Top-level statements (`pg_stat_statements` calls), the watcher's left out; `None`
    /// without the extension.
    pub statements: Option<i64>,
    /// False if some connection of the phase was still open when the window closed (its
    /// unflushed statistics may be missing).
    pub settled: bool,
    /// Length of the window, seconds.
    pub secs: f64,
}

/// One row of `pg_stat_statements` for a window.
#[derive(Debug, Clone, Serialize)]
pub struct TopStatement {
    /// Executions.
    pub calls: i64,
    /// Total execution time, ms.
    pub total_ms: f64,
    /// Mean execution time, ms.
    pub mean_ms: f64,
    /// Rows returned or affected per call.
    pub rows_per_call: f64,
    /// The normalised statement text, on one line, shortened.
    pub query: String,
}

impl Watcher {
    /// Connects to the scratch database and tries to enable `pg_stat_statements` in it
    /// (`create extension if not exists`); without it (not installed, or not in
    /// `shared_preload_libraries`) statement counts are reported as n/a.
    ///
    /// # Errors
    /// When the database cannot be reached.
    pub async fn connect(config: &Config) -> Result<Watcher> {
        let client = connect(config)
            .await
            .context("connecting the statistics watcher")?;
        let statements = client
            .batch_execute(
                "create /* zart-load watcher */ extension if not exists pg_stat_statements",
            )
            .await
            .is_ok()
            && client
                .query_opt(
                    "select /* zart-load watcher */ 1 from pg_stat_statements limit 1",
                    &[],
                )
                .await
                .is_ok();
        Ok(Watcher {
            client,
            own: 0,
            statements,
        })
    }

    /// Whether `pg_stat_statements` answers in the scratch database.
    pub fn has_statements(&self) -> bool {
        self.statements
    }

    /// The connection, for setup and checks outside a window (statements sent through it
    /// inside a window would be counted as the phase's).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Opens a window. With `quiet`, first waits (up to 15 s) until no other client is
    /// connected to the database, so nothing from before leaks into the window.
    ///
    /// # Errors
    /// When a statistics query fails.
    pub async fn begin(&mut self, quiet: bool) -> Result<Mark> {
        if quiet {
            self.quiesce().await?;
        }
        self.flush().await?;
        let own_before = self.own;
        let (xacts, tuples) = self.read().await?;
        if self.statements {
            self.sql(
                "select /* zart-load watcher */ pg_stat_statements_reset(0,
                    (select oid from pg_database where datname = current_database()), 0)",
                &[],
            )
            .await
            .context("resetting pg_stat_statements")?;
        }
        Ok(Mark {
            xacts,
            tuples,
            own_before,
            at: Instant::now(),
        })
    }

    /// Closes the window opened by `mark`, after the phase's connections have closed.
    ///
    /// # Errors
    /// When a statistics query fails.
    pub async fn end(&mut self, mark: Mark) -> Result<Delta> {
        let secs = mark.at.elapsed().as_secs_f64();
        let settled = self.quiesce().await?;
        self.flush().await?;
        // Every watcher statement from the opening read to this flush committed inside the
        // window (the flush sends its own commit along); the closing read does not.
        let own = i64::try_from(self.own - mark.own_before).unwrap_or(i64::MAX);
        let (xacts, tuples) = self.read().await?;
        let statements = if self.statements {
            let rows = self
                .sql(
                    &format!(
                        "select /* zart-load watcher */ coalesce(sum(s.calls), 0)::int8
                           from pg_stat_statements s where {ROUND_TRIPS}"
                    ),
                    &[],
                )
                .await
                .context("reading pg_stat_statements")?;
            Some(first(&rows)?.try_get(0)?)
        } else {
            None
        };
        Ok(Delta {
            xacts: (xacts - mark.xacts - own).max(0),
            tuples: tuples - mark.tuples,
            statements,
            settled,
            secs,
        })
    }

    /// The statements of the current window (since the last [`Watcher::begin`]) by total
    /// time, at most `limit`; empty without `pg_stat_statements`.
    ///
    /// # Errors
    /// When the query fails.
    pub async fn top_statements(&mut self, limit: i64) -> Result<Vec<TopStatement>> {
        if !self.statements {
            return Ok(Vec::new());
        }
        let rows = self
            .sql(
                &format!(
                    "select /* zart-load watcher */ s.calls, s.total_exec_time, s.rows, s.query
                       from pg_stat_statements s where {ROUND_TRIPS}
                      order by s.total_exec_time desc
                      limit $1"
                ),
                &[(&limit, Type::INT8)],
            )
            .await
            .context("reading the top statements")?;
        rows.iter()
            .map(|row| {
                let calls: i64 = row.try_get(0)?;
                let total_ms: f64 = row.try_get(1)?;
                let rows: i64 = row.try_get(2)?;
                let query: String = row.try_get(3)?;
                let per = |x: f64| if calls > 0 { x / calls as f64 } else { 0.0 };
                Ok(TopStatement {
                    calls,
                    total_ms,
                    mean_ms: per(total_ms),
                    rows_per_call: per(rows as f64),
                    query: one_line(&query, 160),
                })
            })
            .collect()
    }

    /// True once no task of `task` (of `tenant`, if given) is left in `zart_tasks` (an
    /// execution leaves it when its outcome commits). One cheap statement; counted as the
    /// watcher's own.
    ///
    /// # Errors
    /// When the query fails.
    pub async fn drained(&mut self, task: &str, tenant: Option<&str>) -> Result<bool> {
        let rows = self
            .sql(
                "select /* zart-load watcher */ not exists
                   (select 1 from public.zart_tasks
                     where task_name = $1 and ($2::text is null or tenant = $2))",
                &[(&task, Type::TEXT), (&tenant, Type::TEXT)],
            )
            .await
            .context("polling zart_tasks")?;
        Ok(first(&rows)?.try_get(0)?)
    }

    /// Waits (up to 15 s) until no other client backend is connected to the database, so
    /// the statistics of everything before are flushed; false if some still were.
    ///
    /// # Errors
    /// When the query fails.
    pub async fn quiesce(&mut self) -> Result<bool> {
        let deadline = Instant::now() + QUIET_TIMEOUT;
        loop {
            let rows = self
                .sql(
                    "select /* zart-load watcher */ count(*) from pg_stat_activity
                      where datname = current_database() and pid <> pg_backend_pid()
                        and backend_type = 'client backend'",
                    &[],
                )
                .await
                .context("reading pg_stat_activity")?;
            let others: i64 = first(&rows)?.try_get(0)?;
            if others == 0 {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Makes this backend flush its pending statistics when the statement ends.
    async fn flush(&mut self) -> Result<()> {
        self.sql(
            "select /* zart-load watcher */ pg_stat_force_next_flush()",
            &[],
        )
        .await
        .context("pg_stat_force_next_flush")?;
        Ok(())
    }

    /// `xact_commit` and rows written, as flushed so far.
    async fn read(&mut self) -> Result<(i64, i64)> {
        let rows = self
            .sql(
                "select /* zart-load watcher */ xact_commit,
                        tup_inserted + tup_updated + tup_deleted
                   from pg_stat_database where datname = current_database()",
                &[],
            )
            .await
            .context("reading pg_stat_database")?;
        let row = first(&rows)?;
        Ok((row.try_get(0)?, row.try_get(1)?))
    }

    /// Sends one statement unnamed, in one round trip and one transaction, and counts it.
    async fn sql(
        &mut self,
        sql: &str,
        params: &[(&(dyn tokio_postgres::types::ToSql + Sync), Type)],
    ) -> Result<Vec<Row>> {
        self.own += 1;
        Ok(self.client.query_typed(sql, params).await?)
    }
}

/// The first row, or an error.
fn first(rows: &[Row]) -> Result<&Row> {
    rows.first().context("the statement returned no row")
}

/// `text` with runs of whitespace collapsed to one space, cut to `max` characters.
pub fn one_line(text: &str, max: usize) -> String {
    let joined = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if joined.chars().count() <= max {
        joined
    } else {
        let cut: String = joined.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}
