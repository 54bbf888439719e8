//! How SQLite commits a batch of appends: in one transaction on the one
//! writer connection, one append after another, so each sees the ones
//! before it; the batch costs one fsync however many appends it holds.

use std::collections::HashSet;
use std::sync::Arc;

use sqlx::sqlite::SqlitePool;

use super::{bad_attachments, bad_reply, claim, mention_rows, Append, Commit, GroupCommit};
use crate::model::{Attachment, RoomEvent, RoomId};
use crate::store::attachments::{ReadyRow, READY_COLUMNS};
use crate::store::dialect::{now, Timestamp};
use crate::store::durability::{WriteHealth, SQLITE_BEGIN};
use crate::store::log::{
    event_columns, EventRow, EVENT_BY_CLIENT_ID, INSERT_EVENT, NEXT_SEQ_AND_KIND, ROOM_LAST_SEQ,
};
use crate::store::members::parse_role;
use crate::store::moderation::may_send;
use crate::store::references::INSERT_MENTION;
use crate::store::{Appended, Error, Result, SqliteStore};

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
/// (`lock_room` in `log`), so a kick and a send cannot interleave.
/// In a room with slow mode on it also records the message's time (`$3`;
/// NULL leaves it), the only reader being the next append's [`SENDER`].
const MARK_SENDER: &str = "UPDATE room_members \
     SET last_read_seq = (SELECT last_seq + 1 FROM rooms WHERE id = $1), \
     last_message_at = COALESCE($3, last_message_at) \
     WHERE room_id = $1 AND user_id = $2 RETURNING role";

/// What decides whether the sender may send now (`may_send`): their role,
/// mute and last message, and the room's slow mode. Read before anything
/// of the append is written, so a refusal leaves nothing behind.
const SENDER: &str = "SELECT m.role, m.muted_until, m.last_message_at, \
     COALESCE((SELECT s.seconds FROM room_slow_modes s WHERE s.room_id = m.room_id), 0) \
         AS slow_mode_seconds \
     FROM room_members m WHERE m.room_id = $1 AND m.user_id = $2";

/// A [`SENDER`] row.
#[derive(sqlx::FromRow)]
struct SenderRow {
    role: String,
    muted_until: Option<time::OffsetDateTime>,
    last_message_at: Option<time::OffsetDateTime>,
    slow_mode_seconds: i32,
}

/// Marks an attachment with the seq of the message that carries it.
const CARRY_ATTACHMENT: &str = "UPDATE attachments SET seq = $2 WHERE id = $1";

/// The batch committer on SQLite's one-connection write pool.
pub(super) struct Sqlite(pub(super) SqlitePool);

impl GroupCommit {
    /// Starts the writer on SQLite's one-connection write pool; it stops
    /// when this is dropped.
    pub(in crate::store) fn sqlite(writer: SqlitePool, health: Arc<WriteHealth>) -> Self {
        Self::start(Sqlite(writer), health)
    }
}

impl Commit for Sqlite {
    /// One statement at a time, in process: the writer connection is the
    /// only one, so what each append checks cannot change before the
    /// commit, and a later copy of a client_id finds the earlier one.
    async fn commit(&self, batch: &[Append]) -> Result<Vec<Result<Appended>>> {
        let mut tx = self.0.begin_with(SQLITE_BEGIN).await?;
        let ts = now();
        let mut answers = Vec::with_capacity(batch.len());
        for append in batch {
            answers.push(append_sqlite(&mut tx, append, ts).await?);
        }
        tx.commit().await?;
        Ok(answers)
    }
}

/// Why a sender found no membership row: no such room, or not a member.
async fn not_in(tx: &mut sqlx::SqliteConnection, room: RoomId) -> Result<Error> {
    let head: Option<i64> = sqlx::query_scalar(ROOM_LAST_SEQ)
        .bind(room.0)
        .fetch_optional(&mut *tx)
        .await?;
    Ok(match head {
        Some(_) => Error::NotMember,
        None => Error::NotFound,
    })
}

/// One append of a SQLite batch: its answer, or the error that fails the
/// whole batch. Nothing is written before the append is known to go in.
async fn append_sqlite(
    tx: &mut sqlx::SqliteConnection,
    append: &Append,
    ts: time::OffsetDateTime,
) -> Result<Result<Appended>> {
    let existing: Option<EventRow> = sqlx::query_as(EVENT_BY_CLIENT_ID)
        .bind(append.room.0)
        .bind(append.sender.0)
        .bind(&append.message.client_id)
        .fetch_optional(&mut *tx)
        .await?;
    if let Some(row) = existing {
        let mut event = RoomEvent::try_from(row)?;
        SqliteStore::fill_previews(&mut *tx, append.room, std::iter::once(&mut event)).await?;
        return Ok(Ok(Appended {
            event,
            created: false,
        }));
    }
    // Membership, the mute and slow mode first: the rest is only read
    // for a sender who may send.
    let sender: Option<SenderRow> = sqlx::query_as(SENDER)
        .bind(append.room.0)
        .bind(append.sender.0)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(sender) = sender else {
        return Ok(Err(not_in(tx, append.room).await?));
    };
    let slow_mode_seconds = u32::try_from(sender.slow_mode_seconds).unwrap_or(0);
    let gate = may_send(
        parse_role(&sender.role)?,
        sender.muted_until,
        sender.last_message_at,
        slow_mode_seconds,
        ts,
    );
    if let Err(refused) = gate {
        return Ok(Err(refused));
    }
    let mut preview = None;
    if let Some(id) = append.message.reply_to {
        let mut found = SqliteStore::previews(&mut *tx, append.room, &[id]).await?;
        match found.remove(&id) {
            Some(p) => preview = Some(p),
            None => return Ok(Err(bad_reply())),
        }
    }
    let attachments = match attachments_sqlite(tx, append).await? {
        Ok(attachments) => attachments,
        Err(refused) => return Ok(Err(refused)),
    };
    // The next seq is this message's: nothing else writes here.
    let role: Option<String> = sqlx::query_scalar(MARK_SENDER)
        .bind(append.room.0)
        .bind(append.sender.0)
        .bind((slow_mode_seconds > 0).then_some(Timestamp(ts)))
        .fetch_optional(&mut *tx)
        .await?;
    let Some(role) = role else {
        return Ok(Err(not_in(tx, append.room).await?));
    };
    let mentions =
        SqliteStore::members_named(&mut *tx, append.room, &append.mentioned.names).await?;
    let (seq, kind): (i64, String) = sqlx::query_as(NEXT_SEQ_AND_KIND)
        .bind(append.room.0)
        .fetch_one(&mut *tx)
        .await?;
    let event = append.event(
        seq,
        ts,
        preview,
        mentions,
        append.mentions_room(parse_role(&role)?, &kind),
        attachments,
    );
    let (text, payload) = event_columns(&event.body);
    sqlx::query(INSERT_EVENT)
        .bind(append.room.0)
        .bind(seq)
        .bind(event.id.0)
        .bind(event.body.kind())
        .bind(append.sender.0)
        .bind(&append.message.client_id)
        .bind(text)
        .bind(payload)
        .bind(Timestamp(ts))
        .bind(None::<i64>)
        .execute(&mut *tx)
        .await?;
    for user in mention_rows(&event.body) {
        sqlx::query(INSERT_MENTION)
            .bind(append.room.0)
            .bind(seq)
            .bind(user)
            .execute(&mut *tx)
            .await?;
    }
    for id in &append.message.attachments {
        sqlx::query(CARRY_ATTACHMENT)
            .bind(id.0)
            .bind(seq)
            .execute(&mut *tx)
            .await?;
    }
    Ok(Ok(Appended {
        event,
        created: true,
    }))
}

/// The attachments `append` carries (its sender known to be a member), if
/// each is theirs, ready, in the room and carried by nothing (an earlier append of
/// the batch has already marked the ones it carries). Read before anything
/// of the append is written, so a refusal leaves nothing behind.
async fn attachments_sqlite(
    tx: &mut sqlx::SqliteConnection,
    append: &Append,
) -> Result<Result<Vec<Attachment>>> {
    let ids = &append.message.attachments;
    if ids.is_empty() {
        return Ok(Ok(Vec::new()));
    }
    let placeholders: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
    let statement = format!(
        "SELECT {READY_COLUMNS} FROM attachments \
         WHERE id IN ({}) AND state = 'ready' AND seq IS NULL",
        placeholders.join(", ")
    );
    let mut query = sqlx::query_as::<_, ReadyRow>(&statement);
    for id in ids {
        query = query.bind(id.0);
    }
    let ready = query
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(ReadyRow::into_entry)
        .collect::<Result<_>>()?;
    Ok(claim(append, &ready, &mut HashSet::new()).ok_or_else(bad_attachments))
}
