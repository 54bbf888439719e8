//! `GET /metrics` and `x-request-id` on the gateway. Every server of this
//! test process shares one recorder, so each check compares a series
//! before and after its own actions (`at least`), never an absolute count
//! another test could move. The exact gauge (back to 0 after a close) is
//! checked in `tests/connections_gauge.rs`, a process of its own.

use std::time::{Duration, Instant};

use chat_shared::testing::metric;
use reqwest::StatusCode;
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

use crate::both_shapes;
use crate::cluster::{Setup, TestClient, TestCluster, WAIT};

both_shapes!(
    a_session_is_counted_from_handshake_to_close,
    every_gateway_response_carries_a_request_id,
    sends_over_the_rate_count_as_rate_limited,
);

/// What a series must have grown by since `before`.
type Expected<'a> = (&'a str, &'a [(&'a str, &'a str)], f64);

/// Waits (polling `/metrics`, within [`WAIT`]) until every series grew by
/// at least its amount since `before`: the gateway counts some things just
/// after the client can see them.
async fn grew(cluster: &TestCluster, index: usize, before: &str, expected: &[Expected<'_>]) {
    let started = Instant::now();
    loop {
        let now = cluster.metrics(index).await;
        let short: Vec<String> = expected
            .iter()
            .filter_map(|(name, labels, at_least)| {
                let delta = metric(&now, name, labels) - metric(before, name, labels);
                (delta < *at_least).then(|| format!("{name}{labels:?} grew by {delta}"))
            })
            .collect();
        if short.is_empty() {
            return;
        }
        assert!(started.elapsed() < WAIT, "{short:?}\n{now}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn a_session_is_counted_from_handshake_to_close(setup: Setup) {
    let cluster = TestCluster::start(setup).await;
    let alice = cluster.user("alice").await;
    let room = cluster.room(&alice, &[]).await;
    let before = cluster.metrics(0).await;

    let mut client = cluster.connect(&alice, 0).await;
    client.send_message(&room, "m1", "hello").await;
    client.messages(&room, 1).await;
    client.send_raw(Message::text("not json")).await;
    client.recv_until(|f| f["type"] == "error").await;
    grew(
        &cluster,
        0,
        &before,
        &[
            ("chat_gateway_connections_opened_total", &[], 1.0),
            ("chat_gateway_frames_in_total", &[("type", "send")], 1.0),
            ("chat_gateway_frames_in_total", &[("type", "invalid")], 1.0),
            ("chat_gateway_acks_total", &[], 1.0),
            ("chat_gateway_frames_out_total", &[("type", "hello")], 1.0),
            ("chat_gateway_frames_out_total", &[("type", "ack")], 1.0),
            ("chat_gateway_frames_out_total", &[("type", "message")], 1.0),
            ("chat_gateway_frames_out_total", &[("type", "error")], 1.0),
            ("chat_delivery_latency_seconds_count", &[], 1.0),
            ("chat_gateway_fanout_seconds_count", &[], 1.0),
            ("chat_bus_published_total", &[], 1.0),
            (
                "chat_store_query_seconds_count",
                &[("op", "append_message")],
                1.0,
            ),
        ],
    )
    .await;
    // At least this session is open (others of this process may be too).
    let open = metric(&cluster.metrics(0).await, "chat_gateway_connections", &[]);
    assert!(open >= 1.0, "{open}");

    let before_close = cluster.metrics(0).await;
    client.send_raw(Message::Close(None)).await;
    assert_eq!(client.closed().await.0, 1000);
    grew(
        &cluster,
        0,
        &before_close,
        &[(
            "chat_gateway_connections_closed_total",
            &[("code", "1000")],
            1.0,
        )],
    )
    .await;
}

async fn every_gateway_response_carries_a_request_id(setup: Setup) {
    let cluster = TestCluster::start(setup).await;
    let alice = cluster.user("alice").await;
    let ws = &cluster.gateways[0];
    let http = ws.replacen("ws://", "http://", 1).replacen("/v1/ws", "", 1);
    let client = reqwest::Client::new();
    let before = cluster.metrics(0).await;

    let handshake = || {
        client
            .get(format!("{http}/v1/ws"))
            .header("connection", "Upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
    };
    let bearer = format!("chat.v1, bearer.{}", alice.token);
    let requests = [
        (client.get(format!("{http}/healthz")), StatusCode::OK),
        (client.get(format!("{http}/readyz")), StatusCode::OK),
        (client.get(format!("{http}/metrics")), StatusCode::OK),
        (client.get(format!("{http}/nowhere")), StatusCode::NOT_FOUND),
        (
            client.get(format!("{http}/v1/ws")),
            StatusCode::UPGRADE_REQUIRED,
        ),
        (handshake(), StatusCode::UNAUTHORIZED),
        (
            handshake()
                .header("sec-websocket-protocol", &bearer)
                .header("origin", "https://evil.example"),
            StatusCode::FORBIDDEN,
        ),
    ];
    for (request, status) in requests {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), status, "{}", response.url());
        let id = response.headers()["x-request-id"].to_str().unwrap();
        assert_uuid_v7(id);
    }
    // The 101 too.
    let mut request = ws.as_str().into_client_request().unwrap();
    let protocol = HeaderValue::from_str(&bearer).unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", protocol);
    let (_socket, response) = TestClient::connect_request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert_uuid_v7(response.headers()["x-request-id"].to_str().unwrap());

    // A caller's sane id is kept (a proxy's, to follow a request through);
    // anything else is replaced.
    let response = client
        .get(format!("{http}/healthz"))
        .header("x-request-id", "lb-7f3a:42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "lb-7f3a:42");
    let response = client
        .get(format!("{http}/healthz"))
        .header("x-request-id", "two words")
        .send()
        .await
        .unwrap();
    assert_uuid_v7(response.headers()["x-request-id"].to_str().unwrap());

    let rejected = |reason| [("reason", reason)];
    grew(
        &cluster,
        0,
        &before,
        &[
            (
                "chat_gateway_handshake_rejections_total",
                &rejected("upgrade_required"),
                1.0,
            ),
            (
                "chat_gateway_handshake_rejections_total",
                &rejected("missing_token"),
                1.0,
            ),
            (
                "chat_gateway_handshake_rejections_total",
                &rejected("origin_not_allowed"),
                1.0,
            ),
        ],
    )
    .await;
}

fn assert_uuid_v7(id: &str) {
    let uuid = uuid::Uuid::parse_str(id).unwrap_or_else(|e| panic!("{id:?}: {e}"));
    assert_eq!(uuid.get_version_num(), 7, "{id}");
    assert_eq!(uuid.hyphenated().to_string(), id);
}

async fn sends_over_the_rate_count_as_rate_limited(setup: Setup) {
    let cluster = TestCluster::start_with(setup, |config| {
        config.common.send_rate_per_second = 1;
        config.common.send_burst = 1;
    })
    .await;
    let alice = cluster.user("alice").await;
    let room = cluster.room(&alice, &[]).await;
    let before = cluster.metrics(0).await;
    let mut client = cluster.connect(&alice, 0).await;
    client.send_message(&room, "first", "one").await;
    client
        .send(json!({ "type": "send", "room_id": room, "client_id": "second", "body": "two" }))
        .await;
    let refused = client.recv_until(|f| f["type"] == "error").await;
    assert_eq!(refused["code"], "rate_limited");
    grew(
        &cluster,
        0,
        &before,
        &[("chat_rate_limited_total", &[("scope", "send")], 1.0)],
    )
    .await;
}
