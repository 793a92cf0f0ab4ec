//! A well-behaved SDK plugin, `test-policy`, whose behaviour its settings script, for
//! the host's chain tests:
//!
//! - `append`: appended to every `text_delta`'s text (a redaction; shows chain order);
//! - `deny_events`: event kinds denied;
//! - `deny_commands`: every command denied with this reason;
//! - `hide_workers`: worker ids left out of listings, their snapshots and transcripts
//!   denied;
//! - `hide_runtimes`: runtime ids left out of runtime listings;
//! - `panic_in`: `init`, `observe` or `command` panics;
//! - `roles`: the roles it applies to (all when absent).

use serde::Deserialize;
use yoi_policy::protocol::{Event, Message, RuntimeInfo, WorkerInfo, WorkerSnapshot};
use yoi_policy::serde_json::{self, Value};
use yoi_policy::{
    Command, CommandVerdict, EventItem, Interest, Policy, Principal, Role, RuntimesItem,
    SnapshotItem, TranscriptItem, Verdict, WorkersItem,
};

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct TestPolicy {
    append: Option<String>,
    deny_events: Vec<String>,
    deny_commands: Option<String>,
    hide_workers: Vec<String>,
    hide_runtimes: Vec<String>,
    panic_in: Option<String>,
    roles: Option<Vec<Role>>,
}

impl TestPolicy {
    fn panic_in(&self, call: &str) {
        if self.panic_in.as_deref() == Some(call) {
            panic!("test-policy panics in {call} as configured");
        }
    }
}

impl Policy for TestPolicy {
    const NAME: &'static str = "test-policy";
    const VERSION: &'static str = "0.0.1-test";

    fn new(settings: Value) -> Result<Self, String> {
        let policy: TestPolicy = serde_json::from_value(settings).map_err(|e| e.to_string())?;
        policy.panic_in("init");
        Ok(policy)
    }

    fn interest(&self) -> Interest {
        let mut interest = Interest::everything();
        interest.roles = self.roles.clone();
        interest
    }

    fn observe_event(&self, _: &Principal, item: EventItem) -> Verdict<Event> {
        self.panic_in("observe");
        let mut event = item.event;
        if self.deny_events.iter().any(|k| k == event.kind()) {
            return Verdict::Deny;
        }
        match (&mut event, &self.append) {
            (Event::TextDelta { text, .. }, Some(append)) => {
                text.push_str(append);
                Verdict::Redact(event)
            }
            _ => Verdict::Allow,
        }
    }

    fn observe_snapshot(&self, _: &Principal, item: SnapshotItem) -> Verdict<WorkerSnapshot> {
        self.panic_in("observe");
        if self.hide_workers.contains(&item.snapshot.worker.id) {
            Verdict::Deny
        } else {
            Verdict::Allow
        }
    }

    fn observe_transcript(&self, _: &Principal, item: TranscriptItem) -> Verdict<Vec<Message>> {
        self.panic_in("observe");
        if self.hide_workers.contains(&item.worker_id) {
            Verdict::Deny
        } else {
            Verdict::Allow
        }
    }

    fn observe_workers(&self, _: &Principal, item: WorkersItem) -> Verdict<Vec<WorkerInfo>> {
        self.panic_in("observe");
        let mut workers = item.workers;
        let before = workers.len();
        workers.retain(|w| !self.hide_workers.contains(&w.id));
        if workers.len() == before {
            Verdict::Allow
        } else {
            Verdict::Redact(workers)
        }
    }

    fn observe_runtimes(&self, _: &Principal, item: RuntimesItem) -> Verdict<Vec<RuntimeInfo>> {
        self.panic_in("observe");
        let mut runtimes = item.runtimes;
        let before = runtimes.len();
        runtimes.retain(|r| !self.hide_runtimes.contains(&r.id));
        if runtimes.len() == before {
            Verdict::Allow
        } else {
            Verdict::Redact(runtimes)
        }
    }

    fn command(&self, _: &Principal, _: &Command) -> CommandVerdict {
        self.panic_in("command");
        match &self.deny_commands {
            Some(reason) => CommandVerdict::deny(reason.clone()),
            None => CommandVerdict::Allow,
        }
    }
}

yoi_policy::export_policy!(TestPolicy);
