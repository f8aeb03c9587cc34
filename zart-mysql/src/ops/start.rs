//! Starting executions (`zart_start_execution`, `zart_insert_execution`): idempotent by id,
//! with the conflict rules of task, input, queue, parent, deadline, priority and limit key;
//! with a start key, deduplicated or debounced first (`start_key`).

use super::p;
use zart::limits::check_name;
use zart::scheduler::{StartExecutionParams, StartOutcome, WakeAt, Wakeup};
use zart::{Error, ExecutionStatus};

use super::start_key::{set_start_key, start_key};
use super::{check_size, Tx};
use crate::clock;
use crate::errors::{from_json, to_json};
use crate::queries;
use crate::writer::Reply;

/// What a new execution is started with.
pub(super) struct NewExecution<'a> {
    pub id: &'a str,
    pub task_name: &'a str,
    pub input: &'a serde_json::Value,
    pub queue: &'a str,
    pub parent_id: Option<&'a str>,
    pub deadline_ms: Option<i64>,
    /// When it starts, in ms on the store's clock (`None`: now; an earlier time means now).
    pub start_ms: Option<i64>,
    /// Claims within the queue take higher priorities first.
    pub priority: i16,
    /// The key the queue's per-key limits count it under.
    pub limit_key: Option<&'a str>,
}

/// Starts a top-level execution, or a child of an existing one. With a start key, the key is
/// looked at first and may name the execution to return instead; every refusal comes before
/// the first write.
pub(super) async fn start_execution(
    tx: &mut Tx<'_>,
    p: &StartExecutionParams,
) -> Result<Reply, Error> {
    if let Some(key) = &p.start_key {
        if key.debounce && p.start.is_some() {
            return Err(Error::invalid(
                "start",
                "a debounced start begins when its window ends; give no delay or start time",
            ));
        }
        key.validate()?;
    }
    let start_ms = start_ms(tx, p.start).await?;
    if let Some(parent) = &p.parent_id {
        check_parent(tx, &p.id, parent).await?;
    }
    let mut new = NewExecution {
        id: &p.id,
        task_name: &p.task_name,
        input: &p.input,
        queue: &p.queue,
        parent_id: p.parent_id.as_deref(),
        deadline_ms: p.deadline.map(clock::millis),
        start_ms,
        priority: p.priority,
        limit_key: p.limit_key.as_deref(),
    };
    let Some(key) = &p.start_key else {
        return Ok(Reply::Started(insert_execution(tx, &new).await?));
    };
    let input = check_execution(tx, &new).await?;
    let until = tx.now.saturating_add(clock::millis(key.window));
    if let Some(named) = start_key(tx, p, key, &input, until).await? {
        return Ok(Reply::Started(named));
    }
    if key.debounce {
        new.start_ms = Some(until);
    }
    let outcome = insert_execution(tx, &new).await?;
    // The key names the execution this start refers to (new, or the one with this id).
    set_start_key(tx, &p.task_name, key, &p.id, until).await?;
    Ok(Reply::Started(outcome))
}

/// Refuses a parent that is the execution itself or does not exist.
async fn check_parent(tx: &mut Tx<'_>, id: &str, parent: &str) -> Result<(), Error> {
    if parent == id {
        return Err(Error::invalid(
            "parent id",
            "an execution cannot be its own parent",
        ));
    }
    let exists: Option<String> = tx
        .first::<(String, Option<String>)>(
            queries::EXECUTION_STATUS,
            p![parent],
            "starting an execution",
        )
        .await?
        .map(|(status, _)| status);
    if exists.is_none() {
        // A new execution cannot be an ancestor of an existing one: no cycle can form.
        return Err(Error::invalid(
            "parent id",
            format!("no execution {parent:?}"),
        ));
    }
    Ok(())
}

/// The start time of a delayed start on the store's clock, refused over 100 years ahead.
async fn start_ms(tx: &mut Tx<'_>, start: Option<WakeAt>) -> Result<Option<i64>, Error> {
    let limit = clock::millis(zart::limits::MAX_WAIT);
    Ok(match start {
        None => None,
        Some(WakeAt::After(delay)) => {
            let ms = clock::millis(delay);
            if ms > limit {
                return Err(Error::invalid(
                    "start delay",
                    format!("{ms} ms is outside 0 ms to 100 years"),
                ));
            }
            Some(tx.now.saturating_add(ms))
        }
        Some(WakeAt::At(at)) => {
            let ms = clock::system_ms(at);
            if ms.saturating_sub(tx.now) > limit {
                return Err(Error::invalid("start time", "is more than 100 years ahead"));
            }
            Some(ms)
        }
    })
}

/// Checks what a new execution is started with, as `insert_execution` does before it writes;
/// returns its input as stored.
pub(super) async fn check_execution(
    tx: &mut Tx<'_>,
    e: &NewExecution<'_>,
) -> Result<String, Error> {
    check_name("execution id", e.id)?;
    check_name("task name", e.task_name)?;
    check_name("queue", e.queue)?;
    if let Some(key) = e.limit_key {
        check_name("limit key", key)?;
    }
    let input = to_json(e.input, "the input")?;
    check_size(tx, "input", &input)?;
    if let Some(ms) = e.deadline_ms {
        if ms <= 0 || ms > clock::millis(zart::limits::MAX_WAIT) {
            return Err(Error::invalid(
                "deadline",
                format!("{ms} ms is outside 1 ms to 100 years"),
            ));
        }
    }
    Ok(input)
}

/// An existing execution as a repeated start compares it.
pub(super) struct Existing {
    task_name: String,
    input: String,
    queue: String,
    parent_id: Option<String>,
    deadline_at: Option<String>,
    /// The start time asked for, else the creation time.
    started_from: String,
    status: String,
    priority: i64,
    limit_key: Option<String>,
}

impl Existing {
    /// The deadline as asked for: its distance from the start, in ms.
    pub(super) fn deadline_ms(&self) -> Result<Option<i64>, Error> {
        let Some(at) = &self.deadline_at else {
            return Ok(None);
        };
        Ok(Some(
            clock::parse_stored(at, "a deadline")?
                - clock::parse_stored(&self.started_from, "a start time")?,
        ))
    }
}

/// The execution `id` as a repeated start compares it.
pub(super) async fn existing_execution(
    tx: &mut Tx<'_>,
    id: &str,
) -> Result<Option<Existing>, Error> {
    type Row = (
        String,
        String,
        String,
        Option<String>,
        Option<String>,
        String,
        String,
        i64,
        Option<String>,
    );
    let row: Option<Row> = tx
        .first(queries::EXISTING_EXECUTION, p![id], "starting an execution")
        .await?;
    Ok(row.map(
        |(
            task_name,
            input,
            queue,
            parent_id,
            deadline_at,
            started_from,
            status,
            priority,
            limit_key,
        )| {
            Existing {
                task_name,
                input,
                queue,
                parent_id,
                deadline_at,
                started_from,
                status,
                priority,
                limit_key,
            }
        },
    ))
}

/// Inserts the execution and its task if the id is new; else returns the existing one's status
/// when everything matches, or [`Error::Conflict`] saying what differs.
pub(super) async fn insert_execution(
    tx: &mut Tx<'_>,
    e: &NewExecution<'_>,
) -> Result<StartOutcome, Error> {
    let input = check_execution(tx, e).await?;
    let now = tx.now_text();
    // The deadline counts from the start: a delayed execution gets its whole deadline.
    let start = e.start_ms.map_or(tx.now, |ms| ms.max(tx.now));
    let start_at = (start > tx.now).then(|| clock::format(start));
    let run_at = clock::format(start);
    let deadline_at = e
        .deadline_ms
        .map(|ms| clock::format(start.saturating_add(ms)));
    let inserted = tx
        .exec(
            queries::INSERT_EXECUTION,
            p![
                e.id,
                e.task_name,
                e.queue,
                input,
                e.parent_id,
                deadline_at,
                now,
                start_at,
                e.priority,
                e.limit_key
            ],
            "starting an execution",
        )
        .await?;
    if inserted == 1 {
        tx.exec(
            queries::INSERT_TASK,
            p![e.id, e.task_name, e.queue, run_at, e.priority, e.limit_key],
            "starting an execution",
        )
        .await?;
        tx.wake(Wakeup::Work {
            queue: e.queue.to_owned(),
        });
        return Ok(StartOutcome {
            created: true,
            status: ExecutionStatus::Scheduled,
            id: e.id.to_owned(),
        });
    }
    let existing = existing_execution(tx, e.id)
        .await?
        .ok_or_else(|| crate::errors::internal(format!("execution {:?} vanished", e.id)))?;
    if let Some(detail) = difference(e, &existing)? {
        return Err(Error::Conflict {
            id: e.id.to_owned(),
            detail,
        });
    }
    Ok(StartOutcome {
        created: false,
        status: ExecutionStatus::parse(&existing.status)?,
        id: e.id.to_owned(),
    })
}

/// What differs between a start and the execution that has its id, as a conflict says it.
fn difference(e: &NewExecution<'_>, x: &Existing) -> Result<Option<String>, Error> {
    let id = e.id;
    let show = |p: Option<&str>| p.map_or("none".to_owned(), |p| format!("{p:?}"));
    if x.task_name != e.task_name {
        return Ok(Some(format!(
            "execution {id:?} already exists with task {:?}, not {:?}",
            x.task_name, e.task_name
        )));
    }
    let stored: serde_json::Value = from_json(&x.input, "a stored input")?;
    if &stored != e.input {
        return Ok(Some(format!(
            "execution {id:?} already exists with a different input"
        )));
    }
    if x.queue != e.queue {
        return Ok(Some(format!(
            "execution {id:?} already exists in queue {:?}, not {:?}",
            x.queue, e.queue
        )));
    }
    if x.parent_id.as_deref() != e.parent_id {
        return Ok(Some(format!(
            "execution {id:?} already exists with parent {}, not {}",
            show(x.parent_id.as_deref()),
            show(e.parent_id)
        )));
    }
    let deadline = x.deadline_ms()?;
    if deadline != e.deadline_ms {
        let ms = |d: Option<i64>| d.map_or("none".to_owned(), |ms| format!("{ms} ms"));
        return Ok(Some(format!(
            "execution {id:?} already exists with deadline {}, not {}",
            ms(deadline),
            ms(e.deadline_ms)
        )));
    }
    if x.priority != i64::from(e.priority) {
        return Ok(Some(format!(
            "execution {id:?} already exists with priority {}, not {}",
            x.priority, e.priority
        )));
    }
    if x.limit_key.as_deref() != e.limit_key {
        return Ok(Some(format!(
            "execution {id:?} already exists with limit key {}, not {}",
            show(x.limit_key.as_deref()),
            show(e.limit_key)
        )));
    }
    Ok(None)
}
