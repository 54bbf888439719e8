//! A connection's clocks: the heartbeat, the token's expiry, and the wait
//! for a resuming client's `sync` while events are held. One timer serves
//! all three (every connection holds it, and a timer is ~100 bytes): the
//! writer sleeps until [`Clocks::next`] and asks [`Clocks::fire`] what is
//! due.
//!
//! The heartbeat is checked every half interval, and a ping goes out every
//! other check. A live client answers each ping within a round trip, so it
//! is never silent for more than one interval plus that round trip; a
//! connection silent for more than 1.25 intervals is closed. Checked every
//! half interval, a half-open connection is therefore gone within 1.75
//! intervals of its last sign of life (protocol.md promises under two).

use std::time::Duration;

use tokio::time::Instant;

/// What is due when the timer fires.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Due {
    /// The token has expired: close (4001).
    pub expired: bool,
    /// The client said nothing within the grace: it is not resuming, so
    /// the hold ends.
    pub go_live: bool,
    /// Nothing was heard for too long: close (4000).
    pub silent: bool,
    /// Send a ping.
    pub ping: bool,
}

/// A connection's clocks.
#[derive(Debug)]
pub struct Clocks {
    interval: Duration,
    /// The next heartbeat check.
    beat: Instant,
    /// The token's expiry.
    expiry: Instant,
    /// The end of the wait for a resuming client's `sync`.
    grace: Instant,
    /// Whether the next check sends a ping.
    ping_due: bool,
}

impl Clocks {
    /// Clocks started at `now` for a heartbeat of `interval`, a token that
    /// expires in `expires_in`, and a sync grace of `grace`.
    pub fn new(now: Instant, interval: Duration, expires_in: Duration, grace: Duration) -> Self {
        Self {
            interval,
            beat: now + interval / 2,
            expiry: now + expires_in,
            grace: now + grace,
            ping_due: true,
        }
    }

    /// When the timer should next fire; the grace counts only while events
    /// are `held`.
    pub fn next(&self, held: bool) -> Instant {
        let next = self.beat.min(self.expiry);
        if held {
            next.min(self.grace)
        } else {
            next
        }
    }

    /// The client renewed its token: it now expires in `expires_in`.
    pub fn extend(&mut self, now: Instant, expires_in: Duration) {
        self.expiry = now + expires_in;
    }

    /// The timer fired at `now`; the client was last heard `silent_for`
    /// ago, and events are `held` or not.
    pub fn fire(&mut self, now: Instant, silent_for: Duration, held: bool) -> Due {
        if now >= self.expiry {
            return Due {
                expired: true,
                ..Due::default()
            };
        }
        let mut due = Due {
            go_live: held && now >= self.grace,
            ..Due::default()
        };
        if now >= self.beat {
            self.beat = now + self.interval / 2;
            if silent_for > self.interval * 5 / 4 {
                due.silent = true;
                return due;
            }
            due.ping = self.ping_due;
            self.ping_due = !self.ping_due;
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: Duration = Duration::from_secs(20);
    const DAY: Duration = Duration::from_secs(86_400);

    /// Runs the clocks from `start` with the client last heard at the
    /// times `heard` gives (from the pings it was sent); returns when the
    /// connection closed as silent, if it did within `limit`.
    fn run(
        start: Instant,
        limit: Duration,
        mut heard: impl FnMut(Instant) -> Instant,
    ) -> Option<Instant> {
        let mut clocks = Clocks::new(start, INTERVAL, DAY, Duration::ZERO);
        let mut last_heard = start;
        let mut now = start;
        while now < start + limit {
            now = clocks.next(false);
            let due = clocks.fire(now, now - last_heard, false);
            if due.silent {
                return Some(now);
            }
            if due.ping {
                last_heard = heard(now).max(last_heard);
            }
        }
        None
    }

    #[test]
    fn a_half_open_connection_is_closed_within_one_and_three_quarter_intervals() {
        let start = Instant::now();
        let closed = run(start, 10 * INTERVAL, |_| start).expect("closed");
        assert!(closed - start > INTERVAL * 5 / 4);
        assert!(closed - start <= INTERVAL * 7 / 4);
    }

    #[test]
    fn a_client_that_answers_each_ping_within_a_round_trip_stays() {
        let start = Instant::now();
        let round_trip = INTERVAL / 5;
        assert_eq!(run(start, 100 * INTERVAL, |ping| ping + round_trip), None);
    }

    #[test]
    fn a_ping_goes_out_every_other_check() {
        let start = Instant::now();
        let mut clocks = Clocks::new(start, INTERVAL, DAY, Duration::ZERO);
        let pings: Vec<bool> = (0..4)
            .map(|_| {
                let now = clocks.next(false);
                clocks.fire(now, Duration::ZERO, false).ping
            })
            .collect();
        assert_eq!(pings, vec![true, false, true, false]);
    }

    #[test]
    fn expiry_comes_first_and_moves_with_a_renewal() {
        let start = Instant::now();
        let mut clocks = Clocks::new(start, INTERVAL, INTERVAL / 4, DAY);
        assert_eq!(clocks.next(false), start + INTERVAL / 4);
        clocks.extend(start, DAY);
        assert_eq!(clocks.next(false), start + INTERVAL / 2);
        let at = start + DAY;
        assert!(clocks.fire(at, Duration::ZERO, false).expired);
    }

    #[test]
    fn the_grace_ends_the_hold_only_while_held() {
        let start = Instant::now();
        let grace = Duration::from_secs(2);
        let mut clocks = Clocks::new(start, INTERVAL, DAY, grace);
        assert_eq!(clocks.next(true), start + grace);
        assert_eq!(clocks.next(false), start + INTERVAL / 2);
        let due = clocks.fire(start + grace, Duration::ZERO, true);
        assert_eq!(
            due,
            Due {
                go_live: true,
                ..Due::default()
            }
        );
    }
}
