//! The bounded queue in front of each connection's writer, and what goes
//! into it.
//!
//! The hub pushes without waiting: a connection whose queue is full is a
//! slow consumer, marked for closing (1013) rather than allowed to grow
//! memory (contract point 6); it resumes losslessly with `sync`. A connection's
//! own frames (acks, errors, replays) wait for room instead, and find none
//! once the queue is half full: the other half is the hub's. A sender's
//! acks then wait for its writer, its sends wait for their acks
//! (`sends::MAX_IN_FLIGHT`), and its socket stops being read: a gateway
//! whose writers fall behind slows its senders down before any queue of a
//! room's followers overflows, instead of closing them all as slow
//! consumers (the writers run apart from the send path, which can outpace
//! them: `writers`).
//!
//! The queue holds memory only while it holds items: most connections are
//! idle most of the time, and a channel that keeps its largest burst's
//! blocks (as tokio's mpsc does, 32 slots at a time) would cost every idle
//! connection kilobytes. Here the items sit in a `VecDeque` that is let go
//! whenever the writer empties it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use chat_shared::model::RoomId;
use tokio::sync::Notify;

use crate::delivery::envelope::EventMeta;

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
    /// The client renewed its token: the connection may last until then.
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

/// What the writer takes off its queue.
#[derive(Debug)]
pub enum Taken {
    /// The next item.
    Item(Outbound),
    /// A push found the queue full: the connection is a slow consumer.
    Overflowed,
    /// A sender [finished](Outbox::finish) and nothing is left before it.
    Finished,
    /// Every sender is gone and nothing is left.
    Closed,
}

/// The sending side of a connection's queue; cheap to clone.
pub struct Outbox {
    shared: Arc<Shared>,
}

/// The receiving side, owned by the connection's writer.
pub struct Queue {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the writer: an item arrived, the queue overflowed, or the last
    /// sender left.
    readable: Notify,
    /// Wakes a sender waiting for room: an item was taken, or the writer left.
    writable: Notify,
    /// Items the queue holds at most.
    capacity: usize,
}

struct State {
    items: VecDeque<Outbound>,
    overflowed: bool,
    senders: usize,
    /// Senders waiting for room: a take wakes one only if there is one.
    waiting: usize,
    /// A sender has said the writer should end once the queue is empty.
    finished: bool,
    /// The writer has gone: whatever is sent now is dropped.
    closed: bool,
}

impl Outbox {
    /// A queue of `capacity` items and its receiving end.
    pub fn new(capacity: usize) -> (Self, Queue) {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                items: VecDeque::new(),
                overflowed: false,
                senders: 1,
                waiting: 0,
                finished: false,
                closed: false,
            }),
            readable: Notify::new(),
            writable: Notify::new(),
            capacity,
        });
        let queue = Queue {
            shared: shared.clone(),
        };
        (Self { shared }, queue)
    }

    /// Queues without waiting. A full queue marks the connection as a slow
    /// consumer; the item is dropped (the client will `sync`).
    pub fn push(&self, item: Outbound) {
        let mut state = self.shared.lock();
        if state.closed || state.overflowed {
            return;
        }
        if state.items.len() >= self.shared.capacity {
            state.overflowed = true;
        } else {
            state.items.push_back(item);
        }
        drop(state);
        self.shared.readable.notify_one();
    }

    /// Queues `items` in order under one lock and with one wake-up; a
    /// queue they do not all fit in overflows, as pushing them one by one
    /// would have made it.
    pub fn push_all(&self, items: impl ExactSizeIterator<Item = Outbound>) {
        let mut state = self.shared.lock();
        if state.closed || state.overflowed {
            return;
        }
        if state.items.len() + items.len() > self.shared.capacity {
            state.overflowed = true;
        } else {
            state.items.extend(items);
        }
        drop(state);
        self.shared.readable.notify_one();
    }

    /// Tells the writer to end once it has taken what is queued now and
    /// after: a flag, not an item, so it takes no room and cannot overflow.
    pub fn finish(&self) {
        self.shared.lock().finished = true;
        self.shared.readable.notify_one();
    }

    /// Queues, waiting until the queue is less than half full; false once
    /// the connection is gone.
    pub async fn send(&self, item: Outbound) -> bool {
        loop {
            // Registered before the check: the writer's leaving wakes
            // every sender already waiting (`notify_waiters` leaves no
            // permit), so a sender must be waiting before it looks.
            let room = self.shared.writable.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            let waiting = {
                let mut state = self.shared.lock();
                if state.closed {
                    return false;
                }
                if state.items.len() < self.shared.capacity.div_ceil(2) {
                    state.items.push_back(item);
                    drop(state);
                    self.shared.readable.notify_one();
                    return true;
                }
                state.waiting += 1;
                Waiting(&self.shared)
            };
            room.await;
            drop(waiting);
        }
    }
}

/// Counts a sender as waiting for room until it stops waiting, however it
/// stops (a sender's future may be dropped while it waits).
struct Waiting<'a>(&'a Shared);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.lock().waiting -= 1;
    }
}

impl Clone for Outbox {
    fn clone(&self) -> Self {
        self.shared.lock().senders += 1;
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        let last = {
            let mut state = self.shared.lock();
            state.senders -= 1;
            state.senders == 0
        };
        if last {
            self.shared.readable.notify_one();
        }
    }
}

impl Queue {
    /// The next item, waiting for one. Cancel-safe: an item is only taken
    /// by the call that returns it.
    pub async fn recv(&mut self) -> Taken {
        loop {
            if let Some(taken) = self.take() {
                return taken;
            }
            // A push between the check and this wait leaves a permit.
            self.shared.readable.notified().await;
        }
    }

    /// The next item if there is one, without waiting. An overflow is
    /// reported before anything still queued: the connection is closing.
    pub fn try_recv(&mut self) -> Option<Taken> {
        self.take()
    }

    fn take(&self) -> Option<Taken> {
        let mut state = self.shared.lock();
        if state.overflowed {
            return Some(Taken::Overflowed);
        }
        let Some(item) = state.items.pop_front() else {
            if state.finished {
                return Some(Taken::Finished);
            }
            return (state.senders == 0).then_some(Taken::Closed);
        };
        if state.items.is_empty() {
            // An idle connection keeps no queue memory.
            state.items = VecDeque::new();
        }
        let waiting = state.waiting > 0;
        drop(state);
        if waiting {
            self.shared.writable.notify_one();
        }
        Some(Taken::Item(item))
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        let items = {
            let mut state = self.shared.lock();
            state.closed = true;
            std::mem::take(&mut state.items)
        };
        // Dropped outside the lock; every waiting sender gives up.
        drop(items);
        self.shared.writable.notify_waiters();
    }
}

impl Shared {
    /// The state, held for a few lines and never across an await. A panic
    /// while it was held left it consistent (every update is one step).
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests;
