//! The wire shapes of an OpenAI-compatible chat-completions stream, read leniently:
//! every field optional, unknown fields ignored, unknown values tolerated. Servers in
//! the wild differ (OpenAI, vLLM, Ollama, llama.cpp, DeepSeek, OpenRouter, ...).

use serde::Deserialize;
use serde_json::Value;

/// One `data:` payload of the stream (also the shape of a non-streamed answer, whose
/// choices carry `message` instead of `delta`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Chunk {
    pub choices: Vec<Choice>,
    pub usage: Option<ChunkUsage>,
    /// `{"error": {...}}` sent in the middle of a stream.
    pub error: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Choice {
    pub index: Option<u32>,
    pub delta: Option<Delta>,
    /// Non-streamed answers.
    pub message: Option<Delta>,
    pub finish_reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Delta {
    pub content: Option<Value>,
    /// DeepSeek, vLLM, llama.cpp (with a reasoning parser).
    pub reasoning_content: Option<String>,
    /// OpenRouter, Ollama, newer vLLM.
    pub reasoning: Option<String>,
    pub tool_calls: Option<Vec<ToolCallDelta>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ToolCallDelta {
    pub index: Option<u32>,
    pub id: Option<String>,
    pub function: Option<FunctionDelta>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct FunctionDelta {
    pub name: Option<String>,
    /// A JSON text in pieces; some servers send an object instead of a string.
    pub arguments: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ChunkUsage {
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
}

impl Delta {
    /// The content as text: a string, or the text parts of a content array.
    pub fn content_text(&self) -> Option<String> {
        match self.content.as_ref()? {
            Value::String(s) => Some(s.clone()),
            Value::Array(parts) => {
                let text: String = parts
                    .iter()
                    .filter_map(|p| p.get("text").and_then(Value::as_str))
                    .collect();
                Some(text)
            }
            _ => None,
        }
    }
}

impl FunctionDelta {
    /// The arguments piece as text.
    pub fn arguments_text(&self) -> Option<String> {
        match self.arguments.as_ref()? {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        }
    }
}
