//! Stream cursors.
//!
//! A cursor names a position in one event log: the log's *epoch* (a random id fixed when
//! its store is created) and a sequence number (the last event the holder has seen; `0`
//! is "before the first event"). On the wire it is an opaque string, so clients cannot
//! build or misread one, and a cursor from another store is recognised by its epoch.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
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
        }
    }
}
