//! Per-worker state and how each event changes it.
//!
//! [`Worker::apply`] is the only place a worker's observable state changes: live
//! commands and deliveries reach it through `Runtime::emit`, restore calls it directly,
//! so a restored worker is the live one by construction. It checks that the event fits
//! the state *before* changing anything and answers with a description otherwise.
//!
//! The one exception is [`LiveRun`]: call-id bookkeeping and the assembly of streamed
//! tool-call fragments, which only matter while the host's calls are in flight. It is
//! not observable (not in snapshots) and is not rebuilt by restore; a restored run is
//! closed by `finish_restore` anyway.

use std::collections::{BTreeMap, VecDeque};

use yoi_protocol::{
    Event, FinishReason, InFlight, Message, PartialToolCall, Role, ToolCall, WorkerInfo,
    WorkerSnapshot, WorkerStatus,
};

/// How many request ids (with their run ids) a worker remembers.
pub(crate) const REQUEST_ID_MEMORY: usize = 256;

/// One worker.
#[derive(Debug, Clone)]
pub(crate) struct Worker {
    /// Kept up to date by `apply` (status, run count, message count, usage, current run).
    pub info: WorkerInfo,
    pub transcript: Vec<Message>,
    /// Boxed: most workers have none, and a small `Worker` keeps 100,000 of them cheap
    /// to hold and to walk.
    pub run: Option<Box<Run>>,
    /// `(request_id, run_id)` of the latest runs that carried a request id, oldest first.
    pub request_ids: VecDeque<(String, String)>,
    /// Provider-reported over estimated prompt tokens, in thousandths (see `context`).
    /// Live only: not observable, not restored (kept across passivation).
    pub calibration: u32,
    /// The transcript and request ids are in memory (see `residency`); a passivated
    /// worker has neither, and never a run.
    pub resident: bool,
    /// Estimated bytes of `transcript` (`size::message` summed).
    pub transcript_bytes: u64,
    /// Its key in `Runtime::lru` while it is resident without a run.
    pub lru_tick: Option<u64>,
}

/// The run in flight.
#[derive(Debug, Clone)]
pub(crate) struct Run {
    pub id: String,
    pub request_id: Option<String>,
    /// 1-based model step.
    pub step: u32,
    pub phase: Phase,
    pub live: LiveRun,
}

/// Where a run is within its current step.
#[derive(Debug, Clone)]
pub(crate) enum Phase {
    /// The model call of `step` is in flight; its output so far.
    Model(StepOutput),
    /// The model call of `step` finished (`step_finished`); its tool calls wait for
    /// their results. With nothing pending the run is about to end.
    Tools {
        pending: Vec<ToolCall>,
        had_tool_calls: bool,
        finish_reason: FinishReason,
    },
}

/// Output of the model step in flight (not yet in the transcript).
#[derive(Debug, Clone, Default)]
pub(crate) struct StepOutput {
    pub reasoning: String,
    pub text: String,
    /// Tool calls in the order they started; `index` is that order.
    pub partial: Vec<PartialToolCall>,
    /// Tool calls announced `tool_call_ready`, in that order.
    pub ready: Vec<ToolCall>,
}

/// Bookkeeping of the host calls of a run; not events, not observable, not restored.
#[derive(Debug, Clone, Default)]
pub(crate) struct LiveRun {
    /// The model call in flight.
    pub model_call: Option<u64>,
    /// Tool calls of the step being streamed, by the model's fragment index.
    pub fragments: BTreeMap<u32, Fragment>,
    /// Tool calls in flight: `(tool_call_id, call_id)`, in the order they were issued.
    pub tool_calls: Vec<(String, u64)>,
    /// Raw token estimate of the model request in flight (for calibration).
    pub request_estimate: u64,
}

/// A tool call being streamed, as the model indexes it.
#[derive(Debug, Clone)]
pub(crate) struct Fragment {
    /// Position in [`StepOutput::partial`].
    pub position: usize,
    /// The name with every piece the model sent (the event announced only the first).
    pub name: String,
}

impl Run {
    fn new(id: String, request_id: Option<String>) -> Self {
        Run {
            id,
            request_id,
            step: 1,
            phase: Phase::Model(StepOutput::default()),
            live: LiveRun::default(),
        }
    }

    /// Call ids of every host call of this run still in flight, model first.
    pub fn calls_in_flight(&self) -> Vec<u64> {
        self.live
            .model_call
            .into_iter()
            .chain(self.live.tool_calls.iter().map(|(_, call)| *call))
            .collect()
    }

    pub fn in_flight(&self) -> InFlight {
        let (reasoning, text, tool_calls, pending_tools) = match &self.phase {
            Phase::Model(out) => (
                out.reasoning.clone(),
                out.text.clone(),
                out.partial.clone(),
                Vec::new(),
            ),
            Phase::Tools { pending, .. } => {
                (String::new(), String::new(), Vec::new(), pending.clone())
            }
        };
        InFlight {
            run_id: self.id.clone(),
            step: self.step,
            reasoning,
            text,
            tool_calls,
            pending_tools,
        }
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl Worker {
    /// A new worker from its `worker_created` info.
    pub fn new(info: WorkerInfo) -> Self {
        Worker {
            info,
            transcript: Vec::new(),
            run: None,
            request_ids: VecDeque::new(),
            calibration: crate::context::UNCALIBRATED,
            resident: true,
            transcript_bytes: 0,
            lru_tick: None,
        }
    }

    /// The worker and its in-flight output; the caller adds the transcript (in pages).
    pub fn snapshot_without_transcript(&self) -> WorkerSnapshot {
        WorkerSnapshot {
            worker: self.info.clone(),
            transcript: Vec::new(),
            in_flight: self.run.as_deref().map(Run::in_flight),
        }
    }

    /// Drops what only a resident worker holds (its transcript and request ids); the
    /// caller accounts for it.
    pub fn passivate(&mut self) {
        self.transcript = Vec::new();
        self.request_ids = VecDeque::new();
        self.transcript_bytes = 0;
        self.resident = false;
    }

    /// The run an earlier input with this request id started, if remembered.
    pub fn run_for_request(&self, request_id: &str) -> Option<&str> {
        self.request_ids
            .iter()
            .find(|(r, _)| r == request_id)
            .map(|(_, run)| run.as_str())
    }

    fn push_message(&mut self, message: Message) {
        self.transcript_bytes += yoi_protocol::size::message(&message);
        self.transcript.push(message);
        self.info.message_count = count(self.transcript.len());
    }

    fn remember_request(&mut self, request_id: &str, run_id: &str) {
        if self.request_ids.len() >= REQUEST_ID_MEMORY {
            self.request_ids.pop_front();
        }
        self.request_ids
            .push_back((request_id.to_string(), run_id.to_string()));
    }

    fn end_run(&mut self) {
        self.run = None;
        self.info.current_run = None;
    }

    /// The run in flight, which must be `run_id`.
    fn run_mut(&mut self, run_id: &str) -> Result<&mut Run, String> {
        match &self.run {
            Some(run) if run.id != run_id => {
                return Err(format!("run {run_id} is not in flight (run {} is)", run.id));
            }
            _ => {}
        }
        self.run
            .as_deref_mut()
            .ok_or_else(|| format!("run {run_id} is not in flight (no run is)"))
    }

    /// The output of the model step in flight of run `run_id`.
    fn step_mut(&mut self, run_id: &str) -> Result<&mut StepOutput, String> {
        let run = self.run_mut(run_id)?;
        match &mut run.phase {
            Phase::Model(out) => Ok(out),
            Phase::Tools { .. } => Err(format!(
                "step {} of run {run_id} has already finished",
                run.step
            )),
        }
    }

    /// Checks that the run in flight is `run_id` and waits for no tool result.
    fn run_may_end(&mut self, run_id: &str) -> Result<(), String> {
        let run = self.run_mut(run_id)?;
        if let Phase::Tools { pending, .. } = &run.phase
            && let Some(call) = pending.first()
        {
            return Err(format!(
                "run {run_id} still waits for the result of tool call {}",
                call.id
            ));
        }
        Ok(())
    }

    /// Applies one event of this worker (anything but `worker_created`). On error the
    /// worker is unchanged.
    pub fn apply(&mut self, event: &Event) -> Result<(), String> {
        match event {
            Event::WorkerCreated { worker } => Err(format!("worker {} already exists", worker.id)),
            Event::StatusChanged { from, to } => {
                if *from != self.info.status {
                    return Err(format!(
                        "the worker is {}, not {}",
                        self.info.status.as_str(),
                        from.as_str()
                    ));
                }
                let fits = match (from, to) {
                    (WorkerStatus::Idle, WorkerStatus::Running) => self.run.is_some(),
                    (WorkerStatus::Running, WorkerStatus::Idle)
                    | (WorkerStatus::Idle, WorkerStatus::Stopped) => self.run.is_none(),
                    _ => false,
                };
                if !fits {
                    return Err(format!(
                        "no change from {} to {} fits here",
                        from.as_str(),
                        to.as_str()
                    ));
                }
                self.info.status = *to;
                Ok(())
            }
            Event::InputAccepted {
                run_id,
                text,
                request_id,
            } => {
                if self.info.status != WorkerStatus::Idle {
                    return Err(format!("the worker is {}", self.info.status.as_str()));
                }
                if let Some(run) = &self.run {
                    return Err(format!("run {} is still in flight", run.id));
                }
                if let Some(request_id) = request_id {
                    self.remember_request(request_id, run_id);
                }
                self.info.run_count = self.info.run_count.saturating_add(1);
                self.info.current_run = Some(run_id.clone());
                self.push_message(Message {
                    role: Role::User,
                    content: text.clone(),
                    reasoning: None,
                    tool_calls: Vec::new(),
                    tool_call_id: None,
                    is_error: false,
                    run_id: run_id.clone(),
                });
                self.run = Some(Box::new(Run::new(run_id.clone(), request_id.clone())));
                Ok(())
            }
            Event::RunStarted { run_id } => self.run_mut(run_id).map(|_| ()),
            Event::ReasoningDelta { run_id, text } => {
                self.step_mut(run_id)?.reasoning.push_str(text);
                Ok(())
            }
            Event::TextDelta { run_id, text } => {
                self.step_mut(run_id)?.text.push_str(text);
                Ok(())
            }
            Event::ReasoningDone { run_id, text } => {
                text.clone_into(&mut self.step_mut(run_id)?.reasoning);
                Ok(())
            }
            Event::TextDone { run_id, text } => {
                text.clone_into(&mut self.step_mut(run_id)?.text);
                Ok(())
            }
            Event::ToolCallStarted { run_id, id, name } => {
                let out = self.step_mut(run_id)?;
                if out.partial.iter().any(|p| p.id == *id) {
                    return Err(format!("tool call {id} has already started"));
                }
                out.partial.push(PartialToolCall {
                    index: count(out.partial.len()),
                    id: id.clone(),
                    name: name.clone(),
                    arguments: String::new(),
                });
                Ok(())
            }
            Event::ToolCallArgsDelta { run_id, id, delta } => {
                let out = self.step_mut(run_id)?;
                let partial = out
                    .partial
                    .iter_mut()
                    .find(|p| p.id == *id)
                    .ok_or_else(|| format!("tool call {id} has not started"))?;
                partial.arguments.push_str(delta);
                Ok(())
            }
            Event::ToolCallReady {
                run_id,
                id,
                name,
                arguments,
            } => {
                let out = self.step_mut(run_id)?;
                if out.ready.iter().any(|c| c.id == *id) {
                    return Err(format!("tool call {id} is already ready"));
                }
                let partial = out
                    .partial
                    .iter_mut()
                    .find(|p| p.id == *id)
                    .ok_or_else(|| format!("tool call {id} has not started"))?;
                name.clone_into(&mut partial.name);
                arguments.clone_into(&mut partial.arguments);
                out.ready.push(ToolCall {
                    id: id.clone(),
                    name: name.clone(),
                    arguments: arguments.clone(),
                });
                Ok(())
            }
            Event::Usage { run_id, usage } => {
                self.run_mut(run_id)?;
                self.info.usage.add(*usage);
                Ok(())
            }
            Event::StepFinished {
                run_id,
                step,
                finish_reason,
            } => {
                let run = self.run_mut(run_id)?;
                if run.step != *step {
                    return Err(format!("run {run_id} is at step {}, not {step}", run.step));
                }
                let Phase::Model(out) = &mut run.phase else {
                    return Err(format!("step {step} of run {run_id} has already finished"));
                };
                if let Some(p) = out
                    .partial
                    .iter()
                    .find(|p| !out.ready.iter().any(|c| c.id == p.id))
                {
                    return Err(format!("tool call {} is not ready", p.id));
                }
                let out = std::mem::take(out);
                let had_tool_calls = !out.ready.is_empty();
                run.phase = Phase::Tools {
                    pending: out.ready.clone(),
                    had_tool_calls,
                    finish_reason: *finish_reason,
                };
                self.push_message(Message {
                    role: Role::Assistant,
                    content: out.text,
                    reasoning: (!out.reasoning.is_empty()).then_some(out.reasoning),
                    tool_calls: out.ready,
                    tool_call_id: None,
                    is_error: false,
                    run_id: run_id.clone(),
                });
                Ok(())
            }
            Event::ToolResult {
                run_id,
                id,
                output,
                is_error,
                ..
            } => {
                let max_steps = self.info.max_steps;
                let run = self.run_mut(run_id)?;
                let Phase::Tools {
                    pending,
                    had_tool_calls,
                    ..
                } = &mut run.phase
                else {
                    return Err(format!(
                        "step {} of run {run_id} has not finished",
                        run.step
                    ));
                };
                let at = pending
                    .iter()
                    .position(|c| c.id == *id)
                    .ok_or_else(|| format!("tool call {id} is not waiting for a result"))?;
                pending.remove(at);
                // The last result of a step with tool calls starts the next model step,
                // unless the run has used its steps (then `run_completed` follows).
                if pending.is_empty() && *had_tool_calls && run.step < max_steps {
                    run.step = run.step.saturating_add(1);
                    run.phase = Phase::Model(StepOutput::default());
                }
                self.push_message(Message {
                    role: Role::Tool,
                    content: output.clone(),
                    reasoning: None,
                    tool_calls: Vec::new(),
                    tool_call_id: Some(id.clone()),
                    is_error: *is_error,
                    run_id: run_id.clone(),
                });
                Ok(())
            }
            Event::RunCompleted { run_id, .. } => {
                let run = self.run_mut(run_id)?;
                match &run.phase {
                    Phase::Tools { pending, .. } if pending.is_empty() => {}
                    _ => return Err(format!("run {run_id} has work in flight")),
                }
                self.end_run();
                Ok(())
            }
            Event::RunFailed { run_id, .. } | Event::RunCancelled { run_id } => {
                self.run_may_end(run_id)?;
                self.end_run();
                Ok(())
            }
            Event::ContextTrimmed { run_id, .. } => self.run_mut(run_id).map(|_| ()),
            Event::Diagnostic { .. } => Ok(()),
            Event::WorkerDeleted { .. } => Err("a deletion is the runtime's to apply".into()),
        }
    }
}
