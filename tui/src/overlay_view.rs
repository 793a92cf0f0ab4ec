//! Boxes over the screen: the help and the stop confirmation.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use crate::app::{Console, Screen};
use crate::keys::{CONSOLE_KEYS, PICKER_KEYS};
use crate::theme;

/// A `width` x `height` box in the middle of `area` (smaller if `area` is).
pub fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let width = width.min(area.width);
    let height = height.min(area.height);
    Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    }
}

pub fn help(screen: Screen, frame: &mut Frame<'_>, area: Rect) {
    let keys = match screen {
        Screen::Console => CONSOLE_KEYS,
        Screen::Picker => PICKER_KEYS,
    };
    let key_width = keys
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    let mut lines: Vec<Line<'static>> = keys
        .iter()
        .map(|(key, what)| {
            Line::from(vec![
                Span::styled(format!("{key:<key_width$}  "), theme::title()),
                Span::raw(*what),
            ])
        })
        .collect();
    lines.push(Line::default());
    lines.push(Line::from(Span::styled(
        "any key closes this help",
        theme::dim(),
    )));
    let width = u16::try_from(key_width + 60).unwrap_or(u16::MAX);
    let height = u16::try_from(lines.len() + 2).unwrap_or(u16::MAX);
    let popup = centered(area, width, height);
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(Block::default().borders(Borders::ALL).title(" keys ")),
        popup,
    );
}

pub fn confirm_stop(console: &Console, frame: &mut Frame<'_>, area: Rect) {
    let name = console
        .conv
        .as_ref()
        .map_or(console.worker_id.clone(), |c| {
            format!("{} ({})", c.worker().name, c.worker().id)
        });
    let lines = vec![
        Line::from(format!("Stop worker {name}?")),
        Line::from(Span::styled(
            "A stopped worker keeps its transcript but takes no more input.",
            theme::dim(),
        )),
        Line::default(),
        Line::from(vec![
            Span::styled("y", theme::error_bold()),
            Span::raw(" stop   "),
            Span::styled("n", theme::title()),
            Span::raw(" keep it"),
        ]),
    ];
    let popup = centered(area, 64, 6);
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: false }).block(
            Block::default()
                .borders(Borders::ALL)
                .title(" stop the worker "),
        ),
        popup,
    );
}
