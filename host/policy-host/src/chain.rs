//! The policy chain: configured policy instances in order, and the decisions the host
//! asks of them.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use yoi_policy::wire::{
    CommandRequestRef, EventHead, ItemRef, ObserveRequestRef, write_event_request,
};
use yoi_policy::{Command, CommandVerdict, Interest, Principal, Role, Verdict};
use yoi_protocol::{Envelope, Event, Message, RuntimeInfo, WorkerInfo, WorkerSnapshot};

use crate::cache::{DecisionCache, EventKey};
use crate::call::CallError;
use crate::instance::Instance;
use crate::library::Plugin;
use crate::metrics::PolicyMetrics;

/// How a chain is built.
#[derive(Debug, Clone)]
pub struct ChainOptions {
    /// Events whose decisions are kept (per role). The default matches the host's frame
    /// cache and live buffer: streams up to that far apart share decisions.
    pub cache_slots: usize,
}

impl Default for ChainOptions {
    fn default() -> Self {
        ChainOptions {
            cache_slots: 16_384,
        }
    }
}

/// One event as the host holds it, without its JSON (asked for only when a policy
/// needs it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventRef<'a> {
    pub runtime_id: &'a str,
    /// The epoch of the runtime's event store: with `runtime_id` and `seq`, what makes
    /// an event's decision reusable.
    pub epoch: u64,
    pub seq: u64,
    pub worker_id: Option<&'a str>,
    pub at_ms: u64,
    /// The event's `type` tag ([`Event::kind`]).
    pub kind: &'a str,
}

impl<'a> EventRef<'a> {
    pub fn new(runtime_id: &'a str, epoch: u64, envelope: &'a Envelope) -> Self {
        EventRef {
            runtime_id,
            epoch,
            seq: envelope.seq,
            worker_id: envelope.worker_id.as_deref(),
            at_ms: envelope.at_ms,
            kind: envelope.event.kind(),
        }
    }
}

/// What principals of one role see of one event. Cheap to clone (shared by every stream
/// of the role).
#[derive(Debug, Clone)]
pub enum EventDecision {
    /// The event as it is.
    Allow,
    /// A rewritten event in its place (same sequence number and cursor).
    Redact(Arc<Redacted>),
    /// Nothing; the stream's cursor still moves past it.
    Deny,
}

/// A rewritten event, with its JSON ready for frames.
#[derive(Debug)]
pub struct Redacted {
    event: Event,
    json: Arc<str>,
}

impl Redacted {
    pub fn event(&self) -> &Event {
        &self.event
    }

    /// The event's JSON (`{"type":…}`), to put in a frame as it is.
    pub fn json(&self) -> &str {
        &self.json
    }

    /// The event's JSON, shared (every stream of the role puts the same text in its
    /// frames).
    pub fn shared_json(&self) -> Arc<str> {
        self.json.clone()
    }
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandRefusal {
    /// A policy said no: answer `403 forbidden` with `reason`.
    #[error("{reason}")]
    Denied { policy: String, reason: String },
    /// A policy could not decide (answer `policy_error`). `error` is for the host's log
    /// (the chain has logged and counted it already), not for the client.
    #[error("the policy `{policy}` could not decide on this command")]
    Failed { policy: String, error: CallError },
}

/// Configured policies in order. Built by [`Policies`](crate::Policies) (or
/// [`PolicyChain::empty`]); immutable: a reload builds a new chain.
#[derive(Debug)]
pub struct PolicyChain {
    links: Vec<Instance>,
    cache: DecisionCache,
    metrics: Arc<PolicyMetrics>,
}

impl PolicyChain {
    /// No policies: everyone sees and may do everything.
    pub fn empty(metrics: Arc<PolicyMetrics>) -> Self {
        PolicyChain::new(Vec::new(), &ChainOptions { cache_slots: 1 }, metrics)
    }

    pub(crate) fn new(
        links: Vec<Instance>,
        options: &ChainOptions,
        metrics: Arc<PolicyMetrics>,
    ) -> Self {
        let slots = if links.is_empty() {
            1
        } else {
            options.cache_slots
        };
        PolicyChain {
            links,
            cache: DecisionCache::new(slots),
            metrics,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.links.is_empty()
    }

    /// The plugins of the chain's entries, in order.
    pub fn plugins(&self) -> impl Iterator<Item = &Plugin> {
        self.links.iter().map(Instance::plugin)
    }

    /// What `principal` sees of one event. `json` gives the event's JSON as the host
    /// encoded it for its frames; it is called only when a policy decides this kind of
    /// event for this role, and then passed to plugins as it is (no second encoding).
    ///
    /// Decided once per (event, role) and shared: later calls for the same event and
    /// role are answered from the cache. A policy that fails denies the event (for this
    /// role) and is counted and logged.
    pub fn observe_event<S: AsRef<str>>(
        &self,
        principal: &Principal,
        event: &EventRef<'_>,
        json: impl FnOnce() -> S,
    ) -> EventDecision {
        let role = principal.role;
        if !self.links.iter().any(|l| wants_event(l, role, event.kind)) {
            return EventDecision::Allow;
        }
        let key = EventKey {
            runtime_id: event.runtime_id,
            epoch: event.epoch,
            seq: event.seq,
        };
        if let Some(decision) = self.cache.get(key, role) {
            self.metrics.cache_hit();
            return decision;
        }
        let decision = self.decide_event(principal, event, json().as_ref());
        self.cache.put(key, role, decision.clone());
        decision
    }

    fn decide_event(
        &self,
        principal: &Principal,
        event: &EventRef<'_>,
        json: &str,
    ) -> EventDecision {
        let head = EventHead {
            runtime_id: event.runtime_id,
            seq: event.seq,
            worker_id: event.worker_id,
            at_ms: event.at_ms,
        };
        let mut redacted: Option<(Event, String)> = None;
        let mut request = Vec::with_capacity(json.len() + 256);
        for link in &self.links {
            let (kind, current) = match &redacted {
                Some((event, json)) => (event.kind(), json.as_str()),
                None => (event.kind, json),
            };
            if !wants_event(link, principal.role, kind) {
                continue;
            }
            request.clear();
            write_event_request(&mut request, principal, head, current);
            match self.ask(link, "observe", |i| i.observe::<Verdict<Event>>(&request)) {
                Some(Verdict::Allow) => {}
                Some(Verdict::Redact(event)) => match serde_json::to_string(&event) {
                    Ok(json) => redacted = Some((event, json)),
                    Err(_) => return EventDecision::Deny,
                },
                Some(Verdict::Deny) | None => return EventDecision::Deny,
            }
        }
        match redacted {
            None => EventDecision::Allow,
            Some((event, json)) => EventDecision::Redact(Arc::new(Redacted {
                event,
                json: json.into(),
            })),
        }
    }

    /// A worker's snapshot as `principal` sees it (`None`: the worker is left out).
    pub fn observe_snapshot(
        &self,
        principal: &Principal,
        runtime_id: &str,
        snapshot: WorkerSnapshot,
    ) -> Option<WorkerSnapshot> {
        self.observe_item(
            principal,
            |i| i.snapshots,
            snapshot,
            |snapshot, out| {
                let item = ItemRef::Snapshot {
                    runtime_id,
                    snapshot,
                };
                write_request(out, principal, item)
            },
        )
    }

    /// A worker's transcript as `principal` sees it (`None`: not to be shown).
    pub fn observe_transcript(
        &self,
        principal: &Principal,
        runtime_id: &str,
        worker_id: &str,
        messages: Vec<Message>,
    ) -> Option<Vec<Message>> {
        self.observe_item(
            principal,
            |i| i.transcripts,
            messages,
            |messages, out| {
                let item = ItemRef::Transcript {
                    runtime_id,
                    worker_id,
                    messages,
                };
                write_request(out, principal, item)
            },
        )
    }

    /// The workers of a listing (or of one worker's answer) `principal` may see.
    pub fn observe_workers(
        &self,
        principal: &Principal,
        runtime_id: &str,
        workers: Vec<WorkerInfo>,
    ) -> Vec<WorkerInfo> {
        self.observe_item(
            principal,
            |i| i.workers,
            workers,
            |workers, out| {
                let item = ItemRef::Workers {
                    runtime_id,
                    workers,
                };
                write_request(out, principal, item)
            },
        )
        .unwrap_or_default()
    }

    /// The runtimes of a listing `principal` may see.
    pub fn observe_runtimes(
        &self,
        principal: &Principal,
        runtimes: Vec<RuntimeInfo>,
    ) -> Vec<RuntimeInfo> {
        self.observe_item(
            principal,
            |i| i.runtimes,
            runtimes,
            |runtimes, out| write_request(out, principal, ItemRef::Runtimes { runtimes }),
        )
        .unwrap_or_default()
    }

    /// Runs the chain over one item (`write` writes its request): each interested policy
    /// sees it as the ones before left it. `None`: denied, or a policy failed.
    fn observe_item<T: DeserializeOwned>(
        &self,
        principal: &Principal,
        wanted: fn(&Interest) -> bool,
        mut value: T,
        write: impl Fn(&T, &mut Vec<u8>),
    ) -> Option<T> {
        let mut request = Vec::new();
        for link in &self.links {
            if !(link.interest().applies_to(principal.role) && wanted(link.interest())) {
                continue;
            }
            request.clear();
            write(&value, &mut request);
            match self.ask(link, "observe", |i| i.observe::<Verdict<T>>(&request))? {
                Verdict::Allow => {}
                Verdict::Redact(redacted) => value = redacted,
                Verdict::Deny => return None,
            }
        }
        Some(value)
    }

    /// May `principal` run `command`? The first policy that refuses, or fails, decides.
    pub fn command(&self, principal: &Principal, command: &Command) -> Result<(), CommandRefusal> {
        let mut request = None;
        for link in &self.links {
            if !(link.interest().commands && link.interest().applies_to(principal.role)) {
                continue;
            }
            let request = request.get_or_insert_with(|| {
                // Cannot fail; an empty request would be refused and fail closed.
                serde_json::to_vec(&CommandRequestRef { principal, command }).unwrap_or_default()
            });
            self.metrics.plugin_call();
            let policy = || link.plugin().name().to_owned();
            match link.command(request) {
                Ok(CommandVerdict::Allow) => {}
                Ok(CommandVerdict::Deny { reason }) => {
                    return Err(CommandRefusal::Denied {
                        policy: policy(),
                        reason,
                    });
                }
                Err(error) => {
                    self.metrics
                        .failure(link.plugin().name(), "command", &error);
                    return Err(CommandRefusal::Failed {
                        policy: policy(),
                        error,
                    });
                }
            }
        }
        Ok(())
    }

    /// One counted call; a failure is counted, logged and `None`.
    fn ask<T>(
        &self,
        link: &Instance,
        call: &'static str,
        f: impl FnOnce(&Instance) -> Result<T, CallError>,
    ) -> Option<T> {
        self.metrics.plugin_call();
        f(link)
            .inspect_err(|error| self.metrics.failure(link.plugin().name(), call, error))
            .ok()
    }
}

/// Writes the `observe` request of a non-event item.
fn write_request(out: &mut Vec<u8>, principal: &Principal, item: ItemRef<'_>) {
    // Cannot fail (string keys, no I/O); a truncated request would be refused by the
    // plugin and fail closed.
    let _ = serde_json::to_writer(out, &ObserveRequestRef { principal, item });
}

fn wants_event(link: &Instance, role: Role, kind: &str) -> bool {
    let interest = link.interest();
    interest.applies_to(role) && interest.wants_event(kind)
}
