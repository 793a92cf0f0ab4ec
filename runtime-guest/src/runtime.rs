//! [`Runtime`]: the state, event emission and the client commands.

use std::collections::{BTreeMap, VecDeque};

use yoi_protocol::{
    CoreError, Effect, Event, EventRecord, Input, Level, Limits, Message, ModelBudget,
    ModelRequest, Role, WorkerInfo, WorkerSnapshot, WorkerSpec, WorkerStatus,
};

use crate::context;
use crate::ids;
use crate::validate;
use crate::worker::{Phase, Worker};

/// What a call id stands for.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    /// Index of the worker in `Runtime::workers`.
    pub worker: usize,
    pub run_id: String,
    pub kind: CallKind,
}

#[derive(Debug, Clone)]
pub(crate) enum CallKind {
    Model,
    Tool { tool_call_id: String },
}

/// The worker runtime core: a pure, deterministic state machine (sans-IO).
///
/// Commands take the current time and return typed results; everything observable they
/// cause is queued as events ([`pull_events`](Self::pull_events)), and the work the
/// host must do (model calls, tool calls, aborts) as effects
/// ([`pull_effects`](Self::pull_effects)). The host performs the effects and feeds their
/// completions back with [`deliver`](Self::deliver).
///
/// The host is expected to drain both queues after every call: they are unbounded and
/// the events are the durable record of the runtime (restore rebuilds a core from them).
///
/// Every state change is the application of an event (one `apply` function, used live
/// and by [`restore`](Self::restore)), so a core restored from the events of a live one
/// has the same workers, transcripts and snapshots. No input makes it panic.
#[derive(Debug, Clone)]
pub struct Runtime {
    pub(crate) limits: Limits,
    /// Prompt-token budgets by model (see `context`).
    pub(crate) budgets: Vec<ModelBudget>,
    /// Every worker, oldest first (workers are never removed).
    pub(crate) workers: Vec<Worker>,
    /// Worker id → index in `workers`.
    pub(crate) by_id: BTreeMap<String, usize>,
    /// Number of the next worker id (`w_<n>`); rebuilt by restore.
    pub(crate) next_worker: u64,
    /// Number of the next run id (`r_<n>`); rebuilt by restore.
    pub(crate) next_run: u64,
    /// Next call id of an effect; not rebuilt by restore.
    pub(crate) next_call: u64,
    /// Host calls in flight.
    pub(crate) calls: BTreeMap<u64, Call>,
    pub(crate) events: VecDeque<EventRecord>,
    pub(crate) effects: VecDeque<Effect>,
    /// Between `restore` and `finish_restore`: commands that change state are refused
    /// and deliveries ignored.
    pub(crate) restoring: bool,
}

impl Default for Runtime {
    fn default() -> Self {
        Self::new()
    }
}

fn not_found(worker_id: &str) -> CoreError {
    CoreError::WorkerNotFound {
        worker_id: worker_id.to_string(),
    }
}

impl Runtime {
    /// An empty runtime with the default [`Limits`].
    pub fn new() -> Self {
        Runtime {
            limits: Limits::default(),
            budgets: Vec::new(),
            workers: Vec::new(),
            by_id: BTreeMap::new(),
            next_worker: 1,
            next_run: 1,
            next_call: 1,
            calls: BTreeMap::new(),
            events: VecDeque::new(),
            effects: VecDeque::new(),
            restoring: false,
        }
    }

    /// Replaces the runtime-wide limits; they apply to later commands.
    pub fn configure(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// Replaces the models' prompt-token budgets; they apply to later model requests.
    pub fn configure_models(&mut self, budgets: Vec<ModelBudget>) {
        self.budgets = budgets;
    }

    // ----- state plumbing -------------------------------------------------------------

    /// Applies one event of the worker at `index` and queues it; the single way live
    /// state changes.
    pub(crate) fn emit(&mut self, index: usize, now_ms: u64, event: Event) {
        let Some(worker) = self.workers.get_mut(index) else {
            return;
        };
        let worker_id = worker.info.id.clone();
        let applied = worker.apply(&event);
        match applied {
            Ok(()) => {
                if let Event::InputAccepted { run_id, .. } = &event {
                    ids::bump_past(&mut self.next_run, run_id, ids::RUN_PREFIX);
                }
                self.events.push_back(EventRecord {
                    worker_id: Some(worker_id),
                    at_ms: now_ms,
                    event,
                });
            }
            Err(message) => {
                // A decision that does not fit the state is a bug of this crate. Debug
                // builds (the tests) stop here; release builds report it and go on with
                // the state unchanged, so the event log still replays.
                if cfg!(debug_assertions) {
                    panic!("core bug: {} does not fit: {message}", event.kind());
                }
                self.events.push_back(EventRecord {
                    worker_id: Some(worker_id),
                    at_ms: now_ms,
                    event: Event::Diagnostic {
                        level: Level::Error,
                        code: "internal".into(),
                        message: format!("{} was not applied: {message}", event.kind()),
                    },
                });
            }
        }
    }

    /// Adds a worker from its `worker_created` info (live and restore).
    pub(crate) fn add_worker(&mut self, info: &WorkerInfo) -> Result<(), String> {
        if self.by_id.contains_key(&info.id) {
            return Err(format!("worker {} already exists", info.id));
        }
        let fresh = info.status == WorkerStatus::Idle
            && info.current_run.is_none()
            && info.run_count == 0
            && info.message_count == 0
            && info.usage == Default::default();
        if !fresh {
            return Err("a created worker must be idle, with no runs, messages or usage".into());
        }
        ids::bump_past(&mut self.next_worker, &info.id, ids::WORKER_PREFIX);
        self.by_id.insert(info.id.clone(), self.workers.len());
        self.workers.push(Worker::new(info.clone()));
        Ok(())
    }

    pub(crate) fn index_of(&self, worker_id: &str) -> Result<usize, CoreError> {
        self.by_id
            .get(worker_id)
            .copied()
            .ok_or_else(|| not_found(worker_id))
    }

    fn worker(&self, worker_id: &str) -> Result<&Worker, CoreError> {
        self.index_of(worker_id)
            .and_then(|i| self.workers.get(i).ok_or_else(|| not_found(worker_id)))
    }

    fn refuse_while_restoring(&self) -> Result<(), CoreError> {
        if self.restoring {
            return Err(CoreError::InvalidRequest {
                message: "the core is restoring; call finish_restore first".into(),
            });
        }
        Ok(())
    }

    pub(crate) fn next_call_id(&mut self) -> u64 {
        let id = self.next_call;
        self.next_call = self.next_call.saturating_add(1);
        id
    }

    /// Issues the model call of the current step of the worker's run, with the messages
    /// that fit the worker's context budget (`context_trimmed` when some are left out).
    pub(crate) fn call_model(&mut self, index: usize, now_ms: u64) {
        let call_id = self.next_call_id();
        let Some(worker) = self.workers.get_mut(index) else {
            return;
        };
        let Some(run) = worker.run.as_mut() else {
            return;
        };
        let budget = context::budget(
            &self.budgets,
            &worker.info.model,
            worker.info.context_tokens,
        );
        let run_start = worker
            .transcript
            .iter()
            .rposition(|m| m.role == Role::User && m.run_id == run.id)
            .unwrap_or(0);
        let selection = context::select(
            &worker.transcript,
            run_start,
            worker.info.system_prompt.as_deref(),
            budget,
            worker.calibration,
        );
        run.live.model_call = Some(call_id);
        run.live.request_estimate = selection.raw_estimate;
        let request = ModelRequest {
            call_id,
            worker_id: worker.info.id.clone(),
            run_id: run.id.clone(),
            step: run.step,
            model: worker.info.model.clone(),
            system_prompt: worker.info.system_prompt.clone(),
            messages: selection.messages,
            tools: worker.info.tools.clone(),
        };
        if selection.omitted > 0 {
            let to_u32 = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
            self.emit(
                index,
                now_ms,
                Event::ContextTrimmed {
                    run_id: request.run_id.clone(),
                    step: request.step,
                    omitted_messages: selection.omitted,
                    estimated_tokens: to_u32(selection.estimated),
                    budget_tokens: budget.unwrap_or(u32::MAX),
                },
            );
        }
        self.calls.insert(
            call_id,
            Call {
                worker: index,
                run_id: request.run_id.clone(),
                kind: CallKind::Model,
            },
        );
        self.effects.push_back(Effect::CallModel(request));
    }

    /// Ends the worker's run: aborts its calls in flight, answers every tool call still
    /// waiting with an error result `tool_output`, emits `end` and returns the worker to
    /// idle. Returns the run id, or `None` when no run is in flight.
    pub(crate) fn close_run(
        &mut self,
        index: usize,
        now_ms: u64,
        tool_output: &str,
        end: impl FnOnce(String) -> Event,
    ) -> Option<String> {
        let worker = self.workers.get_mut(index)?;
        let run = worker.run.as_mut()?;
        let run_id = run.id.clone();
        let aborted = run.calls_in_flight();
        run.live = Default::default();
        let pending = match &run.phase {
            Phase::Tools { pending, .. } => pending.clone(),
            Phase::Model(_) => Vec::new(),
        };
        for call_id in aborted {
            self.calls.remove(&call_id);
            self.effects.push_back(Effect::Abort { call_id });
        }
        for call in pending {
            self.emit(
                index,
                now_ms,
                Event::ToolResult {
                    run_id: run_id.clone(),
                    id: call.id,
                    name: call.name,
                    output: tool_output.to_string(),
                    is_error: true,
                },
            );
        }
        self.emit(index, now_ms, end(run_id.clone()));
        self.settle_status(index, now_ms);
        Some(run_id)
    }

    /// A worker whose run has ended goes back to idle.
    pub(crate) fn settle_status(&mut self, index: usize, now_ms: u64) {
        let running = self
            .workers
            .get(index)
            .is_some_and(|w| w.run.is_none() && w.info.status == WorkerStatus::Running);
        if running {
            self.emit(
                index,
                now_ms,
                Event::StatusChanged {
                    from: WorkerStatus::Running,
                    to: WorkerStatus::Idle,
                },
            );
        }
    }

    // ----- commands -------------------------------------------------------------------

    /// Creates an idle worker (`worker_created`).
    pub fn create_worker(
        &mut self,
        now_ms: u64,
        spec: WorkerSpec,
    ) -> Result<WorkerInfo, CoreError> {
        self.refuse_while_restoring()?;
        let max_steps = validate::spec(&spec, &self.limits)?;
        let max = self.limits.max_workers;
        if self.workers.len() >= max as usize {
            return Err(CoreError::LimitExceeded {
                message: format!(
                    "the runtime has {} workers; at most {max} are allowed (max_workers)",
                    self.workers.len()
                ),
            });
        }
        let id = ids::worker_id(self.next_worker);
        if self.by_id.contains_key(&id) {
            // Only a restored log with ids at the end of the number range gets here.
            return Err(CoreError::LimitExceeded {
                message: "worker ids are exhausted".into(),
            });
        }
        let info = WorkerInfo {
            id,
            name: spec.name,
            model: spec.model,
            system_prompt: spec.system_prompt,
            tools: spec.tools,
            max_steps,
            status: WorkerStatus::Idle,
            created_at_ms: now_ms,
            current_run: None,
            run_count: 0,
            message_count: 0,
            usage: Default::default(),
            context_tokens: spec.context_tokens,
        };
        if let Err(message) = self.add_worker(&info) {
            return Err(CoreError::InvalidRequest { message });
        }
        self.events.push_back(EventRecord {
            worker_id: Some(info.id.clone()),
            at_ms: now_ms,
            event: Event::WorkerCreated {
                worker: Box::new(info.clone()),
            },
        });
        Ok(info)
    }

    /// Every worker, oldest first.
    pub fn list_workers(&self) -> Vec<WorkerInfo> {
        self.workers.iter().map(|w| w.info.clone()).collect()
    }

    pub fn get_worker(&self, worker_id: &str) -> Result<WorkerInfo, CoreError> {
        self.worker(worker_id).map(|w| w.info.clone())
    }

    /// Starts a run with the input; returns its run id.
    ///
    /// A request id that an earlier run of this worker carried (the run in flight or
    /// one of the latest 256) returns that run's id and changes nothing.
    pub fn send_input(
        &mut self,
        now_ms: u64,
        worker_id: &str,
        input: Input,
    ) -> Result<String, CoreError> {
        let index = self.index_of(worker_id)?;
        self.refuse_while_restoring()?;
        validate::input(&input, &self.limits)?;
        let worker = self
            .workers
            .get(index)
            .ok_or_else(|| not_found(worker_id))?;
        if worker.info.status == WorkerStatus::Stopped {
            return Err(CoreError::Stopped);
        }
        if let Some(request_id) = &input.request_id {
            if let Some(run) = &worker.run
                && run.request_id.as_deref() == Some(request_id.as_str())
            {
                return Ok(run.id.clone());
            }
            if let Some(run_id) = worker.run_for_request(request_id) {
                return Ok(run_id.to_string());
            }
        }
        if let Some(run) = &worker.run {
            return Err(CoreError::Busy {
                run_id: run.id.clone(),
            });
        }
        let run_id = ids::run_id(self.next_run);
        self.emit(
            index,
            now_ms,
            Event::InputAccepted {
                run_id: run_id.clone(),
                text: input.text,
                request_id: input.request_id,
            },
        );
        self.emit(
            index,
            now_ms,
            Event::StatusChanged {
                from: WorkerStatus::Idle,
                to: WorkerStatus::Running,
            },
        );
        self.emit(
            index,
            now_ms,
            Event::RunStarted {
                run_id: run_id.clone(),
            },
        );
        self.call_model(index, now_ms);
        Ok(run_id)
    }

    /// Cancels the run in flight: aborts its calls, answers its waiting tool calls with
    /// `cancelled` error results, ends it `run_cancelled`; returns its id.
    pub fn cancel(&mut self, now_ms: u64, worker_id: &str) -> Result<String, CoreError> {
        let index = self.index_of(worker_id)?;
        self.refuse_while_restoring()?;
        let worker = self
            .workers
            .get(index)
            .ok_or_else(|| not_found(worker_id))?;
        if worker.info.status == WorkerStatus::Stopped {
            return Err(CoreError::Stopped);
        }
        self.close_run(index, now_ms, "cancelled", |run_id| Event::RunCancelled {
            run_id,
        })
        .ok_or(CoreError::NotRunning)
    }

    /// Stops the worker for good, cancelling its run in flight first.
    pub fn stop(&mut self, now_ms: u64, worker_id: &str) -> Result<WorkerInfo, CoreError> {
        let index = self.index_of(worker_id)?;
        self.refuse_while_restoring()?;
        let status = self.workers.get(index).map(|w| w.info.status);
        if status == Some(WorkerStatus::Stopped) {
            return Err(CoreError::Stopped);
        }
        self.close_run(index, now_ms, "cancelled", |run_id| Event::RunCancelled {
            run_id,
        });
        let from = self
            .workers
            .get(index)
            .map_or(WorkerStatus::Idle, |w| w.info.status);
        self.emit(
            index,
            now_ms,
            Event::StatusChanged {
                from,
                to: WorkerStatus::Stopped,
            },
        );
        self.get_worker(worker_id)
    }

    /// The worker's transcript (without the system prompt).
    pub fn transcript(&self, worker_id: &str) -> Result<Vec<Message>, CoreError> {
        self.worker(worker_id).map(|w| w.transcript.clone())
    }

    /// The worker, its transcript and its in-flight partial output.
    pub fn snapshot(&self, worker_id: &str) -> Result<WorkerSnapshot, CoreError> {
        self.worker(worker_id).map(Worker::snapshot)
    }

    /// Takes up to `max` queued events, oldest first.
    pub fn pull_events(&mut self, max: usize) -> Vec<EventRecord> {
        let n = max.min(self.events.len());
        self.events.drain(..n).collect()
    }

    /// Takes up to `max` queued effects, oldest first.
    pub fn pull_effects(&mut self, max: usize) -> Vec<Effect> {
        let n = max.min(self.effects.len());
        self.effects.drain(..n).collect()
    }
}
