//! The all-in-one binary as a newcomer meets it: a fresh data dir, one
//! port serving the web client, the api and the WebSocket, and data and
//! sessions that survive a restart.

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

use crate::harness::Running;

#[tokio::test]
async fn a_fresh_data_dir_gives_a_working_system_on_one_port() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let chat = Running::start(&data_dir, |settings| {
        settings.chat.metrics_addr = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    })
    .await;
    for file in ["chat.db", "jwt-private.pem", "jwt-public.pem"] {
        assert!(data_dir.join(file).exists(), "{file} was not created");
    }
    // The database holds password and refresh-token hashes: its owner's
    // alone, and so are SQLite's files beside it.
    #[cfg(unix)]
    for file in ["chat.db", "chat.db-wal", "chat.db-shm", "jwt-private.pem"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data_dir.join(file))
            .unwrap_or_else(|e| panic!("{file}: {e}"))
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file} is {:o}", mode & 0o777);
    }

    // The web client at `/`.
    let page = reqwest::get(format!("{}/", chat.base)).await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("chat-client.js") || html.contains("app.js"),
        "{html}"
    );
    // The page's headers: it may talk to its own origin only (config.json
    // names no gateway), and may not be framed or sniffed.
    for file in ["/", "/app.js", "/config.json"] {
        let response = reqwest::get(format!("{}{file}", chat.base)).await.unwrap();
        assert_eq!(response.status(), 200, "{file}");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let policy = header("content-security-policy");
        assert!(policy.contains("connect-src 'self';"), "{file}: {policy}");
        assert!(
            policy.contains("frame-ancestors 'none'"),
            "{file}: {policy}"
        );
        assert_eq!(header("x-content-type-options"), "nosniff", "{file}");
        assert_eq!(header("referrer-policy"), "no-referrer", "{file}");
    }
    // Only the page's own files: not the folder's tests or packages.
    for hidden in [
        "/package.json",
        "/package-lock.json",
        "/tests/e2e.mjs",
        "/node_modules/.package-lock.json",
        "/../Cargo.toml",
    ] {
        let response = reqwest::get(format!("{}{hidden}", chat.base))
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{hidden} is served");
    }
    // The api's namespace answers in the one error shape, for a route it
    // does not have and for a method a route does not take.
    let client = reqwest::Client::new();
    for (method, path, status, code) in [
        (reqwest::Method::GET, "/v1/nothing-here", 404, "not_found"),
        (
            reqwest::Method::DELETE,
            "/v1/auth/login",
            405,
            "method_not_allowed",
        ),
    ] {
        let response = client
            .request(method, format!("{}{path}", chat.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{path}: {body}");
    }

    // The api under /v1, the WebSocket at /v1/ws, same origin.
    let (status, body) = chat
        .post(
            "/v1/auth/register",
            None,
            json!({ "username": "newcomer", "password": "first-start" }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let token = body["access_token"].as_str().unwrap().to_owned();
    let general = "00000000-0000-7000-8000-000000000001";
    let (status, _) = chat
        .post(
            &format!("/v1/rooms/{general}/join"),
            Some(&token),
            json!({}),
        )
        .await;
    assert_eq!(status, 201);

    let ws_url = chat.base.replacen("http", "ws", 1) + "/v1/ws";
    let mut request = ws_url.into_client_request().unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_str(&format!("chat.v1, bearer.{token}")).unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let send =
        json!({ "type": "send", "room_id": general, "client_id": "hello-1", "body": "hello" });
    ws.send(Message::text(send.to_string())).await.unwrap();
    let mut acked = false;
    let mut delivered = false;
    while !(acked && delivered) {
        let frame = tokio::time::timeout(std::time::Duration::from_secs(10), ws.next())
            .await
            .expect("a frame in time")
            .expect("the socket stays open")
            .unwrap();
        let Message::Text(text) = frame else { continue };
        let frame: Value = serde_json::from_str(&text).unwrap();
        acked |= frame["type"] == "ack" && frame["client_id"] == "hello-1";
        delivered |= frame["type"] == "message" && frame["body"] == "hello";
    }
    // Not on the public port: metrics are the operator's.
    let public = reqwest::get(format!("{}/metrics", chat.base))
        .await
        .unwrap();
    assert_eq!(public.status(), 404);
    // One `/metrics` for the whole process, on CHAT_METRICS_ADDR: the api's
    // series and the gateway's side by side.
    let metrics_addr = chat.metrics.expect("CHAT_METRICS_ADDR was set");
    let response = reqwest::get(format!("http://{metrics_addr}/metrics"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4"
    );
    let metrics = response.text().await.unwrap();
    for series in [
        r#"chat_http_requests_total{method="POST",route="/v1/auth/register",status="201"}"#,
        r#"chat_gateway_frames_in_total{type="send"}"#,
        "chat_gateway_connections ",
    ] {
        assert!(metrics.contains(series), "{series} missing:\n{metrics}");
    }
    drop(ws);
    chat.stop().await;
}

#[tokio::test]
async fn a_second_start_reuses_the_data_and_the_keys() {
    let dir = tempfile::tempdir().unwrap();
    let first = Running::start(dir.path(), |_| {}).await;
    let (status, body) = first
        .post(
            "/v1/auth/register",
            None,
            json!({ "username": "returning", "password": "survives-restart" }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let token = body["access_token"].as_str().unwrap().to_owned();
    let user_id = body["user"]["id"].clone();
    first.stop().await;

    let second = Running::start(dir.path(), |_| {}).await;
    // The same key pair: the token from before the restart still works.
    let (status, me) = second.get("/v1/users/me", &token).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["id"], user_id);
    // The same database: the account can log in again.
    let (status, body) = second
        .post(
            "/v1/auth/login",
            None,
            json!({ "username": "returning", "password": "survives-restart" }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["id"], user_id);
    second.stop().await;
}
