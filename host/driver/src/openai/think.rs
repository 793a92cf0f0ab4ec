//! Splits `<think>…</think>` out of streamed content (models served without a reasoning
//! parser put their reasoning inline). Tags may be cut anywhere between two deltas, so
//! a possible tag prefix at the end of a delta is held back until the next one.

const OPEN: &str = "<think>";
const CLOSE: &str = "</think>";

/// A piece of content: answer text or reasoning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Piece {
    Text(String),
    Reasoning(String),
}

#[derive(Debug, Default)]
pub(crate) struct ThinkSplitter {
    inside: bool,
    /// A tail that may be the start of a tag.
    held: String,
}

impl ThinkSplitter {
    /// Splits the next content delta.
    pub fn push(&mut self, delta: &str, out: &mut Vec<Piece>) {
        let mut input = std::mem::take(&mut self.held);
        input.push_str(delta);
        let mut rest = input.as_str();
        loop {
            let tag = if self.inside { CLOSE } else { OPEN };
            if let Some(at) = rest.find(tag) {
                self.emit(&rest[..at], out);
                self.inside = !self.inside;
                rest = &rest[at + tag.len()..];
                continue;
            }
            // Hold back the longest suffix that is a proper prefix of the tag.
            let keep = (1..tag.len())
                .rev()
                .find(|&n| {
                    rest.len() >= n
                        && rest.is_char_boundary(rest.len() - n)
                        && tag.starts_with(&rest[rest.len() - n..])
                })
                .unwrap_or(0);
            self.emit(&rest[..rest.len() - keep], out);
            self.held = rest[rest.len() - keep..].to_string();
            return;
        }
    }

    /// The content ended: whatever was held back is content after all.
    pub fn finish(&mut self, out: &mut Vec<Piece>) {
        let held = std::mem::take(&mut self.held);
        self.emit(&held, out);
    }

    fn emit(&self, text: &str, out: &mut Vec<Piece>) {
        if text.is_empty() {
            return;
        }
        let piece = if self.inside {
            Piece::Reasoning(text.to_string())
        } else {
            Piece::Text(text.to_string())
        };
        out.push(piece);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn split(deltas: &[&str]) -> (String, String) {
        let mut s = ThinkSplitter::default();
        let mut out = Vec::new();
        for d in deltas {
            s.push(d, &mut out);
        }
        s.finish(&mut out);
        let mut text = String::new();
        let mut reasoning = String::new();
        for p in out {
            match p {
                Piece::Text(t) => text.push_str(&t),
                Piece::Reasoning(r) => reasoning.push_str(&r),
            }
        }
        (text, reasoning)
    }

    #[test]
    fn splits_reasoning_out_of_content() {
        assert_eq!(
            split(&["<think>plan", " it</think>", "Answer."]),
            ("Answer.".into(), "plan it".into())
        );
        assert_eq!(
            split(&["no tags <b>"]),
            ("no tags <b>".into(), String::new())
        );
        assert_eq!(split(&["a <thi"]), ("a <thi".into(), String::new()));
        assert_eq!(
            split(&["<", "think", ">x</", "think>y"]),
            ("y".into(), "x".into())
        );
        assert_eq!(split(&["é<think>ü</think>"]), ("é".into(), "ü".into()));
    }

    proptest! {
        /// Wherever the deltas are cut, the result is the same as in one piece.
        #[test]
        fn cuts_do_not_matter(reasoning in "[a-z <>/]{0,20}", text in "[a-z <>/]{0,20}", cuts in proptest::collection::vec(0usize..60, 0..6)) {
            prop_assume!(!reasoning.contains("</think>") && !text.contains("<think>"));
            let whole = format!("<think>{reasoning}</think>{text}");
            let mut points: Vec<usize> = cuts.into_iter().map(|c| c % (whole.len() + 1)).collect();
            points.sort();
            let mut deltas = Vec::new();
            let mut last = 0;
            for p in points { deltas.push(&whole[last..p]); last = p; }
            deltas.push(&whole[last..]);
            prop_assert_eq!(split(&deltas), split(&[whole.as_str()]));
            prop_assert_eq!(split(&[whole.as_str()]), (text.clone(), reasoning.clone()));
        }
    }
}
