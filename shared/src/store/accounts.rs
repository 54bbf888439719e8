//! Accounts: registering users, what login checks, finding people. Users
//! are unique by name ignoring case (`lower(username)`, indexed).

use async_trait::async_trait;
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Type};
use time::OffsetDateTime;
use uuid::Uuid;

use super::adapter::SqlStore;
use super::dialect::{now, Dialect, Timestamp};
use super::driver_error::is_unique_violation;
use super::{Credentials, Error, NewUser, Result, UserStore};
use crate::model::{User, UserId};

const INSERT_USER: &str =
    "INSERT INTO users (id, username, display_name, password_hash, created_at) \
     VALUES ($1, $2, $3, $4, $5)";

const CREDENTIALS: &str = "SELECT id, username, display_name, created_at, avatar, password_hash \
     FROM users WHERE lower(username) = lower($1)";

const USER_BY_ID: &str =
    "SELECT id, username, display_name, created_at, avatar FROM users WHERE id = $1";

/// Deleted accounts are nobody to find.
const SEARCH_USERS: &str = "SELECT id, username, display_name, created_at, avatar FROM users \
     WHERE (lower(username) LIKE $1 ESCAPE '\\' OR lower(display_name) LIKE $1 ESCAPE '\\') \
     AND deleted_at IS NULL ORDER BY lower(username) LIMIT $2";

#[async_trait]
impl<DB> UserStore for SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'r> &'r str: ColumnIndex<DB::Row>,
    usize: ColumnIndex<DB::Row>,
    for<'q> Uuid: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Timestamp: Encode<'q, DB> + Type<DB>,
    for<'r> OffsetDateTime: Decode<'r, DB> + Type<DB>,
{
    async fn create_user(&self, new: NewUser) -> Result<User> {
        let user = User {
            id: UserId::new(),
            username: new.username,
            display_name: new.display_name,
            created_at: now(),
            avatar: None,
        };
        sqlx::query(INSERT_USER)
            .bind(user.id.0)
            .bind(&user.username)
            .bind(&user.display_name)
            .bind(&new.password_hash)
            .bind(Timestamp(user.created_at))
            .execute(self.writer())
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    Error::Conflict("username")
                } else {
                    e.into()
                }
            })?;
        Ok(user)
    }

    async fn credentials(&self, username: &str) -> Result<Option<Credentials>> {
        let row = sqlx::query_as::<_, CredentialsRow>(CREDENTIALS)
            .bind(username)
            .fetch_optional(self.reader())
            .await?;
        Ok(row.map(Credentials::from))
    }

    async fn user(&self, id: UserId) -> Result<Option<User>> {
        let row = sqlx::query_as::<_, UserRow>(USER_BY_ID)
            .bind(id.0)
            .fetch_optional(self.reader())
            .await?;
        Ok(row.map(User::from))
    }

    async fn search_users(&self, query: &str, limit: u32) -> Result<Vec<User>> {
        let rows = sqlx::query_as::<_, UserRow>(SEARCH_USERS)
            .bind(like_pattern(query))
            .bind(i64::from(limit))
            .fetch_all(self.reader())
            .await?;
        Ok(rows.into_iter().map(User::from).collect())
    }
}

/// Escapes `%`, `_` and `\` so user text matches literally inside `LIKE`.
pub(super) fn like_pattern(query: &str) -> String {
    let mut pattern = String::with_capacity(query.len() + 2);
    pattern.push('%');
    for c in query.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// A `users` row.
#[derive(sqlx::FromRow)]
pub(super) struct UserRow {
    id: Uuid,
    username: String,
    display_name: String,
    created_at: OffsetDateTime,
    /// The avatar's version, where the query reads it.
    #[sqlx(default)]
    avatar: Option<String>,
}

impl From<UserRow> for User {
    fn from(row: UserRow) -> Self {
        let id = UserId(row.id);
        User {
            id,
            username: row.username,
            display_name: row.display_name,
            created_at: row.created_at,
            avatar: row.avatar.map(|version| User::avatar_path(id, &version)),
        }
    }
}

/// A `users` row with its password hash.
#[derive(sqlx::FromRow)]
pub(super) struct CredentialsRow {
    #[sqlx(flatten)]
    pub user: UserRow,
    pub password_hash: String,
}

impl From<CredentialsRow> for Credentials {
    fn from(row: CredentialsRow) -> Self {
        Credentials {
            user: row.user.into(),
            password_hash: row.password_hash,
        }
    }
}
