//! Completions of model and tool calls: streamed deltas, tool-call assembly, the end of
//! a model step, tool results and the step loop.

use yoi_protocol::{
    Completion, Effect, ErrorInfo, Event, FinishReason, StopReason, ToolCall, ToolRequest, Usage,
};

use crate::ids;
use crate::runtime::{Call, CallKind, Runtime};
use crate::worker::{Fragment, Phase, Worker};

/// What a run ends with when its last step needs nothing more.
fn stop_reason(finish: FinishReason, had_tool_calls: bool) -> StopReason {
    if had_tool_calls {
        return StopReason::MaxSteps;
    }
    match finish {
        FinishReason::Stop | FinishReason::ToolCalls => StopReason::EndTurn,
        FinishReason::Length => StopReason::MaxTokens,
        FinishReason::ContentFilter => StopReason::ContentFilter,
    }
}

/// Checks a ready tool call: `Err(output)` makes it an error result instead of a call.
fn check_tool_call(worker: &Worker, call: &ToolCall) -> Result<(), String> {
    if let Err(e) =
        serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&call.arguments)
    {
        return Err(format!("invalid arguments: {e}"));
    }
    if !worker.info.tools.contains(&call.name) {
        return Err(format!(
            "tool {} is not available to this worker",
            crate::validate::preview(&call.name)
        ));
    }
    Ok(())
}

/// A tool-call fragment as the model streamed it.
struct Piece {
    index: u32,
    id: Option<String>,
    name: Option<String>,
    arguments: String,
}

/// A model completion, by kind.
enum ModelPart {
    Text(String),
    Reasoning(String),
    Fragment(Piece),
    Usage(Usage),
    Done(FinishReason),
    Failed(ErrorInfo),
}

impl Runtime {
    /// Delivers completions of earlier effects, in order. Completions whose call id is
    /// unknown, finished or aborted, or that do not fit the call (a tool result for a
    /// model call), are ignored. Ignored entirely while restoring.
    pub fn deliver(&mut self, now_ms: u64, completions: Vec<Completion>) {
        if self.restoring {
            return;
        }
        for completion in completions {
            let call_id = completion.call_id();
            let Some(call) = self.live_call(call_id) else {
                continue;
            };
            let part = match completion {
                Completion::TextDelta { text, .. } => ModelPart::Text(text),
                Completion::ReasoningDelta { text, .. } => ModelPart::Reasoning(text),
                Completion::ToolCallDelta {
                    index,
                    id,
                    name,
                    arguments,
                    ..
                } => ModelPart::Fragment(Piece {
                    index,
                    id,
                    name,
                    arguments,
                }),
                Completion::Usage { usage, .. } => ModelPart::Usage(usage),
                Completion::ModelDone { finish_reason, .. } => ModelPart::Done(finish_reason),
                Completion::ModelFailed { error, .. } => ModelPart::Failed(error),
                Completion::ToolDone {
                    output, is_error, ..
                } => {
                    self.tool_done(now_ms, call_id, call, output, is_error);
                    continue;
                }
            };
            if matches!(call.kind, CallKind::Model) {
                self.model_part(now_ms, call_id, call.worker, call.run_id, part);
            }
        }
    }

    /// The call behind `call_id` if it is still in flight for the run it was made for.
    /// Stale entries (possible only when a restore ended a live run) are dropped.
    fn live_call(&mut self, call_id: u64) -> Option<Call> {
        let call = self.calls.get(&call_id)?;
        let run = self
            .workers
            .get(call.worker)
            .and_then(|w| w.run.as_ref())
            .filter(|run| run.id == call.run_id);
        let live = run.is_some_and(|run| match &call.kind {
            CallKind::Model => run.live.model_call == Some(call_id),
            CallKind::Tool { tool_call_id } => run
                .live
                .tool_calls
                .iter()
                .any(|(id, c)| id == tool_call_id && *c == call_id),
        });
        if live {
            Some(call.clone())
        } else {
            self.calls.remove(&call_id);
            None
        }
    }

    fn model_part(
        &mut self,
        now_ms: u64,
        call_id: u64,
        index: usize,
        run_id: String,
        part: ModelPart,
    ) {
        match part {
            ModelPart::Text(text) => {
                if !text.is_empty() {
                    self.emit(index, now_ms, Event::TextDelta { run_id, text });
                }
            }
            ModelPart::Reasoning(text) => {
                if !text.is_empty() {
                    self.emit(index, now_ms, Event::ReasoningDelta { run_id, text });
                }
            }
            ModelPart::Fragment(piece) => self.fragment(now_ms, index, run_id, piece),
            ModelPart::Usage(usage) => {
                if let Some(worker) = self.workers.get_mut(index)
                    && let Some(run) = &worker.run
                    && let Some(calibration) =
                        crate::context::calibration(usage.input_tokens, run.live.request_estimate)
                {
                    worker.calibration = calibration;
                }
                self.emit(index, now_ms, Event::Usage { run_id, usage })
            }
            ModelPart::Done(finish_reason) => {
                self.calls.remove(&call_id);
                self.model_done(now_ms, index, run_id, finish_reason);
            }
            ModelPart::Failed(error) => {
                // The failed call is over: nothing to abort.
                self.calls.remove(&call_id);
                if let Some(run) = self.workers.get_mut(index).and_then(|w| w.run.as_mut()) {
                    run.live.model_call = None;
                }
                self.close_run(index, now_ms, "model call failed", |run_id| {
                    Event::RunFailed { run_id, error }
                });
            }
        }
    }

    /// One tool-call fragment: the first of an index starts the call, later ones add to
    /// its name and arguments.
    fn fragment(&mut self, now_ms: u64, index: usize, run_id: String, piece: Piece) {
        let Piece {
            index: at,
            id,
            name,
            arguments,
        } = piece;
        let Some(run) = self.workers.get_mut(index).and_then(|w| w.run.as_mut()) else {
            return;
        };
        let Phase::Model(out) = &run.phase else {
            return;
        };
        let call_id = if let Some(fragment) = run.live.fragments.get_mut(&at) {
            if let Some(piece) = name {
                fragment.name.push_str(&piece);
            }
            match out.partial.get(fragment.position) {
                Some(partial) => partial.id.clone(),
                None => return,
            }
        } else {
            // The model's id, unless it is missing or already taken in this step; then
            // one made up from the run, step and index (unique within the step).
            let taken = |id: &str| out.partial.iter().any(|p| p.id == id);
            let call_id = match id.filter(|id| !id.is_empty() && !taken(id)) {
                Some(id) => id,
                None => {
                    let base = ids::tool_call_id(&run.id, run.step, at);
                    let mut candidate = base.clone();
                    let mut n = 1u32;
                    while taken(&candidate) {
                        n = n.saturating_add(1);
                        candidate = format!("{base}_{n}");
                    }
                    candidate
                }
            };
            let name = name.unwrap_or_default();
            run.live.fragments.insert(
                at,
                Fragment {
                    position: out.partial.len(),
                    name: name.clone(),
                },
            );
            self.emit(
                index,
                now_ms,
                Event::ToolCallStarted {
                    run_id: run_id.clone(),
                    id: call_id.clone(),
                    name,
                },
            );
            call_id
        };
        if !arguments.is_empty() {
            self.emit(
                index,
                now_ms,
                Event::ToolCallArgsDelta {
                    run_id,
                    id: call_id,
                    delta: arguments,
                },
            );
        }
    }

    /// The model call of the current step finished: the step's output joins the
    /// transcript, its tool calls are checked and issued, and the run goes on.
    fn model_done(
        &mut self,
        now_ms: u64,
        index: usize,
        run_id: String,
        finish_reason: FinishReason,
    ) {
        let Some(run) = self.workers.get_mut(index).and_then(|w| w.run.as_mut()) else {
            return;
        };
        run.live.model_call = None;
        let fragments = std::mem::take(&mut run.live.fragments);
        let step = run.step;
        let Phase::Model(out) = &run.phase else {
            return;
        };
        let reasoning = out.reasoning.clone();
        let text = out.text.clone();
        // Tool calls in the model's index order; empty arguments mean "no arguments".
        let ready: Vec<ToolCall> = fragments
            .values()
            .filter_map(|f| {
                let partial = out.partial.get(f.position)?;
                let arguments = if partial.arguments.is_empty() {
                    "{}".to_string()
                } else {
                    partial.arguments.clone()
                };
                Some(ToolCall {
                    id: partial.id.clone(),
                    name: f.name.clone(),
                    arguments,
                })
            })
            .collect();

        if !reasoning.is_empty() {
            self.emit(
                index,
                now_ms,
                Event::ReasoningDone {
                    run_id: run_id.clone(),
                    text: reasoning,
                },
            );
        }
        if !text.is_empty() {
            self.emit(
                index,
                now_ms,
                Event::TextDone {
                    run_id: run_id.clone(),
                    text,
                },
            );
        }
        for call in &ready {
            self.emit(
                index,
                now_ms,
                Event::ToolCallReady {
                    run_id: run_id.clone(),
                    id: call.id.clone(),
                    name: call.name.clone(),
                    arguments: call.arguments.clone(),
                },
            );
        }
        self.emit(
            index,
            now_ms,
            Event::StepFinished {
                run_id: run_id.clone(),
                step,
                finish_reason,
            },
        );
        for call in ready {
            let checked = match self.workers.get(index) {
                Some(worker) => check_tool_call(worker, &call),
                None => return,
            };
            match checked {
                Err(output) => self.emit(
                    index,
                    now_ms,
                    Event::ToolResult {
                        run_id: run_id.clone(),
                        id: call.id,
                        name: call.name,
                        output,
                        is_error: true,
                    },
                ),
                Ok(()) => self.call_tool(index, &run_id, call),
            }
        }
        self.advance(index, now_ms);
    }

    fn call_tool(&mut self, index: usize, run_id: &str, call: ToolCall) {
        let call_id = self.next_call_id();
        let Some(worker) = self.workers.get_mut(index) else {
            return;
        };
        let Some(run) = worker.run.as_mut() else {
            return;
        };
        run.live.tool_calls.push((call.id.clone(), call_id));
        self.calls.insert(
            call_id,
            Call {
                worker: index,
                run_id: run_id.to_string(),
                kind: CallKind::Tool {
                    tool_call_id: call.id.clone(),
                },
            },
        );
        self.effects.push_back(Effect::CallTool(ToolRequest {
            call_id,
            worker_id: worker.info.id.clone(),
            run_id: run_id.to_string(),
            tool_call_id: call.id,
            name: call.name,
            arguments: call.arguments,
        }));
    }

    fn tool_done(&mut self, now_ms: u64, call_id: u64, call: Call, output: String, is_error: bool) {
        let Call {
            worker: index,
            run_id,
            kind: CallKind::Tool { tool_call_id },
        } = call
        else {
            return;
        };
        self.calls.remove(&call_id);
        let Some(run) = self.workers.get_mut(index).and_then(|w| w.run.as_mut()) else {
            return;
        };
        run.live.tool_calls.retain(|(_, c)| *c != call_id);
        let name = match &run.phase {
            Phase::Tools { pending, .. } => pending
                .iter()
                .find(|c| c.id == tool_call_id)
                .map(|c| c.name.clone()),
            Phase::Model(_) => None,
        };
        let Some(name) = name else {
            return;
        };
        self.emit(
            index,
            now_ms,
            Event::ToolResult {
                run_id,
                id: tool_call_id,
                name,
                output,
                is_error,
            },
        );
        self.advance(index, now_ms);
    }

    /// Moves a run on once nothing it waits for is pending: the next model step (the
    /// last tool result already started it), or the end of the run.
    fn advance(&mut self, index: usize, now_ms: u64) {
        let Some(run) = self.workers.get(index).and_then(|w| w.run.as_ref()) else {
            return;
        };
        match &run.phase {
            Phase::Model(_) => {
                if run.live.model_call.is_none() {
                    self.call_model(index, now_ms);
                }
            }
            Phase::Tools {
                pending,
                had_tool_calls,
                finish_reason,
            } => {
                if pending.is_empty() {
                    let stop_reason = stop_reason(*finish_reason, *had_tool_calls);
                    let run_id = run.id.clone();
                    self.emit(
                        index,
                        now_ms,
                        Event::RunCompleted {
                            run_id,
                            stop_reason,
                        },
                    );
                    self.settle_status(index, now_ms);
                }
            }
        }
    }
}
