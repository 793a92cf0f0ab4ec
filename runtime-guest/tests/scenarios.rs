//! Scenario tests of the core: one behaviour each, with the exact events it emits.

mod common;

use common::*;
use yoi_protocol::{
    CoreError, Effect, ErrorInfo, Event, FinishReason, Limits, ModelBudget, Role, StopReason,
    ToolCall, Usage, WorkerStatus,
};
use yoi_runtime_guest::Runtime;

fn status(from: WorkerStatus, to: WorkerStatus) -> Event {
    Event::StatusChanged { from, to }
}

/// A worker with the `search` tool, an input sent, the events of both drained; returns
/// the worker id, run id and the model call.
fn running(h: &mut Harness) -> (String, String, yoi_protocol::ModelRequest) {
    let w = h.create(spec("demo", &["search"]));
    let run = h.input(&w, "hello").unwrap();
    h.events();
    let call = h.model_call();
    (w, run, call)
}

// ----- create / list / get ------------------------------------------------------------

#[test]
fn create_worker_emits_worker_created() {
    let mut h = Harness::new();
    let info = h.rt.create_worker(5, spec("demo", &["search"])).unwrap();
    assert_eq!(info.id, "w_1");
    assert_eq!(info.status, WorkerStatus::Idle);
    assert_eq!(info.created_at_ms, 5);
    assert_eq!(info.max_steps, Limits::default().default_max_steps);
    assert_eq!(info.tools, vec!["search".to_string()]);
    assert_eq!((info.run_count, info.message_count), (0, 0));
    let records = h.records();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].worker_id.as_deref(), Some("w_1"));
    assert_eq!(records[0].at_ms, 5);
    assert_eq!(
        records[0].event,
        Event::WorkerCreated {
            worker: Box::new(info.clone())
        }
    );
    assert!(h.effects().is_empty());
    assert_eq!(h.rt.get_worker("w_1").unwrap(), info);
}

#[test]
fn workers_are_listed_oldest_first_with_sequential_ids() {
    let mut h = Harness::new();
    for name in ["a", "b", "c"] {
        h.create(spec(name, &[]));
    }
    let list = h.rt.list_workers();
    let ids: Vec<_> = list.iter().map(|w| w.id.as_str()).collect();
    assert_eq!(ids, ["w_1", "w_2", "w_3"]);
    let names: Vec<_> = list.iter().map(|w| w.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "c"]);
}

#[test]
fn unknown_worker_is_not_found_everywhere() {
    let mut rt = Runtime::new();
    let nf = CoreError::WorkerNotFound {
        worker_id: "w_9".into(),
    };
    assert_eq!(rt.get_worker("w_9"), Err(nf.clone()));
    assert_eq!(rt.send_input(1, "w_9", input("hi")), Err(nf.clone()));
    assert_eq!(rt.cancel(1, "w_9"), Err(nf.clone()));
    assert!(rt.stop(1, "w_9").is_err());
    assert!(rt.transcript("w_9").is_err());
    assert!(rt.snapshot("w_9").is_err());
    assert!(rt.pull_events(10).is_empty());
}

#[test]
fn invalid_specs_are_rejected_without_events() {
    let mut h = Harness::new();
    let mut bad = spec("", &[]);
    assert!(matches!(
        h.rt.create_worker(1, bad.clone()),
        Err(CoreError::InvalidRequest { message }) if message.contains("name")
    ));
    bad.name = "ok".into();
    bad.tools = vec!["Bad Tool".into()];
    assert!(matches!(
        h.rt.create_worker(1, bad.clone()),
        Err(CoreError::InvalidRequest { message }) if message.contains("tools[0]")
    ));
    bad.tools = vec![];
    bad.max_steps = Some(0);
    assert!(matches!(
        h.rt.create_worker(1, bad),
        Err(CoreError::InvalidRequest { message }) if message.contains("max_steps")
    ));
    assert!(h.events().is_empty());
    assert!(h.rt.list_workers().is_empty());
}

#[test]
fn max_workers_limit() {
    let mut h = Harness::new();
    h.rt.configure(Limits {
        max_workers: 2,
        ..Limits::default()
    });
    h.create(spec("a", &[]));
    let b = h.create(spec("b", &[]));
    h.rt.stop(9, &b).unwrap(); // stopped workers still count
    assert!(matches!(
        h.rt.create_worker(10, spec("c", &[])),
        Err(CoreError::LimitExceeded { message }) if message.contains("max_workers")
    ));
    // The failed create consumed no id.
    h.rt.configure(Limits::default());
    assert_eq!(h.create(spec("c", &[])), "w_3");
}

#[test]
fn default_max_steps_comes_from_the_limits() {
    let mut h = Harness::new();
    h.rt.configure(Limits {
        default_max_steps: 3,
        ..Limits::default()
    });
    let w = h.create(spec("a", &[]));
    assert_eq!(h.rt.get_worker(&w).unwrap().max_steps, 3);
}

// ----- input ----------------------------------------------------------------------------

#[test]
fn input_starts_a_run_and_calls_the_model() {
    let mut h = Harness::new();
    let w = h.create(spec("demo", &["search"]));
    h.events();
    let run = h.input(&w, "hello").unwrap();
    assert_eq!(run, "r_1");
    assert_eq!(
        h.events(),
        vec![
            Event::InputAccepted {
                run_id: run.clone(),
                text: "hello".into(),
                request_id: None
            },
            status(WorkerStatus::Idle, WorkerStatus::Running),
            Event::RunStarted {
                run_id: run.clone()
            },
        ]
    );
    let call = h.model_call();
    assert_eq!(call.call_id, 1);
    assert_eq!(call.worker_id, w);
    assert_eq!(call.run_id, run);
    assert_eq!(call.step, 1);
    assert_eq!(call.model, "scripted");
    assert_eq!(call.system_prompt.as_deref(), Some("be brief"));
    assert_eq!(call.tools, vec!["search".to_string()]);
    assert_eq!(call.messages.len(), 1);
    assert_eq!(call.messages[0].role, Role::User);
    assert_eq!(call.messages[0].content, "hello");
    assert_eq!(call.messages[0].run_id, run);
    let info = h.rt.get_worker(&w).unwrap();
    assert_eq!(info.status, WorkerStatus::Running);
    assert_eq!(info.current_run.as_deref(), Some("r_1"));
    assert_eq!((info.run_count, info.message_count), (1, 1));
}

#[test]
fn input_validation_and_limits() {
    let mut h = Harness::new();
    h.rt.configure(Limits {
        max_input_bytes: 8,
        ..Limits::default()
    });
    let w = h.create(spec("demo", &[]));
    h.events();
    assert!(
        matches!(h.input(&w, "   "), Err(CoreError::InvalidRequest { message }) if message.contains("text"))
    );
    assert!(
        matches!(h.input(&w, "123456789"), Err(CoreError::LimitExceeded { message }) if message.contains("max_input_bytes"))
    );
    assert!(matches!(
        h.send(&w, input_with("hi", "")),
        Err(CoreError::InvalidRequest { message }) if message.contains("request_id")
    ));
    assert!(matches!(
        h.send(&w, input_with("hi", &"x".repeat(129))),
        Err(CoreError::InvalidRequest { message }) if message.contains("request_id")
    ));
    assert!(h.events().is_empty());
    assert!(h.effects().is_empty());
    assert_eq!(h.input(&w, "12345678").unwrap(), "r_1");
}

#[test]
fn busy_carries_the_run_id_and_a_repeated_request_id_returns_the_run() {
    let mut h = Harness::new();
    let w = h.create(spec("demo", &[]));
    let run = h.send(&w, input_with("hi", "req-1")).unwrap();
    h.events();
    h.effects();
    assert_eq!(
        h.input(&w, "again"),
        Err(CoreError::Busy {
            run_id: run.clone()
        })
    );
    assert_eq!(
        h.send(&w, input_with("again", "req-2")),
        Err(CoreError::Busy {
            run_id: run.clone()
        })
    );
    assert_eq!(h.send(&w, input_with("hi", "req-1")), Ok(run));
    assert!(h.events().is_empty());
    assert!(h.effects().is_empty());
}

#[test]
fn repeated_request_id_after_the_run_returns_the_earlier_run_without_events() {
    let mut h = Harness::new();
    let w = h.create(spec("demo", &[]));
    let r1 = h.send(&w, input_with("hi", "req-1")).unwrap();
    let call = h.model_call();
    h.deliver(vec![
        text(call.call_id, "hello"),
        done(call.call_id, FinishReason::Stop),
    ]);
    h.events();
    assert_eq!(h.send(&w, input_with("hi", "req-1")), Ok(r1.clone()));
    assert!(h.events().is_empty());
    assert!(h.effects().is_empty());
    assert_eq!(h.rt.get_worker(&w).unwrap().run_count, 1);
    // Another request id starts another run.
    let r2 = h.send(&w, input_with("hi", "req-2")).unwrap();
    assert_ne!(r1, r2);
    assert_eq!(
        h.events()[0],
        Event::InputAccepted {
            run_id: r2,
            text: "hi".into(),
            request_id: Some("req-2".into())
        }
    );
}

#[test]
fn request_ids_are_remembered_for_the_last_256_runs() {
    let mut h = Harness::new();
    let w = h.create(spec("demo", &[]));
    let mut runs = Vec::new();
    for i in 0..257 {
        let run = h.send(&w, input_with("hi", &format!("req-{i}"))).unwrap();
        let call = h.model_call();
        h.deliver(vec![done(call.call_id, FinishReason::Stop)]);
        runs.push(run);
    }
    h.events();
    // req-0 is forgotten: it starts a new run; req-1 is still known.
    assert_eq!(h.send(&w, input_with("hi", "req-1")), Ok(runs[1].clone()));
    let again = h.send(&w, input_with("hi", "req-0")).unwrap();
    assert_ne!(again, runs[0]);
}

// ----- streaming ------------------------------------------------------------------------

#[test]
fn streamed_text_and_reasoning_become_an_assistant_message() {
    let mut h = Harness::new();
    let (w, run, call) = running(&mut h);
    let c = call.call_id;
    h.deliver(vec![
        reasoning(c, "Think"),
        reasoning(c, "ing."),
        text(c, "Hel"),
        text(c, ""),
        text(c, "lo"),
        usage(c, 10, 2),
    ]);
    assert_eq!(
        h.events(),
        vec![
            Event::ReasoningDelta {
                run_id: run.clone(),
                text: "Think".into()
            },
            Event::ReasoningDelta {
                run_id: run.clone(),
                text: "ing.".into()
            },
            Event::TextDelta {
                run_id: run.clone(),
                text: "Hel".into()
            },
            Event::TextDelta {
                run_id: run.clone(),
                text: "lo".into()
            },
            Event::Usage {
                run_id: run.clone(),
                usage: Usage {
                    input_tokens: 10,
                    output_tokens: 2
                }
            },
        ]
    );
    // In flight: partial output in the snapshot, not in the transcript.
    let snap = h.rt.snapshot(&w).unwrap();
    let inf = snap.in_flight.expect("in flight");
    assert_eq!((inf.run_id.as_str(), inf.step), (run.as_str(), 1));
    assert_eq!(
        (inf.reasoning.as_str(), inf.text.as_str()),
        ("Thinking.", "Hello")
    );
    assert_eq!(snap.transcript.len(), 1);

    h.deliver(vec![done(c, FinishReason::Stop)]);
    assert_eq!(
        h.events(),
        vec![
            Event::ReasoningDone {
                run_id: run.clone(),
                text: "Thinking.".into()
            },
            Event::TextDone {
                run_id: run.clone(),
                text: "Hello".into()
            },
            Event::StepFinished {
                run_id: run.clone(),
                step: 1,
                finish_reason: FinishReason::Stop
            },
            Event::RunCompleted {
                run_id: run.clone(),
                stop_reason: StopReason::EndTurn
            },
            status(WorkerStatus::Running, WorkerStatus::Idle),
        ]
    );
    assert!(h.effects().is_empty());
    let transcript = h.rt.transcript(&w).unwrap();
    assert_eq!(transcript.len(), 2);
    let answer = &transcript[1];
    assert_eq!(answer.role, Role::Assistant);
    assert_eq!(answer.content, "Hello");
    assert_eq!(answer.reasoning.as_deref(), Some("Thinking."));
    assert!(answer.tool_calls.is_empty());
    assert_eq!(answer.run_id, run);
    let info = h.rt.get_worker(&w).unwrap();
    assert_eq!(info.status, WorkerStatus::Idle);
    assert_eq!(info.current_run, None);
    assert_eq!(info.message_count, 2);
    assert_eq!(
        info.usage,
        Usage {
            input_tokens: 10,
            output_tokens: 2
        }
    );
    assert_eq!(h.rt.snapshot(&w).unwrap().in_flight, None);
}

#[test]
fn finish_reasons_map_to_stop_reasons() {
    for (finish, stop) in [
        (FinishReason::Stop, StopReason::EndTurn),
        (FinishReason::ToolCalls, StopReason::EndTurn),
        (FinishReason::Length, StopReason::MaxTokens),
        (FinishReason::ContentFilter, StopReason::ContentFilter),
    ] {
        let mut h = Harness::new();
        let (_, run, call) = running(&mut h);
        h.deliver(vec![text(call.call_id, "x"), done(call.call_id, finish)]);
        let events = h.events();
        assert!(events.contains(&Event::RunCompleted {
            run_id: run,
            stop_reason: stop
        }));
    }
}

#[test]
fn usage_adds_up_over_calls_and_runs() {
    let mut h = Harness::new();
    let (w, _, call) = running(&mut h);
    h.deliver(vec![
        usage(call.call_id, 1, 2),
        usage(call.call_id, 3, 4),
        done(call.call_id, FinishReason::Stop),
    ]);
    h.input(&w, "more").unwrap();
    let call = h.model_call();
    h.deliver(vec![
        usage(call.call_id, 10, 20),
        done(call.call_id, FinishReason::Stop),
    ]);
    assert_eq!(
        h.rt.get_worker(&w).unwrap().usage,
        Usage {
            input_tokens: 14,
            output_tokens: 26
        }
    );
    assert_eq!(h.rt.get_worker(&w).unwrap().run_count, 2);
}

#[test]
fn model_failure_fails_the_run_and_drops_partial_output() {
    let mut h = Harness::new();
    let (w, run, call) = running(&mut h);
    h.deliver(vec![
        text(call.call_id, "partial"),
        failed(call.call_id, "rate_limited"),
    ]);
    assert_eq!(
        h.events(),
        vec![
            Event::TextDelta {
                run_id: run.clone(),
                text: "partial".into()
            },
            Event::RunFailed {
                run_id: run.clone(),
                error: ErrorInfo::new("rate_limited", "it broke")
            },
            status(WorkerStatus::Running, WorkerStatus::Idle),
        ]
    );
    assert!(h.effects().is_empty());
    assert_eq!(h.rt.transcript(&w).unwrap().len(), 1);
    // Later completions of the failed call are ignored.
    h.deliver(vec![
        text(call.call_id, "late"),
        done(call.call_id, FinishReason::Stop),
    ]);
    assert!(h.events().is_empty());
    // The worker takes input again.
    assert_eq!(h.input(&w, "again").unwrap(), "r_2");
}

#[test]
fn unknown_call_ids_are_ignored() {
    let mut h = Harness::new();
    let (_, _, call) = running(&mut h);
    h.deliver(vec![
        text(999, "x"),
        done(0, FinishReason::Stop),
        tool_done(call.call_id, "wrong kind", false),
        tool_done(u64::MAX, "x", true),
    ]);
    assert!(h.events().is_empty());
    assert!(h.effects().is_empty());
}

// ----- tools ----------------------------------------------------------------------------

#[test]
fn tool_loop_over_two_steps() {
    let mut h = Harness::new();
    let (w, run, call) = running(&mut h);
    let c = call.call_id;
    h.deliver(vec![
        text(c, "Let me look."),
        fragment(c, 0, Some("call_a"), Some("search"), ""),
        fragment(c, 0, None, None, "{\"q\":"),
        fragment(c, 0, None, None, "\"rust\"}"),
    ]);
    assert_eq!(
        h.events(),
        vec![
            Event::TextDelta {
                run_id: run.clone(),
                text: "Let me look.".into()
            },
            Event::ToolCallStarted {
                run_id: run.clone(),
                id: "call_a".into(),
                name: "search".into()
            },
            Event::ToolCallArgsDelta {
                run_id: run.clone(),
                id: "call_a".into(),
                delta: "{\"q\":".into()
            },
            Event::ToolCallArgsDelta {
                run_id: run.clone(),
                id: "call_a".into(),
                delta: "\"rust\"}".into()
            },
        ]
    );
    let inf = h.rt.snapshot(&w).unwrap().in_flight.unwrap();
    assert_eq!(inf.tool_calls.len(), 1);
    assert_eq!(inf.tool_calls[0].id, "call_a");
    assert_eq!(inf.tool_calls[0].name, "search");
    assert_eq!(inf.tool_calls[0].arguments, "{\"q\":\"rust\"}");

    h.deliver(vec![done(c, FinishReason::ToolCalls)]);
    let call_a = ToolCall {
        id: "call_a".into(),
        name: "search".into(),
        arguments: "{\"q\":\"rust\"}".into(),
    };
    assert_eq!(
        h.events(),
        vec![
            Event::TextDone {
                run_id: run.clone(),
                text: "Let me look.".into()
            },
            Event::ToolCallReady {
                run_id: run.clone(),
                id: "call_a".into(),
                name: "search".into(),
                arguments: "{\"q\":\"rust\"}".into()
            },
            Event::StepFinished {
                run_id: run.clone(),
                step: 1,
                finish_reason: FinishReason::ToolCalls
            },
        ]
    );
    let tools = h.tool_calls();
    assert_eq!(tools.len(), 1);
    assert_eq!(tools[0].tool_call_id, "call_a");
    assert_eq!(tools[0].name, "search");
    assert_eq!(tools[0].arguments, "{\"q\":\"rust\"}");
    assert_eq!(tools[0].run_id, run);
    assert_eq!(tools[0].worker_id, w);
    // Waiting for the tool: the snapshot shows it pending.
    let inf = h.rt.snapshot(&w).unwrap().in_flight.unwrap();
    assert_eq!(inf.step, 1);
    assert_eq!(inf.pending_tools, vec![call_a.clone()]);
    assert!(inf.tool_calls.is_empty());

    h.deliver(vec![tool_done(tools[0].call_id, "found it", false)]);
    assert_eq!(
        h.events(),
        vec![Event::ToolResult {
            run_id: run.clone(),
            id: "call_a".into(),
            name: "search".into(),
            output: "found it".into(),
            is_error: false
        }]
    );
    let step2 = h.model_call();
    assert_eq!(step2.step, 2);
    assert_eq!(step2.messages.len(), 3);
    assert_eq!(step2.messages[1].role, Role::Assistant);
    assert_eq!(step2.messages[1].tool_calls, vec![call_a]);
    assert_eq!(step2.messages[2].role, Role::Tool);
    assert_eq!(step2.messages[2].tool_call_id.as_deref(), Some("call_a"));
    assert_eq!(step2.messages[2].content, "found it");
    assert!(!step2.messages[2].is_error);
    assert_eq!(h.rt.snapshot(&w).unwrap().in_flight.unwrap().step, 2);

    h.deliver(vec![
        text(step2.call_id, "Rust it is."),
        done(step2.call_id, FinishReason::Stop),
    ]);
    let kinds = h.kinds();
    assert_eq!(
        kinds,
        [
            "text_delta",
            "text_done",
            "step_finished",
            "run_completed",
            "status_changed"
        ]
    );
    let transcript = h.rt.transcript(&w).unwrap();
    assert_eq!(transcript.len(), 4);
    assert_eq!(transcript[3].content, "Rust it is.");
}

#[test]
fn several_tool_calls_are_issued_at_once_in_index_order() {
    let mut h = Harness::new();
    let w = h.create(spec("demo", &["a", "b"]));
    let run = h.input(&w, "go").unwrap();
    let c = h.model_call().call_id;
    h.events();
    // Index 1 starts first; ids are absent, so the core makes them up.
    h.deliver(vec![
        fragment(c, 1, None, Some("b"), "{}"),
        fragment(c, 0, None, Some("a"), "{\"x\":1}"),
        done(c, FinishReason::ToolCalls),
    ]);
    let ready: Vec<_> = h
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::ToolCallReady { id, name, .. } => Some((id, name)),
            _ => None,
        })
        .collect();
    assert_eq!(
        ready,
        vec![
            (format!("call_{run}_1_0"), "a".to_string()),
            (format!("call_{run}_1_1"), "b".to_string())
        ]
    );
    let tools = h.tool_calls();
    assert_eq!(tools.len(), 2);
    assert_eq!((tools[0].name.as_str(), tools[1].name.as_str()), ("a", "b"));
    // Results in any order; the next step starts after the last.
    h.deliver(vec![tool_done(tools[1].call_id, "B", false)]);
    assert!(h.effects().is_empty());
    assert_eq!(
        h.rt.snapshot(&w)
            .unwrap()
            .in_flight
            .unwrap()
            .pending_tools
            .len(),
        1
    );
    h.deliver(vec![tool_done(tools[0].call_id, "A", true)]);
    let step2 = h.model_call();
    assert_eq!(step2.step, 2);
    let results: Vec<_> = step2.messages[2..]
        .iter()
        .map(|m| (m.content.as_str(), m.is_error))
        .collect();
    assert_eq!(results, [("B", false), ("A", true)]);
    // A result delivered twice is ignored.
    h.events();
    h.deliver(vec![tool_done(tools[0].call_id, "A", true)]);
    assert!(h.events().is_empty());
}

#[test]
fn name_pieces_append_and_duplicate_ids_get_made_unique() {
    let mut h = Harness::new();
    let w = h.create(spec("demo", &["web_search"]));
    let run = h.input(&w, "go").unwrap();
    let c = h.model_call().call_id;
    h.events();
    h.deliver(vec![
        fragment(c, 0, Some("dup"), Some("web_"), ""),
        fragment(c, 0, Some("ignored"), Some("search"), "{}"),
        fragment(c, 1, Some("dup"), Some("web_search"), ""),
    ]);
    let events = h.events();
    assert_eq!(
        events[0],
        Event::ToolCallStarted {
            run_id: run.clone(),
            id: "dup".into(),
            name: "web_".into()
        }
    );
    assert_eq!(
        events[2],
        Event::ToolCallStarted {
            run_id: run.clone(),
            id: format!("call_{run}_1_1"),
            name: "web_search".into()
        }
    );
    h.deliver(vec![done(c, FinishReason::ToolCalls)]);
    let tools = h.tool_calls();
    assert_eq!(tools.len(), 2);
    assert_eq!(tools[0].name, "web_search");
    assert_eq!(tools[0].tool_call_id, "dup");
    // Empty arguments count as `{}`.
    assert_eq!(tools[1].arguments, "{}");
}

#[test]
fn invalid_arguments_become_an_error_result_and_the_run_goes_on() {
    let mut h = Harness::new();
    let (w, run, call) = running(&mut h);
    let c = call.call_id;
    h.deliver(vec![
        fragment(c, 0, Some("bad"), Some("search"), "{\"q\": "),
        fragment(c, 1, Some("arr"), Some("search"), "[1]"),
        done(c, FinishReason::ToolCalls),
    ]);
    let results: Vec<_> = h
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::ToolResult {
                id,
                output,
                is_error,
                run_id,
                ..
            } => {
                assert_eq!(run_id, run);
                Some((id, output, is_error))
            }
            _ => None,
        })
        .collect();
    assert_eq!(results.len(), 2);
    for (_, output, is_error) in &results {
        assert!(is_error);
        assert!(output.starts_with("invalid arguments: "), "{output}");
    }
    // No tool ran; the next model step sees both error results.
    let step2 = h.model_call();
    assert_eq!(step2.step, 2);
    let tool_messages: Vec<_> = step2
        .messages
        .iter()
        .filter(|m| m.role == Role::Tool)
        .collect();
    assert_eq!(tool_messages.len(), 2);
    assert!(tool_messages.iter().all(|m| m.is_error));
    // The assistant message keeps the arguments as the model sent them.
    assert_eq!(step2.messages[1].tool_calls[0].arguments, "{\"q\": ");
    let _ = w;
}

#[test]
fn a_tool_outside_the_allowlist_is_an_error_result() {
    let mut h = Harness::new();
    let (_, run, call) = running(&mut h);
    let c = call.call_id;
    h.deliver(vec![
        fragment(c, 0, Some("x"), Some("rm_rf"), "{}"),
        fragment(c, 1, Some("y"), None, "{}"),
        done(c, FinishReason::ToolCalls),
    ]);
    let events = h.events();
    let outputs: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::ToolResult {
                output, is_error, ..
            } => Some((output.clone(), *is_error)),
            _ => None,
        })
        .collect();
    assert_eq!(outputs.len(), 2);
    assert!(
        outputs[0].1 && outputs[0].0.contains("rm_rf") && outputs[0].0.contains("not available")
    );
    assert!(outputs[1].1);
    assert!(events.contains(&Event::ToolResult {
        run_id: run,
        id: "x".into(),
        name: "rm_rf".into(),
        output: outputs[0].0.clone(),
        is_error: true
    }));
    assert_eq!(h.model_call().step, 2);
}

#[test]
fn max_steps_ends_the_run_after_the_last_tools() {
    let mut h = Harness::new();
    let mut s = spec("demo", &["search"]);
    s.max_steps = Some(2);
    let w = h.create(s);
    let run = h.input(&w, "go").unwrap();
    for step in 1..=2 {
        let call = h.model_call();
        assert_eq!(call.step, step);
        h.deliver(vec![
            fragment(
                call.call_id,
                0,
                Some(&format!("c{step}")),
                Some("search"),
                "{}",
            ),
            done(call.call_id, FinishReason::ToolCalls),
        ]);
        let tools = h.tool_calls();
        assert_eq!(tools.len(), 1);
        h.events();
        h.deliver(vec![tool_done(tools[0].call_id, "r", false)]);
    }
    let events = h.events();
    assert_eq!(
        events[events.len() - 2..],
        [
            Event::RunCompleted {
                run_id: run,
                stop_reason: StopReason::MaxSteps
            },
            status(WorkerStatus::Running, WorkerStatus::Idle)
        ]
    );
    assert!(h.effects().is_empty());
    // user, (assistant, tool) x 2
    assert_eq!(h.rt.get_worker(&w).unwrap().message_count, 5);
}

// ----- cancel / stop ----------------------------------------------------------------------

#[test]
fn cancel_mid_stream_aborts_the_model_call_and_drops_partial_output() {
    let mut h = Harness::new();
    let (w, run, call) = running(&mut h);
    h.deliver(vec![
        text(call.call_id, "half an ans"),
        fragment(call.call_id, 0, Some("t"), Some("search"), "{"),
    ]);
    h.events();
    assert_eq!(h.cancel(&w), Ok(run.clone()));
    assert_eq!(
        h.effects(),
        vec![Effect::Abort {
            call_id: call.call_id
        }]
    );
    assert_eq!(
        h.events(),
        vec![
            Event::RunCancelled {
                run_id: run.clone()
            },
            status(WorkerStatus::Running, WorkerStatus::Idle)
        ]
    );
    assert_eq!(h.rt.transcript(&w).unwrap().len(), 1);
    assert_eq!(h.rt.snapshot(&w).unwrap().in_flight, None);
    // Completions of the aborted call are ignored.
    h.deliver(vec![
        text(call.call_id, "swer"),
        done(call.call_id, FinishReason::Stop),
    ]);
    assert!(h.events().is_empty());
    assert_eq!(h.cancel(&w), Err(CoreError::NotRunning));
}

#[test]
fn cancel_mid_tool_aborts_the_tool_and_answers_it() {
    let mut h = Harness::new();
    let (w, run, call) = running(&mut h);
    h.deliver(vec![
        fragment(call.call_id, 0, Some("t1"), Some("search"), "{}"),
        fragment(call.call_id, 1, Some("t2"), Some("search"), "{}"),
        done(call.call_id, FinishReason::ToolCalls),
    ]);
    let tools = h.tool_calls();
    h.deliver(vec![tool_done(tools[0].call_id, "one", false)]);
    h.events();
    assert_eq!(h.cancel(&w), Ok(run.clone()));
    assert_eq!(
        h.effects(),
        vec![Effect::Abort {
            call_id: tools[1].call_id
        }]
    );
    assert_eq!(
        h.events(),
        vec![
            Event::ToolResult {
                run_id: run.clone(),
                id: "t2".into(),
                name: "search".into(),
                output: "cancelled".into(),
                is_error: true
            },
            Event::RunCancelled {
                run_id: run.clone()
            },
            status(WorkerStatus::Running, WorkerStatus::Idle)
        ]
    );
    // Every assistant tool call has a result in the transcript.
    let transcript = h.rt.transcript(&w).unwrap();
    let roles: Vec<_> = transcript.iter().map(|m| m.role).collect();
    assert_eq!(roles, [Role::User, Role::Assistant, Role::Tool, Role::Tool]);
    h.deliver(vec![tool_done(tools[1].call_id, "late", false)]);
    assert!(h.events().is_empty());
    assert!(h.effects().is_empty());
}

#[test]
fn cancel_errors() {
    let mut h = Harness::new();
    let w = h.create(spec("demo", &[]));
    assert_eq!(h.cancel(&w), Err(CoreError::NotRunning));
    h.rt.stop(1, &w).unwrap();
    assert_eq!(h.cancel(&w), Err(CoreError::Stopped));
}

#[test]
fn stop_an_idle_worker() {
    let mut h = Harness::new();
    let w = h.create(spec("demo", &[]));
    h.events();
    let info = h.rt.stop(7, &w).unwrap();
    assert_eq!(info.status, WorkerStatus::Stopped);
    assert_eq!(
        h.events(),
        vec![status(WorkerStatus::Idle, WorkerStatus::Stopped)]
    );
    assert_eq!(h.input(&w, "hi"), Err(CoreError::Stopped));
    assert_eq!(h.send(&w, input_with("hi", "r")), Err(CoreError::Stopped));
    assert_eq!(h.rt.stop(8, &w), Err(CoreError::Stopped));
    assert!(h.events().is_empty());
}

#[test]
fn stop_a_running_worker_cancels_first() {
    let mut h = Harness::new();
    let (w, run, call) = running(&mut h);
    let info = h.rt.stop(50, &w).unwrap();
    assert_eq!(info.status, WorkerStatus::Stopped);
    assert_eq!(info.current_run, None);
    assert_eq!(
        h.effects(),
        vec![Effect::Abort {
            call_id: call.call_id
        }]
    );
    assert_eq!(
        h.events(),
        vec![
            Event::RunCancelled { run_id: run },
            status(WorkerStatus::Running, WorkerStatus::Idle),
            status(WorkerStatus::Idle, WorkerStatus::Stopped),
        ]
    );
}

// ----- queues -----------------------------------------------------------------------------

#[test]
fn pulls_take_at_most_max_oldest_first() {
    let mut h = Harness::new();
    let w = h.create(spec("demo", &[]));
    h.input(&w, "hi").unwrap();
    assert!(h.rt.pull_events(0).is_empty());
    let first = h.rt.pull_events(2);
    assert_eq!(first.len(), 2);
    assert_eq!(first[0].event.kind(), "worker_created");
    assert_eq!(first[1].event.kind(), "input_accepted");
    assert_eq!(h.rt.pull_events(100).len(), 2);
    assert!(h.rt.pull_effects(0).is_empty());
    assert_eq!(h.rt.pull_effects(5).len(), 1);
    assert!(h.rt.pull_effects(5).is_empty());
}

// ----- the context window ---------------------------------------------------------------

/// A finished run: input, an answer of `answer` bytes.
fn chat(h: &mut Harness, w: &str, input: &str, answer: &str) -> yoi_protocol::ModelRequest {
    h.input(w, input).unwrap();
    let call = h.model_call();
    h.deliver(vec![
        text(call.call_id, answer),
        done(call.call_id, FinishReason::Stop),
    ]);
    call
}

#[test]
fn requests_carry_the_most_recent_whole_runs_that_fit_the_budget() {
    let mut h = Harness::new();
    h.rt.configure_models(vec![ModelBudget {
        model: "scripted".into(),
        prompt_tokens: 300,
    }]);
    let w = h.create(spec("long", &[]));
    let answer = "x".repeat(400); // ~100 tokens
    let first = chat(&mut h, &w, "one", &answer);
    assert_eq!(first.messages.len(), 1);
    chat(&mut h, &w, "two", &answer);
    h.events();
    // Three runs of ~105 tokens and a new input do not fit in 300: the oldest whole
    // run is left out, and the request says so.
    chat(&mut h, &w, "three", &answer);
    h.input(&w, "four").unwrap();
    let events = h.events();
    let call = h.model_call();
    let transcript = h.rt.transcript(&w).unwrap();
    assert_eq!(
        transcript.len(),
        7,
        "the transcript itself keeps everything"
    );
    assert_eq!(
        call.messages[..],
        transcript[transcript.len() - call.messages.len()..]
    );
    assert_eq!(
        call.messages[0].role,
        Role::User,
        "history starts with a user message"
    );
    let omitted = transcript.len() - call.messages.len();
    assert!(
        omitted >= 2 && omitted.is_multiple_of(2),
        "whole runs: {omitted}"
    );
    let trimmed = events
        .iter()
        .find_map(|e| match e {
            Event::ContextTrimmed {
                omitted_messages,
                budget_tokens,
                estimated_tokens,
                step,
                ..
            } => Some((*omitted_messages, *budget_tokens, *estimated_tokens, *step)),
            _ => None,
        })
        .expect("a context_trimmed event");
    assert_eq!(trimmed.0 as usize, omitted);
    assert_eq!(trimmed.1, 300);
    assert!(trimmed.2 <= 300);
    assert_eq!(trimmed.3, 1);
    // Restore replays the event.
    let mut restored = Runtime::new();
    restored.restore(h.log.clone()).unwrap();
    assert_eq!(restored.snapshot(&w), h.rt.snapshot(&w));
}

#[test]
fn a_tool_call_is_never_separated_from_its_result_and_the_input_is_always_kept() {
    let mut h = Harness::new();
    h.rt.configure_models(vec![ModelBudget {
        model: "scripted".into(),
        prompt_tokens: 120,
    }]);
    let w = h.create(spec("tools", &["search"]));
    let input = "find everything about rust";
    h.input(&w, input).unwrap();
    let big = "y".repeat(300);
    for (i, id) in ["call_a", "call_b", "call_c"].into_iter().enumerate() {
        let call = h.model_call();
        assert_eq!(
            call.messages[0].content,
            input,
            "step {}: the run's input",
            i + 1
        );
        for (at, m) in call.messages.iter().enumerate() {
            if m.role == Role::Tool {
                let before = &call.messages[..at];
                let asked = before
                    .iter()
                    .rev()
                    .find(|m| m.role == Role::Assistant)
                    .expect("its assistant message is there");
                assert!(
                    asked
                        .tool_calls
                        .iter()
                        .any(|c| Some(&c.id) == m.tool_call_id.as_ref())
                );
            }
        }
        h.deliver(vec![
            fragment(
                call.call_id,
                0,
                Some(id),
                Some("search"),
                "{\"q\":\"rust\"}",
            ),
            done(call.call_id, FinishReason::ToolCalls),
        ]);
        let tool = h.tool_calls().remove(0);
        h.deliver(vec![tool_done(tool.call_id, &big, false)]);
    }
    // Step 4: input + the latest step only (the two earlier steps do not fit).
    let call = h.model_call();
    assert_eq!(call.messages.len(), 3);
    assert_eq!(call.messages[0].content, input);
    assert_eq!(call.messages[1].tool_calls[0].id, "call_c");
    assert_eq!(call.messages[2].tool_call_id.as_deref(), Some("call_c"));
    let kinds = h.kinds();
    assert!(kinds.contains(&"context_trimmed"), "{kinds:?}");
}

#[test]
fn the_worker_budget_lowers_the_model_budget_and_reports_calibrate_it() {
    let mut h = Harness::new();
    let mut s = spec("small", &[]);
    s.context_tokens = Some(150);
    let w = h.create(s);
    assert_eq!(h.rt.get_worker(&w).unwrap().context_tokens, Some(150));
    let answer = "z".repeat(200); // ~55 tokens a run
    let first = chat(&mut h, &w, "a", &answer);
    assert_eq!(first.messages.len(), 1);
    chat(&mut h, &w, "b", &answer);
    let call = {
        h.input(&w, "c").unwrap();
        h.model_call()
    };
    // ~115 tokens fit in 150: nothing left out yet.
    assert_eq!(call.messages.len(), 5);
    // The provider says the prompt was three times the estimate: from now on the same
    // history no longer fits.
    h.deliver(vec![
        usage(call.call_id, 400, 1),
        text(call.call_id, "ok"),
        done(call.call_id, FinishReason::Stop),
    ]);
    h.input(&w, "d").unwrap();
    let call = h.model_call();
    assert!(
        call.messages.len() < 7,
        "calibrated: {}",
        call.messages.len()
    );
    let mut bad = spec("tiny", &[]);
    bad.context_tokens = Some(10);
    let now = h.now;
    assert!(matches!(
        h.rt.create_worker(now, bad),
        Err(yoi_protocol::CoreError::InvalidRequest { .. })
    ));
}
