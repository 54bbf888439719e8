//! Timeouts and slow mode on live sockets: a mute made over REST reaches
//! the muted member and the room at once (as `member_muted`, a log event),
//! and from then on the member's sends and reactions are answered with
//! `muted` and their typing is dropped, until `member_unmuted`; slow mode
//! answers a member's second message within the interval with `slow_mode`;
//! a join by invite link reaches the newcomer's open socket at once.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::both_shapes;
use crate::cluster::{Setup, TestClient, TestCluster};

both_shapes!(
    a_mute_reaches_the_room_live_and_refuses_the_members_frames,
    slow_mode_refuses_a_members_second_message_over_the_socket,
    joining_by_an_invite_link_starts_live_delivery,
);

/// The gateway index for the `n`th client: spread over all gateways.
fn spread(cluster: &TestCluster, n: usize) -> usize {
    n % cluster.gateways.len()
}

/// The answer to the `send` of `client_id`: its ack or its error.
async fn answer(client: &mut TestClient, client_id: &str) -> Value {
    client
        .recv_until(|f| {
            (f["type"] == "ack" && f["client_id"] == client_id)
                || (f["type"] == "error" && f["ref"] == client_id)
        })
        .await
}

/// The head of `room` as the store has it.
async fn head(cluster: &TestCluster, room: &str) -> i64 {
    let id = chat_shared::model::RoomId(room.parse().unwrap());
    cluster.store.room(id).await.unwrap().unwrap().last_seq
}

async fn a_mute_reaches_the_room_live_and_refuses_the_members_frames(setup: Setup) {
    let cluster = TestCluster::start(setup).await;
    let alice = cluster.user("alice").await;
    let bob = cluster.user("bob").await;
    let carol = cluster.user("carol").await;
    let room = cluster.room(&alice, &[&bob, &carol]).await;
    // Bob and alice on one gateway, carol on the other (when there are two).
    let mut a = cluster.connect(&alice, spread(&cluster, 1)).await;
    let mut b = cluster.connect(&bob, spread(&cluster, 1)).await;
    let mut c = cluster.connect(&carol, 0).await;
    let said = a.send_message(&room, "a1", "hello").await;

    let path = format!("/v1/rooms/{room}/members/{}/mute", bob.id);
    let (status, muted) = cluster
        .rest(&alice, "PUT", &path, json!({ "duration_seconds": 600 }))
        .await;
    assert_eq!(status, StatusCode::OK, "{muted}");
    for client in [&mut b, &mut c] {
        let live = client.recv_until(|f| f["type"] == "member_muted").await;
        assert_eq!(live, muted, "the same event, live");
    }

    // Bob's send is refused with the end of his mute; nothing is stored.
    let before = head(&cluster, &room).await;
    b.send(json!({ "type": "send", "room_id": room, "client_id": "b1", "body": "hi" }))
        .await;
    let refused = answer(&mut b, "b1").await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["code"], "muted");
    let text = refused["message"].as_str().unwrap();
    assert!(text.contains(muted["until"].as_str().unwrap()), "{text}");
    b.send(json!({
        "type": "react", "room_id": room, "client_id": "r1",
        "target": said["id"], "emoji": "👍"
    }))
    .await;
    let refused = b
        .recv_until(|f| f["type"] == "error" && f["ref"] == "r1")
        .await;
    assert_eq!(refused["code"], "muted");
    assert_eq!(head(&cluster, &room).await, before);

    // His typing goes nowhere. Frames of one socket are handled in order,
    // so once his next send is answered his typing has been handled; then
    // alice's typing, published after it by the same gateway, is the first
    // typing carol sees.
    b.send(json!({ "type": "typing", "room_id": room })).await;
    b.send(json!({ "type": "send", "room_id": room, "client_id": "b2", "body": "hi" }))
        .await;
    assert_eq!(answer(&mut b, "b2").await["code"], "muted");
    a.send(json!({ "type": "typing", "room_id": room })).await;
    let typing = c.recv_until(|f| f["type"] == "typing").await;
    assert_eq!(typing["user_id"], alice.id.as_str(), "{typing}");

    // Lifted: everyone is told, and he sends again.
    let (status, unmuted) = cluster.rest(&alice, "DELETE", &path, json!(null)).await;
    assert_eq!(status, StatusCode::OK, "{unmuted}");
    for client in [&mut b, &mut c] {
        let live = client.recv_until(|f| f["type"] == "member_unmuted").await;
        assert_eq!(live["user"], bob.id.as_str());
    }
    b.send_message(&room, "b3", "back").await;
    let heard = c
        .recv_until(|f| f["type"] == "message" && f["client_id"] == "b3")
        .await;
    assert_eq!(heard["sender"], bob.id.as_str());
}

async fn slow_mode_refuses_a_members_second_message_over_the_socket(setup: Setup) {
    let cluster = TestCluster::start(setup).await;
    let alice = cluster.user("alice").await;
    let bob = cluster.user("bob").await;
    let room = cluster.room(&alice, &[&bob]).await;
    let mut a = cluster.connect(&alice, 0).await;
    let mut b = cluster.connect(&bob, spread(&cluster, 1)).await;

    let (status, set) = cluster
        .rest(
            &alice,
            "PUT",
            &format!("/v1/rooms/{room}/slow-mode"),
            json!({ "seconds": 60 }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{set}");
    let changed = b.recv_until(|f| f["type"] == "slow_mode_changed").await;
    assert_eq!(changed["seconds"], 60);

    b.send_message(&room, "b1", "one").await;
    let before = head(&cluster, &room).await;
    b.send(json!({ "type": "send", "room_id": room, "client_id": "b2", "body": "two" }))
        .await;
    let refused = answer(&mut b, "b2").await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["code"], "slow_mode");
    assert!(refused["message"].as_str().unwrap().contains("wait"));
    assert_eq!(head(&cluster, &room).await, before, "nothing stored");
    // The owner is exempt.
    a.send_message(&room, "a1", "one").await;
    a.send_message(&room, "a2", "two").await;
}

async fn joining_by_an_invite_link_starts_live_delivery(setup: Setup) {
    let cluster = TestCluster::start(setup).await;
    let alice = cluster.user("alice").await;
    let carol = cluster.user("carol").await;
    let (status, room) = cluster
        .rest(
            &alice,
            "POST",
            "/v1/rooms",
            json!({ "name": "secret", "kind": "private" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{room}");
    let room = room["id"].as_str().unwrap().to_owned();
    let mut a = cluster.connect(&alice, 0).await;
    let mut c = cluster.connect(&carol, spread(&cluster, 1)).await;
    let (status, link) = cluster
        .rest(
            &alice,
            "POST",
            &format!("/v1/rooms/{room}/invite-links"),
            json!({ "max_uses": 1 }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{link}");
    let code = link["code"].as_str().unwrap();
    let (status, joined) = cluster
        .rest(
            &carol,
            "POST",
            &format!("/v1/invite-links/{code}/join"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{joined}");
    let added = c
        .recv_until(|f| f["type"] == "room_added" && f["room"]["id"] == room.as_str())
        .await;
    assert_eq!(added["seq"], joined["seq"]);
    let own = c
        .recv_until(|f| f["type"] == "member_joined" && f["room_id"] == room.as_str())
        .await;
    assert_eq!(own["user"], carol.id.as_str());
    let heard = a
        .recv_until(|f| f["type"] == "member_joined" && f["user"] == carol.id.as_str())
        .await;
    assert_eq!(heard["seq"], joined["seq"]);
    a.send_message(&room, "hello", "welcome").await;
    let message = c
        .recv_until(|f| f["type"] == "message" && f["client_id"] == "hello")
        .await;
    assert_eq!(
        message["seq"].as_i64(),
        joined["seq"].as_i64().map(|s| s + 1)
    );
}
