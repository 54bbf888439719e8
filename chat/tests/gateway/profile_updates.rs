//! A display name change is told live (`user_updated`) to the sockets of
//! everyone who shares a room with the user, on whichever gateway they
//! are, and to the user's own; nobody else hears of it.

use reqwest::StatusCode;
use serde_json::json;

use crate::both_shapes;
use crate::cluster::{Setup, TestCluster};

both_shapes!(a_display_name_change_reaches_room_mates_live);

async fn a_display_name_change_reaches_room_mates_live(setup: Setup) {
    let cluster = TestCluster::start(setup).await;
    let alice = cluster.user("alice").await;
    let bob = cluster.user("bob").await;
    let carol = cluster.user("carol").await;
    cluster.room(&alice, &[&bob]).await;
    cluster.room(&carol, &[]).await;
    let last = cluster.gateways.len() - 1;
    let mut her_own = cluster.connect(&alice, 0).await;
    let mut mate = cluster.connect(&bob, last).await;
    let mut stranger = cluster.connect(&carol, last).await;

    let (status, body) = cluster
        .rest(
            &alice,
            "PATCH",
            "/v1/account/profile",
            json!({ "display_name": "Alice in Wonderland" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    for client in [&mut mate, &mut her_own] {
        let frame = client
            .recv_until(|frame| frame["type"] == "user_updated")
            .await;
        assert_eq!(frame["profile"]["id"], alice.id.as_str(), "{frame}");
        assert_eq!(frame["profile"]["display_name"], "Alice in Wonderland");
        assert_eq!(frame["profile"]["username"], "alice");
    }
    // Carol shares no room with Alice: her socket, on the gateway Bob's
    // frame went through, answers a ping with nothing of Alice before it.
    stranger.send(json!({"type": "ping"})).await;
    let frame = stranger
        .recv_until(|frame| frame["type"] == "pong" || frame["type"] == "user_updated")
        .await;
    assert_eq!(frame["type"], "pong", "{frame}");
}
