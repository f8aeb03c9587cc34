//! The Zart admin HTTP API: see and act on executions over HTTP, from the same reads and
//! actions as the `zart` CLI (`zart::admin`, `zart::view`, the `Scheduler`'s cancel, retry and
//! events), described by an OpenAPI document generated from this code (utoipa).
//!
//! [`router`] returns an axum [`Router`] to serve on its own or nest in your app:
//!
//! ```no_run
//! use std::sync::Arc;
//! use zart_ui::{router, UiConfig};
//!
//! # async fn example(backend: Arc<dyn zart_ui::Backend>) -> std::io::Result<()> {
//! let api = router(backend, UiConfig::with_tokens(["s3cret"]));
//! let app = axum::Router::new().nest("/zart", api);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:7070").await?;
//! axum::serve(listener, app).await
//! # }
//! ```
//!
//! | method and path | what |
//! |---|---|
//! | `GET /api/executions?status=&task=&queue=&since=&until=&id=&after=&limit=` | one page, newest first ([`zart::view::ExecutionPageView`]) |
//! | `GET /api/executions/{id}` | one execution in full, with why it waits ([`zart::view::ExecutionDetailView`]) |
//! | `POST /api/executions/{id}/cancel` | cancels it and its unfinished descendants |
//! | `POST /api/executions/{id}/retry` | runs a failed execution again from its failed step |
//! | `POST /api/executions/{id}/events` | sends an event (`{"name": .., "payload": ..}`) |
//! | `POST /api/executions/cancel`, `/retry` | bulk actions over one page of a filter (dry runs too) |
//! | `GET /api/queues` | unfinished executions per queue, by status |
//! | `GET /api/schedules` | the cron schedules; `POST /api/schedules/{id}/pause`, `/resume` |
//! | `GET /api/audit` | the audit log of actions, newest first |
//! | `GET /api/config` | what the API allows (`read_only`) |
//! | `GET /api/stream` | server-sent events `snapshot`: queue counts and the newest executions, on change |
//! | `GET /` | the web UI (no token needed for the page; it asks for one) |
//! | `GET /api/openapi.json` | this API's OpenAPI 3.1 document |
//!
//! Access: every request needs `Authorization: Bearer <token>` with one of the configured
//! tokens (compared in constant time), unless the API was built with [`UiConfig::anonymous`]
//! for a trusted local setup; in read-only mode ([`UiConfig::read_only`]) every action is
//! refused with 403. Every action the API accepts is written to the backend's audit log
//! ([`zart::audit`]) before it runs, with the name of the token that asked; when it cannot be
//! written the action is refused with 503. Errors are JSON: `{"code": .., "message": ..}`, where the code is
//! [`zart::Error::code`]'s or one of `unauthorized`, `read_only`, `bad_request`.

mod api;
mod auth;
mod errors;
mod live;

use std::sync::Arc;

use axum::Router;

pub use api::ApiDoc;
pub use errors::ApiError;

/// What the API needs of a backend: its scheduler (actions), its admin reads and its audit
/// log. Every backend that implements all three (zart-pg, zart-sqlite, zart-mysql) is one.
pub trait Backend: zart::Scheduler + zart::admin::Admin + zart::audit::AuditLog {}

impl<T: zart::Scheduler + zart::admin::Admin + zart::audit::AuditLog> Backend for T {}

/// Who may use the API, and what they may do.
#[derive(Clone)]
pub struct UiConfig {
    /// (name, secret) of each token; the name is who the audit log says acted.
    tokens: Vec<(String, String)>,
    anonymous: bool,
    read_only: bool,
    refresh: std::time::Duration,
}

impl std::fmt::Debug for UiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.tokens.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("UiConfig")
            .field("tokens", &names)
            .field("anonymous", &self.anonymous)
            .field("read_only", &self.read_only)
            .finish()
    }
}

impl UiConfig {
    /// Requests must carry one of `tokens` as a bearer token. Empty tokens are ignored; with
    /// none left, every request is refused. The audit log names each by its position
    /// (`token-1`, `token-2`, ...); [`UiConfig::with_named_tokens`] gives them names.
    pub fn with_tokens<I, T>(tokens: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        UiConfig::with_named_tokens(
            tokens
                .into_iter()
                .enumerate()
                .map(|(i, t)| (format!("token-{}", i + 1), t.into())),
        )
    }

    /// Requests must carry one of the secrets as a bearer token; the audit log names who acted
    /// by the token's name (`("alice", "s3cret")`). Tokens with an empty secret are ignored;
    /// with none left, every request is refused.
    pub fn with_named_tokens<I, N, T>(tokens: I) -> Self
    where
        I: IntoIterator<Item = (N, T)>,
        N: Into<String>,
        T: Into<String>,
    {
        UiConfig {
            tokens: tokens
                .into_iter()
                .map(|(n, t)| (n.into(), t.into()))
                .filter(|(_, t)| !t.is_empty())
                .collect(),
            anonymous: false,
            read_only: false,
            refresh: DEFAULT_REFRESH,
        }
    }

    /// No token needed: for a trusted local setup only (anyone who reaches the port may cancel
    /// executions unless [`UiConfig::read_only`] is set too). The audit log names the actor
    /// `anonymous`.
    pub fn anonymous() -> Self {
        UiConfig {
            tokens: Vec::new(),
            anonymous: true,
            read_only: false,
            refresh: DEFAULT_REFRESH,
        }
    }

    /// Refuses every action (cancel, retry, send an event, bulk actions, pausing schedules)
    /// with 403; reads work.
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// How often the live view reads a new snapshot while a browser listens (at least 100 ms;
    /// default [`DEFAULT_REFRESH`]). One read per interval per server, whatever the number of
    /// browsers.
    pub fn refresh(mut self, every: std::time::Duration) -> Self {
        self.refresh = every.max(std::time::Duration::from_millis(100));
        self
    }
}

/// How often the live view refreshes by default.
pub const DEFAULT_REFRESH: std::time::Duration = std::time::Duration::from_secs(2);

/// The API as an axum router (paths under `/api`), over `backend`.
///
/// `GET /` serves the web UI, one page with no data of its own, without a token (it asks for
/// one); everything under `/api` needs it.
pub fn router(backend: Arc<dyn Backend>, config: UiConfig) -> Router {
    let state = api::State {
        backend,
        read_only: config.read_only,
        live: Arc::new(live::Live::new(config.refresh)),
    };
    let api = api::routes(state).layer(axum::middleware::from_fn_with_state(
        Arc::new(config),
        auth::require_token,
    ));
    Router::new()
        .route("/", axum::routing::get(page))
        .merge(api)
}

/// The web UI: one HTML page with its script and styles inline, nothing loaded from elsewhere.
const PAGE: &str = include_str!("page.html");

async fn page() -> axum::response::Html<&'static str> {
    axum::response::Html(PAGE)
}
