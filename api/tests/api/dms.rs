//! Direct messages: the one room two users share, opened from either side,
//! created once even under concurrent opens, and closed to everyone else.

use futures::future::join_all;
use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::both_stores;
use crate::helpers::{expect_error, expect_status, TestApi, TestUser};
use chat_shared::testing::Backend;

both_stores!(
    opening_a_dm_creates_one_direct_room_for_both,
    concurrent_opens_from_both_sides_create_one_room,
    no_dm_with_yourself_or_with_nobody,
    a_dm_keeps_exactly_its_two_members,
    both_users_send_in_a_dm,
);

/// `from` opens the DM with `to`.
async fn open_dm(api: &TestApi, from: &TestUser, to: &TestUser) -> Response {
    api.post("/v1/dms", from, json!({ "user_id": to.user.id }))
        .await
}

/// The direct rooms in `user`'s room list.
async fn my_direct_rooms(api: &TestApi, user: &TestUser) -> Vec<Value> {
    let rooms = expect_status(api.get("/v1/rooms", user).await, StatusCode::OK).await;
    rooms
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "direct")
        .cloned()
        .collect()
}

async fn opening_a_dm_creates_one_direct_room_for_both(backend: Backend) {
    let api = TestApi::start(backend).await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;

    let room = expect_status(open_dm(&api, &alice, &bob).await, StatusCode::CREATED).await;
    assert_eq!(room["kind"], "direct");
    assert_eq!(room["name"], "");
    assert_eq!(room["last_seq"], 2);
    let id = room["id"].as_str().unwrap();

    let members = expect_status(
        api.get(&format!("/v1/rooms/{id}/members"), &bob).await,
        StatusCode::OK,
    )
    .await;
    let mut members: Vec<(Value, Value)> = members
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["user"]["id"].clone(), m["role"].clone()))
        .collect();
    members.sort_by_key(|(id, _)| id.to_string());
    let mut expected = vec![
        (json!(alice.user.id), json!("member")),
        (json!(bob.user.id), json!("member")),
    ];
    expected.sort_by_key(|(id, _)| id.to_string());
    assert_eq!(members, expected);

    let events = api.log(&alice, id).await;
    assert_eq!(events.len(), 2, "{events:?}");
    for (event, seq) in events.iter().zip(1..) {
        assert_eq!(event["seq"], seq);
        assert_eq!(event["type"], "member_joined");
        assert_eq!(event["sender"], json!(alice.user.id));
    }
    let joined: Vec<&Value> = events.iter().map(|e| &e["user"]).collect();
    assert!(joined.contains(&&json!(alice.user.id)), "{events:?}");
    assert!(joined.contains(&&json!(bob.user.id)), "{events:?}");

    // Either side opening it again finds the same room, unchanged.
    let before = api.snapshot().await;
    for (from, to) in [(&alice, &bob), (&bob, &alice)] {
        let again = expect_status(open_dm(&api, from, to).await, StatusCode::OK).await;
        assert_eq!(again, room);
    }
    assert_eq!(api.snapshot().await, before);
    // Listed for nobody until its first message (lazy creation).
    for user in [&alice, &bob] {
        assert!(my_direct_rooms(&api, user).await.is_empty());
    }
    api.send(&alice, id, "a1", "hello").await;
    for user in [&alice, &bob] {
        let direct = my_direct_rooms(&api, user).await;
        assert_eq!(direct.len(), 1, "{direct:?}");
        assert_eq!(direct[0]["id"], id);
        assert_eq!(direct[0]["role"], "member");
        // Bob opened it too, which accepted alice's request.
        assert_eq!(direct[0]["request"], false);
    }
    // DMs stay out of the public directory.
    let public = expect_status(api.get("/v1/rooms/public", &alice).await, StatusCode::OK).await;
    assert!(public.as_array().unwrap().iter().all(|r| r["id"] != id));
}

async fn concurrent_opens_from_both_sides_create_one_room(backend: Backend) {
    let api = TestApi::start(backend).await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;

    let opens = (0..10).map(|n| {
        let (from, to) = if n % 2 == 0 {
            (&alice, &bob)
        } else {
            (&bob, &alice)
        };
        open_dm(&api, from, to)
    });
    let mut created = 0;
    let mut ids = Vec::new();
    for response in join_all(opens).await {
        let status = response.status();
        let text = response.text().await.unwrap();
        match status {
            StatusCode::CREATED => created += 1,
            StatusCode::OK => {}
            other => panic!("unexpected status {other}; body: {text}"),
        }
        let room: Value = serde_json::from_str(&text).unwrap();
        ids.push(room["id"].as_str().unwrap().to_owned());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(created, 1);

    // One room, holding its two members and nothing from the losers.
    let events = api.log(&alice, &ids[0]).await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[1]["seq"], 2);
    api.send(&bob, &ids[0], "b1", "hi").await;
    for user in [&alice, &bob] {
        let direct = my_direct_rooms(&api, user).await;
        assert_eq!(direct.len(), 1, "{direct:?}");
        assert_eq!(direct[0]["id"], ids[0].as_str());
    }
}

async fn no_dm_with_yourself_or_with_nobody(backend: Backend) {
    let api = TestApi::start(backend).await;
    let alice = api.user("alice").await;
    let before = api.snapshot().await;

    expect_error(
        open_dm(&api, &alice, &alice).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    let response = api
        .post("/v1/dms", &alice, json!({ "user_id": Uuid::now_v7() }))
        .await;
    expect_error(response, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(api.snapshot().await, before);
    assert!(my_direct_rooms(&api, &alice).await.is_empty());
}

async fn a_dm_keeps_exactly_its_two_members(backend: Backend) {
    let api = TestApi::start(backend).await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let carol = api.user("carol").await;
    let room = expect_status(open_dm(&api, &alice, &bob).await, StatusCode::CREATED).await;
    let id = room["id"].as_str().unwrap();
    let before = api.snapshot().await;

    for member in [&alice, &bob] {
        expect_error(
            api.post(&format!("/v1/rooms/{id}/leave"), member, json!({}))
                .await,
            StatusCode::CONFLICT,
            "direct_room",
        )
        .await;
    }
    expect_error(
        api.post(
            &format!("/v1/rooms/{id}/members"),
            &alice,
            json!({ "user_id": carol.user.id }),
        )
        .await,
        StatusCode::FORBIDDEN,
        "direct_room",
    )
    .await;
    let response = api
        .call(
            Method::PUT,
            &format!("/v1/rooms/{id}/bans/{}", bob.user.id),
            &alice,
            Some(json!({})),
        )
        .await;
    expect_error(response, StatusCode::FORBIDDEN, "direct_room").await;
    let response = api
        .call(
            Method::PATCH,
            &format!("/v1/rooms/{id}"),
            &alice,
            Some(json!({ "name": "us" })),
        )
        .await;
    expect_error(response, StatusCode::FORBIDDEN, "direct_room").await;

    // A third user can neither join, read nor look at it.
    expect_error(
        api.post(&format!("/v1/rooms/{id}/join"), &carol, json!({}))
            .await,
        StatusCode::FORBIDDEN,
        "invite_only",
    )
    .await;
    expect_error(
        api.get(&format!("/v1/rooms/{id}"), &carol).await,
        StatusCode::FORBIDDEN,
        "not_member",
    )
    .await;
    expect_error(
        api.get(&format!("/v1/rooms/{id}/events"), &carol).await,
        StatusCode::FORBIDDEN,
        "not_member",
    )
    .await;
    assert_eq!(api.snapshot().await, before);
}

async fn both_users_send_in_a_dm(backend: Backend) {
    let api = TestApi::start(backend).await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let carol = api.user("carol").await;
    let room = expect_status(open_dm(&api, &alice, &bob).await, StatusCode::CREATED).await;
    let id = room["id"].as_str().unwrap();

    let hello = api.send(&alice, id, "a1", "hi bob").await;
    let reply = api.send(&bob, id, "b1", "hi alice").await;
    assert_eq!(hello["seq"], 3);
    assert_eq!(reply["seq"], 4);

    let events = api.log(&bob, id).await;
    let messages: Vec<(&Value, &Value, &Value)> = events
        .iter()
        .filter(|e| e["type"] == "message")
        .map(|e| (&e["seq"], &e["sender"], &e["body"]))
        .collect();
    assert_eq!(
        messages,
        [
            (&json!(3), &json!(alice.user.id), &json!("hi bob")),
            (&json!(4), &json!(bob.user.id), &json!("hi alice")),
        ]
    );

    let before = api.snapshot().await;
    let response = api
        .post(
            &format!("/v1/rooms/{id}/messages"),
            &carol,
            json!({ "client_id": "c1", "body": "me too" }),
        )
        .await;
    expect_error(response, StatusCode::FORBIDDEN, "not_member").await;
    assert_eq!(api.snapshot().await, before);
}
