//! `GET /v1/calls/ice-servers`: logged in only; nothing configured, no
//! servers; STUN then TURN with credentials in the TURN REST API scheme,
//! recomputed here from the shared secret as coturn does; the relay policy
//! passed through; the action budget it draws on; its OpenAPI schema.

use std::time::Duration;

use base64::Engine as _;
use chat_api::{IceConfig, IceTransportPolicy};
use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::both_stores;
use crate::helpers::{expect_error, expect_status, TestApi, TestUser};
use chat_shared::testing::Backend;

both_stores!(
    only_a_logged_in_user_gets_ice_servers,
    nothing_configured_gives_no_servers,
    stun_then_turn_with_credentials_the_turn_server_can_recompute,
    the_relay_policy_is_passed_through,
    each_request_spends_the_action_budget,
    the_openapi_document_describes_the_answer,
);

const PATH: &str = "/v1/calls/ice-servers";
const SECRET: &str = "north-wind";

async fn ice_servers(api: &TestApi, user: &TestUser) -> Value {
    expect_status(api.get(PATH, user).await, StatusCode::OK).await
}

fn stun_and_turn(policy: IceTransportPolicy) -> IceConfig {
    IceConfig {
        stun_urls: "stun:stun.example.org:3478".into(),
        turn_urls:
            "turn:turn.example.org:3478?transport=udp, turns:turn.example.org:5349?transport=tcp"
                .into(),
        turn_secret: Some(SECRET.into()),
        turn_ttl: Duration::from_secs(3600),
        ice_transport_policy: policy,
    }
}

async fn only_a_logged_in_user_gets_ice_servers(backend: Backend) {
    let api = TestApi::start_with(backend, |config| {
        config.ice = stun_and_turn(IceTransportPolicy::All);
    })
    .await;
    let response = api.request(Method::GET, PATH, None).send().await.unwrap();
    expect_error(response, StatusCode::UNAUTHORIZED, "missing_token").await;
    let response = api
        .request(Method::GET, PATH, None)
        .bearer_auth("not-a-token")
        .send()
        .await
        .unwrap();
    expect_status(response, StatusCode::UNAUTHORIZED).await;
}

async fn nothing_configured_gives_no_servers(backend: Backend) {
    let api = TestApi::start(backend).await;
    let alice = api.user("alice").await;
    assert_eq!(
        ice_servers(&api, &alice).await,
        json!({"ice_servers": [], "ice_transport_policy": "all", "ttl_secs": 43_200})
    );
}

async fn stun_then_turn_with_credentials_the_turn_server_can_recompute(backend: Backend) {
    let api = TestApi::start_with(backend, |config| {
        config.ice = stun_and_turn(IceTransportPolicy::All);
    })
    .await;
    let alice = api.user("alice").await;
    let body = ice_servers(&api, &alice).await;
    let now = OffsetDateTime::now_utc().unix_timestamp();

    assert_eq!(body["ice_transport_policy"], "all");
    assert_eq!(body["ttl_secs"], 3600);
    let servers = body["ice_servers"].as_array().unwrap();
    assert_eq!(servers.len(), 2, "{body}");
    // STUN needs no credentials, and gets none.
    assert_eq!(servers[0], json!({"urls": ["stun:stun.example.org:3478"]}));
    let turn = &servers[1];
    assert_eq!(
        turn["urls"],
        json!([
            "turn:turn.example.org:3478?transport=udp",
            "turns:turn.example.org:5349?transport=tcp"
        ])
    );

    // `<unix expiry>:<user id>`, the expiry an hour (CHAT_TURN_TTL) away.
    let username = turn["username"].as_str().unwrap();
    let (expiry, user) = username.split_once(':').unwrap();
    assert_eq!(user, alice.user.id.to_string());
    let expiry: i64 = expiry.parse().unwrap();
    assert!((expiry - (now + 3600)).abs() <= 5, "{expiry} vs {now}");

    // What coturn's `use-auth-secret` computes from the username.
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(username.as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    assert_eq!(turn["credential"], expected);

    // Each user gets their own.
    let bob = api.user("bob").await;
    let theirs = ice_servers(&api, &bob).await;
    assert!(theirs["ice_servers"][1]["username"]
        .as_str()
        .unwrap()
        .ends_with(&bob.user.id.to_string()));
    assert_ne!(theirs["ice_servers"][1]["credential"], turn["credential"]);
}

async fn the_relay_policy_is_passed_through(backend: Backend) {
    let api = TestApi::start_with(backend, |config| {
        config.ice = IceConfig {
            stun_urls: String::new(),
            ..stun_and_turn(IceTransportPolicy::Relay)
        };
    })
    .await;
    let alice = api.user("alice").await;
    let body = ice_servers(&api, &alice).await;
    assert_eq!(body["ice_transport_policy"], "relay");
    // No STUN configured: the TURN entry alone.
    let servers = body["ice_servers"].as_array().unwrap();
    assert_eq!(servers.len(), 1, "{body}");
    assert!(servers[0]["credential"].is_string());
}

async fn each_request_spends_the_action_budget(backend: Backend) {
    let api = TestApi::start_with(backend, |config| {
        config.action_rate_per_minute = 1;
        config.action_burst = 2;
    })
    .await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    ice_servers(&api, &alice).await;
    ice_servers(&api, &alice).await;
    expect_error(
        api.get(PATH, &alice).await,
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
    )
    .await;
    // Budgets are per user.
    ice_servers(&api, &bob).await;
}

async fn the_openapi_document_describes_the_answer(backend: Backend) {
    let api = TestApi::start(backend).await;
    let response = api
        .request(Method::GET, "/v1/openapi.json", None)
        .send()
        .await
        .unwrap();
    let doc = expect_status(response, StatusCode::OK).await;
    let schemas = &doc["components"]["schemas"];
    let answer = &schemas["IceServers"]["properties"];
    for field in ["ice_servers", "ice_transport_policy", "ttl_secs"] {
        assert!(answer[field].is_object(), "{field}: {answer}");
    }
    assert_eq!(
        schemas["IceTransportPolicy"]["enum"],
        json!(["all", "relay"]),
        "{schemas}"
    );
    assert!(schemas["IceServer"]["properties"]["credential"].is_object());
}
