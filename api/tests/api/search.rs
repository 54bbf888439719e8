//! `GET /v1/search`: what a user finds (their rooms only, newest first,
//! the searched words marked as data, page by page), and every way a
//! search is refused before it reaches the database or for who is asking.

use chat_shared::auth::Claims;
use chat_shared::testing::Backend;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::bad_input::{claims, sign};
use crate::both_stores;
use crate::helpers::{expect_error, expect_status, TestApi, TestUser};

both_stores!(
    a_search_finds_my_rooms_messages_marked_and_paged,
    bad_searches_are_refused_with_clear_errors,
    searches_have_a_budget,
);

/// A query string and how the api must refuse it: status and code.
type Refusal<'a> = (&'a [(&'a str, &'a str)], StatusCode, &'a str);

/// `GET /v1/search` with `params` as the query string, as `user`.
async fn get(api: &TestApi, user: &TestUser, params: &[(&str, &str)]) -> reqwest::Response {
    api.request(Method::GET, "/v1/search", Some(user))
        .query(params)
        .send()
        .await
        .unwrap()
}

/// The page `user` gets for `params`.
async fn search(api: &TestApi, user: &TestUser, params: &[(&str, &str)]) -> Value {
    expect_status(get(api, user, params).await, StatusCode::OK).await
}

/// Each hit's text with its marked parts in brackets.
fn shown(page: &Value) -> Vec<String> {
    page["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|hit| {
            hit["highlight"]
                .as_array()
                .unwrap()
                .iter()
                .map(|part| match part["match"].as_bool().unwrap() {
                    true => format!("[{}]", part["text"].as_str().unwrap()),
                    false => part["text"].as_str().unwrap().to_owned(),
                })
                .collect()
        })
        .collect()
}

async fn a_search_finds_my_rooms_messages_marked_and_paged(backend: Backend) {
    let api = TestApi::start(backend).await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let ours = api.room(&alice, "ours", "public").await.id.to_string();
    let hers = api.room(&alice, "hers", "private").await.id.to_string();
    let left = api.room(&alice, "left", "public").await.id.to_string();
    api.join(&bob, &ours).await;
    api.join(&bob, &left).await;
    let first = api
        .send(&alice, &ours, "c1", "Release <b>notes</b> are out")
        .await;
    api.send(&alice, &hers, "c2", "release party, private")
        .await;
    api.send(&alice, &left, "c3", "release retro").await;
    api.send(&bob, &ours, "c4", "which release?").await;
    let response = api
        .post(
            &format!("/v1/rooms/{left}/leave"),
            &bob,
            serde_json::json!({}),
        )
        .await;
    assert!(response.status().is_success(), "{}", response.status());

    let page = search(&api, &bob, &[("q", "release")]).await;
    assert_eq!(
        shown(&page),
        ["which [release]?", "[Release] <b>notes</b> are out"],
        "bob's rooms now, newest first, HTML left as text"
    );
    let hit = &page["hits"][1];
    assert_eq!(hit["id"], first["id"]);
    assert_eq!(hit["room_id"], ours.as_str());
    assert_eq!(hit["seq"], first["seq"]);
    assert_eq!(hit["sender"], alice.user.id.to_string());
    assert_eq!(hit["ts"], first["ts"]);
    assert!(page.get("next_before").is_none(), "{page}");

    // Alice pages through hers, three rooms, one hit a page.
    let mut found = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut params = vec![("q", "release -retro"), ("limit", "1")];
        if let Some(before) = &cursor {
            params.push(("before", before));
        }
        let page = search(&api, &alice, &params).await;
        found.extend(shown(&page));
        match page["next_before"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(
        found,
        [
            "which [release]?",
            "[release] party, private",
            "[Release] <b>notes</b> are out"
        ]
    );
    // One room, and a phrase.
    let page = search(&api, &alice, &[("room_id", &hers), ("q", "release")]).await;
    assert_eq!(shown(&page), ["[release] party, private"]);
    let page = search(&api, &alice, &[("q", "\"are out\"")]).await;
    assert_eq!(shown(&page), ["Release <b>notes</b> [are] [out]"]);
}

async fn bad_searches_are_refused_with_clear_errors(backend: Backend) {
    let api = TestApi::start(backend).await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let hers = api.room(&alice, "hers", "private").await.id.to_string();
    api.send(&alice, &hers, "c1", "a secret plan").await;
    let long = "x".repeat(10_000);
    let many: String = (0..17).map(|i| format!("w{i} ")).collect();
    let other_room = uuid::Uuid::now_v7().to_string();
    let cases: [Refusal; 13] = [
        (&[("q", &long)], StatusCode::BAD_REQUEST, "query_too_long"),
        (&[("q", "")], StatusCode::BAD_REQUEST, "no_search_terms"),
        (
            &[("q", "  ...  ")],
            StatusCode::BAD_REQUEST,
            "no_search_terms",
        ),
        (
            &[("q", "-secret -\"a plan\"")],
            StatusCode::BAD_REQUEST,
            "no_search_terms",
        ),
        (&[("q", &many)], StatusCode::BAD_REQUEST, "too_many_words"),
        (&[("limit", "5")], StatusCode::BAD_REQUEST, "invalid_query"),
        (
            &[("q", "plan"), ("room_id", "not-a-uuid")],
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            &[("q", "plan"), ("before", "42")],
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            &[("q", "plan"), ("limit", "0")],
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            &[("q", "plan"), ("limit", "51")],
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            &[("q", "plan"), ("room_id", &hers)],
            StatusCode::FORBIDDEN,
            "not_member",
        ),
        (
            &[("q", "plan"), ("room_id", &other_room)],
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            &[("q", "plan"), ("sort", "oldest")],
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
    ];
    for (params, status, code) in cases {
        expect_error(get(&api, &bob, params).await, status, code).await;
    }
    // And bob's search of his own rooms does not find alice's secret.
    assert!(search(&api, &bob, &[("q", "secret")]).await["hits"]
        .as_array()
        .unwrap()
        .is_empty());

    // No token, or an expired one.
    let response = api
        .request(Method::GET, "/v1/search?q=plan", None)
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::UNAUTHORIZED, "missing_token").await;
    let private = std::fs::read_to_string(api.data_dir.join("jwt-private.pem")).unwrap();
    let fresh = claims(&alice);
    let expired = sign(
        &Claims {
            iat: fresh.iat - 960,
            exp: fresh.iat - 60,
            ..fresh
        },
        &private,
    );
    let response = api
        .request(Method::GET, "/v1/search?q=plan", None)
        .bearer_auth(expired)
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::UNAUTHORIZED, "invalid_token").await;
}

async fn searches_have_a_budget(backend: Backend) {
    let api = TestApi::start_with(backend, |config| {
        config.search_rate_per_minute = 1;
        config.search_burst = 2;
    })
    .await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    for _ in 0..2 {
        search(&api, &alice, &[("q", "anything")]).await;
    }
    let response = get(&api, &alice, &[("q", "anything")]).await;
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "Retry-After {retry_after}");
    expect_error(response, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    // A refused query spends nothing; another user has a budget of their own.
    let response = get(&api, &bob, &[("q", "")]).await;
    expect_error(response, StatusCode::BAD_REQUEST, "no_search_terms").await;
    for _ in 0..2 {
        search(&api, &bob, &[("q", "anything")]).await;
    }
}
