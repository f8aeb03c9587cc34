//! The audit log's contract ([`zart::audit::AuditLog`]), run by each backend's own tests over
//! a fresh store (it is not a case of [`crate::suite!`], whose cases see only the
//! [`zart::Scheduler`]).

use zart::audit::{AuditEntry, AuditLog, MAX_AUDIT_TEXT};

/// Checks `log`, which must be empty: entries are numbered in order and read newest first with
/// paging, finished once, refused by field when bad (writing nothing), and round-trip any
/// UTF-8 (4-byte characters included) and JSON params. Panics on a breach.
pub async fn audit_log_contract(log: &dyn AuditLog) {
    assert!(
        log.list_audit(None, 10).await.unwrap().is_empty(),
        "a fresh store has no entries"
    );
    let first = log
        .audit_begin(&AuditEntry::new("alice", "cancel", "order-1 🚀"))
        .await
        .unwrap();
    let second = log
        .audit_begin(
            &AuditEntry::new("bob", "send_event", "Order-1 ")
                .with_params(serde_json::json!({"name": "approval", "n": [1, 2]})),
        )
        .await
        .unwrap();
    assert!(second > first, "ids increase: {first} then {second}");

    let entries = log.list_audit(None, 10).await.unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].id, second, "newest first");
    assert_eq!(entries[0].target, "Order-1 ", "trailing spaces kept");
    assert_eq!(entries[0].params["n"], serde_json::json!([1, 2]));
    assert_eq!(entries[1].target, "order-1 🚀", "4-byte UTF-8 kept");
    assert_eq!(entries[1].outcome, "started");
    assert!(entries[1].finished_at.is_none());
    let page = log.list_audit(Some(second), 10).await.unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].id, first);
    assert_eq!(log.list_audit(None, 1).await.unwrap().len(), 1);

    assert!(log.audit_finish(first, "ok", "cancelled 2").await.unwrap());
    assert!(
        !log.audit_finish(first, "finished", "again").await.unwrap(),
        "an entry is finished once"
    );
    assert!(!log.audit_finish(first + 1_000_000, "ok", "").await.unwrap());
    let entries = log.list_audit(None, 10).await.unwrap();
    let done = entries.iter().find(|e| e.id == first).unwrap();
    assert_eq!(
        (done.outcome.as_str(), done.detail.as_deref()),
        ("ok", Some("cancelled 2"))
    );
    assert!(done.finished_at.is_some() && done.finished_at.unwrap() >= done.at);

    for (entry, field) in [
        (AuditEntry::new("", "cancel", "x"), "actor"),
        (AuditEntry::new("a", "", "x"), "action"),
        (
            AuditEntry::new("a", "cancel", "x".repeat(MAX_AUDIT_TEXT + 1)),
            "target",
        ),
        (AuditEntry::new("a\0", "cancel", "x"), "actor"),
    ] {
        let err = log.audit_begin(&entry).await.unwrap_err();
        assert_eq!(err.code(), "invalid_input", "{err}");
        assert!(err.to_string().contains(field), "{field}: {err}");
    }
    let err = log.audit_finish(second, "", "").await.unwrap_err();
    assert_eq!(err.code(), "invalid_input", "{err}");
    for limit in [0, zart::audit::MAX_AUDIT_PAGE + 1] {
        let err = log.list_audit(None, limit).await.unwrap_err();
        assert_eq!(err.code(), "invalid_input", "{err}");
    }
    assert_eq!(
        log.list_audit(None, 10).await.unwrap().len(),
        2,
        "refused entries wrote nothing"
    );
}
