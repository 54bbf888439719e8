//! The frames of calls: placing, accepting, declining and hanging up a
//! call, each decided by the store as the call is at the commit and then
//! announced to both parties; and signals, relayed to the peer's
//! connection the call allows.

use std::sync::atomic::Ordering;

use chat_shared::bus::Topic;
use chat_shared::calls::{CallEnd, CallState, NewCall};
use chat_shared::limits::Action;
use chat_shared::model::{CallId, RoomId};
use chat_shared::protocol::{ServerFrame, SignalKind, MAX_SIGNAL_PAYLOAD_BYTES};
use chat_shared::Error;

use super::Handler;
use crate::calls;
use crate::wire::frame_bytes;

/// What a client does to a call of theirs.
pub(super) enum Change {
    /// `call_accept`: take it on this connection.
    Accept,
    /// `call_decline`: turn it down, for all of the callee's connections.
    Decline,
    /// `call_hangup`: end it, whatever its state.
    Hangup,
}

impl Handler {
    /// `call_place`: the store places the call (or ends it at once as
    /// `busy`); a callee with no connection anywhere misses it at once.
    pub(super) async fn place_call(&self, room: RoomId, video: bool) {
        let reference = Some(room.to_string());
        if self.call_limited() {
            return self
                .error("rate_limited", "calling too fast", reference)
                .await;
        }
        let me = self.connection.user;
        self.connection.in_calls.store(true, Ordering::Relaxed);
        let placed = self
            .ctx
            .store
            .place_call(NewCall {
                room,
                caller: me,
                session: self.connection.id,
                gateway: self.ctx.gateway,
                video,
            })
            .await;
        let (mut call, mut events) = match placed {
            Ok(placed) => placed,
            // Whether the room exists is no business of a non-member.
            Err(Error::NotFound | Error::NotMember) => {
                return self.not_member(reference).await;
            }
            Err(e) => return self.refused(e, reference).await,
        };
        // This connection's shard hears the callee's presence in the rooms
        // it delivers, the DM among them unless it was closed: ringing
        // nobody would only wait out the ring timeout.
        if call.state == CallState::Ringing
            && !self
                .ctx
                .hub
                .may_be_online(self.connection.key, call.callee, room)
                .await
        {
            match self.ctx.store.end_call(call.id, CallEnd::Unreachable).await {
                Ok((ended, event)) => {
                    call = ended;
                    events.push(event);
                }
                // Answered or ended meanwhile: that change is announced
                // by whoever made it.
                Err(Error::Conflict(_)) => {}
                Err(e) => tracing::warn!(error = %e, "ending an unreachable call failed"),
            }
        }
        calls::announce(&self.ctx, &call, &events).await;
    }

    /// `call_accept`, `call_decline`, `call_hangup`: the store decides on
    /// the call as it is at the commit (of two accepts one wins).
    pub(super) async fn change_call(&self, id: CallId, change: Change) {
        let reference = Some(id.to_string());
        if self.call_limited() {
            return self
                .error("rate_limited", "calling too fast", reference)
                .await;
        }
        let (me, store) = (self.connection.user, &self.ctx.store);
        let changed = match change {
            Change::Accept => {
                self.connection.in_calls.store(true, Ordering::Relaxed);
                store
                    .accept_call(id, me, self.connection.id, self.ctx.gateway)
                    .await
                    .map(|call| (call, Vec::new()))
            }
            Change::Decline => store
                .end_call(id, CallEnd::Decline(me))
                .await
                .map(|(call, event)| (call, vec![event])),
            Change::Hangup => store
                .end_call(id, CallEnd::Hangup(me))
                .await
                .map(|(call, event)| (call, vec![event])),
        };
        match changed {
            Ok((call, events)) => calls::announce(&self.ctx, &call, &events).await,
            Err(Error::NotFound) => self.no_such_call(reference).await,
            Err(e) => self.refused(e, reference).await,
        }
    }

    /// `signal`: relayed to the peer's connection the call allows (see
    /// [`calls::signal_route`]), on the send budget.
    pub(super) async fn signal(&self, id: CallId, kind: SignalKind, payload: serde_json::Value) {
        let reference = Some(id.to_string());
        if self.limited() {
            return self
                .error("rate_limited", "signalling too fast", reference)
                .await;
        }
        let size = serde_json::to_vec(&payload).map_or(usize::MAX, |json| json.len());
        if size > MAX_SIGNAL_PAYLOAD_BYTES {
            let message = format!("payload: at most {MAX_SIGNAL_PAYLOAD_BYTES} bytes as JSON");
            return self.error("validation_failed", message, reference).await;
        }
        let me = self.connection.user;
        let call = match self.ctx.store.call(id).await {
            Ok(Some(call)) if call.has_party(me) => call,
            Ok(_) => return self.no_such_call(reference).await,
            Err(e) => return self.refused(e, reference).await,
        };
        let to_session = match calls::signal_route(&call, me, self.connection.id) {
            Ok(to) => to,
            Err(code) => return self.error(code, refusal_text(code), reference).await,
        };
        let frame = ServerFrame::Signal {
            call_id: id,
            from_user: me,
            to_session,
            kind,
            payload,
        };
        self.ctx
            .publisher
            .publish(Topic::User(call.peer_of(me)), frame_bytes(&frame));
    }

    /// Counts a call frame against the user's call budget; true when over.
    fn call_limited(&self) -> bool {
        self.ctx
            .limits
            .check(self.connection.user, Action::Call)
            .is_err()
    }

    async fn no_such_call(&self, reference: Option<String>) {
        self.error("not_found", "no call of yours by that id", reference)
            .await;
    }

    /// Says why the store refused a change of a call.
    async fn refused(&self, e: Error, reference: Option<String>) {
        match e {
            Error::NotMember => self.not_member(reference).await,
            Error::Conflict(code) => self.error(code, refusal_text(code), reference).await,
            e => {
                tracing::warn!(error = %e, "a call's change failed");
                self.error("unavailable", "the call was not changed; retry", reference)
                    .await
            }
        }
    }
}

/// The message of a refusal's code (docs/protocol.md, "Calls").
fn refusal_text(code: &str) -> &'static str {
    match code {
        "not_direct" => "calls are between the two members of a DM or a private room of two",
        "blocked" => "you cannot call here: one of you blocks the other",
        "dm_request" => "they have not accepted your message request",
        "in_call" => "you are in another call: hang it up first",
        "call_not_ringing" => "the call is no longer ringing",
        "call_ended" => "the call has ended",
        "not_in_call" => "this connection does not take part in the call",
        _ => "the call conflicts with another change",
    }
}
