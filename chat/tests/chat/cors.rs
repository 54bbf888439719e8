//! `CHAT_CORS_ORIGINS` on the all-in-one binary: its api routes answer a
//! listed origin's preflight and requests, beside the web client and the
//! WebSocket on the same port; an unlisted origin gets no CORS headers.

use crate::harness::Running;

const CLIENT: &str = "https://client.example.org";

#[tokio::test]
async fn the_api_of_chat_answers_a_listed_origin_only() {
    let dir = tempfile::tempdir().unwrap();
    let chat = Running::start(&dir.path().join("data"), |settings| {
        settings.api.cors_origins = CLIENT.to_owned();
    })
    .await;
    let http = reqwest::Client::new();
    let preflight = |origin: &'static str| {
        http.request(
            reqwest::Method::OPTIONS,
            format!("{}/v1/auth/login", chat.base),
        )
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
    };

    let allowed = preflight(CLIENT).await.unwrap();
    assert_eq!(allowed.status(), 200);
    assert_eq!(allowed.headers()["access-control-allow-origin"], CLIENT);
    let login = http
        .post(format!("{}/v1/auth/login", chat.base))
        .header("origin", CLIENT)
        .json(&serde_json::json!({"username": "nobody", "password": "whatever1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 401);
    assert_eq!(login.headers()["access-control-allow-origin"], CLIENT);

    let refused = preflight("https://evil.example.org").await.unwrap();
    assert!(refused
        .headers()
        .get("access-control-allow-origin")
        .is_none());
    chat.stop().await;
}
