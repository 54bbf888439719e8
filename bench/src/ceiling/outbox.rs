//! The bounded queue in front of a ceiling connection's writer. Whoever
//! has something for the connection (its own reader, a room's fan-out)
//! pushes without waiting; the writer takes everything queued, up to a
//! batch, and sends it in one write.
//!
//! Full at [`OUTBOX`] frames, as ours is at its default
//! `CHAT_OUTBOUND_QUEUE`: the connection is a slow consumer and is closed
//! with 1013 instead of growing memory. Nothing is lost that the ceiling
//! could have kept: it has no history to resume from.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::Notify;

/// Frames a connection may have waiting before it is closed as too slow.
pub const OUTBOX: usize = 1024;

/// Something for a connection's writer to send, in queue order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out {
    /// A text frame; an event's bytes are shared by every connection.
    Text(Bytes),
    /// The answer to a WebSocket ping, with its payload.
    Pong(Bytes),
    /// A close frame with this code; the writer ends after it.
    Close(u16),
}

/// A cheap handle to one connection's queue.
#[derive(Clone, Default)]
pub struct Outbox {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    /// Wakes the writer; a push with no writer waiting leaves a permit, so
    /// none is lost between the writer's look at the queue and its wait.
    ready: Notify,
}

#[derive(Default)]
struct Queue {
    items: VecDeque<Out>,
    /// A push found the queue full: the writer closes with 1013.
    overflowed: bool,
}

impl Outbox {
    /// Queues one item.
    pub fn push(&self, out: Out) {
        self.push_all(std::iter::once(out));
    }

    /// Queues `frames` as text frames together: one lock and one wake-up
    /// for a room's gathered events.
    pub fn push_texts(&self, frames: &[Bytes]) {
        self.push_all(frames.iter().cloned().map(Out::Text));
    }

    fn push_all(&self, items: impl Iterator<Item = Out>) {
        {
            let mut queue = self.shared.queue.lock().expect("outbox lock");
            for item in items {
                if queue.items.len() >= OUTBOX {
                    queue.overflowed = true;
                    break;
                }
                queue.items.push_back(item);
            }
        }
        self.shared.ready.notify_one();
    }

    /// Waits until something is queued and moves up to `most` items into
    /// `into`; `false` once the queue has overflowed. The queue's memory is
    /// let go when the writer empties it, as an idle connection needs none.
    pub async fn take(&self, into: &mut Vec<Out>, most: usize) -> bool {
        loop {
            {
                let mut queue = self.shared.queue.lock().expect("outbox lock");
                if queue.overflowed {
                    return false;
                }
                if !queue.items.is_empty() {
                    let n = most.min(queue.items.len());
                    into.extend(queue.items.drain(..n));
                    if queue.items.is_empty() {
                        queue.items = VecDeque::new();
                    }
                    return true;
                }
            }
            self.shared.ready.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn items_come_out_in_order_a_batch_at_a_time() {
        let outbox = Outbox::default();
        outbox.push(Out::Text(Bytes::from_static(b"a")));
        outbox.push_texts(&[Bytes::from_static(b"b"), Bytes::from_static(b"c")]);
        let mut taken = Vec::new();
        assert!(outbox.take(&mut taken, 2).await);
        assert!(outbox.take(&mut taken, 2).await);
        let texts: Vec<_> = taken
            .iter()
            .map(|out| match out {
                Out::Text(bytes) => bytes.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(texts, ["a", "b", "c"]);
    }

    #[tokio::test]
    async fn a_full_queue_overflows_instead_of_growing() {
        let outbox = Outbox::default();
        let frames = vec![Bytes::from_static(b"x"); OUTBOX + 1];
        outbox.push_texts(&frames);
        assert!(!outbox.take(&mut Vec::new(), 64).await);
    }

    #[tokio::test]
    async fn a_waiting_writer_wakes_for_a_push() {
        let outbox = Outbox::default();
        let writer = {
            let outbox = outbox.clone();
            tokio::spawn(async move {
                let mut taken = Vec::new();
                outbox.take(&mut taken, 64).await;
                taken
            })
        };
        tokio::task::yield_now().await;
        outbox.push(Out::Close(1000));
        assert_eq!(writer.await.unwrap(), [Out::Close(1000)]);
    }
}
