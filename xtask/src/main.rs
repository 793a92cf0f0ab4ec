//! Project tasks: `cargo xtask <task>` (alias in `.cargo/config.toml`).
//!
//! - `build-guest`: build the runtime core as a WebAssembly component into
//!   `target/guest/yoi_runtime.wasm` (installs the `wasm32-wasip2` target when missing),
//!   and the test-only fault-injection build of it into
//!   `target/guest/yoi_runtime_faults.wasm`.
//! - `test`: build-guest, `cargo fmt --check`, clippy with `-D warnings`, the workspace
//!   tests (with `YOI_GUEST_WASM` and `YOI_GUEST_FAULTS_WASM` pointing at the two builds).
//! - `demo [ARGS]`: build-guest, then `yoi-host serve [ARGS]` (release, in the background,
//!   on a temporary data dir: the embedded runtime with the scripted demo model) and
//!   `yoi-tui` on a new worker in the foreground; the host stops when the TUI exits.
//! - `bench [FILTER]`: release benchmarks; figures printed and merged into
//!   `target/bench/results.json`.
//!
//! Only std is used so the task runner itself builds in a second.

mod demo;

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const GUEST_TARGET: &str = "wasm32-wasip2";
const GUEST_PROFILE: &str = "guest";
const GUEST_CRATE: &str = "yoi-runtime-guest";
/// Where the shipped component lands; the host and the tests look for it here.
const GUEST_OUT: &str = "guest/yoi_runtime.wasm";
/// The test-only build with cargo feature `fault-injection` (inputs that trap, hang or
/// exhaust memory). Its own cargo profile, so the two builds never overwrite each
/// other's artifacts and both stay incremental.
const FAULTS_PROFILE: &str = "guest-faults";
const FAULTS_FEATURE: &str = "fault-injection";
/// Where the fault-injection component lands; the recovery tests look for it here.
const FAULTS_OUT: &str = "guest/yoi_runtime_faults.wasm";

/// The two components `build-guest` writes.
struct Guests {
    shipped: PathBuf,
    faults: PathBuf,
}

type Result<T = ()> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("build-guest") => build_guest().map(|_| ()),
        Some("test") => test(),
        Some("bench") => bench(&args[1..]),
        Some("demo") => demo(&args[1..]),
        Some("-h" | "--help" | "help") | None => {
            print_help();
            Ok(())
        }
        Some(other) => Err(format!("unknown task `{other}`; run `cargo xtask help`")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

fn print_help() {
    println!(
        "cargo xtask <task>\n\n\
         tasks:\n  \
         build-guest   build the runtime component into target/{GUEST_OUT}\n                \
         (and the test-only fault-injection build into target/{FAULTS_OUT})\n  \
         demo [ARGS]   build-guest, start `yoi-host serve [ARGS]` (release) in the background and\n                \
         open yoi-tui on a new worker; the host stops when the TUI exits\n  \
         test          build-guest, fmt --check, clippy -D warnings, cargo test --workspace\n  \
         bench [NAME]  run the release benchmarks (all, or those whose name contains NAME);\n                \
         figures go to target/bench/results.json"
    );
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

fn target_dir() -> PathBuf {
    env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

fn cargo() -> Command {
    let mut cmd = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(workspace_root());
    cmd
}

fn run(what: &str, cmd: &mut Command) -> Result {
    eprintln!("xtask: {what}");
    let status = cmd
        .status()
        .map_err(|e| format!("{what}: could not start {:?}: {e}", cmd.get_program()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what} failed ({status})"))
    }
}

fn ensure_guest_target() -> Result {
    let out = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    match out {
        Ok(out)
            if String::from_utf8_lossy(&out.stdout)
                .lines()
                .any(|l| l.trim() == GUEST_TARGET) =>
        {
            Ok(())
        }
        Ok(_) => run(
            &format!("installing the {GUEST_TARGET} target"),
            Command::new("rustup").args(["target", "add", GUEST_TARGET]),
        ),
        // No rustup: let cargo report a missing target itself, with its own message.
        Err(_) => Ok(()),
    }
}

/// Builds the shipped component and the test-only fault-injection one and copies each
/// to its stable path.
fn build_guest() -> Result<Guests> {
    ensure_guest_target()?;
    let shipped = build_component(
        "building the runtime component",
        GUEST_PROFILE,
        &[],
        GUEST_OUT,
    )?;
    // A profile of its own (defined here, not in Cargo.toml: only this task uses it)
    // that is the shipped profile plus the feature.
    let faults = build_component(
        "building the test-only fault-injection component",
        FAULTS_PROFILE,
        &[
            "--features",
            FAULTS_FEATURE,
            "--config",
            &format!("profile.{FAULTS_PROFILE}.inherits=\"{GUEST_PROFILE}\""),
        ],
        FAULTS_OUT,
    )?;
    Ok(Guests { shipped, faults })
}

/// Builds the guest crate with `profile` and `extra` arguments, copies the component to
/// `target/<out>` and prints where it is.
fn build_component(what: &str, profile: &str, extra: &[&str], out: &str) -> Result<PathBuf> {
    run(
        what,
        cargo()
            .args([
                "build",
                "--package",
                GUEST_CRATE,
                "--target",
                GUEST_TARGET,
                "--profile",
                profile,
            ])
            .args(extra),
    )
    .map_err(|e| {
        format!(
            "{e}\n  the guest is crate {GUEST_CRATE} (runtime-guest/); fix the errors above and \
             run `cargo xtask build-guest` again"
        )
    })?;
    let built = target_dir()
        .join(GUEST_TARGET)
        .join(profile)
        .join(format!("{}.wasm", GUEST_CRATE.replace('-', "_")));
    let out = target_dir().join(out);
    std::fs::create_dir_all(out.parent().expect("the output path has a parent"))
        .map_err(|e| format!("creating {}: {e}", out.display()))?;
    std::fs::copy(&built, &out)
        .map_err(|e| format!("copying {} to {}: {e}", built.display(), out.display()))?;
    let size = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    println!(
        "component ({profile}): {} ({:.1} KiB)",
        out.display(),
        size as f64 / 1024.0
    );
    Ok(out)
}

fn test() -> Result {
    let guests = build_guest()?;
    run(
        "cargo fmt --check",
        cargo().args(["fmt", "--all", "--check"]),
    )?;
    run(
        "cargo clippy -D warnings",
        cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    run(
        "cargo test --workspace",
        cargo()
            .args(["test", "--workspace"])
            .env("YOI_GUEST_WASM", &guests.shipped)
            .env("YOI_GUEST_FAULTS_WASM", &guests.faults),
    )
}

fn bench(args: &[String]) -> Result {
    let component = build_guest()?.shipped;
    let results = target_dir().join("bench/results.json");
    run(
        "release benchmarks",
        cargo()
            .args(["run", "--release", "--package", "yoi-bench", "--"])
            .args(args)
            .env("YOI_GUEST_WASM", &component)
            .env("YOI_BENCH_RESULTS", &results),
    )?;
    println!("figures: {}", results.display());
    Ok(())
}

fn demo(args: &[String]) -> Result {
    let component = build_guest()?.shipped;
    demo::demo(&component, args)
}
