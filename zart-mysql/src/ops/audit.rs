//! What operators read of the fleet: the audit log ([`zart::audit::AuditLog`]) and the
//! workers seen ([`zart::presence`]), written through the writer, read on a pooled connection.

use zart::audit::{AuditEntry, AuditRecord};
use zart::presence::{WorkerPresence, WorkerSeen, WorkersSeen, FORGET_AFTER};
use zart::Error;

use super::admin::{opt_time, time};
use super::{p, Tx};
use crate::clock;
use crate::errors::{from_json, to_json};
use crate::queries;
use crate::writer::Reply;

/// Writes an entry with outcome `started`.
pub(crate) async fn audit_begin(tx: &mut Tx<'_>, entry: &AuditEntry) -> Result<Reply, Error> {
    entry.check()?;
    let params = to_json(&entry.params, "audit params")?;
    super::check_size(tx, "params", &params)?;
    let what = "writing an audit entry";
    let at = tx.now_text();
    tx.exec(
        queries::AUDIT_BEGIN,
        p![at, entry.actor, entry.action, entry.target, params],
        what,
    )
    .await?;
    let id: i64 = tx.one(queries::LAST_INSERT_ID, p![], what).await?;
    Ok(Reply::AuditId(id))
}

/// Records how the action of entry `id` ended, once.
pub(crate) async fn audit_finish(
    tx: &mut Tx<'_>,
    id: i64,
    outcome: &str,
    detail: &str,
) -> Result<Reply, Error> {
    zart::audit::check_finish(outcome, detail)?;
    let at = tx.now_text();
    let changed = tx
        .exec(
            queries::AUDIT_FINISH,
            p![id, outcome, detail, at],
            "finishing an audit entry",
        )
        .await?;
    Ok(Reply::AuditFinished(changed > 0))
}

/// The raw columns of an entry.
type AuditRow = (
    i64,
    String,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
);

/// Entries newest first.
pub(crate) async fn list_audit(
    tx: &mut Tx<'_>,
    before: Option<i64>,
    limit: u32,
) -> Result<Vec<AuditRecord>, Error> {
    zart::audit::check_page(limit)?;
    let rows: Vec<AuditRow> = tx
        .all(
            queries::LIST_AUDIT,
            p![before, i64::from(limit)],
            "reading the audit log",
        )
        .await?;
    rows.into_iter()
        .map(
            |(id, at, actor, action, target, params, outcome, detail, finished)| {
                let entry = AuditEntry::new(actor, action, target)
                    .with_params(from_json(&params, "audit params")?);
                let mut record = AuditRecord::new(id, time(&at)?, entry);
                record.outcome = outcome;
                record.detail = detail;
                record.finished_at = opt_time(finished)?;
                Ok(record)
            },
        )
        .collect()
}

/// Records a running worker; when it is starting, forgets the workers not seen for a day.
pub(crate) async fn worker_seen(tx: &mut Tx<'_>, w: &WorkerPresence) -> Result<Reply, Error> {
    w.check()?;
    let what = "recording a worker";
    let names = to_json(&w.task_names, "task names")?;
    let interval_ms = clock::millis(w.interval);
    let now = tx.now_text();
    let forget = clock::format(tx.now().saturating_sub(clock::millis(FORGET_AFTER)));
    tx.exec(
        queries::WORKER_SEEN,
        p![
            w.worker_id,
            w.host,
            i64::from(w.pid),
            w.queue,
            names,
            i64::from(w.concurrency),
            i64::from(w.running),
            interval_ms,
            now
        ],
        what,
    )
    .await?;
    if w.starting {
        tx.exec(queries::FORGET_WORKERS, p![forget], what).await?;
    }
    Ok(Reply::Done)
}

/// Records a worker's graceful stop.
pub(crate) async fn worker_gone(tx: &mut Tx<'_>, worker_id: &str) -> Result<Reply, Error> {
    let now = tx.now_text();
    let changed = tx
        .exec(
            queries::WORKER_GONE,
            p![worker_id, now],
            "recording a worker's stop",
        )
        .await?;
    Ok(Reply::Departed(changed > 0))
}

/// The raw columns of a worker.
type WorkerRow = (
    String,
    String,
    i64,
    String,
    String,
    i64,
    i64,
    i64,
    String,
    String,
    Option<String>,
);

/// The workers seen, with the server's clock.
pub(crate) async fn list_workers(tx: &mut Tx<'_>) -> Result<WorkersSeen, Error> {
    let rows: Vec<WorkerRow> = tx
        .all(queries::LIST_WORKERS, p![], "listing workers")
        .await?;
    let workers = rows
        .into_iter()
        .map(
            |(
                id,
                host,
                pid,
                queue,
                names,
                concurrency,
                running,
                interval,
                started,
                seen,
                stopped,
            )| {
                let mut w = WorkerPresence::new(id, queue);
                w.host = host;
                w.pid = u32::try_from(pid).unwrap_or(0);
                w.task_names = from_json(&names, "task names")?;
                w.concurrency = u32::try_from(concurrency).unwrap_or(0);
                w.running = u32::try_from(running).unwrap_or(0);
                w.interval = clock::duration(interval);
                let mut seen = WorkerSeen::new(w, time(&started)?, time(&seen)?);
                seen.stopped_at = opt_time(stopped)?;
                Ok(seen)
            },
        )
        .collect::<Result<Vec<_>, Error>>()?;
    Ok(WorkersSeen::new(workers, clock::to_system(tx.now())))
}
