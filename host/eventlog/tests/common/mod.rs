//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::sync::Arc;
use tokio::sync::broadcast::{self, error::TryRecvError};
use yoi_eventlog::{Cursor, Envelope, EventRecord, LogReader, ReplayError};
use yoi_protocol::{Event, FinishReason, StopReason, Usage};

pub fn delta(worker: Option<&str>, n: u64) -> EventRecord {
    record(worker, n, 0)
}

pub fn complete(worker: Option<&str>, n: u64) -> EventRecord {
    record(worker, n, 1)
}

/// A record of one of several kinds: `variant` picks it (even variants are deltas).
pub fn record(worker: Option<&str>, n: u64, variant: u8) -> EventRecord {
    let run_id = format!("r_{n}");
    let event = match variant % 8 {
        0 => Event::TextDelta {
            run_id,
            text: format!("text {n} ünïcødé \"quoted\""),
        },
        1 => Event::TextDone {
            run_id,
            text: format!("done {n}"),
        },
        2 => Event::ReasoningDelta {
            run_id,
            text: format!("thinking {n}"),
        },
        3 => Event::StepFinished {
            run_id,
            step: n as u32,
            finish_reason: FinishReason::Stop,
        },
        4 => Event::ToolCallArgsDelta {
            run_id,
            id: format!("call_{n}"),
            delta: "{\"pa".into(),
        },
        5 => Event::Usage {
            run_id,
            usage: Usage {
                input_tokens: n,
                output_tokens: u64::MAX - n,
            },
        },
        6 => Event::TextDelta {
            run_id,
            text: String::new(),
        },
        _ => Event::RunCompleted {
            run_id,
            stop_reason: StopReason::EndTurn,
        },
    };
    EventRecord {
        worker_id: worker.map(str::to_owned),
        at_ms: 1_700_000_000_000 + n,
        event,
    }
}

/// Everything the receiver has buffered right now.
pub fn drain(rx: &mut broadcast::Receiver<Arc<Envelope>>) -> Vec<Arc<Envelope>> {
    let mut out = Vec::new();
    loop {
        match rx.try_recv() {
            Ok(env) => out.push(env),
            Err(TryRecvError::Empty) | Err(TryRecvError::Closed) => return out,
            Err(e) => panic!("subscriber: {e}"),
        }
    }
}

/// Pages through a replay to the end; returns the events and the final cursor.
pub fn replay_all(
    reader: &LogReader,
    after: Cursor,
    worker: Option<&str>,
    limit: usize,
    store_only: bool,
) -> Result<(Vec<Envelope>, Cursor), ReplayError> {
    let mut out = Vec::new();
    let mut cursor = after;
    loop {
        let page = if store_only {
            reader.replay_from_store(cursor, worker, limit)?
        } else {
            reader.replay(cursor, worker, limit)?
        };
        assert!(page.events.len() <= limit);
        assert!(page.next.seq >= cursor.seq, "the cursor never goes back");
        if page.more {
            assert_eq!(page.events.len(), limit, "a page with more is full");
        }
        if let Some(last) = page.events.last() {
            assert!(page.next.seq >= last.seq);
        }
        out.extend(page.events.iter().map(|e| (**e).clone()));
        cursor = page.next;
        if !page.more {
            return Ok((out, cursor));
        }
        assert!(limit > 0);
    }
}

pub fn expected(all: &[Arc<Envelope>], after: u64, worker: Option<&str>) -> Vec<Envelope> {
    all.iter()
        .filter(|e| e.seq > after)
        .filter(|e| worker.is_none_or(|w| e.worker_id.as_deref() == Some(w)))
        .map(|e| (**e).clone())
        .collect()
}
