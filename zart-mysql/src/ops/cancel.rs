//! Cancellation (`zart_cancel_execution`, `zart_cancel_tree`): an execution and its unfinished
//! descendants, walked with a visited set so that the walk ends on any data, cycles included.

use super::p;
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use zart::scheduler::Wakeup;
use zart::{Error, ErrorRecord};

use super::fence::wake_waiter;
use super::Tx;
use crate::errors::to_json;
use crate::queries;
use crate::writer::Reply;

pub(super) async fn cancel_execution(tx: &mut Tx<'_>, id: &str) -> Result<Reply, Error> {
    let row: Option<(String, Option<String>)> = tx
        .first(queries::EXECUTION_STATUS, p![id], "cancelling")
        .await?;
    let Some((status, parent)) = row else {
        return Err(Error::NotFound { id: id.to_owned() });
    };
    if matches!(status.as_str(), "completed" | "failed" | "cancelled") {
        return Ok(Reply::Cancelled(Vec::new()));
    }
    let cancelled = cancel_tree(tx, id, true).await?;
    if !cancelled.is_empty() {
        tx.wake(Wakeup::Finished {
            execution_ids: Arc::from(cancelled.clone()),
        });
    }
    if let Some(parent) = parent {
        if let Some(queue) = wake_waiter(tx, &parent, "child", id).await? {
            tx.wake(Wakeup::Work { queue });
        }
    }
    Ok(Reply::Cancelled(cancelled))
}

/// Cancels the unfinished executions of the tree under `root` (the root too when
/// `include_root`): their tasks go and they become `cancelled`. Returns the ids cancelled,
/// in walk order (the root first).
pub(super) async fn cancel_tree(
    tx: &mut Tx<'_>,
    root: &str,
    include_root: bool,
) -> Result<Vec<String>, Error> {
    let mut visited: HashSet<String> = HashSet::from([root.to_owned()]);
    let mut order = vec![root.to_owned()];
    let mut queue = VecDeque::from([root.to_owned()]);
    while let Some(id) = queue.pop_front() {
        let rows: Vec<String> = tx
            .all(queries::UNFINISHED_CHILDREN, p![id], "cancelling")
            .await?;
        for child in rows {
            if visited.insert(child.clone()) {
                order.push(child.clone());
                queue.push_back(child);
            }
        }
    }
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
        tx.exec(queries::DELETE_TASK, p![&id], "cancelling").await?;
        let marked = tx
            .exec(queries::CANCEL_EXECUTION, p![id, now, error], "cancelling")
            .await?;
        if marked > 0 {
            cancelled.push(id);
        }
    }
    Ok(cancelled)
}
