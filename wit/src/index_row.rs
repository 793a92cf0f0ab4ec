//! Worker-index rows: a `WorkerInfo` in a compact binary form, as the host's event
//! store keeps it and as the core takes it back when a runtime opens.
//!
//! Opening a runtime hands the core one row per worker (100,000 of them in a large
//! runtime), so a row decodes without parsing text: a version byte, then the fields in
//! order, integers little-endian, strings as a 4-byte length and UTF-8, options as a
//! 0/1 tag, lists as a 4-byte count. Many rows travel as one byte list ([`push`],
//! [`split`]), each behind its 4-byte length: one copy into the core instead of one
//! per string.

use crate::{Usage, WorkerInfo, WorkerStatus};

const V1: u8 = 1;

/// Appends the row of `info` to `out`.
pub fn encode(info: &WorkerInfo, out: &mut Vec<u8>) {
    // Every field named, so a field added to `WorkerInfo` does not compile until it is
    // stored here too.
    let WorkerInfo {
        id,
        name,
        model,
        system_prompt,
        tools,
        max_steps,
        status,
        created_at_ms,
        current_run,
        run_count,
        message_count,
        usage: Usage {
            input_tokens,
            output_tokens,
        },
        context_tokens,
        request_id,
    } = info;
    out.push(V1);
    put_str(out, id);
    put_str(out, name);
    put_str(out, model);
    put_opt_str(out, system_prompt.as_deref());
    put_u32(out, len32(tools.len()));
    for tool in tools {
        put_str(out, tool);
    }
    put_u32(out, *max_steps);
    out.push(match status {
        WorkerStatus::Idle => 0,
        WorkerStatus::Running => 1,
        WorkerStatus::Stopped => 2,
    });
    out.extend_from_slice(&created_at_ms.to_le_bytes());
    put_opt_str(out, current_run.as_deref());
    put_u32(out, *run_count);
    put_u32(out, *message_count);
    out.extend_from_slice(&input_tokens.to_le_bytes());
    out.extend_from_slice(&output_tokens.to_le_bytes());
    match context_tokens {
        Some(n) => {
            out.push(1);
            put_u32(out, *n);
        }
        None => out.push(0),
    }
    put_opt_str(out, request_id.as_deref());
}

/// The info a row holds; the error says what is wrong with it.
pub fn decode(row: &[u8]) -> Result<WorkerInfo, String> {
    match row.first() {
        Some(&V1) => {
            let mut r = Reader { rest: &row[1..] };
            let info = r.info()?;
            if !r.rest.is_empty() {
                return Err(format!("{} bytes after the row", r.rest.len()));
            }
            Ok(info)
        }
        Some(other) => Err(format!("unknown row version {other}")),
        None => Err("empty row".into()),
    }
}

/// Appends `row` to the row list `rows`.
pub fn push(rows: &mut Vec<u8>, row: &[u8]) {
    put_u32(rows, len32(row.len()));
    rows.extend_from_slice(row);
}

/// The rows of `infos` as one row list.
pub fn encode_all(infos: &[WorkerInfo]) -> Vec<u8> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    for info in infos {
        row.clear();
        encode(info, &mut row);
        push(&mut rows, &row);
    }
    rows
}

/// The rows of a row list, in order; an error (then nothing more) where it is cut.
pub fn split(rows: &[u8]) -> impl Iterator<Item = Result<&[u8], String>> {
    let mut r = Reader { rest: rows };
    std::iter::from_fn(move || {
        if r.rest.is_empty() {
            return None;
        }
        let row = r.u32().and_then(|len| r.take(len as usize));
        if row.is_err() {
            r.rest = &[];
        }
        Some(row)
    })
}

fn len32(n: usize) -> u32 {
    // A string or list this long is refused by the core long before it gets here.
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn put_u32(out: &mut Vec<u8>, n: u32) {
    out.extend_from_slice(&n.to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_u32(out, len32(s.len()));
    out.extend_from_slice(s.as_bytes());
}

fn put_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => {
            out.push(1);
            put_str(out, s);
        }
        None => out.push(0),
    }
}

struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.rest.len() < n {
            return Err("the row ends early".into());
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, String> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(b))
    }

    fn string(&mut self) -> Result<String, String> {
        let len = self.u32()? as usize;
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|e| format!("a string is not UTF-8: {e}"))
    }

    fn tag(&mut self) -> Result<bool, String> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(format!("bad option tag {other}")),
        }
    }

    fn opt_string(&mut self) -> Result<Option<String>, String> {
        if self.tag()? {
            self.string().map(Some)
        } else {
            Ok(None)
        }
    }

    fn info(&mut self) -> Result<WorkerInfo, String> {
        let id = self.string()?;
        let name = self.string()?;
        let model = self.string()?;
        let system_prompt = self.opt_string()?;
        let count = self.u32()? as usize;
        // Each tool name takes at least its 4-byte length: a corrupt count cannot make
        // this allocate more than the row holds.
        let mut tools = Vec::with_capacity(count.min(self.rest.len() / 4));
        for _ in 0..count {
            tools.push(self.string()?);
        }
        let max_steps = self.u32()?;
        let status = match self.u8()? {
            0 => WorkerStatus::Idle,
            1 => WorkerStatus::Running,
            2 => WorkerStatus::Stopped,
            other => return Err(format!("bad status {other}")),
        };
        let created_at_ms = self.u64()?;
        let current_run = self.opt_string()?;
        let run_count = self.u32()?;
        let message_count = self.u32()?;
        let usage = Usage {
            input_tokens: self.u64()?,
            output_tokens: self.u64()?,
        };
        let context_tokens = if self.tag()? { Some(self.u32()?) } else { None };
        let request_id = self.opt_string()?;
        Ok(WorkerInfo {
            id,
            name,
            model,
            system_prompt,
            tools,
            max_steps,
            status,
            created_at_ms,
            current_run,
            run_count,
            message_count,
            usage,
            context_tokens,
            request_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn info() -> impl Strategy<Value = WorkerInfo> {
        let text = "\\PC{0,12}";
        (
            (text, text, text, proptest::option::of(text)),
            proptest::collection::vec(text, 0..4),
            (
                any::<u32>(),
                0u8..3,
                any::<u64>(),
                proptest::option::of(text),
            ),
            (any::<u32>(), any::<u32>(), any::<u64>(), any::<u64>()),
            (
                proptest::option::of(any::<u32>()),
                proptest::option::of(text),
            ),
        )
            .prop_map(
                |(
                    (id, name, model, system_prompt),
                    tools,
                    (max_steps, status, created_at_ms, current_run),
                    (run_count, message_count, input_tokens, output_tokens),
                    (context_tokens, request_id),
                )| WorkerInfo {
                    id,
                    name,
                    model,
                    system_prompt,
                    tools,
                    max_steps,
                    status: [
                        WorkerStatus::Idle,
                        WorkerStatus::Running,
                        WorkerStatus::Stopped,
                    ][status as usize],
                    created_at_ms,
                    current_run,
                    run_count,
                    message_count,
                    usage: Usage {
                        input_tokens,
                        output_tokens,
                    },
                    context_tokens,
                    request_id,
                },
            )
    }

    proptest! {
        #[test]
        fn rows_round_trip(info in info()) {
            let mut row = Vec::new();
            encode(&info, &mut row);
            prop_assert_eq!(decode(&row), Ok(info.clone()));
            let list = encode_all(&[info.clone(), info.clone()]);
            let back: Result<Vec<WorkerInfo>, String> =
                split(&list).map(|r| r.and_then(decode)).collect();
            prop_assert_eq!(back, Ok(vec![info.clone(), info]));
        }

        #[test]
        fn a_cut_or_damaged_row_is_an_error_not_a_panic(info in info(), cut in any::<prop::sample::Index>(), flip in any::<u8>()) {
            let mut row = Vec::new();
            encode(&info, &mut row);
            let at = cut.index(row.len());
            prop_assert!(decode(&row[..at]).is_err());
            row[at] ^= flip;
            let _ = decode(&row);
            let list = encode_all(&[info]);
            prop_assert!(split(&list[..list.len() - 1]).any(|r| r.is_err()));
        }
    }
}
