//! Wrapping styled text to a width.
//!
//! The console keeps every cell's wrapped lines in a cache, so it needs the lines
//! themselves (and their count) rather than a widget that wraps while it draws.
//! Text from the network is also made safe here: control characters (a model could
//! stream escape sequences) are dropped and tabs become spaces.

use ratatui::style::Style;
use ratatui::text::{Line, Span};
use unicode_width::UnicodeWidthChar;

/// How a paragraph breaks when it is wider than the screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Breaks {
    /// Between words; a word wider than the line is cut.
    Words,
    /// Anywhere (code and tool output keep their spacing).
    Chars,
}

/// One logical line: a prefix for its first screen line, one for the lines it wraps
/// onto (list indentation, quote bars, code gutters) and its text.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Para {
    pub first: Vec<Span<'static>>,
    pub rest: Vec<Span<'static>>,
    pub body: Vec<Span<'static>>,
    pub breaks: Option<Breaks>,
}

impl Para {
    /// A paragraph without prefixes that breaks between words.
    pub fn text(body: Vec<Span<'static>>) -> Self {
        Para {
            body,
            ..Para::default()
        }
    }

    /// The same prefix on every screen line.
    pub fn prefixed(prefix: Vec<Span<'static>>, body: Vec<Span<'static>>) -> Self {
        Para {
            first: prefix.clone(),
            rest: prefix,
            body,
            breaks: None,
        }
    }

    pub fn breaking(mut self, breaks: Breaks) -> Self {
        self.breaks = Some(breaks);
        self
    }

    /// Wraps to `width` columns (at least one line, also for an empty paragraph).
    #[cfg(test)]
    pub fn wrap(&self, width: u16) -> Vec<Line<'static>> {
        let mut out = Vec::new();
        self.wrap_into(width, &mut out);
        out
    }

    /// [`Para::wrap`], appending to `out`.
    pub fn wrap_into(&self, width: u16, out: &mut Vec<Line<'static>>) {
        let mut w = Wrapper::new(
            usize::from(width.max(1)),
            &self.first,
            &self.rest,
            self.breaks.unwrap_or(Breaks::Words),
            out,
        );
        for span in &self.body {
            for c in span.content.chars() {
                w.push(c, span.style);
            }
        }
        w.finish();
    }
}

/// Width of `text` on screen as [`Para::wrap`] counts it.
pub fn display_width(text: &str) -> usize {
    text.chars().map(char_width).sum()
}

fn char_width(c: char) -> usize {
    if c == '\t' {
        TAB.len()
    } else {
        c.width().unwrap_or(0)
    }
}

const TAB: &str = "    ";

/// A run of characters in one style, being collected for a word or a space.
type Piece = (String, Style);

struct Wrapper<'a> {
    width: usize,
    rest: &'a [Span<'static>],
    breaks: Breaks,
    out: &'a mut Vec<Line<'static>>,
    /// The screen line being filled.
    line: Vec<Span<'static>>,
    line_width: usize,
    /// Width of the prefix at the start of `line`.
    prefix_width: usize,
    /// The word being collected (`Words` mode), not yet placed.
    word: Vec<Piece>,
    word_width: usize,
    /// Spaces seen after the last placed word, placed only before a next word.
    space: Vec<Piece>,
    space_width: usize,
}

impl<'a> Wrapper<'a> {
    fn new(
        width: usize,
        first: &'a [Span<'static>],
        rest: &'a [Span<'static>],
        breaks: Breaks,
        out: &'a mut Vec<Line<'static>>,
    ) -> Self {
        let mut w = Wrapper {
            width,
            rest,
            breaks,
            out,
            line: Vec::new(),
            line_width: 0,
            prefix_width: 0,
            word: Vec::new(),
            word_width: 0,
            space: Vec::new(),
            space_width: 0,
        };
        w.start_line(first);
        w
    }

    fn start_line(&mut self, prefix: &[Span<'static>]) {
        self.line = prefix.to_vec();
        self.prefix_width = prefix.iter().map(|s| display_width(&s.content)).sum();
        // A prefix wider than the screen would leave no room: show the text anyway.
        if self.prefix_width >= self.width {
            self.line.clear();
            self.prefix_width = 0;
        }
        self.line_width = self.prefix_width;
    }

    fn break_line(&mut self) {
        let line = std::mem::take(&mut self.line);
        self.out.push(Line::from(line));
        let rest = self.rest;
        self.start_line(rest);
    }

    fn push(&mut self, c: char, style: Style) {
        if c == '\t' {
            for t in TAB.chars() {
                self.push(t, style);
            }
            return;
        }
        if c.is_control() {
            return;
        }
        let cw = char_width(c);
        match self.breaks {
            Breaks::Chars => self.place_char(c, cw, style),
            Breaks::Words if c == ' ' => {
                self.flush_word();
                append(&mut self.space, c, style);
                self.space_width += cw;
            }
            Breaks::Words => {
                append(&mut self.word, c, style);
                self.word_width += cw;
            }
        }
    }

    /// Places one character, breaking first when it does not fit.
    fn place_char(&mut self, c: char, cw: usize, style: Style) {
        if self.line_width + cw > self.width && self.line_width > self.prefix_width {
            self.break_line();
        }
        push_piece(&mut self.line, c.to_string(), style);
        self.line_width += cw;
    }

    /// Places the collected word (with the spaces before it), on a new line if needed.
    fn flush_word(&mut self) {
        if self.word.is_empty() {
            return;
        }
        let at_line_start = self.line_width == self.prefix_width;
        let fits = self.line_width + self.space_width + self.word_width <= self.width;
        if fits {
            if !at_line_start {
                for (text, style) in self.space.drain(..) {
                    push_piece(&mut self.line, text, style);
                }
                self.line_width += self.space_width;
            }
        } else if !at_line_start {
            self.break_line();
        }
        self.space.clear();
        self.space_width = 0;
        let word = std::mem::take(&mut self.word);
        self.word_width = 0;
        if self.line_width + word_width(&word) <= self.width {
            for (text, style) in word {
                self.line_width += display_width(&text);
                push_piece(&mut self.line, text, style);
            }
        } else {
            // Longer than a whole line: cut it.
            for (text, style) in word {
                for c in text.chars() {
                    self.place_char(c, char_width(c), style);
                }
            }
        }
    }

    fn finish(mut self) {
        self.flush_word();
        let line = std::mem::take(&mut self.line);
        self.out.push(Line::from(line));
    }
}

fn word_width(word: &[Piece]) -> usize {
    word.iter().map(|(t, _)| display_width(t)).sum()
}

fn append(pieces: &mut Vec<Piece>, c: char, style: Style) {
    match pieces.last_mut() {
        Some((text, s)) if *s == style => text.push(c),
        _ => pieces.push((c.to_string(), style)),
    }
}

/// Appends text to a line, merging with the last span when the style is the same.
fn push_piece(line: &mut Vec<Span<'static>>, text: String, style: Style) {
    if let Some(last) = line.last_mut()
        && last.style == style
    {
        last.content.to_mut().push_str(&text);
        return;
    }
    line.push(Span::styled(text, style));
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::style::Stylize;

    fn plain(lines: &[Line<'_>]) -> Vec<String> {
        lines.iter().map(|l| l.to_string()).collect()
    }

    #[test]
    fn breaks_between_words_and_drops_the_spaces_at_the_break() {
        let p = Para::text(vec!["the quick brown fox jumps".into()]);
        assert_eq!(plain(&p.wrap(10)), ["the quick", "brown fox", "jumps"]);
    }

    #[test]
    fn a_word_longer_than_the_line_is_cut() {
        let p = Para::text(vec!["a abcdefghijkl b".into()]);
        assert_eq!(plain(&p.wrap(5)), ["a", "abcde", "fghij", "kl b"]);
    }

    #[test]
    fn styles_inside_a_word_keep_it_whole() {
        let p = Para::text(vec!["xx ".into(), "bo".bold(), "ld".italic(), " y".into()]);
        let lines = p.wrap(5);
        assert_eq!(plain(&lines), ["xx", "bold", "y"]);
        assert_eq!(lines[1].spans.len(), 2, "two styles, one word");
    }

    #[test]
    fn prefixes_go_on_first_and_continuation_lines() {
        let p = Para {
            first: vec!["- ".into()],
            rest: vec!["  ".into()],
            body: vec!["one two three".into()],
            breaks: None,
        };
        assert_eq!(plain(&p.wrap(9)), ["- one two", "  three"]);
    }

    #[test]
    fn chars_mode_keeps_spacing_and_breaks_anywhere() {
        let p = Para::text(vec!["a  b  c  d".into()]).breaking(Breaks::Chars);
        assert_eq!(plain(&p.wrap(4)), ["a  b", "  c ", " d"]);
    }

    #[test]
    fn control_characters_are_dropped_and_tabs_expand() {
        let p = Para::text(vec!["a\u{1b}[31mb\tc".into()]).breaking(Breaks::Chars);
        assert_eq!(plain(&p.wrap(20)), ["a[31mb    c"]);
    }

    #[test]
    fn wide_characters_count_double() {
        let p = Para::text(vec!["日本語のテキスト".into()]);
        let lines = p.wrap(6);
        assert_eq!(plain(&lines), ["日本語", "のテキ", "スト"]);
    }

    #[test]
    fn an_empty_paragraph_is_one_empty_line() {
        assert_eq!(plain(&Para::default().wrap(10)), [""]);
    }
}
