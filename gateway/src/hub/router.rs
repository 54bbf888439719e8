//! The bus's deliveries, read once and handed to every shard of the hub
//! (or read by the only shard itself, when there is one).
//!
//! A message is typed here ([`Envelope::read`]) and its trace context taken
//! off, once, whatever the number of shards; each shard gets the typed
//! envelope (its bytes shared, not copied) and ignores what it does not
//! follow.

use chat_shared::bus::{self, Delivery, Topic};
use chat_shared::telemetry;
use tokio::sync::mpsc;
use tracing::Span;

use crate::delivery::envelope::Envelope;

/// Most deliveries taken off the bus's queue at once.
const BATCH: usize = 512;

/// A bus delivery as a shard gets it.
#[derive(Debug, Clone)]
pub(super) enum Routed {
    /// A message on `topic`.
    Message {
        topic: Topic,
        envelope: Envelope,
        /// For a room event, its `bus.receive` span (one per gateway,
        /// whatever the number of shards), parent of its `deliver`;
        /// `Span::none()` untraced.
        trace: Span,
    },
    /// The bus came back after an outage: anything may have been missed.
    Resumed,
}

/// Starts routing `deliveries` to `shards`, until the bus's queue closes.
pub(super) fn spawn(deliveries: mpsc::Receiver<Delivery>, shards: Vec<mpsc::Sender<Routed>>) {
    tokio::spawn(run(deliveries, shards));
}

async fn run(mut deliveries: mpsc::Receiver<Delivery>, shards: Vec<mpsc::Sender<Routed>>) {
    let mut batch = Vec::with_capacity(BATCH);
    while deliveries.recv_many(&mut batch, BATCH).await > 0 {
        for routed in batch.drain(..).filter_map(route) {
            // Waiting for a shard that is behind slows the bus's reader,
            // as a single hub behind did: nothing is dropped here.
            for shard in &shards {
                let _ = shard.send(routed.clone()).await;
            }
        }
    }
}

/// A bus delivery, typed; `None` if it cannot be read.
fn route(delivery: Delivery) -> Option<Routed> {
    let (topic, payload) = match delivery {
        Delivery::Resumed => return Some(Routed::Resumed),
        Delivery::Message { topic, payload } => (topic, payload),
    };
    // Off before anything else: clients never see it.
    let (payload, traceparent) = bus::trace::detach(payload);
    let Some(envelope) = Envelope::read(topic, payload) else {
        tracing::warn!(%topic, "unreadable bus message dropped");
        return None;
    };
    let trace = match (topic, &envelope) {
        (Topic::Room(room), Envelope::Event(event)) => {
            telemetry::bus_receive(room, event.seq, traceparent.as_deref())
        }
        _ => Span::none(),
    };
    Some(Routed::Message {
        topic,
        envelope,
        trace,
    })
}

/// Where a shard takes the bus's deliveries from.
pub(super) enum Deliveries {
    /// The bus itself: a hub of one shard reads and types each delivery
    /// in its own task, a hop fewer than through the router.
    Bus {
        deliveries: mpsc::Receiver<Delivery>,
        batch: Vec<Delivery>,
    },
    /// The router, which read each delivery once for every shard.
    Router(mpsc::Receiver<Routed>),
}

impl Deliveries {
    /// Waits for deliveries and appends up to `limit` of them, typed, to
    /// `into`; how many were taken, 0 once the bus's queue has closed.
    /// Cancel-safe, as `recv_many` is: nothing is awaited after it.
    pub(super) async fn recv_many(&mut self, into: &mut Vec<Routed>, limit: usize) -> usize {
        match self {
            Self::Bus { deliveries, batch } => {
                let taken = deliveries.recv_many(batch, limit).await;
                into.extend(batch.drain(..).filter_map(route));
                taken
            }
            Self::Router(routed) => routed.recv_many(into, limit).await,
        }
    }
}
