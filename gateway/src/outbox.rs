//! The bounded queue in front of each connection's writer, and what goes
//! into it.
//!
//! The hub pushes without waiting: a connection whose queue is full is a
//! slow consumer, marked for closing (1013) rather than allowed to grow
//! memory (contract point 6); it resumes losslessly with `sync`. A session's
//! own frames (acks, errors, replays) wait for room instead.

use bytes::Bytes;
use chat_shared::model::RoomId;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::metrics::EventMeta;

/// Something for a connection's writer to do, in queue order.
#[derive(Debug)]
pub enum Outbound {
    /// A room log event: written if it continues the connection's cursor for
    /// the room, skipped if already written, preceded by a store read if it
    /// leaves a gap.
    Event {
        /// The room.
        room: RoomId,
        /// The event's seq.
        seq: i64,
        /// The serialised event, shared by every recipient.
        frame: Bytes,
        /// Its type and commit time, for the metrics.
        meta: EventMeta,
    },
    /// Any other frame, written as is.
    Frame(Bytes),
    /// Answer to a WebSocket ping, with its payload.
    Pong(Bytes),
    /// Start delivering `room` after `after`; with `synced`, replay from the
    /// store up to the present first and then send `synced`.
    Follow {
        /// The room.
        room: RoomId,
        /// The last seq the client has.
        after: i64,
        /// Whether this answers a `sync`.
        synced: bool,
    },
    /// Stop delivering `room` and tell the client it was removed.
    Unfollow {
        /// The room.
        room: RoomId,
    },
    /// The client has sent its first frame (a `sync`, if it resumes, is
    /// queued before this): live room events may flow.
    Live,
    /// The client renewed its token: the session may last until then.
    Extend {
        /// New expiry, Unix seconds.
        expires_at: i64,
    },
    /// Close the connection.
    Close {
        /// WebSocket close code.
        code: u16,
        /// Short reason.
        reason: &'static str,
    },
}

/// The sending side of a connection's queue.
#[derive(Clone)]
pub struct Outbox {
    queue: mpsc::Sender<Outbound>,
    /// Cancelled when a push finds the queue full.
    overflowed: CancellationToken,
}

impl Outbox {
    /// A queue of `capacity` and its receiving end.
    pub fn new(capacity: usize) -> (Self, mpsc::Receiver<Outbound>, CancellationToken) {
        let (queue, rx) = mpsc::channel(capacity);
        let overflowed = CancellationToken::new();
        let outbox = Self {
            queue,
            overflowed: overflowed.clone(),
        };
        (outbox, rx, overflowed)
    }

    /// Queues without waiting. A full queue marks the connection as a slow
    /// consumer; the item is dropped (the client will `sync`).
    pub fn push(&self, item: Outbound) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.queue.try_send(item) {
            self.overflowed.cancel();
        }
    }

    /// Queues, waiting for room; false once the connection is gone.
    pub async fn send(&self, item: Outbound) -> bool {
        self.queue.send(item).await.is_ok()
    }
}
