//! Bad input of every kind: refused handshakes (plain HTTP errors before any
//! upgrade), unreadable or unauthorised frames (an `error` frame, the socket
//! stays open), protocol violations (the socket closes with the documented
//! code), the send rate limit and token expiry. Whatever the input, the
//! room's log is unchanged and the gateway keeps serving.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chat_gateway::GatewayConfig;
use chat_shared::auth::{read_key, Claims, KeyPair, TokenIssuer, TokenScope, TokenVerifier};
use chat_shared::model::{RoomEvent, RoomId};
use chat_shared::store::Page;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Response;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;

use crate::both_shapes;
use crate::cluster::{Setup, TestClient, TestCluster, User, WAIT};

both_shapes!(
    handshakes_without_a_valid_token_get_401,
    a_logged_out_session_gets_401_session_revoked,
    foreign_origins_get_403_and_the_own_origin_is_accepted,
    an_allowed_foreign_origin_is_accepted,
    the_subprotocol_must_include_chat_v1,
    an_authorization_header_works_without_a_subprotocol,
    ping_gets_pong,
    unreadable_frames_get_an_error_and_the_socket_stays_open,
    frames_for_rooms_i_am_not_in_are_refused,
    invalid_sends_fail_validation_and_store_nothing,
    invalid_utf8_closes_with_1007,
    a_binary_frame_closes_with_1002,
    broken_fragment_sequences_close_with_1002,
    a_message_over_the_cap_closes_with_1009,
    the_cap_holds_across_fragments,
    sends_over_the_rate_limit_are_refused,
    an_expired_session_is_closed_with_4001,
    auth_with_a_fresh_token_extends_the_session,
    auth_with_a_token_that_is_not_mine_is_refused,
    one_address_cannot_take_every_connection_of_a_gateway,
);

// ---------------------------------------------------------------------------
// Handshakes

async fn handshakes_without_a_valid_token_get_401(setup: Setup) {
    let cluster = TestCluster::start(setup).await;
    let alice = cluster.user("alice").await;
    let mint = Mint::new(&cluster);
    let foreign = foreign_key_token(&mint.claims(&alice));
    let expired = mint.expired(&alice);
    let wrong_audience = mint.scoped(&alice, "chat", "elsewhere");
    let wrong_issuer = mint.scoped(&alice, "someone-else", "chat");
    for gateway in &cluster.gateways {
        let cases = [
            (None, "missing_token"),
            (Some("garbage".to_owned()), "invalid_token"),
            (Some(foreign.clone()), "invalid_token"),
            (Some(expired.clone()), "invalid_token"),
            (Some(wrong_audience.clone()), "invalid_token"),
            (Some(wrong_issuer.clone()), "invalid_token"),
        ];
        for (token, code) in cases {
            let headers: Vec<_> = token
                .iter()
                .map(|t| ("sec-websocket-protocol", format!("chat.v1, bearer.{t}")))
                .collect();
            let (status, body) = refused(gateway, &headers).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{token:?}: {body}");
            assert_eq!(body["error"]["code"], code, "{token:?}: {body}");
            assert!(body["error"]["message"].is_string(), "{body}");
        }
        // The same through the Authorization header.
        let (status, body) =
            refused(gateway, &[("authorization", format!("Bearer {expired}"))]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["error"]["code"], "invalid_token");
        // A plain GET is no handshake at all.
        let response = http()
            .get(gateway.replacen("ws://", "http://", 1))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UPGRADE_REQUIRED);
        // Like every answer of the gateway: not sniffable, not framable,
        // no referrer.
        let header = |name: &str| response.headers()[name].to_str().unwrap().to_owned();
        assert_eq!(header("x-content-type-options"), "nosniff");
        assert!(header("content-security-policy").contains("frame-ancestors 'none'"));
        assert_eq!(header("referrer-policy"), "no-referrer");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "upgrade_required");
    }
    // The real token still works, and a fresh one from the same key too.
    for index in 0..cluster.gateways.len() {
        let client = cluster.connect(&alice, index).await;
        assert_eq!(client.hello["user"]["id"], alice.id.as_str());
    }
    let (token, _) = mint.token(&alice, Duration::from_secs(60));
    TestClient::connect(&cluster.gateways[0], &token)
        .await
        .unwrap();
}

async fn a_logged_out_session_gets_401_session_revoked(setup: Setup) {
    let cluster = TestCluster::start(setup).await;
    let alice = cluster.user("alice").await;
    cluster.connect(&alice, 0).await;
    let (status, body) = cluster
        .rest(&alice, "POST", "/v1/auth/logout", json!({}))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    for gateway in &cluster.gateways {
        let (status, body) = refused(gateway, &[protocol(&alice.token)]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(body["error"]["code"], "session_revoked");
        let bearer = ("authorization", format!("Bearer {}", alice.token));
        let (status, body) = refused(gateway, &[bearer]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(body["error"]["code"], "session_revoked");
    }
}

async fn foreign_origins_get_403_and_the_own_origin_is_accepted(setup: Setup) {
    let cluster = TestCluster::start(setup).await;
    let alice = cluster.user("alice").await;
    for gateway in &cluster.gateways {
        let own = own_origin(gateway);
        let other_port = format!("http://127.0.0.1:{}", port(gateway) as u32 + 1);
        let other_scheme = format!("https://127.0.0.1:{}", port(gateway));
        for origin in [
            "https://evil.example",
            "https://chat.example",
            &other_port,
            &other_scheme,
        ] {
            let headers = [protocol(&alice.token), ("origin", origin.to_owned())];
            let (status, body) = refused(gateway, &headers).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{origin}: {body}");
            assert_eq!(body["error"]["code"], "origin_not_allowed");
        }
        // A name rebound to this server by its owner's DNS: the browser
        // sends a Host that matches its Origin, which proves nothing.
        let rebound = [
            protocol(&alice.token),
            ("origin", "http://rebound.example".to_owned()),
            ("host", "rebound.example".to_owned()),
        ];
        let (status, body) = refused(gateway, &rebound).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        // The localhost name of a loopback listener is its own, too.
        let localhost = own.replace("127.0.0.1", "localhost");
        let (client, _) = accepted(gateway, &[protocol(&alice.token), ("origin", localhost)]).await;
        assert_eq!(client.hello["user"]["id"], alice.id.as_str());
        let (client, _) = accepted(gateway, &[protocol(&alice.token), ("origin", own)]).await;
        assert_eq!(client.hello["user"]["id"], alice.id.as_str());
    }
}

async fn an_allowed_foreign_origin_is_accepted(setup: Setup) {
    let cluster = TestCluster::start_with(setup, |c| {
        c.allowed_origins = "https://chat.example, https://app.example/".into();
    })
    .await;
    let alice = cluster.user("alice").await;
    for gateway in &cluster.gateways {
        for origin in [
            "https://chat.example",
            "https://app.example",
            &own_origin(gateway),
        ] {
            let headers = [protocol(&alice.token), ("origin", origin.to_owned())];
            let (client, _) = accepted(gateway, &headers).await;
            assert_eq!(client.hello["user"]["id"], alice.id.as_str(), "{origin}");
        }
        for origin in ["https://evil.example", "https://chat.example.evil.example"] {
            let headers = [protocol(&alice.token), ("origin", origin.to_owned())];
            let (status, body) = refused(gateway, &headers).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{origin}: {body}");
            assert_eq!(body["error"]["code"], "origin_not_allowed");
        }
    }
}

async fn the_subprotocol_must_include_chat_v1(setup: Setup) {
    let cluster = TestCluster::start(setup).await;
    let alice = cluster.user("alice").await;
    let token = &alice.token;
    for gateway in &cluster.gateways {
        let cases = [
            vec![("sec-websocket-protocol", format!("bearer.{token}"))],
            vec![("sec-websocket-protocol", format!("chat.v2, bearer.{token}"))],
            vec![
                ("sec-websocket-protocol", "chat.v2".to_owned()),
                ("authorization", format!("Bearer {token}")),
            ],
        ];
        for headers in cases {
            let (status, body) = refused(gateway, &headers).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{headers:?}: {body}");
            assert_eq!(body["error"]["code"], "unsupported_subprotocol");
        }
    }
}

async fn an_authorization_header_works_without_a_subprotocol(setup: Setup) {
    let cluster = TestCluster::start(setup).await;
    let alice = cluster.user("alice").await;
    let bearer = ("authorization", format!("Bearer {}", alice.token));
    for gateway in &cluster.gateways {
        let (mut client, response) = accepted(gateway, std::slice::from_ref(&bearer)).await;
        assert_eq!(client.hello["user"]["id"], alice.id.as_str());
        assert!(response.headers().get("sec-websocket-protocol").is_none());
        still_open(&mut client).await;
        // With chat.v1 offered as well, it is echoed.
        let offered = ("sec-websocket-protocol", "chat.v1".to_owned());
        let (client, response) = accepted(gateway, &[bearer.clone(), offered]).await;
        assert_eq!(client.hello["user"]["id"], alice.id.as_str());
        assert_eq!(response.headers()["sec-websocket-protocol"], "chat.v1");
    }
}

// ---------------------------------------------------------------------------
// Frames answered with an error

async fn ping_gets_pong(setup: Setup) {
    let cluster = TestCluster::start(setup).await;
    let alice = cluster.user("alice").await;
    for index in 0..cluster.gateways.len() {
        let mut client = cluster.connect(&alice, index).await;
        // A WebSocket-level ping is answered too, and changes nothing.
        client.send_raw(Message::Ping(b"hi".to_vec().into())).await;
        client.send(json!({ "type": "ping" })).await;
        let pong = client.recv_until(|f| f["type"] == "pong").await;
        assert_eq!(pong, json!({ "type": "pong" }));
    }
}

async fn unreadable_frames_get_an_error_and_the_socket_stays_open(setup: Setup) {
    let cluster = TestCluster::start(setup).await;
    let alice = cluster.user("alice").await;
    let room = cluster.room(&alice, &[]).await;
    let before = log(&cluster, &room).await;
    let mut client = cluster.connect(&alice, 0).await;
    let cases = [
        ("{not json".to_owned(), "malformed_json"),
        (String::new(), "malformed_json"),
        (r#"{"type":"send"#.to_owned(), "malformed_json"),
        (
            json!({ "room_id": room, "body": "x" }).to_string(),
            "invalid_frame",
        ),
        (
            json!({ "type": "shout", "room_id": room }).to_string(),
            "unknown_type",
        ),
        (
            json!({ "type": "send", "room_id": room, "body": "x" }).to_string(),
            "invalid_frame",
        ),
        (
            json!({ "type": "send", "room_id": "nope", "client_id": "c", "body": "x" }).to_string(),
            "invalid_frame",
        ),
        (
            json!({ "type": "send", "room_id": room, "client_id": 7, "body": "x" }).to_string(),
            "invalid_frame",
        ),
        (
            json!({ "type": "read", "room_id": room }).to_string(),
            "invalid_frame",
        ),
        (json!({ "type": "sync" }).to_string(), "invalid_frame"),
        (json!({ "type": "auth" }).to_string(), "invalid_frame"),
        (
            json!({ "type": "signal", "to_user": alice.id, "call_id": "c", "kind": "shout" })
                .to_string(),
            "invalid_frame",
        ),
    ];
    for (text, code) in cases {
        client.send_raw(Message::text(text.clone())).await;
        let error = next_error(&mut client).await;
        assert_eq!(error["code"], code, "{text:?}: {error}");
        assert!(error["message"].is_string());
        assert!(error.get("ref").is_none(), "{error}");
        still_open(&mut client).await;
    }
    assert_eq!(log(&cluster, &room).await, before);
    // The same socket still sends.
    client.send_message(&room, "after", "still here").await;
}

async fn frames_for_rooms_i_am_not_in_are_refused(setup: Setup) {
    let cluster = TestCluster::start(setup).await;
    let (alice, bob) = (cluster.user("alice").await, cluster.user("bob").await);
    let room = cluster.room(&alice, &[]).await;
    let mut a = cluster.connect(&alice, 0).await;
    a.send_message(&room, "a1", "members only").await;
    let before = log(&cluster, &room).await;
    let head = head(&cluster, &room).await;
    let mut b = cluster.connect(&bob, cluster.gateways.len() - 1).await;

    b.send(json!({ "type": "send", "room_id": room, "client_id": "b1", "body": "let me in" }))
        .await;
    let error = next_error(&mut b).await;
    assert_eq!(
        (&error["code"], &error["ref"]),
        (&json!("not_member"), &json!("b1"))
    );
    // Not even a retry of a client_id the member used.
    b.send(json!({ "type": "send", "room_id": room, "client_id": "a1", "body": "x" }))
        .await;
    let error = next_error(&mut b).await;
    assert_eq!(
        (&error["code"], &error["ref"]),
        (&json!("not_member"), &json!("a1"))
    );

    let missing = RoomId::new().to_string();
    b.send(json!({ "type": "send", "room_id": missing, "client_id": "b2", "body": "hello?" }))
        .await;
    let error = next_error(&mut b).await;
    assert_eq!(
        (&error["code"], &error["ref"]),
        (&json!("not_found"), &json!("b2"))
    );

    for frame in [
        json!({ "type": "sync", "rooms": { room.clone(): 0 } }),
        json!({ "type": "typing", "room_id": room }),
        json!({ "type": "read", "room_id": room, "seq": 1 }),
    ] {
        b.send(frame.clone()).await;
        let error = next_error(&mut b).await;
        assert_eq!(error["code"], "not_member", "{frame}: {error}");
        assert_eq!(error["ref"], room.as_str(), "{frame}: {error}");
    }
    still_open(&mut b).await;
    assert_eq!(log(&cluster, &room).await, before);
    assert_eq!(self::head(&cluster, &room).await, head);
    assert!(cluster
        .store
        .room(missing.parse().unwrap())
        .await
        .unwrap()
        .is_none());
    // The member saw none of it: her next frame is her own next message.
    a.send_message(&room, "a2", "still members only").await;
    let next = a.recv_until(|f| f["type"] != "presence").await;
    assert_eq!(
        (&next["type"], &next["client_id"]),
        (&json!("message"), &json!("a1"))
    );
    let next = a.recv_until(|f| f["type"] != "presence").await;
    assert_eq!(
        (&next["type"], &next["client_id"]),
        (&json!("message"), &json!("a2"))
    );
}

async fn invalid_sends_fail_validation_and_store_nothing(setup: Setup) {
    let cluster = TestCluster::start(setup).await;
    let alice = cluster.user("alice").await;
    let room = cluster.room(&alice, &[]).await;
    let max = GatewayConfig::default().common.max_body_chars;
    let before = log(&cluster, &room).await;
    let mut client = cluster.connect(&alice, 0).await;
    let long_id = "x".repeat(65);
    let cases = [
        ("", "fine"),
        (long_id.as_str(), "fine"),
        ("has space", "fine"),
        ("tab\there", "fine"),
        ("ünïcode", "fine"),
        ("empty", ""),
        ("blank", " \n\t "),
        ("nul", "a\u{0}b"),
        ("zero-width", "\u{200b}\u{200b}"),
        ("terminal-escape", "\u{1b}[2J\u{1b}[31mpwned"),
        ("bell", "ding\u{7}"),
    ];
    for (client_id, body) in cases {
        let error = send_expecting_error(&mut client, &room, client_id, body).await;
        assert_eq!(
            error["code"], "validation_failed",
            "{client_id:?}/{body:?}: {error}"
        );
    }
    let too_long = "é".repeat(max + 1);
    let error = send_expecting_error(&mut client, &room, "too-long", &too_long).await;
    assert_eq!(error["code"], "validation_failed", "{error}");
    for frame in [
        json!({ "type": "read", "room_id": room, "seq": -1 }),
        json!({ "type": "sync", "rooms": { room.clone(): -1 } }),
    ] {
        client.send(frame.clone()).await;
        let error = next_error(&mut client).await;
        assert_eq!(error["code"], "validation_failed", "{frame}: {error}");
        assert_eq!(error["ref"], room.as_str());
    }
    still_open(&mut client).await;
    assert_eq!(log(&cluster, &room).await, before);

    // The limits themselves are allowed: characters are counted, not bytes.
    let longest = "é".repeat(max);
    let longest_id = "~".repeat(64);
    client.send_message(&room, &longest_id, &longest).await;
    let after = log(&cluster, &room).await;
    assert_eq!(after.len(), before.len() + 1);
    let stored = serde_json::to_value(after.last().unwrap()).unwrap();
    assert_eq!(stored["body"], longest.as_str());
    assert_eq!(stored["client_id"], longest_id.as_str());
}

// ---------------------------------------------------------------------------
// Protocol violations close the socket

async fn invalid_utf8_closes_with_1007(setup: Setup) {
    let cluster = TestCluster::start(setup).await;
    let alice = cluster.user("alice").await;
    let room = cluster.room(&alice, &[]).await;
    let before = log(&cluster, &room).await;
    let send = send_json(&room, "c1", "caf\u{e9}");
    let mut broken = send.clone().into_bytes();
    let at = send.find('\u{e9}').unwrap();
    broken[at] = 0xff; // in the middle of the body

    // In one frame.
    let mut client = cluster.connect(&alice, 0).await;
    client
        .send_raw(Message::Frame(Frame::message(
            broken.clone(),
            OpCode::Data(Data::Text),
            true,
        )))
        .await;
    assert_eq!(client.closed().await.0, 1007);

    // Across fragments, where each part alone says nothing.
    let mut client = cluster.connect(&alice, 0).await;
    for message in fragments(&broken, 3) {
        client.send_raw(message).await;
    }
    assert_eq!(client.closed().await.0, 1007);
    assert_eq!(log(&cluster, &room).await, before);

    // A character split between two fragments is fine.
    let mut client = cluster.connect(&alice, 0).await;
    let bytes = send.as_bytes();
    let split = send.find('\u{e9}').unwrap() + 1; // between the two bytes of "é"
    assert!(!send.is_char_boundary(split));
    client
        .send_raw(Message::Frame(Frame::message(
            bytes[..split].to_vec(),
            OpCode::Data(Data::Text),
            false,
        )))
        .await;
    client
        .send_raw(Message::Frame(Frame::message(
            bytes[split..].to_vec(),
            OpCode::Data(Data::Continue),
            true,
        )))
        .await;
    client.recv_until(|f| f["type"] == "ack").await;
    let after = log(&cluster, &room).await;
    assert_eq!(after.len(), before.len() + 1);
    assert_eq!(
        serde_json::to_value(&after[before.len()]).unwrap()["body"],
        "caf\u{e9}"
    );
}

async fn a_binary_frame_closes_with_1002(setup: Setup) {
    let cluster = TestCluster::start(setup).await;
    let alice = cluster.user("alice").await;
    let room = cluster.room(&alice, &[]).await;
    let before = log(&cluster, &room).await;
    for index in 0..cluster.gateways.len() {
        let mut client = cluster.connect(&alice, index).await;
        let send = send_json(&room, "c1", "as bytes");
        client.send_raw(Message::binary(send.into_bytes())).await;
        let (code, reason) = client.closed().await;
        assert_eq!(code, 1002, "{reason}");
    }
    assert_eq!(log(&cluster, &room).await, before);
}

async fn broken_fragment_sequences_close_with_1002(setup: Setup) {
    let cluster = TestCluster::start(setup).await;
    let alice = cluster.user("alice").await;
    let room = cluster.room(&alice, &[]).await;
    let before = log(&cluster, &room).await;
    let send = send_json(&room, "c1", "fragmented");
    let (head, tail) = send.as_bytes().split_at(10);

    // A continuation with nothing to continue.
    let mut client = cluster.connect(&alice, 0).await;
    client
        .send_raw(Message::Frame(Frame::message(
            tail.to_vec(),
            OpCode::Data(Data::Continue),
            true,
        )))
        .await;
    assert_eq!(client.closed().await.0, 1002);

    // A new message before the last one finished.
    let mut client = cluster.connect(&alice, 0).await;
    client
        .send_raw(Message::Frame(Frame::message(
            head.to_vec(),
            OpCode::Data(Data::Text),
            false,
        )))
        .await;
    client.send_raw(Message::text(send.clone())).await;
    assert_eq!(client.closed().await.0, 1002);
    assert_eq!(log(&cluster, &room).await, before);
}

/// `max_message_bytes` for the size tests; bodies may be longer, so only
/// the frame size stands in the way.
const CAP: usize = 4096;

fn small_frames(config: &mut GatewayConfig) {
    config.max_message_bytes = CAP;
    config.common.max_body_chars = 3 * CAP;
}

async fn a_message_over_the_cap_closes_with_1009(setup: Setup) {
    let cluster = TestCluster::start_with(setup, small_frames).await;
    let alice = cluster.user("alice").await;
    let room = cluster.room(&alice, &[]).await;
    let before = log(&cluster, &room).await;
    for index in 0..cluster.gateways.len() {
        let mut client = cluster.connect(&alice, index).await;
        // Exactly at the cap is allowed…
        let ping = padded(r#"{"type":"ping"}"#, CAP);
        client.send_raw(Message::text(ping)).await;
        client.recv_until(|f| f["type"] == "pong").await;
        // …one byte over is not.
        let send = send_sized(&room, "big", CAP + 1);
        client.send_raw(Message::text(send)).await;
        let (code, reason) = client.closed().await;
        assert_eq!(code, 1009, "{reason}");
    }
    assert_eq!(log(&cluster, &room).await, before);
}

async fn the_cap_holds_across_fragments(setup: Setup) {
    let cluster = TestCluster::start_with(setup, small_frames).await;
    let alice = cluster.user("alice").await;
    let room = cluster.room(&alice, &[]).await;
    let before = log(&cluster, &room).await;

    // Under the cap in all, with a ping between the fragments: reassembled.
    let mut client = cluster.connect(&alice, 0).await;
    let send = send_sized(&room, "fits", CAP);
    let mut parts = fragments(send.as_bytes(), 4);
    parts.insert(2, Message::Ping(b"between".to_vec().into()));
    for part in parts {
        client.send_raw(part).await;
    }
    let ack = client.recv_until(|f| f["type"] == "ack").await;
    assert_eq!(ack["client_id"], "fits");
    let stored = log(&cluster, &room).await;
    assert_eq!(stored.len(), before.len() + 1);

    // Each fragment under the cap, together over it: closed once the total
    // passes the cap, without waiting for the final fragment.
    for index in 0..cluster.gateways.len() {
        let mut client = cluster.connect(&alice, index).await;
        let send = send_sized(&room, "too-big", 3 * CAP);
        let parts = fragments(send.as_bytes(), 6); // 2 KiB each
        for part in parts.into_iter().take(3) {
            client.send_raw(part).await;
        }
        let (code, reason) = client.closed().await;
        assert_eq!(code, 1009, "{reason}");

        // Or with the final fragment.
        let mut client = cluster.connect(&alice, index).await;
        let send = send_sized(&room, "too-big", CAP + 1);
        for part in fragments(send.as_bytes(), 2) {
            client.send_raw(part).await;
        }
        let (code, reason) = client.closed().await;
        assert_eq!(code, 1009, "{reason}");
    }
    assert_eq!(log(&cluster, &room).await, stored);
}

// ---------------------------------------------------------------------------
// Rate limit

async fn sends_over_the_rate_limit_are_refused(setup: Setup) {
    let cluster = TestCluster::start_with(setup, |c| {
        c.common.send_rate_per_second = 1;
        c.common.send_burst = 3;
    })
    .await;
    let alice = cluster.user("alice").await;
    let room = cluster.room(&alice, &[]).await;
    let before = log(&cluster, &room).await;
    let mut client = cluster.connect(&alice, 0).await;
    for n in 1..=4 {
        client
            .send(json!({ "type": "send", "room_id": room, "client_id": format!("r{n}"), "body": "quick" }))
            .await;
    }
    for n in 1..=4 {
        let id = format!("r{n}");
        let answer = client
            .recv_until(|f| {
                (f["type"] == "ack" && f["client_id"] == id.as_str())
                    || (f["type"] == "error" && f["ref"] == id.as_str())
            })
            .await;
        if n <= 3 {
            assert_eq!(answer["type"], "ack", "{answer}");
        } else {
            assert_eq!(answer["code"], "rate_limited", "{answer}");
        }
    }
    still_open(&mut client).await;
    let after = log(&cluster, &room).await;
    let ids: Vec<Value> = after[before.len()..]
        .iter()
        .map(|e| serde_json::to_value(e).unwrap()["client_id"].clone())
        .collect();
    assert_eq!(ids, [json!("r1"), json!("r2"), json!("r3")]);
}

// ---------------------------------------------------------------------------
// Token expiry and renewal

/// Lifetime of the short tokens: long enough to connect and renew.
const SHORT: Duration = Duration::from_secs(2);

async fn an_expired_session_is_closed_with_4001(setup: Setup) {
    let cluster = TestCluster::start(setup).await;
    let alice = cluster.user("alice").await;
    let mint = Mint::new(&cluster);
    for gateway in &cluster.gateways {
        let (token, expires) = mint.token(&alice, SHORT);
        let mut client = TestClient::connect(gateway, &token).await.unwrap();
        still_open(&mut client).await;
        let (code, reason) = client.closed().await;
        assert_eq!(code, 4001, "{reason}");
        assert!(unix_now() >= expires, "closed before the token expired");
    }
}

async fn auth_with_a_fresh_token_extends_the_session(setup: Setup) {
    let cluster = TestCluster::start(setup).await;
    let alice = cluster.user("alice").await;
    let mint = Mint::new(&cluster);
    let (token, first) = mint.token(&alice, SHORT);
    let mut client = TestClient::connect(&cluster.gateways[0], &token)
        .await
        .unwrap();
    let (fresh, second) = mint.token(&alice, SHORT * 2);
    assert!(second > first);
    client.send(json!({ "type": "auth", "token": fresh })).await;
    // Frames are handled in order: the pong says the renewal was taken.
    still_open(&mut client).await;
    while let Some(frame) = client.next().await {
        assert_ne!(frame["type"], "error", "{frame}");
    }
    let (code, reason) = client.closed().await;
    assert_eq!(code, 4001, "{reason}");
    let now = unix_now();
    assert!(
        now >= second,
        "closed at {now}, before the renewed expiry {second}"
    );
}

async fn auth_with_a_token_that_is_not_mine_is_refused(setup: Setup) {
    let cluster = TestCluster::start(setup).await;
    let (alice, bob) = (cluster.user("alice").await, cluster.user("bob").await);
    let mint = Mint::new(&cluster);
    let (token, expires) = mint.token(&alice, SHORT);
    let mut client = TestClient::connect(&cluster.gateways[0], &token)
        .await
        .unwrap();
    let foreign = foreign_key_token(&mint.claims(&alice));
    let wrong_audience = mint.scoped(&alice, "chat", "elsewhere");
    for token in [bob.token.clone(), "garbage".into(), foreign, wrong_audience] {
        client.send(json!({ "type": "auth", "token": token })).await;
        let error = next_error(&mut client).await;
        assert_eq!(error["code"], "invalid_token", "{error}");
        still_open(&mut client).await;
    }
    // None of them extended the session.
    let (code, reason) = client.closed().await;
    assert_eq!(code, 4001, "{reason}");
    assert!(unix_now() >= expires);
}

// ---------------------------------------------------------------------------
// Helpers

fn http() -> reqwest::Client {
    reqwest::Client::builder().timeout(WAIT).build().unwrap()
}

/// Attempts a WebSocket handshake at `gateway` over plain HTTP with
/// `headers`, expecting a refusal; returns its status and JSON body.
async fn refused(gateway: &str, headers: &[(&'static str, String)]) -> (StatusCode, Value) {
    let mut request = http()
        .get(gateway.replacen("ws://", "http://", 1))
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    assert_ne!(
        status,
        StatusCode::SWITCHING_PROTOCOLS,
        "accepted: {headers:?}"
    );
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text:?}"));
    (status, body)
}

/// Opens a WebSocket at `gateway` with `headers` and reads `hello`.
async fn accepted(gateway: &str, headers: &[(&'static str, String)]) -> (TestClient, Response) {
    let mut request = gateway.into_client_request().unwrap();
    for (name, value) in headers {
        request
            .headers_mut()
            .insert(*name, HeaderValue::from_str(value).unwrap());
    }
    TestClient::connect_request(request)
        .await
        .unwrap_or_else(|e| panic!("{headers:?} refused: {e}"))
}

/// The browser way of sending `token`.
fn protocol(token: &str) -> (&'static str, String) {
    ("sec-websocket-protocol", format!("chat.v1, bearer.{token}"))
}

fn port(gateway: &str) -> u16 {
    let authority = gateway
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .unwrap();
    authority.rsplit_once(':').unwrap().1.parse().unwrap()
}

/// The origin of a page served by the gateway itself.
fn own_origin(gateway: &str) -> String {
    format!("http://127.0.0.1:{}", port(gateway))
}

/// Sends `ping` and waits for `pong`: the socket is open and every earlier
/// frame has been handled.
async fn still_open(client: &mut TestClient) {
    client.send(json!({ "type": "ping" })).await;
    client.recv_until(|f| f["type"] == "pong").await;
}

async fn next_error(client: &mut TestClient) -> Value {
    client.recv_until(|f| f["type"] == "error").await
}

/// Sends a message that must fail; returns the error, checking its `ref`.
async fn send_expecting_error(
    client: &mut TestClient,
    room: &str,
    client_id: &str,
    body: &str,
) -> Value {
    client
        .send_raw(Message::text(send_json(room, client_id, body)))
        .await;
    let answer = client
        .recv_until(|f| f["type"] == "ack" || f["type"] == "error")
        .await;
    assert_eq!(answer["type"], "error", "{client_id:?} was accepted");
    assert_eq!(answer["ref"], client_id, "{answer}");
    answer
}

fn send_json(room: &str, client_id: &str, body: &str) -> String {
    json!({ "type": "send", "room_id": room, "client_id": client_id, "body": body }).to_string()
}

/// A `send` frame of exactly `size` bytes.
fn send_sized(room: &str, client_id: &str, size: usize) -> String {
    let empty = send_json(room, client_id, "").len();
    let text = send_json(room, client_id, &"x".repeat(size - empty));
    assert_eq!(text.len(), size);
    text
}

/// `json` followed by spaces up to `size` bytes.
fn padded(json: &str, size: usize) -> String {
    format!("{json}{}", " ".repeat(size - json.len()))
}

/// `bytes` as one text message in `parts` fragments.
fn fragments(bytes: &[u8], parts: usize) -> Vec<Message> {
    let size = bytes.len().div_ceil(parts);
    let chunks: Vec<&[u8]> = bytes.chunks(size).collect();
    let last = chunks.len() - 1;
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, chunk)| {
            let opcode = if i == 0 { Data::Text } else { Data::Continue };
            Message::Frame(Frame::message(
                chunk.to_vec(),
                OpCode::Data(opcode),
                i == last,
            ))
        })
        .collect()
}

/// The room's whole log, from the store.
async fn log(cluster: &TestCluster, room: &str) -> Vec<RoomEvent> {
    let page = Page {
        after: Some(0),
        before: None,
        limit: 1000,
    };
    cluster
        .store
        .events(room.parse().unwrap(), page)
        .await
        .unwrap()
}

/// The room's `last_seq`.
async fn head(cluster: &TestCluster, room: &str) -> i64 {
    let room = cluster.store.room(room.parse().unwrap()).await.unwrap();
    room.expect("the room exists").last_seq
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn scope(issuer: &str, audience: &str) -> TokenScope {
    TokenScope {
        issuer: issuer.to_owned(),
        audience: audience.to_owned(),
    }
}

/// Mints access tokens with the api's own key, as the api would (or with
/// claims it never would).
struct Mint {
    private_pem: String,
    verifier: TokenVerifier,
}

impl Mint {
    fn new(cluster: &TestCluster) -> Self {
        let dir = cluster.data_dir();
        let private_pem = read_key(&dir.join("jwt-private.pem")).unwrap();
        let public_pem = read_key(&dir.join("jwt-public.pem")).unwrap();
        let defaults = GatewayConfig::default();
        let scope = scope(&defaults.common.jwt_issuer, &defaults.common.jwt_audience);
        let verifier = TokenVerifier::new(public_pem.as_bytes(), &scope).unwrap();
        Self {
            private_pem,
            verifier,
        }
    }

    /// The claims of the user's api-issued token (their session).
    fn claims(&self, user: &User) -> Claims {
        self.verifier.verify(&user.token).unwrap()
    }

    /// A token for the user's session that lives `ttl`, and its `exp`.
    fn token(&self, user: &User, ttl: Duration) -> (String, i64) {
        let claims = self.claims(user);
        let issuer = TokenIssuer::new(
            self.private_pem.as_bytes(),
            scope(&claims.iss, &claims.aud),
            ttl,
        )
        .unwrap();
        let (token, expires) = issuer.issue(claims.sub, &claims.name, claims.sid).unwrap();
        (token, expires.unix_timestamp())
    }

    /// A token with our key and the given issuer and audience.
    fn scoped(&self, user: &User, issuer: &str, audience: &str) -> String {
        let claims = self.claims(user);
        let scope = scope(issuer, audience);
        let issuer =
            TokenIssuer::new(self.private_pem.as_bytes(), scope, Duration::from_secs(60)).unwrap();
        issuer
            .issue(claims.sub, &claims.name, claims.sid)
            .unwrap()
            .0
    }

    /// A token with our key that expired a minute ago (well past the
    /// verifiers' leeway).
    fn expired(&self, user: &User) -> String {
        let now = unix_now();
        let claims = Claims {
            iat: now - 120,
            exp: now - 60,
            ..self.claims(user)
        };
        let key = jsonwebtoken::EncodingKey::from_ed_pem(self.private_pem.as_bytes()).unwrap();
        let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        jsonwebtoken::encode(&header, &claims, &key).unwrap()
    }
}

/// A well-formed token for the same user and session, signed by a key the
/// cluster never saw.
fn foreign_key_token(claims: &Claims) -> String {
    let keys = KeyPair::generate().unwrap();
    let issuer = TokenIssuer::new(
        keys.private_pem.as_bytes(),
        scope(&claims.iss, &claims.aud),
        Duration::from_secs(60),
    )
    .unwrap();
    issuer
        .issue(claims.sub, &claims.name, claims.sid)
        .unwrap()
        .0
}

/// The gateway's own listener applies the per-address cap before any
/// handler (chat's tests flood it harder): idle connections from one
/// address stop at the cap, a WebSocket counts against it, and another
/// address is served meanwhile.
async fn one_address_cannot_take_every_connection_of_a_gateway(setup: Setup) {
    use tokio::io::AsyncReadExt;
    const CAP: usize = 4;
    let cluster = TestCluster::start_with(setup, |c| {
        c.common.max_connections_per_address = CAP;
        c.common.header_read_timeout = Duration::from_secs(30);
    })
    .await;
    let alice = cluster.user("alice").await;
    let gateway = &cluster.gateways[0];
    let addr: std::net::SocketAddr = gateway
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let flooder = std::net::SocketAddr::from(([127, 0, 0, 2], 0));
    let mut idle = Vec::new();
    for _ in 0..CAP * 3 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(flooder).unwrap();
        idle.push(socket.connect(addr).await.unwrap());
    }
    let mut held = 0;
    for stream in &mut idle {
        // A refused one reads its end at once; a held one reads nothing.
        let mut buf = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_millis(300), stream.read(&mut buf));
        if read.await.is_err() {
            held += 1;
        }
    }
    assert_eq!(held, CAP, "idle connections from one address held");
    // 127.0.0.1 still gets its WebSocket.
    let client = cluster.connect(&alice, 0).await;
    assert_eq!(client.hello["user"]["id"], alice.id.as_str());
}
