//! What operators see of executions, as data: the JSON of `zart list --json` and
//! `zart show --json` (and of anything else that shows executions to people), built once from
//! the reads of [`crate::admin`]. Times are UTC, ISO 8601 with milliseconds
//! (`2026-12-07T10:00:00.123Z`); statuses and kinds are their stored names.
//!
//! ```
//! use std::time::SystemTime;
//! use zart::admin::{ExecutionPage, ExecutionSummary};
//! use zart::view::ExecutionPageView;
//! use zart::ExecutionStatus;
//!
//! let mut summary = ExecutionSummary::new("order-7".into(), "fulfil".into(), ExecutionStatus::Running);
//! summary.created_at = SystemTime::UNIX_EPOCH;
//! let page = ExecutionPage::new(vec![summary], None);
//! let json = serde_json::to_value(ExecutionPageView::from(&page))?;
//! assert_eq!(json["executions"][0]["task"], "fulfil");
//! assert_eq!(json["executions"][0]["created_at"], "1970-01-01T00:00:00.000Z");
//! # Ok::<(), serde_json::Error>(())
//! ```

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::admin::{
    ExecutionDetail, ExecutionPage, ExecutionSummary, PendingEvent, StepRecord, TaskState,
    WaitReason,
};
use crate::ErrorRecord;

/// A time as operators see it: UTC, ISO 8601, milliseconds (`2026-12-07T10:00:00.123Z`).
pub fn time(t: SystemTime) -> String {
    crate::stored_time::format(crate::stored_time::system_ms(t))
}

fn time_opt(t: Option<SystemTime>) -> Option<String> {
    t.map(time)
}

/// One page of executions ([`crate::admin::Admin::list_executions`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExecutionPageView {
    /// The executions, newest first.
    pub executions: Vec<ExecutionSummaryView>,
    /// The cursor of the next page (`after`); `null` on the last.
    pub next_after: Option<String>,
}

impl From<&ExecutionPage> for ExecutionPageView {
    fn from(page: &ExecutionPage) -> Self {
        ExecutionPageView {
            executions: page.executions.iter().map(Into::into).collect(),
            next_after: page.next_after.clone(),
        }
    }
}

/// An execution in a list: everything but its input, output and error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExecutionSummaryView {
    /// The id.
    pub id: String,
    /// The task name.
    pub task: String,
    /// The queue.
    pub queue: String,
    /// The status (`scheduled`, `running`, `sleeping`, `waiting`, `completed`, `failed`,
    /// `cancelled`).
    pub status: String,
    /// Claims so far.
    pub attempts: u32,
    /// The parent, for a child execution.
    pub parent_id: Option<String>,
    /// When it was started.
    pub created_at: String,
    /// When a worker first claimed it.
    pub started_at: Option<String>,
    /// When it finished.
    pub finished_at: Option<String>,
}

impl From<&ExecutionSummary> for ExecutionSummaryView {
    fn from(s: &ExecutionSummary) -> Self {
        ExecutionSummaryView {
            id: s.id.clone(),
            task: s.task_name.clone(),
            queue: s.queue.clone(),
            status: s.status.as_str().to_owned(),
            attempts: s.attempts,
            parent_id: s.parent_id.clone(),
            created_at: time(s.created_at),
            started_at: time_opt(s.started_at),
            finished_at: time_opt(s.finished_at),
        }
    }
}

/// A recorded error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorView {
    /// Its kind (`step_failed`, `panic`, an application error's own kind, ...).
    pub kind: String,
    /// Its message.
    pub message: String,
    /// The step that failed, when a step did.
    pub step: Option<String>,
    /// That step's attempts.
    pub attempts: Option<u32>,
    /// An application error's details.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub details: Option<serde_json::Value>,
    /// Whether an application error said it may be retried.
    pub retryable: Option<bool>,
}

impl From<&ErrorRecord> for ErrorView {
    fn from(e: &ErrorRecord) -> Self {
        ErrorView {
            kind: e.kind.clone(),
            message: e.message.clone(),
            step: e.step.clone(),
            attempts: e.attempts,
            details: e.details.clone(),
            retryable: e.retryable,
        }
    }
}

/// One execution in full ([`crate::admin::Admin::describe_execution`]), with why it is not
/// moving.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExecutionDetailView {
    /// The execution.
    pub execution: ExecutionView,
    /// Why it is where it is (empty once it has finished).
    pub waiting: Vec<WaitReasonView>,
    /// Its task in the live queue, while it is unfinished.
    pub task: Option<TaskView>,
    /// Its steps and waits, in call order.
    pub steps: Vec<StepView>,
    /// Its children, oldest first.
    pub children: Vec<ExecutionSummaryView>,
    /// Events sent to it that no wait has consumed, oldest first.
    pub pending_events: Vec<PendingEventView>,
    /// The store's clock when this was read.
    pub now: String,
}

impl From<&ExecutionDetail> for ExecutionDetailView {
    fn from(d: &ExecutionDetail) -> Self {
        let e = &d.execution;
        ExecutionDetailView {
            execution: ExecutionView {
                id: e.id.clone(),
                task: e.task_name.clone(),
                queue: e.queue.clone(),
                status: e.status.as_str().to_owned(),
                attempts: e.attempts,
                parent_id: e.parent_id.clone(),
                input: e.input.clone(),
                output: e.output.clone(),
                error: e.error.as_ref().map(Into::into),
                deadline_at: time_opt(d.deadline_at),
                created_at: time(e.created_at),
                started_at: time_opt(e.started_at),
                updated_at: time(d.updated_at),
                finished_at: time_opt(e.finished_at),
            },
            waiting: d.wait_reasons().iter().map(Into::into).collect(),
            task: d.task.as_ref().map(Into::into),
            steps: d.steps.iter().map(Into::into).collect(),
            children: d.children.iter().map(Into::into).collect(),
            pending_events: d.pending_events.iter().map(Into::into).collect(),
            now: time(d.now),
        }
    }
}

/// The execution part of an [`ExecutionDetailView`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExecutionView {
    /// The id.
    pub id: String,
    /// The task name.
    pub task: String,
    /// The queue.
    pub queue: String,
    /// The status.
    pub status: String,
    /// Claims so far.
    pub attempts: u32,
    /// The parent, for a child execution.
    pub parent_id: Option<String>,
    /// The input.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub input: serde_json::Value,
    /// The output, once completed.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub output: Option<serde_json::Value>,
    /// The error, once failed or cancelled.
    pub error: Option<ErrorView>,
    /// Its deadline, if it was started with one.
    pub deadline_at: Option<String>,
    /// When it was started.
    pub created_at: String,
    /// When a worker first claimed it.
    pub started_at: Option<String>,
    /// When its row last changed.
    pub updated_at: String,
    /// When it finished.
    pub finished_at: Option<String>,
}

/// Why an unfinished execution is where it is ([`WaitReason`]), tagged by `reason`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "reason", rename_all = "snake_case")]
#[non_exhaustive]
pub enum WaitReasonView {
    /// A worker runs it.
    Running {
        /// The worker's id.
        worker: String,
        /// When its lease runs out unless renewed.
        lease_until: String,
    },
    /// Its worker's lease expired; the next claim takes it over.
    LeaseExpired {
        /// The worker's id.
        worker: String,
        /// When the lease expired.
        expired_at: String,
    },
    /// A durable sleep.
    Sleeping {
        /// The sleep step.
        step: String,
        /// When it wakes.
        until: String,
    },
    /// A retry back-off.
    Retrying {
        /// The step.
        step: String,
        /// Attempts made so far.
        attempts: u32,
        /// When the next attempt is due.
        until: String,
    },
    /// Waiting for an event.
    Event {
        /// The event name.
        event: String,
        /// When the wait began.
        since: Option<String>,
        /// When it times out (`null`: never).
        timeout_at: Option<String>,
    },
    /// Waiting for a child.
    Child {
        /// The child's id.
        child_id: String,
        /// When the wait began.
        since: Option<String>,
    },
    /// Due and not claimed.
    Due {
        /// Since when.
        since: String,
    },
    /// Due later without a recorded wait.
    Scheduled {
        /// When.
        at: String,
    },
    /// Past its deadline.
    PastDeadline {
        /// The deadline.
        deadline: String,
    },
    /// A reason this build does not know.
    Unknown,
}

impl From<&WaitReason> for WaitReasonView {
    fn from(r: &WaitReason) -> Self {
        match r {
            WaitReason::Running {
                worker,
                lease_until,
            } => WaitReasonView::Running {
                worker: worker.clone(),
                lease_until: time(*lease_until),
            },
            WaitReason::LeaseExpired { worker, expired_at } => WaitReasonView::LeaseExpired {
                worker: worker.clone(),
                expired_at: time(*expired_at),
            },
            WaitReason::Sleeping { step, until } => WaitReasonView::Sleeping {
                step: step.clone(),
                until: time(*until),
            },
            WaitReason::Retrying {
                step,
                attempts,
                until,
            } => WaitReasonView::Retrying {
                step: step.clone(),
                attempts: *attempts,
                until: time(*until),
            },
            WaitReason::Event {
                name,
                since,
                timeout_at,
            } => WaitReasonView::Event {
                event: name.clone(),
                since: time_opt(*since),
                timeout_at: time_opt(*timeout_at),
            },
            WaitReason::Child { child_id, since } => WaitReasonView::Child {
                child_id: child_id.clone(),
                since: time_opt(*since),
            },
            WaitReason::Due { since } => WaitReasonView::Due {
                since: time(*since),
            },
            WaitReason::Scheduled { at } => WaitReasonView::Scheduled { at: time(*at) },
            WaitReason::PastDeadline { deadline } => WaitReasonView::PastDeadline {
                deadline: time(*deadline),
            },
        }
    }
}

/// The live queue entry of an unfinished execution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TaskView {
    /// When it is due (`null`: not until something wakes it).
    pub run_at: Option<String>,
    /// The worker holding it.
    pub locked_by: Option<String>,
    /// What it waits for (`sleep`, `retry`, `event`, `child`).
    pub wait_kind: Option<String>,
    /// The step or event name it waits for.
    pub wait_name: Option<String>,
    /// Lease take-overs since its last suspension.
    pub recoveries: u32,
}

impl From<&TaskState> for TaskView {
    fn from(t: &TaskState) -> Self {
        TaskView {
            run_at: time_opt(t.run_at),
            locked_by: t.locked_by.clone(),
            wait_kind: t.wait_kind.clone(),
            wait_name: t.wait_name.clone(),
            recoveries: t.recoveries,
        }
    }
}

/// One step or wait.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StepView {
    /// Its position in call order.
    pub seq: u32,
    /// Its name.
    pub name: String,
    /// `step`, `sleep`, `event`, `child`, `patch` or `state`.
    pub kind: String,
    /// How it stands: `completed`, `failed`, `retrying`, `waiting`, or `timed_out` for an event
    /// wait that timed out.
    pub status: String,
    /// Attempts recorded.
    pub attempts: u32,
    /// The output.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub output: Option<serde_json::Value>,
    /// The error.
    pub error: Option<ErrorView>,
    /// When a sleep wakes or a wait times out.
    pub wake_at: Option<String>,
    /// When it was first recorded.
    pub created_at: String,
    /// When it last changed.
    pub updated_at: String,
}

impl From<&StepRecord> for StepView {
    fn from(s: &StepRecord) -> Self {
        StepView {
            seq: s.seq,
            name: s.name.clone(),
            kind: s.kind.clone(),
            status: s.outcome().to_owned(),
            attempts: s.attempts,
            output: s.output.clone(),
            error: s.error.as_ref().map(Into::into),
            wake_at: time_opt(s.wake_at),
            created_at: time(s.created_at),
            updated_at: time(s.updated_at),
        }
    }
}

/// An event no wait has consumed yet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PendingEventView {
    /// Its name.
    pub name: String,
    /// Its payload.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub payload: serde_json::Value,
    /// When it was sent.
    pub created_at: String,
}

impl From<&PendingEvent> for PendingEventView {
    fn from(v: &PendingEvent) -> Self {
        PendingEventView {
            name: v.name.clone(),
            payload: v.payload.clone(),
            created_at: time(v.created_at),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::time;

    #[test]
    fn times_are_utc_iso_8601_with_milliseconds() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_796_000_000_123);
        assert_eq!(time(t), "2026-11-30T00:53:20.123Z");
        // Truncated to the millisecond, never rounded up.
        assert_eq!(
            time(t + Duration::from_micros(999)),
            "2026-11-30T00:53:20.123Z"
        );
    }
}

/// A cron schedule ([`crate::Scheduler::list_schedules`]): `zart schedule list --json` and the
/// admin API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScheduleView {
    /// The schedule id (the prefix of its executions' ids).
    pub id: String,
    /// The cron expression.
    pub cron: String,
    /// The IANA time zone the expression is read in.
    pub time_zone: String,
    /// The task it starts.
    pub task: String,
    /// The queue of the executions it starts.
    pub queue: String,
    /// The input of each execution.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub input: serde_json::Value,
    /// `skip`, `allow` or `cancel_previous`.
    pub overlap: String,
    /// `skip`, `latest` or `all`.
    pub catch_up: String,
    /// How many missed fire times `all` starts at most.
    pub catch_up_limit: u32,
    /// Paused: it does not fire until resumed.
    pub paused: bool,
    /// Why its fire times cannot be computed (it does not fire until fixed).
    pub error: Option<String>,
    /// The next fire time, once a worker computed it.
    pub next_fire_at: Option<String>,
    /// The latest fire time that started an execution.
    pub last_fire_at: Option<String>,
    /// The execution that firing started.
    pub last_execution_id: Option<String>,
}

impl From<&crate::schedule::ScheduleRow> for ScheduleView {
    fn from(r: &crate::schedule::ScheduleRow) -> Self {
        let s = &r.schedule;
        ScheduleView {
            id: s.id.clone(),
            cron: s.cron.clone(),
            time_zone: s.time_zone.clone(),
            task: s.task_name.clone(),
            queue: s.queue.clone(),
            input: s.input.clone(),
            overlap: s.overlap.as_str().to_owned(),
            catch_up: s.catch_up.as_str().to_owned(),
            catch_up_limit: s.catch_up.limit(),
            paused: r.paused,
            error: r.error.clone(),
            next_fire_at: time_opt(r.next_fire_at),
            last_fire_at: time_opt(r.last_fire_at),
            last_execution_id: r.last_execution_id.clone(),
        }
    }
}

/// An entry of the audit log ([`crate::audit::AuditLog::list_audit`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditRecordView {
    /// Its number, increasing.
    pub id: i64,
    /// When it was written.
    pub at: String,
    /// Who asked (the API token's name).
    pub actor: String,
    /// What (`cancel`, `retry`, `send_event`, `bulk_cancel`, ...).
    pub action: String,
    /// On what.
    pub target: String,
    /// The arguments.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub params: serde_json::Value,
    /// `started`, `ok` or an error code.
    pub outcome: String,
    /// What the action did, or why it failed.
    pub detail: Option<String>,
    /// When the end was recorded.
    pub finished_at: Option<String>,
}

impl From<&crate::audit::AuditRecord> for AuditRecordView {
    fn from(r: &crate::audit::AuditRecord) -> Self {
        AuditRecordView {
            id: r.id,
            at: time(r.at),
            actor: r.actor.clone(),
            action: r.action.clone(),
            target: r.target.clone(),
            params: r.params.clone(),
            outcome: r.outcome.clone(),
            detail: r.detail.clone(),
            finished_at: time_opt(r.finished_at),
        }
    }
}

/// A worker as the store last saw it ([`crate::admin::Admin::list_workers`]): `zart workers
/// --json` and the admin API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkerView {
    /// The worker id (the lease owner name on its executions).
    pub worker_id: String,
    /// `alive`, `stopped` (shut down gracefully) or `lost` (not seen for three intervals).
    pub state: String,
    /// The host it runs on.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// The queue it claims from.
    pub queue: String,
    /// The tasks it runs.
    pub tasks: Vec<String>,
    /// Its slots.
    pub concurrency: u32,
    /// Executions running on it when it last recorded itself.
    pub running: u32,
    /// How often it records itself, in ms.
    pub interval_ms: u64,
    /// When it started.
    pub started_at: String,
    /// When it last recorded itself.
    pub seen_at: String,
    /// When it stopped gracefully.
    pub stopped_at: Option<String>,
}

impl WorkerView {
    /// The view of `seen`, its state judged at `now` (the store's clock).
    pub fn new(seen: &crate::presence::WorkerSeen, now: SystemTime) -> Self {
        let p = &seen.presence;
        WorkerView {
            worker_id: p.worker_id.clone(),
            state: seen.state(now).as_str().to_owned(),
            host: p.host.clone(),
            pid: p.pid,
            queue: p.queue.clone(),
            tasks: p.task_names.clone(),
            concurrency: p.concurrency,
            running: p.running,
            interval_ms: u64::try_from(p.interval.as_millis()).unwrap_or(u64::MAX),
            started_at: time(seen.started_at),
            seen_at: time(seen.seen_at),
            stopped_at: time_opt(seen.stopped_at),
        }
    }

    /// The views of every worker of `seen`.
    pub fn all(seen: &crate::presence::WorkersSeen) -> Vec<WorkerView> {
        seen.workers
            .iter()
            .map(|w| WorkerView::new(w, seen.now))
            .collect()
    }
}
