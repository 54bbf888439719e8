//! `TestClient`: a WebSocket client of `chat.v1`, written against
//! `docs/protocol.md` alone (tokio-tungstenite, frames as JSON values), so
//! whoever drives the gateway with it sees the protocol from outside.
//!
//! Waiting is for a frame, never for time: [`TestClient::recv_until`]
//! reads until a frame matches, within [`WAIT`], and keeps the frames it
//! skipped for later reads. The assertion helpers (`send`, `recv_until`,
//! `messages`) panic, as a test's assertions do; a long-running client
//! (the fault suite's, which must survive a dead connection) uses the
//! `Result`-returning ones ([`TestClient::open`], [`TestClient::frame`],
//! [`TestClient::send_frame`]).

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use anyhow::{bail, Context};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::{Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Error, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Longest any expected frame may take to arrive.
pub const WAIT: Duration = Duration::from_secs(10);

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A WebSocket client speaking chat.v1.
pub struct TestClient {
    socket: Socket,
    /// Frames read while waiting for something else, in arrival order.
    backlog: VecDeque<Value>,
    /// The `hello` frame.
    pub hello: Value,
    /// How the server closed the socket, once it has (1005: a close frame
    /// without a code; 1006: no close frame at all).
    pub closed: Option<(u16, String)>,
}

/// A handshake request for `url` with the access token in the subprotocol
/// (`chat.v1, bearer.<token>`), as a browser sends it.
pub fn subprotocol_request(url: &str, token: &str) -> Result<Request, Error> {
    let mut request = url.into_client_request()?;
    request.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_str(&format!("chat.v1, bearer.{token}")).expect("a token is ASCII"),
    );
    Ok(request)
}

/// A handshake request for `url` with the access token in an
/// `Authorization: Bearer` header, as a native client sends it.
pub fn bearer_request(url: &str, token: &str) -> Result<Request, Error> {
    let mut request = url.into_client_request()?;
    request.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).expect("a token is ASCII"),
    );
    Ok(request)
}

impl TestClient {
    /// Connects with the token in the subprotocol, as a browser would, and
    /// reads `hello`; the server must have chosen `chat.v1`.
    pub async fn connect(url: &str, token: &str) -> Result<Self, Error> {
        let (client, response) = Self::connect_request(subprotocol_request(url, token)?).await?;
        assert_eq!(
            response.headers().get("sec-websocket-protocol").unwrap(),
            "chat.v1"
        );
        Ok(client)
    }

    /// Connects with a handshake request built by the caller (headers of
    /// its choosing) and reads `hello`; returns the upgrade response too.
    pub async fn connect_request(request: Request) -> Result<(Self, Response), Error> {
        let (mut client, response) = Self::open(request, None).await?;
        client.hello = client.recv_until(|f| f["type"] == "hello").await;
        Ok((client, response))
    }

    /// Connects like [`TestClient::connect`], over a socket whose kernel
    /// receive buffer is about `bytes`: once such a client stops reading,
    /// the server's writes back up after little data, as with a slow phone.
    pub async fn connect_with_receive_buffer(
        url: &str,
        token: &str,
        bytes: u32,
    ) -> Result<Self, Error> {
        let (mut client, _) = Self::open(subprotocol_request(url, token)?, Some(bytes)).await?;
        client.hello = client.recv_until(|f| f["type"] == "hello").await;
        Ok(client)
    }

    /// Completes the WebSocket handshake of `request` (over a socket with a
    /// kernel receive buffer of about `receive_buffer` bytes, if given) and
    /// reads nothing: [`TestClient::read_hello`] comes next.
    pub async fn open(
        request: Request,
        receive_buffer: Option<u32>,
    ) -> Result<(Self, Response), Error> {
        let (socket, response) = match receive_buffer {
            None => tokio_tungstenite::connect_async(request).await?,
            Some(bytes) => {
                let authority = request
                    .uri()
                    .authority()
                    .ok_or(Error::Url(
                        tokio_tungstenite::tungstenite::error::UrlError::NoHostName,
                    ))?
                    .as_str();
                let addr = tokio::net::lookup_host(authority)
                    .await?
                    .next()
                    .expect("the gateway address resolves");
                let socket = tokio::net::TcpSocket::new_v4()?;
                socket.set_recv_buffer_size(bytes)?;
                let stream = socket.connect(addr).await?;
                tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream)).await?
            }
        };
        let client = Self {
            socket,
            backlog: VecDeque::new(),
            hello: Value::Null,
            closed: None,
        };
        Ok((client, response))
    }

    /// Reads the first frame, which must be `hello`, within `within`.
    pub async fn read_hello(&mut self, within: Duration) -> anyhow::Result<&Value> {
        let frame = tokio::time::timeout(within, self.frame())
            .await
            .context("no hello in time")??;
        match frame {
            Some(hello) if hello["type"] == "hello" => {
                self.hello = hello;
                Ok(&self.hello)
            }
            Some(other) => bail!("first frame was not hello: {other}"),
            None => bail!("closed before hello: {:?}", self.closed),
        }
    }

    /// The next frame, with no time limit: `Ok(None)` once the server
    /// closed the socket (see [`TestClient::closed`]), an error if the
    /// connection broke or a frame was not JSON. Cancel-safe: it can race
    /// other futures in a `select!`.
    pub async fn frame(&mut self) -> anyhow::Result<Option<Value>> {
        match self.backlog.pop_front() {
            Some(frame) => Ok(Some(frame)),
            None => self.read_socket().await,
        }
    }

    /// The next frame from the socket itself (not the backlog).
    async fn read_socket(&mut self) -> anyhow::Result<Option<Value>> {
        loop {
            match self.socket.next().await {
                Some(Ok(Message::Text(text))) => {
                    return serde_json::from_str(&text)
                        .map(Some)
                        .with_context(|| format!("the server sent bad JSON: {text}"));
                }
                Some(Ok(Message::Close(frame))) => {
                    self.closed = Some(frame.map_or((1005, String::new()), |f| {
                        (u16::from(f.code), f.reason.to_string())
                    }));
                    return Ok(None);
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => {
                    self.closed.get_or_insert((1006, String::new()));
                    return Err(e.into());
                }
                None => {
                    self.closed.get_or_insert((1006, String::new()));
                    return Ok(None);
                }
            }
        }
    }

    /// Sends a frame; an error if the connection is gone.
    pub async fn send_frame(&mut self, frame: &Value) -> Result<(), Error> {
        self.socket.send(Message::text(frame.to_string())).await
    }

    /// Sends a close frame.
    pub async fn close(&mut self) {
        let _ = self.socket.close(None).await;
    }

    /// Sends a frame.
    pub async fn send(&mut self, frame: Value) {
        self.send_frame(&frame).await.unwrap();
    }

    /// Sends a raw WebSocket message (for malformed input).
    pub async fn send_raw(&mut self, message: Message) {
        self.socket.send(message).await.unwrap();
    }

    /// Sends a frame; false if the connection is already gone (the close
    /// that ended it is then read with [`TestClient::closed`]).
    pub async fn try_send(&mut self, frame: Value) -> bool {
        self.send_frame(&frame).await.is_ok()
    }

    /// The next text frame, or `None` once the socket closed.
    pub async fn next(&mut self) -> Option<Value> {
        if let Some(frame) = self.backlog.pop_front() {
            return Some(frame);
        }
        self.read().await
    }

    /// The next frame from the socket within [`WAIT`], or `None` once the
    /// socket closed.
    async fn read(&mut self) -> Option<Value> {
        let frame = tokio::time::timeout(WAIT, self.read_socket())
            .await
            .expect("timed out waiting for a frame");
        match frame {
            Ok(frame) => frame,
            Err(_) if self.closed.is_some() => None,
            Err(e) => panic!("{e:#}"),
        }
    }

    /// The first frame matching `pred`, from what was already read or from
    /// the socket; frames skipped on the way stay readable, in order.
    pub async fn recv_until(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(at) = self.backlog.iter().position(&pred) {
            return self.backlog.remove(at).expect("position is in range");
        }
        loop {
            match self.read().await {
                Some(frame) if pred(&frame) => return frame,
                Some(frame) => self.backlog.push_back(frame),
                None => panic!(
                    "socket closed ({:?}) before the expected frame",
                    self.closed
                ),
            }
        }
    }

    /// Sends a message and waits for its ack (failing on an error).
    pub async fn send_message(&mut self, room: &str, client_id: &str, body: &str) -> Value {
        self.send(json!({ "type": "send", "room_id": room, "client_id": client_id, "body": body }))
            .await;
        let answer = self
            .recv_until(|f| {
                (f["type"] == "ack" && f["client_id"] == client_id)
                    || (f["type"] == "error" && f["ref"] == client_id)
            })
            .await;
        assert_eq!(answer["type"], "ack", "send {client_id} failed: {answer}");
        answer
    }

    /// Collects `room`'s message events until `count` messages arrived,
    /// checking no seq repeats or goes backwards.
    pub async fn messages(&mut self, room: &str, count: usize) -> Vec<Value> {
        let mut out: Vec<Value> = Vec::new();
        while out.len() < count {
            let frame = self
                .recv_until(|f| f["type"] == "message" && f["room_id"] == room)
                .await;
            if let Some(last) = out.last() {
                assert!(
                    frame["seq"].as_i64() > last["seq"].as_i64(),
                    "out of order or duplicate: {} after {}",
                    frame["seq"],
                    last["seq"]
                );
            }
            out.push(frame);
        }
        out
    }

    /// Waits for the server to close the socket; returns code and reason.
    pub async fn closed(&mut self) -> (u16, String) {
        while self.next().await.is_some() {}
        self.closed.clone().unwrap()
    }

    /// This connection's id, its `hello`'s `session_id` (a call's
    /// `caller_session` or `callee_session` when it takes part).
    pub fn session_id(&self) -> &str {
        self.hello["session_id"]
            .as_str()
            .expect("hello has a session_id")
    }

    /// Sends `ping` and returns every frame that came before its `pong`
    /// (those read earlier and not yet taken included): what reached this
    /// connection so far, to check what did not, bounded by a round trip.
    pub async fn frames_until_pong(&mut self) -> Vec<Value> {
        self.send(json!({ "type": "ping" })).await;
        let mut frames: Vec<Value> = self.backlog.drain(..).collect();
        loop {
            match self.read().await {
                Some(frame) if frame["type"] == "pong" => return frames,
                Some(frame) => frames.push(frame),
                None => panic!("socket closed ({:?}) before the pong", self.closed),
            }
        }
    }

    /// The room heads from `hello`.
    pub fn heads(&self) -> HashMap<String, i64> {
        self.hello["rooms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["room_id"].as_str().unwrap().to_owned(),
                    r["last_seq"].as_i64().unwrap(),
                )
            })
            .collect()
    }
}
