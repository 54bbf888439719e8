//! One ceiling connection: the upgrade, then a reader and a writer until
//! it ends. The reader acts on each client frame in order (a `send` is
//! numbered, acked and fanned out before the next frame is read); the
//! writer owns the socket's write half and sends whatever is queued for it,
//! up to [`BATCH`] frames, in one write.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use chat_shared::model::{RoomId, User, UserId};
use chat_shared::protocol::{ClientFrame, RoomHead, ServerFrame};
use fastwebsockets::{Frame, OpCode, Payload};
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper::upgrade::Upgraded;
use hyper::{header, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};

use super::outbox::{Out, Outbox};
use super::rooms::{NewMessage, Rooms};

/// An upgraded connection.
type Socket = TokioIo<Upgraded>;

/// Frames written between two writes at most, as ours: one busy
/// connection does not hold a growing buffer.
const BATCH: usize = 64;

/// Bytes gathered past which a write goes out before the batch ends.
const FLUSH_AT: usize = 16 * 1024;

/// The largest frame a client may send, ours' `CHAT_MAX_MESSAGE_BYTES`.
const MAX_PAYLOAD: usize = 64 * 1024;

/// How long a closing connection's last frames may take to leave.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Answers `GET /v1/ws` with the room's id as the bearer token by
/// upgrading, and starts the connection; anything else is refused.
pub async fn accept(
    mut request: Request<Incoming>,
    rooms: Arc<Rooms>,
    key: u64,
) -> Result<Response<Empty<Bytes>>, Infallible> {
    if request.uri().path() != "/v1/ws" || !fastwebsockets::upgrade::is_upgrade_request(&request) {
        return Ok(refusal(StatusCode::NOT_FOUND));
    }
    let room = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok()?.strip_prefix("Bearer ")?.parse().ok());
    let Some(room) = room else {
        return Ok(refusal(StatusCode::UNAUTHORIZED));
    };
    let Ok((response, upgrade)) = fastwebsockets::upgrade::upgrade(&mut request) else {
        return Ok(refusal(StatusCode::BAD_REQUEST));
    };
    tokio::spawn(async move {
        if let Ok(ws) = upgrade.await {
            run(ws.into_inner(), room, rooms, key).await;
        }
    });
    Ok(response)
}

fn refusal(status: StatusCode) -> Response<Empty<Bytes>> {
    let mut response = Response::new(Empty::new());
    *response.status_mut() = status;
    response
}

/// What the reader needs to act on a frame.
struct Connection {
    room: RoomId,
    user: UserId,
    rooms: Arc<Rooms>,
    outbox: Outbox,
}

/// Greets the client, then reads until it goes; the writer runs beside.
async fn run(socket: Socket, room: RoomId, rooms: Arc<Rooms>, key: u64) {
    let user = User {
        id: UserId::new(),
        username: format!("c{key}"),
        display_name: format!("c{key}"),
        created_at: OffsetDateTime::now_utc(),
        avatar: None,
    };
    let connection = Connection {
        room,
        user: user.id,
        rooms: rooms.clone(),
        outbox: Outbox::default(),
    };
    rooms.join(room, key, &connection.outbox, |last_seq| {
        let hello = ServerFrame::Hello {
            session_id: chat_shared::model::ConnectionId::new(),
            user,
            rooms: vec![RoomHead {
                room_id: room,
                last_seq,
            }],
            // The ceiling never pings.
            heartbeat_ms: 0,
        };
        Bytes::from(hello.to_json())
    });
    let (read, write) = tokio::io::split(socket);
    let mut writer = tokio::spawn(write_frames(write, connection.outbox.clone()));
    let code = tokio::select! {
        code = read_frames(read, &connection) => code,
        // The writer ended first: the socket failed, or the client was
        // too slow and has been told.
        _ = &mut writer => None,
    };
    rooms.leave(room, key);
    if let Some(code) = code {
        connection.outbox.push(Out::Close(code));
        // A client that stopped reading must not keep the writer forever.
        let _ = tokio::time::timeout(CLOSE_GRACE, &mut writer).await;
    }
    // The writer waits for frames that will not come once the reader is
    // gone: stop it (a no-op if it has ended).
    writer.abort();
}

/// Acts on the client's frames in order. Returns the close code to send,
/// or `None` where the socket is gone.
async fn read_frames(mut read: ReadHalf<Socket>, connection: &Connection) -> Option<u16> {
    let mut buffer = BytesMut::new();
    loop {
        match decode(&mut buffer) {
            Ok(Some((OpCode::Text, payload))) => connection.on_text(&payload),
            Ok(Some((OpCode::Ping, payload))) => {
                connection.outbox.push(Out::Pong(payload.freeze()))
            }
            Ok(Some((OpCode::Close, _))) => return Some(1000),
            Ok(Some((OpCode::Pong, _))) => {}
            Ok(Some(_)) => return Some(1002),
            Ok(None) => {
                buffer.reserve(4096);
                if !matches!(read.read_buf(&mut buffer).await, Ok(n) if n > 0) {
                    return None;
                }
            }
            Err(code) => return Some(code),
        }
    }
}

impl Connection {
    fn on_text(&self, text: &[u8]) {
        let reply = match serde_json::from_slice::<ClientFrame>(text) {
            Ok(ClientFrame::Send {
                room_id,
                client_id,
                body,
                ..
            }) if room_id == self.room => {
                let send = NewMessage {
                    sender: self.user,
                    client_id,
                    body,
                };
                self.rooms.send(room_id, send, &self.outbox);
                return;
            }
            Ok(ClientFrame::Send { client_id, .. }) => {
                ServerFrame::error("not_member", "not in this room", Some(client_id))
            }
            Ok(ClientFrame::Sync { rooms }) => {
                // Nothing is stored: the replay is empty, up to the head.
                for room_id in rooms.into_keys().filter(|room| *room == self.room) {
                    let seq = self.rooms.head(room_id);
                    self.reply(&ServerFrame::Synced { room_id, seq });
                }
                return;
            }
            Ok(ClientFrame::Ping) => ServerFrame::Pong,
            Ok(_) => ServerFrame::error(
                "invalid_frame",
                "the ceiling takes send, sync and ping",
                None,
            ),
            Err(e) => ServerFrame::error("malformed_json", e.to_string(), None),
        };
        self.reply(&reply);
    }

    fn reply(&self, frame: &ServerFrame) {
        self.outbox.push(Out::Text(Bytes::from(frame.to_json())));
    }
}

/// One whole client frame off the front of `buffer`, unmasked, or `None`
/// until more is read; `Err` with the close code for what no client may
/// send.
fn decode(buffer: &mut BytesMut) -> Result<Option<(OpCode, BytesMut)>, u16> {
    if buffer.len() < 2 {
        return Ok(None);
    }
    let (first, second) = (buffer[0], buffer[1]);
    let opcode = match first & 0x0F {
        0x1 if first & 0x80 != 0 => OpCode::Text,
        0x8 => OpCode::Close,
        0x9 => OpCode::Ping,
        0xA => OpCode::Pong,
        // Binary frames, and a fragment's start or continuation: no
        // client of ours sends them, and all are refused alike.
        _ => OpCode::Binary,
    };
    // RFC 6455 §5.1: client frames are masked.
    if second & 0x80 == 0 {
        return Err(1002);
    }
    let (length, mask_at) = match second & 0x7F {
        126 if buffer.len() < 4 => return Ok(None),
        126 => (usize::from(u16::from_be_bytes([buffer[2], buffer[3]])), 4),
        127 if buffer.len() < 10 => return Ok(None),
        127 => {
            let length = u64::from_be_bytes(buffer[2..10].try_into().expect("eight bytes"));
            (usize::try_from(length).unwrap_or(usize::MAX), 10)
        }
        short => (usize::from(short), 2),
    };
    if length > MAX_PAYLOAD {
        return Err(1009);
    }
    let start = mask_at + 4;
    if buffer.len() < start + length {
        return Ok(None);
    }
    let mask: [u8; 4] = buffer[mask_at..start].try_into().expect("four bytes");
    buffer.advance(start);
    let mut payload = buffer.split_to(length);
    fastwebsockets::unmask(&mut payload, mask);
    Ok(Some((opcode, payload)))
}

/// Sends what is queued, a batch per write, until a close is sent, the
/// queue overflows (closed 1013) or the socket fails.
async fn write_frames(mut write: WriteHalf<Socket>, outbox: Outbox) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut buffer = Vec::new();
    loop {
        let mut closing = false;
        if !outbox.take(&mut batch, BATCH).await {
            batch.push(Out::Close(1013));
        }
        for out in batch.drain(..) {
            let mut frame = match &out {
                Out::Text(bytes) => Frame::text(Payload::Borrowed(bytes)),
                Out::Pong(bytes) => Frame::pong(Payload::Borrowed(bytes)),
                Out::Close(code) => Frame::close(*code, b""),
            };
            let mut head = [0; 14];
            let size = frame.fmt_head(&mut head);
            buffer.extend_from_slice(&head[..size]);
            buffer.extend_from_slice(&frame.payload);
            if matches!(out, Out::Close(_)) {
                closing = true;
                break;
            }
            if buffer.len() >= FLUSH_AT {
                if write.write_all(&buffer).await.is_err() {
                    return;
                }
                buffer.clear();
            }
        }
        if write.write_all(&buffer).await.is_err() || write.flush().await.is_err() || closing {
            return;
        }
        // An idle connection keeps no buffer.
        buffer = Vec::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client_frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [1, 2, 3, 4];
        let mut frame = vec![first];
        if payload.len() < 126 {
            frame.push(0x80 | payload.len() as u8);
        } else {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        }
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        frame
    }

    #[test]
    fn client_frames_are_taken_whole_and_unmasked() {
        let long = vec![b'x'; 300];
        let mut bytes = client_frame(0x81, b"hello");
        bytes.extend(client_frame(0x81, &long));
        bytes.extend(client_frame(0x89, b"p"));
        let mut buffer = BytesMut::from(&bytes[..bytes.len() - 1]);
        let (opcode, payload) = decode(&mut buffer).unwrap().unwrap();
        assert_eq!((opcode, &payload[..]), (OpCode::Text, &b"hello"[..]));
        let (opcode, payload) = decode(&mut buffer).unwrap().unwrap();
        assert_eq!((opcode, payload.len()), (OpCode::Text, 300));
        assert!(
            decode(&mut buffer).unwrap().is_none(),
            "the ping is not whole yet"
        );
        buffer.extend_from_slice(&bytes[bytes.len() - 1..]);
        let (opcode, payload) = decode(&mut buffer).unwrap().unwrap();
        assert_eq!((opcode, &payload[..]), (OpCode::Ping, &b"p"[..]));
    }

    #[test]
    fn what_no_client_may_send_closes() {
        assert_eq!(
            decode(&mut BytesMut::from(&[0x81, 0x01, b'x'][..])),
            Err(1002)
        );
        let mut header = BytesMut::from(&[0x81, 0x80 | 127][..]);
        header.extend_from_slice(&((MAX_PAYLOAD + 1) as u64).to_be_bytes());
        assert_eq!(decode(&mut header), Err(1009));
        let binary = client_frame(0x82, b"x");
        let decoded = decode(&mut BytesMut::from(&binary[..])).unwrap().unwrap();
        assert_eq!(decoded.0, OpCode::Binary);
    }
}
