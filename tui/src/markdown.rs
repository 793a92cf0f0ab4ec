//! Markdown to styled paragraphs for the console.
//!
//! A line break in the source stays a line break on screen (terminal renderers of
//! model output usually do this, and it is what makes streaming stable): a source line,
//! once complete, renders to the same screen lines whatever follows it, so the console
//! can commit complete lines and only the partial last line changes while a model
//! streams. For the same reason a code block shows no closing fence (a block still
//! streaming has none yet): its lines are indented and coloured, under a dimmed line
//! naming the language when the fence names one.

use pulldown_cmark::{CodeBlockKind, Event, HeadingLevel, Options, Parser, Tag, TagEnd};
use ratatui::style::{Modifier, Style};
use ratatui::text::Span;

use crate::theme;
use crate::wrap::{Breaks, Para};

/// Indentation of code block lines.
const CODE_INDENT: &str = "  ";

/// Renders `source` as paragraphs (to be wrapped to the screen's width).
pub fn render(source: &str) -> Vec<Para> {
    let mut r = Renderer::default();
    let parser = Parser::new_ext(source, Options::ENABLE_STRIKETHROUGH);
    for event in parser {
        r.event(event);
    }
    r.flush_line();
    r.out
}

/// A block that prefixes the lines inside it.
enum Container {
    Quote,
    /// A list item; `used` once its marker was printed on a first line.
    Item {
        marker: String,
        used: bool,
    },
}

#[derive(Default)]
struct Renderer {
    out: Vec<Para>,
    containers: Vec<Container>,
    /// Next number of each open list (`None`: bulleted).
    lists: Vec<Option<u64>>,
    /// Inline styles in effect (emphasis, links, headings), innermost last.
    styles: Vec<Style>,
    line: Vec<Span<'static>>,
    /// A blank line goes before the next line (a block ended).
    blank_pending: bool,
    code: Option<Code>,
    /// Destination of the link being rendered, shown after its text when different.
    link: Option<(String, String)>,
}

struct Code {
    fence: Option<String>,
    text: String,
}

impl Renderer {
    fn style(&self) -> Style {
        self.styles
            .iter()
            .fold(Style::new(), |acc, s| acc.patch(*s))
    }

    fn event(&mut self, event: Event<'_>) {
        if let Some(code) = &mut self.code {
            match event {
                Event::Text(text) => code.text.push_str(&text),
                Event::End(TagEnd::CodeBlock) => self.end_code(),
                _ => {}
            }
            return;
        }
        match event {
            Event::Start(tag) => self.start(tag),
            Event::End(tag) => self.end(tag),
            Event::Text(text) => self.text(&text, self.style()),
            Event::Code(text) => self.text(&text, self.style().patch(theme::code())),
            Event::Html(text) | Event::InlineHtml(text) => {
                self.text(&text, self.style().patch(theme::dim()));
            }
            Event::SoftBreak | Event::HardBreak => self.flush_line(),
            Event::Rule => {
                self.flush_line();
                self.block_start();
                self.line.push(Span::styled("─".repeat(24), theme::dim()));
                self.flush_line();
                self.blank_pending = true;
            }
            Event::TaskListMarker(done) => {
                let mark = if done { "[x] " } else { "[ ] " };
                self.line.push(Span::styled(mark, theme::dim()));
            }
            Event::FootnoteReference(name) => {
                self.text(&format!("[^{name}]"), theme::dim());
            }
            Event::InlineMath(text) | Event::DisplayMath(text) => {
                self.text(&text, theme::code());
            }
        }
    }

    fn start(&mut self, tag: Tag<'_>) {
        match tag {
            Tag::Paragraph | Tag::HtmlBlock => self.block_start(),
            Tag::Heading { level, .. } => {
                self.block_start();
                let hashes = match level {
                    HeadingLevel::H1 => 1,
                    HeadingLevel::H2 => 2,
                    HeadingLevel::H3 => 3,
                    HeadingLevel::H4 => 4,
                    HeadingLevel::H5 => 5,
                    HeadingLevel::H6 => 6,
                };
                self.styles.push(theme::heading());
                self.line.push(Span::styled(
                    format!("{} ", "#".repeat(hashes)),
                    theme::heading(),
                ));
            }
            Tag::BlockQuote(_) => {
                self.block_start();
                // The blank line before a quote is outside it (no bar).
                self.emit_pending_blank();
                self.containers.push(Container::Quote);
            }
            Tag::CodeBlock(kind) => {
                self.block_start();
                let fence = match kind {
                    CodeBlockKind::Fenced(info) => Some(info.to_string()),
                    CodeBlockKind::Indented => None,
                };
                self.code = Some(Code {
                    fence,
                    text: String::new(),
                });
            }
            Tag::List(start) => {
                self.flush_line();
                if self.lists.is_empty() {
                    self.block_start();
                }
                self.lists.push(start);
            }
            Tag::Item => {
                self.flush_line();
                let marker = match self.lists.last_mut() {
                    Some(Some(n)) => {
                        let marker = format!("{n}. ");
                        *n += 1;
                        marker
                    }
                    _ => "• ".to_string(),
                };
                self.containers.push(Container::Item {
                    marker,
                    used: false,
                });
            }
            Tag::Emphasis => self
                .styles
                .push(Style::new().add_modifier(Modifier::ITALIC)),
            Tag::Strong => self.styles.push(Style::new().add_modifier(Modifier::BOLD)),
            Tag::Strikethrough => self
                .styles
                .push(Style::new().add_modifier(Modifier::CROSSED_OUT)),
            Tag::Superscript | Tag::Subscript => self.styles.push(Style::new()),
            Tag::Link { dest_url, .. } => {
                self.styles.push(theme::link());
                self.link = Some((dest_url.to_string(), String::new()));
            }
            Tag::Image { dest_url, .. } => {
                self.line.push(Span::styled("[image: ", theme::dim()));
                self.styles.push(theme::dim());
                self.link = Some((dest_url.to_string(), String::new()));
            }
            Tag::FootnoteDefinition(_)
            | Tag::DefinitionList
            | Tag::DefinitionListTitle
            | Tag::DefinitionListDefinition
            | Tag::Table(_)
            | Tag::TableHead
            | Tag::TableRow
            | Tag::TableCell
            | Tag::MetadataBlock(_) => {}
        }
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::Paragraph | TagEnd::HtmlBlock => self.block_end(),
            TagEnd::Heading(_) => {
                self.styles.pop();
                self.block_end();
            }
            TagEnd::BlockQuote(_) => {
                self.flush_line();
                self.containers.pop();
                self.blank_pending = true;
            }
            TagEnd::List(_) => {
                self.flush_line();
                self.lists.pop();
                if self.lists.is_empty() {
                    self.blank_pending = true;
                }
            }
            TagEnd::Item => {
                self.flush_line();
                self.containers.pop();
            }
            TagEnd::Emphasis
            | TagEnd::Strong
            | TagEnd::Strikethrough
            | TagEnd::Superscript
            | TagEnd::Subscript => {
                self.styles.pop();
            }
            TagEnd::Link => {
                self.styles.pop();
                if let Some((url, text)) = self.link.take()
                    && url != text
                    && !url.is_empty()
                {
                    self.line
                        .push(Span::styled(format!(" <{url}>"), theme::dim()));
                }
            }
            TagEnd::Image => {
                self.styles.pop();
                self.link = None;
                self.line.push(Span::styled("]", theme::dim()));
            }
            TagEnd::CodeBlock
            | TagEnd::FootnoteDefinition
            | TagEnd::DefinitionList
            | TagEnd::DefinitionListTitle
            | TagEnd::DefinitionListDefinition
            | TagEnd::Table
            | TagEnd::TableHead
            | TagEnd::TableRow
            | TagEnd::TableCell
            | TagEnd::MetadataBlock(_) => {}
        }
    }

    fn text(&mut self, text: &str, style: Style) {
        if let Some((_, seen)) = &mut self.link {
            seen.push_str(text);
        }
        let mut lines = text.split('\n');
        if let Some(first) = lines.next() {
            self.push(first, style);
        }
        for line in lines {
            self.flush_line();
            self.push(line, style);
        }
    }

    fn push(&mut self, text: &str, style: Style) {
        if !text.is_empty() {
            self.line.push(Span::styled(text.to_string(), style));
        }
    }

    fn block_start(&mut self) {
        self.flush_line();
    }

    fn block_end(&mut self) {
        self.flush_line();
        self.blank_pending = true;
    }

    fn end_code(&mut self) {
        let Some(code) = self.code.take() else {
            return;
        };
        if let Some(info) = code
            .fence
            .as_deref()
            .map(str::trim)
            .filter(|i| !i.is_empty())
        {
            self.line.push(Span::styled(info.to_string(), theme::dim()));
            self.flush_line();
        }
        let text = code.text.strip_suffix('\n').unwrap_or(&code.text);
        // A block whose first line has not arrived yet shows no line for it.
        for line in text.split('\n').filter(|_| !code.text.is_empty()) {
            self.line
                .push(Span::styled(format!("{CODE_INDENT}{line}"), theme::code()));
            self.emit(Breaks::Chars);
        }
        self.blank_pending = true;
    }

    /// Ends the current screen line (if it has text) as a paragraph.
    fn flush_line(&mut self) {
        if !self.line.is_empty() {
            self.emit(Breaks::Words);
        }
    }

    fn emit_pending_blank(&mut self) {
        if self.blank_pending && !self.out.is_empty() {
            let bars = self.prefix(false, true);
            self.out.push(Para::prefixed(bars, Vec::new()));
        }
        self.blank_pending = false;
    }

    fn emit(&mut self, breaks: Breaks) {
        self.emit_pending_blank();
        let first = self.prefix(true, false);
        let rest = self.prefix(false, false);
        for c in &mut self.containers {
            if let Container::Item { used, .. } = c {
                *used = true;
            }
        }
        let body = std::mem::take(&mut self.line);
        self.out.push(Para {
            first,
            rest,
            body,
            breaks: Some(breaks),
        });
    }

    /// The prefix of a line: quote bars and list indentation (the item's marker on its
    /// first line). `bars_only` for blank lines between blocks.
    fn prefix(&self, first: bool, bars_only: bool) -> Vec<Span<'static>> {
        let mut out = Vec::new();
        for c in &self.containers {
            match c {
                Container::Quote => out.push(Span::styled("│ ", theme::dim())),
                Container::Item { .. } if bars_only => {}
                Container::Item { marker, used } => {
                    if first && !used {
                        out.push(Span::styled(marker.clone(), theme::dim()));
                    } else {
                        out.push(Span::raw(" ".repeat(marker.chars().count())));
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn screen(source: &str, width: u16) -> Vec<String> {
        render(source)
            .iter()
            .flat_map(|p| p.wrap(width))
            .map(|l| l.to_string())
            .collect()
    }

    #[test]
    fn blocks_are_separated_and_source_lines_kept() {
        let md = "# Title\n\nfirst line\nsecond line\n\n- one\n- two\n  more\n\n1. a\n2. b\n";
        assert_eq!(
            screen(md, 40),
            [
                "# Title",
                "",
                "first line",
                "second line",
                "",
                "• one",
                "• two",
                "  more",
                "",
                "1. a",
                "2. b",
            ]
        );
    }

    #[test]
    fn code_blocks_keep_spacing_under_their_language() {
        let md = "text\n\n```rust\nfn main() {\n    x();\n}\n```\nafter\n";
        assert_eq!(
            screen(md, 40),
            [
                "text",
                "",
                "rust",
                "  fn main() {",
                "      x();",
                "  }",
                "",
                "after"
            ]
        );
    }

    #[test]
    fn nested_lists_and_quotes_indent_wrapped_lines() {
        let md = "- outer item that wraps\n  - inner\n\n> quoted words here\n";
        assert_eq!(
            screen(md, 14),
            [
                "• outer item",
                "  that wraps",
                "  • inner",
                "",
                "│ quoted words",
                "│ here"
            ]
        );
    }

    #[test]
    fn inline_styles_are_applied() {
        let paras = render("a **bold** and *it* `code` [site](http://x)");
        let spans = &paras[0].body;
        let bold = spans.iter().find(|s| s.content == "bold").unwrap();
        assert!(bold.style.add_modifier.contains(Modifier::BOLD));
        let it = spans.iter().find(|s| s.content == "it").unwrap();
        assert!(it.style.add_modifier.contains(Modifier::ITALIC));
        assert!(spans.iter().any(|s| s.content == " <http://x>"));
    }

    #[test]
    fn complete_lines_render_the_same_whatever_follows() {
        let full = "Intro line\nmore intro\n- item one\n- item two\n  continued\n\n```sh\ncode\n\nmore code\n```\n> quote\n\nend *it*\n";
        let whole = screen(full, 30);
        for (i, _) in full.match_indices('\n') {
            let part = screen(&full[..=i], 30);
            assert!(
                whole.starts_with(&part),
                "{part:?}\nis not the start of\n{whole:?}"
            );
        }
    }
}
