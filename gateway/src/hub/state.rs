//! What the hub keeps: its rooms, its connections and their users, and
//! its deadlines. The parts of the hub (`task`, `routing`, `online`) are
//! each an `impl` block over this one state.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use chat_shared::bus::Publisher;
use chat_shared::model::{ConnectionId, RoomId, SessionId, UserId};
use chat_shared::store::Store;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::Span;

use super::followers::Followers;
use super::{ConnectionKey, Timing};
use crate::delivery::envelope::{EventMeta, LogEvent};
use crate::delivery::feed::RoomFeed;
use crate::delivery::presence::Presence;
use crate::outbox::Outbox;
use crate::subscriptions::{Pending, Subscriptions};

/// What store-reading tasks report back.
pub(super) enum Report {
    /// Events read to fill a gap (in seq order), or the failure to read them.
    Repaired {
        room: RoomId,
        events: chat_shared::Result<Vec<LogEvent>>,
    },
    /// The newest seq of each room, as the store has it.
    Heads(chat_shared::Result<Vec<(RoomId, i64)>>),
}

/// One room as this gateway delivers it.
pub(super) struct Room {
    pub(super) feed: RoomFeed<Item>,
    pub(super) followers: Followers,
    /// When the feed is next due, as entered in the hub's deadlines.
    pub(super) due: Option<Instant>,
}

pub(super) struct ConnectionEntry {
    /// Its id across gateways, which signals on the user's topic name.
    pub(super) id: ConnectionId,
    pub(super) user: UserId,
    /// The login session its token belongs to.
    pub(super) login: SessionId,
    pub(super) outbox: Outbox,
    pub(super) rooms: HashSet<RoomId>,
    /// Users who block this connection's user: their presence is not
    /// shown to it. Loaded at connect, kept current by the bus's
    /// `blocked_by` / `unblocked_by` on the user's topic.
    pub(super) blockers: HashSet<UserId>,
    /// Users this connection's user blocks: their typing is not shown to
    /// it. Loaded at connect, kept current by `block_changed` on the
    /// user's topic.
    pub(super) blocking: HashSet<UserId>,
}

pub(super) struct HubTask {
    /// Makes the bus follow what this hub decides.
    pub(super) subscriptions: Subscriptions,
    pub(super) store: Arc<dyn Store>,
    /// For presence announcements and answers.
    pub(super) publisher: Publisher,
    pub(super) presence: Presence,
    /// This shard's presence query (who is online?), for each room new to
    /// it.
    pub(super) query: Bytes,
    pub(super) timing: Timing,
    pub(super) rooms: HashMap<RoomId, Room>,
    pub(super) connections: HashMap<ConnectionKey, ConnectionEntry>,
    pub(super) users: HashMap<UserId, HashSet<ConnectionKey>>,
    /// When each room's feed is next due, soonest first.
    pub(super) deadlines: BTreeSet<(Instant, RoomId)>,
    pub(super) reports: mpsc::Sender<Report>,
    /// The bus subscription changes of the batch under way.
    pub(super) pending: Pending,
}

/// A room event as a feed holds it: the event and the span its `deliver`
/// goes under (`Span::none()` untraced).
#[derive(Debug)]
pub(super) struct Item {
    pub(super) frame: Bytes,
    pub(super) meta: EventMeta,
    pub(super) left: Option<UserId>,
    pub(super) trace: Span,
}

impl Item {
    /// An event read from the store, which no trace follows.
    pub(super) fn untraced(event: LogEvent) -> (i64, Self) {
        (
            event.seq,
            Self {
                frame: event.frame,
                meta: event.meta,
                left: event.left,
                trace: Span::none(),
            },
        )
    }
}
