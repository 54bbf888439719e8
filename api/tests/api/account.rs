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
    deleting_an_account_erases_it_and_keeps_its_messages,
    a_deleted_accounts_rooms_are_handed_over_or_deleted,
    a_deletion_is_refused_without_the_password,
    a_deleted_account_cannot_be_invited_or_messaged,
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

/// Deletes `user`'s account with `password`.
async fn delete_account(api: &TestApi, user: &TestUser, password: &str) -> reqwest::Response {
    api.call(
        Method::DELETE,
        "/v1/account",
        user,
        Some(json!({ "password": password })),
    )
    .await
}

/// `by` invites `user` into `room`.
async fn invite(api: &TestApi, by: &TestUser, room: &str, user: &TestUser) -> reqwest::Response {
    api.post(
        &format!("/v1/rooms/{room}/members"),
        by,
        json!({ "user_id": user.user.id }),
    )
    .await
}

async fn deleting_an_account_erases_it_and_keeps_its_messages(backend: Backend) {
    let api = TestApi::start(backend).await;
    let kim = api.user("kim").await;
    let phone = api.login("kim").await;
    let lou = api.user("lou").await;
    api.join(&kim, GENERAL).await;
    api.join(&lou, GENERAL).await;
    let sent = api.send(&kim, GENERAL, "kim-1", "remember me").await;
    let avatar = api
        .request(Method::PUT, "/v1/account/avatar", Some(&kim))
        .header("content-type", "image/png")
        .body(crate::attachments::png(20, 20))
        .send()
        .await
        .unwrap();
    let avatar = expect_status(avatar, StatusCode::OK).await["avatar"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(avatar_blobs(&api), 1);

    expect_status(
        delete_account(&api, &kim, "password-kim").await,
        StatusCode::NO_CONTENT,
    )
    .await;

    // Every session is over, and the name no longer logs in.
    for session in [&kim, &phone] {
        expect_error(
            api.get("/v1/users/me", session).await,
            StatusCode::UNAUTHORIZED,
            "session_revoked",
        )
        .await;
    }
    assert_eq!(
        login_status(&api, "kim", "password-kim").await,
        StatusCode::UNAUTHORIZED
    );
    // Kim left the room, in its log; the message stays, from "deleted user".
    let log = api.log(&lou, GENERAL).await;
    let left = log.last().unwrap();
    assert_eq!(left["type"], "member_left", "{left}");
    assert_eq!(left["user"], json!(kim.user.id));
    assert!(log
        .iter()
        .any(|e| e["id"] == sent["id"] && e["body"] == "remember me"));
    assert!(shown_members(&api, &lou, GENERAL)
        .await
        .iter()
        .all(|m| m["user"]["id"] != json!(kim.user.id)));
    let erased = api.store.user(kim.user.id).await.unwrap().unwrap();
    assert_eq!(erased.display_name, "deleted user");
    // Its avatar is gone, bytes and all.
    assert_eq!(erased.avatar, None);
    let response = api
        .request(Method::GET, &avatar, None)
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(avatar_blobs(&api), 0, "avatar bytes left behind");
    // Others read it by id, to name the sender of what it left behind.
    let path = format!("/v1/users/{}", kim.user.id);
    let shown = expect_status(api.get(&path, &lou).await, StatusCode::OK).await;
    assert_eq!(shown["display_name"], "deleted user");
    assert_ne!(shown["username"], "kim");
    let path = format!("/v1/users/{}", chat_shared::model::UserId::new());
    expect_error(
        api.get(&path, &lou).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let response = api
        .request(Method::GET, &format!("/v1/users/{}", lou.user.id), None)
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::UNAUTHORIZED, "missing_token").await;
    // Nobody finds it.
    let found = expect_status(api.get("/v1/users?q=kim", &lou).await, StatusCode::OK).await;
    assert_eq!(found, json!([]));

    // Someone else may take the name, and inherits nothing.
    let newcomer = api.user("kim").await;
    assert_ne!(newcomer.user.id, kim.user.id);
    let rooms = expect_status(api.get("/v1/rooms", &newcomer).await, StatusCode::OK).await;
    assert_eq!(rooms, json!([]));
    let sessions = expect_status(
        api.get("/v1/auth/sessions", &newcomer).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(sessions.as_array().unwrap().len(), 1);
}

/// The members of `room` as `viewer` reads them.
async fn shown_members(api: &TestApi, viewer: &TestUser, room: &str) -> Vec<Value> {
    let members = expect_status(
        api.get(&format!("/v1/rooms/{room}/members"), viewer).await,
        StatusCode::OK,
    )
    .await;
    members.as_array().unwrap().clone()
}

async fn a_deleted_accounts_rooms_are_handed_over_or_deleted(backend: Backend) {
    let api = TestApi::start(backend).await;
    let max = api.user("max").await;
    let ned = api.user("ned").await;
    let oli = api.user("oli").await;
    // A room with a member (ned, first in) and an admin (oli, later).
    let shared = api.room(&max, "shared", "private").await.id.to_string();
    api.add(&max, &shared, &ned).await;
    api.add(&max, &shared, &oli).await;
    let path = format!("/v1/rooms/{shared}/members/{}/role", oli.user.id);
    let response = api
        .call(Method::PUT, &path, &max, Some(json!({ "role": "admin" })))
        .await;
    expect_status(response, StatusCode::OK).await;
    // A room with only ned besides max: ned, a plain member, takes it.
    let pair = api.room(&max, "pair", "private").await.id.to_string();
    api.add(&max, &pair, &ned).await;
    // A room with nobody else.
    let alone = api.room(&max, "alone", "public").await.id.to_string();
    // A direct room with ned.
    let dm = api
        .post("/v1/dms", &max, json!({ "user_id": ned.user.id }))
        .await;
    let dm = expect_status(dm, StatusCode::CREATED).await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    expect_status(
        delete_account(&api, &max, "password-max").await,
        StatusCode::NO_CONTENT,
    )
    .await;

    let role_of = |members: &[Value], user: &TestUser| {
        members
            .iter()
            .find(|m| m["user"]["id"] == json!(user.user.id))
            .map(|m| m["role"].clone())
    };
    let members = shown_members(&api, &ned, &shared).await;
    assert_eq!(members.len(), 2);
    assert_eq!(
        role_of(&members, &oli),
        Some(json!("owner")),
        "the admin before the older member"
    );
    assert_eq!(role_of(&members, &ned), Some(json!("member")));
    let members = shown_members(&api, &ned, &pair).await;
    assert_eq!(members.len(), 1);
    assert_eq!(role_of(&members, &ned), Some(json!("owner")));
    let log = api.log(&ned, &pair).await;
    let kinds: Vec<_> = log
        .iter()
        .rev()
        .take(3)
        .map(|e| e["type"].clone())
        .collect();
    assert_eq!(
        kinds,
        [
            json!("member_left"),
            json!("role_changed"),
            json!("role_changed")
        ]
    );
    // The DM stays Ned's, with max's leaving in it.
    let members = shown_members(&api, &ned, &dm).await;
    assert_eq!(members.len(), 1);
    let log = api.log(&ned, &dm).await;
    assert_eq!(log.last().unwrap()["type"], "member_left");
    expect_error(
        api.get(&format!("/v1/rooms/{alone}"), &ned).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

async fn a_deletion_is_refused_without_the_password(backend: Backend) {
    let api = TestApi::start(backend).await;
    let pat = api.user("pat").await;
    let phone = api.login("pat").await;
    api.join(&pat, GENERAL).await;
    // The phone's session was logged out (a stolen token that outlived it).
    let path = format!("/v1/auth/sessions/{}", phone.session_id);
    expect_status(
        api.call(Method::DELETE, &path, &pat, None).await,
        StatusCode::NO_CONTENT,
    )
    .await;
    let before = api.snapshot().await;

    for wrong in ["password-PAT", ""] {
        let response = delete_account(&api, &pat, wrong).await;
        expect_error(response, StatusCode::FORBIDDEN, "wrong_password").await;
    }
    let response = api
        .call(Method::DELETE, "/v1/account", &pat, Some(json!({})))
        .await;
    expect_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    let response = api
        .request(Method::DELETE, "/v1/account", None)
        .json(&json!({ "password": "password-pat" }))
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::UNAUTHORIZED, "missing_token").await;
    let response = delete_account(&api, &phone, "password-pat").await;
    expect_error(response, StatusCode::UNAUTHORIZED, "session_revoked").await;

    assert_eq!(api.snapshot().await, before);
    assert_eq!(
        login_status(&api, "pat", "password-pat").await,
        StatusCode::OK
    );
    expect_status(api.get("/v1/users/me", &pat).await, StatusCode::OK).await;
}

async fn a_deleted_account_cannot_be_invited_or_messaged(backend: Backend) {
    let api = TestApi::start(backend).await;
    let quin = api.user("quin").await;
    let ray = api.user("ray").await;
    expect_status(
        delete_account(&api, &quin, "password-quin").await,
        StatusCode::NO_CONTENT,
    )
    .await;

    let room = api.room(&ray, "mine", "private").await.id.to_string();
    expect_error(
        invite(&api, &ray, &room, &quin).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let response = api
        .post("/v1/dms", &ray, json!({ "user_id": quin.user.id }))
        .await;
    expect_error(response, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(shown_members(&api, &ray, &room).await.len(), 1);
}

/// How many avatar images the api's store of blobs (files, in its data
/// dir) holds.
fn avatar_blobs(api: &TestApi) -> usize {
    let dir = api.data_dir.join("blobs").join("avatars");
    std::fs::read_dir(dir)
        .map(|users| {
            users
                .flatten()
                .flat_map(|user| std::fs::read_dir(user.path()).into_iter().flatten())
                .count()
        })
        .unwrap_or(0)
}
