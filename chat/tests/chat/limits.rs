//! One budget per user for sending: in `chat`, REST and WebSocket sends
//! draw on the same allowance, so neither path is a way around the other.

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::harness::{register, send_and_ack, websocket, Running, GENERAL};

#[tokio::test]
async fn rest_and_websocket_sends_share_one_budget() {
    let dir = tempfile::tempdir().unwrap();
    let chat = Running::start(dir.path(), |settings| {
        settings.api.common.send_rate_per_second = 1;
        settings.api.common.send_burst = 4;
        settings.gateway.common.send_rate_per_second = 1;
        settings.gateway.common.send_burst = 4;
    })
    .await;
    let token = register(&chat.base, "both-ways").await;
    let mut ws = websocket(chat.addr, std::net::Ipv4Addr::LOCALHOST.into(), &token)
        .await
        .unwrap();
    for i in 0..3 {
        send_and_ack(&mut ws, &format!("ws-{i}")).await;
    }
    let rest = |client_id: &'static str| {
        reqwest::Client::new()
            .post(format!("{}/v1/rooms/{GENERAL}/messages", chat.base))
            .bearer_auth(&token)
            .json(&json!({ "client_id": client_id, "body": "over rest" }))
            .send()
    };
    // The fourth send of the burst, over REST.
    assert_eq!(rest("rest-1").await.unwrap().status(), 201);
    // The budget is spent on both paths.
    let refused = rest("rest-2").await.unwrap();
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    let send = json!({ "type": "send", "room_id": GENERAL, "client_id": "ws-9", "body": "x" });
    ws.send(Message::text(send.to_string())).await.unwrap();
    loop {
        let Some(Ok(Message::Text(text))) = ws.next().await else {
            panic!("the socket closed")
        };
        let frame: Value = serde_json::from_str(&text).unwrap();
        if frame["type"] == "error" {
            assert_eq!(frame["code"], "rate_limited", "{frame}");
            assert_eq!(frame["ref"], "ws-9", "{frame}");
            break;
        }
        assert_ne!(frame["type"], "ack", "a send over the budget was acked");
    }
    chat.stop().await;
}
