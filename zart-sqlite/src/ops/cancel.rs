//! Cancellation (`zart_cancel_execution`, `zart_cancel_tree`): an execution and its unfinished
//! descendants, walked with a visited set so that the walk ends on any data, cycles included.

use super::Cached;
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use rusqlite::OptionalExtension;
use zart::scheduler::Wakeup;
use zart::{Error, ErrorRecord};

use super::fence::wake_waiter;
use super::Tx;
use crate::errors::{to_json, SqlResult};
use crate::queries;
use crate::writer::Reply;

pub(super) fn cancel_execution(tx: &mut Tx<'_>, id: &str) -> Result<Reply, Error> {
    let row: Option<(String, Option<String>)> = tx
        .conn
        .row_cached(queries::EXECUTION_STATUS, [id], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()
        .or_db(tx.conn, "cancelling")?;
    let Some((status, parent)) = row else {
        return Err(Error::NotFound { id: id.to_owned() });
    };
    if matches!(status.as_str(), "completed" | "failed" | "cancelled") {
        return Ok(Reply::Cancelled(Vec::new()));
    }
    let cancelled = cancel_tree(tx, id, true)?;
    if !cancelled.is_empty() {
        tx.wake(Wakeup::Finished {
            execution_ids: Arc::from(cancelled.clone()),
        });
    }
    if let Some(parent) = parent {
        if let Some(queue) = wake_waiter(tx, &parent, "child", id)? {
            tx.wake(Wakeup::Work { queue });
        }
    }
    Ok(Reply::Cancelled(cancelled))
}

/// Cancels the unfinished executions of the tree under `root` (the root too when
/// `include_root`): their tasks go and they become `cancelled`. Returns the ids cancelled,
/// in walk order (the root first).
pub(super) fn cancel_tree(
    tx: &Tx<'_>,
    root: &str,
    include_root: bool,
) -> Result<Vec<String>, Error> {
    let mut visited: HashSet<String> = HashSet::from([root.to_owned()]);
    let mut order = vec![root.to_owned()];
    let mut queue = VecDeque::from([root.to_owned()]);
    let mut children = tx
        .conn
        .prepare_cached(queries::UNFINISHED_CHILDREN)
        .or_db(tx.conn, "cancelling")?;
    while let Some(id) = queue.pop_front() {
        let rows = children
            .query_map([&id], |r| r.get::<_, String>(0))
            .or_db(tx.conn, "cancelling")?;
        for child in rows {
            let child = child.or_db(tx.conn, "cancelling")?;
            if visited.insert(child.clone()) {
                order.push(child.clone());
                queue.push_back(child);
            }
        }
    }
    drop(children);
    let error = to_json(
        &ErrorRecord {
            kind: "cancelled".to_owned(),
            message: "execution was cancelled".to_owned(),
            step: None,
            attempts: None,
            ..Default::default()
        },
        "a cancellation record",
    )?;
    let now = tx.now_text();
    let mut cancelled = Vec::new();
    for id in order.into_iter().skip(usize::from(!include_root)) {
        tx.conn
            .exec_cached(queries::DELETE_TASK, [&id])
            .or_db(tx.conn, "cancelling")?;
        let marked = tx
            .conn
            .exec_cached(queries::CANCEL_EXECUTION, rusqlite::params![id, now, error])
            .or_db(tx.conn, "cancelling")?;
        if marked > 0 {
            cancelled.push(id);
        }
    }
    Ok(cancelled)
}
