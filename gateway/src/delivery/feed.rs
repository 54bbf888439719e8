//! One room as this gateway delivers it: its events put back in seq order
//! (the [`Sequencer`]), gathered while the room is busy so that each
//! connection gets a run of them in one write, and the deadline after which
//! a gap is read from the store.
//!
//! A busy room's events are fanned out together at most once per
//! `fan_out_interval`; an event that finds the room quiet for an interval
//! goes out at once, so a quiet room costs no latency. A gap (an event
//! that came before the one it follows, because Redis dropped or
//! reordered a message) waits `gap_wait` for the missing one and is then
//! read from the store, one read at a time.
//!
//! The hub owns the timers and the store reads: it feeds this arrivals,
//! store results and the time, and does what each call answers.

use std::time::Duration;

use tokio::time::Instant;

use super::sequencer::{Gap, Sequencer};

/// How a feed paces its room.
#[derive(Debug, Clone, Copy)]
pub struct Pacing {
    /// How long a gap may last before the store is read.
    pub gap_wait: Duration,
    /// The least time between two fan-outs of the room.
    pub fan_out_interval: Duration,
}

/// What a feed asks of the loop around it.
#[must_use]
#[derive(Debug)]
pub struct Step<T> {
    /// Events to fan out now, in seq order.
    pub fan_out: Vec<(i64, T)>,
    /// Read the room's events after this seq from the store, and hand them
    /// to [`RoomFeed::repaired`].
    pub read_after: Option<i64>,
}

impl<T> Default for Step<T> {
    fn default() -> Self {
        Self {
            fan_out: Vec::new(),
            read_after: None,
        }
    }
}

/// One room's delivery state.
#[derive(Debug)]
pub struct RoomFeed<T> {
    sequencer: Sequencer<T>,
    pacing: Pacing,
    /// A store read is under way.
    repairing: bool,
    /// When the current gap may be read from the store.
    repair_at: Option<Instant>,
    /// Events released in order but not yet fanned out.
    gathered: Vec<(i64, T)>,
    /// Until when events are gathered rather than fanned out at once: one
    /// interval after the last fan-out.
    quiet_until: Option<Instant>,
    /// When the gathered events go out.
    fan_out_at: Option<Instant>,
}

impl<T> RoomFeed<T> {
    /// A room whose events are known up to `head`.
    pub fn new(head: i64, pacing: Pacing) -> Self {
        let mut sequencer = Sequencer::default();
        let _ = sequencer.advance_to(head);
        Self {
            sequencer,
            pacing,
            repairing: false,
            repair_at: None,
            gathered: Vec::new(),
            quiet_until: None,
            fan_out_at: None,
        }
    }

    /// The last seq released in order.
    pub fn head(&self) -> i64 {
        self.sequencer.head().unwrap_or_default()
    }

    /// When the feed next needs [`RoomFeed::due`].
    pub fn next_due(&self) -> Option<Instant> {
        match (self.repair_at, self.fan_out_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// One event arrives (from the bus, or committed here).
    pub fn offer(&mut self, now: Instant, seq: i64, item: T) -> Step<T> {
        let released = self.sequencer.offer(seq, item);
        let step = self.gather(now, released);
        self.arm(now);
        step
    }

    /// Fans out now whatever the room has gathered (something about the
    /// room is to be said after it), and starts its quiet interval.
    pub fn flush(&mut self, now: Instant) -> Vec<(i64, T)> {
        self.fan_out_at = None;
        if self.gathered.is_empty() {
            return Vec::new();
        }
        self.quiet_until = Some(now + self.pacing.fan_out_interval);
        std::mem::take(&mut self.gathered)
    }

    /// The time is `now`: fans out what is due and asks for the gap's
    /// read if its wait is over.
    pub fn due(&mut self, now: Instant) -> Step<T> {
        let mut step = Step::default();
        if self.fan_out_at.is_some_and(|at| at <= now) {
            step.fan_out = self.flush(now);
        }
        if self.repair_at.is_some_and(|at| at <= now) {
            self.repair_at = None;
            step.read_after = self.repair();
        }
        step
    }

    /// Asks for the store's events after the head (the bus lost messages,
    /// or the store's head is ahead); `None` while a read is under way.
    pub fn repair(&mut self) -> Option<i64> {
        if self.repairing {
            return None;
        }
        self.repairing = true;
        Some(self.head())
    }

    /// Whether the store has events this feed has not released.
    pub fn is_behind(&self, store_head: i64) -> bool {
        self.head() < store_head
    }

    /// What the store read asked for returned (`None`: it failed, and the
    /// gap waits again).
    pub fn repaired(&mut self, now: Instant, events: Option<Vec<(i64, T)>>) -> Step<T> {
        self.repairing = false;
        let mut released = Vec::new();
        for (seq, item) in events.into_iter().flatten() {
            released.extend(self.sequencer.offer(seq, item));
        }
        let step = self.gather(now, released);
        self.arm(now);
        step
    }

    /// Gathers released events, and fans them out now if the room was
    /// quiet for an interval, or else at the end of that interval.
    fn gather(&mut self, now: Instant, released: Vec<(i64, T)>) -> Step<T> {
        if released.is_empty() {
            return Step::default();
        }
        self.gathered.extend(released);
        match self.quiet_until {
            Some(until) if until > now => {
                self.fan_out_at.get_or_insert(until);
                Step::default()
            }
            _ => Step {
                fan_out: self.flush(now),
                read_after: None,
            },
        }
    }

    /// Starts the gap's wait when one opens, and ends it when it closes.
    fn arm(&mut self, now: Instant) {
        match self.sequencer.gap() {
            Gap::None => self.repair_at = None,
            Gap::Missing { .. } => {
                self.repair_at.get_or_insert(now + self.pacing.gap_wait);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PACING: Pacing = Pacing {
        gap_wait: Duration::from_millis(100),
        fan_out_interval: Duration::from_millis(10),
    };

    fn seqs<T>(events: Vec<(i64, T)>) -> Vec<i64> {
        events.into_iter().map(|(seq, _)| seq).collect()
    }

    fn ms(start: Instant, ms: u64) -> Instant {
        start + Duration::from_millis(ms)
    }

    #[test]
    fn a_quiet_room_fans_out_at_once_and_a_busy_one_gathers() {
        let t = Instant::now();
        let mut feed = RoomFeed::new(0, PACING);
        assert_eq!(seqs(feed.offer(t, 1, ()).fan_out), vec![1]);
        assert!(feed.offer(ms(t, 1), 2, ()).fan_out.is_empty());
        assert!(feed.offer(ms(t, 2), 3, ()).fan_out.is_empty());
        assert_eq!(feed.next_due(), Some(ms(t, 10)));
        assert!(feed.due(ms(t, 9)).fan_out.is_empty());
        assert_eq!(seqs(feed.due(ms(t, 10)).fan_out), vec![2, 3]);
        assert_eq!(feed.next_due(), None);
        // Quiet for an interval: the next goes out at once.
        assert_eq!(seqs(feed.offer(ms(t, 30), 4, ()).fan_out), vec![4]);
    }

    #[test]
    fn a_gap_waits_then_asks_for_one_read_and_the_read_fills_it() {
        let t = Instant::now();
        let mut feed = RoomFeed::new(5, PACING);
        assert!(feed.offer(t, 7, ()).fan_out.is_empty());
        assert_eq!(feed.next_due(), Some(ms(t, 100)));
        let step = feed.due(ms(t, 100));
        assert_eq!(step.read_after, Some(5));
        assert_eq!(feed.repair(), None, "one read at a time");
        let step = feed.repaired(ms(t, 120), Some(vec![(6, ()), (7, ()), (8, ())]));
        assert_eq!(seqs(step.fan_out), vec![6, 7, 8]);
        assert_eq!(feed.head(), 8);
        assert_eq!(feed.next_due(), None);
    }

    #[test]
    fn a_failed_read_leaves_the_gap_waiting_again() {
        let t = Instant::now();
        let mut feed = RoomFeed::new(0, PACING);
        let _ = feed.offer(t, 2, ());
        assert_eq!(feed.due(ms(t, 100)).read_after, Some(0));
        let _ = feed.repaired(ms(t, 150), None);
        assert_eq!(feed.next_due(), Some(ms(t, 250)));
        assert_eq!(feed.due(ms(t, 250)).read_after, Some(0));
    }

    #[test]
    fn the_missing_event_arriving_cancels_the_read() {
        let t = Instant::now();
        let mut feed = RoomFeed::new(0, PACING);
        let _ = feed.offer(t, 2, ());
        assert_eq!(seqs(feed.offer(ms(t, 5), 1, ()).fan_out), vec![1, 2]);
        assert_eq!(feed.next_due(), None);
    }

    #[test]
    fn a_flush_sends_what_was_gathered_before_it() {
        let t = Instant::now();
        let mut feed = RoomFeed::new(0, PACING);
        let _ = feed.offer(t, 1, ());
        let _ = feed.offer(ms(t, 1), 2, ());
        assert_eq!(seqs(feed.flush(ms(t, 2))), vec![2]);
        assert!(feed.due(ms(t, 10)).fan_out.is_empty());
    }

    #[test]
    fn the_store_head_says_whether_the_feed_is_behind() {
        let feed: RoomFeed<()> = RoomFeed::new(4, PACING);
        assert!(feed.is_behind(5));
        assert!(!feed.is_behind(4));
    }
}
