//! The consent of DMs: a request from a stranger accepted or declined, and
//! a DM closed by one of its members. A request is `direct_rooms`'
//! `requested_by` (the opener, while the other has not accepted) and
//! `declined_at`; whether a member lists a DM is their membership's
//! `closed_seq` (listed once a message follows it), which `RoomStore::my_rooms`
//! reads.

use async_trait::async_trait;
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Type};
use uuid::Uuid;

use super::adapter::SqlStore;
use super::dialect::{now, Dialect, RowsAffected, Timestamp};
use super::{DmStore, Error, Result};
use crate::model::{RoomId, UserId};

/// Accepts a request to `$2`: it becomes a plain DM.
const ACCEPT: &str = "UPDATE direct_rooms SET requested_by = NULL, declined_at = NULL \
     WHERE room_id = $1 AND requested_by IS NOT NULL AND requested_by <> $2 \
     AND (user_low = $2 OR user_high = $2)";

/// Declines a request to `$2` (again: its time stays the first).
const DECLINE: &str = "UPDATE direct_rooms SET declined_at = COALESCE(declined_at, $3) \
     WHERE room_id = $1 AND requested_by IS NOT NULL AND requested_by <> $2 \
     AND (user_low = $2 OR user_high = $2)";

/// Lists the DM for `$2` again if it has any message (a declined request
/// was hidden; one never written in stays unlisted).
const LIST: &str = "UPDATE room_members SET closed_seq = 0 \
     WHERE room_id = $1 AND user_id = $2 AND closed_seq IS NOT NULL";

/// Hides a DM of `$2` until its next message.
const CLOSE: &str = "UPDATE room_members SET closed_seq = \
     (SELECT last_seq FROM rooms WHERE id = $1) \
     WHERE room_id = $1 AND user_id = $2 \
     AND EXISTS (SELECT 1 FROM direct_rooms d WHERE d.room_id = $1)";

/// Whether `$1` is a direct room of `$2`'s.
const IS_MY_DM: &str = "SELECT 1 FROM direct_rooms \
     WHERE room_id = $1 AND (user_low = $2 OR user_high = $2)";

#[async_trait]
impl<DB> DmStore for SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    usize: ColumnIndex<DB::Row>,
    for<'q> Uuid: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Timestamp: Encode<'q, DB> + Type<DB>,
    for<'r> i32: Decode<'r, DB> + Type<DB>,
{
    async fn accept_dm(&self, room: RoomId, user: UserId) -> Result<()> {
        let mut tx = self.begin().await?;
        let accepted = sqlx::query(ACCEPT)
            .bind(room.0)
            .bind(user.0)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if accepted == 0 {
            return Err(self.not_a_request(room, user).await);
        }
        sqlx::query(LIST)
            .bind(room.0)
            .bind(user.0)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn decline_dm(&self, room: RoomId, user: UserId) -> Result<()> {
        let mut tx = self.begin().await?;
        let declined = sqlx::query(DECLINE)
            .bind(room.0)
            .bind(user.0)
            .bind(Timestamp(now()))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if declined == 0 {
            return Err(self.not_a_request(room, user).await);
        }
        sqlx::query(CLOSE)
            .bind(room.0)
            .bind(user.0)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn close_dm(&self, room: RoomId, user: UserId) -> Result<()> {
        let closed = sqlx::query(CLOSE)
            .bind(room.0)
            .bind(user.0)
            .execute(self.writer())
            .await?
            .rows_affected();
        if closed == 0 {
            return Err(Error::NotFound);
        }
        Ok(())
    }
}

impl<DB> SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    usize: ColumnIndex<DB::Row>,
    for<'q> Uuid: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'r> i32: Decode<'r, DB> + Type<DB>,
{
    /// Why an accept or decline changed nothing: no DM of the user's, or
    /// no request to them.
    async fn not_a_request(&self, room: RoomId, user: UserId) -> Error {
        let mine: std::result::Result<Option<i32>, _> = sqlx::query_scalar(IS_MY_DM)
            .bind(room.0)
            .bind(user.0)
            .fetch_optional(self.reader())
            .await;
        match mine {
            Ok(Some(_)) => Error::Conflict("not_a_request"),
            Ok(None) => Error::NotFound,
            Err(e) => e.into(),
        }
    }
}
