//! The writer of a connection: the task that owns the socket's write half
//! and writes, in order, what the hub, the inbound task and the store
//! give it; it keeps the heartbeat, the token's expiry and the hold
//! before a resuming client's `sync`. What it writes of each room is
//! decided by the connection's [`Cursors`]; it does the I/O they ask for.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chat_shared::model::RoomId;
use chat_shared::protocol::ServerFrame;
use fastwebsockets::{Frame, Payload};
use tokio::io::WriteHalf;
use tokio::time::Instant;

use crate::context::Context;
use crate::delivery::clocks::Clocks;
use crate::delivery::cursors::{Cursors, Followed, Offered};
use crate::delivery::envelope::EventMeta;
use crate::history::Reading;
use crate::inbound::now_millis;
use crate::outbox::{Outbound, Queue, Taken};
use crate::wire::{close, FrameWriter, Socket};

/// How a slow consumer's connection ends (contract point 6).
const SLOW_CONSUMER: (u16, &str) = (close::SLOW_CONSUMER, "too far behind; reconnect and sync");

/// The write side: frames gather in a buffer and reach the socket on
/// `flush`, so a writer that finds many frames queued sends them with one
/// system call instead of one each.
pub(super) type Sink = FrameWriter<WriteHalf<Socket>>;

/// Frames written between two flushes at most, so one busy connection cannot
/// hold its write buffer (and its heartbeat checks) for long.
const BATCH: usize = 64;

/// Bytes gathered past which a write goes out before the batch ends, so a
/// long replay streams rather than piling up in memory.
const FLUSH_AT: usize = 16 * 1024;

/// The write side of a connection.
pub(super) struct Writer {
    ctx: Arc<Context>,
    write: Sink,
    /// What the client has of each room, and what is held for it until
    /// it is live.
    cursors: Cursors<(Bytes, EventMeta)>,
    /// When the token (or its last renewal) expires, Unix seconds.
    expires_at: i64,
    /// When the inbound task last heard anything, Unix milliseconds.
    last_heard: Arc<AtomicI64>,
    /// A write failed or timed out: the socket is unusable.
    broken: bool,
    /// A gap could not be filled from the store: the connection must end.
    lost_track: bool,
    /// Writing a `sync` replay: history, not live delivery (not timed).
    replaying: bool,
}

/// Why writing failed: the socket is gone.
pub(super) struct Gone;

impl Writer {
    /// The writer of a connection greeted with `rooms` at the seqs given,
    /// whose token expires at `expires_at` (Unix seconds).
    pub(super) fn new(
        ctx: Arc<Context>,
        write: Sink,
        rooms: Vec<(RoomId, i64)>,
        expires_at: i64,
        last_heard: Arc<AtomicI64>,
    ) -> Self {
        let hold_limit = ctx.config.outbound_queue;
        Self {
            ctx,
            write,
            cursors: Cursors::new(rooms, hold_limit),
            expires_at,
            last_heard,
            broken: false,
            lost_track: false,
            replaying: false,
        }
    }

    /// Whether a write failed or timed out (no close frame can follow).
    pub(super) fn is_broken(&self) -> bool {
        self.broken
    }

    /// Sends the close frame, within the usual write bound.
    pub(super) async fn close(&mut self, code: u16, reason: &str) {
        if self
            .send(Frame::close(code, reason.as_bytes()))
            .await
            .is_ok()
        {
            let _ = self.flush().await;
        }
    }

    pub(super) async fn run(&mut self, mut queue: Queue) -> (u16, &'static str) {
        let interval = self.ctx.config.heartbeat_interval;
        let mut clocks = Clocks::new(
            Instant::now(),
            interval,
            until_unix(self.expires_at),
            self.ctx.config.sync_grace,
        );
        // One timer for the three clocks, set to whichever is next: every
        // connection holds it, and a timer is ~100 bytes.
        let timer = tokio::time::sleep_until(clocks.next(self.cursors.is_held()));
        tokio::pin!(timer);
        // Waited on across rounds, not registered anew each round: a busy
        // connection has a round per batch.
        let drain = self.ctx.drain.clone();
        let drain = drain.cancelled();
        tokio::pin!(drain);
        loop {
            // What the last round wrote leaves in one system call.
            if self.write.pending() > 0 && self.flush().await.is_err() {
                return self.halted();
            }
            let next = clocks.next(self.cursors.is_held());
            if timer.deadline() != next {
                timer.as_mut().reset(next);
            }
            tokio::select! {
                biased;
                () = &mut drain => return (close::RESTARTING, "server restarting; reconnect and sync"),
                () = &mut timer => {
                    // What was due by the deadline is due now (a clock at
                    // the deadline must not keep a fired timer firing).
                    let now = Instant::now().max(timer.deadline());
                    let silent = now_millis() - self.last_heard.load(Ordering::Relaxed);
                    let silent = Duration::from_millis(silent.max(0) as u64);
                    let due = clocks.fire(now, silent, self.cursors.is_held());
                    if due.expired {
                        return (close::TOKEN_EXPIRED, "access token expired");
                    }
                    if due.go_live && Box::pin(self.go_live()).await.is_err() {
                        return self.halted();
                    }
                    if due.silent {
                        return (close::HEARTBEAT_TIMEOUT, "no heartbeat");
                    }
                    if due.ping && self.send(Frame::new(true, fastwebsockets::OpCode::Ping, None, Payload::Borrowed(b""))).await.is_err() {
                        return (close::NORMAL, "");
                    }
                }
                taken = queue.recv() => {
                    let first = match taken {
                        Taken::Item(item) => item,
                        Taken::Overflowed => return SLOW_CONSUMER,
                        // The inbound task has ended (having queued its
                        // close, if it had one), or nothing can arrive.
                        Taken::Finished | Taken::Closed => return (close::NORMAL, ""),
                    };
                    // Boxed, here and for the grace: what handling may
                    // need (a store read, a replay) is held only while it
                    // runs, not by every idle connection's future.
                    match Box::pin(self.take_batch(first, &mut queue, &mut clocks)).await {
                        Ok(None) => {}
                        Ok(Some(closing)) => return closing,
                        Err(Gone) => return self.halted(),
                    }
                }
            }
        }
    }

    /// Handles `item` and what else is already queued, up to a batch, so a
    /// busy room costs one flush per batch, not one per frame.
    async fn take_batch(
        &mut self,
        mut item: Outbound,
        queue: &mut Queue,
        clocks: &mut Clocks,
    ) -> Result<Option<(u16, &'static str)>, Gone> {
        let mut handled = 0;
        loop {
            if let Outbound::Extend { expires_at } = item {
                self.expires_at = expires_at;
                clocks.extend(Instant::now(), until_unix(expires_at));
            } else if let Some(closing) = self.handle(item).await? {
                return Ok(Some(closing));
            }
            handled += 1;
            if handled == BATCH {
                return Ok(None);
            }
            item = match queue.try_recv() {
                Some(Taken::Item(next)) => next,
                Some(Taken::Overflowed) => return Ok(Some(SLOW_CONSUMER)),
                // Seen again, and acted on, by the next round.
                Some(Taken::Finished | Taken::Closed) | None => return Ok(None),
            };
        }
    }

    async fn handle(&mut self, item: Outbound) -> Result<Option<(u16, &'static str)>, Gone> {
        match item {
            Outbound::Event {
                room,
                seq,
                frame,
                meta,
            } => {
                let offered = self.cursors.offer(room, seq, (frame, meta));
                self.place(room, offered).await?;
            }
            Outbound::Live => self.go_live().await?,
            Outbound::Frame(frame) => self.text(&frame).await?,
            Outbound::Pong(payload) => {
                self.send(Frame::pong(Payload::Borrowed(&payload))).await?;
            }
            Outbound::Follow {
                room,
                after,
                synced,
            } => match self.cursors.follow(room, after, synced) {
                Followed::Replay { after } => {
                    tracing::debug!(%room, after, "replaying for sync");
                    self.replaying = true;
                    let replayed = self.catch_up(room, None).await;
                    self.replaying = false;
                    replayed?;
                    let seq = self.cursors.cursor(room).unwrap_or(after);
                    let frame = ServerFrame::Synced { room_id: room, seq }.to_json();
                    self.text(frame.as_bytes()).await?;
                }
                // The events since `after` may have been released before
                // this follow (or missed by the bus): read them.
                Followed::CatchUp { .. } => self.catch_up(room, None).await?,
                Followed::Nothing => {}
            },
            Outbound::Unfollow { room } => {
                // What was held of the room (its `member_left` at least)
                // goes out before the room does.
                let (first, followed) = self.cursors.unfollow(room);
                for (room, seq, item) in first {
                    let offered = self.cursors.replace(room, seq, item);
                    self.place(room, offered).await?;
                }
                if followed {
                    self.cursors.forget(room);
                    let frame = ServerFrame::RoomRemoved { room_id: room }.to_json();
                    self.text(frame.as_bytes()).await?;
                }
            }
            Outbound::Extend { .. } => {}
            Outbound::Close { code, reason } => return Ok(Some((code, reason))),
        }
        Ok(None)
    }

    /// The close for a writer that had to stop.
    fn halted(&self) -> (u16, &'static str) {
        if self.lost_track {
            (close::UNAVAILABLE, "store unavailable; reconnect and sync")
        } else {
            (close::NORMAL, "")
        }
    }

    /// Ends the hold: writes what was held (each event once, after any
    /// replay that overtook it) and delivers live from now on.
    async fn go_live(&mut self) -> Result<(), Gone> {
        let Some(released) = self.cursors.go_live() else {
            return Ok(());
        };
        for (room, seq, item) in released.events {
            let offered = self.cursors.replace(room, seq, item);
            self.place(room, offered).await?;
        }
        for room in released.catch_up {
            self.catch_up(room, None).await?;
        }
        Ok(())
    }

    /// Does what the cursors say of an event: writes it if it is the next
    /// one the client needs, after filling any gap before it from the
    /// store.
    async fn place(
        &mut self,
        room: RoomId,
        offered: Offered<(Bytes, EventMeta)>,
    ) -> Result<(), Gone> {
        let (seq, (frame, meta)) = match offered {
            Offered::Nothing => return Ok(()),
            Offered::Write { seq, item } => (seq, item),
            Offered::FillThenWrite { seq, item, .. } => {
                crate::metrics::gap_repair();
                self.catch_up(room, Some(seq)).await?;
                (seq, item)
            }
        };
        self.write_event(room, seq, &frame, meta).await
    }

    /// Writes one room event and moves the room's cursor to it.
    async fn write_event(
        &mut self,
        room: RoomId,
        seq: i64,
        frame: &[u8],
        meta: EventMeta,
    ) -> Result<(), Gone> {
        self.send(Frame::text(Payload::Borrowed(frame))).await?;
        crate::metrics::event_written(meta, !self.replaying);
        self.cursors.written(room, seq);
        Ok(())
    }

    /// Writes the room's events after the cursor from the store, up to
    /// (not including) `before`, or up to the present.
    async fn catch_up(&mut self, room: RoomId, before: Option<i64>) -> Result<(), Gone> {
        let Some(after) = self.cursors.cursor(room) else {
            return Ok(());
        };
        let mut reading = Reading::new(room, after, before);
        loop {
            let read = self.ctx.on_home(move |store| async move {
                let page = reading.next(store.as_ref()).await?;
                Ok((page, reading))
            });
            let page = match read.await {
                Ok((page, next)) => {
                    reading = next;
                    page
                }
                Err(e) => {
                    // Writing on past the gap would break the client's
                    // sequence: end the connection instead, and the client
                    // resumes with `sync` once the store is back.
                    tracing::warn!(error = %e, %room, "catch-up read failed");
                    self.lost_track = true;
                    return Err(Gone);
                }
            };
            for event in page {
                self.write_event(room, event.seq, &event.frame, event.meta)
                    .await?;
            }
            if reading.is_done() {
                return Ok(());
            }
        }
    }

    async fn text(&mut self, text: &[u8]) -> Result<(), Gone> {
        self.send(Frame::text(Payload::Borrowed(text))).await?;
        crate::metrics::frame_written(text, !self.replaying);
        Ok(())
    }

    /// Adds a frame to the write buffer, and writes the buffer out once it
    /// holds `FLUSH_AT` bytes.
    async fn send(&mut self, frame: Frame<'_>) -> Result<(), Gone> {
        self.write.push(frame);
        if self.write.pending() >= FLUSH_AT {
            self.flush().await?;
        }
        Ok(())
    }

    /// Sends what the buffer holds. A peer that has stopped reading (or
    /// vanished) blocks writes once the socket buffers fill; after one
    /// heartbeat interval the connection counts it as gone.
    async fn flush(&mut self) -> Result<(), Gone> {
        let flush = self.write.flush();
        match tokio::time::timeout(self.ctx.config.heartbeat_interval, flush).await {
            Ok(Ok(())) => Ok(()),
            _ => {
                self.broken = true;
                Err(Gone)
            }
        }
    }
}

/// How long until the Unix second `at`.
fn until_unix(at: i64) -> Duration {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    Duration::from_secs(at.saturating_sub(now).max(0) as u64)
}
