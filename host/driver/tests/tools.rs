//! Workspace tools: happy paths, caps, sandbox escapes, bad arguments.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use proptest::prelude::*;
use serde_json::json;
use yoi_driver::tools::{self, ToolConfig, ToolOutput, Workspace, Workspaces};

fn setup() -> (tempfile::TempDir, Workspace) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("ws");
    fs::create_dir(&root).unwrap();
    fs::write(root.join("hello.txt"), "Hello, World!\nsecond line\n").unwrap();
    fs::create_dir_all(root.join("sub/deeper")).unwrap();
    fs::write(root.join("sub/notes.md"), "# Notes\nthe NEEDLE is here\n").unwrap();
    fs::write(root.join("sub/deeper/x.rs"), "fn needle() {}\n").unwrap();
    // Something outside the workspace that escapes would reach.
    fs::write(tmp.path().join("secret.txt"), "top secret needle\n").unwrap();
    let ws = Workspace::open(&root).unwrap();
    (tmp, ws)
}

fn ok(out: ToolOutput) -> String {
    assert!(!out.is_error, "expected success, got error: {}", out.output);
    out.output
}

fn err(out: ToolOutput) -> String {
    assert!(out.is_error, "expected an error, got: {}", out.output);
    out.output
}

fn run(ws: &Workspace, name: &str, args: serde_json::Value) -> ToolOutput {
    ws.run(name, &args.to_string())
}

#[test]
fn list_dir_lists_sorted_entries() {
    let (_tmp, ws) = setup();
    let out = ok(run(&ws, "list_dir", json!({})));
    assert_eq!(out, "hello.txt (26 bytes)\nsub/");
    assert_eq!(ok(run(&ws, "list_dir", json!({"path": "."}))), out);
    assert_eq!(ok(ws.run("list_dir", "")), out, "empty arguments mean {{}}");
    assert_eq!(ok(run(&ws, "list_dir", json!({"path": null}))), out);
    assert_eq!(
        ok(run(&ws, "list_dir", json!({"path": "sub"}))),
        "deeper/\nnotes.md (27 bytes)"
    );
    assert_eq!(
        ok(run(&ws, "list_dir", json!({"path": "sub/deeper/.."}))),
        "deeper/\nnotes.md (27 bytes)"
    );
    fs::create_dir(ws_root(&_tmp).join("empty")).unwrap();
    assert_eq!(
        ok(run(&ws, "list_dir", json!({"path": "empty"}))),
        "(empty directory)"
    );
    let e = err(run(&ws, "list_dir", json!({"path": "hello.txt"})));
    assert!(e.contains("not a directory"), "{e}");
    let e = err(run(&ws, "list_dir", json!({"path": "nope"})));
    assert!(e.contains("no such file"), "{e}");
}

fn ws_root(tmp: &tempfile::TempDir) -> std::path::PathBuf {
    tmp.path().join("ws")
}

#[test]
fn list_dir_marks_symlinks_and_caps_entries() {
    let (tmp, _) = setup();
    let root = ws_root(&tmp);
    symlink("hello.txt", root.join("link")).unwrap();
    for i in 0..20 {
        fs::write(root.join(format!("f{i:02}")), "").unwrap();
    }
    let ws = Workspace::open_with(
        &root,
        ToolConfig {
            max_list_entries: 5,
            ..ToolConfig::default()
        },
    )
    .unwrap();
    let out = ok(run(&ws, "list_dir", json!({})));
    assert_eq!(out.lines().count(), 6, "{out}");
    assert!(out.ends_with("[... 18 more entries not shown]"), "{out}");
    let ws = Workspace::open(&root).unwrap();
    assert!(ok(run(&ws, "list_dir", json!({}))).contains("\nlink@\n"));
}

#[test]
fn read_file_reads_text() {
    let (_tmp, ws) = setup();
    assert_eq!(
        ok(run(&ws, "read_file", json!({"path": "hello.txt"}))),
        "Hello, World!\nsecond line\n"
    );
    assert_eq!(
        ok(run(
            &ws,
            "read_file",
            json!({"path": "./sub/../sub/notes.md"})
        )),
        "# Notes\nthe NEEDLE is here\n"
    );
    let e = err(run(&ws, "read_file", json!({"path": "missing.txt"})));
    assert!(
        e.contains("`missing.txt`") && e.contains("no such file"),
        "{e}"
    );
    let e = err(run(&ws, "read_file", json!({"path": "sub"})));
    assert!(e.contains("is a directory"), "{e}");
    let e = err(run(&ws, "read_file", json!({"path": ""})));
    assert!(e.contains("must not be empty"), "{e}");
}

#[test]
fn read_file_refuses_binary_and_caps_size() {
    let (tmp, _) = setup();
    let root = ws_root(&tmp);
    fs::write(root.join("bin"), [0xff, 0xfe, 0x00, 0x80]).unwrap();
    fs::write(root.join("big.txt"), "é".repeat(10_000)).unwrap();
    let ws = Workspace::open_with(
        &root,
        ToolConfig {
            max_output_bytes: 1001,
            ..ToolConfig::default()
        },
    )
    .unwrap();
    let e = err(run(&ws, "read_file", json!({"path": "bin"})));
    assert!(e.contains("not a UTF-8 text file"), "{e}");
    let out = ok(run(&ws, "read_file", json!({"path": "big.txt"})));
    // The text and the marker fit in 1001 bytes; no 'é' is cut in half.
    assert!(out.len() <= 1001, "{}", out.len());
    let (text, marker) = out
        .split_once("\n[... truncated: showing the first ")
        .unwrap();
    assert!(text.len() > 800 && text.chars().all(|c| c == 'é'), "{out}");
    assert_eq!(marker, format!("{} of 20000 bytes]", text.len()));

    let ws = Workspace::open_with(
        &root,
        ToolConfig {
            max_read_bytes: 10,
            ..ToolConfig::default()
        },
    )
    .unwrap();
    let out = ok(run(&ws, "read_file", json!({"path": "hello.txt"})));
    assert_eq!(
        out,
        "Hello, Wor\n[... truncated: showing the first 10 of 26 bytes]"
    );
}

#[test]
fn read_file_does_not_hang_on_a_fifo() {
    let (tmp, ws) = setup();
    let fifo = ws_root(&tmp).join("pipe");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(status.success());
    let e = err(run(&ws, "read_file", json!({"path": "pipe"})));
    assert!(e.contains("not a regular file"), "{e}");
    // search skips it too (it is not a regular file).
    ok(run(&ws, "search", json!({"query": "x"})));
    let e = err(run(
        &ws,
        "write_file",
        json!({"path": "pipe", "content": "x"}),
    ));
    assert!(e.contains("not a regular file"), "{e}");
}

#[test]
fn write_file_creates_and_replaces() {
    let (tmp, ws) = setup();
    let root = ws_root(&tmp);
    let out = ok(run(
        &ws,
        "write_file",
        json!({"path": "new/dir/a.txt", "content": "héllo"}),
    ));
    assert_eq!(out, "created `new/dir/a.txt`: wrote 6 bytes");
    assert_eq!(
        fs::read_to_string(root.join("new/dir/a.txt")).unwrap(),
        "héllo"
    );
    let out = ok(run(
        &ws,
        "write_file",
        json!({"path": "hello.txt", "content": ""}),
    ));
    assert_eq!(out, "replaced `hello.txt`: wrote 0 bytes");
    assert_eq!(fs::read_to_string(root.join("hello.txt")).unwrap(), "");
    let e = err(run(
        &ws,
        "write_file",
        json!({"path": "sub", "content": "x"}),
    ));
    assert!(e.contains("is a directory"), "{e}");
    let e = err(run(
        &ws,
        "write_file",
        json!({"path": "hello.txt/x", "content": "x"}),
    ));
    assert_eq!(
        e,
        "cannot write `hello.txt/x`: `hello.txt` is not a directory"
    );
    let e = err(run(&ws, "read_file", json!({"path": "hello.txt/x"})));
    assert!(e.contains("not a directory"), "{e}");
}

#[test]
fn write_file_caps_content() {
    let (tmp, _) = setup();
    let ws = Workspace::open_with(
        &ws_root(&tmp),
        ToolConfig {
            max_write_bytes: 4,
            ..ToolConfig::default()
        },
    )
    .unwrap();
    ok(run(
        &ws,
        "write_file",
        json!({"path": "a", "content": "1234"}),
    ));
    let e = err(run(
        &ws,
        "write_file",
        json!({"path": "a", "content": "12345"}),
    ));
    assert!(e.contains("at most 4 bytes"), "{e}");
}

#[test]
fn search_finds_lines_case_insensitively() {
    let (_tmp, ws) = setup();
    let out = ok(run(&ws, "search", json!({"query": "needle"})));
    assert_eq!(
        out,
        "sub/deeper/x.rs:1: fn needle() {}\nsub/notes.md:2: the NEEDLE is here"
    );
    let out = ok(run(
        &ws,
        "search",
        json!({"query": "NEEDLE", "path": "sub/deeper"}),
    ));
    assert_eq!(out, "sub/deeper/x.rs:1: fn needle() {}");
    let out = ok(run(
        &ws,
        "search",
        json!({"query": "world", "path": "hello.txt"}),
    ));
    assert_eq!(out, "hello.txt:1: Hello, World!");
    let out = ok(run(&ws, "search", json!({"query": "absent"})));
    assert_eq!(out, "no matches for `absent` in 3 files");
    let e = err(run(&ws, "search", json!({"query": ""})));
    assert!(e.contains("must not be empty"), "{e}");
}

#[test]
fn search_is_bounded() {
    let (tmp, _) = setup();
    let root = ws_root(&tmp);
    fs::write(root.join("many.txt"), "needle\n".repeat(50)).unwrap();
    fs::write(root.join("bin.dat"), b"needle\0needle").unwrap();
    let mut deep = root.clone();
    for i in 0..5 {
        deep = deep.join(format!("d{i}"));
    }
    fs::create_dir_all(&deep).unwrap();
    fs::write(deep.join("deep.txt"), "needle").unwrap();
    let config = ToolConfig {
        search_max_matches: 10,
        ..ToolConfig::default()
    };
    let ws = Workspace::open_with(&root, config.clone()).unwrap();
    let out = ok(run(&ws, "search", json!({"query": "needle"})));
    assert_eq!(out.lines().count(), 11, "{out}");
    assert!(
        out.ends_with("[... search stopped: showing the first 10 matches]"),
        "{out}"
    );
    assert!(!out.contains("bin.dat"), "binary files are skipped");

    let ws = Workspace::open_with(
        &root,
        ToolConfig {
            search_max_depth: 3,
            ..ToolConfig::default()
        },
    )
    .unwrap();
    let out = ok(run(&ws, "search", json!({"query": "needle", "path": "d0"})));
    assert!(!out.contains("deep.txt"), "{out}");
    let ws = Workspace::open_with(
        &root,
        ToolConfig {
            search_max_depth: 4,
            ..ToolConfig::default()
        },
    )
    .unwrap();
    let out = ok(run(&ws, "search", json!({"query": "needle", "path": "d0"})));
    assert_eq!(out, "d0/d1/d2/d3/d4/deep.txt:1: needle");

    let ws = Workspace::open_with(
        &root,
        ToolConfig {
            search_max_files: 2,
            ..ToolConfig::default()
        },
    )
    .unwrap();
    let out = ok(run(&ws, "search", json!({"query": "zzz"})));
    assert!(out.ends_with("[... search stopped: read 2 files]"), "{out}");
}

#[test]
fn a_cancelled_call_stops_walking_the_workspace() {
    let (_tmp, ws) = setup();
    let cancel = yoi_driver::Cancel::new();
    // Not cancelled: the same as `run`.
    let found = ok(ws.run_cancellable("search", r#"{"query":"needle"}"#, &cancel));
    assert!(found.contains("sub/notes.md"), "{found}");
    cancel.cancel();
    for (tool, args) in [("search", r#"{"query":"needle"}"#), ("list_dir", "{}")] {
        assert_eq!(
            err(ws.run_cancellable(tool, args, &cancel)),
            "cancelled",
            "{tool}"
        );
    }
    // Tools that do one bounded thing are not interrupted.
    ok(ws.run_cancellable("read_file", r#"{"path":"hello.txt"}"#, &cancel));
}

#[test]
fn output_is_capped_with_a_marker() {
    let (tmp, _) = setup();
    let root = ws_root(&tmp);
    fs::write(root.join("many.txt"), "needle needle needle\n".repeat(500)).unwrap();
    let ws = Workspace::open_with(
        &root,
        ToolConfig {
            max_output_bytes: 300,
            search_max_matches: 1000,
            ..ToolConfig::default()
        },
    )
    .unwrap();
    let out = ok(run(&ws, "search", json!({"query": "needle"})));
    assert!(out.len() <= 300, "{}", out.len());
    let (body, marker) = out.split_once("\n[... output truncated: showing ").unwrap();
    assert!(
        marker.starts_with(&format!("{} of ", body.len())),
        "{marker}"
    );
    assert!(marker.ends_with(" bytes]"), "{marker}");
}

#[test]
fn default_output_cap_is_16_kib() {
    let (tmp, ws) = setup();
    fs::write(ws_root(&tmp).join("big.txt"), "x".repeat(100_000)).unwrap();
    let out = ok(run(&ws, "read_file", json!({"path": "big.txt"})));
    assert!(out.len() <= 16 * 1024);
    assert!(out.starts_with(&"x".repeat(16 * 1024 - 100)));
    assert!(out.ends_with(" of 100000 bytes]"), "{}", &out[16_000..]);
}

/// Every way out of the workspace we could think of; each must be refused as an error
/// that says so, and nothing outside may be read or written.
#[test]
fn escapes_are_refused() {
    let (tmp, ws) = setup();
    let root = ws_root(&tmp);
    let outside = tmp.path();
    symlink("/etc", root.join("etc_link")).unwrap();
    symlink("/etc/passwd", root.join("passwd_link")).unwrap();
    symlink("..", root.join("parent_link")).unwrap();
    symlink("../secret.txt", root.join("secret_link")).unwrap();
    symlink(outside.join("secret.txt"), root.join("abs_secret_link")).unwrap();
    symlink("sub/../../secret.txt", root.join("sneaky_link")).unwrap();
    // Inside, but through an absolute path: still refused (absolute symlinks are).
    symlink(root.join("hello.txt"), root.join("abs_inside_link")).unwrap();
    symlink("../../secret.txt", root.join("sub/up2")).unwrap();

    let escaping = [
        "..",
        "../",
        "../secret.txt",
        "a/../../secret.txt",
        "sub/../../secret.txt",
        "sub/deeper/../../../secret.txt",
        "./../secret.txt",
        "/etc/passwd",
        "/",
        "//etc/passwd",
        "etc_link",
        "etc_link/passwd",
        "passwd_link",
        "parent_link",
        "parent_link/secret.txt",
        "parent_link/ws/hello.txt",
        "secret_link",
        "abs_secret_link",
        "sneaky_link",
        "abs_inside_link",
        "sub/up2",
    ];
    for path in escaping {
        let reads = [
            ws.run("read_file", &json!({ "path": path }).to_string()),
            ws.run("list_dir", &json!({ "path": path }).to_string()),
            ws.run("search", &json!({ "query": "e", "path": path }).to_string()),
            ws.run(
                "write_file",
                &json!({ "path": path, "content": "pwned" }).to_string(),
            ),
            ws.run(
                "write_file",
                &json!({ "path": format!("{path}/new.txt"), "content": "pwned" }).to_string(),
            ),
        ];
        for out in reads {
            let e = err(out);
            assert!(
                e.contains("outside the workspace") || e.contains("absolute path"),
                "{path}: {e}"
            );
            assert!(
                !e.contains("secret") || e.contains(path),
                "{path}: leaked {e}"
            );
            assert!(!e.contains("root:"), "{path}: leaked {e}");
        }
    }
    // Nothing outside was touched.
    assert_eq!(
        fs::read_to_string(outside.join("secret.txt")).unwrap(),
        "top secret needle\n"
    );
    let mut names: Vec<String> = fs::read_dir(outside)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["secret.txt", "ws"]);
    // The whole-workspace search does not follow the links out.
    let out = ok(run(&ws, "search", json!({"query": "secret"})));
    assert_eq!(out, "no matches for `secret` in 3 files");
}

#[test]
fn escape_errors_are_specific() {
    let (tmp, ws) = setup();
    symlink("/etc", ws_root(&tmp).join("etc_link")).unwrap();
    symlink("..", ws_root(&tmp).join("up")).unwrap();
    let e = err(run(&ws, "read_file", json!({"path": "a/../../secret.txt"})));
    assert_eq!(
        e,
        "`a/../../secret.txt` leads outside the workspace (`..` above its root)"
    );
    let e = err(run(&ws, "read_file", json!({"path": "etc_link/passwd"})));
    assert_eq!(
        e,
        "cannot read `etc_link/passwd`: the path leads outside the workspace"
    );
    let e = err(run(&ws, "list_dir", json!({"path": "up"})));
    assert_eq!(e, "cannot list `up`: the path leads outside the workspace");
    let e = err(run(
        &ws,
        "write_file",
        json!({"path": "up/x", "content": ""}),
    ));
    assert_eq!(
        e,
        "cannot create the directory for `up/x`: the path leads outside the workspace"
    );
    let e = err(run(&ws, "read_file", json!({"path": "/etc/passwd"})));
    assert_eq!(
        e,
        "`/etc/passwd` is an absolute path; paths are relative to the workspace root"
    );
}

#[test]
fn symlinks_inside_the_workspace_work() {
    let (tmp, ws) = setup();
    let root = ws_root(&tmp);
    symlink("hello.txt", root.join("link.txt")).unwrap();
    symlink("sub", root.join("sublink")).unwrap();
    symlink("../hello.txt", root.join("sub/up.txt")).unwrap();
    assert!(ok(run(&ws, "read_file", json!({"path": "link.txt"}))).starts_with("Hello"));
    assert!(ok(run(&ws, "read_file", json!({"path": "sub/up.txt"}))).starts_with("Hello"));
    assert!(ok(run(&ws, "list_dir", json!({"path": "sublink"}))).contains("notes.md"));
    ok(run(
        &ws,
        "write_file",
        json!({"path": "link.txt", "content": "via link"}),
    ));
    assert_eq!(
        fs::read_to_string(root.join("hello.txt")).unwrap(),
        "via link"
    );
}

#[test]
fn symlink_loops_are_errors() {
    let (tmp, ws) = setup();
    let root = ws_root(&tmp);
    symlink("loop_b", root.join("loop_a")).unwrap();
    symlink("loop_a", root.join("loop_b")).unwrap();
    let e = err(run(&ws, "read_file", json!({"path": "loop_a"})));
    assert!(e.contains("loop_a"), "{e}");
    ok(run(&ws, "search", json!({"query": "x"})));
}

#[test]
fn bad_arguments_name_the_problem() {
    let (_tmp, ws) = setup();
    let cases: [(&str, &str, &str); 10] = [
        ("read_file", "{}", "missing field `path`"),
        (
            "read_file",
            r#"{"path": 3}"#,
            "invalid type: integer `3`, expected a string",
        ),
        (
            "read_file",
            r#"{"path": "a", "mode": "x"}"#,
            "unknown field `mode`",
        ),
        ("write_file", r#"{"path": "a"}"#, "missing field `content`"),
        (
            "write_file",
            r#"{"path": "a", "content": null}"#,
            "invalid type: null",
        ),
        ("search", r#"{"path": "."}"#, "missing field `query`"),
        ("list_dir", r#"{"path": ["a"]}"#, "invalid type: sequence"),
        ("list_dir", "[1, 2]", "expected a JSON object, got an array"),
        ("list_dir", "\"x\"", "expected a JSON object, got a string"),
        ("read_file", "{not json", "not valid JSON"),
    ];
    for (tool, args, expected) in cases {
        let e = err(ws.run(tool, args));
        assert!(
            e.starts_with(&format!("invalid arguments for {tool}: ")),
            "{e}"
        );
        assert!(e.contains(expected), "{tool} {args}: {e}");
    }
    let e = err(ws.run("rm_rf", "{}"));
    assert!(e.contains("unknown tool `rm_rf`"), "{e}");
    assert!(e.contains("list_dir, read_file, write_file, search"), "{e}");
    let e = err(run(&ws, "read_file", json!({"path": "a\u{0}b"})));
    assert!(e.contains("NUL"), "{e}");
}

#[test]
fn workspaces_are_per_worker_and_created_on_first_use() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("workspaces");
    let wss = Workspaces::new(&root).unwrap();
    assert!(root.is_dir());
    assert!(!root.join("w_1").exists());
    ok(wss.run("w_1", "write_file", r#"{"path":"a.txt","content":"one"}"#));
    assert_eq!(fs::read_to_string(root.join("w_1/a.txt")).unwrap(), "one");
    assert_eq!(wss.path_of("w_1"), Some(root.join("w_1")));
    // Another worker does not see it.
    let e = err(wss.run("w_2", "read_file", r#"{"path":"a.txt"}"#));
    assert!(e.contains("no such file"), "{e}");
    assert_eq!(ok(wss.run("w_2", "list_dir", "{}")), "(empty directory)");
    let e = err(wss.run("w_2", "read_file", r#"{"path":"../w_1/a.txt"}"#));
    assert!(e.contains("outside the workspace"), "{e}");
    // Opening again finds the same files.
    let again = Workspaces::new(&root).unwrap();
    assert_eq!(
        ok(again.run("w_1", "read_file", r#"{"path":"a.txt"}"#)),
        "one"
    );
}

#[test]
fn workspaces_refuse_unsafe_worker_ids() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("workspaces");
    let wss = Workspaces::new(&root).unwrap();
    for bad in ["", ".", "..", "../x", "a/b", "/etc", ".hidden", "a\0b"] {
        let e = err(wss.run(bad, "list_dir", "{}"));
        assert!(e.contains("not a valid worker id"), "{bad:?}: {e}");
        assert_eq!(wss.path_of(bad), None);
    }
    // A worker directory replaced by a symlink to outside is refused too.
    symlink(tmp.path(), root.join("w_evil")).unwrap();
    let e = err(wss.run("w_evil", "list_dir", "{}"));
    assert!(e.contains("unavailable"), "{e}");
    assert_eq!(fs::read_dir(&root).unwrap().count(), 1);
}

#[test]
fn schemas_describe_the_arguments() {
    assert_eq!(
        tools::names(),
        ["list_dir", "read_file", "write_file", "search"]
    );
    let s = tools::schema("write_file").unwrap();
    assert_eq!(s["required"], json!(["path", "content"]));
    assert_eq!(s["properties"]["content"]["type"], "string");
    assert_eq!(
        tools::schema("read_file").unwrap()["required"],
        json!(["path"])
    );
    assert!(tools::schema("list_dir").unwrap().get("required").is_none());
}

fn _assert_send_sync() {
    fn is<T: Send + Sync + 'static>() {}
    is::<Workspaces>();
    is::<Workspace>();
}

fn arbitrary_path() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        proptest::collection::vec(
            prop_oneof![
                Just("..".to_string()),
                Just(".".to_string()),
                Just("".to_string()),
                Just("sub".to_string()),
                Just("link".to_string()),
                Just("hello.txt".to_string()),
                "[a-zé]{1,4}",
            ],
            0..6
        )
        .prop_map(|parts| parts.join("/")),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn run_never_panics(
        name in prop_oneof![Just("list_dir".to_string()), Just("read_file".to_string()), Just("write_file".to_string()), Just("search".to_string()), any::<String>()],
        args in prop_oneof![
            any::<String>(),
            (arbitrary_path(), any::<String>(), proptest::option::of(arbitrary_path()))
                .prop_map(|(p, c, q)| json!({"path": p, "content": c, "query": q}).to_string()),
            arbitrary_path().prop_map(|p| json!({"path": p}).to_string()),
            (any::<String>(), proptest::option::of(arbitrary_path()))
                .prop_map(|(q, p)| json!({"query": q, "path": p}).to_string()),
            (arbitrary_path(), any::<String>())
                .prop_map(|(p, c)| json!({"path": p, "content": c}).to_string()),
        ],
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("ws");
        fs::create_dir_all(root.join("sub")).unwrap();
        fs::write(root.join("hello.txt"), "hi").unwrap();
        symlink("..", root.join("link")).unwrap();
        let ws = Workspace::open_with(&root, ToolConfig { max_output_bytes: 512, ..ToolConfig::default() }).unwrap();
        let out = ws.run(&name, &args);
        prop_assert!(out.output.len() <= 512);
        // Nothing was written outside the workspace.
        let outside: Vec<_> = fs::read_dir(tmp.path()).unwrap().collect();
        prop_assert_eq!(outside.len(), 1);
        let _ = Path::new(&root);
    }
}
