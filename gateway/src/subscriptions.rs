//! This gateway's bus subscription, changed by a task of its own.
//!
//! The hub's shards decide which topics they follow; this task makes the
//! bus follow every topic at least one shard follows (one subscription per
//! topic, however many shards want it), so no shard ever waits for the
//! bus. A bus slow to answer a
//! subscribe (a Redis far away, or hung) holds up only the connections
//! waiting to be subscribed, never the delivery of rooms already followed.
//! What the hub decides while a change is under way is merged into one
//! next change: a crowd connecting at once costs a round trip per change
//! this task makes, not one per connection and room.

use std::collections::{HashMap, HashSet};
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
    /// Rooms new to a shard, whose presence query (the shard's own) goes
    /// out once subscribed, so that the answers are heard.
    queries: Vec<(RoomId, Bytes)>,
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

    /// Publishes `query` (who is online?) to `room` once it is subscribed.
    pub fn query_when_subscribed(&mut self, room: RoomId, query: Bytes) {
        self.queries.push((room, query));
    }

    fn is_empty(&self) -> bool {
        self.subscribe.is_empty()
            && self.unsubscribe.is_empty()
            && self.attached.is_empty()
            && self.queries.is_empty()
    }
}

/// The shards' handle on the task, cheap to clone; the task ends when the
/// last is dropped.
#[derive(Clone)]
pub struct Subscriptions {
    shared: Arc<Mutex<Shared>>,
    /// Rung when the next change has something; one ring is enough.
    doorbell: mpsc::Sender<()>,
}

#[derive(Default)]
struct Shared {
    /// How many shards follow each topic.
    wanted: HashMap<Topic, usize>,
    /// The bus's next change, not yet taken by the task.
    next: Pending,
}

impl Shared {
    /// Adds a shard's change to the bus's next one: only the first shard
    /// to want a topic, and the last to let it go, change the bus.
    fn take_in(&mut self, decided: Pending) {
        for topic in decided.unsubscribe {
            if let Some(count) = self.wanted.get_mut(&topic) {
                *count -= 1;
                if *count == 0 {
                    self.wanted.remove(&topic);
                    self.next.unsubscribe(topic);
                }
            }
        }
        for topic in decided.subscribe {
            let count = self.wanted.entry(topic).or_default();
            *count += 1;
            if *count == 1 {
                self.next.subscribe(topic);
            }
        }
        self.next.attached.extend(decided.attached);
        self.next.queries.extend(decided.queries);
    }
}

impl Subscriptions {
    /// Starts the task over `subscriber`.
    pub fn start(subscriber: Box<dyn Subscriber>, publisher: Publisher) -> Self {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let (doorbell, rings) = mpsc::channel(1);
        tokio::spawn(run(subscriber, shared.clone(), rings, publisher));
        Self { shared, doorbell }
    }

    /// Hands over what a shard decided (its own net change); returns at
    /// once.
    pub fn submit(&self, decided: Pending) {
        if decided.is_empty() {
            return;
        }
        lock(&self.shared).take_in(decided);
        // Full: a ring the task has not taken yet covers this too.
        let _ = self.doorbell.try_send(());
    }
}

async fn run(
    subscriber: Box<dyn Subscriber>,
    shared: Arc<Mutex<Shared>>,
    mut rings: mpsc::Receiver<()>,
    publisher: Publisher,
) {
    while rings.recv().await.is_some() {
        let Pending {
            subscribe,
            unsubscribe,
            attached,
            queries,
        } = std::mem::take(&mut lock(&shared).next);
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
        for (room, query) in queries {
            publisher.publish(Topic::Room(room), query);
        }
    }
}

/// Held for a few lines and never across an await; every update is one
/// step, so a panic while it was held left it consistent.
fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(n: u128) -> Topic {
        Topic::Room(RoomId(uuid::Uuid::from_u128(n)))
    }

    fn change(subscribe: &[u128], unsubscribe: &[u128]) -> Pending {
        let mut pending = Pending::default();
        for n in subscribe {
            pending.subscribe(room(*n));
        }
        for n in unsubscribe {
            pending.unsubscribe(room(*n));
        }
        pending
    }

    #[test]
    fn a_shards_own_change_nets_out() {
        let mut pending = change(&[1], &[1]);
        pending.unsubscribe(room(2));
        pending.subscribe(room(2));
        assert!(pending.is_empty());
    }

    #[test]
    fn the_bus_follows_a_topic_while_any_shard_does() {
        let mut shared = Shared::default();
        shared.take_in(change(&[1, 2], &[]));
        shared.take_in(change(&[1], &[]));
        let next = std::mem::take(&mut shared.next);
        assert_eq!(next.subscribe, HashSet::from([room(1), room(2)]));
        // One of the two shards lets room 1 go: the bus keeps it.
        shared.take_in(change(&[], &[1, 2]));
        assert_eq!(shared.next.unsubscribe, HashSet::from([room(2)]));
        // The other lets it go too, and wants room 2 back before the
        // change is made: the bus drops 1 and keeps 2.
        shared.take_in(change(&[2], &[1]));
        assert_eq!(shared.next.unsubscribe, HashSet::from([room(1)]));
        assert!(shared.next.subscribe.is_empty());
    }
}
