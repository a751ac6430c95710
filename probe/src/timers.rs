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
//!
//! Trace time can also jump by years (a capture of two sessions years
//! apart, a clock reset): a periodic timer would then fire once per period
//! through the jump, hundreds of millions of passes that see no packet.
//! This module holds the arithmetic of the bounded catch-up rule the
//! runtime applies (`docs/probe.md`, "Time jumps"): [`CATCH_UP_LIMIT`],
//! [`periods_due`], and [`due_after`], which refuses instants past the end
//! of representable time instead of wrapping or saturating onto it.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::key::StateKey;

/// The most firings of one timer run one by one when trace time advances
/// to a new instant. A periodic timeout whose firings in one advance (run
/// already, plus due at its current period) would be more than this fires
/// once, at its first due time (or not again, if it already fired in this
/// advance) and skips the rest; a key whose state expired this many times
/// in one advance (a cycle of state timeouts) has the rest of its expiries
/// computed rather than fired. Skips are counted.
pub const CATCH_UP_LIMIT: u64 = 1000;

/// Nanoseconds of a duration in seconds from a program (`timeout_set`,
/// `<statedef timeout>`): at least 1 ns, so a timer never re-arms at the
/// instant it fires (which would loop at that instant forever). The
/// language keeps seconds finite and positive; values past `u64::MAX` ns
/// saturate (and are then refused by [`due_after`]).
pub fn duration_ns(seconds: f64) -> u64 {
    ((seconds * 1e9) as u64).max(1)
}

/// The instant `delay_ns` after `base_ns`, or `None` when it is past the
/// last representable instant (`u64::MAX` ns, in the year 2554): such a
/// timer can never be due, and is counted rather than armed.
pub fn due_after(base_ns: u64, delay_ns: u64) -> Option<u64> {
    base_ns.checked_add(delay_ns)
}

/// For a periodic timer due at `due_ns` (at or before `now_ns`) with period
/// `period_ns` (> 0): how many of its firings fall at or before `now_ns`
/// (`due`, `due + period`, …), and its first due instant after `now_ns`
/// (`None` past the end of representable time).
pub fn periods_due(due_ns: u64, period_ns: u64, now_ns: u64) -> (u64, Option<u64>) {
    debug_assert!(due_ns <= now_ns && period_ns > 0);
    let n = (now_ns - due_ns) / period_ns + 1;
    let next = u128::from(due_ns) + u128::from(n) * u128::from(period_ns);
    (n, u64::try_from(next).ok())
}

/// What a timer is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
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

    #[test]
    fn periods_due_counts_the_firings_up_to_now_and_the_next_one() {
        assert_eq!(periods_due(10, 5, 10), (1, Some(15)));
        assert_eq!(periods_due(10, 5, 14), (1, Some(15)));
        assert_eq!(periods_due(10, 5, 15), (2, Some(20)));
        assert_eq!(periods_due(10, 5, 29), (4, Some(30)));
        // 8 years of 1 s periods.
        let s = 1_000_000_000;
        assert_eq!(
            periods_due(s, s, s + 248_513_912 * s),
            (248_513_913, Some(248_513_914 * s))
        );
        // The next period is past the end of time.
        assert_eq!(periods_due(u64::MAX - 3, 5, u64::MAX), (1, None));
        assert_eq!(periods_due(u64::MAX, 1, u64::MAX), (1, None));
    }

    #[test]
    fn durations_are_at_least_a_nanosecond_and_end_of_time_is_refused() {
        assert_eq!(duration_ns(1e-12), 1);
        assert_eq!(duration_ns(0.5), 500_000_000);
        assert_eq!(duration_ns(1e300), u64::MAX);
        assert_eq!(due_after(1, u64::MAX), None);
        assert_eq!(due_after(u64::MAX, 0), Some(u64::MAX));
        assert_eq!(due_after(u64::MAX - 1, 1), Some(u64::MAX));
    }
}
