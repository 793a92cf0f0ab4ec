//! The one adapter from a worker's stream to its screen model.
//!
//! The first screen comes from the stream's snapshot (transcript plus the partial
//! output of a run in flight); every later change comes from events applied here, in
//! order. Events at or below the last applied sequence number are dropped (the client
//! already drops duplicates across reconnects; keeping the check here makes the model
//! correct whatever feeds it). A fresh snapshot (after `cursor_expired` or
//! `cursor_unknown`) replaces the model.

use std::collections::HashMap;

use yoi_protocol::{
    Cursor, ErrorCode, Event, Frame, InFlight, Message, Role, StopReason, Usage, WorkerInfo,
    WorkerSnapshot, WorkerStatus,
};

use crate::cells::{Cell, CellKind, NoticeLevel, ToolCell, ToolState};

/// What applying a frame did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The model changed.
    Changed,
    /// The model was replaced by a snapshot.
    Reset,
    /// An event already applied (by sequence number): dropped.
    Duplicate,
    /// Not for this model (another worker's event, a frame with nothing to show).
    Ignored,
}

/// A worker as the console shows it: its info, its cells and the run in flight.
#[derive(Debug, Clone)]
pub struct Conversation {
    runtime_id: String,
    worker: WorkerInfo,
    cells: Vec<Cell>,
    next_rev: u64,
    /// Sequence number of the last event applied (or of the snapshot's cursor).
    last_seq: u64,
    run: Option<LiveRun>,
    /// Bumped by every snapshot, so the layout drops what it cached.
    generation: u64,
    duplicates: u64,
}

/// The run in flight: where its streamed output goes.
#[derive(Debug, Clone)]
struct LiveRun {
    id: String,
    step: u32,
    usage: Usage,
    /// Cells of the model step being streamed.
    reasoning: Option<usize>,
    answer: Option<usize>,
    /// Tool call id to cell, for the whole run (results arrive after the step).
    tools: HashMap<String, usize>,
}

impl LiveRun {
    fn new(id: String, step: u32) -> Self {
        LiveRun {
            id,
            step,
            usage: Usage::default(),
            reasoning: None,
            answer: None,
            tools: HashMap::new(),
        }
    }
}

/// The run in flight, for the status line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunView<'a> {
    pub id: &'a str,
    pub step: u32,
    pub usage: Usage,
}

impl Conversation {
    /// The model of a worker stream's `snapshot` frame.
    pub fn from_snapshot(runtime_id: &str, cursor: Cursor, snapshot: WorkerSnapshot) -> Self {
        let mut c = Conversation {
            runtime_id: runtime_id.to_string(),
            worker: snapshot.worker.clone(),
            cells: Vec::new(),
            next_rev: 0,
            last_seq: cursor.seq,
            run: None,
            generation: 0,
            duplicates: 0,
        };
        c.load(snapshot);
        c
    }

    pub fn runtime_id(&self) -> &str {
        &self.runtime_id
    }

    pub fn worker(&self) -> &WorkerInfo {
        &self.worker
    }

    pub fn cells(&self) -> &[Cell] {
        &self.cells
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Events dropped as duplicates so far.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    pub fn run(&self) -> Option<RunView<'_>> {
        self.run.as_ref().map(|r| RunView {
            id: &r.id,
            step: r.step,
            usage: r.usage,
        })
    }

    /// The model of a worker stream's first frame, if it is a snapshot.
    pub fn from_frame(frame: Frame) -> Option<Self> {
        let (runtime_id, cursor, snapshot) = snapshot_parts(frame).ok()?;
        Some(Conversation::from_snapshot(&runtime_id, cursor, snapshot))
    }

    /// Applies one frame of this worker's stream.
    pub fn apply(&mut self, frame: Frame) -> Applied {
        let frame = match snapshot_parts(frame) {
            Ok((runtime_id, cursor, snapshot)) => {
                if snapshot.worker.id != self.worker.id {
                    return Applied::Ignored;
                }
                self.runtime_id = runtime_id;
                self.cells.clear();
                self.run = None;
                self.last_seq = cursor.seq;
                self.generation += 1;
                self.load(snapshot);
                return Applied::Reset;
            }
            Err(frame) => frame,
        };
        match frame {
            Frame::Event {
                seq,
                worker_id,
                event,
                ..
            } => {
                if worker_id.as_deref() != Some(self.worker.id.as_str()) {
                    return Applied::Ignored;
                }
                if seq <= self.last_seq {
                    self.duplicates += 1;
                    return Applied::Duplicate;
                }
                self.last_seq = seq;
                self.event(event);
                Applied::Changed
            }
            Frame::Diagnostic { code, message } => {
                let text = match code {
                    ErrorCode::CursorExpired | ErrorCode::CursorUnknown => {
                        format!("{code}: {message} (reloading the worker)")
                    }
                    _ => format!("{code}: {message}"),
                };
                self.notice(NoticeLevel::Warn, text);
                Applied::Changed
            }
            Frame::Error { code, message } => {
                self.notice(
                    NoticeLevel::Error,
                    format!("stream error {code}: {message}"),
                );
                Applied::Changed
            }
            // The client reconnects from the cursor by itself; the status line says so.
            Frame::Lagged { .. } | Frame::SnapshotAll { .. } | Frame::Snapshot { .. } => {
                Applied::Ignored
            }
        }
    }

    /// Adds a notice of the console itself (a refused command, say).
    pub fn notice(&mut self, level: NoticeLevel, text: String) {
        self.push(CellKind::Notice { level, text });
    }

    fn rev(&mut self) -> u64 {
        self.next_rev += 1;
        self.next_rev
    }

    fn push(&mut self, kind: CellKind) -> usize {
        let rev = self.rev();
        self.cells.push(Cell { kind, rev });
        self.cells.len() - 1
    }

    /// The cell at `index`, marked as changed.
    fn touch(&mut self, index: usize) -> &mut CellKind {
        let rev = self.rev();
        let cell = &mut self.cells[index];
        cell.rev = rev;
        &mut cell.kind
    }

    fn load(&mut self, snapshot: WorkerSnapshot) {
        self.worker = snapshot.worker;
        let mut tools = ToolIndex::new();
        for message in snapshot.transcript {
            self.load_message(message, &mut tools);
        }
        // A call without a result is running if the run in flight waits for it; any
        // other never got one.
        let in_flight = snapshot.in_flight;
        for (key, &index) in &tools {
            let waited_for = in_flight.as_ref().is_some_and(|f| {
                f.run_id == key.0 && f.pending_tools.iter().any(|t| t.id == key.1)
            });
            if let CellKind::Tool(tool) = &mut self.cells[index].kind
                && tool.state == ToolState::Running
                && !waited_for
            {
                tool.state = ToolState::NoResult;
            }
        }
        if let Some(in_flight) = in_flight {
            let run_tools = tools
                .into_iter()
                .filter(|((run, _), _)| *run == in_flight.run_id)
                .map(|((_, id), index)| (id, index))
                .collect();
            self.load_in_flight(in_flight, run_tools);
        }
    }

    fn load_message(&mut self, message: Message, tools: &mut ToolIndex) {
        match message.role {
            Role::User => {
                self.push(CellKind::User {
                    text: message.content,
                });
            }
            Role::Assistant => {
                if let Some(text) = message.reasoning {
                    self.push(CellKind::Reasoning { text, live: false });
                }
                if !message.content.is_empty() {
                    self.push(CellKind::Assistant {
                        text: message.content,
                        live: false,
                    });
                }
                for call in message.tool_calls {
                    let key = (message.run_id.clone(), call.id.clone());
                    let index = self.push(CellKind::Tool(ToolCell {
                        id: call.id,
                        name: call.name,
                        arguments: call.arguments,
                        state: ToolState::Running,
                    }));
                    tools.insert(key, index);
                }
            }
            Role::Tool => {
                let id = message.tool_call_id.unwrap_or_default();
                let state = ToolState::Done {
                    output: message.content,
                    is_error: message.is_error,
                };
                match tools.get(&(message.run_id, id.clone())).copied() {
                    Some(index) => {
                        if let CellKind::Tool(tool) = self.touch(index) {
                            tool.state = state;
                        }
                    }
                    None => {
                        self.push(CellKind::Tool(ToolCell {
                            id,
                            name: "tool".into(),
                            arguments: String::new(),
                            state,
                        }));
                    }
                }
            }
        }
    }

    fn load_in_flight(&mut self, in_flight: InFlight, tools: HashMap<String, usize>) {
        let mut run = LiveRun::new(in_flight.run_id, in_flight.step);
        run.tools = tools;
        if !in_flight.reasoning.is_empty() {
            run.reasoning = Some(self.push(CellKind::Reasoning {
                text: in_flight.reasoning,
                live: true,
            }));
        }
        if !in_flight.text.is_empty() {
            run.answer = Some(self.push(CellKind::Assistant {
                text: in_flight.text,
                live: true,
            }));
        }
        for call in in_flight.tool_calls {
            let id = call.id.clone();
            let index = self.push(CellKind::Tool(ToolCell {
                id: call.id,
                name: call.name,
                arguments: call.arguments,
                state: ToolState::Streaming,
            }));
            run.tools.insert(id, index);
        }
        self.run = Some(run);
    }

    /// The run in flight if it is `run_id` (events of another run change nothing).
    fn run_mut(&mut self, run_id: &str) -> Option<&mut LiveRun> {
        self.run.as_mut().filter(|r| r.id == run_id)
    }

    fn event(&mut self, event: Event) {
        match event {
            Event::WorkerCreated { worker } => {
                if worker.id == self.worker.id {
                    self.worker = *worker;
                }
            }
            Event::StatusChanged { to, .. } => self.worker.status = to,
            Event::InputAccepted { run_id, text, .. } => {
                self.worker.run_count = self.worker.run_count.saturating_add(1);
                self.worker.message_count = self.worker.message_count.saturating_add(1);
                self.worker.current_run = Some(run_id.clone());
                self.push(CellKind::User { text });
                self.run = Some(LiveRun::new(run_id, 1));
            }
            Event::RunStarted { run_id } => {
                if self.run.as_ref().is_none_or(|r| r.id != run_id) {
                    self.run = Some(LiveRun::new(run_id, 1));
                }
            }
            Event::ReasoningDelta { run_id, text } => {
                self.stream_into(&run_id, Stream::Reasoning, |s| s.push_str(&text));
            }
            Event::ReasoningDone { run_id, text } => {
                self.stream_into(&run_id, Stream::Reasoning, |s| *s = text);
                self.finish_stream(&run_id, Stream::Reasoning);
            }
            Event::TextDelta { run_id, text } => {
                self.stream_into(&run_id, Stream::Answer, |s| s.push_str(&text));
            }
            Event::TextDone { run_id, text } => {
                self.stream_into(&run_id, Stream::Answer, |s| *s = text);
                self.finish_stream(&run_id, Stream::Answer);
            }
            Event::ToolCallStarted { run_id, id, name } => {
                if self.run_mut(&run_id).is_none() {
                    return;
                }
                let index = self.push(CellKind::Tool(ToolCell {
                    id: id.clone(),
                    name,
                    arguments: String::new(),
                    state: ToolState::Streaming,
                }));
                if let Some(run) = self.run_mut(&run_id) {
                    run.tools.insert(id, index);
                }
            }
            Event::ToolCallArgsDelta { run_id, id, delta } => {
                self.update_tool(&run_id, &id, |tool| tool.arguments.push_str(&delta));
            }
            Event::ToolCallReady {
                run_id,
                id,
                name,
                arguments,
            } => {
                self.update_tool(&run_id, &id, |tool| {
                    tool.name = name;
                    tool.arguments = arguments;
                    tool.state = ToolState::Running;
                });
            }
            Event::ToolResult {
                run_id,
                id,
                output,
                is_error,
                ..
            } => {
                self.worker.message_count = self.worker.message_count.saturating_add(1);
                self.update_tool(&run_id, &id, |tool| {
                    tool.state = ToolState::Done { output, is_error };
                });
            }
            Event::Usage { run_id, usage } => {
                self.worker.usage.add(usage);
                if let Some(run) = self.run_mut(&run_id) {
                    run.usage.add(usage);
                }
            }
            Event::StepFinished { run_id, step, .. } => {
                self.worker.message_count = self.worker.message_count.saturating_add(1);
                self.finish_stream(&run_id, Stream::Reasoning);
                self.finish_stream(&run_id, Stream::Answer);
                if let Some(run) = self.run_mut(&run_id) {
                    run.step = step + 1;
                    run.reasoning = None;
                    run.answer = None;
                }
            }
            Event::RunCompleted {
                run_id,
                stop_reason,
            } => {
                self.end_run(&run_id);
                let why = match stop_reason {
                    StopReason::EndTurn => None,
                    StopReason::MaxTokens => Some("the model hit its output limit"),
                    StopReason::MaxSteps => Some("the run used all its model steps"),
                    StopReason::ContentFilter => Some("the provider's content filter stopped it"),
                };
                if let Some(why) = why {
                    self.notice(NoticeLevel::Warn, format!("run ended early: {why}"));
                }
            }
            Event::RunFailed { run_id, error } => {
                self.end_run(&run_id);
                self.notice(
                    NoticeLevel::Error,
                    format!("run failed · {}: {}", error.code, error.message),
                );
            }
            Event::RunCancelled { run_id } => {
                self.end_run(&run_id);
                self.notice(NoticeLevel::Warn, "run cancelled".into());
            }
            Event::Diagnostic {
                level,
                code,
                message,
            } => {
                let level = match level {
                    yoi_protocol::Level::Info => NoticeLevel::Info,
                    yoi_protocol::Level::Warn => NoticeLevel::Warn,
                    yoi_protocol::Level::Error => NoticeLevel::Error,
                };
                self.notice(level, format!("{code}: {message}"));
            }
            Event::ContextTrimmed {
                omitted_messages,
                budget_tokens,
                ..
            } => {
                self.notice(
                    NoticeLevel::Info,
                    format!(
                        "context: {omitted_messages} earlier messages left out of this request \
                         (the model's budget is {budget_tokens} tokens)"
                    ),
                );
            }
            Event::WorkerDeleted { name } => {
                self.worker.status = WorkerStatus::Stopped;
                self.worker.current_run = None;
                self.notice(NoticeLevel::Warn, format!("worker {name} was deleted"));
            }
        }
    }

    /// Changes the text of the step's reasoning or answer cell, creating it first.
    fn stream_into(&mut self, run_id: &str, stream: Stream, change: impl FnOnce(&mut String)) {
        let Some(run) = self.run_mut(run_id) else {
            return;
        };
        let slot = match stream {
            Stream::Reasoning => run.reasoning,
            Stream::Answer => run.answer,
        };
        let index = match slot {
            Some(index) => index,
            None => {
                let kind = match stream {
                    Stream::Reasoning => CellKind::Reasoning {
                        text: String::new(),
                        live: true,
                    },
                    Stream::Answer => CellKind::Assistant {
                        text: String::new(),
                        live: true,
                    },
                };
                let index = self.push(kind);
                if let Some(run) = self.run_mut(run_id) {
                    match stream {
                        Stream::Reasoning => run.reasoning = Some(index),
                        Stream::Answer => run.answer = Some(index),
                    }
                }
                index
            }
        };
        if let CellKind::Reasoning { text, .. } | CellKind::Assistant { text, .. } =
            self.touch(index)
        {
            change(text);
        }
    }

    fn finish_stream(&mut self, run_id: &str, stream: Stream) {
        let Some(run) = self.run_mut(run_id) else {
            return;
        };
        let slot = match stream {
            Stream::Reasoning => run.reasoning,
            Stream::Answer => run.answer,
        };
        if let Some(index) = slot
            && let CellKind::Reasoning { live, .. } | CellKind::Assistant { live, .. } =
                self.touch(index)
        {
            *live = false;
        }
    }

    fn update_tool(&mut self, run_id: &str, id: &str, change: impl FnOnce(&mut ToolCell)) {
        let Some(&index) = self.run_mut(run_id).and_then(|r| r.tools.get(id)) else {
            return;
        };
        if let CellKind::Tool(tool) = self.touch(index) {
            change(tool);
        }
    }

    /// Closes the run: whatever still streams stays as it is, but stops being live.
    fn end_run(&mut self, run_id: &str) {
        let Some(run) = self.run.take_if(|r| r.id == run_id) else {
            return;
        };
        self.worker.current_run = None;
        let mut open: Vec<usize> = run.tools.values().copied().collect();
        open.extend(run.reasoning);
        open.extend(run.answer);
        for index in open {
            if !self.cells[index].kind.is_live() {
                continue;
            }
            match self.touch(index) {
                CellKind::Reasoning { live, .. } | CellKind::Assistant { live, .. } => {
                    *live = false;
                }
                CellKind::Tool(tool) => tool.state = ToolState::NoResult,
                CellKind::User { .. } | CellKind::Notice { .. } => {}
            }
        }
    }
}

/// A `snapshot` frame's runtime, cursor and snapshot; any other frame back.
#[expect(
    clippy::result_large_err,
    reason = "the frame is handed back as it came, by value, like every frame"
)]
fn snapshot_parts(frame: Frame) -> Result<(String, Cursor, WorkerSnapshot), Frame> {
    match frame {
        Frame::Snapshot {
            cursor,
            runtime_id,
            worker,
            transcript,
            in_flight,
        } => Ok((
            runtime_id,
            cursor,
            WorkerSnapshot {
                worker,
                transcript,
                in_flight,
            },
        )),
        other => Err(other),
    }
}

/// Tool cells of a snapshot by `(run_id, tool_call_id)`.
type ToolIndex = HashMap<(String, String), usize>;

#[derive(Clone, Copy)]
enum Stream {
    Reasoning,
    Answer,
}
