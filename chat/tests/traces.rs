//! One trace from a send to every gateway that delivers it, through a real
//! OTLP exporter. The tracing subscriber is global to a process, so this
//! binary holds one test and each server gets a process of its own: the
//! api runs here (with `telemetry::init`, as its `main` does), each gateway
//! is the real `chat-gateway` binary, on PostgreSQL and Redis. All of them
//! export OTLP/HTTP (JSON) to a small receiver in this test, which keeps
//! every `/v1/traces` body.
//!
//! Checked: a REST send carrying a `traceparent` continues the caller's
//! trace — `POST /v1/rooms/{id}/messages` → `store.append`, `bus.publish` →
//! `bus.receive` → `deliver` on each of the two gateways; a WebSocket send
//! is a trace of its own — `ws send` → `store.append`, `bus.publish`, and
//! `deliver` on its own gateway, `bus.receive` → `deliver` on the other;
//! and no frame a client gets carries the trace context. Gateways flush
//! their spans when they stop on SIGTERM, so what arrives also proves the
//! flush on exit.
//!
//! Here, in the crate that puts the api and the gateway together, for the
//! reason `tests/gateway/main.rs` gives.

use std::collections::HashSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use chat_api::{ApiConfig, App, AppState};
use chat_shared::bus::RedisBus;
use chat_shared::config::{CommonConfig, LogFormat};
use chat_shared::testing::{self, Backend, TestDatabase};
use chat_testkit::client::{TestClient, WAIT};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};

/// The caller's trace the REST send continues.
const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_send_is_one_trace_from_the_api_or_a_gateway_to_every_delivering_gateway() {
    let receiver = Receiver::start().await;
    let endpoint = format!("http://{}", receiver.addr);
    // Set before anything else runs: `telemetry::init` and the exporter
    // read the standard variables, as in production.
    for (name, value) in otel_env(&endpoint) {
        std::env::set_var(name, value);
    }
    std::env::remove_var("OTEL_SERVICE_NAME");
    let telemetry = chat_shared::telemetry::init("info", LogFormat::Json, "chat-api")
        .expect("installing telemetry with OTLP");
    assert!(chat_shared::telemetry::traces_enabled());

    // The api, in this process.
    let db = TestDatabase::create(Backend::Postgres).await;
    let store = db.store().await;
    let prefix = testing::bus_prefix();
    let redis_url = testing::redis_url();
    let bus = RedisBus::connect(&redis_url, &prefix)
        .await
        .unwrap_or_else(|e| panic!("Redis is not reachable at {redis_url} ({e})"));
    let config = ApiConfig {
        common: CommonConfig {
            data_dir: db.dir().to_path_buf(),
            database_url: Some(db.url().to_owned()),
            ..CommonConfig::default()
        },
        api_addr: "127.0.0.1:0".parse().unwrap(),
        ..ApiConfig::default()
    };
    let state = AppState::with_parts(config, store, Arc::new(bus))
        .await
        .unwrap();
    let app = App::with_state(state).await.unwrap();
    let api = format!("http://{}", app.local_addr());
    let (stop_api, api_stopped) = tokio::sync::oneshot::channel::<()>();
    let api_task = tokio::spawn(app.run(async move {
        let _ = api_stopped.await;
    }));

    // Two real gateways (the api has written the key pair by now).
    let mut gateways = Vec::new();
    for _ in 0..2 {
        gateways.push(GatewayProcess::start(&db, &redis_url, &prefix, &endpoint).await);
    }

    let http = reqwest::Client::new();
    let alice = register(&http, &api, "alice").await;
    let bob = register(&http, &api, "bob").await;
    let room = create_room(&http, &api, &alice, &bob).await;
    let mut on_first = TestClient::connect(&gateways[0].ws_url(), &alice.1)
        .await
        .expect("connecting to gateway 0");
    let mut on_second = TestClient::connect(&gateways[1].ws_url(), &bob.1)
        .await
        .expect("connecting to gateway 1");
    for client in [&mut on_first, &mut on_second] {
        // The first frame turns on live delivery.
        client.send(json!({ "type": "ping" })).await;
        client.recv_until(|f| f["type"] == "pong").await;
    }

    // A REST send continuing the caller's trace.
    let response = http
        .post(format!("{api}/v1/rooms/{room}/messages"))
        .bearer_auth(&alice.1)
        .header("traceparent", format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01"))
        .json(&json!({ "client_id": "rest-1", "body": "over REST" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::CREATED);
    let rest_seq = response.json::<Value>().await.unwrap()["seq"].clone();
    for client in [&mut on_first, &mut on_second] {
        let frame = client
            .recv_until(|f| f["type"] == "message" && f["client_id"] == "rest-1")
            .await;
        assert_eq!(frame["seq"], rest_seq);
        assert!(frame.get("traceparent").is_none(), "leaked: {frame}");
    }

    // A WebSocket send on gateway 0.
    let ack = on_first.send_message(&room, "ws-1", "over WS").await;
    for client in [&mut on_first, &mut on_second] {
        let frame = client
            .recv_until(|f| f["type"] == "message" && f["client_id"] == "ws-1")
            .await;
        assert_eq!(frame["seq"], ack["seq"]);
        assert!(frame.get("traceparent").is_none(), "leaked: {frame}");
    }

    // The history holds the events as they were, without any trace field.
    let history: Value = http
        .get(format!("{api}/v1/rooms/{room}/events"))
        .bearer_auth(&alice.1)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(!history.to_string().contains("traceparent"), "{history}");

    // Stop everything; each process flushes its spans on the way out.
    drop(on_first);
    drop(on_second);
    for gateway in gateways {
        gateway.stop().await;
    }
    let _ = stop_api.send(());
    api_task.await.unwrap();
    telemetry.shutdown().await;

    let spans = receiver.spans();
    let trace = Trace { spans: &spans };
    trace.check_rest_send(&rest_seq);
    trace.check_ws_send(&ack["seq"]);
}

fn otel_env(endpoint: &str) -> [(&'static str, String); 3] {
    [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.to_owned()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json".to_owned()),
        // Export soon after a span ends rather than every 5 s.
        ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
    ]
}

/// Registers a user; returns their id and access token.
async fn register(http: &reqwest::Client, api: &str, name: &str) -> (String, String) {
    let response = http
        .post(format!("{api}/v1/auth/register"))
        .json(&json!({ "username": name, "password": format!("password-{name}") }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    (
        body["user"]["id"].as_str().unwrap().to_owned(),
        body["access_token"].as_str().unwrap().to_owned(),
    )
}

/// A public room of `owner` that `member` joined; returns its id.
async fn create_room(
    http: &reqwest::Client,
    api: &str,
    owner: &(String, String),
    member: &(String, String),
) -> String {
    let response = http
        .post(format!("{api}/v1/rooms"))
        .bearer_auth(&owner.1)
        .json(&json!({ "name": "traced", "kind": "public" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::CREATED);
    let room = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let response = http
        .post(format!("{api}/v1/rooms/{room}/join"))
        .bearer_auth(&member.1)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::CREATED);
    room
}

/// A `chat-gateway` child process.
struct GatewayProcess {
    child: Child,
    addr: String,
    /// Drains the rest of its output, so it never blocks on a full pipe.
    output: tokio::task::JoinHandle<Vec<String>>,
}

impl GatewayProcess {
    async fn start(db: &TestDatabase, redis_url: &str, prefix: &str, endpoint: &str) -> Self {
        let gateway =
            chat_testkit::launcher::binary("chat-gateway").expect("the chat-gateway binary");
        let mut command = Command::new(gateway);
        command
            .env("DATABASE_URL", db.url())
            .env("REDIS_URL", redis_url)
            .env("CHAT_BUS_PREFIX", prefix)
            .env("CHAT_DATA_DIR", db.dir())
            .env("CHAT_GATEWAY_ADDR", "127.0.0.1:0")
            .env("CHAT_LOG", "info")
            .env("CHAT_LOG_FORMAT", "json")
            .env("CHAT_WEBSOCKET_GRACE", "2s")
            .env_remove("OTEL_SERVICE_NAME")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        for (name, value) in otel_env(endpoint) {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("starting chat-gateway");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut seen = Vec::new();
        let addr = tokio::time::timeout(WAIT, async {
            while let Some(line) = lines.next_line().await.unwrap() {
                seen.push(line.clone());
                let Ok(entry) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                if entry["message"] == "chat-gateway listening" {
                    return entry["addr"].as_str().unwrap().to_owned();
                }
            }
            panic!("chat-gateway exited before listening:\n{}", seen.join("\n"))
        })
        .await
        .expect("chat-gateway did not start in time");
        let output = tokio::spawn(async move {
            let mut rest = Vec::new();
            while let Ok(Some(line)) = lines.next_line().await {
                rest.push(line);
            }
            rest
        });
        Self {
            child,
            addr,
            output,
        }
    }

    fn ws_url(&self) -> String {
        format!("ws://{}/v1/ws", self.addr)
    }

    /// SIGTERM, as an orchestrator would; it must exit cleanly.
    async fn stop(mut self) {
        let pid = self.child.id().expect("the gateway is running");
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("running kill");
        assert!(status.success());
        let exited = tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("chat-gateway did not exit after SIGTERM")
            .unwrap();
        let output = self.output.await.unwrap_or_default();
        assert!(
            exited.success(),
            "chat-gateway exited with {exited}:\n{}",
            output.join("\n")
        );
    }
}

/// A tiny OTLP/HTTP collector: keeps every JSON body POSTed to `/v1/traces`.
struct Receiver {
    addr: SocketAddr,
    bodies: Arc<Mutex<Vec<Value>>>,
}

impl Receiver {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let kept = bodies.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let kept = kept.clone();
                let service = hyper::service::service_fn(move |request| {
                    let kept = kept.clone();
                    async move { Ok::<_, Infallible>(collect(request, &kept).await) }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        Self { addr, bodies }
    }

    /// Every span received, flattened with its process's resource.
    fn spans(&self) -> Vec<SpanRecord> {
        let bodies = self.bodies.lock().unwrap();
        assert!(!bodies.is_empty(), "the receiver got no export at all");
        let mut out = Vec::new();
        for body in bodies.iter() {
            for resource in body["resourceSpans"].as_array().into_iter().flatten() {
                let attrs = &resource["resource"]["attributes"];
                let service = attribute(attrs, "service.name");
                let instance = attribute(attrs, "service.instance.id");
                for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
                    for span in scope["spans"].as_array().into_iter().flatten() {
                        out.push(SpanRecord {
                            service: service.clone(),
                            instance: instance.clone(),
                            name: span["name"].as_str().unwrap_or_default().to_owned(),
                            trace_id: span["traceId"].as_str().unwrap_or_default().to_owned(),
                            span_id: span["spanId"].as_str().unwrap_or_default().to_owned(),
                            parent: span["parentSpanId"].as_str().unwrap_or_default().to_owned(),
                            attributes: span["attributes"].clone(),
                        });
                    }
                }
            }
        }
        out
    }
}

async fn collect(request: Request<Incoming>, kept: &Mutex<Vec<Value>>) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_owned();
    let content_type = request
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = request.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(path, "/v1/traces", "exported to the wrong path");
    assert_eq!(content_type, "application/json", "not OTLP/JSON");
    let body: Value = serde_json::from_slice(&body).expect("an OTLP/JSON body");
    kept.lock().unwrap().push(body);
    Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap()
}

/// A string or integer attribute's value, as text.
fn attribute(attributes: &Value, key: &str) -> String {
    attributes
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["key"] == key)
        .map(|a| {
            let value = &a["value"];
            match (
                &value["stringValue"],
                &value["intValue"],
                &value["boolValue"],
            ) {
                (Value::String(s), _, _) => s.clone(),
                (_, Value::String(i), _) => i.clone(),
                (_, Value::Number(i), _) => i.to_string(),
                (_, _, Value::Bool(b)) => b.to_string(),
                _ => value.to_string(),
            }
        })
        .unwrap_or_default()
}

#[derive(Debug, Clone)]
struct SpanRecord {
    service: String,
    instance: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent: String,
    attributes: Value,
}

impl SpanRecord {
    fn attr(&self, key: &str) -> String {
        attribute(&self.attributes, key)
    }
}

/// Questions about what was exported; each failure shows every span.
struct Trace<'a> {
    spans: &'a [SpanRecord],
}

impl Trace<'_> {
    fn dump(&self) -> String {
        self.spans
            .iter()
            .map(|s| {
                format!(
                    "{} {} {} trace={} span={} parent={} {}",
                    s.service, s.instance, s.name, s.trace_id, s.span_id, s.parent, s.attributes
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The spans named `name` whose parent is `parent` (and any seq).
    fn children(&self, parent: &SpanRecord, name: &str) -> Vec<&SpanRecord> {
        self.spans
            .iter()
            .filter(|s| s.name == name && s.parent == parent.span_id)
            .inspect(|s| assert_eq!(s.trace_id, parent.trace_id, "{}", self.dump()))
            .collect()
    }

    fn one_child(&self, parent: &SpanRecord, name: &str) -> &SpanRecord {
        let found = self.children(parent, name);
        assert_eq!(
            found.len(),
            1,
            "expected one {name} under {} ({}):\n{}",
            parent.name,
            parent.span_id,
            self.dump()
        );
        found[0]
    }

    /// `deliver` under `parent`, to one socket, with the event's seq.
    fn check_deliver(&self, parent: &SpanRecord, seq: &str) -> &SpanRecord {
        let deliver = self.one_child(parent, "deliver");
        assert_eq!(deliver.service, "chat-gateway", "{}", self.dump());
        assert_eq!(deliver.attr("chat.seq"), seq, "{}", self.dump());
        assert_eq!(deliver.attr("chat.sockets"), "1", "{}", self.dump());
        deliver
    }

    fn check_rest_send(&self, seq: &Value) {
        let seq = seq.to_string();
        let post: Vec<&SpanRecord> = self
            .spans
            .iter()
            .filter(|s| s.name == "POST /v1/rooms/{id}/messages")
            .collect();
        assert_eq!(post.len(), 1, "one REST send span:\n{}", self.dump());
        let post = post[0];
        assert_eq!(post.service, "chat-api");
        assert_eq!(post.trace_id, CALLER_TRACE, "the caller's trace goes on");
        assert_eq!(post.parent, CALLER_SPAN, "the caller's span is the parent");
        assert_eq!(post.attr("http.response.status_code"), "201");
        assert_eq!(post.attr("http.route"), "/v1/rooms/{id}/messages");

        let append = self.one_child(post, "store.append");
        assert_eq!(append.service, "chat-api");
        assert_eq!(append.attr("chat.seq"), seq);
        let publish = self.one_child(post, "bus.publish");
        assert_eq!(publish.service, "chat-api");

        // Both gateways received it and each delivered it to its socket.
        let received = self.children(publish, "bus.receive");
        let instances: HashSet<&str> = received.iter().map(|s| s.instance.as_str()).collect();
        assert_eq!(
            (received.len(), instances.len()),
            (2, 2),
            "one bus.receive per gateway:\n{}",
            self.dump()
        );
        for receive in received {
            assert_eq!(receive.service, "chat-gateway");
            assert_eq!(receive.attr("chat.seq"), seq);
            let deliver = self.check_deliver(receive, &seq);
            assert_eq!(deliver.instance, receive.instance);
        }
    }

    fn check_ws_send(&self, seq: &Value) {
        let seq = seq.to_string();
        let sends: Vec<&SpanRecord> = self.spans.iter().filter(|s| s.name == "ws send").collect();
        assert_eq!(sends.len(), 1, "one ws send span:\n{}", self.dump());
        let send = sends[0];
        assert_eq!(send.service, "chat-gateway");
        assert_eq!(send.parent, "", "a WebSocket send starts its own trace");
        assert_eq!(send.attr("chat.seq"), seq);

        let append = self.one_child(send, "store.append");
        assert_eq!(append.instance, send.instance);
        assert_eq!(append.attr("chat.seq"), seq);
        // Its own gateway delivers it at once, under the send.
        let local = self.check_deliver(send, &seq);
        assert_eq!(local.instance, send.instance);
        // The other gateway gets it over the bus (its own gateway hears it
        // too, and drops it as a duplicate: a receive with no deliver).
        let publish = self.one_child(send, "bus.publish");
        assert_eq!(publish.instance, send.instance);
        let remote: Vec<&SpanRecord> = self
            .children(publish, "bus.receive")
            .into_iter()
            .filter(|r| r.instance != send.instance)
            .collect();
        assert_eq!(remote.len(), 1, "the other gateway:\n{}", self.dump());
        self.check_deliver(remote[0], &seq);
    }
}
