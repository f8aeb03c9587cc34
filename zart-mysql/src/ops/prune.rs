//! Retention (`zart_prune`): deletes a batch of old finished executions with their steps and
//! events, in the writer's transaction (one pruner per process; pruners of two processes may
//! pick the same rows, and deleting twice is harmless); and the dry run's count, on a pooled
//! connection.

use super::p;
use zart::scheduler::{PruneOutcome, PruneParams};
use zart::Error;

use super::Tx;
use crate::clock;
use crate::queries;
use crate::writer::Reply;

/// The finish time before which an execution is old enough, as stored text.
fn cutoff(now: i64, p: &PruneParams) -> String {
    clock::format(now.saturating_sub(clock::millis(p.older_than)))
}

/// Deletes up to `p.limit` prunable executions, oldest first, with their steps and events.
pub(super) async fn prune(tx: &mut Tx<'_>, p: &PruneParams) -> Result<Reply, Error> {
    p.check()?;
    let what = "pruning finished executions";
    let cutoff = cutoff(tx.now, p);
    let ids: Vec<String> = tx
        .all(
            queries::PRUNABLE,
            p![p.status.as_str(), cutoff, i64::from(p.limit)],
            what,
        )
        .await?;
    for id in &ids {
        for sql in [
            queries::DELETE_STEPS,
            queries::DELETE_EVENTS,
            queries::DELETE_EXECUTION,
        ] {
            tx.exec(sql, p![id], what).await?;
        }
    }
    Ok(Reply::Pruned(PruneOutcome::Deleted(ids.len() as u64)))
}

/// Counts the executions a prune would delete (a dry run; no limit).
pub(crate) async fn count(tx: &mut Tx<'_>, p: &PruneParams) -> Result<PruneOutcome, Error> {
    p.check()?;
    let now = tx.now();
    let n: i64 = tx
        .one(
            queries::COUNT_PRUNABLE,
            p![p.status.as_str(), cutoff(now, p)],
            "counting prunable executions",
        )
        .await?;
    Ok(PruneOutcome::Counted(u64::try_from(n).unwrap_or(0)))
}
