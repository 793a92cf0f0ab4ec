//! Where a stream is in each runtime it covers, and the cursor that resumes it there.

use yoi_protocol::{Cursor, HostCursor};

/// One part of a host cursor, in runtime-id order.
enum Part {
    /// A runtime the stream covers (index into the positions).
    Feed(usize),
    /// A runtime the stream does not cover, carried along unchanged.
    Carried(String, Cursor),
}

/// A stream's position in each of its runtimes ("feeds"). Everything of a feed up to its
/// position has been sent, or taken to send, or did not concern the stream.
pub(crate) struct Positions {
    /// A host cursor (`h1~id.cursor~…`) rather than one runtime cursor.
    host: bool,
    ids: Vec<String>,
    at: Vec<Cursor>,
    /// Per feed: no position yet (its runtime could not be reached when the stream
    /// started): left out of the host cursor, which then means "from the beginning of
    /// that runtime's log".
    absent: Vec<bool>,
    /// The host cursor's parts in order (feeds and carried parts).
    parts: Vec<Part>,
}

impl Positions {
    /// Positions at the start of each feed's log; `feeds` are `(runtime id, epoch)`.
    /// Without `host` there must be exactly one feed.
    pub(crate) fn new(host: bool, feeds: impl IntoIterator<Item = (String, u64)>) -> Self {
        let (ids, at): (Vec<String>, Vec<Cursor>) = feeds
            .into_iter()
            .map(|(id, epoch)| (id, Cursor::new(epoch, 0)))
            .unzip();
        debug_assert!(host || ids.len() == 1, "a runtime cursor names one runtime");
        let mut positions = Positions {
            host,
            absent: vec![false; ids.len()],
            ids,
            at,
            parts: Vec::new(),
        };
        positions.order_parts(Vec::new());
        positions
    }

    /// Keeps the parts of `cursor` for runtimes this stream does not cover, so its
    /// cursors still name them.
    pub(crate) fn carry(&mut self, cursor: &HostCursor) {
        // At most what keeps the resume cursor within `MAX_PARTS`.
        let room = HostCursor::MAX_PARTS.saturating_sub(self.ids.len());
        let carried = cursor
            .iter()
            .filter(|(id, _)| !self.ids.iter().any(|f| f == id))
            .take(room)
            .map(|(id, c)| (id.to_string(), c))
            .collect();
        self.order_parts(carried);
    }

    fn order_parts(&mut self, carried: Vec<(String, Cursor)>) {
        let mut parts: Vec<(String, Part)> = (0..self.ids.len())
            .map(|i| (self.ids[i].clone(), Part::Feed(i)))
            .chain(
                carried
                    .into_iter()
                    .map(|(id, c)| (id.clone(), Part::Carried(id, c))),
            )
            .collect();
        parts.sort_by(|a, b| a.0.cmp(&b.0));
        self.parts = parts.into_iter().map(|(_, p)| p).collect();
    }

    pub(crate) fn feeds(&self) -> usize {
        self.ids.len()
    }

    /// Parts of the resume cursor (feeds with a position, and carried).
    pub(crate) fn parts(&self) -> usize {
        if self.host {
            self.parts.len() - self.absent.iter().filter(|a| **a).count()
        } else {
            1
        }
    }

    pub(crate) fn id(&self, feed: usize) -> &str {
        &self.ids[feed]
    }

    pub(crate) fn get(&self, feed: usize) -> Cursor {
        self.at[feed]
    }

    pub(crate) fn set(&mut self, feed: usize, at: Cursor) {
        self.at[feed] = at;
        self.absent[feed] = false;
    }

    /// Feed `feed` has no position (yet): the beginning of its log (of the store with
    /// `epoch`), left out of the host cursor until [`set`](Self::set).
    pub(crate) fn unset(&mut self, feed: usize, epoch: u64) {
        self.at[feed] = Cursor::new(epoch, 0);
        self.absent[feed] = true;
    }

    pub(crate) fn is_absent(&self, feed: usize) -> bool {
        self.absent[feed]
    }

    /// The resume cursor.
    pub(crate) fn text(&self) -> String {
        let mut out = String::with_capacity(48);
        self.write(&mut out);
        out
    }

    /// Appends the resume cursor to `out` (for a host cursor the same text as
    /// [`HostCursor::encode`], built without a map).
    pub(crate) fn write(&self, out: &mut String) {
        if !self.host {
            self.at[0].write_to(out);
            return;
        }
        out.push_str(HostCursor::PREFIX);
        for part in &self.parts {
            let (id, cursor) = match part {
                Part::Feed(i) if self.absent[*i] => continue,
                Part::Feed(i) => (self.ids[*i].as_str(), self.at[*i]),
                Part::Carried(id, cursor) => (id.as_str(), *cursor),
            };
            HostCursor::write_part(out, id, cursor);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_cursors_list_every_part_in_id_order() {
        let mut p = Positions::new(true, [("b".to_string(), 2), ("a".to_string(), 1)]);
        let mut old = HostCursor::new();
        old.set("c", Cursor::new(3, 30));
        old.set("a", Cursor::new(1, 10));
        p.carry(&old);
        p.set(1, Cursor::new(1, 11));
        p.set(0, Cursor::new(2, 5));
        let text = p.text();
        let decoded = HostCursor::decode(&text).unwrap();
        assert_eq!(decoded.get("a"), Some(Cursor::new(1, 11)));
        assert_eq!(decoded.get("b"), Some(Cursor::new(2, 5)));
        assert_eq!(
            decoded.get("c"),
            Some(Cursor::new(3, 30)),
            "carried unchanged"
        );
        assert_eq!(text, decoded.encode());
        assert_eq!(p.parts(), 3);
    }

    #[test]
    fn a_feed_without_a_position_is_left_out_of_the_host_cursor() {
        let mut p = Positions::new(true, [("a".to_string(), 1), ("b".to_string(), 2)]);
        p.unset(1, 2);
        p.set(0, Cursor::new(1, 4));
        assert_eq!(p.parts(), 1);
        let decoded = HostCursor::decode(&p.text()).unwrap();
        assert_eq!(decoded.get("a"), Some(Cursor::new(1, 4)));
        assert_eq!(decoded.get("b"), None);
        assert!(p.is_absent(1));
        p.set(1, Cursor::new(3, 1));
        assert!(!p.is_absent(1));
        assert_eq!(p.parts(), 2);
        assert_eq!(
            HostCursor::decode(&p.text()).unwrap().get("b"),
            Some(Cursor::new(3, 1))
        );
    }

    #[test]
    fn a_runtime_cursor_is_its_one_feed() {
        let mut p = Positions::new(false, [("local".to_string(), 7)]);
        p.set(0, Cursor::new(7, 42));
        assert_eq!(p.text(), Cursor::new(7, 42).encode());
        assert_eq!(p.parts(), 1);
    }
}
