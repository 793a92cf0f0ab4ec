//! Policy plugin `truncate-tool-output`: principals of the configured roles see tool
//! results cut to `max_bytes` (at a character boundary), followed by a marker saying how
//! much was cut. Applies to `tool_result` events and to the tool messages of snapshots
//! and transcripts.
//!
//! ```toml
//! [[policies]]
//! plugin = "truncate-tool-output"
//! settings = { roles = ["observer"], max_bytes = 4096 }
//! ```

use serde::Deserialize;
use yoi_policy::protocol::{Event, Message, Role as Speaker, WorkerSnapshot};
use yoi_policy::serde_json::{self, Value};
use yoi_policy::{
    EventItem, Interest, Policy, Principal, Role, SnapshotItem, TranscriptItem, Verdict,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// The roles that see truncated tool results.
    roles: Vec<Role>,
    /// The most bytes of a tool result they see (the marker comes on top).
    max_bytes: usize,
}

pub struct TruncateToolOutput {
    roles: Vec<Role>,
    max_bytes: usize,
}

impl TruncateToolOutput {
    fn applies_to(&self, principal: &Principal) -> bool {
        self.roles.contains(&principal.role)
    }

    /// Truncates every tool message; whether any was.
    fn truncate_messages(&self, messages: &mut [Message]) -> bool {
        let mut changed = false;
        for message in messages.iter_mut().filter(|m| m.role == Speaker::Tool) {
            changed |= truncate(&mut message.content, self.max_bytes);
        }
        changed
    }
}

impl Policy for TruncateToolOutput {
    const NAME: &'static str = "truncate-tool-output";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn new(settings: Value) -> Result<Self, String> {
        let Settings { roles, max_bytes } = serde_json::from_value(settings)
            .map_err(|e| format!("truncate-tool-output settings: {e}"))?;
        Ok(TruncateToolOutput { roles, max_bytes })
    }

    fn interest(&self) -> Interest {
        Interest::nothing()
            .for_roles(self.roles.iter().copied())
            .events(["tool_result"])
            .snapshots()
            .transcripts()
    }

    fn observe_event(&self, principal: &Principal, item: EventItem) -> Verdict<Event> {
        let mut event = item.event;
        let changed = match &mut event {
            Event::ToolResult { output, .. } => truncate(output, self.max_bytes),
            _ => false,
        };
        Verdict::redact_if(self.applies_to(principal) && changed, event)
    }

    fn observe_snapshot(
        &self,
        principal: &Principal,
        item: SnapshotItem,
    ) -> Verdict<WorkerSnapshot> {
        let mut snapshot = item.snapshot;
        let changed = self.truncate_messages(&mut snapshot.transcript);
        Verdict::redact_if(self.applies_to(principal) && changed, snapshot)
    }

    fn observe_transcript(
        &self,
        principal: &Principal,
        item: TranscriptItem,
    ) -> Verdict<Vec<Message>> {
        let mut messages = item.messages;
        let changed = self.truncate_messages(&mut messages);
        Verdict::redact_if(self.applies_to(principal) && changed, messages)
    }
}

/// Cuts `text` to at most `max_bytes` (at a character boundary) and appends a marker
/// saying how many bytes were cut; whether it was longer.
fn truncate(text: &mut String, max_bytes: usize) -> bool {
    if text.len() <= max_bytes {
        return false;
    }
    let total = text.len();
    let kept = text.floor_char_boundary(max_bytes);
    text.truncate(kept);
    text.push_str(&format!(
        "\n[tool output truncated: {} of {total} bytes cut by policy truncate-tool-output]",
        total - kept
    ));
    true
}

yoi_policy::export_policy!(TruncateToolOutput);

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(max_bytes: usize) -> TruncateToolOutput {
        TruncateToolOutput::new(serde_json::json!({"roles": ["observer"], "max_bytes": max_bytes}))
            .unwrap()
    }

    fn tool_message(content: &str) -> Message {
        Message {
            role: Speaker::Tool,
            content: content.into(),
            reasoning: None,
            tool_calls: vec![],
            tool_call_id: Some("t_1".into()),
            is_error: false,
            run_id: "r_1".into(),
        }
    }

    #[test]
    fn cuts_at_a_char_boundary_and_says_how_much() {
        let mut text = "aé€x".to_string(); // 1 + 2 + 3 + 1 bytes
        assert!(truncate(&mut text, 4)); // 4 falls inside "€": keep "aé"
        assert_eq!(
            text,
            "aé\n[tool output truncated: 4 of 7 bytes cut by policy truncate-tool-output]"
        );
        let mut short = "abc".to_string();
        assert!(!truncate(&mut short, 3));
        assert_eq!(short, "abc");
        let mut all = "abc".to_string();
        assert!(truncate(&mut all, 0));
        assert!(
            all.starts_with("\n[tool output truncated: 3 of 3 bytes"),
            "{all}"
        );
    }

    #[test]
    fn tool_results_are_cut_for_the_configured_roles() {
        let p = policy(2);
        let item = || EventItem {
            runtime_id: "local".into(),
            seq: 3,
            worker_id: Some("w_1".into()),
            at_ms: 0,
            event: Event::ToolResult {
                run_id: "r_1".into(),
                id: "t_1".into(),
                name: "read_file".into(),
                output: "hello".into(),
                is_error: false,
            },
        };
        let observer = Principal::new("o", Role::Observer);
        let Verdict::Redact(Event::ToolResult { output, .. }) = p.observe_event(&observer, item())
        else {
            panic!("the tool result is cut");
        };
        assert!(
            output.starts_with("he\n[tool output truncated: 3 of 5"),
            "{output}"
        );
        assert_eq!(p.observe_event(&Principal::owner(), item()), Verdict::Allow);

        // Transcripts: only tool messages are cut.
        let mut assistant = tool_message("long answer");
        assistant.role = Speaker::Assistant;
        let transcript = TranscriptItem {
            runtime_id: "local".into(),
            worker_id: "w_1".into(),
            messages: vec![assistant.clone(), tool_message("abcdef")],
        };
        let Verdict::Redact(messages) = p.observe_transcript(&observer, transcript) else {
            panic!("the transcript is cut");
        };
        assert_eq!(messages[0], assistant);
        assert!(
            messages[1]
                .content
                .starts_with("ab\n[tool output truncated: 4 of 6")
        );
        assert!(TruncateToolOutput::new(serde_json::json!({"roles": []})).is_err());
    }
}
