//! DM consent over REST: a DM is listed for nobody until its first
//! message; one opened to a stranger is a request (previewable) its
//! recipient accepts or declines, and a declined one refuses its sender's
//! messages until the recipient opens the DM; a closed DM is hidden until
//! its next message. Every refusal, and the budget of these writes.

use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

use crate::both_stores;
use crate::helpers::{expect_error, expect_status, TestApi, TestUser};
use chat_shared::testing::Backend;

both_stores!(
    a_strangers_dm_is_a_request_listed_from_its_first_message,
    a_declined_request_refuses_its_sender_until_the_recipient_opens_it,
    a_closed_dm_is_hidden_until_its_next_message,
    accepting_declining_and_closing_have_a_budget,
);

async fn open_dm(api: &TestApi, from: &TestUser, to: &TestUser) -> Response {
    api.post("/v1/dms", from, json!({ "user_id": to.user.id }))
        .await
}

async fn act(api: &TestApi, user: &TestUser, room: &str, action: &str) -> Response {
    api.post(&format!("/v1/dms/{room}/{action}"), user, json!({}))
        .await
}

/// `user`'s listing of `room`, if listed.
async fn listed(api: &TestApi, user: &TestUser, room: &str) -> Option<Value> {
    let rooms = expect_status(api.get("/v1/rooms", user).await, StatusCode::OK).await;
    rooms
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == room)
        .cloned()
}

async fn a_strangers_dm_is_a_request_listed_from_its_first_message(backend: Backend) {
    let api = TestApi::start(backend).await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let carol = api.user("carol").await;
    let dm = expect_status(open_dm(&api, &alice, &bob).await, StatusCode::CREATED).await;
    let dm = dm["id"].as_str().unwrap().to_owned();
    assert!(
        listed(&api, &alice, &dm).await.is_none(),
        "never written in"
    );
    assert!(listed(&api, &bob, &dm).await.is_none(), "never written in");

    api.send(&alice, &dm, "a1", "hi, we have not met").await;
    let mine = listed(&api, &alice, &dm)
        .await
        .expect("listed for its sender");
    assert_eq!(mine["request"], false);
    let theirs = listed(&api, &bob, &dm).await.expect("listed for bob");
    assert_eq!(theirs["request"], true, "a request to bob");
    // Bob may read it before deciding.
    let log = api.log(&bob, &dm).await;
    assert_eq!(log.last().unwrap()["body"], "hi, we have not met");

    // Only bob decides, and only about a request.
    let general = api.room(&carol, "general2", "public").await.id.to_string();
    let before = api.snapshot().await;
    expect_error(
        act(&api, &alice, &dm, "accept").await,
        StatusCode::CONFLICT,
        "not_a_request",
    )
    .await;
    expect_error(
        act(&api, &carol, &dm, "accept").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    expect_error(
        act(&api, &carol, &dm, "decline").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    expect_error(
        act(&api, &carol, &general, "accept").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_eq!(api.snapshot().await, before);

    expect_status(act(&api, &bob, &dm, "accept").await, StatusCode::NO_CONTENT).await;
    assert_eq!(listed(&api, &bob, &dm).await.unwrap()["request"], false);
    api.send(&bob, &dm, "b1", "hello").await;
    expect_error(
        act(&api, &bob, &dm, "accept").await,
        StatusCode::CONFLICT,
        "not_a_request",
    )
    .await;

    // People who share a room write plain DMs.
    api.join(&bob, &general).await;
    let plain = expect_status(open_dm(&api, &carol, &bob).await, StatusCode::CREATED).await;
    let plain = plain["id"].as_str().unwrap().to_owned();
    api.send(&carol, &plain, "c1", "hi").await;
    assert_eq!(listed(&api, &bob, &plain).await.unwrap()["request"], false);
}

async fn a_declined_request_refuses_its_sender_until_the_recipient_opens_it(backend: Backend) {
    let api = TestApi::start(backend).await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let dm = expect_status(open_dm(&api, &alice, &bob).await, StatusCode::CREATED).await;
    let dm = dm["id"].as_str().unwrap().to_owned();
    api.send(&alice, &dm, "a1", "buy my stuff").await;
    expect_error(
        act(&api, &alice, &dm, "decline").await,
        StatusCode::CONFLICT,
        "not_a_request",
    )
    .await;

    expect_status(
        act(&api, &bob, &dm, "decline").await,
        StatusCode::NO_CONTENT,
    )
    .await;
    assert!(listed(&api, &bob, &dm).await.is_none(), "hidden from bob");
    let response = api
        .post(
            &format!("/v1/rooms/{dm}/messages"),
            &alice,
            json!({ "client_id": "a2", "body": "hello??" }),
        )
        .await;
    expect_error(response, StatusCode::FORBIDDEN, "dm_declined").await;
    assert_eq!(api.log(&bob, &dm).await.len(), 3, "nothing stored");
    assert!(listed(&api, &bob, &dm).await.is_none(), "still hidden");

    // Bob changes his mind: opening the DM himself lifts the decline.
    expect_status(open_dm(&api, &bob, &alice).await, StatusCode::OK).await;
    api.send(&alice, &dm, "a2", "thanks").await;
    let theirs = listed(&api, &bob, &dm).await.expect("listed again");
    assert_eq!(theirs["request"], false);
}

async fn a_closed_dm_is_hidden_until_its_next_message(backend: Backend) {
    let api = TestApi::start(backend).await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let carol = api.user("carol").await;
    let room = api.room(&alice, "shared", "public").await.id.to_string();
    api.join(&bob, &room).await;
    let dm = expect_status(open_dm(&api, &alice, &bob).await, StatusCode::CREATED).await;
    let dm = dm["id"].as_str().unwrap().to_owned();
    api.send(&alice, &dm, "a1", "one").await;

    expect_error(
        act(&api, &carol, &dm, "close").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    expect_error(
        act(&api, &alice, &room, "close").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    expect_status(
        act(&api, &alice, &dm, "close").await,
        StatusCode::NO_CONTENT,
    )
    .await;
    assert!(
        listed(&api, &alice, &dm).await.is_none(),
        "closed for alice"
    );
    assert!(listed(&api, &bob, &dm).await.is_some(), "not for bob");
    // Still hers: she reads it and may write in it.
    assert_eq!(api.log(&alice, &dm).await.len(), 3);

    api.send(&bob, &dm, "b1", "two").await;
    assert!(
        listed(&api, &alice, &dm).await.is_some(),
        "back with the next message"
    );
}

async fn accepting_declining_and_closing_have_a_budget(backend: Backend) {
    let api = TestApi::start_with(backend, |config| {
        config.action_rate_per_minute = 1;
        config.action_burst = 2;
    })
    .await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let dm = expect_status(open_dm(&api, &alice, &bob).await, StatusCode::CREATED).await;
    let dm = dm["id"].as_str().unwrap().to_owned();
    api.send(&alice, &dm, "a1", "hi").await;
    expect_status(
        act(&api, &alice, &dm, "close").await,
        StatusCode::NO_CONTENT,
    )
    .await;
    // The open and the close spent alice's two.
    expect_error(
        act(&api, &alice, &dm, "close").await,
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
    )
    .await;
    // Bob's are his own.
    expect_status(act(&api, &bob, &dm, "accept").await, StatusCode::NO_CONTENT).await;
}
