//! Per-user budgets on the write paths: REST sends (the budget WebSocket
//! sends share, see chat's tests), invites, room creation and DM opens.
//! Each refusal is `429 rate_limited` with `Retry-After`, and stores
//! nothing.

use reqwest::StatusCode;
use serde_json::json;

use crate::both_stores;
use crate::helpers::{expect_error, expect_status, TestApi};
use chat_shared::testing::Backend;

both_stores!(
    rest_sends_past_the_burst_are_refused_and_not_stored,
    invites_room_creations_and_dm_opens_each_have_a_budget,
    rest_read_markers_have_a_budget,
    uploads_have_a_budget_of_their_own,
);

/// Starts an api with small budgets: 3 sends at once then one a second;
/// 2 of each other action at once then one a minute.
async fn strict(backend: Backend) -> TestApi {
    TestApi::start_with(backend, |config| {
        config.common.send_rate_per_second = 1;
        config.common.send_burst = 3;
        config.action_rate_per_minute = 1;
        config.action_burst = 2;
    })
    .await
}

/// The `Retry-After` of a refusal, after checking its shape.
async fn refused(response: reqwest::Response) -> u64 {
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .expect("a Retry-After in seconds");
    expect_error(response, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    retry_after
}

async fn rest_sends_past_the_burst_are_refused_and_not_stored(backend: Backend) {
    let api = strict(backend).await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    // Rooms count against another budget: creating one spends no sends.
    let room = api.room(&alice, "busy", "public").await.id.to_string();
    let path = format!("/v1/rooms/{room}/messages");
    let mut statuses = Vec::new();
    for i in 0..6 {
        let response = api
            .post(
                &path,
                &alice,
                json!({ "client_id": format!("c{i}"), "body": "hi" }),
            )
            .await;
        statuses.push(response.status());
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            let wait = refused(response).await;
            assert!((1..=2).contains(&wait), "Retry-After {wait}");
        }
    }
    assert_eq!(&statuses[..3], [StatusCode::CREATED; 3]);
    assert_eq!(&statuses[3..], [StatusCode::TOO_MANY_REQUESTS; 3]);
    let bodies: Vec<_> = api
        .log(&alice, &room)
        .await
        .into_iter()
        .filter(|e| e["type"] == "message")
        .map(|e| e["client_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(bodies, ["c0", "c1", "c2"], "a refused send was stored");
    // Another user's budget is untouched.
    api.join(&bob, &room).await;
    api.send(&bob, &room, "b0", "still here").await;
    // Once the budget refills, alice sends again.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    api.send(&alice, &room, "c6", "later").await;
}

async fn invites_room_creations_and_dm_opens_each_have_a_budget(backend: Backend) {
    let api = strict(backend).await;
    let alice = api.user("alice").await;
    let friends = [
        api.user("friend1").await,
        api.user("friend2").await,
        api.user("friend3").await,
    ];
    let my_rooms = || async {
        let rooms = expect_status(api.get("/v1/rooms", &alice).await, StatusCode::OK).await;
        rooms.as_array().unwrap().clone()
    };
    let before = my_rooms().await.len();

    // Room creation: two, then refused.
    for name in ["one", "two"] {
        let response = api
            .post(
                "/v1/rooms",
                &alice,
                json!({ "name": name, "kind": "public" }),
            )
            .await;
        expect_status(response, StatusCode::CREATED).await;
    }
    let response = api
        .post(
            "/v1/rooms",
            &alice,
            json!({ "name": "three", "kind": "public" }),
        )
        .await;
    assert!(refused(response).await >= 1);

    // Invites into one of them: two, then refused.
    let room = my_rooms()
        .await
        .iter()
        .find(|r| r["name"] == "one")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let members = format!("/v1/rooms/{room}/members");
    let invite =
        |who: usize| api.post(&members, &alice, json!({ "user_id": friends[who].user.id }));
    expect_status(invite(0).await, StatusCode::CREATED).await;
    expect_status(invite(1).await, StatusCode::CREATED).await;
    assert!(refused(invite(2).await).await >= 1);

    // DM opens: two, then refused.
    for friend in &friends[..2] {
        let response = api
            .post("/v1/dms", &alice, json!({ "user_id": friend.user.id }))
            .await;
        expect_status(response, StatusCode::CREATED).await;
    }
    let response = api
        .post("/v1/dms", &alice, json!({ "user_id": friends[2].user.id }))
        .await;
    assert!(refused(response).await >= 1);

    // Exactly what was allowed happened: 2 rooms more (the 2 DMs are
    // listed from their first message), and no third room or invite.
    assert_eq!(my_rooms().await.len(), before + 2);
    // Two invitations wait for their answer; the third was never made.
    for (friend, expected) in friends.iter().zip([1, 1, 0]) {
        let invites = expect_status(api.get("/v1/invites", friend).await, StatusCode::OK).await;
        assert_eq!(invites.as_array().unwrap().len(), expected, "{invites}");
    }
    // The budgets are the user's: a friend still creates a room.
    api.room(&friends[2], "theirs", "public").await;
}

async fn rest_read_markers_have_a_budget(backend: Backend) {
    let api = TestApi::start_with(backend, |config| {
        config.common.read_rate_per_second = 1;
        config.common.read_burst = 2;
    })
    .await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let room = api.room(&alice, "marks", "public").await.id.to_string();
    api.join(&bob, &room).await;
    let path = format!("/v1/rooms/{room}/read");
    // Each marker is a store write: two at once, then refused.
    for _ in 0..2 {
        expect_status(
            api.post(&path, &alice, json!({ "seq": 1 })).await,
            StatusCode::OK,
        )
        .await;
    }
    let response = api.post(&path, &alice, json!({ "seq": 1 })).await;
    assert!(refused(response).await >= 1);
    // The budget is alice's: bob still marks.
    expect_status(
        api.post(&path, &bob, json!({ "seq": 1 })).await,
        StatusCode::OK,
    )
    .await;
}

async fn uploads_have_a_budget_of_their_own(backend: Backend) {
    let api = strict(backend).await;
    let alice = api.user("alice").await;
    let room = api.room(&alice, "files", "public").await.id.to_string();
    for i in 0..2 {
        let uploaded = api
            .upload(
                &alice,
                &room,
                &format!("{i}.txt"),
                "text/plain",
                b"x".to_vec(),
            )
            .await;
        expect_status(uploaded, StatusCode::CREATED).await;
    }
    let third = api
        .upload(&alice, &room, "2.txt", "text/plain", b"x".to_vec())
        .await;
    assert!(refused(third).await >= 1);
    // Nothing of the refused one is kept; other budgets are untouched.
    let blobs = api.data_dir.join("blobs").join("attachments");
    assert_eq!(std::fs::read_dir(blobs).unwrap().count(), 2);
    let invited = api.room(&alice, "more", "public").await;
    assert_eq!(invited.name, "more");
}
