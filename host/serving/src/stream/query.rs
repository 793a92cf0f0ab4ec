//! [`StreamQuery`]: the query string of a stream's WebSocket route.

use serde::Deserialize;
use yoi_protocol::ErrorCode;

use super::session::{Scope, StartCursor};
use crate::error::ServeError;

/// `?cursor=` (and, on WebSocket upgrades, `?access_token=`, which auth reads).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct StreamQuery {
    pub cursor: Option<String>,
}

impl StreamQuery {
    /// The cursor for a stream of `scope`, if one was given; `cursor_malformed` when it
    /// is not a cursor of the stream's kind.
    pub fn start(&self, scope: &Scope) -> Result<Option<StartCursor>, ServeError> {
        self.cursor
            .as_deref()
            .map(|text| StartCursor::parse(scope, text))
            .transpose()
            .map_err(|e| ServeError::new(ErrorCode::CursorMalformed, e.to_string()))
    }
}
