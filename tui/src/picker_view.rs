//! Draws the picker: runtimes, the workers of one, and the new-worker form.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};
use yoi_protocol::WorkerStatus;

use crate::app::App;
use crate::overlay_view::centered;
use crate::picker::{CreateForm, Focus, Loadable};
use crate::theme;

pub fn draw(app: &App, frame: &mut Frame<'_>, area: Rect) {
    let [title, body, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(area);
    frame.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled(" yoi ", theme::title()),
            Span::styled(format!("· {}", app.options.host_label), theme::dim()),
        ])),
        title,
    );
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(35), Constraint::Percentage(65)]).areas(body);
    draw_runtimes(app, frame, left);
    draw_workers(app, frame, right);
    let footer_line = match &app.flash {
        Some(flash) => Line::from(Span::styled(format!(" {flash}"), theme::error())),
        None => Line::from(Span::styled(
            " ↑↓ select · Enter open · n new worker · r refresh · Esc back · ? help · q quit",
            theme::dim(),
        )),
    };
    frame.render_widget(Paragraph::new(footer_line), footer);
    if let Some(form) = &app.picker.form {
        draw_form(form, frame, area);
    }
}

fn block(title: &str, focused: bool) -> Block<'static> {
    let style = if focused {
        theme::title()
    } else {
        theme::dim()
    };
    Block::default()
        .borders(Borders::ALL)
        .border_style(style)
        .title(Span::styled(format!(" {title} "), style))
}

fn state_line<T>(loadable: &Loadable<T>) -> Option<Line<'static>> {
    match loadable {
        Loadable::Loading => Some(Line::from(Span::styled("loading…", theme::dim()))),
        Loadable::Failed(failure) => Some(Line::from(Span::styled(
            failure.to_string(),
            theme::error(),
        ))),
        Loadable::Loaded(_) => None,
    }
}

fn row(selected: bool, spans: Vec<Span<'static>>) -> Line<'static> {
    let marker = if selected { "▸ " } else { "  " };
    let mut all = vec![Span::raw(marker)];
    all.extend(spans);
    let line = Line::from(all);
    if selected {
        line.style(theme::selected())
    } else {
        line
    }
}

fn draw_runtimes(app: &App, frame: &mut Frame<'_>, area: Rect) {
    let picker = &app.picker;
    let focused = picker.focus == Focus::Runtimes;
    let lines: Vec<Line<'static>> = match state_line(&picker.runtimes) {
        Some(line) => vec![line],
        None if picker.runtimes().is_empty() => {
            vec![Line::from(Span::styled(
                "this host serves no runtime",
                theme::dim(),
            ))]
        }
        None => picker
            .runtimes()
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let state_style = if r.state == "ready" {
                    theme::ok()
                } else {
                    theme::warn()
                };
                row(
                    focused && i == picker.runtime_sel,
                    vec![
                        Span::styled(r.id.clone(), theme::title()),
                        Span::raw("  "),
                        Span::styled(r.state.clone(), state_style),
                        Span::styled(
                            format!(
                                " · {} worker{} · {}",
                                r.workers,
                                if r.workers == 1 { "" } else { "s" },
                                r.kind
                            ),
                            theme::dim(),
                        ),
                    ],
                )
            })
            .collect(),
    };
    let wrap = !matches!(picker.runtimes, Loadable::Loaded(_));
    frame.render_widget(
        list(scrolled(lines, picker.runtime_sel, area), wrap).block(block("runtimes", focused)),
        area,
    );
}

fn draw_workers(app: &App, frame: &mut Frame<'_>, area: Rect) {
    let picker = &app.picker;
    let focused = picker.focus == Focus::Workers;
    let title = match &picker.runtime {
        Some(id) => format!("workers of {id}"),
        None => "workers".to_string(),
    };
    let lines: Vec<Line<'static>> = if picker.runtime.is_none() {
        vec![Line::from(Span::styled("pick a runtime", theme::dim()))]
    } else if let Some(line) = state_line(&picker.workers) {
        vec![line]
    } else {
        let mut lines: Vec<Line<'static>> = picker
            .workers()
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let status_style = match w.status {
                    WorkerStatus::Idle => theme::ok(),
                    WorkerStatus::Running => theme::warn(),
                    WorkerStatus::Stopped => theme::dim(),
                };
                row(
                    focused && i == picker.worker_sel,
                    vec![
                        Span::styled(w.name.clone(), theme::title()),
                        Span::styled(format!("  {}  ", w.model), Style::new()),
                        Span::styled(w.status.as_str(), status_style),
                        Span::styled(
                            format!("  {} · {} messages", w.id, w.message_count),
                            theme::dim(),
                        ),
                    ],
                )
            })
            .collect();
        lines.push(row(
            focused && picker.worker_sel == picker.workers().len(),
            vec![Span::styled("+ new worker", theme::ok())],
        ));
        lines
    };
    let wrap = !matches!(picker.workers, Loadable::Loaded(_));
    frame.render_widget(
        list(scrolled(lines, picker.worker_sel, area), wrap).block(block(&title, focused)),
        area,
    );
}

/// A list's rows; `wrap` for a message (loading, an error) instead of rows.
fn list(lines: Vec<Line<'static>>, wrap: bool) -> Paragraph<'static> {
    let paragraph = Paragraph::new(lines);
    if wrap {
        paragraph.wrap(Wrap { trim: false })
    } else {
        paragraph
    }
}

/// The rows of a list around the selected one, so it stays in view.
fn scrolled(mut lines: Vec<Line<'static>>, selected: usize, area: Rect) -> Vec<Line<'static>> {
    let rows = usize::from(area.height.saturating_sub(2)).max(1);
    let first = (selected + 1).saturating_sub(rows);
    lines.drain(..first.min(lines.len()));
    lines
}

fn draw_form(form: &CreateForm, frame: &mut Frame<'_>, area: Rect) {
    // The rows, a blank line, the hint, the borders.
    let height = u16::try_from(form.rows() + 4).unwrap_or(u16::MAX);
    let popup = centered(area, 70, height);
    frame.render_widget(Clear, popup);
    let field = |index: usize, label: &str, value: Vec<Span<'static>>| {
        let mut spans = vec![Span::styled(format!("{label:<7}"), theme::dim())];
        spans.extend(value);
        row(form.row == index, spans)
    };
    let model = form
        .models
        .get(form.model)
        .cloned()
        .unwrap_or_else(|| "(none)".into());
    let mut lines = vec![
        field(0, "name", vec![Span::raw(form.name.clone())]),
        field(1, "model", vec![Span::raw(format!("◂ {model} ▸"))]),
    ];
    for (i, (tool, on)) in form.tools.iter().enumerate() {
        let mark = if *on { "[x] " } else { "[ ] " };
        lines.push(field(
            i + 2,
            if i == 0 { "tools" } else { "" },
            vec![Span::raw(format!("{mark}{tool}"))],
        ));
    }
    lines.push(Line::default());
    lines.push(match (&form.error, form.submitting) {
        (_, true) => Line::from(Span::styled("creating…", theme::dim())),
        (Some(failure), _) => Line::from(Span::styled(failure.to_string(), theme::error())),
        (None, _) => Line::from(Span::styled(
            "Tab next field · ◂ ▸ model · Space tool · Enter create · Esc",
            theme::dim(),
        )),
    });
    frame.render_widget(
        Paragraph::new(lines).block(block(&format!("new worker on {}", form.runtime_id), true)),
        popup,
    );
}
