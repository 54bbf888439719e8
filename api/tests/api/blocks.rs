//! Blocks: listing, blocking and unblocking with every refusal (myself,
//! nobody, over budget), and what a block refuses in the api: a DM either
//! way, a message in an existing DM either way, an invitation by the
//! blocked user; and what it does not (messages in a shared group room).
//! Unblocking restores each.

use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::both_stores;
use crate::helpers::{expect_error, expect_status, TestApi, TestUser};
use chat_shared::testing::Backend;

both_stores!(
    a_block_is_listed_with_names_and_lifted,
    no_block_of_yourself_nobody_or_past_the_budget,
    a_block_refuses_dms_both_ways_until_lifted,
    a_block_refuses_messages_in_an_existing_dm,
    the_blocked_user_cannot_add_the_blocker_to_a_room,
    messages_in_shared_rooms_still_go_through_but_do_not_count_as_unread,
);

async fn block(api: &TestApi, by: &TestUser, whom: Uuid) -> Response {
    api.call(
        Method::PUT,
        &format!("/v1/users/me/blocks/{whom}"),
        by,
        None,
    )
    .await
}

async fn unblock(api: &TestApi, by: &TestUser, whom: Uuid) -> Response {
    api.call(
        Method::DELETE,
        &format!("/v1/users/me/blocks/{whom}"),
        by,
        None,
    )
    .await
}

async fn blocked(api: &TestApi, user: &TestUser) -> Vec<Value> {
    let list = expect_status(api.get("/v1/users/me/blocks", user).await, StatusCode::OK).await;
    list.as_array().unwrap().clone()
}

async fn open_dm(api: &TestApi, from: &TestUser, to: &TestUser) -> Response {
    api.post("/v1/dms", from, json!({ "user_id": to.user.id }))
        .await
}

async fn a_block_is_listed_with_names_and_lifted(backend: Backend) {
    let api = TestApi::start(backend).await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    assert!(blocked(&api, &alice).await.is_empty());

    expect_status(
        block(&api, &alice, bob.user.id.0).await,
        StatusCode::NO_CONTENT,
    )
    .await;
    // Again: nothing changes, and it is not an error.
    expect_status(
        block(&api, &alice, bob.user.id.0).await,
        StatusCode::NO_CONTENT,
    )
    .await;
    let list = blocked(&api, &alice).await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["user"]["id"], json!(bob.user.id));
    assert_eq!(list[0]["user"]["display_name"], bob.user.display_name);
    assert!(list[0]["blocked_at"].is_string());
    assert!(blocked(&api, &bob).await.is_empty(), "one way");

    expect_status(
        unblock(&api, &alice, bob.user.id.0).await,
        StatusCode::NO_CONTENT,
    )
    .await;
    assert!(blocked(&api, &alice).await.is_empty());
    expect_error(
        unblock(&api, &alice, bob.user.id.0).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

async fn no_block_of_yourself_nobody_or_past_the_budget(backend: Backend) {
    let api = TestApi::start_with(backend, |config| {
        config.action_rate_per_minute = 1;
        config.action_burst = 2;
    })
    .await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let carol = api.user("carol").await;

    let before = api.snapshot().await;
    expect_error(
        block(&api, &alice, alice.user.id.0).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    expect_error(
        block(&api, &alice, Uuid::new_v4()).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    expect_error(
        api.request(
            Method::PUT,
            &format!("/v1/users/me/blocks/{}", bob.user.id),
            None,
        )
        .send()
        .await
        .unwrap(),
        StatusCode::UNAUTHORIZED,
        "missing_token",
    )
    .await;
    assert_eq!(api.snapshot().await, before);
    assert!(blocked(&api, &alice).await.is_empty(), "nothing was stored");

    // The two above spent the burst of two; the next is over budget.
    let response = block(&api, &alice, bob.user.id.0).await;
    expect_error(response, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    assert!(blocked(&api, &alice).await.is_empty());
    // Budgets are per user.
    expect_status(
        block(&api, &carol, bob.user.id.0).await,
        StatusCode::NO_CONTENT,
    )
    .await;
}

async fn a_block_refuses_dms_both_ways_until_lifted(backend: Backend) {
    let api = TestApi::start(backend).await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    expect_status(
        block(&api, &alice, bob.user.id.0).await,
        StatusCode::NO_CONTENT,
    )
    .await;

    let before = api.snapshot().await;
    expect_error(
        open_dm(&api, &bob, &alice).await,
        StatusCode::FORBIDDEN,
        "blocked",
    )
    .await;
    expect_error(
        open_dm(&api, &alice, &bob).await,
        StatusCode::FORBIDDEN,
        "blocked",
    )
    .await;
    assert_eq!(api.snapshot().await, before, "no room was made");

    expect_status(
        unblock(&api, &alice, bob.user.id.0).await,
        StatusCode::NO_CONTENT,
    )
    .await;
    expect_status(open_dm(&api, &bob, &alice).await, StatusCode::CREATED).await;
}

async fn a_block_refuses_messages_in_an_existing_dm(backend: Backend) {
    let api = TestApi::start(backend).await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let dm = expect_status(open_dm(&api, &alice, &bob).await, StatusCode::CREATED).await;
    let dm = dm["id"].as_str().unwrap().to_owned();
    api.send(&bob, &dm, "b1", "hello").await;

    expect_status(
        block(&api, &alice, bob.user.id.0).await,
        StatusCode::NO_CONTENT,
    )
    .await;
    let path = format!("/v1/rooms/{dm}/messages");
    for (who, id) in [(&bob, "b2"), (&alice, "a1")] {
        let response = api
            .post(
                &path,
                who,
                json!({ "client_id": id, "body": "still there?" }),
            )
            .await;
        expect_error(response, StatusCode::FORBIDDEN, "blocked").await;
    }
    assert_eq!(
        api.log(&alice, &dm).await.len(),
        3,
        "only the first message"
    );
    // Reopening it is refused as well.
    expect_error(
        open_dm(&api, &bob, &alice).await,
        StatusCode::FORBIDDEN,
        "blocked",
    )
    .await;

    expect_status(
        unblock(&api, &alice, bob.user.id.0).await,
        StatusCode::NO_CONTENT,
    )
    .await;
    api.send(&bob, &dm, "b2", "back again").await;
    api.send(&alice, &dm, "a1", "hi").await;
}

async fn the_blocked_user_cannot_add_the_blocker_to_a_room(backend: Backend) {
    let api = TestApi::start(backend).await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let room = api.room(&bob, "bobs", "private").await.id.to_string();
    expect_status(
        block(&api, &alice, bob.user.id.0).await,
        StatusCode::NO_CONTENT,
    )
    .await;

    let path = format!("/v1/rooms/{room}/members");
    let invite = || api.post(&path, &bob, json!({ "user_id": alice.user.id }));
    let before = api.snapshot().await;
    expect_error(invite().await, StatusCode::FORBIDDEN, "blocked").await;
    assert_eq!(api.snapshot().await, before);

    // The blocker may still add the blocked user where they can invite.
    let mine = api.room(&alice, "alices", "private").await.id.to_string();
    let response = api
        .post(
            &format!("/v1/rooms/{mine}/members"),
            &alice,
            json!({ "user_id": bob.user.id }),
        )
        .await;
    expect_status(response, StatusCode::CREATED).await;

    expect_status(
        unblock(&api, &alice, bob.user.id.0).await,
        StatusCode::NO_CONTENT,
    )
    .await;
    expect_status(invite().await, StatusCode::CREATED).await;
}

async fn messages_in_shared_rooms_still_go_through_but_do_not_count_as_unread(backend: Backend) {
    let api = TestApi::start(backend).await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let room = api.room(&alice, "shared", "public").await.id.to_string();
    api.join(&bob, &room).await;
    expect_status(
        block(&api, &alice, bob.user.id.0).await,
        StatusCode::NO_CONTENT,
    )
    .await;

    // The log is the log: bob's message is stored and alice can read it.
    api.send(&bob, &room, "b1", "hi @alice").await;
    let log = api.log(&alice, &room).await;
    assert_eq!(log.last().unwrap()["body"], "hi @alice");

    let unread = |rooms: Value| {
        let mine = rooms
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == room.as_str())
            .cloned()
            .unwrap();
        (mine["unread"].clone(), mine["unread_mentions"].clone())
    };
    let rooms = expect_status(api.get("/v1/rooms", &alice).await, StatusCode::OK).await;
    assert_eq!(unread(rooms), (json!(0), json!(0)));

    expect_status(
        unblock(&api, &alice, bob.user.id.0).await,
        StatusCode::NO_CONTENT,
    )
    .await;
    let rooms = expect_status(api.get("/v1/rooms", &alice).await, StatusCode::OK).await;
    assert_eq!(unread(rooms), (json!(1), json!(1)));
}
