//! One-to-one calls: a call's row (`calls`) and the gateways' leases
//! (`gateway_leases`) that keep the calls of their connections alive.
//! Placing and ending a call take the room's lock and record
//! `call_started` / `call_ended` in its log in the same transaction; every
//! ender (a hangup, a closed connection, a sweep) goes through one
//! conditional update (`end_locked`), so a call ends once
//! whoever gets there first. An accept is one conditional update of the
//! row alone: of two, the database lets exactly one through.

use async_trait::async_trait;
use serde_json::Value;
use sqlx::types::Json;
use sqlx::Transaction;
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Type};
use time::OffsetDateTime;
use uuid::Uuid;

use super::adapter::SqlStore;
use super::dialect::{now, Dialect, Timestamp};
use super::driver_error::corrupt;
use super::{CallStore, Error, Result};
use crate::calls::{Call, CallEnd, CallEndReason, CallState, NewCall};
use crate::model::{CallId, ConnectionId, EventBody, RoomEvent, RoomId, UserId};

const CALL_BY_ID: &str = "SELECT id, room_id, caller, callee, video, state, reason, \
     caller_session, callee_session, created_at, accepted_at, ended_at FROM calls WHERE id = $1";

/// A user's calls that ring or are accepted, oldest first.
const ACTIVE_CALLS: &str = "SELECT id, room_id, caller, callee, video, state, reason, \
     caller_session, callee_session, created_at, accepted_at, ended_at FROM calls \
     WHERE (caller = $1 OR callee = $1) AND state <> 'ended' ORDER BY created_at, id";

/// Whether a user has a call that rings or is accepted (each side read
/// through its partial index).
const IN_A_CALL: &str = "SELECT 1 FROM calls WHERE caller = $1 AND state <> 'ended' \
     UNION ALL SELECT 1 FROM calls WHERE callee = $1 AND state <> 'ended'";

const ROOM_KIND: &str = "SELECT kind FROM rooms WHERE id = $1";

/// Enough members to tell a room of two from a larger one.
const MEMBERS: &str = "SELECT user_id FROM room_members WHERE room_id = $1 LIMIT 3";

/// A direct room's pending (or declined) request: who opened it.
const DIRECT_REQUEST: &str = "SELECT requested_by FROM direct_rooms WHERE room_id = $1";

/// Either way round, as `blocks` reads it.
const BLOCKED_BETWEEN: &str = "SELECT 1 FROM blocks \
     WHERE (blocker = $1 AND blocked = $2) OR (blocker = $2 AND blocked = $1) LIMIT 1";

const INSERT_CALL: &str = "INSERT INTO calls (id, room_id, caller, callee, video, state, reason, \
     caller_session, caller_gateway, created_at, ended_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, CASE WHEN $6 = 'ended' THEN $10 END) \
     RETURNING id, room_id, caller, callee, video, state, reason, \
     caller_session, callee_session, created_at, accepted_at, ended_at";

/// The callee takes a ringing call, unless either party is in another
/// accepted call. Concurrent accepts queue on the row, and the later one
/// finds it no longer ringing.
const ACCEPT: &str = "UPDATE calls SET state = 'accepted', callee_session = $3, \
     callee_gateway = $4, accepted_at = $5 \
     WHERE id = $1 AND callee = $2 AND state = 'ringing' AND NOT EXISTS (SELECT 1 FROM calls o \
         WHERE o.id <> calls.id AND o.state = 'accepted' \
         AND (o.caller IN (calls.caller, calls.callee) OR o.callee IN (calls.caller, calls.callee))) \
     RETURNING id, room_id, caller, callee, video, state, reason, \
     caller_session, callee_session, created_at, accepted_at, ended_at";

/// Ends a call that has not ended, with the reason for the state it is in
/// now (`$2` once accepted, `$3` while it rings; NULL: not ended in that
/// state).
const END: &str = "UPDATE calls SET state = 'ended', ended_at = $4, \
     reason = CASE WHEN state = 'accepted' THEN $2 ELSE $3 END \
     WHERE id = $1 AND ((state = 'accepted' AND $2 IS NOT NULL) \
         OR (state = 'ringing' AND $3 IS NOT NULL)) \
     RETURNING id, room_id, caller, callee, video, state, reason, \
     caller_session, callee_session, created_at, accepted_at, ended_at";

/// The calls a connection takes part in (a callee's connection takes part
/// once it accepted).
const CALLS_OF_CONNECTION: &str = "SELECT id, room_id, caller, callee, video, state, reason, \
     caller_session, callee_session, created_at, accepted_at, ended_at FROM calls \
     WHERE state <> 'ended' AND ((caller = $1 AND caller_session = $2) \
         OR (callee = $1 AND callee_session = $2)) ORDER BY created_at, id";

/// Calls that rang since before `$1`.
const UNANSWERED: &str = "SELECT id, room_id, caller, callee, video, state, reason, \
     caller_session, callee_session, created_at, accepted_at, ended_at FROM calls \
     WHERE state = 'ringing' AND created_at <= $1 ORDER BY created_at, id";

/// Calls with a party on a gateway not heard from since `$1` (or never).
const ON_LOST_GATEWAYS: &str = "SELECT id, room_id, caller, callee, video, state, reason, \
     caller_session, callee_session, created_at, accepted_at, ended_at FROM calls c \
     WHERE state <> 'ended' AND (NOT EXISTS (SELECT 1 FROM gateway_leases l \
             WHERE l.gateway = c.caller_gateway AND l.seen_at >= $1) \
         OR (c.callee_gateway IS NOT NULL AND NOT EXISTS (SELECT 1 FROM gateway_leases l \
             WHERE l.gateway = c.callee_gateway AND l.seen_at >= $1))) \
     ORDER BY created_at, id";

/// Calls whose parties may no longer call each other: one left the room,
/// or one blocks the other.
const NO_LONGER_ALLOWED: &str = "SELECT id, room_id, caller, callee, video, state, reason, \
     caller_session, callee_session, created_at, accepted_at, ended_at FROM calls c \
     WHERE state <> 'ended' AND (\
         NOT EXISTS (SELECT 1 FROM room_members m \
             WHERE m.room_id = c.room_id AND m.user_id = c.caller) \
         OR NOT EXISTS (SELECT 1 FROM room_members m \
             WHERE m.room_id = c.room_id AND m.user_id = c.callee) \
         OR EXISTS (SELECT 1 FROM blocks b WHERE (b.blocker = c.caller AND b.blocked = c.callee) \
             OR (b.blocker = c.callee AND b.blocked = c.caller))) \
     ORDER BY created_at, id";

const RENEW_LEASE: &str = "INSERT INTO gateway_leases (gateway, seen_at) VALUES ($1, $2) \
     ON CONFLICT (gateway) DO UPDATE SET seen_at = excluded.seen_at";

const DELETE_LEASE: &str = "DELETE FROM gateway_leases WHERE gateway = $1";

/// Whether any lease has been silent since before `$1` (a read, so a
/// sweep with nothing to forget takes no turn at the writer).
const STALE_LEASE: &str = "SELECT 1 FROM gateway_leases WHERE seen_at < $1 LIMIT 1";

const FORGET_LEASES: &str = "DELETE FROM gateway_leases WHERE seen_at < $1";

/// How many leases long a silent gateway's lease is kept before a sweep
/// forgets it (its calls were ended long before).
const LEASES_KEPT: u32 = 10;

/// A `calls` row.
#[derive(sqlx::FromRow)]
struct CallRow {
    id: Uuid,
    room_id: Uuid,
    caller: Uuid,
    callee: Uuid,
    video: bool,
    state: String,
    reason: Option<String>,
    caller_session: Uuid,
    callee_session: Option<Uuid>,
    created_at: OffsetDateTime,
    accepted_at: Option<OffsetDateTime>,
    ended_at: Option<OffsetDateTime>,
}

impl TryFrom<CallRow> for Call {
    type Error = Error;

    fn try_from(row: CallRow) -> Result<Self> {
        let state =
            CallState::parse(&row.state).ok_or_else(|| corrupt("calls.state", &row.state))?;
        let reason = row
            .reason
            .map(|r| CallEndReason::parse(&r).ok_or_else(|| corrupt("calls.reason", &r)))
            .transpose()?;
        Ok(Call {
            id: CallId(row.id),
            room_id: RoomId(row.room_id),
            caller: UserId(row.caller),
            callee: UserId(row.callee),
            video: row.video,
            state,
            reason,
            caller_session: ConnectionId(row.caller_session),
            callee_session: row.callee_session.map(ConnectionId),
            created_at: row.created_at,
            accepted_at: row.accepted_at,
            ended_at: row.ended_at,
        })
    }
}

/// How an ender ends a call: the reason in each state it may end it in
/// (`None`: it leaves a call in that state alone), and who is recorded as
/// ending it.
#[derive(Debug, Clone, Copy)]
struct Ending {
    accepted: Option<CallEndReason>,
    ringing: Option<CallEndReason>,
    /// `None`: the server ends it, in the caller's name.
    by: Option<UserId>,
}

impl Ending {
    /// What `end` does (see [`CallEnd`]), for `call` as read before its
    /// room was locked: the reasons are chosen by the update, on the row as
    /// it is then.
    fn of(end: CallEnd, call: &Call) -> Self {
        match end {
            CallEnd::Hangup(user) => Self {
                accepted: Some(CallEndReason::Completed),
                ringing: Some(if user == call.caller {
                    CallEndReason::Cancelled
                } else {
                    CallEndReason::Declined
                }),
                by: Some(user),
            },
            CallEnd::Decline(user) => Self {
                accepted: None,
                ringing: Some(CallEndReason::Declined),
                by: Some(user),
            },
            CallEnd::Unreachable => Self {
                accepted: None,
                ringing: Some(CallEndReason::Missed),
                by: None,
            },
        }
    }

    /// The server ends it, `ringing` while it rings and `failed` once
    /// accepted.
    fn by_server(ringing: CallEndReason) -> Self {
        Self {
            accepted: Some(CallEndReason::Failed),
            ringing: Some(ringing),
            by: None,
        }
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
    for<'r> bool: Encode<'r, DB> + Decode<'r, DB> + Type<DB>,
    for<'r> i32: Decode<'r, DB> + Type<DB>,
    for<'q> Option<Uuid>: Encode<'q, DB>,
    for<'q> Option<i64>: Encode<'q, DB>,
    for<'q> Option<String>: Encode<'q, DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    for<'q> Option<Json<Value>>: Encode<'q, DB>,
{
    async fn call_in(conn: &mut DB::Connection, id: CallId) -> Result<Option<Call>> {
        sqlx::query_as::<_, CallRow>(CALL_BY_ID)
            .bind(id.0)
            .fetch_optional(&mut *conn)
            .await?
            .map(Call::try_from)
            .transpose()
    }

    async fn in_a_call(conn: &mut DB::Connection, user: UserId) -> Result<bool> {
        let found: Option<i32> = sqlx::query_scalar(IN_A_CALL)
            .bind(user.0)
            .fetch_optional(&mut *conn)
            .await?;
        Ok(found.is_some())
    }

    /// Who `caller` would call in `room`: its other member, if it is a DM
    /// (or a private room of two) `caller` may call in now.
    async fn callee_in(conn: &mut DB::Connection, room: RoomId, caller: UserId) -> Result<UserId> {
        let kind: Option<String> = sqlx::query_scalar(ROOM_KIND)
            .bind(room.0)
            .fetch_optional(&mut *conn)
            .await?;
        let Some(kind) = kind else {
            return Err(Error::NotFound);
        };
        let members: Vec<Uuid> = sqlx::query_scalar(MEMBERS)
            .bind(room.0)
            .fetch_all(&mut *conn)
            .await?;
        if !members.contains(&caller.0) {
            return Err(Error::NotMember);
        }
        let request: Option<Option<Uuid>> = sqlx::query_scalar(DIRECT_REQUEST)
            .bind(room.0)
            .fetch_optional(&mut *conn)
            .await?;
        let of_two = request.is_some() || kind == "private";
        let callee = match members.as_slice() {
            [a, b] if of_two => UserId(if *a == caller.0 { *b } else { *a }),
            _ => return Err(Error::Conflict("not_direct")),
        };
        let blocked: Option<i32> = sqlx::query_scalar(BLOCKED_BETWEEN)
            .bind(caller.0)
            .bind(callee.0)
            .fetch_optional(&mut *conn)
            .await?;
        if blocked.is_some() {
            return Err(Error::Conflict("blocked"));
        }
        // A request (pending or declined) keeps its opener from calling
        // until the other accepts it.
        if request == Some(Some(caller.0)) {
            return Err(Error::Conflict("dm_request"));
        }
        Ok(callee)
    }

    /// Ends call `id` as `ending` says, if its state lets it, recording
    /// `call_ended`; `None` if it did not (ended already, or in a state
    /// `ending` leaves alone). The caller holds the room's lock, so the
    /// event's seq and the end commit together, once.
    async fn end_locked(
        tx: &mut Transaction<'_, DB>,
        id: CallId,
        ending: Ending,
    ) -> Result<Option<(Call, RoomEvent)>> {
        let row = sqlx::query_as::<_, CallRow>(END)
            .bind(id.0)
            .bind(ending.accepted.map(CallEndReason::as_str))
            .bind(ending.ringing.map(CallEndReason::as_str))
            .bind(Timestamp(now()))
            .fetch_optional(&mut **tx)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let call = Call::try_from(row)?;
        let reason = call.reason.expect("an ended call has a reason");
        let body = EventBody::CallEnded {
            call_id: call.id,
            caller: call.caller,
            callee: call.callee,
            reason,
            duration_secs: call.duration_secs(),
        };
        let by = ending.by.unwrap_or(call.caller);
        let event = Self::record(tx, call.room_id, by, body).await?;
        Ok(Some((call, event)))
    }

    /// Ends `call` (as read) in a transaction of its own, under its room's
    /// lock; `None` if something else ended it first.
    async fn end_alone(&self, call: &Call, ending: Ending) -> Result<Option<(Call, RoomEvent)>> {
        let mut tx = self.begin().await?;
        Self::lock_room(&mut tx, call.room_id).await?;
        let ended = Self::end_locked(&mut tx, call.id, ending).await?;
        tx.commit().await?;
        Ok(ended)
    }

    /// Ends each of `calls` still in a state `ending` ends, into `ended`.
    async fn end_each(
        &self,
        calls: Vec<CallRow>,
        ending: Ending,
        ended: &mut Vec<(Call, RoomEvent)>,
    ) -> Result<()> {
        for row in calls {
            let call = Call::try_from(row)?;
            if let Some(end) = self.end_alone(&call, ending).await? {
                ended.push(end);
            }
        }
        Ok(())
    }
}

#[async_trait]
impl<DB> CallStore for SqlStore<DB>
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
    for<'r> bool: Encode<'r, DB> + Decode<'r, DB> + Type<DB>,
    for<'r> i32: Decode<'r, DB> + Type<DB>,
    for<'q> Option<Uuid>: Encode<'q, DB>,
    for<'q> Option<i64>: Encode<'q, DB>,
    for<'q> Option<String>: Encode<'q, DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    for<'q> Option<Json<Value>>: Encode<'q, DB>,
{
    async fn place_call(&self, new: NewCall) -> Result<(Call, Vec<RoomEvent>)> {
        let mut tx = self.begin().await?;
        Self::lock_room(&mut tx, new.room).await?;
        let callee = Self::callee_in(&mut tx, new.room, new.caller).await?;
        if Self::in_a_call(&mut tx, new.caller).await? {
            return Err(Error::Conflict("in_call"));
        }
        // A busy callee still gets the call, ended at once: both parties
        // and the room's history see it was tried.
        let busy = Self::in_a_call(&mut tx, callee).await?;
        let at = now();
        let (state, reason) = if busy {
            (CallState::Ended, Some(CallEndReason::Busy))
        } else {
            (CallState::Ringing, None)
        };
        let row = sqlx::query_as::<_, CallRow>(INSERT_CALL)
            .bind(CallId::new().0)
            .bind(new.room.0)
            .bind(new.caller.0)
            .bind(callee.0)
            .bind(new.video)
            .bind(state.as_str())
            .bind(reason.map(CallEndReason::as_str))
            .bind(new.session.0)
            .bind(new.gateway)
            .bind(Timestamp(at))
            .fetch_one(&mut *tx)
            .await?;
        let call = Call::try_from(row)?;
        let started = EventBody::CallStarted {
            call_id: call.id,
            caller: call.caller,
            callee: call.callee,
            video: call.video,
        };
        let mut events = vec![Self::record(&mut tx, new.room, new.caller, started).await?];
        if let Some(reason) = call.reason {
            let ended = EventBody::CallEnded {
                call_id: call.id,
                caller: call.caller,
                callee: call.callee,
                reason,
                duration_secs: None,
            };
            events.push(Self::record(&mut tx, new.room, new.caller, ended).await?);
        }
        tx.commit().await?;
        Ok((call, events))
    }

    async fn accept_call(
        &self,
        id: CallId,
        user: UserId,
        session: ConnectionId,
        gateway: Uuid,
    ) -> Result<Call> {
        let mut tx = self.begin().await?;
        let row = sqlx::query_as::<_, CallRow>(ACCEPT)
            .bind(id.0)
            .bind(user.0)
            .bind(session.0)
            .bind(gateway)
            .bind(Timestamp(now()))
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            // Why not, on the row as it is now.
            return Err(match Self::call_in(&mut tx, id).await? {
                Some(call) if call.callee == user => match call.state {
                    CallState::Ringing => Error::Conflict("in_call"),
                    CallState::Accepted | CallState::Ended => Error::Conflict("call_not_ringing"),
                },
                _ => Error::NotFound,
            });
        };
        let call = Call::try_from(row)?;
        tx.commit().await?;
        Ok(call)
    }

    async fn end_call(&self, id: CallId, end: CallEnd) -> Result<(Call, RoomEvent)> {
        let mut tx = self.begin().await?;
        let Some(call) = Self::call_in(&mut tx, id).await? else {
            return Err(Error::NotFound);
        };
        let party = match end {
            CallEnd::Hangup(user) => call.has_party(user),
            CallEnd::Decline(user) => call.callee == user,
            CallEnd::Unreachable => true,
        };
        if !party {
            return Err(Error::NotFound);
        }
        Self::lock_room(&mut tx, call.room_id).await?;
        if let Some(ended) = Self::end_locked(&mut tx, id, Ending::of(end, &call)).await? {
            tx.commit().await?;
            return Ok(ended);
        }
        Err(match end {
            CallEnd::Hangup(_) => Error::Conflict("call_ended"),
            CallEnd::Decline(_) | CallEnd::Unreachable => Error::Conflict("call_not_ringing"),
        })
    }

    async fn call(&self, id: CallId) -> Result<Option<Call>> {
        let mut conn = self.reader().acquire().await?;
        Self::call_in(&mut conn, id).await
    }

    async fn active_calls(&self, user: UserId) -> Result<Vec<Call>> {
        sqlx::query_as::<_, CallRow>(ACTIVE_CALLS)
            .bind(user.0)
            .fetch_all(self.reader())
            .await?
            .into_iter()
            .map(Call::try_from)
            .collect()
    }

    async fn connection_closed(
        &self,
        user: UserId,
        session: ConnectionId,
    ) -> Result<Vec<(Call, RoomEvent)>> {
        let calls = sqlx::query_as::<_, CallRow>(CALLS_OF_CONNECTION)
            .bind(user.0)
            .bind(session.0)
            .fetch_all(self.writer())
            .await?;
        let mut ended = Vec::new();
        // A callee's connection takes part only once it accepted, so a
        // ringing call here is the caller's: cancelled.
        let ending = Ending::by_server(CallEndReason::Cancelled);
        self.end_each(calls, ending, &mut ended).await?;
        Ok(ended)
    }

    async fn gateway_alive(&self, gateway: Uuid) -> Result<()> {
        sqlx::query(RENEW_LEASE)
            .bind(gateway)
            .bind(Timestamp(now()))
            .execute(self.writer())
            .await?;
        Ok(())
    }

    async fn gateway_stopped(&self, gateway: Uuid) -> Result<()> {
        sqlx::query(DELETE_LEASE)
            .bind(gateway)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    async fn sweep_calls(
        &self,
        ring_timeout: std::time::Duration,
        lease: std::time::Duration,
    ) -> Result<Vec<(Call, RoomEvent)>> {
        // Every gateway sweeps every second: what it looks for is read
        // from the reader pool, so a sweep that finds nothing never queues
        // at the writer, which on SQLite is the appends' one connection.
        // Each call found is ended by a conditional update there.
        let at = now();
        let mut ended = Vec::new();
        let unanswered = sqlx::query_as::<_, CallRow>(UNANSWERED)
            .bind(Timestamp(at - ring_timeout))
            .fetch_all(self.reader())
            .await?;
        let missed = Ending {
            accepted: None,
            ringing: Some(CallEndReason::Missed),
            by: None,
        };
        self.end_each(unanswered, missed, &mut ended).await?;
        let lost = sqlx::query_as::<_, CallRow>(ON_LOST_GATEWAYS)
            .bind(Timestamp(at - lease))
            .fetch_all(self.reader())
            .await?;
        let failed = Ending::by_server(CallEndReason::Failed);
        self.end_each(lost, failed, &mut ended).await?;
        let disallowed = sqlx::query_as::<_, CallRow>(NO_LONGER_ALLOWED)
            .fetch_all(self.reader())
            .await?;
        self.end_each(disallowed, failed, &mut ended).await?;
        let forget_before = Timestamp(at - lease * LEASES_KEPT);
        let stale: Option<i32> = sqlx::query_scalar(STALE_LEASE)
            .bind(forget_before)
            .fetch_optional(self.reader())
            .await?;
        if stale.is_some() {
            sqlx::query(FORGET_LEASES)
                .bind(forget_before)
                .execute(self.writer())
                .await?;
        }
        Ok(ended)
    }
}
