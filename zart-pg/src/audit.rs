//! [`zart::audit::AuditLog`] for PostgreSQL: `zart_audit_log`, written through
//! `zart_audit_begin` and `zart_audit_finish` (granted to `zart_client`) and read with plain
//! `SELECT` (`zart_reader`; only sessions that see every tenant see its rows).

use async_trait::async_trait;
use postgres_types::Type;
use zart::audit::{check_finish, check_page, AuditEntry, AuditLog, AuditRecord};
use zart::Error;

use crate::errors::{from_pg, Call};
use crate::{queries, PostgresScheduler};

#[async_trait]
impl AuditLog for PostgresScheduler {
    async fn audit_begin(&self, entry: &AuditEntry) -> Result<i64, Error> {
        entry.check()?;
        let call = Call::new("writing an audit entry");
        let rows = crate::query(
            self.pool().pool(),
            queries::AUDIT_BEGIN,
            &[
                (&entry.actor, Type::TEXT),
                (&entry.action, Type::TEXT),
                (&entry.target, Type::TEXT),
                (&entry.params, Type::JSONB),
            ],
            call,
        )
        .await?;
        crate::first_value(&rows, call)
    }

    async fn audit_finish(&self, id: i64, outcome: &str, detail: &str) -> Result<bool, Error> {
        check_finish(outcome, detail)?;
        let call = Call::new("finishing an audit entry");
        let rows = crate::query(
            self.pool().pool(),
            queries::AUDIT_FINISH,
            &[
                (&id, Type::INT8),
                (&outcome, Type::TEXT),
                (&detail, Type::TEXT),
            ],
            call,
        )
        .await?;
        crate::first_value(&rows, call)
    }

    async fn list_audit(&self, before: Option<i64>, limit: u32) -> Result<Vec<AuditRecord>, Error> {
        check_page(limit)?;
        let call = Call::new("reading the audit log");
        let limit = i64::from(limit);
        let rows = crate::query(
            self.pool().pool(),
            queries::LIST_AUDIT,
            &[(&before, Type::INT8), (&limit, Type::INT8)],
            call,
        )
        .await?;
        let get_err = |e| from_pg(e, call);
        rows.iter()
            .map(|row| {
                let entry = AuditEntry::new(
                    row.try_get::<_, String>("actor").map_err(get_err)?,
                    row.try_get::<_, String>("action").map_err(get_err)?,
                    row.try_get::<_, String>("target").map_err(get_err)?,
                )
                .with_params(row.try_get("params").map_err(get_err)?);
                let mut record = AuditRecord::new(
                    row.try_get("id").map_err(get_err)?,
                    row.try_get("at").map_err(get_err)?,
                    entry,
                );
                record.outcome = row.try_get("outcome").map_err(get_err)?;
                record.detail = row.try_get("detail").map_err(get_err)?;
                record.finished_at = row.try_get("finished_at").map_err(get_err)?;
                Ok(record)
            })
            .collect()
    }
}

/// A worker's record as [`zart::Scheduler::record_presence`] writes it.
pub(crate) async fn record_presence(
    pool: &deadpool_postgres::Pool,
    p: &zart::presence::WorkerPresence,
) -> Result<(), Error> {
    p.check()?;
    let call = Call::new("recording a worker");
    let pid = i64::from(p.pid);
    let concurrency = crate::int4(p.concurrency);
    let running = crate::int4(p.running);
    let interval_ms = i64::try_from(p.interval.as_millis()).unwrap_or(i64::MAX);
    crate::query(
        pool,
        queries::WORKER_SEEN,
        &[
            (&p.worker_id, Type::TEXT),
            (&p.host, Type::TEXT),
            (&pid, Type::INT8),
            (&p.queue, Type::TEXT),
            (&p.task_names, Type::TEXT_ARRAY),
            (&concurrency, Type::INT4),
            (&running, Type::INT4),
            (&interval_ms, Type::INT8),
            (&p.starting, Type::BOOL),
        ],
        call,
    )
    .await?;
    Ok(())
}

/// Records a worker's graceful stop.
pub(crate) async fn record_departure(
    pool: &deadpool_postgres::Pool,
    worker_id: &str,
) -> Result<bool, Error> {
    let call = Call::new("recording a worker's stop");
    let rows = crate::query(
        pool,
        queries::WORKER_GONE,
        &[(&worker_id, Type::TEXT)],
        call,
    )
    .await?;
    crate::first_value(&rows, call)
}

/// The workers seen, with the database clock.
pub(crate) async fn list_workers(
    pool: &deadpool_postgres::Pool,
) -> Result<zart::presence::WorkersSeen, Error> {
    use zart::presence::{WorkerPresence, WorkerSeen, WorkersSeen};
    let call = Call::new("listing workers");
    let rows = crate::query(pool, queries::LIST_WORKERS, &[], call).await?;
    let get_err = |e| from_pg(e, call);
    let now = match rows.first() {
        Some(row) => row.try_get("now").map_err(get_err)?,
        None => {
            let rows = crate::query(pool, queries::CURRENT_TIME, &[], call).await?;
            crate::first_value(&rows, call)?
        }
    };
    let mut workers = Vec::with_capacity(rows.len());
    for row in &rows {
        let mut p = WorkerPresence::new(
            row.try_get::<_, String>("worker_id").map_err(get_err)?,
            row.try_get::<_, String>("queue").map_err(get_err)?,
        );
        p.host = row.try_get("host").map_err(get_err)?;
        p.pid = u32::try_from(row.try_get::<_, i64>("pid").map_err(get_err)?).unwrap_or(0);
        p.task_names = row.try_get("task_names").map_err(get_err)?;
        p.concurrency =
            u32::try_from(row.try_get::<_, i32>("concurrency").map_err(get_err)?).unwrap_or(0);
        p.running = u32::try_from(row.try_get::<_, i32>("running").map_err(get_err)?).unwrap_or(0);
        let interval_ms: i64 = row.try_get("interval_ms").map_err(get_err)?;
        p.interval = std::time::Duration::from_millis(u64::try_from(interval_ms).unwrap_or(0));
        let mut seen = WorkerSeen::new(
            p,
            row.try_get("started_at").map_err(get_err)?,
            row.try_get("seen_at").map_err(get_err)?,
        );
        seen.stopped_at = row.try_get("stopped_at").map_err(get_err)?;
        workers.push(seen);
    }
    Ok(WorkersSeen::new(workers, now))
}
