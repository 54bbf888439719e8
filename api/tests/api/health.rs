//! Probes and the OpenAPI document.

use reqwest::{Method, StatusCode};

use crate::both_stores;
use crate::helpers::{expect_error, expect_status, TestApi};
use chat_shared::testing::Backend;

both_stores!(
    probes_answer,
    openapi_describes_every_route,
    unknown_routes_get_the_error_shape
);

async fn probes_answer(backend: Backend) {
    let api = TestApi::start(backend).await;
    for path in ["/healthz", "/readyz"] {
        let response = api.request(Method::GET, path, None).send().await.unwrap();
        assert!(response.headers().contains_key("x-request-id"));
        // No answer of the api is sniffed, framed or leaks a referrer.
        for (name, value) in [
            ("x-content-type-options", "nosniff"),
            (
                "content-security-policy",
                "default-src 'none'; frame-ancestors 'none'",
            ),
            ("referrer-policy", "no-referrer"),
        ] {
            assert_eq!(response.headers()[name], value, "{path}: {name}");
        }
        expect_status(response, StatusCode::OK).await;
    }
}

async fn openapi_describes_every_route(backend: Backend) {
    let api = TestApi::start(backend).await;
    let response = api
        .request(Method::GET, "/v1/openapi.json", None)
        .send()
        .await
        .unwrap();
    let doc = expect_status(response, StatusCode::OK).await;
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/v1/auth/register", "post"),
        ("/v1/auth/login", "post"),
        ("/v1/auth/refresh", "post"),
        ("/v1/auth/logout", "post"),
        ("/v1/auth/sessions", "get"),
        ("/v1/auth/sessions/{id}", "delete"),
        ("/v1/users/me", "get"),
        ("/v1/users", "get"),
        ("/v1/rooms", "get"),
        ("/v1/rooms", "post"),
        ("/v1/rooms/public", "get"),
        ("/v1/rooms/{id}", "get"),
        ("/v1/rooms/{id}", "patch"),
        ("/v1/rooms/{id}", "delete"),
        ("/v1/rooms/{id}/join", "post"),
        ("/v1/rooms/{id}/leave", "post"),
        ("/v1/rooms/{id}/read", "post"),
        ("/v1/rooms/{id}/members", "get"),
        ("/v1/rooms/{id}/members", "post"),
        ("/v1/rooms/{id}/members/{user_id}", "delete"),
        ("/v1/rooms/{id}/members/{user_id}/role", "put"),
        ("/v1/rooms/{id}/bans", "get"),
        ("/v1/rooms/{id}/bans/{user_id}", "put"),
        ("/v1/rooms/{id}/bans/{user_id}", "delete"),
        ("/v1/dms", "post"),
        ("/v1/dms/{id}/accept", "post"),
        ("/v1/dms/{id}/decline", "post"),
        ("/v1/dms/{id}/close", "post"),
        ("/v1/users/me/blocks", "get"),
        ("/v1/users/me/blocks/{user_id}", "put"),
        ("/v1/users/me/blocks/{user_id}", "delete"),
        ("/v1/rooms/{id}/events", "get"),
        ("/v1/rooms/{id}/messages", "post"),
        ("/v1/rooms/{id}/messages/{message_id}", "patch"),
        ("/v1/rooms/{id}/messages/{message_id}", "delete"),
        (
            "/v1/rooms/{id}/messages/{message_id}/reactions/{emoji}",
            "put",
        ),
        (
            "/v1/rooms/{id}/messages/{message_id}/reactions/{emoji}",
            "delete",
        ),
        ("/v1/rooms/{id}/pins", "get"),
        ("/v1/rooms/{id}/pins/{message_id}", "put"),
        ("/v1/rooms/{id}/pins/{message_id}", "delete"),
        ("/v1/rooms/{id}/timeline", "get"),
        ("/v1/search", "get"),
        ("/v1/calls/ice-servers", "get"),
        ("/healthz", "get"),
        ("/readyz", "get"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} missing"
        );
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    // A search hit's marks are described as data: text and a flag.
    let part = &doc["components"]["schemas"]["HighlightPart"]["properties"];
    assert_eq!(part["text"]["type"], "string", "{part}");
    assert_eq!(part["match"]["type"], "boolean", "{part}");
}

async fn unknown_routes_get_the_error_shape(backend: Backend) {
    let api = TestApi::start(backend).await;
    let response = api
        .request(Method::GET, "/v1/nowhere", None)
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::NOT_FOUND, "not_found").await;
}
