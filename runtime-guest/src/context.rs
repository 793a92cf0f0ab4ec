//! The context window: which transcript messages a model request carries.
//!
//! A model refuses a prompt longer than its window, and a worker's transcript only
//! grows. So every model request carries the system prompt and the most recent messages
//! that fit the worker's prompt-token budget; the transcript itself is never changed.
//!
//! - **Units.** Messages are left out in whole units, never one by one: before the run
//!   in flight a unit is a whole earlier run (its input, answers, tool calls and
//!   results), so a kept history always starts at a user message and never separates a
//!   tool call from its result; within the run in flight a unit is one model step
//!   (the assistant message and the tool results answering its calls).
//! - **Always kept:** the system prompt, the run's own input and the run's latest
//!   step. If those alone exceed the budget the request is sent anyway (and the
//!   provider's own `context_length` error fails the run: one failure path, whoever
//!   counts better).
//! - **Then, newest first,** the run's earlier steps, then earlier runs, as long as they
//!   fit; the first unit that does not fit ends the walk, so what is kept is recent
//!   and contiguous.
//! - **Estimates.** Tokens are estimated from bytes (4 per token, plus a few per
//!   message for the chat template) and scaled by a per-worker calibration: the ratio
//!   of the provider's reported `prompt_tokens` to the estimate of the request it
//!   answered, when the provider counted more (never less: see [`MIN_CALIBRATION`]).
//!   Calibration is live state only: after a restart it starts from the plain estimate
//!   until the next answer.

use yoi_protocol::{Message, ModelBudget, Role};

/// Calibration is kept in thousandths (integer arithmetic: native and wasm agree).
pub(crate) const UNCALIBRATED: u32 = 1000;
/// Calibration only ever raises estimates (a provider counting fewer tokens than the
/// estimate leaves it as it is): a request estimated too small fails its run, one
/// estimated too large only leaves out a little more history. Short requests are
/// dominated by per-message overheads that vary between servers, so a factor learned on
/// one would mislead on a longer one.
const MIN_CALIBRATION: u32 = UNCALIBRATED;
/// ... and by at most this factor.
const MAX_CALIBRATION: u32 = 4000;

/// Bytes per token of the plain estimate.
const BYTES_PER_TOKEN: u64 = 4;
/// Tokens a chat template spends around each message (role markers, separators).
const PER_MESSAGE: u64 = 4;

/// Uncalibrated token estimate of one message as a provider would receive it.
pub(crate) fn estimate(message: &Message) -> u64 {
    let mut bytes = message.content.len() as u64;
    for call in &message.tool_calls {
        bytes += (call.id.len() + call.name.len() + call.arguments.len()) as u64 + 16;
    }
    if let Some(id) = &message.tool_call_id {
        bytes += id.len() as u64;
    }
    bytes.div_ceil(BYTES_PER_TOKEN) + PER_MESSAGE
}

/// Uncalibrated token estimate of a system prompt.
pub(crate) fn estimate_system(system_prompt: Option<&str>) -> u64 {
    system_prompt.map_or(0, |p| {
        (p.len() as u64).div_ceil(BYTES_PER_TOKEN) + PER_MESSAGE
    })
}

/// `raw` scaled by a calibration in thousandths.
fn calibrated(raw: u64, calibration: u32) -> u64 {
    raw.saturating_mul(u64::from(calibration)).div_ceil(1000)
}

/// The calibration that maps the raw estimate of a request to what the provider
/// reported for it.
pub(crate) fn calibration(reported: u64, raw_estimate: u64) -> Option<u32> {
    if reported == 0 || raw_estimate == 0 {
        return None;
    }
    let ratio = reported.saturating_mul(1000) / raw_estimate;
    Some(
        u32::try_from(ratio)
            .unwrap_or(u32::MAX)
            .clamp(MIN_CALIBRATION, MAX_CALIBRATION),
    )
}

/// The prompt-token budget of a worker: its model's (an exact name wins over a
/// `provider/*` pattern), lowered by the worker's own `context_tokens`.
pub(crate) fn budget(budgets: &[ModelBudget], model: &str, own: Option<u32>) -> Option<u32> {
    let exact = budgets.iter().find(|b| b.model == model);
    let pattern = || {
        budgets.iter().find(|b| {
            b.model.strip_suffix("/*").is_some_and(|provider| {
                model
                    .strip_prefix(provider)
                    .is_some_and(|rest| rest.starts_with('/'))
            })
        })
    };
    let model_budget = exact.or_else(pattern).map(|b| b.prompt_tokens);
    match (model_budget, own) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// What a model request carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Selection {
    pub messages: Vec<Message>,
    /// Transcript messages left out.
    pub omitted: u32,
    /// Raw (uncalibrated) estimate of the request as sent, system prompt included.
    pub raw_estimate: u64,
    /// Calibrated estimate of the request as sent.
    pub estimated: u64,
}

/// Chooses the messages of a model request (see the module docs). `run_start` is the
/// index of the run's input message in `transcript`.
pub(crate) fn select(
    transcript: &[Message],
    run_start: usize,
    system_prompt: Option<&str>,
    budget: Option<u32>,
    calibration: u32,
) -> Selection {
    let costs: Vec<u64> = transcript.iter().map(estimate).collect();
    let system = estimate_system(system_prompt);
    let total_raw = system + costs.iter().sum::<u64>();
    let everything = |raw| Selection {
        messages: transcript.to_vec(),
        omitted: 0,
        raw_estimate: raw,
        estimated: calibrated(raw, calibration),
    };
    let Some(budget) = budget else {
        return everything(total_raw);
    };
    let budget = u64::from(budget);
    if calibrated(total_raw, calibration) <= budget || run_start >= transcript.len() {
        return everything(total_raw);
    }

    let units = units(transcript, run_start);
    let cost = |range: &std::ops::Range<usize>| {
        costs
            .get(range.clone())
            .map_or(0, |c| c.iter().sum::<u64>())
    };
    // Units are in transcript order; the run's input is a unit of its own, and the run's
    // latest step (if any) is the last unit.
    let input_unit = units.iter().position(|u| u.start == run_start).unwrap_or(0);
    let last = units.len() - 1;
    let mut keep = vec![false; units.len()];
    keep[input_unit] = true;
    keep[last] = true;
    let mut raw = system + cost(&units[input_unit]);
    if last != input_unit {
        raw += cost(&units[last]);
    }
    // Newest first: the run's earlier steps, then the earlier runs.
    for i in (0..last).rev().filter(|&i| i != input_unit) {
        let with = raw + cost(&units[i]);
        if calibrated(with, calibration) > budget {
            break;
        }
        raw = with;
        keep[i] = true;
    }
    let mut messages = Vec::new();
    let mut omitted = 0u32;
    for (unit, kept) in units.iter().zip(&keep) {
        if *kept {
            messages.extend(transcript[unit.clone()].iter().cloned());
        } else {
            omitted = omitted.saturating_add(u32::try_from(unit.len()).unwrap_or(u32::MAX));
        }
    }
    Selection {
        messages,
        omitted,
        raw_estimate: raw,
        estimated: calibrated(raw, calibration),
    }
}

/// The transcript cut into units (ranges, in order): whole runs before `run_start`, the
/// run's input, then one unit per step of the run in flight (an assistant message and
/// the tool results after it).
fn units(transcript: &[Message], run_start: usize) -> Vec<std::ops::Range<usize>> {
    let mut units = Vec::new();
    let mut start = 0;
    for i in 1..=run_start {
        if i == run_start || transcript[i].run_id != transcript[start].run_id {
            units.push(start..i);
            start = i;
        }
    }
    units.push(run_start..run_start + 1);
    let mut start = run_start + 1;
    for i in run_start + 2..=transcript.len() {
        if i == transcript.len() || transcript[i].role == Role::Assistant {
            units.push(start..i);
            start = i;
        }
    }
    units.retain(|u| !u.is_empty());
    units
}

#[cfg(test)]
mod tests {
    use super::*;
    use yoi_protocol::ToolCall;

    fn msg(role: Role, run: &str, content: &str) -> Message {
        Message {
            role,
            content: content.to_string(),
            reasoning: None,
            tool_calls: Vec::new(),
            tool_call_id: None,
            is_error: false,
            run_id: run.to_string(),
        }
    }

    fn call(run: &str, id: &str) -> Message {
        let mut m = msg(Role::Assistant, run, "");
        m.tool_calls.push(ToolCall {
            id: id.to_string(),
            name: "read_file".to_string(),
            arguments: "{}".to_string(),
        });
        m
    }

    fn result(run: &str, id: &str, content: &str) -> Message {
        let mut m = msg(Role::Tool, run, content);
        m.tool_call_id = Some(id.to_string());
        m
    }

    /// Three earlier runs of ~100 tokens each, then run r_4 with two tool steps.
    fn conversation() -> Vec<Message> {
        let big = "x".repeat(380);
        let mut t = Vec::new();
        for run in ["r_1", "r_2", "r_3"] {
            t.push(msg(Role::User, run, "question"));
            t.push(msg(Role::Assistant, run, &big));
        }
        t.push(msg(Role::User, "r_4", "do it"));
        t.push(call("r_4", "c1"));
        t.push(result("r_4", "c1", &big));
        t.push(call("r_4", "c2"));
        t.push(result("r_4", "c2", "short"));
        t
    }

    #[test]
    fn units_keep_runs_and_steps_whole() {
        let t = conversation();
        assert_eq!(units(&t, 6), vec![0..2, 2..4, 4..6, 6..7, 7..9, 9..11]);
        assert_eq!(units(&t[..7], 6), vec![0..2, 2..4, 4..6, 6..7]);
        assert_eq!(units(&t[..1], 0), vec![0..1]);
    }

    #[test]
    fn everything_fits_or_no_budget() {
        let t = conversation();
        let all = select(&t, 6, Some("be brief"), None, UNCALIBRATED);
        assert_eq!((all.messages.len(), all.omitted), (t.len(), 0));
        let fits = select(&t, 6, Some("be brief"), Some(10_000), UNCALIBRATED);
        assert_eq!(fits.messages, t);
        assert_eq!(fits.raw_estimate, all.raw_estimate);
    }

    #[test]
    fn trims_oldest_whole_units_and_keeps_input_and_latest_step() {
        let t = conversation();
        let full = select(&t, 6, None, None, UNCALIBRATED).estimated;
        // Room for everything but about one and a half earlier runs.
        let s = select(&t, 6, None, Some((full - 150) as u32), UNCALIBRATED);
        assert_eq!(s.omitted, 4, "two whole earlier runs left out");
        assert_eq!(s.messages[..], t[4..]);
        assert!(s.estimated <= full - 150);
        // A tight budget keeps only the input and the latest step, and never splits a
        // tool call from its result.
        let s = select(&t, 6, None, Some(20), UNCALIBRATED);
        assert_eq!(s.messages, vec![t[6].clone(), t[9].clone(), t[10].clone()]);
        assert_eq!(s.omitted, 8);
        assert!(
            s.estimated > 20,
            "the mandatory part is sent even over budget"
        );
    }

    #[test]
    fn the_walk_stops_at_the_first_unit_that_does_not_fit() {
        let t = conversation();
        // Room for input + latest step + the small r_3 answer? r_4's first step (big)
        // does not fit, so nothing older is taken even if it would.
        let mandatory = select(&t, 6, None, Some(1), UNCALIBRATED).estimated;
        let s = select(&t, 6, None, Some((mandatory + 60) as u32), UNCALIBRATED);
        assert_eq!(s.messages, vec![t[6].clone(), t[9].clone(), t[10].clone()]);
    }

    #[test]
    fn calibration_scales_estimates() {
        let t = conversation();
        let raw = select(&t, 6, None, None, UNCALIBRATED).raw_estimate;
        let budget = raw as u32; // fits exactly uncalibrated
        assert_eq!(select(&t, 6, None, Some(budget), UNCALIBRATED).omitted, 0);
        // The provider counted twice as many tokens: the same budget now trims.
        let twice = calibration(raw * 2, raw).unwrap();
        assert_eq!(twice, 2000);
        assert!(select(&t, 6, None, Some(budget), twice).omitted > 0);
        assert_eq!(calibration(1, 1_000_000), Some(MIN_CALIBRATION));
        assert_eq!(calibration(0, 10), None);
    }

    #[test]
    fn budgets_resolve_exact_then_provider_pattern_then_own() {
        let b = vec![
            ModelBudget {
                model: "openai/*".into(),
                prompt_tokens: 100,
            },
            ModelBudget {
                model: "openai/small".into(),
                prompt_tokens: 10,
            },
        ];
        assert_eq!(budget(&b, "openai/small", None), Some(10));
        assert_eq!(budget(&b, "openai/big", None), Some(100));
        assert_eq!(budget(&b, "openai/big", Some(50)), Some(50));
        assert_eq!(budget(&b, "openaix/big", None), None);
        assert_eq!(budget(&b, "scripted", Some(7)), Some(7));
        assert_eq!(budget(&b, "scripted", None), None);
    }
}
