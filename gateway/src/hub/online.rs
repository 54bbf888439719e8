//! Presence as the hub keeps it: a local user's first connection and
//! last departure announced to the rooms they are in, on this gateway and
//! through the bus to the others; the others' announcements passed to the
//! followers here; liveness beats. What is decided (who is online, when a
//! departure counts) is [`Presence`](crate::delivery::presence::Presence)'s.

use std::collections::HashSet;

use bytes::Bytes;
use chat_shared::bus::Topic;
use chat_shared::model::{RoomId, UserId};
use chat_shared::protocol::{PresenceStatus, ServerFrame};
use tokio::time::Instant;

use super::state::HubTask;
use super::ConnectionKey;
use crate::delivery::presence::{Change, PresenceMessage};
use crate::outbox::Outbound;

impl HubTask {
    /// A user's first connection here: tell everyone sharing a room with
    /// them, and tell the new connection who is online in its rooms.
    pub(super) fn greet_presence(&mut self, key: ConnectionKey, user: UserId) {
        let rooms: Vec<RoomId> = self
            .connections
            .get(&key)
            .map(|s| s.rooms.iter().copied().collect())
            .unwrap_or_default();
        if self.presence.connected(user) {
            self.announce(user, true, &rooms);
        }
        self.tell_who_is_online(key, user, &rooms);
    }

    /// A connection of `user` started following `room` after it opened
    /// (they joined it, were added, or a DM was listed for them): the
    /// room hears they are online, and the connection who is there. Without
    /// it, two people who met after connecting would see each other
    /// offline until one reconnected, and a call between them would be
    /// missed at once for want of a callee.
    pub(super) fn greet_presence_in(&mut self, key: ConnectionKey, user: UserId, room: RoomId) {
        self.announce(user, true, &[room]);
        self.tell_who_is_online(key, user, &[room]);
    }

    /// Sends connection `key` of `user` a `presence` frame for each user
    /// online in `rooms` (here or, as heard, elsewhere) who does not block
    /// them.
    fn tell_who_is_online(&self, key: ConnectionKey, user: UserId, rooms: &[RoomId]) {
        let mut online = HashSet::new();
        for room in rooms {
            online.extend(self.presence.remote_online_in(*room));
            if let Some(entry) = self.rooms.get(room) {
                online.extend(entry.followers.users());
            }
        }
        online.remove(&user);
        if let Some(session) = self.connections.get(&key) {
            online.retain(|other| !session.blockers.contains(other));
        }
        for other in online {
            self.push(key, Outbound::Frame(presence_frame(other, true)));
        }
    }

    /// A local user's status changed: tell local followers of their rooms
    /// now, and the other gateways through the rooms' topics.
    pub(super) fn announce(&self, user: UserId, online: bool, rooms: &[RoomId]) {
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
        let payload = message.to_bytes();
        for room in rooms {
            self.publisher.publish(Topic::Room(*room), payload.clone());
        }
        if !online && self.presence.is_online(user) {
            // Gone from here, but still connected through another gateway.
            return;
        }
        // Rooms whose followers heard it from another gateway (or shard)
        // are not told again.
        let rooms = rooms
            .iter()
            .copied()
            .filter(|room| !online || !self.presence.heard_online_in(user, *room))
            .collect();
        self.notify(&Change {
            user,
            online,
            rooms,
        });
    }

    /// Another gateway's presence message.
    pub(super) fn on_presence(&mut self, topic: Topic, message: &PresenceMessage) {
        match (topic, message) {
            (Topic::Room(room), PresenceMessage::PresenceQuery { gateway })
                if *gateway != self.presence.gateway =>
            {
                // Answer with our users who follow the room.
                let Some(entry) = self.rooms.get(&room) else {
                    return;
                };
                let users: Vec<UserId> = entry.followers.users().collect();
                for user_id in users {
                    let answer = PresenceMessage::PresenceOnline {
                        gateway: self.presence.gateway,
                        user_id,
                    };
                    self.publisher.publish(Topic::Room(room), answer.to_bytes());
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
    pub(super) fn beat(&mut self) {
        let alive = PresenceMessage::GatewayAlive {
            gateway: self.presence.gateway,
        };
        self.publisher.publish(Topic::Presence, alive.to_bytes());
        for change in self
            .presence
            .expire(Instant::now(), self.timing.presence_beat)
        {
            self.notify(&change);
        }
    }

    /// Sends a `presence` frame to the followers of the change's rooms, once
    /// per connection, never to the user themselves nor to those they
    /// block.
    fn notify(&self, change: &Change) {
        let frame = presence_frame(change.user, change.online);
        let mut told = HashSet::new();
        for room in &change.rooms {
            let Some(entry) = self.rooms.get(room) else {
                continue;
            };
            for key in entry.followers.iter() {
                let Some(session) = self.connections.get(key) else {
                    continue;
                };
                if session.user != change.user
                    && !session.blockers.contains(&change.user)
                    && told.insert(*key)
                {
                    session.outbox.push(Outbound::Frame(frame.clone()));
                }
            }
        }
    }
}

impl HubTask {
    /// `blocker` blocked (or unblocked) `user`: their connections here stop
    /// (or start again) seeing the blocker's presence. A block shows the
    /// blocker offline at once; an unblock shows them online if they are.
    pub(super) fn on_block(&mut self, user: UserId, blocker: UserId, blocked: bool) {
        let online = !blocked && self.presence.is_online(blocker);
        for key in self.connections_of(user) {
            let Some(session) = self.connections.get_mut(&key) else {
                continue;
            };
            let changed = if blocked {
                session.blockers.insert(blocker)
            } else {
                session.blockers.remove(&blocker)
            };
            if changed && (blocked || online) {
                session
                    .outbox
                    .push(Outbound::Frame(presence_frame(blocker, !blocked)));
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
