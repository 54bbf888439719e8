//! `chat-bench`: one load generator for our system and its peers, so the
//! comparison is fair. Starts each system itself (from this build's
//! binaries and `bench/peers/`), drives it over loopback, and prints a
//! table.
//!
//! ```text
//! chat-bench fanout   one room of --members 1000, one sender stepping --rates
//!                     100,200,500,1000,2000,5000 msg/s (--nodes 1)
//! chat-bench cross    the same with the members over two nodes (ours through
//!                     Redis, Socket.IO through its Redis adapter)
//! chat-bench rooms    --rooms 1000 of --members 10, every room sending; --rates
//!                     1000,2000,5000,10000 msg/s in all
//! chat-bench reactions  the fan-out of one room of --members 1000 at
//!                     --rates 100,200,500, plain sends beside reactions (one
//!                     added and taken back in turn); ours only
//! chat-bench idle     --connections 100000 authenticated idle connections on
//!                     one node (ours: over --users 100 accounts): memory per
//!                     connection, connects per second
//! chat-bench all      every workload with its defaults
//! chat-bench store    the store alone, no gateway: appends over --rooms 200
//!                     of --members 10 at --rates 2000,5000,10000 per second
//!                     (--step-secs 10), PostgreSQL and SQLite
//! chat-bench messages the store alone: a room of --events 100000 (messages,
//!                     edits, reactions) and --members 20, read as a timeline
//!                     and as the log a page of 50 at a time; one reaction's
//!                     commit beside one plain send. PostgreSQL and SQLite
//! chat-bench search   the store alone: --events 1000000 messages over --rooms
//!                     1000, filled straight in; search latency p50/p99 of a
//!                     few query shapes, then appends (--rates 2000,
//!                     --step-secs 10) with the search index and without it.
//!                     PostgreSQL and SQLite. --smoke: 10,000 messages over
//!                     100 rooms and a short append run, to check it works
//!
//! Each writes its tables (`<command>.md`) and charts (`<workload>.png`) to
//! --out (default target/bench) and prints the tables.
//! chat-bench smoke    a few seconds against `chat`, two ceiling nodes, and
//!                     the store alone on SQLite: checks the tool works (CI)
//! chat-bench ceiling --addr A [--link-listen L | --link-connect L]
//!                     one ceiling node (the generator starts them itself)
//!
//! common: [--systems ours-sqlite,ours-pg,ours-pg-local,ceiling,ws,socketio]
//!         [--step-secs 5]   (ours-pg: chat-api + chat-gateway, PostgreSQL
//!                           and Redis; ours-pg-local: `chat` on PostgreSQL
//!                           with the in-process bus, one node; ceiling: our
//!                           transport with nothing durable, `ceiling.rs`)
//!         [--server-cpus 0]   pin the servers (`taskset -c`); run the
//!                             generator itself under `taskset -c 1`
//! ```

mod accounts;
mod args;
mod ceiling;
mod chart;
mod cpu;
mod fanout;
mod idle;
mod kind;
mod measure;
mod messages;
mod proto;
mod receiver;
mod report;
mod rooms;
mod search;
mod smoke;
mod sockets;
mod store;
mod system;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use args::{parse_args, Args};
use kind::Kind;
use measure::Step;
use report::{Outcome, Target};
use system::{Start, System};

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chat-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// One workload with its shape, ready to run against each system.
enum Workload {
    Fanout { plan: fanout::Plan, nodes: usize },
    Rooms(rooms::Plan),
}

const EVERY_SYSTEM: [Kind; 6] = [
    Kind::OursSqlite,
    Kind::OursPostgres,
    Kind::OursPostgresLocal,
    Kind::Ceiling,
    Kind::NodeWs,
    Kind::SocketIo,
];

impl Workload {
    fn fanout(args: &Args, nodes: usize) -> Self {
        Self::fanout_of(
            args,
            nodes,
            fanout::Frames::Messages,
            &[100, 200, 500, 1000, 2000, 5000],
        )
    }

    /// A one-node fan-out of `frames`, at `rates` unless --rates says.
    fn fanout_of(args: &Args, nodes: usize, frames: fanout::Frames, rates: &[u32]) -> Self {
        Workload::Fanout {
            plan: fanout::Plan {
                members: args.members.unwrap_or(1000),
                rates: args.rates.clone().unwrap_or_else(|| rates.to_vec()),
                step: args.step.unwrap_or(Duration::from_secs(5)),
                body_len: 100,
                frames,
            },
            nodes,
        }
    }

    fn rooms(args: &Args) -> Self {
        Workload::Rooms(rooms::Plan {
            rooms: args.rooms.unwrap_or(1000),
            members: args.members.unwrap_or(10),
            rates: args
                .rates
                .clone()
                .unwrap_or_else(|| vec![1000, 2000, 5000, 10_000]),
            step: args.step.unwrap_or(Duration::from_secs(5)),
            body_len: 100,
        })
    }

    fn nodes(&self) -> usize {
        match self {
            Workload::Fanout { nodes, .. } => *nodes,
            Workload::Rooms(_) => 1,
        }
    }

    fn target(&self) -> Target {
        match self {
            Workload::Fanout { .. } => Target::Delivery { p99_ms: 50.0 },
            Workload::Rooms(_) => Target::Ack { p99_ms: 20.0 },
        }
    }

    fn describe(&self) -> String {
        match self {
            Workload::Fanout { plan, nodes: 1 } if plan.frames == fanout::Frames::Reactions => {
                format!(
                    "reaction fan-out: one room of {} members, one reaction added and taken back",
                    plan.members
                )
            }
            Workload::Fanout { plan, nodes: 1 } => {
                format!("fan-out: one room of {} members", plan.members)
            }
            Workload::Fanout { plan, nodes } => format!(
                "cross-node fan-out: one room of {} members over {nodes} nodes",
                plan.members
            ),
            Workload::Rooms(plan) => format!(
                "many rooms: {} rooms of {} members, one sender each",
                plan.rooms, plan.members
            ),
        }
    }

    async fn run(&self, system: &mut System) -> Result<Vec<Step>> {
        match self {
            Workload::Fanout { plan, .. } => fanout::run(system, plan).await,
            Workload::Rooms(plan) => rooms::run(system, plan).await,
        }
    }
}

async fn run() -> Result<()> {
    // A ceiling node is a server, not a run of the generator.
    if std::env::args().nth(1).as_deref() == Some("ceiling") {
        return ceiling::serve(std::env::args().skip(2)).await;
    }
    let args = parse_args()?;
    raise_file_limit();
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("repository root")?
        .to_owned();
    let tag = format!("b{}", std::process::id());
    let start = Start {
        repo: &repo,
        nodes: 1,
        tag: &tag,
        cpus: args.server_cpus.as_deref(),
    };
    println!("machine: {}\n", report::machine());
    let systems = |default: &[Kind]| args.systems.clone().unwrap_or_else(|| default.to_vec());
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| repo.join("target/bench"));
    let cross_systems = [Kind::OursPostgres, Kind::Ceiling, Kind::SocketIo];
    let runs = match args.command.as_str() {
        "fanout" => vec![("fanout", Workload::fanout(&args, 1), EVERY_SYSTEM.to_vec())],
        "cross" => vec![("cross", Workload::fanout(&args, 2), cross_systems.to_vec())],
        "rooms" => vec![("rooms", Workload::rooms(&args), EVERY_SYSTEM.to_vec())],
        "reactions" => {
            // The same room, rates and systems: a plain send beside a
            // reaction. One connection's changes are answered one at a
            // time (docs/protocol.md), so the rates stay below what one
            // commit after another allows.
            let rates = [100, 200, 500];
            let ours = vec![Kind::OursSqlite, Kind::OursPostgres];
            let of = |frames| Workload::fanout_of(&args, 1, frames, &rates);
            vec![
                (
                    "reactions-messages",
                    of(fanout::Frames::Messages),
                    ours.clone(),
                ),
                ("reactions", of(fanout::Frames::Reactions), ours),
            ]
        }
        "all" => vec![
            ("fanout", Workload::fanout(&args, 1), EVERY_SYSTEM.to_vec()),
            ("cross", Workload::fanout(&args, 2), cross_systems.to_vec()),
            ("rooms", Workload::rooms(&args), EVERY_SYSTEM.to_vec()),
        ],
        "idle" => Vec::new(),
        _ => Vec::new(),
    };
    if !runs.is_empty() || args.command == "idle" {
        std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
        let command: Vec<String> = std::env::args().collect();
        let mut report = format!(
            "# chat-bench {}\n\n- machine: {}\n- command: `{}`\n\n",
            args.command,
            report::machine(),
            command.join(" ")
        );
        for (name, workload, default) in runs {
            let outcome = measure_all(&workload, &systems(&default), &start).await?;
            let table = outcome.table();
            println!("{table}");
            let png = out.join(format!("{name}.png"));
            outcome.chart(&png)?;
            let _ = write!(report, "{table}\n![{}]({name}.png)\n\n", outcome.title);
        }
        if args.command == "all" || args.command == "idle" {
            let plan = idle::Plan {
                connections: idle_connections(args.connections.unwrap_or(100_000)),
                users: args.users.unwrap_or(100),
            };
            let table = measure_idle(&plan, &systems(&EVERY_SYSTEM), &start).await?;
            println!("{table}");
            report.push_str(&table);
        }
        let path = out.join(format!("{}.md", args.command));
        std::fs::write(&path, report)?;
        eprintln!("chat-bench: tables and charts in {}", path.display());
        return Ok(());
    }
    match args.command.as_str() {
        "store" => {
            let plan = rooms::Plan {
                rooms: args.rooms.unwrap_or(200),
                members: args.members.unwrap_or(10),
                rates: args
                    .rates
                    .clone()
                    .unwrap_or_else(|| vec![2000, 5000, 10_000]),
                step: args.step.unwrap_or(Duration::from_secs(10)),
                body_len: 100,
            };
            let mut results = Vec::new();
            for kind in systems(&[Kind::OursPostgres, Kind::OursSqlite]) {
                eprintln!("chat-bench: the store alone on {}", kind.name());
                let steps = store::run(kind, &plan, &tag).await;
                results.push((kind, steps.with_context(|| kind.name())?));
            }
            println!("{}", store::table(&plan, &results));
        }
        "messages" => {
            let plan = messages::Plan {
                events: args.events.unwrap_or(100_000),
                members: args.members.unwrap_or(20),
                reads: 1000,
                ops: 1000,
            };
            let mut results = Vec::new();
            for kind in systems(&[Kind::OursPostgres, Kind::OursSqlite]) {
                eprintln!("chat-bench: messages on {}", kind.name());
                let figures = messages::run(kind, &plan, &tag).await;
                results.push((kind, figures.with_context(|| kind.name())?));
            }
            println!("{}", messages::table(&plan, &results));
        }
        "search" => {
            let (messages, rooms, searches, rate, step) = if args.smoke {
                (10_000, 100, 20, 500, Duration::from_secs(2))
            } else {
                (1_000_000, 1000, 200, 2000, Duration::from_secs(10))
            };
            let plan = search::Plan {
                messages: args.events.unwrap_or(messages),
                rooms: args.rooms.map_or(rooms, |r| r as u64),
                searches,
                appends: rooms::Plan {
                    rooms: 200,
                    members: 10,
                    rates: args.rates.clone().unwrap_or_else(|| vec![rate]),
                    step: args.step.unwrap_or(step),
                    body_len: 100,
                },
            };
            let mut results = Vec::new();
            for kind in systems(&[Kind::OursPostgres, Kind::OursSqlite]) {
                eprintln!("chat-bench: search on {}", kind.name());
                let figures = search::run(kind, &plan, &tag).await;
                results.push((kind, figures.with_context(|| kind.name())?));
            }
            println!("{}", search::table(&plan, &results));
        }
        "smoke" => smoke::run(&start, &tag).await?,
        other => bail!(
            "unknown command {other:?}: fanout, cross, rooms, reactions, all, store, messages, \
             search, smoke or ceiling; see the top of bench/src/main.rs"
        ),
    }
    Ok(())
}

/// Holds idle connections on each system in turn, each started fresh.
async fn measure_idle(plan: &idle::Plan, systems: &[Kind], start: &Start<'_>) -> Result<String> {
    let mut results = Vec::new();
    for &kind in systems {
        let mut system = System::start(kind, start).await?;
        eprintln!(
            "chat-bench: {} up for {} idle connections",
            kind.name(),
            plan.connections
        );
        let outcome = idle::run(&mut system, plan).await;
        system.stop().await?;
        results.push((kind, outcome.with_context(|| kind.name())?));
    }
    Ok(report::idle_table(&results))
}

/// Runs `workload` against each system in turn, each started fresh.
async fn measure_all(workload: &Workload, systems: &[Kind], start: &Start<'_>) -> Result<Outcome> {
    let start = Start {
        nodes: workload.nodes(),
        ..*start
    };
    let mut outcome = Outcome::new(workload.describe(), workload.target());
    for &kind in systems {
        let mut system = System::start(kind, &start).await?;
        eprintln!("chat-bench: {} up for {}", kind.name(), workload.describe());
        let steps = workload.run(&mut system).await;
        let peak_rss_kib = system.peak_rss_kib();
        system.stop().await?;
        outcome
            .results
            .push((kind, steps.with_context(|| kind.name())?, peak_rss_kib));
    }
    Ok(outcome)
}

/// `wanted`, or fewer if the open-file limit would refuse them: every
/// connection is a descriptor here and one in the server, which inherits
/// this limit. Says so when it cuts.
fn idle_connections(wanted: usize) -> usize {
    use nix::sys::resource::{getrlimit, Resource};
    // Room for the server's own files, its database and bus connections.
    const SPARE: u64 = 1000;
    let limit = getrlimit(Resource::RLIMIT_NOFILE).map_or(u64::MAX, |(soft, _)| soft);
    let possible = usize::try_from(limit.saturating_sub(SPARE)).unwrap_or(usize::MAX);
    if possible < wanted {
        eprintln!(
            "chat-bench: the open-file limit is {limit} (raise the hard limit with \
             `ulimit -Hn`, as root): holding {possible} idle connections, not {wanted}"
        );
    }
    wanted.min(possible)
}

/// Lets this process (and the servers it starts, which inherit the limit)
/// open as many sockets as the hard limit allows: 100,000 idle
/// connections need as many descriptors on each side. `scripts/bench`
/// raises the hard limit itself before it starts the generator.
fn raise_file_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_err() {
            eprintln!("chat-bench: could not raise the open-file limit from {soft} to {hard}");
        }
    }
}
