//! Rooms: creating, renaming and deleting them, listing them, and the
//! direct room of two people. `RoomStore`'s membership half (members,
//! roles, bans) is in `members`; every change that other people see
//! appends its event to the room's log in the same transaction (`log`).

use async_trait::async_trait;
use serde_json::Value;
use sqlx::types::Json;
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Type};
use time::OffsetDateTime;
use uuid::Uuid;

use super::adapter::SqlStore;
use super::attachments::DELETE_ROOM_ATTACHMENTS;
use super::dialect::{now, Dialect, RowsAffected, Timestamp};
use super::driver_error::{corrupt, is_unique_violation, missing_reference};
use super::members::{in_force, parse_role, Members, INSERT_MEMBER};
use super::{Error, NewRoom, Result, RoomStore};
use crate::model::{
    Ban, EventBody, LeaveReason, Member, MyRoom, Role, Room, RoomEvent, RoomId, RoomKind, UserId,
};

const INSERT_ROOM: &str = "INSERT INTO rooms (id, kind, name, topic, created_by, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6) RETURNING id, kind, name, topic, created_by, created_at, last_seq";

pub(super) const ROOM_BY_ID: &str = "SELECT id, kind, name, topic, created_by, created_at, \
     last_seq, COALESCE((SELECT s.seconds FROM room_slow_modes s WHERE s.room_id = rooms.id), 0) \
     AS slow_mode_seconds FROM rooms WHERE id = $1";

const UPDATE_ROOM: &str = "UPDATE rooms SET name = $2, topic = $3 WHERE id = $1 \
     RETURNING id, kind, name, topic, created_by, created_at, last_seq";

const DELETE_ROOM: &str = "DELETE FROM rooms WHERE id = $1";

/// With each room, the other people's messages after my marker, counted
/// over the `UNREAD_WINDOW` ($2) events after it: a range of the primary
/// key, however long the room's log; and those of them that mention me or
/// the room, a range of the mentions index. Messages of people I block
/// count for neither (a primary-key lookup in `blocks` per message). A
/// membership with `closed_seq` (a DM never written in, or closed) is
/// listed only once a message follows it; a DM opened to me by someone
/// who shared no room with me is flagged a `request` until I accept it.
const MY_ROOMS: &str = "SELECT r.id, r.kind, r.name, r.topic, r.created_by, r.created_at, \
     r.last_seq, m.role, m.last_read_seq, m.muted_until, \
     COALESCE((SELECT s.seconds FROM room_slow_modes s WHERE s.room_id = r.id), 0) \
         AS slow_mode_seconds, \
     (SELECT COUNT(*) FROM room_events e WHERE e.room_id = r.id \
         AND e.seq > m.last_read_seq AND e.seq <= m.last_read_seq + $2 \
         AND e.kind = 'message' AND e.sender <> m.user_id \
         AND NOT EXISTS (SELECT 1 FROM blocks b \
             WHERE b.blocker = m.user_id AND b.blocked = e.sender)) AS unread, \
     (SELECT COUNT(DISTINCT n.seq) FROM mentions n WHERE n.room_id = r.id \
         AND (n.user_id = m.user_id OR n.user_id IS NULL) \
         AND n.seq > m.last_read_seq AND n.seq <= m.last_read_seq + $2 \
         AND NOT EXISTS (SELECT 1 FROM room_events e JOIN blocks b \
             ON b.blocker = m.user_id AND b.blocked = e.sender \
             WHERE e.room_id = n.room_id AND e.seq = n.seq)) AS unread_mentions, \
     COALESCE((SELECT CASE WHEN d.requested_by IS NOT NULL AND d.requested_by <> m.user_id \
         AND d.declined_at IS NULL THEN 1 ELSE 0 END \
         FROM direct_rooms d WHERE d.room_id = r.id), 0) AS request \
     FROM room_members m JOIN rooms r ON r.id = m.room_id \
     WHERE m.user_id = $1 AND (m.closed_seq IS NULL OR EXISTS (SELECT 1 FROM room_events e \
         WHERE e.room_id = r.id AND e.seq > m.closed_seq AND e.kind = 'message')) \
     ORDER BY r.kind, r.name, r.id";

const PUBLIC_ROOMS: &str = "SELECT id, kind, name, topic, created_by, created_at, last_seq, \
     COALESCE((SELECT s.seconds FROM room_slow_modes s WHERE s.room_id = rooms.id), 0) \
         AS slow_mode_seconds \
     FROM rooms WHERE kind = 'public' ORDER BY name, id";

const DIRECT_ROOM_ID: &str =
    "SELECT room_id FROM direct_rooms WHERE user_low = $1 AND user_high = $2";

const INSERT_DIRECT_ROOM: &str = "INSERT INTO direct_rooms \
     (user_low, user_high, room_id, requested_by) VALUES ($1, $2, $3, $4)";

/// Whether two users share a room (read in the DM's own transaction).
const SHARE_A_ROOM: &str = "SELECT 1 FROM room_members a \
     JOIN room_members b ON b.room_id = a.room_id \
     WHERE a.user_id = $1 AND b.user_id = $2 LIMIT 1";

/// A new DM is listed for neither member until its first message.
const HIDE_NEW_DIRECT_ROOM: &str = "UPDATE room_members SET closed_seq = 0 WHERE room_id = $1";

#[async_trait]
impl<DB> RoomStore for SqlStore<DB>
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
    async fn create_room(&self, new: NewRoom) -> Result<(Room, RoomEvent)> {
        let at = now();
        let mut tx = self.begin().await?;
        let row = sqlx::query_as::<_, RoomRow>(INSERT_ROOM)
            .bind(RoomId::new().0)
            .bind(new.kind.as_str())
            .bind(&new.name)
            .bind(&new.topic)
            .bind(new.created_by.0)
            .bind(Timestamp(at))
            .fetch_one(&mut *tx)
            .await
            .map_err(missing_reference)?;
        let mut room = Room::try_from(row)?;
        sqlx::query(INSERT_MEMBER)
            .bind(room.id.0)
            .bind(new.created_by.0)
            .bind(Role::Owner.as_str())
            .bind(Timestamp(at))
            .execute(&mut *tx)
            .await?;
        let user = new.created_by;
        let event = Self::record(&mut tx, room.id, user, EventBody::MemberJoined { user }).await?;
        tx.commit().await?;
        room.last_seq = event.seq;
        Ok((room, event))
    }

    async fn room(&self, id: RoomId) -> Result<Option<Room>> {
        sqlx::query_as::<_, RoomRow>(ROOM_BY_ID)
            .bind(id.0)
            .fetch_optional(self.reader())
            .await?
            .map(Room::try_from)
            .transpose()
    }

    async fn update_room(
        &self,
        id: RoomId,
        by: UserId,
        name: String,
        topic: String,
    ) -> Result<(Room, Option<RoomEvent>)> {
        let mut tx = self.begin().await?;
        Self::lock_room(&mut tx, id).await?;
        let current = sqlx::query_as::<_, RoomRow>(ROOM_BY_ID)
            .bind(id.0)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(Error::NotFound)?;
        let current = Room::try_from(current)?;
        if current.name == name && current.topic == topic {
            return Ok((current, None));
        }
        let row = sqlx::query_as::<_, RoomRow>(UPDATE_ROOM)
            .bind(id.0)
            .bind(&name)
            .bind(&topic)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(Error::NotFound)?;
        let mut room = Room::try_from(row)?;
        room.slow_mode_seconds = current.slow_mode_seconds;
        let event = Self::record(&mut tx, id, by, EventBody::RoomUpdated { name, topic }).await?;
        tx.commit().await?;
        room.last_seq = event.seq;
        Ok((room, Some(event)))
    }

    async fn delete_room(&self, id: RoomId) -> Result<bool> {
        let mut tx = self.begin().await?;
        // Its attachments' rows outlive it, marked deleted, until the
        // sweeper has deleted their bytes.
        sqlx::query(DELETE_ROOM_ATTACHMENTS)
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        let deleted = sqlx::query(DELETE_ROOM)
            .bind(id.0)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(deleted == 1)
    }

    async fn my_rooms(&self, user: UserId) -> Result<Vec<MyRoom>> {
        sqlx::query_as::<_, MyRoomRow>(MY_ROOMS)
            .bind(user.0)
            .bind(crate::model::UNREAD_WINDOW)
            .fetch_all(self.reader())
            .await?
            .into_iter()
            .map(MyRoom::try_from)
            .collect()
    }

    async fn public_rooms(&self) -> Result<Vec<Room>> {
        sqlx::query_as::<_, RoomRow>(PUBLIC_ROOMS)
            .fetch_all(self.reader())
            .await?
            .into_iter()
            .map(Room::try_from)
            .collect()
    }

    async fn direct_room(&self, a: UserId, b: UserId) -> Result<(Room, bool)> {
        let (low, high) = ordered_pair(a, b);
        // Two first messages between the same pair race here. The
        // pair's primary key lets one insert win; the loser's whole
        // transaction (room, members, events) rolls back and it
        // reads the winner's room on the next pass.
        for _ in 0..3 {
            let mut tx = self.begin().await?;
            let existing: Option<uuid::Uuid> = sqlx::query_scalar(DIRECT_ROOM_ID)
                .bind(low.0)
                .bind(high.0)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(id) = existing {
                let row = sqlx::query_as::<_, RoomRow>(ROOM_BY_ID)
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?;
                return Ok((row.try_into()?, false));
            }
            let at = now();
            let row = sqlx::query_as::<_, RoomRow>(INSERT_ROOM)
                .bind(RoomId::new().0)
                .bind(RoomKind::Direct.as_str())
                .bind("")
                .bind("")
                .bind(a.0)
                .bind(Timestamp(at))
                .fetch_one(&mut *tx)
                .await
                .map_err(missing_reference)?;
            let mut room = Room::try_from(row)?;
            // Strangers' first contact is a request the other accepts.
            let shared: Option<i32> = sqlx::query_scalar(SHARE_A_ROOM)
                .bind(a.0)
                .bind(b.0)
                .fetch_optional(&mut *tx)
                .await?;
            let requested_by = shared.is_none().then_some(a.0);
            let claimed = sqlx::query(INSERT_DIRECT_ROOM)
                .bind(low.0)
                .bind(high.0)
                .bind(room.id.0)
                .bind(requested_by)
                .execute(&mut *tx)
                .await;
            match claimed {
                Ok(_) => {}
                Err(e) if is_unique_violation(&e) => continue,
                Err(e) => return Err(missing_reference(e)),
            }
            for user in [a, b] {
                sqlx::query(INSERT_MEMBER)
                    .bind(room.id.0)
                    .bind(user.0)
                    .bind(Role::Member.as_str())
                    .bind(Timestamp(at))
                    .execute(&mut *tx)
                    .await?;
                let event =
                    Self::record(&mut tx, room.id, a, EventBody::MemberJoined { user }).await?;
                room.last_seq = event.seq;
            }
            sqlx::query(HIDE_NEW_DIRECT_ROOM)
                .bind(room.id.0)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            return Ok((room, true));
        }
        Err(Error::Conflict("direct_room"))
    }

    async fn role(&self, room: RoomId, user: UserId) -> Result<Option<Role>> {
        Members::role(self, room, user).await
    }

    async fn members(&self, room: RoomId) -> Result<Vec<Member>> {
        Members::members(self, room).await
    }

    async fn add_member(
        &self,
        room: RoomId,
        user: UserId,
        by: UserId,
        role: Role,
    ) -> Result<RoomEvent> {
        Members::add_member(self, room, user, by, role).await
    }

    async fn remove_member(
        &self,
        room: RoomId,
        user: UserId,
        by: UserId,
        reason: LeaveReason,
    ) -> Result<RoomEvent> {
        Members::remove_member(self, room, user, by, reason).await
    }

    async fn set_role(
        &self,
        room: RoomId,
        user: UserId,
        by: UserId,
        role: Role,
    ) -> Result<Vec<RoomEvent>> {
        Members::set_role(self, room, user, by, role).await
    }

    async fn ban(
        &self,
        room: RoomId,
        user: UserId,
        by: UserId,
        reason: String,
    ) -> Result<Option<RoomEvent>> {
        Members::ban(self, room, user, by, reason).await
    }

    async fn unban(&self, room: RoomId, user: UserId) -> Result<bool> {
        Members::unban(self, room, user).await
    }

    async fn bans(&self, room: RoomId) -> Result<Vec<Ban>> {
        Members::bans(self, room).await
    }
}

/// Orders a pair of users the way `direct_rooms` stores it.
fn ordered_pair(a: UserId, b: UserId) -> (UserId, UserId) {
    if a < b {
        (a, b)
    } else {
        (b, a)
    }
}

/// A `rooms` row.
#[derive(sqlx::FromRow)]
pub(super) struct RoomRow {
    id: Uuid,
    kind: String,
    name: String,
    topic: String,
    created_by: Option<Uuid>,
    created_at: OffsetDateTime,
    last_seq: i64,
    /// Absent from what an insert or an update of `rooms` returns: the
    /// caller knows it (none for a new room).
    #[sqlx(default)]
    slow_mode_seconds: i32,
}

impl TryFrom<RoomRow> for Room {
    type Error = Error;
    fn try_from(row: RoomRow) -> Result<Self> {
        Ok(Room {
            id: RoomId(row.id),
            kind: RoomKind::parse(&row.kind).ok_or_else(|| corrupt("rooms.kind", &row.kind))?,
            name: row.name,
            topic: row.topic,
            created_by: row.created_by.map(UserId),
            created_at: row.created_at,
            last_seq: row.last_seq,
            slow_mode_seconds: u32::try_from(row.slow_mode_seconds).map_err(|_| {
                corrupt(
                    "rooms.slow_mode_seconds",
                    &row.slow_mode_seconds.to_string(),
                )
            })?,
        })
    }
}

/// A room with the caller's membership.
#[derive(sqlx::FromRow)]
struct MyRoomRow {
    #[sqlx(flatten)]
    room: RoomRow,
    role: String,
    last_read_seq: i64,
    unread: i64,
    unread_mentions: i64,
    request: i32,
    muted_until: Option<OffsetDateTime>,
}

impl TryFrom<MyRoomRow> for MyRoom {
    type Error = Error;
    fn try_from(row: MyRoomRow) -> Result<Self> {
        Ok(MyRoom {
            role: parse_role(&row.role)?,
            room: row.room.try_into()?,
            last_read_seq: row.last_read_seq,
            unread: row.unread,
            unread_mentions: row.unread_mentions,
            request: row.request != 0,
            muted_until: in_force(row.muted_until),
        })
    }
}
