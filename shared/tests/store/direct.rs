//! Direct rooms (`RoomStore::direct_room`): one room per pair of users,
//! created lazily on first use, race-free however many first messages
//! arrive at once and in whichever order the pair is named.

use std::collections::HashSet;
use std::sync::Arc;

use chat_shared::model::{EventBody, Role, RoomKind, UserId};
use chat_shared::store::Error;
use chat_shared::testing::Backend;
use futures::future::join_all;
use tokio::sync::Barrier;

use crate::Fixture;

conformance!(
    concurrent_first_contacts_create_one_room,
    a_direct_room_is_reused_per_pair,
);

async fn concurrent_first_contacts_create_one_room(backend: Backend) {
    const CALLS: usize = 10;
    let fx = Fixture::new(backend).await;
    let alice = fx.register("alice").await;
    let bob = fx.register("bob").await;

    let barrier = Arc::new(Barrier::new(CALLS));
    let calls = (0..CALLS).map(|i| {
        let store = fx.store.clone();
        let barrier = barrier.clone();
        // Half name the pair one way round, half the other.
        let (a, b) = if i % 2 == 0 {
            (alice.id, bob.id)
        } else {
            (bob.id, alice.id)
        };
        tokio::spawn(async move {
            barrier.wait().await;
            store.direct_room(a, b).await.unwrap()
        })
    });
    let results: Vec<_> = join_all(calls)
        .await
        .into_iter()
        .map(|joined| joined.unwrap())
        .collect();

    let rooms: HashSet<_> = results.iter().map(|(room, _)| room.id).collect();
    assert_eq!(rooms.len(), 1, "one room for the pair");
    let created = results.iter().filter(|(_, created)| *created).count();
    assert_eq!(created, 1, "exactly one call created it");

    let room = fx.reload(*rooms.iter().next().unwrap()).await;
    assert_eq!(room.kind, RoomKind::Direct);
    assert_eq!(room.name, "");
    assert_eq!(room.last_seq, 2, "the two member_joined events");
    for (seen, _) in &results {
        assert_eq!(seen.id, room.id);
        assert_eq!(seen.kind, RoomKind::Direct);
    }
    let mut members: Vec<(UserId, Role)> = fx
        .members(room.id)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.user.id, m.role))
        .collect();
    members.sort();
    let mut expected = vec![(alice.id, Role::Member), (bob.id, Role::Member)];
    expected.sort();
    assert_eq!(members, expected);

    let mut joined: Vec<UserId> = fx
        .log(room.id)
        .await
        .into_iter()
        .map(|e| match e.body {
            EventBody::MemberJoined { user } => user,
            other => panic!("unexpected event {other:?}"),
        })
        .collect();
    joined.sort();
    let mut pair = vec![alice.id, bob.id];
    pair.sort();
    assert_eq!(joined, pair);

    // Both can talk there at once.
    assert!(fx.send(room.id, alice.id, "hi bob").await.created);
    assert!(fx.send(room.id, bob.id, "hi alice").await.created);
}

async fn a_direct_room_is_reused_per_pair(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let alice = fx.register("alice").await;
    let bob = fx.register("bob").await;
    let carol = fx.register("carol").await;

    let (first, created) = fx.direct_room(alice.id, bob.id).await.unwrap();
    assert!(created);
    let (again, created_again) = fx.direct_room(bob.id, alice.id).await.unwrap();
    assert!(!created_again);
    assert_eq!(again.id, first.id);

    let (other, created_other) = fx.direct_room(alice.id, carol.id).await.unwrap();
    assert!(created_other);
    assert_ne!(other.id, first.id, "each pair has its own room");
    assert_eq!(fx.role(first.id, carol.id).await.unwrap(), None);

    // Direct rooms show in each member's list once written in (lazy
    // creation: the `dms` suite), never in the public list.
    fx.send(first.id, alice.id, "first").await;
    fx.send(other.id, carol.id, "other").await;
    let public = fx.public_rooms().await.unwrap();
    assert!(public.iter().all(|r| r.kind == RoomKind::Public));
    let alices: HashSet<_> = fx
        .my_rooms(alice.id)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.room.id)
        .collect();
    assert_eq!(alices, HashSet::from([first.id, other.id]));
    let bobs: Vec<_> = fx
        .my_rooms(bob.id)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.room.id, r.room.kind))
        .collect();
    assert_eq!(bobs, vec![(first.id, RoomKind::Direct)]);

    let missing = fx.direct_room(alice.id, UserId::new()).await;
    assert!(matches!(missing, Err(Error::NotFound)), "{missing:?}");
}
