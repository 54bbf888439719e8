//! Moderation in a room: timeouts (a member muted until a time) and slow
//! mode (the shortest interval between one member's messages). Setting
//! them takes the room's lock like every membership change and is decided
//! on the roles as they are under it; enforcing them is the message
//! append's (`group_commit`), at its commit, through [`may_send`], and a
//! change of a message's (`messages`), for reactions and edits.

use async_trait::async_trait;
use serde_json::Value;
use sqlx::types::Json;
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Type};
use time::OffsetDateTime;
use uuid::Uuid;

use super::adapter::SqlStore;
use super::dialect::{Dialect, RowsAffected, Timestamp};
use super::members::{in_force, parse_role};
use super::rooms::{RoomRow, ROOM_BY_ID};
use super::{Error, ModerationStore, Result, Standing};
use crate::model::{EventBody, Role, Room, RoomEvent, RoomId, UserId};

/// A member's role and mute, read under the room's lock.
pub(super) const STANDING: &str =
    "SELECT role, muted_until FROM room_members WHERE room_id = $1 AND user_id = $2";

const SET_MUTE: &str =
    "UPDATE room_members SET muted_until = $3 WHERE room_id = $1 AND user_id = $2";

const CLEAR_MUTE: &str =
    "UPDATE room_members SET muted_until = NULL WHERE room_id = $1 AND user_id = $2";

/// Turns slow mode on or changes it, only if it differs: no row
/// affected, no change.
const SET_SLOW_MODE: &str = "INSERT INTO room_slow_modes (room_id, seconds) VALUES ($1, $2) \
     ON CONFLICT (room_id) DO UPDATE SET seconds = excluded.seconds \
     WHERE room_slow_modes.seconds <> excluded.seconds";

/// Turns slow mode off: no row affected, it was off.
const CLEAR_SLOW_MODE: &str = "DELETE FROM room_slow_modes WHERE room_id = $1";

/// A change of slow mode starts every member's interval afresh: the times
/// kept under the previous setting are forgotten (a rare write, by a
/// moderator, so the count is one a member's client can show: from their
/// first message after the change).
const FORGET_MESSAGE_TIMES: &str = "UPDATE room_members SET last_message_at = NULL \
     WHERE room_id = $1 AND last_message_at IS NOT NULL";

/// Whether a member may send a message at `ts` (the commit's time): not
/// while muted, and, in a room with slow mode on, not sooner than its
/// interval after their previous message, unless they are an owner or
/// admin (who run the room and answer its questions).
pub(super) fn may_send(
    role: Role,
    muted_until: Option<OffsetDateTime>,
    last_message_at: Option<OffsetDateTime>,
    slow_mode_seconds: u32,
    ts: OffsetDateTime,
) -> Result<()> {
    if let Some(until) = muted_until.filter(|until| *until > ts) {
        return Err(Error::Muted(until));
    }
    if slow_mode_seconds == 0 || role >= Role::Admin {
        return Ok(());
    }
    if let Some(last) = last_message_at {
        let next = last + time::Duration::seconds(i64::from(slow_mode_seconds));
        if next > ts {
            return Err(slow_mode_wait(next - ts));
        }
    }
    Ok(())
}

/// The refusal for a send `wait` too early: whole seconds, rounded up, so
/// a client that waits that long is never refused again.
pub(super) fn slow_mode_wait(wait: time::Duration) -> Error {
    let whole = wait.whole_seconds() + i64::from(wait.subsec_nanoseconds() > 0);
    Error::SlowMode(u32::try_from(whole.max(1)).unwrap_or(u32::MAX))
}

/// A `room_members` row as moderation reads it.
#[derive(sqlx::FromRow)]
struct StandingRow {
    role: String,
    muted_until: Option<OffsetDateTime>,
}

impl TryFrom<StandingRow> for Standing {
    type Error = Error;
    fn try_from(row: StandingRow) -> Result<Self> {
        Ok(Standing {
            role: parse_role(&row.role)?,
            muted_until: in_force(row.muted_until),
        })
    }
}

/// Reading a standing asks less of the driver than the changes do (the
/// message changes call it too).
impl<DB> SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'r> &'r str: ColumnIndex<DB::Row>,
    for<'q> Uuid: Encode<'q, DB> + Type<DB>,
    for<'q> String: Decode<'q, DB> + Type<DB>,
    for<'r> OffsetDateTime: Decode<'r, DB> + Type<DB>,
{
    /// `user`'s standing, read on `tx` (after the room's lock, in a
    /// change).
    pub(super) async fn standing_in(
        tx: &mut DB::Connection,
        room: RoomId,
        user: UserId,
    ) -> Result<Option<Standing>> {
        sqlx::query_as::<_, StandingRow>(STANDING)
            .bind(room.0)
            .bind(user.0)
            .fetch_optional(&mut *tx)
            .await?
            .map(Standing::try_from)
            .transpose()
    }
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
    /// Under the room's lock: `by` must outrank `user`, both members.
    async fn check_moderator(
        tx: &mut DB::Connection,
        room: RoomId,
        user: UserId,
        by: UserId,
    ) -> Result<Standing> {
        // Ranks are effective roles: a server admin acts as owner and a
        // moderator as room admin, on either side.
        let actor = Self::standing(tx, room, by).await?.effective();
        let target = Self::standing_in(tx, room, user)
            .await?
            .ok_or(Error::NotMember)?;
        let rank = Self::standing(tx, room, user)
            .await?
            .effective()
            .unwrap_or(target.role);
        match actor {
            Some(actor) if actor >= Role::Admin && actor > rank => Ok(target),
            _ => Err(Error::NotAllowed),
        }
    }
}

#[async_trait]
impl<DB> ModerationStore for SqlStore<DB>
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
    async fn mute(
        &self,
        room: RoomId,
        user: UserId,
        by: UserId,
        until: OffsetDateTime,
    ) -> Result<RoomEvent> {
        let mut tx = self.begin().await?;
        Self::lock_room(&mut tx, room).await?;
        Self::check_moderator(&mut tx, room, user, by).await?;
        sqlx::query(SET_MUTE)
            .bind(room.0)
            .bind(user.0)
            .bind(Timestamp(until))
            .execute(&mut *tx)
            .await?;
        let event = Self::record(&mut tx, room, by, EventBody::MemberMuted { user, until }).await?;
        tx.commit().await?;
        Ok(event)
    }

    async fn unmute(&self, room: RoomId, user: UserId, by: UserId) -> Result<RoomEvent> {
        let mut tx = self.begin().await?;
        Self::lock_room(&mut tx, room).await?;
        let target = Self::check_moderator(&mut tx, room, user, by).await?;
        if target.muted_until.is_none() {
            return Err(Error::Conflict("not_muted"));
        }
        sqlx::query(CLEAR_MUTE)
            .bind(room.0)
            .bind(user.0)
            .execute(&mut *tx)
            .await?;
        let event = Self::record(&mut tx, room, by, EventBody::MemberUnmuted { user }).await?;
        tx.commit().await?;
        Ok(event)
    }

    async fn standing(&self, room: RoomId, user: UserId) -> Result<Option<Standing>> {
        let mut conn = self.reader().acquire().await?;
        Self::standing_in(&mut conn, room, user).await
    }

    async fn set_slow_mode(
        &self,
        room: RoomId,
        by: UserId,
        seconds: u32,
    ) -> Result<(Room, Option<RoomEvent>)> {
        let mut tx = self.begin().await?;
        Self::lock_room(&mut tx, room).await?;
        let mut current = sqlx::query_as::<_, RoomRow>(ROOM_BY_ID)
            .bind(room.0)
            .fetch_optional(&mut *tx)
            .await
            .map(|row| row.map(Room::try_from))?
            .transpose()?
            .ok_or(Error::NotFound)?;
        let actor = Self::standing(&mut tx, room, by)
            .await?
            .effective()
            .ok_or(Error::NotMember)?;
        if actor < Role::Admin {
            return Err(Error::NotAllowed);
        }
        let changed = if seconds == 0 {
            sqlx::query(CLEAR_SLOW_MODE)
                .bind(room.0)
                .execute(&mut *tx)
                .await?
        } else {
            sqlx::query(SET_SLOW_MODE)
                .bind(room.0)
                .bind(i64::from(seconds))
                .execute(&mut *tx)
                .await?
        };
        if changed.rows_affected() == 0 {
            return Ok((current, None));
        }
        sqlx::query(FORGET_MESSAGE_TIMES)
            .bind(room.0)
            .execute(&mut *tx)
            .await?;
        let event = Self::record(&mut tx, room, by, EventBody::SlowModeChanged { seconds }).await?;
        tx.commit().await?;
        current.slow_mode_seconds = seconds;
        current.last_seq = event.seq;
        Ok((current, Some(event)))
    }
}

#[cfg(test)]
mod tests {
    use time::{Duration, OffsetDateTime};

    use super::{may_send, Error, Role};

    /// 2026-12-07 20:00 UTC.
    const T: OffsetDateTime = match OffsetDateTime::from_unix_timestamp(1_796_673_600) {
        Ok(t) => t,
        Err(_) => panic!("a valid time"),
    };

    #[test]
    fn a_mute_in_force_refuses_with_its_end_and_one_past_does_not() {
        let until = T + Duration::minutes(5);
        assert!(matches!(
            may_send(Role::Member, Some(until), None, 0, T),
            Err(Error::Muted(t)) if t == until
        ));
        assert!(may_send(Role::Member, Some(T), None, 0, T).is_ok());
        // A mute binds an admin too (only an owner mutes one).
        assert!(may_send(Role::Admin, Some(until), None, 0, T).is_err());
    }

    #[test]
    fn slow_mode_counts_from_the_last_message_rounding_the_wait_up() {
        let last = T - Duration::milliseconds(2_500);
        assert!(matches!(
            may_send(Role::Member, None, Some(last), 10, T),
            Err(Error::SlowMode(8))
        ));
        assert!(may_send(Role::Member, None, Some(T - Duration::seconds(10)), 10, T).is_ok());
        assert!(may_send(Role::Member, None, None, 10, T).is_ok());
        assert!(may_send(Role::Member, None, Some(T), 0, T).is_ok());
        // Owners and admins are exempt.
        assert!(may_send(Role::Admin, None, Some(T), 10, T).is_ok());
        assert!(may_send(Role::Owner, None, Some(T), 10, T).is_ok());
    }
}
