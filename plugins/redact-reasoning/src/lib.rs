//! Policy plugin `redact-reasoning`: principals of the configured roles see no model
//! reasoning. Reasoning deltas and `reasoning_done` events are denied; snapshots lose
//! the in-flight reasoning and transcripts every message's `reasoning`.
//!
//! ```toml
//! [[policies]]
//! plugin = "redact-reasoning"
//! settings = { roles = ["observer"] }
//! ```

use serde::Deserialize;
use yoi_policy::protocol::{Event, Message, WorkerSnapshot};
use yoi_policy::serde_json::{self, Value};
use yoi_policy::{
    EventItem, Interest, Policy, Principal, Role, SnapshotItem, TranscriptItem, Verdict,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// The roles that see no reasoning.
    roles: Vec<Role>,
}

pub struct RedactReasoning {
    roles: Vec<Role>,
}

impl RedactReasoning {
    fn applies_to(&self, principal: &Principal) -> bool {
        self.roles.contains(&principal.role)
    }
}

impl Policy for RedactReasoning {
    const NAME: &'static str = "redact-reasoning";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn new(settings: Value) -> Result<Self, String> {
        let Settings { roles } = serde_json::from_value(settings)
            .map_err(|e| format!("redact-reasoning settings: {e}"))?;
        Ok(RedactReasoning { roles })
    }

    fn interest(&self) -> Interest {
        Interest::nothing()
            .for_roles(self.roles.iter().copied())
            .events(["reasoning_delta", "reasoning_done"])
            .snapshots()
            .transcripts()
    }

    fn observe_event(&self, principal: &Principal, item: EventItem) -> Verdict<Event> {
        match item.event {
            Event::ReasoningDelta { .. } | Event::ReasoningDone { .. }
                if self.applies_to(principal) =>
            {
                Verdict::Deny
            }
            _ => Verdict::Allow,
        }
    }

    fn observe_snapshot(
        &self,
        principal: &Principal,
        item: SnapshotItem,
    ) -> Verdict<WorkerSnapshot> {
        let mut snapshot = item.snapshot;
        let mut changed = false;
        if let Some(in_flight) = &mut snapshot.in_flight
            && !in_flight.reasoning.is_empty()
        {
            in_flight.reasoning.clear();
            changed = true;
        }
        changed |= strip(&mut snapshot.transcript);
        Verdict::redact_if(self.applies_to(principal) && changed, snapshot)
    }

    fn observe_transcript(
        &self,
        principal: &Principal,
        item: TranscriptItem,
    ) -> Verdict<Vec<Message>> {
        let mut messages = item.messages;
        let changed = strip(&mut messages);
        Verdict::redact_if(self.applies_to(principal) && changed, messages)
    }
}

/// Removes every message's reasoning; whether there was any.
fn strip(messages: &mut [Message]) -> bool {
    let mut changed = false;
    for message in messages {
        changed |= message.reasoning.take().is_some();
    }
    changed
}

yoi_policy::export_policy!(RedactReasoning);

#[cfg(test)]
mod tests {
    use super::*;
    use yoi_policy::protocol::{InFlight, Role as Speaker, Usage, WorkerInfo, WorkerStatus};

    fn policy() -> RedactReasoning {
        RedactReasoning::new(serde_json::json!({"roles": ["observer"]})).unwrap()
    }

    fn observer() -> Principal {
        Principal::new("o", Role::Observer)
    }

    fn event(event: Event) -> EventItem {
        EventItem {
            runtime_id: "local".into(),
            seq: 1,
            worker_id: Some("w_1".into()),
            at_ms: 0,
            event,
        }
    }

    fn message(reasoning: Option<&str>) -> Message {
        Message {
            role: Speaker::Assistant,
            content: "answer".into(),
            reasoning: reasoning.map(Into::into),
            tool_calls: vec![],
            tool_call_id: None,
            is_error: false,
            run_id: "r_1".into(),
        }
    }

    #[test]
    fn settings_need_roles_and_nothing_else() {
        assert!(RedactReasoning::new(serde_json::json!({})).is_err());
        let err = RedactReasoning::new(serde_json::json!({"roles": [], "role": 1}))
            .err()
            .unwrap();
        assert!(err.contains("unknown field `role`"), "{err}");
        assert!(RedactReasoning::new(serde_json::json!({"roles": ["admin"]})).is_err());
    }

    #[test]
    fn reasoning_events_are_denied_to_the_configured_roles_only() {
        let p = policy();
        let delta = || {
            event(Event::ReasoningDelta {
                run_id: "r_1".into(),
                text: "hmm".into(),
            })
        };
        let done = event(Event::ReasoningDone {
            run_id: "r_1".into(),
            text: "hmm".into(),
        });
        assert_eq!(p.observe_event(&observer(), delta()), Verdict::Deny);
        assert_eq!(p.observe_event(&observer(), done), Verdict::Deny);
        assert_eq!(
            p.observe_event(&Principal::owner(), delta()),
            Verdict::Allow
        );
        let text = event(Event::TextDelta {
            run_id: "r_1".into(),
            text: "hi".into(),
        });
        assert_eq!(p.observe_event(&observer(), text), Verdict::Allow);
    }

    #[test]
    fn snapshots_and_transcripts_lose_their_reasoning() {
        let p = policy();
        let snapshot = WorkerSnapshot {
            worker: WorkerInfo {
                id: "w_1".into(),
                name: "n".into(),
                model: "scripted".into(),
                system_prompt: None,
                tools: vec![],
                max_steps: 8,
                status: WorkerStatus::Running,
                created_at_ms: 0,
                current_run: Some("r_2".into()),
                run_count: 2,
                message_count: 2,
                usage: Usage::default(),
                context_tokens: None,
            },
            transcript: vec![message(Some("why")), message(None)],
            in_flight: Some(InFlight {
                run_id: "r_2".into(),
                step: 1,
                reasoning: "thinking".into(),
                text: "partial".into(),
                tool_calls: vec![],
                pending_tools: vec![],
            }),
        };
        let item = || SnapshotItem {
            runtime_id: "local".into(),
            snapshot: snapshot.clone(),
        };
        let Verdict::Redact(seen) = p.observe_snapshot(&observer(), item()) else {
            panic!("the snapshot is redacted");
        };
        assert!(seen.transcript.iter().all(|m| m.reasoning.is_none()));
        let in_flight = seen.in_flight.unwrap();
        assert_eq!(
            (in_flight.reasoning.as_str(), in_flight.text.as_str()),
            ("", "partial")
        );
        assert_eq!(
            p.observe_snapshot(&Principal::owner(), item()),
            Verdict::Allow
        );

        let transcript = |messages| TranscriptItem {
            runtime_id: "local".into(),
            worker_id: "w_1".into(),
            messages,
        };
        assert_eq!(
            p.observe_transcript(
                &observer(),
                transcript(vec![message(Some("x")), message(None)])
            ),
            Verdict::Redact(vec![message(None), message(None)])
        );
        // Nothing to strip: allowed as it is.
        assert_eq!(
            p.observe_transcript(&observer(), transcript(vec![message(None)])),
            Verdict::Allow
        );
    }
}
