//! One call into a plugin: its status and answer read into a typed result, and the
//! answer's bytes given back to the plugin.

use yoi_policy::abi::{FreeFn, OutBytes, Status};

/// Why a call into a plugin produced no usable answer. The host fails closed on every
/// one of them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The plugin reported a failure (e.g. settings it refuses).
    #[error("the plugin failed: {0}")]
    Failed(String),
    /// The plugin panicked (caught inside it).
    #[error("the plugin panicked: {0}")]
    Panicked(String),
    /// The plugin could not read what the host sent.
    #[error("the plugin could not read its input: {0}")]
    RejectedInput(String),
    /// A status the ABI does not define.
    #[error("the plugin answered the unknown status {0}")]
    UnknownStatus(u32),
    /// An answer the host cannot use: a null pointer with a length, bytes that are not
    /// the JSON the call answers.
    #[error("the plugin's answer is unusable: {0}")]
    BadAnswer(String),
}

impl CallError {
    /// A short label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            CallError::Failed(_) => "failed",
            CallError::Panicked(_) => "panicked",
            CallError::RejectedInput(_) => "rejected_input",
            CallError::UnknownStatus(_) => "unknown_status",
            CallError::BadAnswer(_) => "bad_answer",
        }
    }
}

/// Answers longer than this are refused unread: no policy answer is near it, so such a
/// length is garbage.
const MAX_ANSWER_BYTES: usize = 256 << 20;

/// The most of a plugin's message that goes into an error.
const MAX_MESSAGE_CHARS: usize = 1000;

/// Calls `f` with a place for the answer, reads the answer with `read` while it is still
/// the plugin's, then gives it back through `free`.
///
/// # Safety
///
/// `f` must be a call into the plugin whose `free` this is, per the ABI: on return the
/// answer is null or `len` readable bytes of the plugin's.
pub(crate) unsafe fn call<T>(
    free: FreeFn,
    f: impl FnOnce(*mut OutBytes) -> Status,
    read: impl FnOnce(&[u8]) -> Result<T, String>,
) -> Result<T, CallError> {
    /// Gives the answer back even if reading it unwinds.
    struct Answer {
        bytes: OutBytes,
        free: FreeFn,
    }
    impl Drop for Answer {
        fn drop(&mut self) {
            if !self.bytes.ptr.is_null() {
                let bytes = std::mem::replace(&mut self.bytes, OutBytes::EMPTY);
                // SAFETY: the plugin's own bytes, returned once.
                unsafe { (self.free)(bytes) };
            }
        }
    }

    let mut answer = Answer {
        bytes: OutBytes::EMPTY,
        free,
    };
    let status = f(&mut answer.bytes);
    let OutBytes { ptr, len } = answer.bytes;
    let bytes: Result<&[u8], String> = if ptr.is_null() {
        match len {
            0 => Ok(&[]),
            _ => Err(format!("a null pointer with the length {len}")),
        }
    } else if len > MAX_ANSWER_BYTES {
        Err(format!("an answer of {len} bytes"))
    } else {
        // SAFETY: the caller's contract; the bytes stay valid until `answer` drops.
        Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
    };
    let bytes = bytes.map_err(CallError::BadAnswer)?;
    match status {
        Status::OK => read(bytes).map_err(CallError::BadAnswer),
        Status::PLUGIN_ERROR => Err(CallError::Failed(message(bytes))),
        Status::PANIC => Err(CallError::Panicked(message(bytes))),
        Status::BAD_INPUT => Err(CallError::RejectedInput(message(bytes))),
        Status(other) => Err(CallError::UnknownStatus(other)),
    }
}

/// A plugin's message, as text of bounded length.
fn message(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    match text.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.into_owned(),
    }
}

/// Reads a JSON answer.
pub(crate) fn json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    serde_json::from_slice(bytes).map_err(|e| {
        let shown = message(&bytes[..bytes.len().min(200)]);
        format!("not the expected JSON ({e}): {shown:?}")
    })
}
