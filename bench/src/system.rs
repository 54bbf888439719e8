//! The systems under test, each started as real processes on loopback by
//! the test kit's launcher, and read from `/proc` for CPU time and memory.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use chat_testkit::launcher::{binary, free_addr, Service};
use nix::sys::signal::Signal;

use crate::cpu::{backends_cpu_seconds, cpu_seconds, Cpu};
use crate::kind::{kind_slug, Kind};
use crate::proto::Endpoint;
use std::net::SocketAddr;

/// A started system: its entry points (one per node that clients connect
/// to) and the processes whose CPU and memory count as the server's.
pub struct System {
    pub kind: Kind,
    /// Where clients connect, one per node (gateway).
    pub nodes: Vec<SocketAddr>,
    /// Our REST api, for accounts and rooms.
    pub api: Option<SocketAddr>,
    /// The servers whose CPU and memory are the system's.
    measured: Vec<Service>,
    /// Processes it needs that are not measured (our api: accounts, rooms).
    helpers: Vec<Service>,
    /// The PostgreSQL database it stores in, whose backends' CPU counts
    /// apart (`Cpu::database`).
    database: Option<String>,
    dir: PathBuf,
}

/// The share of one core below which the servers count as quiet.
const QUIET: f64 = 0.05;
/// Over how long quiet is judged.
const QUIET_WINDOW: Duration = Duration::from_millis(500);
/// Longest [`System::settle`] waits.
const SETTLE_MAX: Duration = Duration::from_secs(60);

/// Options shared by every start.
#[derive(Clone, Copy)]
pub struct Start<'a> {
    pub repo: &'a Path,
    pub nodes: usize,
    /// A unique prefix for Redis channels and database names.
    pub tag: &'a str,
    /// CPUs the measured processes may run on (`taskset -c`), so the server
    /// and the generator do not share cores; `None`: anywhere.
    pub cpus: Option<&'a str>,
}

impl System {
    pub async fn start(kind: Kind, options: &Start<'_>) -> Result<Self> {
        let dir =
            std::env::temp_dir().join(format!("chat-bench-{}-{}", options.tag, kind_slug(kind)));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let mut system = Self {
            kind,
            nodes: Vec::new(),
            api: None,
            measured: Vec::new(),
            helpers: Vec::new(),
            database: None,
            dir,
        };
        match kind {
            Kind::OursSqlite | Kind::OursPostgresLocal => {
                if options.nodes > 1 {
                    bail!("{} runs as one node, not {}", kind.name(), options.nodes);
                }
                let addr = free_addr()?;
                let mut chat = system
                    .service("chat", binary("chat")?, addr, options.cpus)
                    .env("CHAT_ADDR", addr.to_string())
                    .env("CHAT_DATA_DIR", system.dir.join("data"))
                    .env("CHAT_WEB_DIR", options.repo.join("web-client"))
                    .envs(our_limits());
                if kind == Kind::OursPostgresLocal {
                    chat = chat.env("DATABASE_URL", system.create_database(options.tag).await?);
                }
                system.measured.push(start(chat, Some("/readyz")).await?);
                system.nodes.push(addr);
                system.api = Some(addr);
            }
            Kind::OursPostgres => system.start_pool(options).await?,
            Kind::Ceiling => system.start_ceiling(options).await?,
            Kind::NodeWs | Kind::SocketIo => {
                let script = if kind == Kind::NodeWs {
                    "ws-server.mjs"
                } else {
                    "socketio-server.mjs"
                };
                for i in 0..options.nodes {
                    let addr = free_addr()?;
                    let name = format!("{}-{i}", kind_slug(kind));
                    let mut node = system
                        .service(&name, "node", addr, options.cpus)
                        .args([options.repo.join("bench/peers").join(script)])
                        .args(["--port", &addr.port().to_string()]);
                    if kind == Kind::SocketIo && options.nodes > 1 {
                        node = node.args(["--redis", &redis_url(), "--redis-prefix", options.tag]);
                    }
                    system.measured.push(start(node, None).await?);
                    system.nodes.push(addr);
                }
            }
        }
        Ok(system)
    }

    /// A new PostgreSQL database for this system, dropped by [`Self::stop`]:
    /// its url.
    async fn create_database(&mut self, tag: &str) -> Result<String> {
        let database = format!("bench_{tag}_{}", kind_slug(self.kind)).replace('-', "_");
        fresh_database(&database).await?;
        let url = format!("{}/{database}", admin_url());
        self.database = Some(database);
        Ok(url)
    }

    /// chat-api (a helper: accounts and rooms) and the gateways (measured).
    async fn start_pool(&mut self, options: &Start<'_>) -> Result<()> {
        let database_url = self.create_database(options.tag).await?;
        let api = free_addr()?;
        let api_process = self
            .service("chat-api", binary("chat-api")?, api, None)
            .env("CHAT_API_ADDR", api.to_string())
            .env("CHAT_DATA_DIR", self.dir.join("api"))
            .env("DATABASE_URL", &database_url)
            .env("REDIS_URL", redis_url())
            .env("CHAT_BUS_PREFIX", options.tag)
            .envs(our_limits());
        self.helpers
            .push(start(api_process, Some("/readyz")).await?);
        self.api = Some(api);
        for i in 0..options.nodes {
            let addr = free_addr()?;
            let name = format!("chat-gateway-{i}");
            let gateway = self
                .service(&name, binary("chat-gateway")?, addr, options.cpus)
                .env("CHAT_GATEWAY_ADDR", addr.to_string())
                .env("CHAT_DATA_DIR", self.dir.join(format!("gateway-{i}")))
                .env("CHAT_JWT_PUBLIC_KEY", self.dir.join("api/jwt-public.pem"))
                .env("DATABASE_URL", &database_url)
                .env("REDIS_URL", redis_url())
                .env("CHAT_BUS_PREFIX", options.tag)
                .envs(our_limits());
            self.measured.push(start(gateway, Some("/readyz")).await?);
            self.nodes.push(addr);
        }
        Ok(())
    }

    /// Ceiling nodes (measured), the first listening for the second's
    /// link.
    async fn start_ceiling(&mut self, options: &Start<'_>) -> Result<()> {
        if options.nodes > 2 {
            bail!("the ceiling links two nodes, not {}", options.nodes);
        }
        let link = free_addr()?.to_string();
        for i in 0..options.nodes {
            let addr = free_addr()?;
            let name = format!("ceiling-{i}");
            let mut node = self
                .service(&name, binary("chat-bench")?, addr, options.cpus)
                .args(["ceiling", "--addr", &addr.to_string()]);
            if options.nodes == 2 {
                let role = if i == 0 {
                    "--link-listen"
                } else {
                    "--link-connect"
                };
                node = node.args([role, &link]);
            }
            self.measured.push(start(node, None).await?);
            self.nodes.push(addr);
        }
        Ok(())
    }

    /// A server of this system at `addr`, logging into its directory; a
    /// crash is what is measured, not its goodbye, so it is killed at the
    /// end (SIGKILL).
    fn service(
        &self,
        name: &str,
        program: impl Into<std::ffi::OsString>,
        addr: SocketAddr,
        cpus: Option<&str>,
    ) -> Service {
        Service::new(name, program, &self.dir)
            .at(addr)
            .pinned(cpus)
            .stop_signal(Signal::SIGKILL)
    }

    /// The endpoint of `room` on node `node`.
    pub fn endpoint(&self, node: usize, room: &str) -> Endpoint {
        Endpoint {
            protocol: self.kind.protocol(),
            addr: self.nodes[node % self.nodes.len()],
            room: room.to_owned(),
        }
    }

    /// CPU seconds used so far by the measured processes and the backends
    /// of the system's database.
    pub fn cpu(&self) -> Cpu {
        Cpu {
            server: self
                .measured
                .iter()
                .filter_map(Service::pid)
                .map(|pid| cpu_seconds(pid.as_raw() as u32))
                .sum(),
            database: self.database.as_deref().map(backends_cpu_seconds),
            generator: cpu_seconds(std::process::id()),
        }
    }

    /// Resident memory of the measured processes now, summed, in KiB.
    pub fn rss_kib(&self) -> u64 {
        self.measured.iter().filter_map(Service::rss_kib).sum()
    }

    /// Stops the processes and drops the database they stored in: each run
    /// registers thousands of users, which should not outlive it.
    pub async fn stop(mut self) -> Result<()> {
        self.measured.clear();
        self.helpers.clear();
        match self.database.take() {
            Some(database) => {
                administer(&[&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)")]).await
            }
            None => Ok(()),
        }
    }

    /// Peak resident memory of the measured processes, summed, in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        self.measured.iter().filter_map(Service::peak_rss_kib).sum()
    }

    /// Waits until the servers are quiet (under [`QUIET`] of a core over
    /// each [`QUIET_WINDOW`], at most [`SETTLE_MAX`]) and says how long
    /// that took. Connecting thousands of clients leaves work behind them
    /// (ours tells each room's members who came online), which would
    /// otherwise land in the first step's figures.
    pub async fn settle(&self) {
        let started = Instant::now();
        let mut before = self.cpu();
        loop {
            tokio::time::sleep(QUIET_WINDOW).await;
            let now = self.cpu();
            if now.since(before).total() < QUIET * QUIET_WINDOW.as_secs_f64() {
                let waited = started.elapsed().as_secs_f64();
                eprintln!("chat-bench: servers quiet {waited:.1} s after connecting");
                return;
            }
            if started.elapsed() >= SETTLE_MAX {
                eprintln!("chat-bench: servers still busy after {SETTLE_MAX:?}; starting anyway");
                return;
            }
            before = now;
        }
    }

    /// Whether every process still runs (a crash voids a run).
    pub fn check_alive(&mut self) -> Result<()> {
        for p in self.measured.iter_mut().chain(self.helpers.iter_mut()) {
            if let Some(status) = p.exited()? {
                // The directory goes with the system: quote the log's end.
                bail!(
                    "{} exited ({status}); its log ends:\n{}",
                    p.name,
                    p.log_tail(8)
                );
            }
        }
        Ok(())
    }
}

/// The PostgreSQL server the benchmark's databases live on.
pub fn admin_url() -> String {
    std::env::var("BENCH_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// Creates the database `name` empty, dropping one a crashed run left.
pub async fn fresh_database(name: &str) -> Result<()> {
    administer(&[
        &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        &format!("CREATE DATABASE {name}"),
    ])
    .await
}

/// Runs `statements` on the server's `postgres` database.
pub async fn administer(statements: &[&str]) -> Result<()> {
    use sqlx::{Connection, Executor};
    let mut conn = sqlx::PgConnection::connect(&format!("{}/postgres", admin_url())).await?;
    for statement in statements {
        conn.execute(*statement).await?;
    }
    Ok(())
}

impl Drop for System {
    fn drop(&mut self) {
        self.measured.clear();
        self.helpers.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Limits that would throttle a benchmark's single fast sender and its
/// burst of registrations; everything else stays at the defaults.
fn our_limits() -> Vec<(&'static str, &'static str)> {
    vec![
        ("CHAT_SEND_RATE_PER_SECOND", "1000000"),
        ("CHAT_SEND_BURST", "1000000"),
        ("CHAT_AUTH_RATE_PER_MINUTE", "1000000"),
        ("CHAT_AUTH_RATE_BURST", "1000000"),
        ("CHAT_ACTION_RATE_PER_MINUTE", "1000000"),
        ("CHAT_ACTION_BURST", "1000000"),
        ("CHAT_MAX_CONNECTIONS", "200000"),
        // Every client of a benchmark comes from one address.
        ("CHAT_MAX_CONNECTIONS_PER_ADDRESS", "0"),
        ("CHAT_LOG", "warn"),
    ]
}

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Starts `service` and waits until it answers `GET path` (or, `None`,
/// accepts connections), failing at once if it exits (a peer whose modules
/// are missing, a server refusing its config).
async fn start(mut service: Service, path: Option<&str>) -> Result<Service> {
    service.start()?;
    service
        .wait_answering(&reqwest::Client::new(), path, Duration::from_secs(60))
        .await?;
    Ok(service)
}
