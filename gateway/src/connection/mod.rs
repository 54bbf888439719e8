//! One WebSocket connection: the upgrade, the greeting, then two tasks
//! until it ends.
//!
//! The *inbound* task ([`inbound`]) reads frames and acts on them in order
//! (sends are queued in the store and acknowledged in order by `sends`, so
//! a client's sends keep their order). The *writer* ([`writer`]) owns the
//! socket's write half and everything that decides what the client sees:
//! its per-room cursors (so each event is written once, in seq order, with
//! gaps filled from the store), heartbeats, token expiry, and closing.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;

use chat_shared::auth::Claims;
use chat_shared::model::{ConnectionId, RoomId, SessionId, User, UserId};
use chat_shared::protocol::{RoomHead, ServerFrame};
use fastwebsockets::{Frame, Payload};
use tokio::sync::OwnedSemaphorePermit;

use crate::context::Context;
use crate::delivery::envelope::FrameKind;
use crate::hub::{BlockLists, ConnectionKey};
use crate::inbound;
use crate::inbound::now_millis;
use crate::outbox::{Outbox, Queue};
use crate::wire::{close, FrameReader, FrameWriter};

mod writer;

use writer::{Gone, Sink, Writer};

/// What a connection starts from, boxed: the future of every open connection
/// keeps its arguments' room for its whole life, so they are one pointer,
/// let go once the connection is open.
pub struct Start {
    /// The gateway.
    pub ctx: Arc<Context>,
    /// The socket, once hyper has switched protocols.
    pub upgraded: fastwebsockets::upgrade::UpgradeFut,
    /// The verified token.
    pub claims: Claims,
    /// The connection's place under `CHAT_MAX_CONNECTIONS`, held until it
    /// ends.
    pub permit: Arc<OwnedSemaphorePermit>,
}

/// Runs a connection from the upgrade until it ends.
pub async fn run(start: Box<Start>) {
    if let Some((mut live, queue)) = Box::pin(begin(start)).await {
        live.run(queue).await;
    }
}

/// A connection that has said `hello`: what it holds while it lasts.
struct Live {
    ctx: Arc<Context>,
    key: ConnectionKey,
    /// Its id across gateways: the calls it takes part in end with it.
    id: ConnectionId,
    user: UserId,
    /// Whether it ever placed or accepted a call (see
    /// [`inbound::Connection::in_calls`]).
    in_calls: Arc<AtomicBool>,
    connection: crate::metrics::Connection,
    writer: Writer,
    inbound: tokio::task::JoinHandle<()>,
    _permit: Arc<OwnedSemaphorePermit>,
}

/// Completes the upgrade, greets the client and starts the inbound task;
/// `None` if the connection cannot start.
async fn begin(start: Box<Start>) -> Option<(Live, Queue)> {
    let Start {
        ctx,
        upgraded,
        claims,
        permit,
    } = *start;
    let socket = match upgraded.await {
        Ok(ws) => ws.into_inner(),
        Err(e) => {
            tracing::debug!(error = %e, "upgrade did not complete");
            return None;
        }
    };
    let key = ctx.next_session_key();
    // Known to clients (`hello`'s `session_id`) and to every gateway (a
    // call's parties); the key stays this hub's own.
    let id = ConnectionId::new();
    tracing::Span::current().record("session", tracing::field::display(id));
    let mut connection = crate::metrics::Connection::opened();
    let (read, write) = tokio::io::split(socket);
    let read = FrameReader::new(read, ctx.config.max_message_bytes);
    let mut write = FrameWriter::new(write);
    let (outbox, queue) = Outbox::new(ctx.config.outbound_queue);
    let Opened {
        user,
        login,
        rooms,
        expires_at,
    } = open(
        &ctx,
        (key, id),
        claims,
        &outbox,
        &mut write,
        &mut connection,
    )
    .await?;
    let last_heard = Arc::new(AtomicI64::new(now_millis()));
    let in_calls = Arc::new(AtomicBool::new(false));
    let inbound = ctx
        .home
        .spawn(tracing::Instrument::in_current_span(inbound::run(
            ctx.clone(),
            read,
            inbound::Connection {
                key,
                id,
                user,
                login,
                outbox,
                last_heard: last_heard.clone(),
                in_calls: in_calls.clone(),
            },
        )));
    let writer = Writer::new(ctx.clone(), write, rooms, expires_at, last_heard);
    let live = Live {
        ctx,
        key,
        id,
        user,
        in_calls,
        connection,
        writer,
        inbound,
        _permit: permit,
    };
    Some((live, queue))
}

impl Live {
    async fn run(&mut self, queue: Queue) {
        let (code, reason) = self.writer.run(queue).await;
        tracing::debug!(session = %self.id, code, reason, "session ended");
        // Bounded like every write: a client that stopped reading (the
        // usual reason to close) must not keep the connection, its slot and
        // its hub entry forever. After a failed write the stream may end
        // mid-frame, so no close frame can follow; dropping the socket is
        // all that is left.
        if !self.writer.is_broken() {
            self.connection.closing(code);
            self.writer.close(code, reason).await;
        }
        self.inbound.abort();
        self.ctx.hub.detach(self.key).await;
        // However it ended (the client went, a revoked session, a drain):
        // its calls cannot go on, and their peers are told. On the home
        // runtime, where the store is called; only for a connection that
        // took part in one, so a crowd reconnecting costs the store nothing.
        if !self.in_calls.load(Ordering::Relaxed) {
            return;
        }
        let (ctx, user, id) = (self.ctx.clone(), self.user, self.id);
        let ended = self
            .ctx
            .home
            .spawn(async move { crate::calls::connection_closed(&ctx, user, id).await });
        let _ = ended.await;
    }
}

/// What a connection keeps of its start.
struct Opened {
    user: UserId,
    /// The login session the token belongs to.
    login: SessionId,
    /// Each room with the seq the client was told of in `hello`.
    rooms: Vec<(RoomId, i64)>,
    /// When the token expires, Unix seconds.
    expires_at: i64,
}

/// Greets the client with `hello` once the hub routes to it, or returns
/// `None` if the connection cannot start (the client has been told, or has
/// gone).
async fn open(
    ctx: &Context,
    (key, id): (ConnectionKey, ConnectionId),
    claims: Claims,
    outbox: &Outbox,
    write: &mut Sink,
    connection: &mut crate::metrics::Connection,
) -> Option<Opened> {
    let (user, heads, blocks) = match greet(ctx, &claims).await {
        Ok(greeting) => greeting,
        Err(e) => {
            tracing::warn!(error = %e, "session could not start");
            connection.closing(close::UNAVAILABLE);
            write.push(Frame::close(close::UNAVAILABLE, b"try again"));
            let _ = write.flush().await;
            return None;
        }
    };
    // Routed before `hello`: a client that has its `hello` misses nothing
    // published afterwards (typing, read markers, signals have no replay).
    let rooms: Vec<(RoomId, i64)> = heads.iter().map(|h| (h.room_id, h.last_seq)).collect();
    ctx.hub
        .attach(
            (key, id),
            user.id,
            claims.sid,
            rooms.clone(),
            blocks,
            outbox.clone(),
        )
        .await;
    let hello = ServerFrame::Hello {
        session_id: id,
        user: user.clone(),
        rooms: heads,
        heartbeat_ms: ctx.config.heartbeat_interval.as_millis() as u64,
    };
    if write_text(write, hello.to_json().as_bytes()).await.is_err() {
        ctx.hub.detach(key).await;
        return None;
    }
    crate::metrics::frame_out(FrameKind::Hello);
    tracing::debug!(session = %id, user_id = %user.id, "session started");
    // A reload keeps ringing: the calls ringing for the user are told to
    // this connection (after `hello`, through its queue).
    crate::calls::ringing_for(ctx, user.id, outbox).await;
    Some(Opened {
        user: user.id,
        rooms,
        login: claims.sid,
        expires_at: claims.exp,
    })
}

/// Who the user is, where their rooms stand, who blocks them and whom
/// they block.
async fn greet(ctx: &Context, claims: &Claims) -> chat_shared::Result<Greeting> {
    let id = claims.sub;
    ctx.on_home(move |store| async move {
        let user = store.user(id).await?.ok_or(chat_shared::Error::NotFound)?;
        let heads = store
            .my_rooms(id)
            .await?
            .into_iter()
            .map(|r| RoomHead {
                room_id: r.room.id,
                last_seq: r.room.last_seq,
            })
            .collect();
        let blockers = store.blockers_of(id).await?;
        let blocking = store
            .blocked_users(id)
            .await?
            .into_iter()
            .map(|b| b.user.id)
            .collect();
        Ok((user, heads, BlockLists { blockers, blocking }))
    })
    .await
}

/// What `greet` reads: the user, their rooms' heads, who blocks them,
/// whom they block.
type Greeting = (User, Vec<RoomHead>, BlockLists);

async fn write_text(write: &mut Sink, text: &[u8]) -> Result<(), Gone> {
    write.push(Frame::text(Payload::Borrowed(text)));
    write.flush().await.map_err(|_| Gone)
}
