//! Serving HTTP/1.1 (with WebSocket upgrades) on a [`Listener`], the same
//! way in every binary: each connection in its own task on a tracker the
//! caller drains, a header-read timeout so a connection that does not
//! finish its request (or sends nothing, or idles between keep-alive
//! requests) is closed after `CHAT_HEADER_READ_TIMEOUT`, and a graceful
//! finish (the request in flight is answered, then the connection closes)
//! when `finish` is cancelled.

use std::convert::Infallible;
use std::error::Error as StdError;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body, Incoming};
use hyper::server::conn::http1;
use hyper::service::{service_fn, HttpService};
use hyper::{header, Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::listener::{Connection, Listener};

/// Accepts connections until `finish` is cancelled, serving each with the
/// service `make` returns for it (`None` refuses it: it is closed). Every
/// connection runs on `connections`; once this returns, close and wait on
/// that tracker to let them end.
pub async fn serve<M, S, B>(
    listener: Listener,
    header_read_timeout: Duration,
    connections: &TaskTracker,
    finish: CancellationToken,
    mut make: M,
) where
    M: FnMut(&Connection) -> Option<S>,
    S: HttpService<Incoming, ResBody = B> + Send + 'static,
    S::Future: Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    loop {
        let connection = tokio::select! {
            connection = listener.accept() => connection,
            () = finish.cancelled() => return,
        };
        let Some(service) = make(&connection) else {
            continue;
        };
        let serving = http
            .serve_connection(TokioIo::new(connection.stream), service)
            .with_upgrades();
        let finish = finish.clone();
        connections.spawn(async move {
            tokio::pin!(serving);
            let result = tokio::select! {
                result = serving.as_mut() => result,
                () = finish.cancelled() => {
                    serving.as_mut().graceful_shutdown();
                    serving.await
                }
            };
            if let Err(e) = result {
                // A timed-out header read, a client that went away: routine.
                tracing::debug!(error = %e, "http connection ended with an error");
            }
        });
    }
}

/// Serves `GET /metrics` (this process's series) and nothing else, until
/// `finish` is cancelled: the operator's listener of the all-in-one binary,
/// kept off its public port.
pub async fn serve_metrics(
    listener: Listener,
    connections: &TaskTracker,
    finish: CancellationToken,
) {
    serve(
        listener,
        Duration::from_secs(10),
        connections,
        finish,
        |_| Some(service_fn(metrics)),
    )
    .await;
}

async fn metrics(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let response = if request.method() == Method::GET && request.uri().path() == "/metrics" {
        Response::builder()
            .header(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)
            .body(Full::new(Bytes::from(crate::metrics::render())))
    } else {
        Response::builder()
            .status(StatusCode::NOT_FOUND)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from_static(
                br#"{"error":{"code":"not_found","message":"only /metrics is served here"}}"#,
            )))
    };
    Ok(response.expect("a static response is valid"))
}
