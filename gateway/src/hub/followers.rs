//! Who follows a room on this gateway.

use std::collections::{HashMap, HashSet};

use chat_shared::model::UserId;

use super::ConnectionKey;

/// The connections here that follow a room, and how many of them each user
/// has: who is online in the room is then one lookup per user, not one per
/// connection (a room may have thousands of connections of few users).
#[derive(Default)]
pub(super) struct Followers {
    connections: HashSet<ConnectionKey>,
    users: HashMap<UserId, usize>,
}

impl Followers {
    pub(super) fn insert(&mut self, key: ConnectionKey, user: UserId) {
        if self.connections.insert(key) {
            *self.users.entry(user).or_default() += 1;
        }
    }

    pub(super) fn remove(&mut self, key: ConnectionKey, user: UserId) {
        if self.connections.remove(&key) {
            if let Some(count) = self.users.get_mut(&user) {
                *count -= 1;
                if *count == 0 {
                    self.users.remove(&user);
                }
            }
        }
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &ConnectionKey> {
        self.connections.iter()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.connections.is_empty()
    }

    /// The users with at least one following connection here.
    pub(super) fn users(&self) -> impl Iterator<Item = UserId> + '_ {
        self.users.keys().copied()
    }
}
