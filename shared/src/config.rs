//! Reading configuration from the environment, once per process: `main`
//! takes an [`Env`] snapshot and every part of the binary's configuration is
//! parsed from it (in `chat`, the api's and the gateway's from the same
//! one). [`CommonConfig`] holds the settings every binary shares, so each
//! variable is declared, defaulted and checked in one place. Errors name
//! the variable at fault, so a bad value stops start-up with one line an
//! operator can act on.
//!
//! Why it is long: every shared setting is declared, defaulted and checked
//! here, and nowhere else.

use std::fmt::Debug;
use std::path::PathBuf;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::limits::Budgets;

/// The prefix of every variable of ours but [`UNPREFIXED`].
const PREFIX: &str = "CHAT_";

/// The two URLs, which keep the names the rest of the world gives them.
const UNPREFIXED: [&str; 2] = ["DATABASE_URL", "REDIS_URL"];

/// Variables that were renamed, with the names that replaced them. The old
/// name still sets each new one that is not set itself, so a deployment
/// written for the old name keeps its behaviour after an upgrade; start-up
/// warns (see [`Env::deprecations`]).
const RENAMED: &[(&str, &[&str])] = &[(
    // It meant the api's grace for requests and the gateway's for sockets;
    // `chat`, which is both, gave each phase all of it.
    "CHAT_SHUTDOWN_GRACE",
    &["CHAT_REQUEST_GRACE", "CHAT_WEBSOCKET_GRACE"],
)];

/// Our variables, read once from the environment: the snapshot every part
/// of a binary's configuration is parsed from. It keeps nothing else, and
/// has no `Debug`, so the URLs' passwords cannot reach a log through it.
#[derive(Clone, Default)]
pub struct Env {
    /// Every variable as `(name, value)`, a renamed one also under each
    /// new name it stands in for.
    vars: Vec<(String, String)>,
    /// `(new name, old name)` for each new name set through its old name,
    /// so an error names the variable the operator actually wrote.
    stand_ins: Vec<(&'static str, &'static str)>,
}

impl Env {
    /// Reads the process environment; `main` calls this once.
    pub fn capture() -> Self {
        Self::from_vars(std::env::vars())
    }

    /// An environment of exactly these variables (tests, tools).
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut vars: Vec<(String, String)> = vars
            .into_iter()
            .filter(|(name, _)| name.starts_with(PREFIX) || UNPREFIXED.contains(&name.as_str()))
            .collect();
        let mut stand_ins = Vec::new();
        for (old, new_names) in RENAMED {
            let Some(value) = lookup(&vars, old).map(str::to_owned) else {
                continue;
            };
            for new in *new_names {
                if lookup(&vars, new).is_none() {
                    vars.push(((*new).to_owned(), value.clone()));
                    stand_ins.push((*new, *old));
                }
            }
        }
        Self { vars, stand_ins }
    }

    /// Parses the `CHAT_*` variables into `T`. `T` must give every field a
    /// default (`#[serde(default)]`), which is also what lets us name the
    /// culprit of a failure: envy names the variable only for plain numbers
    /// and booleans (and without its prefix), so each variable is tried on
    /// its own.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T> {
        let ours: Vec<(String, String)> = self
            .vars
            .iter()
            .filter(|(name, _)| name.starts_with(PREFIX))
            .cloned()
            .collect();
        let env = envy::prefixed(PREFIX);
        env.from_iter::<_, T>(ours.clone()).map_err(|err| {
            let message = err.to_string();
            let culprit = ours
                .iter()
                .find(|var| env.from_iter::<_, T>([(*var).clone()]).is_err());
            match culprit {
                Some((name, value)) => {
                    Error::Config(format!("{}={value:?}: {message}", self.written_as(name)))
                }
                None => Error::Config(format!("configuration: {message}")),
            }
        })
    }

    /// The value of one of the [`UNPREFIXED`] variables, if it is set and
    /// not empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        lookup(&self.vars, name).filter(|value| !value.is_empty())
    }

    /// One line for each renamed variable that is set, telling what
    /// replaced it; `main` logs them once logging is up.
    pub fn deprecations(&self) -> Vec<String> {
        RENAMED
            .iter()
            .filter(|(old, _)| lookup(&self.vars, old).is_some())
            .map(|(old, new_names)| {
                format!(
                    "{old} is deprecated: set {} instead (until then it sets each of them that is unset)",
                    new_names.join(" and ")
                )
            })
            .collect()
    }

    /// The name the operator wrote for `name`: its old one if it was set
    /// through that.
    fn written_as<'a>(&self, name: &'a str) -> &'a str {
        self.stand_ins
            .iter()
            .find(|(new, _)| *new == name)
            .map_or(name, |(_, old)| old)
    }
}

fn lookup<'a>(vars: &'a [(String, String)], name: &str) -> Option<&'a str> {
    vars.iter()
        .find(|(n, _)| n == name)
        .map(|(_, value)| value.as_str())
}

/// Fails with a line naming `variable` and its `value` unless `ok`.
pub fn check(ok: bool, variable: &str, value: impl Debug, rule: &str) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!("{variable}={value:?}: {rule}")))
    }
}

/// The settings every binary shares, each from one variable with one
/// meaning. `ApiConfig` and `GatewayConfig` embed it as `common`; `chat`
/// reads it once and hands a copy to each.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct CommonConfig {
    /// `CHAT_DATA_DIR`: the default SQLite file and the key pair.
    pub data_dir: PathBuf,
    /// `DATABASE_URL` (not prefixed): `postgres://…` or `sqlite://…`;
    /// `None` means the SQLite file in the data dir (see
    /// [`CommonConfig::database_url`]).
    #[serde(skip)]
    pub database_url: Option<String>,
    /// `REDIS_URL` (not prefixed): the bus; `None` means in-process (only
    /// this process hears its own events).
    #[serde(skip)]
    pub redis_url: Option<String>,
    /// `CHAT_BUS_PREFIX`: namespace of every Redis channel.
    pub bus_prefix: String,
    /// `CHAT_DB_MAX_CONNECTIONS`: database pool size.
    pub db_max_connections: u32,
    /// `CHAT_JWT_PUBLIC_KEY`: PEM file of the Ed25519 key that verifies
    /// access tokens. Unset, the api generates a pair into the data dir (it
    /// needs `CHAT_JWT_PRIVATE_KEY` with it) and a gateway reads
    /// `jwt-public.pem` there.
    pub jwt_public_key: Option<PathBuf>,
    /// `CHAT_JWT_ISSUER`: the `iss` claim, issued and required.
    pub jwt_issuer: String,
    /// `CHAT_JWT_AUDIENCE`: the `aud` claim, issued and required.
    pub jwt_audience: String,
    /// `CHAT_SEND_RATE_PER_SECOND`: sustained sends per user, per process
    /// (REST and WebSocket share one budget in `chat`).
    pub send_rate_per_second: u32,
    /// `CHAT_SEND_BURST`: sends a user may make at once.
    pub send_burst: u32,
    /// `CHAT_READ_RATE_PER_SECOND`: read markers per user per second
    /// (`read` frames past it are dropped, REST ones refused).
    pub read_rate_per_second: u32,
    /// `CHAT_READ_BURST`: read markers a user may set at once.
    pub read_burst: u32,
    /// `CHAT_CALL_RATE_PER_MINUTE`: call frames (placing, accepting,
    /// declining, hanging up) per user per minute, per process.
    pub call_rate_per_minute: u32,
    /// `CHAT_CALL_BURST`: call frames a user may send at once.
    pub call_burst: u32,
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
    /// `CHAT_LOG`: log filter (`EnvFilter` syntax).
    pub log: String,
    /// `CHAT_LOG_FORMAT`: `text` or `json`.
    pub log_format: LogFormat,
}

impl Default for CommonConfig {
    fn default() -> Self {
        let budgets = Budgets::default();
        Self {
            data_dir: PathBuf::from("data"),
            database_url: None,
            redis_url: None,
            bus_prefix: "chat".into(),
            db_max_connections: 10,
            jwt_public_key: None,
            jwt_issuer: "chat".into(),
            jwt_audience: "chat".into(),
            send_rate_per_second: budgets.send_per_second,
            send_burst: budgets.send_burst,
            read_rate_per_second: budgets.read_per_second,
            read_burst: budgets.read_burst,
            call_rate_per_minute: budgets.call_per_minute,
            call_burst: budgets.call_burst,
            max_body_chars: 4000,
            header_read_timeout: Duration::from_secs(10),
            max_connections_per_address: 256,
            log: "info".into(),
            log_format: LogFormat::Text,
        }
    }
}

impl CommonConfig {
    /// Parses the shared settings from `env` and checks them.
    pub fn from_env(env: &Env) -> Result<Self> {
        let mut config: Self = env.parse()?;
        config.database_url = env.get("DATABASE_URL").map(str::to_owned);
        config.redis_url = env.get("REDIS_URL").map(str::to_owned);
        config.validate()?;
        Ok(config)
    }

    /// Rejects values that parse but cannot work.
    pub fn validate(&self) -> Result<()> {
        let at_least_one = "must be at least 1";
        check(
            self.db_max_connections > 0,
            "CHAT_DB_MAX_CONNECTIONS",
            self.db_max_connections,
            at_least_one,
        )?;
        for (variable, value) in [
            ("CHAT_SEND_RATE_PER_SECOND", self.send_rate_per_second),
            ("CHAT_SEND_BURST", self.send_burst),
            ("CHAT_READ_RATE_PER_SECOND", self.read_rate_per_second),
            ("CHAT_READ_BURST", self.read_burst),
            ("CHAT_CALL_RATE_PER_MINUTE", self.call_rate_per_minute),
            ("CHAT_CALL_BURST", self.call_burst),
        ] {
            check(value > 0, variable, value, at_least_one)?;
        }
        check(
            self.header_read_timeout >= Duration::from_millis(100),
            "CHAT_HEADER_READ_TIMEOUT",
            self.header_read_timeout,
            "must be at least 100ms",
        )
    }

    /// `DATABASE_URL`, or the SQLite file in the data dir.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("chat.db").display()))
    }

    /// The sizes of the send, read and call budgets; the api adds its own for
    /// invites, room creations and DM opens.
    pub fn budgets(&self) -> Budgets {
        Budgets {
            send_per_second: self.send_rate_per_second,
            send_burst: self.send_burst,
            read_per_second: self.read_rate_per_second,
            read_burst: self.read_burst,
            call_per_minute: self.call_rate_per_minute,
            call_burst: self.call_burst,
            ..Budgets::default()
        }
    }
}

/// Where attachments are kept: `CHAT_BLOBS` picks the adapter, the rest
/// configure it. Read by the api (and so by `chat`), which embeds it as
/// `ApiConfig::blobs`; see `docs/operations.md`, "Object storage".
#[derive(Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct BlobsConfig {
    /// `CHAT_BLOBS`: `fs` (files under [`BlobsConfig::blobs_dir`]) or
    /// `s3` (an S3-compatible bucket).
    pub blobs: BlobsBackend,
    /// `CHAT_BLOBS_DIR`: the filesystem adapter's directory; unset means
    /// `blobs` in the data dir (see [`BlobsConfig::dir`]).
    pub blobs_dir: Option<PathBuf>,
    /// `CHAT_S3_BUCKET`: the bucket (it must exist; the adapter never
    /// creates one).
    pub s3_bucket: Option<String>,
    /// `CHAT_S3_ENDPOINT`: the S3 API's base URL for S3-compatible servers
    /// (`http://127.0.0.1:9000`, `https://<account>.r2.cloudflarestorage.com`);
    /// unset means AWS's own endpoint for the region.
    pub s3_endpoint: Option<String>,
    /// `CHAT_S3_REGION`: the region signatures are made for.
    pub s3_region: String,
    /// `CHAT_S3_ACCESS_KEY_ID`: a static key, set with
    /// `CHAT_S3_SECRET_ACCESS_KEY`. With neither set, credentials come from
    /// the standard AWS chain (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/
    /// `AWS_SESSION_TOKEN`, web identity, the container or instance role).
    pub s3_access_key_id: Option<String>,
    /// `CHAT_S3_SECRET_ACCESS_KEY`: the static key's secret.
    pub s3_secret_access_key: Option<String>,
    /// `CHAT_S3_PATH_STYLE`: address the bucket in the path
    /// (`<endpoint>/<bucket>/<key>`) rather than the host name; what most
    /// self-hosted S3-compatible servers need.
    pub s3_path_style: bool,
}

/// The adapters `CHAT_BLOBS` names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlobsBackend {
    /// Files in a directory (the embedded default).
    #[default]
    Fs,
    /// An S3-compatible bucket.
    S3,
}

impl Default for BlobsConfig {
    fn default() -> Self {
        Self {
            blobs: BlobsBackend::Fs,
            blobs_dir: None,
            s3_bucket: None,
            s3_endpoint: None,
            s3_region: "us-east-1".into(),
            s3_access_key_id: None,
            s3_secret_access_key: None,
            s3_path_style: false,
        }
    }
}

/// By hand, so the secret never reaches a log.
impl Debug for BlobsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobsConfig")
            .field("blobs", &self.blobs)
            .field("blobs_dir", &self.blobs_dir)
            .field("s3_bucket", &self.s3_bucket)
            .field("s3_endpoint", &self.s3_endpoint)
            .field("s3_region", &self.s3_region)
            .field("s3_access_key_id", &self.s3_access_key_id)
            .field(
                "s3_secret_access_key",
                &self.s3_secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .field("s3_path_style", &self.s3_path_style)
            .finish()
    }
}

impl BlobsConfig {
    /// Parses the blob settings from `env` and checks them.
    pub fn from_env(env: &Env) -> Result<Self> {
        let config: Self = env.parse()?;
        config.validate()?;
        Ok(config)
    }

    /// Rejects values that parse but cannot work: S3 without a bucket, an
    /// endpoint that is not an http(s) URL, half a static key.
    pub fn validate(&self) -> Result<()> {
        if self.blobs == BlobsBackend::S3 {
            check(
                self.s3_bucket.as_deref().is_some_and(|b| !b.is_empty()),
                "CHAT_S3_BUCKET",
                self.s3_bucket.as_deref().unwrap_or(""),
                "must be set when CHAT_BLOBS=s3",
            )?;
        }
        if let Some(endpoint) = &self.s3_endpoint {
            check(
                endpoint.starts_with("http://") || endpoint.starts_with("https://"),
                "CHAT_S3_ENDPOINT",
                endpoint,
                "must be an http:// or https:// URL",
            )?;
        }
        check(
            !self.s3_region.is_empty(),
            "CHAT_S3_REGION",
            &self.s3_region,
            "must not be empty",
        )?;
        match (&self.s3_access_key_id, &self.s3_secret_access_key) {
            (Some(id), None) => check(
                false,
                "CHAT_S3_ACCESS_KEY_ID",
                id,
                "CHAT_S3_SECRET_ACCESS_KEY must be set with it",
            ),
            (None, Some(_)) => check(
                false,
                "CHAT_S3_SECRET_ACCESS_KEY",
                "<redacted>",
                "CHAT_S3_ACCESS_KEY_ID must be set with it",
            ),
            _ => Ok(()),
        }
    }

    /// The filesystem adapter's directory: `CHAT_BLOBS_DIR`, or `blobs`
    /// in `data_dir`.
    pub fn dir(&self, data_dir: &std::path::Path) -> PathBuf {
        self.blobs_dir
            .clone()
            .unwrap_or_else(|| data_dir.join("blobs"))
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    #[derive(Debug, Deserialize)]
    #[serde(default)]
    struct Sample {
        addr: SocketAddr,
        port: u16,
        #[serde(with = "humantime_serde")]
        request_grace: Option<Duration>,
        #[serde(with = "humantime_serde")]
        websocket_grace: Option<Duration>,
    }

    impl Default for Sample {
        fn default() -> Self {
            Self {
                addr: "127.0.0.1:1".parse().unwrap(),
                port: 1,
                request_grace: None,
                websocket_grace: None,
            }
        }
    }

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_vars(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn values_are_read_and_defaults_fill_the_rest() {
        let cfg: Sample = env(&[("CHAT_PORT", "9"), ("OTHER", "x")]).parse().unwrap();
        assert_eq!(cfg.port, 9);
        assert_eq!(cfg.addr, "127.0.0.1:1".parse().unwrap());
    }

    #[test]
    fn a_bad_number_names_its_variable() {
        let err = env(&[("CHAT_PORT", "nine")]).parse::<Sample>().unwrap_err();
        assert!(err.to_string().contains("CHAT_PORT"), "{err}");
    }

    #[test]
    fn a_bad_structured_value_names_its_variable() {
        let err = env(&[("CHAT_PORT", "9"), ("CHAT_ADDR", "not-an-address")])
            .parse::<Sample>()
            .unwrap_err();
        assert!(err.to_string().starts_with("CHAT_ADDR="), "{err}");
    }

    #[test]
    fn an_empty_environment_gives_the_documented_defaults() {
        let config = CommonConfig::from_env(&Env::default()).unwrap();
        assert_eq!(config, CommonConfig::default());
        assert_eq!(config.database_url(), "sqlite://data/chat.db");
        assert_eq!(config.redis_url, None);
        assert_eq!(config.bus_prefix, "chat");
        assert_eq!(config.db_max_connections, 10);
        assert_eq!((config.send_rate_per_second, config.send_burst), (20, 50));
        assert_eq!((config.read_rate_per_second, config.read_burst), (100, 200));
        assert_eq!(config.max_body_chars, 4000);
        assert_eq!(config.header_read_timeout, Duration::from_secs(10));
        assert_eq!(config.max_connections_per_address, 256);
        assert_eq!(config.log_format, LogFormat::Text);
    }

    #[test]
    fn only_our_variables_are_kept() {
        let env = env(&[
            ("HOME", "/root"),
            ("AWS_SECRET_ACCESS_KEY", "x"),
            ("CHAT_LOG", "debug"),
            ("REDIS_URL", "redis://r"),
        ]);
        let mut names: Vec<&str> = env.vars.iter().map(|(n, _)| n.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["CHAT_LOG", "REDIS_URL"]);
    }

    #[test]
    fn the_urls_are_read_unprefixed_and_empty_means_unset() {
        let config = CommonConfig::from_env(&env(&[
            ("DATABASE_URL", "postgres://db/chat"),
            ("REDIS_URL", ""),
            ("CHAT_DATA_DIR", "/srv/chat"),
        ]))
        .unwrap();
        assert_eq!(config.database_url(), "postgres://db/chat");
        assert_eq!(config.redis_url, None);
        let config = CommonConfig::from_env(&env(&[("CHAT_DATA_DIR", "/srv/chat")])).unwrap();
        assert_eq!(config.database_url(), "sqlite:///srv/chat/chat.db");
    }

    #[test]
    fn each_bad_shared_value_names_its_variable() {
        for (name, value) in [
            ("CHAT_DB_MAX_CONNECTIONS", "ten"),
            ("CHAT_DB_MAX_CONNECTIONS", "0"),
            ("CHAT_SEND_BURST", "0"),
            ("CHAT_READ_RATE_PER_SECOND", "-1"),
            ("CHAT_HEADER_READ_TIMEOUT", "10"),
            ("CHAT_HEADER_READ_TIMEOUT", "50ms"),
            ("CHAT_LOG_FORMAT", "xml"),
            ("CHAT_MAX_BODY_CHARS", "many"),
        ] {
            let err = CommonConfig::from_env(&env(&[("CHAT_LOG", "debug"), (name, value)]))
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with(&format!("{name}=")),
                "{name}={value}: {err}"
            );
        }
    }

    #[test]
    fn blobs_default_to_files_in_the_data_dir() {
        let config = BlobsConfig::from_env(&Env::default()).unwrap();
        assert_eq!(config, BlobsConfig::default());
        assert_eq!(config.blobs, BlobsBackend::Fs);
        assert_eq!(
            config.dir(std::path::Path::new("/srv/chat")),
            PathBuf::from("/srv/chat/blobs")
        );
        assert_eq!(config.s3_region, "us-east-1");
        assert!(!config.s3_path_style);
    }

    #[test]
    fn blobs_in_s3_are_read_from_their_variables() {
        let config = BlobsConfig::from_env(&env(&[
            ("CHAT_BLOBS", "s3"),
            ("CHAT_BLOBS_DIR", "/elsewhere"),
            ("CHAT_S3_BUCKET", "attachments"),
            ("CHAT_S3_ENDPOINT", "http://127.0.0.1:9000"),
            ("CHAT_S3_REGION", "eu-west-1"),
            ("CHAT_S3_ACCESS_KEY_ID", "id"),
            ("CHAT_S3_SECRET_ACCESS_KEY", "secret"),
            ("CHAT_S3_PATH_STYLE", "true"),
        ]))
        .unwrap();
        assert_eq!(config.blobs, BlobsBackend::S3);
        assert_eq!(
            config.dir(std::path::Path::new("data")),
            PathBuf::from("/elsewhere")
        );
        assert_eq!(config.s3_bucket.as_deref(), Some("attachments"));
        assert_eq!(config.s3_endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(config.s3_region, "eu-west-1");
        assert_eq!(config.s3_access_key_id.as_deref(), Some("id"));
        assert_eq!(config.s3_secret_access_key.as_deref(), Some("secret"));
        assert!(config.s3_path_style);
        assert!(!format!("{config:?}").contains("secret\""));
    }

    #[test]
    fn each_bad_blobs_value_names_its_variable() {
        for (name, pairs) in [
            ("CHAT_BLOBS", &[("CHAT_BLOBS", "disk")][..]),
            ("CHAT_S3_BUCKET", &[("CHAT_BLOBS", "s3")][..]),
            (
                "CHAT_S3_ENDPOINT",
                &[("CHAT_S3_ENDPOINT", "127.0.0.1:9000")][..],
            ),
            ("CHAT_S3_PATH_STYLE", &[("CHAT_S3_PATH_STYLE", "yes")][..]),
            ("CHAT_S3_REGION", &[("CHAT_S3_REGION", "")][..]),
            (
                "CHAT_S3_ACCESS_KEY_ID",
                &[("CHAT_S3_ACCESS_KEY_ID", "id")][..],
            ),
            (
                "CHAT_S3_SECRET_ACCESS_KEY",
                &[("CHAT_S3_SECRET_ACCESS_KEY", "hidden")][..],
            ),
        ] {
            let err = BlobsConfig::from_env(&env(pairs)).unwrap_err().to_string();
            assert!(err.starts_with(&format!("{name}=")), "{name}: {err}");
            assert!(!err.contains("hidden"), "{err}");
        }
    }

    #[test]
    fn a_renamed_variable_sets_each_new_one_left_unset() {
        let both = env(&[("CHAT_SHUTDOWN_GRACE", "3s")]);
        let sample: Sample = both.parse().unwrap();
        assert_eq!(sample.request_grace, Some(Duration::from_secs(3)));
        assert_eq!(sample.websocket_grace, Some(Duration::from_secs(3)));
        assert_eq!(both.deprecations().len(), 1);
        assert!(both.deprecations()[0].starts_with("CHAT_SHUTDOWN_GRACE is deprecated"));

        let one = env(&[
            ("CHAT_SHUTDOWN_GRACE", "3s"),
            ("CHAT_WEBSOCKET_GRACE", "30s"),
        ]);
        let sample: Sample = one.parse().unwrap();
        assert_eq!(sample.request_grace, Some(Duration::from_secs(3)));
        assert_eq!(sample.websocket_grace, Some(Duration::from_secs(30)));

        assert!(env(&[("CHAT_REQUEST_GRACE", "3s")])
            .deprecations()
            .is_empty());
    }

    #[test]
    fn a_bad_value_given_under_an_old_name_is_named_so() {
        let err = env(&[("CHAT_SHUTDOWN_GRACE", "soon")])
            .parse::<Sample>()
            .unwrap_err();
        assert!(
            err.to_string().starts_with("CHAT_SHUTDOWN_GRACE=\"soon\""),
            "{err}"
        );
    }
}
