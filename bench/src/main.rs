//! `chat-bench`: one load generator for our system and its peers, so the
//! comparison is fair. Starts each system itself (from this build's
//! binaries and `bench/peers/`), drives it over loopback, and prints a
//! table.
//!
//! ```text
//! chat-bench fanout [--systems ours-sqlite,ours-pg,ws,socketio] [--members 1000]
//!                   [--rates 100,200,500,1000,2000,5000] [--step-secs 5] [--nodes 1]
//!                   [--server-cpus 0]   pin the servers (`taskset -c`); run the
//!                                       generator itself under `taskset -c 1`
//! chat-bench smoke      a few seconds against `chat`: checks the tool works (CI)
//! ```

mod accounts;
mod fanout;
mod proto;
mod receiver;
mod system;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use fanout::{Plan, Step};
use system::{Kind, Start, System};

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

struct Args {
    command: String,
    systems: Vec<Kind>,
    plan: Plan,
    nodes: usize,
    server_cpus: Option<String>,
}

fn parse_args() -> Result<Args> {
    let mut it = std::env::args().skip(1);
    let command = it.next().unwrap_or_default();
    let mut args = Args {
        command,
        systems: vec![
            Kind::OursSqlite,
            Kind::OursPostgres,
            Kind::NodeWs,
            Kind::SocketIo,
        ],
        plan: Plan {
            members: 1000,
            rates: vec![100, 200, 500, 1000, 2000, 5000],
            step: Duration::from_secs(5),
            body_len: 100,
        },
        nodes: 1,
        server_cpus: None,
    };
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--systems" => {
                args.systems = value()?
                    .split(',')
                    .map(Kind::parse)
                    .collect::<Result<_>>()?
            }
            "--members" => args.plan.members = value()?.parse()?,
            "--rates" => {
                args.plan.rates = value()?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?
            }
            "--step-secs" => args.plan.step = Duration::from_secs(value()?.parse()?),
            "--nodes" => args.nodes = value()?.parse()?,
            "--server-cpus" => args.server_cpus = Some(value()?),
            other => bail!("unknown argument {other}; see the top of bench/src/main.rs"),
        }
    }
    if args.plan.members < 2 {
        bail!("--members must be at least 2 (a sender and a receiver)");
    }
    Ok(args)
}

async fn run() -> Result<()> {
    let mut args = parse_args()?;
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("repository root")?
        .to_owned();
    let bin_dir = std::env::current_exe()?
        .parent()
        .context("the generator's directory")?
        .to_owned();
    match args.command.as_str() {
        "fanout" => {}
        "smoke" => {
            args.systems = vec![Kind::OursSqlite];
            args.plan = Plan {
                members: 20,
                rates: vec![50, 100],
                step: Duration::from_secs(1),
                body_len: 100,
            };
        }
        other => {
            bail!("unknown command {other:?}: fanout or smoke; see the top of bench/src/main.rs")
        }
    }
    let tag = format!("b{}", std::process::id());
    let mut results = Vec::new();
    for kind in args.systems.clone() {
        let start = Start {
            repo: &repo,
            bin_dir: &bin_dir,
            nodes: args.nodes,
            tag: &tag,
            cpus: args.server_cpus.as_deref(),
        };
        let mut system = System::start(kind, &start).await?;
        eprintln!(
            "chat-bench: {} up; {} members",
            kind.name(),
            args.plan.members
        );
        let steps = fanout::run(&mut system, &args.plan)
            .await
            .with_context(|| kind.name())?;
        results.push((kind, steps, system.peak_rss_kib()));
    }
    println!("{}", table(&results));
    if args.command == "smoke" {
        for (_, steps, _) in &results {
            for step in steps {
                if step.delivered != step.expected || step.acked != step.sent {
                    bail!("smoke: {step:?}: not every message was acknowledged and delivered");
                }
            }
        }
    }
    Ok(())
}

fn table(results: &[(Kind, Vec<Step>, u64)]) -> String {
    let mut out = String::from(
        "| system | offered msg/s | deliveries/s | delivered | p50 ms | p99 ms | p99.9 ms | ack p50 ms | ack p99 ms | server CPU s | deliveries per CPU-s |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for (kind, steps, _) in results {
        for s in steps {
            out.push_str(&format!(
                "| {} | {} | {:.0} | {:.2}% | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2} | {:.0} |\n",
                kind.name(),
                s.rate,
                s.deliveries_per_second,
                100.0 * s.delivered as f64 / s.expected.max(1) as f64,
                s.latency_ms[0],
                s.latency_ms[1],
                s.latency_ms[2],
                s.ack_ms[0],
                s.ack_ms[1],
                s.cpu_seconds,
                s.delivered as f64 / s.cpu_seconds.max(0.001),
            ));
        }
    }
    out.push_str("\nhighest rate with every message delivered and p99 < 50 ms:\n");
    for (kind, steps, rss) in results {
        let best = steps
            .iter()
            .filter(|s| s.within_target())
            .max_by_key(|s| s.rate);
        out.push_str(&match best {
            Some(s) => format!(
                "- {}: {} msg/s, {:.0} deliveries/s (peak RSS {} MiB)\n",
                kind.name(),
                s.rate,
                s.deliveries_per_second,
                rss / 1024
            ),
            None => format!("- {}: none of the offered rates\n", kind.name()),
        });
    }
    out
}
