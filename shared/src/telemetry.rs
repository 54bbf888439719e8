//! Logs and traces for every binary: one subscriber whose log lines are
//! filtered by `CHAT_LOG` (an `EnvFilter` directive) and written as text or
//! JSON, and — only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set — an
//! OpenTelemetry layer beside it exporting spans over OTLP/HTTP in batches.
//!
//! Without the endpoint there is no OpenTelemetry at all: the span helpers
//! below return `Span::none()` after one relaxed atomic load, and no bus
//! message carries a trace context. With it, a send is one trace from the
//! api's `POST …/messages` (or the gateway's `ws send`) through
//! `store.append` and `bus.publish` to `bus.receive` and `deliver` on every
//! gateway; the context crosses the bus as a W3C `traceparent`
//! ([`crate::bus::trace`]). docs/operations.md ("Traces") lists every span.
//!
//! Only spans that declare `otel.kind` go to the exporter (plus warnings and
//! errors as span events): the long-lived `session` and gateway `request`
//! spans stay in the logs, so a connection is never one endless trace.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{span_processor_with_async_runtime, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use tracing::field::Empty;
use tracing::{Level, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::{filter_fn, EnvFilter, FilterExt};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, Layer, Registry};

use crate::config::LogFormat;
use crate::error::{Error, Result};
use crate::model::RoomId;

/// The variable that turns traces on: the OTLP/HTTP base URL of a collector
/// (`/v1/traces` is appended), e.g. `http://127.0.0.1:4318`.
pub const ENDPOINT_VAR: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
/// The variable naming this process in its traces.
pub const SERVICE_NAME_VAR: &str = "OTEL_SERVICE_NAME";
/// The W3C trace-context header (and bus field).
pub const TRACEPARENT: &str = "traceparent";

/// Set once the OpenTelemetry layer is installed.
static TRACES: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported. False unless [`init`] found the endpoint.
pub fn traces_enabled() -> bool {
    TRACES.load(Ordering::Relaxed)
}

/// What [`init`] installed; [`Telemetry::shutdown`] flushes the spans
/// still buffered. Keep it until the process exits.
#[must_use = "call `shutdown` before exiting, or buffered spans are lost"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports what is still buffered and stops the exporter (bounded by
    /// `OTEL_BSP_EXPORT_TIMEOUT`). A no-op without traces.
    pub async fn shutdown(self) {
        let Some(provider) = self.provider else {
            return;
        };
        // The batch processor answers from a tokio task while this waits
        // blocking; keep the wait off the runtime's workers.
        let done = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "flushing traces failed"),
            Err(e) => tracing::warn!(error = %e, "flushing traces failed"),
        }
        TRACES.store(false, Ordering::Relaxed);
    }
}

/// Installs the global subscriber: log lines filtered by `filter`, and
/// traces if `OTEL_EXPORTER_OTLP_ENDPOINT` is set (named by
/// `OTEL_SERVICE_NAME`, else `default_service`). Call once, from `main`,
/// inside the tokio runtime. A bad filter or endpoint is an
/// [`Error::Config`] naming the variable.
pub fn init(filter: &str, format: LogFormat, default_service: &str) -> Result<Telemetry> {
    let env_filter = EnvFilter::try_new(filter)
        .map_err(|e| Error::Config(format!("CHAT_LOG={filter:?}: {e}")))?;
    // The spans made here exist for traces only; kept out of the log
    // layer, which also keeps its per-layer filter from hiding them from
    // the OpenTelemetry layer.
    let env_filter = env_filter.and(filter_fn(|meta| {
        !(meta.is_span() && meta.target() == module_path!())
    }));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let logs: Box<dyn Layer<Registry> + Send + Sync> = match format {
        LogFormat::Text => fmt::layer()
            .with_target(true)
            .with_ansi(ansi)
            .with_filter(env_filter)
            .boxed(),
        LogFormat::Json => fmt::layer()
            .json()
            .flatten_event(true)
            .with_target(true)
            .with_filter(env_filter)
            .boxed(),
    };
    let provider = otlp_provider(default_service)?;
    let traces = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("chat"))
            .with_tracked_inactivity(false)
            .with_threads(false)
            .with_location(false)
            .with_filter(filter_fn(|meta| {
                if meta.is_span() {
                    meta.fields().field("otel.kind").is_some()
                } else {
                    *meta.level() <= Level::WARN
                }
            }))
    });
    tracing_subscriber::registry()
        .with(logs)
        .with(traces)
        .try_init()
        .map_err(|e| Error::Config(format!("installing the log subscriber: {e}")))?;
    if provider.is_some() {
        TRACES.store(true, Ordering::Relaxed);
    }
    Ok(Telemetry { provider })
}

/// The tracer provider when the endpoint is set: OTLP over HTTP
/// (`OTEL_EXPORTER_OTLP_PROTOCOL`: `http/protobuf`, the default, or
/// `http/json`), a batch processor on tokio (`OTEL_BSP_*`), the sampler of
/// `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG` (parent-based, always
/// on by default).
fn otlp_provider(default_service: &str) -> Result<Option<SdkTracerProvider>> {
    let Some(endpoint) = non_empty_var(ENDPOINT_VAR) else {
        return Ok(None);
    };
    let bad = |why: String| Error::Config(format!("{ENDPOINT_VAR}={endpoint:?}: {why}"));
    check_endpoint(&endpoint).map_err(|why| bad(why.to_owned()))?;
    // The exporter's reqwest client needs the TLS provider (see `tls`).
    crate::tls::install_crypto_provider();
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
        .map_err(|e| bad(e.to_string()))?;
    let service = non_empty_var(SERVICE_NAME_VAR).unwrap_or_else(|| default_service.to_owned());
    let mut resource = Resource::builder().with_service_name(service);
    let attributes = std::env::var("OTEL_RESOURCE_ATTRIBUTES").unwrap_or_default();
    if !attributes.contains("service.instance.id=") {
        // Tells the gateways of a pool apart in a trace.
        resource = resource.with_attribute(KeyValue::new(
            "service.instance.id",
            uuid::Uuid::new_v4().to_string(),
        ));
    }
    let processor = span_processor_with_async_runtime::BatchSpanProcessor::builder(
        exporter,
        opentelemetry_sdk::runtime::Tokio,
    )
    .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(resource.build())
        .build();
    Ok(Some(provider))
}

fn non_empty_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// An endpoint this build can send to: `http://host[:port][/path]`. TLS is
/// not compiled in (send to a collector beside the process).
fn check_endpoint(endpoint: &str) -> std::result::Result<(), &'static str> {
    if endpoint.starts_with("https://") {
        return Err("https is not supported by this build; use a collector over http://");
    }
    let Some(rest) = endpoint.strip_prefix("http://") else {
        return Err("expected an http:// URL such as http://127.0.0.1:4318");
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let host = authority
        .rsplit_once(':')
        .map_or(authority, |(host, port)| {
            if port.parse::<u16>().is_ok() {
                host
            } else {
                ""
            }
        });
    let sane = |c: char| c.is_ascii_alphanumeric() || "-._[]:".contains(c);
    if host.is_empty() || !host.chars().all(sane) || rest.chars().any(char::is_whitespace) {
        return Err("expected an http:// URL such as http://127.0.0.1:4318");
    }
    Ok(())
}

/// The W3C `traceparent` of `span`, to carry its trace across a process
/// boundary; `None` without traces or for a disabled span.
pub fn traceparent(span: &Span) -> Option<String> {
    if !traces_enabled() || span.is_none() {
        return None;
    }
    let cx = span.context();
    let otel = cx.span();
    let sc = otel.span_context();
    sc.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            sc.trace_id(),
            sc.span_id(),
            sc.trace_flags().to_u8()
        )
    })
}

/// Makes the remote span of `traceparent` the parent of `span` (call before
/// entering it). An unreadable value is ignored: `span` starts a trace.
pub fn set_remote_parent(span: &Span, traceparent: &str) {
    if !traces_enabled() || span.is_none() {
        return;
    }
    let carrier = HashMap::from([(TRACEPARENT.to_owned(), traceparent.to_owned())]);
    let cx = TraceContextPropagator::new().extract(&carrier);
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}

/// Makes `span` the root of a trace of its own, whatever its `tracing`
/// parents (call before entering it): a WebSocket send is not part of the
/// connection's long-lived spans.
pub fn start_trace(span: &Span) {
    if traces_enabled() && !span.is_none() {
        let _ = span.set_parent(opentelemetry::Context::new());
    }
}

/// Marks `span` as failed.
pub fn record_error(span: &Span) {
    span.record("otel.status_code", "error");
}

/// The server span of one api request, `METHOD /route` (just `METHOD`
/// when no route matched), child of the caller's `traceparent` if any.
pub fn http_server(method: &str, route: Option<&str>, traceparent: Option<&str>) -> Span {
    if !traces_enabled() {
        return Span::none();
    }
    let name = match route {
        Some(route) => format!("{method} {route}"),
        None => method.to_owned(),
    };
    let span = tracing::info_span!(
        "http.server",
        otel.name = %name,
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = %method,
        http.route = route,
        http.response.status_code = Empty,
    );
    match traceparent {
        Some(traceparent) => set_remote_parent(&span, traceparent),
        None => start_trace(&span),
    }
    span
}

/// Puts an HTTP status on a server span; a 5xx fails it.
pub fn record_status(span: &Span, status: u16) {
    span.record("http.response.status_code", status);
    if status >= 500 {
        record_error(span);
    }
}

/// `ws send`: a client's `send` frame on a gateway, from the frame to the
/// ack and the hand-off to the bus. The root of its trace.
pub fn ws_send(room: RoomId) -> Span {
    if !traces_enabled() {
        return Span::none();
    }
    let span = tracing::info_span!(
        "ws send",
        otel.kind = "server",
        otel.status_code = Empty,
        chat.room_id = %room,
        chat.seq = Empty,
    );
    start_trace(&span);
    span
}

/// `store.append`: the durable, idempotent append of a message (seq
/// allocation and commit), child of the send.
pub fn store_append(room: RoomId) -> Span {
    if !traces_enabled() {
        return Span::none();
    }
    tracing::info_span!(
        "store.append",
        otel.kind = "client",
        otel.status_code = Empty,
        db.operation.name = "append_message",
        chat.room_id = %room,
        chat.seq = Empty,
        chat.created = Empty,
    )
}

/// Records what an append returned on its span.
pub fn record_append<E>(span: &Span, result: &std::result::Result<crate::store::Appended, E>) {
    match result {
        Ok(appended) => {
            span.record("chat.seq", appended.event.seq);
            span.record("chat.created", appended.created);
        }
        Err(_) => record_error(span),
    }
}

/// `bus.publish`: one message handed to the bus, from the queue to the
/// transport's answer; child of what published it.
pub fn bus_publish(topic: &crate::bus::Topic) -> Span {
    if !traces_enabled() {
        return Span::none();
    }
    tracing::info_span!(
        "bus.publish",
        otel.kind = "producer",
        otel.status_code = Empty,
        messaging.operation.type = "publish",
        messaging.destination.name = %topic,
    )
}

/// `bus.receive`: a room event arriving on a gateway from the bus, child
/// of the `bus.publish` named by `traceparent`; it lasts until the hub
/// releases the event in seq order (a gap held it) or drops it as a
/// duplicate. `None` when the message carried no trace.
pub fn bus_receive(room: RoomId, seq: i64, traceparent: Option<&str>) -> Span {
    let Some(traceparent) = traceparent.filter(|_| traces_enabled()) else {
        return Span::none();
    };
    let span = tracing::info_span!(
        parent: None,
        "bus.receive",
        otel.kind = "consumer",
        messaging.operation.type = "receive",
        messaging.destination.name = %crate::bus::Topic::Room(room),
        chat.room_id = %room,
        chat.seq = seq,
    );
    set_remote_parent(&span, traceparent);
    span
}

/// `deliver`: one event handed to every local socket following its room
/// (their writers send the same shared bytes), child of `parent` (the
/// event's `bus.receive`, or the `ws send` that committed it here). One
/// span per event per gateway, never per socket: `chat.sockets` counts
/// them. `Span::none()` when `parent` is not traced.
pub fn deliver(parent: &Span, room: RoomId, seq: i64) -> Span {
    if parent.is_none() || !traces_enabled() {
        return Span::none();
    }
    tracing::info_span!(
        parent: parent,
        "deliver",
        otel.kind = "internal",
        chat.room_id = %room,
        chat.seq = seq,
        chat.sockets = Empty,
    )
}

#[cfg(test)]
mod tests {
    use super::check_endpoint;

    #[test]
    fn endpoints_are_checked() {
        for good in [
            "http://127.0.0.1:4318",
            "http://collector:4318/",
            "http://otel.example.com",
            "http://[::1]:4318/otlp",
        ] {
            assert!(check_endpoint(good).is_ok(), "{good}");
        }
        for bad in [
            "127.0.0.1:4318",
            "ftp://x",
            "http://",
            "http://:4318",
            "http://a b:4318",
            "https://collector:4318",
        ] {
            assert!(check_endpoint(bad).is_err(), "{bad}");
        }
    }
}
