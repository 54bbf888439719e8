//! Calls on live sockets, across gateways (docs/protocol.md, "Calls"): a
//! placed call rings every connection of the callee, wherever it is, and
//! one of them takes it; signals go only between the connections the call
//! allows; every way a call ends (hangup, decline, cancel, nobody there,
//! the ring timeout, a closed connection, a dead gateway) reaches both
//! parties as a `call` frame, and the room's log records its start and
//! end.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::both_shapes;
use crate::cluster::{Setup, TestClient, TestCluster, User};

both_shapes!(
    a_call_rings_everywhere_and_is_taken_by_one_connection,
    declining_cancelling_and_a_second_call_while_in_one,
    a_callee_nobody_can_reach_or_who_does_not_answer_misses_it,
    calls_outside_a_dm_of_two_and_bad_signals_are_refused,
    a_closed_connection_ends_its_accepted_call_as_failed,
    call_frames_draw_on_a_budget_of_their_own,
    a_call_from_a_closed_dm_rings_a_callee_its_gateway_cannot_see,
);

/// Alice and Bob, who share a room (so their DM is no request), and the
/// DM, listed for both by its first message; `connections` of theirs are
/// made by the test.
struct Pair {
    alice: User,
    bob: User,
    dm: String,
}

async fn pair(cluster: &TestCluster) -> Pair {
    let (alice, bob) = (cluster.user("alice").await, cluster.user("bob").await);
    cluster.room(&alice, &[&bob]).await;
    let dm = written_dm(cluster, &alice, &bob).await;
    Pair { alice, bob, dm }
}

/// `from`'s DM with `to`, opened and written in once by `from` (so it is
/// listed for them).
async fn written_dm(cluster: &TestCluster, from: &User, to: &User) -> String {
    let (status, dm) = cluster
        .rest(from, "POST", "/v1/dms", json!({ "user_id": to.id }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{dm}");
    let dm = dm["id"].as_str().unwrap().to_owned();
    let (status, body) = cluster
        .rest(
            from,
            "POST",
            &format!("/v1/rooms/{dm}/messages"),
            json!({ "client_id": "first", "body": "hi" }),
        )
        .await;
    assert!(status.is_success(), "{status}: {body}");
    dm
}

/// Waits until `client` has heard that `user` is online: the caller's
/// gateway then knows the callee can be rung.
async fn sees_online(client: &mut TestClient, user: &User) {
    client
        .recv_until(|f| {
            f["type"] == "presence" && f["user_id"] == user.id.as_str() && f["status"] == "online"
        })
        .await;
}

/// The next `call` frame in `state`.
async fn call_in(client: &mut TestClient, state: &'static str) -> Value {
    let frame = client
        .recv_until(|f| f["type"] == "call" && f["call"]["state"] == state)
        .await;
    frame["call"].clone()
}

/// The next `call` frame of an ended call, which must have ended for
/// `reason`.
async fn ended(client: &mut TestClient, reason: &str) -> Value {
    let call = call_in(client, "ended").await;
    assert_eq!(call["reason"], reason, "{call}");
    call
}

/// The error answering a frame about `reference`.
async fn error_for(client: &mut TestClient, reference: &str) -> Value {
    client
        .recv_until(|f| f["type"] == "error" && f["ref"] == reference)
        .await
}

async fn place(client: &mut TestClient, room: &str) {
    client
        .send(json!({ "type": "call_place", "room_id": room, "video": true }))
        .await;
}

async fn act(client: &mut TestClient, action: &str, call: &Value) {
    client
        .send(json!({ "type": action, "call_id": call["id"] }))
        .await;
}

async fn signal(client: &mut TestClient, call: &Value, kind: &str, payload: Value) {
    client
        .send(json!({ "type": "signal", "call_id": call["id"], "kind": kind, "payload": payload }))
        .await;
}

fn is_signal(f: &Value) -> bool {
    f["type"] == "signal"
}

async fn a_call_rings_everywhere_and_is_taken_by_one_connection(setup: Setup) {
    let cluster = TestCluster::start(setup).await;
    let Pair { alice, bob, dm } = pair(&cluster).await;
    let last = cluster.gateways.len() - 1;
    let mut a = cluster.connect(&alice, 0).await;
    let mut b1 = cluster.connect(&bob, 0).await;
    let mut b2 = cluster.connect(&bob, last).await;
    sees_online(&mut a, &bob).await;

    place(&mut a, &dm).await;
    let placed = call_in(&mut a, "ringing").await;
    assert_eq!(placed["caller"], alice.id.as_str());
    assert_eq!(placed["callee"], bob.id.as_str());
    assert_eq!(placed["room_id"], dm.as_str());
    assert_eq!(placed["video"], true);
    assert_eq!(placed["caller_session"], a.session_id());
    for b in [&mut b1, &mut b2] {
        assert_eq!(call_in(b, "ringing").await["id"], placed["id"]);
    }
    // A connection that opens while it rings rings too.
    let mut reloaded = cluster.connect(&bob, last).await;
    assert_eq!(call_in(&mut reloaded, "ringing").await["id"], placed["id"]);
    drop(reloaded);
    // While it rings, the caller's signals reach every connection of the
    // callee, and theirs reach the caller.
    signal(&mut a, &placed, "ice", json!({ "candidate": "early" })).await;
    for b in [&mut b1, &mut b2] {
        let early = b.recv_until(is_signal).await;
        assert_eq!(early["payload"]["candidate"], "early");
        assert_eq!(early["from_user"], alice.id.as_str());
        assert!(early.get("to_session").is_none(), "{early}");
    }

    // Taken on b2: everyone learns which connection took it.
    act(&mut b2, "call_accept", &placed).await;
    let taker = b2.session_id().to_owned();
    for client in [&mut a, &mut b1, &mut b2] {
        let accepted = call_in(client, "accepted").await;
        assert_eq!(accepted["callee_session"], taker.as_str());
        assert!(accepted["accepted_at"].is_string());
    }
    act(&mut b1, "call_accept", &placed).await;
    let id = placed["id"].as_str().unwrap();
    assert_eq!(error_for(&mut b1, id).await["code"], "call_not_ringing");

    // Offer and answer, between the two connections taking part only.
    let sdp = json!({ "sdp": "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n" });
    signal(&mut a, &placed, "offer", sdp.clone()).await;
    let offer = b2.recv_until(is_signal).await;
    assert_eq!(offer["kind"], "offer");
    assert_eq!(offer["payload"], sdp);
    assert_eq!(offer["to_session"], b2.session_id());
    assert_eq!(offer["call_id"], placed["id"]);
    let elsewhere = b1.frames_until_pong().await;
    assert!(!elsewhere.iter().any(is_signal), "{elsewhere:?}");
    signal(&mut b1, &placed, "answer", sdp.clone()).await;
    assert_eq!(error_for(&mut b1, id).await["code"], "not_in_call");
    signal(&mut b2, &placed, "answer", sdp.clone()).await;
    let answer = a.recv_until(is_signal).await;
    assert_eq!(answer["kind"], "answer");
    assert_eq!(answer["from_user"], bob.id.as_str());
    assert_eq!(answer["to_session"], a.session_id());

    act(&mut a, "call_hangup", &placed).await;
    for client in [&mut a, &mut b1, &mut b2] {
        let call = ended(client, "completed").await;
        assert!(call["ended_at"].is_string());
    }
    // Both sides' logs: the start, then the end with its duration.
    for client in [&mut a, &mut b2] {
        let started = client
            .recv_until(|f| f["type"] == "call_started" && f["room_id"] == dm.as_str())
            .await;
        assert_eq!(started["call_id"], placed["id"]);
        assert_eq!(started["sender"], alice.id.as_str());
        assert_eq!(started["video"], true);
        let end = client
            .recv_until(|f| f["type"] == "call_ended" && f["room_id"] == dm.as_str())
            .await;
        assert_eq!(end["reason"], "completed");
        assert!(end["duration_secs"].is_u64(), "{end}");
        assert!(end["seq"].as_i64() > started["seq"].as_i64());
    }
    // After the end, no one signals.
    signal(&mut a, &placed, "ice", json!({})).await;
    assert_eq!(error_for(&mut a, id).await["code"], "call_ended");
}

async fn declining_cancelling_and_a_second_call_while_in_one(setup: Setup) {
    let cluster = TestCluster::start(setup).await;
    let Pair { alice, bob, dm } = pair(&cluster).await;
    let last = cluster.gateways.len() - 1;
    let mut a = cluster.connect(&alice, 0).await;
    let mut b = cluster.connect(&bob, last).await;
    sees_online(&mut a, &bob).await;

    place(&mut a, &dm).await;
    let call = call_in(&mut b, "ringing").await;
    act(&mut b, "call_decline", &call).await;
    assert_eq!(ended(&mut a, "declined").await["id"], call["id"]);
    ended(&mut b, "declined").await;

    place(&mut a, &dm).await;
    let call = call_in(&mut b, "ringing").await;
    act(&mut a, "call_hangup", &call).await;
    assert_eq!(ended(&mut b, "cancelled").await["id"], call["id"]);
    ended(&mut a, "cancelled").await;

    // In a call, no second one.
    place(&mut a, &dm).await;
    let call = call_in(&mut b, "ringing").await;
    act(&mut b, "call_accept", &call).await;
    call_in(&mut a, "accepted").await;
    place(&mut a, &dm).await;
    assert_eq!(error_for(&mut a, &dm).await["code"], "in_call");
    act(&mut b, "call_hangup", &call).await;
    ended(&mut a, "completed").await;
}

async fn a_callee_nobody_can_reach_or_who_does_not_answer_misses_it(setup: Setup) {
    let cluster =
        TestCluster::start_with(setup, |c| c.call_ring_timeout = Duration::from_secs(1)).await;
    let Pair { alice, bob, dm } = pair(&cluster).await;
    let last = cluster.gateways.len() - 1;
    let mut a = cluster.connect(&alice, 0).await;

    // Bob has no connection anywhere: missed at once.
    place(&mut a, &dm).await;
    let call = call_in(&mut a, "ended").await;
    assert_eq!(call["reason"], "missed", "{call}");
    let end = a
        .recv_until(|f| f["type"] == "call_ended" && f["call_id"] == call["id"])
        .await;
    assert!(end.get("duration_secs").is_none(), "{end}");

    // Connected but not answering: missed at the ring timeout.
    let mut b = cluster.connect(&bob, last).await;
    sees_online(&mut a, &bob).await;
    place(&mut a, &dm).await;
    let ringing = call_in(&mut b, "ringing").await;
    let missed = ended(&mut b, "missed").await;
    assert_eq!(missed["id"], ringing["id"]);
    ended(&mut a, "missed").await;
}

async fn calls_outside_a_dm_of_two_and_bad_signals_are_refused(setup: Setup) {
    let cluster = TestCluster::start(setup).await;
    let Pair { alice, bob, dm } = pair(&cluster).await;
    let carol = cluster.user("carol").await;
    let group = cluster.room(&alice, &[&bob, &carol]).await;
    let last = cluster.gateways.len() - 1;
    let mut a = cluster.connect(&alice, 0).await;
    let mut b = cluster.connect(&bob, last).await;
    let mut c = cluster.connect(&carol, 0).await;
    sees_online(&mut a, &bob).await;

    place(&mut c, &dm).await;
    assert_eq!(error_for(&mut c, &dm).await["code"], "not_member");
    place(&mut a, &group).await;
    assert_eq!(error_for(&mut a, &group).await["code"], "not_direct");
    let unknown = json!({ "id": uuid::Uuid::now_v7().to_string() });
    act(&mut a, "call_hangup", &unknown).await;
    let id = unknown["id"].as_str().unwrap();
    assert_eq!(error_for(&mut a, id).await["code"], "not_found");

    place(&mut a, &dm).await;
    let call = call_in(&mut b, "ringing").await;
    let id = call["id"].as_str().unwrap();
    // Not a party: no such call, for carol.
    signal(&mut c, &call, "offer", json!({})).await;
    assert_eq!(error_for(&mut c, id).await["code"], "not_found");
    let oversize = json!({ "sdp": "x".repeat(16 * 1024) });
    signal(&mut a, &call, "offer", oversize).await;
    assert_eq!(error_for(&mut a, id).await["code"], "validation_failed");
    act(&mut a, "call_hangup", &call).await;
    ended(&mut b, "cancelled").await;

    // One blocks the other: no call either way.
    let path = format!("/v1/users/me/blocks/{}", alice.id);
    let (status, body) = cluster.rest(&bob, "PUT", &path, Value::Null).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    place(&mut a, &dm).await;
    assert_eq!(error_for(&mut a, &dm).await["code"], "blocked");
    place(&mut b, &dm).await;
    assert_eq!(error_for(&mut b, &dm).await["code"], "blocked");
}

async fn a_closed_connection_ends_its_accepted_call_as_failed(setup: Setup) {
    let cluster = TestCluster::start(setup).await;
    let Pair { alice, bob, dm } = pair(&cluster).await;
    let last = cluster.gateways.len() - 1;
    let mut a = cluster.connect(&alice, 0).await;
    let mut b = cluster.connect(&bob, last).await;
    sees_online(&mut a, &bob).await;
    place(&mut a, &dm).await;
    let call = call_in(&mut b, "ringing").await;
    act(&mut b, "call_accept", &call).await;
    call_in(&mut a, "accepted").await;

    // A reload, say.
    b.close().await;
    drop(b);
    assert_eq!(ended(&mut a, "failed").await["id"], call["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_gateways_calls_end_as_failed_within_its_lease() {
    let lease = Duration::from_secs(2);
    let cluster = TestCluster::start_with(Setup::SCALED, |c| c.gateway_lease = lease).await;
    let Pair { alice, bob, dm } = pair(&cluster).await;
    let (mut process, url) = cluster
        .gateway_process_with(&[("CHAT_GATEWAY_LEASE", "2s")])
        .await;
    let mut a = cluster.connect(&alice, 0).await;
    let mut b = TestClient::connect(&url, &bob.token).await.unwrap();
    sees_online(&mut a, &bob).await;
    place(&mut a, &dm).await;
    let call = call_in(&mut b, "ringing").await;
    act(&mut b, "call_accept", &call).await;
    call_in(&mut a, "accepted").await;

    // No drain, no goodbye: only the lease it no longer renews tells.
    let killed = std::time::Instant::now();
    process.kill();
    assert_eq!(ended(&mut a, "failed").await["id"], call["id"]);
    let took = killed.elapsed();
    assert!(took <= lease + Duration::from_secs(4), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_drained_gateways_calls_end_as_its_connections_close() {
    let mut cluster = TestCluster::start(Setup::SCALED).await;
    let Pair { alice, bob, dm } = pair(&cluster).await;
    let mut a = cluster.connect(&alice, 0).await;
    let mut b = cluster.connect(&bob, 1).await;
    sees_online(&mut a, &bob).await;
    place(&mut a, &dm).await;
    let call = call_in(&mut b, "ringing").await;
    act(&mut b, "call_accept", &call).await;
    call_in(&mut a, "accepted").await;

    // SIGTERM: bob's connection closes with 1012, and its call with it.
    cluster.stop_gateway(1);
    assert_eq!(b.closed().await.0, 1012);
    assert_eq!(ended(&mut a, "failed").await["id"], call["id"]);
}

async fn call_frames_draw_on_a_budget_of_their_own(setup: Setup) {
    let cluster = TestCluster::start_with(setup, |c| {
        c.common.call_rate_per_minute = 1;
        c.common.call_burst = 2;
    })
    .await;
    let Pair { alice, bob, dm } = pair(&cluster).await;
    let mut a = cluster.connect(&alice, 0).await;
    let mut b = cluster.connect(&bob, cluster.gateways.len() - 1).await;
    sees_online(&mut a, &bob).await;
    place(&mut a, &dm).await;
    let call = call_in(&mut b, "ringing").await;
    act(&mut a, "call_hangup", &call).await;
    ended(&mut b, "cancelled").await;
    place(&mut a, &dm).await;
    assert_eq!(error_for(&mut a, &dm).await["code"], "rate_limited");
    // Bob's budget is his own.
    place(&mut b, &dm).await;
    call_in(&mut a, "ringing").await;
}

/// Alice closed her DM with Bob, with whom she shares no other room: her
/// connection does not deliver the DM, so her gateway has not heard
/// whether Bob is online. Not knowing is no reason to miss the call: it
/// rings.
async fn a_call_from_a_closed_dm_rings_a_callee_its_gateway_cannot_see(setup: Setup) {
    let cluster = TestCluster::start(setup).await;
    let (alice, bob) = (cluster.user("alice").await, cluster.user("bob").await);
    let dm = written_dm(&cluster, &alice, &bob).await;
    for (who, action) in [(&bob, "accept"), (&alice, "close")] {
        let (status, body) = cluster
            .rest(who, "POST", &format!("/v1/dms/{dm}/{action}"), json!({}))
            .await;
        assert!(status.is_success(), "{action}: {status}: {body}");
    }
    let last = cluster.gateways.len() - 1;
    let mut b = cluster.connect(&bob, last).await;
    let mut a = cluster.connect(&alice, 0).await;
    place(&mut a, &dm).await;
    let ringing = call_in(&mut a, "ringing").await;
    let rung = call_in(&mut b, "ringing").await;
    assert_eq!(rung["id"], ringing["id"]);
}
