//! Statement counts: how many SQL statements a scheduler's writer and read connections have
//! run, for load drivers and operators who want to see what an idle worker costs.
//!
//! Off by default ([`crate::SqliteOptions::count_statements`]). When on, each write and read
//! connection gets an SQLite trace hook (`sqlite3_trace_v2`, `SQLITE_TRACE_STMT`) that fires
//! once per statement run; the hook adds to the counters of the scheduler whose work is
//! running on the current thread (set around every writer batch and every read). Statements
//! that name a `zart_` object count as on Zart's tables; the rest (`begin`, `commit`,
//! savepoints, pragmas) as transaction control. The trigger programs a statement starts are
//! part of it and are not counted again. The `PRAGMA data_version` probe has no hook: its
//! reads are [`crate::SqliteScheduler::poll_count`].

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rusqlite::trace::{TraceEvent, TraceEventCodes};
use rusqlite::Connection;

/// Statements run by one scheduler's connections, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatementCounts {
    /// Statements that read or write a Zart table (`zart_executions`, `zart_tasks`, ...).
    pub zart_tables: u64,
    /// Transaction control and pragmas (`begin immediate`, `savepoint`, `commit`, ...).
    pub control: u64,
}

impl StatementCounts {
    /// Both kinds together.
    pub fn total(&self) -> u64 {
        self.zart_tables + self.control
    }
}

/// One scheduler's counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    zart_tables: AtomicU64,
    control: AtomicU64,
}

impl Counters {
    pub(crate) fn get(&self) -> StatementCounts {
        StatementCounts {
            zart_tables: self.zart_tables.load(Ordering::Relaxed),
            control: self.control.load(Ordering::Relaxed),
        }
    }
}

thread_local! {
    /// The counters of the scheduler whose statements run on this thread right now.
    static CURRENT: RefCell<Option<Arc<Counters>>> = const { RefCell::new(None) };
}

/// Installs the counting hook on `conn`.
pub(crate) fn hook(conn: &Connection) {
    conn.trace_v2(TraceEventCodes::SQLITE_TRACE_STMT, Some(on_statement));
}

/// Runs `work` with `counters` as this thread's current counters.
pub(crate) fn counting<T>(counters: &Arc<Counters>, work: impl FnOnce() -> T) -> T {
    let before = CURRENT.with(|c| c.replace(Some(counters.clone())));
    let out = work();
    CURRENT.with(|c| *c.borrow_mut() = before);
    out
}

fn on_statement(event: TraceEvent<'_>) {
    let TraceEvent::Stmt(_, sql) = event else {
        return;
    };
    // A trigger program starting inside a statement is reported as `-- TRIGGER name`.
    let sql = sql.trim_start();
    if sql.starts_with("--") {
        return;
    }
    CURRENT.with(|c| {
        if let Some(counters) = c.borrow().as_ref() {
            let counter = if names_zart_object(sql) {
                &counters.zart_tables
            } else {
                &counters.control
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    });
}

/// Whether a statement names a Zart table (every Zart object starts with `zart_`, and Zart's
/// SQL is lowercase; savepoint names such as `zart_item` are transaction control). Allocates
/// nothing: it runs for every statement.
fn names_zart_object(sql: &str) -> bool {
    const CONTROL: [&str; 7] = [
        "begin",
        "commit",
        "end",
        "rollback",
        "savepoint",
        "release",
        "pragma",
    ];
    let first = sql
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or("");
    !CONTROL.iter().any(|c| first.eq_ignore_ascii_case(c)) && sql.contains("zart_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_counted_by_kind_only_while_counting() -> rusqlite::Result<()> {
        let conn = Connection::open_in_memory()?;
        hook(&conn);
        conn.execute_batch("create table zart_x (a integer)")?;
        assert!(!names_zart_object("ROLLBACK TO zart_item"));
        assert!(!names_zart_object("pragma data_version"));
        assert!(names_zart_object(
            "with d as (select 1) delete from zart_tasks"
        ));
        let counters = Arc::new(Counters::default());
        counting(&counters, || -> rusqlite::Result<()> {
            conn.execute_batch("begin; savepoint zart_item")?;
            conn.execute("insert into zart_x values (1)", [])?;
            let _: i64 = conn.query_row("select count(*) from zart_x", [], |r| r.get(0))?;
            conn.execute_batch("release zart_item; commit")?;
            Ok(())
        })?;
        conn.execute("insert into zart_x values (2)", [])?;
        assert_eq!(
            counters.get(),
            StatementCounts {
                zart_tables: 2,
                control: 4
            }
        );
        Ok(())
    }
}
