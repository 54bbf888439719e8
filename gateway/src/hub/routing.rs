//! Where each bus message goes: room events through their room's feed to
//! its followers, ephemeral frames straight to them, what is said to a
//! user to that user's connections.

use bytes::Bytes;
use chat_shared::bus::Topic;
use chat_shared::model::{RoomId, SessionId, UserId};
use chat_shared::telemetry;
use tokio::time::Instant;
use tracing::Span;

use super::router::Routed;
use super::state::{HubTask, Item, Report};
use crate::delivery::envelope::{Envelope, EventMeta, LogEvent};
use crate::delivery::feed::Step;
use crate::history::Reading;
use crate::outbox::{Outbound, Outbox};
use crate::wire::close;

impl HubTask {
    pub(super) fn on_delivery(&mut self, routed: Routed) {
        let (topic, envelope, trace) = match routed {
            Routed::Message {
                topic,
                envelope,
                trace,
            } => (topic, envelope, trace),
            Routed::Resumed => {
                // Anything may have been published while we were away.
                let rooms: Vec<RoomId> = self.rooms.keys().copied().collect();
                for room in rooms {
                    self.repair(room);
                }
                return;
            }
        };
        match (topic, envelope) {
            (_, Envelope::Presence(message)) => self.on_presence(topic, &message),
            (Topic::Room(room), Envelope::Event(event)) => self.offer(room, event, trace),
            // Read markers: ephemeral, no order to keep.
            (
                Topic::Room(room),
                Envelope::Ephemeral {
                    frame, from: None, ..
                },
            ) => {
                self.fan_out(room, |outbox| outbox.push(Outbound::Frame(frame.clone())));
            }
            // Typing: the same, but not to those who block the typist.
            (
                Topic::Room(room),
                Envelope::Ephemeral {
                    frame,
                    from: Some(from),
                    ..
                },
            ) => {
                self.fan_out_unblocked(room, from, &frame);
            }
            (Topic::User(user), envelope) => self.on_user_message(user, envelope),
            (topic, _) => tracing::debug!(%topic, "a bus message out of place dropped"),
        }
    }

    /// A message for every connection of `user`.
    fn on_user_message(&mut self, user: UserId, envelope: Envelope) {
        // What the room gathered (a `member_left` of this user, say) goes
        // out before what is said about the room to the user.
        match &envelope {
            Envelope::RoomAdded { room, .. }
            | Envelope::RoomRemoved { room }
            | Envelope::ToUser {
                room: Some(room), ..
            } => self.flush(*room),
            _ => {}
        }
        match envelope {
            Envelope::SessionEnded { session } => self.end_session(user, session),
            Envelope::Blocked { blocker, blocked } => self.on_block(user, blocker, blocked),
            Envelope::BlockChanged {
                user: whom,
                blocked,
                frame,
            } => {
                for key in self.connections_of(user) {
                    if let Some(session) = self.connections.get_mut(&key) {
                        if blocked {
                            session.blocking.insert(whom);
                        } else {
                            session.blocking.remove(&whom);
                        }
                    }
                }
                self.push_to_user(user, &frame);
            }
            Envelope::RoomAdded {
                room,
                last_seq,
                seq,
                frame,
            } => {
                // Start just before the event that added them, so the
                // client sees its own `member_joined`.
                let after = seq.map_or(0, |seq| seq - 1);
                for key in self.connections_of(user) {
                    if self
                        .connections
                        .get(&key)
                        .is_none_or(|s| s.rooms.contains(&room))
                    {
                        continue;
                    }
                    self.push(key, Outbound::Frame(frame.clone()));
                    self.push(
                        key,
                        Outbound::Follow {
                            room,
                            after,
                            synced: false,
                        },
                    );
                    // A room new to this hub starts at the head the api saw:
                    // the writer reads what came before from the store.
                    self.add_follower(key, room, last_seq.max(after));
                    self.greet_presence_in(key, user, room);
                }
            }
            Envelope::RoomRemoved { room } => {
                for key in self.connections_of(user) {
                    if self.unfollow(key, room) {
                        self.forget_if_unfollowed(room);
                    }
                }
            }
            Envelope::ToUser {
                frame, to_session, ..
            } => self.push_to_session(user, to_session, &frame),
            Envelope::Event(_) | Envelope::Ephemeral { .. } | Envelope::Presence(_) => {
                tracing::debug!("a room frame on a user's topic dropped");
            }
        }
    }

    /// A login session of `user` ended: its connections here close (the
    /// client must log in again). Nothing else of the user's is touched.
    fn end_session(&self, user: UserId, ended: SessionId) {
        for key in self.connections_of(user) {
            if self.connections.get(&key).is_some_and(|s| s.login == ended) {
                self.push(
                    key,
                    Outbound::Close {
                        code: close::SESSION_REVOKED,
                        reason: "session revoked; log in again",
                    },
                );
            }
        }
    }

    /// Takes one room event in, from the bus or this gateway.
    pub(super) fn offer(&mut self, room: RoomId, event: LogEvent, trace: Span) {
        let Some(entry) = self.rooms.get_mut(&room) else {
            return;
        };
        let (seq, mut item) = Item::untraced(event);
        item.trace = trace;
        let step = entry.feed.offer(Instant::now(), seq, item);
        self.apply(room, step);
    }

    /// Does what a room's feed asked, and enters when it is next due.
    pub(super) fn apply(&mut self, room: RoomId, step: Step<Item>) {
        if !step.fan_out.is_empty() {
            self.release(room, step.fan_out);
        }
        if let Some(after) = step.read_after {
            self.read(room, after);
        }
        // Its last local member may just have left or been removed.
        self.forget_if_unfollowed(room);
        self.schedule(room);
    }

    /// Keeps the deadlines in step with when the room's feed is next due.
    fn schedule(&mut self, room: RoomId) {
        let Some(entry) = self.rooms.get_mut(&room) else {
            return;
        };
        let next = entry.feed.next_due();
        if next == entry.due {
            return;
        }
        if let Some(at) = entry.due {
            self.deadlines.remove(&(at, room));
        }
        if let Some(at) = next {
            self.deadlines.insert((at, room));
        }
        entry.due = next;
    }

    /// Fans out what the room gathered, now.
    fn flush(&mut self, room: RoomId) {
        let Some(entry) = self.rooms.get_mut(&room) else {
            return;
        };
        let fan_out = entry.feed.flush(Instant::now());
        self.apply(
            room,
            Step {
                fan_out,
                read_after: None,
            },
        );
    }

    /// Reads what `room` is missing from the store (the bus lost something,
    /// or the store's head is ahead), unless a read is under way.
    pub(super) fn repair(&mut self, room: RoomId) {
        if let Some(after) = self.rooms.get_mut(&room).and_then(|r| r.feed.repair()) {
            self.read(room, after);
        }
    }

    /// Reads the room's events after `after`, in a task of its own.
    fn read(&self, room: RoomId, after: i64) {
        crate::metrics::gap_repair();
        let store = self.store.clone();
        let reports = self.reports.clone();
        tokio::spawn(async move {
            let events = Reading::new(room, after, None).all(store.as_ref()).await;
            let _ = reports.send(Report::Repaired { room, events }).await;
        });
    }

    /// Fans released events out, in order, and applies membership changes
    /// they record.
    fn release(&mut self, room: RoomId, released: Vec<(i64, Item)>) {
        // Each follower gets a run of events in one push (one lock, one
        // wake-up); a run ends where a member is removed, who gets their
        // own `member_left` and nothing of the room after it.
        let mut run = Vec::with_capacity(released.len());
        for (seq, item) in released {
            // One span per event for all local sockets, never one per socket.
            let deliver = telemetry::deliver(&item.trace, room, seq);
            run.push((seq, item.frame, item.meta, deliver));
            if let Some(user) = item.left {
                self.fan_out_run(room, &mut run);
                for key in self.connections_of(user) {
                    self.unfollow(key, room);
                }
            }
        }
        self.fan_out_run(room, &mut run);
    }

    /// Pushes a run of the room's events to each of its followers at once.
    fn fan_out_run(&self, room: RoomId, run: &mut Vec<(i64, Bytes, EventMeta, Span)>) {
        if run.is_empty() {
            return;
        }
        let sockets = self.fan_out(room, |outbox| {
            outbox.push_all(run.iter().map(|(seq, frame, meta, _)| Outbound::Event {
                room,
                seq: *seq,
                frame: frame.clone(),
                meta: *meta,
            }))
        });
        for (_, _, _, deliver) in run.drain(..) {
            deliver.record("chat.sockets", sockets as u64);
        }
    }

    /// Pushes a frame from `from` to every follower of `room` whose user
    /// does not block them.
    fn fan_out_unblocked(&self, room: RoomId, from: UserId, frame: &Bytes) {
        let Some(entry) = self.rooms.get(&room) else {
            return;
        };
        for key in entry.followers.iter() {
            if let Some(session) = self.connections.get(key) {
                if !session.blocking.contains(&from) {
                    session.outbox.push(Outbound::Frame(frame.clone()));
                }
            }
        }
    }

    /// Pushes to every follower of `room`; returns how many.
    pub(super) fn fan_out(&self, room: RoomId, push: impl Fn(&Outbox)) -> usize {
        let Some(entry) = self.rooms.get(&room) else {
            return 0;
        };
        let _timed = crate::metrics::FanOut::start();
        let mut pushed = 0;
        for key in entry.followers.iter() {
            if let Some(session) = self.connections.get(key) {
                push(&session.outbox);
                pushed += 1;
            }
        }
        pushed
    }
}
