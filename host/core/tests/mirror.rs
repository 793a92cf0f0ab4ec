//! Drift test: the WIT contract (as wasmtime's `bindgen!` generates it) and its serde
//! mirror in `yoi-protocol` carry the same information.
//!
//! `yoi_protocol::wit_mirror!` already fails to compile when a case or field exists on
//! one side only. This test checks the mapping is lossless: every case of every type
//! goes protocol -> WIT -> protocol and WIT -> protocol -> WIT unchanged, and through
//! JSON too. The sample sets are checked for completeness by exhaustive matches
//! (`*_case`), so a new case fails here until it has a sample.

use std::collections::BTreeSet;
use std::fmt::Debug;

use serde::Serialize;
use serde::de::DeserializeOwned;
use yoi_core::wasm::bindings::types as w;
use yoi_protocol::*;

fn roundtrip<P, W>(p: P)
where
    P: Clone + PartialEq + Debug + Into<W> + From<W> + Serialize + DeserializeOwned,
    W: Clone + PartialEq + Debug + Into<P> + From<P>,
{
    let wit: W = p.clone().into();
    let back: P = wit.clone().into();
    assert_eq!(back, p, "protocol -> WIT -> protocol changed the value");
    let again: W = back.into();
    assert_eq!(again, wit, "WIT -> protocol -> WIT changed the value");
    let json = serde_json::to_string(&p).unwrap();
    let parsed: P = serde_json::from_str(&json).unwrap();
    assert_eq!(parsed, p, "JSON round trip changed {json}");
}

/// Asserts `cases` (indices from an exhaustive `*_case` match) cover `0..n`.
/// The samples cover exactly the cases `0..n` (a case added to the `*_case` function
/// without raising `n`, or left without a sample, fails).
fn assert_covers(what: &str, cases: impl IntoIterator<Item = usize>, n: usize) {
    let seen: BTreeSet<usize> = cases.into_iter().collect();
    let missing: Vec<usize> = (0..n).filter(|i| !seen.contains(i)).collect();
    assert!(
        missing.is_empty(),
        "{what}: no sample for cases {missing:?}"
    );
    let unknown: Vec<usize> = seen.range(n..).copied().collect();
    assert!(
        unknown.is_empty(),
        "{what}: cases {unknown:?} beyond the {n} counted: raise the count"
    );
}

fn s(x: &str) -> String {
    x.to_string()
}

fn usage() -> Usage {
    Usage {
        input_tokens: 12,
        output_tokens: u64::MAX,
    }
}

fn worker(status: WorkerStatus, full: bool) -> WorkerInfo {
    WorkerInfo {
        id: s("w_1"),
        name: s("demo ✓"),
        model: s("scripted"),
        system_prompt: full.then(|| s("be brief")),
        tools: if full {
            vec![s("read_file"), s("list_dir")]
        } else {
            vec![]
        },
        max_steps: 8,
        status,
        created_at_ms: 1_700_000_000_000,
        current_run: full.then(|| s("r_3")),
        run_count: 3,
        message_count: 7,
        usage: usage(),
        context_tokens: full.then_some(2048),
    }
}

fn tool_call(n: u32) -> ToolCall {
    ToolCall {
        id: format!("call_{n}"),
        name: s("read_file"),
        arguments: s(r#"{"path":"a.txt"}"#),
    }
}

fn messages() -> Vec<Message> {
    vec![
        Message {
            role: Role::User,
            content: s("hello"),
            reasoning: None,
            tool_calls: vec![],
            tool_call_id: None,
            is_error: false,
            run_id: s("r_1"),
        },
        Message {
            role: Role::Assistant,
            content: s(""),
            reasoning: Some(s("think")),
            tool_calls: vec![tool_call(1), tool_call(2)],
            tool_call_id: None,
            is_error: false,
            run_id: s("r_1"),
        },
        Message {
            role: Role::Tool,
            content: s("no such file"),
            reasoning: None,
            tool_calls: vec![],
            tool_call_id: Some(s("call_1")),
            is_error: true,
            run_id: s("r_1"),
        },
    ]
}

fn error_info() -> ErrorInfo {
    ErrorInfo::new("interrupted", "the runtime restarted")
}

fn event_case(e: &Event) -> usize {
    match e {
        Event::WorkerCreated { .. } => 0,
        Event::StatusChanged { .. } => 1,
        Event::InputAccepted { .. } => 2,
        Event::RunStarted { .. } => 3,
        Event::ReasoningDelta { .. } => 4,
        Event::ReasoningDone { .. } => 5,
        Event::TextDelta { .. } => 6,
        Event::TextDone { .. } => 7,
        Event::ToolCallStarted { .. } => 8,
        Event::ToolCallArgsDelta { .. } => 9,
        Event::ToolCallReady { .. } => 10,
        Event::ToolResult { .. } => 11,
        Event::Usage { .. } => 12,
        Event::StepFinished { .. } => 13,
        Event::RunCompleted { .. } => 14,
        Event::RunFailed { .. } => 15,
        Event::RunCancelled { .. } => 16,
        Event::Diagnostic { .. } => 17,
        Event::ContextTrimmed { .. } => 18,
    }
}
const EVENT_CASES: usize = 19;

fn events() -> Vec<Event> {
    let run = || s("r_1");
    let mut v = vec![
        Event::WorkerCreated {
            worker: Box::new(worker(WorkerStatus::Idle, true)),
        },
        Event::WorkerCreated {
            worker: Box::new(worker(WorkerStatus::Stopped, false)),
        },
        Event::InputAccepted {
            run_id: run(),
            text: s("hi"),
            request_id: Some(s("req-1")),
        },
        Event::InputAccepted {
            run_id: run(),
            text: s(""),
            request_id: None,
        },
        Event::RunStarted { run_id: run() },
        Event::ReasoningDelta {
            run_id: run(),
            text: s("hm"),
        },
        Event::ReasoningDone {
            run_id: run(),
            text: s("hmm"),
        },
        Event::TextDelta {
            run_id: run(),
            text: s("Hel"),
        },
        Event::TextDone {
            run_id: run(),
            text: s("Hello"),
        },
        Event::ToolCallStarted {
            run_id: run(),
            id: s("call_1"),
            name: s("read_file"),
        },
        Event::ToolCallArgsDelta {
            run_id: run(),
            id: s("call_1"),
            delta: s("{\"pa"),
        },
        Event::ToolCallReady {
            run_id: run(),
            id: s("call_1"),
            name: s("read_file"),
            arguments: s("{}"),
        },
        Event::ToolResult {
            run_id: run(),
            id: s("call_1"),
            name: s("read_file"),
            output: s("contents"),
            is_error: false,
        },
        Event::ToolResult {
            run_id: run(),
            id: s("call_2"),
            name: s("nope"),
            output: s("unknown tool"),
            is_error: true,
        },
        Event::Usage {
            run_id: run(),
            usage: usage(),
        },
        Event::RunFailed {
            run_id: run(),
            error: error_info(),
        },
        Event::RunCancelled { run_id: run() },
        Event::ContextTrimmed {
            run_id: run(),
            step: 2,
            omitted_messages: 12,
            estimated_tokens: 3000,
            budget_tokens: 3072,
        },
    ];
    for (from, to) in [
        (WorkerStatus::Idle, WorkerStatus::Running),
        (WorkerStatus::Running, WorkerStatus::Idle),
        (WorkerStatus::Running, WorkerStatus::Stopped),
    ] {
        v.push(Event::StatusChanged { from, to });
    }
    for finish_reason in [
        FinishReason::Stop,
        FinishReason::Length,
        FinishReason::ToolCalls,
        FinishReason::ContentFilter,
    ] {
        v.push(Event::StepFinished {
            run_id: run(),
            step: 2,
            finish_reason,
        });
    }
    for stop_reason in [
        StopReason::EndTurn,
        StopReason::MaxTokens,
        StopReason::MaxSteps,
        StopReason::ContentFilter,
    ] {
        v.push(Event::RunCompleted {
            run_id: run(),
            stop_reason,
        });
    }
    for level in [Level::Info, Level::Warn, Level::Error] {
        v.push(Event::Diagnostic {
            level,
            code: s("cursor_expired"),
            message: s("older than retained history"),
        });
    }
    v
}

fn effect_case(e: &Effect) -> usize {
    match e {
        Effect::CallModel(_) => 0,
        Effect::CallTool(_) => 1,
        Effect::Abort { .. } => 2,
    }
}

fn effects() -> Vec<Effect> {
    vec![
        Effect::CallModel(ModelRequest {
            call_id: 1,
            worker_id: s("w_1"),
            run_id: s("r_1"),
            step: 1,
            model: s("scripted"),
            system_prompt: Some(s("be brief")),
            messages: messages(),
            tools: vec![s("read_file")],
        }),
        Effect::CallModel(ModelRequest {
            call_id: 2,
            worker_id: s("w_1"),
            run_id: s("r_1"),
            step: 2,
            model: s("scripted"),
            system_prompt: None,
            messages: vec![],
            tools: vec![],
        }),
        Effect::CallTool(ToolRequest {
            call_id: 3,
            worker_id: s("w_1"),
            run_id: s("r_1"),
            tool_call_id: s("call_1"),
            name: s("read_file"),
            arguments: s("{}"),
        }),
        Effect::Abort { call_id: u64::MAX },
    ]
}

fn completion_case(c: &Completion) -> usize {
    match c {
        Completion::TextDelta { .. } => 0,
        Completion::ReasoningDelta { .. } => 1,
        Completion::ToolCallDelta { .. } => 2,
        Completion::Usage { .. } => 3,
        Completion::ModelDone { .. } => 4,
        Completion::ModelFailed { .. } => 5,
        Completion::ToolDone { .. } => 6,
    }
}

fn completions() -> Vec<Completion> {
    let mut v = vec![
        Completion::TextDelta {
            call_id: 1,
            text: s("Hel"),
        },
        Completion::ReasoningDelta {
            call_id: 1,
            text: s("hm"),
        },
        Completion::ToolCallDelta {
            call_id: 1,
            index: 0,
            id: Some(s("call_1")),
            name: Some(s("read_file")),
            arguments: s("{\"pa"),
        },
        Completion::ToolCallDelta {
            call_id: 1,
            index: 1,
            id: None,
            name: None,
            arguments: s("th\"}"),
        },
        Completion::Usage {
            call_id: 1,
            usage: usage(),
        },
        Completion::ModelFailed {
            call_id: 1,
            error: error_info(),
        },
        Completion::ToolDone {
            call_id: 2,
            output: s("ok"),
            is_error: false,
        },
        Completion::ToolDone {
            call_id: 2,
            output: s("denied"),
            is_error: true,
        },
    ];
    for finish_reason in [
        FinishReason::Stop,
        FinishReason::Length,
        FinishReason::ToolCalls,
        FinishReason::ContentFilter,
    ] {
        v.push(Completion::ModelDone {
            call_id: 1,
            finish_reason,
        });
    }
    v
}

fn core_error_case(e: &CoreError) -> usize {
    match e {
        CoreError::WorkerNotFound { .. } => 0,
        CoreError::Busy { .. } => 1,
        CoreError::NotRunning => 2,
        CoreError::Stopped => 3,
        CoreError::InvalidRequest { .. } => 4,
        CoreError::LimitExceeded { .. } => 5,
    }
}

fn core_errors() -> Vec<CoreError> {
    vec![
        CoreError::WorkerNotFound {
            worker_id: s("w_9"),
        },
        CoreError::Busy { run_id: s("r_1") },
        CoreError::NotRunning,
        CoreError::Stopped,
        CoreError::InvalidRequest {
            message: s("name is empty"),
        },
        CoreError::LimitExceeded {
            message: s("max workers"),
        },
    ]
}

#[test]
fn every_event_round_trips() {
    let all = events();
    assert_covers("event", all.iter().map(event_case), EVENT_CASES);
    for event in all {
        roundtrip::<Event, w::Event>(event.clone());
        for worker_id in [None, Some(s("w_1"))] {
            roundtrip::<EventRecord, w::EventRecord>(EventRecord {
                worker_id,
                at_ms: 42,
                event: event.clone(),
            });
        }
    }
}

#[test]
fn every_effect_round_trips() {
    let all = effects();
    assert_covers("effect", all.iter().map(effect_case), 3);
    for e in all {
        roundtrip::<Effect, w::Effect>(e);
    }
}

#[test]
fn every_completion_round_trips() {
    let all = completions();
    assert_covers("completion", all.iter().map(completion_case), 7);
    for c in all {
        roundtrip::<Completion, w::Completion>(c);
    }
}

#[test]
fn every_core_error_round_trips() {
    let all = core_errors();
    assert_covers("core-error", all.iter().map(core_error_case), 6);
    for e in all {
        roundtrip::<CoreError, w::CoreError>(e);
    }
}

#[test]
fn every_enum_value_round_trips() {
    let statuses = [
        WorkerStatus::Idle,
        WorkerStatus::Running,
        WorkerStatus::Stopped,
    ];
    assert_covers(
        "worker-status",
        statuses.iter().map(|v| match v {
            WorkerStatus::Idle => 0,
            WorkerStatus::Running => 1,
            WorkerStatus::Stopped => 2,
        }),
        3,
    );
    statuses
        .into_iter()
        .for_each(roundtrip::<WorkerStatus, w::WorkerStatus>);

    let roles = [Role::User, Role::Assistant, Role::Tool];
    assert_covers(
        "role",
        roles.iter().map(|v| match v {
            Role::User => 0,
            Role::Assistant => 1,
            Role::Tool => 2,
        }),
        3,
    );
    roles.into_iter().for_each(roundtrip::<Role, w::Role>);

    let stops = [
        StopReason::EndTurn,
        StopReason::MaxTokens,
        StopReason::MaxSteps,
        StopReason::ContentFilter,
    ];
    assert_covers(
        "stop-reason",
        stops.iter().map(|v| match v {
            StopReason::EndTurn => 0,
            StopReason::MaxTokens => 1,
            StopReason::MaxSteps => 2,
            StopReason::ContentFilter => 3,
        }),
        4,
    );
    stops
        .into_iter()
        .for_each(roundtrip::<StopReason, w::StopReason>);

    let finishes = [
        FinishReason::Stop,
        FinishReason::Length,
        FinishReason::ToolCalls,
        FinishReason::ContentFilter,
    ];
    assert_covers(
        "finish-reason",
        finishes.iter().map(|v| match v {
            FinishReason::Stop => 0,
            FinishReason::Length => 1,
            FinishReason::ToolCalls => 2,
            FinishReason::ContentFilter => 3,
        }),
        4,
    );
    finishes
        .into_iter()
        .for_each(roundtrip::<FinishReason, w::FinishReason>);

    let levels = [Level::Info, Level::Warn, Level::Error];
    assert_covers(
        "level",
        levels.iter().map(|v| match v {
            Level::Info => 0,
            Level::Warn => 1,
            Level::Error => 2,
        }),
        3,
    );
    levels.into_iter().for_each(roundtrip::<Level, w::Level>);
}

#[test]
fn every_record_round_trips() {
    for full in [false, true] {
        let opt = |x: &str| full.then(|| s(x));
        roundtrip::<WorkerSpec, w::WorkerSpec>(WorkerSpec {
            name: s("demo"),
            model: s("scripted"),
            system_prompt: opt("sys"),
            tools: if full { vec![s("read_file")] } else { vec![] },
            max_steps: full.then_some(3),
            context_tokens: full.then_some(4096),
        });
        roundtrip::<Input, w::Input>(Input {
            text: s("hello"),
            request_id: opt("req"),
        });
        roundtrip::<WorkerInfo, w::WorkerInfo>(worker(WorkerStatus::Running, full));
        roundtrip::<WorkerSnapshot, w::WorkerSnapshot>(WorkerSnapshot {
            worker: worker(WorkerStatus::Running, full),
            transcript: if full { messages() } else { vec![] },
            in_flight: full.then(|| InFlight {
                run_id: s("r_2"),
                step: 2,
                reasoning: s("so"),
                text: s("The fi"),
                tool_calls: vec![
                    PartialToolCall {
                        index: 0,
                        id: s("call_1"),
                        name: s("read_file"),
                        arguments: s("{\"pa"),
                    },
                    PartialToolCall {
                        index: 1,
                        id: s(""),
                        name: s(""),
                        arguments: s(""),
                    },
                ],
                pending_tools: vec![tool_call(7)],
            }),
        });
    }
    for m in messages() {
        roundtrip::<Message, w::Message>(m);
    }
    roundtrip::<Usage, w::Usage>(usage());
    roundtrip::<ToolCall, w::ToolCall>(tool_call(1));
    roundtrip::<ErrorInfo, w::ErrorInfo>(error_info());
    roundtrip::<Limits, w::Limits>(Limits::default());
    roundtrip::<Limits, w::Limits>(Limits {
        max_workers: 1,
        max_input_bytes: u32::MAX,
        default_max_steps: 64,
    });
    roundtrip::<ModelBudget, w::ModelBudget>(ModelBudget {
        model: s("openai/*"),
        prompt_tokens: 3072,
    });
    roundtrip::<RestoreSummary, w::RestoreSummary>(RestoreSummary {
        workers: 3,
        interrupted_runs: 1,
    });
}
