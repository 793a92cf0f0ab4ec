//! The projection seam: every command a client sends and every event, worker and
//! snapshot a client receives passes a [`Projection`].
//!
//! Today the host installs [`PassThrough`]. Policy plugins (a later issue) plug in here:
//! a chain of plugins behind one `Projection` implementation, deciding per
//! [`Principal`]. The stream code and the REST handlers call nothing else, so no path
//! around the policy exists.

use std::sync::Arc;

use yoi_protocol::{Envelope, Input, WorkerInfo, WorkerSnapshot, WorkerSpec};
use yoi_serving::{Observed, Visibility};

/// Who is asking. Today every valid token maps to the one owner principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub role: Role,
}

impl Principal {
    pub fn owner() -> Self {
        Principal {
            name: "owner".into(),
            role: Role::Owner,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Holds the host's access token: may do everything.
    Owner,
    /// May observe only (for policies that hand out read-only principals).
    Observer,
}

/// A command a client sends, as the policy sees it.
#[derive(Debug, Clone, Copy)]
pub enum Command<'a> {
    ListRuntimes,
    GetRuntime {
        runtime: &'a str,
    },
    ListWorkers {
        runtime: &'a str,
    },
    CreateWorker {
        runtime: &'a str,
        spec: &'a WorkerSpec,
    },
    GetWorker {
        runtime: &'a str,
        worker: &'a str,
    },
    Input {
        runtime: &'a str,
        worker: &'a str,
        input: &'a Input,
    },
    Cancel {
        runtime: &'a str,
        worker: &'a str,
    },
    Stop {
        runtime: &'a str,
        worker: &'a str,
    },
    /// Deleting a worker (stopping it first if needed).
    DeleteWorker {
        runtime: &'a str,
        worker: &'a str,
    },
    Transcript {
        runtime: &'a str,
        worker: &'a str,
    },
    /// Opening a stream: one worker's, or (`worker: None`) every worker's of `runtime`
    /// (`runtime: None`: of every runtime).
    Observe {
        runtime: Option<&'a str>,
        worker: Option<&'a str>,
    },
}

impl Command<'_> {
    /// The metric label of this command.
    pub fn name(&self) -> &'static str {
        match self {
            Command::ListRuntimes => "list_runtimes",
            Command::GetRuntime { .. } => "get_runtime",
            Command::ListWorkers { .. } => "list_workers",
            Command::CreateWorker { .. } => "create_worker",
            Command::GetWorker { .. } => "get_worker",
            Command::Input { .. } => "input",
            Command::Cancel { .. } => "cancel",
            Command::Stop { .. } => "stop",
            Command::DeleteWorker { .. } => "delete_worker",
            Command::Transcript { .. } => "transcript",
            Command::Observe { .. } => "observe",
        }
    }
}

/// The policy every client interaction passes. All methods default to pass-through.
pub trait Projection: Send + Sync + 'static {
    /// May `principal` run `command`? `Err(reason)` becomes `403 forbidden`.
    fn command(&self, principal: &Principal, command: &Command<'_>) -> Result<(), String> {
        let _ = (principal, command);
        Ok(())
    }

    /// What `principal` sees of one event of `runtime_id`.
    fn observe(&self, principal: &Principal, runtime_id: &str, event: &Envelope) -> Observed {
        let _ = (principal, runtime_id, event);
        Observed::Allow
    }

    /// A worker as `principal` sees it in listings and answers (`None`: hidden, as if it
    /// did not exist).
    fn worker(
        &self,
        principal: &Principal,
        runtime_id: &str,
        worker: WorkerInfo,
    ) -> Option<WorkerInfo> {
        let _ = (principal, runtime_id);
        Some(worker)
    }

    /// A snapshot (worker, transcript, in-flight output) as `principal` sees it.
    fn snapshot(
        &self,
        principal: &Principal,
        runtime_id: &str,
        snapshot: WorkerSnapshot,
    ) -> Option<WorkerSnapshot> {
        let _ = (principal, runtime_id);
        Some(snapshot)
    }
}

/// The default policy: everyone with a token sees and may do everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct PassThrough;

impl Projection for PassThrough {}

/// A stream's view: what the projection lets one principal see.
pub struct ProjectedView {
    projection: Arc<dyn Projection>,
    principal: Principal,
}

impl ProjectedView {
    pub fn new(projection: Arc<dyn Projection>, principal: Principal) -> Self {
        ProjectedView {
            projection,
            principal,
        }
    }
}

impl Visibility for ProjectedView {
    fn event(&self, runtime_id: &str, event: &Envelope) -> Observed {
        self.projection.observe(&self.principal, runtime_id, event)
    }

    fn snapshot(&self, runtime_id: &str, snapshot: WorkerSnapshot) -> Option<WorkerSnapshot> {
        self.projection
            .snapshot(&self.principal, runtime_id, snapshot)
    }
}
