//! [`Runtime`]: the state, event emission and the client commands.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use rustc_hash::FxHashMap;

use yoi_protocol::{
    CoreError, Effect, Event, EventRecord, Input, Level, Limits, Message, ModelBudget,
    ModelRequest, Role, WorkerInfo, WorkerSnapshot, WorkerSpec, WorkerStatus,
};

use crate::context;
use crate::ids;
use crate::validate;
use crate::worker::{Phase, Worker};
use yoi_protocol::size;

/// What a call id stands for.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    /// Key of the worker in `Runtime::workers`.
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
/// Memory is set by budgets (`limits`), not by history: every worker's info stays, but
/// only resident workers keep their transcripts; the least recently used idle or stopped
/// workers beyond `max_resident_workers` / `max_resident_bytes` are passivated, and the
/// host [activates](Self::activate) one from its events when a command needs it (see
/// `residency`).
///
/// Every state change is the application of an event (one `apply` function, used live
/// and by [`restore`](Self::restore)), so a core restored from the events of a live one
/// has the same workers, transcripts and snapshots. No input makes it panic.
#[derive(Debug, Clone)]
pub struct Runtime {
    pub(crate) limits: Limits,
    /// Prompt-token budgets by model (see `context`).
    pub(crate) budgets: Vec<ModelBudget>,
    /// Every worker by a key in creation order (so iteration is oldest first); deleted
    /// workers are removed.
    pub(crate) workers: BTreeMap<usize, Worker>,
    /// Key of the next worker added.
    pub(crate) next_key: usize,
    /// Worker id → key in `workers` (hashed: a lookup costs no string comparisons down
    /// a tree of 100,000 heap-allocated ids; Fx, not SipHash, because the core makes
    /// the ids itself, so nobody can choose colliding ones).
    pub(crate) by_id: FxHashMap<String, usize>,
    /// Create request id → key of the worker it made (live and stopped workers).
    pub(crate) create_requests: BTreeMap<String, usize>,
    /// Workers that are not stopped.
    pub(crate) live_workers: usize,
    /// Workers whose transcripts are in memory, and their estimated bytes.
    pub(crate) resident_workers: usize,
    pub(crate) resident_bytes: u64,
    /// Resident workers without a run (the ones that may be passivated), by the tick of
    /// their last use: least recently used first.
    pub(crate) lru: BTreeMap<u64, usize>,
    pub(crate) tick: u64,
    /// Workers whose info changed since the host last pulled the index changes.
    pub(crate) dirty: BTreeSet<usize>,
    /// Workers deleted since then.
    pub(crate) deleted: Vec<String>,
    /// A worker being rebuilt from its events (see `activate`).
    pub(crate) activation: Option<crate::residency::Activation>,
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
            workers: BTreeMap::new(),
            next_key: 0,
            by_id: FxHashMap::default(),
            create_requests: BTreeMap::new(),
            live_workers: 0,
            resident_workers: 0,
            resident_bytes: 0,
            lru: BTreeMap::new(),
            tick: 0,
            dirty: BTreeSet::new(),
            deleted: Vec::new(),
            activation: None,
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
        let Some(worker) = self.workers.get(&index) else {
            return;
        };
        let worker_id = worker.info.id.clone();
        match self.apply_to(index, &event) {
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

    /// Applies one event (not `worker_created`) to the worker at `index`, keeping the
    /// counters, the LRU order and the index changes up to date; live and restore.
    pub(crate) fn apply_to(&mut self, index: usize, event: &Event) -> Result<(), String> {
        if let Event::WorkerDeleted { .. } = event {
            return self.remove_worker(index);
        }
        let worker = self
            .workers
            .get_mut(&index)
            .ok_or_else(|| "unknown worker".to_string())?;
        let needs_transcript = !matches!(
            event,
            Event::StatusChanged { .. } | Event::Diagnostic { .. }
        );
        if !worker.resident && needs_transcript {
            return Err("the worker is passivated".into());
        }
        let was_live = worker.info.status != WorkerStatus::Stopped;
        let bytes = worker.transcript_bytes;
        worker.apply(event)?;
        let is_live = worker.info.status != WorkerStatus::Stopped;
        if worker.resident {
            self.resident_bytes = (self.resident_bytes + worker.transcript_bytes) - bytes;
        }
        if was_live && !is_live {
            self.live_workers = self.live_workers.saturating_sub(1);
        }
        if changes_info(event) {
            self.dirty.insert(index);
            self.touch(index);
        }
        Ok(())
    }

    /// Adds a resident worker from its `worker_created` info (live and restore).
    pub(crate) fn add_worker(&mut self, info: &WorkerInfo) -> Result<usize, String> {
        let fresh = info.status == WorkerStatus::Idle
            && info.current_run.is_none()
            && info.run_count == 0
            && info.message_count == 0
            && info.usage == Default::default();
        if !fresh {
            return Err("a created worker must be idle, with no runs, messages or usage".into());
        }
        let index = self.insert_worker(Worker::new(info.clone()))?;
        self.dirty.insert(index);
        self.touch(index);
        Ok(index)
    }

    /// Registers a worker (resident or not) under a new key; the caller marks it dirty
    /// if the host's index does not have it yet.
    pub(crate) fn insert_worker(&mut self, worker: Worker) -> Result<usize, String> {
        let id = &worker.info.id;
        let index = self.next_key;
        match self.by_id.entry(id.clone()) {
            Entry::Occupied(_) => return Err(format!("worker {id} already exists")),
            Entry::Vacant(slot) => slot.insert(index),
        };
        self.next_key += 1;
        ids::bump_past(&mut self.next_worker, id, ids::WORKER_PREFIX);
        if let Some(request_id) = &worker.info.request_id {
            self.create_requests.insert(request_id.clone(), index);
        }
        if worker.info.status != WorkerStatus::Stopped {
            self.live_workers += 1;
        }
        if worker.resident {
            self.resident_workers += 1;
            self.resident_bytes += worker.transcript_bytes;
        }
        self.workers.insert(index, worker);
        Ok(index)
    }

    /// Removes a deleted worker, with every trace of it but its events.
    fn remove_worker(&mut self, index: usize) -> Result<(), String> {
        let worker = self
            .workers
            .get(&index)
            .ok_or_else(|| "unknown worker".to_string())?;
        if worker.run.is_some() || worker.info.status != WorkerStatus::Stopped {
            return Err("only a stopped worker can be deleted".into());
        }
        let Some(worker) = self.workers.remove(&index) else {
            return Err("unknown worker".into());
        };
        self.by_id.remove(&worker.info.id);
        if let Some(request_id) = &worker.info.request_id {
            self.create_requests.remove(request_id);
        }
        if worker.resident {
            self.resident_workers = self.resident_workers.saturating_sub(1);
            self.resident_bytes = self.resident_bytes.saturating_sub(worker.transcript_bytes);
        }
        if let Some(tick) = worker.lru_tick {
            self.lru.remove(&tick);
        }
        self.dirty.remove(&index);
        self.deleted.push(worker.info.id);
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
            .and_then(|i| self.workers.get(&i).ok_or_else(|| not_found(worker_id)))
    }

    /// The worker, which must be resident (`passivated` otherwise).
    fn resident(&self, worker_id: &str) -> Result<&Worker, CoreError> {
        let worker = self.worker(worker_id)?;
        if !worker.resident {
            return Err(CoreError::Passivated {
                worker_id: worker_id.to_string(),
            });
        }
        Ok(worker)
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
    /// A request larger than `max_request_bytes` is not sent: the run fails
    /// `request_too_large` (nothing that large may cross the component boundary).
    pub(crate) fn call_model(&mut self, index: usize, now_ms: u64) {
        let call_id = self.next_call_id();
        let Some(worker) = self.workers.get_mut(&index) else {
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
        let bytes = size::model_request(&request);
        let max = u64::from(self.limits.max_request_bytes);
        if bytes > max {
            self.close_run(index, now_ms, "request too large", |run_id| {
                Event::RunFailed {
                    run_id,
                    error: yoi_protocol::ErrorInfo::new(
                        "request_too_large",
                        format!(
                            "the model request would carry about {bytes} bytes; at most {max} \
                         may cross to the host (max_request_bytes); give the model a \
                         context budget or start a new worker"
                        ),
                    ),
                }
            });
            return;
        }
        run.live.model_call = Some(call_id);
        run.live.request_estimate = selection.raw_estimate;
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
        let worker = self.workers.get_mut(&index)?;
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
            .get(&index)
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

    /// Creates an idle worker (`worker_created`), or returns the live worker an earlier
    /// create with the same request id made (changing nothing).
    pub fn create_worker(
        &mut self,
        now_ms: u64,
        spec: WorkerSpec,
    ) -> Result<WorkerInfo, CoreError> {
        self.refuse_while_restoring()?;
        if let Some(request_id) = &spec.request_id
            && let Some(worker) = self
                .create_requests
                .get(request_id)
                .and_then(|i| self.workers.get(i))
        {
            return Ok(worker.info.clone());
        }
        let max_steps = validate::spec(&spec, &self.limits)?;
        let max = self.limits.max_workers;
        if self.live_workers >= max as usize {
            return Err(CoreError::LimitExceeded {
                message: format!(
                    "the runtime has {} live workers; at most {max} are allowed \
                     (max_workers; stop or delete some)",
                    self.live_workers
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
        let name = if spec.name.is_empty() {
            format!("worker-{}", self.next_worker)
        } else {
            spec.name
        };
        let info = WorkerInfo {
            id,
            name,
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
            request_id: spec.request_id,
        };
        let index = match self.add_worker(&info) {
            Ok(index) => index,
            Err(message) => return Err(CoreError::InvalidRequest { message }),
        };
        self.events.push_back(EventRecord {
            worker_id: Some(info.id.clone()),
            at_ms: now_ms,
            event: Event::WorkerCreated {
                worker: Box::new(info.clone()),
            },
        });
        self.enforce_budget(now_ms, Some(index));
        Ok(info)
    }

    /// Every worker, oldest first.
    pub fn list_workers(&self) -> Vec<WorkerInfo> {
        self.workers.values().map(|w| w.info.clone()).collect()
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
            .get(&index)
            .ok_or_else(|| not_found(worker_id))?;
        if worker.info.status == WorkerStatus::Stopped {
            return Err(CoreError::Stopped);
        }
        if !worker.resident {
            return Err(CoreError::Passivated {
                worker_id: worker_id.to_string(),
            });
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
        self.enforce_budget(now_ms, Some(index));
        Ok(run_id)
    }

    /// Cancels the run in flight: aborts its calls, answers its waiting tool calls with
    /// `cancelled` error results, ends it `run_cancelled`; returns its id.
    pub fn cancel(&mut self, now_ms: u64, worker_id: &str) -> Result<String, CoreError> {
        let index = self.index_of(worker_id)?;
        self.refuse_while_restoring()?;
        let worker = self
            .workers
            .get(&index)
            .ok_or_else(|| not_found(worker_id))?;
        if worker.info.status == WorkerStatus::Stopped {
            return Err(CoreError::Stopped);
        }
        let cancelled = self.close_run(index, now_ms, "cancelled", |run_id| Event::RunCancelled {
            run_id,
        });
        self.enforce_budget(now_ms, None);
        cancelled.ok_or(CoreError::NotRunning)
    }

    /// Stops the worker for good, cancelling its run in flight first.
    pub fn stop(&mut self, now_ms: u64, worker_id: &str) -> Result<WorkerInfo, CoreError> {
        let index = self.index_of(worker_id)?;
        self.refuse_while_restoring()?;
        let status = self.workers.get(&index).map(|w| w.info.status);
        if status == Some(WorkerStatus::Stopped) {
            return Err(CoreError::Stopped);
        }
        self.stop_worker(index, now_ms);
        self.enforce_budget(now_ms, None);
        self.get_worker(worker_id)
    }

    /// Cancels the worker's run in flight, if any, and stops it.
    fn stop_worker(&mut self, index: usize, now_ms: u64) {
        self.close_run(index, now_ms, "cancelled", |run_id| Event::RunCancelled {
            run_id,
        });
        let from = self
            .workers
            .get(&index)
            .map_or(WorkerStatus::Idle, |w| w.info.status);
        if from != WorkerStatus::Stopped {
            self.emit(
                index,
                now_ms,
                Event::StatusChanged {
                    from,
                    to: WorkerStatus::Stopped,
                },
            );
        }
    }

    /// Deletes the worker: stops it if it is not stopped (cancelling a run in flight),
    /// then `worker_deleted`, and it is gone (its events stay in the host's log; its id
    /// is never reused).
    pub fn delete_worker(&mut self, now_ms: u64, worker_id: &str) -> Result<(), CoreError> {
        let index = self.index_of(worker_id)?;
        self.refuse_while_restoring()?;
        self.stop_worker(index, now_ms);
        let name = self
            .workers
            .get(&index)
            .map(|w| w.info.name.clone())
            .unwrap_or_default();
        self.emit(index, now_ms, Event::WorkerDeleted { name });
        Ok(())
    }

    /// A page of the worker's transcript (without the system prompt): from message
    /// `start`, as many as fit `max_bytes` (at least one, when there is one).
    pub fn transcript(
        &self,
        worker_id: &str,
        start: usize,
        max_bytes: u64,
    ) -> Result<Vec<Message>, CoreError> {
        let worker = self.resident(worker_id)?;
        let rest = worker.transcript.get(start..).unwrap_or_default();
        let n = size::fitting(rest, usize::MAX, max_bytes, |m| size::message(m));
        Ok(rest[..n].to_vec())
    }

    /// The worker, the first page of its transcript (see [`transcript`](Self::transcript))
    /// and its in-flight partial output.
    pub fn snapshot(&self, worker_id: &str, max_bytes: u64) -> Result<WorkerSnapshot, CoreError> {
        let worker = self.resident(worker_id)?;
        let mut snapshot = worker.snapshot_without_transcript();
        snapshot.transcript = self.transcript(worker_id, 0, max_bytes)?;
        Ok(snapshot)
    }

    /// Takes up to `max` queued events, oldest first, as many as fit `max_bytes` (at
    /// least one).
    pub fn pull_events(&mut self, max: usize, max_bytes: u64) -> Vec<EventRecord> {
        let n = size::fitting(&self.events, max, max_bytes, |r| size::event(r));
        self.events.drain(..n).collect()
    }

    /// Takes up to `max` queued effects, oldest first, as many as fit `max_bytes` (at
    /// least one).
    pub fn pull_effects(&mut self, max: usize, max_bytes: u64) -> Vec<Effect> {
        let n = size::fitting(&self.effects, max, max_bytes, |e| size::effect(e));
        self.effects.drain(..n).collect()
    }
}

/// Whether applying `event` may change its worker's info (or ends a run, which makes the
/// worker passivable): such events mark the worker changed and recently used.
fn changes_info(event: &Event) -> bool {
    matches!(
        event,
        Event::StatusChanged { .. }
            | Event::InputAccepted { .. }
            | Event::StepFinished { .. }
            | Event::ToolResult { .. }
            | Event::Usage { .. }
            | Event::RunCompleted { .. }
            | Event::RunFailed { .. }
            | Event::RunCancelled { .. }
    )
}
