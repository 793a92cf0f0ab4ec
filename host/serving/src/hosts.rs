//! The `Host` header check against DNS rebinding: a web page on another origin can make a
//! browser resolve its own name to 127.0.0.1 and send requests to a local server under
//! that name. A server bound to loopback (or to one address) therefore answers only the
//! names it is known by: `localhost`, the loopback addresses, its bind address and
//! `http.allowed_hosts`. A server bound to every interface (`0.0.0.0`, `::`) is reached by
//! names it cannot know (a Kubernetes service, a load balancer): it answers any `Host`
//! unless `http.allowed_hosts` lists them.

use std::net::SocketAddr;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use yoi_protocol::ErrorCode;

use crate::error::ServeError;

/// Which `Host` names a server answers (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHosts {
    any: bool,
    names: Vec<String>,
}

impl AllowedHosts {
    /// The names of a server bound to `bind`, with the configured `extra` names.
    pub fn new(bind: SocketAddr, extra: &[String]) -> Self {
        let mut names: Vec<String> = ["localhost", "127.0.0.1", "::1"]
            .into_iter()
            .map(str::to_string)
            .collect();
        if !bind.ip().is_unspecified() {
            names.push(bind.ip().to_string());
        }
        names.extend(extra.iter().map(|n| normalize(n)));
        AllowedHosts {
            any: bind.ip().is_unspecified() && extra.is_empty(),
            names,
        }
    }

    /// Whether a request with this `Host` header is answered. A request without one
    /// (HTTP/1.0; browsers always send it) is.
    pub fn allows(&self, host: Option<&str>) -> bool {
        let Some(host) = host else { return true };
        self.any || self.names.iter().any(|n| *n == normalize(strip_port(host)))
    }
}

/// `name` without a trailing dot, lower case, IPv6 brackets removed.
fn normalize(name: &str) -> String {
    name.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

/// The name of `host[:port]` (`[v6]:port` included).
fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name
        }
        _ => host,
    }
}

/// Middleware: `421` for a request to a name the server does not answer.
pub(crate) async fn check_host(
    State(hosts): State<AllowedHosts>,
    request: Request,
    next: Next,
) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .map(|v| v.to_str().unwrap_or("\u{0}"));
    if hosts.allows(host) {
        return next.run(request).await;
    }
    // The name is not echoed: the answer only says what to configure.
    ServeError::new(
        ErrorCode::Forbidden,
        "this server does not answer to that host name (add it to http.allowed_hosts)",
    )
    .with_status(StatusCode::MISDIRECTED_REQUEST)
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(bind: &str, extra: &[&str]) -> AllowedHosts {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        AllowedHosts::new(bind.parse().unwrap(), &extra)
    }

    #[test]
    fn a_loopback_server_answers_only_its_own_names() {
        let h = at("127.0.0.1:38700", &[]);
        for ok in [
            "localhost",
            "localhost:38700",
            "LOCALHOST.:1",
            "127.0.0.1:38700",
            "[::1]:38700",
            "[::1]",
        ] {
            assert!(h.allows(Some(ok)), "{ok}");
        }
        for refused in [
            "evil.example",
            "evil.example:38700",
            "127.0.0.1.evil.example",
            "localhost.evil.example:38700",
            "",
            "10.0.0.1",
        ] {
            assert!(!h.allows(Some(refused)), "{refused}");
        }
        assert!(h.allows(None), "HTTP/1.0 without Host");
    }

    #[test]
    fn configured_names_and_the_bind_address_are_answered() {
        let h = at("192.168.1.5:9000", &["yoi.internal", "Runtime-0.yoi.svc."]);
        assert!(h.allows(Some("192.168.1.5:9000")));
        assert!(h.allows(Some("yoi.internal")));
        assert!(h.allows(Some("runtime-0.yoi.svc:38701")));
        assert!(!h.allows(Some("other.internal")));
    }

    #[test]
    fn a_server_on_every_interface_answers_any_name_unless_told_otherwise() {
        assert!(at("0.0.0.0:38701", &[]).allows(Some("yoi-runtime-0.yoi-runtime.yoi.svc")));
        assert!(at("[::]:38701", &[]).allows(Some("anything:1")));
        let h = at("0.0.0.0:38701", &["yoi.example"]);
        assert!(h.allows(Some("yoi.example:38701")));
        assert!(h.allows(Some("localhost")));
        assert!(!h.allows(Some("evil.example")));
    }
}
