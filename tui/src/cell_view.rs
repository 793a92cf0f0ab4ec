//! How each kind of cell looks: a cell to screen lines at a width.

use ratatui::style::Style;
use ratatui::text::{Line, Span};

use crate::cells::{CellKind, NoticeLevel, ToolCell, ToolState};
use crate::markdown;
use crate::theme;
use crate::wrap::{Breaks, Para};

/// Tool output lines shown while output is folded.
pub const TOOL_FOLD_LINES: usize = 8;
/// Arguments shorter than this stay on the tool's header line.
const INLINE_ARGS: usize = 60;

/// What the user chose to see in full.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Toggles {
    /// Finished reasoning in full instead of one line.
    pub reasoning: bool,
    /// Tool output in full instead of its first lines.
    pub tool_output: bool,
}

impl Toggles {
    /// The part of the toggles `kind` depends on (so a toggle re-wraps only those cells).
    pub fn relevant_to(self, kind: &CellKind) -> Toggles {
        match kind {
            CellKind::Reasoning { .. } => Toggles {
                reasoning: self.reasoning,
                tool_output: false,
            },
            CellKind::Tool(_) => Toggles {
                reasoning: false,
                tool_output: self.tool_output,
            },
            _ => Toggles::default(),
        }
    }
}

/// Appends the lines of `kind` at `width` to `out`, without the blank line that
/// separates cells. Live answers are drawn by [`answer_lines`] in two parts instead.
pub fn cell_lines(kind: &CellKind, width: u16, toggles: Toggles, out: &mut Vec<Line<'static>>) {
    match kind {
        CellKind::User { text } => user_lines(text, width, out),
        CellKind::Reasoning { text, live } => reasoning_lines(text, *live, toggles, width, out),
        CellKind::Assistant { text, .. } => answer_lines(text, width, out),
        CellKind::Tool(tool) => tool_lines(tool, toggles, width, out),
        CellKind::Notice { level, text } => notice_lines(*level, text, width, out),
    }
}

/// Markdown of an answer (or of its committed part while it streams).
pub fn answer_lines(text: &str, width: u16, out: &mut Vec<Line<'static>>) {
    for para in markdown::render(text) {
        para.wrap_into(width, out);
    }
}

/// The partial last line of a streaming answer, as plain text.
pub fn partial_line(text: &str, width: u16, out: &mut Vec<Line<'static>>) {
    Para::text(vec![Span::raw(text.to_string())]).wrap_into(width, out);
}

/// Splits a streaming answer into its complete lines and the partial last one.
pub fn split_committed(text: &str) -> (&str, &str) {
    match text.rfind('\n') {
        Some(i) => text.split_at(i + 1),
        None => ("", text),
    }
}

fn user_lines(text: &str, width: u16, out: &mut Vec<Line<'static>>) {
    for (i, line) in text.split('\n').enumerate() {
        let first = if i == 0 {
            Span::styled("› ", theme::user())
        } else {
            Span::raw("  ")
        };
        Para {
            first: vec![first],
            rest: vec![Span::raw("  ")],
            body: vec![Span::styled(line.to_string(), theme::user_text())],
            breaks: Some(Breaks::Words),
        }
        .wrap_into(width, out);
    }
}

fn reasoning_lines(
    text: &str,
    live: bool,
    toggles: Toggles,
    width: u16,
    out: &mut Vec<Line<'static>>,
) {
    let words = text.split_whitespace().count();
    let what = if live { "thinking" } else { "thought" };
    let plural = if words == 1 { "word" } else { "words" };
    out.push(Line::from(vec![Span::styled(
        format!("∴ {what} · {words} {plural}"),
        theme::reasoning(),
    )]));
    if live || toggles.reasoning {
        for line in text.trim_end().split('\n') {
            Para::prefixed(
                vec![Span::raw("  ")],
                vec![Span::styled(line.to_string(), theme::reasoning())],
            )
            .wrap_into(width, out);
        }
    }
}

fn tool_lines(tool: &ToolCell, toggles: Toggles, width: u16, out: &mut Vec<Line<'static>>) {
    let args = compact_json(&tool.arguments);
    let args_inline = args.chars().count() <= INLINE_ARGS && !args.contains('\n');
    let mut header = vec![
        Span::styled("⚙ ", theme::tool()),
        Span::styled(tool.name.clone(), theme::tool()),
    ];
    if args_inline && !args.is_empty() {
        header.push(Span::styled(format!(" {args}"), theme::dim()));
    }
    header.push(match &tool.state {
        ToolState::Streaming => Span::styled(" …", theme::dim()),
        ToolState::Running => Span::styled(" ⋯ running", theme::warn()),
        ToolState::Done {
            is_error: false, ..
        } => Span::styled(" ✓", theme::ok()),
        ToolState::Done { is_error: true, .. } => Span::styled(" ✗ error", theme::error_bold()),
        ToolState::NoResult => Span::styled(" — no result", theme::dim()),
    });
    Para {
        first: Vec::new(),
        rest: vec![Span::raw("  ")],
        body: header,
        breaks: Some(Breaks::Chars),
    }
    .wrap_into(width, out);
    if !args_inline {
        folded(&args, theme::dim(), toggles.tool_output, width, out);
    }
    if let ToolState::Done { output, is_error } = &tool.state {
        let style = if *is_error {
            theme::error()
        } else {
            Style::new()
        };
        let output = output.trim_end();
        if !output.is_empty() {
            folded(output, style, toggles.tool_output, width, out);
        }
    }
}

/// `text` indented under a tool's header, cut to its first lines unless `full`.
fn folded(text: &str, style: Style, full: bool, width: u16, out: &mut Vec<Line<'static>>) {
    let total = text.split('\n').count();
    let shown = if full {
        total
    } else {
        total.min(TOOL_FOLD_LINES)
    };
    for line in text.split('\n').take(shown) {
        Para::prefixed(
            vec![Span::styled("  │ ", theme::dim())],
            vec![Span::styled(line.to_string(), style)],
        )
        .breaking(Breaks::Chars)
        .wrap_into(width, out);
    }
    if shown < total {
        let more = total - shown;
        out.push(Line::from(Span::styled(
            format!(
                "  … {more} more line{} (ctrl+o shows all)",
                if more == 1 { "" } else { "s" }
            ),
            theme::dim(),
        )));
    }
}

/// Arguments as one line of JSON when they parse, else as they came (still streaming).
fn compact_json(text: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(value) => value.to_string(),
        Err(_) => text.to_string(),
    }
}

fn notice_lines(level: NoticeLevel, text: &str, width: u16, out: &mut Vec<Line<'static>>) {
    let (mark, style) = match level {
        NoticeLevel::Info => ("· ", theme::dim()),
        NoticeLevel::Warn => ("! ", theme::warn()),
        NoticeLevel::Error => ("✗ ", theme::error()),
    };
    Para {
        first: vec![Span::styled(mark, style)],
        rest: vec![Span::raw("  ")],
        body: vec![Span::styled(text.to_string(), style)],
        breaks: Some(Breaks::Words),
    }
    .wrap_into(width, out);
}
