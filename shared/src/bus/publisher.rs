//! Publishing off the request path. A committed event is acknowledged
//! without waiting for the bus: messages go into a bounded queue that one
//! task drains in order, so a slow or paused Redis delays fan-out, never a
//! send. When the queue is full the message is dropped, like any other bus
//! loss, and receivers repair the gap from the store.
//!
//! The task takes everything queued (up to [`BATCH`]) at once and hands it
//! to the bus together: one Redis round trip per batch rather than per
//! message, which is what lets the publisher keep up with thousands of
//! events per second.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;
use tracing::{Instrument, Span};

use super::{Bus, Topic};
use crate::telemetry;

/// Messages waiting to be published before new ones are dropped.
const QUEUE: usize = 8192;

/// Messages published together at most.
const BATCH: usize = 512;

/// A handle to the publishing task; cheap to clone.
#[derive(Clone)]
pub struct Publisher {
    /// Each message with its `bus.publish` span (`Span::none()` without
    /// traces).
    queue: mpsc::Sender<(Topic, Bytes, Span)>,
}

impl Publisher {
    /// Starts the task publishing on `bus`; it ends when every handle is
    /// dropped.
    pub fn start(bus: Arc<dyn Bus>) -> Self {
        let (queue, mut rx) = mpsc::channel::<(Topic, Bytes, Span)>(QUEUE);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            while rx.recv_many(&mut batch, BATCH).await > 0 {
                let (messages, spans): (Vec<_>, Vec<Span>) = batch
                    .drain(..)
                    .map(|(topic, payload, span)| ((topic, payload), span))
                    .unzip();
                let count = messages.len();
                // Alone, a message's publish runs in its own span; a batch
                // runs under the first's, and each span lasts until it ends.
                let published = bus
                    .publish_many(messages)
                    .instrument(spans[0].clone())
                    .await;
                if let Err(e) = published {
                    spans.iter().for_each(telemetry::record_error);
                    tracing::warn!(error = %e, messages = count, "bus publish failed; receivers will repair from the store");
                }
            }
        });
        Self { queue }
    }

    /// Queues `payload` for `topic` without waiting.
    pub fn publish(&self, topic: Topic, payload: Bytes) {
        self.enqueue(topic, payload, Span::none());
    }

    /// Queues a room event within the current trace: a `bus.publish` span,
    /// child of the current span, covers it, and the message carries that
    /// span's `traceparent` (see [`super::trace`]) so each receiving gateway
    /// continues the trace. Exactly [`Publisher::publish`] without traces.
    pub fn publish_traced(&self, topic: Topic, payload: Bytes) {
        let span = telemetry::bus_publish(&topic);
        let payload = match telemetry::traceparent(&span) {
            Some(traceparent) => super::trace::attach(payload, &traceparent),
            None => payload,
        };
        self.enqueue(topic, payload, span);
    }

    fn enqueue(&self, topic: Topic, payload: Bytes, span: Span) {
        if let Err(refused) = self.queue.try_send((topic, payload, span)) {
            telemetry::record_error(&refused.into_inner().2);
            super::metrics::published(false);
            tracing::warn!(%topic, "bus publish queue full; message dropped");
        }
    }
}
