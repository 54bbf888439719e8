//! What people do to messages, over REST: replies and mentions on send,
//! edit, delete, react, pin, the timeline and the pins list. Each route is
//! tried by who may call it and who may not, with bad input, past its rate
//! limit and after a kick; a refusal changes nothing.

use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};

use crate::both_stores;
use crate::helpers::{expect_error, expect_status, TestApi, TestUser};
use chat_shared::testing::Backend;

both_stores!(
    a_reply_carries_a_preview_and_must_answer_this_room,
    edits_are_the_senders_and_idempotent,
    a_moderator_deletes_and_the_timeline_shows_a_tombstone,
    reactions_toggle_and_are_counted_for_the_reader,
    pins_are_for_moderators,
    mentions_count_in_the_room_list_until_read,
    changes_are_refused_to_outsiders_and_kicked_members,
    bad_input_to_message_routes_changes_nothing,
    changes_draw_on_the_send_budget,
);

/// Starts an api with alice (owner) and bob (member) in a private room.
async fn room_of_two(backend: Backend) -> (TestApi, TestUser, TestUser, String) {
    let api = TestApi::start(backend).await;
    let (alice, bob) = (api.user("alice").await, api.user("bob").await);
    let room = api.room(&alice, "team", "private").await.id.to_string();
    api.add(&alice, &room, &bob).await;
    (api, alice, bob, room)
}

/// `path` under `/v1/rooms/{room}`.
fn at(room: &str, path: &str) -> String {
    format!("/v1/rooms/{room}{path}")
}

/// Percent-encodes a path segment (an emoji).
fn encoded(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn timeline(api: &TestApi, user: &TestUser, room: &str) -> Vec<Value> {
    let response = api.get(&at(room, "/timeline"), user).await;
    let page = expect_status(response, StatusCode::OK).await;
    page["items"].as_array().unwrap().clone()
}

async fn entry(api: &TestApi, user: &TestUser, room: &str, id: &Value) -> Value {
    timeline(api, user, room)
        .await
        .into_iter()
        .find(|i| i["id"] == *id)
        .expect("the message is in the timeline")
}

/// PATCHes `message` as `user`.
async fn edit(
    api: &TestApi,
    user: &TestUser,
    room: &str,
    message: &Value,
    client_id: &str,
    body: &str,
) -> Response {
    let path = at(
        room,
        &format!("/messages/{}", message["id"].as_str().unwrap()),
    );
    let body = json!({ "client_id": client_id, "body": body });
    api.call(Method::PATCH, &path, user, Some(body)).await
}

/// DELETEs `message` as `user`.
async fn delete(api: &TestApi, user: &TestUser, room: &str, message: &Value) -> Response {
    let path = at(
        room,
        &format!("/messages/{}", message["id"].as_str().unwrap()),
    );
    api.call(Method::DELETE, &path, user, None).await
}

async fn a_reply_carries_a_preview_and_must_answer_this_room(backend: Backend) {
    let (api, alice, bob, room) = room_of_two(backend).await;
    let original = api.send(&alice, &room, "q", "who is in tomorrow?").await;
    let response = api
        .post(
            &at(&room, "/messages"),
            &bob,
            json!({ "client_id": "a", "body": "me", "reply_to": original["id"] }),
        )
        .await;
    let reply = expect_status(response, StatusCode::CREATED).await;
    assert_eq!(reply["reply_to"], original["id"]);
    assert_eq!(
        reply["reply_preview"],
        json!({ "sender": alice.user.id, "body": "who is in tomorrow?" })
    );
    // The log and the timeline serve the same.
    let response = api.get(&at(&room, "/events"), &bob).await;
    let log = expect_status(response, StatusCode::OK).await;
    assert_eq!(log["events"].as_array().unwrap().last(), Some(&reply));
    assert_eq!(
        entry(&api, &bob, &room, &reply["id"]).await["reply_preview"],
        reply["reply_preview"]
    );

    let elsewhere = api.room(&alice, "other", "private").await.id.to_string();
    let there = api.send(&alice, &elsewhere, "x", "elsewhere").await;
    let before = api.snapshot().await;
    for target in [there["id"].clone(), json!(uuid::Uuid::now_v7())] {
        let response = api
            .post(
                &at(&room, "/messages"),
                &bob,
                json!({ "client_id": "b", "body": "hm", "reply_to": target }),
            )
            .await;
        expect_error(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
    }
    assert_eq!(api.snapshot().await, before);
}

async fn edits_are_the_senders_and_idempotent(backend: Backend) {
    let (api, alice, bob, room) = room_of_two(backend).await;
    let message = api.send(&bob, &room, "m", "teh plan").await;
    let before = api.snapshot().await;
    expect_error(
        edit(&api, &alice, &room, &message, "e", "x").await,
        StatusCode::FORBIDDEN,
        "not_sender",
    )
    .await;
    assert_eq!(api.snapshot().await, before);

    let edited = expect_status(
        edit(&api, &bob, &room, &message, "e1", "the plan").await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(edited["type"], "message_edited");
    assert_eq!(edited["target"], message["id"]);
    assert_eq!(edited["body"], "the plan");
    let retried = expect_status(
        edit(&api, &bob, &room, &message, "e1", "other").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(retried, edited);

    let now = entry(&api, &alice, &room, &message["id"]).await;
    assert_eq!(now["body"], "the plan");
    assert_eq!(now["seq"], message["seq"]);
    assert_eq!(now["edited_at"], edited["ts"]);
}

async fn a_moderator_deletes_and_the_timeline_shows_a_tombstone(backend: Backend) {
    let (api, alice, bob, room) = room_of_two(backend).await;
    let alices = api.send(&alice, &room, "a", "mine").await;
    let bobs = api.send(&bob, &room, "b", "buy cheap pills").await;
    expect_error(
        delete(&api, &bob, &room, &alices).await,
        StatusCode::FORBIDDEN,
        "insufficient_role",
    )
    .await;
    let deleted = expect_status(delete(&api, &alice, &room, &bobs).await, StatusCode::OK).await;
    assert_eq!(deleted["type"], "message_deleted");
    assert_eq!(deleted["target"], bobs["id"]);
    assert_eq!(deleted["sender"], json!(alice.user.id));
    expect_error(
        delete(&api, &alice, &room, &bobs).await,
        StatusCode::CONFLICT,
        "message_deleted",
    )
    .await;

    let tombstone = entry(&api, &bob, &room, &bobs["id"]).await;
    assert_eq!(tombstone["deleted"], true);
    assert_eq!(tombstone["body"], "");
    assert_eq!(tombstone["seq"], bobs["seq"]);
    // Edits, reactions and pins of it are refused.
    let path = at(
        &room,
        &format!("/messages/{}", bobs["id"].as_str().unwrap()),
    );
    let response = api
        .call(
            Method::PATCH,
            &path,
            &bob,
            Some(json!({ "client_id": "e", "body": "x" })),
        )
        .await;
    expect_error(response, StatusCode::CONFLICT, "message_deleted").await;
    let response = api
        .call(
            Method::PUT,
            &format!("{path}/reactions/{}", encoded("👍")),
            &bob,
            None,
        )
        .await;
    expect_error(response, StatusCode::CONFLICT, "message_deleted").await;
}

async fn reactions_toggle_and_are_counted_for_the_reader(backend: Backend) {
    let (api, alice, bob, room) = room_of_two(backend).await;
    let message = api.send(&alice, &room, "m", "pizza friday?").await;
    let path = |emoji: &str| {
        at(
            &room,
            &format!(
                "/messages/{}/reactions/{}",
                message["id"].as_str().unwrap(),
                encoded(emoji)
            ),
        )
    };
    let added = expect_status(
        api.call(Method::PUT, &path("🍕"), &bob, None).await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(added["type"], "reaction_added");
    assert_eq!(added["emoji"], "🍕");
    expect_error(
        api.call(Method::PUT, &path("🍕"), &bob, None).await,
        StatusCode::CONFLICT,
        "already_reacted",
    )
    .await;
    // "❤" and "❤️" are one reaction.
    expect_status(
        api.call(Method::PUT, &path("❤"), &alice, None).await,
        StatusCode::CREATED,
    )
    .await;
    expect_error(
        api.call(Method::PUT, &path("❤️"), &alice, None).await,
        StatusCode::CONFLICT,
        "already_reacted",
    )
    .await;

    let seen = entry(&api, &bob, &room, &message["id"]).await["reactions"].clone();
    assert_eq!(
        seen,
        json!([
            { "emoji": "🍕", "count": 1, "me": true, "users": [bob.user.id] },
            { "emoji": "❤️", "count": 1, "me": false, "users": [alice.user.id] },
        ])
    );
    let removed = expect_status(
        api.call(Method::DELETE, &path("🍕"), &bob, None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(removed["type"], "reaction_removed");
    expect_error(
        api.call(Method::DELETE, &path("🍕"), &bob, None).await,
        StatusCode::CONFLICT,
        "not_reacted",
    )
    .await;
}

async fn pins_are_for_moderators(backend: Backend) {
    let (api, alice, bob, room) = room_of_two(backend).await;
    let message = api.send(&bob, &room, "m", "wifi password: hunter2").await;
    let path = at(&room, &format!("/pins/{}", message["id"].as_str().unwrap()));
    expect_error(
        api.call(Method::PUT, &path, &bob, None).await,
        StatusCode::FORBIDDEN,
        "insufficient_role",
    )
    .await;
    let pinned = expect_status(
        api.call(Method::PUT, &path, &alice, None).await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(pinned["type"], "message_pinned");
    expect_error(
        api.call(Method::PUT, &path, &alice, None).await,
        StatusCode::CONFLICT,
        "already_pinned",
    )
    .await;
    let pins = expect_status(api.get(&at(&room, "/pins"), &bob).await, StatusCode::OK).await;
    assert_eq!(pins["pins"][0]["id"], message["id"]);
    assert_eq!(pins["pins"][0]["pinned"]["by"], json!(alice.user.id));
    let unpinned = expect_status(
        api.call(Method::DELETE, &path, &alice, None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(unpinned["type"], "message_unpinned");
    let pins = expect_status(api.get(&at(&room, "/pins"), &bob).await, StatusCode::OK).await;
    assert_eq!(pins["pins"], json!([]));
}

async fn mentions_count_in_the_room_list_until_read(backend: Backend) {
    let (api, alice, bob, room) = room_of_two(backend).await;
    let mention = api.send(&alice, &room, "m1", "@bob can you look?").await;
    assert_eq!(mention["mentions"], json!([bob.user.id]));
    api.send(&alice, &room, "m2", "@room standup in 5").await;
    api.send(&alice, &room, "m3", "no mention").await;
    let mine = |rooms: Value| {
        rooms
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == room.as_str())
            .cloned()
            .unwrap()
    };
    let rooms = expect_status(api.get("/v1/rooms", &bob).await, StatusCode::OK).await;
    let team = mine(rooms);
    assert_eq!(
        (team["unread"].clone(), team["unread_mentions"].clone()),
        (json!(3), json!(2))
    );
    let response = api
        .post(
            &at(&room, "/read"),
            &bob,
            json!({ "seq": team["last_seq"] }),
        )
        .await;
    expect_status(response, StatusCode::OK).await;
    let rooms = expect_status(api.get("/v1/rooms", &bob).await, StatusCode::OK).await;
    assert_eq!(mine(rooms)["unread_mentions"], 0);
}

async fn changes_are_refused_to_outsiders_and_kicked_members(backend: Backend) {
    let (api, alice, bob, room) = room_of_two(backend).await;
    let carol = api.user("carol").await;
    let bobs = api.send(&bob, &room, "m", "hello").await;
    let message = at(
        &room,
        &format!("/messages/{}", bobs["id"].as_str().unwrap()),
    );
    let calls = |who: &TestUser| {
        let who = who.clone();
        let message = message.clone();
        let room = room.clone();
        let api = &api;
        async move {
            vec![
                api.call(
                    Method::PATCH,
                    &message,
                    &who,
                    Some(json!({ "client_id": "e", "body": "x" })),
                )
                .await,
                api.call(Method::DELETE, &message, &who, None).await,
                api.call(
                    Method::PUT,
                    &format!("{message}/reactions/{}", encoded("👍")),
                    &who,
                    None,
                )
                .await,
                api.get(&at(&room, "/timeline"), &who).await,
                api.get(&at(&room, "/pins"), &who).await,
            ]
        }
    };
    let before = api.snapshot().await;
    for response in calls(&carol).await {
        expect_error(response, StatusCode::FORBIDDEN, "not_member").await;
    }
    let response = api
        .call(
            Method::DELETE,
            &format!("/v1/rooms/{room}/members/{}", bob.user.id),
            &alice,
            None,
        )
        .await;
    expect_status(response, StatusCode::OK).await;
    let after_kick = api.snapshot().await;
    assert_ne!(after_kick, before);
    for response in calls(&bob).await {
        expect_error(response, StatusCode::FORBIDDEN, "not_member").await;
    }
    assert_eq!(api.snapshot().await, after_kick);
    // A logged-out session changes nothing either.
    let response = api.post("/v1/auth/logout", &alice, json!({})).await;
    expect_status(response, StatusCode::NO_CONTENT).await;
    let logged_out = api.snapshot().await;
    let response = api.call(Method::DELETE, &message, &alice, None).await;
    expect_error(response, StatusCode::UNAUTHORIZED, "session_revoked").await;
    assert_eq!(api.snapshot().await, logged_out);
}

async fn bad_input_to_message_routes_changes_nothing(backend: Backend) {
    let (api, alice, _bob, room) = room_of_two(backend).await;
    let message = api.send(&alice, &room, "m", "hello").await;
    let id = message["id"].as_str().unwrap();
    let before = api.snapshot().await;
    let path = at(&room, &format!("/messages/{id}"));
    for (body, code) in [
        (json!({ "client_id": "e", "body": "" }), "validation_failed"),
        (
            json!({ "client_id": "e", "body": "\u{200b}" }),
            "validation_failed",
        ),
        (
            json!({ "client_id": "e", "body": "x".repeat(4001) }),
            "validation_failed",
        ),
        (json!({ "client_id": "", "body": "x" }), "validation_failed"),
        (json!({ "body": "x" }), "validation_failed"),
        (
            json!({ "client_id": "e", "body": "x", "extra": 1 }),
            "validation_failed",
        ),
    ] {
        expect_error(
            api.call(Method::PATCH, &path, &alice, Some(body)).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            code,
        )
        .await;
    }
    for emoji in ["a", "👍👍", "", "%F0%9F"] {
        let path = at(
            &room,
            &format!("/messages/{id}/reactions/{}", encoded(emoji)),
        );
        let response = api.call(Method::PUT, &path, &alice, None).await;
        assert!(
            matches!(
                response.status(),
                StatusCode::UNPROCESSABLE_ENTITY | StatusCode::NOT_FOUND
            ),
            "{emoji:?}: {}",
            response.status()
        );
    }
    let response = api
        .call(
            Method::DELETE,
            &at(&room, "/messages/not-a-uuid"),
            &alice,
            None,
        )
        .await;
    expect_error(response, StatusCode::BAD_REQUEST, "invalid_path").await;
    let unknown = uuid::Uuid::now_v7();
    let response = api
        .call(
            Method::DELETE,
            &at(&room, &format!("/messages/{unknown}")),
            &alice,
            None,
        )
        .await;
    expect_error(response, StatusCode::NOT_FOUND, "not_found").await;
    // The room's own join event is no message.
    let log = expect_status(api.get(&at(&room, "/events"), &alice).await, StatusCode::OK).await;
    let joined = log["events"][0]["id"].as_str().unwrap().to_owned();
    let response = api
        .call(
            Method::PUT,
            &at(&room, &format!("/pins/{joined}")),
            &alice,
            None,
        )
        .await;
    expect_error(response, StatusCode::NOT_FOUND, "not_found").await;
    let response = api.get(&at(&room, "/timeline?limit=0"), &alice).await;
    expect_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(api.snapshot().await, before);
}

async fn changes_draw_on_the_send_budget(backend: Backend) {
    let api = TestApi::start_with(backend, |config| {
        config.common.send_rate_per_second = 1;
        config.common.send_burst = 2;
    })
    .await;
    let alice = api.user("alice").await;
    let room = api.room(&alice, "solo", "private").await.id.to_string();
    let message = api.send(&alice, &room, "m", "hello").await;
    let path = at(
        &room,
        &format!(
            "/messages/{}/reactions/{}",
            message["id"].as_str().unwrap(),
            encoded("👍")
        ),
    );
    expect_status(
        api.call(Method::PUT, &path, &alice, None).await,
        StatusCode::CREATED,
    )
    .await;
    let response = api.call(Method::DELETE, &path, &alice, None).await;
    expect_error(response, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    let seen = entry(&api, &alice, &room, &message["id"]).await;
    assert_eq!(
        seen["reactions"][0]["count"], 1,
        "the refused removal changed nothing"
    );
}
