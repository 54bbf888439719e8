//! A password change ends every other login session of the user at once:
//! their sockets close (4002) on every gateway and their tokens are
//! refused at the handshake, while the sockets of the session that made
//! the change stay open and keep working.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::both_shapes;
use crate::cluster::{Setup, TestClient, TestCluster};

both_shapes!(a_password_change_closes_the_other_sessions_sockets_everywhere);

/// How soon an ended session's sockets must close.
const WITHIN: Duration = Duration::from_secs(1);

async fn a_password_change_closes_the_other_sessions_sockets_everywhere(setup: Setup) {
    let cluster = TestCluster::start(setup).await;
    let alice = cluster.user("alice").await;
    let (phone, _) = cluster.login("alice").await;
    let bob = cluster.user("bob").await;
    let room = cluster.room(&alice, &[&bob]).await;

    // Both sessions on every gateway.
    let mut mine = Vec::new();
    let mut theirs = Vec::new();
    for index in 0..cluster.gateways.len() {
        mine.push(cluster.connect(&alice, index).await);
        theirs.push(cluster.connect(&phone, index).await);
    }

    let (status, body) = cluster
        .rest(
            &alice,
            "POST",
            "/v1/account/password",
            json!({ "current_password": "password-alice", "new_password": "a brand new secret" }),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let changed = Instant::now();
    for client in &mut theirs {
        let (code, reason) = tokio::time::timeout(WITHIN * 5, client.closed())
            .await
            .expect("a socket of the other session stayed open");
        assert_eq!(code, 4002, "{reason}");
        let took = changed.elapsed();
        assert!(took <= WITHIN, "closed {took:?} after the change");
    }
    // The other session's token no longer opens a socket anywhere.
    for gateway in &cluster.gateways {
        let refused = TestClient::connect(gateway, &phone.token).await;
        let error = refused
            .err()
            .expect("the ended session's handshake was accepted");
        assert!(error.to_string().contains("401"), "{error}");
    }
    // The changing session's sockets still deliver, on every gateway.
    for (index, client) in mine.iter_mut().enumerate() {
        client
            .send(json!({"type": "sync", "rooms": {room.clone(): 0}}))
            .await;
        let ack = client
            .send_message(&room, &format!("still-{index}"), "still here")
            .await;
        assert_eq!(ack["type"], "ack", "{ack}");
    }
    // And Bob is not affected.
    let mut bobs = cluster.connect(&bob, cluster.gateways.len() - 1).await;
    bobs.send(json!({"type": "sync", "rooms": {room.clone(): 0}}))
        .await;
    let ack = bobs.send_message(&room, "bob-here", "hi").await;
    assert_eq!(ack["type"], "ack", "{ack}");
}
