//! [`StreamDecoder`]: the `data:` payloads of a chat-completions stream in, yoi
//! [`Completion`]s out. Pure (no I/O), so every quirk is tested on recorded payloads.
//!
//! - Content deltas become text (or, with `think_tags`, text and reasoning split at
//!   `<think>…</think>`); `reasoning_content` and `reasoning` become reasoning.
//! - Tool calls are assembled by `index`: `id` and `name` usually come only with the
//!   first fragment, the arguments across many; calls may interleave (parallel calls).
//!   A fragment without an `index` continues the call with its `id`, else starts a new
//!   call when it names a function, else continues the latest call. A missing `id` is
//!   left to the core, which makes one up.
//! - `finish_reason` is remembered (empty strings and nulls ignored; `stop` with tool
//!   calls present counts as `tool_calls`); usage may come in its own chunk with no
//!   choices. Both are sent at the end: `Usage`, then `ModelDone`.
//! - `[DONE]`, or the end of the stream after a `finish_reason`, ends the call; an
//!   `{"error": ...}` payload fails it; so does the stream ending before either.

use std::collections::BTreeMap;

use serde_json::Value;
use yoi_protocol::{Completion, ErrorInfo, FinishReason, Usage};

use super::chunk::{Chunk, Delta};
use super::errors;
use super::think::{Piece, ThinkSplitter};
use crate::provider::codes;

/// Whether the call goes on after a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    More,
    End,
}

pub(crate) struct StreamDecoder {
    call_id: u64,
    provider: String,
    think: Option<ThinkSplitter>,
    /// Tool calls by the server's index → our index, plus the id each started with.
    tools: BTreeMap<u32, Option<String>>,
    /// The latest tool call's server index (for fragments without one).
    latest_tool: Option<u32>,
    finish: Option<FinishReason>,
    usage: Option<Usage>,
    ended: bool,
}

impl StreamDecoder {
    pub fn new(call_id: u64, provider: &str, think_tags: bool) -> Self {
        StreamDecoder {
            call_id,
            provider: provider.to_string(),
            think: think_tags.then(ThinkSplitter::default),
            tools: BTreeMap::new(),
            latest_tool: None,
            finish: None,
            usage: None,
            ended: false,
        }
    }

    /// One `data:` payload. Completions to send are appended to `out`.
    pub fn push(&mut self, data: &str, out: &mut Vec<Completion>) -> Flow {
        if self.ended {
            return Flow::End;
        }
        let data = data.trim();
        if data == "[DONE]" {
            self.end(out);
            return Flow::End;
        }
        if data.is_empty() {
            return Flow::More;
        }
        let chunk: Chunk = match serde_json::from_str(data) {
            Ok(chunk) => chunk,
            Err(e) => {
                let error = ErrorInfo::new(
                    codes::BAD_RESPONSE,
                    format!(
                        "provider {} sent a stream chunk that is not JSON: {e}",
                        self.provider
                    ),
                );
                return self.fail(error, out);
            }
        };
        if let Some(error) = chunk.error.as_ref().filter(|e| !e.is_null()) {
            let error = errors::stream_error(&self.provider, error);
            return self.fail(error, out);
        }
        self.chunk(chunk, out);
        Flow::More
    }

    /// A whole non-streamed answer (a server that ignored `stream: true`).
    pub fn whole(&mut self, body: &str, out: &mut Vec<Completion>) {
        match serde_json::from_str::<Value>(body) {
            Ok(v) if v.get("error").is_some_and(|e| !e.is_null()) => {
                let error = errors::stream_error(&self.provider, &v["error"]);
                self.fail(error, out);
            }
            Ok(_) => {
                if self.push(body, out) == Flow::More {
                    self.end(out);
                }
            }
            Err(e) => {
                let error = ErrorInfo::new(
                    codes::BAD_RESPONSE,
                    format!(
                        "provider {} answered with something that is not JSON: {e}",
                        self.provider
                    ),
                );
                self.fail(error, out);
            }
        }
    }

    /// The stream ended without `[DONE]`.
    pub fn eof(&mut self, out: &mut Vec<Completion>) {
        if self.ended {
            return;
        }
        if self.finish.is_some() {
            self.end(out);
        } else {
            let error = ErrorInfo::new(
                codes::BAD_RESPONSE,
                format!(
                    "provider {}'s stream ended before the model finished",
                    self.provider
                ),
            );
            self.fail(error, out);
        }
    }

    fn chunk(&mut self, chunk: Chunk, out: &mut Vec<Completion>) {
        if let Some(u) = &chunk.usage {
            let usage = Usage {
                input_tokens: u.prompt_tokens.unwrap_or(0),
                output_tokens: u.completion_tokens.unwrap_or(0),
            };
            if usage != Usage::default() {
                self.usage = Some(usage);
            }
        }
        // Only the first choice is used (yoi asks for one).
        let Some(choice) = chunk
            .choices
            .into_iter()
            .find(|c| c.index.unwrap_or(0) == 0)
        else {
            return;
        };
        if let Some(delta) = choice.delta.or(choice.message) {
            self.delta(delta, out);
        }
        if let Some(reason) = choice.finish_reason.as_deref().map(str::trim) {
            let reason = match reason {
                "" => None,
                "length" | "max_tokens" => Some(FinishReason::Length),
                "tool_calls" | "function_call" | "tool_use" => Some(FinishReason::ToolCalls),
                "content_filter" => Some(FinishReason::ContentFilter),
                // `stop`, `eos`, `end_turn` and anything unknown: the model ended.
                _ => Some(FinishReason::Stop),
            };
            if reason.is_some() {
                self.finish = reason;
            }
        }
    }

    fn delta(&mut self, delta: Delta, out: &mut Vec<Completion>) {
        let call_id = self.call_id;
        for reasoning in [&delta.reasoning_content, &delta.reasoning]
            .into_iter()
            .flatten()
        {
            if !reasoning.is_empty() {
                out.push(Completion::ReasoningDelta {
                    call_id,
                    text: reasoning.clone(),
                });
            }
        }
        if let Some(text) = delta.content_text().filter(|t| !t.is_empty()) {
            match &mut self.think {
                None => out.push(Completion::TextDelta { call_id, text }),
                Some(think) => {
                    let mut pieces = Vec::new();
                    think.push(&text, &mut pieces);
                    out.extend(pieces.into_iter().map(|p| piece(call_id, p)));
                }
            }
        }
        for (position, call) in delta.tool_calls.unwrap_or_default().into_iter().enumerate() {
            let id = call.id.filter(|id| !id.is_empty());
            let (name, arguments) = match &call.function {
                Some(f) => (f.name.clone().filter(|n| !n.is_empty()), f.arguments_text()),
                None => (None, None),
            };
            let index = match call.index {
                Some(index) => index,
                None => self.index_without_one(id.as_deref(), name.is_some(), position),
            };
            let first = !self.tools.contains_key(&index);
            if first {
                self.tools.insert(index, id.clone());
            }
            self.latest_tool = Some(index);
            let arguments = arguments.unwrap_or_default();
            if first || name.is_some() || !arguments.is_empty() {
                out.push(Completion::ToolCallDelta {
                    call_id,
                    index,
                    id: if first { id } else { None },
                    name,
                    arguments,
                });
            }
        }
    }

    /// Where a fragment without an `index` belongs (see the module docs).
    fn index_without_one(&self, id: Option<&str>, names_function: bool, position: usize) -> u32 {
        if let Some(id) = id
            && let Some((&index, _)) = self
                .tools
                .iter()
                .find(|(_, known)| known.as_deref() == Some(id))
        {
            return index;
        }
        let next = self.tools.keys().next_back().map_or(0, |i| i + 1);
        if id.is_some() || names_function {
            return next.max(u32::try_from(position).unwrap_or(u32::MAX));
        }
        self.latest_tool.unwrap_or(next)
    }

    fn end(&mut self, out: &mut Vec<Completion>) {
        self.ended = true;
        if let Some(think) = &mut self.think {
            let mut pieces = Vec::new();
            think.finish(&mut pieces);
            out.extend(pieces.into_iter().map(|p| piece(self.call_id, p)));
        }
        if let Some(usage) = self.usage {
            out.push(Completion::Usage {
                call_id: self.call_id,
                usage,
            });
        }
        let mut finish_reason = self.finish.unwrap_or(FinishReason::Stop);
        if !self.tools.is_empty() && finish_reason == FinishReason::Stop {
            finish_reason = FinishReason::ToolCalls;
        }
        out.push(Completion::ModelDone {
            call_id: self.call_id,
            finish_reason,
        });
    }

    fn fail(&mut self, error: ErrorInfo, out: &mut Vec<Completion>) -> Flow {
        self.ended = true;
        out.push(Completion::ModelFailed {
            call_id: self.call_id,
            error,
        });
        Flow::End
    }
}

fn piece(call_id: u64, piece: Piece) -> Completion {
    match piece {
        Piece::Text(text) => Completion::TextDelta { call_id, text },
        Piece::Reasoning(text) => Completion::ReasoningDelta { call_id, text },
    }
}
