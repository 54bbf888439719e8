//! The system under test as real processes on loopback, in one of two
//! shapes: the scaled pool (a private PostgreSQL instance and redis-server,
//! so they can be stopped, frozen and restarted without touching anyone
//! else's, a private S3-compatible server (s3s-fs) holding the
//! attachments, one `chat-api`, several `chat-gateway`s, and nginx running
//! `deploy/nginx.conf`), or the embedded default (one `chat` on SQLite).
//! Either way the store's data lives on a disk of its own when the suite
//! runs as root (`storage`), so storage scenarios can fill it or make it
//! read-only. Every process logs to a
//! file in the suite's directory; nothing outlives the suite.
//!
//! Why it is long: starting a process and waiting for it is the test kit's;
//! what is here is what only this suite does (a private PostgreSQL it can
//! stop and freeze, nginx in front, the two shapes, restarts), and it is kept
//! together because the scenarios reach into all of it.

use std::collections::HashMap;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
pub use chat_testkit::launcher::Service;
use chat_testkit::launcher::{binary, free_port, scratch_dir, wait_listening};
use nix::sys::signal::Signal;
use nix::unistd::User;

use crate::proxy::FaultProxy;
use crate::storage::Disk;

/// Settings the gateways run with: short intervals so faults are detected
/// and repaired within a scenario.
pub const HEARTBEAT: Duration = Duration::from_secs(2);

/// The whole deployment.
pub struct Pool {
    pub dir: PathBuf,
    /// Which shape this is (names the suite's rows in the report).
    pub shape: Shape,
    /// The scaled pool's PostgreSQL; `None` in the embedded shape.
    postgres: Option<Service>,
    /// Where the store keeps its data: the private PostgreSQL or SQLite.
    pub database: Database,
    /// The disk the store's data lives on (root only).
    pub storage: Option<Disk>,
    redis: Option<Service>,
    redis_url: Option<String>,
    /// The scaled pool's object storage (s3s-fs), the api's `CHAT_BLOBS=s3`.
    object_storage: Option<Service>,
    /// Between the api and PostgreSQL.
    db_proxy: Option<FaultProxy>,
    /// `chat-api`, or `chat` itself in the embedded shape.
    pub api: Service,
    /// The `chat-gateway`s; none in the embedded shape, where `api` holds
    /// the sockets.
    pub gateways: Vec<Service>,
    nginx: Option<Service>,
    /// nginx's address (or `chat`'s): where clients connect.
    pub entry: SocketAddr,
    /// Between some clients and nginx.
    pub client_proxy: FaultProxy,
    http: reqwest::Client,
}

/// The two deployments the suite runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// PostgreSQL, Redis, `chat-api`, gateways, nginx.
    Scaled,
    /// One `chat` on SQLite with the in-process bus.
    Embedded,
}

/// The store's database, to read straight after a scenario.
#[derive(Debug, Clone)]
pub enum Database {
    /// A PostgreSQL URL, not through any proxy.
    Postgres(String),
    /// The SQLite file.
    Sqlite(PathBuf),
}

/// How big the store's disk is to begin with: room for the suite's
/// traffic many times over, and for PostgreSQL's WAL segments.
const STORAGE_MIB: u64 = 256;

/// Knobs of the pool.
pub struct PoolOptions {
    pub gateways: usize,
    /// `CHAT_OUTBOUND_QUEUE` of the gateways.
    pub outbound_queue: usize,
    /// The nginx config to run (its listen line and upstream servers are
    /// replaced by the pool's).
    pub nginx_conf: PathBuf,
}

impl Pool {
    /// Starts everything and waits until every `/readyz` answers 200.
    pub async fn start(repo: &Path, options: &PoolOptions) -> Result<Self> {
        let (dir, logs) = scratch_dir(&format!("chat-faults-{}", std::process::id()))?;

        let (postgres, postgres_url, storage) = start_postgres(&dir, &logs).await?;
        let redis_port = free_port()?;
        let mut redis = service(
            "redis",
            None,
            vec![
                "redis-server".into(),
                "--port".into(),
                redis_port.to_string(),
                "--bind".into(),
                "127.0.0.1".into(),
                "--save".into(),
                String::new(),
                "--appendonly".into(),
                "no".into(),
            ],
            &logs,
        );
        redis.start()?;
        let redis_url = format!("redis://127.0.0.1:{redis_port}");
        wait_listening(&format!("127.0.0.1:{redis_port}"), Duration::from_secs(10)).await?;

        let mut object_storage = object_storage_service(&dir, &logs)?;
        object_storage.start()?;
        let s3_endpoint = object_storage.addr.context("s3s-fs address")?;
        wait_listening(&s3_endpoint.to_string(), Duration::from_secs(10)).await?;

        let pg_addr: SocketAddr = postgres_url
            .trim_start_matches("postgres://postgres@")
            .split('/')
            .next()
            .context("postgres address")?
            .parse()?;
        let db_proxy = FaultProxy::start(pg_addr).await?;
        let api_database_url = format!("postgres://postgres@{}/chat", db_proxy.addr());

        let api_addr: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
        let api_dir = dir.join("api");
        let mut api = service("chat-api", Some(api_addr), vec![bin("chat-api")?], &logs)
            .env("CHAT_API_ADDR", api_addr.to_string())
            .env("CHAT_DATA_DIR", api_dir.display().to_string())
            .env("DATABASE_URL", api_database_url)
            .env("REDIS_URL", &redis_url)
            .env("CHAT_BUS_PREFIX", "faults")
            .env("CHAT_BLOBS", "s3")
            .env("CHAT_S3_ENDPOINT", format!("http://{s3_endpoint}"))
            .env("CHAT_S3_BUCKET", S3_BUCKET)
            .env("CHAT_S3_REGION", "us-east-1")
            .env("CHAT_S3_ACCESS_KEY_ID", S3_KEY.0)
            .env("CHAT_S3_SECRET_ACCESS_KEY", S3_KEY.1)
            .env("CHAT_S3_PATH_STYLE", "true")
            // Behind nginx every connection comes from one address.
            .env("CHAT_MAX_CONNECTIONS_PER_ADDRESS", "0")
            .env("CHAT_AUTH_RATE_PER_MINUTE", "100000")
            .env("CHAT_AUTH_RATE_BURST", "10000")
            // One account creates every room of the suite.
            .env("CHAT_ACTION_RATE_PER_MINUTE", "100000")
            .env("CHAT_ACTION_BURST", "10000")
            .env("CHAT_ACCESS_TOKEN_TTL", "2h")
            .env("CHAT_REQUEST_GRACE", "5s")
            .env("CHAT_LOG", "info");
        api.start()?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()?;
        api.wait_ready(&http, Duration::from_secs(60)).await?;

        let public_key = api_dir.join("jwt-public.pem");
        let mut gateways = Vec::new();
        for i in 0..options.gateways {
            let addr: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
            let mut gateway = service(
                &format!("chat-gateway-{}", i + 1),
                Some(addr),
                vec![bin("chat-gateway")?],
                &logs,
            )
            .env("CHAT_GATEWAY_ADDR", addr.to_string())
            .env(
                "CHAT_DATA_DIR",
                dir.join(format!("gateway-{i}")).display().to_string(),
            )
            .env("DATABASE_URL", &postgres_url)
            .env("REDIS_URL", &redis_url)
            .env("CHAT_BUS_PREFIX", "faults")
            .env("CHAT_JWT_PUBLIC_KEY", public_key.display().to_string())
            .env("CHAT_MAX_CONNECTIONS_PER_ADDRESS", "0")
            .env(
                "CHAT_HEARTBEAT_INTERVAL",
                format!("{}s", HEARTBEAT.as_secs()),
            )
            .env("CHAT_OUTBOUND_QUEUE", options.outbound_queue.to_string())
            .env("CHAT_WEBSOCKET_GRACE", "5s")
            .env("CHAT_LOG", "info");
            gateway.start()?;
            gateways.push(gateway);
        }
        for gateway in &mut gateways {
            gateway.wait_ready(&http, Duration::from_secs(30)).await?;
        }

        let entry: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
        let prefix = dir.join("nginx");
        let conf = render_nginx_conf(
            &fs::read_to_string(&options.nginx_conf)
                .with_context(|| format!("reading {}", options.nginx_conf.display()))?,
            entry,
            api_addr,
            &gateways.iter().filter_map(|g| g.addr).collect::<Vec<_>>(),
        )?;
        fs::create_dir_all(prefix.join("logs"))?;
        fs::create_dir_all(prefix.join("tmp"))?;
        std::os::unix::fs::symlink(repo.join("web-client"), prefix.join("web-client"))?;
        fs::write(prefix.join("nginx.conf"), conf)?;
        let mut nginx = service(
            "nginx",
            None,
            vec![
                nginx_binary(),
                "-p".into(),
                format!("{}/", prefix.display()),
                "-c".into(),
                prefix.join("nginx.conf").display().to_string(),
                "-e".into(),
                "stderr".into(),
                "-g".into(),
                "daemon off;".into(),
            ],
            &logs,
        );
        nginx.start()?;
        wait_listening(&entry.to_string(), Duration::from_secs(10)).await?;
        let client_proxy = FaultProxy::start(entry).await?;

        Ok(Self {
            dir,
            shape: Shape::Scaled,
            postgres: Some(postgres),
            database: Database::Postgres(postgres_url),
            storage,
            redis: Some(redis),
            redis_url: Some(redis_url),
            object_storage: Some(object_storage),
            db_proxy: Some(db_proxy),
            api,
            gateways,
            nginx: Some(nginx),
            entry,
            client_proxy,
            http,
        })
    }

    /// Starts the embedded default, `chat` on SQLite with its data dir on
    /// a disk of its own (as root), and waits for its `/readyz`.
    pub async fn start_embedded() -> Result<Self> {
        let (dir, logs) = scratch_dir(&format!("chat-faults-{}-embedded", std::process::id()))?;
        let data = dir.join("data");
        fs::create_dir_all(&data)?;
        let storage = if nix::unistd::geteuid().is_root() {
            Some(Disk::mount(&data, STORAGE_MIB)?)
        } else {
            None
        };
        let entry: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
        let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
        let mut chat = service("chat", Some(entry), vec![bin("chat")?], &logs)
            .env("CHAT_ADDR", entry.to_string())
            .metrics_at(metrics)
            .env("CHAT_METRICS_ADDR", metrics.to_string())
            .env("CHAT_DATA_DIR", data.display().to_string())
            // Every client comes through the fault proxy, from one address.
            .env("CHAT_MAX_CONNECTIONS_PER_ADDRESS", "0")
            .env("CHAT_AUTH_RATE_PER_MINUTE", "100000")
            .env("CHAT_AUTH_RATE_BURST", "10000")
            .env("CHAT_ACTION_RATE_PER_MINUTE", "100000")
            .env("CHAT_ACTION_BURST", "10000")
            .env("CHAT_ACCESS_TOKEN_TTL", "2h")
            .env(
                "CHAT_HEARTBEAT_INTERVAL",
                format!("{}s", HEARTBEAT.as_secs()),
            )
            .env("CHAT_OUTBOUND_QUEUE", "256")
            .env("CHAT_WEBSOCKET_GRACE", "5s")
            .env("CHAT_REQUEST_GRACE", "5s")
            .env("CHAT_LOG", "info");
        chat.start()?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()?;
        chat.wait_ready(&http, Duration::from_secs(60)).await?;
        let client_proxy = FaultProxy::start(entry).await?;
        Ok(Self {
            dir,
            shape: Shape::Embedded,
            postgres: None,
            database: Database::Sqlite(data.join("chat.db")),
            storage,
            redis: None,
            redis_url: None,
            object_storage: None,
            db_proxy: None,
            api: chat,
            gateways: Vec::new(),
            nginx: None,
            entry,
            client_proxy,
            http,
        })
    }

    /// The private PostgreSQL (scaled pool only).
    pub fn postgres(&mut self) -> Result<&mut Service> {
        self.postgres
            .as_mut()
            .context("this scenario needs the scaled pool's PostgreSQL")
    }

    /// The Redis URL (scaled pool only).
    pub fn redis_url(&self) -> Result<&str> {
        self.redis_url
            .as_deref()
            .context("this scenario needs the scaled pool's Redis")
    }

    /// Where the object storage listens (scaled pool only).
    pub fn object_storage_addr(&self) -> Result<SocketAddr> {
        self.object_storage
            .as_ref()
            .and_then(|s| s.addr)
            .context("this scenario needs the scaled pool's object storage")
    }

    /// Starts the object storage again after a scenario stopped it, and
    /// waits until it accepts connections (it has no `/readyz`).
    pub async fn restart_object_storage(&mut self) -> Result<()> {
        let addr = self.object_storage_addr()?;
        self.service(Which::ObjectStorage).start()?;
        wait_listening(&addr.to_string(), Duration::from_secs(10)).await
    }

    /// The proxy between the api and PostgreSQL (scaled pool only).
    pub fn db_proxy(&self) -> Result<&FaultProxy> {
        self.db_proxy
            .as_ref()
            .context("this scenario needs the scaled pool's database proxy")
    }

    /// The processes holding client sockets: the gateways, or `chat`.
    fn socket_holders(&mut self) -> impl Iterator<Item = &mut Service> {
        let api = self.gateways.is_empty().then_some(&mut self.api);
        self.gateways.iter_mut().chain(api)
    }

    /// Every HTTP service (api, gateways) that is running answers
    /// `/readyz` 200 within `within`; the time it took.
    pub async fn wait_all_ready(&mut self, within: Duration) -> Result<Duration> {
        let started = Instant::now();
        let http = self.http.clone();
        self.api.wait_ready(&http, within).await?;
        for gateway in &mut self.gateways {
            if gateway.is_running() {
                gateway
                    .wait_ready(&http, within.saturating_sub(started.elapsed()))
                    .await?;
            }
        }
        Ok(started.elapsed())
    }

    /// Restarts a stopped service and waits for its `/readyz`.
    pub async fn restart(&mut self, which: Which) -> Result<()> {
        let http = self.http.clone();
        let service = self.service(which);
        service.start()?;
        if service.addr.is_some() {
            service.wait_ready(&http, Duration::from_secs(30)).await?;
        }
        Ok(())
    }

    pub fn service(&mut self, which: Which) -> &mut Service {
        match which {
            Which::Api => &mut self.api,
            Which::Gateway(i) => &mut self.gateways[i],
            Which::Redis => self.redis.as_mut().expect("the scaled pool has Redis"),
            Which::Postgres => self
                .postgres
                .as_mut()
                .expect("the scaled pool has PostgreSQL"),
            Which::ObjectStorage => self
                .object_storage
                .as_mut()
                .expect("the scaled pool has object storage"),
        }
    }

    /// Sum over the gateways of a Prometheus series, e.g.
    /// `chat_gateway_connections_closed_total{code="4000"}`: the name plus
    /// label pairs that must all be present.
    pub async fn gateway_metric(&mut self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let mut total = 0.0;
        let http = self.http.clone();
        for gateway in self.socket_holders() {
            let Some(addr) = gateway.metrics else {
                continue;
            };
            if !gateway.is_running() {
                continue;
            }
            let Ok(response) = http.get(format!("http://{addr}/metrics")).send().await else {
                continue;
            };
            let text = response.text().await.unwrap_or_default();
            total += sum_series(&text, name, labels);
        }
        total
    }

    /// The largest resident set among the processes holding sockets, in
    /// KiB.
    pub fn peak_gateway_rss_kib(&mut self) -> u64 {
        self.socket_holders()
            .filter_map(|s| s.rss_kib())
            .max()
            .unwrap_or(0)
    }

    /// Every panic line in any log.
    pub fn panics(&self) -> Vec<String> {
        let mut all = Vec::new();
        for service in [
            Some(&self.api),
            self.nginx.as_ref(),
            self.redis.as_ref(),
            self.object_storage.as_ref(),
        ]
        .into_iter()
        .flatten()
        .chain(self.gateways.iter())
        {
            all.extend(
                service
                    .panics()
                    .into_iter()
                    .map(|l| format!("{}: {l}", service.name)),
            );
        }
        all
    }

    /// A superuser connection straight to PostgreSQL (not through the proxy).
    pub async fn postgres_admin(&self) -> Result<sqlx::PgConnection> {
        use sqlx::Connection;
        let Database::Postgres(url) = &self.database else {
            bail!("this scenario needs the scaled pool's PostgreSQL");
        };
        Ok(sqlx::PgConnection::connect(url).await?)
    }
}

impl Drop for Pool {
    /// Stops the pool from the front: nginx, gateways and api before the
    /// services they use.
    fn drop(&mut self) {
        let mut order: Vec<&mut Service> = self.nginx.iter_mut().collect();
        order.extend(self.gateways.iter_mut());
        order.push(&mut self.api);
        for service in order {
            drop(std::mem::replace(
                service,
                Service::new("stopped", "", &self.dir),
            ));
        }
    }
}

/// Names a restartable part of the pool.
#[derive(Debug, Clone, Copy)]
pub enum Which {
    Api,
    Gateway(usize),
    Redis,
    Postgres,
    ObjectStorage,
}

/// A service running `command` (the program, then its arguments), with
/// HTTP at `addr` if it answers it.
fn service(name: &str, addr: Option<SocketAddr>, command: Vec<String>, logs: &Path) -> Service {
    let mut command = command.into_iter();
    let service = Service::new(name, command.next().unwrap_or_default(), logs).args(command);
    match addr {
        Some(addr) => service.at(addr),
        None => service,
    }
}

/// The workspace binary `name`, beside the suite's own.
fn bin(name: &str) -> Result<String> {
    Ok(binary(name)?.display().to_string())
}

fn nginx_binary() -> String {
    ["/usr/sbin/nginx", "/usr/local/sbin/nginx"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("nginx")
        .to_owned()
}

/// `deploy/nginx.conf` with its listen address and upstream servers
/// replaced by the pool's, so the suite runs the shipped directives.
pub fn render_nginx_conf(
    conf: &str,
    listen: SocketAddr,
    api: SocketAddr,
    gateways: &[SocketAddr],
) -> Result<String> {
    let mut out = String::new();
    let mut upstream: Option<&str> = None;
    let mut replaced = HashMap::new();
    let mut listened = false;
    for line in conf.lines() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        if let Some(name) = trimmed.strip_prefix("upstream ") {
            upstream = name.split_whitespace().next().map(|n| match n {
                "chat_api" => "chat_api",
                "chat_gateways" => "chat_gateways",
                _ => "other",
            });
        } else if trimmed.starts_with('}') {
            upstream = None;
        } else if trimmed.starts_with("server ") && upstream.is_some_and(|u| u != "other") {
            let name = upstream.expect("checked");
            if replaced.insert(name, ()).is_none() {
                let addrs: Vec<SocketAddr> = if name == "chat_api" {
                    vec![api]
                } else {
                    gateways.to_vec()
                };
                // Keep the shipped parameters (max_fails …), swap the address.
                let params = trimmed
                    .trim_start_matches("server ")
                    .trim_end_matches(';')
                    .split_whitespace()
                    .skip(1)
                    .collect::<Vec<_>>()
                    .join(" ");
                for addr in addrs {
                    out.push_str(&format!("{indent}server {addr} {params};\n"));
                }
            }
            continue;
        } else if trimmed.starts_with("listen ") && !listened {
            out.push_str(&format!("{indent}listen {listen};\n"));
            listened = true;
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    if replaced.len() != 2 || !listened {
        bail!("deploy/nginx.conf lacks a listen line or the chat_api/chat_gateways upstreams");
    }
    Ok(out)
}

/// Sums every sample of `name` carrying all `labels`.
pub fn sum_series(exposition: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (series_name, series_labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest),
                None => (series, ""),
            };
            let matches = series_name == name
                && labels
                    .iter()
                    .all(|(k, v)| series_labels.contains(&format!("{k}=\"{v}\"")));
            matches.then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

/// The bucket the api keeps attachments in.
const S3_BUCKET: &str = "chat-faults";
/// The object storage's key (id, secret): s3s-fs checks SigV4 with it.
const S3_KEY: (&str, &str) = ("chat-faults", "chat-faults-secret");

/// s3s-fs (the S3-compatible server `scripts/services` installs) on a free
/// port, keeping its objects under the suite's directory: a bucket is a
/// directory of its root, made here since the api never creates one. Not
/// started: the caller starts it (and a scenario restarts it).
fn object_storage_service(dir: &Path, logs: &Path) -> Result<Service> {
    let root = dir.join("s3");
    fs::create_dir_all(root.join(S3_BUCKET))?;
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
    let program = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")))
        .map(|cargo| cargo.join("bin/s3s-fs"))
        .filter(|p| p.exists())
        .map_or_else(|| "s3s-fs".to_owned(), |p| p.display().to_string());
    Ok(service(
        "s3s-fs",
        None,
        vec![
            program,
            "--host".into(),
            addr.ip().to_string(),
            "--port".into(),
            addr.port().to_string(),
            "--access-key".into(),
            S3_KEY.0.into(),
            "--secret-key".into(),
            S3_KEY.1.into(),
            root.display().to_string(),
        ],
        logs,
    )
    .at(addr))
}

/// initdb + postgres on a free port, as the `postgres` user when run as
/// root (PostgreSQL refuses to run as root), with its data directory on a
/// disk of its own when root (in a directory of it: initdb wants an empty
/// one, and a filesystem's root holds `lost+found`).
async fn start_postgres(dir: &Path, logs: &Path) -> Result<(Service, String, Option<Disk>)> {
    let bin_dir = postgres_bin_dir()?;
    let disk = dir.join("pg-disk");
    fs::create_dir_all(&disk)?;
    let storage = if nix::unistd::geteuid().is_root() {
        Some(Disk::mount(&disk, STORAGE_MIB)?)
    } else {
        None
    };
    let data = disk.join("data");
    fs::create_dir_all(&data)?;
    let run_as = if nix::unistd::geteuid().is_root() {
        let user = User::from_name("postgres")?.context("no postgres user to run PostgreSQL as")?;
        nix::unistd::chown(dir, Some(user.uid), Some(user.gid))?;
        nix::unistd::chown(&disk, Some(user.uid), Some(user.gid))?;
        nix::unistd::chown(&data, Some(user.uid), Some(user.gid))?;
        Some(user)
    } else {
        None
    };
    let mut init = Command::new(bin_dir.join("initdb"));
    init.args(["-D", &data.display().to_string()])
        // Synced, as in production: the read-only-disk scenario loses
        // whatever was never flushed, and a data directory initdb left in
        // the page cache would not survive it.
        .args(["-U", "postgres", "-A", "trust", "-E", "UTF8"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(user) = &run_as {
        use std::os::unix::process::CommandExt;
        init.uid(user.uid.as_raw()).gid(user.gid.as_raw());
    }
    let output = init.output().context("running initdb")?;
    if !output.status.success() {
        bail!("initdb failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    let port = free_port()?;
    let mut postgres = service(
        "postgres",
        None,
        vec![
            bin_dir.join("postgres").display().to_string(),
            "-D".into(),
            data.display().to_string(),
            "-p".into(),
            port.to_string(),
            "-c".into(),
            "listen_addresses=127.0.0.1".into(),
            "-c".into(),
            format!("unix_socket_directories={}", data.display()),
            "-c".into(),
            "max_connections=300".into(),
        ],
        logs,
    )
    .run_as(run_as)
    // SIGTERM waits for every client to leave; SIGINT is the fast shutdown.
    .stop_signal(Signal::SIGINT);
    postgres.start()?;
    wait_listening(&format!("127.0.0.1:{port}"), Duration::from_secs(30)).await?;
    let admin = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let started = Instant::now();
    loop {
        use sqlx::{Connection, Executor};
        match sqlx::PgConnection::connect(&admin).await {
            Ok(mut conn) => {
                conn.execute("CREATE DATABASE chat").await?;
                break;
            }
            Err(e) if started.elapsed() > Duration::from_secs(30) => return Err(e.into()),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    Ok((
        postgres,
        format!("postgres://postgres@127.0.0.1:{port}/chat"),
        storage,
    ))
}

/// Where `initdb` and `postgres` live: next to `pg_ctl` on the PATH, or
/// Debian's newest `/usr/lib/postgresql/<version>/bin`.
fn postgres_bin_dir() -> Result<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    for dir in on_path {
        let candidate = dir.join("postgres");
        if candidate.exists() {
            let resolved = fs::canonicalize(&candidate)?;
            return Ok(resolved.parent().context("postgres dir")?.to_owned());
        }
    }
    let mut versions: Vec<PathBuf> = fs::read_dir("/usr/lib/postgresql")
        .context("PostgreSQL is not installed (/usr/lib/postgresql missing)")?
        .filter_map(|e| Some(e.ok()?.path().join("bin")))
        .filter(|p| p.join("postgres").exists())
        .collect();
    versions.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok())
            .unwrap_or(0)
    });
    versions
        .pop()
        .context("no PostgreSQL server binaries under /usr/lib/postgresql")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nginx_conf_gets_the_pools_addresses_and_keeps_its_parameters() {
        let conf = "http {\n    upstream chat_api {\n        server 127.0.0.1:8081;\n    }\n    \
                    upstream chat_gateways {\n        least_conn;\n        server 127.0.0.1:8082 max_fails=0;\n        \
                    server 127.0.0.1:8083 max_fails=0;\n    }\n    server {\n        listen 127.0.0.1:8080;\n    }\n}\n";
        let gateways: Vec<SocketAddr> = vec![
            "127.0.0.1:1".parse().unwrap(),
            "127.0.0.1:2".parse().unwrap(),
            "127.0.0.1:3".parse().unwrap(),
        ];
        let out = render_nginx_conf(
            conf,
            "127.0.0.1:9".parse().unwrap(),
            "127.0.0.1:7".parse().unwrap(),
            &gateways,
        )
        .unwrap();
        assert!(out.contains("listen 127.0.0.1:9;"));
        assert!(out.contains("server 127.0.0.1:7 ;") || out.contains("server 127.0.0.1:7;"));
        for port in 1..=3 {
            assert!(
                out.contains(&format!("server 127.0.0.1:{port} max_fails=0;")),
                "{out}"
            );
        }
        assert!(!out.contains("8082") && !out.contains("8083") && !out.contains("8080"));
        assert!(out.contains("least_conn;"));
        assert!(render_nginx_conf(
            "http {}\n",
            "127.0.0.1:9".parse().unwrap(),
            "127.0.0.1:7".parse().unwrap(),
            &gateways
        )
        .is_err());
    }

    #[test]
    fn series_are_summed_by_name_and_labels() {
        let text = "# TYPE x counter\nx{code=\"4000\",gw=\"a\"} 2\nx{code=\"1013\"} 5\nx{code=\"4000\"} 3\nxy 9\n";
        assert_eq!(sum_series(text, "x", &[("code", "4000")]), 5.0);
        assert_eq!(sum_series(text, "x", &[]), 10.0);
        assert_eq!(sum_series(text, "xy", &[]), 9.0);
    }
}
