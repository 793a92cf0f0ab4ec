//! Property tests: no sequence of commands, completions and restores panics, and a core
//! restored from a live core's events is that core.

mod common;

use std::collections::BTreeSet;

use proptest::prelude::*;
use proptest::sample::Index;
use yoi_protocol::{
    Completion, Effect, ErrorInfo, Event, EventRecord, FinishReason, Input, Level, Limits, Message,
    ModelBudget, Role, StopReason, Usage, WorkerInfo, WorkerSpec, WorkerStatus,
};
use yoi_runtime_guest::Runtime;

// ----- generators ---------------------------------------------------------------------------

/// Which worker a command targets.
#[derive(Debug, Clone)]
enum Target {
    Known(Index),
    Bogus(String),
}

/// Which call a completion targets.
#[derive(Debug, Clone)]
enum Pick {
    /// One of the calls the harness believes in flight.
    Live(Index),
    /// Any call id at all (old, future or absurd).
    Any(u64),
}

#[derive(Debug, Clone)]
enum ModelBody {
    Text(String),
    Reasoning(String),
    Fragment {
        index: u32,
        id: Option<String>,
        name: Option<String>,
        arguments: String,
    },
    Usage(u64, u64),
    Done(FinishReason),
    Failed(String),
}

#[derive(Debug, Clone)]
struct Delivery {
    pick: Pick,
    model: ModelBody,
    tool: (String, bool),
    /// Send the completion of the other kind (a tool result to a model call...).
    wrong_kind: bool,
}

#[derive(Debug, Clone)]
enum Op {
    Create(WorkerSpec),
    Input(Target, Input),
    Cancel(Target),
    Stop(Target),
    Deliver(Vec<Delivery>),
    Configure(Limits),
    Read(Target),
    /// Restore random events into the live core (prop 1 only).
    Restore(Vec<EventRecord>),
    /// Finish a restore (prop 1 only).
    FinishRestore(u64),
}

fn text_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z ]{0,8}",
        1 => Just(String::new()),
        1 => Just("   ".to_string()),
        1 => any::<String>().prop_map(|s| s.chars().take(40).collect()),
    ]
}

fn tool_name() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::sample::select(vec!["search", "calc", "web_fetch"]).prop_map(String::from),
        1 => prop::sample::select(vec!["", "Search", "rm -rf", "a\u{0}b"]).prop_map(String::from),
        1 => "[a-z_]{1,6}",
    ]
}

fn arguments() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just("{}".to_string()),
        4 => prop::sample::select(vec![
            "", "{\"q\":", "\"rust\"}", "{\"a\":1}", "[1]", "null", "{", "}", " ", "{\"x\":[[[[]]]]}",
        ])
        .prop_map(String::from),
        1 => any::<String>().prop_map(|s| s.chars().take(12).collect()),
    ]
}

fn finish_reason() -> impl Strategy<Value = FinishReason> {
    prop::sample::select(vec![
        FinishReason::Stop,
        FinishReason::Length,
        FinishReason::ToolCalls,
        FinishReason::ContentFilter,
    ])
}

fn model_body() -> impl Strategy<Value = ModelBody> {
    prop_oneof![
        6 => text_strategy().prop_map(ModelBody::Text),
        2 => text_strategy().prop_map(ModelBody::Reasoning),
        6 => (
            prop_oneof![8 => 0u32..3, 1 => Just(u32::MAX)],
            prop::option::of(prop_oneof![
                3 => prop::sample::select(vec!["c1", "c2", "call_r_1_1_0", ""]).prop_map(String::from),
                1 => "[a-z0-9_]{1,6}",
            ]),
            prop::option::of(tool_name()),
            arguments(),
        )
            .prop_map(|(index, id, name, arguments)| ModelBody::Fragment {
                index,
                id,
                name,
                arguments,
            }),
        1 => (0u64..1000, prop_oneof![3 => 0u64..1000, 1 => Just(u64::MAX)])
            .prop_map(|(a, b)| ModelBody::Usage(a, b)),
        2 => finish_reason().prop_map(ModelBody::Done),
        1 => "[a-z_]{1,8}".prop_map(ModelBody::Failed),
    ]
}

fn delivery() -> impl Strategy<Value = Delivery> {
    (
        prop_oneof![
            9 => any::<Index>().prop_map(Pick::Live),
            1 => prop_oneof![0u64..20, Just(u64::MAX)].prop_map(Pick::Any),
        ],
        model_body(),
        (text_strategy(), any::<bool>()),
        prop::bool::weighted(0.05),
    )
        .prop_map(|(pick, model, tool, wrong_kind)| Delivery {
            pick,
            model,
            tool,
            wrong_kind,
        })
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        9 => any::<Index>().prop_map(Target::Known),
        1 => prop_oneof![Just("w_0".to_string()), Just("w_999".to_string()), any::<String>()]
            .prop_map(Target::Bogus),
    ]
}

fn spec_strategy() -> impl Strategy<Value = WorkerSpec> {
    (
        prop_oneof![8 => "[a-z]{1,8}", 1 => any::<String>()],
        prop_oneof![8 => Just("scripted".to_string()), 1 => any::<String>()],
        prop::option::of(text_strategy()),
        prop_oneof![
            6 => prop::sample::subsequence(vec!["search", "calc", "web_fetch"], 0..=3)
                .prop_map(|v| v.into_iter().map(String::from).collect::<Vec<_>>()),
            1 => prop::collection::vec(tool_name(), 0..4),
        ],
        prop_oneof![
            3 => Just(None),
            3 => (1u32..4).prop_map(Some),
            1 => prop_oneof![Just(0u32), Just(65), Just(u32::MAX)].prop_map(Some),
        ],
        prop_oneof![3 => Just(None), 2 => (64u32..160).prop_map(Some), 1 => Just(Some(1))],
    )
        .prop_map(
            |(name, model, system_prompt, tools, max_steps, context_tokens)| WorkerSpec {
                name,
                model,
                system_prompt,
                tools,
                max_steps,
                context_tokens,
            },
        )
}

fn input_strategy() -> impl Strategy<Value = Input> {
    (
        prop_oneof![6 => "[a-z]{1,8}", 1 => text_strategy()],
        prop::option::of(prop_oneof![
            4 => prop::sample::select(vec!["req-1", "req-2", "req-3"]).prop_map(String::from),
            1 => Just(String::new()),
            1 => any::<String>(),
        ]),
    )
        .prop_map(|(text, request_id)| Input { text, request_id })
}

fn limits_strategy() -> impl Strategy<Value = Limits> {
    (
        prop_oneof![Just(0u32), 1u32..6, Just(u32::MAX)],
        prop_oneof![Just(0u32), 1u32..16, Just(64 * 1024)],
        prop_oneof![Just(0u32), 1u32..4, Just(1000)],
    )
        .prop_map(|(max_workers, max_input_bytes, default_max_steps)| Limits {
            max_workers,
            max_input_bytes,
            default_max_steps,
        })
}

/// Commands and completions (no restore).
fn live_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => spec_strategy().prop_map(Op::Create),
        3 => (target(), input_strategy()).prop_map(|(t, i)| Op::Input(t, i)),
        1 => target().prop_map(Op::Cancel),
        1 => target().prop_map(Op::Stop),
        10 => prop::collection::vec(delivery(), 1..6).prop_map(Op::Deliver),
        1 => target().prop_map(Op::Read),
        1 => prop::bool::weighted(0.8).prop_flat_map(|default| {
            if default {
                Just(Limits::default()).boxed()
            } else {
                limits_strategy().boxed()
            }
        })
        .prop_map(Op::Configure),
    ]
}

fn status_strategy() -> impl Strategy<Value = WorkerStatus> {
    prop::sample::select(vec![
        WorkerStatus::Idle,
        WorkerStatus::Running,
        WorkerStatus::Stopped,
    ])
}

/// Random (mostly nonsensical) stored events.
fn event_strategy() -> impl Strategy<Value = Event> {
    let run = || prop::sample::select(vec!["r_1", "r_2", "r_7"]).prop_map(String::from);
    let id = || prop::sample::select(vec!["c1", "c2", "call_r_1_1_0"]).prop_map(String::from);
    let worker = (
        prop::sample::select(vec!["w_1", "w_2", "w_9", "w_18446744073709551615", "x"]),
        status_strategy(),
        0u32..2,
        prop::option::of(1u32..4),
    )
        .prop_map(|(wid, status, count, max)| WorkerInfo {
            id: wid.into(),
            name: "n".into(),
            model: "m".into(),
            system_prompt: None,
            tools: vec!["search".into()],
            max_steps: max.unwrap_or(0),
            status,
            created_at_ms: 0,
            current_run: None,
            run_count: count,
            message_count: 0,
            usage: Usage::default(),
            context_tokens: None,
        });
    prop_oneof![
        worker.prop_map(|worker| Event::WorkerCreated {
            worker: Box::new(worker),
        }),
        (status_strategy(), status_strategy())
            .prop_map(|(from, to)| Event::StatusChanged { from, to }),
        (
            run(),
            text_strategy(),
            prop::option::of(Just("req-1".to_string()))
        )
            .prop_map(|(run_id, text, request_id)| Event::InputAccepted {
                run_id,
                text,
                request_id
            }),
        run().prop_map(|run_id| Event::RunStarted { run_id }),
        (run(), text_strategy()).prop_map(|(run_id, text)| Event::TextDelta { run_id, text }),
        (run(), text_strategy()).prop_map(|(run_id, text)| Event::ReasoningDelta { run_id, text }),
        (run(), text_strategy()).prop_map(|(run_id, text)| Event::TextDone { run_id, text }),
        (run(), text_strategy()).prop_map(|(run_id, text)| Event::ReasoningDone { run_id, text }),
        (run(), id(), tool_name()).prop_map(|(run_id, id, name)| Event::ToolCallStarted {
            run_id,
            id,
            name
        }),
        (run(), id(), arguments()).prop_map(|(run_id, id, delta)| Event::ToolCallArgsDelta {
            run_id,
            id,
            delta
        }),
        (run(), id(), tool_name(), arguments()).prop_map(|(run_id, id, name, arguments)| {
            Event::ToolCallReady {
                run_id,
                id,
                name,
                arguments,
            }
        }),
        (run(), id(), tool_name(), text_strategy(), any::<bool>()).prop_map(
            |(run_id, id, name, output, is_error)| Event::ToolResult {
                run_id,
                id,
                name,
                output,
                is_error
            }
        ),
        (run(), any::<u64>(), any::<u64>()).prop_map(|(run_id, i, o)| Event::Usage {
            run_id,
            usage: Usage {
                input_tokens: i,
                output_tokens: o
            }
        }),
        (run(), 0u32..4, finish_reason()).prop_map(|(run_id, step, finish_reason)| {
            Event::StepFinished {
                run_id,
                step,
                finish_reason,
            }
        }),
        (
            run(),
            prop::sample::select(vec![StopReason::EndTurn, StopReason::MaxSteps])
        )
            .prop_map(|(run_id, stop_reason)| Event::RunCompleted {
                run_id,
                stop_reason
            }),
        run().prop_map(|run_id| Event::RunFailed {
            run_id,
            error: ErrorInfo::new("x", "y")
        }),
        run().prop_map(|run_id| Event::RunCancelled { run_id }),
        Just(Event::Diagnostic {
            level: Level::Warn,
            code: "c".into(),
            message: "m".into()
        }),
    ]
}

fn record_strategy() -> impl Strategy<Value = EventRecord> {
    (
        prop_oneof![
            8 => prop::sample::select(vec!["w_1", "w_2"]).prop_map(|s| Some(s.to_string())),
            1 => Just(None),
            1 => Just(Some("nope".to_string())),
        ],
        any::<u64>(),
        event_strategy(),
    )
        .prop_map(|(worker_id, at_ms, event)| EventRecord {
            worker_id,
            at_ms,
            event,
        })
}

fn any_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => live_op(),
        1 => prop::collection::vec(record_strategy(), 0..12).prop_map(Op::Restore),
        1 => any::<u64>().prop_map(Op::FinishRestore),
    ]
}

// ----- the harness ----------------------------------------------------------------------------

/// Drives a core with generated ops, tracking the calls in flight the way a host would.
struct Driver {
    rt: Runtime,
    now: u64,
    workers: Vec<String>,
    /// `(call_id, is_model)` of calls believed in flight.
    calls: Vec<(u64, bool)>,
    log: Vec<EventRecord>,
}

impl Driver {
    fn new() -> Self {
        // A small budget for the usual model, so long conversations get trimmed.
        let mut rt = Runtime::new();
        rt.configure_models(vec![ModelBudget {
            model: "scripted".into(),
            prompt_tokens: 120,
        }]);
        Driver {
            rt,
            now: 0,
            workers: Vec::new(),
            calls: Vec::new(),
            log: Vec::new(),
        }
    }

    fn target(&self, t: &Target) -> String {
        match t {
            Target::Known(i) if !self.workers.is_empty() => {
                self.workers[i.index(self.workers.len())].clone()
            }
            Target::Known(_) => "w_1".to_string(),
            Target::Bogus(s) => s.clone(),
        }
    }

    fn drain(&mut self) {
        self.log.extend(self.rt.pull_events(usize::MAX));
        for effect in self.rt.pull_effects(usize::MAX) {
            match effect {
                Effect::CallModel(r) => self.calls.push((r.call_id, true)),
                Effect::CallTool(r) => self.calls.push((r.call_id, false)),
                Effect::Abort { call_id } => self.calls.retain(|(c, _)| *c != call_id),
            }
        }
    }

    fn completion(&mut self, d: &Delivery) -> Completion {
        let (call_id, is_model) = match d.pick {
            Pick::Live(i) if !self.calls.is_empty() => self.calls[i.index(self.calls.len())],
            Pick::Live(_) => (1, true),
            Pick::Any(c) => (c, true),
        };
        if is_model != d.wrong_kind {
            match d.model.clone() {
                ModelBody::Text(text) => Completion::TextDelta { call_id, text },
                ModelBody::Reasoning(text) => Completion::ReasoningDelta { call_id, text },
                ModelBody::Fragment {
                    index,
                    id,
                    name,
                    arguments,
                } => Completion::ToolCallDelta {
                    call_id,
                    index,
                    id,
                    name,
                    arguments,
                },
                ModelBody::Usage(i, o) => Completion::Usage {
                    call_id,
                    usage: Usage {
                        input_tokens: i,
                        output_tokens: o,
                    },
                },
                ModelBody::Done(finish_reason) => {
                    self.calls.retain(|(c, _)| *c != call_id);
                    Completion::ModelDone {
                        call_id,
                        finish_reason,
                    }
                }
                ModelBody::Failed(code) => {
                    self.calls.retain(|(c, _)| *c != call_id);
                    Completion::ModelFailed {
                        call_id,
                        error: ErrorInfo::new(code, "failed"),
                    }
                }
            }
        } else {
            if !is_model {
                self.calls.retain(|(c, _)| *c != call_id);
            }
            Completion::ToolDone {
                call_id,
                output: d.tool.0.clone(),
                is_error: d.tool.1,
            }
        }
    }

    fn run(&mut self, op: &Op) {
        self.now += 1;
        let now = self.now;
        match op {
            Op::Create(spec) => {
                if let Ok(info) = self.rt.create_worker(now, spec.clone()) {
                    self.workers.push(info.id);
                }
            }
            Op::Input(t, input) => {
                let w = self.target(t);
                let _ = self.rt.send_input(now, &w, input.clone());
            }
            Op::Cancel(t) => {
                let w = self.target(t);
                let _ = self.rt.cancel(now, &w);
            }
            Op::Stop(t) => {
                let w = self.target(t);
                let _ = self.rt.stop(now, &w);
            }
            Op::Deliver(batch) => {
                let completions: Vec<_> = batch.iter().map(|d| self.completion(d)).collect();
                self.rt.deliver(now, completions);
            }
            Op::Configure(limits) => self.rt.configure(*limits),
            Op::Read(t) => {
                let w = self.target(t);
                let _ = self.rt.get_worker(&w);
                let _ = self.rt.transcript(&w);
                let _ = self.rt.snapshot(&w);
                let _ = self.rt.list_workers();
            }
            Op::Restore(events) => {
                let _ = self.rt.restore(events.clone());
                self.workers = self.rt.list_workers().into_iter().map(|w| w.id).collect();
            }
            Op::FinishRestore(at) => {
                let _ = self.rt.finish_restore(*at);
            }
        }
        self.drain();
    }
}

/// Every worker's public state agrees with itself.
fn check_consistent(rt: &Runtime) {
    for info in rt.list_workers() {
        let snap = rt.snapshot(&info.id).unwrap();
        assert_eq!(snap.worker, info);
        assert_eq!(info.message_count as usize, snap.transcript.len());
        assert_eq!(
            info.current_run,
            snap.in_flight.as_ref().map(|f| f.run_id.clone())
        );
        match info.status {
            WorkerStatus::Running => assert!(snap.in_flight.is_some()),
            WorkerStatus::Idle | WorkerStatus::Stopped => {
                assert!(snap.in_flight.is_none());
                check_tool_calls_answered(&snap.transcript);
            }
        }
        if let Some(f) = &snap.in_flight {
            assert!(f.step >= 1 && f.step <= info.max_steps.max(1));
        }
    }
}

/// Every assistant tool call has a tool message answering it.
fn check_tool_calls_answered(transcript: &[Message]) {
    let answered: BTreeSet<(&str, &str)> = transcript
        .iter()
        .filter(|m| m.role == Role::Tool)
        .filter_map(|m| Some((m.run_id.as_str(), m.tool_call_id.as_deref()?)))
        .collect();
    for m in transcript.iter().filter(|m| m.role == Role::Assistant) {
        for call in &m.tool_calls {
            assert!(
                answered.contains(&(m.run_id.as_str(), call.id.as_str())),
                "tool call {} of {} has no result",
                call.id,
                m.run_id
            );
        }
    }
}

fn chunked(log: &[EventRecord], cuts: &[Index]) -> Vec<Vec<EventRecord>> {
    let mut at: Vec<usize> = cuts.iter().map(|i| i.index(log.len() + 1)).collect();
    at.push(0);
    at.push(log.len());
    at.sort_unstable();
    at.dedup();
    at.windows(2).map(|w| log[w[0]..w[1]].to_vec()).collect()
}

#[derive(Debug, Clone)]
enum Mutation {
    Delete(Index),
    Duplicate(Index),
    Swap(Index, Index),
    Retarget(Index, String),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<Index>().prop_map(Mutation::Delete),
        any::<Index>().prop_map(Mutation::Duplicate),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Mutation::Swap(a, b)),
        (
            any::<Index>(),
            prop::sample::select(vec!["w_1", "w_2", "w_3"]).prop_map(String::from)
        )
            .prop_map(|(i, w)| Mutation::Retarget(i, w)),
    ]
}

fn mutate(log: &mut Vec<EventRecord>, m: &Mutation) {
    if log.is_empty() {
        return;
    }
    let n = log.len();
    match m {
        Mutation::Delete(i) => {
            log.remove(i.index(n));
        }
        Mutation::Duplicate(i) => {
            let e = log[i.index(n)].clone();
            log.insert(i.index(n), e);
        }
        Mutation::Swap(a, b) => log.swap(a.index(n), b.index(n)),
        Mutation::Retarget(i, w) => log[i.index(n)].worker_id = Some(w.clone()),
    }
}

// Case counts: proptest's default (256), or PROPTEST_CASES.
proptest! {
    /// Property 1: no sequence of commands, completions (right, wrong or bogus call ids)
    /// and restores of random events panics, and the core stays self-consistent.
    #[test]
    fn nothing_panics(ops in prop::collection::vec(any_op(), 0..60)) {
        let mut d = Driver::new();
        for op in &ops {
            d.run(op);
        }
        d.rt.finish_restore(u64::MAX);
        check_consistent(&d.rt);
    }

    /// Property 2: restoring a fresh core from every event of a live one (in chunks)
    /// reproduces its workers, transcripts and snapshots; finishing the restore closes
    /// every run in flight.
    #[test]
    fn restore_reproduces_the_live_core(
        ops in prop::collection::vec(live_op(), 0..80),
        cuts in prop::collection::vec(any::<Index>(), 0..4),
    ) {
        let mut d = Driver::new();
        // A shadow core restored op by op matches the live one at every step.
        let mut shadow = Runtime::new();
        for op in &ops {
            let fed = d.log.len();
            d.run(op);
            check_consistent(&d.rt);
            prop_assert!(shadow.restore(d.log[fed..].to_vec()).is_ok());
            prop_assert_eq!(shadow.list_workers(), d.rt.list_workers());
            for info in d.rt.list_workers() {
                prop_assert_eq!(shadow.snapshot(&info.id), d.rt.snapshot(&info.id));
            }
        }
        let mut rt = Runtime::new();
        for chunk in chunked(&d.log, &cuts) {
            prop_assert!(rt.restore(chunk).is_ok());
        }
        prop_assert!(rt.pull_events(usize::MAX).is_empty());
        prop_assert_eq!(rt.list_workers(), d.rt.list_workers());
        for info in d.rt.list_workers() {
            prop_assert_eq!(rt.transcript(&info.id), d.rt.transcript(&info.id));
            prop_assert_eq!(rt.snapshot(&info.id), d.rt.snapshot(&info.id));
        }

        let in_flight = d.rt.list_workers().iter().filter(|w| w.current_run.is_some()).count();
        let summary = rt.finish_restore(d.now + 1);
        prop_assert_eq!(summary.workers as usize, d.workers.len());
        prop_assert_eq!(summary.interrupted_runs as usize, in_flight);
        for info in rt.list_workers() {
            prop_assert_ne!(info.status, WorkerStatus::Running);
            prop_assert!(rt.snapshot(&info.id).unwrap().in_flight.is_none());
        }
        check_consistent(&rt);

        // The events finish_restore emitted replay too, and leave nothing to close.
        let mut log = d.log.clone();
        log.extend(rt.pull_events(usize::MAX));
        let mut again = Runtime::new();
        prop_assert!(again.restore(log).is_ok());
        prop_assert_eq!(again.finish_restore(0).interrupted_runs, 0);
        prop_assert_eq!(again.list_workers(), rt.list_workers());

        // The restored core makes the ids the live one would.
        rt.configure(Limits::default());
        d.rt.configure(Limits::default());
        let spec = WorkerSpec {
            name: "next".into(),
            model: "m".into(),
            system_prompt: None,
            tools: vec![],
            max_steps: None,
            context_tokens: None,
        };
        let a = rt.create_worker(1, spec.clone()).unwrap();
        let b = d.rt.create_worker(1, spec).unwrap();
        prop_assert_eq!(&a.id, &b.id);
        let input = Input { text: "hi".into(), request_id: None };
        prop_assert_eq!(rt.send_input(2, &a.id, input.clone()), d.rt.send_input(2, &b.id, input));
    }

    /// Property 3: a corrupted log (events deleted, duplicated, swapped, moved to another
    /// worker) never panics the restore; after finish_restore no run is in flight and
    /// the core keeps working.
    #[test]
    fn corrupt_logs_never_panic(
        ops in prop::collection::vec(live_op(), 0..50),
        mutations in prop::collection::vec(mutation(), 1..4),
        after in prop::collection::vec(live_op(), 0..30),
    ) {
        let mut d = Driver::new();
        for op in &ops {
            d.run(op);
        }
        let mut log = d.log.clone();
        for m in &mutations {
            mutate(&mut log, m);
        }
        let mut e = Driver::new();
        let _ = e.rt.restore(log);
        e.rt.finish_restore(1);
        e.workers = e.rt.list_workers().into_iter().map(|w| w.id).collect();
        for info in e.rt.list_workers() {
            prop_assert_ne!(info.status, WorkerStatus::Running);
            prop_assert!(info.current_run.is_none());
        }
        e.drain();
        for op in &after {
            e.run(op);
            check_consistent(&e.rt);
        }
    }
}
