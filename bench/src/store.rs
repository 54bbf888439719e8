//! The store alone: message appends at a fixed rate straight into
//! `RoomLog::submit_message` (the group commit), with no gateway, sockets
//! or bus in the way. What an append costs the database, and how long it
//! waits for its answer, apart from everything else the servers do. In
//! fan-out and many rooms the commit shares two cores with the gateway, the
//! sockets and the generator, whose noise hides a change of a few per cent
//! in the commit; here it does not.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chat_shared::model::{Role, RoomId, RoomKind, UserId};
use chat_shared::store::{self, NewMessage, NewRoom, NewUser, Store};
use hdrhistogram::Histogram;

use crate::cpu;
use crate::kind::Kind;
use crate::measure::{histogram, percentiles_ms};
use crate::rooms::Plan;
use crate::system;

/// An append that has not been answered by then counts as failed.
const PATIENCE: Duration = Duration::from_secs(30);

/// One rate step's figures.
pub struct Step {
    pub rate: u32,
    pub appended: u64,
    pub failed: u64,
    /// Submit → answer.
    pub latency: Histogram<u64>,
    /// The PostgreSQL backends serving the store's database; `None` on
    /// SQLite, which works inside this process.
    pub database_cpu: Option<f64>,
    /// This process: the store's client side (and all of SQLite).
    pub own_cpu: f64,
}

/// A database for one run, dropped after it.
pub enum Database {
    Postgres(String),
    Sqlite(PathBuf),
}

impl Database {
    pub async fn create(kind: Kind, tag: &str) -> Result<Self> {
        Ok(match kind {
            Kind::OursPostgres => {
                let name = format!("bench_store_{tag}");
                system::fresh_database(&name).await?;
                Database::Postgres(name)
            }
            Kind::OursSqlite => {
                let dir = std::env::temp_dir().join(format!("chat-bench-store-{tag}"));
                let _ = std::fs::remove_dir_all(&dir);
                Database::Sqlite(dir)
            }
            other => anyhow::bail!("{} has no store of ours to measure", other.name()),
        })
    }

    pub fn url(&self) -> String {
        match self {
            Database::Postgres(name) => format!("{}/{name}", system::admin_url()),
            Database::Sqlite(dir) => format!("sqlite://{}", dir.join("chat.db").display()),
        }
    }

    /// Refreshes the planner's statistics.
    pub async fn analyze(&self) -> Result<()> {
        use sqlx::{Connection, Executor};
        match self {
            Database::Postgres(_) => {
                let mut conn = sqlx::PgConnection::connect(&self.url()).await?;
                conn.execute("ANALYZE").await?;
            }
            Database::Sqlite(_) => {
                let mut conn = sqlx::SqliteConnection::connect(&self.url()).await?;
                conn.execute("ANALYZE").await?;
            }
        }
        Ok(())
    }

    /// CPU seconds of the database's server processes (PostgreSQL).
    pub fn cpu_seconds(&self) -> Option<f64> {
        match self {
            Database::Postgres(name) => Some(cpu::backends_cpu_seconds(name)),
            Database::Sqlite(_) => None,
        }
    }

    pub async fn drop_it(self) -> Result<()> {
        match self {
            Database::Postgres(name) => {
                system::administer(&[&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")]).await
            }
            Database::Sqlite(dir) => Ok(std::fs::remove_dir_all(dir)?),
        }
    }
}

/// Sets up the rooms on a fresh database of `kind`, then runs each rate.
pub async fn run(kind: Kind, plan: &Plan, tag: &str) -> Result<Vec<Step>> {
    let database = Database::create(kind, tag).await?;
    let steps = measure(&database, plan, "store").await;
    database.drop_it().await?;
    steps
}

/// Sets up the rooms (their users named `<users>_<room>_<member>`, so a
/// database can take more than one run) and runs each rate on `database`.
pub async fn measure(database: &Database, plan: &Plan, users: &str) -> Result<Vec<Step>> {
    let store = store::connect(&database.url(), 10)
        .await
        .context("opening the store")?;
    let rooms = Arc::new(set_up(store.as_ref(), plan, users).await?);
    let body: Arc<str> = "x".repeat(plan.body_len).into();
    let mut steps = Vec::with_capacity(plan.rates.len());
    let mut sent = 0_u64;
    for &rate in &plan.rates {
        let before = (database.cpu_seconds(), own_cpu_seconds());
        let total = u64::from(rate) * plan.step.as_secs().max(1);
        let (answers, mut answered) = tokio::sync::mpsc::unbounded_channel();
        let start = Instant::now();
        for i in 0..total {
            let due = start + Duration::from_nanos(i * 1_000_000_000 / u64::from(rate));
            tokio::time::sleep_until(due.into()).await;
            let (room, members) = &rooms[(i as usize) % rooms.len()];
            // Each member of a room takes its turn, as in `rooms`.
            let sender = members[(i as usize / rooms.len()) % members.len()];
            let (room, store, body, answers) =
                (*room, store.clone(), body.clone(), answers.clone());
            let client_id = format!("s{}", sent + i);
            tokio::spawn(async move {
                let at = Instant::now();
                let append = async {
                    let submitted = store
                        .submit_message(room, sender, NewMessage::text(client_id, body.to_string()))
                        .await?;
                    submitted.answer().await
                };
                let ok = matches!(tokio::time::timeout(PATIENCE, append).await, Ok(Ok(_)));
                let _ = answers.send((ok, at.elapsed()));
            });
        }
        sent += total;
        drop(answers);
        let mut step = Step {
            rate,
            appended: 0,
            failed: 0,
            latency: histogram(),
            database_cpu: None,
            own_cpu: 0.0,
        };
        while let Some((ok, took)) = answered.recv().await {
            if ok {
                step.appended += 1;
                step.latency.saturating_record(took.as_micros() as u64);
            } else {
                step.failed += 1;
            }
        }
        let after = (database.cpu_seconds(), own_cpu_seconds());
        step.database_cpu = after.0.zip(before.0).map(|(a, b)| (a - b).max(0.0));
        step.own_cpu = after.1 - before.1;
        steps.push(step);
    }
    Ok(steps)
}

/// `plan.rooms` rooms, each with `plan.members` members (its creator
/// first); the users and rooms straight through the store.
async fn set_up(store: &dyn Store, plan: &Plan, users: &str) -> Result<Vec<(RoomId, Vec<UserId>)>> {
    let mut rooms = Vec::with_capacity(plan.rooms);
    for r in 0..plan.rooms {
        let mut members = Vec::with_capacity(plan.members);
        for m in 0..plan.members {
            let user = store
                .create_user(NewUser {
                    username: format!("{users}_{r}_{m}"),
                    display_name: format!("Store {r}.{m}"),
                    password_hash: String::new(),
                })
                .await?;
            members.push(user.id);
        }
        let owner = members[0];
        let (room, _) = store
            .create_room(NewRoom {
                kind: RoomKind::Private,
                name: format!("store {r}"),
                topic: String::new(),
                created_by: owner,
            })
            .await?;
        for &member in &members[1..] {
            store
                .add_member(room.id, member, owner, Role::Member)
                .await?;
        }
        rooms.push((room.id, members));
    }
    Ok(rooms)
}

/// How a table names a store.
pub fn label(kind: Kind) -> &'static str {
    match kind {
        Kind::OursPostgres => "PostgreSQL",
        Kind::OursSqlite => "SQLite",
        other => other.name(),
    }
}

/// CPU seconds of this process so far.
pub fn own_cpu_seconds() -> f64 {
    cpu::cpu_seconds(std::process::id())
}

/// The run as a Markdown table.
pub fn table(plan: &Plan, results: &[(Kind, Vec<Step>)]) -> String {
    let mut out = format!(
        "store alone: appends over {} rooms of {}, {}-byte bodies\n\n\
         | store | offered appends/s | appended | failed | p50 ms | p99 ms | p99.9 ms \
         | database CPU s | generator CPU s | appends per database CPU-s |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
        plan.rooms, plan.members, plan.body_len
    );
    for (kind, steps) in results {
        for step in steps {
            let [p50, p99, p999] = percentiles_ms(&step.latency);
            let (database, per_cpu) = match step.database_cpu {
                Some(cpu) => (
                    format!("{cpu:.2}"),
                    format!("{:.0}", step.appended as f64 / cpu.max(0.01)),
                ),
                None => ("— (in process)".into(), "—".into()),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {p50:.2} | {p99:.2} | {p999:.2} | {database} | {:.2} | {per_cpu} |",
                label(*kind),
                step.rate,
                step.appended,
                step.failed,
                step.own_cpu,
            );
        }
    }
    out
}
