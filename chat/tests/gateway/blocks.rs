//! Blocks on live sockets, across gateways: the blocker's presence is
//! hidden from the blocked user (at once on a block, from the greeting of
//! each new connection, restored on unblock), and their DM and calls are
//! refused on the socket both ways until the block is lifted.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::both_shapes;
use crate::cluster::{Setup, TestClient, TestCluster, User};

both_shapes!(
    the_blocked_user_stops_seeing_the_blocker_online_until_unblocked,
    a_block_refuses_dm_sends_and_calls_on_the_socket_both_ways,
    the_blocker_is_not_shown_the_blocked_users_typing,
);

fn presence_of<'a>(user: &'a User, status: &'static str) -> impl Fn(&Value) -> bool + 'a {
    move |f| f["type"] == "presence" && f["user_id"] == user.id.as_str() && f["status"] == status
}

async fn set_block(cluster: &TestCluster, by: &User, whom: &User, blocked: bool) {
    let method = if blocked { "PUT" } else { "DELETE" };
    let path = format!("/v1/users/me/blocks/{}", whom.id);
    let (status, body) = cluster.rest(by, method, &path, Value::Null).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
}

/// The next frame that is either `user`'s presence or the message
/// `client_id`: the message, when no presence of `user` came first.
async fn presence_or_message(client: &mut TestClient, user: &User, client_id: &str) -> Value {
    client
        .recv_until(|f| {
            (f["type"] == "presence" && f["user_id"] == user.id.as_str())
                || (f["type"] == "message" && f["client_id"] == client_id)
        })
        .await
}

async fn the_blocked_user_stops_seeing_the_blocker_online_until_unblocked(setup: Setup) {
    let cluster = TestCluster::start(setup).await;
    let (alice, bob) = (cluster.user("alice").await, cluster.user("bob").await);
    let room = cluster.room(&alice, &[&bob]).await;
    let last = cluster.gateways.len() - 1;
    // Alice on one gateway, bob on the other.
    let mut a = cluster.connect(&alice, 0).await;
    let mut b = cluster.connect(&bob, last).await;
    b.recv_until(presence_of(&alice, "online")).await;
    // Bob's own block list notice reaches alice's clients.
    set_block(&cluster, &alice, &bob, true).await;
    let notice = a.recv_until(|f| f["type"] == "block_changed").await;
    assert_eq!(notice["user_id"], bob.id.as_str());
    assert_eq!(notice["blocked"], true);
    // At once, on bob's gateway: alice is gone for him.
    b.recv_until(presence_of(&alice, "offline")).await;

    // A new connection of alice's is not announced to bob: the next thing
    // he hears of her is her message.
    let mut a2 = cluster.connect(&alice, last).await;
    a2.send_message(&room, "while-blocked", "hello room").await;
    let next = presence_or_message(&mut b, &alice, "while-blocked").await;
    assert_eq!(next["type"], "message", "alice's presence leaked: {next}");
    // Nor is she in the greeting of a new connection of bob's.
    let mut b2 = cluster.connect(&bob, 0).await;
    a.send_message(&room, "greeted", "hello again").await;
    let next = presence_or_message(&mut b2, &alice, "greeted").await;
    assert_eq!(next["type"], "message", "alice's presence leaked: {next}");
    // The block is one way: a new connection of alice's is greeted with
    // bob online.
    let mut a3 = cluster.connect(&alice, last).await;
    a3.recv_until(presence_of(&bob, "online")).await;

    // Unblocked: both of bob's connections see her online again, live.
    set_block(&cluster, &alice, &bob, false).await;
    b.recv_until(presence_of(&alice, "online")).await;
    b2.recv_until(presence_of(&alice, "online")).await;
    let notice = a
        .recv_until(|f| f["type"] == "block_changed" && f["blocked"] == false)
        .await;
    assert_eq!(notice["user_id"], bob.id.as_str());
}

async fn a_block_refuses_dm_sends_and_calls_on_the_socket_both_ways(setup: Setup) {
    let cluster = TestCluster::start(setup).await;
    let (alice, bob) = (cluster.user("alice").await, cluster.user("bob").await);
    cluster.room(&alice, &[&bob]).await;
    let (status, dm) = cluster
        .rest(&alice, "POST", "/v1/dms", json!({ "user_id": bob.id }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{dm}");
    let dm = dm["id"].as_str().unwrap().to_owned();
    let last = cluster.gateways.len() - 1;
    let mut a = cluster.connect(&alice, 0).await;
    let mut b = cluster.connect(&bob, last).await;
    b.send_message(&dm, "before", "hi alice").await;

    set_block(&cluster, &alice, &bob, true).await;
    for (client, client_id) in [(&mut b, "b-blocked"), (&mut a, "a-blocked")] {
        client
            .send(json!({ "type": "send", "room_id": dm, "client_id": client_id, "body": "x" }))
            .await;
        let answer = client
            .recv_until(|f| f["ref"] == client_id || f["client_id"] == client_id)
            .await;
        assert_eq!(answer["type"], "error", "{answer}");
        assert_eq!(answer["code"], "blocked", "{answer}");
    }
    for client in [&mut b, &mut a] {
        client
            .send(json!({ "type": "call_place", "room_id": dm, "video": false }))
            .await;
        let answer = client.recv_until(|f| f["type"] == "error").await;
        assert_eq!(answer["code"], "blocked", "{answer}");
        assert_eq!(answer["ref"], dm.as_str(), "{answer}");
    }
    let stored = cluster
        .store
        .events(
            dm.parse().unwrap(),
            chat_shared::store::Page {
                after: Some(0),
                before: None,
                limit: 100,
            },
        )
        .await
        .unwrap();
    assert_eq!(stored.len(), 3, "only the message before the block");

    set_block(&cluster, &alice, &bob, false).await;
    b.send_message(&dm, "after", "hi again").await;
    b.send(json!({ "type": "call_place", "room_id": dm, "video": false }))
        .await;
    // Alice's phone rings, and no call before it got through.
    let call = a.recv_until(|f| f["type"] == "call").await;
    assert_eq!(call["call"]["caller"], bob.id.as_str());
    let message = a
        .recv_until(|f| f["type"] == "message" && f["client_id"] == "after")
        .await;
    assert_eq!(message["body"], "hi again");
}

async fn the_blocker_is_not_shown_the_blocked_users_typing(setup: Setup) {
    let cluster = TestCluster::start(setup).await;
    let (alice, bob) = (cluster.user("alice").await, cluster.user("bob").await);
    let room = cluster.room(&alice, &[&bob]).await;
    let last = cluster.gateways.len() - 1;
    let mut a = cluster.connect(&alice, 0).await;
    let mut b = cluster.connect(&bob, last).await;
    let typing_of = |user: &User| {
        let id = user.id.clone();
        move |f: &Value| f["type"] == "typing" && f["user_id"] == id.as_str()
    };
    b.send(json!({ "type": "typing", "room_id": room })).await;
    a.recv_until(typing_of(&bob)).await;

    // Blocked live (the bus tells alice's gateway): bob's typing, then
    // his message; the next thing alice gets of his is the message.
    set_block(&cluster, &alice, &bob, true).await;
    a.recv_until(|f| f["type"] == "block_changed").await;
    // Past the 2 s coalescing of typing: a send ends the interval.
    b.send_message(&room, "ends-interval", "x").await;
    b.send(json!({ "type": "typing", "room_id": room })).await;
    b.send_message(&room, "after-typing", "y").await;
    let next = a
        .recv_until(|f| {
            typing_of(&bob)(f) || (f["type"] == "message" && f["client_id"] == "after-typing")
        })
        .await;
    assert_eq!(
        next["type"], "message",
        "bob's typing reached alice: {next}"
    );
    // One way: bob still sees alice type.
    a.send(json!({ "type": "typing", "room_id": room })).await;
    b.recv_until(typing_of(&alice)).await;

    // Loaded at connect too.
    let mut a2 = cluster.connect(&alice, last).await;
    b.send_message(&room, "ends-again", "z").await;
    b.send(json!({ "type": "typing", "room_id": room })).await;
    b.send_message(&room, "after-again", "w").await;
    let next = a2
        .recv_until(|f| {
            typing_of(&bob)(f) || (f["type"] == "message" && f["client_id"] == "after-again")
        })
        .await;
    assert_eq!(
        next["type"], "message",
        "bob's typing reached alice: {next}"
    );

    // Unblocked: shown again.
    set_block(&cluster, &alice, &bob, false).await;
    a.recv_until(|f| f["type"] == "block_changed" && f["blocked"] == false)
        .await;
    b.send_message(&room, "ends-last", "v").await;
    b.send(json!({ "type": "typing", "room_id": room })).await;
    a.recv_until(typing_of(&bob)).await;
}
