//! The in-process bus of the embedded single binary: a registry of
//! subscribers behind a mutex, with the same delivery semantics as Redis
//! pub/sub (at most once; a subscriber whose queue is full misses messages).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::mpsc;

use super::{metrics, Bus, Delivery, Subscriber, Topic, DELIVERY_QUEUE};
use crate::error::Result;

/// An in-process bus. Clones share the same registry, so the api and the
/// gateway of one process reach each other.
#[derive(Clone, Default)]
pub struct MemoryBus {
    registry: Arc<Mutex<Registry>>,
}

#[derive(Default)]
struct Registry {
    next_id: u64,
    topics: HashMap<Topic, HashSet<u64>>,
    queues: HashMap<u64, mpsc::Sender<Delivery>>,
}

impl MemoryBus {
    /// A bus with no subscribers.
    pub fn new() -> Self {
        Self::default()
    }

    fn with_registry<T>(&self, f: impl FnOnce(&mut Registry) -> T) -> T {
        // The registry holds no invariant a panic could break halfway.
        let mut registry = self.registry.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut registry)
    }
}

#[async_trait]
impl Bus for MemoryBus {
    async fn publish(&self, topic: Topic, payload: Bytes) -> Result<()> {
        metrics::published(true);
        self.with_registry(|registry| {
            let Some(ids) = registry.topics.get(&topic) else {
                return;
            };
            for id in ids {
                if let Some(queue) = registry.queues.get(id) {
                    // A full queue loses the message, as Redis would; the
                    // consumer repairs gaps from the store.
                    let queued = queue.try_send(Delivery::Message {
                        topic,
                        payload: payload.clone(),
                    });
                    metrics::received(queued.is_ok());
                }
            }
        });
        Ok(())
    }

    async fn subscriber(&self) -> Result<(Box<dyn Subscriber>, mpsc::Receiver<Delivery>)> {
        let (tx, rx) = mpsc::channel(DELIVERY_QUEUE);
        let id = self.with_registry(|registry| {
            registry.next_id += 1;
            registry.queues.insert(registry.next_id, tx);
            registry.next_id
        });
        let subscriber = MemorySubscriber {
            bus: self.clone(),
            id,
        };
        Ok((Box::new(subscriber), rx))
    }
}

/// One subscriber's handle; dropping it unsubscribes everything.
struct MemorySubscriber {
    bus: MemoryBus,
    id: u64,
}

#[async_trait]
impl Subscriber for MemorySubscriber {
    async fn subscribe(&self, topics: &[Topic]) -> Result<()> {
        self.bus.with_registry(|registry| {
            for topic in topics {
                registry.topics.entry(*topic).or_default().insert(self.id);
            }
        });
        Ok(())
    }

    async fn unsubscribe(&self, topics: &[Topic]) -> Result<()> {
        self.bus.with_registry(|registry| {
            for topic in topics {
                if let Some(ids) = registry.topics.get_mut(topic) {
                    ids.remove(&self.id);
                    if ids.is_empty() {
                        registry.topics.remove(topic);
                    }
                }
            }
        });
        Ok(())
    }
}

impl Drop for MemorySubscriber {
    fn drop(&mut self) {
        self.bus.with_registry(|registry| {
            registry.queues.remove(&self.id);
            registry.topics.retain(|_, ids| {
                ids.remove(&self.id);
                !ids.is_empty()
            });
        });
    }
}
