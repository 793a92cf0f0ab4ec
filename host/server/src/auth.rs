//! Access control on `/api`: the origin check (browsers), then the access token.
//!
//! - The token is a random 256-bit hex string in `<data-dir>/host.token` (mode 0600),
//!   written on first start and reused afterwards; `yoi-tui` reads it from there.
//! - Requests present it as `Authorization: Bearer <token>`. A browser cannot set headers
//!   on a WebSocket, so WebSocket upgrades may instead carry it as `?access_token=<token>`
//!   or as a subprotocol `yoi.token.<token>` (offer `yoi` too; the host selects `yoi`).
//! - A request with an `Origin` header (a browser) is refused with `403 forbidden` unless
//!   the origin is listed in `allowed_origins`; requests without one (curl, `yoi-tui`)
//!   are not affected. The same list drives the CORS headers.
//!
//! A valid token maps to the owner [`Principal`], put into the request's extensions for
//! the handlers and the projection.

use std::io::{self, Write};
use std::path::Path;

use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use std::collections::HashMap;

use crate::error::HostError;
use crate::projection::Principal;
use crate::server::AppState;

/// Subprotocol a browser offers alongside its token protocol; the host selects it.
pub const WS_PROTOCOL: &str = "yoi";
/// Prefix of the subprotocol that carries the token: `yoi.token.<token>`.
pub const WS_TOKEN_PROTOCOL_PREFIX: &str = "yoi.token.";

/// Reads the token at `path`, or creates it (mode 0600, parent directories 0700).
/// Returns the token and whether it was created now.
pub fn load_or_create_token(path: &Path) -> io::Result<(String, bool)> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let token = text.trim().to_string();
            if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "the token file {} is empty or not one printable word; delete it to get a new token",
                        path.display()
                    ),
                ));
            }
            warn_if_readable_by_others(path);
            Ok((token, false))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                create_private_dir(dir)?;
            }
            let token = hex::encode(rand::random::<[u8; 32]>());
            let mut file = open_new_private(path)?;
            file.write_all(token.as_bytes())?;
            file.write_all(b"\n")?;
            file.sync_all()?;
            Ok((token, true))
        }
        Err(e) => Err(e),
    }
}

#[cfg(unix)]
fn open_new_private(path: &Path) -> io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn open_new_private(path: &Path) -> io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            path = %path.display(),
            mode = format_args!("{:o}", meta.permissions().mode() & 0o777),
            "the access token file is readable by other users; chmod 600 it"
        );
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_: &Path) {}

/// Compares without an early exit, so timing does not reveal how much of a guess matched.
fn same_token(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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
pub fn requested_protocols(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
}

fn protocol_token(headers: &HeaderMap) -> Option<String> {
    requested_protocols(headers)
        .find_map(|p| p.strip_prefix(WS_TOKEN_PROTOCOL_PREFIX))
        .map(str::to_string)
}

fn query_token(request: &Request) -> Option<String> {
    let Query(params) = Query::<HashMap<String, String>>::try_from_uri(request.uri()).ok()?;
    params.get("access_token").cloned()
}

/// Whether a browser origin may call the API.
pub fn origin_allowed(state: &AppState, origin: &HeaderValue) -> bool {
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    state
        .config()
        .allowed_origins
        .iter()
        .any(|o| o.as_str().eq_ignore_ascii_case(origin))
}

/// Middleware on `/api`: origin check, then the token.
pub async fn require_token(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, HostError> {
    if let Some(origin) = request.headers().get(header::ORIGIN)
        && !origin_allowed(&state, origin)
    {
        return Err(HostError::forbidden(format!(
            "cross-origin requests from {} are not allowed; add the origin to `allowed_origins` \
             in the host's config",
            origin.to_str().unwrap_or("this origin")
        )));
    }
    let headers = request.headers();
    let presented = match bearer(headers) {
        Some(token) => Some(token.to_string()),
        None if is_websocket_upgrade(headers) => {
            query_token(&request).or_else(|| protocol_token(headers))
        }
        None => None,
    };
    let Some(presented) = presented else {
        return Err(HostError::unauthorized(
            "missing access token: send `Authorization: Bearer <token>`; the token is in the \
             file host.token in the host's data directory",
        ));
    };
    if !same_token(presented.as_bytes(), state.token().as_bytes()) {
        return Err(HostError::unauthorized("wrong access token"));
    }
    request.extensions_mut().insert(Principal::owner());
    Ok(next.run(request).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_file_is_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested").join("host.token");
        let (token, created) = load_or_create_token(&path).unwrap();
        assert!(created);
        assert_eq!(token.len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (again, created) = load_or_create_token(&path).unwrap();
        assert!(!created);
        assert_eq!(again, token);
    }

    #[test]
    fn comparisons_and_headers() {
        assert!(same_token(b"abc", b"abc"));
        assert!(!same_token(b"abc", b"abd"));
        assert!(!same_token(b"abc", b"ab"));
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer xyz"),
        );
        assert_eq!(bearer(&h), Some("xyz"));
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("yoi, yoi.token.abc"),
        );
        assert_eq!(protocol_token(&h).as_deref(), Some("abc"));
    }
}
