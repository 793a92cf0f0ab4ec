//! The encoding of a *block*: up to [`BLOCK_EVENTS`] events (and about [`BLOCK_BYTES`])
//! of one append, stored as one row. One row per event cost SQLite a B-tree insert and five bound parameters per
//! event, most of an append's time; a block costs one insert per few hundred events.
//!
//! A block is a sequence of frames, one per event, in `seq` order:
//!
//! | field | bytes |
//! |---|---|
//! | `seq` | 8, little-endian |
//! | `at_ms` | 8, little-endian |
//! | flags | 1: bit 0 = a delta event ([`Event::is_delta`]), bit 1 = has a worker |
//! | worker id | 4 (length, little-endian) + UTF-8, only with flag bit 1 |
//! | event | 4 (length, little-endian) + the event's JSON |
//!
//! Reads filter frames on `seq` and worker without parsing the JSON of the others.

use crate::error::LogError;
use yoi_protocol::{Envelope, Event};

/// Most events in one block (one row). A replay page reads whole rows, so this also
/// bounds what a page reads past what it returns.
pub(crate) const BLOCK_EVENTS: usize = 256;

/// A block is also closed once it holds this many bytes, so big events (whole texts,
/// tool outputs) never add up past SQLite's limit for one value (1 GB) or make rows huge.
pub(crate) const BLOCK_BYTES: usize = 1 << 20;

/// Whether a block of `events` frames in `bytes` is complete. A block always takes at
/// least one event, however big.
fn is_full(events: usize, bytes: usize) -> bool {
    events >= BLOCK_EVENTS || bytes >= BLOCK_BYTES
}

const DELTA: u8 = 1;
const HAS_WORKER: u8 = 2;

/// Cuts a run of frames into blocks ([`is_full`]), the one place that decides where a
/// block ends. `next` appends the next frame to the buffer and returns its `seq` (`None`
/// when there are no more); `store` gets each finished block as
/// `(first_seq, last_seq, frames)`.
pub(crate) fn cut_blocks(
    buf: &mut Vec<u8>,
    mut next: impl FnMut(&mut Vec<u8>) -> Result<Option<u64>, LogError>,
    mut store: impl FnMut(u64, u64, &[u8]) -> Result<(), LogError>,
) -> Result<(), LogError> {
    buf.clear();
    let mut span: Option<(u64, u64)> = None;
    let mut events = 0;
    while let Some(seq) = next(buf)? {
        let first = span.map_or(seq, |s| s.0);
        span = Some((first, seq));
        events += 1;
        if is_full(events, buf.len()) {
            store(first, seq, buf)?;
            buf.clear();
            span = None;
            events = 0;
        }
    }
    if let Some((first, last)) = span {
        store(first, last, buf)?;
        buf.clear();
    }
    Ok(())
}

/// Appends the frame of `env` to `out`.
pub(crate) fn encode(env: &Envelope, out: &mut Vec<u8>) -> Result<(), LogError> {
    let worker = env.worker_id.as_deref().map(str::as_bytes);
    encode_raw(
        env.seq,
        env.at_ms,
        env.event.is_delta(),
        worker,
        out,
        |out| serde_json::to_writer(out, &env.event).map_err(|e| LogError::Encode(e.to_string())),
    )
}

/// Appends a frame whose event JSON is already encoded (migrating older stores, copying
/// a frame).
pub(crate) fn encode_json(
    seq: u64,
    at_ms: u64,
    delta: bool,
    worker: Option<&[u8]>,
    json: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), LogError> {
    encode_raw(seq, at_ms, delta, worker, out, |out| {
        out.extend_from_slice(json);
        Ok(())
    })
}

/// The one writer of the frame layout; `body` appends the event's JSON.
fn encode_raw(
    seq: u64,
    at_ms: u64,
    delta: bool,
    worker: Option<&[u8]>,
    out: &mut Vec<u8>,
    body: impl FnOnce(&mut Vec<u8>) -> Result<(), LogError>,
) -> Result<(), LogError> {
    let flags = if delta { DELTA } else { 0 } | if worker.is_some() { HAS_WORKER } else { 0 };
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&at_ms.to_le_bytes());
    out.push(flags);
    if let Some(worker) = worker {
        out.extend_from_slice(&length(worker.len(), seq)?.to_le_bytes());
        out.extend_from_slice(worker);
    }
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    body(out)?;
    let len = length(out.len() - at - 4, seq)?;
    out[at..at + 4].copy_from_slice(&len.to_le_bytes());
    Ok(())
}

fn length(len: usize, seq: u64) -> Result<u32, LogError> {
    u32::try_from(len).map_err(|_| LogError::Encode(format!("event {seq} is over 4 GiB")))
}

/// One decoded frame, borrowing the block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Frame<'a> {
    pub seq: u64,
    pub at_ms: u64,
    pub delta: bool,
    pub worker: Option<&'a [u8]>,
    pub json: &'a [u8],
}

impl Frame<'_> {
    /// Whether this frame belongs to `worker` (any frame when `None`).
    pub fn is_of(&self, worker: Option<&str>) -> bool {
        worker.is_none_or(|w| self.worker == Some(w.as_bytes()))
    }

    /// The frame as an envelope (parses the event).
    pub fn envelope(&self) -> Result<Envelope, LogError> {
        let corrupt = |message: String| LogError::Corrupt {
            seq: self.seq,
            message,
        };
        let worker_id = match self.worker {
            Some(w) => Some(
                std::str::from_utf8(w)
                    .map_err(|e| corrupt(format!("worker id: {e}")))?
                    .to_string(),
            ),
            None => None,
        };
        let event: Event = serde_json::from_slice(self.json).map_err(|e| corrupt(e.to_string()))?;
        Ok(Envelope {
            seq: self.seq,
            worker_id,
            at_ms: self.at_ms,
            event,
        })
    }

    /// Appends this frame unchanged to `out` (rewriting a block without some frames).
    pub fn copy_to(&self, out: &mut Vec<u8>) -> Result<(), LogError> {
        encode_json(
            self.seq,
            self.at_ms,
            self.delta,
            self.worker,
            self.json,
            out,
        )
    }
}

/// The frames of a block, in order. A truncated or malformed block yields one
/// [`LogError::Corrupt`] (naming the block's first `seq`) and then ends.
pub(crate) fn frames(block: &[u8], block_seq: u64) -> Frames<'_> {
    Frames {
        rest: block,
        block_seq,
    }
}

pub(crate) struct Frames<'a> {
    rest: &'a [u8],
    block_seq: u64,
}

impl<'a> Frames<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.rest.len() < n {
            return None;
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Some(head)
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn sized(&mut self) -> Option<&'a [u8]> {
        let len = u32::from_le_bytes(self.take(4)?.try_into().ok()?);
        self.take(len as usize)
    }

    fn frame(&mut self) -> Option<Frame<'a>> {
        let seq = self.u64()?;
        let at_ms = self.u64()?;
        let flags = *self.take(1)?.first()?;
        if flags & !(DELTA | HAS_WORKER) != 0 {
            return None;
        }
        let worker = if flags & HAS_WORKER != 0 {
            Some(self.sized()?)
        } else {
            None
        };
        let json = self.sized()?;
        Some(Frame {
            seq,
            at_ms,
            delta: flags & DELTA != 0,
            worker,
            json,
        })
    }
}

impl<'a> Iterator for Frames<'a> {
    type Item = Result<Frame<'a>, LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        match self.frame() {
            Some(frame) => Some(Ok(frame)),
            None => {
                self.rest = &[];
                Some(Err(LogError::Corrupt {
                    seq: self.block_seq,
                    message: "malformed event block".into(),
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(seq: u64, worker: Option<&str>, delta: bool) -> Envelope {
        let (run_id, text) = ("r_1".to_string(), "tok\n\"quoted\" ünï".to_string());
        Envelope {
            seq,
            worker_id: worker.map(Into::into),
            at_ms: 1_700_000_000_000 + seq,
            event: if delta {
                Event::TextDelta { run_id, text }
            } else {
                Event::TextDone { run_id, text }
            },
        }
    }

    #[test]
    fn frames_round_trip_with_and_without_worker() {
        let envs = [
            envelope(7, Some("w_1"), true),
            envelope(8, None, false),
            envelope(u64::MAX >> 1, Some(""), false),
        ];
        let mut block = Vec::new();
        for env in &envs {
            encode(env, &mut block).unwrap();
        }
        let frames: Vec<Frame<'_>> = frames(&block, 7).map(Result::unwrap).collect();
        assert_eq!(frames.len(), 3);
        assert!(frames[0].delta && !frames[1].delta);
        assert!(frames[0].is_of(Some("w_1")) && !frames[0].is_of(Some("w_2")));
        assert!(!frames[1].is_of(Some("w_1")) && frames[1].is_of(None));
        let back: Vec<Envelope> = frames.iter().map(|f| f.envelope().unwrap()).collect();
        assert_eq!(back, envs);

        let mut copied = Vec::new();
        for f in &frames {
            f.copy_to(&mut copied).unwrap();
        }
        assert_eq!(copied, block, "a copied frame is byte for byte the same");
    }

    #[test]
    fn a_cut_or_garbled_block_is_a_typed_error_not_a_panic() {
        let mut block = Vec::new();
        encode(&envelope(3, Some("w_1"), true), &mut block).unwrap();
        encode(&envelope(4, Some("w_1"), false), &mut block).unwrap();
        for cut in 0..block.len() {
            let got: Vec<_> = frames(&block[..cut], 3).collect();
            let bad = got.iter().filter(|f| f.is_err()).count();
            // Whole frames before the cut decode; a partial one is one error, then the end.
            assert!(bad <= 1 && got.last().is_none_or(|f| f.is_ok() || bad == 1));
            if let Some(Err(LogError::Corrupt { seq, .. })) = got.last() {
                assert_eq!(*seq, 3);
            }
        }
        let mut flags = block.clone();
        flags[16] = 0x80;
        assert!(matches!(
            frames(&flags, 3).next(),
            Some(Err(LogError::Corrupt { .. }))
        ));
        let mut json = Vec::new();
        encode_json(5, 0, false, None, b"{not json", &mut json).unwrap();
        let frame = frames(&json, 5).next().unwrap().unwrap();
        assert!(matches!(
            frame.envelope(),
            Err(LogError::Corrupt { seq: 5, .. })
        ));
    }
}
