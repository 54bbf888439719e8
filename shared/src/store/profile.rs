//! What a user changes of their own account (`ProfileStore`): the
//! password, checked against the hash read by id, the shown name, and the
//! erasure of a deleted account. Each is one statement on the `users`
//! row; the api ends sessions and memberships around them and tells the
//! other users after the commit.

use async_trait::async_trait;
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Type};
use time::OffsetDateTime;
use uuid::Uuid;

use super::accounts::{CredentialsRow, UserRow};
use super::adapter::SqlStore;
use super::dialect::{now, Dialect, RowsAffected, Timestamp};
use super::{Credentials, ProfileStore, Result, DELETED_USER};
use crate::model::{RoomId, User, UserId};

const CREDENTIALS_BY_ID: &str =
    "SELECT id, username, display_name, created_at, avatar, password_hash \
     FROM users WHERE id = $1";

const SET_PASSWORD_HASH: &str = "UPDATE users SET password_hash = $2 WHERE id = $1";

const SET_DISPLAY_NAME: &str = "UPDATE users SET display_name = $2 WHERE id = $1 \
     RETURNING id, username, display_name, created_at, avatar";

const AVATAR: &str = "SELECT avatar FROM users WHERE id = $1 AND deleted_at IS NULL";

const SET_AVATAR: &str = "UPDATE users SET avatar = $2 WHERE id = $1 AND deleted_at IS NULL \
     RETURNING id, username, display_name, created_at, avatar";

const ROOM_MATES: &str = "SELECT DISTINCT theirs.user_id FROM room_members mine \
     JOIN room_members theirs ON theirs.room_id = mine.room_id WHERE mine.user_id = $1";

const MEMBERSHIPS: &str = "SELECT room_id FROM room_members WHERE user_id = $1 ORDER BY room_id";

/// A hash no password matches: not a PHC string at all.
const NO_PASSWORD: &str = "!";

const ERASE_ACCOUNT: &str = "UPDATE users SET username = $2, display_name = $3, \
     password_hash = $4, deleted_at = $5, avatar = NULL, server_role = NULL WHERE id = $1 AND deleted_at IS NULL \
     RETURNING id, username, display_name, created_at, avatar";

const IS_ERASED: &str = "SELECT 1 FROM users WHERE id = $1 AND deleted_at IS NOT NULL";

#[async_trait]
impl<DB> ProfileStore for SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'r> &'r str: ColumnIndex<DB::Row>,
    usize: ColumnIndex<DB::Row>,
    for<'q> Uuid: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Timestamp: Encode<'q, DB> + Type<DB>,
    for<'r> OffsetDateTime: Decode<'r, DB> + Type<DB>,
    for<'r> i32: Decode<'r, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
{
    async fn account_credentials(&self, user: UserId) -> Result<Option<Credentials>> {
        let row = sqlx::query_as::<_, CredentialsRow>(CREDENTIALS_BY_ID)
            .bind(user.0)
            .fetch_optional(self.reader())
            .await?;
        Ok(row.map(Credentials::from))
    }

    async fn set_password_hash(&self, user: UserId, hash: &str) -> Result<bool> {
        let changed = sqlx::query(SET_PASSWORD_HASH)
            .bind(user.0)
            .bind(hash)
            .execute(self.writer())
            .await?
            .rows_affected();
        Ok(changed == 1)
    }

    async fn set_display_name(&self, user: UserId, name: &str) -> Result<Option<User>> {
        let row = sqlx::query_as::<_, UserRow>(SET_DISPLAY_NAME)
            .bind(user.0)
            .bind(name)
            .fetch_optional(self.writer())
            .await?;
        Ok(row.map(User::from))
    }

    async fn room_mates(&self, user: UserId) -> Result<Vec<UserId>> {
        let ids: Vec<Uuid> = sqlx::query_scalar(ROOM_MATES)
            .bind(user.0)
            .fetch_all(self.reader())
            .await?;
        Ok(ids.into_iter().map(UserId).collect())
    }

    async fn memberships(&self, user: UserId) -> Result<Vec<RoomId>> {
        let ids: Vec<Uuid> = sqlx::query_scalar(MEMBERSHIPS)
            .bind(user.0)
            .fetch_all(self.reader())
            .await?;
        Ok(ids.into_iter().map(RoomId).collect())
    }

    async fn erase_account(&self, user: UserId) -> Result<Option<User>> {
        let row = sqlx::query_as::<_, UserRow>(ERASE_ACCOUNT)
            .bind(user.0)
            .bind(format!("deleted-{}", user.0.simple()))
            .bind(DELETED_USER)
            .bind(NO_PASSWORD)
            .bind(Timestamp(now()))
            .fetch_optional(self.writer())
            .await?;
        Ok(row.map(User::from))
    }

    async fn avatar(&self, user: UserId) -> Result<Option<String>> {
        let version: Option<Option<String>> = sqlx::query_scalar(AVATAR)
            .bind(user.0)
            .fetch_optional(self.reader())
            .await?;
        Ok(version.flatten())
    }

    async fn set_avatar(&self, user: UserId, version: Option<&str>) -> Result<Option<User>> {
        let row = sqlx::query_as::<_, UserRow>(SET_AVATAR)
            .bind(user.0)
            .bind(version)
            .fetch_optional(self.writer())
            .await?;
        Ok(row.map(User::from))
    }

    async fn is_erased(&self, user: UserId) -> Result<bool> {
        let erased: Option<i32> = sqlx::query_scalar(IS_ERASED)
            .bind(user.0)
            .fetch_optional(self.reader())
            .await?;
        Ok(erased.is_some())
    }
}
