//! The audit log: who asked for which operator action, when, and how it ended.
//!
//! The admin API (`zart-ui`) records every mutating call it accepts here, **before** it acts:
//! [`AuditLog::audit_begin`] writes the entry (outcome `started`), the action runs, and
//! [`AuditLog::audit_finish`] writes how it ended (`ok`, or the error's [`Error::code`]). When
//! the entry cannot be written, the action is refused, so no action goes unrecorded; an entry
//! left `started` is an action whose end was not recorded (the process died, or the store
//! failed after it acted). Entries are never changed once finished and never deleted by Zart.
//!
//! Every backend keeps the log in a table named `zart_audit_log` with the columns of
//! [`AuditRecord`], readable with plain SQL:
//!
//! ```sql
//! select at, actor, action, target, outcome from zart_audit_log order by id desc limit 20;
//! ```

use std::time::SystemTime;

use async_trait::async_trait;

use crate::Error;

/// The longest actor, action or target the log stores, in bytes.
pub const MAX_AUDIT_TEXT: usize = 1024;

/// The largest page [`AuditLog::list_audit`] returns.
pub const MAX_AUDIT_PAGE: u32 = 1000;

/// What is about to be done, by whom ([`AuditLog::audit_begin`]).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct AuditEntry {
    /// Who asked: the name of the API token (`anonymous` for an API without tokens).
    pub actor: String,
    /// What: `cancel`, `retry`, `send_event`, `bulk_cancel`, `bulk_retry`, ...
    pub action: String,
    /// On what: an execution id, or a description of a bulk action's filter.
    pub target: String,
    /// The action's arguments (an event's name, a bulk filter), as JSON.
    pub params: serde_json::Value,
}

impl AuditEntry {
    /// An entry with no arguments.
    pub fn new(
        actor: impl Into<String>,
        action: impl Into<String>,
        target: impl Into<String>,
    ) -> Self {
        AuditEntry {
            actor: actor.into(),
            action: action.into(),
            target: target.into(),
            params: serde_json::Value::Object(Default::default()),
        }
    }

    /// With these arguments.
    pub fn with_params(mut self, params: serde_json::Value) -> Self {
        self.params = params;
        self
    }

    /// Checks the texts before a backend writes anything.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the field for an empty actor or action, or a text longer
    /// than [`MAX_AUDIT_TEXT`] bytes or holding a NUL character.
    pub fn check(&self) -> Result<(), Error> {
        for (field, value, may_be_empty) in [
            ("actor", &self.actor, false),
            ("action", &self.action, false),
            ("target", &self.target, true),
        ] {
            if value.is_empty() && !may_be_empty {
                return Err(Error::invalid(field, "is empty"));
            }
            if value.len() > MAX_AUDIT_TEXT {
                return Err(Error::invalid(
                    field,
                    format!(
                        "is {} bytes, over the {MAX_AUDIT_TEXT} allowed",
                        value.len()
                    ),
                ));
            }
            if value.contains('\0') {
                return Err(Error::invalid(field, "holds a NUL character"));
            }
        }
        Ok(())
    }
}

/// One entry of the log as stored (a row of `zart_audit_log`).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct AuditRecord {
    /// Its number, increasing in the order entries were written.
    pub id: i64,
    /// When it was written (the store's clock).
    pub at: SystemTime,
    /// Who asked.
    pub actor: String,
    /// What.
    pub action: String,
    /// On what.
    pub target: String,
    /// The arguments.
    pub params: serde_json::Value,
    /// `started` until the end is recorded; then `ok` or an error code.
    pub outcome: String,
    /// What the action did or why it failed, once finished.
    pub detail: Option<String>,
    /// When the end was recorded.
    pub finished_at: Option<SystemTime>,
}

impl AuditRecord {
    /// A record with the given identity; for backends, which fill in the rest.
    pub fn new(id: i64, at: SystemTime, entry: AuditEntry) -> Self {
        AuditRecord {
            id,
            at,
            actor: entry.actor,
            action: entry.action,
            target: entry.target,
            params: entry.params,
            outcome: OUTCOME_STARTED.to_owned(),
            detail: None,
            finished_at: None,
        }
    }
}

/// The outcome of an entry whose end is not recorded yet.
pub const OUTCOME_STARTED: &str = "started";

/// The outcome of an action that did what it was asked.
pub const OUTCOME_OK: &str = "ok";

/// A backend's audit log (`zart_audit_log`). Implemented by zart-pg, zart-sqlite and
/// zart-mysql.
#[async_trait]
pub trait AuditLog: Send + Sync {
    /// Writes an entry with outcome `started`, committed before it returns; returns its id.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] from [`AuditEntry::check`] or for params over the payload
    /// limit; the transient and database errors of every call. Nothing is written then.
    async fn audit_begin(&self, entry: &AuditEntry) -> Result<i64, Error>;

    /// Records how the action of entry `id` ended: `outcome` (`ok` or an error code) and a
    /// detail. Only a `started` entry changes; finishing one twice, or one that does not exist,
    /// changes nothing and returns false.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an empty outcome, or an outcome or detail over
    /// [`MAX_AUDIT_TEXT`] bytes (a longer detail is cut by the caller); the transient and
    /// database errors of every call.
    async fn audit_finish(&self, id: i64, outcome: &str, detail: &str) -> Result<bool, Error>;

    /// Entries newest first: those with an id below `before` when it is given, at most
    /// `limit` (1 to [`MAX_AUDIT_PAGE`]).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a limit outside 1 to [`MAX_AUDIT_PAGE`]; the transient and
    /// database errors of every call (a login that may not read the log gets a database error).
    async fn list_audit(&self, before: Option<i64>, limit: u32) -> Result<Vec<AuditRecord>, Error>;
}

/// Checks [`AuditLog::audit_finish`]'s arguments before a backend writes anything.
///
/// # Errors
/// [`Error::InvalidInput`] naming `outcome` or `detail`.
pub fn check_finish(outcome: &str, detail: &str) -> Result<(), Error> {
    if outcome.is_empty() {
        return Err(Error::invalid("outcome", "is empty"));
    }
    for (field, value) in [("outcome", outcome), ("detail", detail)] {
        if value.len() > MAX_AUDIT_TEXT {
            return Err(Error::invalid(
                field,
                format!(
                    "is {} bytes, over the {MAX_AUDIT_TEXT} allowed",
                    value.len()
                ),
            ));
        }
        if value.contains('\0') {
            return Err(Error::invalid(field, "holds a NUL character"));
        }
    }
    Ok(())
}

/// Checks [`AuditLog::list_audit`]'s limit.
///
/// # Errors
/// [`Error::InvalidInput`] naming `limit`.
pub fn check_page(limit: u32) -> Result<(), Error> {
    if limit == 0 || limit > MAX_AUDIT_PAGE {
        return Err(Error::invalid(
            "limit",
            format!("{limit} is outside 1 to {MAX_AUDIT_PAGE}"),
        ));
    }
    Ok(())
}

/// `text` cut to at most [`MAX_AUDIT_TEXT`] bytes on a character boundary, NULs dropped: a
/// detail (an error message) that fits the log.
pub fn fit(text: &str) -> String {
    let mut out: String = text.chars().filter(|c| *c != '\0').collect();
    if out.len() > MAX_AUDIT_TEXT {
        let mut end = MAX_AUDIT_TEXT;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_checked_by_field() {
        assert!(AuditEntry::new("alice", "cancel", "order-1")
            .check()
            .is_ok());
        assert!(AuditEntry::new("alice", "cancel", "").check().is_ok());
        let err = AuditEntry::new("", "cancel", "x").check().unwrap_err();
        assert!(err.to_string().contains("actor"), "{err}");
        let err = AuditEntry::new("a", "cancel", "x".repeat(MAX_AUDIT_TEXT + 1))
            .check()
            .unwrap_err();
        assert!(err.to_string().contains("target"), "{err}");
        let err = AuditEntry::new("a\0b", "cancel", "x").check().unwrap_err();
        assert!(err.to_string().contains("NUL"), "{err}");
        assert!(check_finish("", "").is_err());
        assert!(check_page(0).is_err() && check_page(MAX_AUDIT_PAGE + 1).is_err());
    }

    #[test]
    fn fit_cuts_on_a_character_boundary() {
        let long = "é".repeat(MAX_AUDIT_TEXT);
        let cut = fit(&long);
        assert!(cut.len() <= MAX_AUDIT_TEXT && cut.chars().all(|c| c == 'é'));
        assert_eq!(fit("a\0b"), "ab");
    }
}
