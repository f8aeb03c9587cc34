//! Bearer tokens: every request must carry one of the configured tokens.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::errors::ApiError;
use crate::UiConfig;

/// Who made a request: the name of its token (`anonymous` for an API without tokens). Put in
/// the request's extensions by [`require_token`] for the handlers that audit.
#[derive(Debug, Clone)]
pub(crate) struct Actor(pub(crate) String);

/// Lets a request through when it carries a configured token (or the API is anonymous), with
/// its [`Actor`].
pub(crate) async fn require_token(
    State(config): State<Arc<UiConfig>>,
    mut request: Request,
    next: Next,
) -> Response {
    if config.anonymous {
        request
            .extensions_mut()
            .insert(Actor("anonymous".to_owned()));
        return next.run(request).await;
    }
    let given = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(token) = given else {
        return ApiError::unauthorized("send `Authorization: Bearer <token>`").into_response();
    };
    // Every token is compared, so the time taken does not say which one matched.
    let mut found = None;
    for (name, secret) in &config.tokens {
        if same(secret, token) && found.is_none() {
            found = Some(name.clone());
        }
    }
    match found {
        Some(name) => {
            request.extensions_mut().insert(Actor(name));
            next.run(request).await
        }
        None => ApiError::unauthorized("the bearer token is not one of the API's tokens")
            .into_response(),
    }
}

/// Compares two tokens in time that depends on their lengths only, not on where they differ.
fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::same;

    #[test]
    fn tokens_match_only_exactly() {
        assert!(same("s3cret", "s3cret"));
        assert!(!same("s3cret", "s3cre"));
        assert!(!same("s3cret", "s3creT"));
        assert!(!same("", "x"));
    }
}
