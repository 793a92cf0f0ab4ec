//! `scripted`: a deterministic, offline model for demos, tests and benchmarks.
//!
//! It is **not** a language model. It answers from a handful of fixed rules, says so in
//! its answers, and produces exactly the same completions for the same request, so
//! tests can assert on them and benchmarks can ask for a known amount of output. It
//! needs no network and no credentials.
//!
//! # What it recognises
//!
//! The model looks at the **last user message** only (trimmed; keywords are matched
//! case-insensitively, names and text keep their case):
//!
//! | message | tool call (if the tool is in `request.tools`) |
//! |---|---|
//! | `ls`, or any message containing `list files` | `list_dir {"path":"."}` |
//! | `read NAME` | `read_file {"path":"NAME"}` |
//! | `write NAME: TEXT` | `write_file {"path":"NAME","content":"TEXT"}` (TEXT may span lines) |
//! | `search WORD` | `search {"query":"WORD"}` |
//! | `stream N` | no tool: an answer of exactly `N` text deltas (capped by [`ScriptedConfig::max_stream_tokens`]) |
//!
//! NAME and WORD are the rest of the first line, with surrounding quotes or backticks
//! removed. A tool call is streamed as [`Completion::ToolCallDelta`]s: the first
//! fragment carries the call id (`call_1`, `call_2`, ... counting the tool calls already
//! in the transcript, so ids are unique within a conversation) and the tool name, the
//! next few carry the JSON arguments in pieces; the call finishes with
//! [`FinishReason::ToolCalls`]. When the tool is not enabled for the worker, the model
//! instead answers in text that the tool is not enabled (and lists the enabled ones).
//!
//! When the transcript ends with tool results (`tool` messages after the last user
//! message), the model answers by quoting what the tools returned (each output cut to
//! [`ScriptedConfig::quote_limit`] bytes) and finishes with [`FinishReason::Stop`], so a
//! tool request takes exactly two model steps.
//!
//! Anything else gets a friendly greeting that echoes the input and says this is the
//! scripted demo model. With [`ScriptedConfig::filler`] set, that greeting is replaced
//! by a run of exactly `filler` text deltas (for benchmarks).
//!
//! # What it emits
//!
//! With [`ScriptedConfig::context_tokens`] set, a prompt of more words than that fails
//! at once with `context_length`, as a real model's server refuses a prompt longer than
//! its window.
//!
//! In order: reasoning deltas (when [`ScriptedConfig::reasoning`] is on), then either
//! text deltas or tool-call fragments, then one `Usage`, then `ModelDone`. Reasoning and
//! text are streamed token by token, a token being a word with the whitespace that
//! follows it, so concatenating the deltas gives the exact text. Usage reports
//! `input_tokens` = the number of whitespace-separated words in the system prompt and
//! all message contents, and `output_tokens` = the number of deltas emitted.
//!
//! [`ScriptedModel::plan`] is the pure core (request in, completions out);
//! [`ScriptedModel::stream`] sends that plan to a channel with a delay between deltas;
//! the [`Provider`] implementation streams with [`ScriptedConfig::token_delay`].

use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;
use yoi_protocol::{Completion, ErrorInfo, FinishReason, Message, ModelRequest, Role, Usage};

use crate::provider::{BoxFuture, Provider, codes};

/// The model name under which the scripted model is usually registered.
pub const MODEL_NAME: &str = "scripted";

/// How the scripted model behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptedConfig {
    /// Stream a short reasoning text before every answer or tool call. Default: on.
    pub reasoning: bool,
    /// Pause between two deltas when used as a [`Provider`]. Default: zero (no
    /// sleeping at all, as fast as the receiver takes them).
    pub token_delay: Duration,
    /// When set, the greeting answer is replaced by exactly this many text deltas
    /// (tool calls and tool-result answers are unchanged). Default: unset.
    pub filler: Option<usize>,
    /// Upper bound on the deltas of a `stream N` request or a filler answer. Default:
    /// 100,000.
    pub max_stream_tokens: usize,
    /// How many bytes of each tool output an answer quotes. Default: 2,000.
    pub quote_limit: usize,
    /// The model's context window, in its tokens (words): like a real model, it refuses
    /// a longer prompt with `context_length`. Default: unlimited.
    pub context_tokens: Option<u64>,
}

impl Default for ScriptedConfig {
    fn default() -> Self {
        ScriptedConfig {
            reasoning: true,
            token_delay: Duration::ZERO,
            filler: None,
            max_stream_tokens: 100_000,
            quote_limit: 2_000,
            context_tokens: None,
        }
    }
}

impl ScriptedConfig {
    /// The defaults with a delay between deltas that reads well in a terminal demo.
    pub fn demo() -> Self {
        ScriptedConfig {
            token_delay: Duration::from_millis(30),
            ..ScriptedConfig::default()
        }
    }
}

/// A tool call the scripted model decided to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedToolCall {
    pub id: String,
    pub name: String,
    /// JSON object text.
    pub arguments: String,
}

/// What the scripted model answers to a request, before it is cut into deltas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Reasoning text (empty when reasoning is off).
    pub reasoning: String,
    /// Answer text (empty when the reply is a tool call).
    pub text: String,
    /// The tool call, if the reply is one.
    pub tool_call: Option<PlannedToolCall>,
    pub finish_reason: FinishReason,
}

/// The `stream` receiver was dropped before the call finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the completion receiver was dropped")]
pub struct ReceiverDropped;

/// The scripted model (see the module documentation).
#[derive(Debug, Clone, Default)]
pub struct ScriptedModel {
    config: ScriptedConfig,
}

impl ScriptedModel {
    pub fn new(config: ScriptedConfig) -> Self {
        ScriptedModel { config }
    }

    pub fn config(&self) -> &ScriptedConfig {
        &self.config
    }

    /// Decides what to answer: the reasoning, the text or tool call, and the finish
    /// reason. Pure and deterministic.
    pub fn reply(&self, request: &ModelRequest) -> Reply {
        let (reasoning, answer) = self.decide(request);
        let reasoning = if self.config.reasoning {
            reasoning
        } else {
            String::new()
        };
        match answer {
            Answer::Text(text) => Reply {
                reasoning,
                text,
                tool_call: None,
                finish_reason: FinishReason::Stop,
            },
            Answer::Call { name, arguments } => Reply {
                reasoning,
                text: String::new(),
                tool_call: Some(PlannedToolCall {
                    id: format!("call_{}", tool_calls_so_far(&request.messages) + 1),
                    name: name.to_string(),
                    arguments,
                }),
                finish_reason: FinishReason::ToolCalls,
            },
        }
    }

    /// Everything the call produces, in order: reasoning deltas, text deltas or
    /// tool-call fragments, `Usage`, `ModelDone`. Pure and deterministic.
    pub fn plan(&self, request: &ModelRequest) -> Vec<Completion> {
        let call_id = request.call_id;
        let prompt = input_words(request);
        if let Some(window) = self.config.context_tokens
            && prompt > window
        {
            let error = ErrorInfo::new(
                codes::CONTEXT_LENGTH,
                format!("the prompt has {prompt} tokens; the scripted model's window is {window}"),
            );
            return vec![Completion::ModelFailed { call_id, error }];
        }
        let reply = self.reply(request);
        let mut out = Vec::new();
        for token in tokens(&reply.reasoning) {
            out.push(Completion::ReasoningDelta {
                call_id,
                text: token.to_string(),
            });
        }
        for token in tokens(&reply.text) {
            out.push(Completion::TextDelta {
                call_id,
                text: token.to_string(),
            });
        }
        if let Some(call) = reply.tool_call {
            out.push(Completion::ToolCallDelta {
                call_id,
                index: 0,
                id: Some(call.id),
                name: Some(call.name),
                arguments: String::new(),
            });
            for piece in split_pieces(&call.arguments, 3) {
                out.push(Completion::ToolCallDelta {
                    call_id,
                    index: 0,
                    id: None,
                    name: None,
                    arguments: piece.to_string(),
                });
            }
        }
        let usage = Usage {
            input_tokens: prompt,
            output_tokens: out.len() as u64,
        };
        out.push(Completion::Usage { call_id, usage });
        out.push(Completion::ModelDone {
            call_id,
            finish_reason: reply.finish_reason,
        });
        out
    }

    /// Sends [`plan`](Self::plan) to `sink`, waiting `delay` before every delta but the
    /// first (`Usage` and `ModelDone` follow the last delta at once). A zero delay never
    /// sleeps. Returns [`ReceiverDropped`] as soon as the receiver is gone, including
    /// while waiting between deltas. Dropping the future at any point is safe.
    pub async fn stream(
        &self,
        request: &ModelRequest,
        sink: &mpsc::Sender<Completion>,
        delay: Duration,
    ) -> Result<(), ReceiverDropped> {
        let mut first = true;
        for completion in self.plan(request) {
            let delta = matches!(
                completion,
                Completion::ReasoningDelta { .. }
                    | Completion::TextDelta { .. }
                    | Completion::ToolCallDelta { .. }
            );
            if delta && !first && !delay.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = sink.closed() => return Err(ReceiverDropped),
                }
            }
            first &= !delta;
            sink.send(completion).await.map_err(|_| ReceiverDropped)?;
        }
        Ok(())
    }

    fn decide(&self, request: &ModelRequest) -> (String, Answer) {
        let last_user = request.messages.iter().rposition(|m| m.role == Role::User);
        let after_user = last_user.map_or(&request.messages[..], |i| &request.messages[i + 1..]);
        if matches!(after_user.last(), Some(m) if m.role == Role::Tool) {
            return self.answer_tool_results(request, after_user);
        }
        let input = last_user.map_or("", |i| request.messages[i].content.as_str());
        match recognise(input) {
            Some(Intent::Stream(n)) => {
                let n = n.min(self.config.max_stream_tokens);
                (
                    format!(
                        "The user asked for a stream of {n} tokens, so I will produce exactly that many."
                    ),
                    Answer::Text(filler_text(n)),
                )
            }
            Some(Intent::Tool {
                name,
                arguments,
                what,
            }) => {
                if request.tools.iter().any(|t| t == name) {
                    (
                        format!(
                            "The user asked me to {what}. The `{name}` tool is enabled for this worker, so I will call it."
                        ),
                        Answer::Call { name, arguments },
                    )
                } else {
                    let enabled = if request.tools.is_empty() {
                        "none".to_string()
                    } else {
                        request
                            .tools
                            .iter()
                            .map(|t| format!("`{t}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    };
                    (
                        format!(
                            "The user asked me to {what}. That needs the `{name}` tool, which this worker does not have."
                        ),
                        Answer::Text(format!(
                            "I would use the `{name}` tool to {what}, but that tool is not enabled for this worker. Enabled tools: {enabled}. (I am the scripted demo model of yoi.)"
                        )),
                    )
                }
            }
            None => self.greet(input),
        }
    }

    fn greet(&self, input: &str) -> (String, Answer) {
        if let Some(n) = self.config.filler {
            let n = n.min(self.config.max_stream_tokens);
            return (
                format!("Filler mode is on, so I answer with {n} tokens."),
                Answer::Text(filler_text(n)),
            );
        }
        let words = input.split_whitespace().count();
        let reasoning = format!(
            "The user wrote {words} word{}. Nothing in it asks for a tool, so I give my usual scripted answer.",
            if words == 1 { "" } else { "s" }
        );
        let input = input.trim();
        let echo = if input.is_empty() {
            "You did not say anything.".to_string()
        } else {
            format!("You said: \"{}\".", cut(input, 200))
        };
        let text = format!(
            "Hello! I am the scripted demo model of yoi: deterministic and offline, not a real language model. {echo} I understand \"list files\", \"read NAME\", \"write NAME: TEXT\", \"search WORD\" and \"stream N\"."
        );
        (reasoning, Answer::Text(text))
    }

    fn answer_tool_results(
        &self,
        request: &ModelRequest,
        after_user: &[Message],
    ) -> (String, Answer) {
        let first_result = after_user
            .iter()
            .rposition(|m| m.role != Role::Tool)
            .map_or(0, |i| i + 1);
        let results = &after_user[first_result..];
        let mut text = String::new();
        for (i, result) in results.iter().enumerate() {
            if i > 0 {
                text.push_str("\n\n");
            }
            let name = result
                .tool_call_id
                .as_deref()
                .and_then(|id| tool_name(&request.messages, id))
                .unwrap_or("tool");
            let output = result.content.trim_end();
            if result.is_error {
                text.push_str(&format!("The `{name}` tool reported an error:\n\n"));
            } else {
                text.push_str(&format!("Here is what the `{name}` tool returned:\n\n"));
            }
            if output.is_empty() {
                text.push_str("(no output)");
            } else {
                text.push_str(&fenced(&quote(output, self.config.quote_limit)));
            }
        }
        let reasoning = format!(
            "{} tool result{} came back. I will show {} to the user.",
            results.len(),
            if results.len() == 1 { "" } else { "s" },
            if results.len() == 1 { "it" } else { "them" }
        );
        (reasoning, Answer::Text(text))
    }
}

impl Provider for ScriptedModel {
    fn call<'a>(
        &'a self,
        request: ModelRequest,
        out: mpsc::Sender<Completion>,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            // A dropped receiver means nobody waits for the answer: nothing to report.
            let _ = self.stream(&request, &out, self.config.token_delay).await;
        })
    }
}

enum Answer {
    Text(String),
    Call {
        name: &'static str,
        arguments: String,
    },
}

enum Intent {
    Tool {
        name: &'static str,
        arguments: String,
        /// "read `x`", for the reasoning and the not-enabled answer.
        what: String,
    },
    Stream(usize),
}

#[derive(Serialize)]
struct PathArgs<'a> {
    path: &'a str,
}

#[derive(Serialize)]
struct WriteArgs<'a> {
    path: &'a str,
    content: &'a str,
}

#[derive(Serialize)]
struct SearchArgs<'a> {
    query: &'a str,
}

fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("string-only structs always serialise")
}

/// Recognises a request in the text of the last user message.
fn recognise(input: &str) -> Option<Intent> {
    let input = input.trim();
    if let Some(rest) = strip_keyword(input, "read") {
        let name = unquote(first_line(rest));
        if !name.is_empty() {
            return Some(Intent::Tool {
                name: "read_file",
                arguments: json(&PathArgs { path: name }),
                what: format!("read `{name}`"),
            });
        }
    }
    if let Some(rest) = strip_keyword(input, "write")
        && let Some((name, content)) = rest.split_once(':')
    {
        let name = unquote(name.trim());
        let content = content.strip_prefix(' ').unwrap_or(content);
        if !name.is_empty() && !name.contains('\n') {
            return Some(Intent::Tool {
                name: "write_file",
                arguments: json(&WriteArgs {
                    path: name,
                    content,
                }),
                what: format!("write {} bytes to `{name}`", content.len()),
            });
        }
    }
    if let Some(rest) = strip_keyword(input, "search") {
        let word = unquote(first_line(rest));
        if !word.is_empty() {
            return Some(Intent::Tool {
                name: "search",
                arguments: json(&SearchArgs { query: word }),
                what: format!("search the workspace for `{word}`"),
            });
        }
    }
    if let Some(rest) = strip_keyword(input, "stream")
        && let Ok(n) = first_line(rest).parse::<usize>()
    {
        return Some(Intent::Stream(n));
    }
    let bare = input.trim_end_matches(['.', '!', '?']).trim_end();
    if bare.eq_ignore_ascii_case("ls") || bare.to_lowercase().contains("list files") {
        return Some(Intent::Tool {
            name: "list_dir",
            arguments: json(&PathArgs { path: "." }),
            what: "list the files in the workspace".to_string(),
        });
    }
    None
}

/// `input` without a leading `keyword` (any case) followed by whitespace.
fn strip_keyword<'a>(input: &'a str, keyword: &str) -> Option<&'a str> {
    let head = input.get(..keyword.len())?;
    let rest = &input[keyword.len()..];
    (head.eq_ignore_ascii_case(keyword) && rest.starts_with(char::is_whitespace))
        .then(|| rest.trim_start())
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("").trim()
}

/// Removes one pair of surrounding quotes or backticks.
fn unquote(s: &str) -> &str {
    for q in ['"', '\'', '`'] {
        if let Some(inner) = s.strip_prefix(q).and_then(|r| r.strip_suffix(q)) {
            return inner.trim();
        }
    }
    s
}

/// Splits text into tokens: each token is a run of non-whitespace with the whitespace
/// that follows it (leading whitespace is a token of its own). Concatenating the tokens
/// gives back the text exactly.
pub(crate) fn tokens(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut prev_ws = false;
    for (i, c) in text.char_indices() {
        let ws = c.is_whitespace();
        if prev_ws && !ws && i > start {
            out.push(&text[start..i]);
            start = i;
        }
        prev_ws = ws;
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

/// Up to `n` pieces of roughly equal length, cut at char boundaries.
fn split_pieces(s: &str, n: usize) -> Vec<&str> {
    let target = s.len().div_ceil(n.max(1)).max(1);
    let mut out = Vec::new();
    let mut start = 0;
    while start < s.len() {
        let mut end = (start + target).min(s.len());
        while !s.is_char_boundary(end) {
            end += 1;
        }
        out.push(&s[start..end]);
        start = end;
    }
    out
}

const FILLER_WORDS: [&str; 16] = [
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "consectetur",
    "adipiscing",
    "elit",
    "sed",
    "do",
    "eiusmod",
    "tempor",
    "incididunt",
    "ut",
    "labore",
    "magna",
];

/// Exactly `n` tokens of filler text.
fn filler_text(n: usize) -> String {
    let mut text = String::with_capacity(n * 7);
    for i in 0..n {
        if i > 0 {
            text.push(' ');
        }
        text.push_str(FILLER_WORDS[i % FILLER_WORDS.len()]);
    }
    text
}

fn input_words(request: &ModelRequest) -> u64 {
    let system = request
        .system_prompt
        .as_deref()
        .map_or(0, |s| s.split_whitespace().count());
    let messages: usize = request
        .messages
        .iter()
        .map(|m| m.content.split_whitespace().count())
        .sum();
    (system + messages) as u64
}

fn tool_calls_so_far(messages: &[Message]) -> usize {
    messages.iter().map(|m| m.tool_calls.len()).sum()
}

fn tool_name<'a>(messages: &'a [Message], id: &str) -> Option<&'a str> {
    messages
        .iter()
        .rev()
        .flat_map(|m| m.tool_calls.iter())
        .find(|c| c.id == id)
        .map(|c| c.name.as_str())
}

/// At most `max` bytes of `s`, cut at a char boundary, with "..." when cut.
fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// `s` cut to `max` bytes with a note of how much was left out.
fn quote(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}\n... ({} more bytes not shown)",
        &s[..end],
        s.len() - end
    )
}

/// `s` in a Markdown code fence longer than any backtick run inside it.
fn fenced(s: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for c in s.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let fence = "`".repeat((longest + 1).max(3));
    format!("{fence}\n{s}\n{fence}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_keep_every_byte() {
        for text in [
            "",
            " ",
            "a",
            "hello world",
            "  lead",
            "trail  ",
            "a\n\nb\tc ",
            "héllo wörld ✓",
        ] {
            let toks = tokens(text);
            assert_eq!(toks.concat(), text);
            assert!(toks.iter().all(|t| !t.is_empty()));
        }
        assert_eq!(tokens("hello  big\nworld"), ["hello  ", "big\n", "world"]);
        assert_eq!(tokens("  x"), ["  ", "x"]);
    }

    #[test]
    fn filler_has_exactly_n_tokens() {
        for n in [0, 1, 2, 17, 200] {
            assert_eq!(tokens(&filler_text(n)).len(), n);
        }
    }

    #[test]
    fn pieces_rejoin() {
        for s in ["", "x", "{\"path\":\".\"}", "{\"query\":\"ünïcödé ✓✓✓\"}"] {
            let pieces = split_pieces(s, 3);
            assert_eq!(pieces.concat(), s);
            assert!(pieces.len() <= 3);
        }
    }

    #[test]
    fn recognises_commands() {
        let args = |s: &str| match recognise(s) {
            Some(Intent::Tool {
                name, arguments, ..
            }) => Some((name, arguments)),
            _ => None,
        };
        assert_eq!(args("ls").unwrap().0, "list_dir");
        assert_eq!(args("LS!").unwrap().0, "list_dir");
        assert_eq!(args("please List Files").unwrap().0, "list_dir");
        assert_eq!(
            args("READ `Notes.md`").unwrap(),
            ("read_file", r#"{"path":"Notes.md"}"#.to_string())
        );
        assert_eq!(
            args("write a/b.txt: Hello: World\nline 2").unwrap(),
            (
                "write_file",
                r#"{"path":"a/b.txt","content":"Hello: World\nline 2"}"#.to_string()
            )
        );
        assert_eq!(
            args("Search \"needle\"").unwrap(),
            ("search", r#"{"query":"needle"}"#.to_string())
        );
        assert!(matches!(recognise("stream 12"), Some(Intent::Stream(12))));
        for plain in [
            "hello",
            "read",
            "reading list",
            "write nocolon",
            "search ",
            "stream x",
            "lsx",
        ] {
            assert!(recognise(plain).is_none(), "{plain:?}");
        }
    }

    #[test]
    fn fences_outlast_backticks() {
        assert_eq!(fenced("a"), "```\na\n```");
        assert_eq!(fenced("x ```` y"), "`````\nx ```` y\n`````");
    }
}
