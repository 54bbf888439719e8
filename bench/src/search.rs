//! Search on the store alone: `--events` (1,000,000) messages over
//! `--rooms` (1,000) rooms, filled straight into the database by one
//! set-based statement each (the search index built as a send builds it:
//! PostgreSQL's `search` column, SQLite's triggers), then
//!
//! - the latency of a few query shapes, as a member of 10 rooms searches
//!   (`SearchStore::search_messages`, a page of 20), and
//! - what the index adds to a send: the store workload's appends (`store`)
//!   on the filled database as migrated, then again once the index is
//!   taken out of the send (PostgreSQL: the GIN index dropped and
//!   `search_text` made to return NULL, so nothing is tokenised; SQLite:
//!   the send's trigger dropped), side by side.

use std::fmt::Write as _;
use std::time::Instant;

use anyhow::{Context, Result};
use chat_shared::model::UserId;
use chat_shared::search::SearchQuery;
use chat_shared::store::{self, SearchPage};
use hdrhistogram::Histogram;
use sqlx::{Connection, Executor};

use crate::kind::Kind;
use crate::measure::{histogram, percentiles_ms};
use crate::rooms;
use crate::store::{label, Database, Step};

/// The shape of one run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Messages filled in.
    pub messages: u64,
    /// Rooms they are spread over (each with 10 members).
    pub rooms: u64,
    /// Searches timed per query shape.
    pub searches: usize,
    /// The appends timed with and without the index.
    pub appends: rooms::Plan,
}

/// The query shapes timed, with what each stands for. Every message holds
/// `common`, one of 100 `topicN` (1 %), one of 10,000 `rareN` (0.01 %),
/// and `alpha beta` (one in ten) or `beta alpha`. Message `n` has
/// `rare<n × 7919 mod 10,000>`, so `rare9595` is in messages 5, 10,005, …,
/// all in room 5, one of the searcher's.
const SHAPES: [(&str, &str); 5] = [
    ("rare", "rare9595"),
    ("medium", "topic7"),
    ("common", "common"),
    ("phrase", "\"alpha beta\""),
    ("excluding", "topic7 -\"alpha beta\""),
];

/// The one who searches: a member of the first 10 rooms (1 % of them).
const SEARCHER: &str = "00000000-0000-4000-8000-ffffffffffff";

/// What one store measured.
pub struct Figures {
    pub filled_in: f64,
    /// Per shape: hits on the first page, and the latency of a search.
    pub shapes: Vec<(usize, Histogram<u64>)>,
    pub with_index: Vec<Step>,
    pub without_index: Vec<Step>,
}

/// Fills a fresh database of `kind`, measures, drops it.
pub async fn run(kind: Kind, plan: &Plan, tag: &str) -> Result<Figures> {
    let database = Database::create(kind, &format!("search_{tag}")).await?;
    let figures = measure(&database, plan).await;
    database.drop_it().await?;
    figures
}

async fn measure(database: &Database, plan: &Plan) -> Result<Figures> {
    // Opening it migrates it.
    drop(store::connect(&database.url(), 2).await?);
    let started = Instant::now();
    fill(database, plan).await.context("filling")?;
    database.analyze().await?;
    let filled_in = started.elapsed().as_secs_f64();
    eprintln!(
        "chat-bench: {} messages filled in {filled_in:.1} s",
        plan.messages
    );

    let store = store::connect(&database.url(), 10).await?;
    let searcher = UserId(SEARCHER.parse()?);
    let mut shapes = Vec::new();
    for (_, q) in SHAPES {
        let query = SearchQuery::parse(q)?;
        let page = SearchPage {
            room: None,
            before: None,
            limit: 20,
        };
        let mut latency = histogram();
        let mut hits = 0;
        for _ in 0..plan.searches {
            let at = Instant::now();
            hits = store.search_messages(searcher, &query, page).await?.len();
            latency.saturating_record(at.elapsed().as_micros() as u64);
        }
        shapes.push((hits, latency));
    }
    drop(store);

    let with_index = crate::store::measure(database, &plan.appends, "with")
        .await
        .context("appending with the index")?;
    take_index_out_of_the_send(database).await?;
    let without_index = crate::store::measure(database, &plan.appends, "without")
        .await
        .context("appending without the index")?;
    Ok(Figures {
        filled_in,
        shapes,
        with_index,
        without_index,
    })
}

/// The body of message `n`, as SQL over `n` (see [`SHAPES`]); `n` must be
/// a 64-bit integer: `n × 7919` passes 2³¹ at n = 271,000.
fn body_sql(n: &str) -> String {
    format!(
        "'common topic' || ({n} % 100) || ' rare' || (({n} * 7919) % 10000) || \
         CASE WHEN {n} % 10 = 0 THEN ' alpha beta' ELSE ' beta alpha' END || \
         ' deploys, builds and reviews, number ' || {n}"
    )
}

/// Users (10 a room, and the searcher), rooms, memberships and messages,
/// each one statement. Ids are made from counters: users and rooms
/// `…4000-8000-<n>`, messages UUID v7 from a made-up millisecond each, so
/// they order as they were "sent".
async fn fill(database: &Database, plan: &Plan) -> Result<()> {
    let (messages, rooms) = (plan.messages, plan.rooms);
    let users = rooms * 10;
    let body = body_sql("n");
    match database {
        Database::Postgres(_) => {
            let id = |n: &str| {
                format!("('00000000-0000-4000-8000-' || lpad(to_hex({n}), 12, '0'))::uuid")
            };
            let mut conn = sqlx::PgConnection::connect(&database.url()).await?;
            let statements = [
                format!(
                    "INSERT INTO users (id, username, display_name, password_hash, created_at) \
                     SELECT {}, 'bench' || u, 'Bench ' || u, '', now() \
                     FROM generate_series(0, {users} - 1) u \
                     UNION ALL SELECT '{SEARCHER}', 'searcher', 'Searcher', '', now()",
                    id("u")
                ),
                format!(
                    "INSERT INTO rooms (id, kind, name, created_at, last_seq) \
                     SELECT {}, 'private', 'bench ' || r, now(), \
                         ({messages} - 1 - r) / {rooms} + 1 \
                     FROM generate_series(0, {rooms} - 1) r",
                    id("1000000000 + r")
                ),
                format!(
                    "INSERT INTO room_members (room_id, user_id, role, joined_at) \
                     SELECT {}, {}, 'member', now() FROM generate_series(0, {users} - 1) u \
                     UNION ALL SELECT {}, '{SEARCHER}', 'member', now() \
                     FROM generate_series(0, 9) r",
                    id("1000000000 + u / 10"),
                    id("u"),
                    id("1000000000 + r")
                ),
                format!(
                    "INSERT INTO room_events (room_id, seq, id, kind, sender, client_id, body, \
                         created_at, search) \
                     SELECT {}, n / {rooms} + 1, \
                         (lpad(to_hex(1700000000000 + n), 12, '0') || '70008000' \
                             || lpad(to_hex(n), 12, '0'))::uuid, \
                         'message', {}, 'b' || n, {body}, now(), \
                         to_tsvector('simple', search_text({body})) \
                     FROM generate_series(0::bigint, {messages} - 1) n",
                    id(&format!("1000000000 + n % {rooms}")),
                    id(&format!("(n % {rooms}) * 10 + (n / {rooms}) % 10"))
                ),
            ];
            for statement in statements {
                conn.execute(statement.as_str()).await?;
            }
        }
        Database::Sqlite(_) => {
            let id = |n: &str| format!("unhex(printf('000000000000400080%014x', {n}))");
            let mut conn = sqlx::SqliteConnection::connect(&database.url()).await?;
            let now = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";
            let series = |to: u64| {
                format!("WITH RECURSIVE s(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s WHERE n < {to} - 1)")
            };
            let statements = [
                format!(
                    "INSERT INTO users (id, username, display_name, password_hash, created_at) \
                     {} SELECT {}, 'bench' || n, 'Bench ' || n, '', {now} FROM s \
                     UNION ALL SELECT unhex(replace('{SEARCHER}', '-', '')), 'searcher', \
                         'Searcher', '', {now}",
                    series(users),
                    id("n")
                ),
                format!(
                    "INSERT INTO rooms (id, kind, name, created_at, last_seq) \
                     {} SELECT {}, 'private', 'bench ' || n, {now}, \
                         ({messages} - 1 - n) / {rooms} + 1 FROM s",
                    series(rooms),
                    id("1000000000 + n")
                ),
                format!(
                    "INSERT INTO room_members (room_id, user_id, role, joined_at) \
                     {} SELECT {}, {}, 'member', {now} FROM s \
                     UNION ALL SELECT {}, unhex(replace('{SEARCHER}', '-', '')), 'member', {now} \
                     FROM s WHERE n < 10",
                    series(users),
                    id("1000000000 + n / 10"),
                    id("n"),
                    id("1000000000 + n")
                ),
                format!(
                    "INSERT INTO room_events (room_id, seq, id, kind, sender, client_id, body, \
                         created_at) \
                     {} SELECT {}, n / {rooms} + 1, \
                         unhex(printf('%012x70008000%012x', 1700000000000 + n, n)), \
                         'message', {}, 'b' || n, {body}, {now} FROM s",
                    series(messages),
                    id(&format!("1000000000 + n % {rooms}")),
                    id(&format!("(n % {rooms}) * 10 + (n / {rooms}) % 10"))
                ),
            ];
            for statement in statements {
                conn.execute(statement.as_str()).await?;
            }
        }
    }
    Ok(())
}

/// Leaves the send with nothing of the index to do (see the module doc).
async fn take_index_out_of_the_send(database: &Database) -> Result<()> {
    match database {
        Database::Postgres(_) => {
            let mut conn = sqlx::PgConnection::connect(&database.url()).await?;
            conn.execute(
                "DROP INDEX room_events_search; \
                 CREATE OR REPLACE FUNCTION search_text(body text) RETURNS text \
                     LANGUAGE sql IMMUTABLE RETURN NULL",
            )
            .await?;
        }
        Database::Sqlite(_) => {
            let mut conn = sqlx::SqliteConnection::connect(&database.url()).await?;
            conn.execute("DROP TRIGGER message_search_on_send").await?;
        }
    }
    Ok(())
}

/// The run as Markdown tables.
pub fn table(plan: &Plan, results: &[(Kind, Figures)]) -> String {
    let mut out = format!(
        "search: {} messages over {} rooms of 10, searched by a member of 10 rooms, \
         a page of 20, {} searches a shape\n\n\
         | store | filled in s | query | shape | first-page hits | p50 ms | p99 ms |\n\
         | --- | ---: | --- | --- | ---: | ---: | ---: |\n",
        plan.messages, plan.rooms, plan.searches
    );
    for (kind, figures) in results {
        for ((shape, q), (hits, latency)) in SHAPES.iter().zip(&figures.shapes) {
            let [p50, p99, _] = percentiles_ms(latency);
            let _ = writeln!(
                out,
                "| {} | {:.1} | `{q}` | {shape} | {hits} | {p50:.2} | {p99:.2} |",
                label(*kind),
                figures.filled_in,
            );
        }
    }
    let _ = write!(
        out,
        "\nwhat the index adds to a send: appends over {} rooms of {} on the filled database, \
         {}-byte bodies, with the index and with it taken out of the send\n\n\
         | store | offered appends/s | index | appended | failed | p50 ms | p99 ms | \
         database CPU s | this process CPU s |\n\
         | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n",
        plan.appends.rooms, plan.appends.members, plan.appends.body_len
    );
    for (kind, figures) in results {
        let pairs = figures.with_index.iter().zip(&figures.without_index);
        for (with, without) in pairs {
            for (index, step) in [("with", with), ("without", without)] {
                let [p50, p99, _] = percentiles_ms(&step.latency);
                let database = step
                    .database_cpu
                    .map_or("— (in process)".into(), |cpu| format!("{cpu:.2}"));
                let _ = writeln!(
                    out,
                    "| {} | {} | {index} | {} | {} | {p50:.2} | {p99:.2} | {database} | {:.2} |",
                    label(*kind),
                    step.rate,
                    step.appended,
                    step.failed,
                    step.own_cpu,
                );
            }
        }
    }
    out
}
