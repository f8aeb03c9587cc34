//! The audit log ([`zart::audit::AuditLog`]): entries written through the writer, read on a
//! pooled connection.

use zart::audit::{AuditEntry, AuditRecord};
use zart::Error;

use super::admin::{opt_time, time};
use super::{p, Tx};
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
