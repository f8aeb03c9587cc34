//! The routes and their handlers, each described for the OpenAPI document.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};
use zart::admin::{Admin, ListExecutionsParams};
use zart::scheduler::SendEventParams;
use zart::view::{ExecutionDetailView, ExecutionPageView};
use zart::{ExecutionStatus, Scheduler};

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
        .route("/api/queues", get(queues))
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
    /// The page after this execution id (the previous page's `next_after`).
    after: Option<String>,
    /// The most to return, 1 to 1000 (default 50).
    limit: Option<u32>,
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
    let limit = q.limit.unwrap_or(50);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::bad_request(format!(
            "limit: {limit} is outside 1 to {MAX_PAGE}"
        )));
    }
    let mut params = ListExecutionsParams::new(limit);
    if let Some(statuses) = &q.status {
        for s in statuses.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            params.statuses.push(
                ExecutionStatus::parse(s)
                    .map_err(|_| ApiError::bad_request(format!("status: unknown status {s:?}")))?,
            );
        }
    }
    params.task_name = q.task;
    params.queue = q.queue;
    params.created_since = q
        .since
        .as_deref()
        .map(|v| parse_time("since", v))
        .transpose()?;
    params.created_until = q
        .until
        .as_deref()
        .map(|v| parse_time("until", v))
        .transpose()?;
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
    Path(id): Path<String>,
) -> Api<Cancelled> {
    writable(&state)?;
    let cancelled = Scheduler::cancel_execution(&*state.backend, &id).await?;
    tracing::info!(execution.id = %id, cancelled = cancelled.len(), "admin API: cancel");
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
    Path(id): Path<String>,
) -> Api<Retried> {
    writable(&state)?;
    let revived = Scheduler::retry_execution(&*state.backend, &id).await?;
    tracing::info!(execution.id = %id, revived = revived.len(), "admin API: retry");
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
    Path(id): Path<String>,
    body: Result<Json<EventBody>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Sent>), ApiError> {
    writable(&state)?;
    let Json(body) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    Scheduler::send_event(
        &*state.backend,
        SendEventParams {
            execution_id: id.clone(),
            name: body.name.clone(),
            payload: body.payload,
        },
    )
    .await?;
    tracing::info!(execution.id = %id, event = %body.name, "admin API: event sent");
    Ok((StatusCode::ACCEPTED, Json(Sent { sent: true })))
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

fn writable(state: &State) -> Result<(), ApiError> {
    if state.read_only {
        return Err(ApiError::read_only());
    }
    Ok(())
}

/// The OpenAPI document of the admin API, generated from the handlers and types.
#[derive(OpenApi)]
#[openapi(
    info(title = "Zart admin API", description = "See and act on Zart executions."),
    paths(list_executions, describe_execution, cancel, retry, send_event, queues, config),
    components(schemas(
        ApiError,
        ExecutionPageView,
        ExecutionDetailView,
        Cancelled,
        Retried,
        EventBody,
        Sent,
        QueueView,
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
