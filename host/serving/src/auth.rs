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

/// Checks the token of every request it is asked about, and says whose it is.
///
/// A server has its own token (the one it generated) and may accept more, each standing
/// for a client identity `Id` (the host's principals; `()` for a server with one token).
/// A presented token is compared with every accepted one, each in constant time and
/// without stopping at the first match, so timing does not reveal which one (or how
/// much of it) a guess matched.
#[derive(Debug, Clone)]
pub struct Authenticator<Id = ()> {
    token: AccessToken,
    /// Accepted tokens and whose they are; the server's own first.
    accepted: Vec<(AccessToken, Id)>,
    /// Where a client finds the token (said when a request has none).
    where_to_find: String,
}

impl Authenticator {
    /// A server with one token. `where_to_find` completes "the token is …" in the answer
    /// to a request without one, e.g. "in the file host.token in the host's data
    /// directory".
    pub fn new(token: AccessToken, where_to_find: impl Into<String>) -> Self {
        Authenticator::with_identity(token, (), where_to_find)
    }

    /// `Ok` when the request presents the token, else `401 unauthorized`.
    pub fn check(&self, request: &Request) -> Result<(), ServeError> {
        self.identify(request).map(|_| ())
    }
}

impl<Id> Authenticator<Id> {
    /// A server whose own token stands for `identity` (see [`Authenticator::new`] for
    /// `where_to_find`).
    pub fn with_identity(
        token: AccessToken,
        identity: Id,
        where_to_find: impl Into<String>,
    ) -> Self {
        Authenticator {
            accepted: vec![(token.clone(), identity)],
            token,
            where_to_find: where_to_find.into(),
        }
    }

    /// Accepts `token` too, as `identity`. Errs when the token is already accepted (two
    /// identities cannot share one).
    pub fn accept(&mut self, token: AccessToken, identity: Id) -> Result<(), DuplicateToken> {
        let taken = self
            .accepted
            .iter()
            .fold(false, |taken, (t, _)| taken | t.matches(token.expose()));
        if taken {
            return Err(DuplicateToken);
        }
        self.accepted.push((token, identity));
        Ok(())
    }

    /// The server's own token.
    pub fn token(&self) -> &AccessToken {
        &self.token
    }

    /// Whose token the request presents, else `401 unauthorized`.
    pub fn identify(&self, request: &Request) -> Result<&Id, ServeError> {
        let Some(presented) = presented_token(request) else {
            return Err(ServeError::unauthorized(format!(
                "missing access token: send `Authorization: Bearer <token>`; the token is {}",
                self.where_to_find
            )));
        };
        // Every token is compared: no early exit on a match.
        let found = self.accepted.iter().fold(None, |found, (token, identity)| {
            match (found, token.matches(&presented)) {
                (None, true) => Some(identity),
                (found, _) => found,
            }
        });
        found.ok_or_else(|| ServeError::unauthorized("wrong access token"))
    }
}

/// Two clients were given the same token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("this token is already another client's (or the server's own); give each its own")]
pub struct DuplicateToken;

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

    #[test]
    fn each_accepted_token_names_its_identity() {
        let own = AccessToken::from_secret("own-token-0123456789").unwrap();
        let mut auth = Authenticator::with_identity(own.clone(), "owner", "here");
        auth.accept(
            AccessToken::from_secret("ci-token-0123456789").unwrap(),
            "ci",
        )
        .unwrap();
        assert_eq!(auth.accept(own, "again"), Err(DuplicateToken));
        let who = |token: &str| {
            let header = format!("Bearer {token}");
            auth.identify(&request("/x", &[("authorization", &header)]))
                .copied()
                .map_err(|e| e.code)
        };
        assert_eq!(who("own-token-0123456789"), Ok("owner"));
        assert_eq!(who("ci-token-0123456789"), Ok("ci"));
        assert_eq!(
            who("ci-token-012345678x"),
            Err(yoi_protocol::ErrorCode::Unauthorized)
        );
    }
}
