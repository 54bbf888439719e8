//! Invite links: a secret code that lets whoever has it join a room, made
//! by its owners and admins, with an optional expiry and use limit, and
//! revocable. A join by link takes the room's lock like every membership
//! change and counts its use with a guarded update in the same
//! transaction, so two joins on a link's last use cannot both pass; a
//! refused join counts nothing.

use async_trait::async_trait;
use serde_json::Value;
use sqlx::types::Json;
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Type};
use time::OffsetDateTime;
use uuid::Uuid;

use super::adapter::SqlStore;
use super::dialect::{now, Dialect, RowsAffected, Timestamp};
use super::driver_error::corrupt;
use super::members::{INSERT_MEMBER, ROLE};
use super::{Error, InviteLinkStore, NewInviteLink, Result};
use crate::model::{EventBody, InviteLink, Role, RoomEvent, RoomId, UserId};

const COLUMNS: &str =
    "code, room_id, created_by, created_at, expires_at, max_uses, uses, revoked_at";

const ROOM_EXISTS: &str = "SELECT 1 FROM rooms WHERE id = $1";

/// `$5` says whether the link expires, at `$6`: a `Timestamp` is bound
/// as itself, never as an `Option`, in both dialects.
const INSERT_LINK: &str = "INSERT INTO room_invite_links \
     (code, room_id, created_by, created_at, expires_at, max_uses) \
     VALUES ($1, $2, $3, $4, CASE WHEN $5 THEN $6 END, $7)";

/// Counts one use if the link still lets people in (`$2`: now).
const USE_LINK: &str = "UPDATE room_invite_links SET uses = uses + 1 \
     WHERE code = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2) \
     AND (max_uses IS NULL OR uses < max_uses)";

const REVOKE_LINK: &str = "UPDATE room_invite_links SET revoked_at = $3 \
     WHERE room_id = $1 AND code = $2 AND revoked_at IS NULL";

const IS_BANNED: &str = "SELECT 1 FROM room_bans WHERE room_id = $1 AND user_id = $2";

/// A join by link spends a pending invitation into the room.
const SPEND_INVITE: &str = "DELETE FROM room_invites WHERE room_id = $1 AND user_id = $2";

fn by_code() -> String {
    format!("SELECT {COLUMNS} FROM room_invite_links WHERE code = $1")
}

fn of_room() -> String {
    format!(
        "SELECT {COLUMNS} FROM room_invite_links WHERE room_id = $1 \
         ORDER BY created_at DESC, code LIMIT 200"
    )
}

/// A `room_invite_links` row.
#[derive(sqlx::FromRow)]
struct LinkRow {
    code: String,
    room_id: Uuid,
    created_by: Option<Uuid>,
    created_at: OffsetDateTime,
    expires_at: Option<OffsetDateTime>,
    max_uses: Option<i32>,
    uses: i32,
    revoked_at: Option<OffsetDateTime>,
}

impl TryFrom<LinkRow> for InviteLink {
    type Error = Error;
    fn try_from(row: LinkRow) -> Result<Self> {
        let count = |n: i32| {
            u32::try_from(n).map_err(|_| corrupt("room_invite_links.uses", &n.to_string()))
        };
        Ok(InviteLink {
            code: row.code,
            room_id: RoomId(row.room_id),
            created_by: row.created_by.map(UserId),
            created_at: row.created_at,
            expires_at: row.expires_at,
            max_uses: row.max_uses.map(count).transpose()?,
            uses: count(row.uses)?,
            revoked_at: row.revoked_at,
        })
    }
}

/// Why a link let nobody in (it exists): the first reason that holds.
fn refusal(link: &InviteLink, at: OffsetDateTime) -> Error {
    if link.revoked_at.is_some() {
        Error::Conflict("link_revoked")
    } else if link.expires_at.is_some_and(|t| t <= at) {
        Error::Conflict("link_expired")
    } else {
        Error::Conflict("link_used_up")
    }
}

#[async_trait]
impl<DB> InviteLinkStore for SqlStore<DB>
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
    for<'r> bool: Encode<'r, DB> + Decode<'r, DB> + Type<DB>,
    for<'q> Option<Uuid>: Encode<'q, DB>,
    for<'q> Option<i64>: Encode<'q, DB>,
    for<'q> Option<String>: Encode<'q, DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    for<'q> Option<Json<Value>>: Encode<'q, DB>,
{
    async fn create_invite_link(
        &self,
        room: RoomId,
        by: UserId,
        link: NewInviteLink,
    ) -> Result<InviteLink> {
        let mut tx = self.begin().await?;
        Self::lock_room(&mut tx, room).await?;
        let exists: Option<i32> = sqlx::query_scalar(ROOM_EXISTS)
            .bind(room.0)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(Error::NotFound);
        }
        // Server roles count: an admin or moderator makes links anywhere.
        match Self::standing(&mut tx, room, by).await?.effective() {
            None => return Err(Error::NotMember),
            Some(role) if role < Role::Admin => return Err(Error::NotAllowed),
            Some(_) => {}
        }
        let at = now();
        sqlx::query(INSERT_LINK)
            .bind(&link.code)
            .bind(room.0)
            .bind(by.0)
            .bind(Timestamp(at))
            .bind(link.expires_at.is_some())
            .bind(Timestamp(link.expires_at.unwrap_or(at)))
            .bind(link.max_uses.map(i64::from))
            .execute(&mut *tx)
            .await?;
        let row = sqlx::query_as::<_, LinkRow>(&by_code())
            .bind(&link.code)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        row.try_into()
    }

    async fn invite_links(&self, room: RoomId) -> Result<Vec<InviteLink>> {
        sqlx::query_as::<_, LinkRow>(&of_room())
            .bind(room.0)
            .fetch_all(self.reader())
            .await?
            .into_iter()
            .map(InviteLink::try_from)
            .collect()
    }

    async fn revoke_invite_link(&self, room: RoomId, code: &str) -> Result<bool> {
        let revoked = sqlx::query(REVOKE_LINK)
            .bind(room.0)
            .bind(code)
            .bind(Timestamp(now()))
            .execute(self.writer())
            .await?
            .rows_affected();
        Ok(revoked == 1)
    }

    async fn join_by_link(&self, code: &str, user: UserId) -> Result<RoomEvent> {
        let room = sqlx::query_as::<_, LinkRow>(&by_code())
            .bind(code)
            .fetch_optional(self.reader())
            .await?
            .map(|row| RoomId(row.room_id))
            .ok_or(Error::NotFound)?;
        let mut tx = self.begin().await?;
        Self::lock_room(&mut tx, room).await?;
        let at = now();
        let banned: Option<i32> = sqlx::query_scalar(IS_BANNED)
            .bind(room.0)
            .bind(user.0)
            .fetch_optional(&mut *tx)
            .await?;
        if banned.is_some() {
            return Err(Error::Banned);
        }
        let role: Option<String> = sqlx::query_scalar(ROLE)
            .bind(room.0)
            .bind(user.0)
            .fetch_optional(&mut *tx)
            .await?;
        if role.is_some() {
            return Err(Error::Conflict("member"));
        }
        let used = sqlx::query(USE_LINK)
            .bind(code)
            .bind(Timestamp(at))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if used == 0 {
            let link = sqlx::query_as::<_, LinkRow>(&by_code())
                .bind(code)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(Error::NotFound)?;
            return Err(refusal(&link.try_into()?, at));
        }
        sqlx::query(INSERT_MEMBER)
            .bind(room.0)
            .bind(user.0)
            .bind(Role::Member.as_str())
            .bind(Timestamp(at))
            .execute(&mut *tx)
            .await?;
        sqlx::query(SPEND_INVITE)
            .bind(room.0)
            .bind(user.0)
            .execute(&mut *tx)
            .await?;
        let event = Self::record(&mut tx, room, user, EventBody::MemberJoined { user }).await?;
        tx.commit().await?;
        Ok(event)
    }
}
