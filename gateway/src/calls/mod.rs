//! Calls as a gateway keeps them: what every change of a call tells
//! (its events to the room, the call to both parties), where a signal may
//! go, and what the opening and closing of a connection mean for the calls
//! of its user. The frames that change calls are read in
//! `inbound::calls`; the leases and the sweep that ends calls nobody ends
//! are `sweeper`'s.

use bytes::Bytes;
use chat_shared::bus::Topic;
use chat_shared::calls::{Call, CallState};
use chat_shared::model::{ConnectionId, RoomEvent, UserId};
use chat_shared::protocol::ServerFrame;

use crate::context::Context;
use crate::outbox::{Outbound, Outbox};
use crate::sends;
use crate::wire::frame_bytes;

pub mod sweeper;

/// Tells everyone what a change of `call` committed: each of `events` (its
/// `call_started`, its `call_ended`) goes to the room as every committed
/// event does, then the call as it is now to every connection of both
/// parties, on every gateway. Every path that changes a call (a frame, a
/// closed connection, a sweep) ends here.
pub async fn announce(ctx: &Context, call: &Call, events: &[RoomEvent]) {
    for event in events {
        let frame = Bytes::from(serde_json::to_vec(event).expect("events serialise"));
        sends::publish_committed(ctx, event, frame).await;
    }
    let frame = frame_bytes(&ServerFrame::Call {
        call: Box::new(call.clone()),
    });
    for user in [call.caller, call.callee] {
        ctx.publisher.publish(Topic::User(user), frame.clone());
    }
}

/// The connection `id` of `user` closed: the calls it took part in end
/// (cancelled while ringing, failed once accepted), and their parties are
/// told. A store failure is logged: the calls then last until a party
/// hangs up (or this gateway's lease lapses).
pub async fn connection_closed(ctx: &Context, user: UserId, id: ConnectionId) {
    match ctx.store.connection_closed(user, id).await {
        Ok(ended) => {
            for (call, event) in ended {
                announce(ctx, &call, std::slice::from_ref(&event)).await;
            }
        }
        Err(e) => tracing::warn!(error = %e, "ending the calls of a closed connection failed"),
    }
}

/// Queues to a connection that just said `hello` the calls ringing for
/// its user, so a reload (or a second device) rings too. Best effort: a
/// store failure costs the ring, not the connection.
pub async fn ringing_for(ctx: &Context, user: UserId, outbox: &Outbox) {
    let calls = match ctx
        .on_home(move |store| async move { store.active_calls(user).await })
        .await
    {
        Ok(calls) => calls,
        Err(e) => {
            tracing::warn!(error = %e, "reading the calls ringing for a new connection failed");
            return;
        }
    };
    for call in calls {
        if call.state == CallState::Ringing && call.callee == user {
            let frame = ServerFrame::Call {
                call: Box::new(call),
            };
            outbox.send(Outbound::Frame(frame_bytes(&frame))).await;
        }
    }
}

/// Where a signal from connection `session` of `user` in `call` goes: to
/// the one connection of the peer named, or (`None`) to every connection
/// of theirs; the refusal's error code otherwise. While it rings, the
/// caller's placing connection signals every connection of the callee and
/// any of the callee's connections signals it; once accepted, only the two
/// connections taking part signal, each the other.
pub fn signal_route(
    call: &Call,
    user: UserId,
    session: ConnectionId,
) -> Result<Option<ConnectionId>, &'static str> {
    let from_caller = user == call.caller && session == call.caller_session;
    match call.state {
        CallState::Ended => Err("call_ended"),
        CallState::Ringing if from_caller => Ok(None),
        CallState::Ringing if user == call.callee => Ok(Some(call.caller_session)),
        CallState::Accepted => match call.callee_session {
            Some(callee_session) if from_caller => Ok(Some(callee_session)),
            Some(callee_session) if user == call.callee && session == callee_session => {
                Ok(Some(call.caller_session))
            }
            _ => Err("not_in_call"),
        },
        CallState::Ringing => Err("not_in_call"),
    }
}

#[cfg(test)]
mod tests {
    use chat_shared::model::{CallId, RoomId};
    use time::OffsetDateTime;

    use super::*;

    fn ringing() -> Call {
        Call {
            id: CallId::new(),
            room_id: RoomId::new(),
            caller: UserId::new(),
            callee: UserId::new(),
            video: false,
            state: CallState::Ringing,
            reason: None,
            caller_session: ConnectionId::new(),
            callee_session: None,
            created_at: OffsetDateTime::now_utc(),
            accepted_at: None,
            ended_at: None,
        }
    }

    #[test]
    fn while_ringing_the_placing_connection_signals_every_callee_connection() {
        let call = ringing();
        let (caller, callee) = (call.caller, call.callee);
        assert_eq!(signal_route(&call, caller, call.caller_session), Ok(None));
        let other_tab = ConnectionId::new();
        assert_eq!(signal_route(&call, caller, other_tab), Err("not_in_call"));
        assert_eq!(
            signal_route(&call, callee, ConnectionId::new()),
            Ok(Some(call.caller_session))
        );
    }

    #[test]
    fn once_accepted_only_the_two_connections_taking_part_signal_each_other() {
        let mut call = ringing();
        let accepting = ConnectionId::new();
        call.state = CallState::Accepted;
        call.callee_session = Some(accepting);
        let (caller, callee) = (call.caller, call.callee);
        assert_eq!(
            signal_route(&call, caller, call.caller_session),
            Ok(Some(accepting))
        );
        assert_eq!(
            signal_route(&call, callee, accepting),
            Ok(Some(call.caller_session))
        );
        assert_eq!(
            signal_route(&call, callee, ConnectionId::new()),
            Err("not_in_call")
        );
        assert_eq!(
            signal_route(&call, caller, ConnectionId::new()),
            Err("not_in_call")
        );
    }

    #[test]
    fn an_ended_call_takes_no_signal() {
        let mut call = ringing();
        call.state = CallState::Ended;
        assert_eq!(
            signal_route(&call, call.caller, call.caller_session),
            Err("call_ended")
        );
    }
}
