//! `cargo xtask demo [ARGS]`: the demo a newcomer runs first.
//!
//! Builds the component, `yoi-host` and `yoi-tui` (release), starts `yoi-host serve
//! [ARGS]` in the background on a temporary data dir (the embedded runtime with the
//! scripted model; its log goes to `target/demo/host.log`), waits until it is ready,
//! opens `yoi-tui` on a new worker in the foreground, and stops the host when the TUI
//! exits.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Result, cargo, run, target_dir};

/// The cargo profile the demo runs (what a user would run).
const PROFILE: &str = "release";
/// How long the host may take to load its runtimes (the first start compiles the
/// component; a hang guard, not a goal).
const READY_PATIENCE: Duration = Duration::from_secs(180);

pub fn demo(component: &Path, args: &[String]) -> Result {
    let profile_flag = format!("--profile={PROFILE}");
    run(
        "building yoi-host and yoi-tui",
        cargo().args([
            "build",
            &profile_flag,
            "--package",
            "yoi-host",
            "--package",
            "yoi-tui",
        ]),
    )?;
    let bin_dir = target_dir().join(if PROFILE == "dev" { "debug" } else { PROFILE });
    let demo_dir = target_dir().join("demo");
    std::fs::create_dir_all(&demo_dir)
        .map_err(|e| format!("creating {}: {e}", demo_dir.display()))?;
    let log_path = demo_dir.join("host.log");
    let data_dir = std::env::temp_dir().join(format!("yoi-demo-{}", std::process::id()));

    let mut host = Host::start(&bin_dir, component, &data_dir, &log_path, args)?;
    let result = host
        .wait_ready()
        .and_then(|(url, token_file)| open_tui(&bin_dir, &url, &token_file));
    host.stop();
    let _ = std::fs::remove_dir_all(&data_dir);
    eprintln!("xtask: the host's log is {}", log_path.display());
    result
}

fn open_tui(bin_dir: &Path, url: &str, token_file: &Path) -> Result {
    eprintln!("xtask: opening yoi-tui on {url} (Ctrl+Q quits, ? shows the keys)");
    let status = Command::new(bin_dir.join("yoi-tui"))
        .args(["--host", url, "--token-file"])
        .arg(token_file)
        .args(["--new-worker", "demo"])
        .status()
        .map_err(|e| format!("could not start yoi-tui: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("yoi-tui failed ({status})"))
    }
}

/// The background `yoi-host serve`.
struct Host {
    child: Child,
    log_path: PathBuf,
}

impl Host {
    fn start(
        bin_dir: &Path,
        component: &Path,
        data_dir: &Path,
        log_path: &Path,
        args: &[String],
    ) -> Result<Host> {
        let log =
            File::create(log_path).map_err(|e| format!("creating {}: {e}", log_path.display()))?;
        eprintln!(
            "xtask: starting yoi-host serve in the background (data: {}, log: {})",
            data_dir.display(),
            log_path.display()
        );
        let child = Command::new(bin_dir.join("yoi-host"))
            .arg("serve")
            .arg("--component")
            .arg(component)
            .arg("--data-dir")
            .arg(data_dir)
            .args(args)
            // A log file, not a terminal: no colour codes in it.
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("could not start yoi-host: {e}"))?;
        Ok(Host {
            child,
            log_path: log_path.to_path_buf(),
        })
    }

    /// Reads where the host listens and its token file from the line it prints, then
    /// waits for `/readyz`.
    fn wait_ready(&mut self) -> Result<(String, PathBuf)> {
        let stdout = self.child.stdout.take().ok_or("no stdout from yoi-host")?;
        let mut line = String::new();
        // The line comes once the socket is bound; an empty read means the host exited.
        let _ = BufReader::new(stdout).read_line(&mut line);
        let (url, token_file) =
            parse_listening(&line).ok_or_else(|| self.failed("did not start"))?;
        let deadline = Instant::now() + READY_PATIENCE;
        let addr = url.trim_start_matches("http://").to_string();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(self.failed(&format!("exited ({status})")));
            }
            if ready(&addr) {
                return Ok((url, token_file));
            }
            if Instant::now() > deadline {
                return Err(self.failed("was not ready in time"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// An error naming what happened and the end of the host's log.
    fn failed(&self, what: &str) -> String {
        let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(10).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!(
            "yoi-host {what}; the end of its log ({}):\n{}",
            self.log_path.display(),
            tail.join("\n")
        )
    }

    /// SIGTERM (the host closes its streams and commits), then SIGKILL if it lingers.
    fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `yoi-host listening on http://ADDR (token: FILE)` → the URL and the token file.
fn parse_listening(line: &str) -> Option<(String, PathBuf)> {
    let rest = line.trim().strip_prefix("yoi-host listening on ")?;
    let (url, rest) = rest.split_once(" (token: ")?;
    let token_file = rest.strip_suffix(')')?;
    Some((url.to_string(), PathBuf::from(token_file)))
}

/// Whether `GET /readyz` answers 200 (std only: the task runner has no dependencies).
fn ready(addr: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET /readyz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hosts_listening_line_is_understood() {
        let (url, token) = parse_listening(
            "yoi-host listening on http://127.0.0.1:38700 (token: /tmp/yoi demo/host.token)\n",
        )
        .unwrap();
        assert_eq!(url, "http://127.0.0.1:38700");
        assert_eq!(token, PathBuf::from("/tmp/yoi demo/host.token"));
        assert_eq!(parse_listening("something else"), None);
    }
}
