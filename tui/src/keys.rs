//! What each key does, per screen (called by `update`), and the key list of the help.
//!
//! Newline is Shift+Enter where the terminal reports it (terminals with the kitty
//! keyboard protocol: kitty, foot, WezTerm, Ghostty, recent Alacritty and iTerm2), and
//! Alt+Enter or Ctrl+J everywhere.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use yoi_protocol::Input;

use crate::app::{App, Overlay, Screen};
use crate::cell_view::Toggles;
use crate::layout::Scroll;
use crate::msg::{Cmd, WorkerCommand};
use crate::picker::{CreateForm, Focus, Loadable};
use crate::update::open_worker;

/// The console's keys as the help overlay lists them.
pub const CONSOLE_KEYS: &[(&str, &str)] = &[
    ("Enter", "send the message"),
    ("Shift+Enter, Alt+Enter, Ctrl+J", "new line"),
    ("Up / Down", "previous / next line, or message history"),
    ("Esc, Ctrl+C", "cancel the run in flight"),
    (
        "Ctrl+C (no run)",
        "clear the message; quit when it is empty",
    ),
    ("Ctrl+X", "stop the worker (asks first)"),
    ("PageUp / PageDown", "scroll a page"),
    ("Shift+Up / Shift+Down", "scroll a line"),
    ("Ctrl+Home / Ctrl+End", "top / back to live output"),
    ("Ctrl+R", "show or fold reasoning"),
    ("Ctrl+O", "show or fold tool output"),
    ("Ctrl+W", "switch worker"),
    ("Ctrl+Q, Ctrl+D (empty)", "quit"),
    ("? (empty message), F1", "this help"),
];

/// The picker's keys as the help overlay lists them.
pub const PICKER_KEYS: &[(&str, &str)] = &[
    ("Up / Down", "select"),
    ("Enter", "open the runtime / worker"),
    ("n", "new worker"),
    ("r", "refresh"),
    ("Esc", "back"),
    (
        "Tab, Left / Right, Space",
        "in the form: next field, model, tool on or off",
    ),
    ("q, Ctrl+C", "quit"),
];

fn ctrl(key: &KeyEvent) -> bool {
    key.modifiers.contains(KeyModifiers::CONTROL)
}

pub(crate) fn on_key(app: &mut App, key: KeyEvent, cmds: &mut Vec<Cmd>) {
    if key.kind == KeyEventKind::Release {
        return;
    }
    if ctrl(&key) && key.code == KeyCode::Char('q') {
        app.quit = true;
        return;
    }
    if let Some(overlay) = app.overlay {
        on_overlay_key(app, overlay, key, cmds);
        return;
    }
    if key.code == KeyCode::F(1) {
        app.overlay = Some(Overlay::Help);
        return;
    }
    match app.screen {
        Screen::Console => on_console_key(app, key, cmds),
        Screen::Picker if app.picker.focus == Focus::Form => on_form_key(app, key, cmds),
        Screen::Picker => on_picker_key(app, key, cmds),
    }
}

pub(crate) fn on_paste(app: &mut App, text: &str) {
    match app.screen {
        Screen::Console if app.overlay.is_none() => {
            if let Some(console) = &mut app.console {
                console.composer.insert_str(text);
            }
        }
        Screen::Picker => {
            if let Some(form) = &mut app.picker.form
                && form.row == 0
            {
                form.name.extend(text.chars().filter(|c| !c.is_control()));
            }
        }
        Screen::Console => {}
    }
}

fn on_overlay_key(app: &mut App, overlay: Overlay, key: KeyEvent, cmds: &mut Vec<Cmd>) {
    match overlay {
        Overlay::Help => app.overlay = None,
        Overlay::ConfirmStop => match key.code {
            KeyCode::Char('y' | 'Y') | KeyCode::Enter => {
                app.overlay = None;
                if let Some(console) = &app.console {
                    cmds.push(Cmd::Worker {
                        runtime_id: console.runtime_id.clone(),
                        worker_id: console.worker_id.clone(),
                        command: WorkerCommand::Stop,
                    });
                }
            }
            KeyCode::Char('n' | 'N') | KeyCode::Esc => app.overlay = None,
            KeyCode::Char('c') if ctrl(&key) => app.overlay = None,
            _ => {}
        },
    }
}

fn on_console_key(app: &mut App, key: KeyEvent, cmds: &mut Vec<Cmd>) {
    let Some(console) = &mut app.console else {
        app.screen = Screen::Picker;
        return;
    };
    let running = console.running();
    let shift = key.modifiers.contains(KeyModifiers::SHIFT);
    let alt = key.modifiers.contains(KeyModifiers::ALT);
    let page = usize::from(console.rows.max(2) - 1);
    let scroll_by = |console: &mut crate::app::Console, delta: isize| {
        if let Some(conv) = &console.conv {
            console.scroll =
                console
                    .layout
                    .scroll(conv, console.scroll, delta, usize::from(console.rows));
        }
    };
    match key.code {
        KeyCode::Enter if shift || alt => console.composer.insert('\n'),
        KeyCode::Char('j') if ctrl(&key) => console.composer.insert('\n'),
        KeyCode::Enter => {
            let text = console.composer.text().to_string();
            if text.trim().is_empty() || console.sending.is_some() {
                return;
            }
            app.next_request += 1;
            let request_id = format!("{}-{}", app.options.session, app.next_request);
            console.sending = Some(text.clone());
            cmds.push(Cmd::Worker {
                runtime_id: console.runtime_id.clone(),
                worker_id: console.worker_id.clone(),
                command: WorkerCommand::Send(Input {
                    text,
                    request_id: Some(request_id),
                }),
            });
        }
        KeyCode::Esc if running => cancel(console, cmds),
        KeyCode::Esc => {}
        KeyCode::Char('c') if ctrl(&key) => {
            if running {
                cancel(console, cmds);
            } else if !console.composer.is_empty() {
                console.composer.clear();
            } else {
                app.quit = true;
            }
        }
        KeyCode::Char('d') if ctrl(&key) => {
            if console.composer.is_empty() {
                app.quit = true;
            } else {
                console.composer.delete();
            }
        }
        KeyCode::Char('x') if ctrl(&key) => app.overlay = Some(crate::app::Overlay::ConfirmStop),
        KeyCode::Char('r') if ctrl(&key) => {
            let t = console.layout.toggles();
            console.layout.set_toggles(Toggles {
                reasoning: !t.reasoning,
                ..t
            });
        }
        KeyCode::Char('o') if ctrl(&key) => {
            let t = console.layout.toggles();
            console.layout.set_toggles(Toggles {
                tool_output: !t.tool_output,
                ..t
            });
        }
        KeyCode::Char('w') if ctrl(&key) => {
            app.screen = Screen::Picker;
            app.picker.focus = Focus::Workers;
            // Counts and statuses changed since the picker was last shown.
            cmds.push(Cmd::LoadRuntimes);
            if let Some(runtime_id) = app.picker.runtime.clone() {
                cmds.push(Cmd::LoadWorkers { runtime_id });
            }
        }
        KeyCode::Char('u') if ctrl(&key) => console.composer.kill_to_line_start(),
        KeyCode::Char('a') if ctrl(&key) => console.composer.home(),
        KeyCode::Char('e') if ctrl(&key) => console.composer.end(),
        KeyCode::Char('?') if console.composer.is_empty() => app.overlay = Some(Overlay::Help),
        KeyCode::Char(c) if !ctrl(&key) => console.composer.insert(c),
        KeyCode::Tab => console.composer.insert('\t'),
        KeyCode::Backspace => console.composer.backspace(),
        KeyCode::Delete => console.composer.delete(),
        KeyCode::Left => console.composer.left(),
        KeyCode::Right => console.composer.right(),
        KeyCode::Home if ctrl(&key) => {
            if let Some(conv) = &console.conv {
                console.scroll = console.layout.home(conv, usize::from(console.rows));
            }
        }
        KeyCode::End if ctrl(&key) => console.scroll = Scroll::Follow,
        KeyCode::Home => console.composer.home(),
        KeyCode::End => console.composer.end(),
        KeyCode::Up if shift || ctrl(&key) => scroll_by(console, -1),
        KeyCode::Down if shift || ctrl(&key) => scroll_by(console, 1),
        KeyCode::Up => console.composer.up(),
        KeyCode::Down => console.composer.down(),
        KeyCode::PageUp => scroll_by(console, -(page as isize)),
        KeyCode::PageDown => scroll_by(console, page as isize),
        _ => {}
    }
}

fn cancel(console: &crate::app::Console, cmds: &mut Vec<Cmd>) {
    cmds.push(Cmd::Worker {
        runtime_id: console.runtime_id.clone(),
        worker_id: console.worker_id.clone(),
        command: WorkerCommand::Cancel,
    });
}

fn on_picker_key(app: &mut App, key: KeyEvent, cmds: &mut Vec<Cmd>) {
    match key.code {
        KeyCode::Char('c') if ctrl(&key) => app.quit = true,
        KeyCode::Char('q') => app.quit = true,
        KeyCode::Char('?') => app.overlay = Some(Overlay::Help),
        KeyCode::Up | KeyCode::Char('k') => app.picker.move_selection(false),
        KeyCode::Down | KeyCode::Char('j') => app.picker.move_selection(true),
        KeyCode::Char('r') => {
            app.flash = None;
            cmds.push(Cmd::LoadRuntimes);
            if let Some(runtime_id) = app.picker.runtime.clone() {
                cmds.push(Cmd::LoadWorkers { runtime_id });
            }
        }
        KeyCode::Enter | KeyCode::Right | KeyCode::Char('l') => match app.picker.focus {
            Focus::Runtimes => enter_runtime(app, cmds),
            Focus::Workers => match app.picker.selected_worker() {
                Some(worker) => {
                    let worker_id = worker.id.clone();
                    if let Some(runtime_id) = app.picker.runtime.clone() {
                        open_worker(app, runtime_id, worker_id, cmds);
                    }
                }
                None if key.code == KeyCode::Enter => open_form(app),
                None => {}
            },
            Focus::Form => {}
        },
        KeyCode::Char('n') if app.picker.focus == Focus::Workers => open_form(app),
        KeyCode::Esc | KeyCode::Left | KeyCode::Char('h') | KeyCode::Backspace => {
            match app.picker.focus {
                Focus::Workers => app.picker.focus = Focus::Runtimes,
                Focus::Runtimes | Focus::Form => {
                    if app.console.is_some() {
                        app.screen = Screen::Console;
                    }
                }
            }
        }
        _ => {}
    }
}

/// Lists the workers of the selected runtime.
pub(crate) fn enter_runtime(app: &mut App, cmds: &mut Vec<Cmd>) {
    let Some(runtime) = app.picker.selected_runtime() else {
        return;
    };
    let runtime_id = runtime.id.clone();
    if app.picker.runtime.as_deref() != Some(&runtime_id) {
        app.picker.workers = Loadable::Loading;
        app.picker.worker_sel = 0;
    }
    app.picker.runtime = Some(runtime_id.clone());
    app.picker.focus = Focus::Workers;
    cmds.push(Cmd::LoadWorkers { runtime_id });
}

fn open_form(app: &mut App) {
    let Some(runtime) = app.picker.current_runtime() else {
        return;
    };
    let name = format!("worker-{}", app.picker.workers().len() + 1);
    app.picker.form = Some(CreateForm::new(runtime, name));
    app.picker.focus = Focus::Form;
}

fn on_form_key(app: &mut App, key: KeyEvent, cmds: &mut Vec<Cmd>) {
    let Some(form) = &mut app.picker.form else {
        app.picker.focus = Focus::Workers;
        return;
    };
    if form.submitting {
        if key.code == KeyCode::Esc {
            app.picker.form = None;
            app.picker.focus = Focus::Workers;
        }
        return;
    }
    match key.code {
        KeyCode::Esc => {
            app.picker.form = None;
            app.picker.focus = Focus::Workers;
        }
        KeyCode::Char('c') if ctrl(&key) => app.quit = true,
        KeyCode::Tab | KeyCode::Down => form.next_row(false),
        KeyCode::BackTab | KeyCode::Up => form.next_row(true),
        KeyCode::Left if form.row == 1 => form.cycle_model(true),
        KeyCode::Right if form.row == 1 => form.cycle_model(false),
        KeyCode::Char(' ') if form.row >= 2 => form.toggle_tool(),
        KeyCode::Enter => match form.spec() {
            Ok(spec) => {
                form.submitting = true;
                form.error = None;
                cmds.push(Cmd::CreateWorker {
                    runtime_id: form.runtime_id.clone(),
                    spec,
                });
            }
            Err(why) => {
                form.error = Some(crate::msg::Failure::new(
                    Some(yoi_protocol::ErrorCode::InvalidRequest),
                    why,
                ));
            }
        },
        KeyCode::Backspace if form.row == 0 => {
            form.name.pop();
        }
        KeyCode::Char(c) if form.row == 0 && !ctrl(&key) => form.name.push(c),
        _ => {}
    }
}
