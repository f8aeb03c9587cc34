//! Grouped writes: the step results and the outcomes of one batch, each kind written with a
//! few statements over all its items instead of a few per item.
//!
//! MySQL has no stored-procedure round trip that takes a batch, so the writer's cost is its
//! round trips: a step result alone takes two (the lease check and the upsert), an outcome
//! four. When a batch holds several of a kind, [`commit_steps`] and [`complete_executions`]
//! write them as a group: one statement locks and checks every lease, one reads what is
//! already recorded, one writes every row. They give each item the answer the one-item path
//! ([`super::steps`]) gives it: every refusal (bad input, a lost lease, a cancelled execution,
//! a result already recorded) is found before the group's first write, so a refused item
//! writes nothing and the others commit. An error after a write fails the whole batch, and the
//! batcher writes each item alone.
//!
//! Items of a batch were all in flight at once, so the writer may take them in any order: it
//! writes the other operations first, then the step results, then the outcomes.
//!
//! A list statement has as many places as the next power of two of its items (unused places
//! repeat the last item, which changes nothing), so a handful of statement texts serve every
//! size and stay in the connection's statement cache; a group of more than [`CHUNK`] items
//! goes in chunks.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use mysql_async::Value;
use zart::scheduler::{CommitStepParams, CompleteExecutionParams, Lease, Wakeup};
use zart::Error;

use super::cancel::cancel_tree;
use super::fence::{refused, wake_waiter};
use super::queues::limit_freed;
use super::steps::{outcome_columns, StepRow};
use super::Tx;
use crate::writer::Reply;

/// The most items one list statement takes.
pub(crate) const CHUNK: usize = 64;

/// Each item's answer, in the order of the items.
pub(crate) type Answers = Vec<Result<Reply, Error>>;

/// How many places a list of `n` items gets.
pub(super) fn places(n: usize) -> usize {
    n.next_power_of_two().max(2)
}

/// `n` copies of `each`, comma-separated.
pub(super) fn marks(n: usize, each: &str) -> String {
    vec![each; n].join(", ")
}

/// `column = case key when ? then ? ... end` with `n` arms: a value per row of a list
/// statement (parameters: each row's key, then its value).
pub(super) fn case(column: &str, key: &str, n: usize) -> String {
    format!(
        "{column} = case {key} {} end",
        vec!["when ? then ?"; n].join(" ")
    )
}

/// `items` padded to `places(items.len())` with copies of the last.
pub(super) fn padded<T: Clone>(items: &[T]) -> Vec<T> {
    let mut out = items.to_vec();
    if let Some(last) = items.last() {
        out.resize(places(items.len()), last.clone());
    }
    out
}

/// One answer per item, filled in as the writer goes (each item exactly once).
pub(crate) struct Slots(Vec<Option<Result<Reply, Error>>>);

impl Slots {
    pub(crate) fn new(n: usize) -> Self {
        Slots((0..n).map(|_| None).collect())
    }

    pub(crate) fn set(&mut self, i: usize, answer: Result<Reply, Error>) {
        self.0[i] = Some(answer);
    }

    pub(crate) fn into_answers(self) -> Answers {
        self.0
            .into_iter()
            .map(|a| a.unwrap_or_else(|| Err(crate::errors::internal("a write went unanswered"))))
            .collect()
    }
}

/// The fence each of `ids` (distinct) holds, locking the task rows of those that are
/// claimed until commit.
async fn held_fences(tx: &mut Tx<'_>, ids: &[&str]) -> Result<HashMap<String, i64>, Error> {
    let list = padded(ids);
    let sql = format!(
        "select execution_id, fence from zart_tasks
         where execution_id in ({}) and locked_by is not null for update",
        marks(list.len(), "?")
    );
    let rows: Vec<(String, i64)> = tx
        .all_list(
            &sql,
            list.iter().map(|id| Value::from(*id)).collect(),
            "checking leases",
        )
        .await?;
    Ok(rows.into_iter().collect())
}

/// Keeps the items whose lease is held; answers the others with why their write is refused.
async fn keep_held<T>(
    tx: &mut Tx<'_>,
    items: Vec<(usize, T)>,
    lease: impl Fn(&T) -> &Lease,
    slots: &mut Slots,
) -> Result<Vec<(usize, T)>, Error> {
    let mut ids: Vec<&str> = Vec::new();
    for (_, item) in &items {
        let id = lease(item).execution_id.as_str();
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    if ids.is_empty() {
        return Ok(items);
    }
    let fences = held_fences(tx, &ids).await?;
    let mut kept = Vec::with_capacity(items.len());
    for (i, item) in items {
        let l = lease(&item);
        if fences.get(&l.execution_id) == Some(&l.fence) {
            kept.push((i, item));
        } else {
            let id = l.execution_id.clone();
            slots.set(i, Err(refused(tx, &id).await?));
        }
    }
    Ok(kept)
}

/// Records step results (each item as `steps::commit_step` would); the (execution, name)
/// pairs are distinct.
pub(crate) async fn commit_steps(
    tx: &mut Tx<'_>,
    items: &[&CommitStepParams],
) -> Result<Answers, Error> {
    let mut slots = Slots::new(items.len());
    for (start, chunk) in items.chunks(CHUNK).enumerate() {
        commit_chunk(tx, start * CHUNK, chunk, &mut slots).await?;
    }
    Ok(slots.into_answers())
}

async fn commit_chunk(
    tx: &mut Tx<'_>,
    offset: usize,
    items: &[&CommitStepParams],
    slots: &mut Slots,
) -> Result<(), Error> {
    let mut rows = Vec::with_capacity(items.len());
    for (i, p) in items.iter().enumerate() {
        match StepRow::of(tx, p) {
            Ok(row) => rows.push((offset + i, row)),
            Err(err) => slots.set(offset + i, Err(err)),
        }
    }
    let rows = keep_held(tx, rows, |r| r.lease, slots).await?;
    if rows.is_empty() {
        return Ok(());
    }
    // A final result is never overwritten: those items are refused before anything is written.
    let pairs = padded(
        &rows
            .iter()
            .map(|(_, r)| (r.lease.execution_id.as_str(), r.name))
            .collect::<Vec<_>>(),
    );
    let sql = format!(
        "select execution_id, name from zart_steps
         where status <> 'retrying' and ({})",
        vec!["(execution_id = ? and name = ?)"; pairs.len()].join(" or ")
    );
    let params = pairs
        .iter()
        .flat_map(|(id, name)| [Value::from(*id), Value::from(*name)])
        .collect();
    let recorded: HashSet<(String, String)> = tx
        .all_list::<(String, String)>(&sql, params, "checking recorded steps")
        .await?
        .into_iter()
        .collect();
    let mut writes = Vec::with_capacity(rows.len());
    for (i, row) in rows {
        if recorded.contains(&(row.lease.execution_id.clone(), row.name.to_owned())) {
            slots.set(
                i,
                Err(Error::StepAlreadyRecorded {
                    id: row.lease.execution_id.clone(),
                    step: row.name.to_owned(),
                }),
            );
        } else {
            writes.push((i, row));
        }
    }
    if writes.is_empty() {
        return Ok(());
    }
    let now = tx.now_text();
    let values = padded(
        &writes
            .iter()
            .map(|(_, r)| r.values(&now))
            .collect::<Vec<_>>(),
    );
    let sql = format!(
        "insert into zart_steps
            (execution_id, name, seq, kind, status, output, error, attempts, created_at, updated_at)
         values {}
         on duplicate key update {}",
        marks(values.len(), "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
        crate::queries::STEP_OVERWRITE
    );
    tx.exec_list(
        &sql,
        values.into_iter().flatten().collect(),
        "recording steps",
    )
    .await?;
    for (i, _) in writes {
        slots.set(i, Ok(Reply::Done));
    }
    Ok(())
}

/// An outcome ready to write.
#[derive(Clone)]
struct Finish<'a> {
    lease: &'a Lease,
    status: &'static str,
    output: Option<String>,
    error: Option<String>,
}

/// Records outcomes (each item as `steps::complete_execution` would); the executions are
/// distinct.
pub(crate) async fn complete_executions(
    tx: &mut Tx<'_>,
    items: &[&CompleteExecutionParams],
) -> Result<Answers, Error> {
    let mut slots = Slots::new(items.len());
    for (start, chunk) in items.chunks(CHUNK).enumerate() {
        complete_chunk(tx, start * CHUNK, chunk, &mut slots).await?;
    }
    Ok(slots.into_answers())
}

async fn complete_chunk(
    tx: &mut Tx<'_>,
    offset: usize,
    items: &[&CompleteExecutionParams],
    slots: &mut Slots,
) -> Result<(), Error> {
    let mut rows = Vec::with_capacity(items.len());
    for (i, p) in items.iter().enumerate() {
        let finish = outcome_columns(tx, &p.outcome);
        match finish {
            Ok((status, output, error)) => rows.push((
                offset + i,
                Finish {
                    lease: &p.lease,
                    status,
                    output,
                    error,
                },
            )),
            Err(err) => slots.set(offset + i, Err(err)),
        }
    }
    let rows = keep_held(tx, rows, |f| f.lease, slots).await?;
    if rows.is_empty() {
        return Ok(());
    }
    let finishes = padded(&rows.iter().map(|(_, f)| f.clone()).collect::<Vec<_>>());
    let n = finishes.len();
    let ids = || finishes.iter().map(|f| Value::from(&f.lease.execution_id));
    let what = "recording outcomes";
    tx.exec_list(
        &format!(
            "delete from zart_tasks where execution_id in ({})",
            marks(n, "?")
        ),
        ids().collect(),
        what,
    )
    .await?;
    let about: Vec<(String, Option<String>, String)> = tx
        .all_list(
            &format!(
                "select id, parent_id, queue from zart_executions where id in ({})",
                marks(n, "?")
            ),
            ids().collect(),
            what,
        )
        .await?;
    let sql = format!(
        "update zart_executions set {}, {}, {}, finished_at = ?, updated_at = ? where id in ({})",
        case("status", "id", n),
        case("output", "id", n),
        case("error", "id", n),
        marks(n, "?")
    );
    let now = tx.now_text();
    let mut params: Vec<Value> = Vec::with_capacity(7 * n + 2);
    for column in [
        |f: &Finish<'_>| Value::from(f.status),
        |f: &Finish<'_>| Value::from(&f.output),
        |f: &Finish<'_>| Value::from(&f.error),
    ] {
        for f in &finishes {
            params.push(Value::from(&f.lease.execution_id));
            params.push(column(f));
        }
    }
    params.push(Value::from(&now));
    params.push(Value::from(&now));
    params.extend(ids());
    tx.exec_list(&sql, params, what).await?;

    let about: HashMap<String, (Option<String>, String)> = about
        .into_iter()
        .map(|(id, parent, queue)| (id, (parent, queue)))
        .collect();
    let mut finished = Vec::with_capacity(rows.len());
    let mut queues: Vec<String> = Vec::new();
    for (i, f) in &rows {
        let id = &f.lease.execution_id;
        finished.push(id.clone());
        if f.status == "failed" {
            // A failed execution's unfinished descendants are cancelled, as a cancelled one's are.
            finished.extend(cancel_tree(tx, id, false).await?);
        }
        if let Some((parent, queue)) = about.get(id) {
            if !queues.contains(queue) {
                queues.push(queue.clone());
            }
            if let Some(parent) = parent {
                if let Some(queue) = wake_waiter(tx, parent, "child", id).await? {
                    tx.wake(Wakeup::Work { queue });
                }
            }
        }
        slots.set(*i, Ok(Reply::Done));
    }
    tx.wake(Wakeup::Finished {
        execution_ids: Arc::from(finished),
    });
    // The runs ended: in a limited queue, a waiting claim may go.
    for queue in queues {
        limit_freed(tx, &queue).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_get_power_of_two_places_padded_with_the_last_item() {
        assert_eq!(places(1), 2);
        assert_eq!(places(2), 2);
        assert_eq!(places(3), 4);
        assert_eq!(places(64), 64);
        assert_eq!(padded(&[1, 2, 3]), vec![1, 2, 3, 3]);
        assert_eq!(padded::<i32>(&[]), Vec::<i32>::new());
        assert_eq!(marks(3, "?"), "?, ?, ?");
    }
}
