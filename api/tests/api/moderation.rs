//! Timeouts and slow mode over REST: who may mute whom and set slow mode,
//! every refusal leaving the store as it was, a muted member's sends and
//! reactions refused with `muted` and its end, slow mode's `slow_mode`
//! with `Retry-After`, and the events that record each change.

use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::both_stores;
use crate::helpers::{expect_error, expect_status, TestApi, TestUser};
use chat_shared::testing::Backend;

both_stores!(
    a_timeout_refuses_the_members_sends_and_reactions_until_lifted,
    only_owners_and_admins_mute_members_below_them,
    slow_mode_lets_one_message_per_interval_through,
    moderation_changes_have_a_budget,
);

/// `by` mutes `user` in `room` for `seconds`.
async fn mute(api: &TestApi, by: &TestUser, room: &str, user: &TestUser, seconds: u32) -> Response {
    let path = format!("/v1/rooms/{room}/members/{}/mute", user.user.id);
    api.call(
        Method::PUT,
        &path,
        by,
        Some(json!({ "duration_seconds": seconds })),
    )
    .await
}

/// `by` lifts `user`'s mute in `room`.
async fn unmute(api: &TestApi, by: &TestUser, room: &str, user: &TestUser) -> Response {
    let path = format!("/v1/rooms/{room}/members/{}/mute", user.user.id);
    api.call(Method::DELETE, &path, by, None).await
}

/// `by` sets `room`'s slow mode.
async fn slow_mode(api: &TestApi, by: &TestUser, room: &str, seconds: u32) -> Response {
    let path = format!("/v1/rooms/{room}/slow-mode");
    api.call(Method::PUT, &path, by, Some(json!({ "seconds": seconds })))
        .await
}

/// `user` sends `body` to `room` over REST (answer unchecked).
async fn try_send(api: &TestApi, user: &TestUser, room: &str, client_id: &str) -> Response {
    api.post(
        &format!("/v1/rooms/{room}/messages"),
        user,
        json!({ "client_id": client_id, "body": "hello" }),
    )
    .await
}

/// `user`'s entry for `room` in their room list.
async fn my_room(api: &TestApi, user: &TestUser, room: &str) -> Value {
    let rooms = expect_status(api.get("/v1/rooms", user).await, StatusCode::OK).await;
    rooms
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == room)
        .cloned()
        .expect("the room is listed")
}

/// A public room of alice's that bob and carol joined.
async fn room_of_three(backend: Backend) -> (TestApi, TestUser, TestUser, TestUser, String) {
    let api = TestApi::start(backend).await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let carol = api.user("carol").await;
    let room = api.room(&alice, "hall", "public").await.id.to_string();
    api.join(&bob, &room).await;
    api.join(&carol, &room).await;
    (api, alice, bob, carol, room)
}

async fn a_timeout_refuses_the_members_sends_and_reactions_until_lifted(backend: Backend) {
    let (api, alice, bob, _carol, room) = room_of_three(backend).await;
    let said = api.send(&alice, &room, "a1", "hi all").await;
    let before = OffsetDateTime::now_utc();
    let muted = expect_status(mute(&api, &alice, &room, &bob, 600).await, StatusCode::OK).await;
    assert_eq!(muted["type"], "member_muted");
    assert_eq!(muted["user"], json!(bob.user.id));
    assert_eq!(muted["sender"], json!(alice.user.id));
    let until = OffsetDateTime::parse(
        muted["until"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let ahead = (until - before).whole_seconds();
    assert!((599..=601).contains(&ahead), "{ahead}");

    // Bob sees it in his room list and everyone in the member list.
    assert_eq!(
        my_room(&api, &bob, &room).await["muted_until"],
        muted["until"]
    );
    let members = expect_status(
        api.get(&format!("/v1/rooms/{room}/members"), &alice).await,
        StatusCode::OK,
    )
    .await;
    let listed = members
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["user"]["id"] == json!(bob.user.id))
        .unwrap()
        .clone();
    assert_eq!(listed["muted_until"], muted["until"]);

    // His sends and reactions are refused, naming the end; nothing stored.
    let snapshot = api.snapshot().await;
    let refused = expect_error(
        try_send(&api, &bob, &room, "b1").await,
        StatusCode::FORBIDDEN,
        "muted",
    )
    .await;
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(muted["until"].as_str().unwrap()),
        "{message}"
    );
    let react = format!(
        "/v1/rooms/{room}/messages/{}/reactions/%F0%9F%91%8D",
        said["id"].as_str().unwrap()
    );
    expect_error(
        api.call(Method::PUT, &react, &bob, None).await,
        StatusCode::FORBIDDEN,
        "muted",
    )
    .await;
    assert_eq!(api.snapshot().await, snapshot);

    // Lifted early: he speaks again.
    let unmuted = expect_status(unmute(&api, &alice, &room, &bob).await, StatusCode::OK).await;
    assert_eq!(unmuted["type"], "member_unmuted");
    assert!(my_room(&api, &bob, &room)
        .await
        .get("muted_until")
        .is_none());
    expect_status(try_send(&api, &bob, &room, "b1").await, StatusCode::CREATED).await;
    expect_status(
        api.call(Method::PUT, &react, &bob, None).await,
        StatusCode::CREATED,
    )
    .await;
    expect_error(
        unmute(&api, &alice, &room, &bob).await,
        StatusCode::CONFLICT,
        "not_muted",
    )
    .await;

    // The log tells the story to anyone who replays it.
    let kinds: Vec<String> = api
        .log(&bob, &room)
        .await
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect();
    let at = kinds.iter().position(|k| k == "member_muted").unwrap();
    assert_eq!(kinds[at + 1], "member_unmuted", "{kinds:?}");
}

async fn only_owners_and_admins_mute_members_below_them(backend: Backend) {
    let (api, alice, bob, carol, room) = room_of_three(backend).await;
    let dave = api.user("dave").await;
    let snapshot = api.snapshot().await;
    // A member mutes nobody, an outsider neither.
    expect_error(
        mute(&api, &bob, &room, &carol, 60).await,
        StatusCode::FORBIDDEN,
        "insufficient_role",
    )
    .await;
    expect_error(
        mute(&api, &dave, &room, &carol, 60).await,
        StatusCode::FORBIDDEN,
        "not_member",
    )
    .await;
    // Not yourself, not someone outside the room, not for no time or too long.
    expect_error(
        mute(&api, &alice, &room, &alice, 60).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    expect_error(
        mute(&api, &alice, &room, &dave, 60).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    expect_error(
        mute(&api, &alice, &room, &bob, 0).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    expect_error(
        mute(&api, &alice, &room, &bob, 28 * 24 * 3600 + 1).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    let path = format!("/v1/rooms/{room}/members/{}/mute", bob.user.id);
    expect_error(
        api.call(
            Method::PUT,
            &path,
            &alice,
            Some(json!({ "duration_seconds": 60, "why": "x" })),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    let nowhere = format!("/v1/rooms/{}/members/{}/mute", Uuid::now_v7(), bob.user.id);
    expect_error(
        api.call(
            Method::PUT,
            &nowhere,
            &alice,
            Some(json!({ "duration_seconds": 60 })),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    expect_error(
        unmute(&api, &bob, &room, &carol).await,
        StatusCode::FORBIDDEN,
        "insufficient_role",
    )
    .await;
    assert_eq!(
        api.snapshot().await,
        snapshot,
        "no refusal changed anything"
    );

    // An admin mutes a member but not the owner nor another admin.
    for admin in [&bob, &carol] {
        let path = format!("/v1/rooms/{room}/members/{}/role", admin.user.id);
        expect_status(
            api.call(Method::PUT, &path, &alice, Some(json!({ "role": "admin" })))
                .await,
            StatusCode::OK,
        )
        .await;
    }
    api.join(&dave, &room).await;
    expect_error(
        mute(&api, &bob, &room, &alice, 60).await,
        StatusCode::FORBIDDEN,
        "insufficient_role",
    )
    .await;
    expect_error(
        mute(&api, &bob, &room, &carol, 60).await,
        StatusCode::FORBIDDEN,
        "insufficient_role",
    )
    .await;
    expect_status(mute(&api, &bob, &room, &dave, 60).await, StatusCode::OK).await;
    expect_status(mute(&api, &alice, &room, &carol, 60).await, StatusCode::OK).await;

    // Nobody moderates a DM.
    let dm = expect_status(
        api.post("/v1/dms", &alice, json!({ "user_id": dave.user.id }))
            .await,
        StatusCode::CREATED,
    )
    .await;
    let dm = dm["id"].as_str().unwrap().to_owned();
    expect_error(
        mute(&api, &alice, &dm, &dave, 60).await,
        StatusCode::FORBIDDEN,
        "direct_room",
    )
    .await;
    expect_error(
        slow_mode(&api, &alice, &dm, 10).await,
        StatusCode::FORBIDDEN,
        "direct_room",
    )
    .await;
}

async fn slow_mode_lets_one_message_per_interval_through(backend: Backend) {
    let (api, alice, bob, carol, room) = room_of_three(backend).await;
    let snapshot = api.snapshot().await;
    expect_error(
        slow_mode(&api, &bob, &room, 30).await,
        StatusCode::FORBIDDEN,
        "insufficient_role",
    )
    .await;
    expect_error(
        slow_mode(&api, &alice, &room, 6 * 3600 + 1).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(api.snapshot().await, snapshot);

    let set = expect_status(slow_mode(&api, &alice, &room, 30).await, StatusCode::OK).await;
    assert_eq!(set["slow_mode_seconds"], 30);
    let read = expect_status(
        api.get(&format!("/v1/rooms/{room}"), &carol).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(read["slow_mode_seconds"], 30);
    let last = api.log(&bob, &room).await.pop().unwrap();
    assert_eq!(last["type"], "slow_mode_changed");
    assert_eq!(last["seconds"], 30);
    // Setting it again records nothing.
    let head = set["last_seq"].clone();
    let again = expect_status(slow_mode(&api, &alice, &room, 30).await, StatusCode::OK).await;
    assert_eq!(again["last_seq"], head);

    expect_status(try_send(&api, &bob, &room, "b1").await, StatusCode::CREATED).await;
    let snapshot = api.snapshot().await;
    let response = try_send(&api, &bob, &room, "b2").await;
    let wait: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&wait), "{wait}");
    let body = expect_error(response, StatusCode::TOO_MANY_REQUESTS, "slow_mode").await;
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains(&format!("{wait} s")));
    assert_eq!(api.snapshot().await, snapshot, "nothing stored");
    // Another member has an interval of their own; the owner has none.
    expect_status(
        try_send(&api, &carol, &room, "c1").await,
        StatusCode::CREATED,
    )
    .await;
    expect_status(
        try_send(&api, &alice, &room, "a1").await,
        StatusCode::CREATED,
    )
    .await;
    expect_status(
        try_send(&api, &alice, &room, "a2").await,
        StatusCode::CREATED,
    )
    .await;

    let off = expect_status(slow_mode(&api, &alice, &room, 0).await, StatusCode::OK).await;
    assert_eq!(off["slow_mode_seconds"], 0);
    expect_status(try_send(&api, &bob, &room, "b2").await, StatusCode::CREATED).await;
}

async fn moderation_changes_have_a_budget(backend: Backend) {
    let api = TestApi::start_with(backend, |config| {
        config.action_rate_per_minute = 1;
        config.action_burst = 2;
    })
    .await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let room = api.room(&alice, "hall", "public").await.id.to_string();
    api.join(&bob, &room).await;
    expect_status(mute(&api, &alice, &room, &bob, 60).await, StatusCode::OK).await;
    expect_status(unmute(&api, &alice, &room, &bob).await, StatusCode::OK).await;
    let snapshot = api.snapshot().await;
    let response = slow_mode(&api, &alice, &room, 10).await;
    assert!(response.headers().contains_key("retry-after"));
    expect_error(response, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    assert_eq!(api.snapshot().await, snapshot);
}
