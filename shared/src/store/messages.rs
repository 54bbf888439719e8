//! What people do to messages after they are sent: edits, deletions that
//! erase, reactions and pins, each an event of the room's log committed
//! with the message's new state, under the room's lock.
//!
//! The current state of a message is kept apart from the log: the log has
//! every edit, reaction and pin as an event (`room_events.target_seq` names
//! the message), and `message_state` has, only for messages that changed,
//! their text after the latest edit, their deletion and their pin, written
//! in the transaction of the change. A send writes nothing more; a timeline
//! page reads its events by key and joins the few state rows it has, so its
//! cost does not grow with the room's history of edits (a state computed
//! from the log at read time would read every edit of every message shown).

use async_trait::async_trait;
use serde_json::Value;
use sqlx::types::Json;
use sqlx::Transaction;
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Type};
use time::OffsetDateTime;
use uuid::Uuid;

use super::adapter::SqlStore;
use super::dialect::{now, Dialect, RowsAffected, Timestamp};
use super::log::{EventRow, EVENT_BY_CLIENT_ID, NEXT_SEQ_AND_KIND};
use super::references::INSERT_MENTION;
use super::timeline::{pinned, timeline_after, timeline_before};
use super::{Appended, Error, MessageChange, MessageStore, Page, Result, Timeline};
use crate::admin::{AuditAction, NewAudit};
use crate::model::{EventBody, EventId, Role, RoomEvent, RoomId, RoomKind, UserId};

/// The event a change names, with its state if it is a message that has
/// one. By id alone: the unique index is then the only way in, whatever the
/// planner believes of the room's size (given the room too, it read a big
/// room's whole log by the primary key when its statistics were stale).
/// The caller checks the room and the kind.
const TARGET: &str = "SELECT e.room_id, e.seq, e.kind, e.sender, \
     s.deleted_at IS NOT NULL AS deleted, s.pinned_at IS NOT NULL AS pinned \
     FROM room_events e LEFT JOIN message_state s ON s.room_id = e.room_id AND s.seq = e.seq \
     WHERE e.id = $1";

/// An edit's text and mentions become the message's current ones.
const EDIT_STATE: &str = "INSERT INTO message_state (room_id, seq, body, payload, edited_at) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (room_id, seq) DO UPDATE \
     SET body = excluded.body, payload = excluded.payload, edited_at = excluded.edited_at";

pub(super) const DELETE_MENTIONS: &str = "DELETE FROM mentions WHERE room_id = $1 AND seq = $2";

const MESSAGE_EMOJI: &str = "SELECT DISTINCT emoji FROM reactions WHERE room_id = $1 AND seq = $2";

const INSERT_REACTION: &str = "INSERT INTO reactions (room_id, seq, emoji, user_id, created_at) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (room_id, seq, emoji, user_id) DO NOTHING";

const DELETE_REACTION: &str = "DELETE FROM reactions \
     WHERE room_id = $1 AND seq = $2 AND emoji = $3 AND user_id = $4";

const PIN_COUNT: &str =
    "SELECT COUNT(*) FROM message_state WHERE room_id = $1 AND pinned_at IS NOT NULL";

/// Pins a message unless it is pinned already (then no row changes).
const PIN: &str = "INSERT INTO message_state (room_id, seq, pinned_at, pinned_by) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (room_id, seq) DO UPDATE \
     SET pinned_at = excluded.pinned_at, pinned_by = excluded.pinned_by \
     WHERE message_state.pinned_at IS NULL";

const UNPIN: &str = "UPDATE message_state SET pinned_at = NULL, pinned_by = NULL \
     WHERE room_id = $1 AND seq = $2 AND pinned_at IS NOT NULL";

impl<DB> SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'r> &'r str: ColumnIndex<DB::Row>,
    usize: ColumnIndex<DB::Row>,
    for<'q> Uuid: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Timestamp: Encode<'q, DB> + Type<DB>,
    for<'r> OffsetDateTime: Decode<'r, DB> + Type<DB>,
    for<'q> Json<Value>: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'r> bool: Decode<'r, DB> + Type<DB>,
    for<'q> Option<Uuid>: Encode<'q, DB>,
    for<'q> Option<i64>: Encode<'q, DB>,
    for<'q> Option<String>: Encode<'q, DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    for<'q> Option<Json<Value>>: Encode<'q, DB>,
{
    /// Records a change of a message in `tx` (see `change_message`),
    /// under the room's lock.
    async fn change_in(
        tx: &mut Transaction<'_, DB>,
        room: RoomId,
        actor: UserId,
        target: EventId,
        client_id: Option<&str>,
        change: MessageChange,
    ) -> Result<Appended> {
        let allocated: Option<(i64, String)> = sqlx::query_as(NEXT_SEQ_AND_KIND)
            .bind(room.0)
            .fetch_optional(&mut **tx)
            .await?;
        let Some((event_seq, kind)) = allocated else {
            return Err(Error::NotFound);
        };
        if let Some(client_id) = client_id {
            let existing: Option<EventRow> = sqlx::query_as(EVENT_BY_CLIENT_ID)
                .bind(room.0)
                .bind(actor.0)
                .bind(client_id)
                .fetch_optional(&mut **tx)
                .await?;
            if let Some(row) = existing {
                return Ok(Appended {
                    event: row.try_into()?,
                    created: false,
                });
            }
        }
        // The actor's role as it is at the commit, server roles included.
        let standing = SqlStore::standing(&mut **tx, room, actor).await?;
        let role = standing.effective().ok_or(Error::NotMember)?;
        // A muted member may not speak through an edit or a reaction
        // either; taking a reaction back, deleting their own message and
        // pins stay theirs.
        let muted_until = Self::standing_in(&mut **tx, room, actor)
            .await?
            .and_then(|member| member.muted_until);
        if let (Some(until), MessageChange::Edit { .. } | MessageChange::React { .. }) =
            (muted_until, &change)
        {
            return Err(Error::Muted(until));
        }
        // In a DM nobody moderates: either of the two may pin.
        let moderator = role >= Role::Admin || kind == RoomKind::Direct.as_str();
        let message: Option<TargetRow> = sqlx::query_as(TARGET)
            .bind(target.0)
            .bind(room.0)
            .fetch_optional(&mut **tx)
            .await?;
        let message = message
            .filter(|m| m.room_id == room.0 && m.kind == "message")
            .ok_or(Error::NotFound)?;
        if message.deleted {
            return Err(Error::Conflict("message_deleted"));
        }
        let seq = message.seq;
        let own = message.sender == Some(actor.0);
        let at = now();
        let body = match change {
            MessageChange::Edit { body } => {
                if !own {
                    return Err(Error::NotAllowed);
                }
                let mentioned = crate::message_text::mentions(&body);
                let mentions = Self::members_named(&mut **tx, room, &mentioned.names).await?;
                let mentions_room =
                    mentioned.room && role >= Role::Admin && kind != RoomKind::Direct.as_str();
                sqlx::query(EDIT_STATE)
                    .bind(room.0)
                    .bind(seq)
                    .bind(&body)
                    .bind(mentions_payload(&mentions, mentions_room))
                    .bind(Timestamp(at))
                    .execute(&mut **tx)
                    .await?;
                Self::set_mentions(tx, room, seq, &mentions, mentions_room).await?;
                EventBody::MessageEdited {
                    target,
                    body,
                    mentions,
                    mentions_room,
                    deleted: false,
                }
            }
            MessageChange::Delete => {
                if !own && role < Role::Admin {
                    return Err(Error::NotAllowed);
                }
                Self::erase(tx, room, seq, target, at).await?;
                if !own && standing.by_server_powers(Role::Admin) {
                    let entry = NewAudit {
                        actor: Some(actor),
                        target_user: message.sender.map(UserId),
                        room_id: Some(room),
                        target_id: Some(target.0),
                        detail: String::new(),
                    };
                    SqlStore::write_audit(&mut **tx, AuditAction::DeleteMessage, &entry).await?;
                }
                EventBody::MessageDeleted { target }
            }
            MessageChange::React { emoji } => {
                let given: Vec<String> = sqlx::query_scalar(MESSAGE_EMOJI)
                    .bind(room.0)
                    .bind(seq)
                    .fetch_all(&mut **tx)
                    .await?;
                if !given.contains(&emoji)
                    && given.len() >= crate::message_text::MAX_EMOJI_PER_MESSAGE
                {
                    return Err(Error::Conflict("too_many_reactions"));
                }
                let added = sqlx::query(INSERT_REACTION)
                    .bind(room.0)
                    .bind(seq)
                    .bind(&emoji)
                    .bind(actor.0)
                    .bind(Timestamp(at))
                    .execute(&mut **tx)
                    .await?
                    .rows_affected();
                if added == 0 {
                    return Err(Error::Conflict("already_reacted"));
                }
                EventBody::ReactionAdded {
                    target,
                    emoji,
                    deleted: false,
                }
            }
            MessageChange::Unreact { emoji } => {
                let removed = sqlx::query(DELETE_REACTION)
                    .bind(room.0)
                    .bind(seq)
                    .bind(&emoji)
                    .bind(actor.0)
                    .execute(&mut **tx)
                    .await?
                    .rows_affected();
                if removed == 0 {
                    return Err(Error::Conflict("not_reacted"));
                }
                EventBody::ReactionRemoved {
                    target,
                    emoji,
                    deleted: false,
                }
            }
            MessageChange::Pin => {
                if !moderator {
                    return Err(Error::NotAllowed);
                }
                if message.pinned {
                    return Err(Error::Conflict("already_pinned"));
                }
                let pins: i64 = sqlx::query_scalar(PIN_COUNT)
                    .bind(room.0)
                    .fetch_one(&mut **tx)
                    .await?;
                if pins >= crate::message_text::MAX_PINS_PER_ROOM {
                    return Err(Error::Conflict("too_many_pins"));
                }
                sqlx::query(PIN)
                    .bind(room.0)
                    .bind(seq)
                    .bind(Timestamp(at))
                    .bind(actor.0)
                    .execute(&mut **tx)
                    .await?;
                EventBody::MessagePinned { target }
            }
            MessageChange::Unpin => {
                if !moderator {
                    return Err(Error::NotAllowed);
                }
                let unpinned = sqlx::query(UNPIN)
                    .bind(room.0)
                    .bind(seq)
                    .execute(&mut **tx)
                    .await?
                    .rows_affected();
                if unpinned == 0 {
                    return Err(Error::Conflict("not_pinned"));
                }
                EventBody::MessageUnpinned { target }
            }
        };
        let event = RoomEvent {
            room_id: room,
            seq: event_seq,
            id: EventId::new(),
            sender: Some(actor),
            ts: at,
            client_id: client_id.map(str::to_owned),
            body,
        };
        Self::insert_event(tx, &event, Some(seq)).await?;
        Ok(Appended {
            event,
            created: true,
        })
    }

    /// Replaces who message `seq` mentions.
    async fn set_mentions(
        tx: &mut Transaction<'_, DB>,
        room: RoomId,
        seq: i64,
        mentions: &[UserId],
        mentions_room: bool,
    ) -> Result<()> {
        sqlx::query(DELETE_MENTIONS)
            .bind(room.0)
            .bind(seq)
            .execute(&mut **tx)
            .await?;
        let everyone = mentions_room.then_some(None);
        for user in mentions.iter().map(|u| Some(u.0)).chain(everyone) {
            sqlx::query(INSERT_MENTION)
                .bind(room.0)
                .bind(seq)
                .bind(user)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }
}

#[async_trait]
impl<DB> MessageStore for SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'r> &'r str: ColumnIndex<DB::Row>,
    usize: ColumnIndex<DB::Row>,
    for<'q> Uuid: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Timestamp: Encode<'q, DB> + Type<DB>,
    for<'r> OffsetDateTime: Decode<'r, DB> + Type<DB>,
    for<'q> Json<Value>: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'r> bool: Decode<'r, DB> + Type<DB>,
    for<'q> Option<Uuid>: Encode<'q, DB>,
    for<'q> Option<i64>: Encode<'q, DB>,
    for<'q> Option<String>: Encode<'q, DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    for<'q> Option<Json<Value>>: Encode<'q, DB>,
{
    async fn change_message(
        &self,
        room: RoomId,
        actor: UserId,
        target: EventId,
        client_id: Option<&str>,
        change: MessageChange,
    ) -> Result<Appended> {
        let mut tx = self.begin().await?;
        let appended = Self::change_in(&mut tx, room, actor, target, client_id, change).await?;
        // A retry found its original: the seq it took goes back
        // with the rollback, so the log has no gap.
        if appended.created {
            tx.commit().await?;
        }
        Ok(appended)
    }

    async fn timeline(&self, room: RoomId, viewer: UserId, page: Page) -> Result<Timeline> {
        let limit = i64::from(page.limit);
        let before = page.before.unwrap_or(i64::MAX);
        match page.after {
            Some(after) => {
                let binds = [after, before, limit];
                self.read_timeline(room, viewer, &timeline_after(), &binds, false)
                    .await
            }
            None => {
                let binds = [0, before, limit];
                self.read_timeline(room, viewer, &timeline_before(), &binds, true)
                    .await
            }
        }
    }

    async fn pins(&self, room: RoomId, viewer: UserId) -> Result<Timeline> {
        self.read_timeline(room, viewer, &pinned(), &[], false)
            .await
    }
}

/// The event a change names.
#[derive(sqlx::FromRow)]
struct TargetRow {
    pub room_id: Uuid,
    pub seq: i64,
    pub kind: String,
    pub sender: Option<Uuid>,
    pub deleted: bool,
    pub pinned: bool,
}

/// The payload of a message's current mentions, as an edit leaves them.
fn mentions_payload(mentions: &[UserId], mentions_room: bool) -> Option<Json<serde_json::Value>> {
    if mentions.is_empty() && !mentions_room {
        return None;
    }
    Some(Json(
        serde_json::json!({ "mentions": mentions, "mentions_room": mentions_room }),
    ))
}
