//! The projection: every command a client sends and every event, snapshot, transcript,
//! worker and runtime a client receives passes here, decided for the client's
//! [`Principal`] by its role and the policy chain ([`yoi_policy_host`]). The stream code
//! and the REST handlers call nothing else, so no path around the policies exists.
//!
//! Roles set what a principal may do before any policy narrows it: an `observer` runs
//! no command that changes state, only the `owner` administers the host (the reload
//! endpoint). Then the chain decides. A policy's `deny(reason)` is `403 forbidden` with
//! the reason; a policy that fails (panics, answers garbage) refuses the command with
//! `policy_error` and denies the item it was asked about (fail closed).

use std::sync::Arc;

use yoi_policy::{Command, Principal, Role};
use yoi_policy_host::{CommandRefusal, EventDecision, EventRef, Policies};
use yoi_protocol::{Envelope, ErrorCode, Message, RuntimeInfo, WorkerInfo, WorkerSnapshot};
use yoi_serving::{FrameCache, Observed, ServeError, Visibility};

/// The host's policies, asked on behalf of principals. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Projection {
    policies: Arc<Policies>,
}

impl Projection {
    pub fn new(policies: Arc<Policies>) -> Self {
        Projection { policies }
    }

    pub fn policies(&self) -> &Arc<Policies> {
        &self.policies
    }

    /// May `principal` run `command`? Its role first, then the chain.
    pub fn authorize(&self, principal: &Principal, command: &Command) -> Result<(), ServeError> {
        if principal.role == Role::Observer && command.changes_state() {
            return Err(ServeError::forbidden(format!(
                "`{}` is an observer: it may only read, not {}",
                principal.name,
                command.name()
            )));
        }
        self.policies
            .chain()
            .command(principal, command)
            .map_err(|refusal| match refusal {
                CommandRefusal::Denied { reason, .. } => ServeError::forbidden(reason),
                failed @ CommandRefusal::Failed { .. } => {
                    ServeError::new(ErrorCode::PolicyError, failed.to_string())
                }
            })
    }

    /// Administration (reloading the policies): the owner only.
    pub fn authorize_admin(&self, principal: &Principal) -> Result<(), ServeError> {
        if principal.role == Role::Owner {
            Ok(())
        } else {
            Err(ServeError::forbidden(format!(
                "administration is for the owner; `{}` is an {}",
                principal.name, principal.role
            )))
        }
    }

    /// The workers of a listing `principal` may see.
    pub fn workers(
        &self,
        principal: &Principal,
        runtime_id: &str,
        workers: Vec<WorkerInfo>,
    ) -> Vec<WorkerInfo> {
        self.policies
            .chain()
            .observe_workers(principal, runtime_id, workers)
    }

    /// One worker as `principal` sees it (`None`: hidden, as if it did not exist).
    pub fn worker(
        &self,
        principal: &Principal,
        runtime_id: &str,
        worker: WorkerInfo,
    ) -> Option<WorkerInfo> {
        let id = worker.id.clone();
        self.workers(principal, runtime_id, vec![worker])
            .into_iter()
            .find(|w| w.id == id)
    }

    /// The runtimes of a listing `principal` may see.
    pub fn runtimes(&self, principal: &Principal, runtimes: Vec<RuntimeInfo>) -> Vec<RuntimeInfo> {
        self.policies.chain().observe_runtimes(principal, runtimes)
    }

    /// A worker's transcript as `principal` sees it (`None`: withheld).
    pub fn transcript(
        &self,
        principal: &Principal,
        runtime_id: &str,
        worker_id: &str,
        messages: Vec<Message>,
    ) -> Option<Vec<Message>> {
        self.policies
            .chain()
            .observe_transcript(principal, runtime_id, worker_id, messages)
    }

    /// A stream's view for `principal`.
    pub fn view(&self, principal: Principal) -> ProjectedView {
        ProjectedView {
            policies: self.policies.clone(),
            principal,
        }
    }
}

/// A stream's view: what the chain in use lets one principal see. Each event takes the
/// chain in use at that moment, so a reload applies from a stream's next event.
pub struct ProjectedView {
    policies: Arc<Policies>,
    principal: Principal,
}

impl Visibility for ProjectedView {
    fn event(
        &self,
        runtime_id: &str,
        epoch: u64,
        event: &Envelope,
        frames: &FrameCache,
    ) -> Observed {
        let event_ref = EventRef::new(runtime_id, epoch, event);
        // Decided once per (event, role), from the JSON the frames are built of.
        match self
            .policies
            .chain()
            .observe_event(&self.principal, &event_ref, || frames.json(epoch, event))
        {
            EventDecision::Allow => Observed::Allow,
            EventDecision::Redact(redacted) => Observed::Redact(redacted.shared_json()),
            EventDecision::Deny => Observed::Deny,
        }
    }

    fn snapshot(&self, runtime_id: &str, snapshot: WorkerSnapshot) -> Option<WorkerSnapshot> {
        self.policies
            .chain()
            .observe_snapshot(&self.principal, runtime_id, snapshot)
    }
}
