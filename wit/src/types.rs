//! Serde mirror of the types in `runtime.wit` (see the WIT file for what each means).
//!
//! Enums carrying data use struct variants tagged by `type`, so an event reads as
//! `{"type":"text_delta","run_id":"r_1","text":"Hel"}` on the wire.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Lifecycle state of a worker: `idle -> running -> idle`; `stopped` is final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerStatus {
    Idle,
    Running,
    Stopped,
}

impl WorkerStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerStatus::Idle => "idle",
            WorkerStatus::Running => "running",
            WorkerStatus::Stopped => "stopped",
        }
    }
}

/// What a client asks for when it creates a worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSpec {
    /// Empty (or absent on the wire): the core generates `worker-<n>`.
    #[serde(default)]
    pub name: String,
    pub model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_prompt: Option<String>,
    #[serde(default)]
    pub tools: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_steps: Option<u32>,
    /// Most prompt tokens a model request of this worker may carry (lowers the model's
    /// budget).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_tokens: Option<u32>,
    /// Idempotency key: a retried create with the request id of a live worker returns
    /// that worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// Token counts reported by a model call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

impl Usage {
    pub fn add(&mut self, other: Usage) {
        self.input_tokens = self.input_tokens.saturating_add(other.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(other.output_tokens);
    }
}

/// Public state of one worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerInfo {
    pub id: String,
    pub name: String,
    pub model: String,
    pub system_prompt: Option<String>,
    pub tools: Vec<String>,
    pub max_steps: u32,
    pub status: WorkerStatus,
    pub created_at_ms: u64,
    pub current_run: Option<String>,
    pub run_count: u32,
    pub message_count: u32,
    pub usage: Usage,
    /// The worker's own prompt-token limit, if its spec set one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_tokens: Option<u32>,
    /// The request id of the create that made it, if it carried one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// Who said a transcript message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    User,
    Assistant,
    Tool,
}

/// A tool call the model asked for; `arguments` is a JSON text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

/// One message of a worker's transcript.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub is_error: bool,
    pub run_id: String,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A tool call still being assembled from streamed fragments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartialToolCall {
    pub index: u32,
    pub id: String,
    pub name: String,
    pub arguments: String,
}

/// What a running worker has produced that is not yet in its transcript.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InFlight {
    pub run_id: String,
    pub step: u32,
    pub reasoning: String,
    pub text: String,
    pub tool_calls: Vec<PartialToolCall>,
    pub pending_tools: Vec<ToolCall>,
}

/// A worker, its transcript and its in-flight partial output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerSnapshot {
    pub worker: WorkerInfo,
    pub transcript: Vec<Message>,
    pub in_flight: Option<InFlight>,
}

/// A machine-readable code with a human-readable message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorInfo {
    pub code: String,
    pub message: String,
}

impl ErrorInfo {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        ErrorInfo {
            code: code.into(),
            message: message.into(),
        }
    }
}

/// Why a run ended normally.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    EndTurn,
    MaxTokens,
    MaxSteps,
    ContentFilter,
}

/// Why a model call finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    Stop,
    Length,
    ToolCalls,
    ContentFilter,
}

/// Severity of a diagnostic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Info,
    Warn,
    Error,
}

/// Everything observable that happens in a runtime, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    WorkerCreated {
        /// Boxed: by far the largest case, and every event is as large as its largest
        /// case (184 bytes unboxed, 104 boxed), which is paid wherever events are moved.
        worker: Box<WorkerInfo>,
    },
    StatusChanged {
        from: WorkerStatus,
        to: WorkerStatus,
    },
    InputAccepted {
        run_id: String,
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
    },
    RunStarted {
        run_id: String,
    },
    ReasoningDelta {
        run_id: String,
        text: String,
    },
    ReasoningDone {
        run_id: String,
        text: String,
    },
    TextDelta {
        run_id: String,
        text: String,
    },
    TextDone {
        run_id: String,
        text: String,
    },
    ToolCallStarted {
        run_id: String,
        id: String,
        name: String,
    },
    ToolCallArgsDelta {
        run_id: String,
        id: String,
        delta: String,
    },
    ToolCallReady {
        run_id: String,
        id: String,
        name: String,
        arguments: String,
    },
    ToolResult {
        run_id: String,
        id: String,
        name: String,
        output: String,
        is_error: bool,
    },
    Usage {
        run_id: String,
        usage: Usage,
    },
    StepFinished {
        run_id: String,
        step: u32,
        finish_reason: FinishReason,
    },
    RunCompleted {
        run_id: String,
        stop_reason: StopReason,
    },
    RunFailed {
        run_id: String,
        error: ErrorInfo,
    },
    RunCancelled {
        run_id: String,
    },
    Diagnostic {
        level: Level,
        code: String,
        message: String,
    },
    /// A model request left out older messages to fit the context budget.
    ContextTrimmed {
        run_id: String,
        step: u32,
        omitted_messages: u32,
        estimated_tokens: u32,
        budget_tokens: u32,
    },
    /// The worker was deleted (stopped first if it was not); its earlier events stay.
    WorkerDeleted {
        name: String,
    },
}

impl Event {
    /// The snake_case `type` tag of this event.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::WorkerCreated { .. } => "worker_created",
            Event::StatusChanged { .. } => "status_changed",
            Event::InputAccepted { .. } => "input_accepted",
            Event::RunStarted { .. } => "run_started",
            Event::ReasoningDelta { .. } => "reasoning_delta",
            Event::ReasoningDone { .. } => "reasoning_done",
            Event::TextDelta { .. } => "text_delta",
            Event::TextDone { .. } => "text_done",
            Event::ToolCallStarted { .. } => "tool_call_started",
            Event::ToolCallArgsDelta { .. } => "tool_call_args_delta",
            Event::ToolCallReady { .. } => "tool_call_ready",
            Event::ToolResult { .. } => "tool_result",
            Event::Usage { .. } => "usage",
            Event::StepFinished { .. } => "step_finished",
            Event::RunCompleted { .. } => "run_completed",
            Event::RunFailed { .. } => "run_failed",
            Event::RunCancelled { .. } => "run_cancelled",
            Event::Diagnostic { .. } => "diagnostic",
            Event::ContextTrimmed { .. } => "context_trimmed",
            Event::WorkerDeleted { .. } => "worker_deleted",
        }
    }

    /// The run this event belongs to, if any.
    pub fn run_id(&self) -> Option<&str> {
        match self {
            Event::WorkerCreated { .. }
            | Event::StatusChanged { .. }
            | Event::Diagnostic { .. }
            | Event::WorkerDeleted { .. } => None,
            Event::InputAccepted { run_id, .. }
            | Event::RunStarted { run_id }
            | Event::ReasoningDelta { run_id, .. }
            | Event::ReasoningDone { run_id, .. }
            | Event::TextDelta { run_id, .. }
            | Event::TextDone { run_id, .. }
            | Event::ToolCallStarted { run_id, .. }
            | Event::ToolCallArgsDelta { run_id, .. }
            | Event::ToolCallReady { run_id, .. }
            | Event::ToolResult { run_id, .. }
            | Event::Usage { run_id, .. }
            | Event::StepFinished { run_id, .. }
            | Event::RunCompleted { run_id, .. }
            | Event::RunFailed { run_id, .. }
            | Event::RunCancelled { run_id }
            | Event::ContextTrimmed { run_id, .. } => Some(run_id),
        }
    }

    /// Streamed fragments; the event log may group-commit these (see DESIGN.md).
    pub fn is_delta(&self) -> bool {
        matches!(
            self,
            Event::ReasoningDelta { .. }
                | Event::TextDelta { .. }
                | Event::ToolCallArgsDelta { .. }
        )
    }
}

/// An event as the core emits it; the event log adds the sequence number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRecord {
    pub worker_id: Option<String>,
    pub at_ms: u64,
    pub event: Event,
}

/// A request for a model call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelRequest {
    pub call_id: u64,
    pub worker_id: String,
    pub run_id: String,
    pub step: u32,
    pub model: String,
    pub system_prompt: Option<String>,
    pub messages: Vec<Message>,
    pub tools: Vec<String>,
}

/// A request to run a tool with validated JSON arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolRequest {
    pub call_id: u64,
    pub worker_id: String,
    pub run_id: String,
    pub tool_call_id: String,
    pub name: String,
    pub arguments: String,
}

/// Work the core needs the host to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Effect {
    CallModel(ModelRequest),
    CallTool(ToolRequest),
    Abort { call_id: u64 },
}

impl Effect {
    pub fn call_id(&self) -> u64 {
        match self {
            Effect::CallModel(r) => r.call_id,
            Effect::CallTool(r) => r.call_id,
            Effect::Abort { call_id } => *call_id,
        }
    }
}

/// The result of effects, delivered back to the core in batches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Completion {
    TextDelta {
        call_id: u64,
        text: String,
    },
    ReasoningDelta {
        call_id: u64,
        text: String,
    },
    ToolCallDelta {
        call_id: u64,
        index: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        arguments: String,
    },
    Usage {
        call_id: u64,
        usage: Usage,
    },
    ModelDone {
        call_id: u64,
        finish_reason: FinishReason,
    },
    ModelFailed {
        call_id: u64,
        error: ErrorInfo,
    },
    ToolDone {
        call_id: u64,
        output: String,
        is_error: bool,
    },
}

impl Completion {
    pub fn call_id(&self) -> u64 {
        match self {
            Completion::TextDelta { call_id, .. }
            | Completion::ReasoningDelta { call_id, .. }
            | Completion::ToolCallDelta { call_id, .. }
            | Completion::Usage { call_id, .. }
            | Completion::ModelDone { call_id, .. }
            | Completion::ModelFailed { call_id, .. }
            | Completion::ToolDone { call_id, .. } => *call_id,
        }
    }
}

/// Runtime-wide limits. Fields a peer does not send take their defaults, so a client
/// reads the limits of an older runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// Live workers (not stopped, not deleted) at once.
    pub max_workers: u32,
    pub max_input_bytes: u32,
    pub default_max_steps: u32,
    /// Workers whose transcripts stay in the core (least recently used idle ones beyond
    /// it are passivated).
    pub max_resident_workers: u32,
    /// Estimated transcript bytes the resident workers may hold.
    pub max_resident_bytes: u64,
    /// Largest estimated size of one effect; a larger model request fails its run with
    /// `request_too_large`.
    pub max_request_bytes: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_workers: 100_000,
            max_input_bytes: 64 * 1024,
            default_max_steps: 8,
            max_resident_workers: 1_024,
            max_resident_bytes: 256 << 20,
            max_request_bytes: 8 << 20,
        }
    }
}

/// The prompt-token budget of a model (exact name, or `provider/*` for every model of a
/// provider).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelBudget {
    pub model: String,
    pub prompt_tokens: u32,
}

/// Client input for a worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Input {
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// Typed command errors of a runtime core.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CoreError {
    WorkerNotFound {
        worker_id: String,
    },
    Busy {
        run_id: String,
    },
    NotRunning,
    Stopped,
    InvalidRequest {
        message: String,
    },
    LimitExceeded {
        message: String,
    },
    /// The worker's transcript is not in the core (the host activates it or reads its
    /// events); never meant for a client.
    Passivated {
        worker_id: String,
    },
}

impl CoreError {
    /// The stable wire code of this error.
    pub fn code(&self) -> crate::ErrorCode {
        use crate::ErrorCode;
        match self {
            CoreError::WorkerNotFound { .. } => ErrorCode::WorkerNotFound,
            CoreError::Busy { .. } => ErrorCode::WorkerBusy,
            CoreError::NotRunning => ErrorCode::NotRunning,
            CoreError::Stopped => ErrorCode::WorkerStopped,
            CoreError::InvalidRequest { .. } => ErrorCode::InvalidRequest,
            CoreError::LimitExceeded { .. } => ErrorCode::LimitExceeded,
            CoreError::Passivated { .. } => ErrorCode::Internal,
        }
    }
}

impl fmt::Display for CoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CoreError::WorkerNotFound { worker_id } => write!(f, "worker {worker_id} not found"),
            CoreError::Busy { run_id } => write!(f, "worker is busy with run {run_id}"),
            CoreError::NotRunning => f.write_str("worker has no run in flight"),
            CoreError::Stopped => f.write_str("worker is stopped"),
            CoreError::InvalidRequest { message } => write!(f, "invalid request: {message}"),
            CoreError::LimitExceeded { message } => write!(f, "limit exceeded: {message}"),
            CoreError::Passivated { worker_id } => {
                write!(f, "worker {worker_id} is passivated")
            }
        }
    }
}

impl std::error::Error for CoreError {}

/// What a restore rebuilt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreSummary {
    pub workers: u32,
    pub interrupted_runs: u32,
}

/// Changes of the workers' public state since the last pull (see `pull-index` in
/// `runtime.wit`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexChanges {
    pub changed: Vec<WorkerInfo>,
    pub deleted: Vec<String>,
    pub next_worker: u64,
    pub next_run: u64,
    pub more: bool,
}

/// What a core holds (see `residency` in `runtime.wit`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Residency {
    pub workers: u32,
    pub live_workers: u32,
    pub resident_workers: u32,
    pub resident_bytes: u64,
}
