//! The trait a plugin author implements.

use yoi_protocol::{Event, Message, RuntimeInfo, WorkerInfo, WorkerSnapshot};

use crate::{
    Command, CommandVerdict, EventItem, Interest, Principal, RuntimesItem, SnapshotItem,
    TranscriptItem, Verdict, WorkersItem,
};

/// A projection policy: what each principal sees and may do.
///
/// One value is made per configured use (`[[policies]]` entry) from that entry's
/// settings, then called from many threads at once. Every decision defaults to allow,
/// so a policy implements only what it decides, and declares that in
/// [`interest`](Policy::interest) so the host skips it for everything else.
///
/// Calls must be quick and must not block: the host calls them on the threads that
/// serve its clients. A panic is caught at the boundary and fails closed (the item is
/// not shown, the command is refused).
pub trait Policy: Sized + Send + Sync + 'static {
    /// The name the host configuration uses for this plugin (`plugin = "NAME"`): 1 to 64
    /// of `a-z 0-9 - _`.
    const NAME: &'static str;
    /// Shown in the host's reload report; `env!("CARGO_PKG_VERSION")` is a good value.
    const VERSION: &'static str;

    /// Builds the policy from its entry's `settings` (`{}` when the entry has none).
    /// `Err` refuses the settings: the host reports the message and keeps the chain it
    /// had.
    fn new(settings: serde_json::Value) -> Result<Self, String>;

    /// What this policy decides (default: everything). The host asks it about nothing
    /// else.
    fn interest(&self) -> Interest {
        Interest::everything()
    }

    /// An event of a stream.
    ///
    /// The host shares event decisions between all principals of a role (it decides
    /// once per event and role), so decide by `principal.role`, not by its name.
    fn observe_event(&self, principal: &Principal, item: EventItem) -> Verdict<Event> {
        let _ = (principal, item);
        Verdict::Allow
    }

    /// A worker's snapshot (streams without a cursor).
    fn observe_snapshot(
        &self,
        principal: &Principal,
        item: SnapshotItem,
    ) -> Verdict<WorkerSnapshot> {
        let _ = (principal, item);
        Verdict::Allow
    }

    /// A worker's transcript.
    fn observe_transcript(
        &self,
        principal: &Principal,
        item: TranscriptItem,
    ) -> Verdict<Vec<Message>> {
        let _ = (principal, item);
        Verdict::Allow
    }

    /// Workers as an answer lists them.
    fn observe_workers(
        &self,
        principal: &Principal,
        item: WorkersItem,
    ) -> Verdict<Vec<WorkerInfo>> {
        let _ = (principal, item);
        Verdict::Allow
    }

    /// Runtimes as an answer lists them.
    fn observe_runtimes(
        &self,
        principal: &Principal,
        item: RuntimesItem,
    ) -> Verdict<Vec<RuntimeInfo>> {
        let _ = (principal, item);
        Verdict::Allow
    }

    /// May `principal` run `command`?
    fn command(&self, principal: &Principal, command: &Command) -> CommandVerdict {
        let _ = (principal, command);
        CommandVerdict::Allow
    }
}
