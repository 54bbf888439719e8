//! Rooms and membership (`RoomStore`, plus read markers): the seeded public
//! rooms, creation, updates, joins, leaves, roles, bans, the member's room
//! list, and the rule that every membership change is an event in the log.

use std::sync::Arc;

use chat_shared::model::{
    EventBody, LeaveReason, MyRoom, Role, Room, RoomEvent, RoomId, RoomKind, UserId,
};
use chat_shared::store::{Error, NewMessage, NewRoom, ReadMark};
use chat_shared::testing::Backend;
use futures::future::join_all;
use tokio::sync::Barrier;

use crate::{seqs, Fixture};

conformance!(
    seeded_public_rooms_exist,
    create_room_makes_the_creator_owner,
    update_room_records_room_updated,
    add_member_records_member_joined_once,
    remove_member_records_the_reason,
    making_someone_owner_hands_the_room_over,
    concurrent_handovers_leave_one_owner,
    a_ban_removes_and_keeps_out_until_lifted,
    a_ban_racing_a_join_keeps_the_user_out,
    concurrent_adds_admit_once,
    members_are_listed_by_join_time,
    my_rooms_show_the_head_and_read_marker,
    unread_counts_other_peoples_messages_and_sending_reads_the_room,
    concurrent_sends_move_each_senders_marker_to_their_newest,
    read_markers_move_forward_within_the_log,
    delete_room_removes_room_and_log,
    membership_changes_form_a_consecutive_log,
);

/// An event reduced to what a test checks: its seq, who caused it, and what
/// it says.
fn said(event: &RoomEvent) -> (i64, Option<UserId>, EventBody) {
    (event.seq, event.sender, event.body.clone())
}

/// [`said`] of each event.
fn bodies(events: &[RoomEvent]) -> Vec<(i64, Option<UserId>, EventBody)> {
    events.iter().map(said).collect()
}

async fn seeded_public_rooms_exist(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let rooms = fx.public_rooms().await.unwrap();
    let names: Vec<&str> = rooms.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, vec!["general", "random", "tech"]);
    for room in &rooms {
        assert_eq!(room.kind, RoomKind::Public);
        assert_eq!(room.created_by, None);
        assert_eq!(room.last_seq, 0);
        assert_eq!(fx.room(room.id).await.unwrap().as_ref(), Some(room));
        assert!(fx.log(room.id).await.is_empty());
    }

    // Anyone can join a public room, and a new public room is listed.
    let alice = fx.register("alice").await;
    let general = rooms[0].id;
    let joined = fx.join(general, &alice).await;
    assert_eq!(joined.seq, 1);
    assert!(fx.send(general, alice.id, "hi").await.created);
    let (agora, _) = fx
        .create_room(NewRoom {
            kind: RoomKind::Public,
            name: "agora".into(),
            topic: "open to all".into(),
            created_by: alice.id,
        })
        .await
        .unwrap();
    let names: Vec<String> = fx
        .public_rooms()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, vec!["agora", "general", "random", "tech"]);
    // Private rooms are not listed.
    fx.private_room(&alice).await;
    assert_eq!(fx.public_rooms().await.unwrap().len(), 4);
    assert_eq!(fx.reload(agora.id).await.kind, RoomKind::Public);
}

async fn create_room_makes_the_creator_owner(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let alice = fx.register("alice").await;
    let (room, event) = fx
        .create_room(NewRoom {
            kind: RoomKind::Private,
            name: "book club".into(),
            topic: "this month: Dune".into(),
            created_by: alice.id,
        })
        .await
        .unwrap();
    assert_eq!(room.kind, RoomKind::Private);
    assert_eq!(room.name, "book club");
    assert_eq!(room.topic, "this month: Dune");
    assert_eq!(room.created_by, Some(alice.id));
    assert_eq!(room.last_seq, 1);
    assert_eq!(fx.room(room.id).await.unwrap(), Some(room.clone()));

    assert_eq!(event.room_id, room.id);
    assert_eq!(event.seq, 1);
    assert_eq!(event.sender, Some(alice.id));
    assert_eq!(event.client_id, None);
    assert_eq!(event.body, EventBody::MemberJoined { user: alice.id });
    assert_eq!(fx.log(room.id).await, vec![event]);

    assert_eq!(fx.role(room.id, alice.id).await.unwrap(), Some(Role::Owner));
    let members = fx.members(room.id).await.unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].user, alice);
    assert_eq!(members[0].role, Role::Owner);

    let orphan = fx
        .create_room(NewRoom {
            kind: RoomKind::Private,
            name: "nobody's".into(),
            topic: String::new(),
            created_by: UserId::new(),
        })
        .await;
    assert!(matches!(orphan, Err(Error::NotFound)), "{orphan:?}");
}

async fn update_room_records_room_updated(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let alice = fx.register("alice").await;
    let room = fx.private_room(&alice).await;

    let (updated, event) = fx
        .update_room(room.id, alice.id, "renamed".into(), "new topic".into())
        .await
        .unwrap();
    let event = event.expect("a change is recorded");
    assert_eq!(updated.id, room.id);
    assert_eq!(updated.name, "renamed");
    assert_eq!(updated.topic, "new topic");
    assert_eq!(updated.last_seq, 2);
    assert_eq!(fx.reload(room.id).await, updated);
    assert_eq!(
        said(&event),
        (
            2,
            Some(alice.id),
            EventBody::RoomUpdated {
                name: "renamed".into(),
                topic: "new topic".into()
            }
        )
    );
    assert_eq!(fx.log(room.id).await.last(), Some(&event));

    // The same again changes nothing: no event, no new seq.
    let (same, none) = fx
        .update_room(room.id, alice.id, "renamed".into(), "new topic".into())
        .await
        .unwrap();
    assert_eq!(none, None, "a no-op edit recorded an event");
    assert_eq!(same, updated);
    assert_eq!(fx.reload(room.id).await.last_seq, 2);
    assert_eq!(fx.log(room.id).await.len(), 2);

    let missing = fx
        .update_room(RoomId::new(), alice.id, "x".into(), "y".into())
        .await;
    assert!(matches!(missing, Err(Error::NotFound)), "{missing:?}");
}

async fn add_member_records_member_joined_once(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let alice = fx.register("alice").await;
    let bob = fx.register("bob").await;
    let room = fx.private_room(&alice).await;

    let event = fx
        .add_member(room.id, bob.id, alice.id, Role::Member)
        .await
        .unwrap();
    assert_eq!(
        said(&event),
        (2, Some(alice.id), EventBody::MemberJoined { user: bob.id })
    );
    assert_eq!(fx.role(room.id, bob.id).await.unwrap(), Some(Role::Member));

    let again = fx.add_member(room.id, bob.id, alice.id, Role::Admin).await;
    assert!(matches!(again, Err(Error::Conflict("member"))), "{again:?}");
    assert_eq!(
        fx.role(room.id, bob.id).await.unwrap(),
        Some(Role::Member),
        "a refused add changes nothing"
    );
    assert_eq!(fx.reload(room.id).await.last_seq, 2);
    assert_eq!(fx.log(room.id).await.last(), Some(&event));

    let carol = fx.register("carol").await;
    let admin = fx
        .add_member(room.id, carol.id, alice.id, Role::Admin)
        .await
        .unwrap();
    assert_eq!(admin.seq, 3);
    assert_eq!(fx.role(room.id, carol.id).await.unwrap(), Some(Role::Admin));

    let no_room = fx
        .add_member(RoomId::new(), bob.id, bob.id, Role::Member)
        .await;
    assert!(matches!(no_room, Err(Error::NotFound)), "{no_room:?}");
    let no_user = fx
        .add_member(room.id, UserId::new(), alice.id, Role::Member)
        .await;
    assert!(matches!(no_user, Err(Error::NotFound)), "{no_user:?}");
    assert_eq!(fx.reload(room.id).await.last_seq, 3);
}

async fn remove_member_records_the_reason(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let alice = fx.register("alice").await;
    let bob = fx.register("bob").await;
    let carol = fx.register("carol").await;
    let room = fx.private_room(&alice).await;
    fx.join(room.id, &bob).await;
    fx.join(room.id, &carol).await;

    let kicked = fx
        .remove_member(room.id, bob.id, alice.id, LeaveReason::Kicked)
        .await
        .unwrap();
    let left = fx
        .remove_member(room.id, carol.id, carol.id, LeaveReason::Left)
        .await
        .unwrap();
    assert_eq!(
        bodies(&[kicked, left]),
        vec![
            (
                4,
                Some(alice.id),
                EventBody::MemberLeft {
                    user: bob.id,
                    reason: LeaveReason::Kicked
                }
            ),
            (
                5,
                Some(carol.id),
                EventBody::MemberLeft {
                    user: carol.id,
                    reason: LeaveReason::Left
                }
            ),
        ]
    );
    assert_eq!(fx.role(room.id, bob.id).await.unwrap(), None);
    let members: Vec<UserId> = fx
        .members(room.id)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.user.id)
        .collect();
    assert_eq!(members, vec![alice.id]);

    let again = fx
        .remove_member(room.id, bob.id, alice.id, LeaveReason::Kicked)
        .await;
    assert!(matches!(again, Err(Error::NotMember)), "{again:?}");
    assert_eq!(fx.reload(room.id).await.last_seq, 5);
    // Leaving is not a ban: bob can come back.
    assert_eq!(fx.join(room.id, &bob).await.seq, 6);
}

async fn making_someone_owner_hands_the_room_over(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let alice = fx.register("alice").await;
    let bob = fx.register("bob").await;
    let room = fx.private_room(&alice).await;
    fx.join(room.id, &bob).await;

    let promoted = fx
        .set_role(room.id, bob.id, alice.id, Role::Admin)
        .await
        .unwrap();
    assert_eq!(
        bodies(&promoted),
        vec![(
            3,
            Some(alice.id),
            EventBody::RoleChanged {
                user: bob.id,
                role: Role::Admin
            }
        )]
    );
    assert_eq!(fx.role(room.id, bob.id).await.unwrap(), Some(Role::Admin));

    let handover = fx
        .set_role(room.id, bob.id, alice.id, Role::Owner)
        .await
        .unwrap();
    assert_eq!(
        bodies(&handover),
        vec![
            (
                4,
                Some(alice.id),
                EventBody::RoleChanged {
                    user: bob.id,
                    role: Role::Owner
                }
            ),
            (
                5,
                Some(alice.id),
                EventBody::RoleChanged {
                    user: alice.id,
                    role: Role::Admin
                }
            ),
        ]
    );
    assert_eq!(fx.role(room.id, bob.id).await.unwrap(), Some(Role::Owner));
    assert_eq!(fx.role(room.id, alice.id).await.unwrap(), Some(Role::Admin));
    let owners = fx
        .members(room.id)
        .await
        .unwrap()
        .into_iter()
        .filter(|m| m.role == Role::Owner)
        .count();
    assert_eq!(owners, 1, "one owner per room");
    assert_eq!(fx.log(room.id).await[3..].to_vec(), handover);

    let outsider = fx.register("outsider").await;
    let refused = fx.set_role(room.id, outsider.id, bob.id, Role::Owner).await;
    assert!(matches!(refused, Err(Error::NotMember)), "{refused:?}");
    assert_eq!(fx.role(room.id, bob.id).await.unwrap(), Some(Role::Owner));
    assert_eq!(fx.reload(room.id).await.last_seq, 5);
}

async fn a_ban_removes_and_keeps_out_until_lifted(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let alice = fx.register("alice").await;
    let bob = fx.register("bob").await;
    let room = fx.private_room(&alice).await;
    fx.join(room.id, &bob).await;

    let left = fx
        .ban(room.id, bob.id, alice.id, "spam".into())
        .await
        .unwrap()
        .expect("a member's ban records member_left");
    assert_eq!(
        said(&left),
        (
            3,
            Some(alice.id),
            EventBody::MemberLeft {
                user: bob.id,
                reason: LeaveReason::Banned
            }
        )
    );
    assert_eq!(fx.log(room.id).await.last(), Some(&left));
    assert_eq!(fx.role(room.id, bob.id).await.unwrap(), None);
    let bans = fx.bans(room.id).await.unwrap();
    assert_eq!(bans.len(), 1);
    assert_eq!(bans[0].user_id, bob.id);
    assert_eq!(bans[0].banned_by, Some(alice.id));
    assert_eq!(bans[0].reason, "spam");

    let rejoin = fx.add_member(room.id, bob.id, bob.id, Role::Member).await;
    assert!(matches!(rejoin, Err(Error::Banned)), "{rejoin:?}");
    let send = fx
        .append_message(room.id, bob.id, NewMessage::text("b-1", "let me back"))
        .await;
    assert!(matches!(send, Err(Error::NotMember)), "{send:?}");
    let twice = fx.ban(room.id, bob.id, alice.id, "again".into()).await;
    assert!(matches!(twice, Err(Error::Conflict("ban"))), "{twice:?}");
    assert_eq!(fx.reload(room.id).await.last_seq, 3);

    // Banning someone who is not in the room only records the ban.
    let carol = fx.register("carol").await;
    let pre_emptive = fx.ban(room.id, carol.id, alice.id, String::new()).await;
    assert_eq!(pre_emptive.unwrap(), None);
    assert_eq!(fx.bans(room.id).await.unwrap().len(), 2);
    assert_eq!(fx.reload(room.id).await.last_seq, 3);

    assert!(fx.unban(room.id, bob.id).await.unwrap());
    assert!(!fx.unban(room.id, bob.id).await.unwrap(), "no ban left");
    let bans: Vec<UserId> = fx
        .bans(room.id)
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.user_id)
        .collect();
    assert_eq!(bans, vec![carol.id]);
    assert_eq!(fx.join(room.id, &bob).await.seq, 4);
    assert!(matches!(
        fx.add_member(room.id, carol.id, alice.id, Role::Member)
            .await,
        Err(Error::Banned)
    ));
}

async fn concurrent_handovers_leave_one_owner(backend: Backend) {
    const HEIRS: usize = 6;
    let fx = Fixture::new(backend).await;
    let alice = fx.register("alice").await;
    let room = fx.private_room(&alice).await;
    let mut heirs = Vec::new();
    for i in 0..HEIRS {
        let heir = fx.register(&format!("heir{i}")).await;
        fx.join(room.id, &heir).await;
        heirs.push(heir.id);
    }

    // Alice hands the room to each heir at once (say, a double-clicked
    // button on several devices): the first hands it over, and the others
    // find Alice no longer its owner (her role is read under the room's
    // lock, not before), so they change nothing.
    let barrier = Arc::new(Barrier::new(HEIRS));
    let handovers = heirs.iter().map(|&heir| {
        let store = fx.store.clone();
        let barrier = barrier.clone();
        tokio::spawn(async move {
            barrier.wait().await;
            store.set_role(room.id, heir, alice.id, Role::Owner).await
        })
    });
    let mut handed = 0;
    for joined in join_all(handovers).await {
        match joined.unwrap() {
            Ok(events) => {
                assert_eq!(events.len(), 2, "the handover demotes the owner");
                handed += 1;
            }
            Err(e) => assert!(matches!(e, Error::NotAllowed), "{e:?}"),
        }
    }
    assert_eq!(handed, 1, "a demoted owner handed the room on");
    assert_eq!(fx.role(room.id, alice.id).await.unwrap(), Some(Role::Admin));

    let owners: Vec<UserId> = fx
        .members(room.id)
        .await
        .unwrap()
        .into_iter()
        .filter(|m| m.role == Role::Owner)
        .map(|m| m.user.id)
        .collect();
    assert_eq!(owners.len(), 1, "one owner per room: {owners:?}");
    // The log agrees: the last role_changed to owner names the owner.
    let log = fx.log(room.id).await;
    let last_owner = log.iter().rev().find_map(|e| match e.body {
        EventBody::RoleChanged {
            user,
            role: Role::Owner,
        } => Some(user),
        _ => None,
    });
    assert_eq!(last_owner, Some(owners[0]));
    let expected: Vec<i64> = (1..=log.len() as i64).collect();
    assert_eq!(seqs(&log), expected);
}

async fn a_ban_racing_a_join_keeps_the_user_out(backend: Backend) {
    const ROUNDS: usize = 30;
    let fx = Fixture::new(backend).await;
    let alice = fx.register("alice").await;
    let room = fx.private_room(&alice).await;

    for round in 0..ROUNDS {
        let user = fx.register(&format!("joiner{round}")).await;
        let barrier = Arc::new(Barrier::new(2));
        let join = tokio::spawn({
            let store = fx.store.clone();
            let barrier = barrier.clone();
            async move {
                barrier.wait().await;
                store
                    .add_member(room.id, user.id, user.id, Role::Member)
                    .await
            }
        });
        barrier.wait().await;
        let left = fx
            .ban(room.id, user.id, alice.id, "raid".into())
            .await
            .unwrap();
        let joined = join.await.unwrap();

        // Whichever came first, the ban wins: a join that got in first is
        // undone by the ban's member_left, a later one is refused.
        match joined {
            Ok(event) => {
                let left = left.expect("the ban removed the member who had joined");
                assert!(event.seq < left.seq);
            }
            Err(Error::Banned) => assert_eq!(left, None),
            Err(e) => panic!("unexpected error: {e}"),
        }
        assert_eq!(
            fx.role(room.id, user.id).await.unwrap(),
            None,
            "round {round}"
        );
    }
    let members: Vec<UserId> = fx
        .members(room.id)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.user.id)
        .collect();
    assert_eq!(members, vec![alice.id]);
    assert_eq!(fx.bans(room.id).await.unwrap().len(), ROUNDS);
}

async fn concurrent_adds_admit_once(backend: Backend) {
    const ADDS: usize = 10;
    let fx = Fixture::new(backend).await;
    let alice = fx.register("alice").await;
    let bob = fx.register("bob").await;
    let room = fx.private_room(&alice).await;

    let barrier = Arc::new(Barrier::new(ADDS));
    let adds = (0..ADDS).map(|_| {
        let store = fx.store.clone();
        let barrier = barrier.clone();
        tokio::spawn(async move {
            barrier.wait().await;
            store
                .add_member(room.id, bob.id, alice.id, Role::Member)
                .await
        })
    });
    let mut added = 0;
    for joined in join_all(adds).await {
        match joined.unwrap() {
            Ok(event) => {
                added += 1;
                assert_eq!(event.seq, 2);
            }
            Err(Error::Conflict("member")) => {}
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(added, 1);
    assert_eq!(fx.reload(room.id).await.last_seq, 2);
    assert_eq!(fx.members(room.id).await.unwrap().len(), 2);
}

async fn members_are_listed_by_join_time(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let owner = fx.register("owner").await;
    let room = fx.private_room(&owner).await;
    let mut joined = vec![owner.id];
    // Joins a few microseconds apart must still list in order.
    for i in 0..12 {
        let user = fx.register(&format!("user{i:02}")).await;
        fx.join(room.id, &user).await;
        joined.push(user.id);
    }
    let members = fx.members(room.id).await.unwrap();
    let listed: Vec<UserId> = members.iter().map(|m| m.user.id).collect();
    assert_eq!(listed, joined);
    assert!(members.windows(2).all(|w| w[0].joined_at <= w[1].joined_at));
    assert!(members.iter().all(|m| m.last_read_seq == 0));
}

async fn my_rooms_show_the_head_and_read_marker(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let alice = fx.register("alice").await;
    let bob = fx.register("bob").await;
    let room = fx.private_room(&alice).await;
    let quiet = fx.private_room(&bob).await;
    fx.join(room.id, &bob).await;
    for i in 0..3 {
        fx.send(room.id, alice.id, &format!("c{i}")).await;
    }
    assert_eq!(fx.mark_read(room.id, bob.id, 3).await.unwrap().seq, 3);

    let alices = fx.my_rooms(alice.id).await.unwrap();
    assert_eq!(
        alices,
        vec![MyRoom {
            room: fx.reload(room.id).await,
            role: Role::Owner,
            // Sending moved alice's marker to her last message.
            last_read_seq: 5,
            unread: 0,
            unread_mentions: 0,
            request: false,
            muted_until: None,
        }]
    );
    assert_eq!(alices[0].room.last_seq, 5);

    let mut bobs = fx.my_rooms(bob.id).await.unwrap();
    bobs.sort_by_key(|r| r.room.last_seq);
    let view = |r: &MyRoom| {
        (
            r.room.id,
            r.room.last_seq,
            r.role,
            r.last_read_seq,
            r.unread,
        )
    };
    assert_eq!(
        bobs.iter().map(view).collect::<Vec<_>>(),
        vec![
            (quiet.id, 1, Role::Owner, 0, 0),
            (room.id, 5, Role::Member, 3, 2)
        ]
    );

    let carol = fx.register("carol").await;
    assert!(fx.my_rooms(carol.id).await.unwrap().is_empty());
}

async fn unread_counts_other_peoples_messages_and_sending_reads_the_room(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let alice = fx.register("alice").await;
    let bob = fx.register("bob").await;
    let room = fx.private_room(&alice).await;
    let unread = |user: UserId| {
        let fx = &fx;
        async move {
            let rooms = fx.my_rooms(user).await.unwrap();
            let mine = rooms.iter().find(|r| r.room.id == room.id).unwrap();
            (mine.last_read_seq, mine.unread)
        }
    };
    // Alone in a new room, chatting: nothing is unread (the room's own
    // events and my messages never count).
    for i in 0..3 {
        fx.send(room.id, alice.id, &format!("a{i}")).await;
    }
    assert_eq!(unread(alice.id).await, (4, 0));
    // A join and a role change are not messages either.
    fx.join(room.id, &bob).await;
    fx.set_role(room.id, bob.id, alice.id, Role::Admin)
        .await
        .unwrap();
    assert_eq!(unread(alice.id).await.1, 0);
    // Bob's messages are unread to alice, not to bob.
    for i in 0..2 {
        fx.send(room.id, bob.id, &format!("b{i}")).await;
    }
    assert_eq!(unread(alice.id).await, (4, 2));
    assert_eq!(unread(bob.id).await.1, 0);
    // Alice answering means she has read the room up to her answer.
    let answer = fx.send(room.id, alice.id, "a3").await.event.seq;
    assert_eq!(unread(alice.id).await, (answer, 0));
    // A retry of a send is not a new message and moves nothing back.
    fx.mark_read(room.id, bob.id, answer).await.unwrap();
    fx.send(room.id, bob.id, "b0").await;
    assert_eq!(unread(alice.id).await, (answer, 0));
}

async fn concurrent_sends_move_each_senders_marker_to_their_newest(backend: Backend) {
    let fx = Arc::new(Fixture::new(backend).await);
    let alice = fx.register("alice").await;
    let bob = fx.register("bob").await;
    let room = fx.private_room(&alice).await;
    fx.join(room.id, &bob).await;
    let sends = (0..40).map(|i| {
        let fx = fx.clone();
        let sender = if i % 2 == 0 { alice.id } else { bob.id };
        tokio::spawn(async move {
            (
                sender,
                fx.send(room.id, sender, &format!("c{i}")).await.event.seq,
            )
        })
    });
    let sent: Vec<(UserId, i64)> = join_all(sends)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    for user in [alice.id, bob.id] {
        let newest = sent
            .iter()
            .filter(|(s, _)| *s == user)
            .map(|(_, seq)| *seq)
            .max();
        let mine = fx.my_rooms(user).await.unwrap();
        let mine = mine.iter().find(|r| r.room.id == room.id).unwrap();
        assert_eq!(Some(mine.last_read_seq), newest, "{user}");
        // Everything the other sent after my newest is unread.
        let after = sent
            .iter()
            .filter(|(s, seq)| *s != user && Some(*seq) > newest)
            .count();
        assert_eq!(mine.unread, i64::try_from(after).unwrap());
    }
}

async fn read_markers_move_forward_within_the_log(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let alice = fx.register("alice").await;
    let bob = fx.register("bob").await;
    let room = fx.private_room(&alice).await;
    fx.join(room.id, &bob).await;
    for i in 0..4 {
        fx.send(room.id, alice.id, &format!("c{i}")).await;
    }
    let head = fx.reload(room.id).await.last_seq;
    assert_eq!(head, 6);

    // Bob reads what alice wrote (her own marker moved as she sent).
    let mark = |seq, moved| ReadMark { seq, moved };
    assert_eq!(
        fx.mark_read(room.id, bob.id, 3).await.unwrap(),
        mark(3, true)
    );
    assert_eq!(
        fx.mark_read(room.id, bob.id, 2).await.unwrap(),
        mark(3, false),
        "never back"
    );
    assert_eq!(
        fx.mark_read(room.id, bob.id, 3).await.unwrap(),
        mark(3, false),
        "the same seq again moves nothing"
    );
    assert_eq!(
        fx.mark_read(room.id, bob.id, 1_000).await.unwrap(),
        mark(head, true),
        "never past the head"
    );
    assert_eq!(
        fx.mark_read(room.id, bob.id, 1_000).await.unwrap(),
        mark(head, false)
    );
    let members = fx.members(room.id).await.unwrap();
    let marker = members
        .iter()
        .find(|m| m.user.id == bob.id)
        .unwrap()
        .last_read_seq;
    assert_eq!(marker, head);

    let carol = fx.register("carol").await;
    let outsider = fx.mark_read(room.id, carol.id, 1).await;
    assert!(matches!(outsider, Err(Error::NotMember)), "{outsider:?}");
    let nowhere = fx.mark_read(RoomId::new(), alice.id, 1).await;
    assert!(nowhere.is_err(), "{nowhere:?}");
}

async fn delete_room_removes_room_and_log(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let alice = fx.register("alice").await;
    let bob = fx.register("bob").await;
    let room = fx.private_room(&alice).await;
    let kept = fx.private_room(&alice).await;
    fx.join(room.id, &bob).await;
    fx.send(room.id, bob.id, "c1").await;

    assert!(fx.delete_room(room.id).await.unwrap());
    assert_eq!(fx.room(room.id).await.unwrap(), None);
    assert!(fx.log(room.id).await.is_empty());
    assert!(fx.members(room.id).await.unwrap().is_empty());
    assert_eq!(fx.role(room.id, bob.id).await.unwrap(), None);
    assert!(fx.my_rooms(bob.id).await.unwrap().is_empty());
    let alices: Vec<Room> = fx
        .my_rooms(alice.id)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.room)
        .collect();
    assert_eq!(alices, vec![kept.clone()]);

    assert!(!fx.delete_room(room.id).await.unwrap(), "already gone");
    let send = fx
        .append_message(room.id, bob.id, NewMessage::text("c2", "anyone?"))
        .await;
    assert!(matches!(send, Err(Error::NotFound)), "{send:?}");
    let join = fx.add_member(room.id, bob.id, bob.id, Role::Member).await;
    assert!(matches!(join, Err(Error::NotFound)), "{join:?}");
    assert_eq!(fx.reload(kept.id).await, kept);
}

async fn membership_changes_form_a_consecutive_log(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let alice = fx.register("alice").await;
    let bob = fx.register("bob").await;
    let carol = fx.register("carol").await;
    let dave = fx.register("dave").await;

    let (room, created) = fx
        .create_room(NewRoom {
            kind: RoomKind::Private,
            name: "crew".into(),
            topic: String::new(),
            created_by: alice.id,
        })
        .await
        .unwrap();
    let mut returned = vec![created];
    for user in [&bob, &carol, &dave] {
        returned.push(
            fx.add_member(room.id, user.id, alice.id, Role::Member)
                .await
                .unwrap(),
        );
    }
    returned.push(fx.send(room.id, bob.id, "hello").await.event);
    returned.extend(
        fx.set_role(room.id, carol.id, alice.id, Role::Admin)
            .await
            .unwrap(),
    );
    returned.extend(
        fx.set_role(room.id, bob.id, alice.id, Role::Owner)
            .await
            .unwrap(),
    );
    returned.push(
        fx.update_room(room.id, bob.id, "the crew".into(), "ahoy".into())
            .await
            .unwrap()
            .1
            .expect("a change is recorded"),
    );
    returned.push(
        fx.remove_member(room.id, carol.id, bob.id, LeaveReason::Kicked)
            .await
            .unwrap(),
    );
    returned.extend(
        fx.ban(room.id, dave.id, bob.id, "rude".into())
            .await
            .unwrap(),
    );
    returned.push(
        fx.remove_member(room.id, alice.id, alice.id, LeaveReason::Left)
            .await
            .unwrap(),
    );

    let expected: Vec<i64> = (1..=returned.len() as i64).collect();
    assert_eq!(seqs(&returned), expected, "one gap-free sequence");
    assert_eq!(
        fx.log(room.id).await,
        returned,
        "every change is in the log"
    );
    assert_eq!(fx.reload(room.id).await.last_seq, returned.len() as i64);
    let kinds: Vec<&str> = returned.iter().map(|e| e.body.kind()).collect();
    assert_eq!(
        kinds,
        vec![
            "member_joined",
            "member_joined",
            "member_joined",
            "member_joined",
            "message",
            "role_changed",
            "role_changed",
            "role_changed",
            "room_updated",
            "member_left",
            "member_left",
            "member_left",
        ]
    );
}
