//! `chat-faults`: the fault suite. Starts the real pool (PostgreSQL, Redis,
//! object storage, `chat-api`, three `chat-gateway`s, nginx), drives it with many clients,
//! breaks one thing per scenario, checks that no acknowledged event was
//! lost, duplicated or reordered; then does the same to the embedded
//! default (`chat` on SQLite) for the scenarios it has parts for, and
//! prints one table.
//!
//! ```text
//! chat-faults [--only a,b] [--seconds N] [--clients N] [--rooms N] [--rate N]
//!             [--report FILE] [--nginx-conf FILE (default deploy/nginx.conf)]
//! ```
//!
//! It runs the binaries next to its own (`cargo build` puts them there).

mod client;
mod pool;
mod proxy;
mod report;
mod scenario;
mod storage;
mod uploads;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use pool::{Pool, PoolOptions};
use scenario::{Load, Outcome, Suite, EMBEDDED_SCENARIOS, SCENARIOS};

struct Args {
    only: Vec<String>,
    load: Load,
    report: Option<PathBuf>,
    nginx_conf: Option<PathBuf>,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        only: Vec::new(),
        load: Load {
            clients: 24,
            rooms: 4,
            rate: 60,
            duration: Duration::from_secs(20),
        },
        report: None,
        nginx_conf: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--only" => args.only = value()?.split(',').map(str::to_owned).collect(),
            "--seconds" => args.load.duration = Duration::from_secs(value()?.parse()?),
            "--clients" => args.load.clients = value()?.parse()?,
            "--rooms" => args.load.rooms = value()?.parse()?,
            "--rate" => args.load.rate = value()?.parse()?,
            "--report" => args.report = Some(value()?.into()),
            "--nginx-conf" => args.nginx_conf = Some(value()?.into()),
            other => bail!("unknown argument {other}; see the top of faults/src/main.rs"),
        }
    }
    if args.load.duration < Duration::from_secs(15) {
        bail!("--seconds must be at least 15: the faults are scheduled over 15 s");
    }
    if let Some(unknown) = args
        .only
        .iter()
        .find(|n| !SCENARIOS.contains(&n.as_str()) && !EMBEDDED_SCENARIOS.contains(&n.as_str()))
    {
        bail!(
            "no scenario named {unknown}; they are {}",
            SCENARIOS.join(", ")
        );
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("chat-faults: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<bool> {
    let args = parse_args()?;
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("repository root")?
        .to_owned();
    let started = Instant::now();
    let mut outcomes = Vec::new();
    let mut kept_logs = Vec::new();
    let wanted = |list: &[&'static str]| -> Vec<&'static str> {
        list.iter()
            .copied()
            .filter(|name| args.only.is_empty() || args.only.iter().any(|n| n == name))
            .collect()
    };
    let scaled = wanted(SCENARIOS);
    if !scaled.is_empty() {
        let pool = Pool::start(
            &repo,
            &PoolOptions {
                gateways: 3,
                outbound_queue: 256,
                nginx_conf: args
                    .nginx_conf
                    .clone()
                    .unwrap_or_else(|| repo.join("deploy/nginx.conf")),
            },
        )
        .await?;
        run_suite(pool, &args.load, &scaled, &mut outcomes, &mut kept_logs).await?;
    }
    let embedded = wanted(EMBEDDED_SCENARIOS);
    if !embedded.is_empty() {
        let pool = Pool::start_embedded().await?;
        run_suite(pool, &args.load, &embedded, &mut outcomes, &mut kept_logs).await?;
    }
    let table = report::render(&outcomes);
    println!(
        "\n{} clients, {} rooms, {} messages/s, {} s per scenario; suite took {:.0} s\n\n{table}",
        args.load.clients,
        args.load.rooms,
        args.load.rate,
        args.load.duration.as_secs(),
        started.elapsed().as_secs_f64()
    );
    if let Some(path) = &args.report {
        std::fs::write(path, &table).with_context(|| format!("writing {}", path.display()))?;
    }
    for logs in &kept_logs {
        eprintln!("chat-faults: logs kept in {}", logs.display());
    }
    Ok(outcomes.iter().all(|o| o.failures.is_empty()))
}

/// Runs `scenarios` against one deployment, adding their outcomes; its
/// logs are removed if every one passed, else kept and named.
async fn run_suite(
    pool: Pool,
    load: &Load,
    scenarios: &[&'static str],
    outcomes: &mut Vec<Outcome>,
    kept_logs: &mut Vec<PathBuf>,
) -> Result<()> {
    eprintln!(
        "chat-faults: {:?} up; logs in {}",
        pool.shape,
        pool.dir.join("logs").display()
    );
    let mut suite = Suite::start(pool, load.clone()).await?;
    let mut passed = true;
    for name in scenarios.iter().copied() {
        let began = Instant::now();
        let outcome = suite
            .run(name)
            .await
            .with_context(|| format!("scenario {name}"))?;
        eprintln!(
            "chat-faults: {name}: {} in {:.0} s",
            if outcome.failures.is_empty() {
                "pass"
            } else {
                "FAIL"
            },
            began.elapsed().as_secs_f64()
        );
        for failure in &outcome.failures {
            eprintln!("  {failure}");
        }
        passed &= outcome.failures.is_empty();
        outcomes.push(outcome);
    }
    let dir = suite.pool.dir.clone();
    drop(suite);
    if passed {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        kept_logs.push(dir.join("logs"));
    }
    Ok(())
}
