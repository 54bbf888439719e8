//! Starting, serving and draining a gateway. `Gateway::build` binds (so
//! port 0 works), `Gateway::run` accepts connections until the shutdown
//! future resolves, then drains: `/readyz` turns 503, no new connections,
//! every connection closes with 1012, and the process waits for them at most
//! `CHAT_WEBSOCKET_GRACE` (contract point 7).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use chat_shared::auth::{read_key, TokenScope, TokenVerifier};
use chat_shared::bus::{self, Bus, Publisher};
use chat_shared::limits::UserLimits;
use chat_shared::listener::Listener;
use chat_shared::store::{self, Health, Store};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{header, Method, Request, Response, StatusCode};
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::calls::sweeper::Sweeper;
use crate::config::GatewayConfig;
use crate::connection;
use crate::context::Context;
use crate::handshake;
use crate::hub::{Hub, Timing};
use crate::metrics;

/// A gateway without a listener of its own: what the all-in-one binary
/// mounts at `/v1/ws` beside the api, and what [`Gateway`] serves alone.
#[derive(Clone)]
pub struct GatewayService {
    ctx: Arc<Context>,
}

impl GatewayService {
    /// Starts the hub and the publisher over a given store and bus.
    pub async fn start(
        config: GatewayConfig,
        store: Arc<dyn Store>,
        bus: Arc<dyn Bus>,
        limits: Arc<UserLimits>,
    ) -> chat_shared::Result<Self> {
        chat_shared::metrics::install();
        let public_key = config
            .common
            .jwt_public_key
            .clone()
            .unwrap_or_else(|| config.common.data_dir.join("jwt-public.pem"));
        let scope = TokenScope {
            issuer: config.common.jwt_issuer.clone(),
            audience: config.common.jwt_audience.clone(),
        };
        let verifier = TokenVerifier::new(read_key(&public_key)?.as_bytes(), &scope)?;
        let (subscriber, deliveries) = bus.subscriber().await?;
        let timing = Timing {
            gap_wait: config.gap_wait,
            fan_out_interval: config.fanout_interval,
            head_check: config.head_check_interval,
            presence_beat: config.heartbeat_interval,
        };
        let publisher = Publisher::start(bus);
        // By default a shard per core the process may use: fan-out, the
        // hub's work, then runs on all of them.
        let shards = match config.hub_shards {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            shards => shards,
        };
        let hub = Hub::start(
            subscriber,
            deliveries,
            store.clone(),
            publisher.clone(),
            timing,
            shards,
        );
        let writers = crate::writers::Writers::start()?;
        let listening = config.bound.unwrap_or(config.gateway_addr);
        if config.public_origin.is_none() && listening.ip().is_unspecified() {
            tracing::warn!(
                %listening,
                "CHAT_PUBLIC_ORIGIN is unset: browsers may open WebSockets only from http://localhost and http://127.0.0.1 on this port; set it to the origin users load the page from"
            );
        }
        let ctx = Context::new(config, store, verifier, hub, publisher, writers, limits)?;
        // Before any connection: a call placed here must be under a lease.
        Sweeper::start(&ctx).await?;
        tokio::spawn(prune_limits(Arc::downgrade(&ctx)));
        Ok(Self { ctx })
    }

    /// Answers a request for `/v1/ws`: admits and upgrades it, or refuses
    /// it over plain HTTP.
    pub async fn websocket<B>(&self, request: Request<B>) -> Response<Body> {
        // Each connection holds a slot for its whole life.
        let Ok(permit) = self.ctx.slots.clone().try_acquire_owned() else {
            metrics::connection_limited();
            return refusal(handshake::Refusal::full());
        };
        // The embedding router has set the request's id by now (or the
        // client did); the connection's span carries it.
        let incoming = request.headers().get(chat_shared::request_id::HEADER);
        let id = chat_shared::request_id::keep_or_new(incoming.map(|v| v.as_bytes()));
        upgrade(self.ctx.clone(), Arc::new(permit), request, &id).await
    }

    /// Drains: `/readyz` turns 503, every connection closes with 1012, and
    /// this returns once they have ended or `CHAT_WEBSOCKET_GRACE` passed.
    pub async fn drain(&self) {
        drain(&self.ctx, TaskTracker::new()).await;
    }
}

/// A bound, ready-to-run gateway.
pub struct Gateway {
    listener: Listener,
    service: GatewayService,
}

impl Gateway {
    /// Opens the store and the bus named by the configuration and binds.
    pub async fn build(config: GatewayConfig) -> chat_shared::Result<Self> {
        let common = &config.common;
        let store = store::connect(&common.database_url(), common.db_max_connections).await?;
        let bus = bus::connect(common.redis_url.as_deref(), &common.bus_prefix).await?;
        Self::with_parts(config, store, bus).await
    }

    /// Builds over a given store and bus (tests, fault injection).
    pub async fn with_parts(
        mut config: GatewayConfig,
        store: Arc<dyn Store>,
        bus: Arc<dyn Bus>,
    ) -> chat_shared::Result<Self> {
        let addr = config.gateway_addr;
        let listener = Listener::bind(addr, config.common.max_connections_per_address)
            .await
            .map_err(|e| {
                chat_shared::Error::Config(format!("CHAT_GATEWAY_ADDR={addr}: cannot listen: {e}"))
            })?;
        config.bound = listener.local_addr().into();
        let limits = Arc::new(UserLimits::new(config.common.budgets()));
        let service = GatewayService::start(config, store, bus, limits).await?;
        Ok(Self { listener, service })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then drains.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        let Self { listener, service } = self;
        let ctx = service.ctx;
        // Plain HTTP connections (probes, handshakes in progress); they
        // finish when `ctx.drain` is cancelled.
        let http = TaskTracker::new();
        let serving = chat_shared::http_server::serve(
            listener,
            ctx.config.common.header_read_timeout,
            &http,
            ctx.drain.clone(),
            |_| {
                // Each connection holds a slot for its whole life, upgraded or not.
                let Ok(permit) = ctx.slots.clone().try_acquire_owned() else {
                    metrics::connection_limited();
                    // Counted above; a line per refusal would be a busy log
                    // exactly when the gateway is full.
                    tracing::debug!("connection limit reached; refusing a connection");
                    return None;
                };
                let (ctx, permit) = (ctx.clone(), Arc::new(permit));
                Some(service_fn(move |request| {
                    route(ctx.clone(), permit.clone(), request)
                }))
            },
        );
        // Stops accepting as soon as `shutdown` resolves (dropping the
        // listener); `drain` then finishes the connections.
        tokio::select! {
            () = serving => {}
            () = shutdown => {}
        }
        drain(&ctx, http).await;
    }
}

/// Forgets the rate state of users whose allowance is full again, so the
/// limiters hold only recent senders; ends with the gateway.
async fn prune_limits(ctx: std::sync::Weak<Context>) {
    let mut every = tokio::time::interval(UserLimits::PRUNE_EVERY);
    loop {
        every.tick().await;
        let Some(ctx) = ctx.upgrade() else { return };
        ctx.limits.prune();
        ctx.ephemeral.prune(tokio::time::Instant::now());
    }
}

async fn drain(ctx: &Context, http: TaskTracker) {
    let grace = ctx.config.websocket_grace;
    tracing::info!(
        connections = ctx.connections.len(),
        "draining: closing sessions with 1012"
    );
    ctx.draining.store(true, Ordering::Relaxed);
    ctx.drain.cancel();
    ctx.connections.close();
    http.close();
    let finished = tokio::time::timeout(grace, async {
        http.wait().await;
        ctx.connections.wait().await;
    })
    .await;
    if finished.is_err() {
        tracing::warn!(
            ?grace,
            "grace period over; exiting with sessions still open"
        );
    }
    // The closed connections' users are leaving under the departure grace,
    // which this process will not see out.
    ctx.hub.depart_all().await;
    // Their calls have ended as they closed; the lease goes last.
    ctx.sweeper.stop().await;
}

/// The body of every response the gateway makes itself.
pub type Body = Full<Bytes>;

/// Headers on every answer of the gateway's own listener.
const SECURITY_HEADERS: [(header::HeaderName, &str); 3] = [
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; frame-ancestors 'none'",
    ),
    (header::REFERRER_POLICY, "no-referrer"),
];

/// Answers one HTTP request inside a `request` span carrying its request
/// id (as the api does), and returns that id in `x-request-id`. A WebSocket
/// connection started here runs in a `session` span with the same id.
async fn route(
    ctx: Arc<Context>,
    permit: Arc<OwnedSemaphorePermit>,
    request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    use chat_shared::request_id;
    let incoming = request.headers().get(request_id::HEADER);
    let id = request_id::keep_or_new(incoming.map(|v| v.as_bytes()));
    let span = tracing::info_span!("request", method = %request.method(), uri = %request.uri(), request_id = %id);
    let mut response = respond(ctx, permit, request, &id).instrument(span).await;
    let value = header::HeaderValue::from_str(&id).expect("a sane request id is a header value");
    let headers = response.headers_mut();
    headers.insert(header::HeaderName::from_static(request_id::HEADER), value);
    // What the api's answers say too: nothing here is a page, may be
    // sniffed into one, framed, or a referrer elsewhere.
    for (name, value) in SECURITY_HEADERS {
        headers.insert(name, header::HeaderValue::from_static(value));
    }
    Ok(response)
}

async fn respond(
    ctx: Arc<Context>,
    permit: Arc<OwnedSemaphorePermit>,
    request: Request<Incoming>,
    request_id: &str,
) -> Response<Body> {
    match (request.method(), request.uri().path()) {
        (&Method::GET, "/v1/ws") => upgrade(ctx, permit, request, request_id).await,
        (&Method::GET, "/healthz") => json(StatusCode::OK, r#"{"status":"ok"}"#.into()),
        (&Method::GET, "/readyz") => ready(&ctx).await,
        // Internal: the load balancer must not route it (docs/operations.md).
        (&Method::GET, "/metrics") => Response::builder()
            .header(header::CONTENT_TYPE, chat_shared::metrics::CONTENT_TYPE)
            .body(Body::new(Bytes::from(metrics::render())))
            .expect("a static response is valid"),
        _ => json(
            StatusCode::NOT_FOUND,
            r#"{"error":{"code":"not_found","message":"route not found"}}"#.into(),
        ),
    }
}

async fn ready(ctx: &Context) -> Response<Body> {
    if ctx.is_draining() {
        return json(
            StatusCode::SERVICE_UNAVAILABLE,
            r#"{"status":"draining"}"#.into(),
        );
    }
    match ctx.store.health().await {
        Ok(Health::Ready) => json(StatusCode::OK, r#"{"status":"ready"}"#.into()),
        // Still ready: every instance shares the store, so turning them all
        // away would add a full outage to a write outage (docs/operations.md).
        Ok(Health::RefusingWrites) => json(
            StatusCode::OK,
            r#"{"status":"degraded","store":"refusing_writes"}"#.into(),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            json(
                StatusCode::SERVICE_UNAVAILABLE,
                r#"{"status":"unavailable","store":"unreachable"}"#.into(),
            )
        }
    }
}

/// Admits and upgrades a WebSocket, or refuses it over plain HTTP.
async fn upgrade<B>(
    ctx: Arc<Context>,
    permit: Arc<OwnedSemaphorePermit>,
    mut request: Request<B>,
    request_id: &str,
) -> Response<Body> {
    if ctx.is_draining() {
        return refusal(handshake::Refusal::draining());
    }
    if !fastwebsockets::upgrade::is_upgrade_request(&request) {
        metrics::handshake_rejected("upgrade_required");
        return json(
            StatusCode::UPGRADE_REQUIRED,
            r#"{"error":{"code":"upgrade_required","message":"this is a WebSocket endpoint"}}"#
                .into(),
        );
    }
    let admitted = match handshake::admit(request.headers(), &ctx.origins, &ctx.verifier) {
        Ok(admitted) => admitted,
        Err(refused) => return refusal(refused),
    };
    // A logged-out connection's tokens stop working here too.
    match ctx.store.session(admitted.claims.sid).await {
        Ok(Some(s)) if s.revoked_at.is_none() && s.user_id == admitted.claims.sub => {}
        Ok(_) => return refusal(handshake::Refusal::revoked()),
        Err(e) => {
            tracing::warn!(error = %e, "session check failed");
            return refusal(handshake::Refusal::unavailable());
        }
    }
    let (mut response, upgraded) = match fastwebsockets::upgrade::upgrade(&mut request) {
        Ok(parts) => parts,
        Err(e) => {
            tracing::debug!(error = %e, "bad upgrade request");
            metrics::handshake_rejected("bad_upgrade");
            return json(
                StatusCode::BAD_REQUEST,
                r#"{"error":{"code":"bad_upgrade","message":"invalid WebSocket upgrade request"}}"#
                    .into(),
            );
        }
    };
    if admitted.echo_subprotocol {
        response.headers_mut().insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            header::HeaderValue::from_static(chat_shared::protocol::SUBPROTOCOL),
        );
    }
    let claims = admitted.claims;
    // A span of its own with the request's id, not a child of the request's
    // span: a child would keep its parent (and the parent's formatted
    // fields) for the connection's life, memory every idle connection pays.
    // The connection records its key once it has one.
    let span = tracing::info_span!(
        parent: None,
        "session",
        request_id,
        session = tracing::field::Empty,
        user_id = %claims.sub
    );
    let connections = ctx.connections.clone();
    let start = connection::Start {
        ctx,
        upgraded,
        claims,
        permit,
    };
    let writers = start.ctx.writers.handle().clone();
    connections.spawn_on(connection::run(Box::new(start)).instrument(span), &writers);
    response.map(|_| Body::default())
}

fn refusal(refused: handshake::Refusal) -> Response<Body> {
    metrics::handshake_rejected(refused.code);
    json(refused.status, refused.body())
}

fn json(status: StatusCode, body: String) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::new(Bytes::from(body)))
        .expect("a static response is valid")
}
