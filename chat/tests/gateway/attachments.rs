//! Attachments through the socket: a `send` frame that carries an upload
//! is acked once durable and reaches every member, on every gateway, with
//! the file's description; one that names an upload it may not carry is
//! refused with `validation_failed` and stores nothing.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::both_shapes;
use crate::cluster::{Setup, TestCluster};
use crate::messages::change;

both_shapes!(
    an_upload_sent_over_the_socket_reaches_every_member,
    a_send_naming_an_upload_it_may_not_carry_is_refused,
);

async fn an_upload_sent_over_the_socket_reaches_every_member(setup: Setup) {
    let cluster = TestCluster::start(setup).await;
    let (alice, bob) = (cluster.user("alice").await, cluster.user("bob").await);
    let room = cluster.room(&alice, &[&bob]).await;
    let last = cluster.gateways.len() - 1;
    let mut a = cluster.connect(&alice, 0).await;
    let mut b = cluster.connect(&bob, last).await;
    let (status, attachment) = cluster
        .upload(
            &alice,
            &room,
            "notes.txt",
            "text/plain",
            b"minutes".to_vec(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{attachment}");

    let fields = json!({ "room_id": room, "body": "", "attachments": [attachment["id"]] });
    let ack = change(&mut a, "send", "f", fields).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let seq = ack["seq"].clone();
    for client in [&mut a, &mut b] {
        let message = client
            .recv_until(|f| f["type"] == "message" && f["seq"] == seq)
            .await;
        assert_eq!(message["attachments"], json!([attachment]), "{message}");
        assert_eq!(message["body"], "");
    }
}

async fn a_send_naming_an_upload_it_may_not_carry_is_refused(setup: Setup) {
    let cluster = TestCluster::start(setup).await;
    let (alice, bob) = (cluster.user("alice").await, cluster.user("bob").await);
    let room = cluster.room(&alice, &[&bob]).await;
    let other = cluster.room(&alice, &[]).await;
    let (_, elsewhere) = cluster
        .upload(&alice, &other, "a.txt", "text/plain", b"a".to_vec())
        .await;
    let (_, alices) = cluster
        .upload(&alice, &room, "b.txt", "text/plain", b"b".to_vec())
        .await;
    let (_, before) = cluster
        .rest(
            &alice,
            "GET",
            &format!("/v1/rooms/{room}/events"),
            Value::Null,
        )
        .await;
    let mut a = cluster.connect(&alice, 0).await;
    let mut b = cluster.connect(&bob, cluster.gateways.len() - 1).await;
    let cases = [
        (0, json!([elsewhere["id"]]), "another room's upload"),
        (1, json!([alices["id"]]), "someone else's upload"),
        (
            0,
            json!([alices["id"], alices["id"]]),
            "the same upload twice",
        ),
        (0, json!([]), "no text and no file"),
    ];
    let clients = [&mut a, &mut b];
    for (i, (who, attachments, why)) in cases.into_iter().enumerate() {
        let client_id = format!("bad-{i}");
        let fields = json!({ "room_id": room, "body": "", "attachments": attachments });
        let refused = change(clients[who], "send", &client_id, fields).await;
        assert_eq!(refused["code"], "validation_failed", "{why}: {refused}");
    }
    let (_, after) = cluster
        .rest(
            &alice,
            "GET",
            &format!("/v1/rooms/{room}/events"),
            Value::Null,
        )
        .await;
    assert_eq!(after, before, "a refused send stored nothing");
}
