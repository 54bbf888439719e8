//! The open-connections gauge, exactly. The metrics recorder is global to a
//! process and the other tests of this binary run in parallel in it, so
//! there the gauge can only be checked as "at least". Here the gateway is
//! the real `chat-gateway` binary in a process of its own (the test kit's
//! launcher), on the cluster's PostgreSQL and Redis, so nothing else opens
//! or closes a session while it looks: the gauge must read 0, then 1 while
//! one client is connected, and 0 again once it has closed, with the close
//! counted under the code the gateway sent.

use std::time::{Duration, Instant};

use chat_shared::testing::{metric, Backend};
use tokio_tungstenite::tungstenite::Message;

use crate::cluster::{BusKind, Setup, TestClient, TestCluster, WAIT};

const GAUGE: &str = "chat_gateway_connections";
const CLOSED: &str = "chat_gateway_connections_closed_total";

/// The `/metrics` text of the gateway process serving `ws`.
async fn metrics(ws: &str) -> String {
    let url = ws
        .replacen("ws://", "http://", 1)
        .replacen("/v1/ws", "/metrics", 1);
    let response = reqwest::get(url).await.unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4"
    );
    response.text().await.unwrap()
}

/// Waits until the gateway's `/metrics` satisfies `pred`.
async fn until(ws: &str, what: &str, pred: impl Fn(&str) -> bool) {
    let started = Instant::now();
    loop {
        let text = metrics(ws).await;
        if pred(&text) {
            return;
        }
        assert!(started.elapsed() < WAIT, "{what}:\n{text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_gauge_follows_one_session_from_open_to_close() {
    let setup = Setup {
        backend: Backend::Postgres,
        bus: BusKind::Redis,
        gateways: 0,
    };
    let cluster = TestCluster::start(setup).await;
    let (_gateway, ws) = cluster.gateway_process().await;
    let alice = cluster.user("alice").await;
    let room = cluster.room(&alice, &[]).await;
    assert_eq!(metric(&metrics(&ws).await, GAUGE, &[]), 0.0);

    let mut client = TestClient::connect(&ws, &alice.token).await.unwrap();
    client.send_message(&room, "m1", "hello").await;
    let open = metrics(&ws).await;
    assert_eq!(metric(&open, GAUGE, &[]), 1.0, "{open}");
    assert_eq!(
        metric(&open, "chat_gateway_connections_opened_total", &[]),
        1.0
    );
    assert_eq!(metric(&open, CLOSED, &[]), 0.0);

    client.send_raw(Message::Close(None)).await;
    assert_eq!(client.closed().await.0, 1000);
    until(&ws, "the gauge back at 0", |text| {
        metric(text, GAUGE, &[]) == 0.0
    })
    .await;
    let closed = metrics(&ws).await;
    assert_eq!(
        metric(&closed, CLOSED, &[("code", "1000")]),
        1.0,
        "{closed}"
    );
    assert_eq!(metric(&closed, CLOSED, &[]), 1.0, "{closed}");
}
