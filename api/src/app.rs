//! Starting and stopping the api: `App::build` binds (so port 0 works and
//! tests learn the address), `App::run` serves until the shutdown future
//! resolves, then drains in-flight requests for at most the grace period.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Request};
use axum::http::{header, HeaderName, HeaderValue};
use axum::middleware::{from_fn, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use chat_shared::listener::Listener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::{ServiceBuilder, ServiceExt};
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use tracing::{Instrument, Span};

use chat_shared::telemetry;

use crate::config::ApiConfig;
use crate::error::{log_internal_errors, ApiError};
use crate::routes;
use crate::state::AppState;

/// How long one request may take before it is answered 408.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A bound, ready-to-run api.
pub struct App {
    listener: Listener,
    router: Router,
    state: AppState,
}

impl App {
    /// Opens the store and the bus, loads keys and binds `config.api_addr`.
    pub async fn build(config: ApiConfig) -> chat_shared::Result<Self> {
        Self::with_state(AppState::build(config).await?).await
    }

    /// Binds an api over prepared state (tests, the all-in-one binary).
    pub async fn with_state(state: AppState) -> chat_shared::Result<Self> {
        Self::bind(state.clone(), router(state)).await
    }

    /// The api with routes of the embedder's own beside it (see
    /// [`routes_with`]), on a listener the embedder bound (it needs the
    /// address before it builds its routes); the all-in-one binary serves
    /// everything this way.
    pub fn with_routes_on(
        listener: Listener,
        state: AppState,
        extend: impl FnOnce(Router<AppState>) -> Router<AppState>,
    ) -> Self {
        Self {
            router: routes_with(state.clone(), extend),
            listener,
            state,
        }
    }

    /// Binds `addr` with the connection limits of `config`.
    pub async fn listen(addr: SocketAddr, config: &ApiConfig) -> chat_shared::Result<Listener> {
        Listener::bind(addr, config.common.max_connections_per_address)
            .await
            .map_err(|e| chat_shared::Error::Config(format!("cannot listen on {addr}: {e}")))
    }

    async fn bind(state: AppState, router: Router) -> chat_shared::Result<Self> {
        let listener = Self::listen(state.config.api_addr, &state.config).await?;
        Ok(Self {
            router,
            listener,
            state,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr()
    }

    /// The state the api runs with (tests read the store through it).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish
    /// for at most `CHAT_REQUEST_GRACE`.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        let config = &self.state.config;
        let (grace, header_read_timeout) =
            (config.request_grace, config.common.header_read_timeout);
        let pruner = tokio::spawn(prune_rate_limits(self.state.clone()));
        let sweeper = tokio::spawn(crate::sweeper::run(self.state.clone()));
        let finish = CancellationToken::new();
        let stopping = finish.clone();
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!("shutting down: draining in-flight requests");
            stopping.cancel();
        });
        let connections = TaskTracker::new();
        let router = self.router;
        chat_shared::http_server::serve(
            self.listener,
            header_read_timeout,
            &connections,
            finish,
            |connection| {
                let (router, peer) = (router.clone(), connection.peer);
                Some(hyper::service::service_fn(
                    move |mut request: hyper::Request<hyper::body::Incoming>| {
                        // What `ClientIp` reads (axum::serve would insert it).
                        request.extensions_mut().insert(ConnectInfo(peer));
                        router.clone().oneshot(request)
                    },
                ))
            },
        )
        .await;
        connections.close();
        if tokio::time::timeout(grace, connections.wait())
            .await
            .is_err()
        {
            tracing::warn!(?grace, "grace period over; closing remaining connections");
        }
        pruner.abort();
        sweeper.abort();
    }
}

/// The api's router with its middleware and `/metrics` (internal: the load
/// balancer must not route it), answering unknown routes with a JSON 404.
pub fn router(state: AppState) -> Router {
    routes_with(state, |routes| {
        routes
            .route("/metrics", axum::routing::get(crate::metrics::render))
            .fallback(|| async { ApiError::NotFound("route") })
    })
}

/// The api's routes with its middleware, after `extend` has added routes of
/// its own (the all-in-one binary adds the WebSocket and the web client).
pub fn routes_with(
    state: AppState,
    extend: impl FnOnce(Router<AppState>) -> Router<AppState>,
) -> Router {
    let request_id = HeaderName::from_static(chat_shared::request_id::HEADER);
    let max_body = state.config.max_request_bytes;
    // Validated at start-up (`ApiConfig::validate`).
    let cors_origins = crate::cors::origins(&state.config.cors_origins).unwrap_or_default();
    let routes = extend(routes::router(&state))
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(
            ServiceBuilder::new()
                // Outermost: counts every answer, 408 and 413 included.
                .layer(from_fn(crate::metrics::record))
                .layer(SetRequestIdLayer::new(
                    request_id.clone(),
                    MakeRequestUuidV7,
                ))
                .layer(TraceLayer::new_for_http().make_span_with(request_span))
                .layer(PropagateRequestIdLayer::new(request_id))
                .layer(from_fn(trace_request))
                .layer(from_fn(log_internal_errors))
                .layer(from_fn(time_limit))
                // What no answer of the api should be: sniffed into another
                // type, framed, or a referrer elsewhere. Pages served beside
                // it (chat's web client) bring their own policy.
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                ))
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::CONTENT_SECURITY_POLICY,
                    HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
                ))
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::REFERRER_POLICY,
                    HeaderValue::from_static("no-referrer"),
                ))
                .layer(DefaultBodyLimit::max(max_body)),
        );
    // Around everything: a preflight is answered before any route or
    // middleware runs, and every answer (errors included) carries the
    // headers a listed origin's page needs to read it.
    match crate::cors::layer(&cors_origins) {
        Some(cors) => routes.layer(cors),
        None => routes,
    }
    .with_state(state)
}

/// Answers 408, in the one error shape, for a request that takes longer
/// than [`REQUEST_TIMEOUT`] (tower-http's timeout answers with no body),
/// or than [`UPLOAD_TIMEOUT`](crate::uploads::UPLOAD_TIMEOUT) for an
/// upload.
async fn time_limit(req: Request, next: Next) -> Response {
    let upload = req
        .extensions()
        .get::<MatchedPath>()
        .is_some_and(|path| path.as_str() == routes::UPLOAD_ROUTE);
    let limit = if upload {
        crate::uploads::UPLOAD_TIMEOUT
    } else {
        REQUEST_TIMEOUT
    };
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::Timeout.into_response(),
    }
}

/// The span of one request, carrying its request id (in every log line).
fn request_span(req: &Request) -> Span {
    let id = req
        .headers()
        .get(chat_shared::request_id::HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    tracing::info_span!("request", method = %req.method(), uri = %req.uri(), request_id = %id)
}

/// With traces on, runs the request inside its OpenTelemetry server span
/// `METHOD /route`, continuing the caller's `traceparent` if it sent one.
/// A WebSocket upgrade gets none: its session would live inside it.
async fn trace_request(req: Request, next: Next) -> Response {
    let upgrade = req.headers().contains_key(axum::http::header::UPGRADE);
    if !telemetry::traces_enabled() || upgrade {
        return next.run(req).await;
    }
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    let parent = req
        .headers()
        .get(telemetry::TRACEPARENT)
        .and_then(|v| v.to_str().ok());
    let span = telemetry::http_server(req.method().as_str(), route, parent);
    let response = next.run(req).instrument(span.clone()).await;
    telemetry::record_status(&span, response.status().as_u16());
    response
}

/// Mints request ids as the gateway does: UUID v7, which sort by time.
#[derive(Clone, Copy)]
struct MakeRequestUuidV7;

impl MakeRequestId for MakeRequestUuidV7 {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        let id = chat_shared::request_id::new().parse();
        Some(RequestId::new(id.expect("a UUID is a valid header value")))
    }
}

/// Keeps the rate limiters' maps as small as the set of recent clients.
async fn prune_rate_limits(state: AppState) {
    let mut every = tokio::time::interval(crate::rate_limit::AuthRateLimit::PRUNE_EVERY);
    loop {
        every.tick().await;
        state.auth_rate_limit.prune();
        state.limits.prune();
    }
}
