//! What each client frame does, once read and checked: sends, changes of
//! messages, `sync`, typing, read markers and token renewals (calls and
//! their signals are `calls`'),
//! each authorised against the store as it is now.

use chat_shared::bus::Topic;
use chat_shared::limits::Action;
use chat_shared::model::{check_client_id, check_message_content, EventId, RoomId, UserId};
use chat_shared::protocol::ServerFrame;
use chat_shared::store::{DirectSend, MessageChange, NewMessage};
use chat_shared::telemetry;
use tracing::Instrument;

use super::Handler;
use crate::context::Context;
use crate::ephemeral::Read;
use crate::outbox::Outbound;
use crate::sends::{self, Pending};
use crate::wire::{close, frame_bytes};

impl Handler {
    /// A change of a message: authorised and committed by the store (as the
    /// room is at the commit), then acknowledged, fanned out and published
    /// like a send. Changes are rare next to sends, so each is answered
    /// before the next frame is read.
    /// `change` is `Err` with the reason when the frame's fields broke a
    /// rule.
    pub(super) async fn change(
        &mut self,
        room: RoomId,
        client_id: String,
        target: EventId,
        change: Result<MessageChange, String>,
    ) {
        let reference = Some(client_id.clone());
        if self.limited() {
            return self
                .error("rate_limited", "sending too fast; slow down", reference)
                .await;
        }
        let change = match check_client_id(&client_id).and(change) {
            Ok(change) => change,
            Err(message) => return self.error("validation_failed", message, reference).await,
        };
        let refusal = change.not_allowed();
        let changed = self
            .ctx
            .store
            .change_message(room, self.connection.user, target, Some(&client_id), change)
            .await;
        if let Err(e @ chat_shared::Error::Muted(_)) = &changed {
            let (code, text) = e.moderation_refusal().expect("a refusal");
            return self.error(code, text, reference).await;
        }
        let (code, message) = match changed {
            Ok(appended) => {
                let outbox = &self.connection.outbox;
                return sends::deliver(&self.ctx, outbox, client_id, appended.event).await;
            }
            Err(chat_shared::Error::NotMember) => {
                ("not_member", "you are not a member of this room")
            }
            Err(chat_shared::Error::NotFound) => ("not_found", "no such message in this room"),
            Err(chat_shared::Error::NotAllowed) => refusal,
            Err(chat_shared::Error::Conflict(code)) => {
                match chat_shared::Error::message_conflict(code) {
                    Some(text) => (code, text),
                    None => ("conflict", "the change conflicts with another"),
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "message change failed");
                (
                    "unavailable",
                    "the change was not stored; retry with the same client_id",
                )
            }
        };
        self.error(code, message, reference).await;
    }

    /// A `send` frame: checked, then queued in the store; its answer
    /// comes from the in-flight task once it commits, inside its `ws send`
    /// span when traces are on.
    pub(super) async fn send(&mut self, room: RoomId, message: NewMessage) {
        let span = telemetry::ws_send(room);
        let client_id = message.client_id.clone();
        let reference = Some(client_id.clone());
        if self.limited() {
            let frame =
                ServerFrame::error("rate_limited", "sending too fast; slow down", reference);
            return self.in_flight.reply(&frame).await;
        }
        let max = self.ctx.config.common.max_body_chars;
        let valid = check_client_id(&client_id)
            .and_then(|()| check_message_content(&message.body, &message.attachments, max));
        if let Err(message) = valid {
            let frame = ServerFrame::error("validation_failed", message, reference);
            return self.in_flight.reply(&frame).await;
        }
        let listed_for = match self.consent(room, reference.clone()).await {
            Ok(unlisted) => unlisted,
            Err(frame) => return self.in_flight.reply(&frame).await,
        };
        self.ctx.ephemeral.sent(room, self.connection.user);
        // Durable before anything else: the ack, the fan-out and the
        // publish all wait for the commit (contract point 1).
        let store_span = span.in_scope(|| telemetry::store_append(room));
        let at = std::time::Instant::now();
        let submitted = self
            .ctx
            .store
            .submit_message(room, self.connection.user, message)
            .instrument(store_span.clone())
            .await;
        match submitted {
            Ok(submitted) => {
                let pending = Pending {
                    client_id,
                    listed_for,
                    submitted,
                    at,
                    span,
                    store_span,
                };
                self.in_flight.append(pending).await
            }
            Err(e) => {
                tracing::warn!(error = %e, "append failed");
                telemetry::record_error(&store_span);
                let frame = ServerFrame::error(
                    "unavailable",
                    "the message was not stored; retry with the same client_id",
                    reference,
                );
                self.in_flight.reply(&frame).await
            }
        }
    }

    /// Whether consent lets this connection's user write in `room`: in a
    /// direct room one of whose pair blocks the other, no (`blocked`); in
    /// a DM request the other declined, no (`dm_declined`). Yes, with the
    /// DM's members its message will list it for (to be told once it
    /// commits). Read before the append, so a block committing meanwhile
    /// lets that one message through; group rooms are remembered and
    /// never asked again.
    async fn consent(
        &mut self,
        room: RoomId,
        reference: Option<String>,
    ) -> Result<Vec<UserId>, ServerFrame> {
        if self.group_rooms.contains(&room) {
            return Ok(Vec::new());
        }
        match self.ctx.store.direct_send(room, self.connection.user).await {
            Ok(DirectSend::NotDirect) => {
                if self.group_rooms.len() < super::GROUP_ROOMS_KNOWN {
                    self.group_rooms.insert(room);
                }
                Ok(Vec::new())
            }
            Ok(DirectSend::Open { unlisted }) => Ok(unlisted),
            Ok(DirectSend::Declined) => Err(ServerFrame::error(
                "dm_declined",
                "they declined your message request; you cannot write to them here",
                reference,
            )),
            Ok(DirectSend::Blocked) => Err(ServerFrame::error(
                "blocked",
                "you cannot write here: one of you blocks the other",
                reference,
            )),
            Err(e) => {
                tracing::warn!(error = %e, "consent check failed");
                Err(ServerFrame::error(
                    "unavailable",
                    "the message was not stored; retry with the same client_id",
                    reference,
                ))
            }
        }
    }

    pub(super) async fn sync(&self, room: RoomId, after: i64) {
        if after < 0 {
            return self
                .error(
                    "validation_failed",
                    "sync: seqs are 0 or more",
                    Some(room.to_string()),
                )
                .await;
        }
        match self.ctx.store.role(room, self.connection.user).await {
            Ok(Some(_)) => {
                self.ctx
                    .hub
                    .follow(self.connection.key, room, after, true)
                    .await
            }
            Ok(None) => self.not_member(Some(room.to_string())).await,
            Err(e) => {
                tracing::warn!(error = %e, "membership check failed");
                self.error("unavailable", "try the sync again", Some(room.to_string()))
                    .await
            }
        }
    }

    pub(super) async fn typing(&self, room: RoomId) {
        // Coalesced first: a repeat within the interval costs nothing, not
        // even the sender's budget or a membership read.
        let (now, user) = (tokio::time::Instant::now(), self.connection.user);
        if !self.ctx.ephemeral.typing_due(room, user, now) || self.limited() {
            return;
        }
        self.ctx.ephemeral.typed(room, user, now);
        match self.ctx.store.standing(room, self.connection.user).await {
            // A muted member's typing is dropped, silently: typing is
            // ephemeral, and their client has already been told of the
            // mute (and disables its composer).
            Ok(Some(standing)) if standing.muted_until.is_some() => {}
            Ok(Some(_)) => {
                let frame = ServerFrame::Typing {
                    room_id: room,
                    user_id: self.connection.user,
                };
                self.ctx
                    .publisher
                    .publish(Topic::Room(room), frame_bytes(&frame));
            }
            Ok(None) => self.not_member(Some(room.to_string())).await,
            Err(e) => tracing::warn!(error = %e, "membership check failed"),
        }
    }

    pub(super) async fn read(&self, room: RoomId, seq: i64) {
        if seq < 0 {
            return self
                .error(
                    "validation_failed",
                    "read: seq is 0 or more",
                    Some(room.to_string()),
                )
                .await;
        }
        let user = self.connection.user;
        // Far above what a client sends; past it, reads are dropped before
        // they are remembered or stored.
        if self.ctx.limits.check(user, Action::Read).is_err() {
            return;
        }
        match self
            .ctx
            .ephemeral
            .read(room, user, seq, tokio::time::Instant::now())
        {
            Read::Now => match store_read(&self.ctx, room, user, seq).await {
                Ok(()) => {}
                Err(chat_shared::Error::NotMember) => self.not_member(Some(room.to_string())).await,
                Err(e) => tracing::warn!(error = %e, "storing a read marker failed"),
            },
            Read::Later(wait) => {
                // The interval's newest marker, stored at its end.
                let ctx = self.ctx.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(wait).await;
                    let now = tokio::time::Instant::now();
                    let Some(seq) = ctx.ephemeral.take_read(room, user, now) else {
                        return;
                    };
                    if let Err(e) = store_read(&ctx, room, user, seq).await {
                        tracing::debug!(error = %e, "storing a coalesced read marker failed");
                    }
                });
            }
            Read::Folded => {}
        }
    }

    /// Extends the connection with a fresh token of the same login session.
    /// A token of another live session of the same user is refused: one
    /// stolen socket must not live on through its owner's other logins.
    pub(super) async fn renew(&self, token: &str) {
        match self.ctx.verifier.verify(token) {
            Ok(claims)
                if claims.sub == self.connection.user && claims.sid != self.connection.login =>
            {
                self.error("invalid_token", "the token is for another session", None)
                    .await
            }
            Ok(claims) if claims.sub == self.connection.user => {
                // Checked again at every renewal: a connection that ended
                // while its `session_ended` announcement was lost ends here.
                let live = self.ctx.store.session(claims.sid).await;
                if !matches!(live, Ok(Some(ref s)) if s.revoked_at.is_none()) {
                    self.error("session_revoked", "this session has been logged out", None)
                        .await;
                    self.connection
                        .outbox
                        .send(Outbound::Close {
                            code: close::SESSION_REVOKED,
                            reason: "session revoked; log in again",
                        })
                        .await;
                    return;
                }
                self.connection
                    .outbox
                    .send(Outbound::Extend {
                        expires_at: claims.exp,
                    })
                    .await;
            }
            Ok(_) => {
                self.error("invalid_token", "the token is for another user", None)
                    .await
            }
            Err(_) => {
                self.error("invalid_token", "the token is invalid or expired", None)
                    .await
            }
        }
    }
}

/// Stores `user`'s read marker in `room` and tells the room, if it moved.
async fn store_read(
    ctx: &Context,
    room: RoomId,
    user: UserId,
    seq: i64,
) -> chat_shared::Result<()> {
    let mark = ctx.store.mark_read(room, user, seq).await?;
    if mark.moved {
        let frame = ServerFrame::Read {
            room_id: room,
            user_id: user,
            seq: mark.seq,
        };
        ctx.publisher
            .publish(Topic::Room(room), frame_bytes(&frame));
    }
    Ok(())
}
