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
