//! The delivery contract: acks after commit, fan-out across gateways,
//! exactly once and in order, resume with `sync`, idempotent retries.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::both_shapes;
use crate::cluster::{Setup, TestCluster};

both_shapes!(
    a_send_is_acked_and_reaches_every_member,
    concurrent_senders_are_delivered_exactly_once_in_order,
    a_client_resumes_with_sync_on_any_gateway,
    a_retried_client_id_yields_one_event,
    pipelined_sends_are_answered_in_order,
    a_busy_room_is_fanned_out_once_per_interval,
);

/// The gateway index for the `n`th client: spread over all gateways.
fn spread(cluster: &TestCluster, n: usize) -> usize {
    n % cluster.gateways.len()
}

async fn a_send_is_acked_and_reaches_every_member(setup: Setup) {
    let cluster = TestCluster::start(setup).await;
    let (alice, bob) = (cluster.user("alice").await, cluster.user("bob").await);
    let room = cluster.room(&alice, &[&bob]).await;
    let mut a = cluster.connect(&alice, 0).await;
    let mut b = cluster.connect(&bob, spread(&cluster, 1)).await;
    assert_eq!(b.heads()[&room], 2);

    let ack = a.send_message(&room, "m1", "hello").await;
    assert_eq!(ack["seq"], 3);
    assert_eq!(ack["room_id"], room.as_str());
    for client in [&mut a, &mut b] {
        let message = client.messages(&room, 1).await.remove(0);
        assert_eq!(message["seq"], 3);
        assert_eq!(message["body"], "hello");
        assert_eq!(message["sender"], alice.id.as_str());
        assert_eq!(message["id"], ack["id"]);
    }
}

async fn concurrent_senders_are_delivered_exactly_once_in_order(setup: Setup) {
    const SENDERS: usize = 10;
    const EACH: usize = 100;
    let cluster = TestCluster::start(setup).await;
    let owner = cluster.user("owner").await;
    let mut users = Vec::new();
    for i in 0..SENDERS {
        users.push(cluster.user(&format!("sender{i}")).await);
    }
    let refs: Vec<_> = users.iter().collect();
    let room = cluster.room(&owner, &refs).await;
    let base = (SENDERS + 1) as i64; // the member_joined events

    let mut listener = cluster.connect(&owner, 0).await;
    // Everyone is connected before anyone sends, so all see every message.
    let mut clients = Vec::new();
    for (i, user) in users.iter().enumerate() {
        clients.push(cluster.connect(user, spread(&cluster, i + 1)).await);
    }
    let mut tasks = Vec::new();
    for (i, mut client) in clients.into_iter().enumerate() {
        let room = room.clone();
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for n in 0..EACH {
                let ack = client
                    .send_message(&room, &format!("c{i}-{n}"), &format!("{i}:{n}"))
                    .await;
                acked.push(ack["seq"].as_i64().unwrap());
            }
            // Every sender also receives the whole room.
            let seen = client.messages(&room, SENDERS * EACH).await;
            (acked, seen.len())
        }));
    }
    let received = listener.messages(&room, SENDERS * EACH).await;
    let seqs: Vec<i64> = received
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect();
    let expected: Vec<i64> = (base + 1..=base + (SENDERS * EACH) as i64).collect();
    assert_eq!(seqs, expected);
    let mut all_acked = Vec::new();
    for task in tasks {
        let (acked, seen) = task.await.unwrap();
        assert_eq!(acked.len(), EACH);
        assert_eq!(seen, SENDERS * EACH);
        all_acked.extend(acked);
    }
    all_acked.sort();
    assert_eq!(all_acked, expected);
}

async fn a_client_resumes_with_sync_on_any_gateway(setup: Setup) {
    let cluster = TestCluster::start(setup).await;
    let (alice, bob) = (cluster.user("alice").await, cluster.user("bob").await);
    let room = cluster.room(&alice, &[&bob]).await;
    let mut a = cluster.connect(&alice, 0).await;
    let mut b = cluster.connect(&bob, 0).await;
    a.send_message(&room, "first", "before").await;
    let last_seen = b.messages(&room, 1).await[0]["seq"].as_i64().unwrap();
    drop(b);

    for n in 0..50 {
        a.send_message(&room, &format!("missed-{n}"), "while away")
            .await;
    }
    let last = cluster.gateways.len() - 1;
    let mut b = cluster.connect(&bob, last).await;
    b.send(json!({ "type": "sync", "rooms": { room.clone(): last_seen } }))
        .await;
    let replayed = b.messages(&room, 50).await;
    let seqs: Vec<i64> = replayed
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, (last_seen + 1..=last_seen + 50).collect::<Vec<_>>());
    let synced = b.recv_until(|f| f["type"] == "synced").await;
    assert_eq!(synced["seq"], last_seen + 50);

    // Live traffic continues seamlessly after the replay.
    a.send_message(&room, "after", "live").await;
    let live = b.messages(&room, 1).await;
    assert_eq!(live[0]["seq"], last_seen + 51);
}

async fn a_retried_client_id_yields_one_event(setup: Setup) {
    let cluster = TestCluster::start(setup).await;
    let alice = cluster.user("alice").await;
    let room = cluster.room(&alice, &[]).await;
    let mut first = cluster.connect(&alice, 0).await;
    let mut second = cluster.connect(&alice, spread(&cluster, 1)).await;
    // The same client_id on two connections (two gateways) at once.
    let frame = json!({ "type": "send", "room_id": room, "client_id": "dup", "body": "once" });
    first.send(frame.clone()).await;
    second.send(frame).await;
    let a = first.recv_until(|f| f["type"] == "ack").await;
    let b = second.recv_until(|f| f["type"] == "ack").await;
    assert_eq!(a["seq"], b["seq"]);
    assert_eq!(a["id"], b["id"]);
    // A retry later gets the same answer.
    let again = first.send_message(&room, "dup", "once").await;
    assert_eq!(again["seq"], a["seq"]);
    let (_, page) = cluster
        .rest(
            &alice,
            "GET",
            &format!("/v1/rooms/{room}/events?after=0"),
            json!(null),
        )
        .await;
    let bodies: HashMap<i64, String> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "message")
        .map(|e| {
            (
                e["seq"].as_i64().unwrap(),
                e["body"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(bodies.len(), 1);
}

/// A client that sends without waiting for acks (100 sends, one invalid in
/// the middle, then a `ping`): every answer comes in the order of the
/// sends, the acks' seqs rise one by one, the invalid send's error sits in
/// its place, the `pong` comes after them all, and the other member gets
/// the messages in that order.
async fn pipelined_sends_are_answered_in_order(setup: Setup) {
    const SENDS: usize = 100;
    let cluster = TestCluster::start(setup).await;
    let (alice, bob) = (cluster.user("alice").await, cluster.user("bob").await);
    let room = cluster.room(&alice, &[&bob]).await;
    let mut a = cluster.connect(&alice, 0).await;
    let mut b = cluster.connect(&bob, spread(&cluster, 1)).await;
    let head = a.heads()[&room];
    for i in 0..SENDS {
        // One send is refused before it reaches the store (empty client_id).
        let client_id = if i == SENDS / 2 {
            String::new()
        } else {
            format!("p{i}")
        };
        a.send(json!({"type": "send", "room_id": room, "client_id": client_id, "body": format!("b{i}")}))
            .await;
    }
    a.send(json!({"type": "ping"})).await;

    let mut answers = Vec::new();
    loop {
        let frame = a
            .recv_until(|f| ["ack", "error", "pong"].contains(&f["type"].as_str().unwrap_or("")))
            .await;
        if frame["type"] == "pong" {
            break;
        }
        answers.push(frame);
    }
    assert_eq!(answers.len(), SENDS, "one answer per send before the pong");
    let mut seq = head;
    for (i, answer) in answers.iter().enumerate() {
        if i == SENDS / 2 {
            assert_eq!(answer["type"], "error", "answer {i}: {answer}");
            assert_eq!(answer["code"], "validation_failed");
            continue;
        }
        assert_eq!(answer["type"], "ack", "answer {i}: {answer}");
        assert_eq!(answer["client_id"], format!("p{i}"));
        seq += 1;
        assert_eq!(
            answer["seq"], seq,
            "acks' seqs rise one by one in send order"
        );
    }
    let bodies: Vec<String> = b
        .messages(&room, SENDS - 1)
        .await
        .iter()
        .map(|m| m["body"].as_str().unwrap().to_owned())
        .collect();
    let expected: Vec<String> = (0..SENDS)
        .filter(|&i| i != SENDS / 2)
        .map(|i| format!("b{i}"))
        .collect();
    assert_eq!(bodies, expected);
}

/// With `CHAT_FANOUT_INTERVAL` at 1 s: the first of three quick sends
/// reaches the other member at once, the next two come together (in
/// order) an interval later, and a send after a quiet interval again goes
/// out at once.
async fn a_busy_room_is_fanned_out_once_per_interval(setup: Setup) {
    const INTERVAL: Duration = Duration::from_secs(1);
    let cluster = TestCluster::start_with(setup, |config| config.fanout_interval = INTERVAL).await;
    let (alice, bob) = (cluster.user("alice").await, cluster.user("bob").await);
    let room = cluster.room(&alice, &[&bob]).await;
    let mut a = cluster.connect(&alice, 0).await;
    let mut b = cluster.connect(&bob, spread(&cluster, 1)).await;
    let head = a.heads()[&room];
    // The first frame ends bob's wait for a `sync` (live from here on).
    b.send(json!({"type": "ping"})).await;
    b.recv_until(|f| f["type"] == "pong").await;

    for i in 1..=3 {
        a.send(json!({"type": "send", "room_id": room, "client_id": format!("q{i}"), "body": format!("b{i}")}))
            .await;
    }
    let first = b.messages(&room, 1).await.remove(0);
    let first_at = Instant::now();
    let second = b.messages(&room, 1).await.remove(0);
    let second_at = Instant::now();
    let third = b.messages(&room, 1).await.remove(0);
    let third_at = Instant::now();
    let seqs: Vec<_> = [&first, &second, &third]
        .map(|m| m["seq"].as_i64().unwrap())
        .into();
    assert_eq!(seqs, [head + 1, head + 2, head + 3]);
    let held = second_at - first_at;
    assert!(
        held >= INTERVAL * 7 / 10,
        "the second send was gathered for the interval, not sent at once ({held:?})"
    );
    let apart = third_at - second_at;
    assert!(
        apart < INTERVAL * 3 / 10,
        "the second and third sends went out together ({apart:?} apart)"
    );

    tokio::time::sleep(INTERVAL + INTERVAL / 5).await;
    let acked = {
        a.send_message(&room, "q4", "b4").await;
        Instant::now()
    };
    let fourth = b.messages(&room, 1).await.remove(0);
    let waited = Instant::now() - acked;
    assert_eq!(fourth["seq"], head + 4);
    assert!(
        waited < INTERVAL / 2,
        "a send to a room quiet for an interval goes out at once (it took {waited:?})"
    );
}
