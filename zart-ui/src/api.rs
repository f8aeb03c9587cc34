//! The routes and their handlers, each described for the OpenAPI document.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::{Extension, Path, Query};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};
use zart::admin::{Admin, ListExecutionsParams};
use zart::audit::{AuditEntry, AuditLog};
use zart::scheduler::SendEventParams;
use zart::view::{
    AuditRecordView, ExecutionDetailView, ExecutionPageView, ScheduleView, WorkerView,
};
use zart::{ExecutionStatus, Scheduler};

use crate::auth::Actor;
use crate::errors::ApiError;
use crate::Backend;

/// What every handler gets.
#[derive(Clone)]
pub(crate) struct State {
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) read_only: bool,
    pub(crate) live: Arc<crate::live::Live>,
}

type Api<T> = Result<Json<T>, ApiError>;

pub(crate) fn routes(state: State) -> Router {
    Router::new()
        .route("/api/executions", get(list_executions))
        .route("/api/executions/{id}", get(describe_execution))
        .route("/api/executions/{id}/cancel", post(cancel))
        .route("/api/executions/{id}/retry", post(retry))
        .route("/api/executions/{id}/events", post(send_event))
        .route("/api/executions/cancel", post(bulk_cancel))
        .route("/api/executions/retry", post(bulk_retry))
        .route("/api/queues", get(queues))
        .route("/api/schedules", get(schedules))
        .route("/api/schedules/{id}/pause", post(pause_schedule))
        .route("/api/schedules/{id}/resume", post(resume_schedule))
        .route("/api/audit", get(audit_log))
        .route("/api/workers", get(workers))
        .route("/api/config", get(config))
        .route("/api/stream", get(crate::live::stream))
        .route("/api/openapi.json", get(openapi))
        .with_state(state)
}

/// The filters and page of `GET /api/executions`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// Only these statuses, comma-separated (`failed,cancelled`).
    status: Option<String>,
    /// Only this task name.
    task: Option<String>,
    /// Only this queue.
    queue: Option<String>,
    /// Only executions created at or after this time (RFC 3339).
    since: Option<String>,
    /// Only executions created before this time (RFC 3339).
    until: Option<String>,
    /// Only executions whose id starts with this text (case-sensitive).
    id: Option<String>,
    /// The page after this execution id (the previous page's `next_after`).
    after: Option<String>,
    /// The most to return, 1 to 1000 (default 50).
    limit: Option<u32>,
}

/// Which executions a bulk action takes: the filters of `GET /api/executions`.
#[derive(Debug, Default, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Filter {
    /// Only these statuses, comma-separated (`failed,cancelled`).
    status: Option<String>,
    /// Only this task name.
    task: Option<String>,
    /// Only this queue.
    queue: Option<String>,
    /// Only executions created at or after this time (RFC 3339).
    since: Option<String>,
    /// Only executions created before this time (RFC 3339).
    until: Option<String>,
    /// Only executions whose id starts with this text (case-sensitive).
    id: Option<String>,
}

impl Filter {
    /// The list parameters of this filter, for a page of `limit`.
    fn params(&self, limit: u32) -> Result<ListExecutionsParams, ApiError> {
        if limit == 0 || limit > MAX_PAGE {
            return Err(ApiError::bad_request(format!(
                "limit: {limit} is outside 1 to {MAX_PAGE}"
            )));
        }
        let mut params = ListExecutionsParams::new(limit);
        if let Some(statuses) = &self.status {
            for s in statuses.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                params.statuses.push(
                    ExecutionStatus::parse(s).map_err(|_| {
                        ApiError::bad_request(format!("status: unknown status {s:?}"))
                    })?,
                );
            }
        }
        params.task_name.clone_from(&self.task);
        params.queue.clone_from(&self.queue);
        params.created_since = self
            .since
            .as_deref()
            .map(|v| parse_time("since", v))
            .transpose()?;
        params.created_until = self
            .until
            .as_deref()
            .map(|v| parse_time("until", v))
            .transpose()?;
        params.id_prefix = self.id.clone().filter(|id| !id.is_empty());
        params.check().map_err(ApiError::from)?;
        Ok(params)
    }
}

/// The largest page the API serves.
const MAX_PAGE: u32 = 1000;

fn parse_time(field: &str, value: &str) -> Result<SystemTime, ApiError> {
    chrono::DateTime::parse_from_rfc3339(value)
        .map(SystemTime::from)
        .map_err(|e| {
            ApiError::bad_request(format!(
                "{field}: {value:?} is not an RFC 3339 time (2026-12-07T10:00:00Z): {e}"
            ))
        })
}

/// One page of executions, newest first.
#[utoipa::path(
    get,
    path = "/api/executions",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of executions", body = ExecutionPageView),
        (status = 400, description = "A filter that does not parse", body = ApiError),
        (status = 404, description = "`after` names no execution", body = ApiError),
    ),
    security(("bearer" = []))
)]
async fn list_executions(
    axum::extract::State(state): axum::extract::State<State>,
    Query(q): Query<ListQuery>,
) -> Api<ExecutionPageView> {
    let filter = Filter {
        status: q.status,
        task: q.task,
        queue: q.queue,
        since: q.since,
        until: q.until,
        id: q.id,
    };
    let mut params = filter.params(q.limit.unwrap_or(50))?;
    params.after = q.after;
    let page = Admin::list_executions(&*state.backend, params).await?;
    Ok(Json(ExecutionPageView::from(&page)))
}

/// One execution in full, with why it is not moving.
#[utoipa::path(
    get,
    path = "/api/executions/{id}",
    params(("id" = String, Path, description = "The execution id, percent-encoded (a child's id holds `/`)")),
    responses(
        (status = 200, description = "The execution", body = ExecutionDetailView),
        (status = 404, description = "No execution has the id", body = ApiError),
    ),
    security(("bearer" = []))
)]
async fn describe_execution(
    axum::extract::State(state): axum::extract::State<State>,
    Path(id): Path<String>,
) -> Api<ExecutionDetailView> {
    match state.backend.describe_execution(&id).await? {
        Some(detail) => Ok(Json(ExecutionDetailView::from(&detail))),
        None => Err(zart::Error::NotFound { id }.into()),
    }
}

/// What `cancel` did.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Cancelled {
    /// The executions cancelled, the one asked for first (empty when it had finished).
    cancelled: Vec<String>,
}

/// Cancels an execution and its unfinished descendants.
#[utoipa::path(
    post,
    path = "/api/executions/{id}/cancel",
    params(("id" = String, Path, description = "The execution id, percent-encoded")),
    responses(
        (status = 200, description = "Cancelled (or already finished)", body = Cancelled),
        (status = 403, description = "The API is read-only", body = ApiError),
        (status = 404, description = "No execution has the id", body = ApiError),
    ),
    security(("bearer" = []))
)]
async fn cancel(
    axum::extract::State(state): axum::extract::State<State>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> Api<Cancelled> {
    writable(&state, &actor, "cancel")?;
    let entry = AuditEntry::new(actor.0, "cancel", id.as_str());
    let cancelled = audited(&state, entry, async {
        let cancelled = Scheduler::cancel_execution(&*state.backend, &id).await?;
        let detail = format!("cancelled {}", cancelled.len());
        Ok((cancelled, detail))
    })
    .await?;
    Ok(Json(Cancelled { cancelled }))
}

/// What `retry` did.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Retried {
    /// The executions made due again, the one asked for first.
    revived: Vec<String>,
}

/// Runs a failed execution again from the step that failed it.
#[utoipa::path(
    post,
    path = "/api/executions/{id}/retry",
    params(("id" = String, Path, description = "The execution id, percent-encoded")),
    responses(
        (status = 200, description = "Made due again", body = Retried),
        (status = 403, description = "The API is read-only", body = ApiError),
        (status = 404, description = "No execution has the id", body = ApiError),
        (status = 409, description = "Not failed, or past its deadline", body = ApiError),
    ),
    security(("bearer" = []))
)]
async fn retry(
    axum::extract::State(state): axum::extract::State<State>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> Api<Retried> {
    writable(&state, &actor, "retry")?;
    let entry = AuditEntry::new(actor.0, "retry", id.as_str());
    let revived = audited(&state, entry, async {
        let revived = Scheduler::retry_execution(&*state.backend, &id).await?;
        let detail = format!("revived {}", revived.len());
        Ok((revived, detail))
    })
    .await?;
    Ok(Json(Retried { revived }))
}

/// An event to send.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct EventBody {
    /// The event name.
    name: String,
    /// Its payload (any JSON; `null` when left out).
    #[serde(default)]
    #[schema(value_type = Object)]
    payload: serde_json::Value,
}

/// What `events` did.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Sent {
    /// Always true: the event is stored, and delivered to a wait for it.
    sent: bool,
}

/// Sends an event to an execution.
#[utoipa::path(
    post,
    path = "/api/executions/{id}/events",
    params(("id" = String, Path, description = "The execution id, percent-encoded")),
    request_body = EventBody,
    responses(
        (status = 202, description = "Stored", body = Sent),
        (status = 400, description = "A bad name or payload", body = ApiError),
        (status = 403, description = "The API is read-only", body = ApiError),
        (status = 404, description = "No execution has the id", body = ApiError),
        (status = 409, description = "The execution has finished", body = ApiError),
    ),
    security(("bearer" = []))
)]
async fn send_event(
    axum::extract::State(state): axum::extract::State<State>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    body: Result<Json<EventBody>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Sent>), ApiError> {
    writable(&state, &actor, "send_event")?;
    let Json(body) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    // The name is recorded, not the payload (it may be large, or hold what the log should not).
    let entry = AuditEntry::new(actor.0, "send_event", id.as_str())
        .with_params(serde_json::json!({ "name": body.name }));
    audited(&state, entry, async {
        Scheduler::send_event(
            &*state.backend,
            SendEventParams {
                execution_id: id.clone(),
                name: body.name.clone(),
                payload: body.payload,
            },
        )
        .await?;
        Ok(((), "sent".to_owned()))
    })
    .await?;
    Ok((StatusCode::ACCEPTED, Json(Sent { sent: true })))
}

/// A bulk action: the executions of a filter, at most `max` of them.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BulkBody {
    /// Which executions (the filters of `GET /api/executions`; none: every execution the
    /// action applies to).
    #[serde(default)]
    filter: Filter,
    /// The most to act on in this call, 1 to 1000 (default 100); `more` says whether the
    /// filter matched others.
    max: Option<u32>,
    /// Only list the executions the action would take; change nothing (and write no audit
    /// entry).
    #[serde(default)]
    dry_run: bool,
}

/// What a bulk action did.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BulkOutcome {
    /// The executions the filter matched, newest first (acted on unless `dry_run`).
    matched: Vec<String>,
    /// The executions the action changed (for cancel, descendants included).
    done: Vec<String>,
    /// The matched executions the action refused, each with why.
    failed: Vec<BulkFailure>,
    /// True when the filter matches more executions than `max`: call again for the rest.
    more: bool,
    /// True when nothing was changed because `dry_run` was asked for.
    dry_run: bool,
}

/// A matched execution a bulk action refused.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BulkFailure {
    /// The execution.
    id: String,
    /// The error code (`finished`, `not_retryable`, ...).
    code: String,
    /// Why.
    message: String,
}

/// Which bulk action.
#[derive(Debug, Clone, Copy)]
enum Bulk {
    Cancel,
    Retry,
}

impl Bulk {
    fn action(self) -> &'static str {
        match self {
            Bulk::Cancel => "bulk_cancel",
            Bulk::Retry => "bulk_retry",
        }
    }
}

/// The unfinished statuses: what a bulk cancel takes when the filter names none.
const UNFINISHED: [ExecutionStatus; 4] = [
    ExecutionStatus::Scheduled,
    ExecutionStatus::Running,
    ExecutionStatus::Sleeping,
    ExecutionStatus::Waiting,
];

/// Runs a bulk action over one page of the filter.
async fn bulk(
    state: &State,
    actor: Actor,
    which: Bulk,
    body: Result<Json<BulkBody>, axum::extract::rejection::JsonRejection>,
) -> Api<BulkOutcome> {
    let Json(body) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if !body.dry_run {
        writable(state, &actor, which.action())?;
    }
    let mut params = body.filter.params(body.max.unwrap_or(100))?;
    match which {
        Bulk::Cancel if params.statuses.is_empty() => params.statuses = UNFINISHED.to_vec(),
        Bulk::Cancel => params.statuses.retain(|s| UNFINISHED.contains(s)),
        Bulk::Retry => {
            if params
                .statuses
                .iter()
                .any(|s| *s != ExecutionStatus::Failed)
            {
                return Err(ApiError::bad_request(
                    "filter.status: a bulk retry takes failed executions only (leave it out)",
                ));
            }
            params.statuses = vec![ExecutionStatus::Failed];
        }
    }
    let mut outcome = BulkOutcome {
        matched: Vec::new(),
        done: Vec::new(),
        failed: Vec::new(),
        more: false,
        dry_run: body.dry_run,
    };
    if params.statuses.is_empty() {
        // The filter named finished statuses only: nothing to cancel.
        return Ok(Json(outcome));
    }
    let page = Admin::list_executions(&*state.backend, params).await?;
    outcome.matched = page.executions.iter().map(|e| e.id.clone()).collect();
    outcome.more = page.next_after.is_some();
    if body.dry_run {
        return Ok(Json(outcome));
    }
    let target = serde_json::to_string(&body.filter).unwrap_or_default();
    let entry = AuditEntry::new(actor.0, which.action(), zart::audit::fit(&target)).with_params(
        serde_json::json!({ "filter": body.filter, "max": body.max, "matched": outcome.matched.len() }),
    );
    let outcome = audited(state, entry, async move {
        for id in outcome.matched.clone() {
            let result = match which {
                Bulk::Cancel => Scheduler::cancel_execution(&*state.backend, &id).await,
                Bulk::Retry => Scheduler::retry_execution(&*state.backend, &id).await,
            };
            match result {
                Ok(ids) => outcome.done.extend(ids),
                Err(e) if e.is_transient() || e.code() == "database" => return Err(e),
                Err(e) => outcome.failed.push(BulkFailure {
                    id,
                    code: e.code().to_owned(),
                    message: zart::error::error_chain(&e),
                }),
            }
        }
        let detail = format!(
            "matched {}, changed {}, refused {}",
            outcome.matched.len(),
            outcome.done.len(),
            outcome.failed.len()
        );
        Ok((outcome, detail))
    })
    .await?;
    Ok(Json(outcome))
}

/// Cancels the unfinished executions of a filter (and their unfinished descendants).
#[utoipa::path(
    post,
    path = "/api/executions/cancel",
    request_body = BulkBody,
    responses(
        (status = 200, description = "What was cancelled", body = BulkOutcome),
        (status = 400, description = "A filter or body that does not parse", body = ApiError),
        (status = 403, description = "The API is read-only", body = ApiError),
    ),
    security(("bearer" = []))
)]
async fn bulk_cancel(
    axum::extract::State(state): axum::extract::State<State>,
    Extension(actor): Extension<Actor>,
    body: Result<Json<BulkBody>, axum::extract::rejection::JsonRejection>,
) -> Api<BulkOutcome> {
    bulk(&state, actor, Bulk::Cancel, body).await
}

/// Runs the failed executions of a filter again from their failed steps.
#[utoipa::path(
    post,
    path = "/api/executions/retry",
    request_body = BulkBody,
    responses(
        (status = 200, description = "What was made due again", body = BulkOutcome),
        (status = 400, description = "A filter or body that does not parse", body = ApiError),
        (status = 403, description = "The API is read-only", body = ApiError),
    ),
    security(("bearer" = []))
)]
async fn bulk_retry(
    axum::extract::State(state): axum::extract::State<State>,
    Extension(actor): Extension<Actor>,
    body: Result<Json<BulkBody>, axum::extract::rejection::JsonRejection>,
) -> Api<BulkOutcome> {
    bulk(&state, actor, Bulk::Retry, body).await
}

/// Every cron schedule, by id.
#[utoipa::path(
    get,
    path = "/api/schedules",
    responses((status = 200, description = "The schedules", body = Vec<ScheduleView>)),
    security(("bearer" = []))
)]
async fn schedules(
    axum::extract::State(state): axum::extract::State<State>,
) -> Api<Vec<ScheduleView>> {
    let rows = Scheduler::list_schedules(&*state.backend).await?;
    Ok(Json(rows.iter().map(ScheduleView::from).collect()))
}

/// What pausing or resuming did.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Paused {
    /// The schedule.
    id: String,
    /// Whether it is paused now.
    paused: bool,
}

async fn set_paused(state: &State, actor: Actor, id: String, paused: bool) -> Api<Paused> {
    let action = if paused {
        "pause_schedule"
    } else {
        "resume_schedule"
    };
    writable(state, &actor, action)?;
    let entry = AuditEntry::new(actor.0, action, id.as_str());
    audited(state, entry, async {
        Scheduler::pause_schedule(&*state.backend, &id, paused).await?;
        Ok(((), action.to_owned()))
    })
    .await?;
    Ok(Json(Paused { id, paused }))
}

/// Pauses a schedule: it does not fire until resumed.
#[utoipa::path(
    post,
    path = "/api/schedules/{id}/pause",
    params(("id" = String, Path, description = "The schedule id, percent-encoded")),
    responses(
        (status = 200, description = "Paused", body = Paused),
        (status = 403, description = "The API is read-only", body = ApiError),
        (status = 404, description = "No schedule has the id", body = ApiError),
    ),
    security(("bearer" = []))
)]
async fn pause_schedule(
    axum::extract::State(state): axum::extract::State<State>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> Api<Paused> {
    set_paused(&state, actor, id, true).await
}

/// Resumes a paused schedule (missed fire times follow its catch-up policy).
#[utoipa::path(
    post,
    path = "/api/schedules/{id}/resume",
    params(("id" = String, Path, description = "The schedule id, percent-encoded")),
    responses(
        (status = 200, description = "Resumed", body = Paused),
        (status = 403, description = "The API is read-only", body = ApiError),
        (status = 404, description = "No schedule has the id", body = ApiError),
    ),
    security(("bearer" = []))
)]
async fn resume_schedule(
    axum::extract::State(state): axum::extract::State<State>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> Api<Paused> {
    set_paused(&state, actor, id, false).await
}

/// The page of `GET /api/audit`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditQuery {
    /// Entries with an id below this one (the last id of the previous page).
    before: Option<i64>,
    /// The most to return, 1 to 1000 (default 50).
    limit: Option<u32>,
}

/// The audit log of the API's actions, newest first.
#[utoipa::path(
    get,
    path = "/api/audit",
    params(AuditQuery),
    responses(
        (status = 200, description = "Entries, newest first", body = Vec<AuditRecordView>),
        (status = 400, description = "A limit outside 1 to 1000", body = ApiError),
    ),
    security(("bearer" = []))
)]
async fn audit_log(
    axum::extract::State(state): axum::extract::State<State>,
    Query(q): Query<AuditQuery>,
) -> Api<Vec<AuditRecordView>> {
    let records = AuditLog::list_audit(&*state.backend, q.before, q.limit.unwrap_or(50)).await?;
    Ok(Json(records.iter().map(AuditRecordView::from).collect()))
}

/// The unfinished executions of one queue.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct QueueView {
    /// The queue.
    queue: String,
    /// How many unfinished executions have each status.
    by_status: BTreeMap<String, u64>,
}

/// The queue stats as the API shows them.
pub(crate) fn queue_views(stats: Vec<zart::admin::QueueStats>) -> Vec<QueueView> {
    stats
        .into_iter()
        .map(|q| QueueView {
            queue: q.queue,
            by_status: q
                .by_status
                .into_iter()
                .map(|(s, n)| (s.as_str().to_owned(), n))
                .collect(),
        })
        .collect()
}

/// Unfinished executions per queue, by status.
#[utoipa::path(
    get,
    path = "/api/queues",
    responses((status = 200, description = "The queues with unfinished executions", body = Vec<QueueView>)),
    security(("bearer" = []))
)]
async fn queues(axum::extract::State(state): axum::extract::State<State>) -> Api<Vec<QueueView>> {
    Ok(Json(queue_views(state.backend.queue_stats().await?)))
}

/// The workers seen in the last day, most recently seen first, each `alive`, `stopped` or
/// `lost` (not seen for three of its intervals).
#[utoipa::path(
    get,
    path = "/api/workers",
    responses((status = 200, description = "The workers seen", body = Vec<WorkerView>)),
    security(("bearer" = []))
)]
async fn workers(axum::extract::State(state): axum::extract::State<State>) -> Api<Vec<WorkerView>> {
    let seen = Admin::list_workers(&*state.backend).await?;
    Ok(Json(WorkerView::all(&seen)))
}

/// What the API allows, for a client to show only what works.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ConfigView {
    /// True when every action is refused.
    read_only: bool,
}

/// What the API allows.
#[utoipa::path(
    get,
    path = "/api/config",
    responses((status = 200, description = "What the API allows", body = ConfigView)),
    security(("bearer" = []))
)]
async fn config(axum::extract::State(state): axum::extract::State<State>) -> Json<ConfigView> {
    Json(ConfigView {
        read_only: state.read_only,
    })
}

/// This API's OpenAPI document.
async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// Refuses an action in read-only mode (logged with who tried, not audited: nothing acted).
fn writable(state: &State, actor: &Actor, action: &str) -> Result<(), ApiError> {
    if state.read_only {
        tracing::warn!(actor = %actor.0, action, "admin API: action refused, read-only");
        return Err(ApiError::read_only());
    }
    Ok(())
}

/// Runs an action under the audit log: the entry is written (and committed) first, and the
/// action refused with 503 if it cannot be; then the action runs and its outcome (`ok` with
/// its detail, or the error's code and message) is recorded on the entry.
async fn audited<T>(
    state: &State,
    entry: AuditEntry,
    action: impl std::future::Future<Output = Result<(T, String), zart::Error>>,
) -> Result<T, ApiError> {
    let id = AuditLog::audit_begin(&*state.backend, &entry)
        .await
        .map_err(|e| {
            tracing::warn!(
                error = %zart::error::error_chain(&e), actor = %entry.actor, action = %entry.action,
                "admin API: the audit log could not be written; the action is refused"
            );
            ApiError::audit_unavailable(&e)
        })?;
    let result = action.await;
    let (outcome, detail) = match &result {
        Ok((_, detail)) => (zart::audit::OUTCOME_OK, detail.clone()),
        Err(e) => (e.code(), zart::error::error_chain(e)),
    };
    tracing::info!(
        actor = %entry.actor, action = %entry.action, target = %entry.target, outcome, audit.id = id,
        "admin API: {}", entry.action
    );
    if let Err(e) =
        AuditLog::audit_finish(&*state.backend, id, outcome, &zart::audit::fit(&detail)).await
    {
        tracing::warn!(
            error = %zart::error::error_chain(&e), audit.id = id,
            "admin API: the outcome of an audited action could not be recorded (it stays 'started')"
        );
    }
    result.map(|(value, _)| value).map_err(ApiError::from)
}

/// The OpenAPI document of the admin API, generated from the handlers and types.
#[derive(OpenApi)]
#[openapi(
    info(title = "Zart admin API", description = "See and act on Zart executions."),
    paths(
        list_executions,
        describe_execution,
        cancel,
        retry,
        send_event,
        bulk_cancel,
        bulk_retry,
        queues,
        schedules,
        pause_schedule,
        resume_schedule,
        audit_log,
        workers,
        config
    ),
    components(schemas(
        ApiError,
        ExecutionPageView,
        ExecutionDetailView,
        Cancelled,
        Retried,
        EventBody,
        Sent,
        Filter,
        BulkBody,
        BulkOutcome,
        BulkFailure,
        QueueView,
        ScheduleView,
        Paused,
        AuditRecordView,
        WorkerView,
        ConfigView
    )),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

/// Declares the bearer scheme the paths name.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}
