//! The three wire protocols the generator speaks, each reduced to what a
//! benchmark needs: join a room on connect, send a message carrying its
//! send time, recognise a delivery and an acknowledgement cheaply.
//!
//! - `chat.v1` (ours, `docs/protocol.md`): REST login, then a WebSocket with
//!   the token; `send {room_id, client_id, body}` → `ack {client_id, …}` and
//!   `message {…, body}` to every member.
//! - plain: a WebSocket per room (`/?room=r`); every text frame is relayed to
//!   the room, the sender's own copy being its acknowledgement
//!   (`bench/peers/ws-server.mjs`).
//! - Socket.IO 4 over the websocket transport (engine.io v4 framing):
//!   `42["send",{…}]` with an ack id, `42["message",{…}]` to the room
//!   (`bench/peers/socketio-server.mjs`).
//!
//! Every message body starts with its send time in microseconds since the
//! run's epoch, so a receiver finds its latency without a JSON parse. A
//! reaction (ours only) has no body: its client_id, `b<seq>-<send time>`,
//! carries both, and comes back on the `reaction_added`/`reaction_removed`
//! event every member receives.
//!
//! It is the generator's own, not the test kit's `TestClient`: it speaks
//! the peers' protocols too, and on its hot path a frame is recognised
//! without a JSON parse (`receiver.rs` says why that matters).

use std::net::SocketAddr;

use anyhow::{bail, Context, Result};
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::receiver::{Frame, Receiver};

/// A connected WebSocket.
pub type Socket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Which protocol a system speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Chat,
    Plain,
    SocketIo,
}

/// How to reach one room of one system.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub protocol: Protocol,
    pub addr: SocketAddr,
    /// The room: our room id, or the peers' room name.
    pub room: String,
}

/// What a received frame meant.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// A room message sent at this many µs after the epoch.
    Delivery {
        sent_us: u64,
    },
    /// The acknowledgement of our send with this sequence number.
    Ack {
        seq: u64,
    },
    /// Engine.io ping: answer with a pong.
    Ping,
    Other,
}

/// The request path that joins the endpoint's room.
fn path(endpoint: &Endpoint) -> String {
    match endpoint.protocol {
        Protocol::Chat => "/v1/ws".to_owned(),
        Protocol::Plain => format!("/?room={}", endpoint.room),
        Protocol::SocketIo => format!(
            "/socket.io/?EIO=4&transport=websocket&room={}",
            endpoint.room
        ),
    }
}

/// Opens a WebSocket from `source` (a loopback address of our choosing, so
/// many connections do not exhaust one address's ports) and joins the
/// endpoint's room: the sender's connection, through a general client.
/// `token` is our access token for `Protocol::Chat`.
pub async fn connect(
    endpoint: &Endpoint,
    token: Option<&str>,
    source: std::net::IpAddr,
) -> Result<Socket> {
    let mut request = format!("ws://{}{}", endpoint.addr, path(endpoint)).into_client_request()?;
    if let Some(token) = token {
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse()?);
    }
    let stream = crate::sockets::bound_to(source)?
        .connect(endpoint.addr)
        .await?;
    stream.set_nodelay(true)?;
    let (mut ws, _) = tokio_tungstenite::client_async(request, stream).await?;
    join(&mut ws, endpoint.protocol).await?;
    Ok(ws)
}

/// The same for a receiving member, through the lean [`Receiver`] with a
/// read buffer of `buffer` bytes.
pub async fn connect_receiver(
    endpoint: &Endpoint,
    token: Option<&str>,
    source: std::net::IpAddr,
    buffer: usize,
) -> Result<Receiver> {
    let headers: Vec<String> = token
        .map(|t| format!("Authorization: Bearer {t}"))
        .into_iter()
        .collect();
    let mut receiver =
        Receiver::connect(endpoint.addr, source, &path(endpoint), &headers, buffer).await?;
    join(&mut receiver, endpoint.protocol).await?;
    Ok(receiver)
}

/// Text in and out: what joining a room needs of a connection.
pub trait TextIo {
    async fn recv_text(&mut self) -> Result<String>;
    async fn send_text(&mut self, text: &str) -> Result<()>;
}

impl TextIo for Socket {
    async fn recv_text(&mut self) -> Result<String> {
        loop {
            match self
                .next()
                .await
                .context("connection closed during set-up")??
            {
                Message::Text(text) => return Ok(text.as_str().to_owned()),
                Message::Close(frame) => bail!("closed during set-up: {frame:?}"),
                _ => {}
            }
        }
    }

    async fn send_text(&mut self, text: &str) -> Result<()> {
        self.send(Message::text(text)).await?;
        Ok(())
    }
}

impl TextIo for Receiver {
    async fn recv_text(&mut self) -> Result<String> {
        match self.next().await? {
            Frame::Text(text) => Ok(text.to_owned()),
            Frame::Closed => bail!("closed during set-up"),
        }
    }

    async fn send_text(&mut self, text: &str) -> Result<()> {
        Receiver::send_text(self, text).await
    }
}

/// The protocol's opening exchange, after which room messages flow.
async fn join(io: &mut impl TextIo, protocol: Protocol) -> Result<()> {
    match protocol {
        Protocol::Chat => {
            // hello, then a sync with its heads: live delivery starts now.
            let hello = io.recv_text().await?;
            if !hello.starts_with(r#"{"type":"hello""#) {
                bail!("expected hello, got {hello}");
            }
            let hello: serde_json::Value = serde_json::from_str(&hello)?;
            let rooms: serde_json::Map<String, serde_json::Value> = hello["rooms"]
                .as_array()
                .context("hello rooms")?
                .iter()
                .filter_map(|r| Some((r["room_id"].as_str()?.to_owned(), r["last_seq"].clone())))
                .collect();
            let sync = serde_json::json!({"type": "sync", "rooms": rooms});
            io.send_text(&sync.to_string()).await?;
        }
        Protocol::Plain => {}
        Protocol::SocketIo => {
            let open = io.recv_text().await?;
            if !open.starts_with('0') {
                bail!("expected the engine.io open packet, got {open}");
            }
            io.send_text("40").await?;
            let connected = io.recv_text().await?;
            if !connected.starts_with("40") {
                bail!("expected the namespace connect, got {connected}");
            }
        }
    }
    Ok(())
}

/// The frame that sends message number `seq` with `body` (which starts
/// with the send time).
pub fn send_frame(endpoint: &Endpoint, seq: u64, body: &str) -> Message {
    let text = match endpoint.protocol {
        Protocol::Chat => format!(
            r#"{{"type":"send","room_id":"{}","client_id":"b{seq}","body":"{body}"}}"#,
            endpoint.room
        ),
        Protocol::Plain => format!(r#"{{"seq":{seq},"body":"{body}"}}"#),
        Protocol::SocketIo => format!(
            r#"42{seq}["send",{{"room":"{}","id":{seq},"ts":0,"body":"{body}"}}]"#,
            endpoint.room
        ),
    };
    Message::text(text)
}

/// The frame that toggles our reaction to `target` (ours only): number
/// `seq` adds it when odd and takes it back when even, so every frame
/// changes something and fans out an event like a message.
pub fn reaction_frame(endpoint: &Endpoint, seq: u64, sent_us: u64, target: &str) -> Message {
    let kind = if seq % 2 == 1 { "react" } else { "unreact" };
    Message::text(format!(
        r#"{{"type":"{kind}","room_id":"{}","client_id":"b{seq}-{sent_us}","target":"{target}","emoji":"👍"}}"#,
        endpoint.room
    ))
}

/// A message body of about `len` bytes starting with the send time.
pub fn body(sent_us: u64, len: usize) -> String {
    let mut body = sent_us.to_string();
    body.push(' ');
    while body.len() < len {
        body.push('x');
    }
    body
}

/// Classifies a received text frame. `own` is true on the sending
/// connection, where the plain protocol's echo is the acknowledgement.
pub fn classify(protocol: Protocol, text: &str, own: bool) -> Event {
    match protocol {
        Protocol::Chat => {
            if text.starts_with(r#"{"type":"ack""#) {
                number_after(text, r#""client_id":"b"#)
                    .map_or(Event::Other, |seq| Event::Ack { seq })
            } else if text.contains(r#""type":"message""#) {
                number_after(text, r#""body":""#)
                    .map_or(Event::Other, |sent_us| Event::Delivery { sent_us })
            } else if text.contains(r#""type":"reaction_"#) {
                // `"client_id":"b<seq>-<sent_us>"`
                let start = text.find(r#""client_id":"b"#).map(|at| &text[at..]);
                start
                    .and_then(|rest| rest.find('-').map(|dash| &rest[dash..]))
                    .and_then(|rest| number_after(rest, "-"))
                    .map_or(Event::Other, |sent_us| Event::Delivery { sent_us })
            } else {
                Event::Other
            }
        }
        Protocol::Plain => match number_after(text, r#""body":""#) {
            Some(sent_us) if !own => Event::Delivery { sent_us },
            Some(_) => {
                number_after(text, r#""seq":"#).map_or(Event::Other, |seq| Event::Ack { seq })
            }
            None => Event::Other,
        },
        Protocol::SocketIo => {
            if text == "2" {
                Event::Ping
            } else if let Some(rest) = text.strip_prefix("43") {
                number_after(rest, "").map_or(Event::Other, |seq| Event::Ack { seq })
            } else if text.starts_with(r#"42["message""#) {
                number_after(text, r#""body":""#)
                    .map_or(Event::Other, |sent_us| Event::Delivery { sent_us })
            } else {
                Event::Other
            }
        }
    }
}

/// The decimal number right after the first `marker` in `text`.
fn number_after(text: &str, marker: &str) -> Option<u64> {
    let start = text.find(marker)? + marker.len();
    let digits = text[start..].bytes().take_while(u8::is_ascii_digit).count();
    text[start..start + digits].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_recognised_per_protocol() {
        let ack = r#"{"type":"ack","client_id":"b17","room_id":"r","seq":3,"id":"i","ts":"t"}"#;
        assert_eq!(classify(Protocol::Chat, ack, true), Event::Ack { seq: 17 });
        let message = r#"{"room_id":"r","seq":3,"id":"i","sender":"s","ts":"t","type":"message","client_id":"b17","body":"123456 xxx"}"#;
        assert_eq!(
            classify(Protocol::Chat, message, false),
            Event::Delivery { sent_us: 123_456 }
        );
        assert_eq!(
            classify(Protocol::Chat, r#"{"type":"presence"}"#, false),
            Event::Other
        );
        let reaction = r#"{"room_id":"r","seq":4,"id":"i","sender":"s","ts":"t","client_id":"b18-654321","type":"reaction_added","target":"m","emoji":"x"}"#;
        assert_eq!(
            classify(Protocol::Chat, reaction, false),
            Event::Delivery { sent_us: 654_321 }
        );
        let acked =
            r#"{"type":"ack","client_id":"b18-654321","room_id":"r","seq":4,"id":"i","ts":"t"}"#;
        assert_eq!(
            classify(Protocol::Chat, acked, true),
            Event::Ack { seq: 18 }
        );

        let plain = r#"{"seq":9,"body":"42 xx"}"#;
        assert_eq!(
            classify(Protocol::Plain, plain, false),
            Event::Delivery { sent_us: 42 }
        );
        assert_eq!(
            classify(Protocol::Plain, plain, true),
            Event::Ack { seq: 9 }
        );

        assert_eq!(classify(Protocol::SocketIo, "2", false), Event::Ping);
        assert_eq!(
            classify(Protocol::SocketIo, r#"435[{"ok":true}]"#, true),
            Event::Ack { seq: 5 }
        );
        let sio = r#"42["message",{"room":"r","id":5,"ts":0,"body":"77 x"}]"#;
        assert_eq!(
            classify(Protocol::SocketIo, sio, false),
            Event::Delivery { sent_us: 77 }
        );
    }

    #[test]
    fn bodies_carry_the_send_time_and_have_the_asked_length() {
        let body = body(1234, 100);
        assert_eq!(body.len(), 100);
        assert!(body.starts_with("1234 "));
    }
}
