//! The room log (`RoomLog`): gap-free seqs under concurrent appends,
//! idempotent retries by `client_id`, membership checks (also against a
//! concurrent kick), read markers that only move forward, and stable
//! pagination by seq cursor.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use chat_shared::model::{EventBody, LeaveReason, RoomId};
use chat_shared::store::{Appended, Error, NewMessage, Page};
use chat_shared::testing::Backend;
use futures::future::join_all;
use tokio::sync::Barrier;

use crate::{everything, seqs, Fixture};

conformance!(
    concurrent_appends_get_gap_free_seqs,
    retried_append_returns_the_original,
    concurrent_retries_store_one_event,
    busy_rooms_from_two_processes_stay_gap_free,
    append_requires_membership_and_a_room,
    no_message_follows_its_senders_kick,
    read_markers_never_move_back_under_concurrency,
    paging_forward_visits_every_event_once,
    paging_backward_gives_newest_windows_first,
    after_and_before_bound_a_range,
);

const TASKS: usize = 20;
const PER_TASK: usize = 10;

async fn concurrent_appends_get_gap_free_seqs(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let owner = fx.register("owner").await;
    let room = fx.private_room(&owner).await;
    let mut senders = vec![owner.id];
    for i in 1..TASKS {
        let user = fx.register(&format!("sender{i}")).await;
        fx.join(room.id, &user).await;
        senders.push(user.id);
    }
    // The member_joined events took the first seqs.
    let base = fx.reload(room.id).await.last_seq;
    let total = (TASKS * PER_TASK) as i64;

    // While the writers run, a reader must only ever see a gap-free prefix:
    // seqs commit in order, so a client paging the log never skips one.
    let writers_done = Arc::new(AtomicBool::new(false));
    let reader = tokio::spawn({
        let store = fx.store.clone();
        let writers_done = writers_done.clone();
        async move {
            loop {
                let done = writers_done.load(Ordering::Acquire);
                let page = Page {
                    after: Some(base),
                    before: None,
                    limit: u32::MAX,
                };
                let seen = seqs(&store.events(room.id, page).await.unwrap());
                let prefix: Vec<i64> = (base + 1..=base + seen.len() as i64).collect();
                assert_eq!(seen, prefix, "a reader saw a gap or a reordering");
                if done {
                    return seen.len();
                }
                tokio::task::yield_now().await;
            }
        }
    });

    let writers = senders.iter().enumerate().map(|(task, &sender)| {
        let store = fx.store.clone();
        tokio::spawn(async move {
            let mut appended = Vec::with_capacity(PER_TASK);
            for i in 0..PER_TASK {
                let client_id = format!("task{task}-msg{i}");
                let body = format!("message {i} from task {task}");
                appended.push(
                    store
                        .append_message(room.id, sender, NewMessage::text(client_id, body))
                        .await
                        .unwrap(),
                );
            }
            appended
        })
    });
    let per_task: Vec<Vec<Appended>> = join_all(writers)
        .await
        .into_iter()
        .map(|joined| joined.expect("a writer task panicked"))
        .collect();
    writers_done.store(true, Ordering::Release);

    for appended in &per_task {
        assert!(appended.iter().all(|a| a.created));
        let mine: Vec<i64> = appended.iter().map(|a| a.event.seq).collect();
        assert!(
            mine.windows(2).all(|w| w[0] < w[1]),
            "one sender's sequential appends must get increasing seqs: {mine:?}"
        );
    }
    let mut events: Vec<_> = per_task.into_iter().flatten().map(|a| a.event).collect();
    events.sort_by_key(|e| e.seq);
    let expected: Vec<i64> = (base + 1..=base + total).collect();
    assert_eq!(
        seqs(&events),
        expected,
        "seqs must be exactly base+1..=base+200"
    );
    let ids: HashSet<_> = events.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), events.len(), "event ids must be unique");

    assert_eq!(fx.reload(room.id).await.last_seq, base + total);
    let stored = fx
        .events(
            room.id,
            Page {
                after: Some(base),
                before: None,
                limit: u32::MAX,
            },
        )
        .await
        .unwrap();
    assert_eq!(stored, events, "the log must hold exactly what was acked");
    assert_eq!(reader.await.unwrap(), TASKS * PER_TASK);
}

async fn retried_append_returns_the_original(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let alice = fx.register("alice").await;
    let bob = fx.register("bob").await;
    let room = fx.private_room(&alice).await;
    fx.join(room.id, &bob).await;
    let other = fx.private_room(&alice).await;

    let first = fx
        .append_message(room.id, alice.id, NewMessage::text("c-1", "hello"))
        .await
        .unwrap();
    assert!(first.created);
    assert_eq!(first.event.seq, 3);
    assert_eq!(first.event.client_id.as_deref(), Some("c-1"));
    assert_eq!(first.event.sender, Some(alice.id));
    assert_eq!(first.event.body, EventBody::message("hello"));

    let retry = fx
        .append_message(room.id, alice.id, NewMessage::text("c-1", "hello"))
        .await
        .unwrap();
    assert_eq!(
        retry,
        Appended {
            event: first.event.clone(),
            created: false
        }
    );
    // The key is the client_id: a retry with an edited body still returns
    // the original, and stores nothing.
    let edited = fx
        .append_message(room.id, alice.id, NewMessage::text("c-1", "hello, edited"))
        .await
        .unwrap();
    assert_eq!(edited.event, first.event);
    assert!(!edited.created);
    assert_eq!(fx.reload(room.id).await.last_seq, 3);
    assert_eq!(fx.log(room.id).await.last(), Some(&first.event));

    // The same client_id from another sender, or in another room, is a
    // different message.
    let bobs = fx.send(room.id, bob.id, "c-1").await;
    assert!(bobs.created);
    assert_eq!(bobs.event.seq, 4);
    let elsewhere = fx.send(other.id, alice.id, "c-1").await;
    assert!(elsewhere.created);
    assert_eq!(elsewhere.event.seq, 2);
    assert_eq!(seqs(&fx.log(room.id).await), vec![1, 2, 3, 4]);
}

async fn concurrent_retries_store_one_event(backend: Backend) {
    const RETRIES: usize = 10;
    let fx = Fixture::new(backend).await;
    let alice = fx.register("alice").await;
    let room = fx.private_room(&alice).await;
    let base = fx.reload(room.id).await.last_seq;

    let barrier = Arc::new(Barrier::new(RETRIES));
    let tasks = (0..RETRIES).map(|_| {
        let store = fx.store.clone();
        let barrier = barrier.clone();
        tokio::spawn(async move {
            barrier.wait().await;
            store
                .append_message(room.id, alice.id, NewMessage::text("same", "once only"))
                .await
                .unwrap()
        })
    });
    let results: Vec<Appended> = join_all(tasks)
        .await
        .into_iter()
        .map(|joined| joined.unwrap())
        .collect();

    assert_eq!(results.iter().filter(|a| a.created).count(), 1);
    let original = &results.iter().find(|a| a.created).unwrap().event;
    assert_eq!(original.seq, base + 1);
    for appended in &results {
        assert_eq!(&appended.event, original);
    }
    assert_eq!(fx.reload(room.id).await.last_seq, base + 1);
    let log = fx.log(room.id).await;
    assert_eq!(log.len() as i64, base + 1);
    assert_eq!(log.last(), Some(original));
}

/// Many rooms, many senders, and two processes (two stores on one
/// PostgreSQL database, as two gateways are) appending at once, each
/// message sent twice at the same moment, once through each process (a
/// retry racing its original): appends are gathered into shared
/// transactions, and still every room's log is gap-free, every client_id
/// is stored once, and both copies get the same answer.
async fn busy_rooms_from_two_processes_stay_gap_free(backend: Backend) {
    const ROOMS: usize = 6;
    const SENDERS: usize = 4;
    const MESSAGES: usize = 15;
    let fx = Fixture::new(backend).await;
    // SQLite is owned by one process; there, both "processes" are one store.
    let other = match backend {
        Backend::Postgres => fx.db.store().await,
        Backend::Sqlite => fx.store.clone(),
    };
    let mut rooms = Vec::new();
    for r in 0..ROOMS {
        let owner = fx.register(&format!("owner{r}")).await;
        let room = fx.private_room(&owner).await;
        let mut senders = vec![owner.id];
        for s in 1..SENDERS {
            let user = fx.register(&format!("r{r}s{s}")).await;
            fx.join(room.id, &user).await;
            senders.push(user.id);
        }
        let base = fx.reload(room.id).await.last_seq;
        rooms.push((room.id, senders, base));
    }
    let barrier = Arc::new(Barrier::new(ROOMS * SENDERS));
    let tasks = rooms.iter().flat_map(|(room, senders, _)| {
        senders.iter().map(|&sender| {
            let (room, a, b, barrier) = (*room, fx.store.clone(), other.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let mut answers = Vec::new();
                for i in 0..MESSAGES {
                    let client_id = format!("m{i}");
                    let (first, second) = tokio::join!(
                        a.append_message(room, sender, NewMessage::text(&client_id, "hi")),
                        b.append_message(room, sender, NewMessage::text(&client_id, "hi")),
                    );
                    answers.push((first.unwrap(), second.unwrap()));
                }
                answers
            })
        })
    });
    let answers: Vec<(Appended, Appended)> = join_all(tasks)
        .await
        .into_iter()
        .flat_map(|joined| joined.expect("a sender panicked"))
        .collect();
    for (first, second) in &answers {
        assert_eq!(first.event, second.event, "a retry got another answer");
        assert!(
            first.created != second.created,
            "exactly one copy is stored"
        );
    }
    for (room, _, base) in &rooms {
        let log = fx.log(*room).await;
        let messages: Vec<_> = log.iter().filter(|e| e.seq > *base).collect();
        let expected: Vec<i64> = (base + 1..=base + (SENDERS * MESSAGES) as i64).collect();
        assert_eq!(
            messages.iter().map(|e| e.seq).collect::<Vec<_>>(),
            expected,
            "room log is not gap-free"
        );
        let keys: HashSet<_> = messages
            .iter()
            .map(|e| (e.sender, e.client_id.clone()))
            .collect();
        assert_eq!(keys.len(), messages.len(), "a client_id was stored twice");
        assert_eq!(
            fx.reload(*room).await.last_seq,
            base + (SENDERS * MESSAGES) as i64
        );
    }
}

async fn append_requires_membership_and_a_room(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let alice = fx.register("alice").await;
    let mallory = fx.register("mallory").await;
    let room = fx.private_room(&alice).await;
    let before = fx.log(room.id).await;

    let outsider = fx
        .append_message(room.id, mallory.id, NewMessage::text("m-1", "let me in"))
        .await;
    assert!(matches!(outsider, Err(Error::NotMember)), "{outsider:?}");
    let missing = fx
        .append_message(RoomId::new(), alice.id, NewMessage::text("a-1", "anyone?"))
        .await;
    assert!(matches!(missing, Err(Error::NotFound)), "{missing:?}");
    assert_eq!(fx.log(room.id).await, before, "nothing may be stored");
    assert_eq!(fx.reload(room.id).await.last_seq, 1);

    // Once in, the same client_id is a fresh message; once out, sending
    // stops again.
    fx.join(room.id, &mallory).await;
    let inside = fx.send(room.id, mallory.id, "m-1").await;
    assert!(inside.created);
    assert_eq!(inside.event.seq, 3);
    fx.remove_member(room.id, mallory.id, alice.id, LeaveReason::Kicked)
        .await
        .unwrap();
    let after_kick = fx
        .append_message(room.id, mallory.id, NewMessage::text("m-2", "hi"))
        .await;
    assert!(
        matches!(after_kick, Err(Error::NotMember)),
        "{after_kick:?}"
    );
    assert_eq!(fx.reload(room.id).await.last_seq, 4);
}

async fn no_message_follows_its_senders_kick(backend: Backend) {
    const ROUNDS: usize = 40;
    const SENDERS: usize = 3;
    let fx = Fixture::new(backend).await;
    let alice = fx.register("alice").await;
    let bob = fx.register("bob").await;
    let room = fx.private_room(&alice).await;

    let mut acked = Vec::new();
    for round in 0..ROUNDS {
        fx.join(room.id, &bob).await;
        // Bob sends from several devices until he learns he is out, while
        // alice kicks him: every send either lands before the kick or fails.
        let barrier = Arc::new(Barrier::new(SENDERS + 1));
        let senders = (0..SENDERS).map(|device| {
            let store = fx.store.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                let mut acked = Vec::new();
                for i in 0.. {
                    let client_id = format!("r{round}-d{device}-m{i}");
                    match store
                        .append_message(room.id, bob.id, NewMessage::text(client_id, "hi"))
                        .await
                    {
                        Ok(appended) => acked.push(appended.event),
                        Err(Error::NotMember) => return acked,
                        Err(e) => panic!("unexpected error: {e}"),
                    }
                }
                unreachable!()
            })
        });
        let senders: Vec<_> = senders.collect();
        barrier.wait().await;
        fx.remove_member(room.id, bob.id, alice.id, LeaveReason::Kicked)
            .await
            .unwrap();
        for sender in join_all(senders).await {
            acked.extend(sender.unwrap());
        }
    }

    // Replay the log as a client would: bob is in between each
    // member_joined and member_left, and none of his messages falls outside.
    let log = fx.log(room.id).await;
    let mut bob_is_member = false;
    for event in &log {
        match &event.body {
            EventBody::MemberJoined { user } if *user == bob.id => bob_is_member = true,
            EventBody::MemberLeft { user, .. } if *user == bob.id => bob_is_member = false,
            EventBody::Message { .. } if event.sender == Some(bob.id) => assert!(
                bob_is_member,
                "seq {}: a message from bob after he was kicked",
                event.seq
            ),
            _ => {}
        }
    }
    let messages: HashSet<_> = log.iter().map(|e| e.id).collect();
    assert!(acked.iter().all(|e| messages.contains(&e.id)));
    let expected: Vec<i64> = (1..=log.len() as i64).collect();
    assert_eq!(seqs(&log), expected);
}

async fn read_markers_never_move_back_under_concurrency(backend: Backend) {
    const DEVICES: usize = 4;
    const MARKS: usize = 250;
    let fx = Fixture::new(backend).await;
    let alice = fx.register("alice").await;
    let room = fx.private_room(&alice).await;

    // The head keeps moving while alice's devices each mark "read up to the
    // end": what each device reads back may only grow.
    let writers_done = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn({
        let store = fx.store.clone();
        let writers_done = writers_done.clone();
        async move {
            for i in 0.. {
                if writers_done.load(Ordering::Acquire) {
                    return;
                }
                let client_id = format!("c{i}");
                store
                    .append_message(room.id, alice.id, NewMessage::text(client_id, "more"))
                    .await
                    .unwrap();
            }
        }
    });
    let devices = (0..DEVICES).map(|_| {
        let store = fx.store.clone();
        tokio::spawn(async move {
            let mut seen = Vec::with_capacity(MARKS);
            for _ in 0..MARKS {
                seen.push(
                    store
                        .mark_read(room.id, alice.id, i64::MAX / 2)
                        .await
                        .unwrap()
                        .seq,
                );
            }
            seen
        })
    });
    let per_device: Vec<Vec<i64>> = join_all(devices)
        .await
        .into_iter()
        .map(|joined| joined.unwrap())
        .collect();
    writers_done.store(true, Ordering::Release);
    writer.await.unwrap();

    for seen in &per_device {
        assert!(
            seen.windows(2).all(|w| w[0] <= w[1]),
            "a read marker moved back: {seen:?}"
        );
    }
    let head = fx.reload(room.id).await.last_seq;
    let marker = fx.members(room.id).await.unwrap()[0].last_read_seq;
    assert!(marker <= head);
    assert!(marker >= per_device.iter().flatten().copied().max().unwrap());
}

/// A room whose log holds `messages` messages after the owner's join (seq 1).
async fn room_with_messages(fx: &Fixture, messages: usize) -> RoomId {
    let alice = fx.register("alice").await;
    let room = fx.private_room(&alice).await;
    for i in 0..messages {
        fx.send(room.id, alice.id, &format!("c{i}")).await;
    }
    room.id
}

async fn paging_forward_visits_every_event_once(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let room = room_with_messages(&fx, 22).await; // seqs 1..=23
    let all = fx.log(room).await;
    assert_eq!(seqs(&all), (1..=23).collect::<Vec<_>>());

    let mut paged = Vec::new();
    let mut sizes = Vec::new();
    let mut cursor = 0;
    loop {
        let page = fx
            .events(
                room,
                Page {
                    after: Some(cursor),
                    before: None,
                    limit: 5,
                },
            )
            .await
            .unwrap();
        sizes.push(page.len());
        let Some(last) = page.last() else { break };
        cursor = last.seq;
        paged.extend(page);
    }
    assert_eq!(sizes, vec![5, 5, 5, 5, 3, 0]);
    assert_eq!(paged, all, "every event exactly once, in order");

    // A message appended after a reader reached the end is the next page.
    let alice = all[0].sender.unwrap();
    let late = fx.send(room, alice, "late").await.event;
    let next = fx
        .events(
            room,
            Page {
                after: Some(cursor),
                before: None,
                limit: 5,
            },
        )
        .await
        .unwrap();
    assert_eq!(next, vec![late]);
}

async fn paging_backward_gives_newest_windows_first(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let room = room_with_messages(&fx, 22).await; // seqs 1..=23
    let all = fx.log(room).await;

    let mut windows = Vec::new();
    let mut before = None;
    loop {
        let page = fx
            .events(
                room,
                Page {
                    after: None,
                    before,
                    limit: 5,
                },
            )
            .await
            .unwrap();
        let Some(first) = page.first() else { break };
        before = Some(first.seq);
        windows.push(seqs(&page));
    }
    assert_eq!(
        windows,
        vec![
            vec![19, 20, 21, 22, 23],
            vec![14, 15, 16, 17, 18],
            vec![9, 10, 11, 12, 13],
            vec![4, 5, 6, 7, 8],
            vec![1, 2, 3],
        ]
    );
    let newest = fx
        .events(
            room,
            Page {
                after: None,
                before: None,
                limit: 3,
            },
        )
        .await
        .unwrap();
    assert_eq!(newest, all[20..].to_vec());
    let beyond = fx
        .events(
            room,
            Page {
                after: None,
                before: Some(1_000),
                limit: 2,
            },
        )
        .await
        .unwrap();
    assert_eq!(seqs(&beyond), vec![22, 23]);
}

async fn after_and_before_bound_a_range(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let room = room_with_messages(&fx, 22).await; // seqs 1..=23
    let all = fx.log(room).await;
    let page = |after, before, limit| Page {
        after,
        before,
        limit,
    };

    let range = fx.events(room, page(Some(5), Some(12), 100)).await.unwrap();
    assert_eq!(range, all[5..11].to_vec(), "seqs 6..=11");
    let capped = fx.events(room, page(Some(5), Some(12), 3)).await.unwrap();
    assert_eq!(
        seqs(&capped),
        vec![6, 7, 8],
        "the oldest of the range first"
    );
    let empty = fx.events(room, page(Some(7), Some(8), 10)).await.unwrap();
    assert!(empty.is_empty());
    let tail = fx.events(room, page(Some(20), None, 10)).await.unwrap();
    assert_eq!(seqs(&tail), vec![21, 22, 23]);
    let past_end = fx.events(room, page(Some(23), None, 10)).await.unwrap();
    assert!(past_end.is_empty());
    assert_eq!(fx.events(room, everything()).await.unwrap().len(), 23);
    let unknown = fx.events(RoomId::new(), everything()).await.unwrap();
    assert!(unknown.is_empty());
}
