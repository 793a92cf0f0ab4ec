//! `tui`: the terminal client's state and drawing over a long history, no terminal and
//! no network (ratatui's `TestBackend`; messages fed to `update` as the network task
//! would).
//!
//! - `tui.open_ms`: from a worker's snapshot of 10,000 messages arriving to its first
//!   frame drawn (building the screen model and wrapping what is on screen).
//! - `tui.render_ms`: one frame while paging up through that history (each frame a
//!   PageUp, so every frame wraps cells it has not drawn before), the goal being under
//!   8 ms.
//! - `tui.events_per_s`: stream events of runs (reasoning, tool calls, answers token by
//!   token) applied through `update`, drawn every 512 as the client's main loop does.

use std::time::Instant;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use yoi_protocol::{
    Capabilities, Cursor, Event, Frame, Limits, Message, Role, RuntimeInfo, ToolCall, Usage,
    WorkerInfo, WorkerStatus,
};
use yoi_tui::{App, Cmd, Msg, Options, StreamEvent, StreamId, update, view};

use crate::results::{Results, Samples, rounds};

const MESSAGES: usize = 10_000;
const WIDTH: u16 = 120;
const HEIGHT: u16 = 40;
/// Frames drawn while paging up, per round.
const FRAMES: u32 = 300;
/// Runs streamed per round for `events_per_s`.
const RUNS: usize = 200;
/// Events applied between two draws (the client's main loop batch).
const BATCH: usize = 512;

pub fn run(results: &mut Results) -> anyhow::Result<()> {
    println!("tui: {MESSAGES} messages, {WIDTH}x{HEIGHT}");
    let history = history(MESSAGES);
    let mut figures: [Samples; 3] = Default::default();
    for _ in 0..rounds() {
        let mut bench = Bench::console(WIDTH, HEIGHT)?;
        let snapshot = snapshot(&history, 1);
        let started = Instant::now();
        bench.frame(snapshot);
        bench.draw()?;
        figures[0].push(started.elapsed().as_secs_f64() * 1e3);

        let started = Instant::now();
        for _ in 0..FRAMES {
            bench.send(Msg::Key(KeyEvent::new(KeyCode::PageUp, KeyModifiers::NONE)));
            bench.draw()?;
        }
        figures[1].push(started.elapsed().as_secs_f64() * 1e3 / f64::from(FRAMES));

        let events = runs(RUNS, 2);
        let count = events.len();
        let started = Instant::now();
        for (i, frame) in events.into_iter().enumerate() {
            bench.frame(frame);
            if i % BATCH == BATCH - 1 {
                bench.draw()?;
            }
        }
        bench.draw()?;
        figures[2].push(count as f64 / started.elapsed().as_secs_f64());
    }
    results.record_medians(
        ["tui.open_ms", "tui.render_ms", "tui.events_per_s"],
        &figures,
    );
    Ok(())
}

struct Bench {
    app: App,
    terminal: Terminal<TestBackend>,
    stream: StreamId,
}

impl Bench {
    /// The console on worker `w_1`, its stream open, nothing received yet.
    fn console(width: u16, height: u16) -> anyhow::Result<Bench> {
        let options = Options {
            worker: Some("w_1".into()),
            ..Options::default()
        };
        let (mut app, _) = App::new(options);
        update(&mut app, Msg::Runtimes(Ok(vec![runtime()])));
        let cmds = update(
            &mut app,
            Msg::Workers {
                runtime_id: "local".into(),
                result: Ok(vec![worker()]),
            },
        );
        let Some(stream) = cmds.iter().find_map(|c| match c {
            Cmd::OpenStream { id, .. } => Some(*id),
            _ => None,
        }) else {
            anyhow::bail!("the console did not open the worker's stream: {cmds:?}");
        };
        Ok(Bench {
            app,
            terminal: Terminal::new(TestBackend::new(width, height))?,
            stream,
        })
    }

    fn send(&mut self, msg: Msg) {
        update(&mut self.app, msg);
    }

    fn frame(&mut self, frame: Frame) {
        let id = self.stream;
        self.send(Msg::Stream {
            id,
            event: StreamEvent::Frame(Box::new(frame)),
        });
    }

    fn draw(&mut self) -> anyhow::Result<()> {
        self.terminal.draw(|f| view(&mut self.app, f))?;
        Ok(())
    }
}

fn runtime() -> RuntimeInfo {
    RuntimeInfo {
        id: "local".into(),
        kind: "embedded".into(),
        state: "ready".into(),
        workers: 1,
        unavailable: None,
        capabilities: Capabilities {
            models: vec!["scripted".into()],
            tools: vec!["list_dir".into()],
            limits: Limits::default(),
            streams: vec!["worker".into()],
        },
    }
}

fn worker() -> WorkerInfo {
    WorkerInfo {
        id: "w_1".into(),
        name: "long".into(),
        model: "scripted".into(),
        system_prompt: None,
        tools: vec!["list_dir".into()],
        max_steps: 8,
        status: WorkerStatus::Idle,
        created_at_ms: 0,
        current_run: None,
        run_count: 0,
        message_count: 0,
        usage: Usage::default(),
        context_tokens: None,
        request_id: None,
    }
}

/// `n` messages in runs of four: a question, a tool call with reasoning, its result
/// and a markdown answer of a few paragraphs, a list and a code block.
fn history(n: usize) -> Vec<Message> {
    let message = |role, content: String, run: usize| Message {
        role,
        content,
        reasoning: None,
        tool_calls: Vec::new(),
        tool_call_id: None,
        is_error: false,
        run_id: format!("r_{run}"),
    };
    let mut out = Vec::with_capacity(n);
    let mut run = 0;
    while out.len() < n {
        run += 1;
        out.push(message(
            Role::User,
            format!("question {run}: list the files and explain them"),
            run,
        ));
        out.push(Message {
            reasoning: Some(
                "The user wants the files of the workspace; the list_dir tool gives them, so I call it."
                    .into(),
            ),
            tool_calls: vec![ToolCall {
                id: format!("call_{run}"),
                name: "list_dir".into(),
                arguments: r#"{"path":"."}"#.into(),
            }],
            ..message(Role::Assistant, String::new(), run)
        });
        out.push(Message {
            tool_call_id: Some(format!("call_{run}")),
            ..message(
                Role::Tool,
                (0..12)
                    .map(|i| format!("file_{i}.txt ({i}0 bytes)\n"))
                    .collect(),
                run,
            )
        });
        out.push(message(
            Role::Assistant,
            format!(
                "## Files of run {run}\n\nThe workspace has **twelve** files; the largest is \
                 `file_11.txt`, and all of them are plain text that the tools can read and \
                 search.\n\n- small ones first\n- then the *larger* ones\n- and a last item \
                 long enough to wrap onto a second line of the screen at this width\n\n```sh\n\
                 ls -l\ncat file_1.txt\n```\n"
            ),
            run,
        ));
    }
    out.truncate(n);
    out
}

fn snapshot(transcript: &[Message], seq: u64) -> Frame {
    Frame::Snapshot {
        cursor: Cursor::new(1, seq),
        runtime_id: "local".into(),
        worker: worker(),
        transcript: transcript.to_vec(),
        in_flight: None,
    }
}

/// The events of `n` runs as the host streams them (one text delta per word), from
/// sequence number `first`.
fn runs(n: usize, first: u64) -> Vec<Frame> {
    let mut events = Vec::new();
    for i in 0..n {
        let run_id = format!("r_b{i}");
        let r = || run_id.clone();
        events.push(Event::InputAccepted {
            run_id: r(),
            text: format!("question {i}"),
            request_id: None,
        });
        events.push(Event::RunStarted { run_id: r() });
        for word in "The user wants the files so I call the tool.".split_inclusive(' ') {
            events.push(Event::ReasoningDelta {
                run_id: r(),
                text: word.into(),
            });
        }
        events.push(Event::ToolCallStarted {
            run_id: r(),
            id: "call_1".into(),
            name: "list_dir".into(),
        });
        for part in [r#"{"pa"#, r#"th":"#, r#""."}"#] {
            events.push(Event::ToolCallArgsDelta {
                run_id: r(),
                id: "call_1".into(),
                delta: part.into(),
            });
        }
        events.push(Event::ToolCallReady {
            run_id: r(),
            id: "call_1".into(),
            name: "list_dir".into(),
            arguments: r#"{"path":"."}"#.into(),
        });
        events.push(Event::StepFinished {
            run_id: r(),
            step: 1,
            finish_reason: yoi_protocol::FinishReason::ToolCalls,
        });
        events.push(Event::ToolResult {
            run_id: r(),
            id: "call_1".into(),
            name: "list_dir".into(),
            output: "a.txt\nb.txt\n".into(),
            is_error: false,
        });
        let answer = "Here are the **files**:\n\n- a.txt\n- b.txt\n\nBoth are small text files.\n";
        for word in answer.split_inclusive(' ') {
            events.push(Event::TextDelta {
                run_id: r(),
                text: word.into(),
            });
        }
        events.push(Event::Usage {
            run_id: r(),
            usage: Usage {
                input_tokens: 10,
                output_tokens: 20,
            },
        });
        events.push(Event::RunCompleted {
            run_id: r(),
            stop_reason: yoi_protocol::StopReason::EndTurn,
        });
    }
    events
        .into_iter()
        .enumerate()
        .map(|(i, event)| {
            let seq = first + i as u64;
            Frame::Event {
                cursor: Cursor::new(1, seq),
                seq,
                runtime_id: "local".into(),
                worker_id: Some("w_1".into()),
                at_ms: 0,
                event,
            }
        })
        .collect()
}
