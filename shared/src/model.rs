//! The domain model both binaries speak: identifiers, users, rooms, members
//! and the events of a room's log. Plain data, serialised the same way over
//! REST and (later) the WebSocket, so a history page and a live frame agree.
//!
//! Why it is long: it is the whole vocabulary of the wire and the store,
//! kept in one file so that what a client is sent is read in one place.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
        )]
        #[serde(transparent)]
        #[schema(value_type = String, format = Uuid)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new, time-ordered (UUID v7) identifier.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.parse().map(Self)
            }
        }
    };
}

id_type!(
    /// Identifies a user.
    UserId
);
id_type!(
    /// Identifies a room (public, private or direct).
    RoomId
);
id_type!(
    /// Identifies one event of a room's log, globally.
    EventId
);
id_type!(
    /// Identifies a pending invitation into a room.
    InviteId
);
id_type!(
    /// Identifies a login session (one refresh-token family).
    SessionId
);
id_type!(
    /// Identifies an uploaded file.
    AttachmentId
);
id_type!(
    /// Identifies a report of a message or a user.
    ReportId
);
id_type!(
    /// Identifies an entry of the audit log (time-ordered: the log's cursor).
    AuditId
);
id_type!(
    /// Identifies a call (see [`crate::calls`]).
    CallId
);
id_type!(
    /// Identifies one WebSocket connection, across every gateway: its
    /// `hello`'s `session_id`, and the party of a call it takes part in.
    ConnectionId
);

/// A registered person, as others see them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct User {
    /// Stable identifier.
    pub id: UserId,
    /// Unique (case-insensitively) login name.
    pub username: String,
    /// Name shown in the client.
    pub display_name: String,
    /// When the account was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Where their avatar is (`/v1/avatars/{id}/{version}`, on the api,
    /// for any `<img>`: the version is unguessable and changes with every
    /// new image), if they have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar: Option<String>,
}

impl User {
    /// The path of `user`'s avatar of `version`.
    pub fn avatar_path(user: UserId, version: &str) -> String {
        format!("/v1/avatars/{user}/{version}")
    }
}

/// Who may find and join a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RoomKind {
    /// Listed and joinable by anyone.
    Public,
    /// A group: members are invited.
    Private,
    /// A conversation between exactly two users.
    Direct,
}

impl RoomKind {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Private => "private",
            Self::Direct => "direct",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "public" => Some(Self::Public),
            "private" => Some(Self::Private),
            "direct" => Some(Self::Direct),
            _ => None,
        }
    }
}

/// A member's standing in a room. Ordered: `Member < Admin < Owner`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads and writes.
    Member,
    /// Also moderates: invites, kicks and bans members, edits the room.
    Admin,
    /// Also deletes the room and appoints admins. One per room.
    Owner,
}

impl Role {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Member => "member",
            Self::Admin => "admin",
            Self::Owner => "owner",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "member" => Some(Self::Member),
            "admin" => Some(Self::Admin),
            "owner" => Some(Self::Owner),
            _ => None,
        }
    }
}

/// A room and the head of its log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Room {
    /// Stable identifier.
    pub id: RoomId,
    /// Public, private or direct.
    pub kind: RoomKind,
    /// Display name (for a direct room, empty: clients show the other user).
    pub name: String,
    /// Free-text topic.
    pub topic: String,
    /// Creator, if the room was not seeded by a migration.
    pub created_by: Option<UserId>,
    /// When the room was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Seq of the newest event in the room's log (0 when empty).
    pub last_seq: i64,
    /// Slow mode: the shortest interval in seconds between one member's
    /// messages (owners and admins exempt); 0 is off.
    #[serde(default)]
    pub slow_mode_seconds: u32,
}

/// A room as one of its members sees it in their room list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MyRoom {
    /// The room.
    #[serde(flatten)]
    pub room: Room,
    /// My role in it.
    pub role: Role,
    /// The newest seq I have marked read (sending moves it to my message).
    pub last_read_seq: i64,
    /// Other people's messages after `last_read_seq`, counted over at most
    /// the [`UNREAD_WINDOW`] events after it (so at most that many; when
    /// `last_seq - last_read_seq` is larger, show it as "N+").
    pub unread: i64,
    /// Of those, the ones that mention me or `@room` (as they read now:
    /// an edit that drops my name drops the count).
    pub unread_mentions: i64,
    /// A DM opened to me by someone who shared no room with me, which I
    /// have not accepted yet: listed among requests.
    #[serde(default)]
    pub request: bool,
    /// Until when I am muted here (absent when I am not).
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub muted_until: Option<OffsetDateTime>,
}

/// How many events after a read marker are looked at to count what is
/// unread: the count costs at most this many index entries per room.
pub const UNREAD_WINDOW: i64 = 1000;

/// A member of a room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Member {
    /// The member.
    pub user: User,
    /// Their role.
    pub role: Role,
    /// When they joined.
    #[serde(with = "time::serde::rfc3339")]
    pub joined_at: OffsetDateTime,
    /// The newest seq they have marked read.
    pub last_read_seq: i64,
    /// Until when they are muted here (absent when they are not).
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub muted_until: Option<OffsetDateTime>,
}

/// A pending invitation into a room, as its invitee sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Invite {
    /// Identifier (accept, decline).
    pub id: InviteId,
    /// The room.
    pub room: Room,
    /// Who is invited.
    pub user_id: UserId,
    /// Who is invited, as a room's moderators list them.
    pub invitee: User,
    /// Who invited them, if they still exist.
    pub invited_by: Option<User>,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// A link that lets whoever has its code join a room (`POST
/// /v1/invite-links/{code}/join`), until it expires, is used up or is
/// revoked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InviteLink {
    /// The secret: 128 random bits, URL-safe base64.
    pub code: String,
    /// The room it lets people into.
    pub room_id: RoomId,
    /// Who made it, if they still exist.
    pub created_by: Option<UserId>,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it stops working; absent: never.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub expires_at: Option<OffsetDateTime>,
    /// How many joins it allows; absent: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_uses: Option<u32>,
    /// How many joined by it.
    pub uses: u32,
    /// Set once revoked.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub revoked_at: Option<OffsetDateTime>,
}

/// A user barred from a room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Ban {
    /// Who is banned.
    pub user_id: UserId,
    /// Who banned them.
    pub banned_by: Option<UserId>,
    /// Why, as given by the moderator.
    pub reason: String,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// Why a member left a room, recorded in the `member_left` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LeaveReason {
    /// They left on their own.
    Left,
    /// A moderator removed them.
    Kicked,
    /// A moderator banned them.
    Banned,
}

/// What happened, per event kind. The tag is the event's `type`, which is
/// also the WebSocket frame type that carries it live.
///
/// Everything done to a message after it is sent (an edit, a deletion, a
/// reaction, a pin) is an event of its own that names the message by its
/// id in `target`: the log only grows, and a client that was away learns
/// of it through `sync` like of anything else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventBody {
    /// A chat message.
    Message {
        /// The text, as the sender wrote it (render as text, never HTML);
        /// empty once deleted.
        #[serde(default)]
        body: String,
        /// The message of the same room this one answers.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply_to: Option<EventId>,
        /// The answered message as it is when this event is read (not
        /// stored with the reply, so erasing the original erases it here).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply_preview: Option<ReplyPreview>,
        /// Members mentioned by `@username`, as resolved at the commit.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        mentions: Vec<UserId>,
        /// `@room` by an owner or admin: every member is mentioned.
        #[serde(default, skip_serializing_if = "is_false")]
        mentions_room: bool,
        /// Erased: a tombstone that keeps its seq, id, sender and time.
        #[serde(default, skip_serializing_if = "is_false")]
        deleted: bool,
        /// The files it carries, as they were when it was sent (gone with
        /// the message when it is deleted).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        attachments: Vec<Attachment>,
    },
    /// The sender changed a message's text.
    MessageEdited {
        /// The message.
        target: EventId,
        /// Its new text; empty once the message is deleted.
        #[serde(default)]
        body: String,
        /// Members the new text mentions.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        mentions: Vec<UserId>,
        /// Whether the new text mentions `@room`.
        #[serde(default, skip_serializing_if = "is_false")]
        mentions_room: bool,
        /// The message has since been deleted, and this edit erased.
        #[serde(default, skip_serializing_if = "is_false")]
        deleted: bool,
    },
    /// A message was deleted (erased); `sender` is who deleted it.
    MessageDeleted {
        /// The message.
        target: EventId,
    },
    /// `sender` reacted to a message.
    ReactionAdded {
        /// The message.
        target: EventId,
        /// One emoji; empty once the message is deleted.
        #[serde(default)]
        emoji: String,
        /// The message has since been deleted, and this reaction erased.
        #[serde(default, skip_serializing_if = "is_false")]
        deleted: bool,
    },
    /// `sender` took a reaction back.
    ReactionRemoved {
        /// The message.
        target: EventId,
        /// The emoji; empty once the message is deleted.
        #[serde(default)]
        emoji: String,
        /// The message has since been deleted, and this reaction erased.
        #[serde(default, skip_serializing_if = "is_false")]
        deleted: bool,
    },
    /// An owner or admin pinned a message.
    MessagePinned {
        /// The message.
        target: EventId,
    },
    /// An owner or admin unpinned a message.
    MessageUnpinned {
        /// The message.
        target: EventId,
    },
    /// Someone joined or was added; `sender` is who added them.
    MemberJoined {
        /// Who joined.
        user: UserId,
    },
    /// Someone left or was removed; `sender` is who removed them.
    MemberLeft {
        /// Who left.
        user: UserId,
        /// Why.
        reason: LeaveReason,
    },
    /// A member's role changed.
    RoleChanged {
        /// Whose role.
        user: UserId,
        /// The new role.
        role: Role,
    },
    /// The room's name or topic changed.
    RoomUpdated {
        /// The new name.
        name: String,
        /// The new topic.
        topic: String,
    },
    /// An owner or admin (`sender`) muted a member until a time: until
    /// then they may not send, react, edit or type here.
    MemberMuted {
        /// Who is muted.
        user: UserId,
        /// When the mute ends by itself.
        #[serde(with = "time::serde::rfc3339")]
        until: OffsetDateTime,
    },
    /// An owner or admin (`sender`) lifted a member's mute early.
    MemberUnmuted {
        /// Who may speak again.
        user: UserId,
    },
    /// An owner or admin (`sender`) changed the room's slow mode.
    SlowModeChanged {
        /// The shortest interval between one member's messages; 0 is off.
        seconds: u32,
    },
    /// `sender` invited someone; they join once they accept
    /// (`member_joined`).
    MemberInvited {
        /// Who is invited.
        user: UserId,
    },
    /// The invitee (`sender`) declined their invitation.
    InviteDeclined {
        /// Who declined.
        user: UserId,
    },
    /// The inviter or an owner or admin (`sender`) withdrew an invitation.
    InviteCancelled {
        /// Who was invited.
        user: UserId,
    },
    /// `sender` (the caller) placed a call; it rings until accepted,
    /// declined or missed (see [`crate::calls`]).
    CallStarted {
        /// The call.
        call_id: CallId,
        /// Who called (the sender).
        caller: UserId,
        /// Who was called.
        callee: UserId,
        /// With video, or voice only.
        video: bool,
    },
    /// A call ended; `sender` is the party who ended it (the caller when
    /// the server did: missed, failed).
    CallEnded {
        /// The call.
        call_id: CallId,
        /// Who called.
        caller: UserId,
        /// Who was called.
        callee: UserId,
        /// Why it ended.
        reason: crate::calls::CallEndReason,
        /// How long it lasted from its accept, in whole seconds; absent
        /// when it was never accepted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        duration_secs: Option<u64>,
    },
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl EventBody {
    /// A plain message: no reply, no mentions yet.
    pub fn message(body: impl Into<String>) -> Self {
        Self::Message {
            body: body.into(),
            reply_to: None,
            reply_preview: None,
            mentions: Vec::new(),
            mentions_room: false,
            deleted: false,
            attachments: Vec::new(),
        }
    }

    /// The `kind` column value for this event.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Message { .. } => "message",
            Self::MessageEdited { .. } => "message_edited",
            Self::MessageDeleted { .. } => "message_deleted",
            Self::ReactionAdded { .. } => "reaction_added",
            Self::ReactionRemoved { .. } => "reaction_removed",
            Self::MessagePinned { .. } => "message_pinned",
            Self::MessageUnpinned { .. } => "message_unpinned",
            Self::MemberJoined { .. } => "member_joined",
            Self::MemberLeft { .. } => "member_left",
            Self::RoleChanged { .. } => "role_changed",
            Self::RoomUpdated { .. } => "room_updated",
            Self::MemberMuted { .. } => "member_muted",
            Self::MemberUnmuted { .. } => "member_unmuted",
            Self::SlowModeChanged { .. } => "slow_mode_changed",
            Self::MemberInvited { .. } => "member_invited",
            Self::InviteDeclined { .. } => "invite_declined",
            Self::InviteCancelled { .. } => "invite_cancelled",
            Self::CallStarted { .. } => "call_started",
            Self::CallEnded { .. } => "call_ended",
        }
    }

    /// The message this event acts on, for the kinds that act on one.
    pub fn target(&self) -> Option<EventId> {
        match self {
            Self::MessageEdited { target, .. }
            | Self::MessageDeleted { target }
            | Self::ReactionAdded { target, .. }
            | Self::ReactionRemoved { target, .. }
            | Self::MessagePinned { target }
            | Self::MessageUnpinned { target } => Some(*target),
            _ => None,
        }
    }
}

/// A file a message carries. Its bytes are fetched through a short-lived
/// link (`GET /v1/attachments/{id}`), never from this description.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Attachment {
    /// Identifier.
    pub id: AttachmentId,
    /// The file's name as uploaded (no path).
    pub name: String,
    /// Its type, as read from its bytes.
    pub content_type: String,
    /// Its size in bytes.
    pub size: u64,
    /// For an image: its width in pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// For an image: its height in pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// Whether a thumbnail was made (images only).
    #[serde(default, skip_serializing_if = "is_false")]
    pub thumbnail: bool,
}

/// The most files one message carries.
pub const MAX_ATTACHMENTS: usize = 10;

/// What a reply shows of the message it answers, as that message is now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReplyPreview {
    /// Who wrote the answered message.
    pub sender: Option<UserId>,
    /// Its current text, cut to [`REPLY_PREVIEW_CHARS`] characters; empty
    /// when it was deleted.
    pub body: String,
    /// The answered message was deleted.
    #[serde(default, skip_serializing_if = "is_false")]
    pub deleted: bool,
}

/// The longest reply preview, in characters.
pub const REPLY_PREVIEW_CHARS: usize = 100;

/// One entry of a room's log. Its `(room_id, seq)` never changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RoomEvent {
    /// The room.
    pub room_id: RoomId,
    /// Position in the room's gap-free sequence, from 1.
    pub seq: i64,
    /// Globally unique id.
    pub id: EventId,
    /// Who caused it (None only for events with no human author).
    pub sender: Option<UserId>,
    /// When it was committed.
    #[serde(with = "time::serde::rfc3339")]
    pub ts: OffsetDateTime,
    /// The sender's idempotency key, for messages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// What happened.
    #[serde(flatten)]
    pub body: EventBody,
}

/// A message as it is now, for clients that scroll rather than replay:
/// one entry of a room's timeline (`GET /v1/rooms/{id}/timeline`). Every
/// event of the log that is not about a message appears as it is; a
/// message appears with its edits applied (a deleted one as its tombstone),
/// its reactions counted and its pin; the events that changed it do not
/// appear.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TimelineItem {
    /// The event; for a message, its current text and mentions.
    #[serde(flatten)]
    pub event: RoomEvent,
    /// When the message was last edited.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub edited_at: Option<OffsetDateTime>,
    /// Its reactions, one entry per emoji, in the order they were first
    /// given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reactions: Vec<Reactions>,
    /// Whether, and by whom, it is pinned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned: Option<Pin>,
}

/// The reactions of one emoji to one message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Reactions {
    /// The emoji.
    pub emoji: String,
    /// How many people gave it.
    pub count: i64,
    /// Whether the reader is one of them.
    pub me: bool,
    /// The first [`REACTION_USERS_SHOWN`] of them, earliest first.
    pub users: Vec<UserId>,
}

/// How many reacting users a timeline names per emoji.
pub const REACTION_USERS_SHOWN: usize = 3;

/// A message's pin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Pin {
    /// Who pinned it.
    pub by: Option<UserId>,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// Checks a sender's idempotency key: 1–64 visible ASCII characters. The
/// api and the gateway both send through this, so the rule is one.
pub fn check_client_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("client_id: 1 to 64 visible ASCII characters".into());
    }
    Ok(())
}

/// Checks a message text: 1 to `max` characters, at least one of them
/// visible (not only whitespace or zero-width characters), and no control
/// characters but tab, line feed and carriage return (no NUL, which
/// PostgreSQL cannot store, no terminal escapes, no bell). The text is kept
/// as written.
pub fn check_message_body(body: &str, max: usize) -> Result<(), String> {
    let allowed = |c: char| !c.is_control() || matches!(c, '\t' | '\n' | '\r');
    if !body.chars().any(is_visible) || body.chars().count() > max || !body.chars().all(allowed) {
        return Err(format!(
            "body: 1 to {max} characters with at least one visible, no control characters \
             but tab and line breaks"
        ));
    }
    Ok(())
}

/// Checks a message to send: its text as [`check_message_body`], except
/// that a message carrying files may have none; at most
/// [`MAX_ATTACHMENTS`] files, none named twice.
pub fn check_message_content(
    body: &str,
    attachments: &[AttachmentId],
    max: usize,
) -> Result<(), String> {
    if attachments.len() > MAX_ATTACHMENTS {
        return Err(format!("attachments: at most {MAX_ATTACHMENTS}"));
    }
    let distinct: std::collections::HashSet<_> = attachments.iter().collect();
    if distinct.len() != attachments.len() {
        return Err("attachments: each at most once".into());
    }
    if body.is_empty() && !attachments.is_empty() {
        return Ok(());
    }
    check_message_body(body, max)
}

/// Whether a character shows: not whitespace, not a control, and not one
/// of the format characters that render as nothing (zero-width spaces and
/// joiners, bidirectional marks and overrides, variation selectors, the
/// soft hyphen, Hangul and Braille blanks).
pub fn is_visible(c: char) -> bool {
    !(c.is_whitespace()
        || c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{034F}'
                | '\u{061C}'
                | '\u{115F}'
                | '\u{1160}'
                | '\u{17B4}'
                | '\u{17B5}'
                | '\u{180B}'..='\u{180F}'
                | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{206F}'
                | '\u{2800}'
                | '\u{3164}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{FEFF}'
                | '\u{FFA0}'
        ))
}

#[cfg(test)]
mod tests {
    use super::{check_message_body, check_message_content, AttachmentId, MAX_ATTACHMENTS};

    #[test]
    fn a_body_needs_a_visible_character_and_no_control_characters() {
        for refused in [
            "",
            "   ",
            "\u{200b}\u{200b}",
            "\u{200d}\u{2060}\u{feff}",
            "\u{202e}",
            "\u{3164}",
            "red \u{1b}[31malert",
            "ding\u{7}",
            "nul\u{0}",
            "c1\u{85}",
        ] {
            assert!(check_message_body(refused, 100).is_err(), "{refused:?}");
        }
        for accepted in [
            "hi",
            "two\nlines\r\nand\ta tab",
            "👩\u{200d}💻",
            "\u{200b}x",
            "عربي",
        ] {
            assert!(check_message_body(accepted, 100).is_ok(), "{accepted:?}");
        }
        assert!(check_message_body(&"x".repeat(101), 100).is_err());
    }

    #[test]
    fn a_message_with_files_may_have_no_text_but_no_repeated_or_extra_files() {
        let one = [AttachmentId::new()];
        assert!(check_message_content("", &one, 100).is_ok());
        assert!(check_message_content("caption", &one, 100).is_ok());
        assert!(check_message_content("", &[], 100).is_err());
        assert!(
            check_message_content("   ", &one, 100).is_err(),
            "blank text"
        );
        assert!(check_message_content("", &[one[0], one[0]], 100).is_err());
        let many: Vec<_> = (0..=MAX_ATTACHMENTS).map(|_| AttachmentId::new()).collect();
        assert!(check_message_content("", &many, 100).is_err());
        assert!(check_message_content("", &many[1..], 100).is_ok());
    }
}

/// A user I block, for my list of blocked users.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BlockedUser {
    /// Whom I block.
    pub user: User,
    /// Since when.
    #[serde(with = "time::serde::rfc3339")]
    pub blocked_at: OffsetDateTime,
}
