//! Incremental layout of a conversation: wrapped lines per cell, cached, and scrolling.
//!
//! Each cell's lines are kept until the cell (its revision), the width or a toggle it
//! depends on changes; a streaming answer also keeps the lines of its complete source
//! lines and re-wraps only the partial last one. Cells are wrapped lazily, when they
//! come into view: a worker with 10,000 messages opens at the bottom by wrapping the
//! few cells on screen, and scrolling wraps only what it passes. The scroll position
//! is a cell and a line in it (not a count from the top), so nothing has to be measured
//! above it and new output does not move a reader who scrolled up.

use ratatui::text::Line;

use crate::adapter::Conversation;
use crate::cell_view::{self, Toggles};
use crate::cells::CellKind;

/// A line of the conversation: a cell and a line within its lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub cell: usize,
    pub line: usize,
}

/// Where the console's view is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scroll {
    /// At the bottom, following new output.
    #[default]
    Follow,
    /// Scrolled up: this line is at the top of the view.
    At(Pos),
}

#[derive(Debug, Default)]
pub struct Layout {
    width: u16,
    toggles: Toggles,
    /// The conversation generation the entries belong to.
    generation: u64,
    entries: Vec<Option<Entry>>,
    wraps: u64,
}

#[derive(Debug)]
struct Entry {
    rev: u64,
    toggles: Toggles,
    /// The cell's lines followed by one blank separator line.
    lines: Vec<Line<'static>>,
    /// For a streaming answer: bytes of complete source lines and how many screen lines
    /// they made (the rest of `lines` is the partial line and the separator).
    committed: Option<(usize, usize)>,
}

impl Layout {
    pub fn new(width: u16) -> Self {
        Layout {
            width,
            ..Layout::default()
        }
    }

    pub fn width(&self) -> u16 {
        self.width
    }

    pub fn toggles(&self) -> Toggles {
        self.toggles
    }

    /// Cells (re-)wrapped so far: what benchmarks and tests look at.
    pub fn wraps(&self) -> u64 {
        self.wraps
    }

    pub fn set_width(&mut self, width: u16) {
        if width != self.width {
            self.width = width;
            self.entries.clear();
        }
    }

    pub fn set_toggles(&mut self, toggles: Toggles) {
        self.toggles = toggles;
    }

    /// The lines of cell `index` (wrapping it if needed), with the separator line.
    pub fn lines(&mut self, conv: &Conversation, index: usize) -> &[Line<'static>] {
        if conv.generation() != self.generation {
            self.generation = conv.generation();
            self.entries.clear();
        }
        if self.entries.len() < conv.cells().len() {
            self.entries.resize_with(conv.cells().len(), || None);
        }
        let cell = &conv.cells()[index];
        let toggles = self.toggles.relevant_to(&cell.kind);
        let width = self.width;
        let entry = &mut self.entries[index];
        let fresh = entry
            .as_ref()
            .is_some_and(|e| e.rev == cell.rev && e.toggles == toggles);
        if !fresh {
            self.wraps += 1;
            let previous = entry.take();
            *entry = Some(wrap_cell(&cell.kind, cell.rev, width, toggles, previous));
        }
        entry.as_ref().map_or(&[][..], |e| e.lines.as_slice())
    }

    pub fn height(&mut self, conv: &Conversation, index: usize) -> usize {
        self.lines(conv, index).len()
    }

    /// The top line of the view for `scroll` in a view `rows` high.
    pub fn top(&mut self, conv: &Conversation, scroll: Scroll, rows: usize) -> Pos {
        match scroll {
            Scroll::At(pos) => self.clamp(conv, pos),
            Scroll::Follow => self.bottom_top(conv, rows),
        }
    }

    /// The lines in a view `rows` high.
    pub fn visible(
        &mut self,
        conv: &Conversation,
        scroll: Scroll,
        rows: usize,
    ) -> Vec<Line<'static>> {
        let mut pos = self.top(conv, scroll, rows);
        let mut out = Vec::with_capacity(rows);
        while out.len() < rows && pos.cell < conv.cells().len() {
            let lines = self.lines(conv, pos.cell);
            let take = (rows - out.len()).min(lines.len().saturating_sub(pos.line));
            out.extend_from_slice(&lines[pos.line..pos.line + take]);
            pos = Pos {
                cell: pos.cell + 1,
                line: 0,
            };
        }
        out
    }

    /// `scroll` moved by `delta` lines (negative: up) in a view `rows` high; back to
    /// following when the bottom comes into view.
    pub fn scroll(
        &mut self,
        conv: &Conversation,
        scroll: Scroll,
        delta: isize,
        rows: usize,
    ) -> Scroll {
        if conv.cells().is_empty() {
            return Scroll::Follow;
        }
        let mut pos = self.top(conv, scroll, rows);
        let mut k = delta.unsigned_abs();
        if delta < 0 {
            while k > 0 {
                if pos.line >= k {
                    pos.line -= k;
                    break;
                }
                k -= pos.line;
                pos.line = 0;
                if pos.cell == 0 {
                    break;
                }
                pos.cell -= 1;
                pos.line = self.height(conv, pos.cell).saturating_sub(1);
                k -= 1;
            }
        } else {
            while k > 0 {
                let left = self.height(conv, pos.cell).saturating_sub(1) - pos.line;
                if left >= k {
                    pos.line += k;
                    break;
                }
                k -= left + 1;
                if pos.cell + 1 >= conv.cells().len() {
                    pos.line += left;
                    break;
                }
                pos = Pos {
                    cell: pos.cell + 1,
                    line: 0,
                };
            }
        }
        if self.lines_from(conv, pos, rows + 1) <= rows {
            Scroll::Follow
        } else {
            Scroll::At(pos)
        }
    }

    /// The very first line.
    pub fn home(&mut self, conv: &Conversation, rows: usize) -> Scroll {
        let pos = Pos { cell: 0, line: 0 };
        if conv.cells().is_empty() || self.lines_from(conv, pos, rows + 1) <= rows {
            Scroll::Follow
        } else {
            Scroll::At(pos)
        }
    }

    /// Lines from `pos` to the end, counting at most to `limit`.
    fn lines_from(&mut self, conv: &Conversation, pos: Pos, limit: usize) -> usize {
        let mut n = 0;
        for index in pos.cell..conv.cells().len() {
            let h = self.height(conv, index);
            n += if index == pos.cell {
                h.saturating_sub(pos.line)
            } else {
                h
            };
            if n >= limit {
                break;
            }
        }
        n
    }

    fn bottom_top(&mut self, conv: &Conversation, rows: usize) -> Pos {
        let mut remaining = rows;
        for index in (0..conv.cells().len()).rev() {
            let h = self.height(conv, index);
            if h >= remaining {
                return Pos {
                    cell: index,
                    line: h - remaining,
                };
            }
            remaining -= h;
        }
        Pos { cell: 0, line: 0 }
    }

    fn clamp(&mut self, conv: &Conversation, pos: Pos) -> Pos {
        let cells = conv.cells().len();
        if cells == 0 {
            return Pos { cell: 0, line: 0 };
        }
        if pos.cell >= cells {
            return Pos {
                cell: cells - 1,
                line: 0,
            };
        }
        let h = self.height(conv, pos.cell);
        Pos {
            cell: pos.cell,
            line: pos.line.min(h.saturating_sub(1)),
        }
    }

    /// Lines from `printed` on that will not change any more (for the inline mode, which
    /// prints them into the terminal's scrollback once), advancing `printed` past them.
    pub fn take_stable(&mut self, conv: &Conversation, printed: &mut Pos) -> Vec<Line<'static>> {
        let mut out = Vec::new();
        while printed.cell < conv.cells().len() {
            let index = printed.cell;
            let live = conv.cells()[index].kind.is_live();
            let len = self.lines(conv, index).len();
            let stable = if live {
                self.entries[index]
                    .as_ref()
                    .and_then(|e| e.committed)
                    .map_or(0, |(_, n)| n)
            } else {
                len
            };
            let lines = self.lines(conv, index);
            if printed.line < stable {
                out.extend_from_slice(&lines[printed.line..stable]);
                printed.line = stable;
            }
            if live {
                break;
            }
            *printed = Pos {
                cell: index + 1,
                line: 0,
            };
        }
        out
    }

    /// The lines after `printed` (what the inline mode still shows in its viewport).
    pub fn unprinted(&mut self, conv: &Conversation, printed: Pos) -> Vec<Line<'static>> {
        let mut out = Vec::new();
        for index in printed.cell..conv.cells().len() {
            let lines = self.lines(conv, index);
            let from = if index == printed.cell {
                printed.line.min(lines.len())
            } else {
                0
            };
            out.extend_from_slice(&lines[from..]);
        }
        out
    }
}

fn wrap_cell(
    kind: &CellKind,
    rev: u64,
    width: u16,
    toggles: Toggles,
    previous: Option<Entry>,
) -> Entry {
    let mut lines = Vec::new();
    let mut committed = None;
    match kind {
        CellKind::Assistant { text, live: true } => {
            let (done, partial) = cell_view::split_committed(text);
            // Complete source lines render the same whatever follows them, so their
            // lines are reused while only the partial line changes.
            let reusable = previous.and_then(|p| {
                p.committed
                    .filter(|&(len, _)| len == done.len())
                    .map(|(_, n)| (p.lines, n))
            });
            let n = match reusable {
                Some((mut old, n)) => {
                    old.truncate(n);
                    lines = old;
                    n
                }
                None => {
                    cell_view::answer_lines(done, width, &mut lines);
                    lines.len()
                }
            };
            committed = Some((done.len(), n));
            if !partial.is_empty() {
                cell_view::partial_line(partial, width, &mut lines);
            }
        }
        _ => cell_view::cell_lines(kind, width, toggles, &mut lines),
    }
    lines.push(Line::default());
    Entry {
        rev,
        toggles,
        lines,
        committed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use yoi_protocol::{
        Cursor, Event, Frame, Message, Role, Usage, WorkerInfo, WorkerSnapshot, WorkerStatus,
    };

    /// A worker whose transcript is `n` one-line user messages `m0`, `m1`, ...
    fn conversation(n: usize) -> Conversation {
        let worker = WorkerInfo {
            id: "w_1".into(),
            name: "w".into(),
            model: "scripted".into(),
            system_prompt: None,
            tools: Vec::new(),
            max_steps: 8,
            status: WorkerStatus::Idle,
            created_at_ms: 0,
            current_run: None,
            run_count: 0,
            message_count: 0,
            usage: Usage::default(),
            context_tokens: None,
            request_id: None,
        };
        let transcript = (0..n)
            .map(|i| Message {
                role: Role::User,
                content: format!("m{i}"),
                reasoning: None,
                tool_calls: Vec::new(),
                tool_call_id: None,
                is_error: false,
                run_id: format!("r_{i}"),
            })
            .collect();
        let snapshot = WorkerSnapshot {
            worker,
            transcript,
            in_flight: None,
        };
        Conversation::from_snapshot("local", Cursor::new(1, 1), snapshot)
    }

    fn text(lines: &[Line<'_>]) -> Vec<String> {
        lines.iter().map(|l| l.to_string()).collect()
    }

    #[test]
    fn opening_a_long_history_wraps_only_what_is_on_screen() {
        let conv = conversation(10_000);
        let mut layout = Layout::new(40);
        // Each cell is its line and a blank separator: 5 rows show the last 3 cells.
        let lines = layout.visible(&conv, Scroll::Follow, 5);
        assert_eq!(text(&lines), ["", "› m9998", "", "› m9999", ""]);
        assert_eq!(layout.wraps(), 3);
        layout.visible(&conv, Scroll::Follow, 5);
        assert_eq!(layout.wraps(), 3, "cached");
    }

    #[test]
    fn scrolling_moves_through_cells_and_returns_to_following() {
        let conv = conversation(100);
        let mut layout = Layout::new(40);
        let up = layout.scroll(&conv, Scroll::Follow, -3, 4);
        assert_eq!(up, Scroll::At(Pos { cell: 96, line: 1 }));
        assert_eq!(
            text(&layout.visible(&conv, up, 4)),
            ["", "› m97", "", "› m98"]
        );
        let wraps = layout.wraps();
        let home = layout.home(&conv, 4);
        assert_eq!(
            text(&layout.visible(&conv, home, 4)),
            ["› m0", "", "› m1", ""]
        );
        // The cells shown, and the next one to know the view is not at the bottom.
        assert_eq!(layout.wraps(), wraps + 3);
        assert_eq!(
            layout.scroll(&conv, home, -10, 4),
            home,
            "the top stays the top"
        );
        let down = layout.scroll(&conv, up, 2, 4);
        assert_eq!(down, Scroll::At(Pos { cell: 97, line: 1 }));
        assert_eq!(
            layout.scroll(&conv, down, 1, 4),
            Scroll::Follow,
            "the bottom follows"
        );
    }

    #[test]
    fn new_output_re_wraps_only_its_cell_and_keeps_a_scrolled_view() {
        let mut conv = conversation(50);
        let mut layout = Layout::new(40);
        let up = layout.scroll(&conv, Scroll::Follow, -20, 4);
        let before = text(&layout.visible(&conv, up, 4));
        layout.visible(&conv, Scroll::Follow, 4);
        let wraps = layout.wraps();
        conv.apply(Frame::Event {
            cursor: Cursor::new(1, 2),
            seq: 2,
            runtime_id: "local".into(),
            worker_id: Some("w_1".into()),
            at_ms: 0,
            event: Event::InputAccepted {
                run_id: "r_x".into(),
                text: "new".into(),
                request_id: None,
            },
        });
        assert_eq!(
            text(&layout.visible(&conv, up, 4)),
            before,
            "the reader stays put"
        );
        assert_eq!(
            text(&layout.visible(&conv, Scroll::Follow, 2)),
            ["› new", ""],
            "following shows it"
        );
        assert_eq!(layout.wraps(), wraps + 1);
    }

    #[test]
    fn settled_lines_are_taken_once_and_a_streaming_answer_line_by_line() {
        let mut conv = conversation(2);
        let mut layout = Layout::new(40);
        let mut printed = Pos { cell: 0, line: 0 };
        assert_eq!(
            text(&layout.take_stable(&conv, &mut printed)),
            ["› m0", "", "› m1", ""]
        );
        assert!(layout.take_stable(&conv, &mut printed).is_empty());
        let mut seq = 1;
        let mut event = |conv: &mut Conversation, event: Event| {
            seq += 1;
            conv.apply(Frame::Event {
                cursor: Cursor::new(1, seq),
                seq,
                runtime_id: "local".into(),
                worker_id: Some("w_1".into()),
                at_ms: 0,
                event,
            });
        };
        let run = || "r_9".to_string();
        event(&mut conv, Event::RunStarted { run_id: run() });
        for part in ["first li", "ne\nsecond", " line\nthi"] {
            event(
                &mut conv,
                Event::TextDelta {
                    run_id: run(),
                    text: part.into(),
                },
            );
        }
        // Complete lines only; the partial "thi" stays in the viewport.
        assert_eq!(
            text(&layout.take_stable(&conv, &mut printed)),
            ["first line", "second line"]
        );
        assert_eq!(text(&layout.unprinted(&conv, printed)), ["thi", ""]);
        event(
            &mut conv,
            Event::RunCompleted {
                run_id: run(),
                stop_reason: yoi_protocol::StopReason::EndTurn,
            },
        );
        assert_eq!(text(&layout.take_stable(&conv, &mut printed)), ["thi", ""]);
    }
}
