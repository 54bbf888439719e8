//! `chat` started in-process on port 0, and the requests the tests make.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use chat::{Chat, ChatConfig, Settings};
use chat_api::ApiConfig;
use chat_gateway::GatewayConfig;
use chat_shared::config::CommonConfig;
use serde_json::Value;
use tokio::sync::oneshot;

/// A `chat` started in-process on port 0 over `data_dir`.
pub struct Running {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Where `/metrics` is served, if `CHAT_METRICS_ADDR` was set.
    pub metrics: Option<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    stopped: Option<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Starts over `data_dir`, with the defaults changed by `adjust`.
    pub async fn start(data_dir: &Path, adjust: impl FnOnce(&mut Settings)) -> Self {
        // The SQLite file in the data dir, whatever DATABASE_URL says.
        let common = CommonConfig {
            data_dir: data_dir.to_path_buf(),
            ..CommonConfig::default()
        };
        let mut settings = Settings {
            chat: ChatConfig {
                addr: SocketAddr::from(([127, 0, 0, 1], 0)),
                ..ChatConfig::default()
            },
            api: ApiConfig {
                common: common.clone(),
                ..ApiConfig::default()
            },
            gateway: GatewayConfig {
                common,
                ..GatewayConfig::default()
            },
        };
        adjust(&mut settings);
        let chat = Chat::build(settings).await.expect("chat starts");
        let addr = chat.local_addr();
        let metrics = chat.metrics_addr();
        let base = format!("http://{addr}");
        let (stop, stopping) = oneshot::channel::<()>();
        let stopped = tokio::spawn(chat.run(async move {
            let _ = stopping.await;
        }));
        Self {
            addr,
            base,
            metrics,
            stop: Some(stop),
            stopped: Some(stopped),
        }
    }

    /// Stops the server and waits until it has let go of the data dir.
    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.stopped.take().unwrap().await.unwrap();
    }

    /// POSTs `body` as JSON, with a bearer token if given.
    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        let mut request = reqwest::Client::new()
            .post(format!("{}{path}", self.base))
            .json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        (
            response.status().as_u16(),
            response.json().await.unwrap_or(Value::Null),
        )
    }

    /// GETs `path` with a bearer token.
    pub async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        let response = reqwest::Client::new()
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        (
            response.status().as_u16(),
            response.json().await.unwrap_or(Value::Null),
        )
    }
}

/// The room every user can join.
pub const GENERAL: &str = "00000000-0000-7000-8000-000000000001";

/// A WebSocket to the server at `addr`.
pub type Socket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Registers `username` and joins `general`; returns the access token.
pub async fn register(base: &str, username: &str) -> String {
    let client = reqwest::Client::new();
    let body: Value = client
        .post(format!("{base}/v1/auth/register"))
        .json(&serde_json::json!({ "username": username, "password": "long enough secret" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = body["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("registered: {body}"))
        .to_owned();
    let joined = client
        .post(format!("{base}/v1/rooms/{GENERAL}/join"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert!(joined.status().is_success(), "{}", joined.status());
    token
}

/// Opens a WebSocket to `addr` from the local address `from`.
pub async fn websocket(
    addr: SocketAddr,
    from: std::net::IpAddr,
    token: &str,
) -> Result<Socket, tokio_tungstenite::tungstenite::Error> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let stream = connect_from(from, addr).await?;
    let mut request = format!("ws://{addr}/v1/ws").into_client_request()?;
    request.headers_mut().insert(
        "sec-websocket-protocol",
        format!("chat.v1, bearer.{token}").parse().unwrap(),
    );
    Ok(tokio_tungstenite::client_async(request, stream).await?.0)
}

/// A TCP connection to `addr` from the local address `from` (any of
/// 127.0.0.0/8 works on loopback).
pub async fn connect_from(
    from: std::net::IpAddr,
    addr: SocketAddr,
) -> std::io::Result<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0))?;
    socket.connect(addr).await
}

/// Sends a message on `ws` and waits for its `ack`.
pub async fn send_and_ack(ws: &mut Socket, client_id: &str) {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let send = serde_json::json!({
        "type": "send", "room_id": GENERAL, "client_id": client_id, "body": client_id,
    });
    ws.send(Message::text(send.to_string())).await.unwrap();
    loop {
        let frame = tokio::time::timeout(std::time::Duration::from_secs(10), ws.next())
            .await
            .unwrap_or_else(|_| panic!("no ack for {client_id} in time"))
            .expect("the socket stays open")
            .unwrap();
        let Message::Text(text) = frame else { continue };
        let frame: Value = serde_json::from_str(&text).unwrap();
        assert_ne!(frame["type"], "error", "{frame}");
        if frame["type"] == "ack" && frame["client_id"] == client_id {
            return;
        }
    }
}

/// The `chat` binary in a process of its own, on a fresh port, and its log
/// lines (stdout and stderr) as they come. Killed on drop.
pub struct Process {
    child: tokio::process::Child,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Process {
    /// Starts `chat` over `data_dir` on SQLite, under a descriptor limit if
    /// given, with `env` beside the defaults.
    pub fn spawn(data_dir: &Path, descriptors: Option<usize>, env: &[(&str, &str)]) -> Self {
        let binary = env!("CARGO_BIN_EXE_chat");
        let mut command = match descriptors {
            Some(limit) => {
                let mut bash = tokio::process::Command::new("bash");
                bash.arg("-c")
                    .arg(format!("ulimit -n {limit} && exec \"$0\""))
                    .arg(binary);
                bash
            }
            None => tokio::process::Command::new(binary),
        };
        command
            .env("CHAT_ADDR", "127.0.0.1:0")
            .env("CHAT_DATA_DIR", data_dir)
            .env("CHAT_LOG", "warn,chat=info,chat_shared=info")
            .env("CHAT_LOG_FORMAT", "json")
            .env_remove("DATABASE_URL")
            .env_remove("REDIS_URL")
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().expect("chat starts");
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        for (pipe, lines) in [
            (
                Box::new(stdout) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
                lines.clone(),
            ),
            (Box::new(stderr), lines.clone()),
        ] {
            tokio::spawn(async move {
                use tokio::io::AsyncBufReadExt;
                let mut reader = tokio::io::BufReader::new(pipe).lines();
                while let Ok(Some(line)) = reader.next_line().await {
                    lines.lock().unwrap().push(line);
                }
            });
        }
        Self { child, lines }
    }

    /// The process id (the binary's: `bash` execs it).
    pub fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    /// Every line logged so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// The address from the "chat is running: open http://…/" line.
    pub async fn address(&self) -> SocketAddr {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let found = self.lines().iter().find_map(|line| {
                let start = line.find("open http://")? + "open http://".len();
                let end = line[start..].find('/')? + start;
                line[start..end].parse().ok()
            });
            if let Some(addr) = found {
                return addr;
            }
            assert!(
                Instant::now() < deadline,
                "chat did not start:\n{}",
                self.lines().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
