//! `chat`: the embedded default. One process serves the REST api under
//! `/v1`, one gateway at `/v1/ws` and the web client at `/`, on one port,
//! over SQLite and the in-process bus unless `DATABASE_URL` / `REDIS_URL`
//! say otherwise. On first start it creates the data dir, the database and
//! the JWT key pair; later starts reuse them.

mod web_client;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;

use axum::extract::Request;
use axum::response::IntoResponse;
use axum::routing::get;
use chat_api::{ApiConfig, ApiError, App, AppState};
use chat_gateway::{GatewayConfig, GatewayService};
use chat_shared::config::{CommonConfig, Env};
use chat_shared::listener::Listener;
use chat_shared::{bus, store};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use web_client::WebClient;

/// Settings of the all-in-one binary itself (logging is the shared
/// `CHAT_LOG` / `CHAT_LOG_FORMAT`, in [`CommonConfig`]).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct ChatConfig {
    /// `CHAT_ADDR`: where to listen.
    pub addr: SocketAddr,
    /// `CHAT_WEB_DIR`: the web client's files.
    pub web_dir: PathBuf,
    /// `CHAT_METRICS_ADDR`: where to serve `/metrics`, apart from the
    /// public port; unset, nowhere.
    pub metrics_addr: Option<SocketAddr>,
}

impl Default for ChatConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            web_dir: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../web-client")),
            metrics_addr: None,
        }
    }
}

/// Everything the binary needs: its own settings and the api's and the
/// gateway's, all parsed from one read of the environment. The shared
/// settings are parsed once and each of the two gets a copy; `chat` opens
/// the store and the bus, and sets the budgets, from the api's.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The binary's own settings.
    pub chat: ChatConfig,
    /// The api's.
    pub api: ApiConfig,
    /// The gateway's.
    pub gateway: GatewayConfig,
}

impl Settings {
    /// Parses every part from `env`; the error names the variable at fault.
    pub fn from_env(env: &Env) -> chat_shared::Result<Self> {
        let common = CommonConfig::from_env(env)?;
        Ok(Self {
            chat: env.parse()?,
            api: ApiConfig::with_common(common.clone(), env)?,
            gateway: GatewayConfig::with_common(common, env)?,
        })
    }
}

/// A bound, ready-to-run all-in-one server.
pub struct Chat {
    app: App,
    gateway: GatewayService,
    metrics: Option<Listener>,
}

impl Chat {
    /// Opens (creating on first start) the store and the keys, starts the
    /// gateway and binds `CHAT_ADDR`.
    pub async fn build(settings: Settings) -> chat_shared::Result<Self> {
        let Settings {
            chat,
            mut api,
            mut gateway,
        } = settings;
        let media = chat_shared::blobs::download_origin(&api.blobs);
        let web = std::sync::Arc::new(WebClient::load(&chat.web_dir, media.as_deref())?);
        let metrics = match chat.metrics_addr {
            Some(addr) => Some(Listener::bind(addr, 0).await.map_err(|e| {
                chat_shared::Error::Config(format!("CHAT_METRICS_ADDR={addr}: cannot listen: {e}"))
            })?),
            None => None,
        };
        let common = &api.common;
        std::fs::create_dir_all(&common.data_dir)?;
        let store = store::connect(&common.database_url(), common.db_max_connections).await?;
        let bus = bus::connect(common.redis_url.as_deref(), &common.bus_prefix).await?;
        api.api_addr = chat.addr;
        let listener = App::listen(chat.addr, &api).await?;
        // Pages come from this listener: its origin may open WebSockets.
        gateway.bound = Some(listener.local_addr());
        // The api creates the key pair on first start; the gateway then
        // reads its public half from the same data dir.
        let state = AppState::with_parts(api, store.clone(), bus.clone()).await?;
        // One budget per user for REST and WebSocket sends alike.
        let limits = state.limits.clone();
        let gateway = GatewayService::start(gateway, store, bus, limits).await?;
        let ws = gateway.clone();
        let app = App::with_routes_on(listener, state, move |routes| {
            routes
                .route(
                    "/v1/ws",
                    get(move |request: Request| {
                        let ws = ws.clone();
                        async move { ws.websocket(request).await }
                    }),
                )
                .fallback(move |request: Request| {
                    let web = web.clone();
                    async move {
                        // The api's namespace answers in the api's error
                        // shape, even for a route it does not have.
                        if request.uri().path().starts_with("/v1/") {
                            return ApiError::NotFound("route").into_response();
                        }
                        web.serve(request).await
                    }
                })
        });
        Ok(Self {
            app,
            gateway,
            metrics,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.app.local_addr()
    }

    /// Where `/metrics` is served, if anywhere.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(Listener::local_addr)
    }

    /// Serves until `shutdown` resolves; then closes the WebSockets with
    /// 1012 (waiting up to `CHAT_WEBSOCKET_GRACE` for them) and lets HTTP
    /// requests in flight finish (up to `CHAT_REQUEST_GRACE`).
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        let Self {
            app,
            gateway,
            metrics,
        } = self;
        let stop_metrics = CancellationToken::new();
        let scrapes = TaskTracker::new();
        if let Some(listener) = metrics {
            let (scrapes, stop) = (scrapes.clone(), stop_metrics.clone());
            tokio::spawn(async move {
                chat_shared::http_server::serve_metrics(listener, &scrapes, stop).await;
            });
        }
        app.run(async move {
            shutdown.await;
            gateway.drain().await;
        })
        .await;
        stop_metrics.cancel();
        scrapes.close();
        scrapes.wait().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_vars(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn an_empty_environment_gives_the_defaults_of_every_part() {
        let settings = Settings::from_env(&Env::default()).unwrap();
        assert_eq!(settings.chat, ChatConfig::default());
        assert_eq!(settings.chat.addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(settings.api, ApiConfig::default());
        assert_eq!(settings.gateway, GatewayConfig::default());
    }

    #[test]
    fn each_part_gets_the_shared_settings_and_its_own() {
        let settings = Settings::from_env(&env(&[
            ("CHAT_ADDR", "0.0.0.0:9000"),
            ("CHAT_DATA_DIR", "/srv/chat"),
            ("CHAT_SEND_BURST", "5"),
            ("CHAT_MAX_REQUEST_BYTES", "1024"),
            ("CHAT_OUTBOUND_QUEUE", "32"),
            ("CHAT_REQUEST_GRACE", "3s"),
            ("CHAT_WEBSOCKET_GRACE", "20s"),
            ("CHAT_TURN_URLS", "turn:turn.example.org:3478"),
            ("CHAT_TURN_SECRET", "north-wind"),
        ]))
        .unwrap();
        assert_eq!(settings.chat.addr, "0.0.0.0:9000".parse().unwrap());
        assert_eq!(settings.api.common, settings.gateway.common);
        assert_eq!(settings.api.common.send_burst, 5);
        assert_eq!(
            settings.api.common.database_url(),
            "sqlite:///srv/chat/chat.db"
        );
        assert_eq!(settings.api.max_request_bytes, 1024);
        assert_eq!(settings.gateway.outbound_queue, 32);
        assert_eq!(settings.api.request_grace, Duration::from_secs(3));
        assert_eq!(settings.gateway.websocket_grace, Duration::from_secs(20));
        // Calls' ICE servers are the api's (`GET /v1/calls/ice-servers`).
        let (turn_urls, _) = settings.api.ice.turn().unwrap();
        assert_eq!(turn_urls, ["turn:turn.example.org:3478"]);
    }

    #[test]
    fn the_old_shutdown_grace_still_sets_both_phases() {
        let settings = Settings::from_env(&env(&[("CHAT_SHUTDOWN_GRACE", "4s")])).unwrap();
        assert_eq!(settings.api.request_grace, Duration::from_secs(4));
        assert_eq!(settings.gateway.websocket_grace, Duration::from_secs(4));
    }

    #[test]
    fn a_bad_value_of_any_part_names_its_variable() {
        for (name, value) in [
            ("CHAT_METRICS_ADDR", "9090"),
            ("CHAT_LOG_FORMAT", "yaml"),
            ("CHAT_MAX_WAITING_HASHES", "some"),
            ("CHAT_GAP_WAIT", "-1s"),
            ("CHAT_TURN_TTL", "0s"),
        ] {
            let err = Settings::from_env(&env(&[(name, value)]))
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with(&format!("{name}=")),
                "{name}={value}: {err}"
            );
        }
    }
}
