//! `chat-api` configuration: the [`CommonConfig`] every binary shares, the
//! api's own `CHAT_*` variables, where attachments are kept
//! ([`BlobsConfig`]) and the ICE servers calls are given ([`IceConfig`]),
//! parsed from one [`Env`]. Names and defaults are listed in the README.

use std::fmt::Debug;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use chat_shared::config::{check, BlobsConfig, CommonConfig, Env};
use chat_shared::limits::Budgets;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Everything `chat-api` can be told.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct ApiConfig {
    /// The settings shared with the gateway; parsed on their own (see
    /// [`ApiConfig::with_common`]), so `chat` reads them once for both.
    #[serde(skip)]
    pub common: CommonConfig,
    /// `CHAT_BLOBS`, `CHAT_BLOBS_DIR` and `CHAT_S3_*`: the attachments'
    /// storage, declared and checked in `chat_shared::config` beside the
    /// port it configures, and parsed with the api's own settings.
    #[serde(skip)]
    pub blobs: BlobsConfig,
    /// `CHAT_STUN_URLS`, `CHAT_TURN_*` and `CHAT_ICE_TRANSPORT_POLICY`:
    /// the ICE servers handed to calls, parsed on their own like `blobs`,
    /// with a `Debug` that hides the TURN secret.
    #[serde(skip)]
    pub ice: IceConfig,
    /// `CHAT_API_ADDR`: where to listen.
    pub api_addr: SocketAddr,
    /// `CHAT_JWT_PRIVATE_KEY`: PEM file of the Ed25519 signing key, set
    /// together with `CHAT_JWT_PUBLIC_KEY`. With neither set, a pair is
    /// generated into the data dir.
    pub jwt_private_key: Option<PathBuf>,
    /// `CHAT_ACCESS_TOKEN_TTL`: access token lifetime (e.g. `15m`).
    #[serde(with = "humantime_serde")]
    pub access_token_ttl: Duration,
    /// `CHAT_REFRESH_TOKEN_TTL`: refresh token lifetime (e.g. `30d`).
    #[serde(with = "humantime_serde")]
    pub refresh_token_ttl: Duration,
    /// `CHAT_AUTH_RATE_PER_MINUTE`: register/login/refresh and password-change attempts
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
    /// `CHAT_ACTION_RATE_PER_MINUTE`: invites, room creations, DM opens
    /// (with requests for calls' ICE servers), uploads and profile changes
    /// per user per minute, each a budget of its own.
    pub action_rate_per_minute: u32,
    /// `CHAT_ACTION_BURST`: how many of each at once.
    pub action_burst: u32,
    /// `CHAT_SEARCH_RATE_PER_MINUTE`: message searches per user per minute.
    pub search_rate_per_minute: u32,
    /// `CHAT_SEARCH_BURST`: how many of those at once.
    pub search_burst: u32,
    /// `CHAT_MAX_REQUEST_BYTES`: largest request body accepted.
    pub max_request_bytes: usize,
    /// `CHAT_REQUEST_GRACE`: how long requests in flight get to finish once
    /// shutdown begins.
    #[serde(with = "humantime_serde")]
    pub request_grace: Duration,
    /// `CHAT_MAX_UPLOAD_BYTES`: the largest file one upload takes.
    pub max_upload_bytes: u64,
    /// `CHAT_ATTACHMENT_LINK_TTL`: how long a download link works.
    #[serde(with = "humantime_serde")]
    pub attachment_link_ttl: Duration,
    /// `CHAT_UNSENT_ATTACHMENT_TTL`: how long an upload waits for a message
    /// to carry it before it is collected.
    #[serde(with = "humantime_serde")]
    pub unsent_attachment_ttl: Duration,
    /// `CHAT_ATTACHMENT_SWEEP_INTERVAL`: how often collected and deleted
    /// attachments' bytes are deleted.
    #[serde(with = "humantime_serde")]
    pub attachment_sweep_interval: Duration,
    /// `CHAT_CORS_ORIGINS`: comma-separated origins whose pages may call
    /// the api from a browser (see `cors`); empty, none may.
    pub cors_origins: String,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            common: CommonConfig::default(),
            blobs: BlobsConfig::default(),
            ice: IceConfig::default(),
            api_addr: SocketAddr::from(([127, 0, 0, 1], 8081)),
            jwt_private_key: None,
            access_token_ttl: Duration::from_secs(15 * 60),
            refresh_token_ttl: Duration::from_secs(30 * 24 * 3600),
            auth_rate_per_minute: 20,
            auth_rate_burst: 10,
            trust_forwarded_for: false,
            max_concurrent_hashes: std::thread::available_parallelism().map_or(2, |n| n.get()),
            max_waiting_hashes: 64,
            action_rate_per_minute: Budgets::default().action_per_minute,
            action_burst: Budgets::default().action_burst,
            search_rate_per_minute: Budgets::default().search_per_minute,
            search_burst: Budgets::default().search_burst,
            max_request_bytes: 64 * 1024,
            request_grace: Duration::from_secs(10),
            max_upload_bytes: 25 << 20,
            attachment_link_ttl: Duration::from_secs(5 * 60),
            unsent_attachment_ttl: Duration::from_secs(3600),
            attachment_sweep_interval: Duration::from_secs(30),
            cors_origins: String::new(),
        }
    }
}

impl ApiConfig {
    /// Parses the shared settings and the api's own from `env`; the error
    /// names the variable at fault.
    pub fn from_env(env: &Env) -> chat_shared::Result<Self> {
        Self::with_common(CommonConfig::from_env(env)?, env)
    }

    /// Parses the api's own settings from `env` beside shared ones already
    /// read (`chat` reads those once for the api and the gateway).
    pub fn with_common(common: CommonConfig, env: &Env) -> chat_shared::Result<Self> {
        let config = Self {
            common,
            blobs: BlobsConfig::from_env(env)?,
            ice: IceConfig::from_env(env)?,
            ..env.parse()?
        };
        config.validate()?;
        Ok(config)
    }

    /// The sizes of the per-user budgets.
    pub fn budgets(&self) -> Budgets {
        Budgets {
            action_per_minute: self.action_rate_per_minute,
            action_burst: self.action_burst,
            search_per_minute: self.search_rate_per_minute,
            search_burst: self.search_burst,
            ..self.common.budgets()
        }
    }

    /// Rejects values that parse but cannot work (the shared ones are
    /// checked by [`CommonConfig::validate`]).
    pub fn validate(&self) -> chat_shared::Result<()> {
        crate::cors::origins(&self.cors_origins)?;
        let at_least_one = "must be at least 1";
        for (variable, value) in [
            ("CHAT_AUTH_RATE_PER_MINUTE", self.auth_rate_per_minute),
            ("CHAT_AUTH_RATE_BURST", self.auth_rate_burst),
            ("CHAT_ACTION_RATE_PER_MINUTE", self.action_rate_per_minute),
            ("CHAT_ACTION_BURST", self.action_burst),
            ("CHAT_SEARCH_RATE_PER_MINUTE", self.search_rate_per_minute),
            ("CHAT_SEARCH_BURST", self.search_burst),
        ] {
            check(value > 0, variable, value, at_least_one)?;
        }
        check(
            self.max_concurrent_hashes > 0,
            "CHAT_MAX_CONCURRENT_HASHES",
            self.max_concurrent_hashes,
            at_least_one,
        )?;
        check(
            self.max_upload_bytes > 0,
            "CHAT_MAX_UPLOAD_BYTES",
            self.max_upload_bytes,
            at_least_one,
        )?;
        // S3 presigns for at most 7 days.
        check(
            self.attachment_link_ttl >= Duration::from_secs(10)
                && self.attachment_link_ttl <= Duration::from_secs(7 * 24 * 3600),
            "CHAT_ATTACHMENT_LINK_TTL",
            self.attachment_link_ttl,
            "must be between 10s and 7d",
        )?;
        check(
            self.attachment_sweep_interval >= Duration::from_secs(1),
            "CHAT_ATTACHMENT_SWEEP_INTERVAL",
            self.attachment_sweep_interval,
            "must be at least 1s",
        )?;
        check(
            self.unsent_attachment_ttl >= Duration::from_secs(60),
            "CHAT_UNSENT_ATTACHMENT_TTL",
            self.unsent_attachment_ttl,
            "must be at least 1m (an upload needs time to be sent)",
        )?;
        check(
            self.access_token_ttl >= Duration::from_secs(10),
            "CHAT_ACCESS_TOKEN_TTL",
            self.access_token_ttl,
            "must be at least 10s",
        )?;
        match (&self.jwt_private_key, &self.common.jwt_public_key) {
            (Some(private), None) => check(
                false,
                "CHAT_JWT_PRIVATE_KEY",
                private,
                "CHAT_JWT_PUBLIC_KEY must be set with it",
            ),
            (None, Some(public)) => check(
                false,
                "CHAT_JWT_PUBLIC_KEY",
                public,
                "CHAT_JWT_PRIVATE_KEY must be set with it (the api signs tokens)",
            ),
            _ => Ok(()),
        }
    }
}

/// The ICE servers `GET /v1/calls/ice-servers` hands out (see
/// `docs/protocol.md`, "ICE servers", and `docs/operations.md`, "Calls:
/// STUN and TURN"). With nothing set, calls get no ICE server at all:
/// enough between two hosts that reach each other directly.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct IceConfig {
    /// `CHAT_STUN_URLS`: comma-separated `stun:` URLs.
    pub stun_urls: String,
    /// `CHAT_TURN_URLS`: comma-separated `turn:` / `turns:` URLs, handed
    /// out with credentials derived from [`IceConfig::turn_secret`].
    pub turn_urls: String,
    /// `CHAT_TURN_SECRET`: the secret shared with the TURN server
    /// (coturn's `static-auth-secret`); it signs every credential.
    pub turn_secret: Option<String>,
    /// `CHAT_TURN_TTL`: how long TURN credentials stay valid.
    #[serde(with = "humantime_serde")]
    pub turn_ttl: Duration,
    /// `CHAT_ICE_TRANSPORT_POLICY`: `all`, or `relay` to send all media
    /// through TURN.
    pub ice_transport_policy: IceTransportPolicy,
}

/// Which candidates `RTCPeerConnection` may use (`iceTransportPolicy`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum IceTransportPolicy {
    /// Direct, STUN-found and relayed alike.
    #[default]
    All,
    /// Relayed only: media always goes through TURN, so neither party
    /// learns the other's addresses.
    Relay,
}

impl Default for IceConfig {
    fn default() -> Self {
        Self {
            stun_urls: String::new(),
            turn_urls: String::new(),
            turn_secret: None,
            turn_ttl: Duration::from_secs(12 * 3600),
            ice_transport_policy: IceTransportPolicy::All,
        }
    }
}

/// By hand, so the secret never reaches a log.
impl Debug for IceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IceConfig")
            .field("stun_urls", &self.stun_urls)
            .field("turn_urls", &self.turn_urls)
            .field(
                "turn_secret",
                &self.turn_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("turn_ttl", &self.turn_ttl)
            .field("ice_transport_policy", &self.ice_transport_policy)
            .finish()
    }
}

impl IceConfig {
    /// Parses the ICE settings from `env` and checks them.
    pub fn from_env(env: &Env) -> chat_shared::Result<Self> {
        let config: Self = env.parse()?;
        config.validate()?;
        Ok(config)
    }

    /// The STUN URLs, in the order given.
    pub fn stun(&self) -> Vec<String> {
        split_urls(&self.stun_urls)
    }

    /// The TURN URLs and the secret their credentials are signed with,
    /// when TURN is configured.
    pub fn turn(&self) -> Option<(Vec<String>, &str)> {
        let urls = split_urls(&self.turn_urls);
        let secret = self.turn_secret.as_deref().filter(|s| !s.is_empty())?;
        (!urls.is_empty()).then_some((urls, secret))
    }

    /// Rejects what would hand browsers servers they cannot use: a URL of
    /// the wrong scheme, TURN without the secret its credentials need,
    /// credentials that expire at once or outlive any sane call, and
    /// relay-only calls with nothing to relay them.
    pub fn validate(&self) -> chat_shared::Result<()> {
        for url in self.stun() {
            check(
                has_scheme(&url, &["stun:"]),
                "CHAT_STUN_URLS",
                &url,
                "each URL must be stun:<host>[:<port>]",
            )?;
        }
        let turn_urls = split_urls(&self.turn_urls);
        for url in &turn_urls {
            check(
                has_scheme(url, &["turn:", "turns:"]),
                "CHAT_TURN_URLS",
                url,
                "each URL must be turn:<host>[:<port>][?transport=udp|tcp] or turns:…",
            )?;
        }
        let has_secret = self.turn_secret.as_deref().is_some_and(|s| !s.is_empty());
        check(
            turn_urls.is_empty() || has_secret,
            "CHAT_TURN_URLS",
            &self.turn_urls,
            "CHAT_TURN_SECRET must be set with it: TURN servers refuse clients without \
             credentials, which are signed with that secret",
        )?;
        check(
            self.turn_ttl >= Duration::from_secs(1)
                && self.turn_ttl <= Duration::from_secs(7 * 24 * 3600),
            "CHAT_TURN_TTL",
            self.turn_ttl,
            "must be between 1s and 7d",
        )?;
        check(
            self.ice_transport_policy == IceTransportPolicy::All || self.turn().is_some(),
            "CHAT_ICE_TRANSPORT_POLICY",
            "relay",
            "needs CHAT_TURN_URLS and CHAT_TURN_SECRET: relay-only calls need a TURN server",
        )
    }
}

/// The non-empty entries of a comma-separated list, trimmed.
fn split_urls(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Whether `url` is one of `schemes` followed by a host (and nothing a
/// browser would choke on: no spaces).
fn has_scheme(url: &str, schemes: &[&str]) -> bool {
    schemes.iter().any(|scheme| {
        url.strip_prefix(scheme)
            .is_some_and(|rest| !rest.is_empty() && !rest.starts_with([':', '?', '/']))
    }) && !url.contains(char::is_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_shared::config::BlobsBackend;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_vars(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn an_empty_environment_gives_the_documented_defaults() {
        let config = ApiConfig::from_env(&Env::default()).unwrap();
        assert_eq!(config, ApiConfig::default());
        assert_eq!(config.api_addr, "127.0.0.1:8081".parse().unwrap());
        assert_eq!(config.access_token_ttl, Duration::from_secs(15 * 60));
        assert_eq!(config.refresh_token_ttl, Duration::from_secs(30 * 86_400));
        assert_eq!(
            (config.auth_rate_per_minute, config.auth_rate_burst),
            (20, 10)
        );
        assert_eq!(
            (config.action_rate_per_minute, config.action_burst),
            (20, 10)
        );
        assert_eq!(
            (config.search_rate_per_minute, config.search_burst),
            (30, 10)
        );
        assert_eq!(config.max_waiting_hashes, 64);
        assert_eq!(config.max_request_bytes, 65_536);
        assert_eq!(config.request_grace, Duration::from_secs(10));
        assert!(!config.trust_forwarded_for);
        assert_eq!(config.max_upload_bytes, 25 * 1024 * 1024);
        assert_eq!(config.attachment_link_ttl, Duration::from_secs(300));
        assert_eq!(config.unsent_attachment_ttl, Duration::from_secs(3600));
        assert_eq!(config.attachment_sweep_interval, Duration::from_secs(30));
        assert_eq!(config.blobs.blobs, BlobsBackend::Fs);
        assert_eq!(
            config.blobs.dir(&config.common.data_dir),
            PathBuf::from("data/blobs")
        );
    }

    #[test]
    fn shared_and_own_variables_land_in_their_parts() {
        let config = ApiConfig::from_env(&env(&[
            ("CHAT_SEND_BURST", "7"),
            ("CHAT_ACTION_BURST", "3"),
            ("CHAT_REQUEST_GRACE", "2s"),
            ("CHAT_TRUST_FORWARDED_FOR", "true"),
            ("CHAT_BLOBS", "s3"),
            ("CHAT_S3_BUCKET", "attachments"),
        ]))
        .unwrap();
        assert_eq!(config.blobs.blobs, BlobsBackend::S3);
        assert_eq!(config.blobs.s3_bucket.as_deref(), Some("attachments"));
        assert_eq!(config.common.send_burst, 7);
        assert_eq!(config.budgets().send_burst, 7);
        assert_eq!(config.budgets().action_burst, 3);
        assert_eq!(config.request_grace, Duration::from_secs(2));
        assert!(config.trust_forwarded_for);
    }

    #[test]
    fn the_old_shutdown_grace_still_sets_the_request_grace() {
        let old = env(&[("CHAT_SHUTDOWN_GRACE", "4s")]);
        assert_eq!(
            ApiConfig::from_env(&old).unwrap().request_grace,
            Duration::from_secs(4)
        );
        let both = env(&[("CHAT_SHUTDOWN_GRACE", "4s"), ("CHAT_REQUEST_GRACE", "1s")]);
        assert_eq!(
            ApiConfig::from_env(&both).unwrap().request_grace,
            Duration::from_secs(1)
        );
    }

    #[test]
    fn each_bad_value_names_its_variable() {
        for (name, value) in [
            ("CHAT_API_ADDR", "8081"),
            ("CHAT_AUTH_RATE_BURST", "0"),
            ("CHAT_ACTION_RATE_PER_MINUTE", "lots"),
            ("CHAT_ACCESS_TOKEN_TTL", "5s"),
            ("CHAT_REFRESH_TOKEN_TTL", "a month"),
            ("CHAT_TRUST_FORWARDED_FOR", "yes"),
            ("CHAT_MAX_CONCURRENT_HASHES", "0"),
            ("CHAT_REQUEST_GRACE", "10"),
            ("CHAT_JWT_PRIVATE_KEY", "/keys/jwt-private.pem"),
            ("CHAT_JWT_PUBLIC_KEY", "/keys/jwt-public.pem"),
            ("CHAT_SEND_BURST", "0"),
            ("CHAT_MAX_UPLOAD_BYTES", "0"),
            ("CHAT_ATTACHMENT_LINK_TTL", "8d"),
            ("CHAT_UNSENT_ATTACHMENT_TTL", "5s"),
            ("CHAT_ATTACHMENT_SWEEP_INTERVAL", "0s"),
            ("CHAT_BLOBS", "disk"),
            ("CHAT_S3_ENDPOINT", "s3.example.com"),
            ("CHAT_SEARCH_BURST", "0"),
            ("CHAT_SEARCH_RATE_PER_MINUTE", "many"),
            ("CHAT_CORS_ORIGINS", "*"),
            ("CHAT_CORS_ORIGINS", "https://app.example.org/"),
            ("CHAT_STUN_URLS", "turn:turn.example.org"),
            ("CHAT_STUN_URLS", "stun.example.org:3478"),
            ("CHAT_TURN_URLS", "https://turn.example.org"),
            ("CHAT_TURN_URLS", "turn:turn.example.org"),
            ("CHAT_TURN_TTL", "0s"),
            ("CHAT_TURN_TTL", "8d"),
            ("CHAT_TURN_TTL", "forever"),
            ("CHAT_ICE_TRANSPORT_POLICY", "relay"),
            ("CHAT_ICE_TRANSPORT_POLICY", "none"),
        ] {
            let err = ApiConfig::from_env(&env(&[(name, value)]))
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with(&format!("{name}=")),
                "{name}={value}: {err}"
            );
        }
    }

    #[test]
    fn ice_servers_are_read_in_order_and_the_secret_is_never_shown() {
        let config = ApiConfig::from_env(&env(&[
            (
                "CHAT_STUN_URLS",
                "stun:stun.example.org:3478, stun:[2001:db8::1]",
            ),
            (
                "CHAT_TURN_URLS",
                "turn:turn.example.org:3478?transport=udp,turns:turn.example.org:5349?transport=tcp",
            ),
            ("CHAT_TURN_SECRET", "north-wind"),
            ("CHAT_TURN_TTL", "1h"),
            ("CHAT_ICE_TRANSPORT_POLICY", "relay"),
        ]))
        .unwrap();
        let ice = &config.ice;
        assert_eq!(
            ice.stun(),
            ["stun:stun.example.org:3478", "stun:[2001:db8::1]"]
        );
        let (urls, secret) = ice.turn().unwrap();
        assert_eq!(
            urls,
            [
                "turn:turn.example.org:3478?transport=udp",
                "turns:turn.example.org:5349?transport=tcp"
            ]
        );
        assert_eq!(secret, "north-wind");
        assert_eq!(ice.turn_ttl, Duration::from_secs(3600));
        assert_eq!(ice.ice_transport_policy, IceTransportPolicy::Relay);
        assert!(!format!("{config:?}").contains("north-wind"));
    }

    #[test]
    fn no_ice_servers_by_default() {
        let ice = ApiConfig::from_env(&Env::default()).unwrap().ice;
        assert!(ice.stun().is_empty());
        assert!(ice.turn().is_none());
        assert_eq!(ice.turn_ttl, Duration::from_secs(12 * 3600));
        assert_eq!(ice.ice_transport_policy, IceTransportPolicy::All);
    }

    #[test]
    fn turn_without_a_secret_and_relay_without_turn_say_what_is_missing() {
        let turn_only = env(&[("CHAT_TURN_URLS", "turn:turn.example.org")]);
        let err = ApiConfig::from_env(&turn_only).unwrap_err().to_string();
        assert!(err.contains("CHAT_TURN_SECRET must be set"), "{err}");
        // A secret alone does not make TURN: relay-only still has no relay.
        let no_urls = env(&[
            ("CHAT_TURN_SECRET", "north-wind"),
            ("CHAT_ICE_TRANSPORT_POLICY", "relay"),
        ]);
        let err = ApiConfig::from_env(&no_urls).unwrap_err().to_string();
        assert!(err.starts_with("CHAT_ICE_TRANSPORT_POLICY="), "{err}");
        assert!(err.contains("needs CHAT_TURN_URLS"), "{err}");
        assert!(!err.contains("north-wind"), "{err}");
    }

    #[test]
    fn a_bad_url_is_named_and_the_scheme_is_checked_per_list() {
        for (name, value) in [
            ("CHAT_STUN_URLS", "stun:ok.example.org,stun:"),
            ("CHAT_STUN_URLS", "stuns:stun.example.org"),
            ("CHAT_STUN_URLS", "stun:bad host"),
            (
                "CHAT_TURN_URLS",
                "turn:ok.example.org,stun:stun.example.org",
            ),
            ("CHAT_TURN_URLS", "turn://turn.example.org"),
        ] {
            let err = ApiConfig::from_env(&env(&[(name, value), ("CHAT_TURN_SECRET", "s")]))
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(&format!("{name}=")), "{value}: {err}");
            assert!(err.contains("each URL must be"), "{value}: {err}");
        }
    }
}
