//! The systems under test, each started as real processes on loopback by
//! the benchmark, and read from `/proc` for CPU time and memory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::proto::{Endpoint, Protocol};

/// Every system the benchmark knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `chat`: api + gateway in one process, SQLite, in-process bus.
    OursSqlite,
    /// `chat-api` + `chat-gateway`s on PostgreSQL and Redis.
    OursPostgres,
    /// `chat` on PostgreSQL with the in-process bus: one node, so beside
    /// `OursPostgres` it shows what the Redis hop costs and what the store.
    OursPostgresLocal,
    /// `chat-bench ceiling`: our transport with nothing durable (no
    /// authentication, store or bus), two nodes linked directly.
    Ceiling,
    /// `bench/peers/ws-server.mjs`.
    NodeWs,
    /// `bench/peers/socketio-server.mjs` (with the Redis adapter when there
    /// are two nodes).
    SocketIo,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::OursSqlite => "chat (SQLite)",
            Kind::OursPostgres => "chat-gateway (PostgreSQL+Redis)",
            Kind::OursPostgresLocal => "chat (PostgreSQL)",
            Kind::Ceiling => "ceiling (nothing durable)",
            Kind::NodeWs => "node ws",
            Kind::SocketIo => "socket.io",
        }
    }

    /// Whether this is our system rather than a peer.
    pub fn is_ours(self) -> bool {
        matches!(
            self,
            Kind::OursSqlite | Kind::OursPostgres | Kind::OursPostgresLocal
        )
    }

    pub fn parse(text: &str) -> Result<Self> {
        Ok(match text {
            "ours-sqlite" => Kind::OursSqlite,
            "ours-pg" => Kind::OursPostgres,
            "ours-pg-local" => Kind::OursPostgresLocal,
            "ceiling" => Kind::Ceiling,
            "ws" => Kind::NodeWs,
            "socketio" => Kind::SocketIo,
            other => bail!(
                "unknown system {other}: ours-sqlite, ours-pg, ours-pg-local, ceiling, ws, socketio"
            ),
        })
    }

    pub fn protocol(self) -> Protocol {
        match self {
            Kind::OursSqlite | Kind::OursPostgres | Kind::OursPostgresLocal | Kind::Ceiling => {
                Protocol::Chat
            }
            Kind::NodeWs => Protocol::Plain,
            Kind::SocketIo => Protocol::SocketIo,
        }
    }
}

/// A running process of a system.
struct Process {
    name: String,
    child: Child,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A started system: its entry points (one per node that clients connect
/// to) and the processes whose CPU and memory count as the server's.
pub struct System {
    pub kind: Kind,
    /// Where clients connect, one per node (gateway).
    pub nodes: Vec<SocketAddr>,
    /// Our REST api, for accounts and rooms.
    pub api: Option<SocketAddr>,
    measured: Vec<Process>,
    helpers: Vec<Process>,
    /// The PostgreSQL database it stores in, whose backends' CPU counts
    /// apart (`Cpu::database`).
    database: Option<String>,
    dir: PathBuf,
}

/// CPU seconds (user + system) a system has used: its own processes, and
/// the PostgreSQL backends serving its database (ours on PostgreSQL;
/// SQLite runs inside `chat`, the peers store nothing). Redis is shared by
/// every system on the machine and is not counted (0.03–0.05 CPU-s per
/// second at 10,000 sends/s, sampled from `/proc`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Cpu {
    pub server: f64,
    /// `None` for a system without a database server of its own.
    pub database: Option<f64>,
    /// This generator's own seconds: not the system's cost, but a step
    /// where it is near a whole core measured the generator, not the
    /// server.
    pub generator: f64,
}

impl Cpu {
    pub fn total(self) -> f64 {
        self.server + self.database.unwrap_or(0.0)
    }

    /// What was used since `before`. A backend that exits in between takes
    /// its seconds with it (the pool keeps its connections, so rarely):
    /// never below zero.
    pub fn since(self, before: Cpu) -> Cpu {
        Cpu {
            server: (self.server - before.server).max(0.0),
            database: self
                .database
                .map(|now| (now - before.database.unwrap_or(0.0)).max(0.0)),
            generator: (self.generator - before.generator).max(0.0),
        }
    }
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
    pub bin_dir: &'a Path,
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
                let mut command = Command::new(options.bin_dir.join("chat"));
                command
                    .env("CHAT_ADDR", addr.to_string())
                    .env("CHAT_DATA_DIR", system.dir.join("data"))
                    .env("CHAT_WEB_DIR", options.repo.join("web-client"))
                    .envs(our_limits());
                if kind == Kind::OursPostgresLocal {
                    command.env("DATABASE_URL", system.create_database(options.tag).await?);
                }
                let process = system.spawn("chat", &mut command, options.cpus)?;
                system.measured.push(process);
                system.wait_ready(addr, Some("/readyz")).await?;
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
                    let mut command = Command::new("node");
                    command
                        .arg(options.repo.join("bench/peers").join(script))
                        .args(["--port", &addr.port().to_string()]);
                    if kind == Kind::SocketIo && options.nodes > 1 {
                        command.args(["--redis", &redis_url(), "--redis-prefix", options.tag]);
                    }
                    let process = system.spawn(
                        &format!("{}-{i}", kind_slug(kind)),
                        &mut command,
                        options.cpus,
                    )?;
                    system.measured.push(process);
                    system.wait_ready(addr, None).await?;
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
        let api_process = self.spawn(
            "chat-api",
            Command::new(options.bin_dir.join("chat-api"))
                .env("CHAT_API_ADDR", api.to_string())
                .env("CHAT_DATA_DIR", self.dir.join("api"))
                .env("DATABASE_URL", &database_url)
                .env("REDIS_URL", redis_url())
                .env("CHAT_BUS_PREFIX", options.tag)
                .envs(our_limits()),
            None,
        )?;
        self.helpers.push(api_process);
        self.wait_ready(api, Some("/readyz")).await?;
        self.api = Some(api);
        for i in 0..options.nodes {
            let addr = free_addr()?;
            let process = self.spawn(
                &format!("chat-gateway-{i}"),
                Command::new(options.bin_dir.join("chat-gateway"))
                    .env("CHAT_GATEWAY_ADDR", addr.to_string())
                    .env("CHAT_DATA_DIR", self.dir.join(format!("gateway-{i}")))
                    .env("CHAT_JWT_PUBLIC_KEY", self.dir.join("api/jwt-public.pem"))
                    .env("DATABASE_URL", &database_url)
                    .env("REDIS_URL", redis_url())
                    .env("CHAT_BUS_PREFIX", options.tag)
                    .envs(our_limits()),
                options.cpus,
            )?;
            self.measured.push(process);
            self.wait_ready(addr, Some("/readyz")).await?;
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
            let mut command = Command::new(options.bin_dir.join("chat-bench"));
            command.args(["ceiling", "--addr", &addr.to_string()]);
            if options.nodes == 2 {
                let role = if i == 0 {
                    "--link-listen"
                } else {
                    "--link-connect"
                };
                command.args([role, &link]);
            }
            let process = self.spawn(&format!("ceiling-{i}"), &mut command, options.cpus)?;
            self.measured.push(process);
            self.wait_ready(addr, None).await?;
            self.nodes.push(addr);
        }
        Ok(())
    }

    fn spawn(&self, name: &str, command: &mut Command, cpus: Option<&str>) -> Result<Process> {
        let log = std::fs::File::create(self.dir.join(format!("{name}.log")))?;
        let mut command = match cpus {
            Some(cpus) => {
                let mut pinned = Command::new("taskset");
                pinned
                    .args(["-c", cpus])
                    .arg(command.get_program())
                    .args(command.get_args())
                    .envs(command.get_envs().filter_map(|(k, v)| Some((k, v?))));
                pinned
            }
            None => std::mem::replace(command, Command::new("true")),
        };
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        Ok(Process {
            name: name.to_owned(),
            child,
        })
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
                .map(|p| cpu_seconds(p.child.id()))
                .sum(),
            database: self.database.as_deref().map(backends_cpu_seconds),
            generator: cpu_seconds(std::process::id()),
        }
    }

    /// Resident memory of the measured processes now, summed, in KiB.
    pub fn rss_kib(&self) -> u64 {
        self.measured
            .iter()
            .map(|p| status_kib(p.child.id(), "VmRSS:"))
            .sum()
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
        self.measured
            .iter()
            .map(|p| status_kib(p.child.id(), "VmHWM:"))
            .sum()
    }

    /// Waits until `addr` accepts connections (`path`: `None`) or answers
    /// `GET path` with a success, failing at once if a process exits (a
    /// peer whose modules are missing, a server refusing its config).
    async fn wait_ready(&mut self, addr: SocketAddr, path: Option<&str>) -> Result<()> {
        let http = reqwest::Client::new();
        let started = Instant::now();
        loop {
            self.check_alive()?;
            let ready = match path {
                None => tokio::net::TcpStream::connect(addr).await.is_ok(),
                Some(path) => http
                    .get(format!("http://{addr}{path}"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success()),
            };
            if ready {
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(60) {
                bail!("{addr} not ready after 60 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
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
            if let Some(status) = p.child.try_wait()? {
                // The directory goes with the system: quote the log's end.
                let log = std::fs::read_to_string(self.dir.join(format!("{}.log", p.name)))
                    .unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(8).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                bail!(
                    "{} exited ({status}); its log ends:\n{}",
                    p.name,
                    tail.join("\n")
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

fn kind_slug(kind: Kind) -> &'static str {
    match kind {
        Kind::OursSqlite => "sqlite",
        Kind::OursPostgres => "pg",
        Kind::OursPostgresLocal => "pg-local",
        Kind::Ceiling => "ceiling",
        Kind::NodeWs => "ws",
        Kind::SocketIo => "socketio",
    }
}

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A loopback address with a port free a moment ago, for a server to bind.
pub fn free_addr() -> Result<SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// CPU seconds of the PostgreSQL backends connected to `database`: each
/// names its database in its title (`postgres: <user> <database> <client>
/// <state>`).
pub fn backends_cpu_seconds(database: &str) -> f64 {
    let needle = format!(" {database} ");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|title| {
                let title = String::from_utf8_lossy(&title);
                title.starts_with("postgres: ") && title.contains(&needle)
            })
        })
        .map(cpu_seconds)
        .sum()
}

/// utime + stime of a process, in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the command: state is field 3, utime 14 and stime 15 (1-based).
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum();
    ticks as f64 / clock_ticks_per_second()
}

fn clock_ticks_per_second() -> f64 {
    // sysconf(_SC_CLK_TCK) is 100 on every Linux this runs on.
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .map_or(100.0, |t| t as f64)
}

fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}
