//! Rooms as connected clients live them: joins, invitations, DMs, leaves,
//! kicks, bans and deletions made over REST take effect on open sessions at
//! once; typing and read markers are relayed (calls: calls.rs); the api's
//! room events arrive in seq order with the messages.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::both_shapes;
use crate::cluster::{Setup, TestClient, TestCluster, User};

both_shapes!(
    a_kicked_member_gets_nothing_more_from_the_room,
    joining_over_rest_starts_live_delivery,
    an_invitation_to_a_private_room_starts_live_delivery,
    leaving_banning_and_deleting_remove_the_room,
    typing_is_relayed_to_the_other_members,
    read_markers_are_stored_relayed_and_capped,
    api_room_events_arrive_live_in_seq_order,
);

/// The gateway index for the `n`th client: spread over all gateways.
fn spread(cluster: &TestCluster, n: usize) -> usize {
    n % cluster.gateways.len()
}

/// Every frame up to and including the first matching `pred`, in arrival
/// order (what was skipped earlier comes first).
async fn frames_until(client: &mut TestClient, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
    let mut frames = Vec::new();
    loop {
        let Some(frame) = client.next().await else {
            panic!(
                "socket closed ({:?}) before the expected frame",
                client.closed
            );
        };
        let done = pred(&frame);
        frames.push(frame);
        if done {
            return frames;
        }
    }
}

/// Whether a frame concerns `room`.
fn of_room(frame: &Value, room: &str) -> bool {
    frame["room_id"] == room || frame["room"]["id"] == room
}

/// The room's log events (not typing or read markers) until `count`
/// arrived, checking their seqs are consecutive.
async fn room_events(client: &mut TestClient, room: &str, count: usize) -> Vec<Value> {
    const KINDS: [&str; 5] = [
        "message",
        "member_joined",
        "member_left",
        "role_changed",
        "room_updated",
    ];
    let mut out: Vec<Value> = Vec::new();
    while out.len() < count {
        let event = client
            .recv_until(|f| f["room_id"] == room && KINDS.iter().any(|k| f["type"] == *k))
            .await;
        if let Some(last) = out.last() {
            assert_eq!(
                event["seq"].as_i64(),
                last["seq"].as_i64().map(|s| s + 1),
                "not the next event: {event} after {last}"
            );
        }
        out.push(event);
    }
    out
}

/// Waits until `client` was told `room` is gone for them, after their own
/// `member_left` with `reason`.
async fn removed_after_own_leave(client: &mut TestClient, room: &str, user: &User, reason: &str) {
    let frames = frames_until(client, |f| {
        f["type"] == "room_removed" && f["room_id"] == room
    })
    .await;
    let left = frames
        .iter()
        .position(|f| f["type"] == "member_left" && f["room_id"] == room && f["user"] == user.id)
        .unwrap_or_else(|| panic!("no own member_left before room_removed: {frames:?}"));
    assert_eq!(frames[left]["reason"], reason);
}

/// The message `client_id` of `room`, skipping what comes before it.
async fn message(client: &mut TestClient, room: &str, client_id: &str) -> Value {
    client
        .recv_until(|f| {
            f["type"] == "message" && f["room_id"] == room && f["client_id"] == client_id
        })
        .await
}

/// Creates a room of `kind` owned by `owner` through the api.
async fn create_room(cluster: &TestCluster, owner: &User, kind: &str) -> String {
    let (status, room) = cluster
        .rest(
            owner,
            "POST",
            "/v1/rooms",
            json!({ "name": "test", "kind": kind }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{room}");
    room["id"].as_str().unwrap().to_owned()
}

/// Checks that `client`, already connected, picks `room` up live: first
/// `room_added` for the event `added` that made `user` a member, then that
/// event itself, then `sender`'s next message.
async fn picks_up_live(
    client: &mut TestClient,
    sender: &mut TestClient,
    room: &str,
    user: &User,
    added: &Value,
) {
    let seq = added["seq"].as_i64().unwrap();
    assert!(!client.heads().contains_key(room), "already in hello");
    let frames = frames_until(client, |f| {
        f["type"] == "member_joined" && f["room_id"] == room && f["user"] == user.id
    })
    .await;
    let announced = frames
        .iter()
        .find(|f| f["type"] == "room_added" && f["room"]["id"] == room)
        .unwrap_or_else(|| panic!("no room_added before member_joined: {frames:?}"));
    assert_eq!(announced["seq"], seq);
    let joined = frames.last().unwrap();
    assert_eq!(joined["seq"], seq);
    assert_eq!(joined["id"], added["id"]);

    let client_id = format!("welcome-{}", user.id);
    let ack = sender.send_message(room, &client_id, "welcome").await;
    let welcome = message(client, room, &client_id).await;
    assert_eq!(welcome["seq"], ack["seq"]);
    assert_eq!(welcome["body"], "welcome");
    assert_eq!(welcome["seq"], seq + 1);
}

async fn a_kicked_member_gets_nothing_more_from_the_room(setup: Setup) {
    let cluster = TestCluster::start(setup).await;
    let alice = cluster.user("alice").await;
    let bob = cluster.user("bob").await;
    let carol = cluster.user("carol").await;
    let kicked_from = cluster.room(&alice, &[&bob, &carol]).await;
    let still_in = cluster.room(&alice, &[&bob]).await;
    let mut a = cluster.connect(&alice, 0).await;
    let mut b = cluster.connect(&bob, spread(&cluster, 1)).await;
    let mut c = cluster.connect(&carol, spread(&cluster, 2)).await;
    a.send_message(&kicked_from, "before", "before the kick")
        .await;
    b.messages(&kicked_from, 1).await;

    let (status, event) = cluster
        .rest(
            &alice,
            "DELETE",
            &format!("/v1/rooms/{kicked_from}/members/{}", bob.id),
            json!(null),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{event}");
    removed_after_own_leave(&mut b, &kicked_from, &bob, "kicked").await;

    // The others go on, on every gateway…
    let ack = a
        .send_message(&kicked_from, "after", "after the kick")
        .await;
    for client in [&mut a, &mut c] {
        let after = message(client, &kicked_from, "after").await;
        assert_eq!(after["seq"], ack["seq"]);
    }
    // …and a later message in a room bob is still in reaches him first,
    // with nothing of the old room in between.
    a.send_message(&still_in, "later", "still here").await;
    let frames = frames_until(&mut b, |f| {
        f["type"] == "message" && f["room_id"] == still_in && f["client_id"] == "later"
    })
    .await;
    let leaked: Vec<&Value> = frames.iter().filter(|f| of_room(f, &kicked_from)).collect();
    assert!(leaked.is_empty(), "frames after the kick: {leaked:?}");

    b.send(json!({ "type": "send", "room_id": kicked_from, "client_id": "denied", "body": "let me in" }))
        .await;
    let answer = b
        .recv_until(|f| f["ref"] == "denied" || f["client_id"] == "denied")
        .await;
    assert_eq!(answer["type"], "error", "{answer}");
    assert_eq!(answer["code"], "not_member");
}

async fn joining_over_rest_starts_live_delivery(setup: Setup) {
    let cluster = TestCluster::start(setup).await;
    let alice = cluster.user("alice").await;
    let bob = cluster.user("bob").await;
    let carol = cluster.user("carol").await;
    let room = cluster.room(&alice, &[]).await;
    let mut a = cluster.connect(&alice, 0).await;
    // Bob lands where no one follows the room yet (when there are two
    // gateways), carol where alice already does.
    let mut b = cluster.connect(&bob, spread(&cluster, 1)).await;
    let mut c = cluster.connect(&carol, 0).await;

    for (user, client) in [(&bob, &mut b), (&carol, &mut c)] {
        let (status, event) = cluster
            .rest(user, "POST", &format!("/v1/rooms/{room}/join"), json!({}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{event}");
        picks_up_live(client, &mut a, &room, user, &event).await;
    }
}

async fn an_invitation_to_a_private_room_starts_live_delivery(setup: Setup) {
    let cluster = TestCluster::start(setup).await;
    let alice = cluster.user("alice").await;
    let bob = cluster.user("bob").await;
    let carol = cluster.user("carol").await;
    let room = create_room(&cluster, &alice, "private").await;
    let mut a = cluster.connect(&alice, 0).await;
    let mut b = cluster.connect(&bob, spread(&cluster, 1)).await;
    let mut c = cluster.connect(&carol, 0).await;

    for (user, client) in [(&bob, &mut b), (&carol, &mut c)] {
        let (status, invited) = cluster
            .rest(
                &alice,
                "POST",
                &format!("/v1/rooms/{room}/members"),
                json!({ "user_id": user.id }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{invited}");
        assert_eq!(invited["type"], "member_invited");
        assert_eq!(invited["sender"], alice.id.as_str());
        // The invitee hears of the invitation on their own topic; the room
        // is not theirs until they accept it.
        let frame = client.recv_until(|f| f["type"] == "invite").await;
        assert_eq!(frame["invite"]["room"]["id"], room.as_str());
        assert_eq!(frame["invite"]["invited_by"]["id"], alice.id.as_str());
        let id = frame["invite"]["id"].as_str().unwrap().to_owned();
        let (status, event) = cluster
            .rest(user, "POST", &format!("/v1/invites/{id}/accept"), json!({}))
            .await;
        assert_eq!(status, StatusCode::OK, "{event}");
        assert_eq!(event["sender"], user.id.as_str());
        client
            .recv_until(|f| f["type"] == "invite_removed" && f["invite_id"] == id.as_str())
            .await;
        picks_up_live(client, &mut a, &room, user, &event).await;
    }
}

async fn leaving_banning_and_deleting_remove_the_room(setup: Setup) {
    let cluster = TestCluster::start(setup).await;
    let alice = cluster.user("alice").await;
    let bob = cluster.user("bob").await;
    let carol = cluster.user("carol").await;
    let dave = cluster.user("dave").await;
    let room = cluster.room(&alice, &[&bob, &carol, &dave]).await;
    let mut a = cluster.connect(&alice, 0).await;
    let mut b = cluster.connect(&bob, spread(&cluster, 1)).await;
    let mut c = cluster.connect(&carol, spread(&cluster, 2)).await;
    let mut d = cluster.connect(&dave, spread(&cluster, 3)).await;

    let (status, body) = cluster
        .rest(&bob, "POST", &format!("/v1/rooms/{room}/leave"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    removed_after_own_leave(&mut b, &room, &bob, "left").await;

    let (status, body) = cluster
        .rest(
            &alice,
            "PUT",
            &format!("/v1/rooms/{room}/bans/{}", carol.id),
            json!({ "reason": "spam" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    removed_after_own_leave(&mut c, &room, &carol, "banned").await;

    let (status, body) = cluster
        .rest(&alice, "DELETE", &format!("/v1/rooms/{room}"), json!(null))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    for client in [&mut a, &mut d] {
        client
            .recv_until(|f| f["type"] == "room_removed" && f["room_id"] == room)
            .await;
    }
    a.send(json!({ "type": "send", "room_id": room, "client_id": "gone", "body": "anyone?" }))
        .await;
    let answer = a.recv_until(|f| f["ref"] == "gone").await;
    assert_eq!(answer["type"], "error", "{answer}");
}

async fn typing_is_relayed_to_the_other_members(setup: Setup) {
    let cluster = TestCluster::start(setup).await;
    let alice = cluster.user("alice").await;
    let bob = cluster.user("bob").await;
    let carol = cluster.user("carol").await;
    let room = cluster.room(&alice, &[&bob, &carol]).await;
    let mut a = cluster.connect(&alice, 0).await;
    let mut b = cluster.connect(&bob, spread(&cluster, 1)).await;
    let mut c = cluster.connect(&carol, 0).await;

    a.send(json!({ "type": "typing", "room_id": room })).await;
    for client in [&mut b, &mut c] {
        let typing = client.recv_until(|f| f["type"] == "typing").await;
        assert_eq!(typing["room_id"], room.as_str());
        assert_eq!(typing["user_id"], alice.id.as_str());
    }
    // Ephemeral: nothing entered the log.
    let (_, rooms) = cluster.rest(&alice, "GET", "/v1/rooms", json!(null)).await;
    let mine = rooms
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == room)
        .unwrap();
    assert_eq!(mine["last_seq"], 3);

    // Someone outside the room cannot type into it.
    let dave = cluster.user("dave").await;
    let mut d = cluster.connect(&dave, spread(&cluster, 1)).await;
    d.send(json!({ "type": "typing", "room_id": room })).await;
    let answer = d.recv_until(|f| f["type"] == "error").await;
    assert_eq!(answer["code"], "not_member");
}

async fn read_markers_are_stored_relayed_and_capped(setup: Setup) {
    let cluster = TestCluster::start(setup).await;
    let alice = cluster.user("alice").await;
    let bob = cluster.user("bob").await;
    let room = cluster.room(&alice, &[&bob]).await;
    let mut a = cluster.connect(&alice, 0).await;
    let mut b = cluster.connect(&bob, spread(&cluster, 1)).await;
    for n in 0..3 {
        a.send_message(&room, &format!("m{n}"), "read me").await;
    }
    let head = b.messages(&room, 3).await[2]["seq"].as_i64().unwrap();

    let last_read = |rooms: &Value| {
        rooms
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == room)
            .unwrap()["last_read_seq"]
            .as_i64()
            .unwrap()
    };
    for (asked, stored) in [(head - 1, head - 1), (head + 100, head)] {
        b.send(json!({ "type": "read", "room_id": room, "seq": asked }))
            .await;
        let read = a
            .recv_until(|f| f["type"] == "read" && f["seq"] == stored)
            .await;
        assert_eq!(read["room_id"], room.as_str());
        assert_eq!(read["user_id"], bob.id.as_str());
        let (_, rooms) = cluster.rest(&bob, "GET", "/v1/rooms", json!(null)).await;
        assert_eq!(last_read(&rooms), stored, "{rooms}");
    }
    // A read marker is not a room event: the next message still comes.
    let ack = a.send_message(&room, "next", "after reading").await;
    assert_eq!(ack["seq"], head + 1);
    assert_eq!(b.messages(&room, 1).await[0]["seq"], head + 1);
}

async fn api_room_events_arrive_live_in_seq_order(setup: Setup) {
    let cluster = TestCluster::start(setup).await;
    let alice = cluster.user("alice").await;
    let bob = cluster.user("bob").await;
    let room = cluster.room(&alice, &[&bob]).await;
    let mut a = cluster.connect(&alice, 0).await;
    let mut b = cluster.connect(&bob, spread(&cluster, 1)).await;
    let head = b.heads()[&room];

    a.send_message(&room, "m1", "first").await;
    let (status, body) = cluster
        .rest(
            &alice,
            "PATCH",
            &format!("/v1/rooms/{room}"),
            json!({ "name": "renamed", "topic": "new topic" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    a.send_message(&room, "m2", "second").await;
    let (status, body) = cluster
        .rest(
            &alice,
            "PUT",
            &format!("/v1/rooms/{room}/members/{}/role", bob.id),
            json!({ "role": "admin" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    a.send_message(&room, "m3", "third").await;

    for client in [&mut a, &mut b] {
        let events = room_events(client, &room, 5).await;
        assert_eq!(events[0]["seq"], head + 1);
        let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "message",
                "room_updated",
                "message",
                "role_changed",
                "message"
            ]
        );
        assert_eq!(events[1]["name"], "renamed");
        assert_eq!(events[1]["topic"], "new topic");
        assert_eq!(events[3]["user"], bob.id.as_str());
        assert_eq!(events[3]["role"], "admin");
    }
}
