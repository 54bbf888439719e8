//! `GET /metrics`: requests counted by route template, store calls timed,
//! limits counted. One recorder serves every server of this test process,
//! so each check compares values before and after its own requests.

use chat_shared::testing::{metric, Backend};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both_stores;
use crate::helpers::{expect_error, TestApi};

both_stores!(
    requests_are_counted_by_route_template_and_store_calls_timed,
    refused_credentials_count_as_rate_limited,
);

/// The api's `/metrics` text, after checking its content type.
async fn scrape(api: &TestApi) -> String {
    let response = api
        .request(Method::GET, "/metrics", None)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4"
    );
    assert!(response.headers().contains_key("x-request-id"));
    response.text().await.unwrap()
}

async fn requests_are_counted_by_route_template_and_store_calls_timed(backend: Backend) {
    let api = TestApi::start(backend).await;
    let requests = "chat_http_requests_total";
    let registered = [
        ("method", "POST"),
        ("route", "/v1/auth/register"),
        ("status", "201"),
    ];
    let refused = [
        ("method", "POST"),
        ("route", "/v1/auth/login"),
        ("status", "401"),
    ];
    let room_route = [("method", "GET"), ("route", "/v1/rooms/{id}")];
    let timed = |op| [("op", op)];
    let before = scrape(&api).await;

    let alice = api.user("alice").await;
    let response = api
        .request(Method::POST, "/v1/auth/login", None)
        .json(&json!({ "username": "alice", "password": "not her password" }))
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let missing = uuid::Uuid::now_v7().to_string();
    let response = api.get(&format!("/v1/rooms/{missing}"), &alice).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    let after = scrape(&api).await;
    let grew = |name: &str, labels: &[(&str, &str)]| {
        metric(&after, name, labels) - metric(&before, name, labels)
    };
    assert!(grew(requests, &registered) >= 1.0, "{after}");
    assert!(grew(requests, &refused) >= 1.0, "{after}");
    assert!(grew(requests, &room_route) >= 1.0, "{after}");
    assert!(grew("chat_http_request_seconds_count", &registered[..2]) >= 1.0);
    // The raw path never becomes a label.
    assert!(!after.contains(&missing), "a raw path leaked into a label");
    // Register wrote the user, login read the credentials.
    let store = "chat_store_query_seconds_count";
    assert!(grew(store, &timed("create_user")) >= 1.0, "{after}");
    assert!(grew(store, &timed("credentials")) >= 1.0, "{after}");
    assert!(
        metric(
            &after,
            "chat_store_query_seconds_bucket",
            &[("op", "credentials"), ("le", "10")]
        ) >= 1.0
    );
}

async fn refused_credentials_count_as_rate_limited(backend: Backend) {
    let api = TestApi::start_with(backend, |config| {
        config.auth_rate_per_minute = 1;
        config.auth_rate_burst = 1;
    })
    .await;
    let scope = [("scope", "credentials")];
    let before = metric(&scrape(&api).await, "chat_rate_limited_total", &scope);
    for expected in [StatusCode::UNAUTHORIZED, StatusCode::TOO_MANY_REQUESTS] {
        let response = api
            .request(Method::POST, "/v1/auth/login", None)
            .json(&json!({ "username": "ivy", "password": "guess-guess" }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), expected);
    }
    let after = metric(&scrape(&api).await, "chat_rate_limited_total", &scope);
    assert!(after - before >= 1.0, "{before} → {after}");
}
