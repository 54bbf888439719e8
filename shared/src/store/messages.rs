//! What people do to messages, for both databases (stamped out per driver
//! like `adapter`): edits, deletions that erase, reactions and pins, each
//! an event of the room's log committed with the message's new state
//! (`message_rows` says how that state is kept), and the timeline that
//! reads messages as they are now.

macro_rules! impl_messages {
    ($store:ty, $db:ty) => {
        use std::collections::HashMap;

        use $crate::model::{ReplyPreview, TimelineItem, REACTION_USERS_SHOWN};
        use $crate::store::message_rows::*;
        use $crate::store::{MessageChange, MessageStore, Timeline};

        impl $store {
            /// The members of `room` among `names` (lowercased usernames),
            /// in the order of `names`.
            pub(super) async fn members_named(
                conn: &mut <$db as sqlx::Database>::Connection,
                room: RoomId,
                names: &[String],
            ) -> Result<Vec<UserId>> {
                if names.is_empty() {
                    return Ok(Vec::new());
                }
                let mut query = sqlx::QueryBuilder::<$db>::new(MEMBERS_NAMED_PREFIX);
                query.push("m.room_id = ").push_bind(room.0);
                query.push(" AND lower(u.username) IN (");
                let mut list = query.separated(", ");
                for name in names {
                    list.push_bind(name.as_str());
                }
                query.push(")");
                let found: Vec<(uuid::Uuid, String)> =
                    query.build_query_as().fetch_all(&mut *conn).await?;
                Ok(names
                    .iter()
                    .filter_map(|name| found.iter().find(|(_, n)| n == name))
                    .map(|(id, _)| UserId(*id))
                    .collect())
            }

            /// The previews of the messages `ids` of `room` (an id that
            /// is not a message of the room is missing from the answer).
            pub(super) async fn previews(
                conn: &mut <$db as sqlx::Database>::Connection,
                room: RoomId,
                ids: &[EventId],
            ) -> Result<HashMap<EventId, ReplyPreview>> {
                let mut previews = HashMap::new();
                for chunk in ids.chunks(500) {
                    let mut query = sqlx::QueryBuilder::<$db>::new(PREVIEWS_PREFIX);
                    query.push("e.id IN (");
                    let mut list = query.separated(", ");
                    for id in chunk {
                        list.push_bind(id.0);
                    }
                    query.push(")");
                    let rows: Vec<PreviewRow> =
                        query.build_query_as().fetch_all(&mut *conn).await?;
                    previews.extend(
                        rows.into_iter()
                            .filter(|row| row.room_id == room.0)
                            .map(|row| (EventId(row.id), row.preview())),
                    );
                }
                Ok(previews)
            }

            /// Puts on each reply of `events` the preview of what it
            /// answers, read over `conn`.
            pub(super) async fn fill_previews(
                conn: &mut <$db as sqlx::Database>::Connection,
                room: RoomId,
                events: impl Iterator<Item = &mut RoomEvent>,
            ) -> Result<()> {
                let mut replies: Vec<(EventId, &mut Option<ReplyPreview>)> = events
                    .filter_map(|e| match &mut e.body {
                        EventBody::Message {
                            reply_to: Some(id),
                            reply_preview,
                            ..
                        } => Some((*id, reply_preview)),
                        _ => None,
                    })
                    .collect();
                if replies.is_empty() {
                    return Ok(());
                }
                let ids: Vec<EventId> = replies.iter().map(|(id, _)| *id).collect();
                let previews = Self::previews(conn, room, &ids).await?;
                for (id, preview) in &mut replies {
                    **preview = previews.get(id).cloned();
                }
                Ok(())
            }

            /// Records a change of a message in `tx` (see `change_message`),
            /// under the room's lock.
            async fn change_in(
                tx: &mut Transaction<'_, $db>,
                room: RoomId,
                actor: UserId,
                target: EventId,
                client_id: Option<&str>,
                change: MessageChange,
            ) -> Result<Appended> {
                let allocated: Option<(i64, String)> = sqlx::query_as(NEXT_SEQ_AND_KIND)
                    .bind(room.0)
                    .fetch_optional(&mut **tx)
                    .await?;
                let Some((event_seq, kind)) = allocated else {
                    return Err(Error::NotFound);
                };
                if let Some(client_id) = client_id {
                    let existing: Option<EventRow> = sqlx::query_as(EVENT_BY_CLIENT_ID)
                        .bind(room.0)
                        .bind(actor.0)
                        .bind(client_id)
                        .fetch_optional(&mut **tx)
                        .await?;
                    if let Some(row) = existing {
                        return Ok(Appended {
                            event: row.try_into()?,
                            created: false,
                        });
                    }
                }
                let role: Option<String> = sqlx::query_scalar(ROLE)
                    .bind(room.0)
                    .bind(actor.0)
                    .fetch_optional(&mut **tx)
                    .await?;
                let role = parse_role(&role.ok_or(Error::NotMember)?)?;
                // In a DM nobody moderates: either of the two may pin.
                let moderator = role >= Role::Admin || kind == RoomKind::Direct.as_str();
                let message: Option<TargetRow> = sqlx::query_as(TARGET)
                    .bind(target.0)
                    .bind(room.0)
                    .fetch_optional(&mut **tx)
                    .await?;
                let message = message
                    .filter(|m| m.room_id == room.0 && m.kind == "message")
                    .ok_or(Error::NotFound)?;
                if message.deleted {
                    return Err(Error::Conflict("message_deleted"));
                }
                let seq = message.seq;
                let own = message.sender == Some(actor.0);
                let at = now();
                let body = match change {
                    MessageChange::Edit { body } => {
                        if !own {
                            return Err(Error::NotAllowed);
                        }
                        let mentioned = crate::message_text::mentions(&body);
                        let mentions =
                            Self::members_named(&mut **tx, room, &mentioned.names).await?;
                        let mentions_room = mentioned.room
                            && role >= Role::Admin
                            && kind != RoomKind::Direct.as_str();
                        sqlx::query(EDIT_STATE)
                            .bind(room.0)
                            .bind(seq)
                            .bind(&body)
                            .bind(mentions_payload(&mentions, mentions_room))
                            .bind(Timestamp(at))
                            .execute(&mut **tx)
                            .await?;
                        Self::set_mentions(tx, room, seq, &mentions, mentions_room).await?;
                        EventBody::MessageEdited {
                            target,
                            body,
                            mentions,
                            mentions_room,
                            deleted: false,
                        }
                    }
                    MessageChange::Delete => {
                        if !own && role < Role::Admin {
                            return Err(Error::NotAllowed);
                        }
                        Self::erase(tx, room, seq, target, at).await?;
                        EventBody::MessageDeleted { target }
                    }
                    MessageChange::React { emoji } => {
                        let given: Vec<String> = sqlx::query_scalar(MESSAGE_EMOJI)
                            .bind(room.0)
                            .bind(seq)
                            .fetch_all(&mut **tx)
                            .await?;
                        if !given.contains(&emoji)
                            && given.len() >= crate::message_text::MAX_EMOJI_PER_MESSAGE
                        {
                            return Err(Error::Conflict("too_many_reactions"));
                        }
                        let added = sqlx::query(INSERT_REACTION)
                            .bind(room.0)
                            .bind(seq)
                            .bind(&emoji)
                            .bind(actor.0)
                            .bind(Timestamp(at))
                            .execute(&mut **tx)
                            .await?
                            .rows_affected();
                        if added == 0 {
                            return Err(Error::Conflict("already_reacted"));
                        }
                        EventBody::ReactionAdded {
                            target,
                            emoji,
                            deleted: false,
                        }
                    }
                    MessageChange::Unreact { emoji } => {
                        let removed = sqlx::query(DELETE_REACTION)
                            .bind(room.0)
                            .bind(seq)
                            .bind(&emoji)
                            .bind(actor.0)
                            .execute(&mut **tx)
                            .await?
                            .rows_affected();
                        if removed == 0 {
                            return Err(Error::Conflict("not_reacted"));
                        }
                        EventBody::ReactionRemoved {
                            target,
                            emoji,
                            deleted: false,
                        }
                    }
                    MessageChange::Pin => {
                        if !moderator {
                            return Err(Error::NotAllowed);
                        }
                        if message.pinned {
                            return Err(Error::Conflict("already_pinned"));
                        }
                        let pins: i64 = sqlx::query_scalar(PIN_COUNT)
                            .bind(room.0)
                            .fetch_one(&mut **tx)
                            .await?;
                        if pins >= crate::message_text::MAX_PINS_PER_ROOM {
                            return Err(Error::Conflict("too_many_pins"));
                        }
                        sqlx::query(PIN)
                            .bind(room.0)
                            .bind(seq)
                            .bind(Timestamp(at))
                            .bind(actor.0)
                            .execute(&mut **tx)
                            .await?;
                        EventBody::MessagePinned { target }
                    }
                    MessageChange::Unpin => {
                        if !moderator {
                            return Err(Error::NotAllowed);
                        }
                        let unpinned = sqlx::query(UNPIN)
                            .bind(room.0)
                            .bind(seq)
                            .execute(&mut **tx)
                            .await?
                            .rows_affected();
                        if unpinned == 0 {
                            return Err(Error::Conflict("not_pinned"));
                        }
                        EventBody::MessageUnpinned { target }
                    }
                };
                let event = RoomEvent {
                    room_id: room,
                    seq: event_seq,
                    id: EventId::new(),
                    sender: Some(actor),
                    ts: at,
                    client_id: client_id.map(str::to_owned),
                    body,
                };
                Self::insert_event(tx, &event, Some(seq)).await?;
                Ok(Appended {
                    event,
                    created: true,
                })
            }

            /// Replaces who message `seq` mentions.
            async fn set_mentions(
                tx: &mut Transaction<'_, $db>,
                room: RoomId,
                seq: i64,
                mentions: &[UserId],
                mentions_room: bool,
            ) -> Result<()> {
                sqlx::query(DELETE_MENTIONS)
                    .bind(room.0)
                    .bind(seq)
                    .execute(&mut **tx)
                    .await?;
                let everyone = mentions_room.then_some(None);
                for user in mentions.iter().map(|u| Some(u.0)).chain(everyone) {
                    sqlx::query(INSERT_MENTION)
                        .bind(room.0)
                        .bind(seq)
                        .bind(user)
                        .execute(&mut **tx)
                        .await?;
                }
                Ok(())
            }

            /// Erases message `seq`: its text, its edits' texts, its
            /// reactions and who it mentions are gone; its events stay, as
            /// tombstones with their seqs.
            async fn erase(
                tx: &mut Transaction<'_, $db>,
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
                for statement in [DELETE_REACTIONS, DELETE_MENTIONS] {
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

            /// Fills in the reactions and reply previews of timeline
            /// entries, as `viewer` sees them, over `conn` (the snapshot
            /// the entries were read in).
            async fn complete(
                conn: &mut <$db as sqlx::Database>::Connection,
                room: RoomId,
                viewer: UserId,
                items: &mut [TimelineItem],
            ) -> Result<()> {
                // Deleted messages have no reactions left to count.
                let seqs: Vec<i64> = items
                    .iter()
                    .filter(|i| matches!(i.event.body, EventBody::Message { deleted: false, .. }))
                    .map(|i| i.event.seq)
                    .collect();
                if !seqs.is_empty() {
                    let rows: Vec<ReactionRow> =
                        reactions_query::<$db>(viewer, room, &seqs, REACTION_USERS_SHOWN)
                            .build_query_as()
                            .fetch_all(&mut *conn)
                            .await?;
                    attach_reactions(items, rows);
                }
                Self::fill_previews(conn, room, items.iter_mut().map(|i| &mut i.event)).await
            }

            /// Reads timeline entries with `statement` (bound to the room,
            /// then `binds`) and the room's head in one snapshot, so the
            /// head covers exactly the changes the entries show.
            async fn read_timeline(
                &self,
                room: RoomId,
                viewer: UserId,
                statement: &str,
                binds: &[i64],
                reverse: bool,
            ) -> Result<Timeline> {
                let mut tx = self.snapshot().await?;
                let last_seq: Option<i64> = sqlx::query_scalar(ROOM_LAST_SEQ)
                    .bind(room.0)
                    .fetch_optional(&mut *tx)
                    .await?;
                let last_seq = last_seq.ok_or(Error::NotFound)?;
                let mut query = sqlx::query_as::<_, TimelineRow>(statement).bind(room.0);
                for value in binds {
                    query = query.bind(*value);
                }
                let mut rows = query.fetch_all(&mut *tx).await?;
                if reverse {
                    rows.reverse();
                }
                let mut items = rows
                    .into_iter()
                    .map(TimelineItem::try_from)
                    .collect::<Result<Vec<_>>>()?;
                Self::complete(&mut *tx, room, viewer, &mut items).await?;
                tx.commit().await?;
                Ok(Timeline { items, last_seq })
            }
        }

        #[async_trait]
        impl MessageStore for $store {
            async fn change_message(
                &self,
                room: RoomId,
                actor: UserId,
                target: EventId,
                client_id: Option<&str>,
                change: MessageChange,
            ) -> Result<Appended> {
                let mut tx = self.begin().await?;
                let appended =
                    Self::change_in(&mut tx, room, actor, target, client_id, change).await?;
                // A retry found its original: the seq it took goes back
                // with the rollback, so the log has no gap.
                if appended.created {
                    tx.commit().await?;
                }
                Ok(appended)
            }

            async fn timeline(&self, room: RoomId, viewer: UserId, page: Page) -> Result<Timeline> {
                let limit = i64::from(page.limit);
                let before = page.before.unwrap_or(i64::MAX);
                match page.after {
                    Some(after) => {
                        let binds = [after, before, limit];
                        self.read_timeline(room, viewer, &timeline_after(), &binds, false)
                            .await
                    }
                    None => {
                        let binds = [0, before, limit];
                        self.read_timeline(room, viewer, &timeline_before(), &binds, true)
                            .await
                    }
                }
            }

            async fn pins(&self, room: RoomId, viewer: UserId) -> Result<Timeline> {
                self.read_timeline(room, viewer, &pinned(), &[], false)
                    .await
            }
        }
    };
}

pub(super) use impl_messages;
