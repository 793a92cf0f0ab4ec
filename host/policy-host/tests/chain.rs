//! Chain semantics with the scriptable test-only plugin: order, redaction seen by later
//! policies, the first deny, roles, every item kind, and the per-(event, role) cache.

mod common;

use std::cell::Cell;

use common::*;
use serde_json::json;
use yoi_policy::{Command, Principal, Role};
use yoi_policy_host::{CommandRefusal, EventDecision, EventRef};
use yoi_protocol::{Event, WorkerSnapshot};

fn installed(test: &str) -> Option<Scratch> {
    let dir = test_plugins(test)?;
    let scratch = Scratch::new();
    scratch.install(&dir, "test_policy", "test_policy.so");
    Some(scratch)
}

fn policy(settings: serde_json::Value) -> yoi_policy_host::PolicyEntry {
    entry("test-policy", settings)
}

fn input() -> Command {
    Command::Input {
        runtime: "local".into(),
        worker: "w_1".into(),
        input: yoi_protocol::Input {
            text: "hi".into(),
            request_id: None,
        },
    }
}

#[test]
fn policies_run_in_order_each_seeing_what_the_previous_left() {
    let Some(scratch) = installed("policies_run_in_order") else {
        return;
    };
    let e = envelope(1, text_delta("x"));
    let (_, ab) = scratch.chain(&[
        policy(json!({"append": "A"})),
        policy(json!({"append": "B"})),
    ]);
    assert_eq!(seen(&ab, &observer(), &e), Some(text_delta("xAB")));
    let (_, ba) = scratch.chain(&[
        policy(json!({"append": "B"})),
        policy(json!({"append": "A"})),
    ]);
    assert_eq!(seen(&ba, &observer(), &e), Some(text_delta("xBA")));
    // Other kinds pass unchanged.
    let started = envelope(
        2,
        Event::RunStarted {
            run_id: "r_1".into(),
        },
    );
    assert!(matches!(
        observe(&ab, &observer(), &started),
        EventDecision::Allow
    ));
}

#[test]
fn the_first_deny_ends_the_chain() {
    let Some(scratch) = installed("the_first_deny_ends_the_chain") else {
        return;
    };
    let (policies, chain) = scratch.chain(&[
        policy(json!({"deny_events": ["text_delta"], "deny_commands": "first says no"})),
        policy(json!({"panic_in": "observe", "deny_commands": "second says no"})),
    ]);
    assert_eq!(
        seen(&chain, &observer(), &envelope(1, text_delta("x"))),
        None
    );
    assert_eq!(
        chain.command(&owner(), &input()),
        Err(CommandRefusal::Denied {
            policy: "test-policy".into(),
            reason: "first says no".into()
        })
    );
    // The second policy was never asked (it would have panicked).
    assert!(metrics(&policies).failures.is_empty());
}

#[test]
fn a_policy_applies_only_to_the_roles_it_declares() {
    let Some(scratch) = installed("a_policy_applies_only_to_its_roles") else {
        return;
    };
    let (_, chain) = scratch.chain(&[policy(json!({
        "roles": ["observer"],
        "deny_events": ["text_delta"],
        "deny_commands": "observers may not",
        "hide_workers": ["w_1"],
    }))]);
    let e = envelope(1, text_delta("x"));
    assert_eq!(seen(&chain, &observer(), &e), None);
    assert_eq!(seen(&chain, &operator(), &e), Some(text_delta("x")));
    assert_eq!(seen(&chain, &owner(), &e), Some(text_delta("x")));
    assert!(matches!(
        chain.command(&observer(), &input()),
        Err(CommandRefusal::Denied { reason, .. }) if reason == "observers may not"
    ));
    assert_eq!(chain.command(&operator(), &input()), Ok(()));
    assert_eq!(
        chain.observe_workers(&owner(), "local", vec![worker("w_1")]),
        vec![worker("w_1")]
    );
    assert_eq!(
        chain.observe_workers(&observer(), "local", vec![worker("w_1")]),
        vec![]
    );
}

#[test]
fn snapshots_transcripts_and_listings_pass_the_chain() {
    let Some(scratch) = installed("snapshots_transcripts_and_listings") else {
        return;
    };
    let (_, chain) = scratch.chain(&[policy(json!({
        "hide_workers": ["w_2"],
        "hide_runtimes": ["secret"],
    }))]);
    let p = observer();
    assert_eq!(
        chain.observe_workers(&p, "local", vec![worker("w_1"), worker("w_2")]),
        vec![worker("w_1")]
    );
    let snapshot = |id: &str| WorkerSnapshot {
        worker: worker(id),
        transcript: vec![message("hello")],
        in_flight: None,
    };
    assert_eq!(
        chain.observe_snapshot(&p, "local", snapshot("w_1")),
        Some(snapshot("w_1"))
    );
    assert_eq!(chain.observe_snapshot(&p, "local", snapshot("w_2")), None);
    assert_eq!(
        chain.observe_transcript(&p, "local", "w_1", vec![message("hello")]),
        Some(vec![message("hello")])
    );
    assert_eq!(
        chain.observe_transcript(&p, "local", "w_2", vec![message("hello")]),
        None
    );
    let runtimes = chain.observe_runtimes(&p, vec![runtime("local"), runtime("secret")]);
    assert_eq!(runtimes, vec![runtime("local")]);
}

#[test]
fn event_decisions_are_made_once_per_event_and_role() {
    let Some(scratch) = installed("event_decisions_are_made_once_per_event_and_role") else {
        return;
    };
    let (policies, chain) = scratch.chain(&[policy(json!({"append": "!"}))]);
    let e = envelope(1, text_delta("x"));
    let encoded = Cell::new(0);
    let decide = |principal: &Principal, e: &yoi_protocol::Envelope| {
        let event = EventRef::new("local", 7, e);
        chain.observe_event(principal, &event, || {
            encoded.set(encoded.get() + 1);
            serde_json::to_string(&e.event).unwrap()
        })
    };
    let first = decide(&observer(), &e);
    assert_eq!(metrics(&policies).plugin_calls, 1);
    // The same event for the same role (another principal of it, too): the cache, and
    // the very same redaction.
    for principal in [observer(), Principal::new("someone else", Role::Observer)] {
        let again = decide(&principal, &e);
        let (EventDecision::Redact(a), EventDecision::Redact(b)) = (&first, &again) else {
            panic!("{first:?} {again:?}");
        };
        assert!(std::sync::Arc::ptr_eq(a, b));
    }
    let counts = metrics(&policies);
    assert_eq!((counts.plugin_calls, counts.cache_hits), (1, 2));
    assert_eq!(encoded.get(), 1, "the event's JSON is asked for once");

    // Another role, another event (by sequence number, or by store epoch): decided anew.
    decide(&operator(), &e);
    decide(&observer(), &envelope(2, text_delta("x")));
    let other_store = EventRef::new("local", 8, &e);
    chain.observe_event(&observer(), &other_store, || {
        serde_json::to_string(&e.event).unwrap()
    });
    assert_eq!(metrics(&policies).plugin_calls, 4);
}

#[test]
fn events_no_policy_decides_cost_no_call() {
    let Some(scratch) = installed("events_no_policy_decides_cost_no_call") else {
        return;
    };
    let (policies, chain) = scratch.chain(&[policy(json!({"roles": ["observer"], "append": "!"}))]);
    let e = envelope(1, text_delta("x"));
    let event = EventRef::new("local", 7, &e);
    for principal in [owner(), operator()] {
        let decision = chain.observe_event(&principal, &event, || -> String {
            panic!("no policy needs the event's JSON")
        });
        assert!(matches!(decision, EventDecision::Allow));
        assert_eq!(chain.command(&principal, &input()), Ok(()));
    }
    assert_eq!(metrics(&policies).plugin_calls, 0);

    // Nor does anything with no chain at all.
    let (policies, empty) = scratch.chain(&[]);
    assert!(empty.is_empty());
    let decision = empty.observe_event(&observer(), &event, || -> String { unreachable!() });
    assert!(matches!(decision, EventDecision::Allow));
    assert_eq!(metrics(&policies).plugin_calls, 0);
}
