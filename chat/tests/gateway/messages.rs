//! What people do to messages, through the delivery contract: replies,
//! edits, reactions, pins and deletions sent over the socket are acked
//! once durable, reach every member on every gateway in seq order, reach a
//! member who was away through `sync`, and are refused with their codes
//! (and change nothing) when they may not be made.

use serde_json::{json, Value};

use crate::both_shapes;
use crate::cluster::{Setup, TestClient, TestCluster};

both_shapes!(
    changes_reach_every_member_in_seq_order,
    changes_made_while_away_arrive_through_sync,
    changes_are_refused_with_their_codes,
);

/// Sends a change frame (`kind` with `fields`) and returns its answer: the
/// `ack` or the `error` that names its client_id.
pub(crate) async fn change(
    client: &mut TestClient,
    kind: &str,
    client_id: &str,
    fields: Value,
) -> Value {
    let mut frame = json!({ "type": kind, "client_id": client_id });
    frame
        .as_object_mut()
        .unwrap()
        .extend(fields.as_object().unwrap().clone());
    client.send(frame).await;
    client
        .recv_until(|f| {
            (f["type"] == "ack" && f["client_id"] == client_id)
                || (f["type"] == "error" && f["ref"] == client_id)
        })
        .await
}

/// The room events `client` receives until one of type `last` arrives,
/// checking their seqs rise by one from `after`.
async fn events_until(client: &mut TestClient, room: &str, after: i64, last: &str) -> Vec<Value> {
    let mut seen = Vec::new();
    let mut expected = after + 1;
    loop {
        let frame = client
            // Room events, not acks, `synced` or relayed markers: they
            // name a sender.
            .recv_until(|f| f["room_id"] == room && f.get("sender").is_some())
            .await;
        assert_eq!(frame["seq"], expected, "gap or reorder: {frame}");
        expected += 1;
        let done = frame["type"] == last;
        seen.push(frame);
        if done {
            return seen;
        }
    }
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

async fn changes_reach_every_member_in_seq_order(setup: Setup) {
    let cluster = TestCluster::start(setup).await;
    let (alice, bob) = (cluster.user("alice").await, cluster.user("bob").await);
    let room = cluster.room(&alice, &[&bob]).await;
    let last = cluster.gateways.len() - 1;
    let mut a = cluster.connect(&alice, 0).await;
    let mut b = cluster.connect(&bob, last).await;
    let ack = a.send_message(&room, "q", "lunch at noon?").await;
    let (target, start) = (ack["id"].clone(), ack["seq"].as_i64().unwrap() - 1);

    let reply = json!({ "room_id": room, "body": "yes @alice", "reply_to": target });
    let replied = change(&mut b, "send", "r", reply).await;
    assert_eq!(replied["type"], "ack", "{replied}");
    let edited = change(
        &mut a,
        "edit",
        "e",
        json!({ "room_id": room, "target": target, "body": "lunch at one?" }),
    )
    .await;
    assert_eq!(edited["type"], "ack", "{edited}");
    let on_target = |extra: Value| {
        let mut fields = json!({ "room_id": room, "target": target });
        fields
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        fields
    };
    let reacted = change(&mut b, "react", "x", on_target(json!({ "emoji": "👍" }))).await;
    assert_eq!(reacted["type"], "ack", "{reacted}");
    for (kind, id) in [("pin", "p"), ("delete", "d")] {
        let answer = change(&mut a, kind, id, on_target(json!({}))).await;
        assert_eq!(answer["type"], "ack", "{kind}: {answer}");
    }

    for client in [&mut a, &mut b] {
        let events = events_until(client, &room, start, "message_deleted").await;
        assert_eq!(
            types(&events),
            [
                "message",
                "message",
                "message_edited",
                "reaction_added",
                "message_pinned",
                "message_deleted"
            ]
        );
        let reply = &events[1];
        assert_eq!(reply["reply_to"], target);
        assert_eq!(
            reply["reply_preview"],
            json!({ "sender": alice.id, "body": "lunch at noon?" })
        );
        assert_eq!(reply["mentions"], json!([alice.id]));
        assert_eq!(events[2]["body"], "lunch at one?");
        assert_eq!(events[3]["emoji"], "👍");
        assert_eq!(events[3]["sender"], json!(bob.id));
        assert_eq!(events[5]["target"], target);
    }
}

async fn changes_made_while_away_arrive_through_sync(setup: Setup) {
    let cluster = TestCluster::start(setup).await;
    let (alice, bob) = (cluster.user("alice").await, cluster.user("bob").await);
    let room = cluster.room(&alice, &[&bob]).await;
    let last = cluster.gateways.len() - 1;
    let mut a = cluster.connect(&alice, 0).await;
    let mut b = cluster.connect(&bob, 0).await;
    let kept = a.send_message(&room, "k", "keep me").await;
    let gone = a.send_message(&room, "g", "delete me").await;
    let seen = b.messages(&room, 2).await[1]["seq"].as_i64().unwrap();
    drop(b);

    let edit = json!({ "room_id": room, "target": kept["id"], "body": "kept, edited" });
    assert_eq!(change(&mut a, "edit", "e", edit).await["type"], "ack");
    let delete = json!({ "room_id": room, "target": gone["id"] });
    assert_eq!(change(&mut a, "delete", "d", delete).await["type"], "ack");

    let mut b = cluster.connect(&bob, last).await;
    b.send(json!({ "type": "sync", "rooms": { room.clone(): seen } }))
        .await;
    let events = events_until(&mut b, &room, seen, "message_deleted").await;
    assert_eq!(types(&events), ["message_edited", "message_deleted"]);
    assert_eq!(events[0]["target"], kept["id"]);
    assert_eq!(events[0]["body"], "kept, edited");
    assert_eq!(events[1]["target"], gone["id"]);
    // A full replay shows the deleted message as its tombstone.
    b.send(json!({ "type": "sync", "rooms": { room.clone(): 0 } }))
        .await;
    let replay = events_until(&mut b, &room, 0, "message_deleted").await;
    let tombstone = replay.iter().find(|e| e["id"] == gone["id"]).unwrap();
    assert_eq!(tombstone["seq"], gone["seq"]);
    assert_eq!(
        (tombstone["body"].clone(), tombstone["deleted"].clone()),
        (json!(""), json!(true))
    );
}

async fn changes_are_refused_with_their_codes(setup: Setup) {
    let cluster = TestCluster::start(setup).await;
    let (alice, bob, carol) = (
        cluster.user("alice").await,
        cluster.user("bob").await,
        cluster.user("carol").await,
    );
    let room = cluster.room(&alice, &[&bob]).await;
    let mut a = cluster.connect(&alice, 0).await;
    let mut b = cluster.connect(&bob, 0).await;
    let mut c = cluster.connect(&carol, 0).await;
    let alices = a.send_message(&room, "m", "hello").await;
    let target = alices["id"].clone();
    let (status, before) = cluster
        .rest(
            &alice,
            "GET",
            &format!("/v1/rooms/{room}/events"),
            Value::Null,
        )
        .await;
    assert!(status.is_success(), "{before}");
    let on = |extra: Value| {
        let mut fields = json!({ "room_id": room, "target": target });
        fields
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        fields
    };
    // (who: 0 alice, 1 bob, 2 carol, the frame, the code it gets)
    let cases = [
        (1, "edit", on(json!({ "body": "mine now" })), "not_sender"),
        (1, "delete", on(json!({})), "insufficient_role"),
        (1, "pin", on(json!({})), "insufficient_role"),
        (2, "react", on(json!({ "emoji": "👍" })), "not_member"),
        (
            1,
            "react",
            on(json!({ "emoji": "thumbs up" })),
            "validation_failed",
        ),
        (
            1,
            "react",
            on(json!({ "emoji": "👍👍" })),
            "validation_failed",
        ),
        (1, "unreact", on(json!({ "emoji": "👍" })), "not_reacted"),
        (
            0,
            "edit",
            on(json!({ "body": "\u{200b}" })),
            "validation_failed",
        ),
        (
            0,
            "edit",
            json!({ "room_id": room, "target": uuid::Uuid::now_v7(), "body": "x" }),
            "not_found",
        ),
        (
            0,
            "send",
            json!({ "room_id": room, "body": "x", "reply_to": uuid::Uuid::now_v7() }),
            "validation_failed",
        ),
    ];
    let mut clients = [&mut a, &mut b, &mut c];
    for (i, (who, kind, fields, code)) in cases.into_iter().enumerate() {
        let answer = change(clients[who], kind, &format!("bad-{i}"), fields).await;
        assert_eq!(answer["type"], "error", "{kind}: {answer}");
        assert_eq!(answer["code"], code, "{kind}: {answer}");
    }
    let (_, after) = cluster
        .rest(
            &alice,
            "GET",
            &format!("/v1/rooms/{room}/events"),
            Value::Null,
        )
        .await;
    assert_eq!(after, before, "a refused change stored nothing");

    // A retried change is acked with its original seq, stored once.
    let [a, b, _] = &mut clients;
    let first = change(b, "react", "once", on(json!({ "emoji": "🎉" }))).await;
    let again = change(b, "react", "once", on(json!({ "emoji": "🎉" }))).await;
    assert_eq!(
        (first["type"].clone(), again["seq"].clone()),
        (json!("ack"), first["seq"].clone())
    );
    let repeated = change(b, "react", "twice", on(json!({ "emoji": "🎉" }))).await;
    assert_eq!(repeated["code"], "already_reacted", "{repeated}");
    assert_eq!(
        change(a, "delete", "del", on(json!({}))).await["type"],
        "ack"
    );
    let late = change(b, "react", "late", on(json!({ "emoji": "👀" }))).await;
    assert_eq!(late["code"], "message_deleted", "{late}");
}

/// A gateway that stops while an edit is on its way: the editor reconnects
/// to the other gateway and retries with the same client_id, and everyone
/// sees the edit exactly once, at one seq.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_edit_cut_off_by_a_gateway_stopping_is_stored_once() {
    let mut cluster = TestCluster::start(Setup::SCALED).await;
    let (alice, bob) = (cluster.user("alice").await, cluster.user("bob").await);
    let room = cluster.room(&alice, &[&bob]).await;
    let mut a = cluster.connect(&alice, 0).await;
    let mut b = cluster.connect(&bob, 1).await;
    let message = a.send_message(&room, "m", "draft").await;
    let start = message["seq"].as_i64().unwrap();
    b.messages(&room, 1).await;
    let edit = json!({
        "type": "edit", "room_id": room, "client_id": "e1",
        "target": message["id"], "body": "final",
    });
    a.send(edit.clone()).await;
    cluster.stop_gateway(0);
    // Whatever the stopping gateway answered, the client retries on the
    // other one, as a client that saw no ack must.
    let mut a = cluster.connect(&alice, 1).await;
    let retried = change(
        &mut a,
        "edit",
        "e1",
        json!({ "room_id": room, "target": message["id"], "body": "final" }),
    )
    .await;
    assert_eq!(retried["type"], "ack", "{retried}");
    let events = events_until(&mut b, &room, start, "message_edited").await;
    assert_eq!(types(&events), ["message_edited"]);
    assert_eq!(events[0]["seq"], retried["seq"]);
    // Nothing more after it: a marker message comes next, at the next seq.
    a.send_message(&room, "after", "after").await;
    let next = events_until(&mut b, &room, start + 1, "message").await;
    assert_eq!(types(&next), ["message"]);
}
