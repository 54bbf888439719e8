//! Timeouts and slow mode (`ModerationStore`, and their enforcement by the
//! message append and the changes of a message): who may mute whom, that a
//! mute is an event in the log and refuses sends, reactions and edits at
//! the commit until it ends or is lifted, and that slow mode lets one
//! message of a member through per interval even when sends race.

use chat_shared::admin::ServerRole;
use chat_shared::model::{EventBody, Role, RoomEvent, RoomId};
use chat_shared::store::{Error, MessageChange, NewMessage, Standing};
use chat_shared::testing::Backend;
use futures::future::join_all;
use time::{Duration, OffsetDateTime};

use crate::{seqs, Fixture};

conformance!(
    a_mute_is_logged_and_refuses_sends_reactions_and_edits_until_lifted,
    only_an_owner_or_admin_above_the_member_mutes,
    server_roles_rank_in_moderation,
    a_mute_that_has_ended_is_no_mute,
    a_mute_committed_first_is_seen_by_racing_sends,
    slow_mode_is_set_by_owners_and_admins_and_logged_once,
    slow_mode_lets_one_message_per_interval_through_owners_exempt,
    racing_sends_under_slow_mode_pass_once,
);

/// Now, to the microsecond the stores keep.
fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(t.nanosecond() / 1_000 * 1_000)
        .expect("in range")
}

async fn a_mute_is_logged_and_refuses_sends_reactions_and_edits_until_lifted(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let owner = fx.register("owner").await;
    let bob = fx.register("bob").await;
    let room = fx.private_room(&owner).await.id;
    fx.join(room, &bob).await;
    let said = fx.send(room, bob.id, "before").await.event;
    let mine = fx.send(room, owner.id, "owners").await.event;

    let until = now() + Duration::hours(1);
    let muted = fx.mute(room, bob.id, owner.id, until).await.unwrap();
    assert_eq!(muted.sender, Some(owner.id));
    assert_eq!(
        muted.body,
        EventBody::MemberMuted {
            user: bob.id,
            until
        }
    );
    assert_eq!(fx.log(room).await.last(), Some(&muted));
    let standing = fx.standing(room, bob.id).await.unwrap();
    assert_eq!(
        standing,
        Some(Standing {
            role: Role::Member,
            muted_until: Some(until)
        })
    );
    let members = fx.members(room).await.unwrap();
    let listed = members.iter().find(|m| m.user.id == bob.id).unwrap();
    assert_eq!(listed.muted_until, Some(until));
    let theirs = fx.my_rooms(bob.id).await.unwrap();
    assert_eq!(theirs[0].muted_until, Some(until));

    // Refused at the commit, with the mute's end; nothing is stored.
    let head = fx.reload(room).await.last_seq;
    let refused = fx
        .append_message(room, bob.id, NewMessage::text("during", "hello?"))
        .await;
    assert!(
        matches!(refused, Err(Error::Muted(t)) if t == until),
        "{refused:?}"
    );
    let react = MessageChange::React {
        emoji: "👍".into()
    };
    let refused = fx
        .change_message(room, bob.id, mine.id, Some("r1"), react.clone())
        .await;
    assert!(matches!(refused, Err(Error::Muted(_))), "{refused:?}");
    let edit = MessageChange::Edit {
        body: "edited".into(),
    };
    let refused = fx
        .change_message(room, bob.id, said.id, Some("e1"), edit)
        .await;
    assert!(matches!(refused, Err(Error::Muted(_))), "{refused:?}");
    assert_eq!(fx.reload(room).await.last_seq, head);
    // Their own message is still theirs to delete.
    fx.change_message(room, bob.id, said.id, Some("d1"), MessageChange::Delete)
        .await
        .expect("a muted member deletes their own message");

    let unmuted = fx.unmute(room, bob.id, owner.id).await.unwrap();
    assert_eq!(unmuted.body, EventBody::MemberUnmuted { user: bob.id });
    assert_eq!(
        fx.standing(room, bob.id)
            .await
            .unwrap()
            .unwrap()
            .muted_until,
        None
    );
    assert!(fx.send(room, bob.id, "after").await.created);
    fx.change_message(room, bob.id, mine.id, Some("r2"), react)
        .await
        .expect("reacting once unmuted");
    // Nothing to lift now.
    let again = fx.unmute(room, bob.id, owner.id).await;
    assert!(
        matches!(again, Err(Error::Conflict("not_muted"))),
        "{again:?}"
    );
}

async fn only_an_owner_or_admin_above_the_member_mutes(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let owner = fx.register("owner").await;
    let admin = fx.register("admin").await;
    let admin2 = fx.register("admin2").await;
    let bob = fx.register("bob").await;
    let carol = fx.register("carol").await;
    let stranger = fx.register("stranger").await;
    let room = fx.private_room(&owner).await.id;
    for user in [&admin, &admin2, &bob, &carol] {
        fx.join(room, user).await;
    }
    for user in [&admin, &admin2] {
        fx.set_role(room, user.id, owner.id, Role::Admin)
            .await
            .unwrap();
    }
    let until = now() + Duration::minutes(10);
    let head = fx.reload(room).await.last_seq;
    for (user, by) in [
        (&carol, &bob),    // a member mutes nobody
        (&admin2, &admin), // nor an admin an equal
        (&owner, &admin),  // nor anyone the owner
        (&bob, &stranger), // nor someone outside the room
        (&owner, &owner),  // nor the owner themselves
    ] {
        let refused = fx.mute(room, user.id, by.id, until).await;
        assert!(
            matches!(refused, Err(Error::NotAllowed)),
            "{} muting {}: {refused:?}",
            by.username,
            user.username
        );
    }
    let refused = fx.mute(room, stranger.id, owner.id, until).await;
    assert!(matches!(refused, Err(Error::NotMember)), "{refused:?}");
    assert_eq!(fx.reload(room).await.last_seq, head, "nothing recorded");
    assert_eq!(
        fx.standing(room, bob.id)
            .await
            .unwrap()
            .unwrap()
            .muted_until,
        None
    );

    // An admin mutes a member; only someone above them lifts it.
    fx.mute(room, bob.id, admin.id, until).await.unwrap();
    let refused = fx.unmute(room, bob.id, carol.id).await;
    assert!(matches!(refused, Err(Error::NotAllowed)), "{refused:?}");
    fx.unmute(room, bob.id, admin2.id).await.unwrap();
    // The owner mutes an admin.
    fx.mute(room, admin.id, owner.id, until).await.unwrap();
    let refused = fx
        .append_message(room, admin.id, NewMessage::text("a", "hi"))
        .await;
    assert!(matches!(refused, Err(Error::Muted(_))), "{refused:?}");
}

/// A server moderator acts as room admin: mutes a member and sets slow mode
/// in a room they are not in, and a room admin cannot mute them.
async fn server_roles_rank_in_moderation(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let owner = fx.register("owner").await;
    let admin = fx.register("admin").await;
    let bob = fx.register("bob").await;
    let modo = fx.register("modo").await;
    fx.set_server_role(modo.id, Some(ServerRole::Moderator), None)
        .await
        .unwrap();
    let room = fx.private_room(&owner).await.id;
    fx.join(room, &admin).await;
    fx.set_role(room, admin.id, owner.id, Role::Admin)
        .await
        .unwrap();
    fx.join(room, &bob).await;

    let until = now() + Duration::hours(1);
    fx.mute(room, bob.id, modo.id, until)
        .await
        .expect("a server moderator mutes in a room they are not in");
    fx.set_slow_mode(room, modo.id, 30)
        .await
        .expect("and sets its slow mode");
    fx.join(room, &modo).await;
    assert!(
        matches!(
            fx.mute(room, modo.id, admin.id, until).await,
            Err(Error::NotAllowed)
        ),
        "a room admin does not outrank a server moderator who is a member"
    );
    fx.mute(room, modo.id, owner.id, until)
        .await
        .expect("the room's owner does");
}

async fn a_mute_that_has_ended_is_no_mute(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let owner = fx.register("owner").await;
    let bob = fx.register("bob").await;
    let room = fx.private_room(&owner).await.id;
    fx.join(room, &bob).await;
    fx.mute(room, bob.id, owner.id, now() - Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(
        fx.standing(room, bob.id)
            .await
            .unwrap()
            .unwrap()
            .muted_until,
        None
    );
    let members = fx.members(room).await.unwrap();
    assert!(members.iter().all(|m| m.muted_until.is_none()));
    assert!(fx.send(room, bob.id, "free").await.created);
    let lifted = fx.unmute(room, bob.id, owner.id).await;
    assert!(
        matches!(lifted, Err(Error::Conflict("not_muted"))),
        "{lifted:?}"
    );
}

async fn a_mute_committed_first_is_seen_by_racing_sends(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let owner = fx.register("owner").await;
    let bob = fx.register("bob").await;
    let room = fx.private_room(&owner).await.id;
    fx.join(room, &bob).await;
    let sends = (0..40).map(|i| {
        let store = fx.store.clone();
        async move {
            store
                .append_message(room, bob.id, NewMessage::text(format!("c{i}"), "hi"))
                .await
        }
    });
    let store = fx.store.clone();
    let until = now() + Duration::hours(1);
    let mute = tokio::spawn(async move { store.mute(room, bob.id, owner.id, until).await });
    let answers = join_all(sends).await;
    let muted_at = mute.await.unwrap().unwrap().seq;
    for answer in answers {
        match answer {
            Ok(appended) => assert!(appended.event.seq < muted_at, "a send after the mute"),
            Err(Error::Muted(t)) => assert_eq!(t, until),
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    // The log has no gap whatever was refused.
    let log = fx.log(room).await;
    assert_eq!(seqs(&log), (1..=log.len() as i64).collect::<Vec<_>>());
    let after: Vec<&RoomEvent> = log.iter().filter(|e| e.seq > muted_at).collect();
    assert!(after.is_empty(), "{after:?}");
}

async fn slow_mode_is_set_by_owners_and_admins_and_logged_once(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let owner = fx.register("owner").await;
    let admin = fx.register("admin").await;
    let bob = fx.register("bob").await;
    let stranger = fx.register("stranger").await;
    let room = fx.private_room(&owner).await.id;
    fx.join(room, &admin).await;
    fx.join(room, &bob).await;
    fx.set_role(room, admin.id, owner.id, Role::Admin)
        .await
        .unwrap();
    let head = fx.reload(room).await.last_seq;
    let refused = fx.set_slow_mode(room, bob.id, 30).await;
    assert!(matches!(refused, Err(Error::NotAllowed)), "{refused:?}");
    let refused = fx.set_slow_mode(room, stranger.id, 30).await;
    assert!(matches!(refused, Err(Error::NotMember)), "{refused:?}");
    let refused = fx.set_slow_mode(RoomId::new(), owner.id, 30).await;
    assert!(matches!(refused, Err(Error::NotFound)), "{refused:?}");
    assert_eq!(fx.reload(room).await.last_seq, head);

    let (set, event) = fx.set_slow_mode(room, admin.id, 30).await.unwrap();
    let event = event.expect("a change is recorded");
    assert_eq!(set.slow_mode_seconds, 30);
    assert_eq!(set.last_seq, event.seq);
    assert_eq!(event.body, EventBody::SlowModeChanged { seconds: 30 });
    assert_eq!(event.sender, Some(admin.id));
    assert_eq!(fx.reload(room).await, set);
    // The same again changes nothing.
    let (same, none) = fx.set_slow_mode(room, owner.id, 30).await.unwrap();
    assert_eq!(none, None);
    assert_eq!(same, set);
    let (off, event) = fx.set_slow_mode(room, owner.id, 0).await.unwrap();
    assert_eq!(off.slow_mode_seconds, 0);
    assert_eq!(
        event.unwrap().body,
        EventBody::SlowModeChanged { seconds: 0 }
    );
}

async fn slow_mode_lets_one_message_per_interval_through_owners_exempt(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let owner = fx.register("owner").await;
    let bob = fx.register("bob").await;
    let room = fx.private_room(&owner).await.id;
    fx.join(room, &bob).await;
    // Sent before slow mode: it does not count (nothing was recorded).
    fx.send(room, bob.id, "early").await;
    fx.set_slow_mode(room, owner.id, 30).await.unwrap();
    let first = fx.send(room, bob.id, "first").await;
    let head = fx.reload(room).await.last_seq;
    let refused = fx
        .append_message(room, bob.id, NewMessage::text("second", "again"))
        .await;
    assert!(
        matches!(refused, Err(Error::SlowMode(wait)) if (29..=30).contains(&wait)),
        "{refused:?}"
    );
    assert_eq!(fx.reload(room).await.last_seq, head, "nothing stored");
    // A retry of the message that passed is answered, not refused.
    let retry = fx
        .append_message(room, bob.id, NewMessage::text("first", "body of first"))
        .await
        .unwrap();
    assert!(!retry.created);
    assert_eq!(retry.event.seq, first.event.seq);
    // Owners and admins are exempt.
    assert!(fx.send(room, owner.id, "o1").await.created);
    assert!(fx.send(room, owner.id, "o2").await.created);
    // Reactions are not messages: slow mode does not count them.
    fx.change_message(
        room,
        bob.id,
        first.event.id,
        Some("r"),
        MessageChange::React {
            emoji: "👍".into()
        },
    )
    .await
    .unwrap();
    // A change of the interval starts it afresh: the next message passes.
    fx.set_slow_mode(room, owner.id, 60).await.unwrap();
    assert!(fx.send(room, bob.id, "after the change").await.created);
    let refused = fx
        .append_message(room, bob.id, NewMessage::text("too soon", "again"))
        .await;
    assert!(
        matches!(refused, Err(Error::SlowMode(59..=60))),
        "{refused:?}"
    );
    // Off again: the member sends at once.
    fx.set_slow_mode(room, owner.id, 0).await.unwrap();
    assert!(fx.send(room, bob.id, "third").await.created);
}

async fn racing_sends_under_slow_mode_pass_once(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let owner = fx.register("owner").await;
    let bob = fx.register("bob").await;
    let room = fx.private_room(&owner).await.id;
    fx.join(room, &bob).await;
    fx.set_slow_mode(room, owner.id, 60).await.unwrap();
    let sends = (0..20).map(|i| {
        let store = fx.store.clone();
        async move {
            store
                .append_message(room, bob.id, NewMessage::text(format!("c{i}"), "hi"))
                .await
        }
    });
    let answers = join_all(sends).await;
    let passed = answers.iter().filter(|a| a.is_ok()).count();
    assert_eq!(passed, 1, "{answers:?}");
    assert!(answers
        .iter()
        .all(|a| matches!(a, Ok(_) | Err(Error::SlowMode(_)))));
    let messages = fx
        .log(room)
        .await
        .into_iter()
        .filter(|e| e.sender == Some(bob.id) && e.body.kind() == "message")
        .count();
    assert_eq!(messages, 1);
}
