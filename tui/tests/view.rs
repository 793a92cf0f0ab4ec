//! Screens as a user sees them, driven only through `update` (keys, answers, frames
//! recorded from a real host) and drawn by `view` on ratatui's `TestBackend`.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use yoi_protocol::{
    Capabilities, Cursor, ErrorCode, Event, Frame, Input, Limits, RuntimeInfo, WorkerInfo,
    WorkerStatus,
};
use yoi_tui::{
    Answer, App, Cmd, Connection, Failure, Msg, Options, Screen, StreamEvent, StreamId,
    WorkerCommand, update, view,
};

const WIDTH: u16 = 80;
const HEIGHT: u16 = 24;

fn recorded_run() -> Vec<Frame> {
    include_str!("frames/list_files_run.jsonl")
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn mid_run_snapshot() -> Frame {
    serde_json::from_str(include_str!("frames/mid_run_snapshot.json")).unwrap()
}

fn runtime(id: &str, workers: usize) -> RuntimeInfo {
    RuntimeInfo {
        id: id.into(),
        kind: "embedded".into(),
        state: "ready".into(),
        workers,
        unavailable: None,
        capabilities: Capabilities {
            models: vec!["scripted".into(), "other/model".into()],
            tools: vec!["list_dir".into(), "read_file".into()],
            limits: Limits::default(),
            streams: vec!["worker".into(), "all".into()],
        },
    }
}

fn worker(id: &str, name: &str, status: WorkerStatus) -> WorkerInfo {
    WorkerInfo {
        id: id.into(),
        name: name.into(),
        model: "scripted".into(),
        system_prompt: None,
        tools: vec!["list_dir".into()],
        max_steps: 8,
        status,
        created_at_ms: 0,
        current_run: None,
        run_count: 2,
        message_count: 7,
        usage: Default::default(),
        context_tokens: None,
        request_id: None,
    }
}

struct Harness {
    app: App,
    terminal: Terminal<TestBackend>,
    stream: Option<StreamId>,
    cmds: Vec<Cmd>,
}

impl Harness {
    fn new(options: Options) -> Self {
        let (app, cmds) = App::new(options);
        assert_eq!(cmds, [Cmd::LoadRuntimes]);
        Harness {
            app,
            terminal: Terminal::new(TestBackend::new(WIDTH, HEIGHT)).unwrap(),
            stream: None,
            cmds: Vec::new(),
        }
    }

    /// The console on the recorded worker `w_3`, opened from the command line.
    fn console() -> Self {
        let mut h = Harness::new(Options {
            worker: Some("w_3".into()),
            host_label: "http://127.0.0.1:38700".into(),
            ..Options::default()
        });
        h.send(Msg::Runtimes(Ok(vec![runtime("local", 1)])));
        h.send(Msg::Workers {
            runtime_id: "local".into(),
            result: Ok(vec![worker("w_3", "recorded", WorkerStatus::Idle)]),
        });
        assert_eq!(h.app.screen, Screen::Console);
        h.status(Connection::Connected);
        h
    }

    fn send(&mut self, msg: Msg) -> Vec<Cmd> {
        let cmds = update(&mut self.app, msg);
        for cmd in &cmds {
            if let Cmd::OpenStream { id, .. } = cmd {
                self.stream = Some(*id);
            }
        }
        self.cmds.extend(cmds.clone());
        cmds
    }

    fn key(&mut self, code: KeyCode) -> Vec<Cmd> {
        self.send(Msg::Key(KeyEvent::new(code, KeyModifiers::NONE)))
    }

    fn ctrl(&mut self, c: char) -> Vec<Cmd> {
        self.send(Msg::Key(KeyEvent::new(
            KeyCode::Char(c),
            KeyModifiers::CONTROL,
        )))
    }

    fn type_text(&mut self, text: &str) {
        for c in text.chars() {
            self.key(KeyCode::Char(c));
        }
    }

    fn frame(&mut self, frame: Frame) {
        let id = self.stream.expect("a stream is open");
        self.send(Msg::Stream {
            id,
            event: StreamEvent::Frame(Box::new(frame)),
        });
    }

    fn status(&mut self, connection: Connection) {
        let id = self.stream.expect("a stream is open");
        self.send(Msg::Stream {
            id,
            event: StreamEvent::Status(connection),
        });
    }

    fn frames(&mut self, frames: impl IntoIterator<Item = Frame>) {
        for frame in frames {
            self.frame(frame);
        }
    }

    fn draw(&mut self) -> String {
        self.terminal.draw(|f| view(&mut self.app, f)).unwrap();
        self.terminal.backend().to_string()
    }
}

#[test]
fn console_after_a_recorded_run() {
    let mut h = Harness::console();
    h.frames(recorded_run());
    insta::assert_snapshot!(h.draw());
}

#[test]
fn console_with_reasoning_and_tool_output_expanded() {
    let mut h = Harness::console();
    h.frames(recorded_run());
    h.ctrl('r');
    h.ctrl('o');
    // The top of the history, to see the first run's expanded reasoning.
    h.send(Msg::Key(KeyEvent::new(
        KeyCode::Home,
        KeyModifiers::CONTROL,
    )));
    insta::assert_snapshot!(h.draw());
}

#[test]
fn console_mid_run_streams_reasoning_and_shows_the_run() {
    let mut h = Harness::console();
    h.frame(mid_run_snapshot());
    h.type_text("next question");
    insta::assert_snapshot!(h.draw());
}

#[test]
fn reconnecting_is_not_stopped_and_offline_says_why() {
    let mut h = Harness::console();
    h.frames(recorded_run());
    h.status(Connection::Reconnecting {
        attempt: 3,
        after: std::time::Duration::from_millis(800),
        reason: "cannot reach the server: connection refused".into(),
    });
    let screen = h.draw();
    let status = screen.lines().nth(usize::from(HEIGHT) - 2).unwrap();
    insta::assert_snapshot!("reconnecting_status", status);
    assert!(!status.contains("stopped"));
    h.status(Connection::Offline(Failure::new(
        Some(ErrorCode::WorkerNotFound),
        "worker w_3 not found",
    )));
    let screen = h.draw();
    insta::assert_snapshot!(
        "offline_status",
        screen.lines().nth(usize::from(HEIGHT) - 2).unwrap()
    );
}

#[test]
fn a_refused_message_stays_in_the_composer_and_the_error_is_shown() {
    let mut h = Harness::console();
    h.frames(recorded_run());
    h.type_text("hello");
    let cmds = h.key(KeyCode::Enter);
    let [
        Cmd::Worker {
            command: WorkerCommand::Send(input),
            ..
        },
    ] = &cmds[..]
    else {
        panic!("{cmds:?}")
    };
    assert_eq!(input.text, "hello");
    h.send(Msg::Done {
        command: WorkerCommand::Send(input.clone()),
        result: Err(Failure::new(
            Some(ErrorCode::WorkerBusy),
            "worker is busy with run r_8",
        )),
    });
    insta::assert_snapshot!(h.draw());
}

#[test]
fn a_sent_message_clears_the_composer_and_enters_the_history() {
    let mut h = Harness::console();
    h.frames(recorded_run());
    h.type_text("first");
    h.key(KeyCode::Enter);
    assert_eq!(h.key(KeyCode::Enter), [], "one send at a time");
    let input = Input {
        text: "first".into(),
        request_id: None,
    };
    h.send(Msg::Done {
        command: WorkerCommand::Send(input),
        result: Ok(Answer::Run {
            run_id: "r_8".into(),
        }),
    });
    let screen = h.draw();
    assert!(screen.contains("❯ message · Enter sends"), "{screen}");
    h.key(KeyCode::Up);
    let screen = h.draw();
    assert!(screen.contains("❯ first"), "{screen}");
}

#[test]
fn cancel_while_running_and_stop_asks_first() {
    let mut h = Harness::console();
    h.frame(mid_run_snapshot());
    let cmds = h.key(KeyCode::Esc);
    assert!(
        matches!(&cmds[..], [Cmd::Worker { command: WorkerCommand::Cancel, worker_id, .. }] if worker_id == "w_3")
    );
    let cmds = h.ctrl('c');
    assert!(
        matches!(
            &cmds[..],
            [Cmd::Worker {
                command: WorkerCommand::Cancel,
                ..
            }]
        ),
        "Ctrl+C cancels a run, it does not quit"
    );

    assert_eq!(h.ctrl('x'), []);
    insta::assert_snapshot!(h.draw());
    assert_eq!(h.key(KeyCode::Char('n')), [], "n keeps the worker");
    h.ctrl('x');
    let cmds = h.key(KeyCode::Char('y'));
    assert!(matches!(
        &cmds[..],
        [Cmd::Worker {
            command: WorkerCommand::Stop,
            ..
        }]
    ));
}

#[test]
fn ctrl_c_clears_then_quits_when_idle() {
    let mut h = Harness::console();
    h.frames(recorded_run());
    h.type_text("draft");
    assert_eq!(h.ctrl('c'), []);
    assert!(h.draw().contains("❯ message"), "cleared");
    assert_eq!(h.ctrl('c'), [Cmd::Quit]);
}

#[test]
fn help_overlay() {
    let mut h = Harness::console();
    h.frames(recorded_run());
    h.key(KeyCode::Char('?'));
    insta::assert_snapshot!(h.draw());
    h.key(KeyCode::Char('x'));
    assert!(!h.draw().contains("any key closes"), "any key closes it");
}

#[test]
fn picker_lists_runtimes_and_workers() {
    let mut h = Harness::new(Options {
        host_label: "http://127.0.0.1:38700".into(),
        ..Options::default()
    });
    h.send(Msg::Runtimes(Ok(vec![
        runtime("local", 2),
        runtime("gpu-box", 0),
    ])));
    let cmds = h.key(KeyCode::Enter);
    assert_eq!(
        cmds,
        [Cmd::LoadWorkers {
            runtime_id: "local".into()
        }]
    );
    h.send(Msg::Workers {
        runtime_id: "local".into(),
        result: Ok(vec![
            worker("w_1", "demo", WorkerStatus::Idle),
            worker("w_2", "builder", WorkerStatus::Running),
            worker("w_3", "old", WorkerStatus::Stopped),
        ]),
    });
    h.key(KeyCode::Down);
    insta::assert_snapshot!(h.draw());
    let cmds = h.key(KeyCode::Enter);
    assert!(
        matches!(&cmds[..], [Cmd::OpenStream { worker_id, runtime_id, .. }] if worker_id == "w_2" && runtime_id == "local")
    );
}

#[test]
fn picker_shows_what_the_host_answered() {
    let mut h = Harness::new(Options::default());
    h.send(Msg::Runtimes(Err(Failure::new(
        Some(ErrorCode::Unauthorized),
        "the access token is not valid",
    ))));
    let screen = h.draw();
    // Wrapped in the runtimes pane.
    assert!(screen.contains("│unauthorized: the access  │"), "{screen}");
    assert!(screen.contains("│token is not valid        │"), "{screen}");
}

#[test]
fn new_worker_form_creates_with_the_chosen_model_and_tools() {
    let mut h = Harness::new(Options::default());
    h.send(Msg::Runtimes(Ok(vec![runtime("local", 0)])));
    h.send(Msg::Workers {
        runtime_id: "local".into(),
        result: Ok(vec![]),
    });
    h.key(KeyCode::Char('n'));
    for _ in 0.."worker-1".len() {
        h.key(KeyCode::Backspace);
    }
    h.type_text("helper");
    h.key(KeyCode::Tab);
    h.key(KeyCode::Right);
    h.key(KeyCode::Tab);
    h.key(KeyCode::Char(' '));
    insta::assert_snapshot!(h.draw());
    let cmds = h.key(KeyCode::Enter);
    let [Cmd::CreateWorker { runtime_id, spec }] = &cmds[..] else {
        panic!("{cmds:?}")
    };
    assert_eq!(runtime_id, "local");
    assert_eq!(spec.name, "helper");
    assert_eq!(spec.model, "other/model");
    assert_eq!(spec.tools, ["read_file"]);
    // The host refuses: the form stays, with the reason.
    h.send(Msg::WorkerCreated {
        runtime_id: "local".into(),
        result: Err(Failure::new(
            Some(ErrorCode::LimitExceeded),
            "the runtime has 10000 workers",
        )),
    });
    assert!(
        h.draw()
            .contains("limit_exceeded: the runtime has 10000 workers")
    );
    // It accepts: the console opens on the new worker.
    h.key(KeyCode::Enter);
    let cmds = h.send(Msg::WorkerCreated {
        runtime_id: "local".into(),
        result: Ok(worker("w_9", "helper", WorkerStatus::Idle)),
    });
    assert!(matches!(&cmds[..], [Cmd::OpenStream { worker_id, .. }] if worker_id == "w_9"));
    assert_eq!(h.app.screen, Screen::Console);
}

#[test]
fn new_worker_from_the_command_line() {
    let mut h = Harness::new(Options {
        new_worker: Some("demo".into()),
        ..Options::default()
    });
    h.send(Msg::Runtimes(Ok(vec![runtime("local", 0)])));
    let cmds = h.send(Msg::Workers {
        runtime_id: "local".into(),
        result: Ok(vec![]),
    });
    let [Cmd::CreateWorker { spec, .. }] = &cmds[..] else {
        panic!("{cmds:?}")
    };
    assert_eq!(
        (spec.name.as_str(), spec.model.as_str()),
        ("demo", "scripted")
    );
    assert_eq!(
        spec.tools,
        ["list_dir", "read_file"],
        "every tool of the runtime"
    );
}

#[test]
fn markdown_answers_and_long_tool_output() {
    let mut h = Harness::console();
    h.frames(recorded_run());
    let answer = "## Result\n\nThe files are **listed** below:\n\n- `a.txt`\n- `b.md` with a long description that wraps onto the next line of the screen\n\n```rust\nfn main() {}\n```\n";
    let output: String = (1..=30).map(|i| format!("file_{i}.txt\n")).collect();
    let events = [
        Event::InputAccepted {
            run_id: "r_8".into(),
            text: "ls".into(),
            request_id: None,
        },
        Event::ToolCallStarted {
            run_id: "r_8".into(),
            id: "call_3".into(),
            name: "list_dir".into(),
        },
        Event::ToolCallReady {
            run_id: "r_8".into(),
            id: "call_3".into(),
            name: "list_dir".into(),
            arguments: r#"{"path": "."}"#.into(),
        },
        Event::ToolResult {
            run_id: "r_8".into(),
            id: "call_3".into(),
            name: "list_dir".into(),
            output,
            is_error: false,
        },
        Event::TextDelta {
            run_id: "r_8".into(),
            text: answer.into(),
        },
    ];
    for (i, event) in events.into_iter().enumerate() {
        let seq = 1_000 + i as u64;
        h.frame(Frame::Event {
            cursor: Cursor::new(1, seq),
            seq,
            runtime_id: "local".into(),
            worker_id: Some("w_3".into()),
            at_ms: 0,
            event,
        });
    }
    h.terminal = Terminal::new(TestBackend::new(WIDTH, 40)).unwrap();
    insta::assert_snapshot!(h.draw());
}

#[test]
fn frames_of_a_stream_no_longer_open_are_dropped() {
    let mut h = Harness::console();
    h.frames(recorded_run());
    let old = h.stream.unwrap();
    // Switch to another worker: a new stream.
    h.ctrl('w');
    h.send(Msg::Workers {
        runtime_id: "local".into(),
        result: Ok(vec![
            worker("w_3", "recorded", WorkerStatus::Idle),
            worker("w_4", "fresh", WorkerStatus::Idle),
        ]),
    });
    h.key(KeyCode::Down);
    h.key(KeyCode::Enter);
    assert_ne!(h.stream.unwrap(), old);
    let screen_before = h.draw();
    h.send(Msg::Stream {
        id: old,
        event: StreamEvent::Frame(Box::new(mid_run_snapshot())),
    });
    assert_eq!(h.draw(), screen_before);
    assert!(
        screen_before.contains("loading the worker"),
        "{screen_before}"
    );
}
