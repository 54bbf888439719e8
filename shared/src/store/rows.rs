//! SQL text and row types shared by both adapters. PostgreSQL and SQLite
//! agree on everything these statements use (`$n` parameters, `RETURNING`,
//! `ON CONFLICT`, `lower`, `LIKE … ESCAPE`), and every value is bound from
//! Rust (ids, times), so one text serves both; what differs between the
//! adapters is how they hold connections and transactions.

use sqlx::types::Json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::driver_error::corrupt;
use super::{Error, Result, Session};
use crate::model::{
    Ban, EventBody, EventId, LeaveReason, Member, MyRoom, Role, Room, RoomEvent, RoomId, RoomKind,
    SessionId, User, UserId,
};

/// The write `Store::health` tries while writes are failing.
pub(super) const PROBE_WRITE: &str = "UPDATE write_probe SET checked_at = $1 WHERE id = 1";

pub(super) const INSERT_USER: &str =
    "INSERT INTO users (id, username, display_name, password_hash, created_at) \
     VALUES ($1, $2, $3, $4, $5)";

pub(super) const CREDENTIALS: &str =
    "SELECT id, username, display_name, created_at, password_hash \
     FROM users WHERE lower(username) = lower($1)";

pub(super) const USER_BY_ID: &str =
    "SELECT id, username, display_name, created_at FROM users WHERE id = $1";

pub(super) const SEARCH_USERS: &str = "SELECT id, username, display_name, created_at FROM users \
     WHERE lower(username) LIKE $1 ESCAPE '\\' OR lower(display_name) LIKE $1 ESCAPE '\\' \
     ORDER BY lower(username) LIMIT $2";

pub(super) const INSERT_SESSION: &str = "INSERT INTO sessions \
     (id, user_id, user_agent, created_at, last_used_at, expires_at) \
     VALUES ($1, $2, $3, $4, $4, $5)";

pub(super) const INSERT_REFRESH_TOKEN: &str =
    "INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at) \
     VALUES ($1, $2, $3, $4)";

/// Spends a token: only one caller can flip `used_at` from NULL.
pub(super) const SPEND_REFRESH_TOKEN: &str = "UPDATE refresh_tokens SET used_at = $2 \
     WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING session_id";

pub(super) const REFRESH_TOKEN_STATE: &str =
    "SELECT session_id, used_at FROM refresh_tokens WHERE token_hash = $1";

pub(super) const TOUCH_SESSION: &str = "UPDATE sessions SET last_used_at = $2, expires_at = $3 \
     WHERE id = $1 AND revoked_at IS NULL";

pub(super) const REVOKE_SESSION: &str =
    "UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL";

pub(super) const REVOKE_USER_SESSION: &str =
    "UPDATE sessions SET revoked_at = $3 WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL";

pub(super) const SESSION_BY_ID: &str = "SELECT id, user_id, user_agent, created_at, last_used_at, \
     expires_at, revoked_at FROM sessions WHERE id = $1";

pub(super) const ACTIVE_SESSIONS: &str =
    "SELECT id, user_id, user_agent, created_at, last_used_at, \
     expires_at, revoked_at FROM sessions \
     WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2 \
     ORDER BY created_at DESC";

pub(super) const INSERT_ROOM: &str = "INSERT INTO rooms (id, kind, name, topic, created_by, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6) RETURNING id, kind, name, topic, created_by, created_at, last_seq";

pub(super) const ROOM_BY_ID: &str =
    "SELECT id, kind, name, topic, created_by, created_at, last_seq FROM rooms WHERE id = $1";

pub(super) const UPDATE_ROOM: &str = "UPDATE rooms SET name = $2, topic = $3 WHERE id = $1 \
     RETURNING id, kind, name, topic, created_by, created_at, last_seq";

pub(super) const DELETE_ROOM: &str = "DELETE FROM rooms WHERE id = $1";

/// With each room, the other people's messages after my marker, counted
/// over the `UNREAD_WINDOW` ($2) events after it: a range of the primary
/// key, however long the room's log; and those of them that mention me or
/// the room, a range of the mentions index.
pub(super) const MY_ROOMS: &str =
    "SELECT r.id, r.kind, r.name, r.topic, r.created_by, r.created_at, \
     r.last_seq, m.role, m.last_read_seq, \
     (SELECT COUNT(*) FROM room_events e WHERE e.room_id = r.id \
         AND e.seq > m.last_read_seq AND e.seq <= m.last_read_seq + $2 \
         AND e.kind = 'message' AND e.sender <> m.user_id) AS unread, \
     (SELECT COUNT(DISTINCT n.seq) FROM mentions n WHERE n.room_id = r.id \
         AND (n.user_id = m.user_id OR n.user_id IS NULL) \
         AND n.seq > m.last_read_seq AND n.seq <= m.last_read_seq + $2) AS unread_mentions \
     FROM room_members m JOIN rooms r ON r.id = m.room_id \
     WHERE m.user_id = $1 ORDER BY r.kind, r.name, r.id";

/// Checks that the sender is a member and moves their read marker to the
/// seq their message is about to get (the room's next: a sender has read
/// their room that far), in one statement: a row back (their role) means a
/// member.
/// Asked by a message append on SQLite (`group_commit`), whose single
/// writer connection allocates that seq next in the same transaction, and
/// means no membership change can land before the append's commit.
/// PostgreSQL asks the same inside `group_commit`'s `CHECK`, after taking
/// the rooms' row locks: a statement that waited for a lock still sees the
/// data as of before the wait, so the check must be a statement of its own
/// after it; every membership change holds that lock until it commits
/// (`lock_room` in the adapter), so a kick and a send cannot interleave.
pub(super) const MARK_SENDER: &str = "UPDATE room_members \
     SET last_read_seq = (SELECT last_seq + 1 FROM rooms WHERE id = $1) \
     WHERE room_id = $1 AND user_id = $2 RETURNING role";

pub(super) const PUBLIC_ROOMS: &str =
    "SELECT id, kind, name, topic, created_by, created_at, last_seq \
     FROM rooms WHERE kind = 'public' ORDER BY name, id";

pub(super) const DIRECT_ROOM_ID: &str =
    "SELECT room_id FROM direct_rooms WHERE user_low = $1 AND user_high = $2";

pub(super) const INSERT_DIRECT_ROOM: &str =
    "INSERT INTO direct_rooms (user_low, user_high, room_id) VALUES ($1, $2, $3)";

pub(super) const ROLE: &str = "SELECT role FROM room_members WHERE room_id = $1 AND user_id = $2";

pub(super) const MEMBERS: &str = "SELECT u.id, u.username, u.display_name, u.created_at, \
     m.role, m.joined_at, m.last_read_seq \
     FROM room_members m JOIN users u ON u.id = m.user_id \
     WHERE m.room_id = $1 ORDER BY m.joined_at, u.id";

pub(super) const SHARE_A_ROOM: &str = "SELECT 1 FROM room_members a \
     JOIN room_members b ON b.room_id = a.room_id \
     WHERE a.user_id = $1 AND b.user_id = $2 LIMIT 1";

/// Start of the head query; the adapter appends `(<ids>)`.
pub(super) const HEADS_PREFIX: &str = "SELECT id, last_seq FROM rooms WHERE id IN ";

pub(super) const IS_BANNED: &str = "SELECT 1 FROM room_bans WHERE room_id = $1 AND user_id = $2";

pub(super) const INSERT_MEMBER: &str =
    "INSERT INTO room_members (room_id, user_id, role, joined_at) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (room_id, user_id) DO NOTHING";

pub(super) const DELETE_MEMBER: &str =
    "DELETE FROM room_members WHERE room_id = $1 AND user_id = $2";

pub(super) const SET_ROLE: &str =
    "UPDATE room_members SET role = $3 WHERE room_id = $1 AND user_id = $2";

pub(super) const ROOM_OWNER: &str =
    "SELECT user_id FROM room_members WHERE room_id = $1 AND role = 'owner'";

pub(super) const INSERT_BAN: &str =
    "INSERT INTO room_bans (room_id, user_id, banned_by, reason, created_at) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (room_id, user_id) DO NOTHING";

pub(super) const DELETE_BAN: &str = "DELETE FROM room_bans WHERE room_id = $1 AND user_id = $2";

pub(super) const BANS: &str = "SELECT user_id, banned_by, reason, created_at FROM room_bans \
     WHERE room_id = $1 ORDER BY created_at, user_id";

/// Allocates the next seq of a room. The row lock this takes (PostgreSQL) or
/// the single writer (SQLite) serialises appends per room, and a rollback
/// undoes the bump, so seqs are gap-free and commit in order.
pub(super) const NEXT_SEQ: &str =
    "UPDATE rooms SET last_seq = last_seq + 1 WHERE id = $1 RETURNING last_seq";

/// Locks a room's row without changing it; see `lock_room` in the adapter.
pub(super) const LOCK_ROOM: &str = "UPDATE rooms SET last_seq = last_seq WHERE id = $1";

pub(super) const INSERT_EVENT: &str = "INSERT INTO room_events \
     (room_id, seq, id, kind, sender, client_id, body, payload, created_at, target_seq) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
     ON CONFLICT (room_id, sender, client_id) DO NOTHING";

pub(super) const EVENT_BY_CLIENT_ID: &str =
    "SELECT room_id, seq, id, kind, sender, client_id, body, \
     payload, created_at FROM room_events WHERE room_id = $1 AND sender = $2 AND client_id = $3";

/// Events after a cursor, oldest first.
pub(super) const EVENTS_AFTER: &str = "SELECT room_id, seq, id, kind, sender, client_id, body, \
     payload, created_at FROM room_events WHERE room_id = $1 AND seq > $2 AND seq < $3 \
     ORDER BY seq LIMIT $4";

/// The newest events below a cursor, newest first (the caller reverses).
pub(super) const EVENTS_BEFORE: &str = "SELECT room_id, seq, id, kind, sender, client_id, body, \
     payload, created_at FROM room_events WHERE room_id = $1 AND seq > $2 AND seq < $3 \
     ORDER BY seq DESC LIMIT $4";

/// Read markers only move forward and never past the room's head. The guard
/// compares the stored marker with the clamped value, not with `$3`: on
/// PostgreSQL an update that waited for a concurrent one rechecks its WHERE
/// against the new row but keeps its older view of `last_seq`, and a guard
/// on `$3` would let it write a smaller marker over a larger one.
pub(super) const MARK_READ: &str = "UPDATE room_members SET last_read_seq = \
     (SELECT CASE WHEN $3 > r.last_seq THEN r.last_seq ELSE $3 END FROM rooms r WHERE r.id = $1) \
     WHERE room_id = $1 AND user_id = $2 AND last_read_seq < \
     (SELECT CASE WHEN $3 > r.last_seq THEN r.last_seq ELSE $3 END FROM rooms r WHERE r.id = $1)";

pub(super) const READ_MARKER: &str =
    "SELECT last_read_seq FROM room_members WHERE room_id = $1 AND user_id = $2";

/// Escapes `%`, `_` and `\` so user text matches literally inside `LIKE`.
pub(super) fn like_pattern(query: &str) -> String {
    let mut pattern = String::with_capacity(query.len() + 2);
    pattern.push('%');
    for c in query.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// A `users` row.
#[derive(sqlx::FromRow)]
pub(super) struct UserRow {
    id: Uuid,
    username: String,
    display_name: String,
    created_at: OffsetDateTime,
}

impl From<UserRow> for User {
    fn from(row: UserRow) -> Self {
        User {
            id: UserId(row.id),
            username: row.username,
            display_name: row.display_name,
            created_at: row.created_at,
        }
    }
}

/// A `users` row with its password hash.
#[derive(sqlx::FromRow)]
pub(super) struct CredentialsRow {
    #[sqlx(flatten)]
    pub user: UserRow,
    pub password_hash: String,
}

/// A `sessions` row.
#[derive(sqlx::FromRow)]
pub(super) struct SessionRow {
    id: Uuid,
    user_id: Uuid,
    user_agent: Option<String>,
    created_at: OffsetDateTime,
    last_used_at: OffsetDateTime,
    expires_at: OffsetDateTime,
    revoked_at: Option<OffsetDateTime>,
}

impl From<SessionRow> for Session {
    fn from(row: SessionRow) -> Self {
        Session {
            id: SessionId(row.id),
            user_id: UserId(row.user_id),
            user_agent: row.user_agent,
            created_at: row.created_at,
            last_used_at: row.last_used_at,
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
        }
    }
}

/// The state of a presented refresh token that could not be spent.
#[derive(sqlx::FromRow)]
pub(super) struct TokenStateRow {
    pub session_id: Uuid,
    pub used_at: Option<OffsetDateTime>,
}

/// A `rooms` row.
#[derive(sqlx::FromRow)]
pub(super) struct RoomRow {
    id: Uuid,
    kind: String,
    name: String,
    topic: String,
    created_by: Option<Uuid>,
    created_at: OffsetDateTime,
    last_seq: i64,
}

impl TryFrom<RoomRow> for Room {
    type Error = Error;
    fn try_from(row: RoomRow) -> Result<Self> {
        Ok(Room {
            id: RoomId(row.id),
            kind: RoomKind::parse(&row.kind).ok_or_else(|| corrupt("rooms.kind", &row.kind))?,
            name: row.name,
            topic: row.topic,
            created_by: row.created_by.map(UserId),
            created_at: row.created_at,
            last_seq: row.last_seq,
        })
    }
}

/// A room with the caller's membership.
#[derive(sqlx::FromRow)]
pub(super) struct MyRoomRow {
    #[sqlx(flatten)]
    room: RoomRow,
    role: String,
    last_read_seq: i64,
    unread: i64,
    unread_mentions: i64,
}

impl TryFrom<MyRoomRow> for MyRoom {
    type Error = Error;
    fn try_from(row: MyRoomRow) -> Result<Self> {
        Ok(MyRoom {
            role: parse_role(&row.role)?,
            room: row.room.try_into()?,
            last_read_seq: row.last_read_seq,
            unread: row.unread,
            unread_mentions: row.unread_mentions,
        })
    }
}

/// A member with their user.
#[derive(sqlx::FromRow)]
pub(super) struct MemberRow {
    #[sqlx(flatten)]
    user: UserRow,
    role: String,
    joined_at: OffsetDateTime,
    last_read_seq: i64,
}

impl TryFrom<MemberRow> for Member {
    type Error = Error;
    fn try_from(row: MemberRow) -> Result<Self> {
        Ok(Member {
            role: parse_role(&row.role)?,
            user: row.user.into(),
            joined_at: row.joined_at,
            last_read_seq: row.last_read_seq,
        })
    }
}

/// A `room_bans` row.
#[derive(sqlx::FromRow)]
pub(super) struct BanRow {
    user_id: Uuid,
    banned_by: Option<Uuid>,
    reason: String,
    created_at: OffsetDateTime,
}

impl From<BanRow> for Ban {
    fn from(row: BanRow) -> Self {
        Ban {
            user_id: UserId(row.user_id),
            banned_by: row.banned_by.map(UserId),
            reason: row.reason,
            created_at: row.created_at,
        }
    }
}

/// A `room_events` row. Texts (a message's, an edit's) are kept in `body`,
/// the only column erasing a message has to clear of words; every other
/// field of the event is JSON in `payload` (none, for a plain message).
#[derive(sqlx::FromRow)]
pub(super) struct EventRow {
    room_id: Uuid,
    seq: i64,
    id: Uuid,
    kind: String,
    sender: Option<Uuid>,
    client_id: Option<String>,
    body: Option<String>,
    payload: Option<Json<serde_json::Value>>,
    created_at: OffsetDateTime,
}

impl TryFrom<EventRow> for RoomEvent {
    type Error = Error;
    fn try_from(row: EventRow) -> Result<Self> {
        let body = event_body(&row.kind, row.body, row.payload)?;
        Ok(RoomEvent {
            room_id: RoomId(row.room_id),
            seq: row.seq,
            id: EventId(row.id),
            sender: row.sender.map(UserId),
            ts: row.created_at,
            client_id: row.client_id,
            body,
        })
    }
}

/// An event body from its `kind`, `body` and `payload` columns.
pub(super) fn event_body(
    kind: &str,
    text: Option<String>,
    payload: Option<Json<serde_json::Value>>,
) -> Result<EventBody> {
    if let ("message", Some(text), None) = (kind, &text, &payload) {
        // The common case, without a round through JSON.
        return Ok(EventBody::message(text.as_str()));
    }
    // The payload is the event body less its tag and text; put them back
    // and let serde pick the variant.
    let mut fields = match payload {
        Some(Json(serde_json::Value::Object(fields))) => fields,
        None => serde_json::Map::new(),
        Some(_) => return Err(corrupt("room_events.payload", kind)),
    };
    fields.insert("type".into(), kind.into());
    if let Some(text) = text {
        fields.insert(text_field(kind).into(), text.into());
    }
    serde_json::from_value(fields.into()).map_err(|_| corrupt("room_events.payload", kind))
}

/// The field of an event kind that is its text, kept in the `body` column.
fn text_field(kind: &str) -> &'static str {
    match kind {
        "reaction_added" | "reaction_removed" => "emoji",
        _ => "body",
    }
}

/// The `body` and `payload` columns for an event body: its text (a
/// message's, an edit's, a reaction's emoji) apart, so erasing it is one
/// column; a preview is never stored (it is the answered message as read).
pub(super) fn event_columns(body: &EventBody) -> (Option<String>, Option<Json<serde_json::Value>>) {
    if let EventBody::Message {
        body,
        reply_to: None,
        mentions,
        mentions_room: false,
        deleted: false,
        ..
    } = body
    {
        if mentions.is_empty() {
            return (Some(body.clone()), None);
        }
    }
    let serde_json::Value::Object(mut fields) =
        serde_json::to_value(body).expect("event bodies serialise")
    else {
        unreachable!("an internally tagged enum serialises to an object");
    };
    let kind = body.kind();
    fields.remove("type");
    fields.remove("reply_preview");
    let text = match fields.remove(text_field(kind)) {
        Some(serde_json::Value::String(text)) if !text.is_empty() => Some(text),
        _ => None,
    };
    let payload = (!fields.is_empty()).then(|| Json(fields.into()));
    (text, payload)
}

pub(super) fn parse_role(s: &str) -> Result<Role> {
    Role::parse(s).ok_or_else(|| corrupt("room_members.role", s))
}

/// Maps a reason to what `member_left` records.
pub(super) fn left(user: UserId, reason: LeaveReason) -> EventBody {
    EventBody::MemberLeft { user, reason }
}
