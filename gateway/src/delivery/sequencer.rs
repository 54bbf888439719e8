//! Per-room ordering of events arriving from the bus.
//!
//! Redis pub/sub may drop messages and does not order messages from
//! different gateways, so each gateway puts every room's events back into
//! seq order before fanning them out: in-order events pass straight
//! through, early ones wait in a small buffer, and a gap that outlives the
//! grace period is filled from the store (contract point 5). Pure logic, no
//! I/O: the hub owns the timers and the store reads.

use std::collections::BTreeMap;

/// Most events held while waiting for a missing one; beyond this the
/// furthest ahead (the highest seqs) are dropped, and the store read
/// recovers them after the gap.
const MAX_PENDING: usize = 4096;

/// What a room's sequencer should do next.
#[derive(Debug, PartialEq, Eq)]
pub enum Gap {
    /// Nothing is missing.
    None,
    /// Events after `after` and before `before` are missing (`before` is
    /// `None` when only the head is known to be behind).
    Missing {
        /// The last seq delivered.
        after: i64,
        /// The first seq held back, if any.
        before: Option<i64>,
    },
}

/// Orders one room's events by seq.
#[derive(Debug)]
pub struct Sequencer<T> {
    /// The last seq released; `None` until the first event or cursor.
    head: Option<i64>,
    /// Events that arrived early, by seq.
    pending: BTreeMap<i64, T>,
}

impl<T> Default for Sequencer<T> {
    fn default() -> Self {
        Self {
            head: None,
            pending: BTreeMap::new(),
        }
    }
}

impl<T> Sequencer<T> {
    /// The last seq released.
    pub fn head(&self) -> Option<i64> {
        self.head
    }

    /// Makes sure the head is at least `seq` (a session joined knowing the
    /// room up to there); later events are then checked for gaps against it.
    pub fn advance_to(&mut self, seq: i64) -> Vec<(i64, T)> {
        if self.head.is_none_or(|head| head < seq) {
            self.head = Some(seq);
            self.pending = self.pending.split_off(&(seq + 1));
        }
        self.release()
    }

    /// Takes in one event; returns the events now releasable, in order.
    /// Duplicates and events at or below the head are dropped.
    pub fn offer(&mut self, seq: i64, item: T) -> Vec<(i64, T)> {
        match self.head {
            None => {
                self.head = Some(seq);
                let mut out = vec![(seq, item)];
                out.extend(self.release());
                out
            }
            Some(head) if seq <= head => Vec::new(),
            Some(_) => {
                self.pending.insert(seq, item);
                if self.pending.len() > MAX_PENDING {
                    self.pending.pop_last();
                }
                self.release()
            }
        }
    }

    /// What is missing, if anything.
    pub fn gap(&self) -> Gap {
        match (self.head, self.pending.keys().next()) {
            (Some(after), Some(&first)) if first > after + 1 => Gap::Missing {
                after,
                before: Some(first),
            },
            _ => Gap::None,
        }
    }

    fn release(&mut self) -> Vec<(i64, T)> {
        let mut out = Vec::new();
        while let Some(head) = self.head {
            match self.pending.remove(&(head + 1)) {
                Some(item) => {
                    self.head = Some(head + 1);
                    out.push((head + 1, item));
                }
                None => break,
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seqs<T>(released: Vec<(i64, T)>) -> Vec<i64> {
        released.into_iter().map(|(seq, _)| seq).collect()
    }

    #[test]
    fn in_order_events_pass_straight_through() {
        let mut s = Sequencer::default();
        assert_eq!(seqs(s.offer(1, ())), vec![1]);
        assert_eq!(seqs(s.offer(2, ())), vec![2]);
        assert_eq!(s.gap(), Gap::None);
    }

    #[test]
    fn early_events_wait_for_the_missing_one() {
        let mut s = Sequencer::default();
        s.advance_to(4);
        assert!(s.offer(7, ()).is_empty());
        assert!(s.offer(6, ()).is_empty());
        assert_eq!(
            s.gap(),
            Gap::Missing {
                after: 4,
                before: Some(6)
            }
        );
        assert_eq!(seqs(s.offer(5, ())), vec![5, 6, 7]);
        assert_eq!(s.gap(), Gap::None);
    }

    #[test]
    fn duplicates_and_old_events_are_dropped() {
        let mut s = Sequencer::default();
        s.advance_to(10);
        assert!(s.offer(9, ()).is_empty());
        assert!(s.offer(10, ()).is_empty());
        assert_eq!(seqs(s.offer(11, ())), vec![11]);
        assert!(s.offer(11, ()).is_empty());
    }

    #[test]
    fn advancing_past_pending_events_drops_them_and_releases_the_rest() {
        let mut s = Sequencer::default();
        s.advance_to(1);
        s.offer(3, ());
        s.offer(5, ());
        assert_eq!(seqs(s.advance_to(4)), vec![5]);
        assert_eq!(s.head(), Some(5));
    }

    proptest::proptest! {
        /// Whatever the arrival order and duplication, what comes out is
        /// strictly increasing and gap-free from the start.
        #[test]
        fn output_is_gap_free_and_increasing(arrivals in proptest::collection::vec(1i64..40, 1..200)) {
            let mut s = Sequencer::default();
            s.advance_to(0);
            let mut out = Vec::new();
            for seq in arrivals {
                out.extend(seqs(s.offer(seq, ())));
            }
            let expected: Vec<i64> = (1..=out.len() as i64).collect();
            proptest::prop_assert_eq!(out, expected);
        }
    }
}
