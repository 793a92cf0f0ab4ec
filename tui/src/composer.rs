//! The multi-line message editor with a history of sent messages.

use unicode_width::UnicodeWidthChar;

/// Sent messages remembered for Up/Down.
const HISTORY: usize = 200;

#[derive(Debug, Clone, Default)]
pub struct Composer {
    text: String,
    /// Byte offset of the cursor in `text` (always on a char boundary).
    cursor: usize,
    history: Vec<String>,
    /// Index into `history` while browsing it, and the draft it replaced.
    browsing: Option<(usize, String)>,
}

/// The composer as it is drawn: screen rows and where the cursor is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComposerView {
    pub rows: Vec<String>,
    pub cursor: (u16, u16),
}

impl Composer {
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    pub fn insert(&mut self, c: char) {
        if c == '\r' {
            return self.insert('\n');
        }
        if c.is_control() && c != '\n' && c != '\t' {
            return;
        }
        self.browsing = None;
        self.text.insert(self.cursor, c);
        self.cursor += c.len_utf8();
    }

    /// Pasted text (line endings normalised).
    pub fn insert_str(&mut self, s: &str) {
        for c in s.replace("\r\n", "\n").chars() {
            self.insert(c);
        }
    }

    pub fn backspace(&mut self) {
        if let Some(c) = self.text[..self.cursor].chars().next_back() {
            self.cursor -= c.len_utf8();
            self.text.remove(self.cursor);
        }
    }

    pub fn delete(&mut self) {
        if self.cursor < self.text.len() {
            self.text.remove(self.cursor);
        }
    }

    pub fn left(&mut self) {
        if let Some(c) = self.text[..self.cursor].chars().next_back() {
            self.cursor -= c.len_utf8();
        }
    }

    pub fn right(&mut self) {
        if let Some(c) = self.text[self.cursor..].chars().next() {
            self.cursor += c.len_utf8();
        }
    }

    pub fn home(&mut self) {
        self.cursor = self.line_start(self.cursor);
    }

    pub fn end(&mut self) {
        self.cursor = self.line_end(self.cursor);
    }

    /// Deletes from the start of the line to the cursor.
    pub fn kill_to_line_start(&mut self) {
        let start = self.line_start(self.cursor);
        self.text.replace_range(start..self.cursor, "");
        self.cursor = start;
    }

    pub fn clear(&mut self) {
        self.text.clear();
        self.cursor = 0;
        self.browsing = None;
    }

    /// Up: the line above, or an older history entry on the first line.
    pub fn up(&mut self) {
        let start = self.line_start(self.cursor);
        if start == 0 {
            self.history_back();
            return;
        }
        let column = self.text[start..self.cursor].chars().count();
        let above = self.line_start(start - 1);
        self.cursor = self.at_column(above, column);
    }

    /// Down: the line below, or a newer history entry on the last line.
    pub fn down(&mut self) {
        let end = self.line_end(self.cursor);
        if end == self.text.len() {
            self.history_forward();
            return;
        }
        let column = self.text[self.line_start(self.cursor)..self.cursor]
            .chars()
            .count();
        self.cursor = self.at_column(end + 1, column);
    }

    /// Records a sent message in the history.
    pub fn remember(&mut self, text: &str) {
        if text.trim().is_empty() || self.history.last().is_some_and(|h| h == text) {
            return;
        }
        if self.history.len() == HISTORY {
            self.history.remove(0);
        }
        self.history.push(text.to_string());
    }

    fn history_back(&mut self) {
        let index = match &self.browsing {
            Some((i, _)) if *i > 0 => i - 1,
            Some(_) => return,
            None if self.history.is_empty() => return,
            None => self.history.len() - 1,
        };
        let draft = match self.browsing.take() {
            Some((_, draft)) => draft,
            None => std::mem::take(&mut self.text),
        };
        self.set(self.history[index].clone());
        self.browsing = Some((index, draft));
    }

    fn history_forward(&mut self) {
        let Some((index, draft)) = self.browsing.take() else {
            return;
        };
        if index + 1 < self.history.len() {
            self.set(self.history[index + 1].clone());
            self.browsing = Some((index + 1, draft));
        } else {
            self.set(draft);
        }
    }

    fn set(&mut self, text: String) {
        self.text = text;
        self.cursor = self.text.len();
    }

    fn line_start(&self, at: usize) -> usize {
        self.text[..at].rfind('\n').map_or(0, |i| i + 1)
    }

    fn line_end(&self, at: usize) -> usize {
        self.text[at..]
            .find('\n')
            .map_or(self.text.len(), |i| at + i)
    }

    /// Byte offset of `column` chars into the line starting at `start` (or its end).
    fn at_column(&self, start: usize, column: usize) -> usize {
        let end = self.line_end(start);
        self.text[start..end]
            .char_indices()
            .nth(column)
            .map_or(end, |(i, _)| start + i)
    }

    /// The text broken into rows of `width` columns, and the cursor's row and column.
    pub fn view(&self, width: u16) -> ComposerView {
        let width = usize::from(width.max(2));
        let mut rows = vec![String::new()];
        let mut col = 0;
        let mut cursor = (0, 0);
        for (i, c) in self.text.char_indices() {
            if i == self.cursor {
                cursor = (rows.len() - 1, col);
            }
            if c == '\n' {
                rows.push(String::new());
                col = 0;
                continue;
            }
            let (c, w) = if c == '\t' {
                (' ', 1)
            } else {
                (c, c.width().unwrap_or(0))
            };
            if col + w > width {
                rows.push(String::new());
                col = 0;
            }
            if let Some(row) = rows.last_mut() {
                row.push(c);
            }
            col += w;
        }
        if self.cursor == self.text.len() {
            if col >= width {
                rows.push(String::new());
                col = 0;
            }
            cursor = (rows.len() - 1, col);
        }
        ComposerView {
            rows,
            cursor: (
                u16::try_from(cursor.0).unwrap_or(u16::MAX),
                u16::try_from(cursor.1).unwrap_or(u16::MAX),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(text: &str) -> Composer {
        let mut c = Composer::default();
        c.insert_str(text);
        c
    }

    #[test]
    fn editing_moves_by_characters() {
        let mut c = typed("héllo");
        c.left();
        c.left();
        c.backspace();
        c.insert('L');
        assert_eq!(c.text(), "héLlo");
        c.home();
        c.delete();
        assert_eq!(c.text(), "éLlo");
    }

    #[test]
    fn up_and_down_move_between_lines_keeping_the_column() {
        let mut c = typed("abcdef\nxy\nlonger line");
        c.up();
        c.up();
        c.insert('!');
        assert_eq!(
            c.text(),
            "abcdef\nxy\nlonger line".replacen("abcdef", "ab!cdef", 1)
        );
        c.down();
        c.insert('?');
        assert!(c.text().contains("xy?"), "{}", c.text());
    }

    #[test]
    fn history_browses_back_and_restores_the_draft() {
        let mut c = Composer::default();
        c.remember("first");
        c.remember("second");
        c.insert_str("draft");
        c.up();
        assert_eq!(c.text(), "second");
        c.up();
        assert_eq!(c.text(), "first");
        c.up();
        assert_eq!(c.text(), "first", "stays at the oldest");
        c.down();
        assert_eq!(c.text(), "second");
        c.down();
        assert_eq!(c.text(), "draft");
    }

    #[test]
    fn view_wraps_rows_and_places_the_cursor() {
        let mut c = typed("abcdef\ngh");
        assert_eq!(c.view(4).rows, ["abcd", "ef", "gh"]);
        assert_eq!(c.view(4).cursor, (2, 2));
        c.up();
        assert_eq!(c.view(4).cursor, (0, 2));
        let full = typed("abcd");
        assert_eq!(
            full.view(4).cursor,
            (1, 0),
            "a full row puts the cursor below"
        );
    }

    #[test]
    fn pasted_line_endings_are_normalised_and_controls_dropped() {
        let c = typed("a\r\nb\u{7}c");
        assert_eq!(c.text(), "a\nbc");
    }
}
