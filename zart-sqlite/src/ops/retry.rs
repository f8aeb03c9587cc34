//! Retrying a failed execution (`zart_retry_execution`): the step that failed it runs again,
//! every other recorded step is kept, and the children it was waiting on that failed or were
//! cancelled are revived with it. Walked with a visited set, as cancellation is.

use std::collections::HashSet;

use rusqlite::OptionalExtension;
use zart::scheduler::Wakeup;
use zart::Error;

use super::{Cached, Tx};
use crate::errors::SqlResult;
use crate::queries;
use crate::writer::Reply;

/// What a retry reads of an execution: status, task, queue, the failed step its error names,
/// deadline.
type Target = (String, String, String, Option<String>, Option<String>);

pub(super) fn retry_execution(tx: &mut Tx<'_>, id: &str) -> Result<Reply, Error> {
    let Some(root) = target(tx, id)? else {
        return Err(Error::NotFound { id: id.to_owned() });
    };
    let (status, deadline_at) = (&root.0, &root.4);
    if status != "failed" {
        return Err(Error::NotRetryable {
            id: id.to_owned(),
            reason: format!("it is {status} (only a failed execution can be)"),
        });
    }
    if let Some(deadline) = deadline_at {
        if crate::clock::parse_stored(deadline, "a deadline")? <= tx.now {
            return Err(Error::NotRetryable {
                id: id.to_owned(),
                reason: format!(
                    "its deadline passed at {deadline} (a retry would fail at once; start a \
                     new execution instead)"
                ),
            });
        }
    }

    let mut order = vec![id.to_owned()];
    let mut visited: HashSet<String> = HashSet::from([id.to_owned()]);
    let mut revived = Vec::new();
    let mut root = Some(root);
    let mut at = 0;
    while at < order.len() {
        let current = order[at].clone();
        at += 1;
        // The root was read above; its children are read here.
        let read = match root.take() {
            Some(row) => Some(row),
            None => target(tx, &current)?,
        };
        let Some((status, task_name, queue, failed_step, _)) = read else {
            continue;
        };
        if current != id && !matches!(status.as_str(), "failed" | "cancelled") {
            continue;
        }
        let mut kids = Vec::new();
        if let Some(step) = &failed_step {
            let child: Option<Option<String>> = tx
                .conn
                .row_cached(queries::FAILED_CHILD_OF_STEP, [&current, step], |r| {
                    r.get(0)
                })
                .optional()
                .or_db(tx.conn, "retrying")?;
            kids.extend(child.flatten());
        }
        tx.conn
            .exec_cached(
                queries::DELETE_RETRIED_STEPS,
                rusqlite::params![current, failed_step],
            )
            .or_db(tx.conn, "retrying")?;
        {
            let mut open = tx
                .conn
                .prepare_cached(queries::OPEN_CHILD_WAITS)
                .or_db(tx.conn, "retrying")?;
            let rows = open
                .query_map([&current], |r| r.get::<_, String>(0))
                .or_db(tx.conn, "retrying")?;
            for kid in rows {
                kids.push(kid.or_db(tx.conn, "retrying")?);
            }
        }
        for kid in kids {
            if visited.insert(kid.clone()) {
                order.push(kid);
            }
        }
        let now = tx.now_text();
        tx.conn
            .exec_cached(queries::REVIVE_EXECUTION, rusqlite::params![current, now])
            .or_db(tx.conn, "retrying")?;
        tx.conn
            .exec_cached(
                queries::INSERT_RETRIED_TASK,
                rusqlite::params![current, task_name, queue, now],
            )
            .or_db(tx.conn, "retrying")?;
        tx.wake(Wakeup::Work { queue });
        revived.push(current);
    }
    Ok(Reply::Retried(revived))
}

fn target(tx: &Tx<'_>, id: &str) -> Result<Option<Target>, Error> {
    tx.conn
        .row_cached(queries::RETRY_TARGET, [id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .optional()
        .or_db(tx.conn, "retrying")
}
