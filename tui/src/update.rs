//! `update`: the one function that changes the state. It does no I/O: what should
//! happen outside (requests, streams, quitting) is returned as commands.

use crate::adapter::{Applied, Conversation};
use crate::app::{App, Console, Screen};
use crate::cells::NoticeLevel;
use crate::keys;
use crate::layout::{Pos, Scroll};
use crate::msg::{Answer, Cmd, Failure, Msg, StreamEvent, StreamId, WorkerCommand};
use crate::picker::{CreateForm, Focus, Loadable};

/// Cells of a worker's history printed into the scrollback when the inline mode opens
/// it (the alternate screen shows all of it).
pub const INLINE_HISTORY_CELLS: usize = 40;

/// Applies `msg` to `app`; returns what the tasks should do.
pub fn update(app: &mut App, msg: Msg) -> Vec<Cmd> {
    let mut cmds = Vec::new();
    match msg {
        Msg::Key(key) => keys::on_key(app, key, &mut cmds),
        Msg::Paste(text) => keys::on_paste(app, &text),
        // The next draw lays out at the new size (and the page size follows).
        Msg::Resize => {}
        Msg::Tick => app.tick = app.tick.wrapping_add(1),
        Msg::Runtimes(result) => on_runtimes(app, result, &mut cmds),
        Msg::Workers { runtime_id, result } => on_workers(app, &runtime_id, result, &mut cmds),
        Msg::WorkerCreated { runtime_id, result } => {
            on_created(app, &runtime_id, result, &mut cmds);
        }
        Msg::Done { command, result } => on_done(app, &command, result),
        Msg::Stream { id, event } => on_stream(app, id, event),
    }
    if app.quit && !cmds.contains(&Cmd::Quit) {
        cmds.push(Cmd::Quit);
    }
    cmds
}

fn on_runtimes(
    app: &mut App,
    result: Result<Vec<yoi_protocol::RuntimeInfo>, Failure>,
    cmds: &mut Vec<Cmd>,
) {
    let runtimes = match result {
        Ok(runtimes) => runtimes,
        Err(failure) => {
            app.picker.runtimes = Loadable::Failed(failure);
            return;
        }
    };
    let wanted = app.wish_runtime.take();
    let index = match &wanted {
        Some(id) => {
            let found = runtimes.iter().position(|r| &r.id == id);
            if found.is_none() {
                app.flash = Some(format!("runtime_not_found: no runtime `{id}` on this host"));
                app.wish_worker = None;
                app.wish_new = None;
            }
            found
        }
        // One runtime: nothing to pick (the first time; later loads are refreshes).
        None if runtimes.len() == 1 && app.picker.runtime.is_none() => Some(0),
        None => None,
    };
    app.picker.runtime_sel = app.picker.runtime_sel.min(runtimes.len().saturating_sub(1));
    app.picker.runtimes = Loadable::Loaded(runtimes);
    if let Some(index) = index {
        app.picker.runtime_sel = index;
        keys::enter_runtime(app, cmds);
    }
}

fn on_workers(
    app: &mut App,
    runtime_id: &str,
    result: Result<Vec<yoi_protocol::WorkerInfo>, Failure>,
    cmds: &mut Vec<Cmd>,
) {
    if app.picker.runtime.as_deref() != Some(runtime_id) {
        return;
    }
    match result {
        Ok(workers) => {
            app.picker.worker_sel = app.picker.worker_sel.min(workers.len());
            if let Some(wanted) = app.wish_worker.take() {
                match workers.iter().find(|w| w.id == wanted || w.name == wanted) {
                    Some(worker) => {
                        let id = worker.id.clone();
                        app.picker.workers = Loadable::Loaded(workers);
                        open_worker(app, runtime_id.to_string(), id, cmds);
                        return;
                    }
                    None => {
                        app.flash = Some(format!(
                            "worker_not_found: no worker `{wanted}` in runtime `{runtime_id}`"
                        ));
                    }
                }
            }
            app.picker.workers = Loadable::Loaded(workers);
            if let Some(name) = app.wish_new.take()
                && let Some(runtime) = app.picker.current_runtime()
            {
                let form = CreateForm::new(runtime, name);
                match form.spec() {
                    Ok(spec) => cmds.push(Cmd::CreateWorker {
                        runtime_id: runtime_id.to_string(),
                        spec,
                    }),
                    Err(why) => app.flash = Some(why.to_string()),
                }
            }
        }
        Err(failure) => app.picker.workers = Loadable::Failed(failure),
    }
}

fn on_created(
    app: &mut App,
    runtime_id: &str,
    result: Result<yoi_protocol::WorkerInfo, Failure>,
    cmds: &mut Vec<Cmd>,
) {
    match result {
        Ok(worker) => {
            app.picker.form = None;
            if app.picker.focus == Focus::Form {
                app.picker.focus = Focus::Workers;
            }
            if let Loadable::Loaded(workers) = &mut app.picker.workers
                && app.picker.runtime.as_deref() == Some(runtime_id)
            {
                workers.push(worker.clone());
                app.picker.worker_sel = workers.len() - 1;
            }
            open_worker(app, runtime_id.to_string(), worker.id, cmds);
        }
        Err(failure) => match &mut app.picker.form {
            Some(form) => {
                form.submitting = false;
                form.error = Some(failure);
            }
            None => app.flash = Some(format!("could not create the worker: {failure}")),
        },
    }
}

/// Switches the console to a worker and opens its stream.
pub(crate) fn open_worker(
    app: &mut App,
    runtime_id: String,
    worker_id: String,
    cmds: &mut Vec<Cmd>,
) {
    app.screen = Screen::Console;
    app.overlay = None;
    if let Some(console) = &app.console
        && console.runtime_id == runtime_id
        && console.worker_id == worker_id
    {
        return;
    }
    app.next_stream += 1;
    let id = StreamId(app.next_stream);
    // The draft and history stay with the user, not with the worker.
    let composer = app.console.take().map(|c| c.composer).unwrap_or_default();
    let mut console = Console::new(runtime_id.clone(), worker_id.clone(), id);
    console.composer = composer;
    app.console = Some(console);
    cmds.push(Cmd::OpenStream {
        id,
        runtime_id,
        worker_id,
    });
}

fn on_done(app: &mut App, command: &WorkerCommand, result: Result<Answer, Failure>) {
    let Some(console) = &mut app.console else {
        return;
    };
    match (command, result) {
        (WorkerCommand::Send(input), Ok(_)) => {
            console.sending = None;
            console.composer.remember(&input.text);
            if console.composer.text() == input.text {
                console.composer.clear();
            }
            console.scroll = Scroll::Follow;
        }
        (WorkerCommand::Send(_), Err(failure)) => {
            // The text stays in the composer: nothing typed is lost.
            console.sending = None;
            notice(console, NoticeLevel::Error, format!("not sent · {failure}"));
        }
        (WorkerCommand::Cancel | WorkerCommand::Stop, Ok(_)) => {}
        (command, Err(failure)) => {
            notice(
                console,
                NoticeLevel::Error,
                format!("{} refused · {failure}", command.name()),
            );
        }
    }
}

fn notice(console: &mut Console, level: NoticeLevel, text: String) {
    if let Some(conv) = &mut console.conv {
        conv.notice(level, text);
    }
}

fn on_stream(app: &mut App, id: StreamId, event: StreamEvent) {
    let inline = app.options.inline;
    let Some(console) = app.console.as_mut().filter(|c| c.stream == id) else {
        return;
    };
    match event {
        StreamEvent::Status(connection) => console.connection = connection,
        StreamEvent::Frame(frame) => match (&mut console.conv, *frame) {
            // Before the snapshot there is nothing to apply a frame to; the stream
            // always starts with one.
            (None, frame) => {
                let Some(conv) = Conversation::from_frame(frame) else {
                    return;
                };
                let cells = conv.cells().len();
                console.printed = Pos {
                    cell: if inline {
                        cells.saturating_sub(INLINE_HISTORY_CELLS)
                    } else {
                        0
                    },
                    line: 0,
                };
                console.conv = Some(conv);
                console.scroll = Scroll::Follow;
            }
            (Some(conv), frame) => {
                if conv.apply(frame) == Applied::Reset {
                    console.scroll = Scroll::Follow;
                    // What was printed is gone from the model: print from its end on.
                    let settled = conv
                        .cells()
                        .iter()
                        .position(|c| c.kind.is_live())
                        .unwrap_or(conv.cells().len());
                    console.printed = Pos {
                        cell: settled,
                        line: 0,
                    };
                    conv.notice(
                        NoticeLevel::Info,
                        format!(
                            "reloaded the worker from a fresh snapshot ({} cells)",
                            conv.cells().len()
                        ),
                    );
                }
            }
        },
    }
}
