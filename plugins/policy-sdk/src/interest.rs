//! What a policy decides; the host allows everything else without calling it.

use serde::{Deserialize, Serialize};

use crate::Role;

/// The items, roles and commands a policy instance decides, declared once by
/// [`Policy::interest`](crate::Policy::interest). For anything outside it the host does
/// not call the plugin at all and treats the answer as allow: the declaration is what
/// keeps a policy that cares about reasoning from costing a plugin call per text delta.
///
/// Fields missing from a plugin's answer (one built before they existed) mean
/// "interested", so such a plugin is asked and fails closed on what it cannot read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Interest {
    /// The roles the policy applies to (`None`: all).
    pub roles: Option<Vec<Role>>,
    /// The event kinds (`type` tags, e.g. `reasoning_delta`) it decides (`None`: all).
    pub events: Option<Vec<String>>,
    pub snapshots: bool,
    pub transcripts: bool,
    pub workers: bool,
    pub runtimes: bool,
    pub commands: bool,
}

impl Default for Interest {
    fn default() -> Self {
        Interest::everything()
    }
}

impl Interest {
    /// Every item and command, for every role.
    pub fn everything() -> Self {
        Interest {
            roles: None,
            events: None,
            snapshots: true,
            transcripts: true,
            workers: true,
            runtimes: true,
            commands: true,
        }
    }

    /// Nothing, for every role: start here and add what the policy decides.
    pub fn nothing() -> Self {
        Interest {
            roles: None,
            events: Some(Vec::new()),
            snapshots: false,
            transcripts: false,
            workers: false,
            runtimes: false,
            commands: false,
        }
    }

    /// Only for principals of `roles`.
    pub fn for_roles(mut self, roles: impl IntoIterator<Item = Role>) -> Self {
        self.roles = Some(roles.into_iter().collect());
        self
    }

    /// Events of these kinds (`type` tags), in addition to those already listed.
    pub fn events<S: Into<String>>(mut self, kinds: impl IntoIterator<Item = S>) -> Self {
        if let Some(listed) = &mut self.events {
            listed.extend(kinds.into_iter().map(Into::into));
        }
        self
    }

    /// Events of every kind.
    pub fn all_events(mut self) -> Self {
        self.events = None;
        self
    }

    pub fn snapshots(mut self) -> Self {
        self.snapshots = true;
        self
    }

    pub fn transcripts(mut self) -> Self {
        self.transcripts = true;
        self
    }

    pub fn workers(mut self) -> Self {
        self.workers = true;
        self
    }

    pub fn runtimes(mut self) -> Self {
        self.runtimes = true;
        self
    }

    pub fn commands(mut self) -> Self {
        self.commands = true;
        self
    }

    /// Whether the policy applies to principals of `role`.
    pub fn applies_to(&self, role: Role) -> bool {
        self.roles
            .as_ref()
            .is_none_or(|roles| roles.contains(&role))
    }

    /// Whether the policy decides events of `kind`.
    pub fn wants_event(&self, kind: &str) -> bool {
        self.events
            .as_ref()
            .is_none_or(|kinds| kinds.iter().any(|k| k == kind))
    }
}
