//! The hub: this gateway's one task that knows which connection follows
//! which room, subscribes the bus accordingly, and hands each room's
//! events, in seq order, to the connections that follow it.
//!
//! What to deliver when is decided by the delivery core ([`crate::core`]):
//! a [`RoomFeed`](crate::delivery::feed::RoomFeed) per room puts its events in
//! order, gathers a busy room's events into one write per connection per
//! `CHAT_FANOUT_INTERVAL`, and says when a gap is to be read from the
//! store. The hub is the loop around the feeds: it routes typed
//! [`Envelope`](crate::delivery::envelope::Envelope)s, keeps the timers, runs
//! the store reads in tasks of their own (a slow database never stalls the
//! rooms that have no gap) and pushes into connections' outboxes without
//! waiting.
//!
//! Whatever is waiting for it (commands, bus deliveries) is handled as one
//! batch, and the bus subscription changes the batch calls for are handed
//! at its end to a task of their own ([`subscriptions`](crate::subscriptions)),
//! which makes them without the hub waiting: a crowd connecting at once
//! costs a few round trips to Redis, not one per connection and room, and
//! a bus slow to subscribe delays no delivery. What must wait for a
//! subscription (answering an attach, asking who is online in a new room)
//! waits there.
//!
//! It owns all routing state, so no lock is ever shared with connections;
//! they speak to it through [`Hub`].
//!
//! The hub runs as several *shards*, one task each, so that fan-out (the
//! hub's main work: a push into every follower's outbox) runs on every
//! core instead of one. A connection belongs to one shard, chosen by its
//! key, and each shard delivers every room its connections follow: a room
//! followed from several shards is put in order by each, and each fans it
//! out to its own connections, so a crowded room's fan-out is split across
//! cores. Sharding by connection rather than by room keeps every rule of a
//! connection (its rooms, the `Follow` queued before the room's events,
//! the removal after its `member_left`) inside one task; the price is a
//! sequencer per shard for rooms followed from several, which costs little
//! next to the pushes. Each shard takes part in presence as a gateway of
//! its own (its own id): what one shard announces, the others hear on the
//! bus, as other gateways do, so who is online stays exact without any
//! state shared between shards.
//!
//! - `router`: the bus's deliveries, read once, to every shard.
//! - `task`: a shard's loop, and what connections ask of it.
//! - `routing`: bus deliveries and the room feeds.
//! - `online`: presence, between this gateway's connections and the others.
//! - `state`: what the hub keeps, which those three share.
//! - `followers`: who follows a room here.

use std::sync::Arc;
use std::time::Duration;

use chat_shared::bus::{Delivery, Publisher, Subscriber};
use chat_shared::model::{ConnectionId, RoomId, SessionId, UserId};
use chat_shared::store::Store;
use chat_shared::telemetry;
use tokio::sync::{mpsc, oneshot};
use tracing::Span;

use crate::delivery::envelope::LogEvent;
use crate::outbox::Outbox;
use crate::subscriptions::Subscriptions;

mod followers;
mod online;
mod router;
mod routing;
mod state;
mod task;

/// Identifies one connection within this gateway.
pub type ConnectionKey = u64;

/// Commands a shard may have waiting; when it falls behind, connections
/// wait to tell it things (which slows their clients) instead of queueing
/// without end.
const COMMANDS: usize = 4096;

/// Deliveries a shard may have waiting before the bus's reader waits.
const DELIVERIES: usize = 1024;

/// A handle to the hub's shards, cheap to clone.
#[derive(Clone)]
pub struct Hub {
    shards: Arc<[mpsc::Sender<Command>]>,
}

/// What connections tell the hub.
enum Command {
    /// A connection opened: deliver `rooms` (each known up to the seq given).
    Attach {
        key: ConnectionKey,
        /// Its id across gateways: frames on the user's topic naming
        /// another connection (a call's signals) are not pushed to it.
        id: ConnectionId,
        user: UserId,
        login: SessionId,
        rooms: Vec<(RoomId, i64)>,
        blocks: BlockLists,
        outbox: Outbox,
        /// Answered once the connection is routed.
        attached: oneshot::Sender<()>,
    },
    /// A connection closed.
    Detach { key: ConnectionKey },
    /// Stopping: announce everyone leaving now, then answer.
    DepartAll { done: oneshot::Sender<()> },
    /// A connection asked to (re)start `room` after `after`.
    Follow {
        key: ConnectionKey,
        room: RoomId,
        after: i64,
        synced: bool,
        /// Answered once the follow is queued for the connection's writer.
        queued: oneshot::Sender<()>,
    },
    /// This gateway committed an event: deliver it without waiting for the
    /// bus to bring it back.
    Committed {
        room: RoomId,
        event: LogEvent,
        /// The send's span, parent of the `deliver` span.
        trace: Span,
    },
    /// May `user`, a member of `room`, be connected anywhere, as this
    /// shard knows?
    MayBeOnline {
        user: UserId,
        room: RoomId,
        answer: oneshot::Sender<bool>,
    },
}

impl Hub {
    /// Starts the hub, in `shards` tasks, over a bus subscription and the
    /// store.
    pub fn start(
        subscriber: Box<dyn Subscriber>,
        deliveries: mpsc::Receiver<Delivery>,
        store: Arc<dyn Store>,
        publisher: Publisher,
        timing: Timing,
        shards: usize,
    ) -> Self {
        let subscriptions = Subscriptions::start(subscriber, publisher.clone());
        let shards = shards.max(1);
        let mut commands = Vec::new();
        let mut routes = Vec::new();
        // One shard reads the bus itself; several are handed what the
        // router read once for all of them.
        let (mut direct, routed) = if shards == 1 {
            (Some(deliveries), None)
        } else {
            (None, Some(deliveries))
        };
        for _ in 0..shards {
            let (command_tx, command_rx) = mpsc::channel(COMMANDS);
            let source = match direct.take() {
                Some(deliveries) => router::Deliveries::Bus {
                    deliveries,
                    batch: Vec::new(),
                },
                None => {
                    let (routed_tx, routed_rx) = mpsc::channel(DELIVERIES);
                    routes.push(routed_tx);
                    router::Deliveries::Router(routed_rx)
                }
            };
            state::HubTask::spawn(
                subscriptions.clone(),
                store.clone(),
                publisher.clone(),
                timing,
                command_rx,
                source,
            );
            commands.push(command_tx);
        }
        if let Some(deliveries) = routed {
            router::spawn(deliveries, routes);
        }
        Self {
            shards: commands.into(),
        }
    }

    /// Registers a connection (its key here and its id across gateways),
    /// the rooms it starts with, who blocks its user and whom they block;
    /// returns once the hub routes to it, so whatever is published after
    /// that reaches it (the connection says `hello` only then).
    pub async fn attach(
        &self,
        (key, id): (ConnectionKey, ConnectionId),
        user: UserId,
        login: SessionId,
        rooms: Vec<(RoomId, i64)>,
        blocks: BlockLists,
        outbox: Outbox,
    ) {
        let (attached, routed) = oneshot::channel();
        self.send(
            key,
            Command::Attach {
                key,
                id,
                user,
                login,
                rooms,
                blocks,
                outbox,
                attached,
            },
        )
        .await;
        // Only fails once the hub has stopped, i.e. during shutdown.
        let _ = routed.await;
    }

    /// Forgets a connection.
    pub async fn detach(&self, key: ConnectionKey) {
        self.send(key, Command::Detach { key }).await;
    }

    /// Announces offline, now, every user whose last connection here has
    /// closed (the gateway is stopping: no departure grace will run out).
    pub async fn depart_all(&self) {
        let mut departed = Vec::new();
        for shard in self.shards.iter() {
            let (done, answer) = oneshot::channel();
            let _ = shard.send(Command::DepartAll { done }).await;
            departed.push(answer);
        }
        for answer in departed {
            let _ = answer.await;
        }
    }

    /// Makes a connection follow `room` from just after `after`; returns
    /// once the writer has it queued, so what the caller queues next comes
    /// after it.
    pub async fn follow(&self, key: ConnectionKey, room: RoomId, after: i64, synced: bool) {
        let (queued, done) = oneshot::channel();
        self.send(
            key,
            Command::Follow {
                key,
                room,
                after,
                synced,
                queued,
            },
        )
        .await;
        // Only fails once the hub has stopped, i.e. during shutdown.
        let _ = done.await;
    }

    /// Delivers an event this gateway just committed (within the current
    /// span's trace, when traces are on).
    pub async fn committed(&self, room: RoomId, event: LogEvent) {
        let trace = if telemetry::traces_enabled() {
            Span::current()
        } else {
            Span::none()
        };
        // Every shard that delivers the room takes it; the others drop it.
        for shard in self.shards.iter() {
            let committed = Command::Committed {
                room,
                event: event.clone(),
                trace: trace.clone(),
            };
            // Only fails once the hub has stopped, i.e. during shutdown.
            let _ = shard.send(committed).await;
        }
    }

    /// Whether `user`, a member of `room`, may have a connection anywhere
    /// (or had one within the departure grace), as the shard of connection
    /// `key` knows. It hears the presence of everyone in the rooms it
    /// delivers, so when it delivers `room` the answer is exact; when it
    /// does not (a DM closed, so not followed), it cannot know and says
    /// yes: a call then rings out its timeout rather than being missed by
    /// someone online. False once the hub has stopped.
    pub async fn may_be_online(&self, key: ConnectionKey, user: UserId, room: RoomId) -> bool {
        let (answer, online) = oneshot::channel();
        self.send(key, Command::MayBeOnline { user, room, answer })
            .await;
        online.await.unwrap_or(false)
    }

    /// Tells the shard of connection `key`.
    async fn send(&self, key: ConnectionKey, command: Command) {
        let shard = &self.shards[key as usize % self.shards.len()];
        // Only fails once the hub has stopped, i.e. during shutdown.
        let _ = shard.send(command).await;
    }
}

/// A connection's user's blocks, as read when it opens (the bus keeps
/// them current after).
#[derive(Debug, Default)]
pub struct BlockLists {
    /// The users who block them (who must not be seen online by them).
    pub blockers: Vec<UserId>,
    /// The users they block (whose typing is not shown to them).
    pub blocking: Vec<UserId>,
}

/// The hub's timing knobs.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// How long a gap may last before the store is read.
    pub gap_wait: Duration,
    /// The least time between two fan-outs of one room.
    pub fan_out_interval: Duration,
    /// How often room heads are compared with the store.
    pub head_check: Duration,
    /// How often this gateway tells the others it is alive.
    pub presence_beat: Duration,
}
