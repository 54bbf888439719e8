//! How PostgreSQL commits a batch of appends: a batch of plain sends takes
//! five round trips whatever its size (begin, lock the batch's rooms, check
//! membership and client_ids, insert every event and bump every seq in one
//! statement, commit), and replies, mentions and retries add the statements
//! they need; each statement is set-based over the batch's arrays and
//! reaches its rows through unique indexes. The statements,
//! the one function that runs them and the test of their plans stay in one
//! file, longer than most: they are tuned together, and read together.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use sqlx::postgres::PgPool;
use sqlx::Row as _;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    bad_attachments, bad_reply, claim, mention_rows, Append, Commit, GroupCommit, ReadyAttachments,
};
use crate::model::{EventId, ReplyPreview, Role, RoomEvent, RoomId, UserId};
use crate::store::attachments::{ReadyRow, READY_COLUMNS};
use crate::store::dialect::now;
use crate::store::driver_error::corrupt;
use crate::store::durability::WriteHealth;
use crate::store::log::{event_columns, EventRow, EVENT_BY_CLIENT_ID};
use crate::store::members::parse_role;
use crate::store::moderation::may_send;
use crate::store::references::{PreviewRow, PREVIEWS_PREFIX};
use crate::store::{Appended, Error, PgStore, Result};

/// Locks the batch's rooms, in id order, and reads where their seqs are
/// and what kind they are.
const LOCK_ROOMS: &str =
    "SELECT id, last_seq, kind FROM rooms WHERE id = ANY($1) ORDER BY id FOR UPDATE";

// The batch's statements run on generic plans (`commit_postgres`), which
// cannot know the batch's size: an `unnest` of a parameter is guessed at
// 10 rows. Joined to a table of a few thousand rows, hashing all of it
// looked cheaper than ten index lookups, so every batch, even of one,
// read every membership of every room (and every room, to bump one). So
// each statement reaches its rows through a unique index, one lookup per
// appended row, whatever the sizes (test below). Not `EXISTS`: PostgreSQL
// may answer that from a hash of the whole table, and with 10 rows it does.

/// Per append (by position, from 1): the sender's role, if a member, their
/// mute and last message and the room's slow mode (for `may_send`), and
/// the seq its client_id already has, if any. Asked after [`LOCK_ROOMS`],
/// so it sees every change committed to those rooms (a mute and a change
/// of slow mode too). The member's three columns are three lookups of the
/// same index entry, whose page the first has just read.
const CHECK: &str = "SELECT t.i, \
         (SELECT m.role FROM room_members m \
             WHERE m.room_id = t.room_id AND m.user_id = t.sender) AS role, \
         (SELECT m.muted_until FROM room_members m \
             WHERE m.room_id = t.room_id AND m.user_id = t.sender) AS muted_until, \
         (SELECT m.last_message_at FROM room_members m \
             WHERE m.room_id = t.room_id AND m.user_id = t.sender) AS last_message_at, \
         (SELECT s.seconds FROM room_slow_modes s WHERE s.room_id = t.room_id) AS slow_mode, \
         (SELECT e.seq FROM room_events e WHERE e.room_id = t.room_id \
             AND e.sender = t.sender AND e.client_id = t.client_id) AS existing \
     FROM unnest($1::uuid[], $2::uuid[], $3::text[]) WITH ORDINALITY AS t(room_id, sender, client_id, i)";

/// The batch's `@` names that are members of the room they are written in
/// (by position in the batch): only asked when some text mentions someone.
/// Scalar subqueries, like [`CHECK`]: a join hashed the whole users table.
const MENTIONED: &str = "SELECT i, name, id FROM ( \
     SELECT t.i, t.name, t.room_id, \
         (SELECT u.id FROM users u WHERE lower(u.username) = t.name) AS id \
     FROM unnest($1::uuid[], $2::text[], $3::int8[]) AS t(room_id, name, i)) named \
     WHERE (SELECT true FROM room_members m \
         WHERE m.room_id = named.room_id AND m.user_id = named.id)";

/// Inserts the batch's new events, indexed for search (their words, as
/// `0004_search` defines them), moves each sender's read marker to
/// their newest message (a sender has read their room that far), and moves
/// each room's `last_seq` to its highest: one statement. Rooms and
/// memberships are found by index (`= ANY` on their keys), then paired with
/// their values by a join over those few rows (a lookup per room by
/// `array_position` cost 3.8 ms for a batch of 256 rooms).
const INSERT_AND_BUMP: &str = "WITH inserted AS ( \
     INSERT INTO room_events (room_id, seq, id, kind, sender, client_id, body, created_at, \
         payload, search) \
     SELECT t.*, to_tsvector('simple', search_text(t.body)) \
     FROM unnest($1::uuid[], $2::int8[], $3::uuid[], $4::text[], $5::uuid[], \
         $6::text[], $7::text[], $8::timestamptz[], $14::jsonb[]) \
         AS t(room_id, seq, id, kind, sender, client_id, body, created_at, payload)), \
     marked AS ( \
     UPDATE room_members SET last_read_seq = sent.seq \
     FROM unnest($11::uuid[], $12::uuid[], $13::int8[]) AS sent(room_id, user_id, seq) \
     WHERE room_members.room_id = ANY($11::uuid[]) AND room_members.user_id = ANY($12::uuid[]) \
         AND room_members.room_id = sent.room_id AND room_members.user_id = sent.user_id \
         AND room_members.last_read_seq < sent.seq) \
     UPDATE rooms SET last_seq = heads.last_seq \
     FROM unnest($9::uuid[], $10::int8[]) AS heads(id, last_seq) \
     WHERE rooms.id = ANY($9::uuid[]) AND rooms.id = heads.id";

/// Records when the batch's senders in rooms with slow mode on sent (the
/// batch's time, `$3`): a statement of its own, sent only when there are
/// some, so a batch in rooms without slow mode writes what it did before.
const MARK_PACED: &str = "UPDATE room_members SET last_message_at = $3 \
     FROM unnest($1::uuid[], $2::uuid[]) AS t(room_id, user_id) \
     WHERE room_members.room_id = ANY($1::uuid[]) AND room_members.user_id = ANY($2::uuid[]) \
         AND room_members.room_id = t.room_id AND room_members.user_id = t.user_id";

/// Records who the batch's messages mention: a statement of its own, sent
/// only when some message mentions someone. As a CTE of [`INSERT_AND_BUMP`]
/// it cost every batch, mentions or not, about 6 % more database CPU at
/// 2,000 appends/s; apart, a batch of plain sends costs what it did before
/// mentions existed.
const INSERT_MENTIONS: &str = "INSERT INTO mentions (room_id, seq, user_id) \
     SELECT * FROM unnest($1::uuid[], $2::int8[], $3::uuid[])";

/// The batch's attachments that are ready and carried by no message,
/// locked until the commit, so the sweeper cannot give up one that a
/// message of the batch is about to carry (it waits, then finds it
/// carried). Asked only when some append carries attachments.
fn ready_attachments_statement() -> String {
    format!(
        "SELECT {READY_COLUMNS} FROM attachments \
         WHERE id = ANY($1) AND state = 'ready' AND seq IS NULL FOR UPDATE"
    )
}

/// Marks each attachment the batch's messages carry with its message's seq.
const CARRY_ATTACHMENTS: &str = "UPDATE attachments SET seq = t.seq \
     FROM unnest($1::uuid[], $2::int8[]) AS t(id, seq) \
     WHERE attachments.id = ANY($1::uuid[]) AND attachments.id = t.id";

/// What became of one append of a batch.
enum Outcome {
    /// Stored now: this event (boxed: it is most of the enum's size).
    New(Box<RoomEvent>),
    /// Its client_id was already stored at this seq.
    Existing,
    /// The same client_id earlier in this batch: that append's answer.
    SameAs(usize),
    /// No such room.
    NoRoom,
    /// The sender is not a member.
    NotMember,
    /// Its `reply_to` is not a message of the room.
    BadReply,
    /// Its attachments are not all the sender's, ready, in the room and
    /// free.
    BadAttachments,
    /// The sender is muted in the room until then.
    Muted(OffsetDateTime),
    /// The room's slow mode: the sender may send again in this many
    /// seconds.
    SlowMode(u32),
}

/// The batch committer on a PostgreSQL pool.
pub(super) struct Postgres(pub(super) PgPool);

impl GroupCommit {
    /// Starts the writer on a PostgreSQL pool; it stops when this is
    /// dropped.
    pub(in crate::store) fn postgres(pool: PgPool, health: Arc<WriteHealth>) -> Self {
        Self::start(Postgres(pool), health)
    }
}

impl Commit for Postgres {
    async fn commit(&self, batch: &[Append]) -> Result<Vec<Result<Appended>>> {
        commit_postgres(&self.0, batch).await
    }
}

async fn commit_postgres(pool: &PgPool, batch: &[Append]) -> Result<Vec<Result<Appended>>> {
    // Generic plans: left to choose, PostgreSQL planned each of the batch's
    // statements anew at every bind (custom plans for its arrays), 40 % of
    // a batch's time in the database. Their plans do not depend on the
    // values (key lookups, and `unnest` of the batch). `SET LOCAL` rides
    // on the `BEGIN`'s round trip and ends with the transaction.
    let mut tx = pool
        .begin_with("BEGIN; SET LOCAL plan_cache_mode = force_generic_plan")
        .await?;
    let mut rooms: Vec<Uuid> = batch.iter().map(|p| p.room.0).collect();
    rooms.sort_unstable();
    rooms.dedup();
    let mut heads: HashMap<Uuid, (i64, String)> = sqlx::query(LOCK_ROOMS)
        .bind(&rooms)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|row| {
            Ok((
                row.try_get("id")?,
                (row.try_get("last_seq")?, row.try_get("kind")?),
            ))
        })
        .collect::<sqlx::Result<_>>()?;

    let checks = sqlx::query(CHECK)
        .bind(batch.iter().map(|p| p.room.0).collect::<Vec<_>>())
        .bind(batch.iter().map(|p| p.sender.0).collect::<Vec<_>>())
        .bind(
            batch
                .iter()
                .map(|p| p.message.client_id.as_str())
                .collect::<Vec<_>>(),
        )
        .fetch_all(&mut *tx)
        .await?;
    // By position: one row per append, in an order not promised.
    let mut checked: Vec<Checked> = vec![Checked::default(); batch.len()];
    for row in &checks {
        let i: i64 = row.try_get("i")?;
        let at = usize::try_from(i - 1).map_err(|_| corrupt("batch position", &i.to_string()))?;
        let role: Option<String> = row.try_get("role")?;
        let slow_mode: Option<i32> = row.try_get("slow_mode")?;
        checked[at] = Checked {
            role: role.as_deref().map(parse_role).transpose()?,
            slow_mode: slow_mode.and_then(|s| u32::try_from(s).ok()).unwrap_or(0),
            muted_until: row.try_get("muted_until")?,
            last_message_at: row.try_get("last_message_at")?,
            existing: row.try_get("existing")?,
        };
    }
    let replied: Vec<EventId> = batch.iter().filter_map(|p| p.message.reply_to).collect();
    let previews = previews_postgres(&mut tx, &replied).await?;
    let mut mentioned = members_named_postgres(&mut tx, batch).await?;
    let ready = ready_attachments_postgres(&mut tx, batch).await?;
    let mut taken = HashSet::new();

    let ts = now();
    let mut first_of: HashMap<(Uuid, Uuid, &str), usize> = HashMap::new();
    // Senders of this batch's new messages in rooms with slow mode on: a
    // second message of theirs in the same batch is as early as can be.
    let mut paced: HashMap<(Uuid, Uuid), OffsetDateTime> = HashMap::new();
    let mut outcomes = Vec::with_capacity(batch.len());
    for (i, pending) in batch.iter().enumerate() {
        let Checked {
            role,
            muted_until,
            last_message_at,
            slow_mode: slow,
            existing,
        } = checked[i];
        let sender = (pending.room.0, pending.sender.0);
        let gate = role.map(|role| {
            let last = paced.get(&sender).copied().or(last_message_at);
            may_send(role, muted_until, last, slow, ts)
        });
        let key = (
            pending.room.0,
            pending.sender.0,
            pending.message.client_id.as_str(),
        );
        let preview = pending
            .message
            .reply_to
            .map(|id| previews.get(&id).filter(|(room, _)| *room == pending.room));
        let outcome = match (heads.get_mut(&pending.room.0), role) {
            (None, _) => Outcome::NoRoom,
            (Some(_), _) if existing.is_some() => Outcome::Existing,
            (Some(_), None) => Outcome::NotMember,
            (Some(_), Some(_)) if preview.is_some_and(|p| p.is_none()) => Outcome::BadReply,
            (Some((last_seq, kind)), Some(role)) => match (first_of.get(&key), gate) {
                (Some(&first), _) => Outcome::SameAs(first),
                (None, Some(Err(Error::Muted(until)))) => Outcome::Muted(until),
                (None, Some(Err(Error::SlowMode(wait)))) => Outcome::SlowMode(wait),
                (None, _) => match claim(pending, &ready, &mut taken) {
                    None => Outcome::BadAttachments,
                    Some(attachments) => {
                        *last_seq += 1;
                        first_of.insert(key, i);
                        if slow > 0 {
                            paced.insert(sender, ts);
                        }
                        Outcome::New(Box::new(pending.event(
                            *last_seq,
                            ts,
                            preview.flatten().map(|(_, p)| p.clone()),
                            mentioned.remove(&i).unwrap_or_default(),
                            pending.mentions_room(role, kind),
                            attachments,
                        )))
                    }
                },
            },
        };
        outcomes.push(outcome);
    }

    let new: Vec<(&RoomEvent, &Append)> = outcomes
        .iter()
        .zip(batch)
        .filter_map(|(o, p)| match o {
            Outcome::New(event) => Some((&**event, p)),
            _ => None,
        })
        .collect();
    if !new.is_empty() {
        // Each room's new head: its last new event's seq (they ascend).
        let bumped: HashMap<Uuid, i64> = new.iter().map(|(e, _)| (e.room_id.0, e.seq)).collect();
        let (bumped_rooms, bumped_seqs): (Vec<Uuid>, Vec<i64>) = bumped.into_iter().unzip();
        // Each sender's newest message per room (they ascend too).
        let sent: HashMap<(Uuid, Uuid), i64> = new
            .iter()
            .map(|(e, p)| ((e.room_id.0, p.sender.0), e.seq))
            .collect();
        let mut marks = (Vec::new(), Vec::new(), Vec::new());
        for ((room, sender), seq) in sent {
            marks.0.push(room);
            marks.1.push(sender);
            marks.2.push(seq);
        }
        let mut mentions: (Vec<Uuid>, Vec<i64>, Vec<Option<Uuid>>) = Default::default();
        for (event, _) in &new {
            for user in mention_rows(&event.body) {
                mentions.0.push(event.room_id.0);
                mentions.1.push(event.seq);
                mentions.2.push(user);
            }
        }
        let (texts, payloads): (Vec<_>, Vec<_>) =
            new.iter().map(|(e, _)| event_columns(&e.body)).unzip();
        sqlx::query(INSERT_AND_BUMP)
            .bind(new.iter().map(|(e, _)| e.room_id.0).collect::<Vec<_>>())
            .bind(new.iter().map(|(e, _)| e.seq).collect::<Vec<_>>())
            .bind(new.iter().map(|(e, _)| e.id.0).collect::<Vec<_>>())
            .bind(new.iter().map(|(e, _)| e.body.kind()).collect::<Vec<_>>())
            .bind(new.iter().map(|(_, p)| p.sender.0).collect::<Vec<_>>())
            .bind(
                new.iter()
                    .map(|(_, p)| p.message.client_id.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(texts)
            .bind(new.iter().map(|(e, _)| e.ts).collect::<Vec<_>>())
            .bind(bumped_rooms)
            .bind(bumped_seqs)
            .bind(marks.0)
            .bind(marks.1)
            .bind(marks.2)
            .bind(payloads)
            .execute(&mut *tx)
            .await?;
        if !mentions.0.is_empty() {
            sqlx::query(INSERT_MENTIONS)
                .bind(mentions.0)
                .bind(mentions.1)
                .bind(mentions.2)
                .execute(&mut *tx)
                .await?;
        }
        if !paced.is_empty() {
            let (rooms, senders): (Vec<Uuid>, Vec<Uuid>) = paced.keys().copied().unzip();
            sqlx::query(MARK_PACED)
                .bind(rooms)
                .bind(senders)
                .bind(ts)
                .execute(&mut *tx)
                .await?;
        }
        let carried: (Vec<Uuid>, Vec<i64>) = new
            .iter()
            .flat_map(|(e, p)| p.message.attachments.iter().map(|id| (id.0, e.seq)))
            .unzip();
        if !carried.0.is_empty() {
            sqlx::query(CARRY_ATTACHMENTS)
                .bind(carried.0)
                .bind(carried.1)
                .execute(&mut *tx)
                .await?;
        }
    }
    // Retries read their original inside the transaction, so they answer
    // from the same state the batch was checked against.
    let mut answers = Vec::with_capacity(batch.len());
    for (outcome, pending) in outcomes.iter().zip(batch) {
        answers.push(match outcome {
            Outcome::New(event) => Ok(Appended {
                event: (**event).clone(),
                created: true,
            }),
            Outcome::Existing => {
                let row: Option<EventRow> = sqlx::query_as(EVENT_BY_CLIENT_ID)
                    .bind(pending.room.0)
                    .bind(pending.sender.0)
                    .bind(&pending.message.client_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                match row.map(RoomEvent::try_from).transpose() {
                    Ok(Some(mut event)) => {
                        PgStore::fill_previews(&mut tx, pending.room, std::iter::once(&mut event))
                            .await?;
                        Ok(Appended {
                            event,
                            created: false,
                        })
                    }
                    Ok(None) => Err(Error::Conflict("client_id")),
                    Err(e) => Err(e),
                }
            }
            Outcome::SameAs(first) => match &answers[*first] {
                Ok(Appended { event, .. }) => Ok(Appended {
                    event: event.clone(),
                    created: false,
                }),
                Err(_) => Err(Error::Conflict("client_id")),
            },
            Outcome::NoRoom => Err(Error::NotFound),
            Outcome::NotMember => Err(Error::NotMember),
            Outcome::BadReply => Err(bad_reply()),
            Outcome::BadAttachments => Err(bad_attachments()),
            Outcome::Muted(until) => Err(Error::Muted(*until)),
            Outcome::SlowMode(wait) => Err(Error::SlowMode(*wait)),
        });
    }
    tx.commit().await?;
    Ok(answers)
}

/// What [`CHECK`] found for one append.
#[derive(Debug, Clone, Copy, Default)]
struct Checked {
    /// The sender's role, if a member.
    role: Option<Role>,
    /// Their mute, as stored (`may_send` compares it with the batch's time).
    muted_until: Option<OffsetDateTime>,
    /// Their last message, as stored (only kept while slow mode is on).
    last_message_at: Option<OffsetDateTime>,
    /// The room's slow mode in seconds; 0 is off.
    slow_mode: u32,
    /// The seq its client_id already has.
    existing: Option<i64>,
}

/// The previews of messages by id, in a batch.
fn previews_statement() -> String {
    format!("{PREVIEWS_PREFIX}e.id = ANY($1)")
}

/// The messages `ids` as replies preview them, with their rooms.
async fn previews_postgres(
    tx: &mut sqlx::PgConnection,
    ids: &[EventId],
) -> Result<HashMap<EventId, (RoomId, ReplyPreview)>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<PreviewRow> = sqlx::query_as(&previews_statement())
        .bind(ids.iter().map(|id| id.0).collect::<Vec<_>>())
        .fetch_all(&mut *tx)
        .await?;
    Ok(rows
        .into_iter()
        .map(|row| (EventId(row.id), (RoomId(row.room_id), row.preview())))
        .collect())
}

/// The attachments the batch names that are ready and carried by none.
async fn ready_attachments_postgres(
    tx: &mut sqlx::PgConnection,
    batch: &[Append],
) -> Result<ReadyAttachments> {
    let ids: Vec<Uuid> = batch
        .iter()
        .flat_map(|p| p.message.attachments.iter().map(|id| id.0))
        .collect();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    sqlx::query_as::<_, ReadyRow>(&ready_attachments_statement())
        .bind(ids)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(ReadyRow::into_entry)
        .collect()
}

/// Per append (by position), the members its text names, in its order.
async fn members_named_postgres(
    tx: &mut sqlx::PgConnection,
    batch: &[Append],
) -> Result<HashMap<usize, Vec<UserId>>> {
    let mut asked: (Vec<Uuid>, Vec<&str>, Vec<i64>) = Default::default();
    for (i, append) in batch.iter().enumerate() {
        for name in &append.mentioned.names {
            asked.0.push(append.room.0);
            asked.1.push(name);
            asked.2.push(i64::try_from(i).expect("a batch is small"));
        }
    }
    if asked.0.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = sqlx::query(MENTIONED)
        .bind(asked.0)
        .bind(asked.1)
        .bind(asked.2)
        .fetch_all(&mut *tx)
        .await?;
    let mut found: HashMap<usize, Vec<(String, UserId)>> = HashMap::new();
    for row in rows {
        let i: i64 = row.try_get("i")?;
        let at = usize::try_from(i).map_err(|_| corrupt("batch position", &i.to_string()))?;
        found
            .entry(at)
            .or_default()
            .push((row.try_get("name")?, UserId(row.try_get("id")?)));
    }
    Ok(found
        .into_iter()
        .map(|(i, users)| {
            let ordered = batch[i]
                .mentioned
                .names
                .iter()
                .filter_map(|name| users.iter().find(|(n, _)| n == name))
                .map(|(_, id)| *id)
                .collect();
            (i, ordered)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use sqlx::{Connection, Executor, PgConnection};

    use super::{
        previews_statement, ready_attachments_statement, CARRY_ATTACHMENTS, CHECK, INSERT_AND_BUMP,
        INSERT_MENTIONS, LOCK_ROOMS, MARK_PACED, MENTIONED,
    };
    use crate::testing::{Backend, TestDatabase};

    /// How many parameters (`$1`, `$2`, …) a statement takes.
    fn parameters(statement: &str) -> usize {
        statement
            .split('$')
            .skip(1)
            .filter_map(|rest| {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                digits.parse().ok()
            })
            .max()
            .unwrap_or(0)
    }

    /// The plans the batch runs (generic, as `commit_postgres` sets them)
    /// on a fresh database, where the planner knows no table's size: no
    /// statement may read a whole table to find a batch's few rows.
    #[tokio::test]
    async fn the_batch_finds_its_rows_by_index_not_by_scanning_tables() {
        let db = TestDatabase::create(Backend::Postgres).await;
        drop(db.store().await); // migrates
        let mut conn = PgConnection::connect(db.url()).await.expect("connecting");
        conn.execute("SET plan_cache_mode = force_generic_plan")
            .await
            .expect("setting the plan mode");
        let previews = previews_statement();
        let ready = ready_attachments_statement();
        for (name, statement) in [
            ("batch_lock_rooms", LOCK_ROOMS),
            ("batch_check", CHECK),
            ("batch_insert_and_bump", INSERT_AND_BUMP),
            ("batch_mentioned", MENTIONED),
            ("batch_insert_mentions", INSERT_MENTIONS),
            ("batch_previews", &previews),
            ("batch_ready_attachments", &ready),
            ("batch_carry_attachments", CARRY_ATTACHMENTS),
            ("batch_mark_paced", MARK_PACED),
        ] {
            conn.execute(format!("PREPARE {name} AS {statement}").as_str())
                .await
                .unwrap_or_else(|e| panic!("preparing {name}: {e}"));
            let nulls = vec!["NULL"; parameters(statement)].join(", ");
            let plan: Vec<String> = sqlx::query_scalar(&format!("EXPLAIN EXECUTE {name}({nulls})"))
                .fetch_all(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("explaining {name}: {e}"));
            let plan = plan.join("\n");
            assert!(
                !plan.contains("Seq Scan"),
                "{name} reads a whole table:\n{plan}"
            );
        }
    }
}
