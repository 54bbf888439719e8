//! The hub: this gateway's one task that knows which connection follows
//! which room, subscribes the bus accordingly, puts each room's events in
//! seq order and fans them out.
//!
//! A busy room's events are gathered and fanned out together at most once
//! per `CHAT_FANOUT_INTERVAL`, so each connection gets them in one write
//! instead of one write (and one wake-up of its writer) per event; an
//! event that finds its room quiet for an interval goes out at once.
//!
//! Whatever is waiting for it (commands, bus deliveries) is handled as one
//! batch, and the bus subscription changes the batch calls for are handed
//! at its end to a task of their own ([`subscriptions`](crate::subscriptions)),
//! which makes them without the hub waiting: a crowd connecting at once
//! costs a few round trips to Redis, not one per connection and room, and
//! a bus slow to subscribe delays no delivery. What must wait for a
//! subscription (answering an attach, asking who is online in a new room)
//! waits there.
//!
//! It owns all routing state, so no lock is ever shared with connections;
//! they speak to it through [`Hub`], and it answers by pushing into their
//! outboxes without waiting. Store reads (gap repair, head checks) run in
//! tasks of their own and report back, so a slow database never stalls
//! delivery of the rooms that have no gap.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chat_shared::bus::{self, Delivery, Publisher, SessionEnded, Subscriber, Topic};
use chat_shared::model::{RoomId, SessionId, UserId};
use chat_shared::protocol::{PresenceStatus, ServerFrame};
use chat_shared::store::{Page, Store};
use chat_shared::telemetry;
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::Span;

use crate::metrics::EventMeta;
use crate::outbox::{Outbound, Outbox};
use crate::presence::{Change, Presence, PresenceMessage};
use crate::sequencer::{Gap, Sequencer};
use crate::subscriptions::{Pending, Subscriptions};
use crate::wire::close;

/// Identifies one connection within this gateway.
pub type SessionKey = u64;

/// Events read per store page while repairing a gap.
const REPAIR_PAGE: u32 = 500;

/// Most commands, or bus deliveries, handled as one batch.
const BATCH: usize = 512;

/// A handle to the hub task, cheap to clone.
#[derive(Clone)]
pub struct Hub {
    commands: mpsc::Sender<Command>,
}

/// What connections tell the hub.
enum Command {
    /// A connection opened: deliver `rooms` (each known up to the seq given).
    Attach {
        key: SessionKey,
        user: UserId,
        login: SessionId,
        rooms: Vec<(RoomId, i64)>,
        outbox: Outbox,
        /// Answered once the connection is routed.
        attached: oneshot::Sender<()>,
    },
    /// A connection closed.
    Detach { key: SessionKey },
    /// Stopping: announce everyone leaving now, then answer.
    DepartAll { done: oneshot::Sender<()> },
    /// A connection asked to (re)start `room` after `after`.
    Follow {
        key: SessionKey,
        room: RoomId,
        after: i64,
        synced: bool,
        /// Answered once the follow is queued for the connection's writer.
        queued: oneshot::Sender<()>,
    },
    /// This gateway committed an event: deliver it without waiting for the
    /// bus to bring it back.
    Committed {
        room: RoomId,
        seq: i64,
        frame: Bytes,
        /// The send's span, parent of the `deliver` span.
        trace: Span,
    },
}

impl Hub {
    /// Starts the hub over a bus subscription and the store.
    pub fn start(
        subscriber: Box<dyn Subscriber>,
        deliveries: mpsc::Receiver<Delivery>,
        store: Arc<dyn Store>,
        publisher: Publisher,
        timing: Timing,
    ) -> Self {
        // Bounded: when the hub falls behind, connections wait to tell it
        // things (which slows their clients) instead of queueing without end.
        let (commands, commands_rx) = mpsc::channel(4096);
        let (reports, reports_rx) = mpsc::channel(1024);
        let presence = Presence::new(uuid::Uuid::new_v4());
        let query = presence_bytes(&PresenceMessage::PresenceQuery {
            gateway: presence.gateway,
        });
        let task = HubTask {
            subscriptions: Subscriptions::start(subscriber, publisher.clone(), query),
            store,
            publisher,
            presence,
            timing,
            rooms: HashMap::new(),
            sessions: HashMap::new(),
            users: HashMap::new(),
            deadlines: BTreeSet::new(),
            reports,
            pending: Pending::default(),
        };
        tokio::spawn(task.run(commands_rx, deliveries, reports_rx));
        Self { commands }
    }

    /// Registers a connection and the rooms it starts with; returns once
    /// the hub routes to it, so whatever is published after that reaches it
    /// (the session says `hello` only then).
    pub async fn attach(
        &self,
        key: SessionKey,
        user: UserId,
        login: SessionId,
        rooms: Vec<(RoomId, i64)>,
        outbox: Outbox,
    ) {
        let (attached, routed) = oneshot::channel();
        self.send(Command::Attach {
            key,
            user,
            login,
            rooms,
            outbox,
            attached,
        })
        .await;
        // Only fails once the hub has stopped, i.e. during shutdown.
        let _ = routed.await;
    }

    /// Forgets a connection.
    pub async fn detach(&self, key: SessionKey) {
        self.send(Command::Detach { key }).await;
    }

    /// Announces offline, now, every user whose last connection here has
    /// closed (the gateway is stopping: no departure grace will run out).
    pub async fn depart_all(&self) {
        let (done, departed) = oneshot::channel();
        self.send(Command::DepartAll { done }).await;
        let _ = departed.await;
    }

    /// Makes a connection follow `room` from just after `after`; returns
    /// once the writer has it queued, so what the caller queues next comes
    /// after it.
    pub async fn follow(&self, key: SessionKey, room: RoomId, after: i64, synced: bool) {
        let (queued, done) = oneshot::channel();
        self.send(Command::Follow {
            key,
            room,
            after,
            synced,
            queued,
        })
        .await;
        // Only fails once the hub has stopped, i.e. during shutdown.
        let _ = done.await;
    }

    /// Delivers an event this gateway just committed (within the current
    /// span's trace, when traces are on).
    pub async fn committed(&self, room: RoomId, seq: i64, frame: Bytes) {
        let trace = if telemetry::traces_enabled() {
            Span::current()
        } else {
            Span::none()
        };
        self.send(Command::Committed {
            room,
            seq,
            frame,
            trace,
        })
        .await;
    }

    async fn send(&self, command: Command) {
        // Only fails once the hub has stopped, i.e. during shutdown.
        let _ = self.commands.send(command).await;
    }
}

/// The hub's timing knobs.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// How long a gap may last before the store is read.
    pub gap_wait: Duration,
    /// The least time between two fan-outs of one room.
    pub fan_out_interval: Duration,
    /// How often room heads are compared with the store.
    pub head_check: Duration,
    /// How often this gateway tells the others it is alive.
    pub presence_beat: Duration,
}

/// What store-reading tasks report back.
enum Report {
    /// Events read to fill a gap (in seq order), or the failure to read them.
    Repaired {
        room: RoomId,
        events: Result<Vec<(i64, Bytes)>, chat_shared::Error>,
    },
    /// The newest seq of each room, as the store has it.
    Heads(Result<Vec<(RoomId, i64)>, chat_shared::Error>),
}

/// One room as this gateway delivers it.
#[derive(Default)]
struct RoomFeed {
    /// Each event with the span its `deliver` goes under (`Span::none()`
    /// untraced).
    sequencer: Sequencer<(Bytes, Span)>,
    followers: Followers,
    /// A store read for this room is under way.
    repairing: bool,
    /// When the current gap may be read from the store.
    repair_at: Option<Instant>,
    /// Events released in order but not yet fanned out.
    gathered: Vec<(i64, (Bytes, Span))>,
    /// Until when events are gathered rather than fanned out at once: one
    /// interval after the last fan-out.
    quiet_until: Option<Instant>,
    /// When the gathered events go out.
    fan_out_at: Option<Instant>,
}

/// What a room's deadline is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Due {
    /// The missing event did not come: read the gap from the store.
    Repair,
    /// Fan the gathered events out.
    FanOut,
}

/// The connections here that follow a room, and how many of them each user
/// has: who is online in the room is then one lookup per user, not one per
/// connection (a room may have thousands of connections of few users).
#[derive(Default)]
struct Followers {
    sessions: HashSet<SessionKey>,
    users: HashMap<UserId, usize>,
}

impl Followers {
    fn insert(&mut self, key: SessionKey, user: UserId) {
        if self.sessions.insert(key) {
            *self.users.entry(user).or_default() += 1;
        }
    }

    fn remove(&mut self, key: SessionKey, user: UserId) {
        if self.sessions.remove(&key) {
            if let Some(count) = self.users.get_mut(&user) {
                *count -= 1;
                if *count == 0 {
                    self.users.remove(&user);
                }
            }
        }
    }

    fn iter(&self) -> impl Iterator<Item = &SessionKey> {
        self.sessions.iter()
    }

    fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// The users with at least one following connection here.
    fn users(&self) -> impl Iterator<Item = UserId> + '_ {
        self.users.keys().copied()
    }
}

struct SessionEntry {
    user: UserId,
    /// The login session its token belongs to.
    login: SessionId,
    outbox: Outbox,
    rooms: HashSet<RoomId>,
}

/// The fields of a bus message the hub routes by; the rest stays in the
/// bytes, which are forwarded untouched.
#[derive(Deserialize)]
struct Route {
    #[serde(rename = "type")]
    kind: String,
    seq: Option<i64>,
    ts: Option<String>,
    user: Option<UserId>,
    room_id: Option<RoomId>,
    room: Option<RoomRef>,
}

#[derive(Deserialize)]
struct RoomRef {
    id: RoomId,
    #[serde(default)]
    last_seq: i64,
}

struct HubTask {
    /// Makes the bus follow what this hub decides.
    subscriptions: Subscriptions,
    store: Arc<dyn Store>,
    /// For presence announcements and answers.
    publisher: Publisher,
    presence: Presence,
    timing: Timing,
    rooms: HashMap<RoomId, RoomFeed>,
    sessions: HashMap<SessionKey, SessionEntry>,
    users: HashMap<UserId, HashSet<SessionKey>>,
    /// Gap and fan-out deadlines, soonest first.
    deadlines: BTreeSet<(Instant, RoomId, Due)>,
    reports: mpsc::Sender<Report>,
    /// The bus subscription changes of the batch under way.
    pending: Pending,
}

impl HubTask {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut deliveries: mpsc::Receiver<Delivery>,
        mut reports: mpsc::Receiver<Report>,
    ) {
        let mut head_check = tokio::time::interval(self.timing.head_check);
        head_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut beat = tokio::time::interval(self.timing.presence_beat);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.pending.subscribe(Topic::Presence);
        self.hand_over_subscriptions();
        let mut command_batch = Vec::with_capacity(BATCH);
        let mut delivery_batch = Vec::with_capacity(BATCH);
        loop {
            let next_deadline = self
                .deadlines
                .first()
                .map(|(at, _, _)| *at)
                .into_iter()
                .chain(self.presence.next_departure())
                .min();
            // Whatever is waiting is handled as one batch, whose bus
            // subscription changes are then handed over together: a
            // reconnect storm costs a round trip per batch at most, not one
            // per connection and room, and deliveries never queue behind
            // thousands of them.
            tokio::select! {
                count = commands.recv_many(&mut command_batch, BATCH) => {
                    if count == 0 {
                        // Stopping: whoever was leaving has left.
                        self.depart(None);
                        return;
                    }
                    for command in command_batch.drain(..) {
                        self.on_command(command);
                    }
                }
                // Zero only once the subscription has gone (at shutdown).
                1.. = deliveries.recv_many(&mut delivery_batch, BATCH) => {
                    for delivery in delivery_batch.drain(..) {
                        self.on_delivery(delivery);
                    }
                }
                Some(report) = reports.recv() => self.on_report(report),
                () = sleep_until(next_deadline) => self.on_deadlines(),
                _ = head_check.tick() => self.check_heads(),
                _ = beat.tick() => self.beat(),
            }
            self.hand_over_subscriptions();
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Attach {
                key,
                user,
                login,
                rooms,
                outbox,
                attached,
            } => {
                let first_of_user = self.users.entry(user).or_default().is_empty();
                self.users.entry(user).or_default().insert(key);
                if first_of_user {
                    self.pending.subscribe(Topic::User(user));
                }
                self.sessions.insert(
                    key,
                    SessionEntry {
                        user,
                        login,
                        outbox,
                        rooms: HashSet::new(),
                    },
                );
                for (room, head) in rooms {
                    // An event committed after the session read its heads
                    // may already have gone out: the writer reads it back.
                    let behind = self
                        .rooms
                        .get(&room)
                        .and_then(|feed| feed.sequencer.head())
                        .is_some_and(|released| released > head);
                    self.add_follower(key, room, head);
                    if behind {
                        if let Some(session) = self.sessions.get(&key) {
                            session.outbox.push(Outbound::Follow {
                                room,
                                after: head,
                                synced: false,
                            });
                        }
                    }
                }
                self.pending.answer_when_subscribed(attached);
                self.greet_presence(key, user);
            }
            Command::Detach { key } => self.detach(key),
            Command::DepartAll { done } => {
                self.depart(None);
                let _ = done.send(());
            }
            Command::Follow {
                key,
                room,
                after,
                synced,
                queued,
            } => {
                let Some(session) = self.sessions.get(&key) else {
                    return;
                };
                // Queued before any event of the room this hub releases
                // from now on, so the writer starts from the right cursor.
                session.outbox.push(Outbound::Follow {
                    room,
                    after,
                    synced,
                });
                let _ = queued.send(());
                self.add_follower(key, room, after);
            }
            Command::Committed {
                room,
                seq,
                frame,
                trace,
            } => self.offer(room, seq, frame, trace),
        }
    }

    /// Adds `key` to `room`'s followers, subscribing the room on the bus if
    /// it is the first, and seeding the room's head when still unknown.
    fn add_follower(&mut self, key: SessionKey, room: RoomId, head: i64) {
        let Some(session) = self.sessions.get_mut(&key) else {
            return;
        };
        session.rooms.insert(room);
        let user = session.user;
        let is_new = !self.rooms.contains_key(&room);
        let feed = self.rooms.entry(room).or_default();
        feed.followers.insert(key, user);
        if feed.sequencer.head().is_none() {
            feed.sequencer.advance_to(head);
        }
        if is_new {
            self.pending.subscribe(Topic::Room(room));
            self.pending.query_when_subscribed(room);
        }
    }

    fn detach(&mut self, key: SessionKey) {
        let Some(session) = self.sessions.remove(&key) else {
            return;
        };
        let rooms: Vec<RoomId> = session.rooms.iter().copied().collect();
        self.presence
            .disconnected(session.user, rooms, Instant::now());
        if let Some(keys) = self.users.get_mut(&session.user) {
            keys.remove(&key);
            if keys.is_empty() {
                self.users.remove(&session.user);
                self.pending.unsubscribe(Topic::User(session.user));
            }
        }
        for room in session.rooms {
            self.remove_follower(room, key, session.user);
        }
    }

    fn remove_follower(&mut self, room: RoomId, key: SessionKey, user: UserId) {
        if let Some(feed) = self.rooms.get_mut(&room) {
            feed.followers.remove(key, user);
        }
        self.forget_if_unfollowed(room);
    }

    /// Drops a room nobody here follows any more, and its subscription.
    fn forget_if_unfollowed(&mut self, room: RoomId) {
        if self
            .rooms
            .get(&room)
            .is_some_and(|feed| feed.followers.is_empty())
        {
            if let Some(feed) = self.rooms.remove(&room) {
                for (at, due) in [
                    (feed.repair_at, Due::Repair),
                    (feed.fan_out_at, Due::FanOut),
                ] {
                    if let Some(at) = at {
                        self.deadlines.remove(&(at, room, due));
                    }
                }
            }
            self.pending.unsubscribe(Topic::Room(room));
        }
    }

    /// The connections of `user` on this gateway.
    fn sessions_of(&self, user: UserId) -> Vec<SessionKey> {
        self.users
            .get(&user)
            .into_iter()
            .flatten()
            .copied()
            .collect()
    }

    /// Stops delivering `room` to connection `key` and tells it so; false
    /// if it was not following the room.
    fn unfollow(&mut self, key: SessionKey, room: RoomId) -> bool {
        let Some(session) = self.sessions.get_mut(&key) else {
            return false;
        };
        if !session.rooms.remove(&room) {
            return false;
        }
        session.outbox.push(Outbound::Unfollow { room });
        let user = session.user;
        if let Some(feed) = self.rooms.get_mut(&room) {
            feed.followers.remove(key, user);
        }
        true
    }

    /// Hands the batch's subscription changes to the task that makes them.
    fn hand_over_subscriptions(&mut self) {
        self.subscriptions.submit(std::mem::take(&mut self.pending));
    }

    fn on_delivery(&mut self, delivery: Delivery) {
        let (topic, payload) = match delivery {
            Delivery::Message { topic, payload } => (topic, payload),
            Delivery::Resumed => {
                // Anything may have been published while we were away.
                let rooms: Vec<RoomId> = self.rooms.keys().copied().collect();
                for room in rooms {
                    self.repair(room);
                }
                return;
            }
        };
        // Off before anything else: clients never see it.
        let (payload, traceparent) = bus::trace::detach(payload);
        let Ok(route) = serde_json::from_slice::<Route>(&payload) else {
            tracing::warn!(%topic, "unreadable bus message dropped");
            return;
        };
        if route.kind.starts_with("presence_") || route.kind == "gateway_alive" {
            if let Ok(message) = serde_json::from_slice::<PresenceMessage>(&payload) {
                self.on_presence(topic, &message);
            }
            return;
        }
        match topic {
            Topic::Room(room) => match route.seq {
                // A read marker's seq is that of the event read, not a place
                // in the log: sequencing it would drop it as a duplicate.
                Some(seq) if route.kind != "read" => {
                    let trace = telemetry::bus_receive(room, seq, traceparent.as_deref());
                    self.offer(room, seq, payload, trace)
                }
                // Typing, read markers: ephemeral, no order to keep.
                _ => {
                    self.fan_out(room, |outbox| outbox.push(Outbound::Frame(payload.clone())));
                }
            },
            Topic::User(user) => self.on_user_message(user, route, payload),
            Topic::Presence => {}
        }
    }

    /// A message for every connection of `user`.
    fn on_user_message(&mut self, user: UserId, route: Route, payload: Bytes) {
        if route.kind == SessionEnded::TYPE {
            return self.end_session(user, &payload);
        }
        // What the room gathered (a `member_left` of this user, say) goes
        // out before what is said about the room to the user.
        if let Some(room) = route.room_id.or(route.room.as_ref().map(|r| r.id)) {
            self.fan_out_gathered(room);
        }
        let keys = self.sessions_of(user);
        match (route.kind.as_str(), route.room, route.room_id) {
            ("room_added", Some(room), _) => {
                // Start just before the event that added them, so the
                // client sees its own `member_joined`.
                let after = route.seq.map_or(0, |seq| seq - 1);
                for key in keys {
                    let follows = self
                        .sessions
                        .get(&key)
                        .is_some_and(|s| s.rooms.contains(&room.id));
                    if follows {
                        continue;
                    }
                    if let Some(session) = self.sessions.get(&key) {
                        session.outbox.push(Outbound::Frame(payload.clone()));
                        session.outbox.push(Outbound::Follow {
                            room: room.id,
                            after,
                            synced: false,
                        });
                    }
                    // A room new to this hub starts at the head the api saw:
                    // the writer reads what came before from the store.
                    self.add_follower(key, room.id, room.last_seq.max(after));
                }
            }
            ("room_removed", _, Some(room)) => {
                for key in keys {
                    self.cut_off(key, room);
                }
            }
            _ => {
                for key in keys {
                    if let Some(session) = self.sessions.get(&key) {
                        session.outbox.push(Outbound::Frame(payload.clone()));
                    }
                }
            }
        }
    }

    /// A login session of `user` ended: its connections here close (the
    /// client must log in again). Nothing else of the user's is touched.
    fn end_session(&mut self, user: UserId, payload: &[u8]) {
        let Ok(ended) = serde_json::from_slice::<SessionEnded>(payload) else {
            tracing::warn!("a malformed session_ended on the bus");
            return;
        };
        for key in self.sessions_of(user) {
            if let Some(session) = self.sessions.get(&key) {
                if session.login == ended.session_id {
                    session.outbox.push(Outbound::Close {
                        code: close::SESSION_REVOKED,
                        reason: "session revoked; log in again",
                    });
                }
            }
        }
    }

    /// Stops delivering `room` to connection `key` at once.
    fn cut_off(&mut self, key: SessionKey, room: RoomId) {
        if self.unfollow(key, room) {
            self.forget_if_unfollowed(room);
        }
    }

    /// Takes one room event in, from the bus, this gateway, or the store.
    fn offer(&mut self, room: RoomId, seq: i64, frame: Bytes, trace: Span) {
        let Some(feed) = self.rooms.get_mut(&room) else {
            return;
        };
        let released = feed.sequencer.offer(seq, (frame, trace));
        if !released.is_empty() {
            feed.gathered.extend(released);
            self.pace(room);
        }
        // Its last local member may just have left or been removed.
        self.forget_if_unfollowed(room);
        self.arm_gap_timer(room);
    }

    /// Fans the room's gathered events out now if it was quiet for an
    /// interval, or else at the end of that interval.
    fn pace(&mut self, room: RoomId) {
        let Some(feed) = self.rooms.get_mut(&room) else {
            return;
        };
        match feed.quiet_until {
            Some(until) if until > Instant::now() => {
                if feed.fan_out_at.is_none() {
                    feed.fan_out_at = Some(until);
                    self.deadlines.insert((until, room, Due::FanOut));
                }
            }
            _ => self.fan_out_gathered(room),
        }
    }

    /// Fans out what the room gathered, and starts its quiet interval.
    fn fan_out_gathered(&mut self, room: RoomId) {
        let Some(feed) = self.rooms.get_mut(&room) else {
            return;
        };
        if let Some(at) = feed.fan_out_at.take() {
            self.deadlines.remove(&(at, room, Due::FanOut));
        }
        if feed.gathered.is_empty() {
            return;
        }
        feed.quiet_until = Some(Instant::now() + self.timing.fan_out_interval);
        let events = std::mem::take(&mut feed.gathered);
        self.release(room, events);
    }

    /// Fans released events out, in order, and applies membership changes
    /// they record.
    fn release(&mut self, room: RoomId, released: Vec<(i64, (Bytes, Span))>) {
        // Each follower gets a run of events in one push (one lock, one
        // wake-up); a run ends where a member is removed, who gets their
        // own `member_left` and nothing of the room after it.
        let mut run = Vec::with_capacity(released.len());
        for (seq, (frame, trace)) in released {
            let route = serde_json::from_slice::<Route>(&frame).ok();
            let meta = match &route {
                Some(route) => EventMeta::new(&route.kind, route.ts.as_deref()),
                None => EventMeta::new("", None),
            };
            // One span per event for all local sockets, never one per socket.
            let deliver = telemetry::deliver(&trace, room, seq);
            drop(trace);
            run.push((seq, frame, meta, deliver));
            let removed = route
                .filter(|route| route.kind == "member_left")
                .and_then(|route| route.user);
            if let Some(user) = removed {
                self.fan_out_run(room, &mut run);
                for key in self.sessions_of(user) {
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

    /// Pushes to every follower of `room`; returns how many.
    fn fan_out(&self, room: RoomId, push: impl Fn(&Outbox)) -> usize {
        let Some(feed) = self.rooms.get(&room) else {
            return 0;
        };
        let _timed = crate::metrics::FanOut::start();
        let mut pushed = 0;
        for key in feed.followers.iter() {
            if let Some(session) = self.sessions.get(key) {
                push(&session.outbox);
                pushed += 1;
            }
        }
        pushed
    }

    fn arm_gap_timer(&mut self, room: RoomId) {
        let Some(feed) = self.rooms.get_mut(&room) else {
            return;
        };
        match feed.sequencer.gap() {
            Gap::None => {
                if let Some(at) = feed.repair_at.take() {
                    self.deadlines.remove(&(at, room, Due::Repair));
                }
            }
            Gap::Missing { .. } if feed.repair_at.is_none() => {
                let at = Instant::now() + self.timing.gap_wait;
                feed.repair_at = Some(at);
                self.deadlines.insert((at, room, Due::Repair));
            }
            Gap::Missing { .. } => {}
        }
    }

    fn on_deadlines(&mut self) {
        let now = Instant::now();
        while let Some(&(at, room, due)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.deadlines.pop_first();
            let Some(feed) = self.rooms.get_mut(&room) else {
                continue;
            };
            match due {
                Due::Repair => {
                    feed.repair_at = None;
                    // The missing event did not come in time: read it.
                    self.repair(room);
                }
                Due::FanOut => self.fan_out_gathered(room),
            }
        }
        self.depart(Some(now));
    }

    /// Announces offline the users whose departure grace ran out by `now`
    /// (everyone leaving, with `None`).
    fn depart(&mut self, now: Option<Instant>) {
        for (user, rooms) in self.presence.departures(now) {
            self.announce(user, false, &rooms);
        }
    }

    /// Reads what `room` is missing from the store, in a task of its own.
    fn repair(&mut self, room: RoomId) {
        let Some(feed) = self.rooms.get_mut(&room) else {
            return;
        };
        let Some(after) = feed.sequencer.head() else {
            return;
        };
        if feed.repairing {
            return;
        }
        feed.repairing = true;
        crate::metrics::gap_repair();
        let store = self.store.clone();
        let reports = self.reports.clone();
        tokio::spawn(async move {
            let events = read_after(store.as_ref(), room, after).await;
            let _ = reports.send(Report::Repaired { room, events }).await;
        });
    }

    fn on_report(&mut self, report: Report) {
        match report {
            Report::Repaired { room, events } => {
                let Some(feed) = self.rooms.get_mut(&room) else {
                    return;
                };
                feed.repairing = false;
                match events {
                    Ok(events) => {
                        tracing::debug!(%room, count = events.len(), "gap repaired from the store");
                        for (seq, frame) in events {
                            self.offer(room, seq, frame, Span::none());
                        }
                    }
                    Err(e) => {
                        // Try again after the usual wait.
                        tracing::warn!(error = %e, %room, "gap repair failed");
                    }
                }
                self.arm_gap_timer(room);
            }
            Report::Heads(Ok(heads)) => {
                for (room, last_seq) in heads {
                    let behind = self
                        .rooms
                        .get(&room)
                        .and_then(|feed| feed.sequencer.head())
                        .is_some_and(|head| head < last_seq);
                    if behind {
                        // The last event(s) of the room never came.
                        self.repair(room);
                    }
                }
            }
            Report::Heads(Err(e)) => tracing::warn!(error = %e, "head check failed"),
        }
    }

    /// Compares every followed room's head with the store, in a task.
    fn check_heads(&self) {
        let rooms: Vec<RoomId> = self.rooms.keys().copied().collect();
        if rooms.is_empty() {
            return;
        }
        let store = self.store.clone();
        let reports = self.reports.clone();
        tokio::spawn(async move {
            let heads = store.heads(&rooms).await;
            let _ = reports.send(Report::Heads(heads)).await;
        });
    }
}

impl HubTask {
    /// A user's first connection here: tell everyone sharing a room with
    /// them, and tell the new connection who is online in its rooms.
    fn greet_presence(&mut self, key: SessionKey, user: UserId) {
        let rooms: Vec<RoomId> = self
            .sessions
            .get(&key)
            .map(|s| s.rooms.iter().copied().collect())
            .unwrap_or_default();
        if self.presence.connected(user) {
            self.announce(user, true, &rooms);
        }
        let mut online = HashSet::new();
        for room in &rooms {
            online.extend(self.presence.remote_online_in(*room));
            if let Some(feed) = self.rooms.get(room) {
                online.extend(feed.followers.users());
            }
        }
        online.remove(&user);
        if let Some(session) = self.sessions.get(&key) {
            for other in online {
                session
                    .outbox
                    .push(Outbound::Frame(presence_frame(other, true)));
            }
        }
    }

    /// A local user's status changed: tell local followers of their rooms
    /// now, and the other gateways through the rooms' topics.
    fn announce(&self, user: UserId, online: bool, rooms: &[RoomId]) {
        let gateway = self.presence.gateway;
        let message = if online {
            PresenceMessage::PresenceOnline {
                gateway,
                user_id: user,
            }
        } else {
            PresenceMessage::PresenceOffline {
                gateway,
                user_id: user,
            }
        };
        let payload = presence_bytes(&message);
        for room in rooms {
            self.publisher.publish(Topic::Room(*room), payload.clone());
        }
        if !online && self.presence.is_online(user) {
            // Gone from here, but still connected through another gateway.
            return;
        }
        self.notify(&Change {
            user,
            online,
            rooms: rooms.to_vec(),
        });
    }

    /// Another gateway's presence message.
    fn on_presence(&mut self, topic: Topic, message: &PresenceMessage) {
        match (topic, message) {
            (Topic::Room(room), PresenceMessage::PresenceQuery { gateway })
                if *gateway != self.presence.gateway =>
            {
                // Answer with our users who follow the room.
                let Some(feed) = self.rooms.get(&room) else {
                    return;
                };
                let users: Vec<UserId> = feed.followers.users().collect();
                for user_id in users {
                    let answer = PresenceMessage::PresenceOnline {
                        gateway: self.presence.gateway,
                        user_id,
                    };
                    self.publisher
                        .publish(Topic::Room(room), presence_bytes(&answer));
                }
            }
            (Topic::Room(room), _) => {
                if let Some(change) = self.presence.heard(room, message, Instant::now()) {
                    self.notify(&change);
                }
            }
            (Topic::Presence, _) => {
                // Only liveness travels here; the room is irrelevant.
                self.presence
                    .heard(RoomId(uuid::Uuid::nil()), message, Instant::now());
            }
            (Topic::User(_), _) => {}
        }
    }

    /// Every heartbeat: say we are alive, and bury silent gateways.
    fn beat(&mut self) {
        let alive = PresenceMessage::GatewayAlive {
            gateway: self.presence.gateway,
        };
        self.publisher
            .publish(Topic::Presence, presence_bytes(&alive));
        for change in self
            .presence
            .expire(Instant::now(), self.timing.presence_beat)
        {
            self.notify(&change);
        }
    }

    /// Sends a `presence` frame to the followers of the change's rooms, once
    /// per connection, never to the user themselves.
    fn notify(&self, change: &Change) {
        let frame = presence_frame(change.user, change.online);
        let mut told = HashSet::new();
        for room in &change.rooms {
            let Some(feed) = self.rooms.get(room) else {
                continue;
            };
            for key in feed.followers.iter() {
                let Some(session) = self.sessions.get(key) else {
                    continue;
                };
                if session.user != change.user && told.insert(*key) {
                    session.outbox.push(Outbound::Frame(frame.clone()));
                }
            }
        }
    }
}

fn presence_frame(user: UserId, online: bool) -> Bytes {
    let status = if online {
        PresenceStatus::Online
    } else {
        PresenceStatus::Offline
    };
    Bytes::from(
        ServerFrame::Presence {
            user_id: user,
            status,
        }
        .to_json(),
    )
}

fn presence_bytes(message: &PresenceMessage) -> Bytes {
    Bytes::from(serde_json::to_vec(message).expect("presence messages serialise"))
}

/// Every event of `room` after `after`, serialised as delivered.
async fn read_after(
    store: &dyn Store,
    room: RoomId,
    mut after: i64,
) -> Result<Vec<(i64, Bytes)>, chat_shared::Error> {
    let mut out = Vec::new();
    loop {
        let page = Page {
            after: Some(after),
            before: None,
            limit: REPAIR_PAGE,
        };
        let events = store.events(room, page).await?;
        let full = events.len() == REPAIR_PAGE as usize;
        for event in events {
            after = event.seq;
            let frame = serde_json::to_vec(&event).expect("events serialise");
            out.push((event.seq, Bytes::from(frame)));
        }
        if !full {
            return Ok(out);
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
