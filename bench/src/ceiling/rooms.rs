//! A ceiling node's rooms: who is in each, the room's next seq, and the
//! pacing of its fan-out. One lock for all of them, held while a send is
//! numbered and its event handed to the room's outboxes (pushes that never
//! wait), never across an `.await`.
//!
//! A room's events are gathered and fanned out together at most once per
//! [`FAN_OUT_INTERVAL`], ours' default `CHAT_FANOUT_INTERVAL`, so a busy
//! room costs each connection one write per interval rather than one per
//! event; an event that finds its room quiet for an interval goes out at
//! once. Without it the ceiling would write more than ours under load and
//! stop being a ceiling.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use chat_shared::model::{EventBody, EventId, RoomEvent, RoomId, UserId};
use chat_shared::protocol::ServerFrame;
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::outbox::{Out, Outbox};

/// The least time between two fan-outs of one room.
pub const FAN_OUT_INTERVAL: Duration = Duration::from_millis(10);

/// Every room of the node, and the link to its pair once there is one.
pub struct Rooms {
    rooms: Mutex<HashMap<RoomId, Room>>,
    /// Carries each event sent here to the other node.
    /// Events for the other node, queued without waiting (a full link
    /// drops them: they stay undelivered there, as ours drops a publish its
    /// bus cannot take).
    link: OnceLock<mpsc::Sender<(RoomId, i64, Bytes)>>,
    /// The least time between two fan-outs of a room.
    interval: Duration,
}

/// One room on this node.
#[derive(Default)]
struct Room {
    /// The seq of the room's newest event seen here.
    last_seq: i64,
    /// The connections in the room, by key.
    members: HashMap<u64, Outbox>,
    /// Events waiting for the room's next fan-out.
    gathered: Vec<Bytes>,
    /// Until when a new event waits to be gathered with others.
    quiet_until: Option<Instant>,
    /// A task will fan out what is gathered when the interval ends.
    fan_out_pending: bool,
}

/// What a `send` needs besides its room.
pub struct NewMessage {
    /// Who sent it.
    pub sender: UserId,
    /// The client's key, echoed in the ack and the event.
    pub client_id: String,
    /// The text.
    pub body: String,
}

impl Rooms {
    /// No rooms yet; a busy room is fanned out once per `interval`
    /// ([`FAN_OUT_INTERVAL`] but in tests).
    pub fn new(interval: Duration) -> Self {
        Self {
            rooms: Mutex::default(),
            link: OnceLock::new(),
            interval,
        }
    }

    /// Sets where events for the other node go (once: a node has one pair).
    pub fn link_to(&self, sender: mpsc::Sender<(RoomId, i64, Bytes)>) {
        if self.link.set(sender).is_err() {
            eprintln!("chat-bench ceiling: a second link was refused");
        }
    }

    /// Puts connection `key` in `room` and queues its `hello` (`hello`
    /// makes it from the room's head) before any event of the room can
    /// reach it.
    pub fn join(&self, room: RoomId, key: u64, outbox: &Outbox, hello: impl FnOnce(i64) -> Bytes) {
        let mut rooms = self.rooms.lock().expect("rooms lock");
        let state = rooms.entry(room).or_default();
        outbox.push(Out::Text(hello(state.last_seq)));
        state.members.insert(key, outbox.clone());
    }

    /// Takes connection `key` out of `room`; the room goes with its last
    /// connection unless a fan-out is still due.
    pub fn leave(&self, room: RoomId, key: u64) {
        let mut rooms = self.rooms.lock().expect("rooms lock");
        if let Some(state) = rooms.get_mut(&room) {
            state.members.remove(&key);
            if state.members.is_empty() && !state.fan_out_pending {
                rooms.remove(&room);
            }
        }
    }

    /// The seq of the room's newest event here.
    pub fn head(&self, room: RoomId) -> i64 {
        let rooms = self.rooms.lock().expect("rooms lock");
        rooms.get(&room).map_or(0, |state| state.last_seq)
    }

    /// Numbers a message, queues its `ack` on `ack_to`, hands it to the
    /// other node and to the room's fan-out. Acked before it is fanned out,
    /// as ours acks before its hub delivers.
    pub fn send(self: &Arc<Self>, room: RoomId, send: NewMessage, ack_to: &Outbox) {
        let mut rooms = self.rooms.lock().expect("rooms lock");
        let state = rooms.entry(room).or_default();
        state.last_seq += 1;
        let (seq, id, ts) = (state.last_seq, EventId::new(), OffsetDateTime::now_utc());
        let ack = ServerFrame::Ack {
            client_id: send.client_id.clone(),
            room_id: room,
            seq,
            id,
            ts,
        };
        ack_to.push(Out::Text(Bytes::from(ack.to_json())));
        let event = RoomEvent {
            room_id: room,
            seq,
            id,
            sender: Some(send.sender),
            ts,
            client_id: Some(send.client_id),
            body: EventBody::Message {
                body: send.body,
                reply_to: None,
                reply_preview: None,
                mentions: Vec::new(),
                mentions_room: false,
                deleted: false,
                attachments: Vec::new(),
            },
        };
        // Serialised once, whatever the number of connections.
        let frame = Bytes::from(serde_json::to_vec(&event).expect("events serialise"));
        if let Some(link) = self.link.get() {
            let _ = link.try_send((room, seq, frame.clone()));
        }
        self.gather(room, state, frame);
    }

    /// An event the other node numbered, for this node's connections.
    pub fn offer_remote(self: &Arc<Self>, room: RoomId, seq: i64, frame: Bytes) {
        let mut rooms = self.rooms.lock().expect("rooms lock");
        if let Some(state) = rooms.get_mut(&room) {
            state.last_seq = state.last_seq.max(seq);
            self.gather(room, state, frame);
        }
    }

    /// Adds an event to the room's next fan-out: now if the room was quiet
    /// for an interval, else when the interval ends.
    fn gather(self: &Arc<Self>, room: RoomId, state: &mut Room, frame: Bytes) {
        state.gathered.push(frame);
        match state.quiet_until {
            Some(until) if until > Instant::now() => {
                if !state.fan_out_pending {
                    state.fan_out_pending = true;
                    let rooms = self.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep_until(until).await;
                        rooms.fan_out_due(room);
                    });
                }
            }
            _ => fan_out(state, self.interval),
        }
    }

    /// The end of a room's interval: what it gathered goes out.
    fn fan_out_due(&self, room: RoomId) {
        let mut rooms = self.rooms.lock().expect("rooms lock");
        if let Some(state) = rooms.get_mut(&room) {
            state.fan_out_pending = false;
            fan_out(state, self.interval);
            if state.members.is_empty() {
                rooms.remove(&room);
            }
        }
    }
}

/// Hands the room's gathered events to each of its connections at once,
/// and starts its quiet interval.
fn fan_out(state: &mut Room, interval: Duration) {
    state.quiet_until = Some(Instant::now() + interval);
    let events = std::mem::take(&mut state.gathered);
    for outbox in state.members.values() {
        outbox.push_texts(&events);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What is queued for `outbox` now, as text.
    fn queued(outbox: &Outbox) -> Vec<String> {
        let mut taken = Vec::new();
        let now = futures::FutureExt::now_or_never(outbox.take(&mut taken, 1000));
        assert!(now.is_none_or(|ok| ok), "overflowed");
        texts(taken)
    }

    fn texts(taken: Vec<Out>) -> Vec<String> {
        taken
            .into_iter()
            .map(|out| match out {
                Out::Text(bytes) => String::from_utf8(bytes.to_vec()).unwrap(),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    fn message(text: &str) -> NewMessage {
        NewMessage {
            sender: UserId::new(),
            client_id: format!("c-{text}"),
            body: text.to_owned(),
        }
    }

    #[tokio::test]
    async fn a_busy_room_is_fanned_out_once_per_interval() {
        // Long enough that the sends below fall within one interval.
        let rooms = Arc::new(Rooms::new(Duration::from_millis(300)));
        let room = RoomId::new();
        let (sender, member) = (Outbox::default(), Outbox::default());
        rooms.join(room, 1, &sender, |_| Bytes::from_static(b"hello"));
        rooms.join(room, 2, &member, |seq| Bytes::from(format!("hello {seq}")));
        assert_eq!(queued(&member), ["hello 0"]);
        let _ = queued(&sender);

        rooms.send(room, message("one"), &sender);
        let first = queued(&member);
        assert_eq!(first.len(), 1, "a quiet room's event goes out at once");
        assert!(first[0].contains(r#""seq":1"#) && first[0].contains(r#""body":"one""#));

        rooms.send(room, message("two"), &sender);
        rooms.send(room, message("three"), &sender);
        assert!(queued(&member).is_empty(), "gathered within the interval");
        let sent = queued(&sender);
        assert_eq!(
            sent.len(),
            4,
            "three acks and its own first message: {sent:?}"
        );
        let acks = sent.iter().filter(|t| t.starts_with(r#"{"type":"ack""#));
        assert_eq!(acks.count(), 3);

        let mut later = Vec::new();
        let wait = Duration::from_secs(5);
        let took = tokio::time::timeout(wait, member.take(&mut later, 1000)).await;
        assert_eq!(took.ok(), Some(true));
        let later = texts(later);
        assert_eq!(later.len(), 2, "both at the interval's end: {later:?}");
        assert!(later[1].contains(r#""seq":3"#));
        assert_eq!(rooms.head(room), 3);
    }

    #[tokio::test]
    async fn an_event_from_the_other_node_reaches_only_its_room() {
        let rooms = Arc::new(Rooms::new(FAN_OUT_INTERVAL));
        let (room, other) = (RoomId::new(), RoomId::new());
        let member = Outbox::default();
        rooms.join(room, 1, &member, |_| Bytes::from_static(b"hello"));
        rooms.offer_remote(room, 7, Bytes::from_static(b"event"));
        rooms.offer_remote(other, 8, Bytes::from_static(b"elsewhere"));
        assert_eq!(queued(&member), ["hello", "event"]);
        assert_eq!(rooms.head(room), 7);
        rooms.leave(room, 1);
        assert_eq!(
            rooms.head(room),
            0,
            "the room went with its last connection"
        );
    }
}
