//! Prometheus metrics for every binary: one recorder per process, installed
//! on first use, rendered by each binary's `GET /metrics`, and the names of
//! every series, so that call sites cannot misspell them.
//!
//! The recorder is global (the `metrics` facade has one slot per process),
//! so [`install`] is idempotent: the all-in-one binary and tests that start
//! many servers in one process share one registry. Series are described in
//! docs/operations.md ("Metrics"); keep the two in step.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// The `Content-Type` of [`render`]'s output (Prometheus text format).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// Histogram buckets in seconds, for latencies from 100 µs to 10 s.
pub const LATENCY_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// How often histogram samples are folded into their buckets between
/// scrapes, so memory stays flat however rarely Prometheus scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Series names. Labels are listed beside each; their values come from
/// small fixed sets (never ids or raw paths), so cardinality stays bounded.
pub mod names {
    /// Gauge: open WebSocket sessions.
    pub const GATEWAY_CONNECTIONS: &str = "chat_gateway_connections";
    /// Counter: WebSocket sessions started.
    pub const GATEWAY_CONNECTIONS_OPENED: &str = "chat_gateway_connections_opened_total";
    /// Counter `{code}`: sessions ended, by the close code the gateway sent
    /// (`abnormal` when the socket died first).
    pub const GATEWAY_CONNECTIONS_CLOSED: &str = "chat_gateway_connections_closed_total";
    /// Counter `{reason}`: WebSocket handshakes refused over plain HTTP.
    pub const GATEWAY_HANDSHAKE_REJECTIONS: &str = "chat_gateway_handshake_rejections_total";
    /// Counter `{type}`: client frames, by type (`invalid` if unreadable).
    pub const GATEWAY_FRAMES_IN: &str = "chat_gateway_frames_in_total";
    /// Counter `{type}`: text frames written to clients, by type.
    pub const GATEWAY_FRAMES_OUT: &str = "chat_gateway_frames_out_total";
    /// Counter: sends acknowledged (each after its commit).
    pub const GATEWAY_ACKS: &str = "chat_gateway_acks_total";
    /// Counter: sessions closed with 1013 because their queue filled.
    pub const GATEWAY_SLOW_CONSUMER_CLOSES: &str = "chat_gateway_slow_consumer_closes_total";
    /// Counter: store reads made to fill a gap in a room's sequence.
    pub const GATEWAY_GAP_REPAIRS: &str = "chat_gateway_gap_repairs_total";
    /// Histogram (s): the hub handing one event to every local follower's
    /// queue.
    pub const GATEWAY_FANOUT_SECONDS: &str = "chat_gateway_fanout_seconds";
    /// Histogram (s): from an event's commit (`ts`) to its write to a
    /// client's socket, for live delivery (not `sync` replays of history).
    pub const DELIVERY_LATENCY_SECONDS: &str = "chat_delivery_latency_seconds";
    /// Counter `{scope}`: requests refused by a limit (`send`,
    /// `connections`, `credentials`).
    pub const RATE_LIMITED: &str = "chat_rate_limited_total";

    /// Counter: messages handed to the bus.
    pub const BUS_PUBLISHED: &str = "chat_bus_published_total";
    /// Counter: messages the bus refused, timed out on, or that found the
    /// publish queue full (receivers repair from the store).
    pub const BUS_PUBLISH_FAILURES: &str = "chat_bus_publish_failures_total";
    /// Counter: messages received from the bus and queued for the consumer.
    pub const BUS_RECEIVED: &str = "chat_bus_received_total";
    /// Counter: messages received but dropped because the consumer's queue
    /// was full (as Redis drops for a client that does not read).
    pub const BUS_DROPPED: &str = "chat_bus_dropped_total";
    /// Counter: subscriptions restored after the bus connection was lost.
    pub const BUS_RECONNECTS: &str = "chat_bus_reconnects_total";

    /// Histogram (s) `{op}`: one store call, by method name.
    pub const STORE_QUERY_SECONDS: &str = "chat_store_query_seconds";
    /// Counter `{op}`: store calls that failed in the database (not
    /// domain outcomes such as not-found or conflict).
    pub const STORE_ERRORS: &str = "chat_store_errors_total";
    /// Histogram: message appends committed together by one group commit
    /// (PostgreSQL).
    pub const STORE_BATCH_APPENDS: &str = "chat_store_batch_appends";
    /// Gauge: 1 while the store refuses writes (the last attempt to commit
    /// failed, e.g. on a full or read-only disk), 0 once one commits.
    pub const STORE_WRITES_FAILING: &str = "chat_store_writes_failing";
    /// Counter: database connections closed because a transaction on them
    /// did not end cleanly (a failed commit the database rolled back).
    pub const STORE_CONNECTIONS_DISCARDED: &str = "chat_store_connections_discarded_total";

    /// Counter `{method,route,status}`: api requests answered.
    pub const HTTP_REQUESTS: &str = "chat_http_requests_total";
    /// Histogram (s) `{method,route}`: api request duration.
    pub const HTTP_REQUEST_SECONDS: &str = "chat_http_request_seconds";
}

/// The `scope` values of [`names::RATE_LIMITED`].
pub mod scope {
    /// A user's sends (REST and WebSocket), typing and signals.
    pub const SEND: &str = "send";
    /// A user's `sync` frames past their burst (paced, not refused).
    pub const SYNC: &str = "sync";
    /// A user's `read` frames past `CHAT_READ_RATE_PER_SECOND` (dropped).
    pub const READS: &str = "reads";
    /// A user's invites.
    pub const INVITES: &str = "invites";
    /// A user's room creations.
    pub const ROOMS: &str = "rooms";
    /// A user's DM opens.
    pub const DMS: &str = "dms";
    /// A user's uploads.
    pub const UPLOADS: &str = "uploads";
    /// A user's searches of messages.
    pub const SEARCHES: &str = "searches";
    /// A user's reports of messages and users.
    pub const REPORTS: &str = "reports";
    /// A user's profile changes (display name, avatar).
    pub const PROFILE: &str = "profile";
    /// A user's blocks and unblocks.
    pub const BLOCKS: &str = "blocks";
    /// A user's mutes, unmutes and slow-mode changes.
    pub const MODERATION: &str = "moderation";
    /// A user's call frames (placing, accepting, declining, hanging up).
    pub const CALLS: &str = "calls";
    /// A gateway's `CHAT_MAX_CONNECTIONS`.
    pub const CONNECTIONS: &str = "connections";
    /// The api's register/login/refresh limit per client address.
    pub const CREDENTIALS: &str = "credentials";
    /// The api's queue for password hashing (`CHAT_MAX_WAITING_HASHES`).
    pub const PASSWORD_HASHES: &str = "password_hashes";
    /// `CHAT_MAX_CONNECTIONS_PER_ADDRESS`: connections from one address.
    pub const CONNECTIONS_PER_ADDRESS: &str = "connections_per_address";
    /// All connections, at the descriptor limit less the reserve.
    pub const DESCRIPTORS: &str = "descriptors";
}

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process's recorder if it is not installed yet, and returns
/// the handle that renders it. Cheap after the first call; call it wherever
/// a server starts.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets(&LATENCY_BUCKETS)
            .expect("the bucket list is not empty");
        let handle = match builder.install_recorder() {
            Ok(handle) => handle,
            Err(e) => {
                // Another recorder owns the slot (an embedder's): render an
                // empty registry rather than fail to start.
                tracing::warn!(error = %e, "a metrics recorder is already installed; /metrics will be empty");
                PrometheusBuilder::new().build_recorder().handle()
            }
        };
        describe();
        let upkeep = handle.clone();
        let spawned = std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || loop {
                std::thread::sleep(UPKEEP_EVERY);
                upkeep.run_upkeep();
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "metrics upkeep thread not started; histograms fold at scrape time only");
        }
        handle
    })
}

/// The current value of every series, in the Prometheus text format.
pub fn render() -> String {
    let handle = install();
    handle.run_upkeep();
    handle.render()
}

/// Help texts, shown by Prometheus beside each series.
fn describe() {
    use ::metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    use names::*;
    describe_gauge!(GATEWAY_CONNECTIONS, "Open WebSocket sessions.");
    describe_counter!(GATEWAY_CONNECTIONS_OPENED, "WebSocket sessions started.");
    describe_counter!(
        GATEWAY_CONNECTIONS_CLOSED,
        "WebSocket sessions ended, by the close code sent (abnormal: the socket died)."
    );
    describe_counter!(
        GATEWAY_HANDSHAKE_REJECTIONS,
        "WebSocket handshakes refused, by reason."
    );
    describe_counter!(GATEWAY_FRAMES_IN, "Client frames received, by type.");
    describe_counter!(
        GATEWAY_FRAMES_OUT,
        "Text frames written to clients, by type."
    );
    describe_counter!(GATEWAY_ACKS, "Sends acknowledged after their commit.");
    describe_counter!(
        GATEWAY_SLOW_CONSUMER_CLOSES,
        "Sessions closed with 1013 because their outbound queue filled."
    );
    describe_counter!(
        GATEWAY_GAP_REPAIRS,
        "Store reads made to fill a gap in a room's sequence."
    );
    describe_histogram!(
        GATEWAY_FANOUT_SECONDS,
        Unit::Seconds,
        "Time the hub takes to queue one event for all its local followers."
    );
    describe_histogram!(
        DELIVERY_LATENCY_SECONDS,
        Unit::Seconds,
        "From an event's commit to its write on a client's socket (live delivery)."
    );
    describe_counter!(
        RATE_LIMITED,
        "Requests refused by a rate or connection limit."
    );
    describe_counter!(BUS_PUBLISHED, "Messages handed to the bus.");
    describe_counter!(BUS_PUBLISH_FAILURES, "Messages the bus did not take.");
    describe_counter!(BUS_RECEIVED, "Messages received from the bus.");
    describe_counter!(
        BUS_DROPPED,
        "Messages received but dropped: the consumer's queue was full."
    );
    describe_counter!(BUS_RECONNECTS, "Bus subscriptions restored after a loss.");
    describe_histogram!(
        STORE_QUERY_SECONDS,
        Unit::Seconds,
        "Duration of one store call, by method."
    );
    describe_counter!(STORE_ERRORS, "Store calls that failed in the database.");
    describe_histogram!(
        STORE_BATCH_APPENDS,
        "Message appends committed together in one transaction (group commit)."
    );
    describe_counter!(HTTP_REQUESTS, "API requests answered.");
    describe_histogram!(
        HTTP_REQUEST_SECONDS,
        Unit::Seconds,
        "API request duration, by route template."
    );
}

/// Counts one request refused by a limit.
pub fn rate_limited(scope: &'static str) {
    ::metrics::counter!(names::RATE_LIMITED, "scope" => scope).increment(1);
}

/// Records the size of one group commit.
pub fn store_batch(appends: usize) {
    ::metrics::histogram!(names::STORE_BATCH_APPENDS).record(appends as f64);
}

/// Records whether the store refuses writes.
pub fn store_writes_failing(failing: bool) {
    ::metrics::gauge!(names::STORE_WRITES_FAILING).set(if failing { 1.0 } else { 0.0 });
}

/// Counts one database connection closed for a transaction left in doubt.
pub fn store_connection_discarded() {
    ::metrics::counter!(names::STORE_CONNECTIONS_DISCARDED).increment(1);
}

/// Runs one store call, recording its duration and, when the database
/// failed, an error; `op` is the method name.
pub async fn store_call<T>(
    op: &'static str,
    call: impl std::future::Future<Output = crate::Result<T>>,
) -> crate::Result<T> {
    let started = Instant::now();
    let result = call.await;
    store_answered(op, started, &result);
    result
}

/// Records one store call that began at `started` and answered `result`
/// (for calls that do not run as one future, such as a submitted append
/// answered later).
pub fn store_answered<T>(op: &'static str, started: Instant, result: &crate::Result<T>) {
    ::metrics::histogram!(names::STORE_QUERY_SECONDS, "op" => op)
        .record(started.elapsed().as_secs_f64());
    if let Err(e) = result {
        if is_failure(e) {
            ::metrics::counter!(names::STORE_ERRORS, "op" => op).increment(1);
        }
    }
}

/// Whether a store error is the database failing rather than an answer
/// (not found, conflict, not a member, banned).
fn is_failure(e: &crate::Error) -> bool {
    !matches!(
        e,
        crate::Error::NotFound
            | crate::Error::Conflict(_)
            | crate::Error::NotMember
            | crate::Error::NotAllowed
            | crate::Error::Banned
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_is_idempotent_and_renders_what_was_recorded() {
        let first = install() as *const PrometheusHandle;
        let second = install() as *const PrometheusHandle;
        assert_eq!(first, second);
        rate_limited("metrics-unit-test");
        let text = render();
        assert!(
            text.contains(r#"chat_rate_limited_total{scope="metrics-unit-test"} 1"#),
            "{text}"
        );
    }

    #[tokio::test]
    async fn store_calls_are_timed_and_only_failures_count_as_errors() {
        install();
        let _ = store_call("metrics_unit_not_found", async {
            Err::<(), _>(crate::Error::NotFound)
        })
        .await;
        let _ = store_call("metrics_unit_failed", async {
            Err::<(), _>(crate::Error::Database {
                message: "pool timed out".into(),
                unavailable: true,
            })
        })
        .await;
        let text = render();
        assert!(
            text.contains(r#"chat_store_query_seconds_count{op="metrics_unit_not_found"} 1"#),
            "{text}"
        );
        assert!(!text.contains(r#"chat_store_errors_total{op="metrics_unit_not_found"}"#));
        assert!(text.contains(r#"chat_store_errors_total{op="metrics_unit_failed"} 1"#));
    }

    #[test]
    fn buckets_span_100us_to_10s_in_order() {
        assert_eq!(LATENCY_BUCKETS[0], 0.0001);
        assert_eq!(LATENCY_BUCKETS[LATENCY_BUCKETS.len() - 1], 10.0);
        assert!(LATENCY_BUCKETS.windows(2).all(|w| w[0] < w[1]));
    }
}
