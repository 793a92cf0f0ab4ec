//! The terminal: entering and always leaving raw mode (also on panic), the alternate
//! screen or the inline viewport, and drawing (in the inline mode, settled lines first
//! go into the terminal's scrollback).

use std::io::{self, Stdout, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use crossterm::event::{
    DisableBracketedPaste, EnableBracketedPaste, KeyboardEnhancementFlags,
    PopKeyboardEnhancementFlags, PushKeyboardEnhancementFlags,
};
use crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use crossterm::{cursor, execute};
use ratatui::backend::CrosstermBackend;
use ratatui::widgets::{Paragraph, Widget};
use ratatui::{Terminal, TerminalOptions, Viewport};

use crate::app::{App, Screen};
use crate::view::view;

/// Rows of the inline viewport (at most the terminal's height).
const INLINE_ROWS: u16 = 14;
/// Lines handed to the terminal per scrollback insert.
const INSERT_CHUNK: usize = 256;

/// Whether the terminal is in our modes, so restoring happens exactly once.
static ACTIVE: AtomicBool = AtomicBool::new(false);
static ALTERNATE: AtomicBool = AtomicBool::new(false);

/// The terminal while the client runs; dropping it restores the terminal.
pub struct Term {
    terminal: Terminal<CrosstermBackend<Stdout>>,
    inline: bool,
}

impl Term {
    /// Raw mode, bracketed paste, the kitty keyboard protocol where the terminal has it
    /// (so Shift+Enter can be told from Enter), and the alternate screen unless `inline`.
    pub fn enter(inline: bool) -> io::Result<Self> {
        install_panic_hook();
        enable_raw_mode()?;
        ACTIVE.store(true, Ordering::SeqCst);
        let mut stdout = io::stdout();
        let entered = (|| {
            if !inline {
                execute!(stdout, EnterAlternateScreen)?;
                ALTERNATE.store(true, Ordering::SeqCst);
            }
            // Terminals without the protocol ignore the sequence.
            execute!(
                stdout,
                EnableBracketedPaste,
                PushKeyboardEnhancementFlags(KeyboardEnhancementFlags::DISAMBIGUATE_ESCAPE_CODES)
            )?;
            let viewport = if inline {
                let (_, rows) = crossterm::terminal::size()?;
                Viewport::Inline(INLINE_ROWS.min(rows))
            } else {
                Viewport::Fullscreen
            };
            Terminal::with_options(
                CrosstermBackend::new(io::stdout()),
                TerminalOptions { viewport },
            )
        })();
        match entered {
            Ok(terminal) => Ok(Term { terminal, inline }),
            Err(e) => {
                restore();
                Err(e)
            }
        }
    }

    /// Draws the state; in the inline mode first prints what settled into the scrollback.
    pub fn draw(&mut self, app: &mut App) -> io::Result<()> {
        if self.inline && app.screen == Screen::Console {
            self.print_settled(app)?;
        }
        self.terminal.draw(|frame| view(app, frame))?;
        Ok(())
    }

    fn print_settled(&mut self, app: &mut App) -> io::Result<()> {
        let width = self.terminal.size()?.width;
        let Some(console) = app.console.as_mut() else {
            return Ok(());
        };
        let Some(conv) = &console.conv else {
            return Ok(());
        };
        console.layout.set_width(width);
        let lines = console.layout.take_stable(conv, &mut console.printed);
        for chunk in lines.chunks(INSERT_CHUNK) {
            let height = u16::try_from(chunk.len()).unwrap_or(u16::MAX);
            let chunk = chunk.to_vec();
            self.terminal.insert_before(height, |buf| {
                Paragraph::new(chunk).render(buf.area, buf);
            })?;
        }
        Ok(())
    }

    /// Leaves the terminal as it was (the inline viewport is cleared first).
    pub fn leave(mut self) -> io::Result<()> {
        if self.inline {
            // The shell's prompt comes back where the viewport was.
            let top = self.terminal.get_frame().area().y;
            self.terminal.clear()?;
            self.terminal.set_cursor_position((0, top))?;
        }
        drop(self);
        Ok(())
    }
}

impl Drop for Term {
    fn drop(&mut self) {
        restore();
    }
}

/// Undoes [`Term::enter`]; safe to call more than once and from the panic hook.
fn restore() {
    if !ACTIVE.swap(false, Ordering::SeqCst) {
        return;
    }
    let mut stdout = io::stdout();
    // Best effort: each step runs even if one before it failed.
    let _ = execute!(stdout, PopKeyboardEnhancementFlags, DisableBracketedPaste);
    if ALTERNATE.swap(false, Ordering::SeqCst) {
        let _ = execute!(stdout, LeaveAlternateScreen);
    }
    let _ = execute!(stdout, cursor::Show);
    let _ = disable_raw_mode();
    let _ = stdout.flush();
}

/// A panic restores the terminal before the message is printed, so it is readable.
fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore();
        previous(info);
    }));
}
