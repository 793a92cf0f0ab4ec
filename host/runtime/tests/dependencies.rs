//! The runtime library builds without any server dependency, and a native-only build
//! links no wasmtime (issue #10): `cargo tree` of `yoi-runtime` with its default
//! features holds neither axum nor wasmtime among its normal dependencies, and
//! `yoi-runtime serve` built without its `wasm` feature holds no wasmtime.

use std::process::Command;

/// The normal (non-dev, non-build) dependencies of `package` with `args`, one crate
/// name per line.
fn normal_dependencies(package: &str, args: &[&str]) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "tree",
            "--offline",
            "--locked",
            "-p",
            package,
            "-e",
            "normal",
        ])
        .args(["--prefix", "none", "--format", "{p}"])
        .args(args)
        .output()
        .expect("cargo tree runs");
    assert!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

fn has(crates: &[String], name: &str) -> bool {
    crates.iter().any(|c| c == name)
}

#[test]
fn the_runtime_library_links_neither_a_server_nor_wasmtime() {
    let runtime = normal_dependencies("yoi-runtime", &[]);
    assert!(has(&runtime, "yoi-core"), "the tree was read: {runtime:?}");
    for banned in ["axum", "wasmtime", "yoi-serving", "yoi-host"] {
        assert!(
            !has(&runtime, banned),
            "yoi-runtime depends on {banned}: {runtime:?}"
        );
    }
    // The check can fail: the wasm core (yoi-core's default features) brings wasmtime.
    let core = normal_dependencies("yoi-core", &[]);
    assert!(has(&core, "wasmtime"), "{core:?}");
    let native = normal_dependencies("yoi-core", &["--no-default-features"]);
    assert!(!has(&native, "wasmtime"), "{native:?}");
}

#[test]
fn a_native_only_runtime_server_links_no_wasmtime() {
    let native = normal_dependencies("yoi-runtime-server", &["--no-default-features"]);
    assert!(has(&native, "yoi-serving"), "the tree was read: {native:?}");
    assert!(!has(&native, "wasmtime"), "{native:?}");
    let default = normal_dependencies("yoi-runtime-server", &[]);
    assert!(has(&default, "wasmtime"), "{default:?}");
}
