//! Full-text search of messages as they are now, on each database: its
//! index is PostgreSQL's `room_events.search` (a `tsvector` under a GIN
//! index) or SQLite's `message_search_index` (FTS5), both kept by the
//! `0004_search` migrations' statements and triggers in the transaction of
//! each send, edit and deletion. The query comes parsed
//! ([`SearchQuery`]), rendered here for each; the database marks the
//! searched words and [`highlight`] turns the marks into parts.
//!
//! Written per database rather than once over `Dialect`: the two indexes
//! share no statement.

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use super::adapter::SqlStore;
use super::{Result, SearchPage, SearchStore};
use crate::model::{EventId, RoomId, UserId};
use crate::search::{highlight, SearchHit, SearchQuery, MARK_END, MARK_START};

/// The newest possible cursor: every event id is below it.
const NO_CURSOR: Uuid = Uuid::max();

/// The rooms a search looks in on PostgreSQL: the searcher's now.
const SEARCHED_ROOMS: &str = "SELECT room_id FROM room_members WHERE user_id = $1";

/// A page of hits on PostgreSQL, marked: the newest matches (`$1`) in the
/// rooms `$2` below the cursor `$3`, at most `$4`; then their current text
/// (an edit's, if any) marked by `$5` with the options `$6`. The page is
/// cut before anything is marked or joined, so a common word costs one
/// walk of the newest events, not a headline per match.
///
/// The rooms come as a list, not as a join to `room_members`: given the
/// list and the words (a custom plan, see `search_messages`), the planner
/// picks from the GIN index and the rooms' key (a rare word), or the
/// newest events by id until a page is found (a common one), each a few
/// milliseconds on a million messages; as a join, and on a generic plan,
/// it read a word in every message from the index whole (350 ms on
/// 200,000) or a rare one along the rooms' key.
const SEARCH_POSTGRES: &str = "SELECT p.id, p.room_id, p.seq, p.sender, p.created_at, \
     s.edited_at, COALESCE(s.body, p.body) AS body, \
     ts_headline('simple', search_text(COALESCE(s.body, p.body)), to_tsquery('simple', $5), $6) \
         AS marked \
     FROM (SELECT e.id, e.room_id, e.seq, e.sender, e.created_at, e.body FROM room_events e \
         WHERE e.search @@ to_tsquery('simple', $1) AND e.room_id = ANY($2) AND e.id < $3 \
         ORDER BY e.id DESC LIMIT $4) p \
     LEFT JOIN message_state s ON s.room_id = p.room_id AND s.seq = p.seq \
     ORDER BY p.id DESC";

/// A page of hits on SQLite, as [`SEARCH_POSTGRES`] without the marks
/// (`highlight()` needs the FTS5 query's own cursor: [`MARK_SQLITE`]).
const SEARCH_SQLITE: &str = "SELECT p.id, p.room_id, p.seq, e.sender, e.created_at, \
     s.edited_at, COALESCE(s.body, e.body) AS body, p.docid \
     FROM (SELECT d.docid, d.id, d.room_id, d.seq \
         FROM message_search_index f JOIN message_search d ON d.docid = f.rowid \
         WHERE message_search_index MATCH $1 \
         AND d.room_id IN (SELECT m.room_id FROM room_members m WHERE m.user_id = $2) \
         AND ($3 IS NULL OR d.room_id = $3) AND d.id < $4 \
         ORDER BY d.id DESC LIMIT $5) p \
     JOIN room_events e ON e.room_id = p.room_id AND e.seq = p.seq \
     LEFT JOIN message_state s ON s.room_id = p.room_id AND s.seq = p.seq \
     ORDER BY p.id DESC";

/// One hit's text as SQLite marks it: the searched words (`$1`) in the
/// indexed text of row `$2`.
const MARK_SQLITE: &str = "SELECT highlight(message_search_index, 0, char(57344), char(57345)) \
     FROM message_search_index WHERE message_search_index MATCH $1 AND rowid = $2";

/// A hit as read, before its marks become parts.
#[derive(sqlx::FromRow)]
struct HitRow {
    id: Uuid,
    room_id: Uuid,
    seq: i64,
    sender: Option<Uuid>,
    created_at: OffsetDateTime,
    edited_at: Option<OffsetDateTime>,
    body: String,
}

impl HitRow {
    fn into_hit(self, marked: &str) -> SearchHit {
        SearchHit {
            room_id: RoomId(self.room_id),
            seq: self.seq,
            id: EventId(self.id),
            sender: self.sender.map(UserId),
            ts: self.created_at,
            edited_at: self.edited_at,
            highlight: highlight(&self.body, marked),
        }
    }
}

#[async_trait]
impl SearchStore for SqlStore<sqlx::Postgres> {
    async fn search_messages(
        &self,
        user: UserId,
        query: &SearchQuery,
        page: SearchPage,
    ) -> Result<Vec<SearchHit>> {
        /// A hit with the text as `ts_headline` marked it.
        #[derive(sqlx::FromRow)]
        struct MarkedRow {
            #[sqlx(flatten)]
            hit: HitRow,
            marked: String,
        }
        // Custom plans: how common the words are decides the plan (see
        // SEARCH_POSTGRES). `SET LOCAL` rides on the `BEGIN`'s round trip.
        let mut tx = self
            .reader()
            .begin_with("BEGIN READ ONLY; SET LOCAL plan_cache_mode = force_custom_plan")
            .await?;
        let mut rooms: Vec<Uuid> = sqlx::query_scalar(SEARCHED_ROOMS)
            .bind(user.0)
            .fetch_all(&mut *tx)
            .await?;
        if let Some(only) = page.room {
            rooms.retain(|room| *room == only.0);
        }
        if rooms.is_empty() {
            return Ok(Vec::new());
        }
        // HighlightAll: the whole text comes back, marked, not fragments.
        let options = format!("HighlightAll=true, StartSel={MARK_START}, StopSel={MARK_END}");
        let rows: Vec<MarkedRow> = sqlx::query_as(SEARCH_POSTGRES)
            .bind(query.to_tsquery())
            .bind(rooms)
            .bind(page.before.map_or(NO_CURSOR, |e| e.0))
            .bind(i64::from(page.limit))
            .bind(query.marks_tsquery())
            .bind(options)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(rows
            .into_iter()
            .map(|row| row.hit.into_hit(&row.marked))
            .collect())
    }
}

#[async_trait]
impl SearchStore for SqlStore<sqlx::Sqlite> {
    async fn search_messages(
        &self,
        user: UserId,
        query: &SearchQuery,
        page: SearchPage,
    ) -> Result<Vec<SearchHit>> {
        /// A hit with the FTS5 row its text is indexed under.
        #[derive(sqlx::FromRow)]
        struct IndexedRow {
            #[sqlx(flatten)]
            hit: HitRow,
            docid: i64,
        }
        // One snapshot: the marks are of the text the page read.
        let mut tx = self.snapshot().await?;
        let rows: Vec<IndexedRow> = sqlx::query_as(SEARCH_SQLITE)
            .bind(query.to_fts5())
            .bind(user.0)
            .bind(page.room.map(|r| r.0))
            .bind(page.before.map_or(NO_CURSOR, |e| e.0))
            .bind(i64::from(page.limit))
            .fetch_all(&mut *tx)
            .await?;
        let marks = query.marks_fts5();
        let mut hits = Vec::with_capacity(rows.len());
        for row in rows {
            let marked: Option<String> = sqlx::query_scalar(MARK_SQLITE)
                .bind(&marks)
                .bind(row.docid)
                .fetch_optional(&mut *tx)
                .await?;
            hits.push(row.hit.into_hit(marked.as_deref().unwrap_or_default()));
        }
        tx.commit().await?;
        Ok(hits)
    }
}
