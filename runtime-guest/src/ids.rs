//! Identifier formats: workers `w_<n>`, runs `r_<n>` (runtime-wide counters from 1) and
//! the tool-call ids the core makes up when a model gives none.

/// Prefix of worker ids.
pub(crate) const WORKER_PREFIX: &str = "w_";
/// Prefix of run ids.
pub(crate) const RUN_PREFIX: &str = "r_";

/// The id of worker number `n`.
pub(crate) fn worker_id(n: u64) -> String {
    format!("{WORKER_PREFIX}{n}")
}

/// The id of run number `n`.
pub(crate) fn run_id(n: u64) -> String {
    format!("{RUN_PREFIX}{n}")
}

/// The id of a tool call the model left unnamed: `call_<run>_<step>_<index>`.
pub(crate) fn tool_call_id(run_id: &str, step: u32, index: u32) -> String {
    format!("call_{run_id}_{step}_{index}")
}

/// The number in an id of the form `<prefix><digits>`, if it has that form.
pub(crate) fn number(id: &str, prefix: &str) -> Option<u64> {
    let digits = id.strip_prefix(prefix)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Moves a "next number" counter past `id` when `id` has the form `<prefix><n>`, so
/// later ids never repeat an id already seen (used while applying events, which is how
/// restore rebuilds the counters).
pub(crate) fn bump_past(counter: &mut u64, id: &str, prefix: &str) {
    if let Some(n) = number(id, prefix) {
        *counter = (*counter).max(n.saturating_add(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(worker_id(1), "w_1");
        assert_eq!(run_id(42), "r_42");
        assert_eq!(tool_call_id("r_3", 2, 0), "call_r_3_2_0");
    }

    #[test]
    fn parses_only_prefix_and_digits() {
        assert_eq!(number("w_12", WORKER_PREFIX), Some(12));
        assert_eq!(number("w_", WORKER_PREFIX), None);
        assert_eq!(number("w_1x", WORKER_PREFIX), None);
        assert_eq!(number("w_-1", WORKER_PREFIX), None);
        assert_eq!(number("r_1", WORKER_PREFIX), None);
        assert_eq!(number("w_99999999999999999999999", WORKER_PREFIX), None);
    }

    #[test]
    fn bump_only_moves_forward() {
        let mut next = 5;
        bump_past(&mut next, "w_2", WORKER_PREFIX);
        assert_eq!(next, 5);
        bump_past(&mut next, "w_9", WORKER_PREFIX);
        assert_eq!(next, 10);
        bump_past(&mut next, "nonsense", WORKER_PREFIX);
        assert_eq!(next, 10);
        bump_past(&mut next, &format!("w_{}", u64::MAX), WORKER_PREFIX);
        assert_eq!(next, u64::MAX);
    }
}
