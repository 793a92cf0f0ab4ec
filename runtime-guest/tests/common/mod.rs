//! Shared helpers of the integration tests: a harness that drives a [`Runtime`], keeps
//! every event it emitted (for restore checks) and builds completions.

#![allow(dead_code)]

use yoi_protocol::{
    Completion, CoreError, Effect, ErrorInfo, Event, EventRecord, FinishReason, Input,
    ModelRequest, ToolRequest, Usage, WorkerSpec,
};
use yoi_runtime_guest::Runtime;

pub fn spec(name: &str, tools: &[&str]) -> WorkerSpec {
    WorkerSpec {
        name: name.into(),
        model: "scripted".into(),
        system_prompt: Some("be brief".into()),
        tools: tools.iter().map(|t| t.to_string()).collect(),
        max_steps: None,
        context_tokens: None,
    }
}

pub fn input(text: &str) -> Input {
    Input {
        text: text.into(),
        request_id: None,
    }
}

pub fn input_with(text: &str, request_id: &str) -> Input {
    Input {
        text: text.into(),
        request_id: Some(request_id.into()),
    }
}

pub struct Harness {
    pub rt: Runtime,
    pub now: u64,
    /// Every event pulled so far, in order.
    pub log: Vec<EventRecord>,
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

impl Harness {
    pub fn new() -> Self {
        Harness {
            rt: Runtime::new(),
            now: 1_000,
            log: Vec::new(),
        }
    }

    fn tick(&mut self) -> u64 {
        self.now += 1;
        self.now
    }

    pub fn create(&mut self, spec: WorkerSpec) -> String {
        let now = self.tick();
        self.rt.create_worker(now, spec).expect("create").id
    }

    pub fn input(&mut self, worker: &str, text: &str) -> Result<String, CoreError> {
        let now = self.tick();
        self.rt.send_input(now, worker, input(text))
    }

    pub fn send(&mut self, worker: &str, input: Input) -> Result<String, CoreError> {
        let now = self.tick();
        self.rt.send_input(now, worker, input)
    }

    pub fn cancel(&mut self, worker: &str) -> Result<String, CoreError> {
        let now = self.tick();
        self.rt.cancel(now, worker)
    }

    pub fn deliver(&mut self, completions: Vec<Completion>) {
        let now = self.tick();
        self.rt.deliver(now, completions);
    }

    /// Drains the event queue (kept in `log`).
    pub fn records(&mut self) -> Vec<EventRecord> {
        let records = self.rt.pull_events(usize::MAX);
        self.log.extend(records.iter().cloned());
        records
    }

    /// Drains the event queue; just the events.
    pub fn events(&mut self) -> Vec<Event> {
        self.records().into_iter().map(|r| r.event).collect()
    }

    /// The `type` tags of the drained events.
    pub fn kinds(&mut self) -> Vec<&'static str> {
        self.events().iter().map(Event::kind).collect()
    }

    pub fn effects(&mut self) -> Vec<Effect> {
        self.rt.pull_effects(usize::MAX)
    }

    /// Drains the effects, which must be exactly one model call.
    pub fn model_call(&mut self) -> ModelRequest {
        match self.effects().as_slice() {
            [Effect::CallModel(request)] => request.clone(),
            other => panic!("expected one model call, got {other:?}"),
        }
    }

    /// Drains the effects, which must all be tool calls.
    pub fn tool_calls(&mut self) -> Vec<ToolRequest> {
        self.effects()
            .into_iter()
            .map(|e| match e {
                Effect::CallTool(request) => request,
                other => panic!("expected tool calls, got {other:?}"),
            })
            .collect()
    }
}

pub fn text(call_id: u64, text: &str) -> Completion {
    Completion::TextDelta {
        call_id,
        text: text.into(),
    }
}

pub fn reasoning(call_id: u64, text: &str) -> Completion {
    Completion::ReasoningDelta {
        call_id,
        text: text.into(),
    }
}

pub fn fragment(
    call_id: u64,
    index: u32,
    id: Option<&str>,
    name: Option<&str>,
    arguments: &str,
) -> Completion {
    Completion::ToolCallDelta {
        call_id,
        index,
        id: id.map(Into::into),
        name: name.map(Into::into),
        arguments: arguments.into(),
    }
}

pub fn usage(call_id: u64, input_tokens: u64, output_tokens: u64) -> Completion {
    Completion::Usage {
        call_id,
        usage: Usage {
            input_tokens,
            output_tokens,
        },
    }
}

pub fn done(call_id: u64, finish_reason: FinishReason) -> Completion {
    Completion::ModelDone {
        call_id,
        finish_reason,
    }
}

pub fn failed(call_id: u64, code: &str) -> Completion {
    Completion::ModelFailed {
        call_id,
        error: ErrorInfo::new(code, "it broke"),
    }
}

pub fn tool_done(call_id: u64, output: &str, is_error: bool) -> Completion {
    Completion::ToolDone {
        call_id,
        output: output.into(),
        is_error,
    }
}
