//! The chat-completions request body of a model call: system prompt, the transcript as
//! the API expects it (assistant messages with `tool_calls`, `tool` messages with
//! `tool_call_id`), reasoning only where the server needs it back, the built-in tools
//! with their JSON schemas, and `stream: true` with usage.

use std::borrow::Cow;

use serde::Serialize;
use serde_json::Value;
use yoi_protocol::{Message, ModelRequest, Role};

use super::config::ReasoningHistory;
use crate::tools;

/// Request parameters that come from the provider's config.
#[derive(Debug, Clone, Default)]
pub(crate) struct Parameters {
    pub temperature: Option<f64>,
    pub max_tokens: Option<u32>,
    pub reasoning_effort: Option<String>,
    pub reasoning_history: Option<ReasoningHistory>,
}

#[derive(Serialize)]
pub(crate) struct Body<'a> {
    model: &'a str,
    messages: Vec<ChatMessage<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<ToolSpec>,
    stream: bool,
    stream_options: StreamOptions,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_effort: Option<&'a str>,
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

#[derive(Serialize)]
struct ChatMessage<'a> {
    role: &'static str,
    /// `null` for an assistant turn that only calls tools.
    content: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<ToolCallOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<&'a str>,
}

#[derive(Serialize)]
struct ToolCallOut<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionOut<'a>,
}

#[derive(Serialize)]
struct FunctionOut<'a> {
    name: &'a str,
    arguments: &'a str,
}

#[derive(Serialize)]
struct ToolSpec {
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionSpec,
}

#[derive(Serialize)]
struct FunctionSpec {
    name: String,
    description: &'static str,
    parameters: Value,
}

/// A tool's failure as the model reads it (the API has no error flag on tool messages).
const ERROR_PREFIX: &str = "error: ";

/// The body for `request`, asking for model `model_id`.
pub(crate) fn body<'a>(
    request: &'a ModelRequest,
    model_id: &'a str,
    parameters: &'a Parameters,
) -> Body<'a> {
    let history = parameters
        .reasoning_history
        .unwrap_or(ReasoningHistory::None);
    let mut messages = Vec::with_capacity(request.messages.len() + 1);
    if let Some(system) = request.system_prompt.as_deref().filter(|s| !s.is_empty()) {
        messages.push(plain("system", system));
    }
    for m in &request.messages {
        messages.push(match m.role {
            Role::User => plain("user", &m.content),
            Role::Assistant => assistant(m, history),
            Role::Tool => {
                let content = if m.is_error && !m.content.starts_with(ERROR_PREFIX) {
                    Cow::Owned(format!("{ERROR_PREFIX}{}", m.content))
                } else {
                    Cow::Borrowed(m.content.as_str())
                };
                ChatMessage {
                    role: "tool",
                    content: Some(content),
                    reasoning_content: None,
                    tool_calls: Vec::new(),
                    tool_call_id: Some(m.tool_call_id.as_deref().unwrap_or_default()),
                }
            }
        });
    }
    let tools = request
        .tools
        .iter()
        .filter_map(|name| {
            Some(ToolSpec {
                kind: "function",
                function: FunctionSpec {
                    name: name.clone(),
                    description: tools::description(name)?,
                    parameters: tools::schema(name)?,
                },
            })
        })
        .collect();
    Body {
        model: model_id,
        messages,
        tools,
        stream: true,
        stream_options: StreamOptions {
            include_usage: true,
        },
        temperature: parameters.temperature,
        max_tokens: parameters.max_tokens,
        reasoning_effort: parameters.reasoning_effort.as_deref(),
    }
}

fn plain<'a>(role: &'static str, content: &'a str) -> ChatMessage<'a> {
    ChatMessage {
        role,
        content: Some(Cow::Borrowed(content)),
        reasoning_content: None,
        tool_calls: Vec::new(),
        tool_call_id: None,
    }
}

fn assistant(m: &Message, history: ReasoningHistory) -> ChatMessage<'_> {
    let send_reasoning = match history {
        ReasoningHistory::None => false,
        ReasoningHistory::ToolCalls => !m.tool_calls.is_empty(),
        ReasoningHistory::All => true,
    };
    ChatMessage {
        role: "assistant",
        content: if m.content.is_empty() && !m.tool_calls.is_empty() {
            None
        } else {
            Some(Cow::Borrowed(m.content.as_str()))
        },
        reasoning_content: if send_reasoning {
            m.reasoning.as_deref()
        } else {
            None
        },
        tool_calls: m
            .tool_calls
            .iter()
            .map(|c| ToolCallOut {
                id: &c.id,
                kind: "function",
                function: FunctionOut {
                    name: &c.name,
                    arguments: &c.arguments,
                },
            })
            .collect(),
        tool_call_id: None,
    }
}
