//! Event decisions, kept per (event, role) so that every stream of a role shares one
//! evaluation of the chain per event.
//!
//! Direct-mapped: an event's slot is fixed by its identity, and a newer event in the
//! slot replaces the older one. Consecutive events of a runtime land in consecutive
//! slots, so the cache holds about the last `slots` events, like the host's frame cache;
//! a stream further behind than that evaluates again (the same answer, for a
//! deterministic policy). No eviction bookkeeping, one short lock per lookup.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

use yoi_policy::Role;

use crate::chain::EventDecision;

/// Which event: its runtime, the runtime's event store (epoch) and its sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EventKey<'a> {
    pub(crate) runtime_id: &'a str,
    pub(crate) epoch: u64,
    pub(crate) seq: u64,
}

#[derive(Debug, Default)]
struct Slot {
    runtime_id: Box<str>,
    epoch: u64,
    seq: u64,
    decisions: [Option<EventDecision>; Role::ALL.len()],
}

impl Slot {
    fn holds(&self, key: EventKey<'_>) -> bool {
        self.seq == key.seq && self.epoch == key.epoch && *self.runtime_id == *key.runtime_id
    }
}

#[derive(Debug)]
pub(crate) struct DecisionCache {
    slots: Box<[Mutex<Slot>]>,
}

impl DecisionCache {
    pub(crate) fn new(slots: usize) -> Self {
        DecisionCache {
            slots: (0..slots.max(1)).map(|_| Mutex::default()).collect(),
        }
    }

    fn slot(&self, key: EventKey<'_>) -> std::sync::MutexGuard<'_, Slot> {
        let mut hasher = DefaultHasher::new();
        (key.runtime_id, key.epoch).hash(&mut hasher);
        let index = hasher.finish().wrapping_add(key.seq) % self.slots.len() as u64;
        self.slots[index as usize]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn get(&self, key: EventKey<'_>, role: Role) -> Option<EventDecision> {
        let slot = self.slot(key);
        if slot.holds(key) {
            slot.decisions[role.index()].clone()
        } else {
            None
        }
    }

    pub(crate) fn put(&self, key: EventKey<'_>, role: Role, decision: EventDecision) {
        let mut slot = self.slot(key);
        if !slot.holds(key) {
            *slot = Slot {
                runtime_id: key.runtime_id.into(),
                epoch: key.epoch,
                seq: key.seq,
                decisions: Default::default(),
            };
        }
        slot.decisions[role.index()] = Some(decision);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_are_kept_per_event_and_role_and_replaced_by_newer_events() {
        let cache = DecisionCache::new(4);
        let key = |runtime_id, seq| EventKey {
            runtime_id,
            epoch: 1,
            seq,
        };
        cache.put(key("a", 1), Role::Observer, EventDecision::Deny);
        assert!(matches!(
            cache.get(key("a", 1), Role::Observer),
            Some(EventDecision::Deny)
        ));
        assert!(cache.get(key("a", 1), Role::Owner).is_none());
        assert!(cache.get(key("b", 1), Role::Observer).is_none());
        assert!(
            cache
                .get(
                    EventKey {
                        epoch: 2,
                        ..key("a", 1)
                    },
                    Role::Observer
                )
                .is_none()
        );
        // Four slots: the event four later takes the slot over.
        cache.put(key("a", 5), Role::Owner, EventDecision::Allow);
        assert!(cache.get(key("a", 1), Role::Observer).is_none());
        assert!(matches!(
            cache.get(key("a", 5), Role::Owner),
            Some(EventDecision::Allow)
        ));
    }
}
