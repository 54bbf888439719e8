//! Server administration on a SQL database: server roles and the
//! effective role they give in every room, deactivated accounts, reports
//! and the audit log.
//!
//! A change of a server role or of an account's state first locks every
//! admin's row (`LOCK_ADMINS`, an update that changes nothing), so two
//! admins demoting or deactivating each other at once are decided one
//! after the other and the second finds the first's change: the server is
//! never left without an active admin. Every change writes its audit entry
//! in its own transaction.

use async_trait::async_trait;
use serde_json::Value;
use sqlx::types::Json;
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Transaction, Type};
use time::OffsetDateTime;
use uuid::Uuid;

use super::accounts::{like_pattern, UserRow};
use super::adapter::SqlStore;
use super::dialect::{now, Dialect, RowsAffected, Timestamp};
use super::driver_error::{corrupt, is_unique_violation};
use super::members::{parse_role, ROLE};
use super::{AdminStore, Error, Result};
use crate::admin::{
    effective_role, outranks_account, Account, AuditAction, AuditEntry, NewAudit, NewReport,
    Report, ReportTarget, Resolution, ServerRole,
};
use crate::model::{AuditId, EventId, ReportId, Role, RoomId, UserId};

const ACCOUNT_COLUMNS: &str =
    "SELECT id, username, display_name, created_at, avatar, server_role, deactivated_at FROM users";

/// A member's room role and the server role that counts (none while
/// deactivated), in one read; no row: no such user.
const STANDING: &str = "SELECT m.role, \
     CASE WHEN u.deactivated_at IS NULL THEN u.server_role END AS server_role \
     FROM users u LEFT JOIN room_members m ON m.room_id = $1 AND m.user_id = u.id \
     WHERE u.id = $2";

const ACTIVE_SERVER_ROLE: &str =
    "SELECT server_role FROM users WHERE id = $1 AND deactivated_at IS NULL";

const LOCK_ADMINS: &str = "UPDATE users SET server_role = server_role WHERE server_role = 'admin'";

const ACTIVE_ADMINS: &str =
    "SELECT count(*) FROM users WHERE server_role = 'admin' AND deactivated_at IS NULL";

const SET_SERVER_ROLE: &str = "UPDATE users SET server_role = $2 WHERE id = $1";

const DEACTIVATE: &str = "UPDATE users SET deactivated_at = $2 WHERE id = $1";

const REACTIVATE: &str = "UPDATE users SET deactivated_at = NULL WHERE id = $1";

const INSERT_AUDIT: &str = "INSERT INTO audit_log \
     (id, actor, action, target_user, room_id, target_id, detail, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

const AUDIT_LOG: &str = "SELECT id, actor, action, target_user, room_id, target_id, detail, \
     created_at FROM audit_log WHERE id < $1 ORDER BY id DESC LIMIT $2";

const MESSAGE_SENDER: &str =
    "SELECT sender FROM room_events WHERE id = $1 AND room_id = $2 AND kind = 'message'";

const USER_EXISTS: &str = "SELECT 1 FROM users WHERE id = $1";

const INSERT_REPORT: &str = "INSERT INTO reports \
     (id, reporter, target_kind, target_id, room_id, subject, reason, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

const REPORT_COLUMNS: &str = "SELECT id, reporter, target_kind, target_id, room_id, subject, \
     reason, created_at, resolved_at, resolved_by, resolution FROM reports";

const RESOLVE_REPORT: &str = "UPDATE reports SET resolved_at = $2, resolved_by = $3, \
     resolution = $4 WHERE id = $1 AND resolved_at IS NULL";

/// The greatest UUID: "before" nothing means before everything.
const NO_CURSOR: Uuid = Uuid::from_bytes([0xff; 16]);

/// What someone is in a room and on the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Standing {
    /// Their role as a member; `None` if they are not one.
    pub(super) member: Option<Role>,
    /// Their server role, if the account is active.
    pub(super) server: Option<ServerRole>,
}

impl Standing {
    /// What they may do there.
    pub(super) fn effective(self) -> Option<Role> {
        effective_role(self.member, self.server)
    }

    /// Whether acting as `needed` takes their server role: their role as
    /// a member alone would not allow it (the audit records such acts).
    pub(super) fn by_server_powers(self, needed: Role) -> bool {
        self.member < Some(needed) && self.effective() >= Some(needed)
    }
}

impl<DB> SqlStore<DB>
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
    for<'q> Option<Uuid>: Encode<'q, DB>,
{
    /// `user`'s standing in `room`, read on `conn` (inside the change's
    /// transaction, so it is the standing at the commit). A user who does
    /// not exist has none.
    pub(super) async fn standing(
        conn: &mut DB::Connection,
        room: RoomId,
        user: UserId,
    ) -> Result<Standing> {
        let row: Option<(Option<String>, Option<String>)> = sqlx::query_as(STANDING)
            .bind(room.0)
            .bind(user.0)
            .fetch_optional(&mut *conn)
            .await?;
        let (member, server) = row.unwrap_or((None, None));
        Ok(Standing {
            member: member.as_deref().map(parse_role).transpose()?,
            server: server.as_deref().map(parse_server_role).transpose()?,
        })
    }

    /// Records `action` on `conn`, in the transaction of the action.
    pub(super) async fn write_audit(
        conn: &mut DB::Connection,
        action: AuditAction,
        entry: &NewAudit,
    ) -> Result<()> {
        sqlx::query(INSERT_AUDIT)
            .bind(AuditId::new().0)
            .bind(entry.actor.map(|u| u.0))
            .bind(action.as_str())
            .bind(entry.target_user.map(|u| u.0))
            .bind(entry.room_id.map(|r| r.0))
            .bind(entry.target_id)
            .bind(entry.detail.as_str())
            .bind(Timestamp(now()))
            .execute(&mut *conn)
            .await?;
        Ok(())
    }
}

#[async_trait]
impl<DB> AdminStore for SqlStore<DB>
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
    for<'q> Json<Value>: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'r> i32: Decode<'r, DB> + Type<DB>,
    for<'q> Option<Uuid>: Encode<'q, DB>,
    for<'q> Option<String>: Encode<'q, DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
{
    async fn account(&self, user: UserId) -> Result<Option<Account>> {
        let mut conn = self.reader().acquire().await?;
        read_account(&mut conn, user).await
    }

    async fn account_by_name(&self, username: &str) -> Result<Option<Account>> {
        let sql = format!("{ACCOUNT_COLUMNS} WHERE lower(username) = lower($1)");
        sqlx::query_as::<_, AccountRow>(&sql)
            .bind(username)
            .fetch_optional(self.reader())
            .await?
            .map(Account::try_from)
            .transpose()
    }

    async fn accounts(
        &self,
        query: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Account>> {
        // Usernames are never empty, so "after nothing" is after "".
        let after = after.map(str::to_lowercase).unwrap_or_default();
        let rows = match query {
            Some(query) => {
                let sql = format!(
                    "{ACCOUNT_COLUMNS} WHERE (lower(username) LIKE $1 ESCAPE '\\' \
                     OR lower(display_name) LIKE $1 ESCAPE '\\') AND lower(username) > $2 \
                     ORDER BY lower(username) LIMIT $3"
                );
                sqlx::query_as::<_, AccountRow>(&sql)
                    .bind(like_pattern(query))
                    .bind(after)
                    .bind(i64::from(limit))
                    .fetch_all(self.reader())
                    .await?
            }
            None => {
                let sql = format!(
                    "{ACCOUNT_COLUMNS} WHERE lower(username) > $1 \
                     ORDER BY lower(username) LIMIT $2"
                );
                sqlx::query_as::<_, AccountRow>(&sql)
                    .bind(after)
                    .bind(i64::from(limit))
                    .fetch_all(self.reader())
                    .await?
            }
        };
        rows.into_iter().map(Account::try_from).collect()
    }

    async fn effective_role(&self, room: RoomId, user: UserId) -> Result<Option<Role>> {
        let mut conn = self.reader().acquire().await?;
        Ok(Self::standing(&mut conn, room, user).await?.effective())
    }

    async fn set_server_role(
        &self,
        user: UserId,
        role: Option<ServerRole>,
        by: Option<UserId>,
    ) -> Result<Account> {
        let mut tx = self.begin().await?;
        lock_admins(&mut tx).await?;
        if let Some(by) = by {
            if active_server_role(&mut tx, by).await? != Some(ServerRole::Admin) {
                return Err(Error::NotAllowed);
            }
        }
        let account = read_account(&mut tx, user).await?.ok_or(Error::NotFound)?;
        if account.server_role == role {
            return Err(Error::Conflict("unchanged"));
        }
        sqlx::query(SET_SERVER_ROLE)
            .bind(user.0)
            .bind(role.map(ServerRole::as_str))
            .execute(&mut *tx)
            .await?;
        if account.server_role == Some(ServerRole::Admin) {
            ensure_an_admin_remains(&mut tx).await?;
        }
        let (action, detail) = match (role, account.server_role) {
            (Some(granted), _) => (AuditAction::GrantRole, granted),
            (None, Some(previous)) => (AuditAction::RevokeRole, previous),
            (None, None) => unreachable!("an unchanged role returned above"),
        };
        let entry = NewAudit {
            actor: by,
            target_user: Some(user),
            detail: detail.as_str().into(),
            ..NewAudit::default()
        };
        Self::write_audit(&mut tx, action, &entry).await?;
        let account = read_account(&mut tx, user).await?.ok_or(Error::NotFound)?;
        tx.commit().await?;
        Ok(account)
    }

    async fn set_deactivated(
        &self,
        user: UserId,
        deactivated: bool,
        by: UserId,
    ) -> Result<Account> {
        if deactivated && user == by {
            return Err(Error::Invalid("user_id: you cannot deactivate yourself"));
        }
        let mut tx = self.begin().await?;
        lock_admins(&mut tx).await?;
        let actor = active_server_role(&mut tx, by).await?;
        let account = read_account(&mut tx, user).await?.ok_or(Error::NotFound)?;
        if !outranks_account(actor, account.server_role) {
            return Err(Error::NotAllowed);
        }
        if account.deactivated_at.is_some() == deactivated {
            return Err(Error::Conflict("unchanged"));
        }
        let action = if deactivated {
            sqlx::query(DEACTIVATE)
                .bind(user.0)
                .bind(Timestamp(now()))
                .execute(&mut *tx)
                .await?;
            if account.server_role == Some(ServerRole::Admin) {
                ensure_an_admin_remains(&mut tx).await?;
            }
            AuditAction::Deactivate
        } else {
            sqlx::query(REACTIVATE)
                .bind(user.0)
                .execute(&mut *tx)
                .await?;
            AuditAction::Reactivate
        };
        let entry = NewAudit {
            actor: Some(by),
            target_user: Some(user),
            ..NewAudit::default()
        };
        Self::write_audit(&mut tx, action, &entry).await?;
        let account = read_account(&mut tx, user).await?.ok_or(Error::NotFound)?;
        tx.commit().await?;
        Ok(account)
    }

    async fn record_audit(&self, action: AuditAction, entry: NewAudit) -> Result<()> {
        let mut tx = self.begin().await?;
        Self::write_audit(&mut tx, action, &entry).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn audit_log(&self, before: Option<AuditId>, limit: u32) -> Result<Vec<AuditEntry>> {
        sqlx::query_as::<_, AuditRow>(AUDIT_LOG)
            .bind(before.map_or(NO_CURSOR, |b| b.0))
            .bind(i64::from(limit))
            .fetch_all(self.reader())
            .await?
            .into_iter()
            .map(AuditEntry::try_from)
            .collect()
    }

    async fn file_report(&self, new: NewReport) -> Result<Report> {
        let mut tx = self.begin().await?;
        let (kind, target_id, room, subject) = match new.target {
            ReportTarget::Message { room_id, event_id } => {
                let member: Option<String> = sqlx::query_scalar(ROLE)
                    .bind(room_id.0)
                    .bind(new.reporter.0)
                    .fetch_optional(&mut *tx)
                    .await?;
                if member.is_none() {
                    return Err(Error::NotMember);
                }
                let sender: Option<Option<Uuid>> = sqlx::query_scalar(MESSAGE_SENDER)
                    .bind(event_id.0)
                    .bind(room_id.0)
                    .fetch_optional(&mut *tx)
                    .await?;
                let sender = sender.flatten().ok_or(Error::NotFound)?;
                ("message", event_id.0, Some(room_id.0), sender)
            }
            ReportTarget::User { user_id } => {
                let exists: Option<i32> = sqlx::query_scalar(USER_EXISTS)
                    .bind(user_id.0)
                    .fetch_optional(&mut *tx)
                    .await?;
                exists.ok_or(Error::NotFound)?;
                ("user", user_id.0, None, user_id.0)
            }
        };
        let report = Report {
            id: ReportId::new(),
            reporter: new.reporter,
            target: new.target,
            subject: UserId(subject),
            reason: new.reason,
            created_at: now(),
            resolution: None,
        };
        sqlx::query(INSERT_REPORT)
            .bind(report.id.0)
            .bind(report.reporter.0)
            .bind(kind)
            .bind(target_id)
            .bind(room)
            .bind(subject)
            .bind(report.reason.as_str())
            .bind(Timestamp(report.created_at))
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    Error::Conflict("report")
                } else {
                    e.into()
                }
            })?;
        tx.commit().await?;
        Ok(report)
    }

    async fn reports(
        &self,
        resolved: bool,
        before: Option<ReportId>,
        limit: u32,
    ) -> Result<Vec<Report>> {
        let state = if resolved {
            "resolved_at IS NOT NULL"
        } else {
            "resolved_at IS NULL"
        };
        let sql = format!("{REPORT_COLUMNS} WHERE {state} AND id < $1 ORDER BY id DESC LIMIT $2");
        sqlx::query_as::<_, ReportRow>(&sql)
            .bind(before.map_or(NO_CURSOR, |b| b.0))
            .bind(i64::from(limit))
            .fetch_all(self.reader())
            .await?
            .into_iter()
            .map(Report::try_from)
            .collect()
    }

    async fn resolve_report(&self, id: ReportId, by: UserId, note: String) -> Result<Report> {
        let mut tx = self.begin().await?;
        if active_server_role(&mut tx, by).await?.is_none() {
            return Err(Error::NotAllowed);
        }
        let resolved = sqlx::query(RESOLVE_REPORT)
            .bind(id.0)
            .bind(Timestamp(now()))
            .bind(by.0)
            .bind(note.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let report = read_report(&mut tx, id).await?.ok_or(Error::NotFound)?;
        if resolved == 0 {
            return Err(Error::Conflict("resolved"));
        }
        let entry = NewAudit {
            actor: Some(by),
            target_user: Some(report.subject),
            room_id: match report.target {
                ReportTarget::Message { room_id, .. } => Some(room_id),
                ReportTarget::User { .. } => None,
            },
            target_id: Some(id.0),
            detail: note,
        };
        Self::write_audit(&mut tx, AuditAction::ResolveReport, &entry).await?;
        tx.commit().await?;
        Ok(report)
    }
}

/// Locks every admin's row until the transaction ends (see the module doc).
async fn lock_admins<DB>(tx: &mut Transaction<'_, DB>) -> Result<()>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
{
    sqlx::query(LOCK_ADMINS).execute(&mut **tx).await?;
    Ok(())
}

/// `Conflict("last_admin")` when no active admin is left.
async fn ensure_an_admin_remains<DB>(tx: &mut Transaction<'_, DB>) -> Result<()>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    usize: ColumnIndex<DB::Row>,
    for<'q> i64: Decode<'q, DB> + Type<DB>,
{
    let admins: i64 = sqlx::query_scalar(ACTIVE_ADMINS)
        .fetch_one(&mut **tx)
        .await?;
    if admins == 0 {
        return Err(Error::Conflict("last_admin"));
    }
    Ok(())
}

/// The server role of an active account (none for a deactivated one).
async fn active_server_role<DB>(
    conn: &mut DB::Connection,
    user: UserId,
) -> Result<Option<ServerRole>>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    usize: ColumnIndex<DB::Row>,
    for<'q> Uuid: Encode<'q, DB> + Type<DB>,
    for<'q> String: Decode<'q, DB> + Type<DB>,
{
    let role: Option<Option<String>> = sqlx::query_scalar(ACTIVE_SERVER_ROLE)
        .bind(user.0)
        .fetch_optional(&mut *conn)
        .await?;
    role.flatten().as_deref().map(parse_server_role).transpose()
}

async fn read_account<DB>(conn: &mut DB::Connection, user: UserId) -> Result<Option<Account>>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'r> &'r str: ColumnIndex<DB::Row>,
    for<'q> Uuid: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> String: Decode<'q, DB> + Type<DB>,
    for<'r> OffsetDateTime: Decode<'r, DB> + Type<DB>,
{
    let sql = format!("{ACCOUNT_COLUMNS} WHERE id = $1");
    sqlx::query_as::<_, AccountRow>(&sql)
        .bind(user.0)
        .fetch_optional(&mut *conn)
        .await?
        .map(Account::try_from)
        .transpose()
}

async fn read_report<DB>(conn: &mut DB::Connection, id: ReportId) -> Result<Option<Report>>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'r> &'r str: ColumnIndex<DB::Row>,
    for<'q> Uuid: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> String: Decode<'q, DB> + Type<DB>,
    for<'r> OffsetDateTime: Decode<'r, DB> + Type<DB>,
{
    let sql = format!("{REPORT_COLUMNS} WHERE id = $1");
    sqlx::query_as::<_, ReportRow>(&sql)
        .bind(id.0)
        .fetch_optional(&mut *conn)
        .await?
        .map(Report::try_from)
        .transpose()
}

fn parse_server_role(s: &str) -> Result<ServerRole> {
    ServerRole::parse(s).ok_or_else(|| corrupt("users.server_role", s))
}

/// A `users` row with its server role and state.
#[derive(sqlx::FromRow)]
struct AccountRow {
    #[sqlx(flatten)]
    user: UserRow,
    server_role: Option<String>,
    deactivated_at: Option<OffsetDateTime>,
}

impl TryFrom<AccountRow> for Account {
    type Error = Error;
    fn try_from(row: AccountRow) -> Result<Self> {
        Ok(Account {
            user: row.user.into(),
            server_role: row
                .server_role
                .as_deref()
                .map(parse_server_role)
                .transpose()?,
            deactivated_at: row.deactivated_at,
        })
    }
}

/// An `audit_log` row.
#[derive(sqlx::FromRow)]
struct AuditRow {
    id: Uuid,
    actor: Option<Uuid>,
    action: String,
    target_user: Option<Uuid>,
    room_id: Option<Uuid>,
    target_id: Option<Uuid>,
    detail: String,
    created_at: OffsetDateTime,
}

impl TryFrom<AuditRow> for AuditEntry {
    type Error = Error;
    fn try_from(row: AuditRow) -> Result<Self> {
        Ok(AuditEntry {
            id: AuditId(row.id),
            actor: row.actor.map(UserId),
            action: AuditAction::parse(&row.action)
                .ok_or_else(|| corrupt("audit_log.action", &row.action))?,
            target_user: row.target_user.map(UserId),
            room_id: row.room_id.map(RoomId),
            target_id: row.target_id,
            detail: row.detail,
            at: row.created_at,
        })
    }
}

/// A `reports` row.
#[derive(sqlx::FromRow)]
struct ReportRow {
    id: Uuid,
    reporter: Uuid,
    target_kind: String,
    target_id: Uuid,
    room_id: Option<Uuid>,
    subject: Uuid,
    reason: String,
    created_at: OffsetDateTime,
    resolved_at: Option<OffsetDateTime>,
    resolved_by: Option<Uuid>,
    resolution: Option<String>,
}

impl TryFrom<ReportRow> for Report {
    type Error = Error;
    fn try_from(row: ReportRow) -> Result<Self> {
        let target = match (row.target_kind.as_str(), row.room_id) {
            ("message", Some(room)) => ReportTarget::Message {
                room_id: RoomId(room),
                event_id: EventId(row.target_id),
            },
            ("user", _) => ReportTarget::User {
                user_id: UserId(row.target_id),
            },
            (other, _) => return Err(corrupt("reports.target_kind", other)),
        };
        Ok(Report {
            id: ReportId(row.id),
            reporter: UserId(row.reporter),
            target,
            subject: UserId(row.subject),
            reason: row.reason,
            created_at: row.created_at,
            resolution: row.resolved_at.map(|at| Resolution {
                by: row.resolved_by.map(UserId),
                at,
                note: row.resolution.unwrap_or_default(),
            }),
        })
    }
}
