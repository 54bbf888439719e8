//! What a message points at, read the same way wherever a message is
//! stored or shown: the message it answers (a reply's preview, as that
//! message is now) and the members its `@` names resolve to.

use std::collections::HashMap;

use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Type};
use uuid::Uuid;

use super::adapter::SqlStore;
use super::dialect::{Dialect, ListStatement};
use super::Result;
use crate::model::{
    EventBody, EventId, ReplyPreview, RoomEvent, RoomId, UserId, REPLY_PREVIEW_CHARS,
};

/// The start of the query for reply previews; the caller adds the list of
/// ids (and keeps the rows of its room: by id alone, as `messages`'
/// `TARGET` finds a change's message, so the unique index is the way in).
pub(super) const PREVIEWS_PREFIX: &str = "SELECT e.id, e.room_id, e.sender, e.body, \
     s.body AS current_body, s.deleted_at IS NOT NULL AS deleted \
     FROM room_events e LEFT JOIN message_state s ON s.room_id = e.room_id AND s.seq = e.seq \
     WHERE e.kind = 'message' AND ";

/// The start of the query for the members a text names; the caller adds
/// the room and the list of lowercased names.
const MEMBERS_NAMED_PREFIX: &str = "SELECT u.id, lower(u.username) AS name FROM room_members m \
     JOIN users u ON u.id = m.user_id WHERE ";

/// Records that message `$2` of room `$1` mentions `$3` (NULL: `@room`).
pub(super) const INSERT_MENTION: &str =
    "INSERT INTO mentions (room_id, seq, user_id) VALUES ($1, $2, $3)";

impl<DB> SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'r> &'r str: ColumnIndex<DB::Row>,
    usize: ColumnIndex<DB::Row>,
    for<'q> Uuid: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'r> bool: Decode<'r, DB> + Type<DB>,
{
    /// The members of `room` among `names` (lowercased usernames),
    /// in the order of `names`.
    pub(super) async fn members_named(
        conn: &mut <DB as sqlx::Database>::Connection,
        room: RoomId,
        names: &[String],
    ) -> Result<Vec<UserId>> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let mut query = ListStatement::<DB>::new(MEMBERS_NAMED_PREFIX);
        query.push("m.room_id = ").push_bind(room.0);
        query
            .push(" AND lower(u.username) IN (")
            .push_binds(names.iter().map(String::as_str))
            .push(")");
        let (sql, args) = query.finish()?;
        let found: Vec<(Uuid, String)> = sqlx::query_as_with(&sql, args)
            .fetch_all(&mut *conn)
            .await?;
        Ok(names
            .iter()
            .filter_map(|name| found.iter().find(|(_, n)| n == name))
            .map(|(id, _)| UserId(*id))
            .collect())
    }

    /// The previews of the messages `ids` of `room` (an id that
    /// is not a message of the room is missing from the answer).
    pub(super) async fn previews(
        conn: &mut <DB as sqlx::Database>::Connection,
        room: RoomId,
        ids: &[EventId],
    ) -> Result<HashMap<EventId, ReplyPreview>> {
        let mut previews = HashMap::new();
        for chunk in ids.chunks(500) {
            let mut query = ListStatement::<DB>::new(PREVIEWS_PREFIX);
            query
                .push("e.id IN (")
                .push_binds(chunk.iter().map(|id| id.0))
                .push(")");
            let (sql, args) = query.finish()?;
            let rows: Vec<PreviewRow> = sqlx::query_as_with(&sql, args)
                .fetch_all(&mut *conn)
                .await?;
            previews.extend(
                rows.into_iter()
                    .filter(|row| row.room_id == room.0)
                    .map(|row| (EventId(row.id), row.preview())),
            );
        }
        Ok(previews)
    }

    /// Puts on each reply of `events` the preview of what it
    /// answers, read over `conn`.
    pub(super) async fn fill_previews(
        conn: &mut <DB as sqlx::Database>::Connection,
        room: RoomId,
        events: impl Iterator<Item = &mut RoomEvent>,
    ) -> Result<()> {
        let mut replies: Vec<(EventId, &mut Option<ReplyPreview>)> = events
            .filter_map(|e| match &mut e.body {
                EventBody::Message {
                    reply_to: Some(id),
                    reply_preview,
                    ..
                } => Some((*id, reply_preview)),
                _ => None,
            })
            .collect();
        if replies.is_empty() {
            return Ok(());
        }
        let ids: Vec<EventId> = replies.iter().map(|(id, _)| *id).collect();
        let previews = Self::previews(conn, room, &ids).await?;
        for (id, preview) in &mut replies {
            **preview = previews.get(id).cloned();
        }
        Ok(())
    }
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
