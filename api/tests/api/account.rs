//! Account self-service: a password change needs the current password,
//! ends every other session and keeps the caller's; a display name change
//! follows registration's rules and shows wherever the user does. Every
//! refusal leaves the account as it was.

use chat_shared::testing::Backend;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both_stores;
use crate::helpers::{expect_error, expect_status, TestApi, TestUser, GENERAL};

both_stores!(
    a_password_change_ends_every_other_session,
    a_password_change_is_refused_without_the_current_password,
    a_password_change_refuses_a_new_password_registration_would,
    a_password_change_needs_a_live_session,
    guessing_the_current_password_is_rate_limited,
    a_display_name_change_shows_wherever_the_user_does,
    a_display_name_change_follows_registrations_rules,
    display_name_changes_have_a_budget,
);

/// Logs `username` in with `password`: the status only.
async fn login_status(api: &TestApi, username: &str, password: &str) -> StatusCode {
    api.request(Method::POST, "/v1/auth/login", None)
        .json(&json!({ "username": username, "password": password }))
        .send()
        .await
        .unwrap()
        .status()
}

/// Changes `user`'s password from the test kit's default.
async fn change_password(
    api: &TestApi,
    user: &TestUser,
    current: &str,
    new: &str,
) -> reqwest::Response {
    api.post(
        "/v1/account/password",
        user,
        json!({ "current_password": current, "new_password": new }),
    )
    .await
}

async fn a_password_change_ends_every_other_session(backend: Backend) {
    let api = TestApi::start(backend).await;
    let laptop = api.user("ann").await;
    let phone = api.login("ann").await;
    let tablet = api.login("ann").await;
    let bystander = api.user("ben").await;

    let response = change_password(&api, &laptop, "password-ann", "a brand new secret").await;
    expect_status(response, StatusCode::NO_CONTENT).await;

    // The caller stays in; the other devices are out, tokens and all.
    expect_status(api.get("/v1/users/me", &laptop).await, StatusCode::OK).await;
    for other in [&phone, &tablet] {
        expect_error(
            api.get("/v1/users/me", other).await,
            StatusCode::UNAUTHORIZED,
            "session_revoked",
        )
        .await;
        let response = api
            .request(Method::POST, "/v1/auth/refresh", None)
            .json(&json!({ "refresh_token": other.refresh }))
            .send()
            .await
            .unwrap();
        expect_error(response, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
    }
    let sessions = expect_status(api.get("/v1/auth/sessions", &laptop).await, StatusCode::OK).await;
    let sessions = sessions.as_array().unwrap();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert_eq!(sessions[0]["id"], laptop.session_id.as_str());

    // The old password no longer logs in; the new one does.
    assert_eq!(
        login_status(&api, "ann", "password-ann").await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login_status(&api, "ann", "a brand new secret").await,
        StatusCode::OK
    );
    // Someone else's account is untouched.
    expect_status(api.get("/v1/users/me", &bystander).await, StatusCode::OK).await;
    assert_eq!(
        login_status(&api, "ben", "password-ben").await,
        StatusCode::OK
    );
}

async fn a_password_change_is_refused_without_the_current_password(backend: Backend) {
    let api = TestApi::start(backend).await;
    let laptop = api.user("cat").await;
    let phone = api.login("cat").await;
    let before = api.snapshot().await;

    for wrong in ["password-cAt", "", &"x".repeat(300)] {
        let response = change_password(&api, &laptop, wrong, "a brand new secret").await;
        expect_error(response, StatusCode::FORBIDDEN, "wrong_password").await;
    }
    // A missing field is a bad body, not a wrong password.
    let response = api
        .post(
            "/v1/account/password",
            &laptop,
            json!({ "new_password": "a brand new secret" }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // Nothing changed: both sessions live, the old password works.
    assert_eq!(api.snapshot().await, before);
    expect_status(api.get("/v1/users/me", &phone).await, StatusCode::OK).await;
    assert_eq!(
        login_status(&api, "cat", "password-cat").await,
        StatusCode::OK
    );
    assert_eq!(
        login_status(&api, "cat", "a brand new secret").await,
        StatusCode::UNAUTHORIZED
    );
}

async fn a_password_change_refuses_a_new_password_registration_would(backend: Backend) {
    let api = TestApi::start(backend).await;
    let dan = api.user("dan").await;
    let phone = api.login("dan").await;
    let before = api.snapshot().await;

    for weak in ["short", "1234567", &"y".repeat(257)] {
        let response = change_password(&api, &dan, "password-dan", weak).await;
        let body = expect_error(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("password"),
            "{body}"
        );
    }
    assert_eq!(api.snapshot().await, before);
    expect_status(api.get("/v1/users/me", &phone).await, StatusCode::OK).await;
    assert_eq!(
        login_status(&api, "dan", "password-dan").await,
        StatusCode::OK
    );
}

async fn a_password_change_needs_a_live_session(backend: Backend) {
    let api = TestApi::start(backend).await;
    let eve = api.user("eve").await;
    let body = json!({ "current_password": "password-eve", "new_password": "a brand new secret" });

    // No token at all.
    let response = api
        .request(Method::POST, "/v1/account/password", None)
        .json(&body)
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::UNAUTHORIZED, "missing_token").await;

    // A session that was logged out (a stolen token that outlived it).
    let stolen = api.login("eve").await;
    let path = format!("/v1/auth/sessions/{}", stolen.session_id);
    expect_status(
        api.call(Method::DELETE, &path, &eve, None).await,
        StatusCode::NO_CONTENT,
    )
    .await;
    let response = api.post("/v1/account/password", &stolen, body).await;
    expect_error(response, StatusCode::UNAUTHORIZED, "session_revoked").await;

    assert_eq!(
        login_status(&api, "eve", "password-eve").await,
        StatusCode::OK
    );
    expect_status(api.get("/v1/users/me", &eve).await, StatusCode::OK).await;
}

async fn guessing_the_current_password_is_rate_limited(backend: Backend) {
    let api = TestApi::start_with(backend, |config| {
        config.auth_rate_per_minute = 1;
        config.auth_rate_burst = 3;
    })
    .await;
    // Registering spends one attempt of the address's three.
    let fox = api.user("fox").await;
    for guess in ["guess-one", "guess-two"] {
        let response = change_password(&api, &fox, guess, "a brand new secret").await;
        expect_error(response, StatusCode::FORBIDDEN, "wrong_password").await;
    }
    // Even the right password waits now: the allowance is a login's.
    let limited = change_password(&api, &fox, "password-fox", "a brand new secret").await;
    assert!(limited.headers().contains_key("retry-after"));
    expect_error(limited, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    // Nothing changed.
    let hash = api.store.credentials("fox").await.unwrap().unwrap();
    assert!(hash.password_hash.starts_with("$argon2id$"));
    let still = api.store.active_sessions(fox.user.id).await.unwrap();
    assert_eq!(still.len(), 1);
}

/// The display name `viewer` sees for `user` among `room`'s members.
async fn shown_name(api: &TestApi, viewer: &TestUser, room: &str, user: &TestUser) -> Value {
    let members = expect_status(
        api.get(&format!("/v1/rooms/{room}/members"), viewer).await,
        StatusCode::OK,
    )
    .await;
    members
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["user"]["id"] == user.user.id.to_string().as_str())
        .map(|m| m["user"]["display_name"].clone())
        .expect("a member")
}

async fn a_display_name_change_shows_wherever_the_user_does(backend: Backend) {
    let api = TestApi::start(backend).await;
    let gil = api.user("gil").await;
    let hana = api.user("hana").await;
    api.join(&gil, GENERAL).await;
    api.join(&hana, GENERAL).await;

    let response = api
        .call(
            Method::PATCH,
            "/v1/account/profile",
            &gil,
            Some(json!({ "display_name": "  Gil the Great 🎉 " })),
        )
        .await;
    let user = expect_status(response, StatusCode::OK).await;
    assert_eq!(user["display_name"], "Gil the Great 🎉", "trimmed");
    assert_eq!(user["username"], "gil", "the login name stays");

    let me = expect_status(api.get("/v1/users/me", &gil).await, StatusCode::OK).await;
    assert_eq!(me["display_name"], "Gil the Great 🎉");
    assert_eq!(
        shown_name(&api, &hana, GENERAL, &gil).await,
        "Gil the Great 🎉"
    );
    let found = expect_status(api.get("/v1/users?q=great", &hana).await, StatusCode::OK).await;
    assert_eq!(found[0]["username"], "gil");
    assert_eq!(shown_name(&api, &gil, GENERAL, &hana).await, "hana");

    // One's own username, in any case, is a display name one may take.
    let response = api
        .call(
            Method::PATCH,
            "/v1/account/profile",
            &gil,
            Some(json!({ "display_name": "GIL" })),
        )
        .await;
    assert_eq!(
        expect_status(response, StatusCode::OK).await["display_name"],
        "GIL"
    );
}

async fn a_display_name_change_follows_registrations_rules(backend: Backend) {
    let api = TestApi::start(backend).await;
    let ida = api.user("ida").await;
    api.user("admin").await;
    let before = api.snapshot().await;
    let change = |name: &str| {
        api.call(
            Method::PATCH,
            "/v1/account/profile",
            &ida,
            Some(json!({ "display_name": name })),
        )
    };

    // Another user's username, in any case, would pass for them.
    let response = change("Admin").await;
    expect_error(response, StatusCode::CONFLICT, "display_name_taken").await;
    for bad in ["", "   ", "\u{202E}nimda", "a\u{200B}b", &"z".repeat(65)] {
        let response = change(bad).await;
        expect_error(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
    }
    let response = api
        .request(Method::PATCH, "/v1/account/profile", None)
        .json(&json!({ "display_name": "Nobody" }))
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::UNAUTHORIZED, "missing_token").await;
    assert_eq!(api.snapshot().await, before);
}

async fn display_name_changes_have_a_budget(backend: Backend) {
    let api = TestApi::start_with(backend, |config| {
        config.action_rate_per_minute = 1;
        config.action_burst = 2;
    })
    .await;
    let joe = api.user("joe").await;
    for name in ["Joe One", "Joe Two"] {
        let response = api
            .call(
                Method::PATCH,
                "/v1/account/profile",
                &joe,
                Some(json!({ "display_name": name })),
            )
            .await;
        expect_status(response, StatusCode::OK).await;
    }
    let response = api
        .call(
            Method::PATCH,
            "/v1/account/profile",
            &joe,
            Some(json!({ "display_name": "Joe Three" })),
        )
        .await;
    assert!(response.headers().contains_key("retry-after"));
    expect_error(response, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    let me = expect_status(api.get("/v1/users/me", &joe).await, StatusCode::OK).await;
    assert_eq!(me["display_name"], "Joe Two");
}
