//! The server's administration, `/v1/admin/...`: accounts with their
//! state and server role, deactivation, granting server roles, the report
//! queue and the audit log. Server admins and moderators only; what each
//! may do is decided by the store at the commit (`AdminStore`), so a role
//! taken away a moment ago is seen. Removing any message is the ordinary
//! `DELETE /v1/rooms/{id}/messages/{message_id}`: there a server admin
//! acts as owner and a moderator as admin.

use axum::extract::State;
use axum::Json;
use chat_shared::admin::{Account, AuditAction, AuditEntry, NewAudit, Report, ServerRole};
use chat_shared::model::{AuditId, ReportId, Role, RoomId, UserId};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ErrorBody};
use crate::extract::{AppJson, AppPath, AppQuery, AuthUser};
use crate::state::AppState;
use crate::validate;

/// Most entries a page returns, and the default.
const MAX_PAGE: u32 = 100;

/// The admin routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(accounts))
        .routes(routes!(set_server_role))
        .routes(routes!(deactivate))
        .routes(routes!(reactivate))
        .routes(routes!(reports))
        .routes(routes!(resolve))
        .routes(routes!(audit))
}

/// `403 not_staff` unless the caller is an active server admin or
/// moderator; their role otherwise.
async fn staff(state: &AppState, me: &AuthUser) -> Result<ServerRole, ApiError> {
    let account = state.store.account(me.id).await?;
    account
        .filter(|a| a.deactivated_at.is_none())
        .and_then(|a| a.server_role)
        .ok_or_else(|| {
            ApiError::Forbidden(
                "not_staff",
                "only server admins and moderators may do this".into(),
            )
        })
}

/// The store's refusals of an administrative change, in the api's words.
fn refused(e: chat_shared::Error, action: &str) -> ApiError {
    use chat_shared::Error as E;
    match e {
        E::NotFound => ApiError::NotFound("user"),
        E::NotAllowed => ApiError::insufficient_role(action),
        E::Conflict("last_admin") => ApiError::Conflict(
            "last_admin",
            "the server must keep at least one active admin".into(),
        ),
        E::Conflict("unchanged") => {
            ApiError::Conflict("unchanged", "the account is already in that state".into())
        }
        E::Conflict("resolved") => {
            ApiError::Conflict("already_resolved", "the report is already resolved".into())
        }
        other => other.into(),
    }
}

/// A page size: 1 to 100, 50 when absent.
fn page_size(limit: Option<u32>) -> Result<u32, ApiError> {
    match limit {
        None => Ok(50),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::Validation("limit: 1 to 100".into())),
    }
}

/// A page of accounts.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AccountsQuery {
    /// Only accounts whose username or display name contains this (1–64
    /// characters, any case).
    q: Option<String>,
    /// The last username of the page before.
    after: Option<String>,
    /// 1–100 (default 50).
    limit: Option<u32>,
}

/// Accounts by username, with their server role and state (admins and
/// moderators).
#[utoipa::path(get, path = "/v1/admin/users", tag = "admin",
    security(("bearer" = [])),
    params(AccountsQuery),
    responses((status = 200, body = [Account]), (status = 403, description = "`not_staff`", body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn accounts(
    State(state): State<AppState>,
    me: AuthUser,
    AppQuery(query): AppQuery<AccountsQuery>,
) -> Result<Json<Vec<Account>>, ApiError> {
    staff(&state, &me).await?;
    let limit = page_size(query.limit)?;
    let q = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
    if q.is_some_and(|q| q.chars().count() > 64 || q.contains('\0'))
        || query.after.as_deref().is_some_and(|a| a.contains('\0'))
    {
        return Err(ApiError::Validation(
            "q: up to 64 characters, no NUL".into(),
        ));
    }
    let page = state
        .store
        .accounts(q, query.after.as_deref(), limit)
        .await?;
    Ok(Json(page))
}

/// A server role to hold.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetServerRole {
    /// `admin`, `moderator`, or `null` to take the role away.
    role: Option<ServerRole>,
}

/// Grants or takes away a server role (admins only). Refused: a moderator
/// (`insufficient_role`), the last active admin's demotion (`last_admin`),
/// a role they already hold (`unchanged`). Audited.
#[utoipa::path(put, path = "/v1/admin/users/{id}/role", tag = "admin",
    security(("bearer" = [])),
    params(("id" = UserId, Path)),
    request_body = SetServerRole,
    responses(
        (status = 200, body = Account),
        (status = 403, description = "`not_staff`, or `insufficient_role` for a moderator", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`last_admin` or `unchanged`", body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn set_server_role(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath(user): AppPath<UserId>,
    AppJson(req): AppJson<SetServerRole>,
) -> Result<Json<Account>, ApiError> {
    staff(&state, &me).await?;
    let account = state
        .store
        .set_server_role(user, req.role, Some(me.id))
        .await
        .map_err(|e| refused(e, "grant server roles"))?;
    tracing::info!(user_id = %user, by = %me.id, role = ?req.role, "server role changed");
    Ok(Json(account))
}

/// Deactivates an account: it cannot log in or refresh (`403
/// account_deactivated`), and every session ends now, its sockets closed
/// on every gateway. Admins on anyone but themselves, moderators on
/// ordinary accounts. Audited.
#[utoipa::path(post, path = "/v1/admin/users/{id}/deactivate", tag = "admin",
    security(("bearer" = [])),
    params(("id" = UserId, Path)),
    responses(
        (status = 200, body = Account),
        (status = 403, description = "`not_staff`, or `insufficient_role` (a moderator on an admin or moderator)", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`unchanged` (already deactivated) or `last_admin`", body = ErrorBody),
        (status = 422, description = "yourself", body = ErrorBody)))]
async fn deactivate(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath(user): AppPath<UserId>,
) -> Result<Json<Account>, ApiError> {
    staff(&state, &me).await?;
    let account = state
        .store
        .set_deactivated(user, true, me.id)
        .await
        .map_err(|e| refused(e, "deactivate this account"))?;
    // Committed first, so a refresh between the two is refused by the
    // flag; then every session ends and every gateway closes its sockets.
    state.end_sessions(user, None).await?;
    tracing::info!(user_id = %user, by = %me.id, "account deactivated");
    Ok(Json(account))
}

/// Reactivates an account: it may log in again. The same ranks as
/// deactivation. Audited.
#[utoipa::path(post, path = "/v1/admin/users/{id}/reactivate", tag = "admin",
    security(("bearer" = [])),
    params(("id" = UserId, Path)),
    responses(
        (status = 200, body = Account),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`unchanged`: it is active", body = ErrorBody)))]
async fn reactivate(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath(user): AppPath<UserId>,
) -> Result<Json<Account>, ApiError> {
    staff(&state, &me).await?;
    let account = state
        .store
        .set_deactivated(user, false, me.id)
        .await
        .map_err(|e| refused(e, "reactivate this account"))?;
    tracing::info!(user_id = %user, by = %me.id, "account reactivated");
    Ok(Json(account))
}

/// Which reports.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ReportsQuery {
    /// `open` (default) or `resolved`.
    state: Option<String>,
    /// The last report id of the page before.
    before: Option<ReportId>,
    /// 1–100 (default 50).
    limit: Option<u32>,
}

/// The report queue, newest first (admins and moderators).
#[utoipa::path(get, path = "/v1/admin/reports", tag = "admin",
    security(("bearer" = [])),
    params(ReportsQuery),
    responses((status = 200, body = [Report]), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn reports(
    State(state): State<AppState>,
    me: AuthUser,
    AppQuery(query): AppQuery<ReportsQuery>,
) -> Result<Json<Vec<Report>>, ApiError> {
    staff(&state, &me).await?;
    let resolved = match query.state.as_deref() {
        None | Some("open") => false,
        Some("resolved") => true,
        Some(_) => return Err(ApiError::Validation("state: open or resolved".into())),
    };
    let limit = page_size(query.limit)?;
    Ok(Json(
        state.store.reports(resolved, query.before, limit).await?,
    ))
}

/// How a report was dealt with.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Resolve {
    /// 1–512 characters.
    note: String,
}

/// Resolves an open report with a note (admins and moderators). Audited.
#[utoipa::path(post, path = "/v1/admin/reports/{id}/resolve", tag = "admin",
    security(("bearer" = [])),
    params(("id" = ReportId, Path)),
    request_body = Resolve,
    responses(
        (status = 200, body = Report),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`already_resolved`", body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn resolve(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath(id): AppPath<ReportId>,
    AppJson(req): AppJson<Resolve>,
) -> Result<Json<Report>, ApiError> {
    staff(&state, &me).await?;
    let note = validate::text("note", &req.note, 1, 512)?;
    let report = state
        .store
        .resolve_report(id, me.id, note)
        .await
        .map_err(|e| match e {
            chat_shared::Error::NotFound => ApiError::NotFound("report"),
            other => refused(other, "resolve reports"),
        })?;
    Ok(Json(report))
}

/// A page of the audit log.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// The last entry id of the page before.
    before: Option<AuditId>,
    /// 1–100 (default 50).
    limit: Option<u32>,
}

/// The audit log of every admin and moderator action, newest first
/// (admins and moderators). Read-only: no route changes it.
#[utoipa::path(get, path = "/v1/admin/audit", tag = "admin",
    security(("bearer" = [])),
    params(AuditQuery),
    responses((status = 200, body = [AuditEntry]), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn audit(
    State(state): State<AppState>,
    me: AuthUser,
    AppQuery(query): AppQuery<AuditQuery>,
) -> Result<Json<Vec<AuditEntry>>, ApiError> {
    staff(&state, &me).await?;
    let limit = page_size(query.limit)?;
    Ok(Json(state.store.audit_log(query.before, limit).await?))
}

/// Records an act in a room that only the caller's server role allowed:
/// `member` (their role as a member, read before the act) is below
/// `needed`. The store commits room edits, role changes and deletions
/// without an audit (the api ranks them), so this entry follows the commit
/// rather than sharing its transaction; a failure to write it is logged.
pub(crate) async fn audit_server_power(
    state: &AppState,
    me: &AuthUser,
    (room, member, needed): (RoomId, Option<Role>, Role),
    action: AuditAction,
    target_user: Option<UserId>,
    detail: String,
) {
    if member >= Some(needed) {
        return;
    }
    let entry = NewAudit {
        actor: Some(me.id),
        target_user,
        room_id: Some(room),
        target_id: None,
        detail,
    };
    if let Err(e) = state.store.record_audit(action, entry).await {
        tracing::error!(error = %e, ?action, room_id = %room, "cannot audit a moderation");
    }
}

/// Records a kick or a ban that only the caller's server role allowed
/// (their role as a member would not outrank `target`, the user's role
/// before it). The store commits kicks and bans without knowing who may
/// do them (the api decides), so this entry follows the commit rather
/// than sharing its transaction; a failure to write it is logged.
pub(crate) async fn audit_moderation(
    state: &AppState,
    me: &AuthUser,
    room: RoomId,
    user: UserId,
    target: Option<Role>,
    (action, detail): (AuditAction, String),
) {
    let member = match state.store.role(room, me.id).await {
        Ok(member) => member,
        Err(e) => {
            tracing::error!(error = %e, ?action, "cannot audit a moderation");
            return;
        }
    };
    let by_room_role = member >= Some(Role::Admin) && target.is_none_or(|t| Some(t) < member);
    if by_room_role {
        return;
    }
    let entry = NewAudit {
        actor: Some(me.id),
        target_user: Some(user),
        room_id: Some(room),
        target_id: None,
        detail,
    };
    if let Err(e) = state.store.record_audit(action, entry).await {
        tracing::error!(error = %e, ?action, room_id = %room, user_id = %user, "cannot audit a moderation");
    }
}
