//! `chat-api` configuration, read once from `CHAT_*` environment variables
//! (plus `DATABASE_URL`). Names and defaults are listed in the README.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use chat_shared::config::LogFormat;
use chat_shared::limits::Budgets;
use serde::Deserialize;

/// Everything `chat-api` can be told.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ApiConfig {
    /// `CHAT_API_ADDR`: where to listen.
    pub api_addr: SocketAddr,
    /// `CHAT_DATA_DIR`: the SQLite file and generated keys.
    pub data_dir: PathBuf,
    /// `DATABASE_URL` (not prefixed): filled in by [`ApiConfig::from_env`].
    #[serde(skip)]
    pub database_url: String,
    /// `REDIS_URL` (not prefixed): the bus to the gateways; `None` means
    /// in-process (only a gateway in this process hears the api).
    #[serde(skip)]
    pub redis_url: Option<String>,
    /// `CHAT_BUS_PREFIX`: namespace of every Redis channel.
    pub bus_prefix: String,
    /// `CHAT_DB_MAX_CONNECTIONS`: database pool size.
    pub db_max_connections: u32,
    /// `CHAT_JWT_PRIVATE_KEY`: PEM file of the Ed25519 signing key. With
    /// neither key set, a pair is generated into the data dir.
    pub jwt_private_key: Option<PathBuf>,
    /// `CHAT_JWT_PUBLIC_KEY`: PEM file of the matching public key.
    pub jwt_public_key: Option<PathBuf>,
    /// `CHAT_JWT_ISSUER`: the `iss` claim.
    pub jwt_issuer: String,
    /// `CHAT_JWT_AUDIENCE`: the `aud` claim.
    pub jwt_audience: String,
    /// `CHAT_ACCESS_TOKEN_TTL`: access token lifetime (e.g. `15m`).
    #[serde(with = "humantime_serde")]
    pub access_token_ttl: Duration,
    /// `CHAT_REFRESH_TOKEN_TTL`: refresh token lifetime (e.g. `30d`).
    #[serde(with = "humantime_serde")]
    pub refresh_token_ttl: Duration,
    /// `CHAT_AUTH_RATE_PER_MINUTE`: register/login/refresh attempts allowed
    /// per client address per minute.
    pub auth_rate_per_minute: u32,
    /// `CHAT_AUTH_RATE_BURST`: how many of those may come at once.
    pub auth_rate_burst: u32,
    /// `CHAT_TRUST_FORWARDED_FOR`: take the client address from the last
    /// `X-Forwarded-For` entry (only behind a proxy you run).
    pub trust_forwarded_for: bool,
    /// `CHAT_MAX_CONCURRENT_HASHES`: password hashes computed at once
    /// (each takes ~19 MiB and a core for tens of milliseconds).
    pub max_concurrent_hashes: usize,
    /// `CHAT_MAX_WAITING_HASHES`: logins and registrations queued for a
    /// hashing slot; more get 503 with `Retry-After` at once.
    pub max_waiting_hashes: usize,
    /// `CHAT_SEND_RATE_PER_SECOND`: sustained sends per user, REST and
    /// WebSocket together in `chat` (per process; see `chat_shared::limits`).
    pub send_rate_per_second: u32,
    /// `CHAT_SEND_BURST`: sends a user may make at once.
    pub send_burst: u32,
    /// `CHAT_ACTION_RATE_PER_MINUTE`: invites, room creations and DM opens
    /// per user per minute, each a budget of its own.
    pub action_rate_per_minute: u32,
    /// `CHAT_ACTION_BURST`: how many of each at once.
    pub action_burst: u32,
    /// `CHAT_READ_RATE_PER_SECOND`: read markers per user per second.
    pub read_rate_per_second: u32,
    /// `CHAT_READ_BURST`: read markers a user may set at once.
    pub read_burst: u32,
    /// `CHAT_MAX_REQUEST_BYTES`: largest request body accepted.
    pub max_request_bytes: usize,
    /// `CHAT_MAX_BODY_CHARS`: longest message text, in characters.
    pub max_body_chars: usize,
    /// `CHAT_HEADER_READ_TIMEOUT`: how long a connection has to send a
    /// whole request head (the first, or the next on a kept-alive one)
    /// before it is closed.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// `CHAT_MAX_CONNECTIONS_PER_ADDRESS`: connections open at once from
    /// one client address, WebSockets included (0: no cap; set 0 behind a
    /// proxy, where every connection comes from the proxy, and cap there).
    pub max_connections_per_address: usize,
    /// `CHAT_SHUTDOWN_GRACE`: how long in-flight requests get on shutdown.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// `CHAT_LOG`: log filter (`EnvFilter` syntax).
    pub log: String,
    /// `CHAT_LOG_FORMAT`: `text` or `json`.
    pub log_format: LogFormat,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            api_addr: SocketAddr::from(([127, 0, 0, 1], 8081)),
            data_dir: PathBuf::from("data"),
            database_url: String::new(),
            redis_url: None,
            bus_prefix: "chat".into(),
            db_max_connections: 10,
            jwt_private_key: None,
            jwt_public_key: None,
            jwt_issuer: "chat".into(),
            jwt_audience: "chat".into(),
            access_token_ttl: Duration::from_secs(15 * 60),
            refresh_token_ttl: Duration::from_secs(30 * 24 * 3600),
            auth_rate_per_minute: 20,
            auth_rate_burst: 10,
            trust_forwarded_for: false,
            max_concurrent_hashes: std::thread::available_parallelism().map_or(2, |n| n.get()),
            max_waiting_hashes: 64,
            send_rate_per_second: Budgets::default().send_per_second,
            send_burst: Budgets::default().send_burst,
            action_rate_per_minute: Budgets::default().action_per_minute,
            action_burst: Budgets::default().action_burst,
            read_rate_per_second: Budgets::default().read_per_second,
            read_burst: Budgets::default().read_burst,
            max_request_bytes: 64 * 1024,
            max_body_chars: 4000,
            shutdown_grace: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            max_connections_per_address: 256,
            log: "info".into(),
            log_format: LogFormat::Text,
        }
    }
}

impl ApiConfig {
    /// The sizes of the per-user budgets.
    pub fn budgets(&self) -> Budgets {
        Budgets {
            send_per_second: self.send_rate_per_second,
            send_burst: self.send_burst,
            action_per_minute: self.action_rate_per_minute,
            action_burst: self.action_burst,
            read_per_second: self.read_rate_per_second,
            read_burst: self.read_burst,
        }
    }

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
        if self.auth_rate_per_minute == 0 || self.auth_rate_burst == 0 {
            return fail("CHAT_AUTH_RATE_PER_MINUTE and CHAT_AUTH_RATE_BURST must be at least 1");
        }
        if [
            self.send_rate_per_second,
            self.send_burst,
            self.action_rate_per_minute,
            self.action_burst,
            self.read_rate_per_second,
            self.read_burst,
        ]
        .contains(&0)
        {
            return fail("CHAT_SEND_RATE_PER_SECOND, CHAT_SEND_BURST, CHAT_ACTION_RATE_PER_MINUTE, CHAT_ACTION_BURST, CHAT_READ_RATE_PER_SECOND and CHAT_READ_BURST must be at least 1");
        }
        if self.max_concurrent_hashes == 0 {
            return fail("CHAT_MAX_CONCURRENT_HASHES must be at least 1");
        }
        if self.db_max_connections == 0 {
            return fail("CHAT_DB_MAX_CONNECTIONS must be at least 1");
        }
        if self.header_read_timeout < Duration::from_millis(100) {
            return fail("CHAT_HEADER_READ_TIMEOUT must be at least 100ms");
        }
        if self.access_token_ttl < Duration::from_secs(10) {
            return fail("CHAT_ACCESS_TOKEN_TTL must be at least 10s");
        }
        if self.jwt_private_key.is_some() != self.jwt_public_key.is_some() {
            return fail("CHAT_JWT_PRIVATE_KEY and CHAT_JWT_PUBLIC_KEY must be set together");
        }
        Ok(())
    }
}
