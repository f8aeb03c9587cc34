//! What operators read of the fleet: the audit log ([`zart::audit::AuditLog`]) and the
//! workers seen ([`zart::presence`]), written through the writer, read on a read connection.

use rusqlite::Connection;
use zart::audit::{AuditEntry, AuditRecord};
use zart::error::{from_json_text, to_json_text};
use zart::presence::{WorkerPresence, WorkerSeen, WorkersSeen, FORGET_AFTER};
use zart::Error;

use super::admin::{opt_time, time};
use super::{check_size, Cached, Tx};
use crate::clock;
use crate::errors::SqlResult;
use crate::queries;
use crate::writer::Reply;
use crate::Settings;

/// Writes an entry with outcome `started`.
pub(super) fn audit_begin(tx: &mut Tx<'_>, entry: &AuditEntry) -> Result<Reply, Error> {
    entry.check()?;
    let params = to_json_text(&entry.params, "audit params")?;
    check_size(tx, "params", &params)?;
    let what = "writing an audit entry";
    tx.conn
        .exec_cached(
            queries::AUDIT_BEGIN,
            rusqlite::params![
                tx.now_text(),
                entry.actor,
                entry.action,
                entry.target,
                params
            ],
        )
        .or_db(tx.conn, what)?;
    Ok(Reply::AuditId(tx.conn.last_insert_rowid()))
}

/// Records how the action of entry `id` ended, once.
pub(super) fn audit_finish(
    tx: &mut Tx<'_>,
    id: i64,
    outcome: &str,
    detail: &str,
) -> Result<Reply, Error> {
    zart::audit::check_finish(outcome, detail)?;
    let changed = tx
        .conn
        .exec_cached(
            queries::AUDIT_FINISH,
            rusqlite::params![id, outcome, detail, tx.now_text()],
        )
        .or_db(tx.conn, "finishing an audit entry")?;
    Ok(Reply::AuditFinished(changed > 0))
}

/// The raw columns of an entry.
type AuditRow = (
    i64,
    String,
    (String, String, String, String),
    String,
    Option<String>,
    Option<String>,
);

/// Entries newest first.
pub(crate) fn list_audit(
    conn: &Connection,
    before: Option<i64>,
    limit: u32,
) -> Result<Vec<AuditRecord>, Error> {
    zart::audit::check_page(limit)?;
    let what = "reading the audit log";
    let mut stmt = conn.prepare(queries::LIST_AUDIT).or_db(conn, what)?;
    let rows = stmt
        .query_map(rusqlite::params![before, i64::from(limit)], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                (r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?),
                r.get(6)?,
                r.get(7)?,
                r.get(8)?,
            ))
        })
        .or_db(conn, what)?
        .collect::<rusqlite::Result<Vec<AuditRow>>>()
        .or_db(conn, what)?;
    rows.into_iter()
        .map(
            |(id, at, (actor, action, target, params), outcome, detail, finished)| {
                let entry = AuditEntry::new(actor, action, target)
                    .with_params(from_json_text(&params, "audit params")?);
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
pub(super) fn worker_seen(tx: &mut Tx<'_>, p: &WorkerPresence) -> Result<Reply, Error> {
    p.check()?;
    let what = "recording a worker";
    let names = zart::error::to_json_text(&p.task_names, "task names")?;
    let interval_ms = clock::millis(p.interval);
    let forget = clock::format(tx.now.saturating_sub(clock::millis(FORGET_AFTER)));
    tx.conn
        .exec_cached(
            queries::WORKER_SEEN,
            rusqlite::params![
                p.worker_id,
                p.host,
                i64::from(p.pid),
                p.queue,
                names,
                i64::from(p.concurrency),
                i64::from(p.running),
                interval_ms,
                tx.now_text()
            ],
        )
        .or_db(tx.conn, what)?;
    if p.starting {
        tx.conn
            .exec_cached(queries::FORGET_WORKERS, [forget])
            .or_db(tx.conn, what)?;
    }
    Ok(Reply::Done)
}

/// Records a worker's graceful stop.
pub(super) fn worker_gone(tx: &mut Tx<'_>, worker_id: &str) -> Result<Reply, Error> {
    let changed = tx
        .conn
        .exec_cached(
            queries::WORKER_GONE,
            rusqlite::params![worker_id, tx.now_text()],
        )
        .or_db(tx.conn, "recording a worker's stop")?;
    Ok(Reply::Departed(changed > 0))
}

/// The raw columns of a worker.
type WorkerRow = (
    (String, String, i64, String, String),
    (i64, i64, i64),
    (String, String, Option<String>),
);

/// The workers seen, with the store's clock.
pub(crate) fn list_workers(conn: &Connection, settings: &Settings) -> Result<WorkersSeen, Error> {
    let what = "listing workers";
    let now = clock::now(conn, settings.test_clock)?;
    let mut stmt = conn.prepare(queries::LIST_WORKERS).or_db(conn, what)?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?),
                (r.get(5)?, r.get(6)?, r.get(7)?),
                (r.get(8)?, r.get(9)?, r.get(10)?),
            ))
        })
        .or_db(conn, what)?
        .collect::<rusqlite::Result<Vec<WorkerRow>>>()
        .or_db(conn, what)?;
    let workers = rows
        .into_iter()
        .map(
            |(
                (id, host, pid, queue, names),
                (concurrency, running, interval),
                (started, seen, stopped),
            )| {
                let mut p = WorkerPresence::new(id, queue);
                p.host = host;
                p.pid = u32::try_from(pid).unwrap_or(0);
                p.task_names = zart::error::from_json_text(&names, "task names")?;
                p.concurrency = u32::try_from(concurrency).unwrap_or(0);
                p.running = u32::try_from(running).unwrap_or(0);
                p.interval = clock::duration(interval);
                let mut w = WorkerSeen::new(p, time(&started)?, time(&seen)?);
                w.stopped_at = opt_time(stopped)?;
                Ok(w)
            },
        )
        .collect::<Result<Vec<_>, Error>>()?;
    Ok(WorkersSeen::new(workers, clock::to_system(now)))
}
