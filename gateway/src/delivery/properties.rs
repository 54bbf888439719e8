//! The delivery contract as a property of the core alone: a room's events
//! reach a client once each, in seq order, with none missing, whatever the
//! bus does (drop, duplicate, reorder), whenever the store reads answer,
//! and whenever the client goes live or resumes with `sync`.
//!
//! The model runs a room feed (as the hub does) and one connection's
//! cursors (as its writer does) over a log that grows while they run; the
//! store is the log itself, read whenever the core asks.

use std::collections::VecDeque;
use std::time::Duration;

use chat_shared::model::RoomId;
use proptest::prelude::*;
use tokio::time::Instant;

use super::cursors::{Cursors, Followed, Offered};
use super::feed::{Pacing, RoomFeed, Step};

const PACING: Pacing = Pacing {
    gap_wait: Duration::from_millis(50),
    fan_out_interval: Duration::from_millis(5),
};

/// What may happen next.
#[derive(Debug, Clone)]
enum Action {
    /// An event is committed and published `copies` times (0: the bus lost it).
    Commit { copies: u8 },
    /// The bus brings the message at this index of those in flight.
    Deliver(usize),
    /// Time passes.
    Tick(u64),
    /// The feed's store read answers (with what the store has by now).
    ReadAnswers,
    /// The connection's writer takes what is queued for it.
    Write,
    /// The client's first frame is not a `sync` (later frames change
    /// nothing here).
    Live,
    /// The client's first frame is a `sync` from what it has (it resumes).
    Sync,
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        3 => (0u8..3).prop_map(|copies| Action::Commit { copies }),
        4 => any::<usize>().prop_map(Action::Deliver),
        2 => (0u64..80).prop_map(Action::Tick),
        1 => Just(Action::ReadAnswers),
        2 => Just(Action::Write),
        1 => Just(Action::Live),
        1 => Just(Action::Sync),
    ]
}

/// What the hub queues for the connection.
#[derive(Debug)]
enum Queued {
    Event(i64),
    Follow { after: i64, synced: bool },
    Live,
}

struct Model {
    room: RoomId,
    /// What the client was told in `hello`.
    head: i64,
    now: Instant,
    /// The log's length: events 1..=committed exist.
    committed: i64,
    in_flight: Vec<i64>,
    feed: RoomFeed<()>,
    /// The feed's store read under way, from after this seq.
    reading: Option<i64>,
    queue: VecDeque<Queued>,
    cursors: Cursors<()>,
    /// What the client got, in order.
    seen: Vec<i64>,
    /// The client has sent its first frame.
    spoke: bool,
    /// How far past the hello's head a resuming client already is.
    resumed_from: i64,
    /// The last seq the client had before this connection wrote anything.
    expected_from: i64,
}

impl Model {
    /// A connection told of the room up to `head` in `hello`, while the
    /// room had `ahead` more events, already released by the hub (which
    /// then queues a catch-up for the connection, as the hub's attach does).
    fn new(head: i64, ahead: i64, hold_limit: usize, resumed_from: i64) -> Self {
        let room = RoomId(uuid::Uuid::from_u128(7));
        let mut queue = VecDeque::new();
        if ahead > 0 {
            queue.push_back(Queued::Follow {
                after: head,
                synced: false,
            });
        }
        Self {
            room,
            head,
            now: Instant::now(),
            committed: head + ahead,
            in_flight: Vec::new(),
            feed: RoomFeed::new(head + ahead, PACING),
            reading: None,
            queue,
            cursors: Cursors::new([(room, head)], hold_limit),
            seen: Vec::new(),
            spoke: false,
            resumed_from,
            expected_from: head,
        }
    }

    fn step(&mut self, step: Step<()>) {
        for (seq, ()) in step.fan_out {
            self.queue.push_back(Queued::Event(seq));
        }
        if let Some(after) = step.read_after {
            assert!(self.reading.is_none(), "one store read at a time");
            self.reading = Some(after);
        }
    }

    fn act(&mut self, action: Action) {
        match action {
            Action::Commit { copies } => {
                self.committed += 1;
                for _ in 0..copies {
                    self.in_flight.push(self.committed);
                }
            }
            Action::Deliver(i) if !self.in_flight.is_empty() => {
                let seq = self.in_flight.swap_remove(i % self.in_flight.len());
                let step = self.feed.offer(self.now, seq, ());
                self.step(step);
            }
            Action::Deliver(_) => {}
            Action::Tick(ms) => {
                self.now += Duration::from_millis(ms);
                let step = self.feed.due(self.now);
                self.step(step);
            }
            Action::ReadAnswers => {
                if let Some(after) = self.reading.take() {
                    let events = (after + 1..=self.committed).map(|seq| (seq, ())).collect();
                    let step = self.feed.repaired(self.now, Some(events));
                    self.step(step);
                }
            }
            Action::Write => self.write(),
            Action::Live | Action::Sync if self.spoke => {}
            Action::Live => {
                self.spoke = true;
                self.queue.push_back(Queued::Live);
            }
            Action::Sync => {
                // A resuming client has what an earlier connection wrote
                // (here: the hello's head, or beyond).
                self.spoke = true;
                let after = self.head + self.resumed_from;
                self.queue.push_back(Queued::Follow {
                    after,
                    synced: true,
                });
                self.queue.push_back(Queued::Live);
                self.expected_from = after;
            }
        }
    }

    fn write(&mut self) {
        while let Some(queued) = self.queue.pop_front() {
            match queued {
                Queued::Event(seq) => {
                    let offered = self.cursors.offer(self.room, seq, ());
                    self.place(offered);
                }
                Queued::Follow { after, synced } => {
                    match self.cursors.follow(self.room, after, synced) {
                        Followed::Replay { .. } | Followed::CatchUp { .. } => self.catch_up(None),
                        Followed::Nothing => {}
                    }
                }
                Queued::Live => {
                    if let Some(released) = self.cursors.go_live() {
                        for (room, seq, ()) in released.events {
                            let offered = self.cursors.replace(room, seq, ());
                            self.place(offered);
                        }
                        for _ in released.catch_up {
                            self.catch_up(None);
                        }
                    }
                }
            }
        }
    }

    fn place(&mut self, offered: Offered<()>) {
        let seq = match offered {
            Offered::Nothing => return,
            Offered::Write { seq, .. } => seq,
            Offered::FillThenWrite { seq, .. } => {
                self.catch_up(Some(seq));
                seq
            }
        };
        self.written(seq);
    }

    /// The writer's store read: the log after the cursor, before `before`.
    fn catch_up(&mut self, before: Option<i64>) {
        let after = self.cursors.cursor(self.room).expect("followed");
        let end = before.map_or(self.committed, |b| b - 1);
        for seq in after + 1..=end {
            self.written(seq);
        }
    }

    fn written(&mut self, seq: i64) {
        self.seen.push(seq);
        self.cursors.written(self.room, seq);
    }

    /// Everything settles: the bus brings what it still carries, the head
    /// check finds what it lost, the client goes live.
    fn settle(&mut self) {
        while !self.in_flight.is_empty() {
            self.act(Action::Deliver(0));
        }
        self.act(Action::ReadAnswers);
        if self.feed.is_behind(self.committed) {
            if let Some(after) = self.feed.repair() {
                self.reading = Some(after);
            }
            self.act(Action::ReadAnswers);
        }
        self.act(Action::Tick(1_000));
        self.act(Action::ReadAnswers);
        self.act(Action::Live);
        self.act(Action::Write);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn each_event_reaches_the_client_once_in_order(
        head in 0i64..5,
        ahead in 0i64..3,
        hold_limit in 1usize..6,
        resumed_from in -3i64..1,
        actions in proptest::collection::vec(action(), 0..120),
    ) {
        let mut model = Model::new(head, ahead, hold_limit, resumed_from.max(-head));
        for action in actions {
            model.act(action);
        }
        model.settle();
        let expected: Vec<i64> = (model.expected_from + 1..=model.committed).collect();
        prop_assert_eq!(&model.seen, &expected);
    }
}
