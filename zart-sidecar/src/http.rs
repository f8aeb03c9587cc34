//! The HTTP endpoints: `/livez`, `/readyz` and `/metrics` (axum over hyper, HTTP/1.1).
//!
//! - `/livez` answers 200 while the process serves requests. It checks nothing else: a
//!   database outage must not get the process restarted (it waits and retries by itself).
//! - `/readyz` answers 200 when every worker is running, no shutdown was asked for, and the
//!   database answers with a current schema (checked on each request, within 2 s); otherwise
//!   503 with the reason in the body.
//! - `/metrics` renders the Prometheus recorder the sidecar installed.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use zart::scheduler::DynScheduler;
use zart::Scheduler;

/// How long `/readyz` waits for the database.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// What the endpoints report on, shared with the rest of the sidecar.
pub(crate) struct Health {
    pub(crate) scheduler: DynScheduler,
    pub(crate) metrics: PrometheusHandle,
    /// Workers that should be running (one per queue).
    pub(crate) workers: usize,
    /// Workers running now.
    pub(crate) running: AtomicUsize,
    /// Set once a shutdown was asked for.
    pub(crate) stopping: AtomicBool,
}

/// The router of the three endpoints.
pub(crate) fn router(health: Arc<Health>) -> Router {
    Router::new()
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
        .with_state(health)
}

async fn livez() -> &'static str {
    "ok\n"
}

async fn readyz(State(health): State<Arc<Health>>) -> (StatusCode, String) {
    let not_ready = |why: String| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        )
    };
    if health.stopping.load(Ordering::Acquire) {
        return not_ready("shutting down".to_owned());
    }
    let running = health.running.load(Ordering::Acquire);
    if running < health.workers {
        return not_ready(format!("{running} of {} workers running", health.workers));
    }
    match tokio::time::timeout(READY_TIMEOUT, health.scheduler.check_schema()).await {
        Ok(Ok(())) => (StatusCode::OK, "ready\n".to_owned()),
        Ok(Err(err)) => not_ready(format!("database: {}", zart::error::error_chain(&err))),
        Err(_) => not_ready(format!(
            "the database did not answer within {READY_TIMEOUT:?}"
        )),
    }
}

async fn render_metrics(State(health): State<Arc<Health>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        health.metrics.render(),
    )
}
