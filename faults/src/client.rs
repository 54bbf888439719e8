//! A chat client on the test kit's (written against `docs/protocol.md`
//! alone, no code shared with the server) that keeps the books a fault
//! scenario is judged by:
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
use chat_testkit::client::{bearer_request, TestClient};
pub use chat_testkit::rest::{Account, Rest};
use rand::Rng;
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};

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
        let request = bearer_request(&self.url, &self.account.token)?;
        let (mut ws, _) =
            tokio::time::timeout(Duration::from_secs(3), TestClient::open(request, None))
                .await
                .context("handshake timed out")??;
        self.books.lock().expect("books lock").connects += 1;
        let hello = ws.read_hello(Duration::from_secs(5)).await?.clone();
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
        ws.send_frame(&json!({"type": "sync", "rooms": sync}))
            .await?;
        for (client_id, (room, body, sent_at)) in &mut self.outbox {
            ws.send_frame(&send_frame(room, client_id, body)).await?;
            *sent_at = Instant::now();
        }
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                frame = tokio::time::timeout(silence, ws.frame()) => {
                    let frame = frame.context("no frame for two heartbeat intervals")?;
                    match frame? {
                        Some(frame) => self.on_frame(&frame)?,
                        None => return Ok(()),
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
                    ws.send_frame(&frame).await?;
                }
                _ = tick.tick() => {
                    for (client_id, (room, body, sent_at)) in &mut self.outbox {
                        if sent_at.elapsed() > RESEND_AFTER {
                            ws.send_frame(&send_frame(room, client_id, body)).await?;
                            *sent_at = Instant::now();
                        }
                    }
                }
                _ = stop.changed() => {
                    ws.close().await;
                    return Ok(());
                }
            }
        }
    }

    fn on_frame(&mut self, frame: &Value) -> Result<()> {
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

fn send_frame(room: &str, client_id: &str, body: &str) -> Value {
    json!({"type": "send", "room_id": room, "client_id": client_id, "body": body})
}

/// A client that connects, resumes, and then never reads again: its
/// socket's receive buffer is kept tiny so the gateway feels it at once.
pub struct Stalled {
    ws: TestClient,
}

impl Stalled {
    pub async fn connect(entry: SocketAddr, account: &Account) -> Result<Self> {
        let request = bearer_request(&format!("ws://{entry}/v1/ws"), &account.token)?;
        let (mut ws, _) = TestClient::open(request, Some(4096)).await?;
        let hello = ws.read_hello(Duration::from_secs(5)).await?;
        let rooms: HashMap<String, i64> = hello["rooms"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| Some((r["room_id"].as_str()?.to_owned(), r["last_seq"].as_i64()?)))
            .collect();
        ws.send_frame(&json!({"type": "sync", "rooms": rooms}))
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
            match tokio::time::timeout(left, self.ws.frame()).await {
                Err(_) => bail!("the stalled client is still connected"),
                Ok(Ok(Some(_))) => {}
                Ok(Ok(None) | Err(_)) => {
                    return Ok(self
                        .ws
                        .closed
                        .map(|(code, _)| code)
                        .filter(|code| *code != 1005 && *code != 1006))
                }
            }
        }
    }
}
