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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A health state over a fresh migrated SQLite file, with one worker running.
    async fn health(dir: &std::path::Path) -> Arc<Health> {
        let url = format!("sqlite://{}", dir.join("zart.db").display());
        zart_sqlite::migrate(&url).await.unwrap();
        let scheduler = zart_sqlite::SqliteScheduler::connect(&url).await.unwrap();
        Arc::new(Health {
            scheduler: Arc::new(scheduler),
            metrics: metrics_exporter_prometheus::PrometheusBuilder::new()
                .build_recorder()
                .handle(),
            workers: 1,
            running: AtomicUsize::new(1),
            stopping: AtomicBool::new(false),
        })
    }

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("zart-readyz-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[tokio::test]
    async fn readyz_says_why_it_is_not_ready() {
        let dir = temp_dir("states");
        let h = health(&dir).await;
        assert_eq!(
            readyz(State(h.clone())).await,
            (StatusCode::OK, "ready\n".to_owned())
        );

        h.running.store(0, Ordering::Release);
        let (status, body) = readyz(State(h.clone())).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body, "not ready: 0 of 1 workers running\n");

        h.running.store(1, Ordering::Release);
        h.stopping.store(true, Ordering::Release);
        let (status, body) = readyz(State(h)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body, "not ready: shutting down\n");

        let _ = std::fs::remove_dir_all(dir);
    }
}
