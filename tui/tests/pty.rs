//! The real `yoi-tui` binary in a pseudo-terminal against a real `yoi-host` (in-process,
//! the built runtime component, the scripted model): it types a message and reads the
//! answer off the screen (parsed with `vt100`), then quits and leaves the terminal as
//! it found it; and once with `--direct` against a `yoi-runtime serve`. Needs the
//! component (`cargo xtask build-guest`; `YOI_GUEST_WASM`).

use std::io::Write;
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};

use portable_pty::{CommandBuilder, PtySize, native_pty_system};
use yoi_host::Host;
use yoi_host::config::{Config, RuntimeConfig, RuntimeSettings};

/// Generous guard so a broken test fails instead of hanging; never a performance bound.
const PATIENCE: Duration = Duration::from_secs(120);
const ROWS: u16 = 30;
const COLS: u16 = 100;

async fn start_host(dir: &std::path::Path) -> Host {
    let mut settings = RuntimeSettings::default();
    settings.scripted.token_delay_ms = 0;
    let runtime = RuntimeConfig::embedded("local", settings);
    let config = Config {
        bind: "127.0.0.1:0".parse().unwrap(),
        data_dir: Some(dir.to_path_buf()),
        component: Some(yoi_core::guest_component_path().unwrap_or_else(|e| panic!("{e}"))),
        runtimes: vec![runtime],
        ..Config::default()
    };
    let host = Host::start(config).await.expect("host starts");
    tokio::time::timeout(PATIENCE, host.ready())
        .await
        .expect("runtimes load in time")
        .expect("runtimes load");
    host
}

/// `yoi-tui` running in a pseudo-terminal, its screen kept by a terminal emulator.
struct Tui {
    screen: Arc<Mutex<vt100::Parser>>,
    writer: Arc<Mutex<Box<dyn Write + Send>>>,
    child: Box<dyn portable_pty::Child + Send + Sync>,
    // Kept open until the end: closing it (and every copy) hangs up the terminal.
    master: Option<Box<dyn portable_pty::MasterPty + Send>>,
    stop_reading: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
}

impl Tui {
    fn spawn(args: &[&str]) -> Tui {
        let pair = native_pty_system()
            .openpty(PtySize {
                rows: ROWS,
                cols: COLS,
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("a pseudo-terminal");
        let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_yoi-tui"));
        cmd.args(args);
        cmd.env("TERM", "xterm-256color");
        let child = pair.slave.spawn_command(cmd).expect("spawn yoi-tui");
        drop(pair.slave);
        let screen = Arc::new(Mutex::new(vt100::Parser::new(
            ROWS.try_into().unwrap(),
            COLS.try_into().unwrap(),
            1000,
        )));
        let writer: Arc<Mutex<Box<dyn Write + Send>>> =
            Arc::new(Mutex::new(pair.master.take_writer().unwrap()));
        // Read through a copy of the master that the reader closes when told to stop (a
        // blocked `read` would keep the terminal open): polled, so it can stop.
        let raw = pair.master.as_raw_fd().expect("a unix pseudo-terminal");
        // SAFETY: `raw` is the master's descriptor, open for as long as `pair.master` is.
        let fd = rustix::io::dup(unsafe { BorrowedFd::borrow_raw(raw) }).unwrap();
        let stop_reading = Arc::new(AtomicBool::new(false));
        let (parser, answer, stop) = (screen.clone(), writer.clone(), stop_reading.clone());
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            let tick = Timespec {
                tv_sec: 0,
                tv_nsec: 20_000_000,
            };
            while !stop.load(Ordering::SeqCst) {
                let mut fds = [PollFd::new(&fd, PollFlags::IN)];
                match rustix::event::poll(&mut fds, Some(&tick)) {
                    Ok(0) | Err(rustix::io::Errno::INTR) => continue,
                    Ok(_) => {}
                    Err(_) => break,
                }
                // Ends with the child (EIO) as it did with a blocking reader.
                let n = match rustix::io::read(&fd, &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let mut parser = parser.lock().unwrap();
                // Feed up to each cursor position query and answer it, as a terminal
                // does (the inline viewport asks where it is).
                let mut rest = &buf[..n];
                while let Some(i) = find(rest, b"\x1b[6n") {
                    parser.process(&rest[..i]);
                    let (row, col) = parser.screen().cursor_position();
                    let reply = format!("\x1b[{};{}R", row + 1, col + 1);
                    let _ = answer.lock().unwrap().write_all(reply.as_bytes());
                    rest = &rest[i + 4..];
                }
                parser.process(rest);
            }
        });
        Tui {
            screen,
            writer,
            child,
            master: Some(pair.master),
            stop_reading,
            reader: Some(reader),
        }
    }

    /// Closes the terminal, as closing its window does: the kernel hangs it up.
    fn hang_up(&mut self) {
        self.stop_reading.store(true, Ordering::SeqCst);
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        *self.writer.lock().unwrap() = Box::new(std::io::sink());
        self.master = None;
    }

    fn contents(&self) -> String {
        self.screen.lock().unwrap().screen().contents()
    }

    /// Waits until the screen shows every one of `texts`.
    fn wait_for(&self, texts: &[&str]) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let screen = self.contents();
            if texts.iter().all(|t| screen.contains(t)) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "never showed {texts:?}; the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn type_keys(&self, keys: &str) {
        let mut writer = self.writer.lock().unwrap();
        writer.write_all(keys.as_bytes()).unwrap();
        writer.flush().unwrap();
    }

    /// Quits with Ctrl+Q and waits for the process; returns whether it exited with 0 and
    /// the screen it left.
    fn quit(self) -> (bool, vt100::Screen) {
        self.type_keys("\x11");
        self.wait_exit()
    }

    fn wait_exit(mut self) -> (bool, vt100::Screen) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader take the last output.
                std::thread::sleep(Duration::from_millis(100));
                return (
                    status.success(),
                    self.screen.lock().unwrap().screen().clone(),
                );
            }
            assert!(Instant::now() < deadline, "yoi-tui did not quit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Tui {
    fn drop(&mut self) {
        let _ = self.child.kill();
        self.stop_reading.store(true, Ordering::SeqCst);
    }
}

impl Tui {
    /// `yoi-tui` on `host` (its token file), opening a new worker `name` and waiting
    /// until it is connected to it; `extra` arguments go first.
    fn on_host(host: &Host, name: &str, extra: &[&str]) -> Tui {
        let url = format!("http://{}", host.local_addr());
        let token_file = host.token_file().to_str().unwrap().to_string();
        let mut args = extra.to_vec();
        args.extend([
            "--host",
            &url,
            "--token-file",
            &token_file,
            "--new-worker",
            name,
        ]);
        let tui = Tui::spawn(&args);
        tui.wait_for(&["● connected", &format!("local / {name} (w_1)")]);
        tui
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread")]
async fn types_a_message_and_reads_the_answer_off_the_screen() {
    let dir = tempfile::tempdir().unwrap();
    let host = start_host(dir.path()).await;
    let tui = Tui::on_host(&host, "e2e", &[]);
    tui.wait_for(&["Enter sends"]);
    assert!(tui.screen.lock().unwrap().screen().alternate_screen());
    tui.type_keys("list files\r");
    let screen = tui.wait_for(&[
        "› list files",
        "⚙ list_dir {\"path\":\".\"} ✓",
        "Here is what the list_dir tool returned:",
        "(empty directory)",
        "│ idle │",
    ]);
    assert!(screen.contains("∴ thought · "), "{screen}");

    // The run happened on the host, as the screen says.
    let client =
        yoi_client::HostClient::new(&format!("http://{}", host.local_addr()), host.token())
            .unwrap();
    let messages = client.runtime("local").transcript("w_1").await.unwrap();
    assert_eq!(messages.len(), 4, "user, tool call, tool result, answer");

    let (ok, screen) = tui.quit();
    assert!(ok, "yoi-tui exits with 0");
    assert!(!screen.alternate_screen(), "the alternate screen is left");
    assert!(!screen.hide_cursor(), "the cursor is shown again");
    assert!(!screen.bracketed_paste(), "bracketed paste is off");
    host.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn inline_mode_keeps_the_conversation_in_the_scrollback() {
    let dir = tempfile::tempdir().unwrap();
    let host = start_host(dir.path()).await;
    let tui = Tui::on_host(&host, "inline", &["--inline"]);
    assert!(!tui.screen.lock().unwrap().screen().alternate_screen());
    tui.type_keys("hello there\r");
    tui.wait_for(&["› hello there", "You said: \"hello there\"", "│ idle │"]);

    let (ok, screen) = tui.quit();
    assert!(ok);
    // What was printed stays on the terminal after the client is gone; its own
    // viewport (status line, composer) is cleared.
    let contents = screen.contents();
    assert!(contents.contains("› hello there"), "{contents}");
    assert!(contents.contains("You said: \"hello there\""), "{contents}");
    assert!(!contents.contains("Enter sends"), "{contents}");
    host.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_terminate_signal_restores_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let host = start_host(dir.path()).await;
    let tui = Tui::on_host(&host, "sig", &[]);
    let pid = tui.child.process_id().expect("a process id");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let (ok, screen) = tui.wait_exit();
    assert!(ok, "a terminate signal is a clean exit");
    assert!(!screen.alternate_screen());
    assert!(!screen.hide_cursor());
    host.shutdown().await.unwrap();
}

/// Closing the terminal window hangs the terminal up: the client ends (it used to
/// wait forever for its input thread, which crossterm keeps reading the end of input).
#[tokio::test(flavor = "multi_thread")]
async fn closing_the_terminal_ends_the_client() {
    let dir = tempfile::tempdir().unwrap();
    let host = start_host(dir.path()).await;
    let mut tui = Tui::on_host(&host, "hangup", &[]);
    tui.hang_up();
    // The exit status does not matter (restoring a terminal that is gone fails); that
    // it exits does.
    let _ = tui.wait_exit();
    host.shutdown().await.unwrap();
}

/// `--direct`: the same conversation against one `yoi-runtime serve` (in-process, the
/// native core) with no host, labelled as the debug mode it is.
#[tokio::test(flavor = "multi_thread")]
async fn direct_mode_talks_to_one_runtime_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = yoi_runtime_server::Config {
        bind: "127.0.0.1:0".parse().unwrap(),
        data_dir: Some(dir.path().to_path_buf()),
        ..yoi_runtime_server::Config::default()
    };
    config.runtime.scripted.token_delay_ms = 0;
    let server = yoi_runtime_server::RuntimeServer::start(config)
        .await
        .expect("the runtime server starts");
    tokio::time::timeout(PATIENCE, server.ready())
        .await
        .expect("the runtime opens in time")
        .expect("the runtime opens");
    let url = format!("http://{}", server.local_addr());
    let token_file = server.token_file().to_str().unwrap().to_string();
    let tui = Tui::spawn(&[
        "--direct",
        &url,
        "--token-file",
        &token_file,
        "--new-worker",
        "e2e",
    ]);

    tui.wait_for(&["DIRECT (debug, no host)", "● connected", "e2e (w_1)"]);
    tui.type_keys("list files\r");
    tui.wait_for(&[
        "› list files",
        "⚙ list_dir {\"path\":\".\"} ✓",
        "Here is what the list_dir tool returned:",
        "│ idle │",
    ]);
    // The run happened on the runtime itself.
    let client = yoi_client::RuntimeClient::new(&url, server.token()).unwrap();
    let messages = client.transcript("w_1").await.unwrap();
    assert_eq!(messages.len(), 4, "user, tool call, tool result, answer");

    let (ok, _) = tui.quit();
    assert!(ok, "yoi-tui exits with 0");
    server.shutdown().await.unwrap();
}
