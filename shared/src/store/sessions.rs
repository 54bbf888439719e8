//! Login sessions and the rotation of their refresh tokens: only a token's
//! hash is stored, each token is spent once, and a spent token presented
//! again ends its whole session (whoever holds it may be an attacker).

use async_trait::async_trait;
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Type};
use time::OffsetDateTime;
use uuid::Uuid;

use super::adapter::SqlStore;
use super::dialect::{now, Dialect, RowsAffected, Timestamp};
use super::driver_error::missing_reference;
use super::{RefreshToken, Result, Rotation, Session, SessionStore};
use crate::model::{SessionId, UserId};

const INSERT_SESSION: &str = "INSERT INTO sessions \
     (id, user_id, user_agent, created_at, last_used_at, expires_at) \
     VALUES ($1, $2, $3, $4, $4, $5)";

const INSERT_REFRESH_TOKEN: &str =
    "INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at) \
     VALUES ($1, $2, $3, $4)";

/// Spends a token: only one caller can flip `used_at` from NULL.
const SPEND_REFRESH_TOKEN: &str = "UPDATE refresh_tokens SET used_at = $2 \
     WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING session_id";

const REFRESH_TOKEN_STATE: &str =
    "SELECT session_id, used_at FROM refresh_tokens WHERE token_hash = $1";

const TOUCH_SESSION: &str = "UPDATE sessions SET last_used_at = $2, expires_at = $3 \
     WHERE id = $1 AND revoked_at IS NULL";

const REVOKE_SESSION: &str =
    "UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL";

const REVOKE_USER_SESSION: &str =
    "UPDATE sessions SET revoked_at = $3 WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL";

/// Every live session of a user but one: `$3` is the nil UUID (no session's
/// id) to end them all.
const REVOKE_USER_SESSIONS: &str = "UPDATE sessions SET revoked_at = $2 \
     WHERE user_id = $1 AND revoked_at IS NULL AND id <> $3 RETURNING id";

const SESSION_BY_ID: &str = "SELECT id, user_id, user_agent, created_at, last_used_at, \
     expires_at, revoked_at FROM sessions WHERE id = $1";

const ACTIVE_SESSIONS: &str = "SELECT id, user_id, user_agent, created_at, last_used_at, \
     expires_at, revoked_at FROM sessions \
     WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2 \
     ORDER BY created_at DESC";

#[async_trait]
impl<DB> SessionStore for SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'r> &'r str: ColumnIndex<DB::Row>,
    usize: ColumnIndex<DB::Row>,
    for<'q> Uuid: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
    for<'q> Vec<u8>: Encode<'q, DB> + Type<DB>,
    for<'q> Timestamp: Encode<'q, DB> + Type<DB>,
    for<'r> OffsetDateTime: Decode<'r, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB>,
{
    async fn create_session(
        &self,
        user: UserId,
        user_agent: Option<String>,
        token: RefreshToken,
    ) -> Result<Session> {
        let at = now();
        let session = Session {
            id: SessionId::new(),
            user_id: user,
            user_agent,
            created_at: at,
            last_used_at: at,
            expires_at: token.expires_at,
            revoked_at: None,
        };
        let mut tx = self.begin().await?;
        sqlx::query(INSERT_SESSION)
            .bind(session.id.0)
            .bind(user.0)
            .bind(&session.user_agent)
            .bind(Timestamp(at))
            .bind(Timestamp(token.expires_at))
            .execute(&mut *tx)
            .await
            .map_err(missing_reference)?;
        sqlx::query(INSERT_REFRESH_TOKEN)
            .bind(&token.hash)
            .bind(session.id.0)
            .bind(Timestamp(at))
            .bind(Timestamp(token.expires_at))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(session)
    }

    async fn rotate_refresh_token(&self, presented: &[u8], next: RefreshToken) -> Result<Rotation> {
        let at = now();
        let mut tx = self.begin().await?;
        // Flipping used_at is the linearisation point: of two
        // concurrent presentations exactly one gets the row.
        let spent: Option<uuid::Uuid> = sqlx::query_scalar(SPEND_REFRESH_TOKEN)
            .bind(presented)
            .bind(Timestamp(at))
            .fetch_optional(&mut *tx)
            .await?;
        let Some(session_id) = spent else {
            let state = sqlx::query_as::<_, TokenStateRow>(REFRESH_TOKEN_STATE)
                .bind(presented)
                .fetch_optional(&mut *tx)
                .await?;
            return match state {
                Some(TokenStateRow {
                    session_id,
                    used_at: Some(_),
                }) => {
                    // A spent token came back: whoever holds the
                    // family may be an attacker, so end it.
                    sqlx::query(REVOKE_SESSION)
                        .bind(session_id)
                        .bind(Timestamp(at))
                        .execute(&mut *tx)
                        .await?;
                    let session = sqlx::query_as::<_, SessionRow>(SESSION_BY_ID)
                        .bind(session_id)
                        .fetch_one(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok(Rotation::Reused(session.into()))
                }
                _ => Ok(Rotation::Invalid),
            };
        };
        let live = sqlx::query(TOUCH_SESSION)
            .bind(session_id)
            .bind(Timestamp(at))
            .bind(Timestamp(next.expires_at))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if live == 0 {
            // The session was logged out; its tokens stay unusable.
            return Ok(Rotation::Invalid);
        }
        sqlx::query(INSERT_REFRESH_TOKEN)
            .bind(&next.hash)
            .bind(session_id)
            .bind(Timestamp(at))
            .bind(Timestamp(next.expires_at))
            .execute(&mut *tx)
            .await?;
        let session = sqlx::query_as::<_, SessionRow>(SESSION_BY_ID)
            .bind(session_id)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Rotation::Rotated(session.into()))
    }

    async fn session(&self, id: SessionId) -> Result<Option<Session>> {
        let row = sqlx::query_as::<_, SessionRow>(SESSION_BY_ID)
            .bind(id.0)
            .fetch_optional(self.reader())
            .await?;
        Ok(row.map(Session::from))
    }

    async fn active_sessions(&self, user: UserId) -> Result<Vec<Session>> {
        let rows = sqlx::query_as::<_, SessionRow>(ACTIVE_SESSIONS)
            .bind(user.0)
            .bind(Timestamp(now()))
            .fetch_all(self.reader())
            .await?;
        Ok(rows.into_iter().map(Session::from).collect())
    }

    async fn revoke_session(&self, user: UserId, id: SessionId) -> Result<bool> {
        let revoked = sqlx::query(REVOKE_USER_SESSION)
            .bind(id.0)
            .bind(user.0)
            .bind(Timestamp(now()))
            .execute(self.writer())
            .await?
            .rows_affected();
        Ok(revoked == 1)
    }

    async fn revoke_sessions(
        &self,
        user: UserId,
        except: Option<SessionId>,
    ) -> Result<Vec<SessionId>> {
        let ended: Vec<Uuid> = sqlx::query_scalar(REVOKE_USER_SESSIONS)
            .bind(user.0)
            .bind(Timestamp(now()))
            .bind(except.map_or(Uuid::nil(), |s| s.0))
            .fetch_all(self.writer())
            .await?;
        Ok(ended.into_iter().map(SessionId).collect())
    }
}

/// A `sessions` row.
#[derive(sqlx::FromRow)]
struct SessionRow {
    id: Uuid,
    user_id: Uuid,
    user_agent: Option<String>,
    created_at: OffsetDateTime,
    last_used_at: OffsetDateTime,
    expires_at: OffsetDateTime,
    revoked_at: Option<OffsetDateTime>,
}

impl From<SessionRow> for Session {
    fn from(row: SessionRow) -> Self {
        Session {
            id: SessionId(row.id),
            user_id: UserId(row.user_id),
            user_agent: row.user_agent,
            created_at: row.created_at,
            last_used_at: row.last_used_at,
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
        }
    }
}

/// The state of a presented refresh token that could not be spent.
#[derive(sqlx::FromRow)]
struct TokenStateRow {
    pub session_id: Uuid,
    pub used_at: Option<OffsetDateTime>,
}
