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
use chat_shared::config::LogFormat;
use chat_shared::listener::Listener;
use chat_shared::{bus, store};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use web_client::WebClient;

/// Settings of the all-in-one binary itself; the api's and the gateway's
/// own settings are read from the same environment.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ChatConfig {
    /// `CHAT_ADDR`: where to listen.
    pub addr: SocketAddr,
    /// `CHAT_WEB_DIR`: the web client's files.
    pub web_dir: PathBuf,
    /// `CHAT_METRICS_ADDR`: where to serve `/metrics`, apart from the
    /// public port; unset, nowhere.
    pub metrics_addr: Option<SocketAddr>,
    /// `CHAT_LOG`: log filter.
    pub log: String,
    /// `CHAT_LOG_FORMAT`: `text` or `json`.
    pub log_format: LogFormat,
}

impl Default for ChatConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            web_dir: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../web-client")),
            metrics_addr: None,
            log: "info".into(),
            log_format: LogFormat::Text,
        }
    }
}

/// Everything the binary needs, read from the environment.
pub struct Settings {
    /// The binary's own settings.
    pub chat: ChatConfig,
    /// The api's.
    pub api: ApiConfig,
    /// The gateway's.
    pub gateway: GatewayConfig,
}

impl Settings {
    /// Reads all three; the error names the variable at fault.
    pub fn from_env() -> chat_shared::Result<Self> {
        Ok(Self {
            chat: chat_shared::config::from_env()?,
            api: ApiConfig::from_env()?,
            gateway: GatewayConfig::from_env()?,
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
        let web = std::sync::Arc::new(WebClient::load(&chat.web_dir)?);
        let metrics = match chat.metrics_addr {
            Some(addr) => Some(Listener::bind(addr, 0).await.map_err(|e| {
                chat_shared::Error::Config(format!("CHAT_METRICS_ADDR={addr}: cannot listen: {e}"))
            })?),
            None => None,
        };
        std::fs::create_dir_all(&api.data_dir)?;
        let store = store::connect(&api.database_url, api.db_max_connections).await?;
        let bus = bus::connect(api.redis_url.as_deref(), &api.bus_prefix).await?;
        api.api_addr = chat.addr;
        let listener = App::listen(chat.addr, &api).await?;
        // Pages come from this listener: its origin may open WebSockets.
        gateway.bound = Some(listener.local_addr());
        // The api creates the key pair on first start; the gateway then
        // reads its public half from the same data dir.
        let state = AppState::with_parts(api, store.clone(), bus.clone())?;
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
    /// 1012 and lets HTTP requests in flight finish.
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
