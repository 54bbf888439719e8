//! The consent of DMs (`DmStore`, and what `my_rooms` and `direct_send`
//! make of it): a DM is listed for nobody until its first message; one
//! opened to a stranger is a request the other accepts or declines (which
//! refuses the opener's messages); a closed DM is hidden until its next
//! message.

use chat_shared::model::{MyRoom, RoomId, User, UserId};
use chat_shared::store::{DirectSend, Error, NewMessage};
use chat_shared::testing::Backend;

use crate::Fixture;

conformance!(
    a_dm_is_listed_from_its_first_message_and_a_strangers_is_a_request,
    a_request_is_accepted_or_declined_by_its_recipient_only,
    a_closed_dm_is_hidden_until_its_next_message,
);

/// `user`'s listing of `room`, if listed.
async fn listed(fx: &Fixture, user: &User, room: RoomId) -> Option<MyRoom> {
    fx.my_rooms(user.id)
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.room.id == room)
}

fn sorted(mut users: Vec<UserId>) -> Vec<UserId> {
    users.sort();
    users
}

async fn a_dm_is_listed_from_its_first_message_and_a_strangers_is_a_request(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let alice = fx.register("alice").await;
    let bob = fx.register("bob").await;
    let carol = fx.register("carol").await;
    let group = fx.private_room(&alice).await;
    fx.join(group.id, &carol).await;

    // Alice and bob share no room: a request of alice's.
    let (dm, _) = fx.direct_room(alice.id, bob.id).await.unwrap();
    assert!(listed(&fx, &alice, dm.id).await.is_none(), "not written in");
    assert!(listed(&fx, &bob, dm.id).await.is_none(), "not written in");
    let DirectSend::Open { unlisted } = fx.direct_send(dm.id, alice.id).await.unwrap() else {
        panic!("alice may write");
    };
    assert_eq!(sorted(unlisted), sorted(vec![alice.id, bob.id]));
    fx.send(dm.id, alice.id, "hello").await;
    let mine = listed(&fx, &alice, dm.id)
        .await
        .expect("listed once written");
    assert!(!mine.request, "not a request to its sender");
    let theirs = listed(&fx, &bob, dm.id).await.expect("listed once written");
    assert!(theirs.request, "a request to bob");
    assert_eq!(
        fx.direct_send(dm.id, bob.id).await.unwrap(),
        DirectSend::Open { unlisted: vec![] }
    );

    // Alice and carol share a room: a plain DM.
    let (plain, _) = fx.direct_room(carol.id, alice.id).await.unwrap();
    fx.send(plain.id, carol.id, "hi").await;
    assert!(!listed(&fx, &alice, plain.id).await.unwrap().request);
}

async fn a_request_is_accepted_or_declined_by_its_recipient_only(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let alice = fx.register("alice").await;
    let bob = fx.register("bob").await;
    let carol = fx.register("carol").await;
    let (dm, _) = fx.direct_room(alice.id, bob.id).await.unwrap();
    fx.send(dm.id, alice.id, "hello").await;

    assert!(matches!(
        fx.accept_dm(dm.id, alice.id).await,
        Err(Error::Conflict("not_a_request"))
    ));
    assert!(matches!(
        fx.decline_dm(dm.id, carol.id).await,
        Err(Error::NotFound)
    ));

    fx.decline_dm(dm.id, bob.id).await.unwrap();
    assert!(listed(&fx, &bob, dm.id).await.is_none(), "hidden from bob");
    assert!(listed(&fx, &alice, dm.id).await.is_some(), "not from alice");
    assert_eq!(
        fx.direct_send(dm.id, alice.id).await.unwrap(),
        DirectSend::Declined
    );
    // Bob may still write (and that lists it for him again).
    assert_eq!(
        fx.direct_send(dm.id, bob.id).await.unwrap(),
        DirectSend::Open {
            unlisted: vec![bob.id]
        }
    );

    fx.accept_dm(dm.id, bob.id).await.unwrap();
    let theirs = listed(&fx, &bob, dm.id).await.expect("listed on accept");
    assert!(!theirs.request);
    assert_eq!(
        fx.direct_send(dm.id, alice.id).await.unwrap(),
        DirectSend::Open { unlisted: vec![] }
    );
    assert!(matches!(
        fx.accept_dm(dm.id, bob.id).await,
        Err(Error::Conflict("not_a_request"))
    ));
}

async fn a_closed_dm_is_hidden_until_its_next_message(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let alice = fx.register("alice").await;
    let bob = fx.register("bob").await;
    let group = fx.private_room(&alice).await;
    fx.join(group.id, &bob).await;
    let (dm, _) = fx.direct_room(alice.id, bob.id).await.unwrap();
    fx.send(dm.id, alice.id, "one").await;

    fx.close_dm(dm.id, alice.id).await.unwrap();
    assert!(listed(&fx, &alice, dm.id).await.is_none(), "closed");
    assert!(listed(&fx, &bob, dm.id).await.is_some(), "for alice only");
    assert_eq!(
        fx.direct_send(dm.id, bob.id).await.unwrap(),
        DirectSend::Open {
            unlisted: vec![alice.id]
        }
    );
    fx.append_message(dm.id, bob.id, NewMessage::text("two", "back?"))
        .await
        .unwrap();
    assert!(
        listed(&fx, &alice, dm.id).await.is_some(),
        "back with a message"
    );

    assert!(matches!(
        fx.close_dm(group.id, alice.id).await,
        Err(Error::NotFound)
    ));
    let (other, _) = fx
        .direct_room(bob.id, fx.register("carol").await.id)
        .await
        .unwrap();
    assert!(matches!(
        fx.close_dm(other.id, alice.id).await,
        Err(Error::NotFound)
    ));
}
