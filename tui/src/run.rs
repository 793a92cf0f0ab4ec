//! The main loop: terminal events, network messages and a timer become messages;
//! `update` turns them into state and commands; the state is drawn.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossterm::event::{Event as TermEvent, KeyEventKind};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, oneshot};

use crate::app::{App, Options};
use crate::msg::{Cmd, Msg};
use crate::net::{Backend, Net};
use crate::term::Term;
use crate::update::update;

/// Messages from the network tasks waiting to be applied. A stream waits when this is
/// full (and the host, if it waits too long, closes it as lagged; it resumes from its
/// cursor).
const QUEUE: usize = 1024;
/// Messages applied between two draws at most, so a burst of events is drawn once.
const BATCH: usize = 512;
/// The spinner's and the reconnect countdown's clock.
const TICK: Duration = Duration::from_millis(200);
/// How long the input thread waits for a key before it checks whether to stop. It
/// holds crossterm's input lock only that long, so the terminal can be asked for the
/// cursor position (the inline viewport does) in between.
const INPUT_POLL: Duration = Duration::from_millis(50);
/// Terminal events waiting to be applied.
const INPUT_QUEUE: usize = 64;
/// How long leaving waits for the input thread to let go of the terminal. It takes at
/// most `INPUT_POLL` on a live terminal; on one that hung up (its window closed) crossterm
/// reads the end of input over and over and never returns, so the client leaves without
/// it rather than spin forever.
const INPUT_STOP: Duration = Duration::from_millis(500);

/// Runs the client until the user quits (or SIGTERM, SIGHUP, SIGINT), and restores the
/// terminal.
pub async fn run(options: Options, backend: Backend) -> anyhow::Result<()> {
    let mut term = Term::enter(options.inline)?;
    let (input_tx, input) = mpsc::channel(INPUT_QUEUE);
    let stop = Arc::new(AtomicBool::new(false));
    let (reader, reader_done) = spawn_input(input_tx, stop.clone());
    let result = main_loop(&mut term, input, options, backend).await;
    stop.store(true, Ordering::SeqCst);
    // The reader lets go of the terminal's input before the terminal is restored.
    if tokio::time::timeout(INPUT_STOP, reader_done).await.is_ok() {
        let _ = reader.join();
    }
    term.leave()?;
    result
}

/// Reads the terminal's events on a thread of its own (crossterm reads block). The
/// receiver completes when the thread ends.
fn spawn_input(
    tx: mpsc::Sender<io::Result<Msg>>,
    stop: Arc<AtomicBool>,
) -> (JoinHandle<()>, oneshot::Receiver<()>) {
    let (done, ended) = oneshot::channel::<()>();
    let reader = std::thread::spawn(move || {
        // Dropped when the thread returns, which is what the receiver waits for.
        let _done = done;
        while !stop.load(Ordering::SeqCst) {
            let event = match crossterm::event::poll(INPUT_POLL) {
                Ok(false) => continue,
                Ok(true) => crossterm::event::read(),
                Err(e) => Err(e),
            };
            let msg = match event {
                Ok(event) => match terminal_msg(event) {
                    Some(msg) => Ok(msg),
                    None => continue,
                },
                Err(e) => Err(e),
            };
            let failed = msg.is_err();
            if tx.blocking_send(msg).is_err() || failed {
                return;
            }
        }
    });
    (reader, ended)
}

async fn main_loop(
    term: &mut Term,
    mut input: mpsc::Receiver<io::Result<Msg>>,
    options: Options,
    backend: Backend,
) -> anyhow::Result<()> {
    let (tx, mut rx) = mpsc::channel(QUEUE);
    let (mut app, cmds) = App::new(options);
    let mut net = Net::new(backend, tx);
    for cmd in cmds {
        net.run(cmd);
    }
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut terminate = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    // Ctrl+C is a key in raw mode; this is an INT sent from elsewhere.
    let mut interrupt = signal(SignalKind::interrupt())?;
    loop {
        term.draw(&mut app)?;
        let first = tokio::select! {
            event = input.recv() => match event {
                Some(Ok(msg)) => msg,
                Some(Err(e)) => return Err(e.into()),
                None => return Ok(()),
            },
            Some(msg) = rx.recv() => msg,
            _ = tick.tick() => Msg::Tick,
            _ = terminate.recv() => return Ok(()),
            _ = hangup.recv() => return Ok(()),
            _ = interrupt.recv() => return Ok(()),
        };
        let mut next = Some(first);
        let mut applied = 0;
        while let Some(msg) = next.take() {
            for cmd in update(&mut app, msg) {
                if cmd == Cmd::Quit {
                    return Ok(());
                }
                net.run(cmd);
            }
            applied += 1;
            if applied < BATCH {
                next = rx.try_recv().ok();
            }
        }
    }
}

fn terminal_msg(event: TermEvent) -> Option<Msg> {
    match event {
        TermEvent::Key(key) if key.kind != KeyEventKind::Release => Some(Msg::Key(key)),
        TermEvent::Paste(text) => Some(Msg::Paste(text)),
        TermEvent::Resize(..) => Some(Msg::Resize),
        _ => None,
    }
}
