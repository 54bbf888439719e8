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
//! A user whose last connection here closes is announced offline only after
//! [`DEPARTURE_GRACE`], and not at all if they connect again within it: a
//! page reload, a flaky network or a connect/disconnect flood costs their
//! rooms' members nothing (the flood sent each co-member two frames a
//! cycle).
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

/// How long after a user's last connection here closes they are announced
/// offline, unless they come back first.
pub const DEPARTURE_GRACE: Duration = Duration::from_secs(2);

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

impl PresenceMessage {
    /// The message as published.
    pub fn to_bytes(&self) -> bytes::Bytes {
        bytes::Bytes::from(serde_json::to_vec(self).expect("presence messages serialise"))
    }
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
    /// Users whose last local connection closed: when they are due to be
    /// announced offline, and on which rooms.
    leaving: HashMap<UserId, (Instant, Vec<RoomId>)>,
}

impl Presence {
    /// Empty presence for gateway `gateway`.
    pub fn new(gateway: Uuid) -> Self {
        Self {
            gateway,
            local: HashMap::new(),
            remote: HashMap::new(),
            heard: HashMap::new(),
            leaving: HashMap::new(),
        }
    }

    /// Whether `user` is online anywhere (still, while leaving here).
    pub fn is_online(&self, user: UserId) -> bool {
        self.local.get(&user).is_some_and(|n| *n > 0)
            || self.remote.contains_key(&user)
            || self.leaving.contains_key(&user)
    }

    /// Whether another gateway has said `user` is online in `room` (so
    /// its followers here were told).
    pub fn heard_online_in(&self, user: UserId, room: RoomId) -> bool {
        self.remote
            .get(&user)
            .is_some_and(|gateways| gateways.values().any(|rooms| rooms.contains(&room)))
    }

    /// The users other gateways report online in `room`.
    pub fn remote_online_in(&self, room: RoomId) -> Vec<UserId> {
        self.remote
            .iter()
            .filter(|(_, gateways)| gateways.values().any(|rooms| rooms.contains(&room)))
            .map(|(user, _)| *user)
            .collect()
    }

    /// A local connection of `user` opened; true if they are to be
    /// announced online: their first here, and not a return within the
    /// departure grace (whose offline was never announced).
    pub fn connected(&mut self, user: UserId) -> bool {
        let count = self.local.entry(user).or_default();
        *count += 1;
        *count == 1 && self.leaving.remove(&user).is_none()
    }

    /// A local connection of `user`, following `rooms`, closed at `now`; if
    /// it was their last here, they depart after [`DEPARTURE_GRACE`] (see
    /// [`departures`](Self::departures)).
    pub fn disconnected(&mut self, user: UserId, rooms: Vec<RoomId>, now: Instant) {
        match self.local.get_mut(&user) {
            Some(count) if *count > 1 => *count -= 1,
            Some(_) => {
                self.local.remove(&user);
                self.leaving.insert(user, (now + DEPARTURE_GRACE, rooms));
            }
            None => {}
        }
    }

    /// When the next departure is due.
    pub fn next_departure(&self) -> Option<Instant> {
        self.leaving.values().map(|(at, _)| *at).min()
    }

    /// The users whose grace has run out by `now` (all of them, with
    /// `now` = `None`: the gateway is stopping), each with the rooms to
    /// announce their going offline on.
    pub fn departures(&mut self, now: Option<Instant>) -> Vec<(UserId, Vec<RoomId>)> {
        let due: Vec<UserId> = self
            .leaving
            .iter()
            .filter(|(_, (at, _))| now.is_none_or(|now| *at <= now))
            .map(|(user, _)| *user)
            .collect();
        due.into_iter()
            .filter_map(|user| Some((user, self.leaving.remove(&user)?.1)))
            .collect()
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
                // Told even if online through this gateway (this room's
                // followers may not have heard it), but not twice for one
                // room: a user on two other gateways (or two shards of
                // one) comes online once.
                let told = self.heard_online_in(user_id, room);
                self.remote
                    .entry(user_id)
                    .or_default()
                    .entry(gateway)
                    .or_default()
                    .insert(room);
                (!told).then(|| Change {
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
        assert_eq!(view.heard(room, &online_b, now), None, "told once");
        let other_room = RoomId::new();
        assert!(
            view.heard(other_room, &online_b, now).is_some(),
            "a room not told yet"
        );
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
        let mut rooms = change.rooms;
        rooms.sort_by_key(|r| r.0);
        let mut expected = vec![room, other_room];
        expected.sort_by_key(|r| r.0);
        assert_eq!((change.online, rooms), (false, expected));
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
    fn local_connections_are_counted_and_the_last_departs_after_the_grace() {
        let mut view = Presence::new(Uuid::new_v4());
        let (user, room) = (UserId::new(), RoomId::new());
        let now = Instant::now();
        assert!(view.connected(user));
        assert!(!view.connected(user));
        view.disconnected(user, vec![room], now);
        assert_eq!(view.next_departure(), None, "one connection is left");
        view.disconnected(user, vec![room], now);
        assert_eq!(view.next_departure(), Some(now + DEPARTURE_GRACE));
        assert!(view.departures(Some(now)).is_empty());
        assert!(view.is_online(user), "online while the grace runs");
        assert_eq!(
            view.departures(Some(now + DEPARTURE_GRACE)),
            vec![(user, vec![room])]
        );
        assert!(!view.is_online(user));
    }

    #[test]
    fn flapping_connections_announce_nothing() {
        let mut view = Presence::new(Uuid::new_v4());
        let (user, room) = (UserId::new(), RoomId::new());
        let mut now = Instant::now();
        assert!(view.connected(user), "the first arrival is announced");
        for _ in 0..300 {
            view.disconnected(user, vec![room], now);
            now += Duration::from_millis(10);
            assert!(
                !view.connected(user),
                "a return within the grace is news to no one"
            );
        }
        view.disconnected(user, vec![room], now);
        assert_eq!(view.departures(None), vec![(user, vec![room])]);
        assert!(view.connected(user), "after the departure, a new arrival");
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
