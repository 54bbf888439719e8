//! `chat-gateway` configuration: the [`CommonConfig`] every binary shares
//! and the gateway's own `CHAT_*` variables, parsed from one [`Env`]. Names
//! and defaults are listed in the README.

use std::net::SocketAddr;
use std::time::Duration;

use chat_shared::config::{check, CommonConfig, Env};

use crate::origins::{Allowed, Origin};
use serde::Deserialize;

/// Everything `chat-gateway` can be told.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct GatewayConfig {
    /// The settings shared with the api; parsed on their own (see
    /// [`GatewayConfig::with_common`]), so `chat` reads them once for both.
    #[serde(skip)]
    pub common: CommonConfig,
    /// `CHAT_GATEWAY_ADDR`: where to listen.
    pub gateway_addr: SocketAddr,
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
    /// silent for 1.25 intervals is closed (within 1.75).
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
    /// `CHAT_WEBSOCKET_GRACE`: how long the sockets, told to close (1012)
    /// once shutdown begins, get to finish closing.
    #[serde(with = "humantime_serde")]
    pub websocket_grace: Duration,
    /// `CHAT_HUB_SHARDS`: how many tasks share the hub's delivery (each
    /// serves the connections whose key falls to it); `0`, one per core
    /// the process may use.
    pub hub_shards: usize,
    /// `CHAT_CALL_RING_TIMEOUT`: how long a call rings unanswered before
    /// it ends as `missed`.
    #[serde(with = "humantime_serde")]
    pub call_ring_timeout: Duration,
    /// `CHAT_GATEWAY_LEASE`: how long this gateway's lease on its calls
    /// lasts unrenewed (it renews it every quarter of that); a gateway
    /// silent for longer is taken for dead, and its calls end as `failed`
    /// at another's sweep.
    #[serde(with = "humantime_serde")]
    pub gateway_lease: Duration,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            common: CommonConfig::default(),
            gateway_addr: SocketAddr::from(([127, 0, 0, 1], 8082)),
            allowed_origins: String::new(),
            public_origin: None,
            bound: None,
            heartbeat_interval: Duration::from_secs(20),
            sync_grace: Duration::from_secs(1),
            max_message_bytes: 64 * 1024,
            outbound_queue: 1024,
            max_connections: 100_000,
            gap_wait: Duration::from_millis(150),
            fanout_interval: Duration::from_millis(10),
            head_check_interval: Duration::from_secs(5),
            websocket_grace: Duration::from_secs(10),
            hub_shards: 0,
            call_ring_timeout: Duration::from_secs(45),
            gateway_lease: Duration::from_secs(15),
        }
    }
}

impl GatewayConfig {
    /// Parses the shared settings and the gateway's own from `env`; the
    /// error names the variable at fault.
    pub fn from_env(env: &Env) -> chat_shared::Result<Self> {
        Self::with_common(CommonConfig::from_env(env)?, env)
    }

    /// Parses the gateway's own settings from `env` beside shared ones
    /// already read (`chat` reads those once for the api and the gateway).
    pub fn with_common(common: CommonConfig, env: &Env) -> chat_shared::Result<Self> {
        let config = Self {
            common,
            ..env.parse()?
        };
        config.validate()?;
        Ok(config)
    }

    /// Rejects values that parse but cannot work (the shared ones are
    /// checked by [`CommonConfig::validate`]).
    pub fn validate(&self) -> chat_shared::Result<()> {
        check(
            self.heartbeat_interval >= Duration::from_millis(100),
            "CHAT_HEARTBEAT_INTERVAL",
            self.heartbeat_interval,
            "must be at least 100ms",
        )?;
        check(
            self.max_message_bytes >= 1024,
            "CHAT_MAX_MESSAGE_BYTES",
            self.max_message_bytes,
            "must be at least 1024",
        )?;
        check(
            self.outbound_queue >= 16,
            "CHAT_OUTBOUND_QUEUE",
            self.outbound_queue,
            "must be at least 16",
        )?;
        check(
            self.max_connections > 0,
            "CHAT_MAX_CONNECTIONS",
            self.max_connections,
            "must be at least 1",
        )?;
        self.origins()?;
        // Each shard follows presence as a gateway of its own: past the
        // cores a machine has, more only add that traffic.
        check(
            self.hub_shards <= 256,
            "CHAT_HUB_SHARDS",
            self.hub_shards,
            "must be at most 256",
        )?;
        check(
            self.fanout_interval <= Duration::from_secs(1),
            "CHAT_FANOUT_INTERVAL",
            self.fanout_interval,
            "must be at most 1s",
        )?;
        check(
            self.call_ring_timeout >= Duration::from_secs(1),
            "CHAT_CALL_RING_TIMEOUT",
            self.call_ring_timeout,
            "must be at least 1s",
        )?;
        // Renewed every quarter of it, and swept every second: shorter
        // would take a gateway with a slow database for dead.
        check(
            self.gateway_lease >= Duration::from_secs(2),
            "CHAT_GATEWAY_LEASE",
            self.gateway_lease,
            "must be at least 2s",
        )
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

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_vars(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn an_empty_environment_gives_the_documented_defaults() {
        let config = GatewayConfig::from_env(&Env::default()).unwrap();
        assert_eq!(config, GatewayConfig::default());
        assert_eq!(config.gateway_addr, "127.0.0.1:8082".parse().unwrap());
        assert_eq!(config.heartbeat_interval, Duration::from_secs(20));
        assert_eq!(config.sync_grace, Duration::from_secs(1));
        assert_eq!(config.max_message_bytes, 65_536);
        assert_eq!(config.outbound_queue, 1024);
        assert_eq!(config.max_connections, 100_000);
        assert_eq!(config.gap_wait, Duration::from_millis(150));
        assert_eq!(config.fanout_interval, Duration::from_millis(10));
        assert_eq!(config.head_check_interval, Duration::from_secs(5));
        assert_eq!(config.websocket_grace, Duration::from_secs(10));
        assert_eq!(config.call_ring_timeout, Duration::from_secs(45));
        assert_eq!(config.gateway_lease, Duration::from_secs(15));
    }

    #[test]
    fn shared_and_own_variables_land_in_their_parts() {
        let config = GatewayConfig::from_env(&env(&[
            ("CHAT_MAX_BODY_CHARS", "99"),
            ("CHAT_OUTBOUND_QUEUE", "64"),
            ("CHAT_WEBSOCKET_GRACE", "30s"),
            ("CHAT_REQUEST_GRACE", "1s"),
        ]))
        .unwrap();
        assert_eq!(config.common.max_body_chars, 99);
        assert_eq!(config.outbound_queue, 64);
        assert_eq!(config.websocket_grace, Duration::from_secs(30));
    }

    #[test]
    fn the_old_shutdown_grace_still_sets_the_websocket_grace() {
        let old = env(&[("CHAT_SHUTDOWN_GRACE", "4s")]);
        assert_eq!(
            GatewayConfig::from_env(&old).unwrap().websocket_grace,
            Duration::from_secs(4)
        );
        let both = env(&[
            ("CHAT_SHUTDOWN_GRACE", "4s"),
            ("CHAT_WEBSOCKET_GRACE", "1s"),
        ]);
        assert_eq!(
            GatewayConfig::from_env(&both).unwrap().websocket_grace,
            Duration::from_secs(1)
        );
    }

    #[test]
    fn each_bad_value_names_its_variable() {
        for (name, value) in [
            ("CHAT_GATEWAY_ADDR", "localhost"),
            ("CHAT_HEARTBEAT_INTERVAL", "50ms"),
            ("CHAT_SYNC_GRACE", "1"),
            ("CHAT_MAX_MESSAGE_BYTES", "512"),
            ("CHAT_OUTBOUND_QUEUE", "8"),
            ("CHAT_MAX_CONNECTIONS", "0"),
            ("CHAT_FANOUT_INTERVAL", "2s"),
            ("CHAT_HUB_SHARDS", "1000"),
            ("CHAT_WEBSOCKET_GRACE", "forever"),
            ("CHAT_ALLOWED_ORIGINS", "example.com"),
            ("CHAT_PUBLIC_ORIGIN", "chat"),
            ("CHAT_READ_BURST", "0"),
            ("CHAT_CALL_BURST", "0"),
            ("CHAT_CALL_RING_TIMEOUT", "10ms"),
            ("CHAT_GATEWAY_LEASE", "1s"),
        ] {
            let err = GatewayConfig::from_env(&env(&[(name, value)]))
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(name), "{name}={value}: {err}");
        }
    }
}
