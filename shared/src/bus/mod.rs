//! The `Bus` port: best-effort publish/subscribe between the processes of a
//! deployment, with one adapter per transport we run (Redis pub/sub across
//! processes, in-process for the embedded single binary).
//!
//! The bus is an accelerator, not the truth: like Redis pub/sub it may drop
//! messages (a subscriber away, a full queue) and it does not order messages
//! from different publishers. Consumers order room events by seq and repair
//! gaps from the store; [`Delivery::Resumed`] tells them when a loss may
//! have happened.

mod memory;
mod publisher;
mod redis;
pub mod trace;

use std::fmt;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::mpsc;

use crate::error::Result;
use crate::model::{RoomId, SessionId, UserId};

pub use self::memory::MemoryBus;
pub use self::publisher::Publisher;
pub use self::redis::RedisBus;

/// How many deliveries a subscriber may have waiting before new ones are
/// dropped (as Redis drops messages for a client that does not read).
pub const DELIVERY_QUEUE: usize = 16 * 1024;

/// Where a message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    /// Everything that happens in a room: its events, typing, read markers.
    Room(RoomId),
    /// What concerns one user wherever they are connected: signalling,
    /// rooms added and removed.
    User(UserId),
    /// Who is online, gateway by gateway.
    Presence,
}

/// What the api publishes on a user's topic when one of their login
/// sessions ends (logout, a revoked session, a replayed refresh token):
/// every gateway closes that session's sockets. Gateways act on it; no
/// client ever receives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename = "session_ended")]
pub struct SessionEnded {
    /// The login session that ended.
    pub session_id: SessionId,
}

impl SessionEnded {
    /// Its `type` on the bus.
    pub const TYPE: &'static str = "session_ended";

    /// The message as published.
    pub fn to_bytes(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).expect("a session id serialises"))
    }
}

/// What the api publishes on a user's topic when someone blocks or
/// unblocks them: every gateway holding their sockets stops or resumes
/// showing them that person's presence. Gateways act on it; no client ever
/// receives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BlockNotice {
    /// `blocker` now blocks the topic's user.
    BlockedBy {
        /// Who blocks them.
        blocker: UserId,
    },
    /// `blocker` no longer blocks the topic's user.
    UnblockedBy {
        /// Who blocked them.
        blocker: UserId,
    },
}

impl BlockNotice {
    /// The message as published.
    pub fn to_bytes(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).expect("a user id serialises"))
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Room(id) => write!(f, "room:{id}"),
            Self::User(id) => write!(f, "user:{id}"),
            Self::Presence => f.write_str("presence"),
        }
    }
}

impl Topic {
    /// Parses what [`Display`](fmt::Display) wrote.
    pub fn parse(s: &str) -> Option<Self> {
        if s == "presence" {
            return Some(Self::Presence);
        }
        let (kind, id) = s.split_once(':')?;
        match kind {
            "room" => id.parse().ok().map(Self::Room),
            "user" => id.parse().ok().map(Self::User),
            _ => None,
        }
    }
}

/// What a subscriber receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// A message published on a subscribed topic.
    Message {
        /// Its topic.
        topic: Topic,
        /// Its bytes, as published.
        payload: Bytes,
    },
    /// The subscription was lost and is back: anything published meanwhile
    /// was missed.
    Resumed,
}

/// Publishing, for every process.
#[async_trait]
pub trait Bus: Send + Sync {
    /// Sends `payload` to the current subscribers of `topic`, at most once.
    async fn publish(&self, topic: Topic, payload: Bytes) -> Result<()>;

    /// Publishes each message in order, in one round trip where the bus
    /// has a way (Redis: a pipeline); all or nothing is reported.
    async fn publish_many(&self, messages: Vec<(Topic, Bytes)>) -> Result<()> {
        for (topic, payload) in messages {
            self.publish(topic, payload).await?;
        }
        Ok(())
    }

    /// Opens this process's subscription: a handle choosing the topics and
    /// the stream of what arrives on them. One per process is the intended
    /// use (Redis: one connection for all of a gateway's topics).
    async fn subscriber(&self) -> Result<(Box<dyn Subscriber>, mpsc::Receiver<Delivery>)>;
}

/// Chooses which topics a subscription receives.
#[async_trait]
pub trait Subscriber: Send + Sync {
    /// Starts receiving `topics`; returns once the bus confirms, so that a
    /// message published after this returns is delivered.
    async fn subscribe(&self, topics: &[Topic]) -> Result<()>;
    /// Stops receiving `topics`.
    async fn unsubscribe(&self, topics: &[Topic]) -> Result<()>;
}

/// The bus's series, counted the same way by both adapters.
mod metrics {
    use crate::metrics::names;

    /// A message handed to the bus, or one it did not take.
    pub(super) fn published(ok: bool) {
        let name = if ok {
            names::BUS_PUBLISHED
        } else {
            names::BUS_PUBLISH_FAILURES
        };
        ::metrics::counter!(name).increment(1);
    }

    /// A message received for a subscriber: queued, or dropped because the
    /// subscriber's queue was full.
    pub(super) fn received(queued: bool) {
        let name = if queued {
            names::BUS_RECEIVED
        } else {
            names::BUS_DROPPED
        };
        ::metrics::counter!(name).increment(1);
    }
}

/// The bus a process should use: Redis when `redis_url` is set, otherwise
/// a new in-process bus (which reaches only this process).
pub async fn connect(redis_url: Option<&str>, prefix: &str) -> Result<std::sync::Arc<dyn Bus>> {
    Ok(match redis_url {
        Some(url) => std::sync::Arc::new(RedisBus::connect(url, prefix).await?),
        None => std::sync::Arc::new(MemoryBus::new()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_round_trip_through_their_names() {
        for topic in [
            Topic::Room(RoomId::new()),
            Topic::User(UserId::new()),
            Topic::Presence,
        ] {
            assert_eq!(Topic::parse(&topic.to_string()), Some(topic));
        }
        assert_eq!(Topic::parse("room:nope"), None);
        assert_eq!(Topic::parse("elsewhere"), None);
    }
}
