//! Retention (`zart_prune`): deletes a batch of old finished executions with their steps and
//! events, in the writer's transaction (the one writer makes it the only pruner); and the dry
//! run's count, on a read connection.

use super::Cached;

use rusqlite::Connection;
use zart::scheduler::{PruneOutcome, PruneParams};
use zart::Error;

use super::Tx;
use crate::clock;
use crate::errors::SqlResult;
use crate::queries;
use crate::writer::Reply;
use crate::Settings;

/// The finish time before which an execution is old enough, as stored text.
fn cutoff(now: i64, p: &PruneParams) -> String {
    clock::format(now.saturating_sub(clock::millis(p.older_than)))
}

/// Deletes up to `p.limit` prunable executions, oldest first, with their steps and events.
pub(super) fn prune(tx: &mut Tx<'_>, p: &PruneParams) -> Result<Reply, Error> {
    p.check()?;
    let what = "pruning finished executions";
    let cutoff = cutoff(tx.now, p);
    let ids: Vec<String> = {
        let mut stmt = tx
            .conn
            .prepare_cached(queries::PRUNABLE)
            .or_db(tx.conn, what)?;
        let rows = stmt
            .query_map(
                rusqlite::params![p.status.as_str(), cutoff, i64::from(p.limit)],
                |r| r.get(0),
            )
            .or_db(tx.conn, what)?;
        rows.collect::<rusqlite::Result<_>>().or_db(tx.conn, what)?
    };
    for id in &ids {
        for sql in [
            queries::DELETE_STEPS,
            queries::DELETE_EVENTS,
            queries::DELETE_EXECUTION,
        ] {
            tx.conn.exec_cached(sql, [id]).or_db(tx.conn, what)?;
        }
    }
    Ok(Reply::Pruned(PruneOutcome::Deleted(ids.len() as u64)))
}

/// Counts the executions a prune would delete (a dry run; no limit).
pub(crate) fn count(
    conn: &Connection,
    settings: &Settings,
    p: &PruneParams,
) -> Result<PruneOutcome, Error> {
    p.check()?;
    let now = clock::now(conn, settings.test_clock)?;
    let n: i64 = conn
        .row_cached(
            queries::COUNT_PRUNABLE,
            rusqlite::params![p.status.as_str(), cutoff(now, p)],
            |r| r.get(0),
        )
        .or_db(conn, "counting prunable executions")?;
    Ok(PruneOutcome::Counted(u64::try_from(n).unwrap_or(0)))
}
