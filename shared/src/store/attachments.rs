//! Attachments: the rows that describe uploaded files, and their life.
//! A row is written before its bytes (`uploading`), turns `ready` when they
//! are stored, is carried by one message (its `seq`, set in the message's
//! own transaction by `group_commit`), and ends `deleted` when its message
//! is deleted, its room is deleted, or no message carried it in time; the
//! sweeper then deletes its bytes and, last, the row. So no message ever
//! names a file whose bytes were not stored, and no stored bytes are left
//! without a row that leads to them.

use async_trait::async_trait;
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Type};
use time::OffsetDateTime;
use uuid::Uuid;

use super::adapter::SqlStore;
use super::dialect::{now, Dialect, RowsAffected, Timestamp};
use super::driver_error::corrupt;
use super::log::ROOM_LAST_SEQ;
use super::{AttachmentStore, Error, NewAttachment, Result, StoredAttachment, Uploaded};
use crate::model::{Attachment, AttachmentId, RoomId, UserId};

/// Records an upload about to begin, if the uploader is a member of the
/// room (no row back: not a member, or no such room).
const BEGIN_UPLOAD: &str = "INSERT INTO attachments \
     (id, room_id, uploader, name, content_type, state, created_at) \
     SELECT $1, $2, $3, $4, $5, 'uploading', $6 \
     WHERE EXISTS (SELECT 1 FROM room_members WHERE room_id = $2 AND user_id = $3)";

/// Marks an upload stored. Only from `uploading`: an upload the sweeper
/// gave up on stays given up (its bytes are being deleted).
const FINISH_UPLOAD: &str = "UPDATE attachments \
     SET state = 'ready', content_type = $2, size = $3, width = $4, height = $5, \
     thumbnail_type = $6 \
     WHERE id = $1 AND state = 'uploading'";

const ABANDON_UPLOAD: &str =
    "UPDATE attachments SET state = 'deleted' WHERE id = $1 AND state = 'uploading'";

const ATTACHMENT: &str = "SELECT id, room_id, uploader, name, content_type, state, size, \
     width, height, thumbnail_type, seq, created_at FROM attachments WHERE id = $1";

/// Gives up the attachments no message carried in time, finished or not.
const EXPIRE: &str = "UPDATE attachments SET state = 'deleted' \
     WHERE seq IS NULL AND state <> 'deleted' AND created_at < $1";

const DELETED: &str =
    "SELECT id FROM attachments WHERE state = 'deleted' ORDER BY created_at LIMIT $1";

const FORGET: &str = "DELETE FROM attachments WHERE id = $1 AND state = 'deleted'";

/// A message's attachments go with it (`erase`).
pub(super) const DELETE_MESSAGE_ATTACHMENTS: &str =
    "UPDATE attachments SET state = 'deleted' WHERE room_id = $1 AND seq = $2";

/// A room's attachments go with it, carried or not.
pub(super) const DELETE_ROOM_ATTACHMENTS: &str =
    "UPDATE attachments SET state = 'deleted' WHERE room_id = $1";

/// The columns a message carries of an attachment, as `group_commit`
/// reads them.
pub(super) const READY_COLUMNS: &str =
    "id, room_id, uploader, name, content_type, size, width, height, thumbnail_type";

/// An `attachments` row as a message carries it.
#[derive(sqlx::FromRow)]
pub(super) struct ReadyRow {
    id: Uuid,
    room_id: Uuid,
    uploader: Uuid,
    name: String,
    content_type: String,
    size: Option<i64>,
    width: Option<i32>,
    height: Option<i32>,
    thumbnail_type: Option<String>,
}

impl ReadyRow {
    /// The attachment, keyed as `group_commit::claim` looks it up.
    pub(super) fn into_entry(self) -> Result<(AttachmentId, (RoomId, UserId, Attachment))> {
        let id = AttachmentId(self.id);
        let attachment = Attachment {
            id,
            name: self.name,
            content_type: self.content_type,
            size: unsigned(self.size.unwrap_or_default(), "attachments.size")?,
            width: self
                .width
                .map(|w| dimension(w, "attachments.width"))
                .transpose()?,
            height: self
                .height
                .map(|h| dimension(h, "attachments.height"))
                .transpose()?,
            thumbnail: self.thumbnail_type.is_some(),
        };
        Ok((
            id,
            (RoomId(self.room_id), UserId(self.uploader), attachment),
        ))
    }
}

/// An `attachments` row.
#[derive(sqlx::FromRow)]
struct AttachmentRow {
    #[sqlx(flatten)]
    ready: ReadyRow,
    state: String,
    seq: Option<i64>,
    created_at: OffsetDateTime,
}

impl TryFrom<AttachmentRow> for StoredAttachment {
    type Error = Error;
    fn try_from(row: AttachmentRow) -> Result<Self> {
        let ready = match row.state.as_str() {
            "ready" => true,
            "uploading" | "deleted" => false,
            other => return Err(corrupt("attachments.state", other)),
        };
        let thumbnail_type = row.ready.thumbnail_type.clone();
        let (_, (room_id, uploader, attachment)) = row.ready.into_entry()?;
        Ok(StoredAttachment {
            attachment,
            thumbnail_type,
            room_id,
            uploader,
            ready,
            seq: row.seq,
            created_at: row.created_at,
        })
    }
}

fn unsigned(value: i64, column: &str) -> Result<u64> {
    u64::try_from(value).map_err(|_| corrupt(column, &value.to_string()))
}

fn dimension(value: i32, column: &str) -> Result<u32> {
    u32::try_from(value).map_err(|_| corrupt(column, &value.to_string()))
}

#[async_trait]
impl<DB> AttachmentStore for SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'r> &'r str: ColumnIndex<DB::Row>,
    usize: ColumnIndex<DB::Row>,
    for<'q> Uuid: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'r> i32: Decode<'r, DB> + Type<DB>,
    for<'q> Option<i32>: Encode<'q, DB>,
    for<'q> Option<String>: Encode<'q, DB>,
    for<'q> Timestamp: Encode<'q, DB> + Type<DB>,
    for<'r> OffsetDateTime: Decode<'r, DB> + Type<DB>,
{
    async fn begin_upload(&self, new: NewAttachment) -> Result<AttachmentId> {
        let id = AttachmentId::new();
        let inserted = sqlx::query(BEGIN_UPLOAD)
            .bind(id.0)
            .bind(new.room.0)
            .bind(new.uploader.0)
            .bind(new.name)
            .bind(new.content_type)
            .bind(Timestamp(now()))
            .execute(self.writer())
            .await?
            .rows_affected();
        if inserted == 1 {
            return Ok(id);
        }
        let room: Option<i64> = sqlx::query_scalar(ROOM_LAST_SEQ)
            .bind(new.room.0)
            .fetch_optional(self.reader())
            .await?;
        Err(match room {
            Some(_) => Error::NotMember,
            None => Error::NotFound,
        })
    }

    async fn finish_upload(&self, id: AttachmentId, uploaded: Uploaded) -> Result<()> {
        let size = i64::try_from(uploaded.size).map_err(|_| Error::Invalid("size: too large"))?;
        let side = |v: Option<u32>| v.map(i32::try_from).transpose();
        let (width, height) = (side(uploaded.width), side(uploaded.height));
        let (Ok(width), Ok(height)) = (width, height) else {
            return Err(Error::Invalid("dimensions: too large"));
        };
        let finished = sqlx::query(FINISH_UPLOAD)
            .bind(id.0)
            .bind(uploaded.content_type)
            .bind(size)
            .bind(width)
            .bind(height)
            .bind(uploaded.thumbnail_type)
            .execute(self.writer())
            .await?
            .rows_affected();
        if finished == 1 {
            Ok(())
        } else {
            Err(Error::NotFound)
        }
    }

    async fn abandon_upload(&self, id: AttachmentId) -> Result<()> {
        sqlx::query(ABANDON_UPLOAD)
            .bind(id.0)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    async fn attachment(&self, id: AttachmentId) -> Result<Option<StoredAttachment>> {
        sqlx::query_as::<_, AttachmentRow>(ATTACHMENT)
            .bind(id.0)
            .fetch_optional(self.reader())
            .await?
            .map(StoredAttachment::try_from)
            .transpose()
    }

    async fn expire_attachments(&self, created_before: OffsetDateTime) -> Result<u64> {
        Ok(sqlx::query(EXPIRE)
            .bind(Timestamp(created_before))
            .execute(self.writer())
            .await?
            .rows_affected())
    }

    async fn deleted_attachments(&self, limit: u32) -> Result<Vec<AttachmentId>> {
        let ids: Vec<Uuid> = sqlx::query_scalar(DELETED)
            .bind(i64::from(limit))
            .fetch_all(self.reader())
            .await?;
        Ok(ids.into_iter().map(AttachmentId).collect())
    }

    async fn forget_attachment(&self, id: AttachmentId) -> Result<()> {
        sqlx::query(FORGET)
            .bind(id.0)
            .execute(self.writer())
            .await?;
        Ok(())
    }
}
