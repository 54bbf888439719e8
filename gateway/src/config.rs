//! `chat-gateway` configuration, read once from `CHAT_*` environment
//! variables (plus `DATABASE_URL` and `REDIS_URL`). Names and defaults are
//! listed in the README.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use chat_shared::config::LogFormat;
use chat_shared::limits::Budgets;

use crate::origins::{Allowed, Origin};
use serde::Deserialize;

/// Everything `chat-gateway` can be told.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct GatewayConfig {
    /// `CHAT_GATEWAY_ADDR`: where to listen.
    pub gateway_addr: SocketAddr,
    /// `CHAT_DATA_DIR`: where the default SQLite file and keys live.
    pub data_dir: PathBuf,
    /// `DATABASE_URL` (not prefixed): filled in by [`GatewayConfig::from_env`].
    #[serde(skip)]
    pub database_url: String,
    /// `REDIS_URL` (not prefixed): the bus; `None` means in-process (one
    /// gateway only).
    #[serde(skip)]
    pub redis_url: Option<String>,
    /// `CHAT_BUS_PREFIX`: namespace of every Redis channel.
    pub bus_prefix: String,
    /// `CHAT_DB_MAX_CONNECTIONS`: database pool size.
    pub db_max_connections: u32,
    /// `CHAT_JWT_PUBLIC_KEY`: PEM file of the key that verifies access
    /// tokens; defaults to `jwt-public.pem` in the data dir.
    pub jwt_public_key: Option<PathBuf>,
    /// `CHAT_JWT_ISSUER`: the required `iss`.
    pub jwt_issuer: String,
    /// `CHAT_JWT_AUDIENCE`: the required `aud`.
    pub jwt_audience: String,
    /// `CHAT_ALLOWED_ORIGINS`: comma-separated origins allowed to open a
    /// WebSocket besides the public origin (`*` for any). Clients that send
    /// no `Origin` (non-browsers) are not subject to it.
    pub allowed_origins: String,
    /// `CHAT_PUBLIC_ORIGIN`: the origin browsers load the web client from
    /// (`https://chat.example.com`); unset, the address this listens on
    /// (with `localhost` when that is loopback or a wildcard).
    pub public_origin: Option<String>,
    /// The address actually bound, once known (port 0 resolved); what the
    /// public origin defaults to. Set by whoever binds.
    #[serde(skip)]
    pub bound: Option<SocketAddr>,
    /// `CHAT_HEARTBEAT_INTERVAL`: how often the server pings; a connection
    /// silent for two intervals is closed.
    #[serde(with = "humantime_serde")]
    pub heartbeat_interval: Duration,
    /// `CHAT_SYNC_GRACE`: how long after `hello` room events wait for the
    /// client's first frame (its `sync`, when resuming), so the replay comes
    /// first; a client that says nothing gets live events after it.
    #[serde(with = "humantime_serde")]
    pub sync_grace: Duration,
    /// `CHAT_MAX_MESSAGE_BYTES`: largest WebSocket message (after
    /// reassembling fragments).
    pub max_message_bytes: usize,
    /// `CHAT_MAX_BODY_CHARS`: longest message text, in characters.
    pub max_body_chars: usize,
    /// `CHAT_SEND_RATE_PER_SECOND`: sustained sends per user (per gateway).
    pub send_rate_per_second: u32,
    /// `CHAT_SEND_BURST`: sends a user may make at once.
    pub send_burst: u32,
    /// `CHAT_READ_RATE_PER_SECOND`: `read` frames per user per second (per
    /// gateway) before the rest are dropped.
    pub read_rate_per_second: u32,
    /// `CHAT_READ_BURST`: `read` frames a user may send at once.
    pub read_burst: u32,
    /// `CHAT_OUTBOUND_QUEUE`: frames queued for one connection before it
    /// counts as a slow consumer and is closed (1013).
    pub outbound_queue: usize,
    /// `CHAT_MAX_CONNECTIONS`: connections this gateway accepts at once.
    pub max_connections: usize,
    /// `CHAT_GAP_WAIT`: how long an out-of-order event waits for the missing
    /// one before the store is read.
    #[serde(with = "humantime_serde")]
    pub gap_wait: Duration,
    /// `CHAT_FANOUT_INTERVAL`: the least time between two fan-outs of one
    /// room. A busy room's events are gathered for up to this long and
    /// written to each connection together (one write, not one per event);
    /// an event that finds its room quiet for an interval goes out at once.
    /// `0s` writes every event on its own.
    #[serde(with = "humantime_serde")]
    pub fanout_interval: Duration,
    /// `CHAT_HEAD_CHECK_INTERVAL`: how often each room's newest seq is
    /// compared with the store, to catch a lost last event.
    #[serde(with = "humantime_serde")]
    pub head_check_interval: Duration,
    /// `CHAT_HEADER_READ_TIMEOUT`: how long a connection has to send a
    /// whole request head (the first, or the next on a kept-alive one)
    /// before it is closed.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// `CHAT_MAX_CONNECTIONS_PER_ADDRESS`: connections open at once from
    /// one client address, WebSockets included (0: no cap; set 0 behind a
    /// proxy, where every connection comes from the proxy, and cap there).
    pub max_connections_per_address: usize,
    /// `CHAT_SHUTDOWN_GRACE`: how long sockets get to close on SIGTERM.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// `CHAT_LOG`: log filter (`EnvFilter` syntax).
    pub log: String,
    /// `CHAT_LOG_FORMAT`: `text` or `json`.
    pub log_format: LogFormat,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            gateway_addr: SocketAddr::from(([127, 0, 0, 1], 8082)),
            data_dir: PathBuf::from("data"),
            database_url: String::new(),
            redis_url: None,
            bus_prefix: "chat".into(),
            db_max_connections: 10,
            jwt_public_key: None,
            jwt_issuer: "chat".into(),
            jwt_audience: "chat".into(),
            allowed_origins: String::new(),
            public_origin: None,
            bound: None,
            heartbeat_interval: Duration::from_secs(20),
            sync_grace: Duration::from_secs(1),
            max_message_bytes: 64 * 1024,
            max_body_chars: 4000,
            send_rate_per_second: Budgets::default().send_per_second,
            send_burst: Budgets::default().send_burst,
            read_rate_per_second: Budgets::default().read_per_second,
            read_burst: Budgets::default().read_burst,
            outbound_queue: 1024,
            max_connections: 100_000,
            gap_wait: Duration::from_millis(150),
            fanout_interval: Duration::from_millis(10),
            head_check_interval: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            max_connections_per_address: 256,
            log: "info".into(),
            log_format: LogFormat::Text,
        }
    }
}

impl GatewayConfig {
    /// Reads the environment; the error names the variable at fault.
    pub fn from_env() -> chat_shared::Result<Self> {
        let mut config: Self = chat_shared::config::from_env()?;
        config.database_url = chat_shared::config::database_url(&config.data_dir);
        config.redis_url = chat_shared::config::redis_url();
        config.validate()?;
        Ok(config)
    }

    /// Rejects values that parse but cannot work.
    pub fn validate(&self) -> chat_shared::Result<()> {
        let fail = |msg: &str| Err(chat_shared::Error::Config(msg.to_owned()));
        if self.heartbeat_interval < Duration::from_millis(100) {
            return fail("CHAT_HEARTBEAT_INTERVAL must be at least 100ms");
        }
        if self.max_message_bytes < 1024 {
            return fail("CHAT_MAX_MESSAGE_BYTES must be at least 1024");
        }
        if [
            self.send_rate_per_second,
            self.send_burst,
            self.read_rate_per_second,
            self.read_burst,
        ]
        .contains(&0)
        {
            return fail("CHAT_SEND_RATE_PER_SECOND, CHAT_SEND_BURST, CHAT_READ_RATE_PER_SECOND and CHAT_READ_BURST must be at least 1");
        }
        if self.outbound_queue < 16 {
            return fail("CHAT_OUTBOUND_QUEUE must be at least 16");
        }
        if self.max_connections == 0 || self.db_max_connections == 0 {
            return fail("CHAT_MAX_CONNECTIONS and CHAT_DB_MAX_CONNECTIONS must be at least 1");
        }
        if self.header_read_timeout < Duration::from_millis(100) {
            return fail("CHAT_HEADER_READ_TIMEOUT must be at least 100ms");
        }
        self.origins()?;
        if self.fanout_interval > Duration::from_secs(1) {
            return fail("CHAT_FANOUT_INTERVAL must be at most 1s");
        }
        Ok(())
    }

    /// The sizes of the per-user budgets (a gateway only sends and marks:
    /// the others are the api's).
    pub fn budgets(&self) -> Budgets {
        Budgets {
            send_per_second: self.send_rate_per_second,
            send_burst: self.send_burst,
            read_per_second: self.read_rate_per_second,
            read_burst: self.read_burst,
            ..Budgets::default()
        }
    }

    /// The origins allowed to connect: `CHAT_ALLOWED_ORIGINS` and the public
    /// origin; an error names the value that is no origin.
    pub fn origins(&self) -> chat_shared::Result<Allowed> {
        let listed: Vec<&str> = self
            .allowed_origins
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .collect();
        if listed.contains(&"*") {
            return Ok(Allowed::Any);
        }
        let parse = |variable: &str, text: &str| {
            Origin::parse(text).ok_or_else(|| {
                chat_shared::Error::Config(format!(
                    "{variable}: {text:?} is not an origin (scheme://host[:port])"
                ))
            })
        };
        let mut origins = listed
            .into_iter()
            .map(|o| parse("CHAT_ALLOWED_ORIGINS", o))
            .collect::<chat_shared::Result<Vec<_>>>()?;
        match &self.public_origin {
            Some(public) => origins.push(parse("CHAT_PUBLIC_ORIGIN", public)?),
            None => origins.extend(Origin::of_listener(self.bound.unwrap_or(self.gateway_addr))),
        }
        Ok(Allowed::These(origins))
    }
}
