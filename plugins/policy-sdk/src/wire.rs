//! The JSON that crosses the boundary, for loaders and for plugins written without the
//! macro. Each request has an owned form (what a plugin reads) and a borrowed form (what
//! a host writes without copying what it observes); tests keep the two identical.
//!
//! | call | host sends | plugin answers (on `OK`) |
//! |---|---|---|
//! | `describe` | nothing | [`Description`] |
//! | `init` | the settings (any JSON; `{}` when none are configured) | [`Interest`](crate::Interest) |
//! | `observe` | [`ObserveRequest`]: `{"principal":{"name","role"},"item":{"kind":…}}` | [`Verdict`](crate::Verdict): `{"decision":"allow"}`, `{"decision":"deny"}`, `{"decision":"redact","item":…}` |
//! | `command` | [`CommandRequest`]: `{"principal":…,"command":{"type":…}}` | [`CommandVerdict`](crate::CommandVerdict): `{"decision":"allow"}`, `{"decision":"deny","reason":"…"}` |
//!
//! An event request is written by [`write_event_request`] around the event's JSON as the
//! host already encoded it for its clients, so observing an event costs the host no
//! second serialisation.

use serde::{Deserialize, Serialize};
use yoi_protocol::{Message, RuntimeInfo, WorkerInfo, WorkerSnapshot};

use crate::{Command, Item, Principal};

/// What `describe` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Description {
    /// The name a host configuration refers to the plugin by (`plugin = "NAME"`).
    pub name: String,
    pub version: String,
    /// The version of the `yoi-policy` crate the plugin was built with.
    pub sdk_version: String,
}

/// What `observe` receives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObserveRequest {
    pub principal: Principal,
    pub item: Item,
}

/// [`ObserveRequest`] for every item but events, borrowed.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ObserveRequestRef<'a> {
    pub principal: &'a Principal,
    pub item: ItemRef<'a>,
}

/// [`Item`] borrowed (events: see [`write_event_request`]).
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ItemRef<'a> {
    Snapshot {
        runtime_id: &'a str,
        snapshot: &'a WorkerSnapshot,
    },
    Transcript {
        runtime_id: &'a str,
        worker_id: &'a str,
        messages: &'a [Message],
    },
    Workers {
        runtime_id: &'a str,
        workers: &'a [WorkerInfo],
    },
    Runtimes {
        runtimes: &'a [RuntimeInfo],
    },
}

/// What `command` receives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandRequest {
    pub principal: Principal,
    pub command: Command,
}

/// [`CommandRequest`] borrowed.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CommandRequestRef<'a> {
    pub principal: &'a Principal,
    pub command: &'a Command,
}

/// Everything of an event item but the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventHead<'a> {
    pub runtime_id: &'a str,
    pub seq: u64,
    pub worker_id: Option<&'a str>,
    pub at_ms: u64,
}

/// Appends the [`ObserveRequest`] of an event to `out`, with `event_json` (the event's
/// JSON, e.g. `{"type":"text_delta",…}`) copied in as it is.
pub fn write_event_request(
    out: &mut Vec<u8>,
    principal: &Principal,
    head: EventHead<'_>,
    event_json: &str,
) {
    out.extend_from_slice(br#"{"principal":"#);
    put(out, principal);
    out.extend_from_slice(br#","item":{"kind":"event","runtime_id":"#);
    put(out, head.runtime_id);
    out.extend_from_slice(br#","seq":"#);
    put(out, &head.seq);
    out.extend_from_slice(br#","worker_id":"#);
    put(out, &head.worker_id);
    out.extend_from_slice(br#","at_ms":"#);
    put(out, &head.at_ms);
    out.extend_from_slice(br#","event":"#);
    out.extend_from_slice(event_json.as_bytes());
    out.extend_from_slice(b"}}");
}

/// Appends `value`'s JSON. Writing to a `Vec` cannot fail (no I/O, and these values have
/// only string keys), so there is no error to pass on.
fn put<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    let _ = serde_json::to_writer(out, value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EventItem, Role, RuntimesItem, SnapshotItem, TranscriptItem, WorkersItem};
    use yoi_protocol::{Event, Limits, Role as Speaker, Usage, WorkerStatus};

    fn worker() -> WorkerInfo {
        WorkerInfo {
            id: "w_1".into(),
            name: "demo".into(),
            model: "scripted".into(),
            system_prompt: None,
            tools: vec![],
            max_steps: 8,
            status: WorkerStatus::Idle,
            created_at_ms: 1,
            current_run: None,
            run_count: 0,
            message_count: 1,
            usage: Usage::default(),
            context_tokens: None,
            request_id: None,
        }
    }

    fn message() -> Message {
        Message {
            role: Speaker::Assistant,
            content: "hi \"there\"".into(),
            reasoning: Some("think".into()),
            tool_calls: vec![],
            tool_call_id: None,
            is_error: false,
            run_id: "r_1".into(),
        }
    }

    fn principal() -> Principal {
        Principal::new("a \"quoted\" name", Role::Observer)
    }

    #[test]
    fn an_event_request_written_around_the_event_json_is_the_owned_request() {
        let event = Event::TextDelta {
            run_id: "r_1".into(),
            text: "Hel\"lo\n".into(),
        };
        let json = serde_json::to_string(&event).unwrap();
        for worker_id in [Some("w_\"odd\""), None] {
            let mut out = Vec::new();
            let head = EventHead {
                runtime_id: "local",
                seq: 42,
                worker_id,
                at_ms: 7,
            };
            write_event_request(&mut out, &principal(), head, &json);
            let parsed: ObserveRequest = serde_json::from_slice(&out).unwrap();
            let want = ObserveRequest {
                principal: principal(),
                item: Item::Event(EventItem {
                    runtime_id: "local".into(),
                    seq: 42,
                    worker_id: worker_id.map(Into::into),
                    at_ms: 7,
                    event: event.clone(),
                }),
            };
            assert_eq!(parsed, want);
        }
    }

    #[test]
    fn borrowed_items_serialise_as_the_owned_ones() {
        let snapshot = WorkerSnapshot {
            worker: worker(),
            transcript: vec![message()],
            in_flight: None,
        };
        let runtimes = vec![RuntimeInfo {
            id: "local".into(),
            kind: "embedded".into(),
            state: "ready".into(),
            workers: 1,
            unavailable: None,
            capabilities: yoi_protocol::Capabilities {
                models: vec!["scripted".into()],
                tools: vec![],
                limits: Limits::default(),
                streams: vec!["worker".into()],
            },
        }];
        let p = principal();
        let cases = [
            (
                ItemRef::Snapshot {
                    runtime_id: "local",
                    snapshot: &snapshot,
                },
                Item::Snapshot(SnapshotItem {
                    runtime_id: "local".into(),
                    snapshot: snapshot.clone(),
                }),
            ),
            (
                ItemRef::Transcript {
                    runtime_id: "local",
                    worker_id: "w_1",
                    messages: &snapshot.transcript,
                },
                Item::Transcript(TranscriptItem {
                    runtime_id: "local".into(),
                    worker_id: "w_1".into(),
                    messages: snapshot.transcript.clone(),
                }),
            ),
            (
                ItemRef::Workers {
                    runtime_id: "local",
                    workers: std::slice::from_ref(&snapshot.worker),
                },
                Item::Workers(WorkersItem {
                    runtime_id: "local".into(),
                    workers: vec![worker()],
                }),
            ),
            (
                ItemRef::Runtimes {
                    runtimes: &runtimes,
                },
                Item::Runtimes(RuntimesItem {
                    runtimes: runtimes.clone(),
                }),
            ),
        ];
        for (borrowed, owned) in cases {
            let bytes = serde_json::to_vec(&ObserveRequestRef {
                principal: &p,
                item: borrowed,
            })
            .unwrap();
            let parsed: ObserveRequest = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(parsed.item, owned);
            assert_eq!(parsed.principal, p);
        }
        let command = Command::Stop {
            runtime: "local".into(),
            worker: "w_1".into(),
        };
        let bytes = serde_json::to_vec(&CommandRequestRef {
            principal: &p,
            command: &command,
        })
        .unwrap();
        let parsed: CommandRequest = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(parsed.command, command);
    }

    #[test]
    fn verdicts_and_commands_have_the_documented_json() {
        use crate::{CommandVerdict, Verdict};
        let allow = serde_json::to_value(Verdict::<Event>::Allow).unwrap();
        assert_eq!(allow, serde_json::json!({"decision": "allow"}));
        let deny = serde_json::to_value(Verdict::<Event>::Deny).unwrap();
        assert_eq!(deny, serde_json::json!({"decision": "deny"}));
        let redact = Verdict::Redact(Event::RunStarted {
            run_id: "r_1".into(),
        });
        let v = serde_json::to_value(&redact).unwrap();
        assert_eq!(v["decision"], "redact");
        assert_eq!(v["item"]["type"], "run_started");
        assert_eq!(
            serde_json::to_value(CommandVerdict::deny("no")).unwrap(),
            serde_json::json!({"decision": "deny", "reason": "no"})
        );
        // A command kind this SDK does not know is `Unknown`, fields and all.
        let unknown: Command =
            serde_json::from_str(r#"{"type":"reboot_everything","now":true}"#).unwrap();
        assert_eq!(unknown, Command::Unknown);
        assert!(unknown.changes_state());
    }
}
