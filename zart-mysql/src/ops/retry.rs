//! Retrying a failed execution (`zart_retry_execution`): the step that failed it runs again,
//! every other recorded step is kept, and the children it was waiting on that failed or were
//! cancelled are revived with it. Walked with a visited set, as cancellation is.

use super::p;
use std::collections::HashSet;

use zart::scheduler::Wakeup;
use zart::Error;

use super::Tx;
use crate::queries;
use crate::writer::Reply;

/// What a retry reads of an execution: status, task, queue, the failed step its error names,
/// deadline.
type Target = (String, String, String, Option<String>, Option<String>);

pub(super) async fn retry_execution(tx: &mut Tx<'_>, id: &str) -> Result<Reply, Error> {
    let Some(root) = target(tx, id).await? else {
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
            None => target(tx, &current).await?,
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
                .first(
                    queries::FAILED_CHILD_OF_STEP,
                    p![&current, step],
                    "retrying",
                )
                .await?;
            kids.extend(child.flatten());
        }
        tx.exec(
            queries::DELETE_RETRIED_STEPS,
            p![current, failed_step],
            "retrying",
        )
        .await?;
        let open: Vec<String> = tx
            .all(queries::OPEN_CHILD_WAITS, p![current], "retrying")
            .await?;
        kids.extend(open);
        for kid in kids {
            if visited.insert(kid.clone()) {
                order.push(kid);
            }
        }
        let now = tx.now_text();
        tx.exec(queries::REVIVE_EXECUTION, p![current, now], "retrying")
            .await?;
        tx.exec(
            queries::INSERT_RETRIED_TASK,
            p![current, task_name, queue, now],
            "retrying",
        )
        .await?;
        tx.wake(Wakeup::Work { queue });
        revived.push(current);
    }
    Ok(Reply::Retried(revived))
}

async fn target(tx: &mut Tx<'_>, id: &str) -> Result<Option<Target>, Error> {
    tx.first(queries::RETRY_TARGET, p![id], "retrying").await
}
