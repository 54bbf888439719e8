//! Group commit of message appends.
//!
//! An append alone is a transaction of its own: on PostgreSQL six round
//! trips (look up the client_id, begin, bump the room's seq, check
//! membership, insert, commit) and a WAL flush, on SQLite an fsync. At
//! thousands of sends per second that is the database's whole budget. Here
//! every append in the process joins one queue, and one writer takes
//! whatever has gathered (up to [`MAX_BATCH`]) into one transaction: on
//! PostgreSQL five round trips (lock the batch's rooms, check membership and
//! client_ids, insert every event and bump every seq in one statement,
//! commit), on SQLite one fsync. Under load a batch holds many appends;
//! alone, an append takes about as long as before.
//!
//! One writer, not several: a second one halves the batches, not the work.
//! Each batch costs the database about the same whatever its size, so two
//! writers committing back to back used 35–45 % more of the database's CPU
//! for the same appends, with no shorter waits.
//! The one queue also keeps each room's appends in the order they were
//! submitted.
//!
//! The contract is `RoomLog::append_message`'s: seqs are gap-free because
//! each is taken from `rooms.last_seq` under that row's lock, held until the commit; a `(room, sender,
//! client_id)` is stored once because it is looked up under the same lock
//! (and twice in one batch, the later copies answer with the first); and
//! membership is read after the lock, so a kick that committed first is
//! seen. On PostgreSQL rooms are locked in id order, so two batches cannot
//! deadlock; SQLite has one writer, which serialises everything anyway.
//! Nobody hears of an append before its transaction commits, and a batch
//! whose commit failed is answered `Unavailable` as a whole: its
//! connection is closed if the transaction did not end cleanly, and the
//! next batch reads everything anew (`durability`).
//!
//! The queue, the writer and what an append is are here; how each database
//! commits a batch is in `postgres` (a few set-based statements for the
//! whole batch) and `sqlite` (one append after another on the one writer).

mod postgres;
mod sqlite;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::durability::WriteHealth;
use super::{Appended, Error, NewMessage, Result, Submitted};
use crate::message_text::{mentions, Mentioned};
use crate::model::{
    Attachment, AttachmentId, EventBody, EventId, ReplyPreview, Role, RoomEvent, RoomId, RoomKind,
    UserId,
};

/// Appends committed together at most.
const MAX_BATCH: usize = 256;

/// Appends waiting at most; beyond that, callers wait to join.
const QUEUE: usize = 4096;

/// One message to append.
struct Append {
    room: RoomId,
    sender: UserId,
    message: NewMessage,
    /// Who its text names, to resolve against the room at the commit.
    mentioned: Mentioned,
}

impl Append {
    /// The event this append stores at `seq`, mentioning `mentions` (and
    /// the room if `mentions_room`) and carrying `attachments`.
    fn event(
        &self,
        seq: i64,
        ts: time::OffsetDateTime,
        reply_preview: Option<ReplyPreview>,
        mentions: Vec<UserId>,
        mentions_room: bool,
        attachments: Vec<Attachment>,
    ) -> RoomEvent {
        RoomEvent {
            room_id: self.room,
            seq,
            id: EventId::new(),
            sender: Some(self.sender),
            ts,
            client_id: Some(self.message.client_id.clone()),
            body: EventBody::Message {
                body: self.message.body.clone(),
                reply_to: self.message.reply_to,
                reply_preview,
                mentions,
                mentions_room,
                deleted: false,
                attachments,
            },
        }
    }

    /// Whether `@room` in this append's text counts: by an owner or admin,
    /// outside a DM.
    fn mentions_room(&self, role: Role, kind: &str) -> bool {
        self.mentioned.room && role >= Role::Admin && kind != RoomKind::Direct.as_str()
    }
}

/// The answer to a reply whose `reply_to` is not a message of its room.
fn bad_reply() -> Error {
    Error::Invalid("reply_to: no message with that id in this room")
}

/// The answer to a message whose attachments are not all the sender's
/// own, uploaded into its room and carried by no other message.
fn bad_attachments() -> Error {
    Error::Invalid(
        "attachments: each must be a finished upload of yours in this room, not yet sent",
    )
}

/// Attachments ready to be carried, by id: the room they were uploaded
/// into, by whom, and what a message shows of them.
type ReadyAttachments = HashMap<AttachmentId, (RoomId, UserId, Attachment)>;

/// The attachments `append` names, in its order, if every one is in
/// `ready` (uploaded by its sender into its room, carried by nothing) and
/// none is `taken` by an earlier append of the batch; they are then taken.
fn claim(
    append: &Append,
    ready: &ReadyAttachments,
    taken: &mut HashSet<AttachmentId>,
) -> Option<Vec<Attachment>> {
    let ids = &append.message.attachments;
    let mut distinct = HashSet::with_capacity(ids.len());
    if !ids.iter().all(|id| distinct.insert(*id)) {
        return None;
    }
    let claimed = ids
        .iter()
        .map(|id| match ready.get(id) {
            Some((room, uploader, attachment))
                if *room == append.room && *uploader == append.sender && !taken.contains(id) =>
            {
                Some(attachment.clone())
            }
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    // Only now, so a refused append takes nothing from the ones after it.
    taken.extend(distinct);
    Some(claimed)
}

/// One append waiting for its batch.
struct Pending {
    append: Append,
    reply: oneshot::Sender<Result<Appended>>,
}

/// How one database commits a batch: per append, its answer, in order; an
/// `Err` means the batch's commit was not confirmed: nothing of it was
/// stored, or (the connection died while `COMMIT` was on its way) nobody
/// can know, and a retry with the same client_id finds out.
trait Commit: Send + Sync + 'static {
    fn commit(
        &self,
        batch: &[Append],
    ) -> impl Future<Output = Result<Vec<Result<Appended>>>> + Send;
}

/// The queue every append of one store joins.
pub(super) struct GroupCommit {
    queue: mpsc::Sender<Pending>,
}

/// Each database's constructor (`postgres`, `sqlite`) is in its own file,
/// so this one names neither.
impl GroupCommit {
    fn start(database: impl Commit, health: Arc<WriteHealth>) -> Self {
        let (queue, waiting) = mpsc::channel(QUEUE);
        tokio::spawn(write(database, health, waiting));
        Self { queue }
    }

    /// Queues a message for the next batch and returns once it is queued
    /// (see `RoomLog::submit_message`).
    pub(super) async fn submit(
        &self,
        room: RoomId,
        sender: UserId,
        message: NewMessage,
    ) -> Result<Submitted> {
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            append: Append {
                room,
                sender,
                mentioned: mentions(&message.body),
                message,
            },
            reply,
        };
        self.queue
            .send(pending)
            .await
            .map_err(|_| Error::Unavailable("the store's writer stopped".into()))?;
        Ok(Submitted::new(answer))
    }
}

/// The writer: takes what has gathered, commits it, answers each append.
async fn write(
    database: impl Commit,
    health: Arc<WriteHealth>,
    mut waiting: mpsc::Receiver<Pending>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while waiting.recv_many(&mut batch, MAX_BATCH).await > 0 {
        crate::metrics::store_batch(batch.len());
        let (appends, replies): (Vec<Append>, Vec<_>) =
            batch.drain(..).map(|p| (p.append, p.reply)).unzip();
        let committed = crate::metrics::store_call("commit_batch", database.commit(&appends)).await;
        match committed {
            Ok(outcomes) => {
                health.committed();
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    // A caller that stopped waiting (its client left) has
                    // its message stored all the same; a retry finds it.
                    let _ = reply.send(outcome);
                }
            }
            Err(e) => {
                // Not one append of the batch is acknowledged: each caller
                // is told to retry with the same client_id, which finds
                // the truth if the commit landed after all.
                tracing::warn!(error = %e, appends = appends.len(), "group commit failed");
                let message = e.to_string();
                health.failed();
                for reply in replies {
                    let _ = reply.send(Err(Error::Unavailable(message.clone())));
                }
            }
        }
    }
}

/// The `mentions` rows of a message: one per member, and a NULL for
/// `@room`.
fn mention_rows(body: &EventBody) -> Vec<Option<Uuid>> {
    match body {
        EventBody::Message {
            mentions,
            mentions_room,
            ..
        } => mentions
            .iter()
            .map(|u| Some(u.0))
            .chain(mentions_room.then_some(None))
            .collect(),
        _ => Vec::new(),
    }
}
