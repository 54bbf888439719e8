//! Calls (`CallStore`): who may call whom, a busy callee, an accept that
//! wins once, every way a call ends (each recording one `call_ended` in the
//! room's log, whoever ends it first), closed connections, and the sweep of
//! unanswered calls, lost gateways and parties who may no longer call.

use std::time::Duration;

use chat_shared::calls::{Call, CallEnd, CallEndReason, CallState, NewCall};
use chat_shared::model::{
    CallId, ConnectionId, EventBody, LeaveReason, RoomEvent, RoomId, RoomKind, User,
};
use chat_shared::store::{Error, NewRoom};
use chat_shared::testing::Backend;
use uuid::Uuid;

use crate::Fixture;

conformance!(
    a_call_in_a_dm_rings_the_other_member_and_is_recorded,
    calls_are_only_between_the_two_members_of_a_dm_or_private_room,
    a_caller_in_a_call_is_refused_and_a_busy_callee_ends_the_call_at_once,
    of_two_accepts_exactly_one_wins,
    of_an_accept_and_the_ring_timeout_exactly_one_wins,
    only_the_callee_accepts,
    a_hangup_ends_a_call_by_its_state,
    a_call_ends_once,
    an_end_and_a_sweep_at_once_end_a_call_once,
    a_closed_connection_ends_the_calls_it_takes_part_in,
    the_sweep_ends_unanswered_calls,
    the_sweep_ends_calls_on_lost_gateways,
    the_sweep_ends_calls_of_parties_who_may_no_longer_call,
);

/// Long enough that no test's call outlives it.
const LONG: Duration = Duration::from_secs(3600);

/// Alice and bob, members of a private room of two (which they may call
/// in), and the gateway their connections are on, alive.
struct Pair {
    fx: Fixture,
    alice: User,
    bob: User,
    room: RoomId,
    gateway: Uuid,
}

impl Pair {
    async fn new(backend: Backend) -> Self {
        let fx = Fixture::new(backend).await;
        let alice = fx.register("alice").await;
        let bob = fx.register("bob").await;
        let room = fx.private_room(&alice).await.id;
        fx.join(room, &bob).await;
        let gateway = Uuid::now_v7();
        fx.gateway_alive(gateway).await.unwrap();
        Self {
            fx,
            alice,
            bob,
            room,
            gateway,
        }
    }

    /// Alice calls bob from a new connection.
    async fn call(&self) -> Call {
        let (call, events) = self
            .fx
            .place_call(new_call(self.room, &self.alice, self.gateway))
            .await
            .expect("placing a call");
        assert_eq!(events.len(), 1, "it rings");
        call
    }

    /// Alice calls bob, who accepts on a new connection.
    async fn accepted_call(&self) -> Call {
        let call = self.call().await;
        self.fx
            .accept_call(call.id, self.bob.id, ConnectionId::new(), self.gateway)
            .await
            .expect("accepting")
    }
}

/// A call from `caller`'s new connection on `gateway`, with video.
fn new_call(room: RoomId, caller: &User, gateway: Uuid) -> NewCall {
    NewCall {
        room,
        caller: caller.id,
        session: ConnectionId::new(),
        gateway,
        video: true,
    }
}

/// Checks that `event` records the end of `call` (as it ended), by `by`.
fn assert_ended(event: &RoomEvent, call: &Call, by: &User, reason: CallEndReason) {
    assert_eq!(call.state, CallState::Ended);
    assert_eq!(call.reason, Some(reason));
    assert!(call.ended_at.is_some());
    assert_eq!(event.room_id, call.room_id);
    assert_eq!(event.sender, Some(by.id), "ended by {}", by.username);
    assert_eq!(
        event.body,
        EventBody::CallEnded {
            call_id: call.id,
            caller: call.caller,
            callee: call.callee,
            reason,
            duration_secs: call.duration_secs(),
        }
    );
}

/// The one call a sweep or a closed connection ended.
fn only(ended: Vec<(Call, RoomEvent)>) -> (Call, RoomEvent) {
    assert_eq!(ended.len(), 1, "{ended:?}");
    ended.into_iter().next().expect("one call ended")
}

/// The `call_ended` events of `call` in its room's log.
async fn ends_logged(fx: &Fixture, call: &Call) -> Vec<RoomEvent> {
    fx.log(call.room_id)
        .await
        .into_iter()
        .filter(|e| matches!(e.body, EventBody::CallEnded { call_id, .. } if call_id == call.id))
        .collect()
}

async fn a_call_in_a_dm_rings_the_other_member_and_is_recorded(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let alice = fx.register("alice").await;
    let bob = fx.register("bob").await;
    // They share a room, so their DM is no request.
    let group = fx.private_room(&alice).await;
    fx.join(group.id, &bob).await;
    let (dm, _) = fx.direct_room(alice.id, bob.id).await.unwrap();
    let head = fx.reload(dm.id).await.last_seq;

    let placed = new_call(dm.id, &alice, Uuid::now_v7());
    let (call, events) = fx.place_call(placed).await.unwrap();
    assert_eq!(call.room_id, dm.id);
    assert_eq!((call.caller, call.callee), (alice.id, bob.id));
    assert!(call.video);
    assert_eq!(call.state, CallState::Ringing);
    assert_eq!(call.reason, None);
    assert_eq!(call.caller_session, placed.session);
    assert_eq!(call.callee_session, None);
    assert_eq!((call.accepted_at, call.ended_at), (None, None));

    let [started] = events.as_slice() else {
        panic!("one event: {events:?}");
    };
    assert_eq!(started.seq, head + 1);
    assert_eq!(started.sender, Some(alice.id));
    assert_eq!(
        started.body,
        EventBody::CallStarted {
            call_id: call.id,
            caller: alice.id,
            callee: bob.id,
            video: true,
        }
    );
    assert_eq!(fx.log(dm.id).await.last(), Some(started), "in the log");

    assert_eq!(fx.call(call.id).await.unwrap(), Some(call.clone()));
    assert_eq!(fx.active_calls(alice.id).await.unwrap(), vec![call.clone()]);
    assert_eq!(fx.active_calls(bob.id).await.unwrap(), vec![call]);
    assert_eq!(fx.call(CallId::new()).await.unwrap(), None);
}

async fn calls_are_only_between_the_two_members_of_a_dm_or_private_room(backend: Backend) {
    let pair = Pair::new(backend).await;
    let fx = &pair.fx;
    let (alice, bob) = (&pair.alice, &pair.bob);
    let carol = fx.register("carol").await;
    let refused = |room: RoomId, caller: &User| fx.place_call(new_call(room, caller, pair.gateway));

    assert!(matches!(
        refused(RoomId::new(), alice).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        refused(pair.room, &carol).await,
        Err(Error::NotMember)
    ));

    let (public, _) = fx
        .create_room(NewRoom {
            kind: RoomKind::Public,
            name: "lobby".into(),
            topic: String::new(),
            created_by: alice.id,
        })
        .await
        .unwrap();
    fx.join(public.id, bob).await;
    assert!(matches!(
        refused(public.id, alice).await,
        Err(Error::Conflict("not_direct"))
    ));
    let three = fx.private_room(alice).await;
    fx.join(three.id, bob).await;
    fx.join(three.id, &carol).await;
    assert!(matches!(
        refused(three.id, alice).await,
        Err(Error::Conflict("not_direct"))
    ));
    let alone = fx.private_room(&carol).await;
    assert!(matches!(
        refused(alone.id, &carol).await,
        Err(Error::Conflict("not_direct"))
    ));

    // Alice and dave share no room: alice's DM to dave is a request.
    let dave = fx.register("dave").await;
    let (request, _) = fx.direct_room(alice.id, dave.id).await.unwrap();
    fx.send(request.id, alice.id, "hello").await;
    assert!(matches!(
        refused(request.id, alice).await,
        Err(Error::Conflict("dm_request"))
    ));
    fx.decline_dm(request.id, dave.id).await.unwrap();
    assert!(matches!(
        refused(request.id, alice).await,
        Err(Error::Conflict("dm_request"))
    ));
    fx.accept_dm(request.id, dave.id).await.unwrap();
    let (call, _) = refused(request.id, alice).await.expect("accepted: a DM");
    assert_eq!(call.callee, dave.id);
    fx.end_call(call.id, CallEnd::Hangup(alice.id))
        .await
        .unwrap();

    fx.block(bob.id, alice.id).await.unwrap();
    assert!(matches!(
        refused(pair.room, alice).await,
        Err(Error::Conflict("blocked"))
    ));
    assert!(matches!(
        refused(pair.room, bob).await,
        Err(Error::Conflict("blocked"))
    ));

    // Nothing refused was recorded, nor left ringing.
    assert!(fx.log(pair.room).await.iter().all(|e| !matches!(
        e.body,
        EventBody::CallStarted { .. } | EventBody::CallEnded { .. }
    )));
    assert!(fx.active_calls(alice.id).await.unwrap().is_empty());
}

async fn a_caller_in_a_call_is_refused_and_a_busy_callee_ends_the_call_at_once(backend: Backend) {
    let pair = Pair::new(backend).await;
    let fx = &pair.fx;
    let carol = fx.register("carol").await;
    let with_carol = fx.private_room(&carol).await;
    fx.join(with_carol.id, &pair.alice).await;
    let ringing = pair.call().await;

    // Alice is in a call (ringing): she may not place another.
    assert!(matches!(
        fx.place_call(new_call(with_carol.id, &pair.alice, pair.gateway))
            .await,
        Err(Error::Conflict("in_call"))
    ));
    // Carol calls alice, who is in a call: busy.
    let head = fx.reload(with_carol.id).await.last_seq;
    let (busy, events) = fx
        .place_call(new_call(with_carol.id, &carol, pair.gateway))
        .await
        .unwrap();
    assert_eq!(busy.callee, pair.alice.id);
    let [started, ended] = events.as_slice() else {
        panic!("two events: {events:?}");
    };
    assert!(matches!(started.body, EventBody::CallStarted { call_id, .. } if call_id == busy.id));
    assert_ended(ended, &busy, &carol, CallEndReason::Busy);
    assert_eq!((started.seq, ended.seq), (head + 1, head + 2));
    assert_eq!(busy.duration_secs(), None);
    assert_eq!(&fx.log(with_carol.id).await[head as usize..], events);
    assert!(fx.active_calls(carol.id).await.unwrap().is_empty());
    assert_eq!(fx.active_calls(pair.alice.id).await.unwrap(), vec![ringing]);
}

async fn of_two_accepts_exactly_one_wins(backend: Backend) {
    let pair = Pair::new(backend).await;
    let call = pair.call().await;
    let accepts: Vec<_> = (0..2)
        .map(|_| {
            let store = pair.fx.store.clone();
            let (bob, gateway) = (pair.bob.id, pair.gateway);
            let session = ConnectionId::new();
            tokio::spawn(async move {
                let accepted = store.accept_call(call.id, bob, session, gateway).await;
                (session, accepted)
            })
        })
        .collect();
    let mut won = Vec::new();
    for accept in accepts {
        match accept.await.unwrap() {
            (session, Ok(accepted)) => won.push((session, accepted)),
            (_, Err(Error::Conflict("call_not_ringing"))) => {}
            (_, Err(e)) => panic!("unexpected {e:?}"),
        }
    }
    let [(session, accepted)] = won.as_slice() else {
        panic!("exactly one accept wins: {won:?}");
    };
    assert_eq!(accepted.state, CallState::Accepted);
    assert_eq!(accepted.callee_session, Some(*session));
    assert!(accepted.accepted_at.is_some());
    assert_eq!(
        pair.fx.call(call.id).await.unwrap().as_ref(),
        Some(accepted)
    );
    // No event: the log records the start and the end.
    assert!(matches!(
        pair.fx.log(pair.room).await.last().unwrap().body,
        EventBody::CallStarted { .. }
    ));
}

async fn of_an_accept_and_the_ring_timeout_exactly_one_wins(backend: Backend) {
    let pair = Pair::new(backend).await;
    let fx = &pair.fx;
    for _ in 0..5 {
        let call = pair.call().await;
        let store = fx.store.clone();
        let accept = tokio::spawn({
            let store = store.clone();
            let (bob, gateway) = (pair.bob.id, pair.gateway);
            async move {
                store
                    .accept_call(call.id, bob, ConnectionId::new(), gateway)
                    .await
            }
        });
        let sweep = tokio::spawn(async move { store.sweep_calls(Duration::ZERO, LONG).await });
        let accepted = match accept.await.unwrap() {
            Ok(_) => true,
            Err(Error::Conflict("call_not_ringing")) => false,
            Err(e) => panic!("unexpected {e:?}"),
        };
        let missed = sweep.await.unwrap().unwrap();
        assert_eq!(accepted, missed.is_empty(), "one wins: {missed:?}");
        let now = fx.call(call.id).await.unwrap().unwrap();
        if accepted {
            assert_eq!(now.state, CallState::Accepted);
            assert!(ends_logged(fx, &call).await.is_empty());
            fx.end_call(call.id, CallEnd::Hangup(pair.alice.id))
                .await
                .unwrap();
        } else {
            assert_eq!(now.reason, Some(CallEndReason::Missed));
            assert_eq!(ends_logged(fx, &call).await.len(), 1);
        }
    }
}

async fn only_the_callee_accepts(backend: Backend) {
    let pair = Pair::new(backend).await;
    let fx = &pair.fx;
    let carol = fx.register("carol").await;
    let call = pair.call().await;
    for user in [&pair.alice, &carol] {
        assert!(matches!(
            fx.accept_call(call.id, user.id, ConnectionId::new(), pair.gateway)
                .await,
            Err(Error::NotFound)
        ));
    }
    assert!(matches!(
        fx.accept_call(
            CallId::new(),
            pair.bob.id,
            ConnectionId::new(),
            pair.gateway
        )
        .await,
        Err(Error::NotFound)
    ));
    fx.end_call(call.id, CallEnd::Hangup(pair.alice.id))
        .await
        .unwrap();
    assert!(matches!(
        fx.accept_call(call.id, pair.bob.id, ConnectionId::new(), pair.gateway)
            .await,
        Err(Error::Conflict("call_not_ringing"))
    ));
}

async fn a_hangup_ends_a_call_by_its_state(backend: Backend) {
    let pair = Pair::new(backend).await;
    let fx = &pair.fx;
    let (alice, bob) = (&pair.alice, &pair.bob);

    let call = pair.call().await;
    let (ended, event) = fx
        .end_call(call.id, CallEnd::Hangup(alice.id))
        .await
        .unwrap();
    assert_ended(&event, &ended, alice, CallEndReason::Cancelled);
    assert_eq!(ended.duration_secs(), None);

    let call = pair.call().await;
    let (ended, event) = fx.end_call(call.id, CallEnd::Hangup(bob.id)).await.unwrap();
    assert_ended(&event, &ended, bob, CallEndReason::Declined);

    let call = pair.call().await;
    let (ended, event) = fx
        .end_call(call.id, CallEnd::Decline(bob.id))
        .await
        .unwrap();
    assert_ended(&event, &ended, bob, CallEndReason::Declined);

    let call = pair.call().await;
    let (ended, event) = fx.end_call(call.id, CallEnd::Unreachable).await.unwrap();
    assert_ended(&event, &ended, alice, CallEndReason::Missed);

    let call = pair.accepted_call().await;
    let (ended, event) = fx.end_call(call.id, CallEnd::Hangup(bob.id)).await.unwrap();
    assert_ended(&event, &ended, bob, CallEndReason::Completed);
    assert!(ended.duration_secs().is_some(), "accepted: it lasted");
    assert_eq!(ended.accepted_at, call.accepted_at);

    // The log has each, in order, after its start.
    let kinds: Vec<_> = fx
        .log(pair.room)
        .await
        .iter()
        .filter(|e| e.body.kind().starts_with("call_"))
        .map(|e| e.body.kind())
        .collect();
    assert_eq!(kinds, ["call_started", "call_ended"].repeat(5));
    assert!(fx.active_calls(alice.id).await.unwrap().is_empty());
    assert!(fx.active_calls(bob.id).await.unwrap().is_empty());
}

async fn a_call_ends_once(backend: Backend) {
    let pair = Pair::new(backend).await;
    let fx = &pair.fx;
    let (alice, bob) = (&pair.alice, &pair.bob);
    let carol = fx.register("carol").await;

    let call = pair.accepted_call().await;
    for end in [CallEnd::Decline(bob.id), CallEnd::Unreachable] {
        assert!(matches!(
            fx.end_call(call.id, end).await,
            Err(Error::Conflict("call_not_ringing"))
        ));
    }
    assert!(matches!(
        fx.end_call(call.id, CallEnd::Decline(alice.id)).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        fx.end_call(call.id, CallEnd::Hangup(carol.id)).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        fx.end_call(CallId::new(), CallEnd::Hangup(alice.id)).await,
        Err(Error::NotFound)
    ));
    fx.end_call(call.id, CallEnd::Hangup(alice.id))
        .await
        .unwrap();
    for user in [alice, bob] {
        assert!(matches!(
            fx.end_call(call.id, CallEnd::Hangup(user.id)).await,
            Err(Error::Conflict("call_ended"))
        ));
    }
    assert!(matches!(
        fx.end_call(call.id, CallEnd::Decline(bob.id)).await,
        Err(Error::Conflict("call_not_ringing"))
    ));
    assert_eq!(ends_logged(fx, &call).await.len(), 1);
}

async fn an_end_and_a_sweep_at_once_end_a_call_once(backend: Backend) {
    let pair = Pair::new(backend).await;
    let fx = &pair.fx;
    for _ in 0..5 {
        let call = pair.accepted_call().await;
        // Its gateway is lost: the sweep ends it too, if first.
        fx.gateway_stopped(pair.gateway).await.unwrap();
        let store = fx.store.clone();
        let hangup = tokio::spawn({
            let store = store.clone();
            let bob = pair.bob.id;
            async move { store.end_call(call.id, CallEnd::Hangup(bob)).await }
        });
        let sweep = tokio::spawn(async move { store.sweep_calls(LONG, LONG).await });
        let by_hangup = match hangup.await.unwrap() {
            Ok(_) => 1,
            Err(Error::Conflict("call_ended")) => 0,
            Err(e) => panic!("unexpected {e:?}"),
        };
        let by_sweep = sweep.await.unwrap().unwrap().len();
        assert_eq!(by_hangup + by_sweep, 1, "ended once");
        assert_eq!(ends_logged(fx, &call).await.len(), 1);
        fx.gateway_alive(pair.gateway).await.unwrap();
    }
}

async fn a_closed_connection_ends_the_calls_it_takes_part_in(backend: Backend) {
    let pair = Pair::new(backend).await;
    let fx = &pair.fx;
    let (alice, bob) = (&pair.alice, &pair.bob);

    // The caller's connection, while it rings: cancelled.
    let call = pair.call().await;
    assert!(fx
        .connection_closed(alice.id, ConnectionId::new())
        .await
        .unwrap()
        .is_empty());
    let (ended, event) = only(
        fx.connection_closed(alice.id, call.caller_session)
            .await
            .unwrap(),
    );
    assert_ended(&event, &ended, alice, CallEndReason::Cancelled);

    // A callee's connection that only rang ends nothing.
    let call = pair.call().await;
    let rang = ConnectionId::new();
    assert!(fx.connection_closed(bob.id, rang).await.unwrap().is_empty());
    let accepting = ConnectionId::new();
    fx.accept_call(call.id, bob.id, accepting, pair.gateway)
        .await
        .unwrap();
    assert!(fx.connection_closed(bob.id, rang).await.unwrap().is_empty());
    // Someone else's connection of that id is not bob's.
    assert!(fx
        .connection_closed(alice.id, accepting)
        .await
        .unwrap()
        .is_empty());
    // The accepting connection: failed, in the caller's name.
    let (ended, event) = only(fx.connection_closed(bob.id, accepting).await.unwrap());
    assert_ended(&event, &ended, alice, CallEndReason::Failed);
    assert!(ended.duration_secs().is_some());

    // The caller's connection once accepted: failed too.
    let call = pair.accepted_call().await;
    let (ended, event) = only(
        fx.connection_closed(alice.id, call.caller_session)
            .await
            .unwrap(),
    );
    assert_ended(&event, &ended, alice, CallEndReason::Failed);
    assert!(fx
        .connection_closed(alice.id, call.caller_session)
        .await
        .unwrap()
        .is_empty());
}

async fn the_sweep_ends_unanswered_calls(backend: Backend) {
    let pair = Pair::new(backend).await;
    let fx = &pair.fx;
    let carol = fx.register("carol").await;
    let dave = fx.register("dave").await;
    let theirs = fx.private_room(&carol).await;
    fx.join(theirs.id, &dave).await;

    let ringing = pair.call().await;
    assert!(fx.sweep_calls(LONG, LONG).await.unwrap().is_empty());
    // Carol's call to dave is accepted: a ring timeout passes it by.
    let (call, _) = fx
        .place_call(new_call(theirs.id, &carol, pair.gateway))
        .await
        .unwrap();
    let accepted = fx
        .accept_call(call.id, dave.id, ConnectionId::new(), pair.gateway)
        .await
        .unwrap();

    let swept = fx.sweep_calls(Duration::ZERO, LONG).await.unwrap();
    let [(ended, event)] = swept.as_slice() else {
        panic!("one call missed: {swept:?}");
    };
    assert_eq!(ended.id, ringing.id);
    assert_ended(event, ended, &pair.alice, CallEndReason::Missed);
    assert_eq!(ends_logged(fx, &ringing).await, vec![event.clone()]);
    assert_eq!(
        fx.active_calls(dave.id).await.unwrap(),
        vec![accepted],
        "the accepted call is kept"
    );
    assert!(fx
        .sweep_calls(Duration::ZERO, LONG)
        .await
        .unwrap()
        .is_empty());
}

async fn the_sweep_ends_calls_on_lost_gateways(backend: Backend) {
    let pair = Pair::new(backend).await;
    let fx = &pair.fx;
    let (alice, bob) = (&pair.alice, &pair.bob);

    // Both parties on a live gateway: kept.
    let call = pair.accepted_call().await;
    assert!(fx.sweep_calls(LONG, LONG).await.unwrap().is_empty());
    fx.end_call(call.id, CallEnd::Hangup(alice.id))
        .await
        .unwrap();

    // The caller's gateway was never alive.
    let (call, _) = fx
        .place_call(new_call(pair.room, alice, Uuid::now_v7()))
        .await
        .unwrap();
    let (ended, event) = only(fx.sweep_calls(LONG, LONG).await.unwrap());
    assert_eq!(ended.id, call.id);
    assert_ended(&event, &ended, alice, CallEndReason::Failed);

    // The callee's gateway is stopped.
    let call = pair.call().await;
    let other = Uuid::now_v7();
    fx.gateway_alive(other).await.unwrap();
    fx.accept_call(call.id, bob.id, ConnectionId::new(), other)
        .await
        .unwrap();
    assert!(fx.sweep_calls(LONG, LONG).await.unwrap().is_empty());
    fx.gateway_stopped(other).await.unwrap();
    let (ended, event) = only(fx.sweep_calls(LONG, LONG).await.unwrap());
    assert_eq!(ended.id, call.id);
    assert_ended(&event, &ended, alice, CallEndReason::Failed);

    // A lease that has lapsed.
    let call = pair.accepted_call().await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (ended, event) = only(
        fx.sweep_calls(LONG, Duration::from_millis(10))
            .await
            .unwrap(),
    );
    assert_eq!(ended.id, call.id);
    assert_ended(&event, &ended, alice, CallEndReason::Failed);
}

async fn the_sweep_ends_calls_of_parties_who_may_no_longer_call(backend: Backend) {
    let pair = Pair::new(backend).await;
    let fx = &pair.fx;
    let (alice, bob) = (&pair.alice, &pair.bob);

    let call = pair.accepted_call().await;
    fx.block(bob.id, alice.id).await.unwrap();
    let (ended, event) = only(fx.sweep_calls(LONG, LONG).await.unwrap());
    assert_eq!(ended.id, call.id);
    assert_ended(&event, &ended, alice, CallEndReason::Failed);
    fx.unblock(bob.id, alice.id).await.unwrap();

    let call = pair.call().await;
    fx.remove_member(pair.room, bob.id, bob.id, LeaveReason::Left)
        .await
        .unwrap();
    let (ended, event) = only(fx.sweep_calls(LONG, LONG).await.unwrap());
    assert_eq!(ended.id, call.id);
    assert_ended(&event, &ended, alice, CallEndReason::Failed);
    assert_eq!(ends_logged(fx, &call).await, vec![event]);
    assert!(fx.sweep_calls(LONG, LONG).await.unwrap().is_empty());
}
