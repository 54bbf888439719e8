//! Registration, login, refresh rotation and reuse detection, logout,
//! sessions, rate limiting.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both_stores;
use crate::helpers::{expect_error, expect_status, TestApi};
use chat_shared::testing::Backend;

both_stores!(
    register_then_login_and_see_myself,
    usernames_are_unique_ignoring_case,
    wrong_password_and_unknown_user_look_the_same,
    registration_rejects_invalid_fields,
    refresh_rotates_the_tokens,
    a_reused_refresh_token_revokes_the_whole_session,
    logout_ends_the_session_now,
    sessions_are_listed_and_revocable,
    credential_endpoints_are_rate_limited,
    display_names_cannot_pass_for_another_user,
);

async fn register_then_login_and_see_myself(backend: Backend) {
    let api = TestApi::start(backend).await;
    let alice = api.user("alice").await;
    assert_eq!(alice.user.username, "alice");

    let me = expect_status(api.get("/v1/users/me", &alice).await, StatusCode::OK).await;
    assert_eq!(me["id"], alice.user.id.to_string());

    // Login is case-insensitive on the username and opens a second session.
    let response = api
        .request(Method::POST, "/v1/auth/login", None)
        .json(&json!({ "username": "ALICE", "password": "password-alice" }))
        .send()
        .await
        .unwrap();
    let body = expect_status(response, StatusCode::OK).await;
    assert_eq!(body["user"]["id"], alice.user.id.to_string());
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_ne!(body["session_id"], alice.session_id);
}

async fn usernames_are_unique_ignoring_case(backend: Backend) {
    let api = TestApi::start(backend).await;
    api.user("Bob").await;
    let before = api.snapshot().await;
    let response = api
        .request(Method::POST, "/v1/auth/register", None)
        .json(&json!({ "username": "bob", "password": "another-password" }))
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::CONFLICT, "username_taken").await;
    assert_eq!(api.snapshot().await, before);
}

async fn wrong_password_and_unknown_user_look_the_same(backend: Backend) {
    let api = TestApi::start(backend).await;
    api.user("carol").await;
    let attempt = |username: &'static str, password: &'static str| {
        api.request(Method::POST, "/v1/auth/login", None)
            .json(&json!({ "username": username, "password": password }))
            .send()
    };
    let wrong = expect_error(
        attempt("carol", "not-her-password").await.unwrap(),
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    let unknown = expect_error(
        attempt("nobody", "not-her-password").await.unwrap(),
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    assert_eq!(wrong, unknown);
}

async fn registration_rejects_invalid_fields(backend: Backend) {
    let api = TestApi::start(backend).await;
    let before = api.snapshot().await;
    for body in [
        json!({ "username": "ok_name", "password": "short" }),
        json!({ "username": "x", "password": "long-enough-password" }),
        json!({ "username": "has space", "password": "long-enough-password" }),
        json!({ "username": "ok_name", "password": "p".repeat(300) }),
        json!({ "username": "ok_name", "password": "long-enough-password", "display_name": "" }),
        json!({ "username": "ok_name" }),
    ] {
        let response = api
            .request(Method::POST, "/v1/auth/register", None)
            .json(&body)
            .send()
            .await
            .unwrap();
        expect_error(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
    }
    assert_eq!(api.snapshot().await, before);
}

async fn refresh_rotates_the_tokens(backend: Backend) {
    let api = TestApi::start(backend).await;
    let dave = api.user("dave").await;
    let response = api
        .request(Method::POST, "/v1/auth/refresh", None)
        .json(&json!({ "refresh_token": dave.refresh }))
        .send()
        .await
        .unwrap();
    let body = expect_status(response, StatusCode::OK).await;
    assert_ne!(body["refresh_token"], dave.refresh.as_str());
    assert_eq!(body["session_id"], dave.session_id.as_str());
    let next = dave.clone();
    let next = crate::helpers::TestUser {
        access: body["access_token"].as_str().unwrap().into(),
        refresh: body["refresh_token"].as_str().unwrap().into(),
        ..next
    };
    expect_status(api.get("/v1/users/me", &next).await, StatusCode::OK).await;
    // The new refresh token works in turn.
    let response = api
        .request(Method::POST, "/v1/auth/refresh", None)
        .json(&json!({ "refresh_token": next.refresh }))
        .send()
        .await
        .unwrap();
    expect_status(response, StatusCode::OK).await;
}

async fn a_reused_refresh_token_revokes_the_whole_session(backend: Backend) {
    let api = TestApi::start(backend).await;
    let erin = api.user("erin").await;
    let refresh = |token: String| {
        api.request(Method::POST, "/v1/auth/refresh", None)
            .json(&json!({ "refresh_token": token }))
            .send()
    };
    let rotated = expect_status(refresh(erin.refresh.clone()).await.unwrap(), StatusCode::OK).await;

    // The spent token comes back (stolen, or replayed): the family dies.
    expect_error(
        refresh(erin.refresh.clone()).await.unwrap(),
        StatusCode::UNAUTHORIZED,
        "refresh_token_reused",
    )
    .await;
    // ...including the legitimate newest token and every access token.
    let newest = rotated["refresh_token"].as_str().unwrap().to_owned();
    expect_error(
        refresh(newest).await.unwrap(),
        StatusCode::UNAUTHORIZED,
        "invalid_refresh_token",
    )
    .await;
    expect_error(
        api.get("/v1/users/me", &erin).await,
        StatusCode::UNAUTHORIZED,
        "session_revoked",
    )
    .await;

    // A token nobody issued is simply invalid.
    expect_error(
        refresh("not-a-token".into()).await.unwrap(),
        StatusCode::UNAUTHORIZED,
        "invalid_refresh_token",
    )
    .await;
}

async fn logout_ends_the_session_now(backend: Backend) {
    let api = TestApi::start(backend).await;
    let fay = api.user("fay").await;
    let other = api.login("fay").await;
    let response = api.call(Method::POST, "/v1/auth/logout", &fay, None).await;
    expect_status(response, StatusCode::NO_CONTENT).await;
    expect_error(
        api.get("/v1/users/me", &fay).await,
        StatusCode::UNAUTHORIZED,
        "session_revoked",
    )
    .await;
    let response = api
        .request(Method::POST, "/v1/auth/refresh", None)
        .json(&json!({ "refresh_token": fay.refresh }))
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
    // Another device stays logged in.
    expect_status(api.get("/v1/users/me", &other).await, StatusCode::OK).await;
}

async fn sessions_are_listed_and_revocable(backend: Backend) {
    let api = TestApi::start(backend).await;
    let phone = api.user("gus").await;
    let laptop = api.login("gus").await;
    let intruder = api.user("hal").await;

    let list = expect_status(api.get("/v1/auth/sessions", &laptop).await, StatusCode::OK).await;
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    let current: Vec<_> = list.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["id"], laptop.session_id.as_str());

    // Someone else cannot end my session.
    let path = format!("/v1/auth/sessions/{}", phone.session_id);
    let response = api.call(Method::DELETE, &path, &intruder, None).await;
    expect_error(response, StatusCode::NOT_FOUND, "not_found").await;
    expect_status(api.get("/v1/users/me", &phone).await, StatusCode::OK).await;

    // I can end the lost phone's session from the laptop.
    let response = api.call(Method::DELETE, &path, &laptop, None).await;
    expect_status(response, StatusCode::NO_CONTENT).await;
    expect_error(
        api.get("/v1/users/me", &phone).await,
        StatusCode::UNAUTHORIZED,
        "session_revoked",
    )
    .await;
    let list = expect_status(api.get("/v1/auth/sessions", &laptop).await, StatusCode::OK).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    let response = api.call(Method::DELETE, &path, &laptop, None).await;
    expect_error(response, StatusCode::NOT_FOUND, "not_found").await;
}

async fn credential_endpoints_are_rate_limited(backend: Backend) {
    let api = TestApi::start_with(backend, |config| {
        config.auth_rate_per_minute = 1;
        config.auth_rate_burst = 3;
    })
    .await;
    let attempt = || {
        api.request(Method::POST, "/v1/auth/login", None)
            .json(&json!({ "username": "ivy", "password": "guess-guess" }))
            .send()
    };
    for _ in 0..3 {
        assert_eq!(attempt().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    }
    let limited = attempt().await.unwrap();
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    expect_error(limited, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    // Registration shares the budget; the rest of the api does not.
    let response = api
        .request(Method::POST, "/v1/auth/register", None)
        .json(&json!({ "username": "ivy", "password": "long-enough" }))
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    let response = api
        .request(Method::GET, "/healthz", None)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

async fn display_names_cannot_pass_for_another_user(backend: Backend) {
    let api = TestApi::start(backend).await;
    api.user("alice").await;
    let before = api.snapshot().await;
    let register = |username: &str, display_name: &str| {
        api.request(Method::POST, "/v1/auth/register", None)
            .json(&json!({
                "username": username,
                "password": "long enough",
                "display_name": display_name,
            }))
            .send()
    };
    // Another user's username, in any case.
    for taken in ["alice", "ALICE", " Alice "] {
        let response = register("mallory", taken).await.unwrap();
        expect_error(response, StatusCode::CONFLICT, "display_name_taken").await;
    }
    // Characters that hide or reorder what is shown.
    for hidden in [
        "\u{202E}ecila",
        "al\u{200B}ice",
        "alice\u{2028}admin",
        "\u{2066}bob\u{2069}",
        "\u{200B}",
        "Alice\u{FE0F}",
    ] {
        let response = register("mallory", hidden).await.unwrap();
        expect_error(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
    }
    assert_eq!(
        api.snapshot().await,
        before,
        "a refused registration stored something"
    );
    // One's own username, in any case, is fine; so are emoji and accents.
    for (username, shown) in [("bob", "BOB"), ("zoe", "Zoë ❤️"), ("dev", "👩‍💻 Dev")] {
        let response = register(username, shown).await.unwrap();
        let body = expect_status(response, StatusCode::CREATED).await;
        assert_eq!(body["user"]["display_name"], shown);
    }
}
