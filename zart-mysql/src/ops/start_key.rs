//! Deduplicated and debounced starts (`zart_start_key`): a start key of a task names the
//! execution a start with it refers to.
//!
//! A dedup key names its execution until its window ends: a start with the key before then
//! returns that execution, whatever its own id and input. A debounce key names its execution
//! until a worker first claims it: a start with the key before then replaces that execution's
//! input and moves its start (and deadline) to the end of a new window. Otherwise the start
//! creates its own execution (a debounced one delayed by the window) and the key names it
//! from then on. A key used both ways is a conflict. Starts with one key take turns on its
//! row lock (`queries::LOCK_START_KEY`), across processes too.

use super::p;
use zart::queues::StartKey;
use zart::scheduler::{StartExecutionParams, StartOutcome};
use zart::{Error, ExecutionStatus};

use super::start::existing_execution;
use super::Tx;
use crate::clock;
use crate::queries;

/// The execution `key` still names, if any: returned as the start's outcome (after a debounce
/// moved it). `None`: the start creates its own, delayed to `until` for a debounce. Writes
/// only for a debounce that moves its execution; `input` is the start's, checked and as
/// stored.
pub(super) async fn start_key(
    tx: &mut Tx<'_>,
    p: &StartExecutionParams,
    key: &StartKey,
    input: &str,
    until: i64,
) -> Result<Option<StartOutcome>, Error> {
    tx.exec(
        queries::LOCK_START_KEY,
        p![p.task_name, key.key, key.debounce],
        "locking a start key",
    )
    .await?;
    let row: Option<(String, bool, String)> = tx
        .first(
            queries::START_KEY,
            p![p.task_name, key.key],
            "reading a start key",
        )
        .await?;
    // A placeholder (no execution) is a key this start is the first to use.
    let Some((named, debounce, expires_at)) = row.filter(|(named, _, _)| !named.is_empty()) else {
        return Ok(None);
    };
    if debounce != key.debounce {
        let kind = |debounce: bool| if debounce { "debounce" } else { "dedup" };
        return Err(Error::Conflict {
            id: p.id.clone(),
            detail: format!(
                "start key {:?} of task {:?} is a {} key, not a {} key",
                key.key,
                p.task_name,
                kind(debounce),
                kind(key.debounce)
            ),
        });
    }
    if key.debounce {
        return debounce_start(tx, &p.task_name, key, &named, input, until).await;
    }
    if clock::parse_stored(&expires_at, "a start key's expiry")? <= tx.now {
        return Ok(None);
    }
    // Gone (pruned): the start begins anew.
    let status: Option<String> = tx
        .first::<(String, Option<String>)>(
            queries::EXECUTION_STATUS,
            p![&named],
            "reading a start key",
        )
        .await?
        .map(|(status, _)| status);
    match status {
        Some(status) => Ok(Some(StartOutcome {
            created: false,
            status: ExecutionStatus::parse(&status)?,
            id: named,
        })),
        None => Ok(None),
    }
}

/// Moves execution `named` to start at `until` with `input`, if no worker has claimed it yet,
/// and renews the key; returns it, or `None` (nothing written) when it was claimed or is gone.
async fn debounce_start(
    tx: &mut Tx<'_>,
    task_name: &str,
    key: &StartKey,
    named: &str,
    input: &str,
    until: i64,
) -> Result<Option<StartOutcome>, Error> {
    let Some(existing) = existing_execution(tx, named).await? else {
        return Ok(None);
    };
    let start_at = clock::format(until);
    let moved = tx
        .exec(
            queries::DEBOUNCE_TASK,
            p![named, start_at],
            "debouncing a start",
        )
        .await?;
    if moved == 0 {
        return Ok(None);
    }
    // The deadline keeps its distance from the start.
    let deadline_at = existing
        .deadline_ms()?
        .map(|ms| clock::format(until.saturating_add(ms)));
    tx.exec(
        queries::DEBOUNCE_EXECUTION,
        p![named, input, start_at, deadline_at, tx.now_text()],
        "debouncing a start",
    )
    .await?;
    set_start_key(tx, task_name, key, named, until).await?;
    Ok(Some(StartOutcome {
        created: false,
        status: ExecutionStatus::Scheduled,
        id: named.to_owned(),
    }))
}

/// Points `key` of `task_name` at execution `id` until `until` (creating the key if new).
pub(super) async fn set_start_key(
    tx: &mut Tx<'_>,
    task_name: &str,
    key: &StartKey,
    id: &str,
    until: i64,
) -> Result<(), Error> {
    tx.exec(
        queries::SET_START_KEY,
        p![task_name, key.key, id, key.debounce, clock::format(until)],
        "recording a start key",
    )
    .await?;
    Ok(())
}
