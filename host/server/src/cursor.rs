//! [`HostCursor`]: the cursor of the multiplexed stream (`/api/v1/events/ws`).
//!
//! Each runtime numbers its own events, so a position in a stream that merges several
//! runtimes is one runtime cursor per runtime. On the wire it is one opaque string:
//!
//! ```text
//! h1~local.c1<epoch:16 hex><seq:16 hex>~other.c1<…>
//! ```
//!
//! `h1` is the format version; each `~`-separated part is a runtime id (`a-z 0-9 _ -`) and
//! that runtime's [`Cursor`], ordered by runtime id. Every character is URL-safe, so the
//! cursor goes into `?cursor=` as is. Runtime cursors carry their store's epoch, so a host
//! cursor stays valid across host restarts and is recognised (never misread) when a
//! runtime's store was replaced. A runtime absent from the cursor (added since) is replayed
//! from its beginning; parts naming runtimes the host no longer serves are carried along
//! unchanged.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Serialize, Serializer};
use yoi_protocol::Cursor;

use crate::config::is_runtime_id;

/// The format version every host cursor starts with.
pub const PREFIX: &str = "h1";

/// A position in the multiplexed stream: the last event seen of each runtime.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostCursor {
    parts: BTreeMap<String, Cursor>,
}

impl HostCursor {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, runtime_id: &str) -> Option<Cursor> {
        self.parts.get(runtime_id).copied()
    }

    pub fn set(&mut self, runtime_id: &str, cursor: Cursor) {
        match self.parts.get_mut(runtime_id) {
            Some(c) => *c = cursor,
            None => {
                self.parts.insert(runtime_id.to_string(), cursor);
            }
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, Cursor)> {
        self.parts.iter().map(|(k, v)| (k.as_str(), *v))
    }

    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(2 + self.parts.len() * 48);
        self.encode_into(&mut out);
        out
    }

    /// Appends the wire form to `out`.
    pub fn encode_into(&self, out: &mut String) {
        out.push_str(PREFIX);
        for (id, cursor) in &self.parts {
            out.push('~');
            out.push_str(id);
            out.push('.');
            cursor.write_to(out);
        }
    }

    /// Parses the wire form; anything else is a typed error, never a panic.
    pub fn decode(text: &str) -> Result<Self, String> {
        let body = text
            .strip_prefix(PREFIX)
            .ok_or("not a host cursor (the multiplexed stream takes the cursors it sent)")?;
        let mut parts = BTreeMap::new();
        if body.is_empty() {
            return Ok(HostCursor { parts });
        }
        let body = body
            .strip_prefix('~')
            .ok_or("host cursor: expected `~` after the version")?;
        for part in body.split('~') {
            let (id, cursor) = part
                .split_once('.')
                .ok_or("host cursor: a part has no runtime id")?;
            if !is_runtime_id(id) {
                return Err("host cursor: invalid runtime id".into());
            }
            let cursor = Cursor::decode(cursor).map_err(|e| format!("host cursor: {e}"))?;
            if parts.insert(id.to_string(), cursor).is_some() {
                return Err("host cursor: a runtime appears twice".into());
            }
        }
        Ok(HostCursor { parts })
    }
}

impl fmt::Display for HostCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.encode())
    }
}

impl Serialize for HostCursor {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.encode())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let mut c = HostCursor::new();
        assert_eq!(HostCursor::decode(&c.encode()).unwrap(), c);
        c.set("local", Cursor::new(0xabc, 42));
        c.set("b-2", Cursor::new(7, 0));
        let text = c.encode();
        assert!(text.starts_with("h1~b-2.c1"), "{text}");
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"~._-".contains(&b))
        );
        assert_eq!(HostCursor::decode(&text).unwrap(), c);
        assert_eq!(c.get("local"), Some(Cursor::new(0xabc, 42)));
    }

    #[test]
    fn malformed_is_an_error() {
        let good = Cursor::new(1, 2).encode();
        for bad in [
            "".to_string(),
            "h2".into(),
            good.clone(),
            "h1local".into(),
            "h1~".into(),
            "h1~local".into(),
            format!("h1~Local.{good}"),
            format!("h1~local.{good}~local.{good}"),
            "h1~local.c1zz".into(),
        ] {
            assert!(HostCursor::decode(&bad).is_err(), "{bad:?}");
        }
    }
}
