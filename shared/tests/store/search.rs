//! Full-text search of messages: the same messages found, in the same
//! order and with the same marks, on both databases; only in the rooms
//! the searcher is in now; the index following every send, edit, deletion
//! and deleted room at once; phrases, exclusions, paging by event id.

use chat_shared::model::{EventId, LeaveReason, RoomEvent, RoomId, User};
use chat_shared::search::{SearchHit, SearchQuery, MARK_END, MARK_START};
use chat_shared::store::{MessageChange, NewMessage, SearchPage};
use chat_shared::testing::Backend;

use crate::Fixture;

conformance!(
    words_all_match_any_case_and_punctuation_separates_them,
    only_rooms_the_searcher_is_in_now_are_searched,
    an_edit_reindexes_and_a_deletion_unindexes_at_once,
    phrases_and_exclusions,
    pages_go_back_in_time_across_rooms,
    a_body_cannot_forge_marks,
);

impl Fixture {
    /// Sends `body` to `room` as `sender`.
    async fn post(&self, room: RoomId, sender: &User, body: &str) -> RoomEvent {
        let client_id = format!("s-{}", uuid::Uuid::now_v7());
        self.append_message(room, sender.id, NewMessage::text(client_id, body))
            .await
            .expect("appending a message")
            .event
    }

    /// What `user` finds for `q` (first page of up to 50).
    async fn find(&self, user: &User, q: &str) -> Vec<SearchHit> {
        self.find_page(user, q, None, None, 50).await
    }

    async fn find_page(
        &self,
        user: &User,
        q: &str,
        room: Option<RoomId>,
        before: Option<EventId>,
        limit: u32,
    ) -> Vec<SearchHit> {
        let query = SearchQuery::parse(q).expect("a valid query");
        let page = SearchPage {
            room,
            before,
            limit,
        };
        self.search_messages(user.id, &query, page)
            .await
            .expect("searching")
    }

    /// A room of `owner` with `members` in it.
    async fn group(&self, owner: &User, members: &[&User]) -> RoomId {
        let room = self.private_room(owner).await.id;
        for member in members {
            self.join(room, member).await;
        }
        room
    }
}

/// Each hit's text with its marked parts in brackets.
fn shown(hits: &[SearchHit]) -> Vec<String> {
    hits.iter()
        .map(|hit| {
            hit.highlight
                .iter()
                .map(|part| {
                    if part.matched {
                        format!("[{}]", part.text)
                    } else {
                        part.text.clone()
                    }
                })
                .collect()
        })
        .collect()
}

fn ids(hits: &[SearchHit]) -> Vec<EventId> {
    hits.iter().map(|h| h.id).collect()
}

async fn words_all_match_any_case_and_punctuation_separates_them(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let alice = fx.register("alice").await;
    let room = fx.group(&alice, &[]).await;
    let texts = [
        "The Deploy went fine",
        "deploy-bot says: build #42 is green",
        "mail ops@example.com about the deploy, then see example.com/status",
        "Café crème, naïve Über deploy",
        "nothing to see here",
        "line one\n\n  deploy on line three  ",
    ];
    let mut sent = Vec::new();
    for text in texts {
        sent.push(fx.post(room, &alice, text).await);
    }

    let hits = fx.find(&alice, "deploy").await;
    assert_eq!(
        shown(&hits),
        [
            "line one\n\n  [deploy] on line three  ",
            "Café crème, naïve Über [deploy]",
            "mail ops@example.com about the [deploy], then see example.com/status",
            "[deploy]-bot says: build #42 is green",
            "The [Deploy] went fine",
        ],
        "newest first, each occurrence marked, the text exactly as sent"
    );
    let first = &hits[4];
    assert_eq!(
        (first.room_id, first.seq, first.id, first.sender, first.ts),
        (room, sent[0].seq, sent[0].id, sent[0].sender, sent[0].ts)
    );
    assert_eq!(first.edited_at, None);

    // Every word must match, in any case and any order.
    assert_eq!(
        shown(&fx.find(&alice, "GREEN build").await),
        ["deploy-bot says: [build] #42 is [green]"]
    );
    // Parts of addresses, paths and compounds are words of their own.
    assert_eq!(
        shown(&fx.find(&alice, "example").await),
        ["mail ops@[example].com about the deploy, then see [example].com/status"]
    );
    assert_eq!(
        shown(&fx.find(&alice, "ops@example.com").await),
        ["mail [ops]@[example].[com] about the deploy, then see [example].[com]/status"]
    );
    assert_eq!(shown(&fx.find(&alice, "42").await).len(), 1);
    assert_eq!(shown(&fx.find(&alice, "bot").await).len(), 1);
    // Letters beyond ASCII: case folds, accents stay (no stemming either).
    assert_eq!(
        shown(&fx.find(&alice, "über CAFÉ").await),
        ["[Café] crème, naïve [Über] deploy"]
    );
    assert!(fx.find(&alice, "cafe").await.is_empty());
    assert!(fx.find(&alice, "deploys").await.is_empty());
    assert!(fx.find(&alice, "deploy missing").await.is_empty());
}

async fn only_rooms_the_searcher_is_in_now_are_searched(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let alice = fx.register("alice").await;
    let bob = fx.register("bob").await;
    let carol = fx.register("carol").await;
    let shared = fx.group(&alice, &[&bob]).await;
    let alices = fx.group(&alice, &[]).await;
    let left = fx.group(&carol, &[&bob]).await;
    let in_shared = fx.post(shared, &alice, "the launch plan").await;
    fx.post(alices, &alice, "my launch notes").await;
    let in_left = fx.post(left, &carol, "launch party").await;

    assert_eq!(
        ids(&fx.find(&bob, "launch").await),
        [in_left.id, in_shared.id]
    );
    fx.remove_member(left, bob.id, bob.id, LeaveReason::Left)
        .await
        .expect("leaving");
    assert_eq!(
        ids(&fx.find(&bob, "launch").await),
        [in_shared.id],
        "a room bob left is not searched"
    );
    assert_eq!(fx.find(&alice, "launch").await.len(), 2);
    assert_eq!(fx.find(&carol, "launch").await.len(), 1);
    // One room only; a room the searcher is not in finds nothing.
    let only = fx.find_page(&alice, "launch", Some(alices), None, 50).await;
    assert_eq!(shown(&only), ["my [launch] notes"]);
    assert!(fx
        .find_page(&bob, "launch", Some(alices), None, 50)
        .await
        .is_empty());
    // Nor do events other than messages: the room's name, a join.
    assert!(fx.find(&alice, "room").await.is_empty());
}

async fn an_edit_reindexes_and_a_deletion_unindexes_at_once(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let alice = fx.register("alice").await;
    let room = fx.group(&alice, &[]).await;
    let message = fx.post(room, &alice, "meet at the old harbour").await;
    let other = fx.post(room, &alice, "the harbour is closed").await;

    let edit = MessageChange::Edit {
        body: "meet at the new station".into(),
    };
    fx.change_message(room, alice.id, message.id, None, edit)
        .await
        .expect("editing");
    assert!(fx.find(&alice, "old").await.is_empty(), "old words gone");
    let hits = fx.find(&alice, "station").await;
    assert_eq!(shown(&hits), ["meet at the new [station]"]);
    assert_eq!((hits[0].id, hits[0].seq), (message.id, message.seq));
    assert!(hits[0].edited_at.is_some());
    assert_eq!(ids(&fx.find(&alice, "harbour").await), [other.id]);
    // A pin changes the message's state, not its words.
    fx.change_message(room, alice.id, message.id, None, MessageChange::Pin)
        .await
        .expect("pinning");
    assert_eq!(fx.find(&alice, "station").await.len(), 1);

    fx.change_message(room, alice.id, message.id, None, MessageChange::Delete)
        .await
        .expect("deleting");
    assert!(fx.find(&alice, "station").await.is_empty());
    assert!(fx.find(&alice, "meet").await.is_empty());
    assert_eq!(fx.find(&alice, "the").await.len(), 1);

    assert!(fx.delete_room(room).await.unwrap());
    assert!(fx.find(&alice, "harbour").await.is_empty());
}

async fn phrases_and_exclusions(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let alice = fx.register("alice").await;
    let room = fx.group(&alice, &[]).await;
    let a = fx.post(room, &alice, "fix the build before lunch").await;
    let b = fx.post(room, &alice, "the build will fix itself").await;
    let c = fx.post(room, &alice, "build the fix on staging").await;

    assert_eq!(ids(&fx.find(&alice, "fix build").await), [c.id, b.id, a.id]);
    assert_eq!(ids(&fx.find(&alice, "\"the build\"").await), [b.id, a.id]);
    assert_eq!(ids(&fx.find(&alice, "\"fix the build\"").await), [a.id]);
    assert_eq!(
        ids(&fx.find(&alice, "fix build -staging").await),
        [b.id, a.id]
    );
    assert_eq!(ids(&fx.find(&alice, "build -\"the build\"").await), [c.id]);
    assert_eq!(ids(&fx.find(&alice, "build -lunch -itself").await), [c.id]);
    // Every word of a phrase is marked, wherever it stands.
    assert_eq!(
        shown(&fx.find(&alice, "\"fix the build\"").await),
        ["[fix] [the] [build] before lunch"]
    );
}

async fn pages_go_back_in_time_across_rooms(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let alice = fx.register("alice").await;
    let rooms = [
        fx.group(&alice, &[]).await,
        fx.group(&alice, &[]).await,
        fx.group(&alice, &[]).await,
    ];
    let mut sent = Vec::new();
    for i in 0..10 {
        let room = rooms[i % rooms.len()];
        sent.push(
            fx.post(room, &alice, &format!("status report {i}"))
                .await
                .id,
        );
        fx.post(room, &alice, "unrelated chatter").await;
    }
    let mut found = Vec::new();
    let mut before = None;
    loop {
        let page = fx.find_page(&alice, "report", None, before, 4).await;
        assert!(page.len() <= 4);
        found.extend(ids(&page));
        match page.last() {
            Some(last) if page.len() == 4 => before = Some(last.id),
            _ => break,
        }
    }
    sent.reverse();
    assert_eq!(found, sent, "every match once, newest first");
}

async fn a_body_cannot_forge_marks(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let alice = fx.register("alice").await;
    let room = fx.group(&alice, &[]).await;
    let forged = format!("{MARK_START}fake{MARK_END} mark next to the real one");
    fx.post(room, &alice, &forged).await;
    let hits = fx.find(&alice, "real").await;
    assert_eq!(
        hits[0]
            .highlight
            .iter()
            .map(|p| (p.text.as_str(), p.matched))
            .collect::<Vec<_>>(),
        [
            (
                format!("{MARK_START}fake{MARK_END} mark next to the ").as_str(),
                false
            ),
            ("real", true),
            (" one", false)
        ]
    );
    // The marks split words for the index as they do for a query.
    assert_eq!(fx.find(&alice, "fake").await.len(), 1);
}
