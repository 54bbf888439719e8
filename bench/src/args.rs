//! The command line of `chat-bench` (the flags are listed at the top of
//! `main.rs`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::kind::Kind;

/// The command line; what is not given takes each workload's default.
#[derive(Default)]
pub struct Args {
    pub command: String,
    pub systems: Option<Vec<Kind>>,
    pub members: Option<usize>,
    pub rooms: Option<usize>,
    pub connections: Option<usize>,
    pub users: Option<usize>,
    pub events: Option<u64>,
    pub rates: Option<Vec<u32>>,
    pub step: Option<Duration>,
    pub server_cpus: Option<String>,
    pub out: Option<PathBuf>,
    /// A short run that checks the workload works (`search`).
    pub smoke: bool,
}

pub fn parse_args() -> Result<Args> {
    let mut it = std::env::args().skip(1);
    let mut args = Args {
        command: it.next().unwrap_or_default(),
        ..Args::default()
    };
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--systems" => {
                args.systems = Some(
                    value()?
                        .split(',')
                        .map(Kind::parse)
                        .collect::<Result<_>>()?,
                )
            }
            "--members" => args.members = Some(value()?.parse()?),
            "--rooms" => args.rooms = Some(value()?.parse()?),
            "--connections" => args.connections = Some(value()?.parse()?),
            "--users" => args.users = Some(value()?.parse()?),
            "--events" => args.events = Some(value()?.parse()?),
            "--rates" => {
                args.rates = Some(
                    value()?
                        .split(',')
                        .map(str::parse)
                        .collect::<Result<_, _>>()?,
                )
            }
            "--step-secs" => args.step = Some(Duration::from_secs(value()?.parse()?)),
            "--server-cpus" => args.server_cpus = Some(value()?),
            "--out" => args.out = Some(value()?.into()),
            "--smoke" => args.smoke = true,
            other => bail!("unknown argument {other}; see the top of bench/src/main.rs"),
        }
    }
    if args.members.is_some_and(|m| m < 2) {
        bail!("--members must be at least 2 (a sender and a receiver)");
    }
    Ok(args)
}
