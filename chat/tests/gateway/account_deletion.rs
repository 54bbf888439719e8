//! Deleting an account ends it live: every socket of every session of it
//! closes (4002) on every gateway, and the people who shared a room with
//! it see it leave (`member_left`) and its name turn to "deleted user"
//! (`user_updated`), wherever they are connected.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::both_shapes;
use crate::cluster::{Setup, TestClient, TestCluster};

both_shapes!(a_deleted_accounts_sockets_close_and_its_room_mates_see_it_go);

async fn a_deleted_accounts_sockets_close_and_its_room_mates_see_it_go(setup: Setup) {
    let cluster = TestCluster::start(setup).await;
    let alice = cluster.user("alice").await;
    let (phone, _) = cluster.login("alice").await;
    let bob = cluster.user("bob").await;
    let room = cluster.room(&bob, &[&alice]).await;
    let last = cluster.gateways.len() - 1;
    let mut hers = Vec::new();
    for index in 0..cluster.gateways.len() {
        hers.push(cluster.connect(&alice, index).await);
        hers.push(cluster.connect(&phone, index).await);
    }
    let mut mate = cluster.connect(&bob, last).await;
    mate.send(json!({"type": "sync", "rooms": {room.clone(): 0}}))
        .await;
    mate.recv_until(|frame| frame["type"] == "synced").await;

    let (status, body) = cluster
        .rest(
            &alice,
            "DELETE",
            "/v1/account",
            json!({ "password": "password-alice" }),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    for client in &mut hers {
        let (code, reason) = tokio::time::timeout(Duration::from_secs(5), client.closed())
            .await
            .expect("a socket of the deleted account stayed open");
        assert_eq!(code, 4002, "{reason}");
    }
    let left = mate
        .recv_until(|frame| frame["type"] == "member_left")
        .await;
    assert_eq!(left["user"], alice.id.as_str(), "{left}");
    let renamed = mate
        .recv_until(|frame| frame["type"] == "user_updated")
        .await;
    assert_eq!(renamed["profile"]["id"], alice.id.as_str());
    assert_eq!(renamed["profile"]["display_name"], "deleted user");
    // Its tokens open nothing any more: no REST, no socket anywhere.
    let (status, _) = cluster.rest(&alice, "GET", "/v1/users/me", json!({})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    for gateway in &cluster.gateways {
        for token in [&alice.token, &phone.token] {
            let refused = TestClient::connect(gateway, token).await;
            let error = refused
                .err()
                .expect("a deleted account's handshake was accepted");
            assert!(error.to_string().contains("401"), "{error}");
        }
    }
}
