//! Operator reads: lists of executions and one execution in full, with why it is not moving.
//!
//! [`Admin`] is implemented by the backends next to their [`crate::Scheduler`] (zart-pg,
//! zart-sqlite); `zart list` and `zart show` are built on it, and programs can call it the same
//! way. It only reads. What an execution waits for is worked out here, once for every backend,
//! from the state the backend returns ([`ExecutionDetail::wait_reasons`]).

use std::time::SystemTime;

use async_trait::async_trait;

use crate::{Error, ErrorRecord, Execution, ExecutionStatus};

/// The largest page [`Admin::list_executions`] returns.
pub const MAX_LIST_LIMIT: u32 = 10_000;

/// Reads over a backend's executions for operators and dashboards.
///
/// Every method reads only, each from one consistent snapshot of the store. None needs an
/// index of its own: a list scans the history, which is fine for operations and not meant for
/// a hot path.
#[async_trait]
pub trait Admin: Send + Sync {
    /// One page of executions, newest first (by creation time, then id, both descending).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a limit of 0 or above [`MAX_LIST_LIMIT`];
    /// [`Error::NotFound`] when `after` names no execution; the transient and database
    /// errors of every call (a login that may not read the tables gets a database error).
    async fn list_executions(&self, params: ListExecutionsParams) -> Result<ExecutionPage, Error>;

    /// One execution with its steps, children, unconsumed events and task state, or `None`
    /// when no execution has the id.
    ///
    /// # Errors
    /// The transient and database errors of every call.
    async fn describe_execution(&self, id: &str) -> Result<Option<ExecutionDetail>, Error>;

    /// How many unfinished executions each queue holds, by status, and its due backlog, judged
    /// at the store's clock. Reads only the live queue (`zart_tasks`: one row per unfinished
    /// execution), never the history, so it is cheap enough to call every few seconds; not
    /// meant for every claim. Queues with nothing unfinished are not listed.
    ///
    /// # Errors
    /// The transient and database errors of every call (a login that may not read the tables
    /// gets a database error).
    async fn queue_stats(&self) -> Result<Vec<QueueStats>, Error>;

    /// The workers the store has seen in the last [`crate::presence::FORGET_AFTER`] (each
    /// worker records itself: [`crate::Scheduler::record_presence`]), most recently seen
    /// first, with the store's clock to judge them by ([`crate::presence::WorkerSeen::state`]).
    ///
    /// # Errors
    /// The transient and database errors of every call (a login that may not read the table
    /// gets a database error).
    async fn list_workers(&self) -> Result<crate::presence::WorkersSeen, Error>;
}

/// The unfinished executions of one queue ([`Admin::queue_stats`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueStats {
    /// The queue.
    pub queue: String,
    /// How many unfinished executions have each status (`scheduled`, `running`, `sleeping`,
    /// `waiting`); statuses with none are left out. The status is the one `zart_executions`
    /// holds, worked out from the task row: leased is `running`, a sleep or retry back-off is
    /// `sleeping`, an event or child wait is `waiting`, anything else `scheduled`.
    pub by_status: Vec<(ExecutionStatus, u64)>,
    /// How many are due now and not held by a live lease (an expired lease counts: it is due
    /// again): the backlog a worker of this queue could claim.
    pub due: u64,
    /// How long the oldest due one has been due; `None` when none is.
    pub oldest_due_age: Option<std::time::Duration>,
}

impl QueueStats {
    /// Empty statistics for `queue`; for backends, which fill them in.
    pub fn new(queue: String) -> Self {
        QueueStats {
            queue,
            by_status: Vec::new(),
            due: 0,
            oldest_due_age: None,
        }
    }

    /// Adds one group of a backend's read: `count` executions of `status`, of which `due` are
    /// due, the oldest of those due for `oldest_due_age`.
    pub fn add(
        &mut self,
        status: ExecutionStatus,
        count: u64,
        due: u64,
        oldest_due_age: Option<std::time::Duration>,
    ) {
        match self.by_status.iter_mut().find(|(s, _)| *s == status) {
            Some((_, n)) => *n += count,
            None => self.by_status.push((status, count)),
        }
        self.due += due;
        self.oldest_due_age = self.oldest_due_age.max(oldest_due_age);
    }

    /// Groups a backend's rows (queue, status, count, due, oldest due age) by queue, in
    /// queue order.
    pub fn collect(
        rows: impl IntoIterator<
            Item = (
                String,
                ExecutionStatus,
                u64,
                u64,
                Option<std::time::Duration>,
            ),
        >,
    ) -> Vec<QueueStats> {
        let mut queues: std::collections::BTreeMap<String, QueueStats> = Default::default();
        for (queue, status, count, due, oldest) in rows {
            queues
                .entry(queue.clone())
                .or_insert_with(|| QueueStats::new(queue))
                .add(status, count, due, oldest);
        }
        queues.into_values().collect()
    }
}

/// The filters and page of [`Admin::list_executions`]; every filter is optional.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListExecutionsParams {
    /// Only these statuses (empty: any).
    pub statuses: Vec<ExecutionStatus>,
    /// Only this task name.
    pub task_name: Option<String>,
    /// Only this queue.
    pub queue: Option<String>,
    /// Only executions created at or after this time.
    pub created_since: Option<SystemTime>,
    /// Only executions created before this time.
    pub created_until: Option<SystemTime>,
    /// Only executions whose id starts with this text (case-sensitive; at most
    /// [`crate::limits::MAX_NAME_BYTES`] bytes).
    pub id_prefix: Option<String>,
    /// The most to return (1 to [`MAX_LIST_LIMIT`]).
    pub limit: u32,
    /// The page after this execution (the previous page's [`ExecutionPage::next_after`]).
    pub after: Option<String>,
}

impl ListExecutionsParams {
    /// No filters, the first page of `limit` executions.
    pub fn new(limit: u32) -> Self {
        ListExecutionsParams {
            statuses: Vec::new(),
            task_name: None,
            queue: None,
            created_since: None,
            created_until: None,
            id_prefix: None,
            limit,
            after: None,
        }
    }

    /// Checks the limit before a backend reads anything.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a limit of 0 or above [`MAX_LIST_LIMIT`], or an id prefix
    /// that is empty, too long or holds a NUL character.
    pub fn check(&self) -> Result<(), Error> {
        if let Some(prefix) = &self.id_prefix {
            if prefix.is_empty() {
                return Err(Error::invalid(
                    "id_prefix",
                    "is empty (leave it out instead)",
                ));
            }
            if prefix.len() > crate::limits::MAX_NAME_BYTES {
                return Err(Error::invalid(
                    "id_prefix",
                    format!(
                        "is {} bytes, longer than any id ({} bytes)",
                        prefix.len(),
                        crate::limits::MAX_NAME_BYTES
                    ),
                ));
            }
            if prefix.contains('\0') {
                return Err(Error::invalid("id_prefix", "holds a NUL character"));
            }
        }
        if self.limit == 0 || self.limit > MAX_LIST_LIMIT {
            return Err(Error::invalid(
                "limit",
                format!("{} is outside 1 to {MAX_LIST_LIMIT}", self.limit),
            ));
        }
        Ok(())
    }
}

/// One page of executions.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ExecutionPage {
    /// The executions, newest first.
    pub executions: Vec<ExecutionSummary>,
    /// The id to pass as [`ListExecutionsParams::after`] for the next page; `None` on the last.
    pub next_after: Option<String>,
}

impl ExecutionPage {
    /// A page of `executions`, with the next page's cursor.
    pub fn new(executions: Vec<ExecutionSummary>, next_after: Option<String>) -> Self {
        ExecutionPage {
            executions,
            next_after,
        }
    }
}

/// An execution in a list: everything but its input, output and error.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExecutionSummary {
    /// The id.
    pub id: String,
    /// The task name.
    pub task_name: String,
    /// The queue.
    pub queue: String,
    /// The status.
    pub status: ExecutionStatus,
    /// Claims so far.
    pub attempts: u32,
    /// The parent, for a child execution.
    pub parent_id: Option<String>,
    /// When it was started.
    pub created_at: SystemTime,
    /// When a worker first claimed it.
    pub started_at: Option<SystemTime>,
    /// When it finished.
    pub finished_at: Option<SystemTime>,
}

impl ExecutionSummary {
    /// A summary with the given identity; for backends, which fill in the rest.
    pub fn new(id: String, task_name: String, status: ExecutionStatus) -> Self {
        ExecutionSummary {
            id,
            task_name,
            queue: String::new(),
            status,
            attempts: 0,
            parent_id: None,
            created_at: SystemTime::UNIX_EPOCH,
            started_at: None,
            finished_at: None,
        }
    }
}

/// One execution in full: what [`Admin::describe_execution`] returns.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ExecutionDetail {
    /// The execution as [`crate::Scheduler::get_execution`] reads it.
    pub execution: Execution,
    /// Its deadline, if it was started with one.
    pub deadline_at: Option<SystemTime>,
    /// When its row last changed.
    pub updated_at: SystemTime,
    /// Its steps (waits included) in call order.
    pub steps: Vec<StepRecord>,
    /// Its child executions, oldest first.
    pub children: Vec<ExecutionSummary>,
    /// Events sent to it that no wait has consumed, oldest first.
    pub pending_events: Vec<PendingEvent>,
    /// Its task (the live queue entry), while it is unfinished.
    pub task: Option<TaskState>,
    /// The store's clock when this was read: the time the wait reasons are judged against.
    pub now: SystemTime,
}

/// One recorded step or wait (a row of `zart_steps`).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct StepRecord {
    /// Its position in call order, from 0.
    pub seq: u32,
    /// Its name.
    pub name: String,
    /// `step`, `sleep`, `event`, `child` or `patch`.
    pub kind: String,
    /// `completed`, `failed`, `retrying` (between attempts) or `waiting` (an open wait).
    pub status: String,
    /// Attempts made.
    pub attempts: u32,
    /// Its output, once completed.
    pub output: Option<serde_json::Value>,
    /// Its error, once failed or while retrying.
    pub error: Option<ErrorRecord>,
    /// A sleep's wake time, or an event wait's timeout.
    pub wake_at: Option<SystemTime>,
    /// When it was first recorded (a wait: when it began).
    pub created_at: SystemTime,
    /// When it was last recorded (a wait: when it ended, once it has).
    pub updated_at: SystemTime,
}

impl StepRecord {
    /// Its status as people read it: `timed_out` for an event wait that timed out (stored as
    /// `completed` with `{"timed_out": true}`), else [`StepRecord::status`].
    pub fn outcome(&self) -> &str {
        let timed_out = self.kind == "event"
            && self.status == "completed"
            && self
                .output
                .as_ref()
                .is_some_and(|o| o.get("timed_out").is_some());
        if timed_out {
            "timed_out"
        } else {
            &self.status
        }
    }

    /// A step record with the given identity; for backends, which fill in the rest.
    pub fn new(seq: u32, name: String, kind: String, status: String) -> Self {
        StepRecord {
            seq,
            name,
            kind,
            status,
            attempts: 0,
            output: None,
            error: None,
            wake_at: None,
            created_at: SystemTime::UNIX_EPOCH,
            updated_at: SystemTime::UNIX_EPOCH,
        }
    }
}

/// An event sent to an execution and not consumed yet.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PendingEvent {
    /// The event name.
    pub name: String,
    /// Its payload.
    pub payload: serde_json::Value,
    /// When it was sent.
    pub created_at: SystemTime,
}

impl PendingEvent {
    /// An event record.
    pub fn new(name: String, payload: serde_json::Value, created_at: SystemTime) -> Self {
        PendingEvent {
            name,
            payload,
            created_at,
        }
    }
}

/// An unfinished execution's task: its place in the live queue (a row of `zart_tasks`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TaskState {
    /// When it is due; while leased, when the lease expires. `None`: no time (it waits for an
    /// event without a timeout, or for a child).
    pub run_at: Option<SystemTime>,
    /// The worker holding its lease.
    pub locked_by: Option<String>,
    /// What it is suspended on: `sleep`, `retry`, `event` or `child`.
    pub wait_kind: Option<String>,
    /// The step, event name or child id it is suspended on.
    pub wait_name: Option<String>,
    /// Claims that took it over from an expired lease since it last suspended.
    pub recoveries: u32,
}

impl TaskState {
    /// A task due at `run_at`, not leased and not suspended.
    pub fn new(run_at: Option<SystemTime>) -> Self {
        TaskState {
            run_at,
            locked_by: None,
            wait_kind: None,
            wait_name: None,
            recoveries: 0,
        }
    }
}

/// Why an unfinished execution is where it is, from [`ExecutionDetail::wait_reasons`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WaitReason {
    /// A worker runs it, with a lease until the given time.
    Running {
        /// The worker's id.
        worker: String,
        /// When its lease runs out unless renewed.
        lease_until: SystemTime,
    },
    /// The worker that ran it let its lease expire (it died or stalls); the next claim takes
    /// it over.
    LeaseExpired {
        /// The worker's id.
        worker: String,
        /// When the lease expired.
        expired_at: SystemTime,
    },
    /// A durable sleep.
    Sleeping {
        /// The sleep step.
        step: String,
        /// When it wakes (capped by the deadline).
        until: SystemTime,
    },
    /// A retry back-off between attempts of a step.
    Retrying {
        /// The step.
        step: String,
        /// Attempts made so far.
        attempts: u32,
        /// When the next attempt is due (capped by the deadline).
        until: SystemTime,
    },
    /// Waiting for an event.
    Event {
        /// The event name.
        name: String,
        /// When the wait began, if its step was found.
        since: Option<SystemTime>,
        /// When the wait times out (`None`: never).
        timeout_at: Option<SystemTime>,
    },
    /// Waiting for a child execution to finish.
    Child {
        /// The child's id.
        child_id: String,
        /// When the wait began, if its step was found.
        since: Option<SystemTime>,
    },
    /// Due and not claimed: no worker that registered its task runs on its queue, or they are
    /// all busy. (No store keeps a registry of workers, so the two cannot be told apart here.)
    Due {
        /// Since when it has been due.
        since: SystemTime,
    },
    /// Due later without a recorded wait.
    Scheduled {
        /// When it is due.
        at: SystemTime,
    },
    /// Past its deadline: the next run of it fails it (`deadline_exceeded`).
    PastDeadline {
        /// The deadline.
        deadline: SystemTime,
    },
}

impl ExecutionDetail {
    /// The detail of `execution` read at `now` (the store's clock) with every other part
    /// empty; for backends, which fill in the rest.
    pub fn new(execution: Execution, now: SystemTime) -> Self {
        ExecutionDetail {
            updated_at: execution.created_at,
            execution,
            deadline_at: None,
            steps: Vec::new(),
            children: Vec::new(),
            pending_events: Vec::new(),
            task: None,
            now,
        }
    }

    /// Why the execution is not finished, judged at [`ExecutionDetail::now`]; empty once it
    /// has finished.
    ///
    /// The reasons come in order: what holds it (a worker, a wait, the queue), then whether
    /// it is due and unclaimed, then whether it is past its deadline.
    pub fn wait_reasons(&self) -> Vec<WaitReason> {
        let mut reasons = Vec::new();
        if self.execution.status.is_terminal() {
            return reasons;
        }
        let Some(task) = &self.task else {
            return reasons;
        };
        let due = task.run_at.filter(|at| *at <= self.now);
        if let Some(worker) = &task.locked_by {
            match task.run_at {
                Some(at) if at <= self.now => reasons.push(WaitReason::LeaseExpired {
                    worker: worker.clone(),
                    expired_at: at,
                }),
                _ => reasons.push(WaitReason::Running {
                    worker: worker.clone(),
                    lease_until: task.run_at.unwrap_or(self.now),
                }),
            }
        } else {
            let name = task.wait_name.clone().unwrap_or_default();
            match task.wait_kind.as_deref() {
                Some("sleep") => reasons.push(WaitReason::Sleeping {
                    step: name,
                    until: task.run_at.unwrap_or(self.now),
                }),
                Some("retry") => reasons.push(WaitReason::Retrying {
                    attempts: self
                        .steps
                        .iter()
                        .find(|s| s.name == name)
                        .map_or(0, |s| s.attempts),
                    step: name,
                    until: task.run_at.unwrap_or(self.now),
                }),
                // A sent event may already have been handed into the wait (zart-pg does):
                // then the wait is over and the execution only waits to be claimed.
                Some("event") => {
                    if let Some(since) = self.open_wait_since("event") {
                        reasons.push(WaitReason::Event {
                            name,
                            since: Some(since),
                            timeout_at: task.run_at,
                        });
                    }
                }
                Some("child") => reasons.push(WaitReason::Child {
                    since: self.open_wait_since("child"),
                    child_id: name,
                }),
                _ => {
                    if let Some(at) = task.run_at.filter(|at| *at > self.now) {
                        reasons.push(WaitReason::Scheduled { at });
                    }
                }
            }
            if let Some(since) = due {
                reasons.push(WaitReason::Due { since });
            }
        }
        if let Some(deadline) = self.deadline_at.filter(|d| *d <= self.now) {
            reasons.push(WaitReason::PastDeadline { deadline });
        }
        reasons
    }

    /// When the latest open wait of `kind` began.
    fn open_wait_since(&self, kind: &str) -> Option<SystemTime> {
        self.steps
            .iter()
            .rev()
            .find(|s| s.kind == kind && s.status == "waiting")
            .map(|s| s.created_at)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use super::*;

    fn detail(status: ExecutionStatus, task: Option<TaskState>) -> ExecutionDetail {
        let mut d = ExecutionDetail::new(Execution::new("e".into(), "t".into(), status), at(1000));
        d.task = task;
        d
    }

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn a_finished_execution_waits_for_nothing() {
        let d = detail(ExecutionStatus::Completed, None);
        assert!(d.wait_reasons().is_empty());
    }

    #[test]
    fn a_sleep_past_its_time_is_due_and_a_lease_in_the_past_expired() {
        let mut task = TaskState::new(Some(at(900)));
        task.wait_kind = Some("sleep".into());
        task.wait_name = Some("nap".into());
        let d = detail(ExecutionStatus::Sleeping, Some(task.clone()));
        assert_eq!(
            d.wait_reasons(),
            vec![
                WaitReason::Sleeping {
                    step: "nap".into(),
                    until: at(900)
                },
                WaitReason::Due { since: at(900) }
            ]
        );
        task.locked_by = Some("w1".into());
        let mut d = detail(ExecutionStatus::Running, Some(task));
        d.deadline_at = Some(at(950));
        assert_eq!(
            d.wait_reasons(),
            vec![
                WaitReason::LeaseExpired {
                    worker: "w1".into(),
                    expired_at: at(900)
                },
                WaitReason::PastDeadline { deadline: at(950) }
            ]
        );
    }

    #[test]
    fn an_event_wait_names_when_it_began() {
        let mut task = TaskState::new(None);
        task.wait_kind = Some("event".into());
        task.wait_name = Some("approval".into());
        let mut d = detail(ExecutionStatus::Waiting, Some(task));
        let mut step =
            StepRecord::new(0, "event:approval".into(), "event".into(), "waiting".into());
        step.created_at = at(10);
        d.steps.push(step);
        assert_eq!(
            d.wait_reasons(),
            vec![WaitReason::Event {
                name: "approval".into(),
                since: Some(at(10)),
                timeout_at: None
            }]
        );
    }

    #[test]
    fn queue_stats_group_by_queue_and_keep_the_oldest_due() {
        use std::time::Duration;
        let stats = QueueStats::collect([
            (
                "b".to_owned(),
                ExecutionStatus::Running,
                2,
                1,
                Some(Duration::from_secs(3)),
            ),
            (
                "a".to_owned(),
                ExecutionStatus::Scheduled,
                5,
                4,
                Some(Duration::from_secs(9)),
            ),
            (
                "b".to_owned(),
                ExecutionStatus::Scheduled,
                1,
                1,
                Some(Duration::from_secs(7)),
            ),
            ("a".to_owned(), ExecutionStatus::Waiting, 3, 0, None),
        ]);
        let queues: Vec<&str> = stats.iter().map(|s| s.queue.as_str()).collect();
        assert_eq!(queues, ["a", "b"]);
        assert_eq!(
            stats[0].by_status,
            [
                (ExecutionStatus::Scheduled, 5),
                (ExecutionStatus::Waiting, 3)
            ]
        );
        assert_eq!(
            (stats[0].due, stats[0].oldest_due_age),
            (4, Some(Duration::from_secs(9)))
        );
        assert_eq!(
            (stats[1].due, stats[1].oldest_due_age),
            (2, Some(Duration::from_secs(7)))
        );
    }

    #[test]
    fn a_limit_of_zero_is_refused() {
        assert!(ListExecutionsParams::new(0).check().is_err());
        assert!(ListExecutionsParams::new(MAX_LIST_LIMIT + 1)
            .check()
            .is_err());
        ListExecutionsParams::new(50).check().unwrap();
    }
}
