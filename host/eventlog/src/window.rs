//! The bounded in-memory window of the most recent events.

use std::collections::VecDeque;
use std::sync::Arc;
use yoi_protocol::Envelope;

/// The last `capacity` published envelopes, with consecutive sequence numbers.
#[derive(Debug)]
pub(crate) struct Window {
    events: VecDeque<Arc<Envelope>>,
    capacity: usize,
}

impl Window {
    pub fn new(capacity: usize) -> Self {
        Window {
            events: VecDeque::with_capacity(capacity.min(4096)),
            capacity,
        }
    }

    /// Appends one envelope, dropping the oldest when full. A gap in the sequence
    /// (which only a failed-but-committed append could cause) empties the window first,
    /// so what it holds is always consecutive.
    pub fn push(&mut self, env: Arc<Envelope>) {
        if self.capacity == 0 {
            return;
        }
        if let Some(back) = self.events.back()
            && back.seq + 1 != env.seq
        {
            self.events.clear();
        }
        if self.events.len() == self.capacity {
            self.events.pop_front();
        }
        self.events.push_back(env);
    }

    pub fn clear(&mut self) {
        self.events.clear();
    }

    /// The index of `seq`, if the window holds it.
    pub fn index_of(&self, seq: u64) -> Option<usize> {
        let first = self.events.front()?.seq;
        let index = usize::try_from(seq.checked_sub(first)?).ok()?;
        let found = self.events.get(index)?;
        debug_assert_eq!(found.seq, seq);
        (found.seq == seq).then_some(index)
    }

    pub fn range_from(&self, index: usize) -> std::collections::vec_deque::Iter<'_, Arc<Envelope>> {
        self.events.range(index..)
    }

    /// The lowest and highest sequence numbers held.
    pub fn bounds(&self) -> Option<(u64, u64)> {
        Some((self.events.front()?.seq, self.events.back()?.seq))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use yoi_protocol::Event;

    fn env(seq: u64) -> Arc<Envelope> {
        Arc::new(Envelope {
            seq,
            worker_id: None,
            at_ms: 0,
            event: Event::RunStarted { run_id: "r".into() },
        })
    }

    #[test]
    fn keeps_the_last_capacity_events() {
        let mut w = Window::new(3);
        for s in 1..=5 {
            w.push(env(s));
        }
        assert_eq!(w.bounds(), Some((3, 5)));
        assert_eq!(w.index_of(2), None);
        assert_eq!(w.index_of(4), Some(1));
        assert_eq!(w.index_of(6), None);
    }

    #[test]
    fn a_gap_empties_the_window() {
        let mut w = Window::new(10);
        w.push(env(1));
        w.push(env(2));
        w.push(env(7));
        assert_eq!(w.bounds(), Some((7, 7)));
    }

    #[test]
    fn zero_capacity_holds_nothing() {
        let mut w = Window::new(0);
        w.push(env(1));
        assert_eq!(w.bounds(), None);
        assert_eq!(w.index_of(1), None);
    }
}
