//! The `Store` port: everything durable, behind small traits, with one
//! adapter per database we run (PostgreSQL in production, SQLite embedded).
//! This file is the port alone, every trait with the values it takes and
//! returns, so the whole contract reads in one place (hence its length).
//!
//! The contract both adapters keep, proven by the conformance suite in
//! `shared/tests/store`: every room has a gap-free `seq` allocated in the same
//! transaction as the event it numbers; a message's `(room, sender,
//! client_id)` is appended at most once; membership changes and the event that
//! records them commit together.
//!
//! The adapters are one generic `SqlStore` over sqlx, one module per area,
//! each with its statements beside the code that runs them: `accounts`,
//! `sessions`, `rooms`, `members`, `log` (and the message appends'
//! `group_commit`), `messages` (and what a deletion erases, `erasure`),
//! `timeline`, `references` (what a message points at), `search` (the
//! full-text search of messages as they are now), `admin` (server
//! roles, deactivated accounts, reports, the audit log), `profile` (what
//! users change of their own account), `blocks` (who blocks whom),
//! `dms` (DM requests and closed DMs), `moderation` (timeouts and slow
//! mode, enforced by the appends), `invites` (invitations with consent),
//! `invite_links` and `calls` (one-to-one calls and the gateways' leases
//! that keep them). `dialect` says
//! what differs between the databases, `postgres` and `sqlite` open them,
//! `durability` keeps failed writes from passing for committed ones,
//! `driver_error` turns the driver's errors into [`Error`], and `metered`
//! times every call.

mod accounts;
mod adapter;
mod admin;
mod attachments;
mod blocks;
mod calls;
mod dialect;
mod dms;
mod driver_error;
mod durability;
mod erasure;
mod group_commit;
mod invite_links;
mod invites;
mod log;
mod members;
mod messages;
mod metered;
mod moderation;
mod postgres;
mod profile;
mod references;
mod rooms;
mod search;
mod sessions;
mod sqlite;
mod timeline;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::admin::{Account, AuditAction, AuditEntry, NewAudit, NewReport, Report, ServerRole};
use crate::calls::{Call, CallEnd, NewCall};
use crate::model::{
    Attachment, AttachmentId, AuditId, Ban, BlockedUser, CallId, ConnectionId, EventId, Invite,
    InviteId, InviteLink, LeaveReason, Member, MyRoom, ReportId, Role, Room, RoomEvent, RoomId,
    RoomKind, SessionId, TimelineItem, User, UserId,
};

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

pub use crate::error::{Error, Result};
use crate::search::{SearchHit, SearchQuery};

/// A user to register.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Login name (uniqueness is checked case-insensitively).
    pub username: String,
    /// Shown name.
    pub display_name: String,
    /// PHC-format argon2id hash.
    pub password_hash: String,
}

/// What login needs to check a password.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// The user.
    pub user: User,
    /// Their PHC-format password hash.
    pub password_hash: String,
}

/// A login session: one device, one refresh-token family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Identifier, carried in access tokens as `sid`.
    pub id: SessionId,
    /// Whose session.
    pub user_id: UserId,
    /// The client's User-Agent at login, for the session list.
    pub user_agent: Option<String>,
    /// Login time.
    pub created_at: OffsetDateTime,
    /// Last refresh.
    pub last_used_at: OffsetDateTime,
    /// When the newest refresh token expires.
    pub expires_at: OffsetDateTime,
    /// Set once the session is logged out or its family revoked.
    pub revoked_at: Option<OffsetDateTime>,
}

/// A refresh token to store: only its hash ever reaches the database.
#[derive(Debug, Clone)]
pub struct RefreshToken {
    /// SHA-256 of the opaque token.
    pub hash: Vec<u8>,
    /// When it stops being accepted.
    pub expires_at: OffsetDateTime,
}

/// The outcome of presenting a refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// The token was current: it is now spent and the new one stored.
    Rotated(Session),
    /// The token had already been rotated: someone replayed it, so the whole
    /// session (this one, now revoked) has just been revoked.
    Reused(Session),
    /// Unknown, expired, or its session is revoked.
    Invalid,
}

/// A room to create; its creator becomes its owner.
#[derive(Debug, Clone)]
pub struct NewRoom {
    /// Public or private (direct rooms come from [`RoomStore::direct_room`]).
    pub kind: RoomKind,
    /// Display name.
    pub name: String,
    /// Topic.
    pub topic: String,
    /// Creator and first owner.
    pub created_by: UserId,
}

/// A message to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    /// The sender's idempotency key.
    pub client_id: String,
    /// The text (checked by the caller); its `@` mentions are resolved
    /// against the room's members at the commit.
    pub body: String,
    /// The message of the same room it answers; `Invalid` if there is none.
    pub reply_to: Option<EventId>,
    /// Files it carries: each uploaded by the sender into this room, ready,
    /// and carried by no other message (`Invalid` otherwise); at most
    /// [`MAX_ATTACHMENTS`](crate::model::MAX_ATTACHMENTS), no repeats.
    pub attachments: Vec<AttachmentId>,
}

impl NewMessage {
    /// A message that answers nothing.
    pub fn text(client_id: impl Into<String>, body: impl Into<String>) -> Self {
        Self {
            client_id: client_id.into(),
            body: body.into(),
            reply_to: None,
            attachments: Vec::new(),
        }
    }
}

/// The result of appending a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// The stored event (the original one on a retry).
    pub event: RoomEvent,
    /// False when the `client_id` had been seen: nothing new was stored.
    pub created: bool,
}

/// A message append that has joined its store's queue
/// ([`RoomLog::submit_message`]); its answer comes once its batch commits.
#[derive(Debug)]
pub struct Submitted(tokio::sync::oneshot::Receiver<Result<Appended>>);

impl Submitted {
    fn new(answer: tokio::sync::oneshot::Receiver<Result<Appended>>) -> Self {
        Self(answer)
    }

    /// What became of the append: `append_message`'s answer.
    pub async fn answer(self) -> Result<Appended> {
        self.0
            .await
            .unwrap_or_else(|_| Err(Error::Unavailable("the store's writer stopped".into())))
    }
}

/// A window of a room's log, by seq cursor. Events come back in ascending
/// seq order; with no `after` the window ends at the newest event (or just
/// below `before`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Only events with `seq > after`; the window starts just after it.
    pub after: Option<i64>,
    /// Only events with `seq < before`.
    pub before: Option<i64>,
    /// At most this many events.
    pub limit: u32,
}

/// Accounts.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Registers a user; `Conflict("username")` when the name is taken.
    async fn create_user(&self, new: NewUser) -> Result<User>;
    /// The user and hash for a login name, if registered.
    async fn credentials(&self, username: &str) -> Result<Option<Credentials>>;
    /// A user by id.
    async fn user(&self, id: UserId) -> Result<Option<User>>;
    /// Users whose username or display name contains `query`, ignoring case.
    async fn search_users(&self, query: &str, limit: u32) -> Result<Vec<User>>;
}

/// Login sessions and refresh-token rotation.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Opens a session with its first refresh token.
    async fn create_session(
        &self,
        user: UserId,
        user_agent: Option<String>,
        token: RefreshToken,
    ) -> Result<Session>;
    /// Spends the token with hash `presented` and stores `next` in its place,
    /// atomically: of two concurrent presentations, one rotates and the other
    /// is reuse.
    async fn rotate_refresh_token(&self, presented: &[u8], next: RefreshToken) -> Result<Rotation>;
    /// A session by id.
    async fn session(&self, id: SessionId) -> Result<Option<Session>>;
    /// The user's sessions that are neither revoked nor expired, newest first.
    async fn active_sessions(&self, user: UserId) -> Result<Vec<Session>>;
    /// Revokes one of the user's sessions; false if there was none to revoke.
    async fn revoke_session(&self, user: UserId, id: SessionId) -> Result<bool>;
    /// Revokes every live session of the user but `except` (all of them
    /// when `None`) and returns the ones it ended, for the gateways to
    /// close their sockets: a password change keeps the caller's session,
    /// a deactivation or a deletion ends them all.
    async fn revoke_sessions(
        &self,
        user: UserId,
        except: Option<SessionId>,
    ) -> Result<Vec<SessionId>>;
}

/// Rooms, membership, bans and direct rooms. Every membership change appends
/// its event to the room log in the same transaction and returns it.
#[async_trait]
pub trait RoomStore: Send + Sync {
    /// Creates a room; its creator joins as owner (event seq 1).
    async fn create_room(&self, new: NewRoom) -> Result<(Room, RoomEvent)>;
    /// A room by id.
    async fn room(&self, id: RoomId) -> Result<Option<Room>>;
    /// Renames or re-topics a room, recording `room_updated`; when the
    /// name and topic are what the room already has, nothing is written and
    /// no event comes back (decided under the room's lock, so of two equal
    /// edits at once only one records a change).
    async fn update_room(
        &self,
        id: RoomId,
        by: UserId,
        name: String,
        topic: String,
    ) -> Result<(Room, Option<RoomEvent>)>;
    /// Deletes a room and its log; false if it did not exist.
    async fn delete_room(&self, id: RoomId) -> Result<bool>;
    /// The rooms `user` is a member of, with their read markers.
    async fn my_rooms(&self, user: UserId) -> Result<Vec<MyRoom>>;
    /// All public rooms, by name.
    async fn public_rooms(&self) -> Result<Vec<Room>>;
    /// The direct room of two users, created on first use; concurrent calls
    /// yield one room. The bool says whether this call created it.
    async fn direct_room(&self, a: UserId, b: UserId) -> Result<(Room, bool)>;

    /// `user`'s role in `room`, if a member.
    async fn role(&self, room: RoomId, user: UserId) -> Result<Option<Role>>;
    /// The members of a room, by join time.
    async fn members(&self, room: RoomId) -> Result<Vec<Member>>;
    /// Adds `user` to `room`; `Conflict("member")` if already in, `Banned`
    /// if banned. `by` is who added them (themselves on a join).
    async fn add_member(
        &self,
        room: RoomId,
        user: UserId,
        by: UserId,
        role: Role,
    ) -> Result<RoomEvent>;
    /// Removes `user` from `room`; `NotMember` if they were not in it.
    async fn remove_member(
        &self,
        room: RoomId,
        user: UserId,
        by: UserId,
        reason: LeaveReason,
    ) -> Result<RoomEvent>;
    /// Changes a member's role; `by` must be the room's owner at the commit
    /// (`NotAllowed` otherwise). Making someone owner hands the room over:
    /// the previous owner becomes admin, in the same transaction.
    async fn set_role(
        &self,
        room: RoomId,
        user: UserId,
        by: UserId,
        role: Role,
    ) -> Result<Vec<RoomEvent>>;
    /// Bans `user` (removing them first if a member) and returns the
    /// `member_left` event if there was one; `Conflict("ban")` if already banned.
    async fn ban(
        &self,
        room: RoomId,
        user: UserId,
        by: UserId,
        reason: String,
    ) -> Result<Option<RoomEvent>>;
    /// Lifts a ban; false if there was none.
    async fn unban(&self, room: RoomId, user: UserId) -> Result<bool>;
    /// The bans of a room.
    async fn bans(&self, room: RoomId) -> Result<Vec<Ban>>;
}

/// Each room's ordered log of events.
#[async_trait]
pub trait RoomLog: Send + Sync {
    /// Appends a message if `sender` is a member, or returns the event this
    /// `client_id` already produced. The seq is allocated in the same
    /// transaction as the insert, so the log has no gaps.
    async fn append_message(
        &self,
        room: RoomId,
        sender: UserId,
        message: NewMessage,
    ) -> Result<Appended>;
    /// The same append, returning as soon as it is queued: appends one
    /// caller submits one after another to a room commit in that order, so
    /// a connection may have many in flight and still keep its order.
    async fn submit_message(
        &self,
        room: RoomId,
        sender: UserId,
        message: NewMessage,
    ) -> Result<Submitted>;
    /// A window of the log. Replies carry the preview of the message they
    /// answer as it is now.
    async fn events(&self, room: RoomId, page: Page) -> Result<Vec<RoomEvent>>;
    /// The newest seq of each of `rooms` that exists.
    async fn heads(&self, rooms: &[RoomId]) -> Result<Vec<(RoomId, i64)>>;
    /// Moves the member's read marker forward to `seq` (never back, never
    /// past the room's `last_seq`) and returns the marker now stored.
    async fn mark_read(&self, room: RoomId, user: UserId, seq: i64) -> Result<ReadMark>;
}

/// A change to a message (see [`MessageStore::change_message`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageChange {
    /// New text (checked by the caller), by the sender only.
    Edit {
        /// The text.
        body: String,
    },
    /// Erase it: by the sender, or by an owner or admin.
    Delete,
    /// Add the actor's reaction: an emoji as `message_text::emoji` gives it.
    React {
        /// The emoji.
        emoji: String,
    },
    /// Take the actor's reaction back.
    Unreact {
        /// The emoji.
        emoji: String,
    },
    /// Pin it: owners and admins (either member in a DM).
    Pin,
    /// Unpin it: the same.
    Unpin,
}

impl MessageChange {
    /// The error code and text for this change refused for the actor's
    /// place in the room ([`Error::NotAllowed`]); the api and the gateway
    /// say the same.
    pub fn not_allowed(&self) -> (&'static str, &'static str) {
        match self {
            Self::Edit { .. } => ("not_sender", "only the sender edits a message"),
            Self::Delete => (
                "insufficient_role",
                "only the sender, an owner or an admin deletes a message",
            ),
            Self::Pin | Self::Unpin => ("insufficient_role", "only owners and admins pin messages"),
            // Any member reacts: never refused for the role.
            Self::React { .. } | Self::Unreact { .. } => {
                ("insufficient_role", "your role does not allow this")
            }
        }
    }
}

/// What people do to messages after they are sent. Each change is an event
/// of its own in the room's log, committed with the message's new state;
/// it is authorised against the store as it is at the commit (under the
/// room's lock), so a kick or a deletion that committed first is seen.
#[async_trait]
pub trait MessageStore: Send + Sync {
    /// Records `change` of the message `target` by `actor`, or returns the
    /// event `client_id` already produced (`created: false`). Errors:
    /// `NotFound` (no such room, or no such message in it), `NotMember`,
    /// `NotAllowed` (not the sender, or not an owner or admin, as it is
    /// now), `Conflict` with `message_deleted`, `already_reacted`,
    /// `not_reacted`, `too_many_reactions`, `already_pinned`, `not_pinned`
    /// or `too_many_pins`: and then nothing is stored.
    async fn change_message(
        &self,
        room: RoomId,
        actor: UserId,
        target: EventId,
        client_id: Option<&str>,
        change: MessageChange,
    ) -> Result<Appended>;
    /// A window of the room's timeline, by seq like [`RoomLog::events`]:
    /// every event that is not a change of a message, with messages as they
    /// are now, their reactions as `viewer` sees them.
    async fn timeline(&self, room: RoomId, viewer: UserId, page: Page) -> Result<Timeline>;
    /// The room's pinned messages as timeline entries, the latest pin first.
    async fn pins(&self, room: RoomId, viewer: UserId) -> Result<Timeline>;
}

/// Timeline entries and the room's head, read in one snapshot: every
/// change with a seq up to `last_seq` shows in the entries, none after it,
/// so a client applies live exactly the events after `last_seq`.
/// `NotFound` if the room does not exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeline {
    /// The entries, in ascending seq (pins: the latest pin first).
    pub items: Vec<TimelineItem>,
    /// The room's head in the same snapshot.
    pub last_seq: i64,
}

/// A member's read marker after [`RoomLog::mark_read`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadMark {
    /// The marker now stored.
    pub seq: i64,
    /// Whether this call moved it (only then is it news to anyone).
    pub moved: bool,
}

/// An upload about to begin.
#[derive(Debug, Clone)]
pub struct NewAttachment {
    /// The room it is shared in; the uploader must be a member.
    pub room: RoomId,
    /// Who uploads it.
    pub uploader: UserId,
    /// The file's name (checked by the caller).
    pub name: String,
    /// The type the upload declares (the bytes decide, at
    /// [`AttachmentStore::finish_upload`]).
    pub content_type: String,
}

/// What storing an upload's bytes found.
#[derive(Debug, Clone)]
pub struct Uploaded {
    /// Its type, as read from its bytes.
    pub content_type: String,
    /// Its size in bytes.
    pub size: u64,
    /// For an image: its width.
    pub width: Option<u32>,
    /// For an image: its height.
    pub height: Option<u32>,
    /// The type of the thumbnail stored beside it, if one was.
    pub thumbnail_type: Option<String>,
}

/// An attachment with what deciding who may read it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAttachment {
    /// The file as messages carry it.
    pub attachment: Attachment,
    /// The type of its thumbnail, if it has one.
    pub thumbnail_type: Option<String>,
    /// The room it was uploaded into.
    pub room_id: RoomId,
    /// Who uploaded it.
    pub uploader: UserId,
    /// Its bytes are stored and it is not deleted.
    pub ready: bool,
    /// The message that carries it, if one was sent.
    pub seq: Option<i64>,
    /// When the upload began.
    pub created_at: OffsetDateTime,
}

/// Uploaded files. Their bytes are in the store of blobs (`crate::blobs`);
/// a row here is written first, so every blob has one, and a row marked
/// deleted stays until [`AttachmentStore::forget_attachment`], called once
/// its bytes are gone. A message carries attachments through
/// [`NewMessage::attachments`], claimed in its own transaction; deleting the
/// message or its room marks them deleted in theirs.
#[async_trait]
pub trait AttachmentStore: Send + Sync {
    /// Records an upload about to begin: `NotFound` if the room does not
    /// exist, `NotMember` if the uploader is not in it.
    async fn begin_upload(&self, new: NewAttachment) -> Result<AttachmentId>;
    /// Marks an upload's bytes stored; `NotFound` if it is no longer
    /// uploading (abandoned, or given up by the sweeper).
    async fn finish_upload(&self, id: AttachmentId, uploaded: Uploaded) -> Result<()>;
    /// Gives an upload up (its bytes failed to store): it is marked
    /// deleted, for the sweeper to delete whatever part of it was written.
    async fn abandon_upload(&self, id: AttachmentId) -> Result<()>;
    /// An attachment by id, in whatever state.
    async fn attachment(&self, id: AttachmentId) -> Result<Option<StoredAttachment>>;
    /// Marks deleted every attachment begun before `created_before` that no
    /// message carries; returns how many.
    async fn expire_attachments(&self, created_before: OffsetDateTime) -> Result<u64>;
    /// Up to `limit` attachments marked deleted, oldest first: their bytes
    /// are to be deleted, then the rows forgotten.
    async fn deleted_attachments(&self, limit: u32) -> Result<Vec<AttachmentId>>;
    /// Removes a deleted attachment's row (its bytes are gone).
    async fn forget_attachment(&self, id: AttachmentId) -> Result<()>;
}

/// Where a search looks, and which page of what it finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchPage {
    /// Only this room (the caller checks membership first; a room the
    /// searcher is not in finds nothing anyway).
    pub room: Option<RoomId>,
    /// Only messages older than this one (the last hit of the page
    /// before): event ids are time-ordered, so the cursor pages across
    /// rooms.
    pub before: Option<EventId>,
    /// At most this many hits.
    pub limit: u32,
}

/// Full-text search of messages as they are now. The index follows each
/// message in the transaction of its change: a send indexes it, an edit
/// re-indexes it, a deletion (which erases the text) and the room's
/// deletion take it out.
#[async_trait]
pub trait SearchStore: Send + Sync {
    /// The messages matching `query` in the rooms `user` is a member of
    /// now, newest first, each with its text cut into marked and unmarked
    /// parts.
    async fn search_messages(
        &self,
        user: UserId,
        query: &SearchQuery,
        page: SearchPage,
    ) -> Result<Vec<SearchHit>>;
}

/// Server administration: server roles, deactivated accounts, reports and
/// the audit log (`admin`). Every change here is authorised against the
/// actor's server role as it is at the commit and writes its audit entry
/// in the same transaction.
#[async_trait]
pub trait AdminStore: Send + Sync {
    /// A user with their server role and state.
    async fn account(&self, user: UserId) -> Result<Option<Account>>;
    /// The same by login name (any case), for the command line.
    async fn account_by_name(&self, username: &str) -> Result<Option<Account>>;
    /// Accounts by username (ignoring case) after `after`, those whose
    /// username or display name contains `query` when one is given.
    async fn accounts(
        &self,
        query: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Account>>;
    /// What `user` may do in `room`: the higher of their role as a member
    /// and what their server role acts as there (`admin::effective_role`);
    /// a deactivated account's server role counts for nothing.
    async fn effective_role(&self, room: RoomId, user: UserId) -> Result<Option<Role>>;
    /// Grants (`Some`) or takes away (`None`) a server role. `by` must be
    /// an active admin at the commit (`NotAllowed`); `None` is the command
    /// line, which may always. `NotFound`: no such user;
    /// `Conflict("last_admin")`: it would leave no active admin;
    /// `Conflict("unchanged")`: they already hold exactly that.
    async fn set_server_role(
        &self,
        user: UserId,
        role: Option<ServerRole>,
        by: Option<UserId>,
    ) -> Result<Account>;
    /// Deactivates or reactivates an account. `by` must outrank it
    /// (`admin::outranks_account`, `NotAllowed` otherwise); `NotFound`: no
    /// such user; `Conflict("unchanged")`: it already is;
    /// `Conflict("last_admin")`: it is the last active admin. The caller
    /// ends the account's sessions.
    async fn set_deactivated(&self, user: UserId, deactivated: bool, by: UserId)
        -> Result<Account>;
    /// Records an action the store did not do itself (a kick or a ban with
    /// server powers, which the api checks before the store commits it).
    async fn record_audit(&self, action: AuditAction, entry: NewAudit) -> Result<()>;
    /// The audit log, newest first, before the entry `before`.
    async fn audit_log(&self, before: Option<AuditId>, limit: u32) -> Result<Vec<AuditEntry>>;
    /// Files a report. `NotFound`: no such message in that room, or no
    /// such user; `NotMember`: the reporter is not in the message's room;
    /// `Conflict("report")`: the reporter has one open on that target.
    async fn file_report(&self, new: NewReport) -> Result<Report>;
    /// Open (`resolved` false) or resolved reports, newest first, before
    /// the report `before`.
    async fn reports(
        &self,
        resolved: bool,
        before: Option<ReportId>,
        limit: u32,
    ) -> Result<Vec<Report>>;
    /// Resolves an open report with a note. `by` must be an active admin
    /// or moderator (`NotAllowed`); `NotFound`: no such report;
    /// `Conflict("resolved")`: it already is.
    async fn resolve_report(&self, id: ReportId, by: UserId, note: String) -> Result<Report>;
}

/// What users change of their own account (the api checks who asks and
/// what they give; the store only writes it).
#[async_trait]
pub trait ProfileStore: Send + Sync {
    /// The user and their password hash, by id (a password change checks
    /// the current password like a login does).
    async fn account_credentials(&self, user: UserId) -> Result<Option<Credentials>>;
    /// Replaces the user's password hash; false if there is no such user.
    async fn set_password_hash(&self, user: UserId, hash: &str) -> Result<bool>;
    /// Changes the user's shown name (checked by the caller) and returns
    /// the user as they are now; `None` if there is no such user.
    async fn set_display_name(&self, user: UserId, name: &str) -> Result<Option<User>>;
    /// Everyone who shares at least one room with `user`, `user` included
    /// if a member anywhere: whom a change of their profile is told to.
    async fn room_mates(&self, user: UserId) -> Result<Vec<UserId>>;
    /// Every room `user` is a member of, listed or not (a DM not yet
    /// written in, or closed, is in no list but still a membership): what
    /// a deleted account leaves.
    async fn memberships(&self, user: UserId) -> Result<Vec<RoomId>>;
    /// Erases a deleted account's row, which stays so that what it sent
    /// still names a sender: its username becomes `deleted-<id>` (freed,
    /// and longer than any registration may take), its display name
    /// [`DELETED_USER`], its password hash one nothing verifies against,
    /// and it is marked deleted (searches skip it). Returns the user as
    /// others see it now; `None` if there is no such user or it was
    /// already erased. Its memberships and sessions are the caller's to
    /// end first.
    async fn erase_account(&self, user: UserId) -> Result<Option<User>>;
    /// Whether `user` is an account that was deleted.
    async fn is_erased(&self, user: UserId) -> Result<bool>;
    /// The version of the user's avatar, if they have one (and exist).
    async fn avatar(&self, user: UserId) -> Result<Option<String>>;
    /// Sets (or with `None` removes) the user's avatar version and returns
    /// the user as they are now; `None` if there is no such user or it was
    /// deleted. The caller stores the new image's bytes first and deletes
    /// the old ones after.
    async fn set_avatar(&self, user: UserId, version: Option<&str>) -> Result<Option<User>>;
}

/// The display name of a deleted account.
pub const DELETED_USER: &str = "deleted user";

/// Blocks between users (`blocks`): one-way, `blocker` no longer hears
/// from `blocked`. What a block refuses is decided by the callers.
#[async_trait]
pub trait BlockStore: Send + Sync {
    /// `blocker` blocks `blocked`: true if new, false if it already did;
    /// `NotFound` if either user does not exist. Blocking oneself is the
    /// caller's to refuse (the table refuses it too).
    async fn block(&self, blocker: UserId, blocked: UserId) -> Result<bool>;
    /// Lifts a block; false if there was none.
    async fn unblock(&self, blocker: UserId, blocked: UserId) -> Result<bool>;
    /// The users `blocker` blocks, the newest block first.
    async fn blocked_users(&self, blocker: UserId) -> Result<Vec<BlockedUser>>;
    /// The users who block `user` (whom `user` must not see online).
    async fn blockers_of(&self, user: UserId) -> Result<Vec<UserId>>;
    /// Whether `blocker` blocks `blocked`.
    async fn blocks(&self, blocker: UserId, blocked: UserId) -> Result<bool>;
    /// Whether either of `a` and `b` blocks the other.
    async fn blocked_between(&self, a: UserId, b: UserId) -> Result<bool>;
    /// Whether `sender` may write in `room` as far as consent goes: the
    /// callers (the api's and the gateways' sends) ask before appending to
    /// a room they do not know to be a group room.
    async fn direct_send(&self, room: RoomId, sender: UserId) -> Result<DirectSend>;
}

/// What consent says of a message to a room ([`BlockStore::direct_send`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirectSend {
    /// Not a direct room of the sender's: blocks do not stop messages in
    /// group rooms (the blocker's client collapses them).
    NotDirect,
    /// A direct room the sender may write in. Its members who do not list
    /// it yet (never written in, or closed) are named: once the message
    /// commits, it is listed for them and they are to be told
    /// (`room_added`).
    Open {
        /// The members to tell.
        unlisted: Vec<UserId>,
    },
    /// A direct room one of whose members blocks the other.
    Blocked,
    /// A DM request of the sender's that the other declined.
    Declined,
}

/// The consent of DMs (`dms`): requests from strangers accepted or
/// declined, and DMs closed. A DM (`RoomStore::direct_room`) is listed for
/// neither member until its first message; opened by someone who shared
/// no room with the other, it is a request of theirs.
#[async_trait]
pub trait DmStore: Send + Sync {
    /// `user` accepts the DM request in `room`: it becomes a plain DM,
    /// listed for them. `NotFound` if it is no DM of theirs,
    /// `Conflict("not_a_request")` if it is no request to them.
    async fn accept_dm(&self, room: RoomId, user: UserId) -> Result<()>;
    /// `user` declines the DM request in `room`: it is hidden from them
    /// and its sender's messages are refused until `user` accepts it or
    /// opens the DM themselves. Errors as [`DmStore::accept_dm`].
    async fn decline_dm(&self, room: RoomId, user: UserId) -> Result<()>;
    /// `user` closes their DM `room`: hidden from their list until the
    /// next message in it. `NotFound` if it is no DM of theirs.
    async fn close_dm(&self, room: RoomId, user: UserId) -> Result<()>;
}

/// A member's place in a room as moderation sees it (see
/// [`ModerationStore::standing`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    /// Their role.
    pub role: Role,
    /// Until when they are muted, if a mute is in force now.
    pub muted_until: Option<OffsetDateTime>,
}

/// Timeouts and slow mode. Each change is decided under the room's lock
/// on the roles as they are at the commit and recorded in the room's log
/// in the same transaction; the message append enforces both at its own
/// commit (`group_commit`), so a mute that committed first is seen and two
/// racing sends cannot both pass slow mode.
#[async_trait]
pub trait ModerationStore: Send + Sync {
    /// Mutes `user` in `room` until `until` (replacing a mute in force),
    /// recording `member_muted`. `NotMember` if `user` is not in the room;
    /// `NotAllowed` unless `by` is an owner or admin ranked above `user`.
    async fn mute(
        &self,
        room: RoomId,
        user: UserId,
        by: UserId,
        until: OffsetDateTime,
    ) -> Result<RoomEvent>;
    /// Lifts `user`'s mute before it ends, recording `member_unmuted`;
    /// `Conflict("not_muted")` if no mute is in force, and the refusals of
    /// [`mute`](Self::mute).
    async fn unmute(&self, room: RoomId, user: UserId, by: UserId) -> Result<RoomEvent>;
    /// `user`'s role and mute in `room`, if a member (one read: what a
    /// typing notice checks).
    async fn standing(&self, room: RoomId, user: UserId) -> Result<Option<Standing>>;
    /// Sets the room's slow mode (0 turns it off), recording
    /// `slow_mode_changed`; a change starts every member's interval afresh
    /// (their first message after it passes). When it is already that,
    /// nothing is written and no event comes back. `NotFound` without the room, `NotMember` if
    /// `by` is not in it, `NotAllowed` unless `by` is an owner or admin.
    async fn set_slow_mode(
        &self,
        room: RoomId,
        by: UserId,
        seconds: u32,
    ) -> Result<(Room, Option<RoomEvent>)>;
}

/// Invitations with consent (see `invites`). Each outcome deletes the
/// invitation and is an event in the room's log, in the same transaction,
/// under the room's lock.
#[async_trait]
pub trait InviteStore: Send + Sync {
    /// `by` (a member) invites `user`, recording `member_invited`:
    /// `NotFound` without the room or the user, `NotMember` if `by` is not
    /// in it, `Banned` if `user` is banned from it, `Conflict("member")` if
    /// they are in it, `Conflict("invited")` if already invited. Who may
    /// invite into which kind of room is the caller's rule.
    async fn create_invite(
        &self,
        room: RoomId,
        user: UserId,
        by: UserId,
    ) -> Result<(Invite, RoomEvent)>;
    /// `user`'s pending invitations, newest first (at most 100).
    async fn invites(&self, user: UserId) -> Result<Vec<Invite>>;
    /// The pending invitations into `room`, oldest first (at most 200).
    async fn room_invites(&self, room: RoomId) -> Result<Vec<Invite>>;
    /// An invitation by id, if pending.
    async fn invite(&self, id: InviteId) -> Result<Option<Invite>>;
    /// The invitee accepts: they join as a member (`member_joined`, sent
    /// by them). `NotFound` if it is not their pending invitation, `Banned`
    /// if they were banned since, `Conflict("member")` if they joined
    /// meanwhile (the invitation is then spent).
    async fn accept_invite(&self, id: InviteId, user: UserId) -> Result<RoomEvent>;
    /// The invitee declines (`invite_declined`); `NotFound` as above.
    async fn decline_invite(&self, id: InviteId, user: UserId) -> Result<RoomEvent>;
    /// The inviter (still a member) or an owner or admin withdraws the
    /// invitation of `user` (`invite_cancelled`): `NotFound` if there is
    /// none, `NotAllowed` for anyone else.
    async fn cancel_invite(
        &self,
        room: RoomId,
        user: UserId,
        by: UserId,
    ) -> Result<(InviteId, RoomEvent)>;
}

/// An invite link to create (see [`InviteLinkStore`]).
#[derive(Debug, Clone)]
pub struct NewInviteLink {
    /// The secret code (made by the caller: 128 random bits).
    pub code: String,
    /// When it stops working; `None`: never.
    pub expires_at: Option<OffsetDateTime>,
    /// How many joins it allows; `None`: no limit.
    pub max_uses: Option<u32>,
}

/// Invite links (see `invites`): whoever has the code joins the room.
#[async_trait]
pub trait InviteLinkStore: Send + Sync {
    /// Creates a link into `room`; `by` must be its owner or admin at the
    /// commit (`NotAllowed`; `NotMember`, `NotFound` without the room).
    async fn create_invite_link(
        &self,
        room: RoomId,
        by: UserId,
        link: NewInviteLink,
    ) -> Result<InviteLink>;
    /// The room's links, revoked ones included, newest first.
    async fn invite_links(&self, room: RoomId) -> Result<Vec<InviteLink>>;
    /// Revokes a link of `room`; false if it has none by that code (or it
    /// was revoked already).
    async fn revoke_invite_link(&self, room: RoomId, code: &str) -> Result<bool>;
    /// `user` joins by a link: `member_joined` (sent by them), and a use
    /// counted in the same transaction, guarded so that of two joins on
    /// the last use one wins. `NotFound` for an unknown code,
    /// `Conflict("link_revoked" | "link_expired" | "link_used_up")`,
    /// `Banned`, `Conflict("member")` if already in (no use is counted on
    /// a refusal). A pending invitation of theirs into the room is spent.
    async fn join_by_link(&self, code: &str, user: UserId) -> Result<RoomEvent>;
}

/// Calls (`calls`): each change of a call's state is decided at the commit
/// on the call as it is then (a conditional update: of two accepts, or a
/// hangup and the sweep, one wins), and its start and end are events in
/// the room's log committed with it, under the room's lock. Gateways keep
/// leases (`gateway_alive`), so a call whose party's gateway died is ended
/// by any other gateway's sweep.
#[async_trait]
pub trait CallStore: Send + Sync {
    /// Places a call to the other member of a DM, or of a private room of
    /// exactly two, recording `call_started`. If the callee is in another
    /// call (ringing or accepted) it ends at once as `busy`, recording
    /// `call_ended` too. Refusals: `NotFound` without the room,
    /// `NotMember` if the caller is not in it, `Conflict("not_direct")`
    /// for any other room, `Conflict("blocked")` if either blocks the
    /// other, `Conflict("dm_request")` in a DM request the callee has not
    /// accepted (or declined), `Conflict("in_call")` if the caller is in a
    /// call already. Returns the call and its events, in order.
    async fn place_call(&self, call: NewCall) -> Result<(Call, Vec<RoomEvent>)>;
    /// The callee takes the ringing call on `session` (of `gateway`):
    /// `NotFound` unless `user` is its callee, `Conflict("call_not_ringing")`
    /// once accepted (by another connection, say) or ended,
    /// `Conflict("in_call")` if they are in another accepted call.
    /// No event: the log records the start and the end.
    async fn accept_call(
        &self,
        id: CallId,
        user: UserId,
        session: ConnectionId,
        gateway: Uuid,
    ) -> Result<Call>;
    /// Ends a call as `end` says (see [`CallEnd`]), recording `call_ended`
    /// (with its duration once accepted). `NotFound` unless the user
    /// named is a party (any call, for `Unreachable`),
    /// `Conflict("call_ended")` if it has ended, `Conflict("call_not_ringing")`
    /// for a decline (or `Unreachable`) of a call no longer ringing.
    async fn end_call(&self, id: CallId, end: CallEnd) -> Result<(Call, RoomEvent)>;
    /// A call by id.
    async fn call(&self, id: CallId) -> Result<Option<Call>>;
    /// `user`'s calls that ring or are accepted, oldest first.
    async fn active_calls(&self, user: UserId) -> Result<Vec<Call>>;
    /// The connection `session` of `user` closed: each call it takes part
    /// in ends (`cancelled` when it was the caller's and ringing, `failed`
    /// once accepted). A callee's connection that only rang ends nothing.
    async fn connection_closed(
        &self,
        user: UserId,
        session: ConnectionId,
    ) -> Result<Vec<(Call, RoomEvent)>>;
    /// Renews `gateway`'s lease (at `now`): its calls live while it does.
    async fn gateway_alive(&self, gateway: Uuid) -> Result<()>;
    /// Gives `gateway`'s lease up (it is stopping): its calls end at the
    /// next sweep.
    async fn gateway_stopped(&self, gateway: Uuid) -> Result<()>;
    /// Ends what must end, each as if by its own `end_call` (so sweeps of
    /// several gateways at once end each call once): ringing calls placed
    /// more than `ring_timeout` ago (`missed`); calls with a party on a
    /// gateway whose lease was last renewed more than `lease` ago, or
    /// never (`failed`); calls of a party no longer in the room, or
    /// between users one of whom now blocks the other (`failed`). Leases
    /// silent for long are forgotten.
    async fn sweep_calls(
        &self,
        ring_timeout: std::time::Duration,
        lease: std::time::Duration,
    ) -> Result<Vec<(Call, RoomEvent)>>;
}

/// What the store can do now, for `/readyz`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// It answers and takes writes.
    Ready,
    /// It answers reads, but writes fail (a full or read-only disk): sends
    /// are refused as `unavailable` until one commits again (the log says
    /// why).
    RefusingWrites,
}

/// The whole store, as the binaries hold it.
#[async_trait]
pub trait Store:
    UserStore
    + SessionStore
    + RoomStore
    + RoomLog
    + MessageStore
    + AttachmentStore
    + SearchStore
    + AdminStore
    + ProfileStore
    + BlockStore
    + DmStore
    + ModerationStore
    + InviteStore
    + InviteLinkStore
    + CallStore
{
    /// Checks that the database answers (an error if it does not) and
    /// whether it takes writes: refusing from the moment a batch of
    /// appends fails to commit until one commits. With no appends tried
    /// for a couple of seconds it tries a write of its own (a one-row
    /// update), so the answer turns `Ready` once the disk has room again,
    /// traffic or not.
    async fn health(&self) -> Result<Health>;
}

/// Opens the store named by `url` (`postgres://…` or `sqlite://…`), creating
/// the SQLite file if needed, and applies pending migrations. Every call
/// of the store it returns is timed (`metered`).
pub async fn connect(url: &str, max_connections: u32) -> Result<Arc<dyn Store>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = PgStore::connect(url, max_connections).await?;
        Ok(Arc::new(metered::Metered(store)))
    } else if let Some(path) = url.strip_prefix("sqlite://") {
        let store = SqliteStore::open(Path::new(path), max_connections).await?;
        Ok(Arc::new(metered::Metered(store)))
    } else {
        Err(Error::Config(format!(
            "DATABASE_URL: expected postgres://… or sqlite://…, got {url:?}"
        )))
    }
}
