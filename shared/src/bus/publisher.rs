//! Publishing off the request path. A committed event is acknowledged
//! without waiting for the bus: messages go into a bounded queue that one
//! task drains in order, so a slow or paused Redis delays fan-out, never a
//! send. When the queue is full the message is dropped, like any other bus
//! loss, and receivers repair the gap from the store.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::{Bus, Topic};

/// Messages waiting to be published before new ones are dropped.
const QUEUE: usize = 8192;

/// A handle to the publishing task; cheap to clone.
#[derive(Clone)]
pub struct Publisher {
    queue: mpsc::Sender<(Topic, Bytes)>,
}

impl Publisher {
    /// Starts the task publishing on `bus`; it ends when every handle is
    /// dropped.
    pub fn start(bus: Arc<dyn Bus>) -> Self {
        let (queue, mut rx) = mpsc::channel::<(Topic, Bytes)>(QUEUE);
        tokio::spawn(async move {
            while let Some((topic, payload)) = rx.recv().await {
                if let Err(e) = bus.publish(topic, payload).await {
                    tracing::warn!(error = %e, %topic, "bus publish failed; receivers will repair from the store");
                }
            }
        });
        Self { queue }
    }

    /// Queues `payload` for `topic` without waiting.
    pub fn publish(&self, topic: Topic, payload: Bytes) {
        if self.queue.try_send((topic, payload)).is_err() {
            super::metrics::published(false);
            tracing::warn!(%topic, "bus publish queue full; message dropped");
        }
    }
}
