//! Stream cursors.
//!
//! A [`Cursor`] names a position in one event log: the log's *epoch* (a random id fixed
//! when its store is created) and a sequence number (the last event the holder has seen;
//! `0` is "before the first event"). On the wire it is an opaque string, so clients cannot
//! build or misread one, and a cursor from another store is recognised by its epoch.
//!
//! A [`HostCursor`] is the cursor of the host's multiplexed stream, which merges several
//! runtimes: one runtime cursor per runtime.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// A position in an event log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cursor {
    pub epoch: u64,
    pub seq: u64,
}

const PREFIX: &str = "c1";
const ENCODED_LEN: usize = PREFIX.len() + 32;

impl Cursor {
    pub fn new(epoch: u64, seq: u64) -> Self {
        Cursor { epoch, seq }
    }

    /// The opaque wire form: a version prefix and 32 lowercase hex digits.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(ENCODED_LEN);
        self.write_to(&mut out);
        out
    }

    /// Appends the wire form to `out`. Every event frame carries a cursor, so this is
    /// written by hand rather than through `format!` (several times faster).
    pub fn write_to(&self, out: &mut String) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut digits = [0u8; 32];
        for (i, value) in [self.epoch, self.seq].into_iter().enumerate() {
            for (j, digit) in digits[i * 16..(i + 1) * 16].iter_mut().enumerate() {
                *digit = HEX[((value >> ((15 - j) * 4)) & 0xf) as usize];
            }
        }
        out.push_str(PREFIX);
        // Only ASCII hex digits were written.
        out.push_str(std::str::from_utf8(&digits).unwrap_or_default());
    }

    /// Parse the wire form; any other text is a typed error, never a panic.
    pub fn decode(text: &str) -> Result<Self, CursorError> {
        let body = text
            .strip_prefix(PREFIX)
            .ok_or(CursorError::Malformed("unknown cursor version"))?;
        if text.len() != ENCODED_LEN {
            return Err(CursorError::Malformed("wrong cursor length"));
        }
        if !body.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(CursorError::Malformed("cursor is not lowercase hex"));
        }
        let epoch = u64::from_str_radix(&body[..16], 16)
            .map_err(|_| CursorError::Malformed("bad cursor epoch"))?;
        let seq = u64::from_str_radix(&body[16..], 16)
            .map_err(|_| CursorError::Malformed("bad cursor sequence"))?;
        Ok(Cursor { epoch, seq })
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.encode())
    }
}

impl FromStr for Cursor {
    type Err = CursorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Cursor::decode(s)
    }
}

impl Serialize for Cursor {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.encode())
    }
}

impl<'de> Deserialize<'de> for Cursor {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Cursor::decode(&text).map_err(serde::de::Error::custom)
    }
}

/// Why a cursor string could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CursorError {
    /// Not a cursor this version of yoi wrote.
    Malformed(&'static str),
}

impl fmt::Display for CursorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CursorError::Malformed(why) => write!(f, "malformed cursor: {why}"),
        }
    }
}

impl std::error::Error for CursorError {}

/// Whether `text` is a valid runtime id: 1 to 64 of `a-z 0-9 _ -`. Runtime ids appear in
/// URLs and in [`HostCursor`]s, so nothing in them needs escaping.
pub fn is_runtime_id(text: &str) -> bool {
    (1..=64).contains(&text.len())
        && text
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'))
}

/// The cursor of the multiplexed stream (`/api/v1/events/ws`): the last event seen of
/// each runtime.
///
/// Each runtime numbers its own events, so a position in a stream that merges several
/// runtimes is one runtime [`Cursor`] per runtime. On the wire it is one opaque string:
///
/// ```text
/// h1~local.c1<epoch:16 hex><seq:16 hex>~other.c1<…>
/// ```
///
/// `h1` is the format version; each `~`-separated part is a runtime id
/// ([`is_runtime_id`]) and that runtime's cursor, ordered by runtime id. Every character
/// is URL-safe, so the cursor goes into `?cursor=` as is. Runtime cursors carry their
/// store's epoch, so a host cursor stays valid across host restarts and is recognised
/// (never misread) when a runtime's store was replaced.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct HostCursor {
    parts: BTreeMap<String, Cursor>,
}

impl HostCursor {
    /// The format version every host cursor starts with.
    pub const PREFIX: &'static str = "h1";
    /// Most runtimes one host cursor names: a client's cursor with more is malformed
    /// (it would make the server carry them in every frame), and a host serves at most
    /// this many runtimes.
    pub const MAX_PARTS: usize = 1024;
    /// Longest wire form: [`MAX_PARTS`](Self::MAX_PARTS) parts of the longest runtime id.
    pub const MAX_ENCODED_LEN: usize = 2 + Self::MAX_PARTS * (1 + 64 + 1 + ENCODED_LEN);

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

    /// The parts in runtime-id order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Cursor)> {
        self.parts.iter().map(|(k, v)| (k.as_str(), *v))
    }

    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(2 + self.parts.len() * 48);
        self.write_to(&mut out);
        out
    }

    /// Appends the wire form to `out`.
    pub fn write_to(&self, out: &mut String) {
        out.push_str(Self::PREFIX);
        for (id, cursor) in &self.parts {
            Self::write_part(out, id, *cursor);
        }
    }

    /// Appends one part (`~<runtime id>.<cursor>`) to `out`; writing
    /// [`PREFIX`](Self::PREFIX) and then the parts in runtime-id order is the wire form.
    pub fn write_part(out: &mut String, runtime_id: &str, cursor: Cursor) {
        out.push('~');
        out.push_str(runtime_id);
        out.push('.');
        cursor.write_to(out);
    }

    /// Parses the wire form; anything else (more than [`MAX_PARTS`](Self::MAX_PARTS)
    /// parts included) is a typed error, never a panic.
    pub fn decode(text: &str) -> Result<Self, CursorError> {
        if text.len() > Self::MAX_ENCODED_LEN {
            return Err(CursorError::Malformed("host cursor: too long"));
        }
        let body = text
            .strip_prefix(Self::PREFIX)
            .ok_or(CursorError::Malformed(
                "not a host cursor (the multiplexed stream takes the cursors it sent)",
            ))?;
        let mut parts = BTreeMap::new();
        if body.is_empty() {
            return Ok(HostCursor { parts });
        }
        let body = body.strip_prefix('~').ok_or(CursorError::Malformed(
            "host cursor: expected `~` after the version",
        ))?;
        for part in body.split('~') {
            if parts.len() == Self::MAX_PARTS {
                return Err(CursorError::Malformed("host cursor: too many parts"));
            }
            let (id, cursor) = part.split_once('.').ok_or(CursorError::Malformed(
                "host cursor: a part has no runtime id",
            ))?;
            if !is_runtime_id(id) {
                return Err(CursorError::Malformed("host cursor: invalid runtime id"));
            }
            let cursor = Cursor::decode(cursor).map_err(|_| {
                CursorError::Malformed("host cursor: a part is not a valid runtime cursor")
            })?;
            if parts.insert(id.to_string(), cursor).is_some() {
                return Err(CursorError::Malformed(
                    "host cursor: a runtime appears twice",
                ));
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

impl FromStr for HostCursor {
    type Err = CursorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HostCursor::decode(s)
    }
}

impl Serialize for HostCursor {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.encode())
    }
}

impl<'de> Deserialize<'de> for HostCursor {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        HostCursor::decode(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_forms_are_rejected_with_reasons() {
        for bad in [
            "",
            "c1",
            "c2",
            "c1zz",
            "hello",
            "c1000000000000000g0000000000000001",
        ] {
            assert!(
                matches!(Cursor::decode(bad), Err(CursorError::Malformed(_))),
                "{bad:?}"
            );
        }
        let upper = Cursor::new(0xABCD, 7).encode().to_uppercase();
        assert!(
            Cursor::decode(&upper).is_err(),
            "the wire form is lowercase only"
        );
    }

    #[test]
    fn serde_uses_the_opaque_string() {
        let c = Cursor::new(0x0123_4567_89ab_cdef, 42);
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(json, "\"c10123456789abcdef000000000000002a\"");
        assert_eq!(serde_json::from_str::<Cursor>(&json).unwrap(), c);
        assert!(serde_json::from_str::<Cursor>("\"nope\"").is_err());
    }

    #[test]
    fn host_cursors_round_trip() {
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
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<HostCursor>(&json).unwrap(), c);
    }

    #[test]
    fn malformed_host_cursors_are_errors() {
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
            "h1~local.h1".into(),
        ] {
            assert!(
                matches!(HostCursor::decode(&bad), Err(CursorError::Malformed(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn host_cursors_are_bounded_in_parts_and_length() {
        let mut c = HostCursor::new();
        for i in 0..HostCursor::MAX_PARTS {
            c.set(&format!("{i:0>64}"), Cursor::new(u64::MAX, u64::MAX));
        }
        let longest = c.encode();
        assert_eq!(longest.len(), HostCursor::MAX_ENCODED_LEN);
        assert_eq!(HostCursor::decode(&longest).unwrap(), c);
        let mut more = longest.clone();
        more.push_str(&format!("~x.{}", Cursor::new(1, 1).encode()));
        assert!(HostCursor::decode(&more).is_err(), "one part too many");
        let few_long = format!("h1~{}", "a".repeat(HostCursor::MAX_ENCODED_LEN));
        assert!(HostCursor::decode(&few_long).is_err());
        let short_parts = (0..=HostCursor::MAX_PARTS)
            .map(|i| format!("~{i}.{}", Cursor::new(1, 1).encode()))
            .collect::<String>();
        assert!(HostCursor::decode(&format!("h1{short_parts}")).is_err());
    }

    #[test]
    fn runtime_ids() {
        assert!(is_runtime_id("local"));
        assert!(is_runtime_id("a_b-9"));
        assert!(!is_runtime_id(""));
        assert!(!is_runtime_id("a.b"));
        assert!(!is_runtime_id("a~b"));
        assert!(!is_runtime_id("Local"));
        assert!(!is_runtime_id(&"a".repeat(65)));
    }

    proptest! {
        #[test]
        fn round_trips(epoch: u64, seq: u64) {
            let c = Cursor::new(epoch, seq);
            prop_assert_eq!(Cursor::decode(&c.encode()), Ok(c));
        }

        #[test]
        fn encode_is_the_documented_form(epoch: u64, seq: u64) {
            prop_assert_eq!(
                Cursor::new(epoch, seq).encode(),
                format!("c1{epoch:016x}{seq:016x}")
            );
        }

        #[test]
        fn arbitrary_text_never_panics(text in ".{0,64}") {
            let _ = Cursor::decode(&text);
            let _ = HostCursor::decode(&text);
            let _ = HostCursor::decode(&format!("h1~{text}"));
        }
    }
}
