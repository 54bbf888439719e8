//! Per-client-address rate limiting of the credential endpoints (register,
//! login, refresh), so password guessing and account spraying are slow.
//! A GCRA limiter keyed by IP (an IPv6 address by its /64, see
//! `chat_shared::listener::client_key`); the map of addresses is pruned periodically
//! so it stays as small as the set of recent clients. The credential routes
//! apply it as a middleware (`routes::auth`).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::ApiError;

/// A keyed limiter over client addresses.
#[derive(Clone)]
pub struct AuthRateLimit {
    limiter: Arc<DefaultKeyedRateLimiter<IpAddr>>,
}

impl AuthRateLimit {
    /// `per_minute` attempts per address, up to `burst` at once.
    pub fn new(per_minute: u32, burst: u32) -> Self {
        let per_minute = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::per_minute(per_minute).allow_burst(burst);
        Self {
            limiter: Arc::new(RateLimiter::keyed(quota)),
        }
    }

    /// Counts one attempt from `ip`, or says how many seconds to wait.
    pub fn check(&self, ip: IpAddr) -> Result<(), ApiError> {
        let key = chat_shared::listener::client_key(ip);
        self.limiter.check_key(&key).map_err(|not_until| {
            chat_shared::metrics::rate_limited(chat_shared::metrics::scope::CREDENTIALS);
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            ApiError::RateLimited(wait.as_secs().max(1))
        })
    }

    /// Forgets addresses whose allowance is full again; run periodically.
    pub fn prune(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// How often [`prune`](Self::prune) should run.
    pub const PRUNE_EVERY: Duration = Duration::from_secs(60);
}
