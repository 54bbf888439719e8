//! Who is online, across every gateway, as one gateway sees it.
//!
//! Each gateway knows its own connections exactly. It announces a user's
//! first connection (online) and last disconnection (offline) on the topics
//! of that user's rooms, tagged with its own id, so only gateways delivering
//! those rooms hear it. Gateways also say they are alive on the presence
//! topic every heartbeat; one that falls silent for [`EXPIRY_BEATS`]
//! heartbeats is taken for dead and its users go offline. A gateway that
//! starts delivering a room asks who is online there, and the others answer.
//!
//! A user is online while any gateway has them. Pure state, no I/O: the hub
//! sends what this decides.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chat_shared::model::{RoomId, UserId};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use uuid::Uuid;

/// Heartbeats a gateway may miss before its users count as offline.
pub const EXPIRY_BEATS: u32 = 3;

/// What gateways tell each other about presence, on the bus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PresenceMessage {
    /// `user_id` came online (or is online) on `gateway` (room topics).
    PresenceOnline {
        /// The announcing gateway.
        gateway: Uuid,
        /// Who.
        user_id: UserId,
    },
    /// `user_id` has no connection left on `gateway` (room topics).
    PresenceOffline {
        /// The announcing gateway.
        gateway: Uuid,
        /// Who.
        user_id: UserId,
    },
    /// `gateway` just started delivering this room: who is online here?
    PresenceQuery {
        /// The asking gateway.
        gateway: Uuid,
    },
    /// `gateway` is alive (presence topic).
    GatewayAlive {
        /// The gateway.
        gateway: Uuid,
    },
}

/// A change of a user's overall status that clients should hear of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Who.
    pub user: UserId,
    /// Online now?
    pub online: bool,
    /// The rooms whose followers should hear it.
    pub rooms: Vec<RoomId>,
}

/// This gateway's view of presence.
#[derive(Debug)]
pub struct Presence {
    /// This gateway's id.
    pub gateway: Uuid,
    /// Local connections per user.
    local: HashMap<UserId, usize>,
    /// Users other gateways report online, with the rooms we heard it on.
    remote: HashMap<UserId, HashMap<Uuid, HashSet<RoomId>>>,
    /// When each other gateway was last heard.
    heard: HashMap<Uuid, Instant>,
}

impl Presence {
    /// Empty presence for gateway `gateway`.
    pub fn new(gateway: Uuid) -> Self {
        Self {
            gateway,
            local: HashMap::new(),
            remote: HashMap::new(),
            heard: HashMap::new(),
        }
    }

    /// Whether `user` is online anywhere.
    pub fn is_online(&self, user: UserId) -> bool {
        self.local.get(&user).is_some_and(|n| *n > 0) || self.remote.contains_key(&user)
    }

    /// The users other gateways report online in `room`.
    pub fn remote_online_in(&self, room: RoomId) -> Vec<UserId> {
        self.remote
            .iter()
            .filter(|(_, gateways)| gateways.values().any(|rooms| rooms.contains(&room)))
            .map(|(user, _)| *user)
            .collect()
    }

    /// A local connection of `user` opened; true if it is their first here.
    pub fn connected(&mut self, user: UserId) -> bool {
        let count = self.local.entry(user).or_default();
        *count += 1;
        *count == 1
    }

    /// A local connection of `user` closed; true if it was their last here.
    pub fn disconnected(&mut self, user: UserId) -> bool {
        match self.local.get_mut(&user) {
            Some(count) if *count > 1 => {
                *count -= 1;
                false
            }
            Some(_) => {
                self.local.remove(&user);
                true
            }
            None => false,
        }
    }

    /// Takes in another gateway's announcement heard on `room`'s topic.
    /// Returns the change clients should hear of, if any.
    pub fn heard(
        &mut self,
        room: RoomId,
        message: &PresenceMessage,
        now: Instant,
    ) -> Option<Change> {
        match *message {
            PresenceMessage::PresenceOnline { gateway, user_id } if gateway != self.gateway => {
                self.heard.insert(gateway, now);
                self.remote
                    .entry(user_id)
                    .or_default()
                    .entry(gateway)
                    .or_default()
                    .insert(room);
                // Told even if already online elsewhere: this room's
                // followers may not have heard it yet.
                Some(Change {
                    user: user_id,
                    online: true,
                    rooms: vec![room],
                })
            }
            PresenceMessage::PresenceOffline { gateway, user_id } if gateway != self.gateway => {
                self.heard.insert(gateway, now);
                let rooms = self.forget(user_id, gateway)?;
                (!self.is_online(user_id)).then_some(Change {
                    user: user_id,
                    online: false,
                    rooms,
                })
            }
            PresenceMessage::GatewayAlive { gateway } if gateway != self.gateway => {
                self.heard.insert(gateway, now);
                None
            }
            _ => None,
        }
    }

    /// Forgets gateways silent for longer than `EXPIRY_BEATS` × `beat`;
    /// returns the users who went offline with them.
    pub fn expire(&mut self, now: Instant, beat: Duration) -> Vec<Change> {
        let limit = beat * EXPIRY_BEATS;
        let dead: Vec<Uuid> = self
            .heard
            .iter()
            .filter(|(_, at)| now.duration_since(**at) > limit)
            .map(|(gateway, _)| *gateway)
            .collect();
        let mut changes = Vec::new();
        for gateway in dead {
            self.heard.remove(&gateway);
            let users: Vec<UserId> = self
                .remote
                .iter()
                .filter(|(_, gateways)| gateways.contains_key(&gateway))
                .map(|(user, _)| *user)
                .collect();
            for user in users {
                if let Some(rooms) = self.forget(user, gateway) {
                    if !self.is_online(user) {
                        changes.push(Change {
                            user,
                            online: false,
                            rooms,
                        });
                    }
                }
            }
        }
        changes
    }

    /// Removes what `gateway` said of `user`; returns the rooms it was on.
    fn forget(&mut self, user: UserId, gateway: Uuid) -> Option<Vec<RoomId>> {
        let gateways = self.remote.get_mut(&user)?;
        let rooms = gateways.remove(&gateway)?;
        if gateways.is_empty() {
            self.remote.remove(&user);
        }
        Some(rooms.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_is_online_while_any_gateway_has_them() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let mut view = Presence::new(Uuid::new_v4());
        let (user, room) = (UserId::new(), RoomId::new());
        let now = Instant::now();
        let online_a = PresenceMessage::PresenceOnline {
            gateway: a,
            user_id: user,
        };
        let online_b = PresenceMessage::PresenceOnline {
            gateway: b,
            user_id: user,
        };
        assert!(view.heard(room, &online_a, now).is_some_and(|c| c.online));
        view.heard(room, &online_b, now);
        let offline_a = PresenceMessage::PresenceOffline {
            gateway: a,
            user_id: user,
        };
        assert_eq!(view.heard(room, &offline_a, now), None, "still on b");
        let offline_b = PresenceMessage::PresenceOffline {
            gateway: b,
            user_id: user,
        };
        let change = view.heard(room, &offline_b, now).unwrap();
        assert_eq!((change.online, change.rooms), (false, vec![room]));
        assert!(!view.is_online(user));
    }

    #[test]
    fn a_silent_gateway_takes_its_users_offline() {
        let gateway = Uuid::new_v4();
        let mut view = Presence::new(Uuid::new_v4());
        let (user, room) = (UserId::new(), RoomId::new());
        let start = Instant::now();
        view.heard(
            room,
            &PresenceMessage::PresenceOnline {
                gateway,
                user_id: user,
            },
            start,
        );
        let beat = Duration::from_secs(1);
        assert!(view.expire(start + beat, beat).is_empty());
        let changes = view.expire(start + beat * (EXPIRY_BEATS + 1), beat);
        assert_eq!(changes.len(), 1);
        assert!(!changes[0].online);
        assert!(!view.is_online(user));
    }

    #[test]
    fn local_connections_are_counted() {
        let mut view = Presence::new(Uuid::new_v4());
        let user = UserId::new();
        assert!(view.connected(user));
        assert!(!view.connected(user));
        assert!(!view.disconnected(user));
        assert!(view.disconnected(user));
        assert!(!view.is_online(user));
    }

    #[test]
    fn our_own_announcements_are_ignored() {
        let me = Uuid::new_v4();
        let mut view = Presence::new(me);
        let user = UserId::new();
        let own = PresenceMessage::PresenceOnline {
            gateway: me,
            user_id: user,
        };
        assert_eq!(view.heard(RoomId::new(), &own, Instant::now()), None);
        assert!(!view.is_online(user));
    }
}
