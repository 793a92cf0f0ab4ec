//! The shipped example plugins, loaded from their built libraries.

mod common;

use common::*;
use serde_json::json;
use yoi_policy::Command;
use yoi_policy_host::{CommandRefusal, PolicyEntry};
use yoi_protocol::{Event, InFlight, Message, Role as Speaker, WorkerSnapshot};

const EXAMPLES: [&str; 3] = [
    "yoi-policy-redact-reasoning",
    "yoi-policy-read-only",
    "yoi-policy-truncate-tool-output",
];

/// A plugins folder with the three examples.
fn installed(test: &str) -> Option<Scratch> {
    let dir = examples(test)?;
    let scratch = Scratch::new();
    for name in EXAMPLES {
        scratch.install(&dir, name, &library(name));
    }
    Some(scratch)
}

fn redact_reasoning() -> PolicyEntry {
    entry("redact-reasoning", json!({"roles": ["observer"]}))
}

fn read_only() -> PolicyEntry {
    entry("read-only", json!({"roles": ["observer"]}))
}

fn truncate(max_bytes: usize) -> PolicyEntry {
    entry(
        "truncate-tool-output",
        json!({"roles": ["observer", "operator"], "max_bytes": max_bytes}),
    )
}

fn reasoning(text: &str, done: bool) -> Event {
    let (run_id, text) = ("r_1".into(), text.into());
    if done {
        Event::ReasoningDone { run_id, text }
    } else {
        Event::ReasoningDelta { run_id, text }
    }
}

fn tool_result(output: &str) -> Event {
    Event::ToolResult {
        run_id: "r_1".into(),
        id: "t_1".into(),
        name: "read_file".into(),
        output: output.into(),
        is_error: false,
    }
}

fn assistant(content: &str, reasoning: Option<&str>) -> Message {
    Message {
        role: Speaker::Assistant,
        reasoning: reasoning.map(Into::into),
        ..message(content)
    }
}

fn tool(content: &str) -> Message {
    Message {
        role: Speaker::Tool,
        tool_call_id: Some("t_1".into()),
        ..message(content)
    }
}

#[test]
fn the_examples_load_under_their_names() {
    let Some(scratch) = installed("the_examples_load_under_their_names") else {
        return;
    };
    let policies = scratch.policies();
    let report = policies.reload(
        &scratch.sources(),
        &[redact_reasoning(), read_only(), truncate(8)],
    );
    assert!(report.applied, "{report:#?}");
    let mut names: Vec<_> = report.loaded.iter().map(|p| p.name.as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        ["read-only", "redact-reasoning", "truncate-tool-output"]
    );
    assert!(
        report
            .loaded
            .iter()
            .all(|p| p.version == env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(
        report.chain,
        ["redact-reasoning", "read-only", "truncate-tool-output"]
    );
}

#[test]
fn redact_reasoning_hides_reasoning_from_its_roles() {
    let Some(scratch) = installed("redact_reasoning_hides_reasoning") else {
        return;
    };
    let (policies, chain) = scratch.chain(&[redact_reasoning()]);
    for (seq, event) in [(1, reasoning("hmm", false)), (2, reasoning("hmm", true))] {
        let e = envelope(seq, event.clone());
        assert_eq!(seen(&chain, &observer(), &e), None);
        assert_eq!(seen(&chain, &operator(), &e), Some(event.clone()));
        assert_eq!(seen(&chain, &owner(), &e), Some(event));
    }
    let calls = metrics(&policies).plugin_calls;
    let text = envelope(3, text_delta("hi"));
    assert_eq!(seen(&chain, &observer(), &text), Some(text_delta("hi")));
    assert_eq!(
        metrics(&policies).plugin_calls,
        calls,
        "text is not its business"
    );

    let snapshot = WorkerSnapshot {
        worker: worker("w_1"),
        transcript: vec![message("q"), assistant("a", Some("because"))],
        in_flight: Some(InFlight {
            run_id: "r_2".into(),
            step: 1,
            reasoning: "still thinking".into(),
            text: "partial".into(),
            tool_calls: vec![],
            pending_tools: vec![],
        }),
    };
    let seen_snapshot = chain
        .observe_snapshot(&observer(), "local", snapshot.clone())
        .unwrap();
    assert_eq!(
        seen_snapshot.transcript,
        vec![message("q"), assistant("a", None)]
    );
    let in_flight = seen_snapshot.in_flight.unwrap();
    assert_eq!(
        (in_flight.reasoning.as_str(), in_flight.text.as_str()),
        ("", "partial")
    );
    assert_eq!(
        chain.observe_snapshot(&owner(), "local", snapshot.clone()),
        Some(snapshot.clone())
    );
    assert_eq!(
        chain.observe_transcript(&observer(), "local", "w_1", snapshot.transcript.clone()),
        Some(vec![message("q"), assistant("a", None)])
    );
}

#[test]
fn read_only_refuses_state_changes_with_a_reason() {
    let Some(scratch) = installed("read_only_refuses_state_changes") else {
        return;
    };
    let (_, chain) = scratch.chain(&[read_only()]);
    let (runtime, worker) = ("local".to_string(), "w_1".to_string());
    let changes = [
        Command::CreateWorker {
            runtime: runtime.clone(),
            spec: yoi_protocol::WorkerSpec {
                name: "n".into(),
                model: "scripted".into(),
                system_prompt: None,
                tools: vec![],
                max_steps: None,
                context_tokens: None,
            },
        },
        Command::Input {
            runtime: runtime.clone(),
            worker: worker.clone(),
            input: yoi_protocol::Input {
                text: "hi".into(),
                request_id: None,
            },
        },
        Command::Cancel {
            runtime: runtime.clone(),
            worker: worker.clone(),
        },
        Command::Stop {
            runtime: runtime.clone(),
            worker: worker.clone(),
        },
    ];
    for command in &changes {
        let refusal = chain.command(&observer(), command).unwrap_err();
        let CommandRefusal::Denied { policy, reason } = &refusal else {
            panic!("{refusal:?}");
        };
        assert_eq!(policy, "read-only");
        assert!(reason.contains("may only observe"), "{reason}");
        assert!(reason.contains(command.name()), "{reason}");
        assert_eq!(chain.command(&operator(), command), Ok(()));
        assert_eq!(chain.command(&owner(), command), Ok(()));
    }
    let reads = [
        Command::ListRuntimes,
        Command::ListWorkers {
            runtime: runtime.clone(),
        },
        Command::Transcript {
            runtime: runtime.clone(),
            worker: worker.clone(),
        },
        Command::Observe {
            runtime: None,
            worker: None,
        },
    ];
    for command in &reads {
        assert_eq!(chain.command(&observer(), command), Ok(()), "{command:?}");
    }
}

#[test]
fn truncate_tool_output_cuts_tool_results_with_a_marker() {
    let Some(scratch) = installed("truncate_tool_output_cuts_tool_results") else {
        return;
    };
    let (_, chain) = scratch.chain(&[truncate(8)]);
    let long = "0123456789abcdef";
    let cut = "01234567\n[tool output truncated: 8 of 16 bytes cut by policy truncate-tool-output]";
    let e = envelope(1, tool_result(long));
    assert_eq!(seen(&chain, &observer(), &e), Some(tool_result(cut)));
    assert_eq!(seen(&chain, &operator(), &e), Some(tool_result(cut)));
    assert_eq!(seen(&chain, &owner(), &e), Some(tool_result(long)));
    let short = envelope(2, tool_result("short"));
    assert_eq!(
        seen(&chain, &observer(), &short),
        Some(tool_result("short"))
    );

    let transcript = vec![assistant(long, None), tool(long)];
    let want = vec![assistant(long, None), tool(cut)];
    assert_eq!(
        chain.observe_transcript(&observer(), "local", "w_1", transcript.clone()),
        Some(want.clone())
    );
    let snapshot = WorkerSnapshot {
        worker: worker("w_1"),
        transcript: transcript.clone(),
        in_flight: None,
    };
    assert_eq!(
        chain
            .observe_snapshot(&observer(), "local", snapshot.clone())
            .map(|s| s.transcript),
        Some(want)
    );
    assert_eq!(
        chain.observe_snapshot(&owner(), "local", snapshot.clone()),
        Some(snapshot)
    );
}

#[test]
fn settings_an_example_does_not_accept_refuse_the_chain() {
    let Some(scratch) = installed("settings_an_example_does_not_accept") else {
        return;
    };
    let policies = scratch.policies();
    let report = policies.reload(
        &scratch.sources(),
        &[
            entry("read-only", json!({})),
            entry("truncate-tool-output", json!({"roles": [], "max_byte": 3})),
        ],
    );
    assert!(!report.applied);
    let reasons: Vec<String> = report.refused.iter().map(|r| r.to_string()).collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(reasons[0].contains("missing field `roles`"), "{reasons:?}");
    assert!(
        reasons[1].contains("unknown field `max_byte`"),
        "{reasons:?}"
    );
    assert!(policies.chain().is_empty());
}
