//! `core.*`: the runtime core alone, native vs wasm, on one scripted workload.
//!
//! Every worker gets one run of two model steps: a streamed tool call, the tool's
//! result, then an answer of `DELTAS` text deltas. The driver here is a plain loop (no
//! I/O, no threads), so the figures are the cost of the core and, for wasm, of crossing
//! the component boundary.

use std::time::Instant;

use yoi_core::{Core, GuestLimits, NativeCore, WasmCore, WasmEngine};
use yoi_protocol::{Completion, Effect, FinishReason, Input, Usage, WorkerSpec};

use crate::results::{Results, Samples};

const WORKERS: usize = 1_000;
const DELTAS: usize = 200;
/// Completions per `deliver` call, as the runtime's actor batches them under load.
const BATCH: usize = 256;

struct Outcome {
    completions: u64,
    events: u64,
    seconds: f64,
}

fn drive(core: &mut dyn Core) -> anyhow::Result<Outcome> {
    let mut workers = Vec::with_capacity(WORKERS);
    for i in 0..WORKERS {
        let spec = WorkerSpec {
            name: format!("bench{i}"),
            model: "scripted".into(),
            system_prompt: None,
            tools: vec!["list_dir".into()],
            max_steps: None,
            context_tokens: None,
        };
        workers.push(core.create_worker(0, spec)?.id);
    }
    let mut events = core.pull_events(usize::MAX)?.len() as u64;
    let started = Instant::now();
    for (i, id) in workers.iter().enumerate() {
        let input = Input {
            text: format!("please list files {i}"),
            request_id: None,
        };
        core.send_input(1, id, input)?;
    }
    let mut completions = 0u64;
    let mut pending: Vec<Completion> = Vec::with_capacity(BATCH);
    let mut now = 2;
    loop {
        let effects = core.pull_effects(usize::MAX)?;
        if effects.is_empty() {
            break;
        }
        for effect in effects {
            match effect {
                Effect::CallModel(req) if req.step == 1 => tool_call(req.call_id, &mut pending),
                Effect::CallModel(req) => answer(req.call_id, &mut pending),
                Effect::CallTool(req) => pending.push(Completion::ToolDone {
                    call_id: req.call_id,
                    output: "notes.txt\nplan.md\n".into(),
                    is_error: false,
                }),
                Effect::Abort { .. } => {}
            }
            while pending.len() >= BATCH {
                let rest = pending.split_off(BATCH);
                completions += pending.len() as u64;
                core.deliver(now, std::mem::replace(&mut pending, rest))?;
                events += core.pull_events(usize::MAX)?.len() as u64;
                now += 1;
            }
        }
        if !pending.is_empty() {
            completions += pending.len() as u64;
            core.deliver(now, std::mem::take(&mut pending))?;
            events += core.pull_events(usize::MAX)?.len() as u64;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    for id in &workers {
        let info = core.get_worker(id)?;
        anyhow::ensure!(
            info.run_count == 1 && info.current_run.is_none(),
            "run of {id} did not finish"
        );
    }
    Ok(Outcome {
        completions,
        events,
        seconds,
    })
}

fn tool_call(call_id: u64, out: &mut Vec<Completion>) {
    out.push(Completion::ToolCallDelta {
        call_id,
        index: 0,
        id: Some("call_1".into()),
        name: Some("list_dir".into()),
        arguments: String::new(),
    });
    for piece in ["{\"pa", "th\":", "\".\"}"] {
        out.push(Completion::ToolCallDelta {
            call_id,
            index: 0,
            id: None,
            name: None,
            arguments: piece.into(),
        });
    }
    out.push(Completion::ModelDone {
        call_id,
        finish_reason: FinishReason::ToolCalls,
    });
}

fn answer(call_id: u64, out: &mut Vec<Completion>) {
    for i in 0..DELTAS {
        out.push(Completion::TextDelta {
            call_id,
            text: format!("tok{i} "),
        });
    }
    out.push(Completion::Usage {
        call_id,
        usage: Usage {
            input_tokens: 40,
            output_tokens: DELTAS as u64,
        },
    });
    out.push(Completion::ModelDone {
        call_id,
        finish_reason: FinishReason::Stop,
    });
}

pub fn run(results: &mut Results) -> anyhow::Result<()> {
    let rounds = crate::results::rounds();
    println!(
        "core: {WORKERS} workers x (tool call + {DELTAS} text deltas), batches of {BATCH}; \
         {rounds} rounds, native and wasm alternating"
    );
    let engine = WasmEngine::new()?;
    let path = yoi_core::guest_component_path().map_err(anyhow::Error::msg)?;
    let component = yoi_core::load_component(&engine, &path)?;
    let mut figures: [Samples; 5] = Default::default();
    for _ in 0..rounds {
        // A fresh core per round, so every round does the same work from the same state.
        let n = drive(&mut NativeCore::new())?;
        let mut wasm = WasmCore::instantiate(&engine, &component, GuestLimits::default())?;
        let w = drive(&mut wasm)?;
        anyhow::ensure!(
            n.events == w.events && n.completions == w.completions,
            "native and wasm cores disagree: {} vs {} events",
            n.events,
            w.events
        );
        let native_rate = n.completions as f64 / n.seconds;
        let wasm_rate = w.completions as f64 / w.seconds;
        figures[0].push(native_rate);
        figures[1].push(wasm_rate);
        figures[2].push(n.events as f64 / n.seconds);
        figures[3].push(w.events as f64 / w.seconds);
        // Paired per round: both cores ran under the same conditions.
        figures[4].push(wasm_rate / native_rate);
    }
    let names = [
        "core.native.completions_per_s",
        "core.wasm.completions_per_s",
        "core.native.events_per_s",
        "core.wasm.events_per_s",
        "core.wasm_over_native",
    ];
    results.record_medians(names, &figures);
    Ok(())
}
