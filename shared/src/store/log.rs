//! Each room's log: the gap-free sequence of its events. Here are how an
//! event is numbered and stored inside the transaction of the change it
//! records (`record`, `insert_event`, under `lock_room`), and how the log
//! is read (`RoomLog`). Message appends are batched by `group_commit`.

use async_trait::async_trait;
use serde_json::Value;
use sqlx::types::Json;
use sqlx::Transaction;
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Type};
use time::OffsetDateTime;
use uuid::Uuid;

use super::adapter::SqlStore;
use super::dialect::{now, Dialect, ListStatement, RowsAffected, Timestamp};
use super::driver_error::corrupt;
use super::{Appended, Error, NewMessage, Page, ReadMark, Result, RoomLog, Submitted};
use crate::model::{EventBody, EventId, RoomEvent, RoomId, UserId};

/// Allocates the next seq of a room. The row lock this takes (PostgreSQL) or
/// the single writer (SQLite) serialises appends per room, and a rollback
/// undoes the bump, so seqs are gap-free and commit in order.
const NEXT_SEQ: &str = "UPDATE rooms SET last_seq = last_seq + 1 WHERE id = $1 RETURNING last_seq";

/// Allocates the change's seq (as `NEXT_SEQ`), which takes the room's lock
/// for the rest of the transaction, and says what kind of room it is: no
/// row, no room. A change refused later rolls the seq back with the rest.
pub(super) const NEXT_SEQ_AND_KIND: &str =
    "UPDATE rooms SET last_seq = last_seq + 1 WHERE id = $1 RETURNING last_seq, kind";

/// Locks a room's row without changing it; see [`SqlStore::lock_room`].
const LOCK_ROOM: &str = "UPDATE rooms SET last_seq = last_seq WHERE id = $1";

/// A room's head: read in a timeline's snapshot, and to tell a missing
/// room from a non-member.
pub(super) const ROOM_LAST_SEQ: &str = "SELECT last_seq FROM rooms WHERE id = $1";

pub(super) const INSERT_EVENT: &str = "INSERT INTO room_events \
     (room_id, seq, id, kind, sender, client_id, body, payload, created_at, target_seq) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
     ON CONFLICT (room_id, sender, client_id) DO NOTHING";

pub(super) const EVENT_BY_CLIENT_ID: &str =
    "SELECT room_id, seq, id, kind, sender, client_id, body, \
     payload, created_at FROM room_events WHERE room_id = $1 AND sender = $2 AND client_id = $3";

/// Events after a cursor, oldest first.
const EVENTS_AFTER: &str = "SELECT room_id, seq, id, kind, sender, client_id, body, \
     payload, created_at FROM room_events WHERE room_id = $1 AND seq > $2 AND seq < $3 \
     ORDER BY seq LIMIT $4";

/// The newest events below a cursor, newest first (the caller reverses).
const EVENTS_BEFORE: &str = "SELECT room_id, seq, id, kind, sender, client_id, body, \
     payload, created_at FROM room_events WHERE room_id = $1 AND seq > $2 AND seq < $3 \
     ORDER BY seq DESC LIMIT $4";

/// Start of the head query; `heads` appends `(<ids>)`.
const HEADS_PREFIX: &str = "SELECT id, last_seq FROM rooms WHERE id IN ";

/// Read markers only move forward and never past the room's head. The guard
/// compares the stored marker with the clamped value, not with `$3`: on
/// PostgreSQL an update that waited for a concurrent one rechecks its WHERE
/// against the new row but keeps its older view of `last_seq`, and a guard
/// on `$3` would let it write a smaller marker over a larger one.
const MARK_READ: &str = "UPDATE room_members SET last_read_seq = \
     (SELECT CASE WHEN $3 > r.last_seq THEN r.last_seq ELSE $3 END FROM rooms r WHERE r.id = $1) \
     WHERE room_id = $1 AND user_id = $2 AND last_read_seq < \
     (SELECT CASE WHEN $3 > r.last_seq THEN r.last_seq ELSE $3 END FROM rooms r WHERE r.id = $1)";

const READ_MARKER: &str =
    "SELECT last_read_seq FROM room_members WHERE room_id = $1 AND user_id = $2";

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
    for<'q> Option<Uuid>: Encode<'q, DB>,
    for<'q> Option<i64>: Encode<'q, DB>,
    for<'q> Option<String>: Encode<'q, DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    for<'q> Option<Json<Value>>: Encode<'q, DB>,
{
    /// Appends an api-written event inside `tx`, allocating the
    /// room's next seq (message appends are in `group_commit`).
    /// It has no client_id, so it cannot collide with another.
    pub(super) async fn record(
        tx: &mut Transaction<'_, DB>,
        room: RoomId,
        by: UserId,
        body: EventBody,
    ) -> Result<RoomEvent> {
        let seq: Option<i64> = sqlx::query_scalar(NEXT_SEQ)
            .bind(room.0)
            .fetch_optional(&mut **tx)
            .await?;
        let Some(seq) = seq else {
            return Err(Error::NotFound);
        };
        let event = RoomEvent {
            room_id: room,
            seq,
            id: EventId::new(),
            sender: Some(by),
            ts: now(),
            client_id: None,
            body,
        };
        Self::insert_event(tx, &event, None).await?;
        Ok(event)
    }

    /// Inserts `event` inside `tx`: its seq the caller took from
    /// the room (`NEXT_SEQ`), its idempotency key (if any) looked
    /// up under the room's lock; `target_seq` is the message it
    /// acts on, if any.
    pub(super) async fn insert_event(
        tx: &mut Transaction<'_, DB>,
        event: &RoomEvent,
        target_seq: Option<i64>,
    ) -> Result<()> {
        let (text, payload) = event_columns(&event.body);
        sqlx::query(INSERT_EVENT)
            .bind(event.room_id.0)
            .bind(event.seq)
            .bind(event.id.0)
            .bind(event.body.kind())
            .bind(event.sender.map(|s| s.0))
            .bind(event.client_id.as_deref())
            .bind(text)
            .bind(payload)
            .bind(Timestamp(event.ts))
            .bind(target_seq)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Takes `room`'s row lock (PostgreSQL; SQLite has one writer
    /// anyway) before a membership change reads anything. Every
    /// membership change and every append then queues on the same
    /// lock, and each statement after it sees the previous change
    /// committed: a ban and a join, two handovers, or a kick and a
    /// send cannot both act on what the other has not yet done.
    /// One order, room before member rows, also rules out deadlocks
    /// between them. A missing room locks nothing; the statements
    /// that follow report it as before.
    pub(super) async fn lock_room(tx: &mut Transaction<'_, DB>, room: RoomId) -> Result<()> {
        sqlx::query(LOCK_ROOM)
            .bind(room.0)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}

#[async_trait]
impl<DB> RoomLog for SqlStore<DB>
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
    async fn append_message(
        &self,
        room: RoomId,
        sender: UserId,
        message: NewMessage,
    ) -> Result<Appended> {
        self.appends
            .submit(room, sender, message)
            .await?
            .answer()
            .await
    }

    async fn submit_message(
        &self,
        room: RoomId,
        sender: UserId,
        message: NewMessage,
    ) -> Result<Submitted> {
        self.appends.submit(room, sender, message).await
    }

    async fn events(&self, room: RoomId, page: Page) -> Result<Vec<RoomEvent>> {
        let limit = i64::from(page.limit);
        let before = page.before.unwrap_or(i64::MAX);
        let rows = match page.after {
            Some(after) => {
                sqlx::query_as::<_, EventRow>(EVENTS_AFTER)
                    .bind(room.0)
                    .bind(after)
                    .bind(before)
                    .bind(limit)
                    .fetch_all(self.reader())
                    .await?
            }
            None => {
                let mut rows = sqlx::query_as::<_, EventRow>(EVENTS_BEFORE)
                    .bind(room.0)
                    .bind(0_i64)
                    .bind(before)
                    .bind(limit)
                    .fetch_all(self.reader())
                    .await?;
                rows.reverse();
                rows
            }
        };
        let mut events = rows
            .into_iter()
            .map(RoomEvent::try_from)
            .collect::<Result<Vec<_>>>()?;
        if events.iter().any(|e| {
            matches!(
                e.body,
                EventBody::Message {
                    reply_to: Some(_),
                    ..
                }
            )
        }) {
            let mut conn = self.reader().acquire().await?;
            Self::fill_previews(&mut *conn, room, events.iter_mut()).await?;
        }
        Ok(events)
    }

    async fn heads(&self, rooms: &[RoomId]) -> Result<Vec<(RoomId, i64)>> {
        let mut heads = Vec::with_capacity(rooms.len());
        // Bounded statements: SQLite allows 32766 parameters.
        for chunk in rooms.chunks(1000) {
            let mut query = ListStatement::<DB>::new(HEADS_PREFIX);
            query
                .push("(")
                .push_binds(chunk.iter().map(|room| room.0))
                .push(")");
            let (sql, args) = query.finish()?;
            let rows: Vec<(Uuid, i64)> = sqlx::query_as_with(&sql, args)
                .fetch_all(self.reader())
                .await?;
            heads.extend(rows.into_iter().map(|(id, seq)| (RoomId(id), seq)));
        }
        Ok(heads)
    }

    async fn mark_read(&self, room: RoomId, user: UserId, seq: i64) -> Result<ReadMark> {
        let moved = sqlx::query(MARK_READ)
            .bind(room.0)
            .bind(user.0)
            .bind(seq)
            .execute(self.writer())
            .await?
            .rows_affected()
            > 0;
        let marker: Option<i64> = sqlx::query_scalar(READ_MARKER)
            .bind(room.0)
            .bind(user.0)
            .fetch_optional(self.writer())
            .await?;
        let seq = marker.ok_or(Error::NotMember)?;
        Ok(ReadMark { seq, moved })
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
fn event_body(
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
        attachments,
        ..
    } = body
    {
        if mentions.is_empty() && attachments.is_empty() {
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
