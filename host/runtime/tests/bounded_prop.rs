//! Passivation is invisible: random commands, sent to several workers at once, give a
//! runtime that keeps one worker resident exactly the events, transcripts and snapshots
//! of a runtime that keeps them all (the model).

mod common;

use std::collections::HashMap;

use common::*;
use proptest::prelude::*;
use serde_json::Value;
use yoi_driver::ScriptedConfig;
use yoi_protocol::{Cursor, Envelope, Limits};
use yoi_runtime::{LocalRuntime, LocalRuntimeConfig};

const WORKERS: usize = 4;

#[derive(Debug, Clone)]
enum Op {
    /// An input (its text picks the scripted answer), waited for to its end.
    Input(String),
    /// Stop the worker; later commands to it are refused alike.
    Stop,
    /// Read the transcript (served from the store while passivated).
    Read,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => prop_oneof![
            (0..40u32).prop_map(|n| format!("stream {n}")),
            Just("hello".to_string()),
            Just("list files".to_string()),
        ]
        .prop_map(Op::Input),
        1 => Just(Op::Stop),
        2 => Just(Op::Read),
    ]
}

fn runtime(dir: &std::path::Path, max_resident_workers: u32) -> LocalRuntime {
    let mut config = LocalRuntimeConfig::new(dir);
    config.limits = Limits {
        max_resident_workers,
        ..Limits::default()
    };
    open(
        Kind::Native,
        builder_with(config, ScriptedConfig::default()),
    )
}

/// What one worker's commands answered, in order (run ids left out: they are numbered
/// runtime-wide, and workers run concurrently).
async fn drive(rt: &LocalRuntime, worker: &str, ops: &[Op]) -> Vec<String> {
    let mut answers = Vec::new();
    for op in ops {
        let answer = match op {
            Op::Input(text) => {
                let mut live = rt.events().subscribe();
                match rt.send_input(worker, input(text)).await {
                    Ok(run) => {
                        // A run's last event is its worker going back to idle.
                        collect_until(&mut live, |e| {
                            back_to_idle(e) && e.worker_id.as_deref() == Some(worker)
                        })
                        .await;
                        format!("ran {}", run.is_empty())
                    }
                    Err(e) => format!("refused {:?}", e.code()),
                }
            }
            Op::Stop => match rt.stop(worker).await {
                Ok(info) => format!("stopped {:?}", info.status),
                Err(e) => format!("refused {:?}", e.code()),
            },
            Op::Read => match rt.transcript(worker).await {
                Ok(t) => format!("{} messages", t.len()),
                Err(e) => format!("refused {:?}", e.code()),
            },
        };
        answers.push(answer);
    }
    answers
}

/// A worker's events as an observer sees them, with times left out and run ids
/// renamed in order of appearance; and those names.
fn observed(rt: &LocalRuntime, worker: &str) -> (Vec<Value>, HashMap<String, String>) {
    let cursor = Cursor::new(rt.events().epoch(), 0);
    let page = rt.events().replay(cursor, Some(worker), 1_000_000).unwrap();
    let mut runs: HashMap<String, String> = HashMap::new();
    let events = page
        .events
        .iter()
        .map(|e: &std::sync::Arc<Envelope>| {
            if let Some(run) = e.event.run_id() {
                let n = runs.len();
                runs.entry(run.to_string())
                    .or_insert_with(|| format!("run#{n}"));
            }
            let mut v = serde_json::to_value(&e.event).unwrap();
            normalize(&mut v, &runs);
            v
        })
        .collect();
    (events, runs)
}

fn normalize(v: &mut Value, runs: &HashMap<String, String>) {
    match v {
        Value::String(s) => {
            if let Some(r) = runs.get(s.as_str()) {
                *s = r.clone();
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| normalize(i, runs)),
        Value::Object(map) => {
            map.remove("created_at_ms");
            map.remove("at_ms");
            map.values_mut().for_each(|i| normalize(i, runs));
        }
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn a_bounded_runtime_answers_like_an_unbounded_one(
        ops in prop::collection::vec(prop::collection::vec(op(), 1..8), WORKERS),
    ) {
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (model, bounded) = tokio.block_on(async {
            let mut outcomes = Vec::new();
            for max_resident in [1_000, 1] {
                let dir = tempfile::tempdir().unwrap();
                let rt = runtime(dir.path(), max_resident);
                let mut ids = Vec::new();
                for i in 0..WORKERS {
                    ids.push(rt.create_worker(spec(&format!("p{i}"), &[])).await.unwrap().id);
                }
                // Every worker's commands at once, each worker's in order.
                let answers = futures_util::future::join_all(
                    ids.iter().zip(&ops).map(|(id, ops)| drive(&rt, id, ops)),
                )
                .await;
                let mut seen = Vec::new();
                for id in &ids {
                    let (events, runs) = observed(&rt, id);
                    let mut transcript =
                        serde_json::to_value(rt.transcript(id).await.unwrap()).unwrap();
                    normalize(&mut transcript, &runs);
                    let mut snapshot = serde_json::to_value(rt.snapshot(id).await.unwrap().0).unwrap();
                    normalize(&mut snapshot, &runs);
                    seen.push((events, transcript, snapshot));
                }
                let activations = rt.stats().activations;
                rt.shutdown().await;
                outcomes.push((answers, seen, activations));
            }
            let bounded = outcomes.pop().unwrap();
            (outcomes.pop().unwrap(), bounded)
        });
        prop_assert_eq!(&bounded.0, &model.0, "command answers");
        for (w, (b, m)) in bounded.1.iter().zip(&model.1).enumerate() {
            prop_assert_eq!(&b.0, &m.0, "events of worker {}", w);
            prop_assert_eq!(&b.1, &m.1, "transcript of worker {}", w);
            prop_assert_eq!(&b.2, &m.2, "snapshot of worker {}", w);
        }
        prop_assert_eq!(model.2, 0, "the model never passivates");
        // A worker runs when an input comes before any stop: a stopped worker refuses
        // input (`worker_stopped`) without being activated.
        let busy = ops
            .iter()
            .filter(|w| {
                w.iter()
                    .take_while(|o| !matches!(o, Op::Stop))
                    .any(|o| matches!(o, Op::Input(_)))
            })
            .count();
        if busy >= 2 {
            prop_assert!(bounded.2 > 0, "two workers ran with one resident: activations");
        }
    }
}
