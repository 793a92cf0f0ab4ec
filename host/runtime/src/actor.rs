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
//! `interrupted`, and the runtime keeps serving. So is a core whose events the log
//! refused: it holds state the log does not. When the log refuses the restore's events
//! too, the actor keeps them and refuses work until the log takes them (module
//! `store_health`); no command is ever acknowledged before its events are stored.
//!
//! The core passivates idle workers beyond its resident budgets by itself; a command
//! for a passivated worker comes back `passivated`, and the actor activates the worker
//! from its events (module `restore`) and repeats the command. Reads of a passivated
//! worker are answered with its info and the cursor, and the handle rebuilds the
//! transcript from the store off this thread. Each append carries the worker-index
//! changes the core reports, in the same transaction.

use std::mem;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};
use yoi_core::{CallError, Core, Fault};
use yoi_eventlog::{EventLog, IndexUpdate};
use yoi_protocol::{
    Completion, CoreError, Cursor, Effect, EventRecord, Input, Level, Limits, ModelBudget,
    WorkerInfo, WorkerSnapshot, WorkerSpec, size,
};

use crate::driver::Driver;
use crate::error::RuntimeError;
use crate::restore::{self, Restored, batches};
use crate::stats::RuntimeStats;
use crate::store_health::{StoreHealth, Unstored};

/// Most messages taken into one batch (one commit).
const MAX_BATCH: usize = 1024;
/// A batch stops taking messages once it holds this many completions (a message from the
/// driver carries up to 64).
const MAX_BATCH_COMPLETIONS: usize = 4096;
/// The same limit for a batch that holds a command: the command is answered after the
/// batch's commit, so the batch stays short (about a millisecond of work), yet a steady
/// stream of commands still lets the runs advance in real batches.
const COMMAND_BATCH_COMPLETIONS: usize = 512;
/// Events or effects pulled per core call (at most; the call byte budget also bounds it).
const PULL_CHUNK: usize = 4096;
/// Batches between two retention passes over the log (cheap when nothing to prune).
const PRUNE_EVERY: u64 = 256;

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
    Delete(String, Reply<()>),
    Read(Read),
    Shutdown(oneshot::Sender<()>),
}

/// What the actor takes next.
enum Next {
    Command(Msg),
    Completed(Completed),
    /// The failing event store is due another try.
    RetryStore,
    /// Every handle is gone: nobody can ask anything any more.
    Closed,
}

/// Queries, answered after the batch's commit.
pub(crate) enum Read {
    ListWorkers(Reply<Vec<WorkerInfo>>),
    GetWorker(String, Reply<WorkerInfo>),
    Worker(String, Reply<(View, Cursor)>),
    AllWorkers(Reply<(Vec<View>, Cursor)>),
}

/// A worker as the actor can show it: whole, or only its info when it is passivated
/// (the handle then rebuilds the rest from the store, up to the read's cursor).
pub(crate) enum View {
    Resident(WorkerSnapshot),
    Passivated(WorkerInfo),
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
#[derive(Debug, Clone)]
pub(crate) struct CoreSettings {
    pub limits: Limits,
    /// Prompt-token budgets of the runtime's models.
    pub budgets: Vec<ModelBudget>,
    /// Estimated bytes one call may carry across the core's boundary either way.
    pub call_bytes: u32,
}

impl Default for CoreSettings {
    fn default() -> Self {
        CoreSettings {
            limits: Limits::default(),
            budgets: Vec::new(),
            call_bytes: crate::DEFAULT_CALL_BYTES,
        }
    }
}

/// Worker-index changes pulled from the core, waiting for the next append.
#[derive(Debug, Default, Clone)]
pub(crate) struct PendingIndex {
    pub changed: Vec<WorkerInfo>,
    pub deleted: Vec<String>,
    pub next_worker: u64,
    pub next_run: u64,
    /// The index must be rebuilt whole (the core was restored from a full replay).
    pub complete: bool,
}

impl PendingIndex {
    fn update(&self) -> IndexUpdate<'_> {
        IndexUpdate {
            changed: &self.changed,
            deleted: &self.deleted,
            next_worker: self.next_worker,
            next_run: self.next_run,
            complete: self.complete,
        }
    }
}

/// Takes every worker-index change from `core` into `pending`.
pub(crate) fn pull_index<C: Core>(
    core: &mut C,
    pending: &mut PendingIndex,
    call_bytes: u32,
) -> Result<(), Fault> {
    loop {
        let changes = core.pull_index(call_bytes)?;
        pending.changed.extend(changes.changed);
        pending.deleted.extend(changes.deleted);
        pending.next_worker = changes.next_worker;
        pending.next_run = changes.next_run;
        if !changes.more {
            return Ok(());
        }
    }
}

/// Appends `events` with the core's worker-index changes (pulled now) in one
/// transaction; used at open, where a failure fails the open.
pub(crate) fn persist<C: Core>(
    core: &mut C,
    log: &mut EventLog,
    events: Vec<EventRecord>,
    complete: bool,
    call_bytes: u32,
) -> Result<(), String> {
    let mut pending = PendingIndex {
        complete,
        ..Default::default()
    };
    pull_index(core, &mut pending, call_bytes).map_err(|f| f.to_string())?;
    log.append_indexed(events, &pending.update())
        .map(|_| ())
        .map_err(|e| e.to_string())
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
    /// The next append must rebuild the worker index whole.
    pub index_complete: bool,
    /// Workspaces of workers deleted in this batch, removed after its commit.
    pub deleted: Vec<String>,
    /// Whether the event log takes appends (and what it refused, while it does not).
    pub store: StoreHealth,
    /// Set when events of this batch were lost to a failed append during a recovery:
    /// the batch's commands are answered with it even if the commit succeeds.
    pub lost: Option<RuntimeError>,
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
    /// The core was restored from a full replay (the index must be rebuilt whole).
    pub index_complete: bool,
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
            index_complete: p.index_complete,
            deleted: Vec::new(),
            store: StoreHealth::default(),
            lost: None,
        }
    }

    pub fn run(mut self) {
        loop {
            self.retry_store();
            let Some(shutdown) = self.take_batch() else {
                break;
            };
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
            Next::RetryStore => return Some(None),
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
        let retry_at = self.store.retry_at();
        let (commands, completed) = (&mut self.commands, &mut self.completed);
        self.rt.block_on(async {
            let retry = async {
                match retry_at {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                msg = commands.recv() => msg.map_or(Next::Closed, Next::Command),
                // The driver holds a sender for as long as the actor lives.
                Some(c) = completed.recv() => Next::Completed(c),
                () = retry => Next::RetryStore,
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
                let result = self.on_worker(&worker_id, |core, now| {
                    core.send_input(now, &worker_id, input.clone())
                });
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
            Msg::Delete(worker_id, reply) => {
                let result = self.command(|core, now| core.delete_worker(now, &worker_id));
                if result.is_ok() {
                    self.deleted.push(worker_id);
                }
                self.replies.push(pending(reply, result));
            }
            Msg::Read(read) => self.reads.push(read),
            Msg::Shutdown(done) => return Some(done),
        }
        None
    }

    /// A command on one worker: when the core answers that the worker is passivated,
    /// activates it from its events and runs the command again.
    fn on_worker<T>(
        &mut self,
        worker_id: &str,
        mut f: impl FnMut(&mut C, u64) -> Result<T, CallError>,
    ) -> Result<T, RuntimeError> {
        match self.command(&mut f) {
            Err(RuntimeError::Rejected(CoreError::Passivated { .. })) => {
                self.activate(worker_id)?;
                self.command(f)
            }
            other => other,
        }
    }

    /// Makes a passivated worker resident from its stored events and the ones of this
    /// batch not yet appended.
    fn activate(&mut self, worker_id: &str) -> Result<(), RuntimeError> {
        let pending: Vec<EventRecord> = self
            .events
            .iter()
            .filter(|e| e.worker_id.as_deref() == Some(worker_id))
            .cloned()
            .collect();
        let started = Instant::now();
        let result = restore::activate(
            &mut self.core,
            &self.log,
            worker_id,
            &pending,
            self.settings.call_bytes,
        );
        self.stats.core_call(started.elapsed());
        match result {
            Ok(()) => {
                self.stats.activation();
                self.pull_events();
                Ok(())
            }
            Err(CallError::Rejected(e)) => {
                tracing::error!(worker = worker_id, error = %e, "cannot activate a passivated worker");
                Err(RuntimeError::CoreFault(format!(
                    "activating worker {worker_id} from its events failed: {e}"
                )))
            }
            Err(CallError::Fault(fault)) => {
                let message = fault.to_string();
                self.recover(&message);
                Err(RuntimeError::CoreFault(message))
            }
        }
    }

    /// Runs one mutating command, after delivering earlier completions (order matters).
    fn command<T>(
        &mut self,
        f: impl FnOnce(&mut C, u64) -> Result<T, CallError>,
    ) -> Result<T, RuntimeError> {
        self.deliver_completions();
        if let Some(refusal) = self.store.refusal() {
            return Err(refusal);
        }
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

    /// Delivers the batch's completions, in calls under the call byte budget.
    fn deliver_completions(&mut self) {
        if self.completions.is_empty() || self.broken.is_some() || self.store.is_failing() {
            self.completions.clear();
            return;
        }
        let all = mem::take(&mut self.completions);
        for batch in batches(all, self.settings.call_bytes, size::completion) {
            self.stats.completions_delivered(batch.len());
            let started = Instant::now();
            let result = self.core.deliver(now_ms(), batch);
            self.stats.core_call(started.elapsed());
            match result {
                Ok(()) => self.pull_events(),
                Err(fault) => {
                    self.recover(&fault.to_string());
                    return;
                }
            }
        }
    }

    /// Moves the events the core produced into the batch, in calls under the call byte
    /// budget. A fault here is recovered like any other.
    fn pull_events(&mut self) {
        loop {
            let started = Instant::now();
            let pulled = self.core.pull_events(PULL_CHUNK, self.settings.call_bytes);
            self.stats.core_call(started.elapsed());
            match pulled {
                Ok(events) if events.is_empty() => return,
                Ok(events) => self.events.extend(events),
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
            let pulled = self.core.pull_effects(PULL_CHUNK, self.settings.call_bytes);
            self.stats.core_call(started.elapsed());
            match pulled {
                Ok(batch) if batch.is_empty() => return effects,
                Ok(batch) => effects.extend(batch),
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
        if self.store.is_failing() {
            // Every command of the batch was refused before it reached the core: there
            // is nothing new to store, and the kept events wait for their retry.
            for reply in mem::take(&mut self.replies) {
                reply(None);
            }
            for read in mem::take(&mut self.reads) {
                self.answer(read);
            }
            return;
        }
        let appended = self.append_pending();
        let commit_error = self.lost.take().or(appended.as_ref().err().cloned());
        for reply in mem::take(&mut self.replies) {
            reply(commit_error.as_ref());
        }
        if let Err(e) = &appended {
            // The core holds state the log does not: rebuild it from what is on disk.
            tracing::error!(error = %e, "event log append failed; restoring the core from the log");
            self.stats.store_failure();
            self.deleted.clear();
            self.recover(&e.to_string());
            self.persist_recovery();
        }
        for worker_id in mem::take(&mut self.deleted) {
            self.driver.remove_workspace(worker_id);
        }
        if !self.store.is_failing() {
            for effect in self.pull_effects() {
                match effect {
                    Effect::Abort { call_id } => self.driver.abort(call_id),
                    effect => self.driver.start(effect),
                }
            }
        }
        // Effects can themselves fault the core; anything pulled by recovery is persisted
        // before the reads below look at the log.
        if !self.events.is_empty() {
            self.persist_recovery();
        }
        for read in mem::take(&mut self.reads) {
            self.answer(read);
        }
        if self.broken.is_none()
            && let Ok(residency) = self.core.residency()
        {
            self.stats.residency(residency);
        }
    }

    /// Appends the pending events with the core's worker-index changes (one
    /// transaction). When the core cannot say what changed (it faulted), the events are
    /// appended alone and the index falls behind: the next restore replays the log
    /// whole and rebuilds it.
    fn append_pending(&mut self) -> Result<(), RuntimeError> {
        match self.take_pending() {
            Some(batch) => self.write(batch),
            None => Ok(()),
        }
    }

    /// The pending events with the core's worker-index changes, if there is anything
    /// to append.
    fn take_pending(&mut self) -> Option<Unstored> {
        let mut index = PendingIndex {
            complete: self.index_complete,
            ..Default::default()
        };
        let indexed = self.broken.is_none()
            && pull_index(&mut self.core, &mut index, self.settings.call_bytes).is_ok();
        if self.events.is_empty()
            && (!indexed
                || (index.changed.is_empty() && index.deleted.is_empty() && !index.complete))
        {
            return None;
        }
        Some(Unstored {
            events: mem::take(&mut self.events),
            index: indexed.then_some(index),
        })
    }

    /// Appends `batch` in one transaction.
    fn write(&mut self, batch: Unstored) -> Result<(), RuntimeError> {
        let appended = match &batch.index {
            Some(index) => self.log.append_indexed(batch.events, &index.update()),
            None => self.log.append(batch.events),
        };
        match appended {
            Ok(_) => {
                if batch.index.is_some() {
                    self.index_complete = false;
                }
                Ok(())
            }
            Err(e) => Err(RuntimeError::StoreUnavailable(format!(
                "the event store could not store the events, so nothing was acknowledged: {e}"
            ))),
        }
    }

    /// Appends what a recovery produced (the `core_restarted` diagnostic, interrupted
    /// runs). The restored core already holds it, so when the log refuses it is kept,
    /// work is refused, and the log is tried again later ([`Self::retry_store`]).
    fn persist_recovery(&mut self) {
        let Some(batch) = self.take_pending() else {
            return;
        };
        if let Err(e) = self.write(batch.clone()) {
            tracing::error!(
                error = %e,
                "the event store refuses appends; refusing work until it takes them again"
            );
            self.stats.store_failure();
            self.store
                .failed(e.to_string(), batch, Instant::now(), now_ms());
            self.stats.store_failing(self.store.failing_since_ms());
            self.driver.abort_all();
        }
    }

    /// Tries the failing store again once its backoff has passed.
    fn retry_store(&mut self) {
        let Some(batch) = self.store.due(Instant::now()) else {
            return;
        };
        match self.write(batch.clone()) {
            Ok(()) => {
                tracing::info!("the event store takes appends again; accepting work");
                self.store.recovered();
                self.stats.store_failing(None);
            }
            Err(e) => {
                self.stats.store_failure();
                self.store
                    .failed(e.to_string(), batch, Instant::now(), now_ms());
            }
        }
    }

    fn answer(&mut self, read: Read) {
        let refusal = self.store.refusal();
        if refusal.is_some() || self.broken.is_some() {
            let error = refusal.unwrap_or_else(|| {
                RuntimeError::CoreFault(self.broken.clone().unwrap_or_default())
            });
            match read {
                Read::ListWorkers(r) => drop(r.send(Err(error))),
                Read::GetWorker(_, r) => drop(r.send(Err(error))),
                Read::Worker(_, r) => drop(r.send(Err(error))),
                Read::AllWorkers(r) => drop(r.send(Err(error))),
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
            Read::Worker(id, reply) => {
                let _ = reply.send(self.view(&id).map(|v| (v, cursor)));
            }
            Read::AllWorkers(reply) => {
                let result = self.view_all();
                let _ = reply.send(result.map(|v| (v, cursor)));
            }
        }
    }

    /// One worker: its snapshot with the whole transcript (read in pages under the call
    /// byte budget), or its info when it is passivated.
    fn view(&mut self, id: &str) -> Result<View, RuntimeError> {
        let budget = self.settings.call_bytes;
        let mut snapshot = match self.core.snapshot(id, budget) {
            Ok(snapshot) => snapshot,
            Err(CallError::Rejected(CoreError::Passivated { .. })) => {
                return self
                    .core
                    .get_worker(id)
                    .map(View::Passivated)
                    .map_err(call_error);
            }
            Err(e) => return Err(call_error(e)),
        };
        let total = snapshot.worker.message_count as usize;
        while snapshot.transcript.len() < total {
            let page = self
                .core
                .transcript(id, snapshot.transcript.len(), budget)
                .map_err(call_error)?;
            if page.is_empty() {
                break;
            }
            snapshot.transcript.extend(page);
        }
        Ok(View::Resident(snapshot))
    }

    fn view_all(&mut self) -> Result<Vec<View>, RuntimeError> {
        let workers = self
            .core
            .list_workers()
            .map_err(|f| RuntimeError::CoreFault(f.to_string()))?;
        workers.iter().map(|w| self.view(&w.id)).collect()
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
        // Events pulled before the fault are real: persist them so the restore sees them
        // (without index changes: the faulted core cannot tell them).
        self.broken = Some(reason.to_string());
        if let Err(e) = self.append_pending() {
            // Those events are gone (the restore below does not see them): the batch's
            // commands must not be acknowledged.
            tracing::error!(error = %e, "event log append failed during recovery");
            self.stats.store_failure();
            self.lost = Some(e);
        }
        let restored = (self.make_core)()
            .map_err(|f| f.to_string())
            .and_then(|mut core| {
                restore::restore_core(&mut core, &self.log, &self.settings)
                    .map(|restored| (core, restored))
            });
        match restored {
            Ok((core, Restored { events, full, .. })) => {
                self.core = core;
                self.broken = None;
                self.index_complete = full;
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
            request_id: None,
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
            .pull_effects(16, u32::MAX)
            .unwrap()
            .iter()
            .find_map(|e| match e {
                Effect::CallModel(r) => Some(r.call_id),
                _ => None,
            })
            .expect("a model call");
        core.pull_events(PULL_CHUNK, u32::MAX).unwrap();

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
            index_complete: false,
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
