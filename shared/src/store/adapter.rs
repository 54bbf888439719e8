//! The adapter code both databases share. The statements in `rows` are the
//! same for PostgreSQL and SQLite, so the logic around them is written once
//! and stamped out per driver by `impl_store!`: sqlx's generic-over-database
//! bounds would say the same thing in far more lines, and its concrete types
//! keep compile errors readable. An adapter provides `reader()` (a pool for
//! queries) and `writer()` (a pool for transactions), and this macro does the
//! rest.

/// The current time, truncated to the microsecond both databases store, so
/// an event returned by an append equals the same event read back.
pub(super) fn now() -> time::OffsetDateTime {
    let t = time::OffsetDateTime::now_utc();
    t.replace_nanosecond(t.nanosecond() / 1_000 * 1_000)
        .expect("a truncated nanosecond is in range")
}

/// A point in time as bound to a statement. PostgreSQL gets a `timestamptz`.
/// SQLite keeps timestamps as TEXT and compares and sorts them as text
/// (token expiry, session and member order), so it gets one fixed-width UTC
/// form: sqlx's own RFC 3339 encoding drops trailing zeros of the fraction
/// (and the whole fraction when it is zero), and then `"…:01Z" > "…:01.5Z"`
/// would keep a token alive for up to a second past its expiry.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timestamp(pub time::OffsetDateTime);

impl sqlx::Type<sqlx::Sqlite> for Timestamp {
    fn type_info() -> sqlx::sqlite::SqliteTypeInfo {
        <time::OffsetDateTime as sqlx::Type<sqlx::Sqlite>>::type_info()
    }
}

impl<'q> sqlx::Encode<'q, sqlx::Sqlite> for Timestamp {
    fn encode_by_ref(
        &self,
        buf: &mut Vec<sqlx::sqlite::SqliteArgumentValue<'q>>,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        // `YYYY-MM-DDTHH:MM:SS.ffffffZ`: RFC 3339, so it decodes as before,
        // and text order is time order.
        let t = self.0.to_offset(time::UtcOffset::UTC);
        let text = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.microsecond()
        );
        <String as sqlx::Encode<'q, sqlx::Sqlite>>::encode(text, buf)
    }
}

impl sqlx::Type<sqlx::Postgres> for Timestamp {
    fn type_info() -> sqlx::postgres::PgTypeInfo {
        <time::OffsetDateTime as sqlx::Type<sqlx::Postgres>>::type_info()
    }
}

impl sqlx::Encode<'_, sqlx::Postgres> for Timestamp {
    fn encode_by_ref(
        &self,
        buf: &mut sqlx::postgres::PgArgumentBuffer,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        <time::OffsetDateTime as sqlx::Encode<'_, sqlx::Postgres>>::encode_by_ref(&self.0, buf)
    }
}

macro_rules! impl_store {
    ($store:ty, $db:ty) => {
        use async_trait::async_trait;
        use sqlx::Transaction;

        use $crate::model::{
            Ban, EventBody, EventId, LeaveReason, Member, MyRoom, Role, Room, RoomEvent, RoomId,
            RoomKind, SessionId, User, UserId,
        };
        use $crate::store::adapter::{now, Timestamp};
        use $crate::store::driver_error::{is_unique_violation, missing_reference};
        use $crate::store::durability::Probe;
        use $crate::store::rows::{self, *};
        use $crate::store::{
            ordered_pair, Appended, Credentials, Error, Health, NewMessage,
            NewRoom, NewUser, Page, RefreshToken, Result, RoomLog, RoomStore, Rotation, Session,
            SessionStore, Store, UserStore,
        };

        impl $store {
            /// Appends an api-written event inside `tx`, allocating the
            /// room's next seq (message appends are in `group_commit`).
            /// It has no client_id, so it cannot collide with another.
            async fn record(
                tx: &mut Transaction<'_, $db>,
                room: RoomId,
                by: UserId,
                body: EventBody,
            ) -> Result<RoomEvent> {
                let seq: Option<i64> = sqlx::query_scalar(NEXT_SEQ)
                    .bind(room.0)
                    .fetch_optional(&mut **tx)
                    .await?;
                let Some(seq) = seq else {
                    return Err(Error::NotFound);
                };
                let event = RoomEvent {
                    room_id: room,
                    seq,
                    id: EventId::new(),
                    sender: Some(by),
                    ts: now(),
                    client_id: None,
                    body,
                };
                Self::insert_event(tx, &event, None).await?;
                Ok(event)
            }

            /// Inserts `event` inside `tx`: its seq the caller took from
            /// the room (`NEXT_SEQ`), its idempotency key (if any) looked
            /// up under the room's lock; `target_seq` is the message it
            /// acts on, if any.
            async fn insert_event(
                tx: &mut Transaction<'_, $db>,
                event: &RoomEvent,
                target_seq: Option<i64>,
            ) -> Result<()> {
                let (text, payload) = event_columns(&event.body);
                sqlx::query(INSERT_EVENT)
                    .bind(event.room_id.0)
                    .bind(event.seq)
                    .bind(event.id.0)
                    .bind(event.body.kind())
                    .bind(event.sender.map(|s| s.0))
                    .bind(event.client_id.as_deref())
                    .bind(text)
                    .bind(payload)
                    .bind(Timestamp(event.ts))
                    .bind(target_seq)
                    .execute(&mut **tx)
                    .await?;
                Ok(())
            }

            /// Takes `room`'s row lock (PostgreSQL; SQLite has one writer
            /// anyway) before a membership change reads anything. Every
            /// membership change and every append then queues on the same
            /// lock, and each statement after it sees the previous change
            /// committed: a ban and a join, two handovers, or a kick and a
            /// send cannot both act on what the other has not yet done.
            /// One order, room before member rows, also rules out deadlocks
            /// between them. A missing room locks nothing; the statements
            /// that follow report it as before.
            async fn lock_room(tx: &mut Transaction<'_, $db>, room: RoomId) -> Result<()> {
                sqlx::query(LOCK_ROOM)
                    .bind(room.0)
                    .execute(&mut **tx)
                    .await?;
                Ok(())
            }
        }

        #[async_trait]
        impl UserStore for $store {
            async fn create_user(&self, new: NewUser) -> Result<User> {
                let user = User {
                    id: UserId::new(),
                    username: new.username,
                    display_name: new.display_name,
                    created_at: now(),
                };
                sqlx::query(INSERT_USER)
                    .bind(user.id.0)
                    .bind(&user.username)
                    .bind(&user.display_name)
                    .bind(&new.password_hash)
                    .bind(Timestamp(user.created_at))
                    .execute(self.writer())
                    .await
                    .map_err(|e| {
                        if is_unique_violation(&e) {
                            Error::Conflict("username")
                        } else {
                            e.into()
                        }
                    })?;
                Ok(user)
            }

            async fn credentials(&self, username: &str) -> Result<Option<Credentials>> {
                let row = sqlx::query_as::<_, CredentialsRow>(CREDENTIALS)
                    .bind(username)
                    .fetch_optional(self.reader())
                    .await?;
                Ok(row.map(|row| Credentials {
                    user: row.user.into(),
                    password_hash: row.password_hash,
                }))
            }

            async fn user(&self, id: UserId) -> Result<Option<User>> {
                let row = sqlx::query_as::<_, UserRow>(USER_BY_ID)
                    .bind(id.0)
                    .fetch_optional(self.reader())
                    .await?;
                Ok(row.map(User::from))
            }

            async fn search_users(&self, query: &str, limit: u32) -> Result<Vec<User>> {
                let rows = sqlx::query_as::<_, UserRow>(SEARCH_USERS)
                    .bind(like_pattern(query))
                    .bind(i64::from(limit))
                    .fetch_all(self.reader())
                    .await?;
                Ok(rows.into_iter().map(User::from).collect())
            }
        }

        #[async_trait]
        impl SessionStore for $store {
            async fn create_session(
                &self,
                user: UserId,
                user_agent: Option<String>,
                token: RefreshToken,
            ) -> Result<Session> {
                let at = now();
                let session = Session {
                    id: SessionId::new(),
                    user_id: user,
                    user_agent,
                    created_at: at,
                    last_used_at: at,
                    expires_at: token.expires_at,
                    revoked_at: None,
                };
                let mut tx = self.begin().await?;
                sqlx::query(INSERT_SESSION)
                    .bind(session.id.0)
                    .bind(user.0)
                    .bind(&session.user_agent)
                    .bind(Timestamp(at))
                    .bind(Timestamp(token.expires_at))
                    .execute(&mut *tx)
                    .await
                    .map_err(missing_reference)?;
                sqlx::query(INSERT_REFRESH_TOKEN)
                    .bind(&token.hash)
                    .bind(session.id.0)
                    .bind(Timestamp(at))
                    .bind(Timestamp(token.expires_at))
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(session)
            }

            async fn rotate_refresh_token(
                &self,
                presented: &[u8],
                next: RefreshToken,
            ) -> Result<Rotation> {
                let at = now();
                let mut tx = self.begin().await?;
                // Flipping used_at is the linearisation point: of two
                // concurrent presentations exactly one gets the row.
                let spent: Option<uuid::Uuid> = sqlx::query_scalar(SPEND_REFRESH_TOKEN)
                    .bind(presented)
                    .bind(Timestamp(at))
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(session_id) = spent else {
                    let state = sqlx::query_as::<_, TokenStateRow>(REFRESH_TOKEN_STATE)
                        .bind(presented)
                        .fetch_optional(&mut *tx)
                        .await?;
                    return match state {
                        Some(TokenStateRow {
                            session_id,
                            used_at: Some(_),
                        }) => {
                            // A spent token came back: whoever holds the
                            // family may be an attacker, so end it.
                            sqlx::query(REVOKE_SESSION)
                                .bind(session_id)
                                .bind(Timestamp(at))
                                .execute(&mut *tx)
                                .await?;
                            let session = sqlx::query_as::<_, SessionRow>(SESSION_BY_ID)
                                .bind(session_id)
                                .fetch_one(&mut *tx)
                                .await?;
                            tx.commit().await?;
                            Ok(Rotation::Reused(session.into()))
                        }
                        _ => Ok(Rotation::Invalid),
                    };
                };
                let live = sqlx::query(TOUCH_SESSION)
                    .bind(session_id)
                    .bind(Timestamp(at))
                    .bind(Timestamp(next.expires_at))
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if live == 0 {
                    // The session was logged out; its tokens stay unusable.
                    return Ok(Rotation::Invalid);
                }
                sqlx::query(INSERT_REFRESH_TOKEN)
                    .bind(&next.hash)
                    .bind(session_id)
                    .bind(Timestamp(at))
                    .bind(Timestamp(next.expires_at))
                    .execute(&mut *tx)
                    .await?;
                let session = sqlx::query_as::<_, SessionRow>(SESSION_BY_ID)
                    .bind(session_id)
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(Rotation::Rotated(session.into()))
            }

            async fn session(&self, id: SessionId) -> Result<Option<Session>> {
                let row = sqlx::query_as::<_, SessionRow>(SESSION_BY_ID)
                    .bind(id.0)
                    .fetch_optional(self.reader())
                    .await?;
                Ok(row.map(Session::from))
            }

            async fn active_sessions(&self, user: UserId) -> Result<Vec<Session>> {
                let rows = sqlx::query_as::<_, SessionRow>(ACTIVE_SESSIONS)
                    .bind(user.0)
                    .bind(Timestamp(now()))
                    .fetch_all(self.reader())
                    .await?;
                Ok(rows.into_iter().map(Session::from).collect())
            }

            async fn revoke_session(&self, user: UserId, id: SessionId) -> Result<bool> {
                let revoked = sqlx::query(REVOKE_USER_SESSION)
                    .bind(id.0)
                    .bind(user.0)
                    .bind(Timestamp(now()))
                    .execute(self.writer())
                    .await?
                    .rows_affected();
                Ok(revoked == 1)
            }
        }

        #[async_trait]
        impl RoomStore for $store {
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
                let event =
                    Self::record(&mut tx, room.id, user, EventBody::MemberJoined { user }).await?;
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
                let event =
                    Self::record(&mut tx, id, by, EventBody::RoomUpdated { name, topic }).await?;
                tx.commit().await?;
                room.last_seq = event.seq;
                Ok((room, Some(event)))
            }

            async fn delete_room(&self, id: RoomId) -> Result<bool> {
                let deleted = sqlx::query(DELETE_ROOM)
                    .bind(id.0)
                    .execute(self.writer())
                    .await?
                    .rows_affected();
                Ok(deleted == 1)
            }

            async fn my_rooms(&self, user: UserId) -> Result<Vec<MyRoom>> {
                sqlx::query_as::<_, MyRoomRow>(MY_ROOMS)
                    .bind(user.0)
                    .bind($crate::model::UNREAD_WINDOW)
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
                    let claimed = sqlx::query(INSERT_DIRECT_ROOM)
                        .bind(low.0)
                        .bind(high.0)
                        .bind(room.id.0)
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
                            Self::record(&mut tx, room.id, a, EventBody::MemberJoined { user })
                                .await?;
                        room.last_seq = event.seq;
                    }
                    tx.commit().await?;
                    return Ok((room, true));
                }
                Err(Error::Conflict("direct_room"))
            }

            async fn role(&self, room: RoomId, user: UserId) -> Result<Option<Role>> {
                let role: Option<String> = sqlx::query_scalar(ROLE)
                    .bind(room.0)
                    .bind(user.0)
                    .fetch_optional(self.reader())
                    .await?;
                role.as_deref().map(parse_role).transpose()
            }

            async fn share_a_room(&self, a: UserId, b: UserId) -> Result<bool> {
                let shared: Option<i32> = sqlx::query_scalar(SHARE_A_ROOM)
                    .bind(a.0)
                    .bind(b.0)
                    .fetch_optional(self.reader())
                    .await?;
                Ok(shared.is_some())
            }

            async fn members(&self, room: RoomId) -> Result<Vec<Member>> {
                sqlx::query_as::<_, MemberRow>(MEMBERS)
                    .bind(room.0)
                    .fetch_all(self.reader())
                    .await?
                    .into_iter()
                    .map(Member::try_from)
                    .collect()
            }

            async fn add_member(
                &self,
                room: RoomId,
                user: UserId,
                by: UserId,
                role: Role,
            ) -> Result<RoomEvent> {
                let mut tx = self.begin().await?;
                Self::lock_room(&mut tx, room).await?;
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
                let event =
                    Self::record(&mut tx, room, by, EventBody::MemberJoined { user }).await?;
                tx.commit().await?;
                Ok(event)
            }

            async fn remove_member(
                &self,
                room: RoomId,
                user: UserId,
                by: UserId,
                reason: LeaveReason,
            ) -> Result<RoomEvent> {
                let mut tx = self.begin().await?;
                Self::lock_room(&mut tx, room).await?;
                let removed = sqlx::query(DELETE_MEMBER)
                    .bind(room.0)
                    .bind(user.0)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if removed == 0 {
                    return Err(Error::NotMember);
                }
                let event = Self::record(&mut tx, room, by, rows::left(user, reason)).await?;
                tx.commit().await?;
                Ok(event)
            }

            async fn set_role(
                &self,
                room: RoomId,
                user: UserId,
                by: UserId,
                role: Role,
            ) -> Result<Vec<RoomEvent>> {
                let mut tx = self.begin().await?;
                Self::lock_room(&mut tx, room).await?;
                // Only the owner changes roles, and the owner as it is now,
                // under the room's lock: of two handovers at once, the
                // second finds its sender already demoted.
                let owner: Option<uuid::Uuid> = sqlx::query_scalar(ROOM_OWNER)
                    .bind(room.0)
                    .fetch_optional(&mut *tx)
                    .await?;
                if owner != Some(by.0) {
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
                let mut events = vec![
                    Self::record(&mut tx, room, by, EventBody::RoleChanged { user, role }).await?,
                ];
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
                    events.push(Self::record(&mut tx, room, by, body).await?);
                }
                tx.commit().await?;
                Ok(events)
            }

            async fn ban(
                &self,
                room: RoomId,
                user: UserId,
                by: UserId,
                reason: String,
            ) -> Result<Option<RoomEvent>> {
                let mut tx = self.begin().await?;
                Self::lock_room(&mut tx, room).await?;
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
                    let body = rows::left(user, LeaveReason::Banned);
                    Some(Self::record(&mut tx, room, by, body).await?)
                } else {
                    None
                };
                tx.commit().await?;
                Ok(event)
            }

            async fn unban(&self, room: RoomId, user: UserId) -> Result<bool> {
                let lifted = sqlx::query(DELETE_BAN)
                    .bind(room.0)
                    .bind(user.0)
                    .execute(self.writer())
                    .await?
                    .rows_affected();
                Ok(lifted == 1)
            }

            async fn bans(&self, room: RoomId) -> Result<Vec<Ban>> {
                let rows = sqlx::query_as::<_, BanRow>(BANS)
                    .bind(room.0)
                    .fetch_all(self.reader())
                    .await?;
                Ok(rows.into_iter().map(Ban::from).collect())
            }
        }

        #[async_trait]
        impl RoomLog for $store {
            async fn append_message(
                &self,
                room: RoomId,
                sender: UserId,
                message: NewMessage,
            ) -> Result<Appended> {
                self.appends
                    .submit(room, sender, message)
                    .await?
                    .answer()
                    .await
            }

            async fn submit_message(
                &self,
                room: RoomId,
                sender: UserId,
                message: NewMessage,
            ) -> Result<$crate::store::Submitted> {
                self.appends.submit(room, sender, message).await
            }

            async fn events(&self, room: RoomId, page: Page) -> Result<Vec<RoomEvent>> {
                let limit = i64::from(page.limit);
                let before = page.before.unwrap_or(i64::MAX);
                let rows = match page.after {
                    Some(after) => {
                        sqlx::query_as::<_, EventRow>(EVENTS_AFTER)
                            .bind(room.0)
                            .bind(after)
                            .bind(before)
                            .bind(limit)
                            .fetch_all(self.reader())
                            .await?
                    }
                    None => {
                        let mut rows = sqlx::query_as::<_, EventRow>(EVENTS_BEFORE)
                            .bind(room.0)
                            .bind(0_i64)
                            .bind(before)
                            .bind(limit)
                            .fetch_all(self.reader())
                            .await?;
                        rows.reverse();
                        rows
                    }
                };
                let mut events = rows
                    .into_iter()
                    .map(RoomEvent::try_from)
                    .collect::<Result<Vec<_>>>()?;
                if events.iter().any(|e| {
                    matches!(e.body, EventBody::Message { reply_to: Some(_), .. })
                }) {
                    let mut conn = self.reader().acquire().await?;
                    Self::fill_previews(&mut *conn, room, events.iter_mut()).await?;
                }
                Ok(events)
            }

            async fn heads(&self, rooms: &[RoomId]) -> Result<Vec<(RoomId, i64)>> {
                let mut heads = Vec::with_capacity(rooms.len());
                // Bounded statements: SQLite allows 32766 parameters.
                for chunk in rooms.chunks(1000) {
                    let mut query = sqlx::QueryBuilder::<$db>::new(HEADS_PREFIX);
                    query.push("(");
                    let mut ids = query.separated(", ");
                    for room in chunk {
                        ids.push_bind(room.0);
                    }
                    query.push(")");
                    let rows: Vec<(uuid::Uuid, i64)> =
                        query.build_query_as().fetch_all(self.reader()).await?;
                    heads.extend(rows.into_iter().map(|(id, seq)| (RoomId(id), seq)));
                }
                Ok(heads)
            }

            async fn mark_read(&self, room: RoomId, user: UserId, seq: i64) -> Result<$crate::store::ReadMark> {
                let moved = sqlx::query(MARK_READ)
                    .bind(room.0)
                    .bind(user.0)
                    .bind(seq)
                    .execute(self.writer())
                    .await?
                    .rows_affected()
                    > 0;
                let marker: Option<i64> = sqlx::query_scalar(READ_MARKER)
                    .bind(room.0)
                    .bind(user.0)
                    .fetch_optional(self.writer())
                    .await?;
                let seq = marker.ok_or(Error::NotMember)?;
                Ok($crate::store::ReadMark { seq, moved })
            }
        }

        #[async_trait]
        impl Store for $store {
            async fn health(&self) -> Result<Health> {
                sqlx::query("SELECT 1").execute(self.reader()).await?;
                match self.writes.failing() {
                    None => return Ok(Health::Ready),
                    Some(Probe::NotYet) => return Ok(Health::RefusingWrites),
                    Some(Probe::Now) => {}
                }
                let probe = async {
                    let mut tx = self.begin().await?;
                    sqlx::query(PROBE_WRITE)
                        .bind(Timestamp(now()))
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await
                };
                match probe.await {
                    Ok(()) => {
                        self.writes.committed();
                        Ok(Health::Ready)
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "the store still refuses writes");
                        self.writes.failed();
                        Ok(Health::RefusingWrites)
                    }
                }
            }
        }
    };
}

pub(super) use impl_store;
