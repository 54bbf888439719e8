//! The inbound side of a connection: reads WebSocket frames, reassembles
//! fragmented messages under the size cap, and acts on each client frame in
//! order. Every frame is authorised against the store as it is now. Sends
//! are queued in the store and answered in order by the connection's
//! [`InFlight`] task, so reading goes on while they commit; every other
//! frame first waits for the sends before it.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use chat_shared::limits::Action;
use chat_shared::message_text;
use chat_shared::model::{check_message_body, ConnectionId, RoomId, SessionId, UserId};
use chat_shared::protocol::{ClientFrame, ServerFrame};
use chat_shared::store::{MessageChange, NewMessage};
use fastwebsockets::OpCode;
use tokio::io::ReadHalf;

use crate::context::Context;
use crate::outbox::{Outbound, Outbox};
use crate::sends::InFlight;

use crate::wire::{close, frame_bytes, FrameReader, ReadError, Socket};

mod acts;
mod calls;

use calls::Change;

/// What the inbound task knows of its connection.
pub struct Connection {
    /// This connection.
    pub key: u64,
    /// This connection across gateways: its `hello`'s `session_id`, the
    /// party of the calls it takes part in.
    pub id: ConnectionId,
    /// Whose it is.
    pub user: UserId,
    /// The login session its token belongs to: an `auth` must renew this
    /// one, not another.
    pub login: SessionId,
    /// The writer's queue.
    pub outbox: Outbox,
    /// When anything was last heard, Unix milliseconds (read by the writer
    /// to close half-open connections).
    pub last_heard: Arc<AtomicI64>,
    /// Set once it places or accepts a call (before the store is asked):
    /// only then can a call have it as a party, and only then does its
    /// close need the store.
    pub in_calls: Arc<AtomicBool>,
}

/// Finishes the writer's queue when the inbound task ends, however it
/// ends: the writer writes what is queued (a close, say) and ends too.
struct Finish(Outbox);

impl Drop for Finish {
    fn drop(&mut self) {
        self.0.finish();
    }
}

type Reader = FrameReader<ReadHalf<Socket>>;

/// Reads and handles frames until the client goes or breaks the protocol.
/// Pings and closes are answered by the writer, which owns the socket.
pub async fn run(ctx: Arc<Context>, mut read: Reader, connection: Connection) {
    let _finish = Finish(connection.outbox.clone());
    let mut handler = Handler::new(ctx, connection);
    if let Some((code, reason)) = handler.read_frames(&mut read).await {
        // Boxed, like everything done between two reads: what it awaits is
        // not part of the idle reader's future.
        Box::pin(handler.close(code, reason)).await;
    }
}

impl Handler {
    /// Reads and acts on frames; the close to send when the client broke
    /// the protocol or closed, `None` when the connection is gone.
    async fn read_frames(&mut self, read: &mut Reader) -> Option<(u16, &'static str)> {
        let max_message_bytes = self.ctx.config.max_message_bytes;
        let mut message: Option<(OpCode, Vec<u8>)> = None;
        loop {
            let frame = match read.next().await {
                Ok(frame) => frame,
                Err(ReadError::Gone) => return None,
                Err(ReadError::TooBig) => {
                    return Some((close::TOO_BIG, "message too big"));
                }
                Err(ReadError::Protocol(reason)) => {
                    tracing::debug!(reason, "protocol error");
                    return Some((close::PROTOCOL_ERROR, "protocol error"));
                }
            };
            self.connection
                .last_heard
                .store(now_millis(), Ordering::Relaxed);
            match frame.opcode {
                OpCode::Close => {
                    return Some((close::NORMAL, ""));
                }
                OpCode::Ping => {
                    let payload = Bytes::copy_from_slice(&frame.payload);
                    Box::pin(self.connection.outbox.send(Outbound::Pong(payload))).await;
                }
                OpCode::Pong => {}
                OpCode::Binary => {
                    return Some((
                        close::PROTOCOL_ERROR,
                        "binary frames are not part of chat.v1",
                    ));
                }
                OpCode::Text | OpCode::Continuation => {
                    // The reader caps each frame; the whole message is capped
                    // here, across fragments.
                    let started = frame.opcode == OpCode::Text;
                    match (&mut message, started) {
                        (None, true) => message = Some((OpCode::Text, frame.payload.to_vec())),
                        (Some((_, buffer)), false) => buffer.extend_from_slice(&frame.payload),
                        _ => {
                            return Some((close::PROTOCOL_ERROR, "unexpected fragment"));
                        }
                    }
                    let size = message.as_ref().map_or(0, |(_, b)| b.len());
                    if size > max_message_bytes {
                        return Some((close::TOO_BIG, "message too big"));
                    }
                    if frame.fin {
                        let (_, bytes) = message.take().expect("a message is being assembled");
                        let Ok(text) = String::from_utf8(bytes) else {
                            return Some((close::INVALID_DATA, "text must be UTF-8"));
                        };
                        // Boxed: what acting on a frame needs (store calls,
                        // the hub) is held only while it runs, not by every
                        // idle connection's reader.
                        Box::pin(async {
                            self.on_text(&text).await;
                            self.go_live().await;
                        })
                        .await;
                    }
                }
            }
        }
    }
}

/// Acts on client frames.
struct Handler {
    ctx: Arc<Context>,
    connection: Connection,
    /// This connection's sends waiting for their commit.
    in_flight: InFlight,
    /// Whether the writer has been told that live delivery may start.
    live: bool,
    /// Rooms this connection sent to that are not direct rooms of its
    /// user, so their sends need no consent check (a block closes DMs
    /// only): one store read per room, not per send. At most
    /// [`GROUP_ROOMS_KNOWN`]; past that, the rest are asked each time.
    group_rooms: HashSet<RoomId>,
}

/// How many rooms a connection remembers as not direct.
const GROUP_ROOMS_KNOWN: usize = 1024;

impl Handler {
    fn new(ctx: Arc<Context>, connection: Connection) -> Self {
        let in_flight = InFlight::new(ctx.clone(), connection.outbox.clone());
        Self {
            ctx,
            connection,
            in_flight,
            live: false,
            group_rooms: HashSet::new(),
        }
    }

    /// Once the client's first frame is handled (its `sync` replay, if any,
    /// is then queued), live room events may flow.
    async fn go_live(&mut self) {
        if !self.live {
            self.live = true;
            self.connection.outbox.send(Outbound::Live).await;
        }
    }

    /// Closes the connection once the sends before are answered.
    async fn close(&self, code: u16, reason: &'static str) {
        self.in_flight.settle().await;
        self.connection
            .outbox
            .send(Outbound::Close { code, reason })
            .await;
    }

    async fn reply(&self, frame: ServerFrame) {
        self.connection
            .outbox
            .send(Outbound::Frame(frame_bytes(&frame)))
            .await;
    }

    async fn not_member(&self, reference: Option<String>) {
        self.error("not_member", "you are not a member of this room", reference)
            .await;
    }

    async fn error(&self, code: &str, message: impl Into<String>, reference: Option<String>) {
        self.reply(ServerFrame::error(code, message, reference))
            .await;
    }

    async fn on_text(&mut self, text: &str) {
        tracing::trace!(text, "frame received");
        let frame = match serde_json::from_str::<ClientFrame>(text) {
            Ok(frame) => frame,
            Err(e) => {
                self.in_flight.settle().await;
                return self.unreadable(text, e).await;
            }
        };
        crate::metrics::frame_in(Some(&frame));
        if !matches!(frame, ClientFrame::Send { .. }) {
            self.in_flight.settle().await;
        }
        match frame {
            ClientFrame::Send {
                room_id,
                client_id,
                body,
                reply_to,
                attachments,
            } => {
                let message = NewMessage {
                    client_id,
                    body,
                    reply_to,
                    attachments,
                };
                self.send(room_id, message).await
            }
            ClientFrame::Edit {
                room_id,
                client_id,
                target,
                body,
            } => {
                let max = self.ctx.config.common.max_body_chars;
                let edit = check_message_body(&body, max).map(|()| MessageChange::Edit { body });
                self.change(room_id, client_id, target, edit).await;
            }
            ClientFrame::Delete {
                room_id,
                client_id,
                target,
            } => {
                let delete = Ok(MessageChange::Delete);
                self.change(room_id, client_id, target, delete).await;
            }
            ClientFrame::React {
                room_id,
                client_id,
                target,
                emoji,
            } => {
                let react = reaction(&emoji).map(|emoji| MessageChange::React { emoji });
                self.change(room_id, client_id, target, react).await;
            }
            ClientFrame::Unreact {
                room_id,
                client_id,
                target,
                emoji,
            } => {
                let unreact = reaction(&emoji).map(|emoji| MessageChange::Unreact { emoji });
                self.change(room_id, client_id, target, unreact).await;
            }
            ClientFrame::Pin {
                room_id,
                client_id,
                target,
            } => {
                let pin = Ok(MessageChange::Pin);
                self.change(room_id, client_id, target, pin).await;
            }
            ClientFrame::Unpin {
                room_id,
                client_id,
                target,
            } => {
                let unpin = Ok(MessageChange::Unpin);
                self.change(room_id, client_id, target, unpin).await;
            }
            ClientFrame::Sync { rooms } => {
                // Each can replay whole histories: past a burst, a user's
                // syncs wait their turn (this connection reads nothing
                // meanwhile).
                self.ctx.limits.sync_turn(self.connection.user).await;
                for (room, after) in rooms {
                    self.sync(room, after).await;
                }
            }
            ClientFrame::Typing { room_id } => self.typing(room_id).await,
            ClientFrame::Read { room_id, seq } => self.read(room_id, seq).await,
            ClientFrame::CallPlace { room_id, video } => self.place_call(room_id, video).await,
            ClientFrame::CallAccept { call_id } => self.change_call(call_id, Change::Accept).await,
            ClientFrame::CallDecline { call_id } => {
                self.change_call(call_id, Change::Decline).await
            }
            ClientFrame::CallHangup { call_id } => self.change_call(call_id, Change::Hangup).await,
            ClientFrame::Signal {
                call_id,
                kind,
                payload,
            } => self.signal(call_id, kind, payload).await,
            ClientFrame::Auth { token } => self.renew(&token).await,
            ClientFrame::Ping => self.reply(ServerFrame::Pong).await,
        }
    }

    /// Says precisely what was wrong with a frame that did not parse.
    async fn unreadable(&self, text: &str, e: serde_json::Error) {
        #[derive(serde::Deserialize)]
        struct Envelope {
            #[serde(rename = "type")]
            kind: Option<String>,
        }
        crate::metrics::frame_in(None);
        let (code, message) = match serde_json::from_str::<Envelope>(text) {
            Err(_) => ("malformed_json", "frames are JSON objects".to_owned()),
            Ok(Envelope { kind: None }) => ("invalid_frame", "a frame needs a \"type\"".to_owned()),
            Ok(Envelope { kind: Some(kind) }) if !ClientFrame::KINDS.contains(&kind.as_str()) => {
                ("unknown_type", format!("no frame type {kind:?} in chat.v1"))
            }
            Ok(_) => ("invalid_frame", e.to_string()),
        };
        self.error(code, message, None).await;
    }

    /// Counts a frame that makes others do work (a send, typing, a
    /// signal) against the user's rate; true when over it.
    fn limited(&self) -> bool {
        let limited = self
            .ctx
            .limits
            .check(self.connection.user, Action::Send)
            .is_err();
        if limited {
            crate::metrics::send_limited();
        }
        limited
    }
}

/// The emoji of a `react` or `unreact` frame, in its stored form.
fn reaction(emoji: &str) -> Result<String, String> {
    message_text::emoji(emoji)
        .map(str::to_owned)
        .ok_or_else(|| "emoji: exactly one emoji".to_owned())
}

/// Unix time in milliseconds: when a connection was last heard (written
/// here, read by its writer).
pub fn now_millis() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp_nanos() as i64 / 1_000_000
}
