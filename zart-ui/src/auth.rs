//! Bearer tokens: every request must carry one of the configured tokens.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::errors::ApiError;
use crate::UiConfig;

/// Lets a request through when it carries a configured token (or the API is anonymous).
pub(crate) async fn require_token(
    State(config): State<Arc<UiConfig>>,
    request: Request,
    next: Next,
) -> Response {
    if config.anonymous {
        return next.run(request).await;
    }
    let given = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        Some(token) if config.tokens.iter().any(|t| same(t, token)) => next.run(request).await,
        Some(_) => ApiError::unauthorized("the bearer token is not one of the API's tokens")
            .into_response(),
        None => ApiError::unauthorized("send `Authorization: Bearer <token>`").into_response(),
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
