//! SQL text and row types of what people do to messages (`messages`), in
//! the one dialect both databases read, like `rows`.
//!
//! The current state of a message is kept apart from the log: the log has
//! every edit, reaction and pin as an event (`room_events.target_seq` names
//! the message), and `message_state` has, only for messages that changed,
//! their text after the latest edit, their deletion and their pin, written
//! in the transaction of the change. A send writes nothing more; a timeline
//! page reads its events by key and joins the few state rows it has, so its
//! cost does not grow with the room's history of edits (a state computed
//! from the log at read time would read every edit of every message shown).

use std::collections::HashMap;

use sqlx::types::Json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::driver_error::corrupt;
use super::rows::EventRow;
use super::{Error, Result};
use crate::model::{
    EventBody, EventId, Pin, Reactions, ReplyPreview, RoomEvent, RoomId, TimelineItem, UserId,
    REPLY_PREVIEW_CHARS,
};

/// Allocates the change's seq (as `NEXT_SEQ`), which takes the room's lock
/// for the rest of the transaction, and says what kind of room it is: no
/// row, no room. A change refused later rolls the seq back with the rest.
pub(super) const NEXT_SEQ_AND_KIND: &str =
    "UPDATE rooms SET last_seq = last_seq + 1 WHERE id = $1 RETURNING last_seq, kind";

/// A room's head: read in a timeline's snapshot, and to tell a missing
/// room from a non-member.
pub(super) const ROOM_LAST_SEQ: &str = "SELECT last_seq FROM rooms WHERE id = $1";

/// The event a change names, with its state if it is a message that has
/// one. By id alone: the unique index is then the only way in, whatever the
/// planner believes of the room's size (given the room too, it read a big
/// room's whole log by the primary key when its statistics were stale).
/// The caller checks the room and the kind.
pub(super) const TARGET: &str = "SELECT e.room_id, e.seq, e.kind, e.sender, \
     s.deleted_at IS NOT NULL AS deleted, s.pinned_at IS NOT NULL AS pinned \
     FROM room_events e LEFT JOIN message_state s ON s.room_id = e.room_id AND s.seq = e.seq \
     WHERE e.id = $1";

/// An edit's text and mentions become the message's current ones.
pub(super) const EDIT_STATE: &str =
    "INSERT INTO message_state (room_id, seq, body, payload, edited_at) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (room_id, seq) DO UPDATE \
     SET body = excluded.body, payload = excluded.payload, edited_at = excluded.edited_at";

pub(super) const DELETE_MENTIONS: &str = "DELETE FROM mentions WHERE room_id = $1 AND seq = $2";

pub(super) const INSERT_MENTION: &str =
    "INSERT INTO mentions (room_id, seq, user_id) VALUES ($1, $2, $3)";

/// Erases a message's own event: its text and fields go, `$3` (the
/// tombstone's payload) stays.
pub(super) const ERASE_MESSAGE: &str =
    "UPDATE room_events SET body = NULL, payload = $3 WHERE room_id = $1 AND seq = $2";

/// Erases the events that carried a message's words or reactions: each
/// keeps its kind, seq and target (`$3` is the payload it keeps).
pub(super) const ERASE_CHANGES: &str = "UPDATE room_events SET body = NULL, payload = $3 \
     WHERE room_id = $1 AND target_seq = $2 \
     AND kind IN ('message_edited', 'reaction_added', 'reaction_removed')";

pub(super) const DELETE_REACTIONS: &str = "DELETE FROM reactions WHERE room_id = $1 AND seq = $2";

/// A deleted message's state: deleted, and nothing else of it kept.
pub(super) const DELETED_STATE: &str =
    "INSERT INTO message_state (room_id, seq, deleted_at) VALUES ($1, $2, $3) \
     ON CONFLICT (room_id, seq) DO UPDATE SET body = NULL, payload = NULL, edited_at = NULL, \
     deleted_at = excluded.deleted_at, pinned_at = NULL, pinned_by = NULL";

pub(super) const MESSAGE_EMOJI: &str =
    "SELECT DISTINCT emoji FROM reactions WHERE room_id = $1 AND seq = $2";

pub(super) const INSERT_REACTION: &str =
    "INSERT INTO reactions (room_id, seq, emoji, user_id, created_at) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (room_id, seq, emoji, user_id) DO NOTHING";

pub(super) const DELETE_REACTION: &str = "DELETE FROM reactions \
     WHERE room_id = $1 AND seq = $2 AND emoji = $3 AND user_id = $4";

pub(super) const PIN_COUNT: &str =
    "SELECT COUNT(*) FROM message_state WHERE room_id = $1 AND pinned_at IS NOT NULL";

/// Pins a message unless it is pinned already (then no row changes).
pub(super) const PIN: &str = "INSERT INTO message_state (room_id, seq, pinned_at, pinned_by) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (room_id, seq) DO UPDATE \
     SET pinned_at = excluded.pinned_at, pinned_by = excluded.pinned_by \
     WHERE message_state.pinned_at IS NULL";

pub(super) const UNPIN: &str = "UPDATE message_state SET pinned_at = NULL, pinned_by = NULL \
     WHERE room_id = $1 AND seq = $2 AND pinned_at IS NOT NULL";

/// The columns of a timeline entry: the event, and its message's state.
const TIMELINE_COLUMNS: &str = "SELECT e.room_id, e.seq, e.id, e.kind, e.sender, e.client_id, \
     e.body, e.payload, e.created_at, s.body AS current_body, s.payload AS current_payload, \
     s.edited_at, s.pinned_at, s.pinned_by \
     FROM room_events e LEFT JOIN message_state s ON s.room_id = e.room_id AND s.seq = e.seq";

/// Timeline entries after a cursor, oldest first: the events that are not
/// changes of a message.
pub(super) fn timeline_after() -> String {
    format!(
        "{TIMELINE_COLUMNS} WHERE e.room_id = $1 AND e.seq > $2 AND e.seq < $3 \
         AND e.target_seq IS NULL ORDER BY e.seq LIMIT $4"
    )
}

/// The newest timeline entries below a cursor, newest first.
pub(super) fn timeline_before() -> String {
    format!(
        "{TIMELINE_COLUMNS} WHERE e.room_id = $1 AND e.seq > $2 AND e.seq < $3 \
         AND e.target_seq IS NULL ORDER BY e.seq DESC LIMIT $4"
    )
}

/// A room's pinned messages, the latest pin first.
pub(super) fn pinned() -> String {
    format!(
        "{TIMELINE_COLUMNS} WHERE s.room_id = $1 AND s.pinned_at IS NOT NULL \
         ORDER BY s.pinned_at DESC, s.seq DESC"
    )
}

/// The reactions to some messages: per message and emoji, its first
/// users (by time), how many there are, and whether the reader is one of
/// them. A page reads its reactions' index entries once. `reactions_query`
/// fills in the reader, the room, the seqs and how many users to name.
pub(super) fn reactions_query<DB: sqlx::Database>(
    viewer: UserId,
    room: RoomId,
    seqs: &[i64],
    shown: usize,
) -> sqlx::QueryBuilder<'static, DB>
where
    Uuid: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let mut query = sqlx::QueryBuilder::new(
        "SELECT seq, emoji, user_id, count, me FROM ( \
         SELECT seq, emoji, user_id, \
         ROW_NUMBER() OVER (PARTITION BY seq, emoji ORDER BY created_at, user_id) AS n, \
         COUNT(*) OVER (PARTITION BY seq, emoji) AS count, \
         CAST(MAX(CASE WHEN user_id = ",
    );
    query.push_bind(viewer.0);
    query.push(
        " THEN 1 ELSE 0 END) OVER (PARTITION BY seq, emoji) AS BIGINT) AS me, \
         MIN(created_at) OVER (PARTITION BY seq, emoji) AS first \
         FROM reactions WHERE room_id = ",
    );
    query.push_bind(room.0);
    // The range keeps the read to the page's stretch of the primary key
    // whatever the statistics say (a list alone was filtered out of all
    // the room's reactions when they were stale).
    let (low, high) = (
        seqs.iter().copied().min().unwrap_or(0),
        seqs.iter().copied().max().unwrap_or(0),
    );
    query.push(" AND seq >= ");
    query.push_bind(low);
    query.push(" AND seq <= ");
    query.push_bind(high);
    query.push(" AND seq IN (");
    let mut list = query.separated(", ");
    for seq in seqs {
        list.push_bind(*seq);
    }
    query.push(")) r WHERE n <= ");
    query.push_bind(i64::try_from(shown).unwrap_or(i64::MAX));
    query.push(" ORDER BY seq, first, emoji, n");
    query
}

/// The start of the query for reply previews; the caller adds the list of
/// ids (and keeps the rows of its room: by id alone, as [`TARGET`]).
pub(super) const PREVIEWS_PREFIX: &str = "SELECT e.id, e.room_id, e.sender, e.body, \
     s.body AS current_body, s.deleted_at IS NOT NULL AS deleted \
     FROM room_events e LEFT JOIN message_state s ON s.room_id = e.room_id AND s.seq = e.seq \
     WHERE e.kind = 'message' AND ";

/// The start of the query for the members a text names; the caller adds
/// the room and the list of lowercased names.
pub(super) const MEMBERS_NAMED_PREFIX: &str =
    "SELECT u.id, lower(u.username) AS name FROM room_members m \
     JOIN users u ON u.id = m.user_id WHERE ";

/// The event a change names.
#[derive(sqlx::FromRow)]
pub(super) struct TargetRow {
    pub room_id: Uuid,
    pub seq: i64,
    pub kind: String,
    pub sender: Option<Uuid>,
    pub deleted: bool,
    pub pinned: bool,
}

/// The payload a tombstone keeps: for a message, only that it was deleted;
/// for a change of one, also which message.
pub(super) fn tombstone(target: Option<EventId>) -> Json<serde_json::Value> {
    Json(match target {
        Some(target) => serde_json::json!({ "target": target, "deleted": true }),
        None => serde_json::json!({ "deleted": true }),
    })
}

/// The payload of a message's current mentions, as an edit leaves them.
pub(super) fn mentions_payload(
    mentions: &[UserId],
    mentions_room: bool,
) -> Option<Json<serde_json::Value>> {
    if mentions.is_empty() && !mentions_room {
        return None;
    }
    Some(Json(
        serde_json::json!({ "mentions": mentions, "mentions_room": mentions_room }),
    ))
}

/// An answered message, for its preview.
#[derive(sqlx::FromRow)]
pub(super) struct PreviewRow {
    pub id: Uuid,
    pub room_id: Uuid,
    sender: Option<Uuid>,
    body: Option<String>,
    current_body: Option<String>,
    deleted: bool,
}

impl PreviewRow {
    /// What a reply shows of this message.
    pub(super) fn preview(self) -> ReplyPreview {
        let text = if self.deleted {
            String::new()
        } else {
            self.current_body.or(self.body).unwrap_or_default()
        };
        ReplyPreview {
            sender: self.sender.map(UserId),
            body: text.chars().take(REPLY_PREVIEW_CHARS).collect(),
            deleted: self.deleted,
        }
    }
}

/// A timeline entry: an event and, for a changed message, its state.
#[derive(sqlx::FromRow)]
pub(super) struct TimelineRow {
    #[sqlx(flatten)]
    event: EventRow,
    current_body: Option<String>,
    current_payload: Option<Json<serde_json::Value>>,
    edited_at: Option<OffsetDateTime>,
    pinned_at: Option<OffsetDateTime>,
    pinned_by: Option<Uuid>,
}

/// A changed message's current mentions (`message_state.payload`).
#[derive(Default, serde::Deserialize)]
struct CurrentMentions {
    #[serde(default)]
    mentions: Vec<UserId>,
    #[serde(default)]
    mentions_room: bool,
}

impl TryFrom<TimelineRow> for TimelineItem {
    type Error = Error;
    fn try_from(row: TimelineRow) -> Result<Self> {
        let mut event = RoomEvent::try_from(row.event)?;
        if let (
            Some(text),
            EventBody::Message {
                body,
                mentions,
                mentions_room,
                ..
            },
        ) = (row.current_body, &mut event.body)
        {
            // Edited: the latest edit's text and mentions (the reply stays
            // the original's).
            let current: CurrentMentions = match row.current_payload {
                Some(Json(value)) => serde_json::from_value(value)
                    .map_err(|e| corrupt("message_state.payload", &e.to_string()))?,
                None => CurrentMentions::default(),
            };
            *body = text;
            *mentions = current.mentions;
            *mentions_room = current.mentions_room;
        }
        Ok(TimelineItem {
            event,
            edited_at: row.edited_at,
            reactions: Vec::new(),
            pinned: row.pinned_at.map(|at| Pin {
                by: row.pinned_by.map(UserId),
                at,
            }),
        })
    }
}

/// One row of [`reactions_query`]: one of the first users of an emoji on a message.
#[derive(sqlx::FromRow)]
pub(super) struct ReactionRow {
    seq: i64,
    emoji: String,
    user_id: Uuid,
    count: i64,
    me: i64,
}

/// Puts each message's reactions on its timeline entry (`rows` in the
/// order of [`reactions_query`]).
pub(super) fn attach_reactions(items: &mut [TimelineItem], rows: Vec<ReactionRow>) {
    let mut by_seq: HashMap<i64, Vec<Reactions>> = HashMap::new();
    for row in rows {
        let reactions = by_seq.entry(row.seq).or_default();
        match reactions.last_mut() {
            Some(last) if last.emoji == row.emoji => last.users.push(UserId(row.user_id)),
            _ => reactions.push(Reactions {
                emoji: row.emoji,
                count: row.count,
                me: row.me != 0,
                users: vec![UserId(row.user_id)],
            }),
        }
    }
    for item in items {
        if let Some(reactions) = by_seq.remove(&item.event.seq) {
            item.reactions = reactions;
        }
    }
}
