//! A login session that ends ends its live sockets too: logout, deleting
//! the session from another device, and a replayed refresh token each close
//! that session's sockets on every gateway (4002) within a second, and
//! leave the user's other sessions alone; an `auth` frame must renew the
//! socket's own session, not another of the same user.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::both_shapes;
use crate::cluster::{Setup, TestClient, TestCluster, User};

both_shapes!(
    logout_closes_the_sessions_sockets_on_every_gateway,
    deleting_a_session_closes_its_sockets,
    a_replayed_refresh_token_closes_the_sessions_sockets,
    auth_with_a_token_of_another_session_is_refused,
);

/// How soon an ended session's sockets must close.
const WITHIN: Duration = Duration::from_secs(1);

/// The socket closes with 4002 within [`WITHIN`] of `since`.
async fn closes_as_revoked(client: &mut TestClient, since: Instant) {
    let (code, reason) = tokio::time::timeout(WITHIN * 5, client.closed())
        .await
        .expect("the socket of an ended session stayed open");
    assert_eq!(code, 4002, "{reason}");
    let took = since.elapsed();
    assert!(took <= WITHIN, "closed {took:?} after the session ended");
}

/// A socket of a session that lives on still sends and is acknowledged.
async fn still_works(cluster: &TestCluster, client: &mut TestClient, owner: &User) {
    let room = cluster.room(owner, &[]).await;
    client
        .send(json!({"type": "sync", "rooms": {room.clone(): 0}}))
        .await;
    let ack = client.send_message(&room, "still-here", "still here").await;
    assert_eq!(ack["type"], "ack", "{ack}");
}

async fn logout_closes_the_sessions_sockets_on_every_gateway(setup: Setup) {
    let cluster = TestCluster::start(setup).await;
    let alice = cluster.user("alice").await;
    let (other, _) = cluster.login("alice").await;
    let mut doomed = Vec::new();
    for index in 0..cluster.gateways.len() {
        doomed.push(cluster.connect(&alice, index).await);
    }
    let mut survivor = cluster.connect(&other, 0).await;

    let (status, body) = cluster
        .rest(&alice, "POST", "/v1/auth/logout", json!({}))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let ended = Instant::now();
    for client in &mut doomed {
        closes_as_revoked(client, ended).await;
    }
    still_works(&cluster, &mut survivor, &other).await;
}

async fn deleting_a_session_closes_its_sockets(setup: Setup) {
    let cluster = TestCluster::start(setup).await;
    let alice = cluster.user("alice").await;
    let (phone, _) = cluster.login("alice").await;
    let mut lost = cluster.connect(&alice, cluster.gateways.len() - 1).await;
    let mut kept = cluster.connect(&phone, 0).await;

    // From the phone: end the other session.
    let (_, sessions) = cluster
        .rest(&phone, "GET", "/v1/auth/sessions", json!({}))
        .await;
    let other: &Value = sessions
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == false)
        .expect("the first login is listed");
    let path = format!("/v1/auth/sessions/{}", other["id"].as_str().unwrap());
    let (status, body) = cluster.rest(&phone, "DELETE", &path, json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    closes_as_revoked(&mut lost, Instant::now()).await;
    still_works(&cluster, &mut kept, &phone).await;
}

async fn a_replayed_refresh_token_closes_the_sessions_sockets(setup: Setup) {
    let cluster = TestCluster::start(setup).await;
    cluster.user("alice").await;
    let (alice, first_refresh) = cluster.login("alice").await;
    let (status, rotated) = cluster.refresh(&first_refresh).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let renewed = User {
        id: alice.id.clone(),
        token: rotated["access_token"].as_str().unwrap().to_owned(),
    };
    let mut client = cluster.connect(&renewed, 0).await;

    // Someone replays the spent token: the family ends, and so its socket.
    let (status, body) = cluster.refresh(&first_refresh).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"]["code"], "refresh_token_reused");
    closes_as_revoked(&mut client, Instant::now()).await;
}

async fn auth_with_a_token_of_another_session_is_refused(setup: Setup) {
    let cluster = TestCluster::start(setup).await;
    let alice = cluster.user("alice").await;
    let (other, _) = cluster.login("alice").await;
    let mut client = cluster.connect(&alice, 0).await;

    // A stolen socket cannot be kept alive with the owner's other login.
    client
        .send(json!({"type": "auth", "token": other.token}))
        .await;
    let error = client.recv_until(|frame| frame["type"] == "error").await;
    assert_eq!(error["code"], "invalid_token", "{error}");

    // Its own session's end still closes it.
    let (status, _) = cluster
        .rest(&alice, "POST", "/v1/auth/logout", json!({}))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    closes_as_revoked(&mut client, Instant::now()).await;
}
