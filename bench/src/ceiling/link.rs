//! The link between the two nodes of a ceiling pair: one TCP connection
//! that carries each event sent on either node across once, for the other
//! node to fan out to its own connections. No broker, no subscriptions:
//! every event crosses, whether or not the other node has the room (it
//! drops what it has no connection for), which is what the least relay
//! between two nodes costs.
//!
//! An event travels as a length (u32, of what follows), its room (16
//! bytes), its seq (i64) and its JSON, the bytes the sender's node fans
//! out. The writer sends whatever is queued, up to [`BATCH`] events, in one
//! write, as a connection's writer does.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::{BufMut, Bytes, BytesMut};
use chat_shared::model::RoomId;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::rooms::Rooms;

/// Events waiting to cross, as many as ours' bus publisher holds. Full:
/// the event is dropped for the other node (the generator counts it as
/// undelivered there), as ours drops a publish its bus cannot take.
const LINK_QUEUE: usize = 8192;

/// Events written to the link at once at most.
const BATCH: usize = 256;

/// Bytes before an event's JSON: length, room, seq.
const HEAD: usize = 4 + 16 + 8;

/// How long a node waits for its pair to start listening.
const CONNECT_FOR: Duration = Duration::from_secs(30);

/// Listens on `at` for the other node and takes the first that connects,
/// in the background: the pair is started after this node is up.
pub async fn listen(rooms: &Arc<Rooms>, at: SocketAddr) -> Result<()> {
    let listener = TcpListener::bind(at)
        .await
        .with_context(|| format!("binding the link at {at}"))?;
    let rooms = rooms.clone();
    tokio::spawn(async move {
        match listener.accept().await {
            Ok((stream, _)) => attach(&rooms, stream),
            Err(e) => eprintln!("chat-bench ceiling: no link: {e}"),
        }
    });
    Ok(())
}

/// Connects to the other node at `peer`, waiting for it to listen.
pub async fn connect(rooms: &Arc<Rooms>, peer: SocketAddr) -> Result<()> {
    let started = Instant::now();
    let stream = loop {
        match TcpStream::connect(peer).await {
            Ok(stream) => break stream,
            Err(_) if started.elapsed() < CONNECT_FOR => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(e).with_context(|| format!("linking to {peer}")),
        }
    };
    attach(rooms, stream);
    Ok(())
}

/// Starts the link's two tasks on `stream`.
fn attach(rooms: &Arc<Rooms>, stream: TcpStream) {
    // Events are written in batches already: none should wait for more.
    let _ = stream.set_nodelay(true);
    let (read, write) = stream.into_split();
    let (events, queued) = mpsc::channel(LINK_QUEUE);
    rooms.link_to(events);
    tokio::spawn(write_events(write, queued));
    tokio::spawn(read_events(read, rooms.clone()));
}

/// Writes what is queued, a batch per write, until the link fails.
async fn write_events(mut write: OwnedWriteHalf, mut queued: mpsc::Receiver<(RoomId, i64, Bytes)>) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut buffer = Vec::new();
    while queued.recv_many(&mut batch, BATCH).await > 0 {
        for (room, seq, frame) in batch.drain(..) {
            encode(&mut buffer, room, seq, &frame);
        }
        if let Err(e) = write.write_all(&buffer).await {
            eprintln!("chat-bench ceiling: the link failed: {e}");
            return;
        }
        buffer.clear();
    }
}

/// Hands each event that crosses to this node's rooms, until the link
/// closes.
async fn read_events(read: OwnedReadHalf, rooms: Arc<Rooms>) {
    let mut read = BufReader::with_capacity(64 * 1024, read);
    loop {
        let Ok(length) = read.read_u32().await else {
            eprintln!("chat-bench ceiling: the link closed");
            return;
        };
        let mut body = BytesMut::zeroed(length as usize);
        if read.read_exact(&mut body).await.is_err() {
            eprintln!("chat-bench ceiling: the link closed within an event");
            return;
        }
        match decode(body.freeze()) {
            Some((room, seq, frame)) => rooms.offer_remote(room, seq, frame),
            None => eprintln!("chat-bench ceiling: an event of {length} bytes is too short"),
        }
    }
}

/// Appends one event in the link's framing.
fn encode(buffer: &mut Vec<u8>, room: RoomId, seq: i64, frame: &[u8]) {
    buffer.reserve(HEAD + frame.len());
    buffer.put_u32((HEAD - 4 + frame.len()) as u32);
    buffer.put_slice(room.0.as_bytes());
    buffer.put_i64(seq);
    buffer.put_slice(frame);
}

/// An event's room, seq and JSON from what followed its length.
fn decode(body: Bytes) -> Option<(RoomId, i64, Bytes)> {
    if body.len() < HEAD - 4 {
        return None;
    }
    let room = RoomId(Uuid::from_slice(&body[..16]).ok()?);
    let seq = i64::from_be_bytes(body[16..24].try_into().ok()?);
    Some((room, seq, body.slice(24..)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_crosses_whole() {
        let room = RoomId::new();
        let mut buffer = Vec::new();
        encode(&mut buffer, room, 42, b"{\"type\":\"message\"}");
        encode(&mut buffer, room, 43, b"");
        let length = u32::from_be_bytes(buffer[..4].try_into().unwrap()) as usize;
        let first = Bytes::copy_from_slice(&buffer[4..4 + length]);
        let (got_room, seq, frame) = decode(first).unwrap();
        assert_eq!(
            (got_room, seq, &frame[..]),
            (room, 42, &b"{\"type\":\"message\"}"[..])
        );
        let second = Bytes::copy_from_slice(&buffer[8 + length..]);
        assert_eq!(
            decode(second).map(|(_, seq, f)| (seq, f.len())),
            Some((43, 0))
        );
        assert!(decode(Bytes::from_static(b"short")).is_none());
    }
}
