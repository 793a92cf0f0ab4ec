//! `yoi-runtime` built without its `wasm` feature links no wasmtime (issue #10: a
//! native-only build), and with it (the default) it does.

use std::process::Command;

fn normal_dependencies(args: &[&str]) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["tree", "--offline", "--locked", "-p", "yoi-runtime-server"])
        .args(["-e", "normal", "--prefix", "none", "--format", "{p}"])
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

#[test]
fn a_native_only_build_links_no_wasmtime() {
    let native = normal_dependencies(&["--no-default-features"]);
    assert!(native.iter().any(|c| c == "yoi-runtime"), "{native:?}");
    assert!(!native.iter().any(|c| c == "wasmtime"), "{native:?}");
    let default = normal_dependencies(&[]);
    assert!(default.iter().any(|c| c == "wasmtime"), "{default:?}");
}
