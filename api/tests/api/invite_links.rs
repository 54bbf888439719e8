//! Invite links over REST: made, listed and revoked by owners and admins
//! only, joined by whoever has the code, refused with a code of its own
//! once expired, revoked or used up (and for banned users), every refusal
//! leaving the store as it was.

use chat_shared::model::RoomId;
use chat_shared::store::NewInviteLink;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both_stores;
use crate::helpers::{expect_error, expect_status, TestApi, TestUser};
use chat_shared::testing::Backend;

both_stores!(
    owners_and_admins_make_links_that_let_people_join,
    spent_links_are_refused_with_their_reason,
);

/// `by` makes a link into `room` with these settings (answer unchecked).
async fn make(api: &TestApi, by: &TestUser, room: &str, body: Value) -> reqwest::Response {
    api.post(&format!("/v1/rooms/{room}/invite-links"), by, body)
        .await
}

/// `user` joins by `code` (answer unchecked).
async fn join(api: &TestApi, user: &TestUser, code: &str) -> reqwest::Response {
    api.post(&format!("/v1/invite-links/{code}/join"), user, json!({}))
        .await
}

async fn owners_and_admins_make_links_that_let_people_join(backend: Backend) {
    let api = TestApi::start(backend).await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let carol = api.user("carol").await;
    let dave = api.user("dave").await;
    let room = api.room(&alice, "secret", "private").await.id.to_string();
    api.add(&alice, &room, &bob).await;
    let dm = expect_status(
        api.post("/v1/dms", &alice, json!({ "user_id": dave.user.id }))
            .await,
        StatusCode::CREATED,
    )
    .await;
    let dm = dm["id"].as_str().unwrap().to_owned();

    let before = api.snapshot().await;
    let refusals = [
        (
            &bob,
            room.as_str(),
            json!({}),
            StatusCode::FORBIDDEN,
            "insufficient_role",
        ),
        (
            &carol,
            room.as_str(),
            json!({}),
            StatusCode::FORBIDDEN,
            "not_member",
        ),
        (
            &alice,
            dm.as_str(),
            json!({}),
            StatusCode::FORBIDDEN,
            "direct_room",
        ),
        (
            &alice,
            room.as_str(),
            json!({ "expires_in_seconds": 0 }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            &alice,
            room.as_str(),
            json!({ "expires_in_seconds": 2_592_001 }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            &alice,
            room.as_str(),
            json!({ "max_uses": 0 }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            &alice,
            room.as_str(),
            json!({ "max_uses": 1001 }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            &alice,
            room.as_str(),
            json!({ "uses": 3 }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
    ];
    for (who, at, body, status, code) in refusals {
        expect_error(make(&api, who, at, body).await, status, code).await;
    }
    assert_eq!(api.snapshot().await, before);
    let links = format!("/v1/rooms/{room}/invite-links");
    expect_error(
        api.get(&links, &bob).await,
        StatusCode::FORBIDDEN,
        "insufficient_role",
    )
    .await;
    assert_eq!(
        expect_status(api.get(&links, &alice).await, StatusCode::OK).await,
        json!([])
    );

    let link = expect_status(
        make(
            &api,
            &alice,
            &room,
            json!({ "expires_in_seconds": 3600, "max_uses": 1 }),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let code = link["code"].as_str().unwrap().to_owned();
    assert_eq!(code.len(), 22, "128 bits, URL-safe: {code}");
    assert!(code
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    assert_eq!(link["max_uses"], 1);
    assert_eq!(link["uses"], 0);
    assert!(link["expires_at"].is_string());

    let joined = expect_status(join(&api, &carol, &code).await, StatusCode::OK).await;
    assert_eq!(joined["type"], "member_joined");
    assert_eq!(joined["user"], json!(carol.user.id));
    assert_eq!(joined["sender"], json!(carol.user.id));
    expect_status(
        api.get(&format!("/v1/rooms/{room}"), &carol).await,
        StatusCode::OK,
    )
    .await;
    let listed = expect_status(api.get(&links, &alice).await, StatusCode::OK).await;
    assert_eq!(listed[0]["uses"], 1);

    let before = api.snapshot().await;
    expect_error(
        join(&api, &carol, &code).await,
        StatusCode::CONFLICT,
        "already_member",
    )
    .await;
    expect_error(
        join(&api, &dave, &code).await,
        StatusCode::GONE,
        "link_used_up",
    )
    .await;
    expect_error(
        join(&api, &dave, "no-such-code").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_eq!(api.snapshot().await, before);
}

async fn spent_links_are_refused_with_their_reason(backend: Backend) {
    let api = TestApi::start(backend).await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let carol = api.user("carol").await;
    let room = api.room(&alice, "hall", "public").await.id.to_string();
    let link = expect_status(
        make(&api, &alice, &room, json!({})).await,
        StatusCode::CREATED,
    )
    .await;
    let code = link["code"].as_str().unwrap().to_owned();
    // Revoked: by an owner or admin only, once.
    let path = format!("/v1/rooms/{room}/invite-links/{code}");
    api.join(&bob, &room).await;
    expect_error(
        api.call(Method::DELETE, &path, &bob, None).await,
        StatusCode::FORBIDDEN,
        "insufficient_role",
    )
    .await;
    expect_status(
        api.call(Method::DELETE, &path, &alice, None).await,
        StatusCode::NO_CONTENT,
    )
    .await;
    expect_error(
        api.call(Method::DELETE, &path, &alice, None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let before = api.snapshot().await;
    expect_error(
        join(&api, &carol, &code).await,
        StatusCode::GONE,
        "link_revoked",
    )
    .await;
    assert_eq!(api.snapshot().await, before);

    // Expired (made through the store: the api's shortest expiry is 1 s).
    let id = RoomId(room.parse().unwrap());
    let past = time::OffsetDateTime::now_utc() - time::Duration::seconds(5);
    api.store
        .create_invite_link(
            id,
            alice.user.id,
            NewInviteLink {
                code: "expired-code".into(),
                expires_at: Some(past),
                max_uses: None,
            },
        )
        .await
        .unwrap();
    expect_error(
        join(&api, &carol, "expired-code").await,
        StatusCode::GONE,
        "link_expired",
    )
    .await;

    // Bans still apply.
    let fresh = expect_status(
        make(&api, &alice, &room, json!({})).await,
        StatusCode::CREATED,
    )
    .await;
    let ban = format!("/v1/rooms/{room}/bans/{}", carol.user.id);
    expect_status(
        api.call(Method::PUT, &ban, &alice, Some(json!({}))).await,
        StatusCode::CREATED,
    )
    .await;
    let before_ban_join = api.snapshot().await;
    expect_error(
        join(&api, &carol, fresh["code"].as_str().unwrap()).await,
        StatusCode::FORBIDDEN,
        "banned",
    )
    .await;
    assert_eq!(api.snapshot().await, before_ban_join);
}
