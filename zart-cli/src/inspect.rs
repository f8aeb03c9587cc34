//! `zart list` and `zart show`: executions rendered as tables or JSON from [`zart::admin`].

use serde_json::Value;
use zart::admin::{ExecutionDetail, ExecutionPage, ExecutionSummary, StepRecord, WaitReason};
use zart::view::{ExecutionDetailView, ExecutionPageView};
use zart::ExecutionStatus;

use crate::text::{between, json_short, table, time, time_or_dash};

/// A page of executions as JSON (the shape of [`zart::view`]).
pub fn page_json(page: &ExecutionPage) -> Value {
    serde_json::to_value(ExecutionPageView::from(page)).unwrap_or(Value::Null)
}

/// A page of executions as a table, with how to get the next page.
pub fn page_text(page: &ExecutionPage) -> String {
    if page.executions.is_empty() {
        return "no executions\n".to_owned();
    }
    let mut out = summary_table(&page.executions);
    if let Some(after) = &page.next_after {
        out.push_str(&format!("more: add --after {}\n", shell_word(after)));
    }
    out
}

fn summary_table(rows: &[ExecutionSummary]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|s| {
            vec![
                s.id.clone(),
                s.task_name.clone(),
                s.queue.clone(),
                s.status.as_str().to_owned(),
                s.attempts.to_string(),
                time(s.created_at),
                time_or_dash(s.finished_at),
            ]
        })
        .collect();
    table(
        &[
            "ID", "TASK", "QUEUE", "STATUS", "ATTEMPTS", "CREATED", "FINISHED",
        ],
        &rows,
    )
}

/// An id as one shell word (quoted when it needs to be).
fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:@".contains(c))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// One execution in full as JSON (the shape of [`zart::view`]).
pub fn detail_json(d: &ExecutionDetail) -> Value {
    serde_json::to_value(ExecutionDetailView::from(d)).unwrap_or(Value::Null)
}

fn reason_text(d: &ExecutionDetail, r: &WaitReason) -> String {
    let now = d.now;
    let ago = |t: std::time::SystemTime| format!("{} ({} ago)", time(t), between(t, now));
    let in_ = |t: std::time::SystemTime| match t.duration_since(now) {
        Ok(left) => format!("{} (in {})", time(t), crate::text::duration(left)),
        Err(_) => format!("{} ({} ago)", time(t), between(t, now)),
    };
    match r {
        WaitReason::Running {
            worker,
            lease_until,
        } => format!("running on worker {worker:?}, lease until {}", in_(*lease_until)),
        WaitReason::LeaseExpired { worker, expired_at } => format!(
            "the lease of worker {worker:?} expired at {}: it died or stalls; the next claim takes it over",
            ago(*expired_at)
        ),
        WaitReason::Sleeping { step, until } => {
            format!("sleeping ({step:?}) until {}", in_(*until))
        }
        WaitReason::Retrying {
            step,
            attempts,
            until,
        } => format!(
            "in back-off after attempt {attempts} of step {step:?}: next attempt at {}",
            in_(*until)
        ),
        WaitReason::Event {
            name,
            since,
            timeout_at,
        } => format!(
            "waiting for event {name:?} since {}, {}",
            since.map_or_else(|| "-".to_owned(), ago),
            timeout_at.map_or_else(|| "no timeout".to_owned(), |t| format!("times out at {}", in_(t)))
        ),
        WaitReason::Child { child_id, since } => format!(
            "waiting for child {child_id:?} since {}",
            since.map_or_else(|| "-".to_owned(), ago)
        ),
        WaitReason::Due { since } => format!(
            "due since {} and not claimed: no worker for task {:?} runs on queue {:?}, or all are \
             busy (Zart keeps no registry of workers, so it cannot tell which)",
            ago(*since),
            d.execution.task_name,
            d.execution.queue
        ),
        WaitReason::Scheduled { at } => format!("due at {}", in_(*at)),
        WaitReason::PastDeadline { deadline } => format!(
            "past its deadline ({}): its next run fails it (deadline_exceeded)",
            ago(*deadline)
        ),
        _ => "unknown".to_owned(),
    }
}

/// How long a step took, as the timeline shows it: a wait from its start to its end (or to
/// now while open); a step from the end of the entry before it (or the first claim), because
/// a step is recorded once, when it ends.
fn took(d: &ExecutionDetail, i: usize, s: &StepRecord) -> String {
    if s.kind != "step" {
        let end = if s.status == "waiting" {
            d.now
        } else {
            s.updated_at
        };
        let open = if s.status == "waiting" { " (open)" } else { "" };
        return format!("{}{open}", between(s.created_at, end));
    }
    let start = match i.checked_sub(1).and_then(|p| d.steps.get(p)) {
        Some(prev) => Some(prev.updated_at),
        None => d.execution.started_at,
    };
    start.map_or_else(|| "-".to_owned(), |from| between(from, s.updated_at))
}

/// One execution in full as text: the execution, why it waits, its timeline, children and
/// unconsumed events.
pub fn detail_text(d: &ExecutionDetail) -> String {
    let e = &d.execution;
    let mut out = String::new();
    let mut field = |name: &str, value: String| out.push_str(&format!("{name:<10} {value}\n"));
    field("execution", e.id.clone());
    field("task", format!("{}  (queue {})", e.task_name, e.queue));
    field("status", format!("{}  (attempts {})", e.status, e.attempts));
    if let Some(parent) = &d.execution.parent_id {
        field("parent", parent.clone());
    }
    field("created", time(e.created_at));
    field("started", time_or_dash(e.started_at));
    field("finished", time_or_dash(e.finished_at));
    if let Some(deadline) = d.deadline_at {
        field("deadline", time(deadline));
    }
    field("input", json_short(&e.input, 200));
    if let Some(output) = &e.output {
        field("output", json_short(output, 200));
    }
    if let Some(error) = &e.error {
        field("error", error.to_string());
        if let Some(details) = &error.details {
            field("details", json_short(details, 200));
        }
    }
    if e.status == ExecutionStatus::Failed {
        field(
            "retry",
            format!(
                "zart retry {} (runs it again from its failed step)",
                shell_word(&e.id)
            ),
        );
    }
    let reasons = d.wait_reasons();
    for (i, r) in reasons.iter().enumerate() {
        field(if i == 0 { "waiting" } else { "" }, reason_text(d, r));
    }

    out.push_str("\nsteps\n");
    if d.steps.is_empty() {
        out.push_str("  none recorded\n");
    } else {
        let rows: Vec<Vec<String>> = d
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let result = match (&s.error, &s.output) {
                    (Some(err), _) => err.message.clone(),
                    (None, Some(output)) => json_short(output, 60),
                    (None, None) => s
                        .wake_at
                        .map_or_else(String::new, |t| format!("until {}", time(t))),
                };
                vec![
                    s.seq.to_string(),
                    s.name.clone(),
                    s.kind.clone(),
                    s.outcome().to_owned(),
                    s.attempts.to_string(),
                    time(s.created_at),
                    took(d, i, s),
                    result,
                ]
            })
            .collect();
        out.push_str(&indent(&table(
            &[
                "SEQ", "NAME", "KIND", "STATUS", "ATTEMPTS", "AT", "TOOK", "RESULT",
            ],
            &rows,
        )));
    }
    if !d.children.is_empty() {
        out.push_str("\nchildren\n");
        out.push_str(&indent(&summary_table(&d.children)));
    }
    if !d.pending_events.is_empty() {
        out.push_str("\nevents not consumed\n");
        let rows: Vec<Vec<String>> = d
            .pending_events
            .iter()
            .map(|v| {
                vec![
                    v.name.clone(),
                    time(v.created_at),
                    json_short(&v.payload, 60),
                ]
            })
            .collect();
        out.push_str(&indent(&table(&["NAME", "SENT", "PAYLOAD"], &rows)));
    }
    out
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}
