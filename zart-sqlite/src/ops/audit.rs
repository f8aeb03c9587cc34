//! The audit log ([`zart::audit::AuditLog`]): entries written through the writer, read on a
//! read connection.

use rusqlite::Connection;
use zart::audit::{AuditEntry, AuditRecord};
use zart::error::{from_json_text, to_json_text};
use zart::Error;

use super::admin::{opt_time, time};
use super::{check_size, Cached, Tx};
use crate::errors::SqlResult;
use crate::queries;
use crate::writer::Reply;

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
