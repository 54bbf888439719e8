//! A shard's loop, and what connections ask of it: attach, detach, follow.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use chat_shared::bus::{Publisher, Topic};
use chat_shared::model::{ConnectionId, RoomId, UserId};
use chat_shared::store::Store;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::followers::Followers;
use super::router::Deliveries;
use super::state::{ConnectionEntry, HubTask, Item, Report, Room};
use super::{Command, ConnectionKey, Timing};
use crate::delivery::feed::{Pacing, RoomFeed};
use crate::delivery::presence::{Presence, PresenceMessage};
use crate::outbox::Outbound;
use crate::subscriptions::{Pending, Subscriptions};

/// Most commands, or bus deliveries, handled as one batch.
const BATCH: usize = 512;

impl HubTask {
    /// Starts one shard of the hub.
    pub(super) fn spawn(
        subscriptions: Subscriptions,
        store: Arc<dyn Store>,
        publisher: Publisher,
        timing: Timing,
        commands: mpsc::Receiver<Command>,
        deliveries: Deliveries,
    ) {
        let (reports, reports_rx) = mpsc::channel(1024);
        let presence = Presence::new(uuid::Uuid::new_v4());
        let query = PresenceMessage::PresenceQuery {
            gateway: presence.gateway,
        }
        .to_bytes();
        let task = HubTask {
            subscriptions,
            store,
            publisher,
            presence,
            query,
            timing,
            rooms: HashMap::new(),
            connections: HashMap::new(),
            users: HashMap::new(),
            deadlines: BTreeSet::new(),
            reports,
            pending: Pending::default(),
        };
        tokio::spawn(task.run(commands, deliveries, reports_rx));
    }

    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut deliveries: Deliveries,
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
                .map(|(at, _)| *at)
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
                // Zero only once the bus's reader has gone (at shutdown).
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
                id,
                user,
                login,
                rooms,
                blocks,
                outbox,
                attached,
            } => {
                let keys = self.users.entry(user).or_default();
                if keys.is_empty() {
                    self.pending.subscribe(Topic::User(user));
                }
                keys.insert(key);
                self.connections.insert(
                    key,
                    ConnectionEntry {
                        id,
                        user,
                        login,
                        outbox,
                        rooms: HashSet::new(),
                        blockers: blocks.blockers.into_iter().collect(),
                        blocking: blocks.blocking.into_iter().collect(),
                    },
                );
                for (room, head) in rooms {
                    // An event committed after the connection read its heads
                    // may already have gone out: the writer reads it back.
                    let behind = self.rooms.get(&room).is_some_and(|r| r.feed.head() > head);
                    self.add_follower(key, room, head);
                    if behind {
                        self.push(
                            key,
                            Outbound::Follow {
                                room,
                                after: head,
                                synced: false,
                            },
                        );
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
                if !self.connections.contains_key(&key) {
                    return;
                }
                // Queued before any event of the room this hub releases
                // from now on, so the writer starts from the right cursor.
                self.push(
                    key,
                    Outbound::Follow {
                        room,
                        after,
                        synced,
                    },
                );
                let _ = queued.send(());
                self.add_follower(key, room, after);
            }
            Command::Committed { room, event, trace } => self.offer(room, event, trace),
            Command::MayBeOnline { user, room, answer } => {
                let known = self.rooms.contains_key(&room);
                let _ = answer.send(!known || self.presence.is_online(user));
            }
        }
    }

    /// Pushes to one connection, if it is still here.
    pub(super) fn push(&self, key: ConnectionKey, item: Outbound) {
        if let Some(session) = self.connections.get(&key) {
            session.outbox.push(item);
        }
    }

    /// Pushes a frame to every connection of `user` here.
    pub(super) fn push_to_user(&self, user: UserId, frame: &Bytes) {
        self.push_to_session(user, None, frame);
    }

    /// Pushes a frame to the connection `to` of `user`, if it is here, or
    /// with `None` to every connection of theirs here.
    pub(super) fn push_to_session(&self, user: UserId, to: Option<ConnectionId>, frame: &Bytes) {
        for key in self.connections_of(user) {
            let Some(session) = self.connections.get(&key) else {
                continue;
            };
            if to.is_none_or(|to| to == session.id) {
                session.outbox.push(Outbound::Frame(frame.clone()));
            }
        }
    }

    /// Adds `key` to `room`'s followers, subscribing the room on the bus if
    /// it is the first; a room new here starts at `head`.
    pub(super) fn add_follower(&mut self, key: ConnectionKey, room: RoomId, head: i64) {
        let Some(session) = self.connections.get_mut(&key) else {
            return;
        };
        session.rooms.insert(room);
        let user = session.user;
        let pacing = Pacing {
            gap_wait: self.timing.gap_wait,
            fan_out_interval: self.timing.fan_out_interval,
        };
        let entry = self.rooms.entry(room).or_insert_with(|| {
            self.pending.subscribe(Topic::Room(room));
            self.pending.query_when_subscribed(room, self.query.clone());
            Room {
                feed: RoomFeed::new(head, pacing),
                followers: Followers::default(),
                due: None,
            }
        });
        entry.followers.insert(key, user);
    }

    fn detach(&mut self, key: ConnectionKey) {
        let Some(session) = self.connections.remove(&key) else {
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
            if let Some(entry) = self.rooms.get_mut(&room) {
                entry.followers.remove(key, session.user);
            }
            self.forget_if_unfollowed(room);
        }
    }

    /// Drops a room nobody here follows any more, and its subscription.
    pub(super) fn forget_if_unfollowed(&mut self, room: RoomId) {
        if !self
            .rooms
            .get(&room)
            .is_some_and(|entry| entry.followers.is_empty())
        {
            return;
        }
        if let Some(entry) = self.rooms.remove(&room) {
            if let Some(at) = entry.due {
                self.deadlines.remove(&(at, room));
            }
        }
        self.pending.unsubscribe(Topic::Room(room));
    }

    /// The connections of `user` on this gateway.
    pub(super) fn connections_of(&self, user: UserId) -> Vec<ConnectionKey> {
        self.users
            .get(&user)
            .into_iter()
            .flatten()
            .copied()
            .collect()
    }

    /// Stops delivering `room` to connection `key` and tells it so; false
    /// if it was not following the room.
    pub(super) fn unfollow(&mut self, key: ConnectionKey, room: RoomId) -> bool {
        let Some(session) = self.connections.get_mut(&key) else {
            return false;
        };
        if !session.rooms.remove(&room) {
            return false;
        }
        session.outbox.push(Outbound::Unfollow { room });
        let user = session.user;
        if let Some(entry) = self.rooms.get_mut(&room) {
            entry.followers.remove(key, user);
        }
        true
    }

    /// Hands the batch's subscription changes to the task that makes them.
    fn hand_over_subscriptions(&mut self) {
        self.subscriptions.submit(std::mem::take(&mut self.pending));
    }

    fn on_deadlines(&mut self) {
        let now = Instant::now();
        while let Some(&(at, room)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.deadlines.pop_first();
            let Some(entry) = self.rooms.get_mut(&room) else {
                continue;
            };
            entry.due = None;
            let step = entry.feed.due(now);
            self.apply(room, step);
        }
        self.depart(Some(now));
    }

    /// Announces offline the users whose departure grace ran out by `now`
    /// (everyone leaving, with `None`).
    pub(super) fn depart(&mut self, now: Option<Instant>) {
        for (user, rooms) in self.presence.departures(now) {
            self.announce(user, false, &rooms);
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

    fn on_report(&mut self, report: Report) {
        match report {
            Report::Repaired { room, events } => {
                let Some(entry) = self.rooms.get_mut(&room) else {
                    return;
                };
                let events = match events {
                    Ok(events) => {
                        tracing::debug!(%room, count = events.len(), "gap repaired from the store");
                        Some(events.into_iter().map(Item::untraced).collect())
                    }
                    Err(e) => {
                        // Tried again after the usual wait.
                        tracing::warn!(error = %e, %room, "gap repair failed");
                        None
                    }
                };
                let step = entry.feed.repaired(Instant::now(), events);
                self.apply(room, step);
            }
            Report::Heads(Ok(heads)) => {
                for (room, last_seq) in heads {
                    if self
                        .rooms
                        .get(&room)
                        .is_some_and(|entry| entry.feed.is_behind(last_seq))
                    {
                        // The last event(s) of the room never came.
                        self.repair(room);
                    }
                }
            }
            Report::Heads(Err(e)) => tracing::warn!(error = %e, "head check failed"),
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
