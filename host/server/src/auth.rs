//! Access control on `/api`: the origin check (browsers), then the access token.
//!
//! - The token is a random 256-bit hex string in `<data-dir>/host.token` (mode 0600),
//!   written on first start and reused afterwards; `yoi-tui` reads it from there. How a
//!   request presents it is [`yoi_serving::Authenticator`]'s job.
//! - A request with an `Origin` header (a browser) is refused with `403 forbidden` unless
//!   the origin is listed in `allowed_origins`; requests without one (curl, `yoi-tui`)
//!   are not affected. The same list drives the CORS headers.
//!
//! A valid token maps to its [`Principal`] (the generated token to the owner, each
//! `[[clients]]` token to that client; see [`crate::clients`]), put into the request's
//! extensions for the handlers, the streams and the projection.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use yoi_serving::ServeError;

use crate::state::AppState;

/// Whether a browser origin may call the API.
fn origin_allowed(state: &AppState, origin: &HeaderValue) -> bool {
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
) -> Result<Response, ServeError> {
    if let Some(origin) = request.headers().get(header::ORIGIN)
        && !origin_allowed(&state, origin)
    {
        return Err(ServeError::forbidden(format!(
            "cross-origin requests from {} are not allowed; add the origin to `allowed_origins` \
             in the host's config",
            origin.to_str().unwrap_or("this origin")
        )));
    }
    let principal = state.auth().identify(&request)?.clone();
    request.extensions_mut().insert(principal);
    Ok(next.run(request).await)
}
