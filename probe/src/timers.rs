//! Timers driven by packet time.
//!
//! Two kinds share one queue: state expiries (`<statedef timeout>`) and
//! timeout events (`timeout_set`). The queue is a binary heap ordered by
//! `(due, sequence)`, so timers due at the same time fire in the order they
//! were armed, and a replay fires them identically at any speed. Cancelling
//! or re-arming does not search the heap: the owner's record keeps the
//! sequence number of its live entry and stale entries are skipped when
//! popped. (A hashed wheel would make arming O(1), but trace time can jump
//! by hours between two packets, which a wheel must walk slot by slot.)

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::key::StateKey;

/// What a timer is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TimerKind {
    /// A key's state ran out its `<statedef timeout>`.
    StateExpiry(StateKey),
    /// A timeout of this class, for this key.
    Timeout(u32, StateKey),
}

/// The queue.
#[derive(Debug, Default)]
pub struct TimerQueue {
    heap: BinaryHeap<Reverse<(u64, u64, TimerKind)>>,
    next_seq: u64,
}

impl TimerQueue {
    /// Arms a timer; returns its sequence number (store it to validate).
    pub fn arm(&mut self, due_ns: u64, kind: TimerKind) -> u64 {
        self.next_seq += 1;
        self.heap.push(Reverse((due_ns, self.next_seq, kind)));
        self.next_seq
    }

    /// Pops the earliest timer due at or before `now_ns`.
    pub fn pop_due(&mut self, now_ns: u64) -> Option<(u64, u64, TimerKind)> {
        match self.heap.peek() {
            Some(Reverse((due, _, _))) if *due <= now_ns => self.heap.pop().map(|Reverse(t)| t),
            _ => None,
        }
    }

    /// Entries in the heap (live and stale).
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_in_due_then_arming_order() {
        let k = StateKey::from_bytes(0, b"k");
        let mut q = TimerQueue::default();
        let a = q.arm(20, TimerKind::StateExpiry(k));
        let b = q.arm(10, TimerKind::Timeout(1, k));
        let c = q.arm(10, TimerKind::Timeout(0, k));
        assert_eq!(q.pop_due(5), None);
        assert_eq!(q.pop_due(15).map(|t| t.1), Some(b));
        assert_eq!(q.pop_due(15).map(|t| t.1), Some(c));
        assert_eq!(q.pop_due(15), None);
        assert_eq!(q.pop_due(20).map(|t| t.1), Some(a));
        assert!(q.is_empty());
    }
}
