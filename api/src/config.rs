//! `chat-api` configuration: the [`CommonConfig`] every binary shares, the
//! api's own `CHAT_*` variables and where attachments are kept
//! ([`BlobsConfig`]), parsed from one [`Env`]. Names and defaults are
//! listed in the README.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use chat_shared::config::{check, BlobsConfig, CommonConfig, Env};
use chat_shared::limits::Budgets;
use serde::Deserialize;

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
    /// `CHAT_ACTION_RATE_PER_MINUTE`: invites, room creations, DM opens, uploads and profile changes
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
}
