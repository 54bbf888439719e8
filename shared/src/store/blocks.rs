//! Blocks between users: one user no longer hearing from another. A block
//! is one row, one way (`blocker` blocks `blocked`); what it refuses is
//! decided by its readers: the api (DMs, invites), the gateways (signals,
//! presence, DM sends) and the read of a user's rooms (unread counts leave
//! out what blocked users wrote).

use async_trait::async_trait;
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Type};
use time::OffsetDateTime;
use uuid::Uuid;

use super::accounts::UserRow;
use super::adapter::SqlStore;
use super::dialect::{now, Dialect, RowsAffected, Timestamp};
use super::driver_error::missing_reference;
use super::{BlockStore, DirectSend, Result};
use crate::model::{BlockedUser, RoomId, User, UserId};

/// A block, once: blocking again changes nothing (not even its time).
const INSERT_BLOCK: &str = "INSERT INTO blocks (blocker, blocked, created_at) \
     VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";

const DELETE_BLOCK: &str = "DELETE FROM blocks WHERE blocker = $1 AND blocked = $2";

const BLOCKED_USERS: &str = "SELECT u.id, u.username, u.display_name, u.created_at, \
     b.created_at AS blocked_at \
     FROM blocks b JOIN users u ON u.id = b.blocked \
     WHERE b.blocker = $1 ORDER BY b.created_at DESC, u.id";

const BLOCKERS_OF: &str = "SELECT blocker FROM blocks WHERE blocked = $1";

/// Either way round: two lookups of the primary key.
const BLOCKED_BETWEEN: &str = "SELECT 1 FROM blocks \
     WHERE (blocker = $1 AND blocked = $2) OR (blocker = $2 AND blocked = $1) LIMIT 1";

const BLOCKS: &str = "SELECT 1 FROM blocks WHERE blocker = $1 AND blocked = $2";

/// Whether either of a direct room's pair blocks the other, and whether the
/// sender's request was declined: one row for a direct room of the
/// sender's, none for any other room (the append then refuses a sender
/// who is not a member, as for any room).
const DIRECT_CONSENT: &str = "SELECT CASE WHEN EXISTS (SELECT 1 FROM blocks b \
         WHERE (b.blocker = d.user_low AND b.blocked = d.user_high) \
            OR (b.blocker = d.user_high AND b.blocked = d.user_low)) \
     THEN 1 ELSE 0 END AS blocked, \
     CASE WHEN d.declined_at IS NOT NULL AND d.requested_by = $2 THEN 1 ELSE 0 END AS declined \
     FROM direct_rooms d WHERE d.room_id = $1 AND (d.user_low = $2 OR d.user_high = $2)";

/// The members who do not list the room now: closed (or never written
/// in), with no message since.
const UNLISTED_MEMBERS: &str = "SELECT m.user_id FROM room_members m \
     WHERE m.room_id = $1 AND m.closed_seq IS NOT NULL AND NOT EXISTS (SELECT 1 \
         FROM room_events e WHERE e.room_id = m.room_id AND e.seq > m.closed_seq \
         AND e.kind = 'message')";

#[async_trait]
impl<DB> BlockStore for SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'r> &'r str: ColumnIndex<DB::Row>,
    usize: ColumnIndex<DB::Row>,
    for<'q> Uuid: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Timestamp: Encode<'q, DB> + Type<DB>,
    for<'r> OffsetDateTime: Decode<'r, DB> + Type<DB>,
    for<'r> i32: Decode<'r, DB> + Type<DB>,
{
    async fn block(&self, blocker: UserId, blocked: UserId) -> Result<bool> {
        let inserted = sqlx::query(INSERT_BLOCK)
            .bind(blocker.0)
            .bind(blocked.0)
            .bind(Timestamp(now()))
            .execute(self.writer())
            .await
            .map_err(missing_reference)?
            .rows_affected();
        Ok(inserted == 1)
    }

    async fn unblock(&self, blocker: UserId, blocked: UserId) -> Result<bool> {
        let deleted = sqlx::query(DELETE_BLOCK)
            .bind(blocker.0)
            .bind(blocked.0)
            .execute(self.writer())
            .await?
            .rows_affected();
        Ok(deleted == 1)
    }

    async fn blocked_users(&self, blocker: UserId) -> Result<Vec<BlockedUser>> {
        let rows = sqlx::query_as::<_, BlockedRow>(BLOCKED_USERS)
            .bind(blocker.0)
            .fetch_all(self.reader())
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| BlockedUser {
                user: User::from(row.user),
                blocked_at: row.blocked_at,
            })
            .collect())
    }

    async fn blockers_of(&self, user: UserId) -> Result<Vec<UserId>> {
        let ids: Vec<Uuid> = sqlx::query_scalar(BLOCKERS_OF)
            .bind(user.0)
            .fetch_all(self.reader())
            .await?;
        Ok(ids.into_iter().map(UserId).collect())
    }

    async fn blocks(&self, blocker: UserId, blocked: UserId) -> Result<bool> {
        let found: Option<i32> = sqlx::query_scalar(BLOCKS)
            .bind(blocker.0)
            .bind(blocked.0)
            .fetch_optional(self.reader())
            .await?;
        Ok(found.is_some())
    }

    async fn blocked_between(&self, a: UserId, b: UserId) -> Result<bool> {
        let found: Option<i32> = sqlx::query_scalar(BLOCKED_BETWEEN)
            .bind(a.0)
            .bind(b.0)
            .fetch_optional(self.reader())
            .await?;
        Ok(found.is_some())
    }

    async fn direct_send(&self, room: RoomId, sender: UserId) -> Result<DirectSend> {
        let consent: Option<(i32, i32)> = sqlx::query_as(DIRECT_CONSENT)
            .bind(room.0)
            .bind(sender.0)
            .fetch_optional(self.reader())
            .await?;
        Ok(match consent {
            None => DirectSend::NotDirect,
            Some((1, _)) => DirectSend::Blocked,
            Some((_, 1)) => DirectSend::Declined,
            Some(_) => {
                let unlisted: Vec<Uuid> = sqlx::query_scalar(UNLISTED_MEMBERS)
                    .bind(room.0)
                    .fetch_all(self.reader())
                    .await?;
                DirectSend::Open {
                    unlisted: unlisted.into_iter().map(UserId).collect(),
                }
            }
        })
    }
}

/// A blocked user with the time of the block.
#[derive(sqlx::FromRow)]
struct BlockedRow {
    #[sqlx(flatten)]
    user: UserRow,
    blocked_at: OffsetDateTime,
}
