//! A room's log over REST: a send is stored once per `client_id`, concurrent
//! sends get gap-free seqs, history pages by seq cursor in both directions,
//! and a send that fails a check stores nothing and spends no seq.

use std::sync::atomic::{AtomicUsize, Ordering};

use chat_shared::model::RoomId;
use chat_shared::testing::Backend;
use futures::future::join_all;
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

use crate::both_stores;
use crate::helpers::{expect_error, expect_status, TestApi, TestUser};

both_stores!(
    a_message_is_stored_once_per_client_id,
    concurrent_sends_get_gap_free_seqs,
    a_client_id_sent_concurrently_is_stored_once,
    history_is_for_members_of_existing_rooms,
    history_pages_forward_and_backward,
    history_rejects_bad_cursors_and_limits,
    invalid_messages_store_nothing,
    the_body_limit_follows_the_configuration,
    sends_outside_my_rooms_store_nothing,
);

/// POSTs a message without judging the answer.
async fn send(api: &TestApi, user: &TestUser, room: &str, client_id: &str, body: &str) -> Response {
    api.post(
        &format!("/v1/rooms/{room}/messages"),
        user,
        json!({ "client_id": client_id, "body": body }),
    )
    .await
}

/// A history page read as `user`; `query` is the query string.
async fn history(api: &TestApi, user: &TestUser, room: &str, query: &str) -> Value {
    let response = api
        .get(&format!("/v1/rooms/{room}/events?{query}"), user)
        .await;
    let page = expect_status(response, StatusCode::OK).await;
    assert!(page["last_seq"].is_i64(), "no last_seq: {page}");
    page
}

/// The seqs of a page's events, in the order given.
fn seqs(page: &Value) -> Vec<i64> {
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["seq"].as_i64().unwrap())
        .collect()
}

async fn a_message_is_stored_once_per_client_id(backend: Backend) {
    let api = TestApi::start(backend).await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let room = api.room(&alice, "lobby", "public").await.id.to_string();

    let response = send(&api, &alice, &room, "m-1", "hello").await;
    let sent = expect_status(response, StatusCode::CREATED).await;
    assert_eq!(sent["type"], "message");
    assert_eq!(sent["room_id"], room.as_str());
    // Seq 1 is the owner's own `member_joined`.
    assert_eq!(sent["seq"], 2);
    assert_eq!(sent["sender"], alice.user.id.to_string());
    assert_eq!(sent["client_id"], "m-1");
    assert_eq!(sent["body"], "hello");
    assert!(sent["id"].as_str().is_some_and(|id| !id.is_empty()));

    // A retry answers 200 with the original, even if the text changed.
    let response = send(&api, &alice, &room, "m-1", "hello").await;
    assert_eq!(expect_status(response, StatusCode::OK).await, sent);
    let response = send(&api, &alice, &room, "m-1", "hello, edited").await;
    assert_eq!(expect_status(response, StatusCode::OK).await, sent);

    let log = api.log(&alice, &room).await;
    let copies: Vec<_> = log.iter().filter(|e| e["client_id"] == "m-1").collect();
    assert_eq!(copies, [&sent]);
    assert_eq!(log.len(), 2);

    // The key is the sender's own: bob may use the same one.
    api.join(&bob, &room).await;
    let response = send(&api, &bob, &room, "m-1", "hi alice").await;
    let bobs = expect_status(response, StatusCode::CREATED).await;
    assert_eq!(bobs["seq"], 4);
    assert_eq!(bobs["sender"], bob.user.id.to_string());
    assert_ne!(bobs["id"], sent["id"]);
    // ...and so may alice in another room.
    let other = api
        .room(&alice, "elsewhere", "private")
        .await
        .id
        .to_string();
    let response = send(&api, &alice, &other, "m-1", "hello again").await;
    assert_eq!(expect_status(response, StatusCode::CREATED).await["seq"], 2);
}

async fn concurrent_sends_get_gap_free_seqs(backend: Backend) {
    const SENDERS: usize = 20;
    const EACH: usize = 10;
    let api = TestApi::start(backend).await;
    let owner = api.user("owner").await;
    let room = api.room(&owner, "busy", "public").await.id.to_string();
    let names: Vec<String> = (0..SENDERS).map(|i| format!("sender{i:02}")).collect();
    let senders = join_all(names.iter().map(|name| api.user(name))).await;
    let mut joined = vec![1];
    for sender in &senders {
        joined.push(api.join(sender, &room).await["seq"].as_i64().unwrap());
    }

    // Each sender sends its messages one after another, all senders at
    // once, while a reader keeps reading the newest page.
    let finished = AtomicUsize::new(0);
    let sending = join_all(senders.iter().enumerate().map(|(i, sender)| {
        let (api, room, finished) = (&api, &room, &finished);
        async move {
            let mut sent = Vec::new();
            for n in 0..EACH {
                let text = format!("message {n} from sender {i}");
                let response = send(api, sender, room, &format!("s{i}-m{n}"), &text).await;
                sent.push(expect_status(response, StatusCode::CREATED).await);
            }
            finished.fetch_add(1, Ordering::SeqCst);
            sent
        }
    }));
    let reading = async {
        while finished.load(Ordering::SeqCst) < SENDERS {
            let page = history(&api, &owner, &room, "limit=200").await;
            let seen = seqs(&page);
            // A reader never sees a hole, nor a page past its own head.
            assert!(seen.windows(2).all(|w| w[1] == w[0] + 1), "{seen:?}");
            let head = page["last_seq"].as_i64().unwrap();
            assert!(
                seen.last().is_none_or(|&s| s <= head),
                "head {head}: {seen:?}"
            );
        }
    };
    let (sent, ()) = tokio::join!(sending, reading);

    for (i, events) in sent.iter().enumerate() {
        let mine = seqs(&json!({ "events": events }));
        assert!(mine.windows(2).all(|w| w[0] < w[1]), "sender {i}: {mine:?}");
        for event in events {
            assert_eq!(event["sender"], senders[i].user.id.to_string());
        }
    }
    let mut all: Vec<i64> = sent
        .iter()
        .flatten()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    all.extend(&joined);
    all.sort_unstable();
    let total = (1 + SENDERS + SENDERS * EACH) as i64;
    assert_eq!(all, (1..=total).collect::<Vec<_>>());

    // Read back in pages, the log holds every event once, in order, as sent.
    let mut log = Vec::new();
    let mut cursor = 0;
    loop {
        let page = history(&api, &owner, &room, &format!("after={cursor}&limit=50")).await;
        assert_eq!(page["last_seq"], total);
        let events = page["events"].as_array().unwrap().clone();
        let Some(last) = events.last() else { break };
        cursor = last["seq"].as_i64().unwrap();
        log.extend(events);
    }
    assert_eq!(
        seqs(&json!({ "events": log })),
        (1..=total).collect::<Vec<_>>()
    );
    for event in sent.iter().flatten() {
        let seq = event["seq"].as_i64().unwrap();
        assert_eq!(&log[seq as usize - 1], event);
    }

    // With no cursor, a page is the newest 50.
    let newest = history(&api, &owner, &room, "").await;
    assert_eq!(seqs(&newest), (total - 49..=total).collect::<Vec<_>>());
}

async fn a_client_id_sent_concurrently_is_stored_once(backend: Backend) {
    let api = TestApi::start(backend).await;
    let alice = api.user("alice").await;
    let room = api.room(&alice, "lobby", "private").await.id.to_string();

    let responses = join_all((0..10).map(|_| send(&api, &alice, &room, "once", "only once"))).await;
    let mut created = 0;
    let mut answers = Vec::new();
    for response in responses {
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        match status {
            StatusCode::CREATED => created += 1,
            StatusCode::OK => {}
            other => panic!("unexpected status {other}: {body}"),
        }
        answers.push(body);
    }
    assert_eq!(created, 1);
    assert!(answers.iter().all(|a| a == &answers[0]), "{answers:#?}");
    assert_eq!(answers[0]["seq"], 2);

    // Stored once, and the losers spent no seq.
    let page = history(&api, &alice, &room, "").await;
    assert_eq!(seqs(&page), [1, 2]);
    assert_eq!(page["events"][1], answers[0]);
    assert_eq!(page["last_seq"], 2);
    let response = send(&api, &alice, &room, "next", "and then").await;
    assert_eq!(expect_status(response, StatusCode::CREATED).await["seq"], 3);
}

async fn history_is_for_members_of_existing_rooms(backend: Backend) {
    let api = TestApi::start(backend).await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let public = api.room(&alice, "open", "public").await.id.to_string();
    let private = api.room(&alice, "closed", "private").await.id.to_string();
    api.send(&alice, &public, "p-1", "visible to members").await;

    for room in [&public, &private] {
        let response = api.get(&format!("/v1/rooms/{room}/events"), &bob).await;
        expect_error(response, StatusCode::FORBIDDEN, "not_member").await;
    }
    let missing = RoomId::new();
    let response = api.get(&format!("/v1/rooms/{missing}/events"), &bob).await;
    expect_error(response, StatusCode::NOT_FOUND, "not_found").await;

    // Joining opens the history, including what was said before.
    api.join(&bob, &public).await;
    let page = history(&api, &bob, &public, "").await;
    assert_eq!(page["events"][1]["body"], "visible to members");
    assert_eq!(seqs(&page), [1, 2, 3]);

    // Leaving closes it again.
    let response = api
        .post(&format!("/v1/rooms/{public}/leave"), &bob, json!({}))
        .await;
    expect_status(response, StatusCode::OK).await;
    let response = api.get(&format!("/v1/rooms/{public}/events"), &bob).await;
    expect_error(response, StatusCode::FORBIDDEN, "not_member").await;
}

async fn history_pages_forward_and_backward(backend: Backend) {
    let api = TestApi::start(backend).await;
    let alice = api.user("alice").await;
    let room = api.room(&alice, "log", "private").await.id.to_string();
    for n in 0..24 {
        api.send(&alice, &room, &format!("m{n}"), &format!("message {n}"))
            .await;
    }
    let mut head = 25;

    // Forward from 0, seven at a time; messages sent in the middle of the
    // walk show up at its end, and nothing is seen twice.
    let mut visited = Vec::new();
    let mut cursor = 0;
    loop {
        let page = history(&api, &alice, &room, &format!("after={cursor}&limit=7")).await;
        let seen = seqs(&page);
        assert!(seen.len() <= 7, "{seen:?}");
        assert_eq!(
            seen,
            (cursor + 1..=(cursor + 7).min(head)).collect::<Vec<_>>()
        );
        assert_eq!(page["last_seq"], head);
        let Some(&last) = seen.last() else { break };
        visited.extend(seen);
        cursor = last;
        if cursor == 7 {
            for n in 24..27 {
                api.send(&alice, &room, &format!("m{n}"), "sent while paging")
                    .await;
            }
            head += 3;
        }
    }
    assert_eq!(visited, (1..=head).collect::<Vec<_>>());

    // Backward from the newest: each window ascends and ends just below
    // its cursor, also when a message arrives meanwhile.
    let newest = history(&api, &alice, &room, "limit=7").await;
    assert_eq!(seqs(&newest), (head - 6..=head).collect::<Vec<_>>());
    api.send(&alice, &room, "late", "after the first page")
        .await;
    let mut cursor = head - 6;
    let mut windows = vec![seqs(&newest)];
    head += 1;
    while cursor > 1 {
        let page = history(&api, &alice, &room, &format!("before={cursor}&limit=7")).await;
        assert_eq!(page["last_seq"], head);
        let seen = seqs(&page);
        assert_eq!(seen, ((cursor - 7).max(1)..cursor).collect::<Vec<_>>());
        cursor = seen[0];
        windows.push(seen);
    }
    let page = history(&api, &alice, &room, "before=1&limit=7").await;
    assert_eq!(seqs(&page), Vec::<i64>::new());
    windows.reverse();
    assert_eq!(windows.concat(), (1..head).collect::<Vec<_>>());

    // Both cursors: the events strictly between them.
    let page = history(&api, &alice, &room, "after=5&before=10").await;
    assert_eq!(seqs(&page), [6, 7, 8, 9]);
    // Past the head, forward reading finds nothing yet.
    let page = history(&api, &alice, &room, &format!("after={head}")).await;
    assert_eq!(seqs(&page), Vec::<i64>::new());
    assert_eq!(page["last_seq"], head);
    // No cursor, no limit: the newest 50, here all of them.
    let page = history(&api, &alice, &room, "").await;
    assert_eq!(seqs(&page), (1..=head).collect::<Vec<_>>());
}

async fn history_rejects_bad_cursors_and_limits(backend: Backend) {
    let api = TestApi::start(backend).await;
    let alice = api.user("alice").await;
    let room = api.room(&alice, "log", "private").await.id.to_string();
    api.send(&alice, &room, "m", "one message").await;

    for query in ["limit=0", "limit=201", "after=-1", "before=0", "before=-3"] {
        let response = api
            .get(&format!("/v1/rooms/{room}/events?{query}"), &alice)
            .await;
        expect_error(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
    }
    // The bounds themselves are fine.
    assert_eq!(seqs(&history(&api, &alice, &room, "limit=1").await), [2]);
    assert_eq!(
        seqs(&history(&api, &alice, &room, "limit=200").await),
        [1, 2]
    );
    assert_eq!(seqs(&history(&api, &alice, &room, "after=0").await), [1, 2]);
    assert_eq!(
        seqs(&history(&api, &alice, &room, "before=1").await),
        Vec::<i64>::new()
    );
}

async fn invalid_messages_store_nothing(backend: Backend) {
    let api = TestApi::start(backend).await;
    let alice = api.user("alice").await;
    let room = api.room(&alice, "lobby", "public").await.id.to_string();
    api.send(&alice, &room, "first", "hello").await;
    let before = api.snapshot().await;

    let long_id = "c".repeat(65);
    let too_long = "x".repeat(4001);
    for (client_id, body) in [
        ("empty", ""),
        ("blank", " \n\t "),
        ("wide-blank", "\u{3000}\u{2003}"),
        ("too-long", too_long.as_str()),
        ("", "no key"),
        (long_id.as_str(), "key too long"),
        ("has space", "key with a space"),
        ("tab\tinside", "key with a tab"),
        ("clé", "key not ASCII"),
        ("nul", "a\u{0}b"),
    ] {
        let response = send(&api, &alice, &room, client_id, body).await;
        expect_error(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
    }
    assert_eq!(api.snapshot().await, before);

    // The limits themselves are accepted, counted in characters, and the
    // text is kept as written; no seq was spent on the rejections.
    let cases = [
        ("k".repeat(64), "x".repeat(4000)),
        ("accented".into(), "é".repeat(4000)),
        ("emoji".into(), "👋".repeat(4000)),
        ("padded".into(), "  spaced out \n".into()),
    ];
    for (seq, (client_id, body)) in (3..).zip(cases) {
        let event = api.send(&alice, &room, &client_id, &body).await;
        assert_eq!(event["seq"], seq);
        assert_eq!(event["body"], body.as_str());
    }
}

async fn the_body_limit_follows_the_configuration(backend: Backend) {
    let api = TestApi::start_with(backend, |config| config.common.max_body_chars = 10).await;
    let alice = api.user("alice").await;
    let room = api.room(&alice, "terse", "private").await.id.to_string();
    let before = api.snapshot().await;

    let response = send(&api, &alice, &room, "long", "eleven char").await;
    let error = expect_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert!(
        error["error"]["message"].as_str().unwrap().contains("10"),
        "{error}"
    );
    assert_eq!(api.snapshot().await, before);

    let event = api.send(&alice, &room, "short", "ten chars!").await;
    assert_eq!(
        (&event["seq"], &event["body"]),
        (&json!(2), &json!("ten chars!"))
    );
}

async fn sends_outside_my_rooms_store_nothing(backend: Backend) {
    let api = TestApi::start(backend).await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let public = api.room(&alice, "open", "public").await.id.to_string();
    let private = api.room(&alice, "closed", "private").await.id.to_string();
    let before = api.snapshot().await;

    for room in [&public, &private] {
        let response = send(&api, &bob, room, "intrude", "let me in").await;
        expect_error(response, StatusCode::FORBIDDEN, "not_member").await;
    }
    let missing = RoomId::new().to_string();
    let response = send(&api, &bob, &missing, "nowhere", "anyone?").await;
    expect_error(response, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(api.snapshot().await, before);
    // The refused sends spent no seq.
    assert_eq!(api.send(&alice, &public, "a", "hi").await["seq"], 2);

    // A member who left is outside again.
    api.join(&bob, &public).await;
    api.send(&bob, &public, "b-1", "hello").await;
    let response = api
        .post(&format!("/v1/rooms/{public}/leave"), &bob, json!({}))
        .await;
    expect_status(response, StatusCode::OK).await;
    let before = api.snapshot().await;
    let response = send(&api, &bob, &public, "b-2", "still here?").await;
    expect_error(response, StatusCode::FORBIDDEN, "not_member").await;
    assert_eq!(api.snapshot().await, before);
}
