//! DMs on live sockets, across gateways: a DM opened starts nobody's
//! delivery; its first message (a request, between strangers) announces it
//! to both (`room_added`, from its start) and it is in their `hello` from
//! then on; a declined request refuses its sender's sends on the socket; a
//! closed DM leaves the closer's sockets and its next message brings it
//! back. (It replaces rooms.rs's "an opened DM starts live delivery",
//! which lazy creation made untrue.)

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::both_shapes;
use crate::cluster::{Setup, TestClient, TestCluster, User};

both_shapes!(
    a_dm_starts_live_delivery_at_its_first_message_as_a_request,
    a_declined_request_refuses_the_senders_sends_on_the_socket,
    a_closed_dm_comes_back_live_with_its_next_message,
);

async fn open_dm(cluster: &TestCluster, from: &User, to: &User) -> String {
    let (status, dm) = cluster
        .rest(from, "POST", "/v1/dms", json!({ "user_id": to.id }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{dm}");
    dm["id"].as_str().unwrap().to_owned()
}

async fn dm_action(cluster: &TestCluster, user: &User, room: &str, action: &str) {
    let path = format!("/v1/dms/{room}/{action}");
    let (status, body) = cluster.rest(user, "POST", &path, json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
}

fn room_added(room: &str) -> impl Fn(&Value) -> bool + '_ {
    move |f| f["type"] == "room_added" && f["room"]["id"] == room
}

fn message(client_id: &str) -> impl Fn(&Value) -> bool + '_ {
    move |f| f["type"] == "message" && f["client_id"] == client_id
}

/// Sends `body` and returns the answer (ack or error).
async fn try_send(client: &mut TestClient, room: &str, client_id: &str) -> Value {
    client
        .send(json!({ "type": "send", "room_id": room, "client_id": client_id, "body": "x" }))
        .await;
    client
        .recv_until(|f| {
            (f["type"] == "ack" && f["client_id"] == client_id)
                || (f["type"] == "error" && f["ref"] == client_id)
        })
        .await
}

async fn a_dm_starts_live_delivery_at_its_first_message_as_a_request(setup: Setup) {
    let cluster = TestCluster::start(setup).await;
    let (alice, bob) = (cluster.user("alice").await, cluster.user("bob").await);
    let last = cluster.gateways.len() - 1;
    let mut a = cluster.connect(&alice, 0).await;
    let mut b = cluster.connect(&bob, last).await;

    let dm = open_dm(&cluster, &alice, &bob).await;
    // Not listed for bob yet: a new connection of his is not told of it.
    let fresh = cluster.connect(&bob, 0).await;
    assert!(!fresh.heads().contains_key(&dm), "{:?}", fresh.heads());
    drop(fresh);

    // The first message, over the socket, announces it to both.
    let ack = try_send(&mut a, &dm, "first").await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let added = b.recv_until(room_added(&dm)).await;
    assert_eq!(added["room"]["kind"], "direct");
    let first = b.recv_until(message("first")).await;
    assert_eq!(first["seq"], ack["seq"]);
    a.recv_until(room_added(&dm)).await;
    // Listed now, as a request to bob.
    let later = cluster.connect(&bob, 0).await;
    assert!(later.heads().contains_key(&dm));
    let (_, rooms) = cluster.rest(&bob, "GET", "/v1/rooms", Value::Null).await;
    let mine = rooms
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == dm.as_str())
        .cloned()
        .unwrap();
    assert_eq!(mine["request"], true);

    // Accepted, it is a DM both write in, live.
    dm_action(&cluster, &bob, &dm, "accept").await;
    let reply = try_send(&mut b, &dm, "reply").await;
    assert_eq!(reply["type"], "ack", "{reply}");
    assert_eq!(a.recv_until(message("reply")).await["seq"], reply["seq"]);
}

async fn a_declined_request_refuses_the_senders_sends_on_the_socket(setup: Setup) {
    let cluster = TestCluster::start(setup).await;
    let (alice, bob) = (cluster.user("alice").await, cluster.user("bob").await);
    let last = cluster.gateways.len() - 1;
    let mut a = cluster.connect(&alice, 0).await;
    let mut b = cluster.connect(&bob, last).await;
    let dm = open_dm(&cluster, &alice, &bob).await;
    assert_eq!(try_send(&mut a, &dm, "pitch").await["type"], "ack");
    b.recv_until(message("pitch")).await;

    dm_action(&cluster, &bob, &dm, "decline").await;
    // Gone from bob's sockets.
    let removed = b
        .recv_until(|f| f["type"] == "room_removed" && f["room_id"] == dm.as_str())
        .await;
    assert_eq!(removed["room_id"], dm.as_str());
    let refused = try_send(&mut a, &dm, "again").await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["code"], "dm_declined");
    // Bob may still write, which brings the DM back to him.
    let answer = try_send(&mut b, &dm, "changed-my-mind").await;
    assert_eq!(answer["type"], "ack", "{answer}");
    b.recv_until(room_added(&dm)).await;
}

async fn a_closed_dm_comes_back_live_with_its_next_message(setup: Setup) {
    let cluster = TestCluster::start(setup).await;
    let (alice, bob) = (cluster.user("alice").await, cluster.user("bob").await);
    cluster.room(&alice, &[&bob]).await;
    let last = cluster.gateways.len() - 1;
    let mut a = cluster.connect(&alice, 0).await;
    let mut b = cluster.connect(&bob, last).await;
    let dm = open_dm(&cluster, &alice, &bob).await;
    assert_eq!(try_send(&mut b, &dm, "one").await["type"], "ack");
    a.recv_until(message("one")).await;

    dm_action(&cluster, &alice, &dm, "close").await;
    a.recv_until(|f| f["type"] == "room_removed" && f["room_id"] == dm.as_str())
        .await;
    let reconnected = cluster.connect(&alice, last).await;
    assert!(
        !reconnected.heads().contains_key(&dm),
        "closed: not in hello"
    );
    drop(reconnected);

    let two = try_send(&mut b, &dm, "two").await;
    assert_eq!(two["type"], "ack", "{two}");
    a.recv_until(room_added(&dm)).await;
    assert_eq!(a.recv_until(message("two")).await["seq"], two["seq"]);
}
