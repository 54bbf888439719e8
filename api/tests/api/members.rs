//! Membership administration: the member list, invitations, kicks, roles,
//! ownership hand-over and bans, with who may do what to whom.

use reqwest::{Method, Response, StatusCode};
use serde_json::json;
use uuid::Uuid;

use crate::both_stores;
use crate::helpers::{expect_error, expect_status, TestApi, TestUser};
use chat_shared::testing::Backend;

both_stores!(
    members_are_listed_to_members_only,
    owners_and_admins_invite_into_private_rooms,
    any_member_invites_into_a_public_room,
    invitations_need_a_user_who_is_not_in_yet,
    a_kicked_member_loses_history_and_sending,
    moderators_act_only_on_lower_ranks,
    the_owner_changes_roles,
    handing_over_ownership_demotes_the_old_owner,
    a_ban_removes_and_keeps_out_until_lifted,
    nobody_bans_themselves,
);

/// `by` invites `user` into `room`.
async fn invite(api: &TestApi, by: &TestUser, room: &str, user: &TestUser) -> Response {
    api.post(
        &format!("/v1/rooms/{room}/members"),
        by,
        json!({ "user_id": user.user.id }),
    )
    .await
}

/// `by` sets `user`'s role in `room`.
async fn set_role(
    api: &TestApi,
    by: &TestUser,
    room: &str,
    user: &TestUser,
    role: &str,
) -> Response {
    api.call(
        Method::PUT,
        &format!("/v1/rooms/{room}/members/{}/role", user.user.id),
        by,
        Some(json!({ "role": role })),
    )
    .await
}

/// `by` kicks `user` out of `room`.
async fn kick(api: &TestApi, by: &TestUser, room: &str, user: &TestUser) -> Response {
    let path = format!("/v1/rooms/{room}/members/{}", user.user.id);
    api.call(Method::DELETE, &path, by, None).await
}

/// `by` bans `user` from `room`.
async fn ban(api: &TestApi, by: &TestUser, room: &str, user: &TestUser) -> Response {
    let path = format!("/v1/rooms/{room}/bans/{}", user.user.id);
    api.call(Method::PUT, &path, by, Some(json!({ "reason": "spam" })))
        .await
}

/// A private room owned by `owner` with `members` invited (and each
/// accepting), in order: two events each.
async fn private_room(api: &TestApi, owner: &TestUser, members: &[&TestUser]) -> String {
    let room = api.room(owner, "secret", "private").await.id.to_string();
    for member in members {
        api.add(owner, &room, member).await;
    }
    room
}

/// The id of `user`'s pending invitation into `room`.
async fn invitation(api: &TestApi, user: &TestUser, room: &str) -> String {
    let invites = expect_status(api.get("/v1/invites", user).await, StatusCode::OK).await;
    invites
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["room"]["id"] == room)
        .unwrap_or_else(|| panic!("no invitation into {room}: {invites}"))["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The members of `room` as (username, role), in join order.
async fn roles(api: &TestApi, user: &TestUser, room: &str) -> Vec<(String, String)> {
    let members = expect_status(
        api.get(&format!("/v1/rooms/{room}/members"), user).await,
        StatusCode::OK,
    )
    .await;
    members
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let name = m["user"]["username"].as_str().unwrap().to_owned();
            (name, m["role"].as_str().unwrap().to_owned())
        })
        .collect()
}

/// `(username, role)` pairs as `roles` returns them.
fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(name, role)| (name.to_string(), role.to_string()))
        .collect()
}

async fn members_are_listed_to_members_only(backend: Backend) {
    let api = TestApi::start(backend).await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let carol = api.user("carol").await;
    let room = api.room(&alice, "books", "public").await.id.to_string();
    api.join(&bob, &room).await;

    let members = expect_status(
        api.get(&format!("/v1/rooms/{room}/members"), &bob).await,
        StatusCode::OK,
    )
    .await;
    let members = members.as_array().unwrap();
    assert_eq!(members.len(), 2, "{members:?}");
    assert_eq!(members[0]["user"]["id"], json!(alice.user.id));
    assert_eq!(members[0]["role"], "owner");
    assert_eq!(members[1]["user"]["id"], json!(bob.user.id));
    assert_eq!(members[1]["role"], "member");
    assert_eq!(members[1]["last_read_seq"], 0);

    // Even a public room's member list is for its members.
    expect_error(
        api.get(&format!("/v1/rooms/{room}/members"), &carol).await,
        StatusCode::FORBIDDEN,
        "not_member",
    )
    .await;
    expect_error(
        api.get(&format!("/v1/rooms/{}/members", Uuid::now_v7()), &carol)
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

async fn owners_and_admins_invite_into_private_rooms(backend: Backend) {
    let api = TestApi::start(backend).await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let carol = api.user("carol").await;
    let dave = api.user("dave").await;
    let room = api.room(&alice, "secret", "private").await.id.to_string();

    let invited = expect_status(invite(&api, &alice, &room, &bob).await, StatusCode::CREATED).await;
    assert_eq!(invited["type"], "member_invited");
    assert_eq!(invited["seq"], 2);
    assert_eq!(invited["user"], json!(bob.user.id));
    assert_eq!(invited["sender"], json!(alice.user.id));
    // Not in until he says yes.
    expect_error(
        api.get(&format!("/v1/rooms/{room}"), &bob).await,
        StatusCode::FORBIDDEN,
        "not_member",
    )
    .await;
    let pending = expect_status(api.get("/v1/invites", &bob).await, StatusCode::OK).await;
    assert_eq!(pending[0]["room"]["id"], room.as_str());
    assert_eq!(pending[0]["room"]["name"], "secret");
    assert_eq!(pending[0]["invited_by"]["id"], json!(alice.user.id));
    let id = pending[0]["id"].as_str().unwrap();
    let joined = expect_status(
        api.post(&format!("/v1/invites/{id}/accept"), &bob, json!({}))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(joined["type"], "member_joined");
    assert_eq!(joined["seq"], 3);
    assert_eq!(joined["user"], json!(bob.user.id));
    assert_eq!(joined["sender"], json!(bob.user.id));
    // Bob can now see the room and its log.
    expect_status(
        api.get(&format!("/v1/rooms/{room}"), &bob).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(api.log(&bob, &room).await.last().unwrap(), &joined);

    // A plain member may not invite into a private room.
    let before = api.snapshot().await;
    expect_error(
        invite(&api, &bob, &room, &carol).await,
        StatusCode::FORBIDDEN,
        "insufficient_role",
    )
    .await;
    assert_eq!(api.snapshot().await, before);

    // An admin may.
    expect_status(
        set_role(&api, &alice, &room, &bob, "admin").await,
        StatusCode::OK,
    )
    .await;
    let invited = expect_status(invite(&api, &bob, &room, &carol).await, StatusCode::CREATED).await;
    assert_eq!(invited["user"], json!(carol.user.id));
    assert_eq!(invited["sender"], json!(bob.user.id));

    // Outsiders cannot invite at all.
    let before = api.snapshot().await;
    expect_error(
        invite(&api, &dave, &room, &dave).await,
        StatusCode::FORBIDDEN,
        "not_member",
    )
    .await;
    assert_eq!(api.snapshot().await, before);
}

async fn any_member_invites_into_a_public_room(backend: Backend) {
    let api = TestApi::start(backend).await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let carol = api.user("carol").await;
    let room = api.room(&alice, "books", "public").await.id.to_string();
    api.join(&bob, &room).await;

    // In a public room too, an invitation waits for consent: nobody is
    // shown to a room's members (their presence, their typing) unasked.
    let invited = expect_status(invite(&api, &bob, &room, &carol).await, StatusCode::CREATED).await;
    assert_eq!(invited["type"], "member_invited");
    assert_eq!(invited["seq"], 3);
    assert_eq!(invited["user"], json!(carol.user.id));
    assert_eq!(invited["sender"], json!(bob.user.id));
    assert_eq!(
        roles(&api, &bob, &room).await,
        pairs(&[("alice", "owner"), ("bob", "member")])
    );
    let id = invitation(&api, &carol, &room).await;
    let joined = expect_status(
        api.post(&format!("/v1/invites/{id}/accept"), &carol, json!({}))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(joined["seq"], 4);
    assert_eq!(
        roles(&api, &carol, &room).await,
        pairs(&[("alice", "owner"), ("bob", "member"), ("carol", "member")])
    );
}

async fn invitations_need_a_user_who_is_not_in_yet(backend: Backend) {
    let api = TestApi::start(backend).await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let room = private_room(&api, &alice, &[&bob]).await;
    let path = format!("/v1/rooms/{room}/members");
    let before = api.snapshot().await;

    let response = api
        .post(&path, &alice, json!({ "user_id": Uuid::now_v7() }))
        .await;
    expect_error(response, StatusCode::NOT_FOUND, "not_found").await;
    expect_error(
        invite(&api, &alice, &room, &bob).await,
        StatusCode::CONFLICT,
        "already_member",
    )
    .await;
    expect_error(
        invite(&api, &alice, &room, &alice).await,
        StatusCode::CONFLICT,
        "already_member",
    )
    .await;
    assert_eq!(api.snapshot().await, before);

    // One pending invitation per person and room.
    let carol = api.user("carol").await;
    expect_status(
        invite(&api, &alice, &room, &carol).await,
        StatusCode::CREATED,
    )
    .await;
    let before = api.snapshot().await;
    expect_error(
        invite(&api, &alice, &room, &carol).await,
        StatusCode::CONFLICT,
        "already_invited",
    )
    .await;
    assert_eq!(api.snapshot().await, before);
}

async fn a_kicked_member_loses_history_and_sending(backend: Backend) {
    let api = TestApi::start(backend).await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let carol = api.user("carol").await;
    let room = private_room(&api, &alice, &[&bob, &carol]).await;
    expect_status(
        set_role(&api, &alice, &room, &bob, "admin").await,
        StatusCode::OK,
    )
    .await;
    api.send(&carol, &room, "c1", "hello").await;

    let left = expect_status(kick(&api, &bob, &room, &carol).await, StatusCode::OK).await;
    assert_eq!(left["type"], "member_left");
    assert_eq!(left["seq"], 8);
    assert_eq!(left["user"], json!(carol.user.id));
    assert_eq!(left["sender"], json!(bob.user.id));
    assert_eq!(left["reason"], "kicked");
    assert_eq!(api.log(&alice, &room).await.last().unwrap(), &left);

    let before = api.snapshot().await;
    expect_error(
        api.get(&format!("/v1/rooms/{room}/events"), &carol).await,
        StatusCode::FORBIDDEN,
        "not_member",
    )
    .await;
    let response = api
        .post(
            &format!("/v1/rooms/{room}/messages"),
            &carol,
            json!({ "client_id": "c2", "body": "let me back" }),
        )
        .await;
    expect_error(response, StatusCode::FORBIDDEN, "not_member").await;
    // A kick is not a ban, but a private room still needs an invitation.
    expect_error(
        api.post(&format!("/v1/rooms/{room}/join"), &carol, json!({}))
            .await,
        StatusCode::FORBIDDEN,
        "invite_only",
    )
    .await;
    // Someone already gone cannot be kicked again.
    expect_error(
        kick(&api, &bob, &room, &carol).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_eq!(api.snapshot().await, before);
}

async fn moderators_act_only_on_lower_ranks(backend: Backend) {
    let api = TestApi::start(backend).await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let carol = api.user("carol").await;
    let dave = api.user("dave").await;
    let room = private_room(&api, &alice, &[&bob, &carol, &dave]).await;
    for admin in [&bob, &carol] {
        expect_status(
            set_role(&api, &alice, &room, admin, "admin").await,
            StatusCode::OK,
        )
        .await;
    }
    let before = api.snapshot().await;

    // A member cannot kick or ban anyone.
    for (actor, target) in [(&dave, &carol), (&dave, &alice)] {
        expect_error(
            kick(&api, actor, &room, target).await,
            StatusCode::FORBIDDEN,
            "insufficient_role",
        )
        .await;
        expect_error(
            ban(&api, actor, &room, target).await,
            StatusCode::FORBIDDEN,
            "insufficient_role",
        )
        .await;
    }
    // An admin cannot touch the owner or a fellow admin.
    for target in [&alice, &carol] {
        expect_error(
            kick(&api, &bob, &room, target).await,
            StatusCode::FORBIDDEN,
            "insufficient_role",
        )
        .await;
        expect_error(
            ban(&api, &bob, &room, target).await,
            StatusCode::FORBIDDEN,
            "insufficient_role",
        )
        .await;
    }
    assert_eq!(api.snapshot().await, before);
    assert_eq!(
        roles(&api, &alice, &room).await,
        pairs(&[
            ("alice", "owner"),
            ("bob", "admin"),
            ("carol", "admin"),
            ("dave", "member"),
        ])
    );
    let bans = expect_status(
        api.get(&format!("/v1/rooms/{room}/bans"), &alice).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(bans, json!([]));
}

async fn the_owner_changes_roles(backend: Backend) {
    let api = TestApi::start(backend).await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let carol = api.user("carol").await;
    let room = api.room(&alice, "books", "public").await.id.to_string();
    api.join(&bob, &room).await;
    api.join(&carol, &room).await;

    let events = expect_status(
        set_role(&api, &alice, &room, &bob, "admin").await,
        StatusCode::OK,
    )
    .await;
    let events = events.as_array().unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["type"], "role_changed");
    assert_eq!(events[0]["seq"], 4);
    assert_eq!(events[0]["user"], json!(bob.user.id));
    assert_eq!(events[0]["role"], "admin");
    assert_eq!(events[0]["sender"], json!(alice.user.id));
    assert_eq!(api.log(&carol, &room).await.last().unwrap(), &events[0]);

    // Not even an admin may change roles, nor may a member.
    let before = api.snapshot().await;
    for (actor, target, role) in [(&bob, &carol, "admin"), (&carol, &bob, "member")] {
        expect_error(
            set_role(&api, actor, &room, target, role).await,
            StatusCode::FORBIDDEN,
            "insufficient_role",
        )
        .await;
    }
    assert_eq!(api.snapshot().await, before);

    // And back down.
    let events = expect_status(
        set_role(&api, &alice, &room, &bob, "member").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(events[0]["role"], "member");
    assert_eq!(
        roles(&api, &alice, &room).await,
        pairs(&[("alice", "owner"), ("bob", "member"), ("carol", "member")])
    );
}

async fn handing_over_ownership_demotes_the_old_owner(backend: Backend) {
    let api = TestApi::start(backend).await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let room = private_room(&api, &alice, &[&bob]).await;

    let events = expect_status(
        set_role(&api, &alice, &room, &bob, "owner").await,
        StatusCode::OK,
    )
    .await;
    let events = events.as_array().unwrap();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0]["type"], "role_changed");
    assert_eq!(events[0]["seq"], 4);
    assert_eq!(events[0]["user"], json!(bob.user.id));
    assert_eq!(events[0]["role"], "owner");
    assert_eq!(events[1]["type"], "role_changed");
    assert_eq!(events[1]["seq"], 5);
    assert_eq!(events[1]["user"], json!(alice.user.id));
    assert_eq!(events[1]["role"], "admin");
    assert_eq!(
        roles(&api, &alice, &room).await,
        pairs(&[("alice", "admin"), ("bob", "owner")])
    );

    // The new owner is the one who may not leave; the old one now may.
    let before = api.snapshot().await;
    expect_error(
        api.post(&format!("/v1/rooms/{room}/leave"), &bob, json!({}))
            .await,
        StatusCode::CONFLICT,
        "owner_cannot_leave",
    )
    .await;
    expect_error(
        set_role(&api, &alice, &room, &bob, "member").await,
        StatusCode::FORBIDDEN,
        "insufficient_role",
    )
    .await;
    assert_eq!(api.snapshot().await, before);
    let left = expect_status(
        api.post(&format!("/v1/rooms/{room}/leave"), &alice, json!({}))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(left["type"], "member_left");
    assert_eq!(left["user"], json!(alice.user.id));
    assert_eq!(left["reason"], "left");
    assert_eq!(roles(&api, &bob, &room).await, pairs(&[("bob", "owner")]));
}

async fn a_ban_removes_and_keeps_out_until_lifted(backend: Backend) {
    let api = TestApi::start(backend).await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let carol = api.user("carol").await;
    let room = api.room(&alice, "books", "public").await.id.to_string();
    api.join(&bob, &room).await;
    api.join(&carol, &room).await;

    let outcome = expect_status(ban(&api, &alice, &room, &bob).await, StatusCode::CREATED).await;
    let left = &outcome["event"];
    assert_eq!(left["type"], "member_left");
    assert_eq!(left["seq"], 4);
    assert_eq!(left["user"], json!(bob.user.id));
    assert_eq!(left["sender"], json!(alice.user.id));
    assert_eq!(left["reason"], "banned");
    assert_eq!(api.log(&alice, &room).await.last().unwrap(), left);

    // Kept out: no rejoining, no invitation, no second ban.
    let before = api.snapshot().await;
    expect_error(
        api.post(&format!("/v1/rooms/{room}/join"), &bob, json!({}))
            .await,
        StatusCode::FORBIDDEN,
        "banned",
    )
    .await;
    expect_error(
        invite(&api, &carol, &room, &bob).await,
        StatusCode::FORBIDDEN,
        "banned",
    )
    .await;
    expect_error(
        ban(&api, &alice, &room, &bob).await,
        StatusCode::CONFLICT,
        "already_banned",
    )
    .await;
    assert_eq!(api.snapshot().await, before);

    // The ban list is for moderators.
    let bans_path = format!("/v1/rooms/{room}/bans");
    let bans = expect_status(api.get(&bans_path, &alice).await, StatusCode::OK).await;
    let bans = bans.as_array().unwrap();
    assert_eq!(bans.len(), 1, "{bans:?}");
    assert_eq!(bans[0]["user_id"], json!(bob.user.id));
    assert_eq!(bans[0]["banned_by"], json!(alice.user.id));
    assert_eq!(bans[0]["reason"], "spam");
    expect_error(
        api.get(&bans_path, &carol).await,
        StatusCode::FORBIDDEN,
        "insufficient_role",
    )
    .await;

    // Lifted: bob may join again.
    let unban_path = format!("/v1/rooms/{room}/bans/{}", bob.user.id);
    let response = api.call(Method::DELETE, &unban_path, &carol, None).await;
    expect_error(response, StatusCode::FORBIDDEN, "insufficient_role").await;
    let response = api.call(Method::DELETE, &unban_path, &alice, None).await;
    expect_status(response, StatusCode::NO_CONTENT).await;
    let response = api.call(Method::DELETE, &unban_path, &alice, None).await;
    expect_error(response, StatusCode::NOT_FOUND, "not_found").await;
    let bans = expect_status(api.get(&bans_path, &alice).await, StatusCode::OK).await;
    assert_eq!(bans, json!([]));
    api.join(&bob, &room).await;

    // A ban can also come first: no member_left, and no way in.
    let dave = api.user("dave").await;
    let outcome = expect_status(ban(&api, &alice, &room, &dave).await, StatusCode::CREATED).await;
    assert_eq!(outcome, json!({ "event": null }));
    expect_error(
        api.post(&format!("/v1/rooms/{room}/join"), &dave, json!({}))
            .await,
        StatusCode::FORBIDDEN,
        "banned",
    )
    .await;
}

async fn nobody_bans_themselves(backend: Backend) {
    let api = TestApi::start(backend).await;
    let alice = api.user("alice").await;
    let room = api.room(&alice, "books", "public").await.id.to_string();
    let before = api.snapshot().await;
    expect_error(
        ban(&api, &alice, &room, &alice).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(api.snapshot().await, before);
    let bans = expect_status(
        api.get(&format!("/v1/rooms/{room}/bans"), &alice).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(bans, json!([]));
}
