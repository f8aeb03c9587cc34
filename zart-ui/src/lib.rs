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
//! | `GET /api/executions?status=&task=&queue=&since=&until=&after=&limit=` | one page, newest first ([`zart::view::ExecutionPageView`]) |
//! | `GET /api/executions/{id}` | one execution in full, with why it waits ([`zart::view::ExecutionDetailView`]) |
//! | `POST /api/executions/{id}/cancel` | cancels it and its unfinished descendants |
//! | `POST /api/executions/{id}/retry` | runs a failed execution again from its failed step |
//! | `POST /api/executions/{id}/events` | sends an event (`{"name": .., "payload": ..}`) |
//! | `GET /api/queues` | unfinished executions per queue, by status |
//! | `GET /api/openapi.json` | this API's OpenAPI 3.1 document |
//!
//! Access: every request needs `Authorization: Bearer <token>` with one of the configured
//! tokens (compared in constant time), unless the API was built with [`UiConfig::anonymous`]
//! for a trusted local setup; in read-only mode ([`UiConfig::read_only`]) every action is
//! refused with 403. Errors are JSON: `{"code": .., "message": ..}`, where the code is
//! [`zart::Error::code`]'s or one of `unauthorized`, `read_only`, `bad_request`.

mod api;
mod auth;
mod errors;

use std::sync::Arc;

use axum::Router;

pub use api::ApiDoc;
pub use errors::ApiError;

/// What the API needs of a backend: its scheduler (actions) and its admin reads. Every backend
/// that implements both (zart-pg, zart-sqlite) is one.
pub trait Backend: zart::Scheduler + zart::admin::Admin {}

impl<T: zart::Scheduler + zart::admin::Admin> Backend for T {}

/// Who may use the API, and what they may do.
#[derive(Clone)]
pub struct UiConfig {
    tokens: Vec<String>,
    anonymous: bool,
    read_only: bool,
}

impl std::fmt::Debug for UiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UiConfig")
            .field("tokens", &self.tokens.len())
            .field("anonymous", &self.anonymous)
            .field("read_only", &self.read_only)
            .finish()
    }
}

impl UiConfig {
    /// Requests must carry one of `tokens` as a bearer token. Empty tokens are ignored; with
    /// none left, every request is refused.
    pub fn with_tokens<I, T>(tokens: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        UiConfig {
            tokens: tokens
                .into_iter()
                .map(Into::into)
                .filter(|t: &String| !t.is_empty())
                .collect(),
            anonymous: false,
            read_only: false,
        }
    }

    /// No token needed: for a trusted local setup only (anyone who reaches the port may cancel
    /// executions unless [`UiConfig::read_only`] is set too).
    pub fn anonymous() -> Self {
        UiConfig {
            tokens: Vec::new(),
            anonymous: true,
            read_only: false,
        }
    }

    /// Refuses every action (cancel, retry, send an event) with 403; reads work.
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }
}

/// The API as an axum router (paths under `/api`), over `backend`.
pub fn router(backend: Arc<dyn Backend>, config: UiConfig) -> Router {
    let state = api::State {
        backend,
        read_only: config.read_only,
    };
    api::routes(state).layer(axum::middleware::from_fn_with_state(
        Arc::new(config),
        auth::require_token,
    ))
}
