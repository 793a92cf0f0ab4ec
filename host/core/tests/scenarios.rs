//! One scenario suite, written once against `dyn Core`, run on both [`NativeCore`] and
//! [`WasmCore`]. Every scenario asserts behaviour on each core, and the two runs must
//! leave identical traces (every result, event and effect, serialized), so the wasm
//! boundary adds nothing and loses nothing.
//!
//! The wasm core needs the built component: `cargo xtask build-guest` (or
//! `YOI_GUEST_WASM=path`).

use std::sync::OnceLock;

use wasmtime::component::Component;
use yoi_core::{
    CallError, Core, GuestLimits, NativeCore, WasmCore, WasmEngine, guest_component_path,
    load_component,
};
use yoi_protocol::{
    Completion, CoreError, Effect, ErrorInfo, Event, EventRecord, FinishReason, Input, Limits,
    ModelRequest, Role, StopReason, ToolRequest, Usage, WorkerSpec, WorkerStatus,
};

// ----- the two cores --------------------------------------------------------------------

fn compiled() -> &'static (WasmEngine, Component) {
    static COMPILED: OnceLock<(WasmEngine, Component)> = OnceLock::new();
    COMPILED.get_or_init(|| {
        let path = guest_component_path().unwrap_or_else(|e| panic!("{e}"));
        let engine = WasmEngine::new().expect("wasm engine");
        let component = load_component(&engine, &path).unwrap_or_else(|e| panic!("{e}"));
        (engine, component)
    })
}

fn wasm_core() -> Box<dyn Core> {
    let (engine, component) = compiled();
    Box::new(WasmCore::instantiate(engine, component, GuestLimits::default()).expect("instantiate"))
}

fn native_core() -> Box<dyn Core> {
    Box::new(NativeCore::new())
}

type Factory = fn() -> Box<dyn Core>;

const CORES: [(&str, Factory); 2] = [("native", native_core), ("wasm", wasm_core)];

/// Runs `scenario` on each core and checks the traces are identical.
fn on_both(scenario: fn(&mut H)) {
    let mut traces = Vec::new();
    for (name, make) in CORES {
        eprintln!("--- on the {name} core");
        let mut h = H::new(name, make);
        scenario(&mut h);
        traces.push((name, h.trace));
    }
    assert_same_traces(&traces[0], &traces[1]);
}

fn assert_same_traces(a: &(&str, Vec<String>), b: &(&str, Vec<String>)) {
    for (i, (x, y)) in a.1.iter().zip(&b.1).enumerate() {
        assert_eq!(
            x, y,
            "the {} and {} cores diverge at trace line {i}",
            a.0, b.0
        );
    }
    assert_eq!(
        a.1.len(),
        b.1.len(),
        "the {} and {} traces differ in length",
        a.0,
        b.0
    );
}

// ----- the harness ----------------------------------------------------------------------

/// Drives one core, records every outcome in `trace` and every event in `log`.
struct H {
    name: &'static str,
    make: Factory,
    core: Box<dyn Core>,
    now: u64,
    trace: Vec<String>,
    log: Vec<EventRecord>,
}

impl H {
    fn new(name: &'static str, make: Factory) -> Self {
        H {
            name,
            make,
            core: make(),
            now: 1_000,
            trace: Vec::new(),
            log: Vec::new(),
        }
    }

    fn tick(&mut self) -> u64 {
        self.now += 7;
        self.now
    }

    fn note<T: std::fmt::Debug>(&mut self, what: &str, value: &T) {
        self.trace.push(format!("{what}: {value:?}"));
    }

    fn create(&mut self, name: &str, tools: &[&str]) -> String {
        self.try_create(spec(name, tools)).expect("create").id
    }

    fn try_create(&mut self, spec: WorkerSpec) -> Result<yoi_protocol::WorkerInfo, CallError> {
        let now = self.tick();
        let r = self.core.create_worker(now, spec);
        self.note("create", &r);
        r
    }

    fn input(&mut self, worker: &str, text: &str) -> Result<String, CallError> {
        self.send(worker, input(text))
    }

    fn send(&mut self, worker: &str, input: Input) -> Result<String, CallError> {
        let now = self.tick();
        let r = self.core.send_input(now, worker, input);
        self.note("send_input", &r);
        r
    }

    fn cancel(&mut self, worker: &str) -> Result<String, CallError> {
        let now = self.tick();
        let r = self.core.cancel(now, worker);
        self.note("cancel", &r);
        r
    }

    fn stop(&mut self, worker: &str) -> Result<yoi_protocol::WorkerInfo, CallError> {
        let now = self.tick();
        let r = self.core.stop(now, worker);
        self.note("stop", &r);
        r
    }

    fn get(&mut self, worker: &str) -> Result<yoi_protocol::WorkerInfo, CallError> {
        let r = self.core.get_worker(worker);
        self.note("get", &r);
        r
    }

    fn transcript(&mut self, worker: &str) -> Result<Vec<yoi_protocol::Message>, CallError> {
        let r = self.core.transcript(worker);
        self.note("transcript", &r);
        r
    }

    fn snapshot(&mut self, worker: &str) -> Result<yoi_protocol::WorkerSnapshot, CallError> {
        let r = self.core.snapshot(worker);
        self.note("snapshot", &r);
        r
    }

    fn deliver(&mut self, completions: Vec<Completion>) {
        let now = self.tick();
        self.note("deliver", &completions);
        self.core.deliver(now, completions).expect("deliver");
    }

    /// Drains the event queue; records are traced as JSON and kept in `log`.
    fn records(&mut self) -> Vec<EventRecord> {
        let records = self.core.pull_events(usize::MAX).expect("pull events");
        for r in &records {
            self.trace
                .push(format!("event: {}", serde_json::to_string(r).unwrap()));
        }
        self.log.extend(records.iter().cloned());
        records
    }

    fn events(&mut self) -> Vec<Event> {
        self.records().into_iter().map(|r| r.event).collect()
    }

    fn kinds(&mut self) -> Vec<&'static str> {
        self.events().iter().map(Event::kind).collect()
    }

    fn effects(&mut self) -> Vec<Effect> {
        let effects = self.core.pull_effects(usize::MAX).expect("pull effects");
        for e in &effects {
            self.trace
                .push(format!("effect: {}", serde_json::to_string(e).unwrap()));
        }
        effects
    }

    /// Drains the effects, which must be exactly one model call.
    fn model_call(&mut self) -> ModelRequest {
        match self.effects().as_slice() {
            [Effect::CallModel(request)] => request.clone(),
            other => panic!("[{}] expected one model call, got {other:?}", self.name),
        }
    }

    /// Drains the effects, which must all be tool calls.
    fn tool_calls(&mut self) -> Vec<ToolRequest> {
        self.effects()
            .into_iter()
            .map(|e| match e {
                Effect::CallTool(request) => request,
                other => panic!("expected tool calls, got {other:?}"),
            })
            .collect()
    }

    /// A worker with tools, an input sent, its events drained; returns worker, run and
    /// the model call.
    fn running(&mut self, tools: &[&str]) -> (String, String, ModelRequest) {
        let w = self.create("demo", tools);
        let run = self.input(&w, "hello").expect("input");
        self.events();
        let call = self.model_call();
        (w, run, call)
    }
}

fn spec(name: &str, tools: &[&str]) -> WorkerSpec {
    WorkerSpec {
        name: name.into(),
        model: "scripted".into(),
        system_prompt: Some("be brief".into()),
        tools: tools.iter().map(|t| t.to_string()).collect(),
        max_steps: None,
        context_tokens: None,
    }
}

fn input(text: &str) -> Input {
    Input {
        text: text.into(),
        request_id: None,
    }
}

fn text(call_id: u64, text: &str) -> Completion {
    Completion::TextDelta {
        call_id,
        text: text.into(),
    }
}

fn reasoning(call_id: u64, text: &str) -> Completion {
    Completion::ReasoningDelta {
        call_id,
        text: text.into(),
    }
}

fn fragment(
    call_id: u64,
    index: u32,
    id: Option<&str>,
    name: Option<&str>,
    args: &str,
) -> Completion {
    Completion::ToolCallDelta {
        call_id,
        index,
        id: id.map(Into::into),
        name: name.map(Into::into),
        arguments: args.into(),
    }
}

fn usage(call_id: u64, input_tokens: u64, output_tokens: u64) -> Completion {
    Completion::Usage {
        call_id,
        usage: Usage {
            input_tokens,
            output_tokens,
        },
    }
}

fn done(call_id: u64, finish_reason: FinishReason) -> Completion {
    Completion::ModelDone {
        call_id,
        finish_reason,
    }
}

fn tool_done(call_id: u64, output: &str, is_error: bool) -> Completion {
    Completion::ToolDone {
        call_id,
        output: output.into(),
        is_error,
    }
}

fn rejected(r: Result<impl std::fmt::Debug, CallError>) -> CoreError {
    match r {
        Err(CallError::Rejected(e)) => e,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

fn status(from: WorkerStatus, to: WorkerStatus) -> Event {
    Event::StatusChanged { from, to }
}

// ----- scenarios ------------------------------------------------------------------------

fn create_list_get(h: &mut H) {
    let a = h.create("alpha", &["search"]);
    let b = h.create("beta", &[]);
    let records = h.records();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].worker_id.as_deref(), Some(a.as_str()));
    assert!(matches!(&records[1].event, Event::WorkerCreated { worker } if worker.id == b));
    let list = h.core.list_workers().expect("list");
    h.note("list", &list);
    let names: Vec<_> = list.iter().map(|w| w.name.as_str()).collect();
    assert_eq!(names, ["alpha", "beta"]);
    let info = h.get(&a).unwrap();
    assert_eq!(info.status, WorkerStatus::Idle);
    assert_eq!(info.tools, ["search"]);
    assert_eq!(info.system_prompt.as_deref(), Some("be brief"));
    assert!(h.effects().is_empty());
}

fn input_and_streamed_deltas(h: &mut H) {
    let w = h.create("demo", &[]);
    h.events();
    let run = h.input(&w, "hello").unwrap();
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
    assert_eq!((call.step, call.worker_id.as_str()), (1, w.as_str()));
    assert_eq!(call.messages.len(), 1);

    let id = call.call_id;
    h.deliver(vec![reasoning(id, "Let me "), reasoning(id, "think.")]);
    h.deliver(vec![text(id, "Hel"), text(id, "lo, "), text(id, "world")]);
    // Partial output is visible in the snapshot while streaming.
    let snap = h.snapshot(&w).unwrap();
    let in_flight = snap.in_flight.expect("in flight");
    assert_eq!(in_flight.text, "Hello, world");
    assert_eq!(in_flight.reasoning, "Let me think.");
    h.deliver(vec![usage(id, 10, 5), done(id, FinishReason::Stop)]);
    assert_eq!(
        h.kinds(),
        [
            "reasoning_delta",
            "reasoning_delta",
            "text_delta",
            "text_delta",
            "text_delta",
            "usage",
            "reasoning_done",
            "text_done",
            "step_finished",
            "run_completed",
            "status_changed",
        ]
    );
    assert!(h.effects().is_empty());
    let transcript = h.transcript(&w).unwrap();
    assert_eq!(transcript.len(), 2);
    assert_eq!(transcript[1].role, Role::Assistant);
    assert_eq!(transcript[1].content, "Hello, world");
    assert_eq!(transcript[1].reasoning.as_deref(), Some("Let me think."));
    let info = h.get(&w).unwrap();
    assert_eq!(info.status, WorkerStatus::Idle);
    assert_eq!(info.usage.output_tokens, 5);
    // Pulling in small batches yields the same order.
    let run2 = h.input(&w, "again").unwrap();
    let mut batched = Vec::new();
    loop {
        let batch = h.core.pull_events(1).unwrap();
        if batch.is_empty() {
            break;
        }
        assert_eq!(batch.len(), 1);
        batched.extend(batch);
    }
    h.note("batched", &batched);
    assert!(matches!(&batched[0].event, Event::InputAccepted { run_id, .. } if *run_id == run2));
}

fn tool_loop(h: &mut H) {
    let (w, run, call) = h.running(&["search"]);
    let id = call.call_id;
    h.deliver(vec![
        fragment(id, 0, Some("call_a"), Some("search"), "{\"q\":"),
        fragment(id, 0, None, None, "\"rust\"}"),
        fragment(id, 1, Some("call_b"), Some("search"), "{not json"),
        done(id, FinishReason::ToolCalls),
    ]);
    let events = h.events();
    let kinds: Vec<_> = events.iter().map(Event::kind).collect();
    assert!(kinds.contains(&"tool_call_started"));
    assert!(kinds.contains(&"tool_call_args_delta"));
    assert!(events.contains(&Event::ToolCallReady {
        run_id: run.clone(),
        id: "call_a".into(),
        name: "search".into(),
        arguments: "{\"q\":\"rust\"}".into(),
    }));
    // Invalid arguments become an error tool result, not a tool call.
    assert!(events.iter().any(|e| matches!(e,
        Event::ToolResult { id, is_error: true, .. } if id == "call_b")));
    let tools = h.tool_calls();
    assert_eq!(tools.len(), 1);
    assert_eq!(tools[0].tool_call_id, "call_a");
    assert_eq!(tools[0].arguments, "{\"q\":\"rust\"}");

    h.deliver(vec![tool_done(tools[0].call_id, "3 results", false)]);
    assert!(h.events().contains(&Event::ToolResult {
        run_id: run.clone(),
        id: "call_a".into(),
        name: "search".into(),
        output: "3 results".into(),
        is_error: false,
    }));
    let second = h.model_call();
    assert_eq!(second.step, 2);
    let roles: Vec<_> = second.messages.iter().map(|m| m.role).collect();
    assert_eq!(roles, [Role::User, Role::Assistant, Role::Tool, Role::Tool]);

    h.deliver(vec![
        text(second.call_id, "Found 3."),
        done(second.call_id, FinishReason::Stop),
    ]);
    let events = h.events();
    assert!(events.contains(&Event::RunCompleted {
        run_id: run,
        stop_reason: StopReason::EndTurn,
    }));
    assert_eq!(h.transcript(&w).unwrap().len(), 5);
}

fn cancel_mid_stream(h: &mut H) {
    let (w, run, call) = h.running(&[]);
    h.deliver(vec![text(call.call_id, "Once upon")]);
    h.events();
    assert_eq!(h.cancel(&w).unwrap(), run);
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
            status(WorkerStatus::Running, WorkerStatus::Idle),
        ]
    );
    // Completions of the aborted call are ignored.
    h.deliver(vec![
        text(call.call_id, " a time"),
        done(call.call_id, FinishReason::Stop),
    ]);
    assert!(h.events().is_empty());
    assert!(h.effects().is_empty());
    assert_eq!(rejected(h.cancel(&w)), CoreError::NotRunning);
    // The worker takes input again.
    let run2 = h.input(&w, "again").unwrap();
    assert_ne!(run2, run);
}

fn cancel_while_tools_run(h: &mut H) {
    let (w, run, call) = h.running(&["search"]);
    h.deliver(vec![
        fragment(call.call_id, 0, Some("call_x"), Some("search"), "{}"),
        done(call.call_id, FinishReason::ToolCalls),
    ]);
    let tools = h.tool_calls();
    h.events();
    assert_eq!(h.cancel(&w).unwrap(), run);
    assert_eq!(
        h.effects(),
        vec![Effect::Abort {
            call_id: tools[0].call_id
        }]
    );
    let kinds = h.kinds();
    assert_eq!(kinds, ["tool_result", "run_cancelled", "status_changed"]);
}

fn stop(h: &mut H) {
    let idle = h.create("idle", &[]);
    let info = h.stop(&idle).unwrap();
    assert_eq!(info.status, WorkerStatus::Stopped);
    assert_eq!(
        h.events()[1..],
        [status(WorkerStatus::Idle, WorkerStatus::Stopped)]
    );
    assert_eq!(rejected(h.input(&idle, "hi")), CoreError::Stopped);
    assert_eq!(rejected(h.stop(&idle)), CoreError::Stopped);
    assert_eq!(rejected(h.cancel(&idle)), CoreError::Stopped);

    let (busy, run, call) = h.running(&[]);
    let info = h.stop(&busy).unwrap();
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
    // A stopped worker is still listed and readable.
    assert_eq!(h.get(&busy).unwrap().status, WorkerStatus::Stopped);
    assert_eq!(h.transcript(&busy).unwrap().len(), 1);
}

fn busy(h: &mut H) {
    let (w, run, _call) = h.running(&[]);
    assert_eq!(
        rejected(h.input(&w, "more")),
        CoreError::Busy {
            run_id: run.clone()
        }
    );
    assert!(h.events().is_empty());
    assert!(h.effects().is_empty());
    // A repeated request id returns its run instead of starting another.
    let w2 = h.create("idem", &[]);
    let with_id = Input {
        text: "hi".into(),
        request_id: Some("req-1".into()),
    };
    let r1 = h.send(&w2, with_id.clone()).unwrap();
    let r2 = h.send(&w2, with_id).unwrap();
    assert_eq!(r1, r2);
}

fn errors(h: &mut H) {
    let nf = CoreError::WorkerNotFound {
        worker_id: "w_404".into(),
    };
    assert_eq!(rejected(h.get("w_404")), nf);
    assert_eq!(rejected(h.input("w_404", "hi")), nf);
    assert_eq!(rejected(h.cancel("w_404")), nf);
    assert!(matches!(
        rejected(h.stop("w_404")),
        CoreError::WorkerNotFound { .. }
    ));
    assert!(matches!(
        rejected(h.transcript("w_404")),
        CoreError::WorkerNotFound { .. }
    ));
    assert!(matches!(
        rejected(h.snapshot("w_404")),
        CoreError::WorkerNotFound { .. }
    ));

    assert!(matches!(
        rejected(h.try_create(spec("", &[]))),
        CoreError::InvalidRequest { .. }
    ));
    assert!(matches!(
        rejected(h.try_create(spec("ok", &["Bad Tool"]))),
        CoreError::InvalidRequest { .. }
    ));
    let mut too_many_steps = spec("ok", &[]);
    too_many_steps.max_steps = Some(0);
    assert!(matches!(
        rejected(h.try_create(too_many_steps)),
        CoreError::InvalidRequest { .. }
    ));

    h.core
        .configure(Limits {
            max_workers: 1,
            max_input_bytes: 8,
            default_max_steps: 2,
        })
        .unwrap();
    let w = h.create("only", &[]);
    assert_eq!(h.get(&w).unwrap().max_steps, 2);
    assert!(matches!(
        rejected(h.try_create(spec("second", &[]))),
        CoreError::LimitExceeded { .. }
    ));
    assert!(matches!(
        rejected(h.input(&w, "123456789")),
        CoreError::LimitExceeded { .. }
    ));
    assert!(matches!(
        rejected(h.input(&w, "  ")),
        CoreError::InvalidRequest { .. }
    ));
    assert_eq!(rejected(h.cancel(&w)), CoreError::NotRunning);
    // Rejections leave no trace in the event stream.
    assert_eq!(h.kinds(), ["worker_created"]);
    // Completions for calls nobody made are ignored.
    h.deliver(vec![text(999, "stray"), tool_done(998, "x", false)]);
    assert!(h.events().is_empty());
}

fn model_failure(h: &mut H) {
    let (w, run, call) = h.running(&[]);
    h.deliver(vec![
        text(call.call_id, "par"),
        Completion::ModelFailed {
            call_id: call.call_id,
            error: ErrorInfo::new("rate_limited", "slow down"),
        },
    ]);
    let events = h.events();
    assert!(events.contains(&Event::RunFailed {
        run_id: run,
        error: ErrorInfo::new("rate_limited", "slow down"),
    }));
    assert_eq!(h.get(&w).unwrap().status, WorkerStatus::Idle);
}

/// Events of one core restored into a fresh core of the same kind reproduce every
/// transcript and snapshot; a run in flight is closed `interrupted`.
fn restore(h: &mut H) {
    let workload = build_restore_workload(h);
    let mut fresh = H::new(h.name, h.make);
    check_restore(h, &workload, &mut fresh);
}

struct RestoreWorkload {
    workers: Vec<String>,
    in_flight: (String, String),
}

fn build_restore_workload(h: &mut H) -> RestoreWorkload {
    let (done_w, _, call) = h.running(&["search"]);
    h.deliver(vec![
        fragment(call.call_id, 0, Some("c1"), Some("search"), "{\"q\":1}"),
        done(call.call_id, FinishReason::ToolCalls),
    ]);
    let tools = h.tool_calls();
    h.deliver(vec![tool_done(tools[0].call_id, "ok", false)]);
    let second = h.model_call();
    h.deliver(vec![
        text(second.call_id, "Done."),
        usage(second.call_id, 3, 4),
        done(second.call_id, FinishReason::Stop),
    ]);
    let stopped = h.create("stopped", &[]);
    h.stop(&stopped).unwrap();
    let (live_w, live_run, live_call) = h.running(&[]);
    h.deliver(vec![
        reasoning(live_call.call_id, "hmm"),
        text(live_call.call_id, "Half an ans"),
    ]);
    h.records();
    h.effects();
    RestoreWorkload {
        workers: vec![done_w, stopped, live_w.clone()],
        in_flight: (live_w, live_run),
    }
}

fn check_restore(live: &mut H, workload: &RestoreWorkload, fresh: &mut H) {
    let events = live.log.clone();
    // Restore in two batches, as a host paging through its store would.
    let (first, rest) = events.split_at(events.len() / 2);
    fresh.core.restore(first.to_vec()).expect("restore batch 1");
    fresh.core.restore(rest.to_vec()).expect("restore batch 2");
    for w in &workload.workers {
        let want = live.snapshot(w).unwrap();
        let got = fresh.snapshot(w).unwrap();
        assert_eq!(got, want, "snapshot of {w} after restore");
        assert_eq!(fresh.transcript(w).unwrap(), live.transcript(w).unwrap());
    }
    let list = fresh.core.list_workers().unwrap();
    assert_eq!(list, live.core.list_workers().unwrap());
    // Commands wait for the end of the restore.
    assert!(matches!(
        rejected(fresh.input(&workload.workers[0], "too early")),
        CoreError::InvalidRequest { .. }
    ));
    let now = fresh.tick();
    let summary = fresh.core.finish_restore(now).expect("finish restore");
    fresh.note("summary", &summary);
    assert_eq!(summary.workers, 3);
    assert_eq!(summary.interrupted_runs, 1);
    let (live_w, live_run) = &workload.in_flight;
    let records = fresh.records();
    assert!(
        records
            .iter()
            .all(|r| r.worker_id.as_deref() == Some(live_w.as_str()))
    );
    let events: Vec<_> = records.into_iter().map(|r| r.event).collect();
    assert!(events.iter().any(|e| matches!(e,
        Event::RunFailed { run_id, error } if run_id == live_run && error.code == "interrupted")));
    assert_eq!(
        events.last(),
        Some(&status(WorkerStatus::Running, WorkerStatus::Idle))
    );
    // Restore made no calls; completions of the old life are ignored.
    assert!(fresh.effects().is_empty());
    // Normal operation resumes, with fresh run ids.
    let run = fresh.input(live_w, "again").unwrap();
    assert_ne!(&run, live_run);
    assert!(matches!(fresh.effects().as_slice(), [Effect::CallModel(_)]));
}

// ----- tests ----------------------------------------------------------------------------

#[test]
fn create_list_get_on_both() {
    on_both(create_list_get);
}

#[test]
fn input_and_streamed_deltas_on_both() {
    on_both(input_and_streamed_deltas);
}

#[test]
fn tool_loop_on_both() {
    on_both(tool_loop);
}

#[test]
fn cancel_mid_stream_on_both() {
    on_both(cancel_mid_stream);
}

#[test]
fn cancel_while_tools_run_on_both() {
    on_both(cancel_while_tools_run);
}

#[test]
fn stop_on_both() {
    on_both(stop);
}

#[test]
fn busy_on_both() {
    on_both(busy);
}

#[test]
fn errors_on_both() {
    on_both(errors);
}

#[test]
fn model_failure_on_both() {
    on_both(model_failure);
}

#[test]
fn restore_on_both() {
    on_both(restore);
}

/// The event log is the same whichever core wrote it: events of a native core restore
/// into a wasm core and the other way round.
#[test]
fn restore_across_cores() {
    for (from, to) in [(CORES[0], CORES[1]), (CORES[1], CORES[0])] {
        eprintln!("--- {} events into a {} core", from.0, to.0);
        let mut live = H::new(from.0, from.1);
        let workload = build_restore_workload(&mut live);
        let mut fresh = H::new(to.0, to.1);
        check_restore(&mut live, &workload, &mut fresh);
    }
}

// ----- a longer scripted workload -------------------------------------------------------

/// A small deterministic generator (SplitMix64), so the workload needs no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn word(&mut self, words: &[&'static str]) -> &'static str {
        words[self.below(words.len())]
    }
}

const WORDS: [&str; 8] = ["alpha ", "beta", " gamma", "δ ", "ε…", "\n", "\"q\"", "{"];

/// Drives `core` through a random-ish but reproducible workload: many workers, runs,
/// streamed text and reasoning, tool calls with valid and broken arguments, failures,
/// cancels, stops, rejected commands and stray completions. Every result, event and
/// effect goes into the returned byte stream.
fn workload(make: Factory, seed: u64, steps: usize) -> (Vec<u8>, H) {
    let mut h = H::new("workload", make);
    let mut rng = Rng(seed);
    let mut workers: Vec<String> = Vec::new();
    // Open calls: (call id, run id, tool call id).
    let mut model_calls: Vec<(u64, String)> = Vec::new();
    let mut tool_calls: Vec<(u64, String, String)> = Vec::new();
    let mut out = Vec::new();

    for step in 0..steps {
        match rng.below(100) {
            0..=7 => {
                let mut s = spec(&format!("w{step}"), &["search", "read_file"]);
                s.max_steps = rng.chance(30).then_some(2);
                if rng.chance(5) {
                    s.name.clear(); // rejected
                }
                if let Ok(info) = h.try_create(s) {
                    workers.push(info.id);
                }
            }
            8..=22 if !workers.is_empty() => {
                let w = rng.pick(&workers).clone();
                let request_id = rng.chance(20).then(|| format!("req-{}", rng.below(4)));
                let text = if rng.chance(3) {
                    String::new()
                } else {
                    format!("question {step}")
                };
                let _ = h.send(&w, Input { text, request_id });
            }
            23..=64 if !model_calls.is_empty() => {
                let id = rng.pick(&model_calls).0;
                let mut batch = Vec::new();
                for _ in 0..1 + rng.below(6) {
                    batch.push(match rng.below(10) {
                        0..=3 => text(id, rng.word(&WORDS)),
                        4..=5 => reasoning(id, rng.word(&WORDS)),
                        6..=7 => {
                            let index = rng.below(2) as u32;
                            let first = rng.chance(50);
                            fragment(
                                id,
                                index,
                                first.then_some(if index == 0 { "call_s" } else { "call_r" }),
                                first.then_some(if rng.chance(80) { "search" } else { "nope" }),
                                rng.word(&["{\"q\":", "1}", "{}", "", "[", "\"x\""]),
                            )
                        }
                        _ => usage(id, rng.below(50) as u64, rng.below(50) as u64),
                    });
                }
                if rng.chance(40) {
                    batch.push(match rng.below(12) {
                        0 => Completion::ModelFailed {
                            call_id: id,
                            error: ErrorInfo::new("model_failed", "provider error"),
                        },
                        1 => done(id, FinishReason::Length),
                        2 => done(id, FinishReason::ContentFilter),
                        3..=6 => done(id, FinishReason::ToolCalls),
                        _ => done(id, FinishReason::Stop),
                    });
                }
                h.deliver(batch);
            }
            65..=79 if !tool_calls.is_empty() => {
                let id = rng.pick(&tool_calls).0;
                let is_error = rng.chance(20);
                h.deliver(vec![tool_done(id, rng.word(&WORDS), is_error)]);
            }
            80..=85 if !workers.is_empty() => {
                let w = rng.pick(&workers).clone();
                let _ = h.cancel(&w);
            }
            86..=87 if !workers.is_empty() => {
                let w = rng.pick(&workers).clone();
                let _ = h.stop(&w);
            }
            88..=93 if !workers.is_empty() => {
                let w = rng.pick(&workers).clone();
                let _ = h.snapshot(&w);
                let _ = h.get(&w);
            }
            94..=95 => {
                // Stray completions and unknown workers.
                h.deliver(vec![text(10_000 + step as u64, "stray")]);
                let _ = h.input("w_unknown", "hi");
            }
            _ => {
                let list = h.core.list_workers().unwrap();
                h.note("list", &list);
            }
        }
        for effect in h.effects() {
            match effect {
                Effect::CallModel(r) => model_calls.push((r.call_id, r.run_id)),
                Effect::CallTool(r) => tool_calls.push((r.call_id, r.run_id, r.tool_call_id)),
                Effect::Abort { call_id } => {
                    model_calls.retain(|c| c.0 != call_id);
                    tool_calls.retain(|c| c.0 != call_id);
                }
            }
        }
        for record in h.records() {
            // Finished calls are retired, mostly: a stale one now and then checks that
            // completions of finished calls are ignored.
            if rng.chance(10) {
                continue;
            }
            match &record.event {
                Event::StepFinished { run_id, .. } => model_calls.retain(|c| c.1 != *run_id),
                Event::ToolResult { run_id, id, .. } => {
                    tool_calls.retain(|c| c.1 != *run_id || c.2 != *id)
                }
                Event::RunCompleted { run_id, .. }
                | Event::RunFailed { run_id, .. }
                | Event::RunCancelled { run_id } => {
                    model_calls.retain(|c| c.1 != *run_id);
                    tool_calls.retain(|c| c.1 != *run_id);
                }
                _ => {}
            }
        }
    }
    for line in &h.trace {
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    (out, h)
}

#[test]
fn cores_produce_byte_identical_streams_for_a_long_workload() {
    for seed in [1, 2, 3] {
        let (native, native_h) = workload(native_core, seed, 1_500);
        let (wasm, _) = workload(wasm_core, seed, 1_500);
        let kinds: std::collections::BTreeSet<&str> =
            native_h.log.iter().map(|r| r.event.kind()).collect();
        if native != wasm {
            let a = String::from_utf8_lossy(&native);
            let b = String::from_utf8_lossy(&wasm);
            let line = a
                .lines()
                .zip(b.lines())
                .position(|(x, y)| x != y)
                .unwrap_or(a.lines().count().min(b.lines().count()));
            panic!(
                "seed {seed}: the cores diverge at line {line}:\nnative: {:?}\nwasm:   {:?}",
                a.lines().nth(line),
                b.lines().nth(line)
            );
        }
        // The workload is only worth something if it reaches most of the protocol.
        for kind in [
            "worker_created",
            "input_accepted",
            "text_delta",
            "reasoning_delta",
            "tool_call_ready",
            "tool_result",
            "run_completed",
            "run_cancelled",
            "run_failed",
            "usage",
        ] {
            assert!(
                kinds.contains(kind),
                "seed {seed}: no {kind} event in the workload"
            );
        }
        assert!(
            native_h.log.len() > 500,
            "seed {seed}: only {} events",
            native_h.log.len()
        );

        // And its events restore into fresh cores of both kinds that agree with the live
        // core on every worker.
        let mut live = native_h;
        let workers: Vec<String> = live
            .core
            .list_workers()
            .unwrap()
            .into_iter()
            .map(|w| w.id)
            .collect();
        for (name, make) in CORES {
            let mut fresh = H::new(name, make);
            fresh.core.restore(live.log.clone()).expect("restore");
            for w in &workers {
                assert_eq!(
                    fresh.core.snapshot(w).unwrap(),
                    live.core.snapshot(w).unwrap(),
                    "seed {seed}: {name} core restored {w} differently"
                );
            }
        }
    }
}
