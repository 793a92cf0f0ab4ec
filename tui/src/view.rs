//! `view`: draws the state. It changes nothing but the layout cache and the console's
//! page size (what it drew at), which `update` needs to scroll by pages.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout as Split, Position, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use yoi_protocol::WorkerStatus;

use crate::app::{App, Console, Options, Overlay, Screen};
use crate::layout::Scroll;
use crate::msg::Connection;
use crate::overlay_view;
use crate::picker_view;
use crate::theme;

/// Most rows the composer grows to.
const COMPOSER_ROWS: usize = 6;
const SPINNER: [&str; 4] = ["◐", "◓", "◑", "◒"];

/// Draws the whole screen (or, in the inline mode, the viewport).
pub fn view(app: &mut App, frame: &mut Frame<'_>) {
    let area = frame.area();
    match app.screen {
        Screen::Picker => picker_view::draw(app, frame, area),
        Screen::Console => match app.console.as_mut() {
            Some(console) => draw_console(console, &app.options, app.tick, frame, area),
            None => picker_view::draw(app, frame, area),
        },
    }
    match app.overlay {
        Some(Overlay::Help) => overlay_view::help(app.screen, frame, area),
        Some(Overlay::ConfirmStop) => {
            if let Some(console) = &app.console {
                overlay_view::confirm_stop(console, frame, area);
            }
        }
        None => {}
    }
}

fn draw_console(
    console: &mut Console,
    options: &Options,
    tick: u64,
    frame: &mut Frame<'_>,
    area: Rect,
) {
    let composer = console.composer.view(area.width.saturating_sub(2));
    let composer_rows = composer.rows.len().clamp(1, COMPOSER_ROWS) as u16;
    let [history, status, input] = Split::vertical([
        Constraint::Min(0),
        Constraint::Length(1),
        Constraint::Length(composer_rows),
    ])
    .areas(area);
    draw_history(console, options.inline, frame, history);
    frame.render_widget(
        Paragraph::new(status_line(console, options.direct, tick)).style(theme::status_bar()),
        status,
    );

    // The composer: a prompt, the rows around the cursor, or a hint when empty.
    let first = usize::from(composer.cursor.0).saturating_sub(COMPOSER_ROWS - 1);
    let stopped = console
        .conv
        .as_ref()
        .is_some_and(|c| c.worker().status == WorkerStatus::Stopped);
    let lines: Vec<Line<'_>> = if console.composer.is_empty() {
        let hint = if stopped {
            "the worker is stopped · Ctrl+W picks another"
        } else {
            "message · Enter sends · Shift+Enter new line · ? help"
        };
        vec![Line::from(vec![
            Span::styled("❯ ", theme::user()),
            Span::styled(hint, theme::dim()),
        ])]
    } else {
        composer
            .rows
            .iter()
            .enumerate()
            .skip(first)
            .take(COMPOSER_ROWS)
            .map(|(i, row)| {
                let prompt = if i == 0 { "❯ " } else { "  " };
                Line::from(vec![
                    Span::styled(prompt, theme::user()),
                    Span::raw(row.clone()),
                ])
            })
            .collect()
    };
    frame.render_widget(Paragraph::new(lines), input);
    let row = u16::try_from(usize::from(composer.cursor.0) - first).unwrap_or(0);
    frame.set_cursor_position(Position::new(
        input.x + 2 + composer.cursor.1,
        input.y + row.min(input.height.saturating_sub(1)),
    ));
}

fn draw_history(console: &mut Console, inline: bool, frame: &mut Frame<'_>, area: Rect) {
    console.rows = area.height;
    console.layout.set_width(area.width);
    let Some(conv) = &console.conv else {
        frame.render_widget(
            Paragraph::new(Span::styled("loading the worker…", theme::dim())),
            area,
        );
        return;
    };
    let rows = usize::from(area.height);
    let lines = if inline {
        let mut lines = console.layout.unprinted(conv, console.printed);
        let extra = lines.len().saturating_sub(rows);
        lines.drain(..extra);
        lines
    } else {
        console.layout.visible(conv, console.scroll, rows)
    };
    frame.render_widget(Paragraph::new(lines), area);
}

fn status_line(console: &Console, direct: bool, tick: u64) -> Line<'static> {
    let mut spans = Vec::new();
    let sep = || Span::styled(" │ ", theme::status_bar());
    if direct {
        spans.push(Span::styled(
            " DIRECT (debug, no host)",
            theme::error_bold(),
        ));
        spans.push(sep());
    }
    spans.push(match &console.connection {
        Connection::Connecting => Span::styled(" ◌ connecting", theme::warn()),
        Connection::Connected => Span::styled(" ● connected", theme::ok()),
        Connection::Reconnecting { attempt, .. } => Span::styled(
            format!(" ↻ reconnecting (attempt {attempt})"),
            theme::warn(),
        ),
        Connection::Offline(failure) => {
            Span::styled(format!(" ✗ offline · {failure}"), theme::error_bold())
        }
    });
    spans.push(sep());
    let Some(conv) = &console.conv else {
        spans.push(Span::raw(format!(
            "{} / {}",
            console.runtime_id, console.worker_id
        )));
        return Line::from(spans);
    };
    let worker = conv.worker();
    spans.push(Span::raw(format!(
        "{} / {} ({})",
        conv.runtime_id(),
        worker.name,
        worker.id
    )));
    spans.push(sep());
    match (conv.run(), worker.status) {
        (Some(run), _) => {
            let spin = SPINNER[(tick % SPINNER.len() as u64) as usize];
            spans.push(Span::styled(
                format!("{spin} running {} · step {}", run.id, run.step),
                theme::warn(),
            ));
        }
        (None, WorkerStatus::Stopped) => spans.push(Span::styled("■ stopped", theme::error())),
        (None, status) => spans.push(Span::raw(status.as_str().to_string())),
    }
    if console.sending.is_some() {
        spans.push(Span::raw(" · sending…"));
    }
    if matches!(console.scroll, Scroll::At(_)) {
        spans.push(sep());
        spans.push(Span::styled("↑ scrolled (Ctrl+End)", theme::warn()));
    }
    spans.push(sep());
    spans.push(Span::raw(format!(
        "tokens {} in · {} out",
        worker.usage.input_tokens, worker.usage.output_tokens
    )));
    // Last, as it can be long: why the connection was lost.
    if let Connection::Reconnecting { reason, .. } = &console.connection {
        spans.push(sep());
        spans.push(Span::styled(reason.clone(), theme::warn()));
    }
    Line::from(spans)
}
