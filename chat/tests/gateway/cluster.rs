//! `TestCluster`: one real `chat-api` and N real gateways on port 0, over a
//! fresh database and a bus (Redis under a prefix of the test's own, or the
//! in-process bus), driven by the test kit's `TestClient`, a WebSocket
//! client written against docs/protocol.md alone that waits for what it
//! expects with a timeout — never a sleep.

use std::sync::Arc;
use std::time::Duration;

use chat_api::{ApiConfig, App, AppState};
use chat_gateway::{Gateway, GatewayConfig};
use chat_shared::bus::{Bus, MemoryBus, RedisBus};
use chat_shared::config::CommonConfig;
use chat_shared::store::Store;
use chat_shared::testing::{self, Backend, TestDatabase};
use chat_testkit::launcher::{free_addr, Service};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::sync::oneshot;

pub use chat_testkit::client::{TestClient, WAIT};

/// Which bus the cluster runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusKind {
    /// Redis pub/sub, one connection per process.
    Redis,
    /// The in-process bus (one gateway only, as in the embedded binary).
    Memory,
}

/// The shapes a test can run on.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    /// The store.
    pub backend: Backend,
    /// The bus.
    pub bus: BusKind,
    /// How many gateways.
    pub gateways: usize,
}

impl Setup {
    /// The production shape: PostgreSQL, Redis, two gateways.
    pub const SCALED: Self = Self {
        backend: Backend::Postgres,
        bus: BusKind::Redis,
        gateways: 2,
    };
    /// The embedded shape: SQLite, the in-process bus, one gateway.
    pub const EMBEDDED: Self = Self {
        backend: Backend::Sqlite,
        bus: BusKind::Memory,
        gateways: 1,
    };
}

/// Runs a test on the scaled-out and the embedded shape.
#[macro_export]
macro_rules! both_shapes {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn scaled() {
                super::$name($crate::cluster::Setup::SCALED).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn embedded() {
                super::$name($crate::cluster::Setup::EMBEDDED).await
            }
        }
    )*};
}

/// A running api and gateways.
pub struct TestCluster {
    /// `http://127.0.0.1:<port>` of the api.
    pub api: String,
    /// `ws://127.0.0.1:<port>/v1/ws` of each gateway.
    pub gateways: Vec<String>,
    /// The store the cluster uses, for checking what was stored.
    pub store: Arc<dyn Store>,
    /// The setup it runs.
    pub setup: Setup,
    http: reqwest::Client,
    stops: Vec<Option<oneshot::Sender<()>>>,
    db: TestDatabase,
    prefix: String,
    /// The Redis every process of the cluster uses (with `BusKind::Redis`).
    redis_url: String,
}

/// A registered user.
#[derive(Clone, Debug)]
pub struct User {
    /// Their id.
    pub id: String,
    /// Their access token.
    pub token: String,
}

impl TestCluster {
    /// Starts a cluster with default gateway settings, but a send rate no
    /// test reaches unless it means to.
    pub async fn start(setup: Setup) -> Self {
        Self::start_with(setup, |_| {}).await
    }

    /// Starts a cluster after `adjust` has changed every gateway's settings.
    pub async fn start_with(setup: Setup, adjust: impl Fn(&mut GatewayConfig)) -> Self {
        Self::start_custom(setup, adjust, |bus| bus).await
    }

    /// Starts a cluster whose gateways see the bus through `wrap` (to drop,
    /// delay or reorder what they receive; the api's bus is not wrapped).
    pub async fn start_custom(
        setup: Setup,
        adjust: impl Fn(&mut GatewayConfig),
        wrap: impl Fn(Arc<dyn Bus>) -> Arc<dyn Bus>,
    ) -> Self {
        Self::start_inner(setup, testing::redis_url(), adjust, wrap).await
    }

    /// Starts a cluster whose api and gateways use the Redis at `redis_url`
    /// (a server of the test's own, or the shared one as a user of its own),
    /// so a test can break the bus without touching other tests.
    pub async fn start_on_redis(
        setup: Setup,
        redis_url: &str,
        adjust: impl Fn(&mut GatewayConfig),
    ) -> Self {
        Self::start_inner(setup, redis_url.to_owned(), adjust, |bus| bus).await
    }

    async fn start_inner(
        setup: Setup,
        redis_url: String,
        adjust: impl Fn(&mut GatewayConfig),
        wrap: impl Fn(Arc<dyn Bus>) -> Arc<dyn Bus>,
    ) -> Self {
        // `RUST_LOG=chat_gateway=debug cargo test …` shows the servers' logs.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let db = TestDatabase::create(setup.backend).await;
        let store = db.store().await;
        let prefix = testing::bus_prefix();
        let memory = MemoryBus::new();
        let api_config = ApiConfig {
            common: CommonConfig {
                data_dir: db.dir().to_path_buf(),
                database_url: Some(db.url().to_owned()),
                send_rate_per_second: 10_000,
                send_burst: 10_000,
                ..CommonConfig::default()
            },
            api_addr: "127.0.0.1:0".parse().unwrap(),
            auth_rate_per_minute: 10_000,
            auth_rate_burst: 10_000,
            action_rate_per_minute: 10_000,
            action_burst: 10_000,
            ..ApiConfig::default()
        };
        let api_bus = bus(setup.bus, &memory, &redis_url, &prefix).await;
        let state = AppState::with_parts(api_config, store.clone(), api_bus)
            .await
            .unwrap();
        let app = App::with_state(state).await.unwrap();
        let api = format!("http://{}", app.local_addr());
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(app.run(async move {
            let _ = stopped.await;
        }));
        let stops = vec![Some(stop)];
        let mut cluster = Self {
            api,
            gateways: Vec::new(),
            store,
            setup,
            http: reqwest::Client::new(),
            stops,
            db,
            prefix,
            redis_url,
        };
        for _ in 0..setup.gateways {
            cluster.add_gateway(&memory, &adjust, &wrap).await;
        }
        cluster
    }

    async fn add_gateway(
        &mut self,
        memory: &MemoryBus,
        adjust: &impl Fn(&mut GatewayConfig),
        wrap: &impl Fn(Arc<dyn Bus>) -> Arc<dyn Bus>,
    ) {
        let mut config = GatewayConfig {
            common: CommonConfig {
                data_dir: self.db.dir().to_path_buf(),
                database_url: Some(self.db.url().to_owned()),
                send_rate_per_second: 10_000,
                send_burst: 10_000,
                ..CommonConfig::default()
            },
            gateway_addr: "127.0.0.1:0".parse().unwrap(),
            // Both ways the hub takes the bus's deliveries, whatever the
            // machine: one shard reads them itself, several through the
            // router.
            hub_shards: match self.setup.bus {
                BusKind::Memory => 1,
                BusKind::Redis => 2,
            },
            ..GatewayConfig::default()
        };
        adjust(&mut config);
        let bus = wrap(bus(self.setup.bus, memory, &self.redis_url, &self.prefix).await);
        let gateway = Gateway::with_parts(config, self.store.clone(), bus)
            .await
            .unwrap();
        self.gateways
            .push(format!("ws://{}/v1/ws", gateway.local_addr()));
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(gateway.run(async move {
            let _ = stopped.await;
        }));
        self.stops.push(Some(stop));
    }

    /// Tells gateway `index` to shut down (as SIGTERM would).
    pub fn stop_gateway(&mut self, index: usize) {
        if let Some(stop) = self.stops[index + 1].take() {
            let _ = stop.send(());
        }
    }

    /// Registers a user.
    pub async fn user(&self, name: &str) -> User {
        self.credentials("/v1/auth/register", name, StatusCode::CREATED)
            .await
            .0
    }

    /// Logs a user registered with [`user`](Self::user) in again: a second
    /// login session, with its access and refresh token.
    pub async fn login(&self, name: &str) -> (User, String) {
        self.credentials("/v1/auth/login", name, StatusCode::OK)
            .await
    }

    /// Registers or logs in `name` (password `password-<name>`) at `path`;
    /// the user with its access token, and the refresh token.
    async fn credentials(&self, path: &str, name: &str, expected: StatusCode) -> (User, String) {
        let response = self
            .http
            .post(format!("{}{path}", self.api))
            .json(&json!({ "username": name, "password": format!("password-{name}") }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), expected, "{path}");
        let body: Value = response.json().await.unwrap();
        let user = User {
            id: body["user"]["id"].as_str().unwrap().to_owned(),
            token: body["access_token"].as_str().unwrap().to_owned(),
        };
        (user, body["refresh_token"].as_str().unwrap().to_owned())
    }

    /// Presents a refresh token; returns status and JSON body.
    pub async fn refresh(&self, refresh_token: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .post(format!("{}/v1/auth/refresh", self.api))
            .json(&json!({ "refresh_token": refresh_token }))
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// A REST call as `user`; returns status and JSON body.
    pub async fn rest(
        &self,
        user: &User,
        method: &str,
        path: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let response = self
            .http
            .request(method, format!("{}{path}", self.api))
            .bearer_auth(&user.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Uploads `bytes` as `name` of `content_type` into `room` as `user`;
    /// returns status and JSON body.
    pub async fn upload(
        &self,
        user: &User,
        room: &str,
        name: &str,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> (StatusCode, Value) {
        let response = self
            .http
            .post(format!("{}/v1/rooms/{room}/attachments", self.api))
            .query(&[("name", name)])
            .bearer_auth(&user.token)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(bytes)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Creates a public room owned by `owner` and has `members` join it.
    pub async fn room(&self, owner: &User, members: &[&User]) -> String {
        let (status, room) = self
            .rest(
                owner,
                "POST",
                "/v1/rooms",
                json!({ "name": "test", "kind": "public" }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{room}");
        let id = room["id"].as_str().unwrap().to_owned();
        for member in members {
            let (status, body) = self
                .rest(member, "POST", &format!("/v1/rooms/{id}/join"), json!({}))
                .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
        }
        id
    }

    /// Connects `user` to gateway `index` and reads `hello`.
    pub async fn connect(&self, user: &User, index: usize) -> TestClient {
        TestClient::connect(&self.gateways[index], &user.token)
            .await
            .unwrap_or_else(|e| panic!("connecting to gateway {index}: {e}"))
    }

    /// The `/metrics` text of gateway `index`. Every server of a test
    /// process shares one recorder: compare values before and after.
    pub async fn metrics(&self, index: usize) -> String {
        let url = self.gateways[index]
            .replacen("ws://", "http://", 1)
            .replacen("/v1/ws", "/metrics", 1);
        let response = self.http.get(url).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()["content-type"],
            "text/plain; version=0.0.4"
        );
        response.text().await.unwrap()
    }

    /// Starts the real `chat-gateway` binary as a process of its own (the
    /// test kit's launcher) on the cluster's database and Redis: its metrics
    /// recorder is its own, so what it counts is exactly what its clients
    /// did. Returns it (stopped when dropped) and its WebSocket URL.
    pub async fn gateway_process(&self) -> (Service, String) {
        self.gateway_process_with(&[]).await
    }

    /// [`gateway_process`](Self::gateway_process) with further `CHAT_*`
    /// variables (a short lease, say).
    pub async fn gateway_process_with(&self, vars: &[(&str, &str)]) -> (Service, String) {
        assert_eq!(self.setup.bus, BusKind::Redis, "a process needs Redis");
        let addr = free_addr().unwrap();
        let data = self.db.dir().join(format!("gateway-{}", addr.port()));
        let mut gateway = Service::new(
            "chat-gateway",
            chat_testkit::launcher::binary("chat-gateway").expect("the chat-gateway binary"),
            self.db.dir(),
        )
        .at(addr)
        .env("CHAT_GATEWAY_ADDR", addr.to_string())
        .env("CHAT_DATA_DIR", &data)
        .env("CHAT_JWT_PUBLIC_KEY", self.db.dir().join("jwt-public.pem"))
        .env("DATABASE_URL", self.db.url())
        .env("REDIS_URL", &self.redis_url)
        .env("CHAT_BUS_PREFIX", &self.prefix)
        .env("CHAT_LOG", "warn")
        .envs(vars.iter().copied());
        gateway.start().unwrap();
        gateway
            .wait_ready(&self.http, Duration::from_secs(30))
            .await
            .unwrap();
        (gateway, format!("ws://{addr}/v1/ws"))
    }

    /// The directory holding the cluster's data, including the api's JWT
    /// key pair (`jwt-private.pem`, `jwt-public.pem`).
    pub fn data_dir(&self) -> &std::path::Path {
        self.db.dir()
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for stop in self.stops.iter_mut().filter_map(Option::take) {
            let _ = stop.send(());
        }
    }
}

async fn bus(kind: BusKind, memory: &MemoryBus, url: &str, prefix: &str) -> Arc<dyn Bus> {
    match kind {
        BusKind::Memory => Arc::new(memory.clone()),
        BusKind::Redis => Arc::new(RedisBus::connect(url, prefix).await.unwrap_or_else(|e| {
            panic!("Redis is not reachable at {url} ({e}); start it (see README)")
        })),
    }
}
