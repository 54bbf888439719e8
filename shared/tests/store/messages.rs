//! What people do to messages: replies, mentions, edits, deletions that
//! erase, reactions and pins, each an event of the log authorised against
//! the store as it is at the commit, and the timeline that shows messages
//! as they are now.

use chat_shared::model::{
    EventBody, EventId, LeaveReason, Role, RoomEvent, RoomId, RoomKind, TimelineItem, User, UserId,
};
use chat_shared::store::{Appended, Error, MessageChange, NewMessage, NewRoom, Page};
use chat_shared::testing::Backend;
use sqlx::Connection;

use crate::{everything, seqs, Fixture};

conformance!(
    replies_preview_the_answered_message_as_it_is_now,
    a_reply_must_answer_a_message_of_its_room,
    mentions_are_the_rooms_members_and_count_until_read,
    only_the_sender_edits_and_an_edit_is_idempotent,
    deletion_erases_the_text_and_leaves_tombstones,
    only_the_sender_or_a_moderator_deletes,
    reactions_are_one_per_user_and_emoji_and_capped,
    pins_are_for_moderators_and_listed,
    the_timeline_pages_messages_as_they_are_now,
    changes_are_authorised_as_the_room_is_at_the_commit,
);

impl Fixture {
    /// A room of `owner` with `members` (plain members) in it.
    pub(crate) async fn room_with(&self, owner: &User, members: &[&User]) -> RoomId {
        let room = self.private_room(owner).await.id;
        for member in members {
            self.join(room, member).await;
        }
        room
    }

    /// Sends `body` as a message and returns its event.
    async fn say(&self, room: RoomId, sender: &User, body: &str) -> RoomEvent {
        let client_id = format!("{}-{}", sender.username, uuid::Uuid::now_v7());
        self.append_message(room, sender.id, NewMessage::text(client_id, body))
            .await
            .expect("appending a message")
            .event
    }

    /// Sends `body` in answer to `to`.
    async fn reply(
        &self,
        room: RoomId,
        sender: &User,
        to: EventId,
        body: &str,
    ) -> chat_shared::store::Result<Appended> {
        let message = NewMessage {
            reply_to: Some(to),
            ..NewMessage::text(format!("r-{}", uuid::Uuid::now_v7()), body)
        };
        self.append_message(room, sender.id, message).await
    }

    /// Makes `change` to `target` with no idempotency key.
    async fn change(
        &self,
        room: RoomId,
        actor: &User,
        target: EventId,
        change: MessageChange,
    ) -> chat_shared::store::Result<RoomEvent> {
        self.change_message(room, actor.id, target, None, change)
            .await
            .map(|appended| {
                assert!(appended.created);
                appended.event
            })
    }

    /// The whole timeline of a room as `viewer` sees it.
    async fn whole_timeline(&self, room: RoomId, viewer: &User) -> Vec<TimelineItem> {
        let timeline = self
            .timeline(room, viewer.id, everything())
            .await
            .expect("reading the timeline");
        // Read in one snapshot with the page: the room's head then.
        assert_eq!(timeline.last_seq, self.reload(room).await.last_seq);
        timeline.items
    }

    /// The timeline entry of one message.
    async fn entry(&self, room: RoomId, viewer: &User, id: EventId) -> TimelineItem {
        self.whole_timeline(room, viewer)
            .await
            .into_iter()
            .find(|i| i.event.id == id)
            .expect("the message is in the timeline")
    }
}

fn edit(body: &str) -> MessageChange {
    MessageChange::Edit { body: body.into() }
}

fn react(emoji: &str) -> MessageChange {
    MessageChange::React {
        emoji: emoji.into(),
    }
}

fn text(event: &RoomEvent) -> &str {
    match &event.body {
        EventBody::Message { body, .. } | EventBody::MessageEdited { body, .. } => body,
        other => panic!("not a text: {other:?}"),
    }
}

fn preview_of(event: &RoomEvent) -> (String, bool) {
    match &event.body {
        EventBody::Message {
            reply_preview: Some(preview),
            ..
        } => (preview.body.clone(), preview.deleted),
        other => panic!("no preview: {other:?}"),
    }
}

fn mentions_of(event: &RoomEvent) -> (Vec<UserId>, bool) {
    match &event.body {
        EventBody::Message {
            mentions,
            mentions_room,
            ..
        }
        | EventBody::MessageEdited {
            mentions,
            mentions_room,
            ..
        } => (mentions.clone(), *mentions_room),
        other => panic!("not a text: {other:?}"),
    }
}

async fn replies_preview_the_answered_message_as_it_is_now(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (alice, bob) = (fx.register("alice").await, fx.register("bob").await);
    let room = fx.room_with(&alice, &[&bob]).await;
    let long = "x".repeat(300);
    let original = fx.say(room, &alice, &long).await;
    let reply = fx
        .reply(room, &bob, original.id, "agreed")
        .await
        .expect("replying");
    assert!(reply.created);
    let EventBody::Message {
        reply_to,
        reply_preview: Some(preview),
        ..
    } = &reply.event.body
    else {
        panic!("a reply with a preview: {:?}", reply.event);
    };
    assert_eq!(*reply_to, Some(original.id));
    assert_eq!(preview.sender, Some(alice.id));
    assert_eq!(preview.body, "x".repeat(100), "cut to 100 characters");
    // Read back, from the log and from the timeline, it is the same.
    assert_eq!(fx.log(room).await.last(), Some(&reply.event));
    assert_eq!(
        fx.entry(room, &bob, reply.event.id).await.event,
        reply.event
    );

    // The preview is the answered message as it is when read.
    fx.change(room, &alice, original.id, edit("changed my mind"))
        .await
        .expect("editing");
    let logged = fx.log(room).await;
    let replayed = logged.iter().find(|e| e.id == reply.event.id).unwrap();
    assert_eq!(preview_of(replayed), ("changed my mind".into(), false));
    fx.change(room, &alice, original.id, MessageChange::Delete)
        .await
        .expect("deleting");
    let logged = fx.log(room).await;
    let replayed = logged.iter().find(|e| e.id == reply.event.id).unwrap();
    assert_eq!(preview_of(replayed), (String::new(), true));

    // A retry of the reply answers with the original, previewed as now.
    let retried = fx
        .append_message(
            room,
            bob.id,
            NewMessage {
                reply_to: Some(original.id),
                ..NewMessage::text(reply.event.client_id.clone().unwrap(), "agreed")
            },
        )
        .await
        .expect("retrying");
    assert!(!retried.created);
    assert_eq!(preview_of(&retried.event), (String::new(), true));
}

async fn a_reply_must_answer_a_message_of_its_room(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (alice, bob) = (fx.register("alice").await, fx.register("bob").await);
    let room = fx.room_with(&alice, &[&bob]).await;
    let elsewhere = fx.room_with(&alice, &[]).await;
    let there = fx.say(elsewhere, &alice, "in another room").await;
    let joined = fx.log(room).await.last().unwrap().id;
    let before = fx.reload(room).await.last_seq;
    for not_a_message in [there.id, joined, EventId::new()] {
        let refused = fx.reply(room, &bob, not_a_message, "hm").await;
        assert!(matches!(refused, Err(Error::Invalid(_))), "{refused:?}");
    }
    // Nothing stored, and bob's marker did not move.
    assert_eq!(fx.reload(room).await.last_seq, before);
    let bobs = fx.my_rooms(bob.id).await.unwrap();
    assert_eq!(bobs[0].last_read_seq, 0);
    // A non-member is told so first, whatever they answer.
    let carol = fx.register("carol").await;
    let refused = fx.reply(room, &carol, EventId::new(), "hm").await;
    assert!(matches!(refused, Err(Error::NotMember)), "{refused:?}");
}

async fn mentions_are_the_rooms_members_and_count_until_read(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (alice, bob, carol) = (
        fx.register("alice").await,
        fx.register("bob").await,
        fx.register("carol").await,
    );
    // Carol exists but is not in the room: her name is text there.
    let room = fx.room_with(&alice, &[&bob]).await;
    let by_owner = fx
        .say(room, &alice, "@Bob and @carol and @nobody, @room: look")
        .await;
    assert_eq!(mentions_of(&by_owner), (vec![bob.id], true));
    let by_member = fx.say(room, &bob, "@alice @room").await;
    assert_eq!(
        mentions_of(&by_member),
        (vec![alice.id], false),
        "@room is for owners and admins"
    );
    let plain = fx.say(room, &alice, "nothing for bob").await;
    assert_eq!(mentions_of(&plain), (vec![], false));
    // The log keeps them.
    let logged = fx.log(room).await;
    assert_eq!(logged.iter().find(|e| e.id == by_owner.id), Some(&by_owner));

    let unread = |user: UserId| {
        let fx = &fx;
        async move {
            let rooms = fx.my_rooms(user).await.unwrap();
            let mine = rooms.iter().find(|r| r.room.id == room).unwrap();
            (mine.unread, mine.unread_mentions)
        }
    };
    // Bob sent after alice's mention: his marker moved past it.
    assert_eq!(unread(bob.id).await, (1, 0));
    let another = fx.say(room, &alice, "@bob again").await;
    assert_eq!(unread(bob.id).await, (2, 1));
    // An edit that drops his name drops the count.
    fx.change(room, &alice, another.id, edit("never mind"))
        .await
        .unwrap();
    assert_eq!(unread(bob.id).await, (2, 0));
    let room_wide = fx.say(room, &alice, "@room meeting").await;
    assert_eq!(unread(bob.id).await, (3, 1));
    fx.mark_read(room, bob.id, room_wide.seq).await.unwrap();
    assert_eq!(unread(bob.id).await, (0, 0));

    // In a DM nobody moderates, and `@room` is text.
    let (dm, _) = fx.direct_room(alice.id, carol.id).await.unwrap();
    let said = fx.say(dm.id, &alice, "@room @carol").await;
    assert_eq!(mentions_of(&said), (vec![carol.id], false));
}

async fn only_the_sender_edits_and_an_edit_is_idempotent(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (alice, bob, carol) = (
        fx.register("alice").await,
        fx.register("bob").await,
        fx.register("carol").await,
    );
    let room = fx.room_with(&alice, &[&bob]).await;
    let message = fx.say(room, &bob, "helo").await;
    let before = fx.reload(room).await.last_seq;
    // The owner moderates but does not put words in anyone's mouth.
    for (who, expected) in [(&alice, "NotAllowed"), (&carol, "NotMember")] {
        let refused = fx.change(room, who, message.id, edit("x")).await;
        assert!(
            format!("{refused:?}").contains(expected),
            "{}: {refused:?}",
            who.username
        );
    }
    let joined = fx.log(room).await[0].id;
    for missing in [EventId::new(), joined] {
        let refused = fx.change(room, &bob, missing, edit("x")).await;
        assert!(matches!(refused, Err(Error::NotFound)), "{refused:?}");
    }
    let refused = fx
        .change_message(RoomId::new(), bob.id, message.id, None, edit("x"))
        .await;
    assert!(matches!(refused, Err(Error::NotFound)), "{refused:?}");
    assert_eq!(fx.reload(room).await.last_seq, before, "nothing stored");

    let edited = fx
        .change_message(room, bob.id, message.id, Some("e1"), edit("hello @alice"))
        .await
        .expect("editing");
    assert!(edited.created);
    assert_eq!(edited.event.seq, before + 1);
    assert_eq!(edited.event.client_id.as_deref(), Some("e1"));
    assert_eq!(
        edited.event.body,
        EventBody::MessageEdited {
            target: message.id,
            body: "hello @alice".into(),
            mentions: vec![alice.id],
            mentions_room: false,
            deleted: false,
        }
    );
    // A retry with the same key is the same edit, whatever it says now.
    let retried = fx
        .change_message(room, bob.id, message.id, Some("e1"), edit("other"))
        .await
        .expect("retrying");
    assert_eq!(
        retried,
        Appended {
            event: edited.event.clone(),
            created: false
        }
    );
    assert_eq!(fx.reload(room).await.last_seq, before + 1);
    // The log keeps the original and the edit; the timeline shows the text
    // as it is now, marked edited, at the original's seq.
    let logged = fx.log(room).await;
    assert_eq!(
        text(logged.iter().find(|e| e.id == message.id).unwrap()),
        "helo"
    );
    assert_eq!(logged.last(), Some(&edited.event));
    let entry = fx.entry(room, &alice, message.id).await;
    assert_eq!(entry.event.seq, message.seq);
    assert_eq!(text(&entry.event), "hello @alice");
    assert_eq!(mentions_of(&entry.event), (vec![alice.id], false));
    assert_eq!(entry.edited_at, Some(edited.event.ts));
}

/// Every place of the database the words of a message could be, read as
/// text over a connection of the test's own: how many rows hold `needle`.
async fn traces(fx: &Fixture, backend: Backend, needle: &str) -> i64 {
    let pattern = format!("%{needle}%");
    let statements: &[&str] = match backend {
        Backend::Postgres => &[
            "SELECT COUNT(*) FROM room_events t WHERE t::text LIKE $1",
            "SELECT COUNT(*) FROM message_state t WHERE t::text LIKE $1",
            "SELECT COUNT(*) FROM reactions t WHERE t::text LIKE $1",
        ],
        Backend::Sqlite => &[
            "SELECT COUNT(*) FROM room_events WHERE body LIKE $1 OR payload LIKE $1",
            "SELECT COUNT(*) FROM message_state WHERE body LIKE $1 OR payload LIKE $1",
            "SELECT COUNT(*) FROM reactions WHERE emoji LIKE $1",
        ],
    };
    let mut found = 0;
    for statement in statements {
        let count: i64 = with_connection!(fx, backend, |conn| sqlx::query_scalar(statement)
            .bind(&pattern)
            .fetch_one(&mut conn)
            .await
            .expect("searching the database"));
        found += count;
    }
    found
}

/// Rows of `table` about message `seq` of `room`.
async fn rows_about(fx: &Fixture, backend: Backend, table: &str, room: RoomId, seq: i64) -> i64 {
    let statement = format!("SELECT COUNT(*) FROM {table} WHERE room_id = $1 AND seq = $2");
    with_connection!(fx, backend, |conn| sqlx::query_scalar(&statement)
        .bind(room.0)
        .bind(seq)
        .fetch_one(&mut conn)
        .await
        .expect("counting rows"))
}

async fn deletion_erases_the_text_and_leaves_tombstones(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (alice, bob) = (fx.register("alice").await, fx.register("bob").await);
    let room = fx.room_with(&alice, &[&bob]).await;
    let message = fx
        .say(room, &bob, "the launch code is swordfish @alice")
        .await;
    let edit_event = fx
        .change(
            room,
            &bob,
            message.id,
            edit("the launch code is marlin @alice"),
        )
        .await
        .unwrap();
    let reaction = fx
        .change(room, &alice, message.id, react("🙈"))
        .await
        .unwrap();
    fx.change(room, &alice, message.id, MessageChange::Pin)
        .await
        .unwrap();
    fx.say(room, &alice, "swordfish is a fish").await;
    assert!(traces(&fx, backend, "marlin").await > 0);

    let deleted = fx
        .change(room, &bob, message.id, MessageChange::Delete)
        .await
        .expect("deleting");
    assert_eq!(
        deleted.body,
        EventBody::MessageDeleted { target: message.id }
    );
    assert_eq!(deleted.sender, Some(bob.id));

    // No query finds the words, the reaction or the mention; the other
    // message that shares a word keeps it.
    assert_eq!(traces(&fx, backend, "launch code").await, 0);
    assert_eq!(traces(&fx, backend, "marlin").await, 0);
    assert_eq!(traces(&fx, backend, "🙈").await, 0);
    assert_eq!(traces(&fx, backend, "swordfish").await, 1);
    for table in ["reactions", "mentions"] {
        assert_eq!(
            rows_about(&fx, backend, table, room, message.seq).await,
            0,
            "{table}"
        );
    }

    // The log keeps every event at its seq, as tombstones.
    let logged = fx.log(room).await;
    let at = |seq: i64| logged.iter().find(|e| e.seq == seq).unwrap().clone();
    let tombstone = at(message.seq);
    assert_eq!(
        (
            tombstone.id,
            tombstone.sender,
            tombstone.ts,
            tombstone.client_id.clone()
        ),
        (
            message.id,
            message.sender,
            message.ts,
            message.client_id.clone()
        )
    );
    assert_eq!(
        tombstone.body,
        EventBody::Message {
            body: String::new(),
            reply_to: None,
            reply_preview: None,
            mentions: vec![],
            mentions_room: false,
            deleted: true,
            attachments: vec![],
        }
    );
    assert_eq!(
        at(edit_event.seq).body,
        EventBody::MessageEdited {
            target: message.id,
            body: String::new(),
            mentions: vec![],
            mentions_room: false,
            deleted: true,
        }
    );
    assert_eq!(
        at(reaction.seq).body,
        EventBody::ReactionAdded {
            target: message.id,
            emoji: String::new(),
            deleted: true,
        }
    );
    assert_eq!(seqs(&logged), (1..=logged.len() as i64).collect::<Vec<_>>());

    // The timeline shows the tombstone, unpinned, with nothing on it.
    let entry = fx.entry(room, &alice, message.id).await;
    assert_eq!(entry.event, tombstone);
    assert_eq!(
        (entry.edited_at, entry.reactions.len(), entry.pinned),
        (None, 0, None)
    );
    assert!(fx.pins(room, alice.id).await.unwrap().items.is_empty());

    // Nothing more happens to it.
    for change in [
        edit("again"),
        MessageChange::Delete,
        react("👍"),
        MessageChange::Pin,
    ] {
        let refused = fx.change(room, &bob, message.id, change).await;
        assert!(
            matches!(refused, Err(Error::Conflict("message_deleted"))),
            "{refused:?}"
        );
    }
    // Deleting the room takes every row of its messages with it.
    assert!(fx.delete_room(room).await.unwrap());
    for table in ["reactions", "mentions", "message_state"] {
        let left: i64 = with_connection!(&fx, backend, |conn| sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM {table}"
        ))
        .fetch_one(&mut conn)
        .await
        .unwrap());
        assert_eq!(left, 0, "{table}");
    }
}

async fn only_the_sender_or_a_moderator_deletes(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (alice, bob, carol) = (
        fx.register("alice").await,
        fx.register("bob").await,
        fx.register("carol").await,
    );
    let room = fx.room_with(&alice, &[&bob, &carol]).await;
    let bobs = fx.say(room, &bob, "spam").await;
    let refused = fx
        .change(room, &carol, bobs.id, MessageChange::Delete)
        .await;
    assert!(matches!(refused, Err(Error::NotAllowed)), "{refused:?}");
    fx.set_role(room, carol.id, alice.id, Role::Admin)
        .await
        .unwrap();
    let deleted = fx
        .change(room, &carol, bobs.id, MessageChange::Delete)
        .await
        .expect("an admin deletes");
    assert_eq!(deleted.sender, Some(carol.id));
    // In a DM, each deletes only their own.
    let (dm, _) = fx.direct_room(alice.id, bob.id).await.unwrap();
    let alices = fx.say(dm.id, &alice, "mine").await;
    let refused = fx
        .change(dm.id, &bob, alices.id, MessageChange::Delete)
        .await;
    assert!(matches!(refused, Err(Error::NotAllowed)), "{refused:?}");
    fx.change(dm.id, &alice, alices.id, MessageChange::Delete)
        .await
        .expect("the sender deletes");
}

async fn reactions_are_one_per_user_and_emoji_and_capped(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let users = [
        fx.register("alice").await,
        fx.register("bob").await,
        fx.register("carol").await,
        fx.register("dave").await,
    ];
    let [alice, bob, carol, dave] = &users;
    let room = fx.room_with(alice, &[bob, carol, dave]).await;
    let message = fx.say(room, alice, "lunch?").await;
    let added = fx.change(room, bob, message.id, react("👍")).await.unwrap();
    assert_eq!(
        added.body,
        EventBody::ReactionAdded {
            target: message.id,
            emoji: "👍".into(),
            deleted: false,
        }
    );
    let refused = fx.change(room, bob, message.id, react("👍")).await;
    assert!(
        matches!(refused, Err(Error::Conflict("already_reacted"))),
        "{refused:?}"
    );
    for user in [dave, carol, alice] {
        fx.change(room, user, message.id, react("👍"))
            .await
            .unwrap();
    }
    fx.change(room, carol, message.id, react("🍕"))
        .await
        .unwrap();
    let seen = fx.entry(room, carol, message.id).await.reactions;
    assert_eq!(seen.len(), 2);
    assert_eq!(
        (seen[0].emoji.as_str(), seen[0].count, seen[0].me),
        ("👍", 4, true)
    );
    assert_eq!(
        seen[0].users,
        vec![bob.id, dave.id, carol.id],
        "the first three"
    );
    assert_eq!((seen[1].emoji.as_str(), seen[1].count), ("🍕", 1));
    let bobs_view = fx.entry(room, bob, message.id).await.reactions;
    assert!(bobs_view[0].me && !bobs_view[1].me);

    // Taking one back.
    let removed = fx
        .change(
            room,
            bob,
            message.id,
            MessageChange::Unreact {
                emoji: "👍".into()
            },
        )
        .await
        .unwrap();
    assert!(matches!(removed.body, EventBody::ReactionRemoved { .. }));
    let refused = fx
        .change(
            room,
            bob,
            message.id,
            MessageChange::Unreact {
                emoji: "👍".into()
            },
        )
        .await;
    assert!(
        matches!(refused, Err(Error::Conflict("not_reacted"))),
        "{refused:?}"
    );
    let seen = fx.entry(room, bob, message.id).await.reactions;
    assert_eq!((seen[0].count, seen[0].me), (3, false));
    assert_eq!(seen[0].users, vec![dave.id, carol.id, alice.id]);

    // At most 20 different emoji; one already there can still be given.
    let emoji: Vec<&str> = [
        "😀", "😂", "😍", "😎", "😢", "😡", "🎉", "🔥", "💯", "👀", "🙏", "✅", "❌", "🚀", "🌮",
        "🐍", "🦀", "☕",
    ]
    .to_vec();
    for e in &emoji {
        fx.change(room, dave, message.id, react(e)).await.unwrap();
    }
    let refused = fx.change(room, dave, message.id, react("🍩")).await;
    assert!(
        matches!(refused, Err(Error::Conflict("too_many_reactions"))),
        "{refused:?}"
    );
    fx.change(room, bob, message.id, react("🍕"))
        .await
        .expect("an emoji already given");
    assert_eq!(fx.entry(room, bob, message.id).await.reactions.len(), 20);
}

async fn pins_are_for_moderators_and_listed(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (alice, bob) = (fx.register("alice").await, fx.register("bob").await);
    let room = fx.room_with(&alice, &[&bob]).await;
    let first = fx.say(room, &bob, "rules: be kind").await;
    let second = fx.say(room, &bob, "faq: see wiki").await;
    let refused = fx.change(room, &bob, first.id, MessageChange::Pin).await;
    assert!(matches!(refused, Err(Error::NotAllowed)), "{refused:?}");
    let pinned = fx
        .change(room, &alice, first.id, MessageChange::Pin)
        .await
        .unwrap();
    assert_eq!(pinned.body, EventBody::MessagePinned { target: first.id });
    let refused = fx.change(room, &alice, first.id, MessageChange::Pin).await;
    assert!(
        matches!(refused, Err(Error::Conflict("already_pinned"))),
        "{refused:?}"
    );
    fx.change(room, &alice, second.id, MessageChange::Pin)
        .await
        .unwrap();
    let pins = fx.pins(room, bob.id).await.unwrap().items;
    assert_eq!(
        pins.iter().map(|p| p.event.id).collect::<Vec<_>>(),
        vec![second.id, first.id],
        "the latest pin first"
    );
    assert_eq!(pins[1].pinned.as_ref().unwrap().by, Some(alice.id));
    assert_eq!(
        fx.entry(room, &bob, first.id).await.pinned,
        pins[1].pinned.clone()
    );
    fx.change(room, &alice, first.id, MessageChange::Unpin)
        .await
        .unwrap();
    let refused = fx
        .change(room, &alice, first.id, MessageChange::Unpin)
        .await;
    assert!(
        matches!(refused, Err(Error::Conflict("not_pinned"))),
        "{refused:?}"
    );
    assert_eq!(fx.pins(room, bob.id).await.unwrap().items.len(), 1);

    // In a DM either member pins.
    let (dm, _) = fx.direct_room(alice.id, bob.id).await.unwrap();
    let said = fx.say(dm.id, &alice, "address: 1 Main St").await;
    fx.change(dm.id, &bob, said.id, MessageChange::Pin)
        .await
        .expect("a DM member pins");

    // At most 50 pins a room.
    let (big, _) = fx
        .create_room(NewRoom {
            kind: RoomKind::Public,
            name: "big".into(),
            topic: String::new(),
            created_by: alice.id,
        })
        .await
        .unwrap();
    for i in 0..50 {
        let said = fx.say(big.id, &alice, &format!("notice {i}")).await;
        fx.change(big.id, &alice, said.id, MessageChange::Pin)
            .await
            .unwrap();
    }
    let one_more = fx.say(big.id, &alice, "one more").await;
    let refused = fx
        .change(big.id, &alice, one_more.id, MessageChange::Pin)
        .await;
    assert!(
        matches!(refused, Err(Error::Conflict("too_many_pins"))),
        "{refused:?}"
    );
}

async fn the_timeline_pages_messages_as_they_are_now(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (alice, bob) = (fx.register("alice").await, fx.register("bob").await);
    let room = fx.room_with(&alice, &[&bob]).await;
    let mut messages = Vec::new();
    for i in 0..6 {
        messages.push(fx.say(room, &alice, &format!("m{i}")).await);
        // Changes between them, which the timeline leaves out.
        fx.change(room, &bob, messages[i].id, react("👍"))
            .await
            .unwrap();
    }
    fx.change(room, &alice, messages[1].id, edit("m1, edited"))
        .await
        .unwrap();
    let everything = fx.whole_timeline(room, &bob).await;
    // The owner's and bob's joins, then the six messages.
    assert_eq!(everything.len(), 8);
    assert!(everything.iter().all(|i| i.event.body.target().is_none()));
    assert_eq!(text(&everything[3].event), "m1, edited");
    assert!(everything[2..].iter().all(|i| i.reactions[0].me));

    let page = |after: Option<i64>, before: Option<i64>| {
        let fx = &fx;
        let bob = &bob;
        async move {
            fx.timeline(
                room,
                bob.id,
                Page {
                    after,
                    before,
                    limit: 3,
                },
            )
            .await
            .unwrap()
            .items
            .iter()
            .map(|i| i.event.seq)
            .collect::<Vec<_>>()
        }
    };
    let all: Vec<i64> = everything.iter().map(|i| i.event.seq).collect();
    assert_eq!(page(None, None).await, all[5..]);
    assert_eq!(page(None, Some(all[5])).await, all[2..5]);
    assert_eq!(page(Some(all[1]), None).await, all[2..5]);
    assert_eq!(page(Some(all[5]), None).await, all[6..]);
}

async fn changes_are_authorised_as_the_room_is_at_the_commit(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (alice, bob) = (fx.register("alice").await, fx.register("bob").await);
    let room = fx.room_with(&alice, &[&bob]).await;
    let bobs = fx.say(room, &bob, "hi").await;
    let reacted = fx
        .change_message(room, bob.id, bobs.id, Some("r1"), react("👋"))
        .await
        .unwrap();
    fx.set_role(room, bob.id, alice.id, Role::Admin)
        .await
        .unwrap();
    fx.change(room, &bob, bobs.id, MessageChange::Pin)
        .await
        .expect("an admin pins");
    fx.set_role(room, bob.id, alice.id, Role::Member)
        .await
        .unwrap();
    let refused = fx.change(room, &bob, bobs.id, MessageChange::Unpin).await;
    assert!(matches!(refused, Err(Error::NotAllowed)), "{refused:?}");
    fx.remove_member(room, bob.id, alice.id, LeaveReason::Kicked)
        .await
        .unwrap();
    for change in [edit("x"), react("👍"), MessageChange::Delete] {
        let refused = fx.change(room, &bob, bobs.id, change).await;
        assert!(matches!(refused, Err(Error::NotMember)), "{refused:?}");
    }
    // A retry of a change made before the kick answers with it, like a
    // retried send: it was acknowledged, or would have been.
    let retried = fx
        .change_message(room, bob.id, bobs.id, Some("r1"), react("👋"))
        .await
        .unwrap();
    assert_eq!(
        retried,
        Appended {
            event: reacted.event,
            created: false
        }
    );
}
