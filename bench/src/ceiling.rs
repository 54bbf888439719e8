//! The ceiling: what our transport delivers when nothing is durable. A
//! room broadcaster on the gateway's stack (the shared listener and HTTP/1
//! loop, hyper's upgrade, fastwebsockets' framing) with the gateway's way of
//! writing (a connection's writer takes what is queued for it, up to 64
//! frames, and sends it in one write; a busy room is fanned out at most once
//! per 10 ms), but with no authentication, no store and no bus. Measured
//! beside ours in one run, the gap between the two is the price of
//! durability: the commit before the ack, the checks against the store, the
//! bus, and the ordering and gap repair that let delivery survive a crash.
//!
//! It speaks just enough of `chat.v1` (docs/protocol.md) for the generator
//! to drive it exactly as it drives ours, and builds its frames from
//! `chat_shared::protocol` and `chat_shared::model`, so each carries the
//! bytes ours would: `hello` (one room), `send` → `ack`, the `message` event
//! to every connection in the room (the sender's own included), `sync`
//! answered by `synced` at the room's head (there is no history to replay),
//! `ping` → `pong`. The bearer token is not a JWT but the id of the room to
//! join. It shares no code with `chat-gateway`: a ceiling made of the
//! gateway's parts would measure those parts, not their absence.
//!
//! Two nodes (`chat-bench cross`) are linked directly ([`link`]): one TCP
//! connection carries each event across once, and the other node fans it
//! out to its own connections. That is the least two nodes can do to share
//! a room, since every event must cross once; ours crosses through Redis, a
//! broker that takes each event and writes it to every subscribed gateway:
//! one more process and one more hop. More nodes would need a mesh or a
//! broker; two need neither. The sender's node numbers a room's events and
//! the other takes the numbers it is given, so with senders on both nodes a
//! room would have two sequences: like the peers, the ceiling keeps one
//! sender's order, not a room's.
//!
//! One runtime runs everything: a send takes one hop here (its reader
//! numbers it and fans it out), where ours takes several (the read, the
//! commit's round trips, the answer, the hub), each of which would wait
//! behind a fan-out round's writes, which is why ours writes from threads
//! of its own.

mod connection;
mod link;
mod outbox;
mod rooms;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use chat_shared::listener::Listener;
use hyper::service::service_fn;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use rooms::Rooms;

/// How long a client may take to send its request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How a node reaches the other node of a pair.
#[derive(Debug, Clone, Copy)]
pub enum Link {
    /// Wait for the other node on this address.
    Listen(SocketAddr),
    /// Connect to the other node, listening there.
    Connect(SocketAddr),
}

/// A bound ceiling node, ready to [`run`](Node::run).
pub struct Node {
    listener: Listener,
    rooms: Arc<Rooms>,
}

impl Node {
    /// Binds `addr` for clients. With `Link::Connect` the link is up before
    /// this returns, so a node that accepts clients already reaches its
    /// pair; with `Link::Listen` the link is taken when the pair connects.
    pub async fn bind(addr: SocketAddr, link: Option<Link>) -> Result<Self> {
        let rooms = Arc::new(Rooms::new(rooms::FAN_OUT_INTERVAL));
        match link {
            Some(Link::Connect(peer)) => link::connect(&rooms, peer).await?,
            Some(Link::Listen(at)) => link::listen(&rooms, at).await?,
            None => {}
        }
        // No cap per address: every client of a benchmark comes from one.
        let listener = Listener::bind(addr, 0).await?;
        Ok(Self { listener, rooms })
    }

    /// Where clients connect.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr()
    }

    /// Serves clients until `finish` is cancelled.
    pub async fn run(self, finish: CancellationToken) {
        let rooms = self.rooms;
        let keys = Arc::new(AtomicU64::new(1));
        let http = TaskTracker::new();
        chat_shared::http_server::serve(self.listener, HEADER_READ_TIMEOUT, &http, finish, |_| {
            let (rooms, keys) = (rooms.clone(), keys.clone());
            Some(service_fn(move |request| {
                let key = keys.fetch_add(1, Ordering::Relaxed);
                connection::accept(request, rooms.clone(), key)
            }))
        })
        .await;
    }
}

/// `chat-bench ceiling --addr A [--link-listen L | --link-connect L]`: one
/// node, serving until the process is ended (the generator kills it).
pub async fn serve(args: impl Iterator<Item = String>) -> Result<()> {
    let mut addr = None;
    let mut link = None;
    let mut args = args;
    while let Some(flag) = args.next() {
        let value: SocketAddr = args
            .next()
            .with_context(|| format!("{flag} needs an address"))?
            .parse()?;
        match flag.as_str() {
            "--addr" => addr = Some(value),
            "--link-listen" => link = Some(Link::Listen(value)),
            "--link-connect" => link = Some(Link::Connect(value)),
            other => {
                bail!("unknown ceiling argument {other}: --addr, --link-listen, --link-connect")
            }
        }
    }
    let node = Node::bind(addr.context("the ceiling needs --addr")?, link).await?;
    // As the peers do (bench/peers/README.md): one line, once ready.
    println!("listening on {}", node.local_addr());
    node.run(CancellationToken::new()).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{self, Endpoint, Protocol, Socket};
    use chat_shared::model::RoomId;
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    /// A node on port 0, serving until the test ends.
    async fn start(link: Option<Link>) -> SocketAddr {
        let node = Node::bind("127.0.0.1:0".parse().unwrap(), link)
            .await
            .unwrap();
        let addr = node.local_addr();
        tokio::spawn(node.run(CancellationToken::new()));
        addr
    }

    async fn join(addr: SocketAddr, room: RoomId) -> Socket {
        let endpoint = Endpoint {
            protocol: Protocol::Chat,
            addr,
            room: room.to_string(),
        };
        let source = "127.0.0.1".parse().unwrap();
        proto::connect(&endpoint, Some(&room.to_string()), source)
            .await
            .unwrap()
    }

    /// The next text frame that is not `synced`, within a few seconds.
    async fn next_text(socket: &mut Socket) -> serde_json::Value {
        let wait = Duration::from_secs(5);
        loop {
            let frame = tokio::time::timeout(wait, socket.next()).await.unwrap();
            if let Some(Ok(Message::Text(text))) = frame {
                let value: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
                if value["type"] != "synced" {
                    return value;
                }
            }
        }
    }

    #[tokio::test]
    async fn a_send_is_acked_and_reaches_the_room_on_both_nodes() {
        let link_addr = chat_testkit::launcher::free_addr().unwrap();
        let first = start(Some(Link::Listen(link_addr))).await;
        let second = start(Some(Link::Connect(link_addr))).await;
        let room = RoomId::new();
        let mut sender = join(first, room).await;
        let mut near = join(first, room).await;
        let mut far = join(second, room).await;
        // A room elsewhere hears nothing of it.
        let mut elsewhere = join(second, RoomId::new()).await;
        let send = format!(r#"{{"type":"send","room_id":"{room}","client_id":"c1","body":"hi"}}"#);
        sender.send(Message::text(send)).await.unwrap();
        let ack = next_text(&mut sender).await;
        assert_eq!(
            (ack["type"].as_str(), ack["seq"].as_i64()),
            (Some("ack"), Some(1))
        );
        for socket in [&mut sender, &mut near, &mut far] {
            let event = next_text(socket).await;
            assert_eq!(event["type"], "message");
            assert_eq!(event["body"], "hi");
            assert_eq!(event["seq"], 1);
            assert_eq!(event["id"], ack["id"]);
        }
        elsewhere
            .send(Message::text(r#"{"type":"ping"}"#))
            .await
            .unwrap();
        assert_eq!(next_text(&mut elsewhere).await["type"], "pong");
    }
}
