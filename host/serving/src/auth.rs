//! Token authentication of requests.
//!
//! Requests present the token as `Authorization: Bearer <token>`. A browser cannot set
//! headers on a WebSocket, so WebSocket upgrades (only they) may instead carry it as
//! `?access_token=<token>`, or as a subprotocol `yoi.token.<token>` offered together
//! with the subprotocol `yoi`, which the server selects (the token is never echoed
//! back).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::error::ServeError;
use crate::token::AccessToken;

/// Subprotocol a browser offers alongside its token protocol; the server selects it.
pub const WS_PROTOCOL: &str = "yoi";
/// Prefix of the subprotocol that carries the token: `yoi.token.<token>`.
pub const WS_TOKEN_PROTOCOL_PREFIX: &str = "yoi.token.";

/// Checks the token of every request it is asked about.
#[derive(Debug, Clone)]
pub struct Authenticator {
    token: AccessToken,
    /// Where a client finds the token (said when a request has none).
    where_to_find: String,
}

impl Authenticator {
    /// `where_to_find` completes "the token is …" in the answer to a request without one,
    /// e.g. "in the file host.token in the host's data directory".
    pub fn new(token: AccessToken, where_to_find: impl Into<String>) -> Self {
        Authenticator {
            token,
            where_to_find: where_to_find.into(),
        }
    }

    pub fn token(&self) -> &AccessToken {
        &self.token
    }

    /// `Ok` when the request presents the token, else `401 unauthorized`.
    pub fn check(&self, request: &Request) -> Result<(), ServeError> {
        let Some(presented) = presented_token(request) else {
            return Err(ServeError::unauthorized(format!(
                "missing access token: send `Authorization: Bearer <token>`; the token is {}",
                self.where_to_find
            )));
        };
        if !self.token.matches(&presented) {
            return Err(ServeError::unauthorized("wrong access token"));
        }
        Ok(())
    }
}

/// Middleware for a server with one token: every request must present it.
pub async fn require_token(
    State(auth): State<Arc<Authenticator>>,
    request: Request,
    next: Next,
) -> Result<Response, ServeError> {
    auth.check(&request)?;
    Ok(next.run(request).await)
}

/// The token a request presents, if any (see the module docs for where it may be).
pub fn presented_token(request: &Request) -> Option<String> {
    let headers = request.headers();
    if let Some(token) = bearer(headers) {
        return Some(token.to_string());
    }
    if !is_websocket_upgrade(headers) {
        return None;
    }
    query_token(request).or_else(|| protocol_token(headers))
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// The requested subprotocols, in order.
fn requested_protocols(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
}

/// The token of a `yoi.token.<token>` subprotocol, when `yoi` is offered too (the server
/// answers with `yoi`; without it a browser would need its token protocol echoed).
fn protocol_token(headers: &HeaderMap) -> Option<String> {
    if !requested_protocols(headers).any(|p| p == WS_PROTOCOL) {
        return None;
    }
    requested_protocols(headers)
        .find_map(|p| p.strip_prefix(WS_TOKEN_PROTOCOL_PREFIX))
        .map(str::to_string)
}

fn query_token(request: &Request) -> Option<String> {
    let Query(mut params) = Query::<HashMap<String, String>>::try_from_uri(request.uri()).ok()?;
    params.remove("access_token")
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::HeaderValue;

    fn request(uri: &str, headers: &[(&str, &str)]) -> Request {
        let mut r = Request::builder().uri(uri);
        for (k, v) in headers {
            r = r.header(*k, HeaderValue::from_str(v).unwrap());
        }
        r.body(Body::empty()).unwrap()
    }

    const UPGRADE: (&str, &str) = ("upgrade", "websocket");

    #[test]
    fn where_a_token_may_be() {
        let bearer = request("/x", &[("authorization", "Bearer xyz")]);
        assert_eq!(presented_token(&bearer).as_deref(), Some("xyz"));
        // The query token counts on WebSocket upgrades only.
        assert_eq!(presented_token(&request("/x?access_token=q", &[])), None);
        let ws = request("/x?access_token=q", &[UPGRADE]);
        assert_eq!(presented_token(&ws).as_deref(), Some("q"));
        // The token subprotocol counts only with `yoi` offered too.
        let both = [UPGRADE, ("sec-websocket-protocol", "yoi, yoi.token.abc")];
        assert_eq!(
            presented_token(&request("/x", &both)).as_deref(),
            Some("abc")
        );
        let alone = [UPGRADE, ("sec-websocket-protocol", "yoi.token.abc")];
        assert_eq!(presented_token(&request("/x", &alone)), None);
    }

    #[test]
    fn check_answers_typed_errors() {
        let auth = Authenticator::new(
            AccessToken::load_or_create(&tempfile::tempdir().unwrap().path().join("t"))
                .unwrap()
                .0,
            "in the file t",
        );
        let missing = auth.check(&request("/x", &[])).unwrap_err();
        assert_eq!(missing.code, yoi_protocol::ErrorCode::Unauthorized);
        assert!(missing.message.contains("in the file t"), "{missing}");
        let wrong = auth
            .check(&request("/x", &[("authorization", "Bearer nope")]))
            .unwrap_err();
        assert_eq!(wrong.message, "wrong access token");
        let token = format!("Bearer {}", auth.token().expose());
        assert!(
            auth.check(&request("/x", &[("authorization", &token)]))
                .is_ok()
        );
    }
}
