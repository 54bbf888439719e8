//! What every part of a gateway shares: configuration, the store, the token
//! verifier, the hub, the bus publisher, and the shutdown signals.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use chat_shared::limits::UserLimits;

use chat_shared::auth::TokenVerifier;
use chat_shared::bus::Publisher;
use chat_shared::store::Store;
use chat_shared::{Error, Result};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::calls::sweeper::Sweeper;
use crate::config::GatewayConfig;
use crate::ephemeral::Ephemeral;
use crate::hub::Hub;
use crate::origins::Allowed;
use crate::writers::Writers;

/// Shared by the listener and every connection.
pub struct Context {
    /// The configuration the gateway started with.
    pub config: GatewayConfig,
    /// Origins allowed to open a WebSocket.
    pub origins: Allowed,
    /// Everything durable. Called on the gateway's runtime only; connections,
    /// on the writer threads, go through [`Context::on_home`].
    pub store: Arc<dyn Store>,
    /// Checks access tokens with the public key.
    pub verifier: TokenVerifier,
    /// Routes room events to connections.
    pub hub: Hub,
    /// Publishes to the bus off the request path.
    pub publisher: Publisher,
    /// Sends, typing and signals per user, across their connections to
    /// this process (shared with the api in `chat`).
    pub limits: Arc<UserLimits>,
    /// The last typing and read relays, per room and user.
    pub ephemeral: Ephemeral,
    /// Cancelled on shutdown: every connection closes with 1012.
    pub drain: CancellationToken,
    /// Set on shutdown, so `/readyz` turns away the load balancer first.
    pub draining: AtomicBool,
    /// Every connection task, so shutdown can wait for them.
    pub connections: TaskTracker,
    /// One permit per open connection, up to `CHAT_MAX_CONNECTIONS`.
    pub slots: Arc<Semaphore>,
    /// Where connections run (and write).
    pub writers: Writers,
    /// The runtime the gateway started on, where each connection's inbound
    /// task runs, with the hub and the store.
    pub home: tokio::runtime::Handle,
    /// This process among the gateways: the lease that keeps the calls of
    /// its connections (a call whose party's gateway stops renewing it is
    /// ended by another's sweep).
    pub gateway: uuid::Uuid,
    /// Renews that lease and ends the calls nobody ends.
    pub sweeper: Sweeper,
    next_key: AtomicU64,
}

impl Context {
    /// Assembles the context; `home` is the runtime this is called on.
    pub fn new(
        config: GatewayConfig,
        store: Arc<dyn Store>,
        verifier: TokenVerifier,
        hub: Hub,
        publisher: Publisher,
        writers: Writers,
        limits: Arc<UserLimits>,
    ) -> Result<Arc<Self>> {
        let origins = config.origins()?;
        Ok(Arc::new(Self {
            slots: Arc::new(Semaphore::new(config.max_connections)),
            origins,
            limits,
            ephemeral: Ephemeral::default(),
            config,
            store,
            verifier,
            hub,
            publisher,
            drain: CancellationToken::new(),
            draining: AtomicBool::new(false),
            connections: TaskTracker::new(),
            writers,
            home: tokio::runtime::Handle::current(),
            gateway: uuid::Uuid::now_v7(),
            sweeper: Sweeper::default(),
            next_key: AtomicU64::new(1),
        }))
    }

    /// A key no other connection of this gateway has.
    pub fn next_session_key(&self) -> u64 {
        self.next_key.fetch_add(1, Ordering::Relaxed)
    }

    /// Whether shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Runs a store call on the gateway's own runtime and waits for it;
    /// what connections (on the writer threads) use to reach the store.
    ///
    /// A pooled connection stays on the reactor of the runtime that opened
    /// it. Opened from a writer thread, it would be woken through the
    /// writers' reactor wherever it served next (the send path's commits
    /// among them), and fail for good once the writers stop: a store shared
    /// with the api (the embedded binary) or with another gateway was left
    /// with dead connections after a drain.
    pub async fn on_home<T, F>(&self, call: impl FnOnce(Arc<dyn Store>) -> F) -> Result<T>
    where
        T: Send + 'static,
        F: Future<Output = Result<T>> + Send + 'static,
    {
        match self.home.spawn(call(self.store.clone())).await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(Error::Io(std::io::Error::other(
                "the gateway's runtime is shutting down",
            ))),
        }
    }
}
