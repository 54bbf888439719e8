//! A chat client written against `docs/protocol.md` alone (no code shared
//! with the server), that keeps the books a fault scenario is judged by:
//! what it sent, what was acknowledged with which seq, and every room event
//! it received, when, and whether it came in order, once.
//!
//! It behaves like a good production client: it reconnects with jittered
//! backoff, resumes with `sync` from the last seq it holds per room, re-sends
//! every unacknowledged message with the same `client_id`, and treats two
//! heartbeat intervals of silence as a dead connection.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures::{SinkExt, StreamExt};
use rand::Rng;
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// A registered user.
#[derive(Debug, Clone)]
pub struct Account {
    pub token: String,
}

/// Talks REST to the api through nginx.
#[derive(Clone)]
pub struct Rest {
    http: reqwest::Client,
    base: String,
}

impl Rest {
    pub fn new(entry: SocketAddr) -> Result<Self> {
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()?,
            base: format!("http://{entry}"),
        })
    }

    pub async fn register(&self, username: &str) -> Result<Account> {
        let body: Value = self
            .post(
                None,
                "/v1/auth/register",
                json!({"username": username, "password": "fault suite password"}),
            )
            .await?;
        Ok(Account {
            token: body["access_token"].as_str().context("token")?.to_owned(),
        })
    }

    pub async fn create_room(&self, owner: &Account, name: &str) -> Result<String> {
        let room: Value = self
            .post(
                Some(owner),
                "/v1/rooms",
                json!({"name": name, "kind": "public"}),
            )
            .await?;
        Ok(room["id"].as_str().context("room id")?.to_owned())
    }

    pub async fn join(&self, who: &Account, room: &str) -> Result<()> {
        self.post::<Value>(Some(who), &format!("/v1/rooms/{room}/join"), json!({}))
            .await?;
        Ok(())
    }

    /// `POST /v1/rooms/{room}/messages`: the committed event's seq, and
    /// whether it already existed (200: a retry of a committed send).
    pub async fn send(
        &self,
        who: &Account,
        room: &str,
        client_id: &str,
        body: &str,
    ) -> Result<(i64, bool)> {
        let response = self
            .http
            .post(format!("{}/v1/rooms/{room}/messages", self.base))
            .bearer_auth(&who.token)
            .json(&json!({"client_id": client_id, "body": body}))
            .send()
            .await?;
        let status = response.status();
        if !status.is_success() {
            bail!("send answered {status}");
        }
        let event: Value = response.json().await?;
        Ok((
            event["seq"].as_i64().context("seq")?,
            status == reqwest::StatusCode::OK,
        ))
    }

    /// Each room's head as the store has it (`GET /v1/rooms`).
    pub async fn heads(&self, who: &Account) -> Result<HashMap<String, i64>> {
        let response = self
            .http
            .get(format!("{}/v1/rooms", self.base))
            .bearer_auth(&who.token)
            .send()
            .await?
            .error_for_status()?;
        let body: Value = response.json().await?;
        let rooms = body
            .as_array()
            .or_else(|| body["rooms"].as_array())
            .context("room list")?;
        Ok(rooms
            .iter()
            .filter_map(|r| {
                let id = r["id"].as_str().or_else(|| r["room"]["id"].as_str())?;
                Some((id.to_owned(), r["last_seq"].as_i64()?))
            })
            .collect())
    }

    async fn post<T: serde::de::DeserializeOwned>(
        &self,
        who: Option<&Account>,
        path: &str,
        body: Value,
    ) -> Result<T> {
        let mut request = self.http.post(format!("{}{path}", self.base)).json(&body);
        if let Some(who) = who {
            request = request.bearer_auth(&who.token);
        }
        let response = request.send().await?;
        let status = response.status();
        if !status.is_success() {
            bail!(
                "POST {path} answered {status}: {}",
                response.text().await.unwrap_or_default()
            );
        }
        Ok(response.json().await?)
    }
}

/// What one client observed during the current scenario.
#[derive(Default)]
pub struct Books {
    /// Highest seq received per room (kept across scenarios: the stream
    /// continues).
    pub last: HashMap<String, i64>,
    /// (room, seq) of every room event received this scenario, with when.
    pub seen: HashMap<(String, i64), Instant>,
    /// The `client_id` of every message received this scenario.
    pub messages: HashMap<(String, i64), String>,
    /// Events received a second time (seq at or below the last one).
    pub duplicates: u64,
    /// Events that skipped ahead of a missing seq.
    pub out_of_order: u64,
    /// Messages this client sent: client_id → room.
    pub sent: HashMap<String, String>,
    /// Acknowledged sends: client_id → (room, seq, when).
    pub acked: HashMap<String, (String, i64, Instant)>,
    /// Sends whose connection (or request) failed before their ack.
    pub unknown: HashSet<String>,
    /// Deliberate re-sends of acknowledged messages, and how many of those
    /// came back with a different seq.
    pub retry_checks: u64,
    pub retry_mismatches: u64,
    /// Connections this client made.
    pub connects: u64,
    /// When sends were refused as `unavailable` (the store could not
    /// commit); each is retried with the same client_id.
    pub refused: Vec<Instant>,
}

impl Books {
    /// Starts a new scenario's books, keeping each room's position.
    pub fn reset(&mut self) {
        let last = std::mem::take(&mut self.last);
        *self = Books {
            last,
            ..Books::default()
        };
    }

    fn receive(&mut self, room: &str, seq: i64, client_id: Option<&str>) {
        let last = self.last.get(room).copied().unwrap_or(0);
        if seq <= last {
            self.duplicates += 1;
            return;
        }
        if seq != last + 1 {
            self.out_of_order += 1;
        }
        self.last.insert(room.to_owned(), seq);
        self.seen.insert((room.to_owned(), seq), Instant::now());
        if let Some(client_id) = client_id {
            self.messages
                .insert((room.to_owned(), seq), client_id.to_owned());
        }
    }

    /// Records an acknowledgement; a second one for the same client_id is
    /// a retry and must carry the original seq.
    pub fn record_ack(&mut self, client_id: &str, room: &str, seq: i64) {
        match self.acked.get(client_id) {
            Some((_, original, _)) => {
                self.retry_checks += 1;
                if *original != seq {
                    self.retry_mismatches += 1;
                }
            }
            None => {
                self.acked
                    .insert(client_id.to_owned(), (room.to_owned(), seq, Instant::now()));
            }
        }
    }

    /// Sent but not yet acknowledged.
    pub fn pending(&self) -> usize {
        self.sent
            .keys()
            .filter(|c| !self.acked.contains_key(*c))
            .count()
    }
}

/// A request to the client task.
pub enum Command {
    /// Send a message over the WebSocket.
    Send {
        room: String,
        client_id: String,
        body: String,
    },
    /// Send it again once acknowledged, to check the seq comes back equal.
    Resend { client_id: String },
}

/// A client running in its own task.
pub struct Client {
    pub account: Account,
    sender: Sender,
}

/// Hands commands to a client task and reads its books.
#[derive(Clone)]
pub struct Sender {
    pub books: Arc<Mutex<Books>>,
    commands: mpsc::UnboundedSender<Command>,
}

impl Sender {
    /// Queues a command; a send counts as sent (and pending) from here,
    /// even while the client is reconnecting.
    pub fn send(&self, command: Command) {
        if let Command::Send {
            room, client_id, ..
        } = &command
        {
            self.books
                .lock()
                .expect("books lock")
                .sent
                .insert(client_id.clone(), room.clone());
        }
        let _ = self.commands.send(command);
    }
}

impl Client {
    /// Starts a client that connects to `ws_url` and keeps reconnecting
    /// until `stop` turns true.
    pub fn spawn(account: Account, ws_url: String, stop: watch::Receiver<bool>) -> Self {
        let books = Arc::new(Mutex::new(Books::default()));
        let (commands, inbox) = mpsc::unbounded_channel();
        let task = Session {
            account: account.clone(),
            url: ws_url,
            books: books.clone(),
            outbox: HashMap::new(),
        };
        tokio::spawn(task.run(inbox, stop));
        Self {
            account,
            sender: Sender { books, commands },
        }
    }

    pub fn clone_sender(&self) -> Sender {
        self.sender.clone()
    }

    pub fn books(&self) -> std::sync::MutexGuard<'_, Books> {
        self.sender.books.lock().expect("books lock")
    }
}

/// The connection loop of one client.
struct Session {
    account: Account,
    url: String,
    books: Arc<Mutex<Books>>,
    /// Unacknowledged sends: client_id → (room, body, last sent).
    outbox: HashMap<String, (String, String, Instant)>,
}

/// How long an unacknowledged send waits before it is sent again (same
/// `client_id`, so at most one event results).
const RESEND_AFTER: Duration = Duration::from_secs(3);

impl Session {
    async fn run(
        mut self,
        mut inbox: mpsc::UnboundedReceiver<Command>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut backoff = Duration::from_millis(100);
        while !*stop.borrow() {
            match self.connected(&mut inbox, &mut stop).await {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(_) => backoff = (backoff * 2).min(Duration::from_secs(2)),
            }
            // Whatever was in flight on the dead connection has an unknown
            // outcome; it is re-sent with the same client_id on the next.
            {
                let mut books = self.books.lock().expect("books lock");
                for client_id in self.outbox.keys() {
                    books.unknown.insert(client_id.clone());
                }
            }
            let jitter = rand::thread_rng().gen_range(0..=backoff.as_millis() as u64);
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(jitter)) => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// One connection, from handshake until it dies or `stop`.
    async fn connected(
        &mut self,
        inbox: &mut mpsc::UnboundedReceiver<Command>,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<()> {
        let mut request = self.url.as_str().into_client_request()?;
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {}", self.account.token).parse()?,
        );
        let (mut ws, _) = tokio::time::timeout(
            Duration::from_secs(3),
            tokio_tungstenite::connect_async(request),
        )
        .await
        .context("handshake timed out")??;
        self.books.lock().expect("books lock").connects += 1;
        let hello = next_json(&mut ws, Duration::from_secs(5)).await?;
        if hello["type"] != "hello" {
            bail!("first frame was not hello: {hello}");
        }
        let silence = Duration::from_millis(hello["heartbeat_ms"].as_u64().unwrap_or(20_000) * 2);
        // Resume every room from what we hold; rooms seen for the first
        // time start at the head `hello` reports.
        let sync: HashMap<String, i64> = {
            let mut books = self.books.lock().expect("books lock");
            for room in hello["rooms"].as_array().into_iter().flatten() {
                if let (Some(id), Some(seq)) = (room["room_id"].as_str(), room["last_seq"].as_i64())
                {
                    books.last.entry(id.to_owned()).or_insert(seq);
                }
            }
            books.last.clone()
        };
        ws.send(Message::text(
            json!({"type": "sync", "rooms": sync}).to_string(),
        ))
        .await?;
        for (client_id, (room, body, sent_at)) in &mut self.outbox {
            ws.send(send_frame(room, client_id, body)).await?;
            *sent_at = Instant::now();
        }
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                frame = tokio::time::timeout(silence, ws.next()) => {
                    let frame = frame.context("no frame for two heartbeat intervals")?;
                    match frame {
                        Some(Ok(Message::Text(text))) => self.on_frame(&text)?,
                        Some(Ok(Message::Close(_))) | None => return Ok(()),
                        Some(Ok(_)) => {}
                        Some(Err(e)) => return Err(e.into()),
                    }
                }
                command = inbox.recv() => {
                    let Some(command) = command else { return Ok(()) };
                    let frame = match command {
                        Command::Send { room, client_id, body } => {
                            let frame = send_frame(&room, &client_id, &body);
                            self.outbox.insert(client_id, (room, body, Instant::now()));
                            frame
                        }
                        Command::Resend { client_id } => {
                            let books = self.books.lock().expect("books lock");
                            let Some((room, _, _)) = books.acked.get(&client_id) else { continue };
                            send_frame(room, &client_id, "a retry of an acknowledged send")
                        }
                    };
                    ws.send(frame).await?;
                }
                _ = tick.tick() => {
                    for (client_id, (room, body, sent_at)) in &mut self.outbox {
                        if sent_at.elapsed() > RESEND_AFTER {
                            ws.send(send_frame(room, client_id, body)).await?;
                            *sent_at = Instant::now();
                        }
                    }
                }
                _ = stop.changed() => {
                    let _ = ws.close(None).await;
                    return Ok(());
                }
            }
        }
    }

    fn on_frame(&mut self, text: &str) -> Result<()> {
        let frame: Value = serde_json::from_str(text).context("server sent bad JSON")?;
        let kind = frame["type"].as_str().unwrap_or_default();
        let mut books = self.books.lock().expect("books lock");
        match kind {
            "message" | "member_joined" | "member_left" | "role_changed" | "room_updated" => {
                let room = frame["room_id"].as_str().context("event room")?;
                let seq = frame["seq"].as_i64().context("event seq")?;
                books.receive(
                    room,
                    seq,
                    frame["client_id"].as_str().filter(|_| kind == "message"),
                );
            }
            "ack" => {
                let client_id = frame["client_id"].as_str().context("ack client_id")?;
                let room = frame["room_id"].as_str().context("ack room")?;
                let seq = frame["seq"].as_i64().context("ack seq")?;
                self.outbox.remove(client_id);
                books.record_ack(client_id, room, seq);
            }
            // Errors on sends (`rate_limited`, `unavailable`) are retried by
            // the resend timer with the same client_id.
            "error" if frame["code"] == "unavailable" => books.refused.push(Instant::now()),
            _ => {}
        }
        Ok(())
    }
}

fn send_frame(room: &str, client_id: &str, body: &str) -> Message {
    Message::text(
        json!({"type": "send", "room_id": room, "client_id": client_id, "body": body}).to_string(),
    )
}

async fn next_json<S>(ws: &mut S, within: Duration) -> Result<Value>
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        match tokio::time::timeout(within, ws.next())
            .await
            .context("timed out")?
        {
            Some(Ok(Message::Text(text))) => return Ok(serde_json::from_str(&text)?),
            Some(Ok(Message::Close(frame))) => bail!("closed: {frame:?}"),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
            None => bail!("connection ended"),
        }
    }
}

/// A client that connects, resumes, and then never reads again: its
/// socket's receive buffer is kept tiny so the gateway feels it at once.
pub struct Stalled {
    ws: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
}

impl Stalled {
    pub async fn connect(entry: SocketAddr, account: &Account) -> Result<Self> {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.set_recv_buffer_size(4096)?;
        let stream = socket.connect(entry).await?;
        let mut request = format!("ws://{entry}/v1/ws").into_client_request()?;
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {}", account.token).parse()?,
        );
        let (mut ws, _) = tokio_tungstenite::client_async(request, stream).await?;
        let hello = next_json(&mut ws, Duration::from_secs(5)).await?;
        let rooms: HashMap<String, i64> = hello["rooms"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| Some((r["room_id"].as_str()?.to_owned(), r["last_seq"].as_i64()?)))
            .collect();
        ws.send(Message::text(
            json!({"type": "sync", "rooms": rooms}).to_string(),
        ))
        .await?;
        Ok(Self { ws })
    }

    /// Starts reading again and reports how the server ended the
    /// connection: `Some(code)` for a close frame, `None` for a dropped one.
    /// Errs if the connection is still open after `within`.
    pub async fn how_it_ended(mut self, within: Duration) -> Result<Option<u16>> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.ws.next()).await {
                Err(_) => bail!("the stalled client is still connected"),
                Ok(Some(Ok(Message::Close(frame)))) => return Ok(frame.map(|f| u16::from(f.code))),
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(_)) | None) => return Ok(None),
            }
        }
    }
}
