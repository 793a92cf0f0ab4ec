//! The stream adapter against frame sequences recorded from a real `yoi-host` (a worker
//! that wrote a file, then a "list files" run; and a snapshot taken in the middle of
//! that run), replayed clean, with duplicates, across a reconnect and across an
//! expired cursor.

use yoi_protocol::{Cursor, ErrorCode, ErrorInfo, Event, Frame, WorkerStatus};
use yoi_tui::{Applied, CellKind, Conversation, NoticeLevel, ToolState};

fn recorded_run() -> Vec<Frame> {
    include_str!("frames/list_files_run.jsonl")
        .lines()
        .map(|line| serde_json::from_str(line).expect("a recorded frame"))
        .collect()
}

fn mid_run_snapshot() -> Frame {
    serde_json::from_str(include_str!("frames/mid_run_snapshot.json")).unwrap()
}

/// The frames up to the event with sequence number `last`.
fn upto(frames: &[Frame], last: u64) -> Vec<Frame> {
    frames
        .iter()
        .filter(|f| seq(f).is_none_or(|s| s <= last))
        .cloned()
        .collect()
}

fn seq(frame: &Frame) -> Option<u64> {
    match frame {
        Frame::Event { seq, .. } => Some(*seq),
        Frame::Snapshot { cursor, .. } => Some(cursor.seq),
        _ => None,
    }
}

/// A model from the first frame (a snapshot), with the other frames applied.
fn play(frames: impl IntoIterator<Item = Frame>) -> Conversation {
    let mut frames = frames.into_iter();
    let first = frames.next().expect("a frame");
    let mut conv = Conversation::from_frame(first).expect("streams start with a snapshot");
    for frame in frames {
        conv.apply(frame);
    }
    conv
}

fn kinds(conv: &Conversation) -> Vec<CellKind> {
    conv.cells().iter().map(|c| c.kind.clone()).collect()
}

#[test]
fn a_recorded_run_becomes_messages_reasoning_tools_and_answers() {
    let conv = play(recorded_run());
    let cells = kinds(&conv);
    let summary: Vec<&str> = cells
        .iter()
        .map(|k| match k {
            CellKind::User { .. } => "user",
            CellKind::Reasoning { .. } => "reasoning",
            CellKind::Assistant { .. } => "answer",
            CellKind::Tool(_) => "tool",
            CellKind::Notice { .. } => "notice",
        })
        .collect();
    assert_eq!(
        summary,
        [
            "user",
            "reasoning",
            "tool",
            "reasoning",
            "answer", // the snapshot: write_file
            "user",
            "reasoning",
            "tool",
            "reasoning",
            "answer", // live: list files
        ]
    );
    let CellKind::Tool(list) = &cells[7] else {
        unreachable!()
    };
    assert_eq!(list.name, "list_dir");
    assert_eq!(list.arguments, r#"{"path":"."}"#);
    assert!(
        matches!(&list.state, ToolState::Done { output, is_error: false } if output.contains("notes.md")),
        "{:?}",
        list.state
    );
    let CellKind::Assistant { text, live } = &cells[9] else {
        unreachable!()
    };
    assert!(!live);
    assert!(text.starts_with("Here is what the `list_dir` tool returned:"));
    assert!(cells.iter().all(|c| !c.is_live()), "the run is over");
    assert!(conv.run().is_none());
    assert_eq!(conv.worker().status, WorkerStatus::Idle);
    assert_eq!(conv.duplicates(), 0);
}

#[test]
fn a_tool_call_goes_from_streaming_to_running_to_done() {
    let frames = recorded_run();
    let tool_state = |last: u64| {
        let conv = play(upto(&frames, last));
        conv.cells()
            .iter()
            .rev()
            .find_map(|c| match &c.kind {
                CellKind::Tool(t) => Some((t.state.clone(), t.arguments.clone())),
                _ => None,
            })
            .unwrap()
    };
    // 443 tool_call_started, 444-446 argument fragments, 449 ready, 451 result.
    let (state, args) = tool_state(444);
    assert_eq!(state, ToolState::Streaming);
    assert!(
        !args.is_empty() && args.len() < r#"{"path":"."}"#.len(),
        "{args}"
    );
    assert_eq!(tool_state(449).0, ToolState::Running);
    assert!(matches!(tool_state(451).0, ToolState::Done { .. }));
}

#[test]
fn reasoning_and_text_stream_live_then_settle() {
    let frames = recorded_run();
    let conv = play(upto(&frames, 430));
    let last = &conv.cells().last().unwrap().kind;
    assert!(
        matches!(last, CellKind::Reasoning { text, live: true } if text.starts_with("The user asked me")),
        "{last:?}"
    );
    let run = conv.run().expect("a run in flight");
    assert_eq!((run.id, run.step), ("r_7", 1));
    let conv = play(upto(&frames, 470));
    assert!(matches!(
        &conv.cells().last().unwrap().kind,
        CellKind::Assistant { live: true, .. }
    ));
    assert_eq!(conv.run().unwrap().step, 2);
}

#[test]
fn duplicates_from_an_overlapping_reconnect_are_dropped_by_sequence_number() {
    let clean = play(recorded_run());
    let frames = recorded_run();
    // Every event twice, and after the tool result the stream "reconnects" from an older
    // cursor and gets events 430..=451 again.
    let mut noisy = Vec::new();
    let mut dups = 0;
    for frame in &frames {
        noisy.push(frame.clone());
        if matches!(frame, Frame::Event { .. }) {
            noisy.push(frame.clone());
            dups += 1;
        }
        if seq(frame) == Some(451) {
            for again in frames
                .iter()
                .filter(|f| seq(f).is_some_and(|s| (430..=451).contains(&s)))
            {
                noisy.push(again.clone());
                dups += 1;
            }
        }
    }
    let conv = play(noisy);
    assert_eq!(kinds(&conv), kinds(&clean));
    assert_eq!(conv.duplicates(), dups);
    assert_eq!(
        conv.worker(),
        clean.worker(),
        "usage and counts are not added twice"
    );
}

#[test]
fn a_resumed_stream_continues_the_run_where_it_was() {
    // The client reconnects after event 440 with its cursor and gets 441.. : the
    // adapter sees one sequence, whatever the connection did in between.
    let clean = play(recorded_run());
    let frames = recorded_run();
    let (before, after): (Vec<_>, Vec<_>) = frames
        .into_iter()
        .partition(|f| seq(f).is_none_or(|s| s <= 440));
    let mut conv = play(before);
    assert!(conv.run().is_some());
    for frame in after {
        assert_eq!(conv.apply(frame), Applied::Changed);
    }
    assert_eq!(kinds(&conv), kinds(&clean));
}

#[test]
fn an_expired_cursor_and_its_fresh_snapshot_end_on_the_same_screen() {
    let clean = play(recorded_run());
    let frames = recorded_run();
    let mid = mid_run_snapshot();
    let mid_seq = seq(&mid).unwrap();
    assert!((441..480).contains(&mid_seq), "recorded mid-run: {mid_seq}");

    // Seen up to 440; the reconnect's cursor has expired: a diagnostic, the fresh
    // snapshot, then the events after it.
    let mut conv = play(upto(&frames, 440));
    conv.apply(Frame::Diagnostic {
        code: ErrorCode::CursorExpired,
        message: "the cursor is older than the retained history".into(),
    });
    assert!(matches!(
        &conv.cells().last().unwrap().kind,
        CellKind::Notice { level: NoticeLevel::Warn, text } if text.starts_with("cursor_expired")
    ));
    let generation = conv.generation();
    assert_eq!(conv.apply(mid), Applied::Reset);
    assert_eq!(
        conv.generation(),
        generation + 1,
        "the layout drops its cache"
    );
    assert_eq!(conv.last_seq(), mid_seq);
    for frame in frames
        .into_iter()
        .filter(|f| seq(f).is_some_and(|s| s > mid_seq))
    {
        conv.apply(frame);
    }
    assert_eq!(kinds(&conv), kinds(&clean));
    assert_eq!(conv.worker(), clean.worker());
}

#[test]
fn a_snapshot_taken_mid_run_shows_the_partial_output_live() {
    let conv = play([mid_run_snapshot()]);
    let run = conv.run().expect("the snapshot has a run in flight");
    assert_eq!((run.id, run.step), ("r_7", 2));
    let cells = kinds(&conv);
    assert!(
        matches!(cells.last().unwrap(), CellKind::Reasoning { live: true, text } if text.starts_with("1 tool result")),
        "{:?}",
        cells.last()
    );
    // Step 1's tool call is in the transcript with its result.
    assert!(cells.iter().any(|c| matches!(
        c,
        CellKind::Tool(t) if t.name == "list_dir" && matches!(t.state, ToolState::Done { .. })
    )));
}

#[test]
fn frames_of_other_workers_change_nothing() {
    let mut conv = play(recorded_run());
    let before = kinds(&conv);
    let other = Frame::Event {
        cursor: Cursor::new(1, 10_000),
        seq: 10_000,
        runtime_id: "local".into(),
        worker_id: Some("w_99".into()),
        at_ms: 0,
        event: Event::RunStarted {
            run_id: "r_99".into(),
        },
    };
    assert_eq!(conv.apply(other), Applied::Ignored);
    assert_eq!(kinds(&conv), before);
}

/// An event of the recorded worker after everything recorded.
fn next_event(conv: &Conversation, event: Event) -> Frame {
    let seq = conv.last_seq() + 1;
    Frame::Event {
        cursor: Cursor::new(1, seq),
        seq,
        runtime_id: "local".into(),
        worker_id: Some(conv.worker().id.clone()),
        at_ms: 0,
        event,
    }
}

#[test]
fn cancelled_and_failed_runs_say_so_and_leave_nothing_live() {
    let mut conv = play(recorded_run());
    let run = |id: &str| id.to_string();
    for event in [
        Event::InputAccepted {
            run_id: run("r_8"),
            text: "read big.txt".into(),
            request_id: None,
        },
        Event::RunStarted { run_id: run("r_8") },
        Event::TextDelta {
            run_id: run("r_8"),
            text: "Partial ans".into(),
        },
        Event::ToolCallStarted {
            run_id: run("r_8"),
            id: "call_9".into(),
            name: "read_file".into(),
        },
        Event::RunCancelled { run_id: run("r_8") },
    ] {
        let frame = next_event(&conv, event);
        conv.apply(frame);
    }
    let cells = kinds(&conv);
    let n = cells.len();
    assert!(
        matches!(&cells[n - 3], CellKind::Assistant { text, live: false } if text == "Partial ans")
    );
    assert!(matches!(&cells[n - 2], CellKind::Tool(t) if t.state == ToolState::NoResult));
    assert!(matches!(&cells[n - 1], CellKind::Notice { text, .. } if text == "run cancelled"));
    assert!(conv.run().is_none());

    // A provider's error reaches the screen as what it is.
    for event in [
        Event::InputAccepted {
            run_id: run("r_9"),
            text: "hi".into(),
            request_id: None,
        },
        Event::RunFailed {
            run_id: run("r_9"),
            error: ErrorInfo::new("rate_limited", "the provider answered 429: slow down"),
        },
    ] {
        let frame = next_event(&conv, event);
        conv.apply(frame);
    }
    assert!(matches!(
        &conv.cells().last().unwrap().kind,
        CellKind::Notice { level: NoticeLevel::Error, text }
            if text == "run failed · rate_limited: the provider answered 429: slow down"
    ));
}
