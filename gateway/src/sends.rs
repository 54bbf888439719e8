//! A connection's sends in flight, answered in the order they came.
//!
//! The inbound task validates a `send`, queues its append in the store
//! (`RoomLog::submit_message`) and goes on reading: a client may send
//! without waiting for each `ack`, and a fast sender is limited by the
//! store's throughput rather than its round-trip time. This task takes the
//! sends in order, waits for each commit, and only then acknowledges it,
//! hands the event to the hub and publishes it: `ack` still follows the
//! commit (contract point 1), and the acks (and errors) of one connection
//! come in the order of its sends, whose seqs in a room rise in that order
//! too (the store commits one submitter's appends to a room in order).
//!
//! Every other frame waits until the sends before it are answered
//! ([`InFlight::settle`]), so it sees the same state as before.
//!
//! The task and its queue start with a connection's first send: most
//! connections are idle most of the time, and each costs memory.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use chat_shared::bus::Topic;
use chat_shared::model::{RoomEvent, RoomId, UserId};
use chat_shared::protocol::ServerFrame;
use chat_shared::store::{Appended, Submitted};
use chat_shared::telemetry;
use tokio::sync::{mpsc, oneshot};
use tracing::{Instrument, Span};

use crate::context::Context;
use crate::delivery::envelope::LogEvent;
use crate::outbox::{Outbound, Outbox};
use crate::wire::frame_bytes;

/// Sends one connection may have queued in the store at once; the next
/// waits (and so does reading the connection) until the oldest is answered.
pub const MAX_IN_FLIGHT: usize = 64;

/// A send whose append is queued in the store, with its `ws send` and
/// `store.append` spans (none without traces).
pub struct Pending {
    pub client_id: String,
    /// The members of a DM this message lists it for (its first message,
    /// or the next after they closed it): told `room_added` once it commits.
    pub listed_for: Vec<UserId>,
    pub submitted: Submitted,
    /// When the append was submitted: its latency is measured to the
    /// answer, as `chat_store_query_seconds{op="append_message"}`.
    pub at: Instant,
    pub span: Span,
    pub store_span: Span,
}

/// What the acknowledging task does next, in arrival order.
enum Item {
    /// Boxed: the queue's slots are allocated in blocks, so they stay small.
    Append(Box<Pending>),
    /// A reply that must not overtake the answers before it (an error for
    /// a send refused before reaching the store).
    Reply(Bytes),
    /// Answered once everything before it is.
    Settled(oneshot::Sender<()>),
}

/// The inbound task's handle on its connection's sends in flight. When it
/// is dropped, the task still answers what is queued (events committed
/// must reach the hub and the bus) and then ends.
pub struct InFlight {
    ctx: Arc<Context>,
    outbox: Outbox,
    /// The task's queue, once the first send started it.
    queue: Option<mpsc::Sender<Item>>,
}

impl InFlight {
    /// The handle of one connection; its task starts with the first send.
    pub fn new(ctx: Arc<Context>, outbox: Outbox) -> Self {
        Self {
            ctx,
            outbox,
            queue: None,
        }
    }

    fn queue(&mut self) -> &mpsc::Sender<Item> {
        self.queue.get_or_insert_with(|| {
            let (queue, items) = mpsc::channel(MAX_IN_FLIGHT);
            let task = acknowledge(self.ctx.clone(), self.outbox.clone(), items);
            tokio::spawn(task.in_current_span());
            queue
        })
    }

    /// Queues a send whose append was submitted.
    pub async fn append(&mut self, pending: Pending) {
        let item = Item::Append(Box::new(pending));
        let _ = self.queue().send(item).await;
    }

    /// Queues a reply behind the sends before it (or writes it at once if
    /// there has been no send).
    pub async fn reply(&mut self, frame: &ServerFrame) {
        let frame = frame_bytes(frame);
        match &self.queue {
            Some(queue) => {
                let _ = queue.send(Item::Reply(frame)).await;
            }
            None => {
                self.outbox.send(Outbound::Frame(frame)).await;
            }
        }
    }

    /// Returns once every send queued before this call is answered.
    pub async fn settle(&self) {
        let Some(queue) = &self.queue else {
            return;
        };
        let (settled, done) = oneshot::channel();
        if queue.send(Item::Settled(settled)).await.is_ok() {
            let _ = done.await;
        }
    }
}

async fn acknowledge(ctx: Arc<Context>, outbox: Outbox, mut items: mpsc::Receiver<Item>) {
    while let Some(item) = items.recv().await {
        match item {
            Item::Append(pending) => {
                let Pending {
                    client_id,
                    listed_for,
                    submitted,
                    at,
                    span,
                    store_span,
                } = *pending;
                let appended = submitted.answer().instrument(store_span.clone()).await;
                chat_shared::metrics::store_answered("append_message", at, &appended);
                telemetry::record_append(&store_span, &appended);
                answer(&ctx, &outbox, client_id, appended, listed_for)
                    .instrument(span)
                    .await
            }
            Item::Reply(frame) => {
                outbox.send(Outbound::Frame(frame)).await;
            }
            Item::Settled(settled) => {
                let _ = settled.send(());
            }
        }
    }
}

/// Acknowledges one committed send, fans it out and publishes it (or says
/// why it was not stored).
async fn answer(
    ctx: &Context,
    outbox: &Outbox,
    client_id: String,
    appended: chat_shared::Result<Appended>,
    listed_for: Vec<UserId>,
) {
    let reference = Some(client_id.clone());
    let (event, created) = match appended {
        Ok(appended) => (appended.event, appended.created),
        Err(e) => {
            let frame = match e {
                chat_shared::Error::NotMember => {
                    ServerFrame::error("not_member", "you are not a member of this room", reference)
                }
                chat_shared::Error::NotFound => {
                    ServerFrame::error("not_found", "room not found", reference)
                }
                chat_shared::Error::Invalid(text) => {
                    ServerFrame::error("validation_failed", text, reference)
                }
                // Final answers: a client gives the message up (or waits
                // out slow mode) rather than retrying it.
                e @ (chat_shared::Error::Muted(_) | chat_shared::Error::SlowMode(_)) => {
                    let (code, text) = e.moderation_refusal().expect("a refusal");
                    ServerFrame::error(code, text, reference)
                }
                e => {
                    tracing::warn!(error = %e, "append failed");
                    ServerFrame::error(
                        "unavailable",
                        "the message was not stored; retry with the same client_id",
                        reference,
                    )
                }
            };
            outbox.send(Outbound::Frame(frame_bytes(&frame))).await;
            return;
        }
    };
    let room = event.room_id;
    deliver(ctx, outbox, client_id, event).await;
    if created && !listed_for.is_empty() {
        announce_listed(ctx, room, &listed_for).await;
    }
}

/// Tells the members a DM's message just listed it for that they have it
/// now, from its start (as the api tells a join), so their gateways
/// deliver it and their clients list it. Best effort, like every
/// announcement: a client that misses it finds the DM in its next `hello`.
async fn announce_listed(ctx: &Context, room: RoomId, users: &[UserId]) {
    let room = match ctx.store.room(room).await {
        Ok(Some(room)) => room,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(error = %e, "cannot announce a DM");
            return;
        }
    };
    let frame = frame_bytes(&ServerFrame::RoomAdded { room, seq: 1 });
    for user in users {
        ctx.publisher.publish(Topic::User(*user), frame.clone());
    }
}

/// Acknowledges a committed event (a message, or a change of one) to its
/// sender, hands it to this gateway's hub and publishes it to the others.
pub async fn deliver(ctx: &Context, outbox: &Outbox, client_id: String, event: RoomEvent) {
    let room = event.room_id;
    let frame = Bytes::from(serde_json::to_vec(&event).expect("events serialise"));
    let ack = ServerFrame::Ack {
        client_id,
        room_id: room,
        seq: event.seq,
        id: event.id,
        ts: event.ts,
    };
    outbox.send(Outbound::Frame(frame_bytes(&ack))).await;
    crate::metrics::ack();
    // Also on a retry: if the first attempt's publish was lost (the gateway
    // died after the commit), this one heals it; receivers drop the
    // duplicate by seq.
    publish_committed(ctx, &event, frame).await;
}

/// Hands an event this gateway committed (`frame` is its JSON) to its hub
/// and publishes it to the others: what every committed event goes
/// through, acknowledged (a send) or not (a call's start and end).
pub async fn publish_committed(ctx: &Context, event: &RoomEvent, frame: Bytes) {
    let room = event.room_id;
    ctx.hub
        .committed(room, LogEvent::with_frame(event, frame.clone()))
        .await;
    Span::current().record("chat.seq", event.seq);
    ctx.publisher.publish_traced(Topic::Room(room), frame);
}
