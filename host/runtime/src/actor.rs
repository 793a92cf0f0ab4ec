//! The actor: one thread owns the core and the event log.
//!
//! Commands from handles and completions from the driver arrive over two bounded
//! channels, and commands are always taken first: a client's input, cancel or read never
//! waits behind a backlog of streamed tokens (under load that backlog is the whole
//! completions channel). The actor takes messages in batches: consecutive completions
//! become one `deliver` call; after each core call it pulls the events produced; at the end of a
//! batch it appends every event in one transaction (group commit) and only then answers
//! the batch's commands, so an acknowledged command is on disk. Reads are answered after
//! the commit, so a snapshot is consistent with the log's last cursor. Effects go to the
//! driver last.
//!
//! A core that faults (trap, deadline, out of memory) is replaced by a fresh one restored
//! from the event log; a `diagnostic` event tells observers, in-flight runs end
//! `interrupted`, and the runtime keeps serving.

use std::mem;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};
use yoi_core::{CallError, Core, Fault};
use yoi_eventlog::EventLog;
use yoi_protocol::{
    Completion, Cursor, Effect, EventRecord, Input, Level, Limits, Message, ModelBudget,
    RestoreSummary, WorkerInfo, WorkerSnapshot, WorkerSpec,
};

use crate::driver::Driver;
use crate::error::RuntimeError;
use crate::stats::RuntimeStats;

/// Most messages taken into one batch (one commit).
const MAX_BATCH: usize = 1024;
/// A batch stops taking messages once it holds this many completions (a message from the
/// driver carries up to 64).
const MAX_BATCH_COMPLETIONS: usize = 4096;
/// The same limit for a batch that holds a command: the command is answered after the
/// batch's commit, so the batch stays short (about a millisecond of work), yet a steady
/// stream of commands still lets the runs advance in real batches.
const COMMAND_BATCH_COMPLETIONS: usize = 512;
/// Events or effects pulled per core call.
const PULL_CHUNK: usize = 4096;
/// Batches between two retention passes over the log (cheap when nothing to prune).
const PRUNE_EVERY: u64 = 256;
/// Events fed to `restore` per call.
const RESTORE_CHUNK: usize = 1024;

pub(crate) type Reply<T> = oneshot::Sender<Result<T, RuntimeError>>;

/// Completions of one effect, in order, from the driver, tagged with the driver
/// generation that started the call: a restarted core reuses call ids, so completions of
/// calls started for an earlier core must not reach the new one.
pub(crate) struct Completed {
    pub generation: u64,
    pub completions: Vec<Completion>,
}

/// Everything the actor can be asked.
pub(crate) enum Msg {
    CreateWorker(WorkerSpec, Reply<WorkerInfo>),
    SendInput(String, Input, Reply<String>),
    Cancel(String, Reply<String>),
    Stop(String, Reply<WorkerInfo>),
    Read(Read),
    Shutdown(oneshot::Sender<()>),
}

/// What the actor takes next.
enum Next {
    Command(Msg),
    Completed(Completed),
    /// Every handle is gone: nobody can ask anything any more.
    Closed,
}

/// Queries, answered after the batch's commit.
pub(crate) enum Read {
    ListWorkers(Reply<Vec<WorkerInfo>>),
    GetWorker(String, Reply<WorkerInfo>),
    Transcript(String, Reply<Vec<Message>>),
    Snapshot(String, Reply<(WorkerSnapshot, Cursor)>),
    SnapshotAll(Reply<(Vec<WorkerSnapshot>, Cursor)>),
}

/// Sends a deferred answer once the batch's commit outcome is known.
type PendingReply = Box<dyn FnOnce(Option<&RuntimeError>) + Send>;

fn pending<T: Send + 'static>(reply: Reply<T>, result: Result<T, RuntimeError>) -> PendingReply {
    Box::new(move |commit_error| {
        let answer = match (result, commit_error) {
            (Ok(_), Some(e)) => Err(e.clone()),
            (result, _) => result,
        };
        let _ = reply.send(answer);
    })
}

pub(crate) type CoreFactory<C> = Box<dyn FnMut() -> Result<C, Fault> + Send>;

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// What a core is configured with after it is made or replaced.
#[derive(Debug, Clone, Default)]
pub(crate) struct CoreSettings {
    pub limits: Limits,
    /// Prompt-token budgets of the runtime's models.
    pub budgets: Vec<ModelBudget>,
}

pub(crate) struct Actor<C: Core> {
    pub core: C,
    pub make_core: CoreFactory<C>,
    pub log: EventLog,
    pub driver: Driver,
    pub commands: mpsc::Receiver<Msg>,
    pub completed: mpsc::Receiver<Completed>,
    /// Only to wait on both channels at once from the actor's own thread.
    pub rt: Handle,
    pub settings: CoreSettings,
    pub stats: Arc<RuntimeStats>,
    /// Set when a replacement core could not be restored: every command then fails.
    pub broken: Option<String>,
    pub events: Vec<EventRecord>,
    pub replies: Vec<PendingReply>,
    pub reads: Vec<Read>,
    pub completions: Vec<Completion>,
    pub batches: u64,
    pub prune_pending: bool,
}

/// What an actor is built from: its core, log and driver, and the two ends of its
/// inboxes.
pub(crate) struct Parts<C: Core> {
    pub core: C,
    pub make_core: CoreFactory<C>,
    pub log: EventLog,
    pub driver: Driver,
    pub commands: mpsc::Receiver<Msg>,
    pub completed: mpsc::Receiver<Completed>,
    pub rt: Handle,
    pub settings: CoreSettings,
    pub stats: Arc<RuntimeStats>,
}

impl<C: Core> Actor<C> {
    pub fn new(p: Parts<C>) -> Self {
        Actor {
            core: p.core,
            make_core: p.make_core,
            log: p.log,
            driver: p.driver,
            commands: p.commands,
            completed: p.completed,
            rt: p.rt,
            settings: p.settings,
            stats: p.stats,
            broken: None,
            events: Vec::new(),
            replies: Vec::new(),
            reads: Vec::new(),
            completions: Vec::new(),
            batches: 0,
            prune_pending: false,
        }
    }

    pub fn run(mut self) {
        while let Some(shutdown) = self.take_batch() {
            self.deliver_completions();
            self.commit();
            self.batches += 1;
            if self.prune_pending || self.batches.is_multiple_of(PRUNE_EVERY) {
                // A pass deletes a bounded number of rows; keep going while it says more.
                self.prune_pending = match self.log.prune() {
                    Ok(pruned) => pruned.remaining,
                    Err(e) => {
                        tracing::warn!(error = %e, "event log retention failed");
                        false
                    }
                };
            }
            if let Some(done) = shutdown {
                self.driver.abort_all();
                let _ = done.send(());
                return;
            }
        }
        self.driver.abort_all();
    }

    /// Takes one batch: the next message (waiting for one), then whatever else is
    /// waiting, commands before completions, up to the batch limits (lower once the batch
    /// holds a command, which its commit answers). Returns the shutdown request if the
    /// batch ends with one, `None` once every handle is gone.
    fn take_batch(&mut self) -> Option<Option<oneshot::Sender<()>>> {
        let (mut shutdown, mut commands) = match self.wait() {
            Next::Command(msg) => (self.handle(msg), true),
            Next::Completed(completed) => {
                self.take(completed);
                (None, false)
            }
            Next::Closed => return None,
        };
        let mut taken = 1;
        let limit = |commands: bool| {
            if commands {
                COMMAND_BATCH_COMPLETIONS
            } else {
                MAX_BATCH_COMPLETIONS
            }
        };
        while shutdown.is_none() && taken < MAX_BATCH && self.completions.len() < limit(commands) {
            if let Ok(msg) = self.commands.try_recv() {
                shutdown = self.handle(msg);
                commands = true;
            } else if let Ok(completed) = self.completed.try_recv() {
                self.take(completed);
            } else {
                break;
            }
            taken += 1;
        }
        Some(shutdown)
    }

    /// The next message, a command if one is waiting; blocks while there is none.
    fn wait(&mut self) -> Next {
        match self.commands.try_recv() {
            Ok(msg) => return Next::Command(msg),
            Err(mpsc::error::TryRecvError::Disconnected) => return Next::Closed,
            Err(mpsc::error::TryRecvError::Empty) => {}
        }
        if let Ok(completed) = self.completed.try_recv() {
            return Next::Completed(completed);
        }
        let (commands, completed) = (&mut self.commands, &mut self.completed);
        self.rt.block_on(async {
            tokio::select! {
                biased;
                msg = commands.recv() => msg.map_or(Next::Closed, Next::Command),
                // The driver holds a sender for as long as the actor lives.
                Some(c) = completed.recv() => Next::Completed(c),
            }
        })
    }

    /// Queues a call's completions for the batch's `deliver` (dropped when they come from
    /// calls of an earlier core).
    fn take(&mut self, completed: Completed) {
        if completed.generation != self.driver.generation() {
            return;
        }
        for completion in completed.completions {
            if is_final(&completion) {
                self.driver.finished(completion.call_id());
            }
            self.completions.push(completion);
        }
    }

    fn handle(&mut self, msg: Msg) -> Option<oneshot::Sender<()>> {
        match msg {
            Msg::CreateWorker(spec, reply) => {
                let result = self.command(|core, now| core.create_worker(now, spec));
                self.replies.push(pending(reply, result));
            }
            Msg::SendInput(worker_id, input, reply) => {
                let result = self.command(|core, now| core.send_input(now, &worker_id, input));
                self.replies.push(pending(reply, result));
            }
            Msg::Cancel(worker_id, reply) => {
                let result = self.command(|core, now| core.cancel(now, &worker_id));
                self.replies.push(pending(reply, result));
            }
            Msg::Stop(worker_id, reply) => {
                let result = self.command(|core, now| core.stop(now, &worker_id));
                self.replies.push(pending(reply, result));
            }
            Msg::Read(read) => self.reads.push(read),
            Msg::Shutdown(done) => return Some(done),
        }
        None
    }

    /// Runs one mutating command, after delivering earlier completions (order matters).
    fn command<T>(
        &mut self,
        f: impl FnOnce(&mut C, u64) -> Result<T, CallError>,
    ) -> Result<T, RuntimeError> {
        self.deliver_completions();
        if let Some(why) = &self.broken {
            return Err(RuntimeError::CoreFault(why.clone()));
        }
        let started = Instant::now();
        let result = f(&mut self.core, now_ms());
        self.stats.core_call(started.elapsed());
        match result {
            Ok(value) => {
                self.pull_events();
                Ok(value)
            }
            Err(CallError::Rejected(e)) => {
                self.pull_events();
                Err(RuntimeError::Rejected(e))
            }
            Err(CallError::Fault(fault)) => {
                let message = fault.to_string();
                self.recover(&message);
                Err(RuntimeError::CoreFault(message))
            }
        }
    }

    fn deliver_completions(&mut self) {
        if self.completions.is_empty() || self.broken.is_some() {
            self.completions.clear();
            return;
        }
        let batch = mem::take(&mut self.completions);
        self.stats.completions_delivered(batch.len());
        let started = Instant::now();
        let result = self.core.deliver(now_ms(), batch);
        self.stats.core_call(started.elapsed());
        match result {
            Ok(()) => self.pull_events(),
            Err(fault) => self.recover(&fault.to_string()),
        }
    }

    /// Moves the events the core produced into the batch. A fault here is recovered
    /// like any other.
    fn pull_events(&mut self) {
        loop {
            let started = Instant::now();
            let pulled = self.core.pull_events(PULL_CHUNK);
            self.stats.core_call(started.elapsed());
            match pulled {
                Ok(events) => {
                    let full = events.len() == PULL_CHUNK;
                    self.events.extend(events);
                    if !full {
                        return;
                    }
                }
                Err(fault) => {
                    self.recover(&fault.to_string());
                    return;
                }
            }
        }
    }

    fn pull_effects(&mut self) -> Vec<Effect> {
        let mut effects = Vec::new();
        if self.broken.is_some() {
            return effects;
        }
        loop {
            let started = Instant::now();
            let pulled = self.core.pull_effects(PULL_CHUNK);
            self.stats.core_call(started.elapsed());
            match pulled {
                Ok(batch) => {
                    let full = batch.len() == PULL_CHUNK;
                    effects.extend(batch);
                    if !full {
                        return effects;
                    }
                }
                Err(fault) => {
                    self.recover(&fault.to_string());
                    return effects;
                }
            }
        }
    }

    /// Appends the batch's events (one transaction), answers its commands, starts its
    /// effects and answers its reads.
    fn commit(&mut self) {
        let outcome = self.append_pending();
        let commit_error = outcome.err();
        for reply in mem::take(&mut self.replies) {
            reply(commit_error.as_ref());
        }
        if let Some(e) = &commit_error {
            // The core holds state the log does not: rebuild it from what is on disk.
            tracing::error!(error = %e, "event log append failed; restoring the core from the log");
            self.recover(&e.to_string());
            let _ = self.append_pending();
        }
        for effect in self.pull_effects() {
            match effect {
                Effect::Abort { call_id } => self.driver.abort(call_id),
                effect => self.driver.start(effect),
            }
        }
        // Effects can themselves fault the core; anything pulled by recovery is persisted
        // before the reads below look at the log.
        if !self.events.is_empty() {
            let _ = self.append_pending();
        }
        for read in mem::take(&mut self.reads) {
            self.answer(read);
        }
    }

    fn append_pending(&mut self) -> Result<(), RuntimeError> {
        if self.events.is_empty() {
            return Ok(());
        }
        self.log
            .append(mem::take(&mut self.events))
            .map(|_| ())
            .map_err(|e| RuntimeError::Log(e.to_string()))
    }

    fn answer(&mut self, read: Read) {
        if let Some(why) = &self.broken {
            let error = RuntimeError::CoreFault(why.clone());
            match read {
                Read::ListWorkers(r) => drop(r.send(Err(error))),
                Read::GetWorker(_, r) => drop(r.send(Err(error))),
                Read::Transcript(_, r) => drop(r.send(Err(error))),
                Read::Snapshot(_, r) => drop(r.send(Err(error))),
                Read::SnapshotAll(r) => drop(r.send(Err(error))),
            }
            return;
        }
        let cursor = self.log.last_cursor();
        let fault = |f: Fault| RuntimeError::CoreFault(f.to_string());
        match read {
            Read::ListWorkers(reply) => {
                let _ = reply.send(self.core.list_workers().map_err(fault));
            }
            Read::GetWorker(id, reply) => {
                let _ = reply.send(self.core.get_worker(&id).map_err(call_error));
            }
            Read::Transcript(id, reply) => {
                let _ = reply.send(self.core.transcript(&id).map_err(call_error));
            }
            Read::Snapshot(id, reply) => {
                let result = self.core.snapshot(&id).map_err(call_error);
                let _ = reply.send(result.map(|s| (s, cursor)));
            }
            Read::SnapshotAll(reply) => {
                let result = self.snapshot_all();
                let _ = reply.send(result.map(|s| (s, cursor)));
            }
        }
    }

    fn snapshot_all(&mut self) -> Result<Vec<WorkerSnapshot>, RuntimeError> {
        let workers = self
            .core
            .list_workers()
            .map_err(|f| RuntimeError::CoreFault(f.to_string()))?;
        workers
            .iter()
            .map(|w| self.core.snapshot(&w.id).map_err(call_error))
            .collect()
    }

    /// Replaces a faulted core with a fresh one restored from the event log.
    fn recover(&mut self, reason: &str) {
        tracing::warn!(
            reason,
            "runtime core faulted; restarting it from the event log"
        );
        self.stats.fault();
        self.driver.abort_all();
        self.completions.clear();
        // Events pulled before the fault are real: persist them so the restore sees them.
        if let Err(e) = self.append_pending() {
            tracing::error!(error = %e, "event log append failed during recovery");
        }
        let restored = (self.make_core)()
            .map_err(|f| f.to_string())
            .and_then(|mut core| {
                restore_core(&mut core, &self.log, &self.settings).map(|(_, events)| (core, events))
            });
        match restored {
            Ok((core, events)) => {
                self.core = core;
                self.broken = None;
                self.events.push(EventRecord {
                    worker_id: None,
                    at_ms: now_ms(),
                    event: yoi_protocol::Event::Diagnostic {
                        level: Level::Error,
                        code: "core_restarted".into(),
                        message: format!(
                            "the runtime core faulted and was restored from the event log: {reason}"
                        ),
                    },
                });
                self.events.extend(events);
            }
            Err(e) => {
                tracing::error!(error = %e, "could not restore a replacement core");
                self.broken = Some(format!("{reason}; restoring a replacement failed: {e}"));
            }
        }
    }
}

fn call_error(e: CallError) -> RuntimeError {
    match e {
        CallError::Rejected(e) => RuntimeError::Rejected(e),
        CallError::Fault(f) => RuntimeError::CoreFault(f.to_string()),
    }
}

/// Whether a completion ends its call (the driver can forget the call).
fn is_final(c: &Completion) -> bool {
    matches!(
        c,
        Completion::ModelDone { .. } | Completion::ModelFailed { .. } | Completion::ToolDone { .. }
    )
}

/// Feeds the whole log to a fresh core and closes runs that were in flight. Returns the
/// summary and the events the core produced while closing them (not yet appended).
pub(crate) fn restore_core<C: Core>(
    core: &mut C,
    log: &EventLog,
    settings: &CoreSettings,
) -> Result<(RestoreSummary, Vec<EventRecord>), String> {
    core.configure(settings.limits).map_err(|f| f.to_string())?;
    core.configure_models(settings.budgets.clone())
        .map_err(|f| f.to_string())?;
    let mut after = 0;
    loop {
        let chunk = log
            .read_for_restore(after, RESTORE_CHUNK)
            .map_err(|e| e.to_string())?;
        let Some(last) = chunk.last() else { break };
        after = last.seq;
        let records = chunk
            .iter()
            .map(|e| EventRecord {
                worker_id: e.worker_id.clone(),
                at_ms: e.at_ms,
                event: e.event.clone(),
            })
            .collect();
        core.restore(records).map_err(|e| match e {
            CallError::Rejected(e) => {
                format!("event log does not fit the core (after seq {after}): {e}")
            }
            CallError::Fault(f) => f.to_string(),
        })?;
    }
    let summary = core.finish_restore(now_ms()).map_err(|f| f.to_string())?;
    let mut events = Vec::new();
    loop {
        let pulled = core.pull_events(PULL_CHUNK).map_err(|f| f.to_string())?;
        let full = pulled.len() == PULL_CHUNK;
        events.extend(pulled);
        if !full {
            break;
        }
    }
    Ok((summary, events))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::DriverConfig;
    use yoi_core::NativeCore;
    use yoi_driver::ModelCatalog;
    use yoi_driver::Workspaces;
    use yoi_eventlog::LogConfig;

    fn spec(name: &str) -> WorkerSpec {
        WorkerSpec {
            name: name.into(),
            model: "scripted".into(),
            system_prompt: None,
            tools: vec![],
            max_steps: None,
            context_tokens: None,
        }
    }

    /// Under load the completions channel holds a backlog of tokens; a command that
    /// arrives meanwhile is taken before it, not after.
    #[tokio::test]
    async fn waiting_commands_are_taken_before_queued_completions() {
        let dir = tempfile::tempdir().unwrap();
        // Worker a with a model call in flight.
        let mut core = NativeCore::new();
        let a = core.create_worker(0, spec("a")).unwrap().id;
        let input = Input {
            text: "hi".into(),
            request_id: None,
        };
        core.send_input(0, &a, input).unwrap();
        let call_id = core
            .pull_effects(16)
            .unwrap()
            .iter()
            .find_map(|e| match e {
                Effect::CallModel(r) => Some(r.call_id),
                _ => None,
            })
            .expect("a model call");
        core.pull_events(PULL_CHUNK).unwrap();

        let (commands_tx, commands) = mpsc::channel(8);
        let (completed_tx, completed) = mpsc::channel(8);
        let rt = Handle::current();
        let tools = Arc::new(Workspaces::new(&dir.path().join("workspaces")).unwrap());
        let driver = Driver::new(
            rt.clone(),
            completed_tx.clone(),
            Arc::new(ModelCatalog::new()),
            tools,
            DriverConfig::default(),
        );
        let log = EventLog::open(&dir.path().join("events.db"), LogConfig::default()).unwrap();
        let mut actor = Actor::new(Parts {
            core,
            make_core: Box::new(|| Ok(NativeCore::new())),
            log,
            driver,
            commands,
            completed,
            rt,
            settings: CoreSettings::default(),
            stats: Arc::new(RuntimeStats::default()),
        });

        // A token of a's answer is queued first; then a client creates worker b.
        let token = Completion::TextDelta {
            call_id,
            text: "tok".into(),
        };
        completed_tx
            .send(Completed {
                generation: 0,
                completions: vec![token],
            })
            .await
            .unwrap();
        let (reply, _answer) = oneshot::channel();
        commands_tx
            .send(Msg::CreateWorker(spec("b"), reply))
            .await
            .unwrap();

        assert!(actor.take_batch().is_some(), "the handles are still there");
        actor.deliver_completions();
        let kinds: Vec<&str> = actor.events.iter().map(|e| e.event.kind()).collect();
        assert_eq!(
            kinds,
            ["worker_created", "text_delta"],
            "the command went first"
        );

        // Once every handle is gone the actor has nothing more to do.
        drop(commands_tx);
        assert!(actor.take_batch().is_none());
    }
}
