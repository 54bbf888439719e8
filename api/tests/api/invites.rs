//! Invitations as the invitee answers them over REST: pending until
//! accepted or declined, withdrawn by their inviter or an owner or admin,
//! and every refusal leaving the store as it was.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::both_stores;
use crate::helpers::{expect_error, expect_status, TestApi, TestUser};
use chat_shared::testing::Backend;

both_stores!(
    an_invitation_is_declined_and_nothing_else_changes,
    only_the_inviter_or_a_moderator_withdraws_an_invitation,
    a_ban_wins_over_a_pending_invitation,
);

/// `by` invites `user` into `room`; returns the `member_invited` event.
async fn invite(api: &TestApi, by: &TestUser, room: &str, user: &TestUser) -> Value {
    let response = api
        .post(
            &format!("/v1/rooms/{room}/members"),
            by,
            json!({ "user_id": user.user.id }),
        )
        .await;
    expect_status(response, StatusCode::CREATED).await
}

/// `user`'s pending invitations.
async fn pending(api: &TestApi, user: &TestUser) -> Vec<Value> {
    let invites = expect_status(api.get("/v1/invites", user).await, StatusCode::OK).await;
    invites.as_array().unwrap().clone()
}

async fn an_invitation_is_declined_and_nothing_else_changes(backend: Backend) {
    let api = TestApi::start(backend).await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let carol = api.user("carol").await;
    let room = api.room(&alice, "secret", "private").await.id.to_string();
    invite(&api, &alice, &room, &bob).await;
    let id = pending(&api, &bob).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Nobody but the invitee answers it; unknown ids are not found.
    let before = api.snapshot().await;
    for (user, path) in [
        (&carol, format!("/v1/invites/{id}/accept")),
        (&alice, format!("/v1/invites/{id}/decline")),
        (&bob, format!("/v1/invites/{}/accept", Uuid::now_v7())),
    ] {
        expect_error(
            api.post(&path, user, json!({})).await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
    }
    expect_error(
        api.post("/v1/invites/not-a-uuid/accept", &bob, json!({}))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_path",
    )
    .await;
    assert_eq!(api.snapshot().await, before);

    let declined = expect_status(
        api.post(&format!("/v1/invites/{id}/decline"), &bob, json!({}))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(declined["type"], "invite_declined");
    assert_eq!(declined["user"], json!(bob.user.id));
    assert_eq!(declined["sender"], json!(bob.user.id));
    assert!(pending(&api, &bob).await.is_empty());
    assert_eq!(api.log(&alice, &room).await.last().unwrap(), &declined);
    expect_error(
        api.get(&format!("/v1/rooms/{room}"), &bob).await,
        StatusCode::FORBIDDEN,
        "not_member",
    )
    .await;
    expect_error(
        api.post(&format!("/v1/invites/{id}/accept"), &bob, json!({}))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

async fn only_the_inviter_or_a_moderator_withdraws_an_invitation(backend: Backend) {
    let api = TestApi::start(backend).await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let carol = api.user("carol").await;
    let dave = api.user("dave").await;
    let room = api.room(&alice, "hall", "public").await.id.to_string();
    api.join(&bob, &room).await;
    api.join(&carol, &room).await;
    invite(&api, &bob, &room, &dave).await;
    let path = format!("/v1/rooms/{room}/invites/{}", dave.user.id);
    // The room's members see who is invited.
    let listed = expect_status(
        api.get(&format!("/v1/rooms/{room}/invites"), &carol).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(listed[0]["invitee"]["id"], json!(dave.user.id));
    assert_eq!(listed[0]["invited_by"]["id"], json!(bob.user.id));

    let stranger = api.user("erin").await;
    let before = api.snapshot().await;
    expect_error(
        api.call(Method::DELETE, &path, &carol, None).await,
        StatusCode::FORBIDDEN,
        "insufficient_role",
    )
    .await;
    expect_error(
        api.call(Method::DELETE, &path, &stranger, None).await,
        StatusCode::FORBIDDEN,
        "not_member",
    )
    .await;
    let nobody = format!("/v1/rooms/{room}/invites/{}", carol.user.id);
    expect_error(
        api.call(Method::DELETE, &nobody, &alice, None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_eq!(api.snapshot().await, before);
    assert_eq!(pending(&api, &dave).await.len(), 1);
    expect_error(
        api.get(&format!("/v1/rooms/{room}/invites"), &stranger)
            .await,
        StatusCode::FORBIDDEN,
        "not_member",
    )
    .await;

    // The inviter withdraws it; then an owner withdraws another.
    let cancelled = expect_status(
        api.call(Method::DELETE, &path, &bob, None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(cancelled["type"], "invite_cancelled");
    assert_eq!(cancelled["user"], json!(dave.user.id));
    assert!(pending(&api, &dave).await.is_empty());
    invite(&api, &carol, &room, &dave).await;
    expect_status(
        api.call(Method::DELETE, &path, &alice, None).await,
        StatusCode::OK,
    )
    .await;
    assert!(pending(&api, &dave).await.is_empty());
}

async fn a_ban_wins_over_a_pending_invitation(backend: Backend) {
    let api = TestApi::start(backend).await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let room = api.room(&alice, "secret", "private").await.id.to_string();
    invite(&api, &alice, &room, &bob).await;
    let id = pending(&api, &bob).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let ban = format!("/v1/rooms/{room}/bans/{}", bob.user.id);
    expect_status(
        api.call(Method::PUT, &ban, &alice, Some(json!({}))).await,
        StatusCode::CREATED,
    )
    .await;
    let before = api.snapshot().await;
    expect_error(
        api.post(&format!("/v1/invites/{id}/accept"), &bob, json!({}))
            .await,
        StatusCode::FORBIDDEN,
        "banned",
    )
    .await;
    assert_eq!(api.snapshot().await, before);
    // A banned user cannot be invited again either.
    let response = api
        .post(
            &format!("/v1/rooms/{room}/members"),
            &alice,
            json!({ "user_id": bob.user.id }),
        )
        .await;
    expect_error(response, StatusCode::FORBIDDEN, "banned").await;
}
