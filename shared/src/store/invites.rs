//! Invitations with consent: a member invites someone into a room, and the
//! invitation waits until the invitee accepts it (they join, `member_joined`)
//! or declines it (`invite_declined`), or the inviter or an owner or admin
//! cancels it (`invite_cancelled`). Every change takes the room's lock like
//! a membership change, is decided on the room as it is under it, and is
//! recorded in the room's log in the same transaction (`member_invited`
//! too), so the room's members see who was invited, and by whom.

use async_trait::async_trait;
use serde_json::Value;
use sqlx::types::Json;
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Type};
use time::OffsetDateTime;
use uuid::Uuid;

use super::accounts::UserRow;
use super::adapter::SqlStore;
use super::dialect::{now, Dialect, RowsAffected, Timestamp};
use super::driver_error::missing_reference;
use super::members::{parse_role, INSERT_MEMBER, ROLE};
use super::rooms::{RoomRow, ROOM_BY_ID};
use super::{Error, InviteStore, Result};
use crate::model::{EventBody, Invite, InviteId, Role, Room, RoomEvent, RoomId, UserId};

const INSERT_INVITE: &str =
    "INSERT INTO room_invites (id, room_id, user_id, invited_by, created_at) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (room_id, user_id) DO NOTHING";

const INVITE_BY_ID: &str =
    "SELECT id, room_id, user_id, invited_by, created_at FROM room_invites WHERE id = $1";

const INVITE_OF: &str = "SELECT id, room_id, user_id, invited_by, created_at FROM room_invites \
     WHERE room_id = $1 AND user_id = $2";

/// A user's pending invitations, newest first; at most 100 (more is a
/// flood, and the budget on invitations keeps any one inviter below it).
const INVITES_FOR: &str = "SELECT id, room_id, user_id, invited_by, created_at FROM room_invites \
     WHERE user_id = $1 ORDER BY created_at DESC, id LIMIT 100";

/// A room's pending invitations, oldest first.
const INVITES_INTO: &str = "SELECT id, room_id, user_id, invited_by, created_at FROM room_invites \
     WHERE room_id = $1 ORDER BY created_at, id LIMIT 200";

const DELETE_INVITE: &str = "DELETE FROM room_invites WHERE id = $1";

const IS_BANNED: &str = "SELECT 1 FROM room_bans WHERE room_id = $1 AND user_id = $2";

const USER_BY_ID: &str = "SELECT id, username, display_name, created_at FROM users WHERE id = $1";

/// A `room_invites` row.
#[derive(sqlx::FromRow)]
struct InviteRow {
    id: Uuid,
    room_id: Uuid,
    user_id: Uuid,
    invited_by: Option<Uuid>,
    created_at: OffsetDateTime,
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
    /// An invitation as its invitee sees it: the room and who invited them.
    async fn full_invite(conn: &mut DB::Connection, row: InviteRow) -> Result<Invite> {
        let room = sqlx::query_as::<_, RoomRow>(ROOM_BY_ID)
            .bind(row.room_id)
            .fetch_one(&mut *conn)
            .await?;
        let invitee = sqlx::query_as::<_, UserRow>(USER_BY_ID)
            .bind(row.user_id)
            .fetch_one(&mut *conn)
            .await?
            .into();
        let invited_by = match row.invited_by {
            Some(id) => sqlx::query_as::<_, UserRow>(USER_BY_ID)
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?
                .map(Into::into),
            None => None,
        };
        Ok(Invite {
            id: InviteId(row.id),
            room: Room::try_from(room)?,
            user_id: UserId(row.user_id),
            invitee,
            invited_by,
            created_at: row.created_at,
        })
    }

    async fn is_banned(conn: &mut DB::Connection, room: RoomId, user: UserId) -> Result<bool> {
        let banned: Option<i32> = sqlx::query_scalar(IS_BANNED)
            .bind(room.0)
            .bind(user.0)
            .fetch_optional(&mut *conn)
            .await?;
        Ok(banned.is_some())
    }

    async fn role_in(
        conn: &mut DB::Connection,
        room: RoomId,
        user: UserId,
    ) -> Result<Option<Role>> {
        let role: Option<String> = sqlx::query_scalar(ROLE)
            .bind(room.0)
            .bind(user.0)
            .fetch_optional(&mut *conn)
            .await?;
        role.as_deref().map(parse_role).transpose()
    }
}

#[async_trait]
impl<DB> InviteStore for SqlStore<DB>
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
    async fn create_invite(
        &self,
        room: RoomId,
        user: UserId,
        by: UserId,
    ) -> Result<(Invite, RoomEvent)> {
        let mut tx = self.begin().await?;
        Self::lock_room(&mut tx, room).await?;
        if Self::role_in(&mut tx, room, by).await?.is_none() {
            return Err(Error::NotMember);
        }
        if Self::is_banned(&mut tx, room, user).await? {
            return Err(Error::Banned);
        }
        if Self::role_in(&mut tx, room, user).await?.is_some() {
            return Err(Error::Conflict("member"));
        }
        let id = InviteId::new();
        let created = sqlx::query(INSERT_INVITE)
            .bind(id.0)
            .bind(room.0)
            .bind(user.0)
            .bind(by.0)
            .bind(Timestamp(now()))
            .execute(&mut *tx)
            .await
            .map_err(missing_reference)?
            .rows_affected();
        if created == 0 {
            return Err(Error::Conflict("invited"));
        }
        let event = Self::record(&mut tx, room, by, EventBody::MemberInvited { user }).await?;
        let row = sqlx::query_as::<_, InviteRow>(INVITE_BY_ID)
            .bind(id.0)
            .fetch_one(&mut *tx)
            .await?;
        let invite = Self::full_invite(&mut tx, row).await?;
        tx.commit().await?;
        Ok((invite, event))
    }

    async fn invites(&self, user: UserId) -> Result<Vec<Invite>> {
        let mut conn = self.reader().acquire().await?;
        let rows = sqlx::query_as::<_, InviteRow>(INVITES_FOR)
            .bind(user.0)
            .fetch_all(&mut *conn)
            .await?;
        let mut invites = Vec::with_capacity(rows.len());
        for row in rows {
            invites.push(Self::full_invite(&mut conn, row).await?);
        }
        Ok(invites)
    }

    async fn room_invites(&self, room: RoomId) -> Result<Vec<Invite>> {
        let mut conn = self.reader().acquire().await?;
        let rows = sqlx::query_as::<_, InviteRow>(INVITES_INTO)
            .bind(room.0)
            .fetch_all(&mut *conn)
            .await?;
        let mut invites = Vec::with_capacity(rows.len());
        for row in rows {
            invites.push(Self::full_invite(&mut conn, row).await?);
        }
        Ok(invites)
    }

    async fn invite(&self, id: InviteId) -> Result<Option<Invite>> {
        let mut conn = self.reader().acquire().await?;
        let row = sqlx::query_as::<_, InviteRow>(INVITE_BY_ID)
            .bind(id.0)
            .fetch_optional(&mut *conn)
            .await?;
        match row {
            Some(row) => Ok(Some(Self::full_invite(&mut conn, row).await?)),
            None => Ok(None),
        }
    }

    async fn accept_invite(&self, id: InviteId, user: UserId) -> Result<RoomEvent> {
        let room = self
            .invite(id)
            .await?
            .filter(|i| i.user_id == user)
            .ok_or(Error::NotFound)?
            .room
            .id;
        let mut tx = self.begin().await?;
        Self::lock_room(&mut tx, room).await?;
        // Again under the lock: it may have been cancelled meanwhile.
        let row = sqlx::query_as::<_, InviteRow>(INVITE_BY_ID)
            .bind(id.0)
            .fetch_optional(&mut *tx)
            .await?;
        if row.is_none() {
            return Err(Error::NotFound);
        }
        if Self::is_banned(&mut tx, room, user).await? {
            return Err(Error::Banned);
        }
        sqlx::query(DELETE_INVITE)
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        let added = sqlx::query(INSERT_MEMBER)
            .bind(room.0)
            .bind(user.0)
            .bind(Role::Member.as_str())
            .bind(Timestamp(now()))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if added == 0 {
            // Joined by other means meanwhile: the invitation is spent.
            tx.commit().await?;
            return Err(Error::Conflict("member"));
        }
        let event = Self::record(&mut tx, room, user, EventBody::MemberJoined { user }).await?;
        tx.commit().await?;
        Ok(event)
    }

    async fn decline_invite(&self, id: InviteId, user: UserId) -> Result<RoomEvent> {
        let room = self
            .invite(id)
            .await?
            .filter(|i| i.user_id == user)
            .ok_or(Error::NotFound)?
            .room
            .id;
        let mut tx = self.begin().await?;
        Self::lock_room(&mut tx, room).await?;
        let deleted = sqlx::query(DELETE_INVITE)
            .bind(id.0)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if deleted == 0 {
            return Err(Error::NotFound);
        }
        let event = Self::record(&mut tx, room, user, EventBody::InviteDeclined { user }).await?;
        tx.commit().await?;
        Ok(event)
    }

    async fn cancel_invite(
        &self,
        room: RoomId,
        user: UserId,
        by: UserId,
    ) -> Result<(InviteId, RoomEvent)> {
        let mut tx = self.begin().await?;
        Self::lock_room(&mut tx, room).await?;
        let row = sqlx::query_as::<_, InviteRow>(INVITE_OF)
            .bind(room.0)
            .bind(user.0)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(Error::NotFound)?;
        // Server roles count: an admin or moderator withdraws any.
        let role = Self::standing(&mut tx, room, by).await?.effective();
        let inviter = row.invited_by == Some(by.0) && role.is_some();
        if !inviter && role.is_none_or(|r| r < Role::Admin) {
            return Err(Error::NotAllowed);
        }
        sqlx::query(DELETE_INVITE)
            .bind(row.id)
            .execute(&mut *tx)
            .await?;
        let event = Self::record(&mut tx, room, by, EventBody::InviteCancelled { user }).await?;
        tx.commit().await?;
        Ok((InviteId(row.id), event))
    }
}
