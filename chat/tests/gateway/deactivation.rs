//! Server administration where it touches live sockets: deactivating an
//! account closes every socket of every one of its sessions on every
//! gateway (4002) within a second, its tokens are refused at the
//! handshake and it cannot log in again; and a server moderator's powers
//! hold on the socket as on the api (a deletion in a room they are not in).

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::both_shapes;
use crate::cluster::Setup;
use crate::cluster::{TestClient, TestCluster, User};

both_shapes!(
    deactivation_closes_every_socket_of_the_account_on_every_gateway,
    a_moderator_deletes_over_the_socket_in_a_room_they_are_not_in,
);

/// How soon a deactivated account's sockets must close.
const WITHIN: Duration = Duration::from_secs(1);

/// Registers `name` and gives them `role` from the command line.
async fn staff(cluster: &TestCluster, name: &str, role: &str) -> User {
    let user = cluster.user(name).await;
    let args = ["grant".to_owned(), name.to_owned(), role.to_owned()];
    chat_api::admin(cluster.store.as_ref(), &args)
        .await
        .expect("granting a server role");
    user
}

async fn deactivation_closes_every_socket_of_the_account_on_every_gateway(setup: Setup) {
    let cluster = TestCluster::start(setup).await;
    let root = staff(&cluster, "root", "admin").await;
    let alice = cluster.user("alice").await;
    let (phone, _) = cluster.login("alice").await;
    let bob = cluster.user("bob").await;
    let mut doomed = Vec::new();
    for index in 0..cluster.gateways.len() {
        doomed.push(cluster.connect(&alice, index).await);
        doomed.push(cluster.connect(&phone, index).await);
    }
    let mut bystander = cluster.connect(&bob, cluster.gateways.len() - 1).await;

    let path = format!("/v1/admin/users/{}/deactivate", alice.id);
    let (status, body) = cluster.rest(&root, "POST", &path, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ended = Instant::now();
    for client in &mut doomed {
        let (code, reason) = tokio::time::timeout(WITHIN * 5, client.closed())
            .await
            .expect("a deactivated account's socket stayed open");
        assert_eq!(code, 4002, "{reason}");
    }
    let took = ended.elapsed();
    assert!(took <= WITHIN, "closed {took:?} after the deactivation");

    // Its tokens are refused at every gateway's handshake, and it cannot
    // log in again.
    for gateway in &cluster.gateways {
        for user in [&alice, &phone] {
            let refused = TestClient::connect(gateway, &user.token).await;
            assert!(refused.is_err(), "a deactivated account connected");
        }
    }
    let login = reqwest::Client::new()
        .post(format!("{}/v1/auth/login", cluster.api))
        .json(&json!({ "username": "alice", "password": "password-alice" }))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::FORBIDDEN);
    let body: serde_json::Value = login.json().await.unwrap();
    assert_eq!(body["error"]["code"], "account_deactivated");

    // Everyone else's sockets live on.
    let room = cluster.room(&bob, &[]).await;
    bystander
        .send(json!({"type": "sync", "rooms": {room.clone(): 0}}))
        .await;
    let ack = bystander
        .send_message(&room, "still-here", "still here")
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
}

async fn a_moderator_deletes_over_the_socket_in_a_room_they_are_not_in(setup: Setup) {
    let cluster = TestCluster::start(setup).await;
    let modo = staff(&cluster, "modo", "moderator").await;
    let (bob, carol) = (cluster.user("bob").await, cluster.user("carol").await);
    let room = cluster.room(&bob, &[]).await;
    let mut sender = cluster.connect(&bob, 0).await;
    sender
        .send(json!({"type": "sync", "rooms": {room.clone(): 0}}))
        .await;
    let ack = sender.send_message(&room, "m1", "spam spam spam").await;
    let target = ack["id"].as_str().unwrap().to_owned();

    let last = cluster.gateways.len() - 1;
    let delete = |client_id: &str| json!({ "type": "delete", "room_id": room, "client_id": client_id, "target": target });
    // Someone with no server role who is not in the room is refused…
    let mut outsider = cluster.connect(&carol, last).await;
    outsider.send(delete("d-carol")).await;
    let answer = outsider
        .recv_until(|f| f["ref"] == "d-carol" || f["client_id"] == "d-carol")
        .await;
    assert_eq!(answer["type"], "error", "{answer}");
    assert_eq!(answer["code"], "not_member", "{answer}");
    // …a moderator is not, and the room sees the deletion.
    let mut moderator = cluster.connect(&modo, last).await;
    moderator.send(delete("d-modo")).await;
    let answer = moderator
        .recv_until(|f| f["ref"] == "d-modo" || f["client_id"] == "d-modo")
        .await;
    assert_eq!(answer["type"], "ack", "{answer}");
    let deleted = sender
        .recv_until(|f| f["type"] == "message_deleted" && f["room_id"] == room.as_str())
        .await;
    assert_eq!(deleted["target"], target.as_str(), "{deleted}");
}
