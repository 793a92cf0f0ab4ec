//! The plugin ABI as the loader enforces it, with the test-only plugins that break it:
//! wrong version, tables too small or incomplete, panics, garbage answers, leaks. Each
//! is refused at load or contained and failed closed at call time.

mod common;

use common::*;
use serde_json::json;
use yoi_policy::abi::PolicyTable;
use yoi_policy::{Command, Principal};
use yoi_policy_host::{CallError, CommandRefusal, EventDecision, LoadError};

fn stop() -> Command {
    Command::Stop {
        runtime: "local".into(),
        worker: "w_1".into(),
    }
}

#[test]
fn a_plugin_of_another_abi_version_is_refused_before_its_table_is_read() {
    let Some(test) = test_plugins("a_plugin_of_another_abi_version_is_refused") else {
        return;
    };
    let scratch = Scratch::new();
    // Its table pointer is null: reading it first would be a different refusal.
    let err = scratch
        .loader()
        .load(&test.join(library("wrong_version")))
        .unwrap_err();
    assert!(
        matches!(
            err,
            LoadError::AbiVersion {
                found: 2,
                expected: 1
            }
        ),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("version 2") && message.contains("version 1"),
        "{message}"
    );
}

#[test]
fn tables_too_small_or_incomplete_and_libraries_without_one_are_refused() {
    let Some(test) = test_plugins("tables_too_small_or_incomplete_are_refused") else {
        return;
    };
    let scratch = Scratch::new();
    let loader = scratch.loader();
    let load = |name: &str| loader.load(&test.join(library(name))).unwrap_err();

    let err = load("small_table");
    assert!(
        matches!(err, LoadError::TableTooSmall { found, need }
            if need == PolicyTable::SIZE && found == need - size_of::<usize>()),
        "{err:?}"
    );
    assert!(matches!(
        load("null_entry"),
        LoadError::MissingFunction("observe")
    ));
    assert!(matches!(
        load("no_table"),
        LoadError::MissingSymbol("yoi_policy_table")
    ));

    // Not a library at all: the message names the file, not the loader's private copy.
    let fake = scratch.plugins().join("fake.so");
    std::fs::write(&fake, b"certainly not an ELF file").unwrap();
    let err = loader.load(&fake).unwrap_err();
    let LoadError::Open(message) = &err else {
        panic!("{err:?}");
    };
    assert!(message.contains("fake.so"), "{message}");
    assert!(!message.contains("staging"), "{message}");

    let err = loader
        .load(&scratch.plugins().join("missing.so"))
        .unwrap_err();
    assert!(matches!(err, LoadError::Read(_)), "{err:?}");
}

#[test]
fn a_loaded_plugin_reports_its_name_and_versions() {
    let Some(test) = test_plugins("a_loaded_plugin_reports_its_name_and_versions") else {
        return;
    };
    let scratch = Scratch::new();
    let plugin = scratch
        .loader()
        .load(&test.join(library("test_policy")))
        .unwrap();
    assert_eq!(plugin.name(), "test-policy");
    assert_eq!(plugin.version(), "0.0.1-test");
    // The SDK and this crate share the workspace's version.
    assert_eq!(plugin.sdk_version(), env!("CARGO_PKG_VERSION"));
    assert_eq!(plugin.file(), library("test_policy"));
}

#[test]
fn panics_in_observe_and_command_are_contained_and_fail_closed() {
    let Some(test) = test_plugins("panics_are_contained_and_fail_closed") else {
        return;
    };
    let scratch = Scratch::new();
    scratch.install(&test, "test_policy", "test_policy.so");

    let (policies, chain) = scratch.chain(&[entry("test-policy", json!({"panic_in": "observe"}))]);
    for seq in 1..=3 {
        let decision = observe(&chain, &observer(), &envelope(seq, text_delta("hi")));
        assert!(matches!(decision, EventDecision::Deny), "{decision:?}");
    }
    let snapshot = yoi_protocol::WorkerSnapshot {
        worker: worker("w_1"),
        transcript: vec![],
        in_flight: None,
    };
    assert_eq!(chain.observe_snapshot(&owner(), "local", snapshot), None);
    assert_eq!(
        chain.observe_workers(&owner(), "local", vec![worker("w_1")]),
        vec![]
    );
    let failures = metrics(&policies).failures;
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(
        (
            failures[0].plugin.as_str(),
            failures[0].call,
            failures[0].count
        ),
        ("test-policy", "observe", 5)
    );
    // Commands are not affected by this instance's panic.
    assert_eq!(chain.command(&owner(), &stop()), Ok(()));

    let (_, chain) = scratch.chain(&[entry("test-policy", json!({"panic_in": "command"}))]);
    for _ in 0..2 {
        let refusal = chain.command(&operator(), &stop()).unwrap_err();
        let CommandRefusal::Failed { policy, error } = &refusal else {
            panic!("{refusal:?}");
        };
        assert_eq!(policy, "test-policy");
        assert!(
            matches!(error, CallError::Panicked(m) if m.contains("panics in command")),
            "{error:?}"
        );
        // What a client would be told says which policy, not what it said.
        assert!(!refusal.to_string().contains("panics"), "{refusal}");
    }
}

#[test]
fn a_panic_in_init_refuses_the_new_chain() {
    let Some(test) = test_plugins("a_panic_in_init_refuses_the_new_chain") else {
        return;
    };
    let scratch = Scratch::new();
    scratch.install(&test, "test_policy", "test_policy.so");
    let policies = scratch.policies();
    let report = policies.reload(
        &scratch.sources(),
        &[entry("test-policy", json!({"panic_in": "init"}))],
    );
    assert!(!report.applied);
    assert_eq!(report.refused.len(), 1, "{report:?}");
    let refusal = &report.refused[0];
    assert_eq!(refusal.plugin.as_deref(), Some("test-policy"));
    assert!(refusal.reason.contains("panicked"), "{refusal}");
    assert!(policies.chain().is_empty(), "the empty chain stays");
}

#[test]
fn garbage_answers_fail_closed_with_typed_errors() {
    let Some(test) = test_plugins("garbage_answers_fail_closed") else {
        return;
    };
    let scratch = Scratch::new();
    scratch.install(&test, "garbage", "garbage.so");
    let cases = [
        ("not_json", "bad_answer"),
        ("not_utf8", "bad_answer"),
        ("wrong_shape", "bad_answer"),
        ("redact_wrong_type", "bad_answer"),
        ("bad_status", "unknown_status"),
        ("null_answer", "bad_answer"),
    ];
    for (mode, kind) in cases {
        let (policies, chain) = scratch.chain(&[entry("garbage", json!({"answer": mode}))]);
        let decision = observe(&chain, &observer(), &envelope(1, text_delta("hi")));
        assert!(
            matches!(decision, EventDecision::Deny),
            "{mode}: {decision:?}"
        );
        let refusal = chain.command(&owner(), &stop()).unwrap_err();
        let CommandRefusal::Failed { error, .. } = refusal else {
            panic!("{mode}: {refusal:?}");
        };
        assert_eq!(error.kind(), kind, "{mode}: {error}");
        let failures = metrics(&policies).failures;
        let count = |call| {
            failures
                .iter()
                .find(|f| f.plugin == "garbage" && f.call == call)
                .map(|f| f.count)
        };
        assert_eq!(
            (count("observe"), count("command")),
            (Some(1), Some(1)),
            "{mode}"
        );
    }
}

#[test]
fn a_plugin_that_never_frees_its_answers_still_works() {
    let Some(test) = test_plugins("a_plugin_that_never_frees_still_works") else {
        return;
    };
    let scratch = Scratch::new();
    scratch.install(&test, "garbage", "garbage.so");
    let (policies, chain) = scratch.chain(&[entry("garbage", json!({"answer": "allow"}))]);
    for seq in 1..=1_000 {
        let decision = observe(&chain, &observer(), &envelope(seq, text_delta("hi")));
        assert!(matches!(decision, EventDecision::Allow), "{decision:?}");
    }
    assert_eq!(chain.command(&Principal::owner(), &stop()), Ok(()));
    let snapshot = metrics(&policies);
    assert!(snapshot.failures.is_empty(), "{snapshot:?}");
    assert_eq!(snapshot.plugin_calls, 1_001);
}
