//! Estimated sizes of what crosses the component boundary or stays in memory.
//!
//! The estimate is the bytes of every string plus a fixed overhead per item, which is
//! what the canonical ABI copies (strings dominate) and what a resident transcript
//! holds. Byte budgets (per call, per request, resident transcripts) are counted in it,
//! by the core and by the host alike.

use crate::{Completion, Effect, Envelope, Event, EventRecord, Message, ModelRequest, WorkerInfo};

/// Fixed cost of one item (headers, small fields, allocation overhead).
const ITEM: u64 = 64;

fn len(s: &str) -> u64 {
    s.len() as u64
}

fn opt(s: &Option<String>) -> u64 {
    s.as_deref().map_or(0, len)
}

/// One transcript message.
pub fn message(m: &Message) -> u64 {
    let calls: u64 = m
        .tool_calls
        .iter()
        .map(|c| ITEM + len(&c.id) + len(&c.name) + len(&c.arguments))
        .sum();
    ITEM + len(&m.content) + opt(&m.reasoning) + calls + opt(&m.tool_call_id) + len(&m.run_id)
}

/// A worker's public info.
pub fn info(i: &WorkerInfo) -> u64 {
    let tools: u64 = i.tools.iter().map(|t| 16 + len(t)).sum();
    4 * ITEM
        + len(&i.id)
        + len(&i.name)
        + len(&i.model)
        + opt(&i.system_prompt)
        + tools
        + opt(&i.current_run)
        + opt(&i.request_id)
}

/// One event record.
pub fn event(r: &EventRecord) -> u64 {
    ITEM + opt(&r.worker_id) + event_body(&r.event)
}

/// One numbered event (as streams and replay pages carry it).
pub fn envelope(e: &Envelope) -> u64 {
    ITEM + opt(&e.worker_id) + event_body(&e.event)
}

fn event_body(event: &Event) -> u64 {
    match event {
        Event::WorkerCreated { worker } => info(worker),
        Event::InputAccepted {
            run_id,
            text,
            request_id,
        } => len(run_id) + len(text) + opt(request_id),
        Event::ReasoningDelta { run_id, text }
        | Event::ReasoningDone { run_id, text }
        | Event::TextDelta { run_id, text }
        | Event::TextDone { run_id, text } => len(run_id) + len(text),
        Event::ToolCallStarted { run_id, id, name } => len(run_id) + len(id) + len(name),
        Event::ToolCallArgsDelta { run_id, id, delta } => len(run_id) + len(id) + len(delta),
        Event::ToolCallReady {
            run_id,
            id,
            name,
            arguments,
        } => len(run_id) + len(id) + len(name) + len(arguments),
        Event::ToolResult {
            run_id,
            id,
            name,
            output,
            ..
        } => len(run_id) + len(id) + len(name) + len(output),
        Event::RunFailed { run_id, error } => len(run_id) + len(&error.code) + len(&error.message),
        Event::Diagnostic { code, message, .. } => len(code) + len(message),
        Event::WorkerDeleted { name } => len(name),
        other => other.run_id().map_or(0, len),
    }
}

/// A model request with its messages.
pub fn model_request(r: &ModelRequest) -> u64 {
    let tools: u64 = r.tools.iter().map(|t| 16 + len(t)).sum();
    let messages: u64 = r.messages.iter().map(message).sum();
    2 * ITEM
        + len(&r.worker_id)
        + len(&r.run_id)
        + len(&r.model)
        + opt(&r.system_prompt)
        + tools
        + messages
}

/// One effect.
pub fn effect(e: &Effect) -> u64 {
    match e {
        Effect::CallModel(r) => model_request(r),
        Effect::CallTool(r) => {
            ITEM + len(&r.worker_id)
                + len(&r.run_id)
                + len(&r.tool_call_id)
                + len(&r.name)
                + len(&r.arguments)
        }
        Effect::Abort { .. } => ITEM,
    }
}

/// One completion.
pub fn completion(c: &Completion) -> u64 {
    let body = match c {
        Completion::TextDelta { text, .. } | Completion::ReasoningDelta { text, .. } => len(text),
        Completion::ToolCallDelta {
            id,
            name,
            arguments,
            ..
        } => opt(id) + opt(name) + len(arguments),
        Completion::ModelFailed { error, .. } => len(&error.code) + len(&error.message),
        Completion::ToolDone { output, .. } => len(output),
        Completion::Usage { .. } | Completion::ModelDone { .. } => 0,
    };
    ITEM + body
}

/// How many leading items of `items` fit `budget` bytes by `size`: at least one (an
/// item larger than the budget goes alone), at most `max`.
pub fn fitting<T>(
    items: impl IntoIterator<Item = T>,
    max: usize,
    budget: u64,
    size: impl Fn(&T) -> u64,
) -> usize {
    let mut used = 0u64;
    let mut n = 0;
    for item in items.into_iter().take(max) {
        let s = size(&item);
        if n > 0 && used.saturating_add(s) > budget {
            break;
        }
        used = used.saturating_add(s);
        n += 1;
    }
    n
}
