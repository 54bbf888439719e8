//! Typing and read notices cost their sender, not the room. Per room and
//! user, across all the user's connections to this gateway, at most one
//! goes out per interval:
//!
//! - a `typing` within [`TYPING_INTERVAL`] of the last one relayed is
//!   dropped (clients repeat it while the user types, so nothing is lost);
//! - a `read` within [`READ_INTERVAL`] of the last one stored waits, and
//!   the newest marker of the interval is stored and relayed at its end, so
//!   the last word is never lost; a marker that did not move is not relayed
//!   at all.
//!
//! Before this, 3,000 `read` frames with one unchanged seq were relayed
//! 3,000 times to every other member, and each was a store write.
//!
//! State only: the session decides from the answers what to store, relay or
//! schedule.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chat_shared::model::{RoomId, UserId};
use tokio::time::Instant;

/// The least time between two relayed `typing` notices of one user in one
/// room.
pub const TYPING_INTERVAL: Duration = Duration::from_secs(2);

/// The least time between two stored (and relayed) read markers of one user
/// in one room.
pub const READ_INTERVAL: Duration = Duration::from_secs(1);

/// What to do with a `read`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// Store it and relay it if it moved, now.
    Now,
    /// Too soon: it is kept as the pending marker; call
    /// [`Ephemeral::take_read`] after this long.
    Later(Duration),
    /// Too soon, and a later store of the pending marker is already
    /// scheduled: folded into it.
    Folded,
}

/// The last relays of every user active in a room, on this gateway.
#[derive(Default)]
pub struct Ephemeral {
    typing: Mutex<HashMap<(RoomId, UserId), Instant>>,
    reads: Mutex<HashMap<(RoomId, UserId), ReadSlot>>,
}

struct ReadSlot {
    /// When a marker was last stored.
    stored: Instant,
    /// The newest marker waiting for the interval's end, if any.
    pending: Option<i64>,
}

impl Ephemeral {
    /// Whether a `typing` of `user` in `room` at `now` would be relayed.
    /// Only asks: [`typed`](Self::typed) records one that was, so a
    /// notice refused on other grounds (the sender's budget) leaves no
    /// entry behind.
    pub fn typing_due(&self, room: RoomId, user: UserId, now: Instant) -> bool {
        self.typing
            .lock()
            .expect("not poisoned")
            .get(&(room, user))
            .is_none_or(|at| now.duration_since(*at) >= TYPING_INTERVAL)
    }

    /// A `typing` of `user` in `room` was relayed at `now`.
    pub fn typed(&self, room: RoomId, user: UserId, now: Instant) {
        self.typing
            .lock()
            .expect("not poisoned")
            .insert((room, user), now);
    }

    /// `user` sent a message in `room`: their typing has ended, and the next
    /// `typing` (a new message begun) is news at once.
    pub fn sent(&self, room: RoomId, user: UserId) {
        self.typing
            .lock()
            .expect("not poisoned")
            .remove(&(room, user));
    }

    /// What to do with a `read` of `seq` by `user` in `room` at `now`.
    pub fn read(&self, room: RoomId, user: UserId, seq: i64, now: Instant) -> Read {
        let mut reads = self.reads.lock().expect("not poisoned");
        let Some(slot) = reads.get_mut(&(room, user)) else {
            reads.insert(
                (room, user),
                ReadSlot {
                    stored: now,
                    pending: None,
                },
            );
            return Read::Now;
        };
        let since = now.duration_since(slot.stored);
        if since >= READ_INTERVAL && slot.pending.is_none() {
            slot.stored = now;
            return Read::Now;
        }
        match &mut slot.pending {
            Some(pending) => {
                *pending = (*pending).max(seq);
                Read::Folded
            }
            None => {
                slot.pending = Some(seq);
                Read::Later(READ_INTERVAL.saturating_sub(since))
            }
        }
    }

    /// The pending marker of `user` in `room`, to store now (at the end of
    /// the interval [`Read::Later`] named).
    pub fn take_read(&self, room: RoomId, user: UserId, now: Instant) -> Option<i64> {
        let mut reads = self.reads.lock().expect("not poisoned");
        let slot = reads.get_mut(&(room, user))?;
        let seq = slot.pending.take()?;
        slot.stored = now;
        Some(seq)
    }

    /// Forgets users quiet for a whole interval; run periodically.
    pub fn prune(&self, now: Instant) {
        self.typing
            .lock()
            .expect("not poisoned")
            .retain(|_, at| now.duration_since(*at) < TYPING_INTERVAL);
        self.reads.lock().expect("not poisoned").retain(|_, slot| {
            slot.pending.is_some() || now.duration_since(slot.stored) < READ_INTERVAL
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typing_goes_out_once_per_interval_per_room_and_user() {
        let notices = Ephemeral::default();
        let (room, alice, bob) = (RoomId::new(), UserId::new(), UserId::new());
        let start = Instant::now();
        let typing = |room, user, at| {
            let due = notices.typing_due(room, user, at);
            if due {
                notices.typed(room, user, at);
            }
            due
        };
        assert!(typing(room, alice, start));
        let flood = (1..1000).filter(|i| typing(room, alice, start + Duration::from_millis(*i)));
        assert_eq!(flood.count(), 0);
        assert!(typing(room, bob, start), "another user");
        assert!(typing(RoomId::new(), alice, start), "another room");
        assert!(typing(room, alice, start + TYPING_INTERVAL));
        notices.sent(room, alice);
        assert!(
            typing(room, alice, start + TYPING_INTERVAL),
            "a new message is begun"
        );
        // Asking records nothing.
        let other = RoomId::new();
        assert!(notices.typing_due(other, alice, start));
        assert!(!notices.typing.lock().unwrap().contains_key(&(other, alice)));
    }

    #[test]
    fn reads_within_an_interval_fold_into_one_and_the_newest_wins() {
        let notices = Ephemeral::default();
        let (room, alice) = (RoomId::new(), UserId::new());
        let start = Instant::now();
        assert_eq!(notices.read(room, alice, 5, start), Read::Now);
        let soon = start + Duration::from_millis(100);
        assert_eq!(
            notices.read(room, alice, 6, soon),
            Read::Later(READ_INTERVAL - Duration::from_millis(100))
        );
        for seq in [9, 7, 8] {
            assert_eq!(notices.read(room, alice, seq, soon), Read::Folded);
        }
        let end = start + READ_INTERVAL;
        assert_eq!(notices.take_read(room, alice, end), Some(9));
        assert_eq!(notices.take_read(room, alice, end), None, "taken once");
        // The interval starts again at that store.
        assert!(matches!(notices.read(room, alice, 10, end), Read::Later(_)));
        notices.take_read(room, alice, end + READ_INTERVAL);
        assert_eq!(
            notices.read(room, alice, 11, end + READ_INTERVAL * 2),
            Read::Now
        );
    }

    #[test]
    fn pruning_keeps_what_is_pending() {
        let notices = Ephemeral::default();
        let (room, alice, bob) = (RoomId::new(), UserId::new(), UserId::new());
        let start = Instant::now();
        notices.read(room, alice, 1, start);
        notices.read(room, alice, 2, start);
        notices.read(room, bob, 1, start);
        notices.typed(room, bob, start);
        notices.prune(start + READ_INTERVAL * 3);
        assert_eq!(notices.reads.lock().unwrap().len(), 1);
        assert!(notices.typing.lock().unwrap().is_empty());
        assert_eq!(notices.take_read(room, alice, start), Some(2));
    }
}
