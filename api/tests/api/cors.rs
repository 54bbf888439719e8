//! Cross-origin access (`CHAT_CORS_ORIGINS`): a listed origin's page may
//! call the api, preflights included; any other origin gets no CORS
//! headers (so the browser refuses it the answer); unset, nobody does.

use chat_shared::testing::Backend;
use reqwest::{Method, StatusCode};

use crate::both_stores;
use crate::helpers::{expect_status, TestApi};

both_stores!(
    a_listed_origin_reads_answers_and_its_preflight_is_answered,
    an_unlisted_origin_gets_no_cors_headers,
    with_no_origins_listed_nothing_cross_origin_is_answered,
);

const CLIENT: &str = "https://client.example.org";

async fn start(backend: Backend) -> TestApi {
    TestApi::start_with(backend, |config| {
        config.cors_origins = format!("{CLIENT}, http://127.0.0.1:3000");
    })
    .await
}

fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

async fn a_listed_origin_reads_answers_and_its_preflight_is_answered(backend: Backend) {
    let api = start(backend).await;
    let ann = api.user("ann").await;

    // The preflight of a JSON POST with a bearer token.
    let preflight = api
        .request(Method::OPTIONS, "/v1/account/password", None)
        .header("origin", CLIENT)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), StatusCode::OK);
    assert_eq!(
        header(&preflight, "access-control-allow-origin").as_deref(),
        Some(CLIENT)
    );
    let methods = header(&preflight, "access-control-allow-methods").unwrap();
    assert!(
        methods.contains("POST") && methods.contains("PATCH"),
        "{methods}"
    );
    let headers = header(&preflight, "access-control-allow-headers")
        .unwrap()
        .to_lowercase();
    assert!(
        headers.contains("authorization") && headers.contains("content-type"),
        "{headers}"
    );
    assert!(header(&preflight, "access-control-max-age").is_some());
    assert!(header(&preflight, "access-control-allow-credentials").is_none());

    // The request itself, and a refusal too, carry the origin.
    let response = api
        .request(Method::GET, "/v1/users/me", Some(&ann))
        .header("origin", CLIENT)
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(&response, "access-control-allow-origin").as_deref(),
        Some(CLIENT)
    );
    assert!(header(&response, "vary")
        .unwrap()
        .to_lowercase()
        .contains("origin"));
    let exposed = header(&response, "access-control-expose-headers")
        .unwrap()
        .to_lowercase();
    assert!(exposed.contains("retry-after"), "{exposed}");
    let me = expect_status(response, StatusCode::OK).await;
    assert_eq!(me["username"], "ann");
    let refused = api
        .request(Method::GET, "/v1/users/me", None)
        .header("origin", "http://127.0.0.1:3000")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        header(&refused, "access-control-allow-origin").as_deref(),
        Some("http://127.0.0.1:3000")
    );
}

async fn an_unlisted_origin_gets_no_cors_headers(backend: Backend) {
    let api = start(backend).await;
    let bea = api.user("bea").await;
    for origin in [
        "https://evil.example.org",
        "https://client.example.org:8443",
        "http://client.example.org",
    ] {
        let preflight = api
            .request(Method::OPTIONS, "/v1/users/me", None)
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
            .await
            .unwrap();
        assert!(
            header(&preflight, "access-control-allow-origin").is_none(),
            "{origin}"
        );
        let response = api
            .request(Method::GET, "/v1/users/me", Some(&bea))
            .header("origin", origin)
            .send()
            .await
            .unwrap();
        assert!(
            header(&response, "access-control-allow-origin").is_none(),
            "{origin}"
        );
    }
}

async fn with_no_origins_listed_nothing_cross_origin_is_answered(backend: Backend) {
    let api = TestApi::start(backend).await;
    let cy = api.user("cy_").await;
    let preflight = api
        .request(Method::OPTIONS, "/v1/users/me", None)
        .header("origin", CLIENT)
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(header(&preflight, "access-control-allow-origin").is_none());
    let response = api
        .request(Method::GET, "/v1/users/me", Some(&cy))
        .header("origin", CLIENT)
        .send()
        .await
        .unwrap();
    assert!(header(&response, "access-control-allow-origin").is_none());
    expect_status(response, StatusCode::OK).await;
}
