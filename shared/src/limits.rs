//! Per-user budgets for what makes other people's servers and screens do
//! work: sending (messages over REST or WebSocket, typing, signals), and
//! inviting, creating rooms and opening DMs, each with a budget of its own;
//! and searching messages, a read that costs the database an index lookup
//! and a sort of every match.
//!
//! One [`UserLimits`] per process: in `chat` the api and the gateway share
//! it, so a user's REST and WebSocket sends draw on one budget. In the
//! scaled pool each instance has its own, so a user spread over the api
//! and several gateways gets one budget per instance they reach (a
//! cluster-wide budget would put a Redis round trip before every send, and
//! sending must not depend on the bus; see docs/operations.md).
//!
//! `sync` is paced rather than refused: a user's resyncs past
//! [`SYNC_BURST`] wait for their turn ([`SYNC_PER_MINUTE`]), so a client is
//! never told to go without what it missed, and a flood of them (each can
//! replay a room's whole history) costs its sender time, not the server
//! bandwidth.
//!
//! GCRA limiters keyed by user; [`UserLimits::prune`] forgets users whose
//! allowance is full again, so memory follows recent activity.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::metrics;
use crate::model::UserId;

/// `sync` frames a user may send at once before they are paced.
pub const SYNC_BURST: u32 = 10;

/// The pace of a user's `sync` frames past the burst.
pub const SYNC_PER_MINUTE: u32 = 30;

/// An action with a budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// A message (REST or WebSocket), a typing notice or a signal.
    Send,
    /// Adding someone to a room.
    Invite,
    /// Creating a room.
    CreateRoom,
    /// Opening a direct conversation.
    OpenDm,
    /// A read marker: a `read` frame (its marker is stored at most once a
    /// second anyway) or `POST /v1/rooms/{id}/read` (a store write each).
    Read,
    /// An upload of a file (`POST /v1/rooms/{id}/attachments`), sized
    /// like invites: a dozen photos at once, not a disk filled by a script.
    Upload,
    /// A search of messages (`GET /v1/search`).
    Search,
    /// A report of a message or a user (`POST /v1/reports`), sized like
    /// invites: each lands in a human's queue.
    Report,
    /// A change of one's own profile (display name, avatar), which every
    /// user sharing a room with them is told of; sized like invites.
    Profile,
    /// Blocking or unblocking a user, sized like invites (each tells every
    /// gateway of the other user).
    Block,
    /// A moderator's change to a room's moderation: a mute, an unmute, a
    /// change of slow mode (each one event fanned out to the whole room),
    /// sized like invites.
    Moderate,
    /// Placing, accepting, declining or hanging up a call: each rings or
    /// tells both parties' every connection and writes to the room's log.
    Call,
}

impl Action {
    fn scope(self) -> &'static str {
        match self {
            Self::Send => metrics::scope::SEND,
            Self::Invite => metrics::scope::INVITES,
            Self::CreateRoom => metrics::scope::ROOMS,
            Self::OpenDm => metrics::scope::DMS,
            Self::Read => metrics::scope::READS,
            Self::Upload => metrics::scope::UPLOADS,
            Self::Search => metrics::scope::SEARCHES,
            Self::Report => metrics::scope::REPORTS,
            Self::Profile => metrics::scope::PROFILE,
            Self::Block => metrics::scope::BLOCKS,
            Self::Moderate => metrics::scope::MODERATION,
            Self::Call => metrics::scope::CALLS,
        }
    }
}

/// The budgets' sizes; the defaults are the configuration's.
#[derive(Debug, Clone, Copy)]
pub struct Budgets {
    /// `CHAT_SEND_RATE_PER_SECOND`: sustained sends per user.
    pub send_per_second: u32,
    /// `CHAT_SEND_BURST`: sends at once.
    pub send_burst: u32,
    /// `CHAT_ACTION_RATE_PER_MINUTE`: invites, room creations, DM opens,
    /// uploads, reports, profile changes, blocks and moderation changes per
    /// user per minute (each its own budget).
    pub action_per_minute: u32,
    /// `CHAT_ACTION_BURST`: how many of each at once.
    pub action_burst: u32,
    /// `CHAT_READ_RATE_PER_SECOND`: read markers per user per second, past
    /// which they are dropped (socket) or refused (REST): far above what a
    /// client marking what it shows sends, and a bound on what a flood of
    /// them can make a server remember or store.
    pub read_per_second: u32,
    /// `CHAT_READ_BURST`: read markers at once.
    pub read_burst: u32,
    /// `CHAT_SEARCH_RATE_PER_MINUTE`: message searches per user per
    /// minute: enough to page through results and refine a query, and a
    /// bound on what one user can make the database sort.
    pub search_per_minute: u32,
    /// `CHAT_SEARCH_BURST`: searches at once.
    pub search_burst: u32,
    /// `CHAT_CALL_RATE_PER_MINUTE`: call frames (`call_place`,
    /// `call_accept`, `call_decline`, `call_hangup`) per user per minute.
    pub call_per_minute: u32,
    /// `CHAT_CALL_BURST`: call frames at once.
    pub call_burst: u32,
}

impl Default for Budgets {
    fn default() -> Self {
        Self {
            send_per_second: 20,
            send_burst: 50,
            action_per_minute: 20,
            action_burst: 10,
            read_per_second: 100,
            read_burst: 200,
            search_per_minute: 30,
            search_burst: 10,
            call_per_minute: 20,
            call_burst: 10,
        }
    }
}

/// Every budget of every user, for one process.
pub struct UserLimits {
    send: DefaultKeyedRateLimiter<UserId>,
    invite: DefaultKeyedRateLimiter<UserId>,
    create_room: DefaultKeyedRateLimiter<UserId>,
    open_dm: DefaultKeyedRateLimiter<UserId>,
    read: DefaultKeyedRateLimiter<UserId>,
    upload: DefaultKeyedRateLimiter<UserId>,
    search: DefaultKeyedRateLimiter<UserId>,
    report: DefaultKeyedRateLimiter<UserId>,
    profile: DefaultKeyedRateLimiter<UserId>,
    block: DefaultKeyedRateLimiter<UserId>,
    sync: DefaultKeyedRateLimiter<UserId>,
    moderate: DefaultKeyedRateLimiter<UserId>,
    call: DefaultKeyedRateLimiter<UserId>,
}

impl UserLimits {
    /// Budgets of the given sizes (a zero counts as one).
    pub fn new(budgets: Budgets) -> Self {
        let n = |v: u32| NonZeroU32::new(v).unwrap_or(NonZeroU32::MIN);
        let send = Quota::per_second(n(budgets.send_per_second)).allow_burst(n(budgets.send_burst));
        let action =
            Quota::per_minute(n(budgets.action_per_minute)).allow_burst(n(budgets.action_burst));
        Self {
            send: RateLimiter::keyed(send),
            invite: RateLimiter::keyed(action),
            create_room: RateLimiter::keyed(action),
            open_dm: RateLimiter::keyed(action),
            upload: RateLimiter::keyed(action),
            report: RateLimiter::keyed(action),
            profile: RateLimiter::keyed(action),
            block: RateLimiter::keyed(action),
            moderate: RateLimiter::keyed(action),
            read: RateLimiter::keyed(
                Quota::per_second(n(budgets.read_per_second)).allow_burst(n(budgets.read_burst)),
            ),
            search: RateLimiter::keyed(
                Quota::per_minute(n(budgets.search_per_minute))
                    .allow_burst(n(budgets.search_burst)),
            ),
            sync: RateLimiter::keyed(
                Quota::per_minute(n(SYNC_PER_MINUTE)).allow_burst(n(SYNC_BURST)),
            ),
            call: RateLimiter::keyed(
                Quota::per_minute(n(budgets.call_per_minute)).allow_burst(n(budgets.call_burst)),
            ),
        }
    }

    /// Waits until `user` may sync again (at once within the burst).
    pub async fn sync_turn(&self, user: UserId) {
        if self.sync.check_key(&user).is_err() {
            metrics::rate_limited(metrics::scope::SYNC);
            self.sync.until_key_ready(&user).await;
        }
    }

    /// Counts one `action` by `user`, or says how long until one would be
    /// allowed (and counts the refusal in `chat_rate_limited_total`).
    pub fn check(&self, user: UserId, action: Action) -> Result<(), Duration> {
        let limiter = match action {
            Action::Send => &self.send,
            Action::Invite => &self.invite,
            Action::CreateRoom => &self.create_room,
            Action::OpenDm => &self.open_dm,
            Action::Read => &self.read,
            Action::Upload => &self.upload,
            Action::Search => &self.search,
            Action::Report => &self.report,
            Action::Profile => &self.profile,
            Action::Block => &self.block,
            Action::Moderate => &self.moderate,
            Action::Call => &self.call,
        };
        limiter.check_key(&user).map_err(|not_until| {
            metrics::rate_limited(action.scope());
            not_until.wait_time_from(DefaultClock::default().now())
        })
    }

    /// Forgets users whose allowances are full again; run periodically.
    pub fn prune(&self) {
        let all = [
            &self.send,
            &self.invite,
            &self.create_room,
            &self.open_dm,
            &self.read,
            &self.upload,
            &self.search,
            &self.report,
            &self.profile,
            &self.block,
            &self.sync,
            &self.moderate,
            &self.call,
        ];
        for limiter in all {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    /// How often [`prune`](Self::prune) should run.
    pub const PRUNE_EVERY: Duration = Duration::from_secs(60);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_action_has_its_own_budget_and_users_do_not_share() {
        let limits = UserLimits::new(Budgets {
            send_per_second: 1,
            send_burst: 2,
            action_per_minute: 1,
            action_burst: 1,
            read_per_second: 1,
            read_burst: 1,
            search_per_minute: 1,
            search_burst: 1,
            call_per_minute: 1,
            call_burst: 1,
        });
        let (alice, bob) = (UserId::new(), UserId::new());
        assert!(limits.check(alice, Action::Send).is_ok());
        assert!(limits.check(alice, Action::Send).is_ok());
        let wait = limits.check(alice, Action::Send).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1));
        assert!(limits.check(bob, Action::Send).is_ok());
        for action in [
            Action::Invite,
            Action::CreateRoom,
            Action::OpenDm,
            Action::Read,
            Action::Upload,
            Action::Search,
            Action::Report,
            Action::Call,
        ] {
            assert!(limits.check(alice, action).is_ok(), "{action:?}");
            assert!(limits.check(alice, action).is_err(), "{action:?}");
        }
    }
}
