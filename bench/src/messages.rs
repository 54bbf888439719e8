//! What people do to messages, on the store alone: a room of `--events`
//! (100,000) events — messages, with edits and reactions among them — read
//! a page at a time as a timeline (messages as they are now) beside the
//! log (`events`, the same page of raw events), from random places; and
//! what one reaction costs to commit beside one plain send, each awaited
//! alone.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use chat_shared::model::{EventId, Role, RoomId, RoomKind, UserId};
use chat_shared::store::{self, MessageChange, NewMessage, NewRoom, NewUser, Page, Store};
use futures::stream::{self, StreamExt, TryStreamExt};
use hdrhistogram::Histogram;

use crate::kind::Kind;
use crate::measure::{histogram, percentiles_ms};
use crate::store::{label, own_cpu_seconds, Database};

/// The shape of one run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Events in the room, all told.
    pub events: u64,
    /// Members of the room (the reactors).
    pub members: usize,
    /// Timeline (and log) pages read, each at a random place.
    pub reads: usize,
    /// Sends, and reactions, timed one at a time.
    pub ops: usize,
}

impl Plan {
    /// Of `events`: 70 % messages, 10 % edits, 20 % reactions.
    fn split(&self) -> (u64, u64, u64) {
        let messages = self.events * 7 / 10;
        let edits = self.events / 10;
        (messages, edits, self.events - messages - edits)
    }
}

/// What one store measured.
pub struct Figures {
    pub seeded_in: f64,
    pub timeline: Histogram<u64>,
    pub log: Histogram<u64>,
    pub send: Cost,
    pub reaction: Cost,
}

/// Commit latency and CPU of `ops` operations awaited one by one.
pub struct Cost {
    pub latency: Histogram<u64>,
    /// Database CPU per operation (PostgreSQL's backends), ms.
    pub database_ms: Option<f64>,
    /// This process's CPU per operation (all of SQLite), ms.
    pub own_ms: f64,
}

/// The emoji reactions are drawn from.
const EMOJI: [&str; 8] = ["👍", "🎉", "❤️", "😂", "👀", "🚀", "🙏", "✅"];

/// Seeds a fresh database of `kind` and measures it.
pub async fn run(kind: Kind, plan: &Plan, tag: &str) -> Result<Figures> {
    let database = Database::create(kind, &format!("{tag}m")).await?;
    let figures = measure(&database, plan).await;
    database.drop_it().await?;
    figures
}

async fn measure(database: &Database, plan: &Plan) -> Result<Figures> {
    let store = store::connect(&database.url(), 10)
        .await
        .context("opening the store")?;
    let (room, members) = set_up(store.as_ref(), plan.members).await?;
    let started = Instant::now();
    seed(&store, room, &members, plan).await?;
    let seeded_in = started.elapsed().as_secs_f64();
    eprintln!(
        "chat-bench: seeded {} events in {seeded_in:.1} s",
        plan.events
    );
    // As autovacuum would have by now in a database that grew to this:
    // planned on the statistics of an empty table, PostgreSQL reads a log
    // page by sorting the room's whole range (34 ms at 100,000 events).
    database.analyze().await?;

    let head = store.heads(&[room]).await?[0].1;
    let (timeline, log) = read_pages(store.as_ref(), room, members[0], head, plan.reads).await?;
    let send = cost(database, plan.ops, |i| {
        let store = store.clone();
        let sender = members[i % members.len()];
        async move {
            let message = NewMessage::text(format!("timed-{i}"), "x".repeat(100));
            store.append_message(room, sender, message).await?;
            Ok(())
        }
    })
    .await?;
    let target = store
        .append_message(room, members[0], NewMessage::text("target", "react to me"))
        .await?
        .event
        .id;
    // One user toggles one reaction: every other operation adds it, every
    // other one takes it back, each an event like a send.
    let reactor = members[1];
    let reaction = cost(database, plan.ops, |i| {
        let store = store.clone();
        let change = if i % 2 == 0 {
            MessageChange::React {
                emoji: "👍".into()
            }
        } else {
            MessageChange::Unreact {
                emoji: "👍".into()
            }
        };
        async move {
            store
                .change_message(room, reactor, target, None, change)
                .await?;
            Ok(())
        }
    })
    .await?;
    Ok(Figures {
        seeded_in,
        timeline,
        log,
        send,
        reaction,
    })
}

/// A room of `members` users, straight through the store.
async fn set_up(store: &dyn Store, members: usize) -> Result<(RoomId, Vec<UserId>)> {
    let mut users = Vec::with_capacity(members);
    for m in 0..members {
        let user = store
            .create_user(NewUser {
                username: format!("reader_{m}"),
                display_name: format!("Reader {m}"),
                password_hash: String::new(),
            })
            .await?;
        users.push(user.id);
    }
    let (room, _) = store
        .create_room(NewRoom {
            kind: RoomKind::Public,
            name: "busy".into(),
            topic: String::new(),
            created_by: users[0],
        })
        .await?;
    for &user in &users[1..] {
        store
            .add_member(room.id, user, users[0], Role::Member)
            .await?;
    }
    Ok((room.id, users))
}

/// Fills the room, in rounds of a hundred messages followed by edits of
/// and reactions to messages of the last few rounds, so changes spread
/// over the whole history.
async fn seed(store: &Arc<dyn Store>, room: RoomId, members: &[UserId], plan: &Plan) -> Result<()> {
    const ROUND: u64 = 100;
    let (messages, edits, reactions) = plan.split();
    let rounds = messages.div_ceil(ROUND);
    let mut ids: Vec<(EventId, UserId)> = Vec::with_capacity(messages as usize);
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut random = move |n: usize| {
        // xorshift: reproducible, and enough to spread the changes.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    let (mut edited, mut reacted) = (0, 0);
    for round in 0..rounds {
        let count = ROUND.min(messages - round * ROUND);
        let sent: Vec<(EventId, UserId)> = stream::iter(0..count)
            .map(|i| {
                let store = store.clone();
                let sender = members[(i as usize) % members.len()];
                let n = round * ROUND + i;
                async move {
                    let body = format!("message {n}: {}", "lorem ipsum ".repeat(6));
                    let submitted = store
                        .submit_message(room, sender, NewMessage::text(format!("seed-{n}"), body))
                        .await?;
                    let appended = submitted.answer().await?;
                    anyhow::Ok((appended.event.id, sender))
                }
            })
            .buffer_unordered(ROUND as usize)
            .try_collect()
            .await?;
        ids.extend(sent);
        let due_edits = edits * (round + 1) / rounds - edited;
        let due_reactions = reactions * (round + 1) / rounds - reacted;
        let recent = ids.len().min(500);
        let mut changes = Vec::new();
        for _ in 0..due_edits {
            let (id, sender) = ids[ids.len() - 1 - random(recent)];
            changes.push((
                sender,
                id,
                MessageChange::Edit {
                    body: format!("edited: {}", "dolor sit amet ".repeat(5)),
                },
            ));
        }
        for _ in 0..due_reactions {
            let (id, _) = ids[ids.len() - 1 - random(recent)];
            let emoji = EMOJI[random(EMOJI.len())].to_owned();
            changes.push((
                members[random(members.len())],
                id,
                MessageChange::React { emoji },
            ));
        }
        edited += due_edits;
        reacted += due_reactions;
        stream::iter(changes)
            .map(|(actor, id, change)| {
                let store = store.clone();
                async move {
                    match store.change_message(room, actor, id, None, change).await {
                        // A reaction drawn twice: it is there already.
                        Ok(_) | Err(store::Error::Conflict("already_reacted")) => anyhow::Ok(()),
                        Err(e) => Err(e.into()),
                    }
                }
            })
            .buffer_unordered(8)
            .try_collect::<Vec<()>>()
            .await?;
    }
    Ok(())
}

/// Reads `reads` timeline pages and as many log pages of 50, each below a
/// random seq (and the newest page of each once).
async fn read_pages(
    store: &dyn Store,
    room: RoomId,
    viewer: UserId,
    head: i64,
    reads: usize,
) -> Result<(Histogram<u64>, Histogram<u64>)> {
    let (mut timeline, mut log) = (histogram(), histogram());
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    for i in 0..reads {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        let before = if i == 0 {
            None
        } else {
            Some(50 + (state >> 33) as i64 % (head - 50).max(1))
        };
        let page = Page {
            after: None,
            before,
            limit: 50,
        };
        let at = Instant::now();
        let items = store.timeline(room, viewer, page).await?.items;
        timeline.saturating_record(at.elapsed().as_micros() as u64);
        anyhow::ensure!(!items.is_empty(), "an empty timeline page below {before:?}");
        let at = Instant::now();
        store.events(room, page).await?;
        log.saturating_record(at.elapsed().as_micros() as u64);
    }
    Ok((timeline, log))
}

/// Runs `op(0..ops)` one after another: its latency, and the CPU each took.
async fn cost<F, Fut>(database: &Database, ops: usize, op: F) -> Result<Cost>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let mut latency = histogram();
    let before = (database.cpu_seconds(), own_cpu_seconds());
    for i in 0..ops {
        let at = Instant::now();
        op(i).await?;
        latency.saturating_record(at.elapsed().as_micros() as u64);
    }
    let after = (database.cpu_seconds(), own_cpu_seconds());
    let per_op = |seconds: f64| seconds * 1000.0 / ops as f64;
    Ok(Cost {
        latency,
        database_ms: after.0.zip(before.0).map(|(a, b)| per_op((a - b).max(0.0))),
        own_ms: per_op(after.1 - before.1),
    })
}

/// The run as Markdown tables.
pub fn table(plan: &Plan, results: &[(Kind, Figures)]) -> String {
    let (messages, edits, reactions) = plan.split();
    let mut out = format!(
        "timeline: one room of {} events ({messages} messages, {edits} edits, {reactions} \
         reactions) and {} members; {} pages of 50 below random seqs\n\n\
         | store | seeded in s | timeline p50 ms | p99 ms | p99.9 ms | log page p50 ms | p99 ms | p99.9 ms |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
        plan.events, plan.members, plan.reads
    );
    for (kind, f) in results {
        let [t50, t99, t999] = percentiles_ms(&f.timeline);
        let [l50, l99, l999] = percentiles_ms(&f.log);
        let _ = writeln!(
            out,
            "| {} | {:.0} | {t50:.2} | {t99:.2} | {t999:.2} | {l50:.2} | {l99:.2} | {l999:.2} |",
            label(*kind),
            f.seeded_in
        );
    }
    let _ = write!(
        out,
        "\none at a time, {} each: a plain send (100-byte body) beside a reaction \
         (added, then taken back)\n\n\
         | store | operation | p50 ms | p99 ms | database CPU ms/op | generator CPU ms/op |\n\
         | --- | --- | ---: | ---: | ---: | ---: |\n",
        plan.ops
    );
    for (kind, f) in results {
        for (name, cost) in [("send", &f.send), ("reaction", &f.reaction)] {
            let [p50, p99, _] = percentiles_ms(&cost.latency);
            let database = cost
                .database_ms
                .map_or_else(|| "— (in process)".to_owned(), |ms| format!("{ms:.3}"));
            let _ = writeln!(
                out,
                "| {} | {name} | {p50:.2} | {p99:.2} | {database} | {:.3} |",
                label(*kind),
                cost.own_ms
            );
        }
    }
    out
}
