//! Blocks (`BlockStore`): one way, once, listed with names for the
//! blocker, found either way round, and leaving the blocked user's
//! messages out of the blocker's unread and mention counts.

use chat_shared::model::UserId;
use chat_shared::store::{DirectSend, Error, NewMessage};
use chat_shared::testing::Backend;

use crate::Fixture;

conformance!(
    a_block_is_one_way_and_once,
    blocking_an_unknown_user_is_not_found,
    blocked_users_are_listed_newest_first_with_names,
    unread_counts_leave_out_blocked_senders,
    a_block_closes_the_pair_direct_room_either_way,
);

async fn a_block_is_one_way_and_once(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let alice = fx.register("alice").await;
    let bob = fx.register("bob").await;

    assert!(fx.block(alice.id, bob.id).await.unwrap(), "a new block");
    assert!(
        !fx.block(alice.id, bob.id).await.unwrap(),
        "already blocked"
    );
    assert!(fx.blocks(alice.id, bob.id).await.unwrap());
    assert!(!fx.blocks(bob.id, alice.id).await.unwrap(), "one way");
    assert!(fx.blocked_between(alice.id, bob.id).await.unwrap());
    assert!(fx.blocked_between(bob.id, alice.id).await.unwrap());
    assert_eq!(fx.blockers_of(bob.id).await.unwrap(), vec![alice.id]);
    assert!(fx.blockers_of(alice.id).await.unwrap().is_empty());

    assert!(fx.unblock(alice.id, bob.id).await.unwrap());
    assert!(!fx.unblock(alice.id, bob.id).await.unwrap(), "nothing left");
    assert!(!fx.blocked_between(alice.id, bob.id).await.unwrap());
    assert!(fx.blockers_of(bob.id).await.unwrap().is_empty());
}

async fn blocking_an_unknown_user_is_not_found(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let alice = fx.register("alice").await;
    let nobody = UserId::new();
    assert!(matches!(
        fx.block(alice.id, nobody).await,
        Err(Error::NotFound)
    ));
    assert!(fx.blocked_users(alice.id).await.unwrap().is_empty());
}

async fn blocked_users_are_listed_newest_first_with_names(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let alice = fx.register("alice").await;
    let bob = fx.register("bob").await;
    let carol = fx.register("carol").await;
    fx.block(alice.id, bob.id).await.unwrap();
    fx.block(alice.id, carol.id).await.unwrap();
    fx.block(bob.id, carol.id).await.unwrap();

    let listed = fx.blocked_users(alice.id).await.unwrap();
    let names: Vec<_> = listed
        .iter()
        .map(|b| b.user.display_name.as_str())
        .collect();
    assert_eq!(names.len(), 2);
    assert!(names.contains(&"Bob") && names.contains(&"Carol"));
    assert!(listed[0].blocked_at >= listed[1].blocked_at, "newest first");
    assert!(fx.blocked_users(carol.id).await.unwrap().is_empty());
}

async fn unread_counts_leave_out_blocked_senders(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let alice = fx.register("alice").await;
    let bob = fx.register("bob").await;
    let carol = fx.register("carol").await;
    let room = fx.private_room(&alice).await;
    fx.join(room.id, &bob).await;
    fx.join(room.id, &carol).await;
    fx.append_message(room.id, bob.id, NewMessage::text("b1", "hi @alice"))
        .await
        .unwrap();
    fx.append_message(room.id, carol.id, NewMessage::text("c1", "hi @alice"))
        .await
        .unwrap();
    let counts = |rooms: Vec<chat_shared::model::MyRoom>| {
        let mine = rooms.into_iter().find(|r| r.room.id == room.id).unwrap();
        (mine.unread, mine.unread_mentions)
    };
    assert_eq!(counts(fx.my_rooms(alice.id).await.unwrap()), (2, 2));

    fx.block(alice.id, bob.id).await.unwrap();
    assert_eq!(
        counts(fx.my_rooms(alice.id).await.unwrap()),
        (1, 1),
        "bob's message counts no more for alice"
    );
    // Bob's counts are not alice's business: carol's message is unread.
    assert_eq!(counts(fx.my_rooms(bob.id).await.unwrap()), (1, 0));

    fx.unblock(alice.id, bob.id).await.unwrap();
    assert_eq!(counts(fx.my_rooms(alice.id).await.unwrap()), (2, 2));
}

async fn a_block_closes_the_pair_direct_room_either_way(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let alice = fx.register("alice").await;
    let bob = fx.register("bob").await;
    let group = fx.private_room(&alice).await;
    let (dm, _) = fx.direct_room(alice.id, bob.id).await.unwrap();

    assert!(matches!(
        fx.direct_send(dm.id, alice.id).await.unwrap(),
        DirectSend::Open { .. }
    ));
    assert_eq!(
        fx.direct_send(group.id, alice.id).await.unwrap(),
        DirectSend::NotDirect
    );
    fx.block(bob.id, alice.id).await.unwrap();
    for sender in [alice.id, bob.id] {
        assert_eq!(
            fx.direct_send(dm.id, sender).await.unwrap(),
            DirectSend::Blocked,
            "both ways"
        );
    }
    assert_eq!(
        fx.direct_send(group.id, alice.id).await.unwrap(),
        DirectSend::NotDirect,
        "group rooms are not closed by a block"
    );
    fx.unblock(bob.id, alice.id).await.unwrap();
    assert!(matches!(
        fx.direct_send(dm.id, bob.id).await.unwrap(),
        DirectSend::Open { .. }
    ));
}
