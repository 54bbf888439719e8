//! Presence across gateways: online when a first connection opens anywhere,
//! offline when the last one closes, and told to everyone sharing a room.

use crate::both_shapes;
use crate::cluster::{Setup, TestCluster};

both_shapes!(
    members_see_each_other_come_and_go,
    a_second_connection_keeps_a_user_online,
    people_who_meet_after_connecting_see_each_other_online,
);

fn presence_of<'a>(
    user: &'a str,
    status: &'static str,
) -> impl Fn(&serde_json::Value) -> bool + 'a {
    move |f| f["type"] == "presence" && f["user_id"] == user && f["status"] == status
}

async fn members_see_each_other_come_and_go(setup: Setup) {
    let cluster = TestCluster::start(setup).await;
    let (alice, bob) = (cluster.user("alice").await, cluster.user("bob").await);
    cluster.room(&alice, &[&bob]).await;
    let last = cluster.gateways.len() - 1;
    let mut a = cluster.connect(&alice, 0).await;
    let b = cluster.connect(&bob, last).await;
    a.recv_until(presence_of(&bob.id, "online")).await;
    drop(b);
    a.recv_until(presence_of(&bob.id, "offline")).await;

    // Someone arriving later learns who is already there.
    let mut b = cluster.connect(&bob, last).await;
    b.recv_until(presence_of(&alice.id, "online")).await;
}

async fn a_second_connection_keeps_a_user_online(setup: Setup) {
    let cluster = TestCluster::start(setup).await;
    let (alice, bob) = (cluster.user("alice").await, cluster.user("bob").await);
    let room = cluster.room(&alice, &[&bob]).await;
    let last = cluster.gateways.len() - 1;
    let mut a = cluster.connect(&alice, 0).await;
    let mut laptop = cluster.connect(&bob, last).await;
    a.recv_until(presence_of(&bob.id, "online")).await;
    let mut phone = cluster.connect(&bob, 0).await;
    // Greeted with who is online: its gateway has registered it.
    phone.recv_until(presence_of(&alice.id, "online")).await;
    drop(phone);
    // Bob is still online on his laptop: the next thing Alice hears about
    // him is his message, not an "offline".
    laptop.send_message(&room, "still-here", "hi").await;
    let next = a
        .recv_until(|f| {
            (f["type"] == "presence" && f["user_id"] == bob.id.as_str() && f["status"] == "offline")
                || (f["type"] == "message" && f["client_id"] == "still-here")
        })
        .await;
    assert_eq!(next["type"], "message", "bob went offline: {next}");
}

async fn people_who_meet_after_connecting_see_each_other_online(setup: Setup) {
    let cluster = TestCluster::start(setup).await;
    let (alice, bob) = (cluster.user("alice").await, cluster.user("bob").await);
    let last = cluster.gateways.len() - 1;
    let mut a = cluster.connect(&alice, 0).await;
    let mut b = cluster.connect(&bob, last).await;
    // They share no room yet; Bob joins Alice's while both are connected.
    let room = cluster.room(&alice, &[]).await;
    a.recv_until(|f| f["type"] == "room_added").await;
    let (status, body) = cluster
        .rest(
            &bob,
            "POST",
            &format!("/v1/rooms/{room}/join"),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{body}");
    b.recv_until(|f| f["type"] == "room_added").await;
    a.recv_until(presence_of(&bob.id, "online")).await;
    b.recv_until(presence_of(&alice.id, "online")).await;
}
