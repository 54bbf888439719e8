//! Rooms as their members see them: the public directory, joining, my room
//! list with read markers, creating, reading, editing, deleting and leaving.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::both_stores;
use crate::helpers::{expect_error, expect_status, TestApi, TestUser, GENERAL};
use chat_shared::testing::Backend;

both_stores!(
    seeded_public_rooms_are_listed_and_joinable,
    my_rooms_carry_the_head_and_my_read_marker,
    read_markers_only_move_forward_and_stop_at_the_head,
    a_new_private_room_starts_with_its_owner,
    direct_rooms_are_not_created_here,
    private_rooms_are_closed_to_non_members,
    admins_edit_a_room_and_the_log_records_it,
    only_the_owner_deletes_a_room,
    members_leave_but_owners_hand_over_first,
);

/// `user`'s entry for `room` in `GET /v1/rooms`, if listed.
async fn my_room(api: &TestApi, user: &TestUser, room: &str) -> Option<Value> {
    let rooms = expect_status(api.get("/v1/rooms", user).await, StatusCode::OK).await;
    rooms
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == room)
        .cloned()
}

async fn seeded_public_rooms_are_listed_and_joinable(backend: Backend) {
    let api = TestApi::start(backend).await;
    let alice = api.user("alice").await;

    let public = expect_status(api.get("/v1/rooms/public", &alice).await, StatusCode::OK).await;
    let names: Vec<&str> = public
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["general", "random", "tech"]);
    assert!(public
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["kind"] == "public"));
    assert!(my_room(&api, &alice, GENERAL).await.is_none());

    let path = format!("/v1/rooms/{GENERAL}/join");
    let joined = expect_status(
        api.post(&path, &alice, json!({})).await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(joined["type"], "member_joined");
    assert_eq!(joined["room_id"], GENERAL);
    assert_eq!(joined["seq"], 1);
    assert_eq!(joined["user"], json!(alice.user.id));
    assert_eq!(joined["sender"], json!(alice.user.id));

    let before = api.snapshot().await;
    expect_error(
        api.post(&path, &alice, json!({})).await,
        StatusCode::CONFLICT,
        "already_member",
    )
    .await;
    assert_eq!(api.snapshot().await, before);

    let general = my_room(&api, &alice, GENERAL).await.unwrap();
    assert_eq!(general["role"], "member");
    assert_eq!(general["last_seq"], 1);
}

async fn my_rooms_carry_the_head_and_my_read_marker(backend: Backend) {
    let api = TestApi::start(backend).await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let room = api.room(&alice, "books", "public").await.id.to_string();
    api.join(&bob, &room).await;
    api.send(&alice, &room, "m1", "first").await;
    api.send(&alice, &room, "m2", "second").await;

    let rooms = expect_status(api.get("/v1/rooms", &bob).await, StatusCode::OK).await;
    let rooms = rooms.as_array().unwrap();
    assert_eq!(rooms.len(), 1, "{rooms:?}");
    assert_eq!(rooms[0]["id"], room);
    assert_eq!(rooms[0]["name"], "books");
    assert_eq!(rooms[0]["role"], "member");
    assert_eq!(rooms[0]["last_seq"], 4);
    assert_eq!(rooms[0]["last_read_seq"], 0);

    let mine = my_room(&api, &alice, &room).await.unwrap();
    assert_eq!(mine["role"], "owner");
    assert_eq!(mine["last_seq"], 4);
}

async fn read_markers_only_move_forward_and_stop_at_the_head(backend: Backend) {
    let api = TestApi::start(backend).await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let room = api.room(&alice, "books", "public").await.id.to_string();
    api.join(&bob, &room).await;
    for n in 0..3 {
        api.send(&alice, &room, &format!("m{n}"), "hello").await;
    }
    let path = format!("/v1/rooms/{room}/read");
    let mark = |seq: i64| api.post(&path, &bob, json!({ "seq": seq }));
    let unread = || async { my_room(&api, &bob, &room).await.unwrap()["unread"].clone() };
    assert_eq!(unread().await, 3, "alice's three messages");

    let marker = expect_status(mark(3).await, StatusCode::OK).await;
    assert_eq!(marker, json!({ "last_read_seq": 3 }));
    assert_eq!(unread().await, 2);
    // Backwards is ignored: the stored marker stays.
    let marker = expect_status(mark(1).await, StatusCode::OK).await;
    assert_eq!(marker, json!({ "last_read_seq": 3 }));
    // Past the head is capped at the head (seq 5).
    let marker = expect_status(mark(99).await, StatusCode::OK).await;
    assert_eq!(marker, json!({ "last_read_seq": 5 }));
    let mine = my_room(&api, &bob, &room).await.unwrap();
    assert_eq!(mine["last_seq"], 5);
    assert_eq!(mine["last_read_seq"], 5);
    assert_eq!(mine["unread"], 0);
    // The sender read as far as their own messages.
    let hers = my_room(&api, &alice, &room).await.unwrap();
    assert_eq!(
        (hers["last_read_seq"].clone(), hers["unread"].clone()),
        (json!(5), json!(0))
    );

    // Only members have a marker.
    let carol = api.user("carol").await;
    let before = api.snapshot().await;
    expect_error(
        api.post(&path, &carol, json!({ "seq": 1 })).await,
        StatusCode::FORBIDDEN,
        "not_member",
    )
    .await;
    assert_eq!(api.snapshot().await, before);
}

async fn a_new_private_room_starts_with_its_owner(backend: Backend) {
    let api = TestApi::start(backend).await;
    let alice = api.user("alice").await;
    let response = api
        .post(
            "/v1/rooms",
            &alice,
            json!({ "name": "secret", "topic": "plans", "kind": "private" }),
        )
        .await;
    let room = expect_status(response, StatusCode::CREATED).await;
    assert_eq!(room["kind"], "private");
    assert_eq!(room["name"], "secret");
    assert_eq!(room["topic"], "plans");
    assert_eq!(room["created_by"], json!(alice.user.id));
    assert_eq!(room["last_seq"], 1);
    let id = room["id"].as_str().unwrap();

    let events = api.log(&alice, id).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["seq"], 1);
    assert_eq!(events[0]["type"], "member_joined");
    assert_eq!(events[0]["user"], json!(alice.user.id));
    assert_eq!(events[0]["sender"], json!(alice.user.id));

    let mine = my_room(&api, &alice, id).await.unwrap();
    assert_eq!(mine["role"], "owner");
    assert_eq!(mine["last_seq"], 1);
    // Private rooms stay out of the directory.
    let public = expect_status(api.get("/v1/rooms/public", &alice).await, StatusCode::OK).await;
    assert!(public.as_array().unwrap().iter().all(|r| r["id"] != id));
}

async fn direct_rooms_are_not_created_here(backend: Backend) {
    let api = TestApi::start(backend).await;
    let alice = api.user("alice").await;
    let before = api.snapshot().await;
    let response = api
        .post(
            "/v1/rooms",
            &alice,
            json!({ "name": "us", "kind": "direct" }),
        )
        .await;
    expect_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(api.snapshot().await, before);
}

async fn private_rooms_are_closed_to_non_members(backend: Backend) {
    let api = TestApi::start(backend).await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let room = api.room(&alice, "secret", "private").await.id.to_string();
    let before = api.snapshot().await;

    expect_error(
        api.get(&format!("/v1/rooms/{room}"), &bob).await,
        StatusCode::FORBIDDEN,
        "not_member",
    )
    .await;
    expect_error(
        api.post(&format!("/v1/rooms/{room}/join"), &bob, json!({}))
            .await,
        StatusCode::FORBIDDEN,
        "invite_only",
    )
    .await;
    let missing = Uuid::now_v7();
    expect_error(
        api.get(&format!("/v1/rooms/{missing}"), &bob).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    expect_error(
        api.post(&format!("/v1/rooms/{missing}/join"), &bob, json!({}))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_eq!(api.snapshot().await, before);

    // A public room can be read by anyone; the private one by its members.
    let general = expect_status(
        api.get(&format!("/v1/rooms/{GENERAL}"), &bob).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(general["name"], "general");
    let secret = expect_status(
        api.get(&format!("/v1/rooms/{room}"), &alice).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(secret["id"], room);
}

async fn admins_edit_a_room_and_the_log_records_it(backend: Backend) {
    let api = TestApi::start(backend).await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let room = api.room(&alice, "books", "public").await.id.to_string();
    api.join(&bob, &room).await;
    let path = format!("/v1/rooms/{room}");

    let before = api.snapshot().await;
    let response = api
        .call(Method::PATCH, &path, &bob, Some(json!({ "name": "mine" })))
        .await;
    expect_error(response, StatusCode::FORBIDDEN, "insufficient_role").await;
    assert_eq!(api.snapshot().await, before);

    let response = api
        .call(
            Method::PATCH,
            &path,
            &alice,
            Some(json!({ "name": "novels", "topic": "fiction only" })),
        )
        .await;
    let updated = expect_status(response, StatusCode::OK).await;
    assert_eq!(updated["name"], "novels");
    assert_eq!(updated["topic"], "fiction only");
    assert_eq!(updated["last_seq"], 3);

    let events = api.log(&bob, &room).await;
    let last = events.last().unwrap();
    assert_eq!(last["seq"], 3);
    assert_eq!(last["type"], "room_updated");
    assert_eq!(last["name"], "novels");
    assert_eq!(last["topic"], "fiction only");
    assert_eq!(last["sender"], json!(alice.user.id));

    // An absent field stays as it is.
    let response = api
        .call(Method::PATCH, &path, &alice, Some(json!({ "topic": "" })))
        .await;
    let updated = expect_status(response, StatusCode::OK).await;
    assert_eq!(updated["name"], "novels");
    assert_eq!(updated["topic"], "");
    let seen = expect_status(api.get(&path, &bob).await, StatusCode::OK).await;
    assert_eq!(seen, updated);

    // Edits that change nothing write nothing: no event, the same room.
    let before = api.snapshot().await;
    for body in [
        json!({}),
        json!({ "name": "novels" }),
        json!({ "name": "novels", "topic": "" }),
    ] {
        let response = api.call(Method::PATCH, &path, &alice, Some(body)).await;
        let same = expect_status(response, StatusCode::OK).await;
        assert_eq!(same, updated);
    }
    assert_eq!(
        api.snapshot().await,
        before,
        "a no-op edit changed the store"
    );
}

async fn only_the_owner_deletes_a_room(backend: Backend) {
    let api = TestApi::start(backend).await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let room = api.room(&alice, "books", "private").await.id.to_string();
    api.add(&alice, &room, &bob).await;
    let response = api
        .call(
            Method::PUT,
            &format!("/v1/rooms/{room}/members/{}/role", bob.user.id),
            &alice,
            Some(json!({ "role": "admin" })),
        )
        .await;
    expect_status(response, StatusCode::OK).await;
    let path = format!("/v1/rooms/{room}");

    // Even an admin may not.
    let before = api.snapshot().await;
    let response = api.call(Method::DELETE, &path, &bob, None).await;
    expect_error(response, StatusCode::FORBIDDEN, "insufficient_role").await;
    assert_eq!(api.snapshot().await, before);

    let response = api.call(Method::DELETE, &path, &alice, None).await;
    expect_status(response, StatusCode::NO_CONTENT).await;
    expect_error(
        api.get(&path, &alice).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    expect_error(
        api.get(&format!("{path}/events"), &bob).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert!(my_room(&api, &alice, &room).await.is_none());
    assert!(my_room(&api, &bob, &room).await.is_none());
    let response = api.call(Method::DELETE, &path, &alice, None).await;
    expect_error(response, StatusCode::NOT_FOUND, "not_found").await;
}

async fn members_leave_but_owners_hand_over_first(backend: Backend) {
    let api = TestApi::start(backend).await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let carol = api.user("carol").await;
    let room = api.room(&alice, "books", "public").await.id.to_string();
    api.join(&bob, &room).await;
    let path = format!("/v1/rooms/{room}/leave");

    let left = expect_status(api.post(&path, &bob, json!({})).await, StatusCode::OK).await;
    assert_eq!(left["type"], "member_left");
    assert_eq!(left["seq"], 3);
    assert_eq!(left["user"], json!(bob.user.id));
    assert_eq!(left["sender"], json!(bob.user.id));
    assert_eq!(left["reason"], "left");
    assert!(my_room(&api, &bob, &room).await.is_none());
    assert_eq!(api.log(&alice, &room).await.last().unwrap(), &left);

    let before = api.snapshot().await;
    expect_error(
        api.post(&path, &alice, json!({})).await,
        StatusCode::CONFLICT,
        "owner_cannot_leave",
    )
    .await;
    for outsider in [&bob, &carol] {
        expect_error(
            api.post(&path, outsider, json!({})).await,
            StatusCode::FORBIDDEN,
            "not_member",
        )
        .await;
    }
    assert_eq!(api.snapshot().await, before);
}
