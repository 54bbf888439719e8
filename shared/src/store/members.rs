//! Who is in a room and what they may do there: members and their roles,
//! bans. Every change takes the room's lock first (`SqlStore::lock_room`)
//! and is decided on the membership as it is under that lock, then
//! recorded in the room's log in the same transaction. `RoomStore` (in
//! `rooms`) hands its membership calls here.

use std::marker::PhantomData;

use serde_json::Value;
use sqlx::types::Json;
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Type};
use time::OffsetDateTime;
use uuid::Uuid;

use super::accounts::UserRow;
use super::adapter::SqlStore;
use super::dialect::{now, Dialect, RowsAffected, Timestamp};
use super::driver_error::{corrupt, missing_reference};
use super::{Error, Result};
use crate::model::{Ban, EventBody, LeaveReason, Member, Role, RoomEvent, RoomId, UserId};

pub(super) const ROLE: &str = "SELECT role FROM room_members WHERE room_id = $1 AND user_id = $2";

const MEMBERS: &str = "SELECT u.id, u.username, u.display_name, u.created_at, u.avatar, \
     m.role, m.joined_at, m.last_read_seq, m.muted_until \
     FROM room_members m JOIN users u ON u.id = m.user_id \
     WHERE m.room_id = $1 ORDER BY m.joined_at, u.id";

const IS_BANNED: &str = "SELECT 1 FROM room_bans WHERE room_id = $1 AND user_id = $2";

pub(super) const INSERT_MEMBER: &str =
    "INSERT INTO room_members (room_id, user_id, role, joined_at) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (room_id, user_id) DO NOTHING";

const DELETE_MEMBER: &str = "DELETE FROM room_members WHERE room_id = $1 AND user_id = $2";

const SET_ROLE: &str = "UPDATE room_members SET role = $3 WHERE room_id = $1 AND user_id = $2";

const ROOM_OWNER: &str = "SELECT user_id FROM room_members WHERE room_id = $1 AND role = 'owner'";

const INSERT_BAN: &str = "INSERT INTO room_bans (room_id, user_id, banned_by, reason, created_at) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (room_id, user_id) DO NOTHING";

const DELETE_BAN: &str = "DELETE FROM room_bans WHERE room_id = $1 AND user_id = $2";

const BANS: &str = "SELECT user_id, banned_by, reason, created_at FROM room_bans \
     WHERE room_id = $1 ORDER BY created_at, user_id";

/// The membership operations of a room, over either database.
pub(super) struct Members<DB>(PhantomData<DB>);

impl<DB> Members<DB>
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
    for<'r> i32: Decode<'r, DB> + Type<DB>,
    for<'q> Option<Uuid>: Encode<'q, DB>,
    for<'q> Option<i64>: Encode<'q, DB>,
    for<'q> Option<String>: Encode<'q, DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    for<'q> Option<Json<Value>>: Encode<'q, DB>,
{
    pub(super) async fn role(
        store: &SqlStore<DB>,
        room: RoomId,
        user: UserId,
    ) -> Result<Option<Role>> {
        let role: Option<String> = sqlx::query_scalar(ROLE)
            .bind(room.0)
            .bind(user.0)
            .fetch_optional(store.reader())
            .await?;
        role.as_deref().map(parse_role).transpose()
    }

    pub(super) async fn members(store: &SqlStore<DB>, room: RoomId) -> Result<Vec<Member>> {
        sqlx::query_as::<_, MemberRow>(MEMBERS)
            .bind(room.0)
            .fetch_all(store.reader())
            .await?
            .into_iter()
            .map(Member::try_from)
            .collect()
    }

    pub(super) async fn add_member(
        store: &SqlStore<DB>,
        room: RoomId,
        user: UserId,
        by: UserId,
        role: Role,
    ) -> Result<RoomEvent> {
        let mut tx = store.begin().await?;
        SqlStore::lock_room(&mut tx, room).await?;
        let banned: Option<i32> = sqlx::query_scalar(IS_BANNED)
            .bind(room.0)
            .bind(user.0)
            .fetch_optional(&mut *tx)
            .await?;
        if banned.is_some() {
            return Err(Error::Banned);
        }
        let added = sqlx::query(INSERT_MEMBER)
            .bind(room.0)
            .bind(user.0)
            .bind(role.as_str())
            .bind(Timestamp(now()))
            .execute(&mut *tx)
            .await
            .map_err(missing_reference)?
            .rows_affected();
        if added == 0 {
            return Err(Error::Conflict("member"));
        }
        let event = SqlStore::record(&mut tx, room, by, EventBody::MemberJoined { user }).await?;
        tx.commit().await?;
        Ok(event)
    }

    pub(super) async fn remove_member(
        store: &SqlStore<DB>,
        room: RoomId,
        user: UserId,
        by: UserId,
        reason: LeaveReason,
    ) -> Result<RoomEvent> {
        let mut tx = store.begin().await?;
        SqlStore::lock_room(&mut tx, room).await?;
        let removed = sqlx::query(DELETE_MEMBER)
            .bind(room.0)
            .bind(user.0)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if removed == 0 {
            return Err(Error::NotMember);
        }
        let event = SqlStore::record(&mut tx, room, by, left(user, reason)).await?;
        tx.commit().await?;
        Ok(event)
    }

    pub(super) async fn set_role(
        store: &SqlStore<DB>,
        room: RoomId,
        user: UserId,
        by: UserId,
        role: Role,
    ) -> Result<Vec<RoomEvent>> {
        let mut tx = store.begin().await?;
        SqlStore::lock_room(&mut tx, room).await?;
        // Only the owner (or a server admin, who acts as one) changes
        // roles, as it is now, under the room's lock: of two handovers at
        // once, the second finds its sender already demoted.
        let owner: Option<uuid::Uuid> = sqlx::query_scalar(ROOM_OWNER)
            .bind(room.0)
            .fetch_optional(&mut *tx)
            .await?;
        if SqlStore::standing(&mut tx, room, by).await?.effective() != Some(Role::Owner) {
            return Err(Error::NotAllowed);
        }
        let previous_owner = owner.filter(|_| role == Role::Owner);
        let changed = sqlx::query(SET_ROLE)
            .bind(room.0)
            .bind(user.0)
            .bind(role.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if changed == 0 {
            return Err(Error::NotMember);
        }
        let mut events =
            vec![SqlStore::record(&mut tx, room, by, EventBody::RoleChanged { user, role }).await?];
        if let Some(previous) = previous_owner.map(UserId).filter(|p| *p != user) {
            sqlx::query(SET_ROLE)
                .bind(room.0)
                .bind(previous.0)
                .bind(Role::Admin.as_str())
                .execute(&mut *tx)
                .await?;
            let body = EventBody::RoleChanged {
                user: previous,
                role: Role::Admin,
            };
            events.push(SqlStore::record(&mut tx, room, by, body).await?);
        }
        tx.commit().await?;
        Ok(events)
    }

    pub(super) async fn ban(
        store: &SqlStore<DB>,
        room: RoomId,
        user: UserId,
        by: UserId,
        reason: String,
    ) -> Result<Option<RoomEvent>> {
        let mut tx = store.begin().await?;
        SqlStore::lock_room(&mut tx, room).await?;
        let banned = sqlx::query(INSERT_BAN)
            .bind(room.0)
            .bind(user.0)
            .bind(by.0)
            .bind(&reason)
            .bind(Timestamp(now()))
            .execute(&mut *tx)
            .await
            .map_err(missing_reference)?
            .rows_affected();
        if banned == 0 {
            return Err(Error::Conflict("ban"));
        }
        let removed = sqlx::query(DELETE_MEMBER)
            .bind(room.0)
            .bind(user.0)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let event = if removed == 1 {
            let body = left(user, LeaveReason::Banned);
            Some(SqlStore::record(&mut tx, room, by, body).await?)
        } else {
            None
        };
        tx.commit().await?;
        Ok(event)
    }

    pub(super) async fn unban(store: &SqlStore<DB>, room: RoomId, user: UserId) -> Result<bool> {
        let lifted = sqlx::query(DELETE_BAN)
            .bind(room.0)
            .bind(user.0)
            .execute(store.writer())
            .await?
            .rows_affected();
        Ok(lifted == 1)
    }

    pub(super) async fn bans(store: &SqlStore<DB>, room: RoomId) -> Result<Vec<Ban>> {
        let rows = sqlx::query_as::<_, BanRow>(BANS)
            .bind(room.0)
            .fetch_all(store.reader())
            .await?;
        Ok(rows.into_iter().map(Ban::from).collect())
    }
}

/// A mute that has ended is no mute: the member row keeps its time until
/// the next one, and every reader looks through this.
pub(super) fn in_force(until: Option<OffsetDateTime>) -> Option<OffsetDateTime> {
    until.filter(|t| *t > now())
}

pub(super) fn parse_role(s: &str) -> Result<Role> {
    Role::parse(s).ok_or_else(|| corrupt("room_members.role", s))
}

/// Maps a reason to what `member_left` records.
fn left(user: UserId, reason: LeaveReason) -> EventBody {
    EventBody::MemberLeft { user, reason }
}

/// A member with their user.
#[derive(sqlx::FromRow)]
struct MemberRow {
    #[sqlx(flatten)]
    user: UserRow,
    role: String,
    joined_at: OffsetDateTime,
    last_read_seq: i64,
    muted_until: Option<OffsetDateTime>,
}

impl TryFrom<MemberRow> for Member {
    type Error = Error;
    fn try_from(row: MemberRow) -> Result<Self> {
        Ok(Member {
            role: parse_role(&row.role)?,
            user: row.user.into(),
            joined_at: row.joined_at,
            last_read_seq: row.last_read_seq,
            muted_until: in_force(row.muted_until),
        })
    }
}

/// A `room_bans` row.
#[derive(sqlx::FromRow)]
struct BanRow {
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
