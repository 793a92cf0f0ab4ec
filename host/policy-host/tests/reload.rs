//! Reloading: plugins dropped into the folder take effect without a restart; anything
//! refused keeps the chain in use.

mod common;

use std::sync::Arc;

use common::*;
use serde_json::json;
use yoi_policy::Command;
use yoi_policy_host::{ChainOptions, Policies};

fn stop() -> Command {
    Command::Stop {
        runtime: "local".into(),
        worker: "w_1".into(),
    }
}

fn read_only() -> yoi_policy_host::PolicyEntry {
    entry("read-only", json!({"roles": ["observer"]}))
}

#[test]
fn a_plugin_copied_into_the_folder_applies_on_reload() {
    let Some(examples) = examples("a_plugin_copied_into_the_folder_applies_on_reload") else {
        return;
    };
    let scratch = Scratch::new();
    let policies = scratch.policies();
    let report = policies.reload(&scratch.sources(), &[]);
    assert!(report.applied && report.loaded.is_empty() && report.chain.is_empty());
    let reasoning = envelope(
        1,
        yoi_protocol::Event::ReasoningDelta {
            run_id: "r_1".into(),
            text: "hmm".into(),
        },
    );
    assert!(seen(&policies.chain(), &observer(), &reasoning).is_some());

    let file = library("yoi-policy-redact-reasoning");
    scratch.install(&examples, "yoi-policy-redact-reasoning", &file);
    let report = policies.reload(
        &scratch.sources(),
        &[entry("redact-reasoning", json!({"roles": ["observer"]}))],
    );
    assert!(report.applied, "{report:#?}");
    assert_eq!(report.loaded.len(), 1);
    assert_eq!(
        (
            report.loaded[0].name.as_str(),
            report.loaded[0].file.as_str()
        ),
        ("redact-reasoning", file.as_str())
    );
    assert_eq!(report.chain, ["redact-reasoning"]);
    // The next decision uses the new chain, for the very same event.
    assert_eq!(seen(&policies.chain(), &observer(), &reasoning), None);
}

#[test]
fn anything_refused_keeps_the_chain_in_use() {
    let (Some(examples), Some(test)) = (
        examples("anything_refused_keeps_the_chain_in_use"),
        test_plugins("anything_refused_keeps_the_chain_in_use"),
    ) else {
        return;
    };
    let scratch = Scratch::new();
    scratch.install(&examples, "yoi-policy-read-only", "read_only.so");
    let policies = scratch.policies();
    assert!(policies.reload(&scratch.sources(), &[read_only()]).applied);
    let in_use = policies.chain().clone();
    assert!(in_use.command(&observer(), &stop()).is_err());

    // A plugin of another ABI version dropped in.
    scratch.install(&test, "wrong_version", "newer.so");
    let report = policies.reload(&scratch.sources(), &[read_only()]);
    assert!(!report.applied);
    assert_eq!(report.refused.len(), 1, "{report:#?}");
    assert_eq!(report.refused[0].file.as_deref(), Some("newer.so"));
    assert!(
        report.refused[0].reason.contains("version 2"),
        "{report:#?}"
    );
    assert_eq!(report.loaded.len(), 1, "the good file still loaded");
    assert_eq!(report.chain, ["read-only"], "the chain in use");
    assert!(Arc::ptr_eq(&policies.chain(), &in_use));
    std::fs::remove_file(scratch.plugins().join("newer.so")).unwrap();

    // An entry naming no plugin.
    let report = policies.reload(&scratch.sources(), &[read_only(), entry("nope", json!({}))]);
    assert!(!report.applied);
    assert_eq!(report.refused[0].plugin.as_deref(), Some("nope"));
    assert!(
        report.refused[0].reason.contains("loaded: read-only"),
        "{}",
        report.refused[0]
    );
    assert!(Arc::ptr_eq(&policies.chain(), &in_use));

    // Two files reporting one name.
    scratch.install(&examples, "yoi-policy-read-only", "read_only_again.so");
    let report = policies.reload(&scratch.sources(), &[read_only()]);
    assert!(!report.applied);
    assert_eq!(
        report.refused[0].file.as_deref(),
        Some("read_only_again.so")
    );
    assert!(
        report.refused[0]
            .reason
            .contains("read_only.so already reports"),
        "{}",
        report.refused[0]
    );
    assert!(Arc::ptr_eq(&policies.chain(), &in_use));
    std::fs::remove_file(scratch.plugins().join("read_only_again.so")).unwrap();

    // Fixed: the next reload applies (an empty chain, as configured now).
    let report = policies.reload(&scratch.sources(), &[]);
    assert!(report.applied, "{report:#?}");
    assert_eq!(policies.chain().command(&observer(), &stop()), Ok(()));
}

#[test]
fn a_new_build_copied_over_the_old_file_is_what_the_next_reload_loads() {
    let Some(examples) = examples("a_new_build_copied_over_the_old_file") else {
        return;
    };
    let scratch = Scratch::new();
    scratch.install(&examples, "yoi-policy-read-only", "policy.so");
    let policies = scratch.policies();
    assert!(policies.reload(&scratch.sources(), &[read_only()]).applied);
    // Same path, new content: the loader must not hand back the library it mapped for
    // this path before.
    scratch.install(&examples, "yoi-policy-redact-reasoning", "policy.so");
    let report = policies.reload(
        &scratch.sources(),
        &[entry("redact-reasoning", json!({"roles": ["observer"]}))],
    );
    assert!(report.applied, "{report:#?}");
    assert_eq!(report.loaded[0].name, "redact-reasoning");
    assert_eq!(policies.chain().command(&observer(), &stop()), Ok(()));
}

#[test]
fn a_host_does_not_start_with_a_refused_plugin() {
    let scratch = Scratch::new();
    let result = Policies::open(
        scratch.loader(),
        ChainOptions::default(),
        &scratch.sources(),
        &[read_only()],
    );
    let report = result.expect_err("refused");
    assert!(!report.applied);
    assert!(
        report.refused[0].reason.contains("loaded: none"),
        "{report:#?}"
    );
}

#[test]
fn decisions_go_on_from_many_threads_while_the_chain_is_reloaded() {
    let Some(examples) = examples("decisions_go_on_while_the_chain_is_reloaded") else {
        return;
    };
    let scratch = Scratch::new();
    let file = library("yoi-policy-redact-reasoning");
    scratch.install(&examples, "yoi-policy-redact-reasoning", &file);
    let redact = [entry("redact-reasoning", json!({"roles": ["observer"]}))];
    let policies = scratch.policies();
    assert!(policies.reload(&scratch.sources(), &redact).applied);

    std::thread::scope(|s| {
        for thread in 0..4u64 {
            let policies = &policies;
            s.spawn(move || {
                for i in 0..500 {
                    let e = envelope(
                        thread * 1_000 + i,
                        yoi_protocol::Event::ReasoningDelta {
                            run_id: "r_1".into(),
                            text: "hmm".into(),
                        },
                    );
                    // Redacting chain: denied; empty chain: allowed. Never anything else.
                    let chain = policies.chain();
                    let denied = seen(&chain, &observer(), &e).is_none();
                    assert_eq!(denied, !chain.is_empty());
                }
            });
        }
        for round in 0..20 {
            let entries: &[_] = if round % 2 == 0 { &[] } else { &redact };
            assert!(policies.reload(&scratch.sources(), entries).applied);
        }
    });
}

#[test]
fn named_files_load_too_and_the_folder_holds_only_libraries() {
    let Some(examples) = examples("named_files_load_too") else {
        return;
    };
    let scratch = Scratch::new();
    // Not libraries, or hidden (an editor's or a copy's temporary file): skipped.
    std::fs::write(scratch.plugins().join("README.txt"), "notes").unwrap();
    std::fs::write(scratch.plugins().join(".partial.so"), "half a copy").unwrap();
    let sources = yoi_policy_host::PluginSources {
        dir: Some(scratch.plugins()),
        files: vec![examples.join(library("yoi-policy-read-only"))],
    };
    let policies = scratch.policies();
    let report = policies.reload(&sources, &[read_only()]);
    assert!(report.applied, "{report:#?}");
    assert_eq!(report.loaded.len(), 1);
    assert_eq!(report.loaded[0].file, library("yoi-policy-read-only"));
    assert!(policies.chain().command(&observer(), &stop()).is_err());
}
