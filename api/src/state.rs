//! What every handler can reach: the store, the store of blobs, the token
//! issuer and verifier, the password hasher, the rate limiters and the
//! configuration.

use std::sync::Arc;

use chat_shared::auth::{read_key, KeyPair, TokenIssuer, TokenScope, TokenVerifier};
use chat_shared::blobs::{self, Blobs};
use chat_shared::bus::{self, Bus, Publisher};
use chat_shared::limits::{Action, UserLimits};
use chat_shared::model::UserId;
use chat_shared::store::{self, Store};

use crate::config::ApiConfig;
use tokio::sync::Semaphore;

use crate::error::ApiError;
use crate::links::Links;
use crate::password::Passwords;
use crate::rate_limit::AuthRateLimit;

/// Shared state of the api, cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// Everything durable.
    pub store: Arc<dyn Store>,
    /// Attachments' bytes.
    pub blobs: Arc<dyn Blobs>,
    /// Signs and checks the api's own download links.
    pub links: Links,
    /// Bounds the thumbnails made at once (each a decode of up to
    /// `media::MAX_DECODE_BYTES` on a blocking thread).
    pub thumbnails: Arc<Semaphore>,
    /// Tells the gateways what changed (see `announce`).
    pub publisher: Publisher,
    /// Mints access tokens.
    pub issuer: Arc<TokenIssuer>,
    /// Checks access tokens.
    pub verifier: Arc<TokenVerifier>,
    /// Hashes passwords, a bounded number at a time.
    pub passwords: Passwords,
    /// Slows down credential guessing per client address.
    pub auth_rate_limit: AuthRateLimit,
    /// Each user's budgets for sending, inviting, creating rooms and
    /// opening DMs (in `chat`, the gateway's too).
    pub limits: Arc<UserLimits>,
    /// The configuration the api started with.
    pub config: Arc<ApiConfig>,
}

impl AppState {
    /// Connects the store (migrating it) and the bus, and loads or
    /// generates the keys.
    pub async fn build(config: ApiConfig) -> chat_shared::Result<Self> {
        let common = &config.common;
        let store = store::connect(&common.database_url(), common.db_max_connections).await?;
        let bus = bus::connect(common.redis_url.as_deref(), &common.bus_prefix).await?;
        Self::with_parts(config, store, bus).await
    }

    /// Builds over a given store and bus (tests, the all-in-one binary);
    /// opens the store of blobs the configuration names.
    pub async fn with_parts(
        config: ApiConfig,
        store: Arc<dyn Store>,
        bus: Arc<dyn Bus>,
    ) -> chat_shared::Result<Self> {
        let blobs = blobs::connect(&config.blobs, &config.common.data_dir).await?;
        chat_shared::metrics::install();
        let keys = match (&config.jwt_private_key, &config.common.jwt_public_key) {
            (Some(private), Some(public)) => KeyPair {
                private_pem: read_key(private)?,
                public_pem: read_key(public)?,
            },
            _ => KeyPair::load_or_generate(&config.common.data_dir)?,
        };
        let scope = TokenScope {
            issuer: config.common.jwt_issuer.clone(),
            audience: config.common.jwt_audience.clone(),
        };
        let issuer = TokenIssuer::new(
            keys.private_pem.as_bytes(),
            scope.clone(),
            config.access_token_ttl,
        )?;
        let verifier = TokenVerifier::new(keys.public_pem.as_bytes(), &scope)?;
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(Self {
            store,
            blobs,
            links: Links::from_signing_key(&keys.private_pem),
            thumbnails: Arc::new(Semaphore::new(cores)),
            publisher: Publisher::start(bus),
            issuer: Arc::new(issuer),
            verifier: Arc::new(verifier),
            passwords: Passwords::new(config.max_concurrent_hashes, config.max_waiting_hashes),
            auth_rate_limit: AuthRateLimit::new(
                config.auth_rate_per_minute,
                config.auth_rate_burst,
            ),
            limits: Arc::new(UserLimits::new(config.budgets())),
            config: Arc::new(config),
        })
    }

    /// Counts one `action` by `user` against their budget: `429
    /// rate_limited` with `Retry-After` when it is spent.
    pub fn spend(&self, user: UserId, action: Action) -> Result<(), ApiError> {
        self.limits.check(user, action).map_err(|wait| {
            // Whole seconds, rounded up: a client that waits that long is
            // allowed.
            ApiError::RateLimited(wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
        })
    }
}
