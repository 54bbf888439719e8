//! This gateway's bus subscription, changed by a task of its own.
//!
//! The hub decides which topics to follow; this task makes the bus follow
//! them, so the hub never waits for the bus. A bus slow to answer a
//! subscribe (a Redis far away, or hung) holds up only the connections
//! waiting to be subscribed, never the delivery of rooms already followed.
//! What the hub decides while a change is under way is merged into one
//! next change: a crowd connecting at once costs a round trip per change
//! this task makes, not one per connection and room.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use chat_shared::bus::{Publisher, Subscriber, Topic};
use chat_shared::model::RoomId;
use tokio::sync::{mpsc, oneshot};

/// What the hub changes in the bus subscription, and what waits for it.
/// A topic is in at most one of the two sets: the net change from what the
/// bus was last asked for.
#[derive(Default)]
pub struct Pending {
    subscribe: HashSet<Topic>,
    unsubscribe: HashSet<Topic>,
    /// Attaches, answered once their topics are subscribed.
    attached: Vec<oneshot::Sender<()>>,
    /// Rooms new here, whose presence query goes out once subscribed, so
    /// that the answers are heard.
    queries: Vec<RoomId>,
}

impl Pending {
    /// Marks `topic` to be subscribed (or, if it was to be unsubscribed,
    /// keeps it as it is).
    pub fn subscribe(&mut self, topic: Topic) {
        if !self.unsubscribe.remove(&topic) {
            self.subscribe.insert(topic);
        }
    }

    /// Marks `topic` to be unsubscribed (or, if it was to be subscribed,
    /// never subscribes it).
    pub fn unsubscribe(&mut self, topic: Topic) {
        if !self.subscribe.remove(&topic) {
            self.unsubscribe.insert(topic);
        }
    }

    /// Answers `attached` once what is marked now is subscribed.
    pub fn answer_when_subscribed(&mut self, attached: oneshot::Sender<()>) {
        self.attached.push(attached);
    }

    /// Asks who is online in `room` once it is subscribed.
    pub fn query_when_subscribed(&mut self, room: RoomId) {
        self.queries.push(room);
    }

    fn is_empty(&self) -> bool {
        self.subscribe.is_empty()
            && self.unsubscribe.is_empty()
            && self.attached.is_empty()
            && self.queries.is_empty()
    }

    /// Adds `later`, decided after what is here.
    fn merge(&mut self, later: Pending) {
        for topic in later.unsubscribe {
            self.unsubscribe(topic);
        }
        for topic in later.subscribe {
            self.subscribe(topic);
        }
        self.attached.extend(later.attached);
        self.queries.extend(later.queries);
    }
}

/// The hub's handle on the task; the task ends when this is dropped.
pub struct Subscriptions {
    /// Decided but not yet taken by the task.
    next: Arc<Mutex<Pending>>,
    /// Rung when `next` has something; one ring is enough.
    doorbell: mpsc::Sender<()>,
}

impl Subscriptions {
    /// Starts the task over `subscriber`. `query` is this gateway's
    /// presence query, published to each new room once subscribed.
    pub fn start(subscriber: Box<dyn Subscriber>, publisher: Publisher, query: Bytes) -> Self {
        let next = Arc::new(Mutex::new(Pending::default()));
        let (doorbell, rings) = mpsc::channel(1);
        tokio::spawn(run(subscriber, next.clone(), rings, publisher, query));
        Self { next, doorbell }
    }

    /// Hands over what the hub decided; returns at once.
    pub fn submit(&self, decided: Pending) {
        if decided.is_empty() {
            return;
        }
        {
            let mut next = lock(&self.next);
            if next.is_empty() {
                *next = decided;
            } else {
                next.merge(decided);
            }
        }
        // Full: a ring the task has not taken yet covers this too.
        let _ = self.doorbell.try_send(());
    }
}

async fn run(
    subscriber: Box<dyn Subscriber>,
    next: Arc<Mutex<Pending>>,
    mut rings: mpsc::Receiver<()>,
    publisher: Publisher,
    query: Bytes,
) {
    while rings.recv().await.is_some() {
        let Pending {
            subscribe,
            unsubscribe,
            attached,
            queries,
        } = std::mem::take(&mut *lock(&next));
        if !unsubscribe.is_empty() {
            let topics: Vec<Topic> = unsubscribe.into_iter().collect();
            if let Err(e) = subscriber.unsubscribe(&topics).await {
                tracing::warn!(error = %e, count = topics.len(), "bus unsubscribe failed");
            }
        }
        if !subscribe.is_empty() {
            let topics: Vec<Topic> = subscribe.into_iter().collect();
            if let Err(e) = subscriber.subscribe(&topics).await {
                // The head check and the next `Resumed` recover what this costs.
                tracing::warn!(error = %e, count = topics.len(), "bus subscribe failed");
            }
        }
        for attached in attached {
            let _ = attached.send(());
        }
        for room in queries {
            publisher.publish(Topic::Room(room), query.clone());
        }
    }
}

/// Held for a few lines and never across an await; every update is one
/// step, so a panic while it was held left it consistent.
fn lock(next: &Mutex<Pending>) -> MutexGuard<'_, Pending> {
    next.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(n: u128) -> Topic {
        Topic::Room(RoomId(uuid::Uuid::from_u128(n)))
    }

    #[test]
    fn merged_changes_keep_the_net_of_both_in_order() {
        // Subscribed on the bus before: 1 and 2.
        let mut first = Pending::default();
        first.unsubscribe(room(1));
        first.subscribe(room(3));
        let mut later = Pending::default();
        later.subscribe(room(1)); // wanted again: stays as it is
        later.unsubscribe(room(3)); // never made: nothing to undo
        later.unsubscribe(room(2));
        later.subscribe(room(4));
        first.merge(later);
        assert_eq!(first.subscribe, HashSet::from([room(4)]));
        assert_eq!(first.unsubscribe, HashSet::from([room(2)]));
    }
}
