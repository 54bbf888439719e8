//! What deleting a message erases, in the transaction of the deletion:
//! its text, the texts of its edits, its reactions, who it mentioned and
//! its attachments (marked deleted: the sweeper deletes their bytes).
//! Its events stay in the log as tombstones, with their seqs, so the log
//! keeps no gap and every client learns of the deletion in order; the
//! SQLite file overwrites the freed pages (`secure_delete`).

use serde_json::Value;
use sqlx::types::Json;
use sqlx::Transaction;
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Type};
use uuid::Uuid;

use super::adapter::SqlStore;
use super::attachments::DELETE_MESSAGE_ATTACHMENTS;
use super::dialect::{Dialect, Timestamp};
use super::messages::DELETE_MENTIONS;
use super::Result;
use crate::model::{EventId, RoomId};

/// Erases a message's own event: its text and fields go, `$3` (the
/// tombstone's payload) stays.
const ERASE_MESSAGE: &str =
    "UPDATE room_events SET body = NULL, payload = $3 WHERE room_id = $1 AND seq = $2";

/// Erases the events that carried a message's words or reactions: each
/// keeps its kind, seq and target (`$3` is the payload it keeps).
const ERASE_CHANGES: &str = "UPDATE room_events SET body = NULL, payload = $3 \
     WHERE room_id = $1 AND target_seq = $2 \
     AND kind IN ('message_edited', 'reaction_added', 'reaction_removed')";

const DELETE_REACTIONS: &str = "DELETE FROM reactions WHERE room_id = $1 AND seq = $2";

/// A deleted message's state: deleted, and nothing else of it kept.
const DELETED_STATE: &str =
    "INSERT INTO message_state (room_id, seq, deleted_at) VALUES ($1, $2, $3) \
     ON CONFLICT (room_id, seq) DO UPDATE SET body = NULL, payload = NULL, edited_at = NULL, \
     deleted_at = excluded.deleted_at, pinned_at = NULL, pinned_by = NULL";

impl<DB> SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'r> &'r str: ColumnIndex<DB::Row>,
    usize: ColumnIndex<DB::Row>,
    for<'q> Uuid: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Timestamp: Encode<'q, DB> + Type<DB>,
    for<'q> Json<Value>: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
{
    /// Erases message `seq`: its text, its edits' texts, its
    /// reactions and who it mentions are gone; its events stay, as
    /// tombstones with their seqs.
    pub(super) async fn erase(
        tx: &mut Transaction<'_, DB>,
        room: RoomId,
        seq: i64,
        target: EventId,
        at: time::OffsetDateTime,
    ) -> Result<()> {
        sqlx::query(ERASE_MESSAGE)
            .bind(room.0)
            .bind(seq)
            .bind(tombstone(None))
            .execute(&mut **tx)
            .await?;
        sqlx::query(ERASE_CHANGES)
            .bind(room.0)
            .bind(seq)
            .bind(tombstone(Some(target)))
            .execute(&mut **tx)
            .await?;
        for statement in [
            DELETE_REACTIONS,
            DELETE_MENTIONS,
            DELETE_MESSAGE_ATTACHMENTS,
        ] {
            sqlx::query(statement)
                .bind(room.0)
                .bind(seq)
                .execute(&mut **tx)
                .await?;
        }
        sqlx::query(DELETED_STATE)
            .bind(room.0)
            .bind(seq)
            .bind(Timestamp(at))
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}

/// The payload a tombstone keeps: for a message, only that it was deleted;
/// for a change of one, also which message.
fn tombstone(target: Option<EventId>) -> Json<serde_json::Value> {
    Json(match target {
        Some(target) => serde_json::json!({ "target": target, "deleted": true }),
        None => serde_json::json!({ "deleted": true }),
    })
}
