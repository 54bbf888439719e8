//! The timeline: a room's log as people read it, with messages as they
//! are now (their latest text, their reactions as the reader sees them,
//! their pin) and without the events that only changed them; and a room's
//! pinned messages. Entries and the room's head are read in one snapshot.

use std::collections::HashMap;

use serde_json::Value;
use sqlx::types::Json;
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Type};
use time::OffsetDateTime;
use uuid::Uuid;

use super::adapter::SqlStore;
use super::dialect::{Dialect, ListStatement};
use super::driver_error::corrupt;
use super::log::{EventRow, ROOM_LAST_SEQ};
use super::{Error, Result, Timeline};
use crate::model::{
    EventBody, Pin, Reactions, RoomEvent, RoomId, TimelineItem, UserId, REACTION_USERS_SHOWN,
};

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
    for<'r> OffsetDateTime: Decode<'r, DB> + Type<DB>,
    for<'q> Json<Value>: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'r> bool: Decode<'r, DB> + Type<DB>,
{
    /// Fills in the reactions and reply previews of timeline
    /// entries, as `viewer` sees them, over `conn` (the snapshot
    /// the entries were read in).
    async fn complete(
        conn: &mut <DB as sqlx::Database>::Connection,
        room: RoomId,
        viewer: UserId,
        items: &mut [TimelineItem],
    ) -> Result<()> {
        // Deleted messages have no reactions left to count.
        let seqs: Vec<i64> = items
            .iter()
            .filter(|i| matches!(i.event.body, EventBody::Message { deleted: false, .. }))
            .map(|i| i.event.seq)
            .collect();
        if !seqs.is_empty() {
            let (sql, args) =
                reactions_query::<DB>(viewer, room, &seqs, REACTION_USERS_SHOWN).finish()?;
            let rows: Vec<ReactionRow> = sqlx::query_as_with(&sql, args)
                .fetch_all(&mut *conn)
                .await?;
            attach_reactions(items, rows);
        }
        Self::fill_previews(conn, room, items.iter_mut().map(|i| &mut i.event)).await
    }

    /// Reads timeline entries with `statement` (bound to the room,
    /// then `binds`) and the room's head in one snapshot, so the
    /// head covers exactly the changes the entries show.
    pub(super) async fn read_timeline(
        &self,
        room: RoomId,
        viewer: UserId,
        statement: &str,
        binds: &[i64],
        reverse: bool,
    ) -> Result<Timeline> {
        let mut tx = self.snapshot().await?;
        let last_seq: Option<i64> = sqlx::query_scalar(ROOM_LAST_SEQ)
            .bind(room.0)
            .fetch_optional(&mut *tx)
            .await?;
        let last_seq = last_seq.ok_or(Error::NotFound)?;
        let mut query = sqlx::query_as::<_, TimelineRow>(statement).bind(room.0);
        for value in binds {
            query = query.bind(*value);
        }
        let mut rows = query.fetch_all(&mut *tx).await?;
        if reverse {
            rows.reverse();
        }
        let mut items = rows
            .into_iter()
            .map(TimelineItem::try_from)
            .collect::<Result<Vec<_>>>()?;
        Self::complete(&mut *tx, room, viewer, &mut items).await?;
        tx.commit().await?;
        Ok(Timeline { items, last_seq })
    }
}

/// The reactions to some messages: per message and emoji, its first
/// users (by time), how many there are, and whether the reader is one of
/// them. A page reads its reactions' index entries once. `reactions_query`
/// fills in the reader, the room, the seqs and how many users to name.
fn reactions_query<'a, DB: sqlx::Database>(
    viewer: UserId,
    room: RoomId,
    seqs: &[i64],
    shown: usize,
) -> ListStatement<'a, DB>
where
    Uuid: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let mut query = ListStatement::new(
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
    query
        .push(" AND seq IN (")
        .push_binds(seqs.iter().copied())
        .push(")) r WHERE n <= ");
    query.push_bind(i64::try_from(shown).unwrap_or(i64::MAX));
    query.push(" ORDER BY seq, first, emoji, n");
    query
}

/// A timeline entry: an event and, for a changed message, its state.
#[derive(sqlx::FromRow)]
struct TimelineRow {
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
struct ReactionRow {
    seq: i64,
    emoji: String,
    user_id: Uuid,
    count: i64,
    me: i64,
}

/// Puts each message's reactions on its timeline entry (`rows` in the
/// order of [`reactions_query`]).
fn attach_reactions(items: &mut [TimelineItem], rows: Vec<ReactionRow>) {
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
