//! What one connection has been written, room by room, and what it is
//! still owed: the rule that each room's events reach a client once, in
//! seq order, whatever order the hub, a replay and the store bring them in.
//!
//! Each followed room has a cursor, the last seq written. An event at the
//! cursor's next seq is written; one at or below it is skipped (a
//! duplicate, or already replayed); one beyond it is written only after
//! the events between have been read from the store.
//!
//! From `hello` until the client's first frame (or the sync grace), room
//! events are *held*, not written: a resuming client's first frame is its
//! `sync`, whose replay must come before anything live for the client to
//! see one ordered sequence. At most `hold_limit` events are held; a room
//! with more is read from the store instead once live.
//!
//! The writer owns the socket and the store reads; it asks this what to
//! write and tells it what it wrote.

use std::collections::{HashMap, HashSet, VecDeque};

use chat_shared::model::RoomId;

/// What to do with an event offered to the connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Offered<T> {
    /// Nothing now: it is held, or not needed.
    Nothing,
    /// Write it (then [`Cursors::written`]).
    Write {
        /// The event's seq.
        seq: i64,
        /// The event.
        item: T,
    },
    /// Read the room's events after `after` and before `seq` from the store
    /// and write them first, then this one.
    FillThenWrite {
        /// The cursor.
        after: i64,
        /// The event's seq.
        seq: i64,
        /// The event.
        item: T,
    },
}

/// What a follow asks of the writer.
#[derive(Debug, PartialEq, Eq)]
pub enum Followed {
    /// Nothing now (held: the room is read once live).
    Nothing,
    /// Write the room's events after `after` from the store, up to the
    /// present.
    CatchUp {
        /// The cursor.
        after: i64,
    },
    /// The same, as the replay answering a `sync`, then say `synced`.
    Replay {
        /// What the client has.
        after: i64,
    },
}

/// What the end of the hold releases.
#[derive(Debug, PartialEq, Eq)]
pub struct Released<T> {
    /// The held events, in arrival order, to offer again.
    pub events: Vec<(RoomId, i64, T)>,
    /// Rooms to catch up from the store (more arrived than could be held,
    /// or they were followed while held).
    pub catch_up: Vec<RoomId>,
}

/// A connection's cursors and hold.
#[derive(Debug)]
pub struct Cursors<T> {
    /// Room → the last seq written to the client.
    rooms: HashMap<RoomId, i64>,
    /// `None` once live.
    held: Option<Hold<T>>,
    hold_limit: usize,
}

#[derive(Debug)]
struct Hold<T> {
    events: VecDeque<(RoomId, i64, T)>,
    spilled: HashSet<RoomId>,
}

impl<T> Cursors<T> {
    /// A connection told in `hello` of `rooms` up to the seqs given,
    /// holding at most `hold_limit` events until live.
    pub fn new(rooms: impl IntoIterator<Item = (RoomId, i64)>, hold_limit: usize) -> Self {
        Self {
            rooms: rooms.into_iter().collect(),
            held: Some(Hold {
                events: VecDeque::new(),
                spilled: HashSet::new(),
            }),
            hold_limit,
        }
    }

    /// Whether events are still held.
    pub fn is_held(&self) -> bool {
        self.held.is_some()
    }

    /// The last seq written of `room`, if it is followed.
    pub fn cursor(&self, room: RoomId) -> Option<i64> {
        self.rooms.get(&room).copied()
    }

    /// A live event of `room` arrives.
    pub fn offer(&mut self, room: RoomId, seq: i64, item: T) -> Offered<T> {
        if let Some(hold) = &mut self.held {
            if hold.events.len() >= self.hold_limit {
                hold.spilled.insert(room);
            } else {
                hold.events.push_back((room, seq, item));
            }
            return Offered::Nothing;
        }
        self.place(room, seq, item)
    }

    /// Where an event goes against the room's cursor, hold or not.
    fn place(&self, room: RoomId, seq: i64, item: T) -> Offered<T> {
        match self.rooms.get(&room) {
            Some(&cursor) if seq == cursor + 1 => Offered::Write { seq, item },
            Some(&cursor) if seq > cursor + 1 => Offered::FillThenWrite {
                after: cursor,
                seq,
                item,
            },
            _ => Offered::Nothing,
        }
    }

    /// The event at `seq` of `room` was written to the client.
    pub fn written(&mut self, room: RoomId, seq: i64) {
        if let Some(cursor) = self.rooms.get_mut(&room) {
            *cursor = seq;
        }
    }

    /// The connection follows `room` from after `after`; `synced` when
    /// that answers the client's `sync` (which sets the cursor where the
    /// client says it is, back or forward).
    pub fn follow(&mut self, room: RoomId, after: i64, synced: bool) -> Followed {
        if synced {
            self.rooms.insert(room, after);
            return Followed::Replay { after };
        }
        let cursor = *self.rooms.entry(room).or_insert(after);
        match &mut self.held {
            // A `sync` may yet move the cursor: read once live.
            Some(hold) => {
                hold.spilled.insert(room);
                Followed::Nothing
            }
            None => Followed::CatchUp { after: cursor },
        }
    }

    /// The connection stops following `room`: returns the held events of
    /// the room, which go out before it does (its `member_left` at least),
    /// and whether it was followed (the client is told it was removed).
    pub fn unfollow(&mut self, room: RoomId) -> (Vec<(RoomId, i64, T)>, bool) {
        let mut first = Vec::new();
        if let Some(hold) = &mut self.held {
            let (mine, others): (VecDeque<_>, VecDeque<_>) =
                hold.events.drain(..).partition(|(r, _, _)| *r == room);
            hold.events = others;
            first.extend(mine);
        }
        (first, self.rooms.contains_key(&room))
    }

    /// The held events of `room` have been offered: the room goes.
    pub fn forget(&mut self, room: RoomId) {
        self.rooms.remove(&room);
    }

    /// Ends the hold (the client spoke, or the grace ran out); `None` if
    /// already live. What it returns is offered again, in order.
    pub fn go_live(&mut self) -> Option<Released<T>> {
        let hold = self.held.take()?;
        Some(Released {
            events: hold.events.into_iter().collect(),
            catch_up: hold.spilled.into_iter().collect(),
        })
    }

    /// An event offered again after the hold, or from [`unfollow`]: placed
    /// against its room's cursor.
    ///
    /// [`unfollow`]: Cursors::unfollow
    pub fn replace(&self, room: RoomId, seq: i64, item: T) -> Offered<T> {
        self.place(room, seq, item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(n: u128) -> RoomId {
        RoomId(uuid::Uuid::from_u128(n))
    }

    fn live(rooms: &[(RoomId, i64)]) -> Cursors<()> {
        let mut cursors = Cursors::new(rooms.iter().copied(), 8);
        let _ = cursors.go_live();
        cursors
    }

    #[test]
    fn the_next_event_is_written_and_old_ones_skipped() {
        let a = room(1);
        let mut c = live(&[(a, 4)]);
        assert_eq!(c.offer(a, 5, ()), Offered::Write { seq: 5, item: () });
        c.written(a, 5);
        assert_eq!(c.offer(a, 5, ()), Offered::Nothing);
        assert_eq!(c.offer(a, 3, ()), Offered::Nothing);
        assert_eq!(c.offer(room(2), 1, ()), Offered::Nothing, "not followed");
    }

    #[test]
    fn an_event_past_a_gap_waits_for_the_store() {
        let a = room(1);
        let mut c = live(&[(a, 4)]);
        assert_eq!(
            c.offer(a, 8, ()),
            Offered::FillThenWrite {
                after: 4,
                seq: 8,
                item: ()
            }
        );
    }

    #[test]
    fn events_are_held_until_live_and_overflow_to_the_store() {
        let (a, b) = (room(1), room(2));
        let mut c = Cursors::new([(a, 0), (b, 0)], 2);
        assert_eq!(c.offer(a, 1, 'x'), Offered::Nothing);
        assert_eq!(c.offer(a, 2, 'y'), Offered::Nothing);
        assert_eq!(c.offer(b, 1, 'z'), Offered::Nothing);
        let released = c.go_live().unwrap();
        assert_eq!(released.events, vec![(a, 1, 'x'), (a, 2, 'y')]);
        assert_eq!(released.catch_up, vec![b]);
        assert!(c.go_live().is_none());
    }

    #[test]
    fn a_sync_sets_the_cursor_where_the_client_is() {
        let a = room(1);
        let mut c: Cursors<()> = Cursors::new([(a, 10)], 8);
        assert_eq!(c.follow(a, 3, true), Followed::Replay { after: 3 });
        assert_eq!(c.cursor(a), Some(3));
    }

    #[test]
    fn a_follow_catches_up_from_the_cursor_once_live() {
        let (a, b) = (room(1), room(2));
        let mut c: Cursors<()> = Cursors::new([(a, 10)], 8);
        assert_eq!(c.follow(b, 2, false), Followed::Nothing);
        assert_eq!(c.go_live().unwrap().catch_up, vec![b]);
        assert_eq!(c.follow(a, 3, false), Followed::CatchUp { after: 10 });
    }

    #[test]
    fn a_room_unfollowed_while_held_takes_its_held_events_with_it() {
        let (a, b) = (room(1), room(2));
        let mut c = Cursors::new([(a, 0), (b, 0)], 8);
        let _ = c.offer(a, 1, 'x');
        let _ = c.offer(b, 1, 'y');
        let (first, followed) = c.unfollow(a);
        assert!(followed);
        assert_eq!(first, vec![(a, 1, 'x')]);
        assert_eq!(c.replace(a, 1, 'x'), Offered::Write { seq: 1, item: 'x' });
        c.forget(a);
        assert_eq!(c.cursor(a), None);
        assert_eq!(c.go_live().unwrap().events, vec![(b, 1, 'y')]);
    }
}
