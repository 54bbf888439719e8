//! Server administration's vocabulary: server roles above room roles, the
//! one rule that turns them into a role in a room ([`effective_role`]),
//! accounts as admins see them, reports and the audit log.
//!
//! Every authorisation check in a room (the store's at commit, the api's
//! before it) asks [`effective_role`], so a server admin acts as owner and
//! a moderator as room admin in every room, member or not, and a feature
//! added later inherits that by asking the same question.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::model::{AuditId, EventId, ReportId, Role, RoomId, User, UserId};

/// A role over the whole server, above any room's roles.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ServerRole {
    /// Acts as a room admin in every room; sees reports and the audit
    /// log; deactivates ordinary accounts.
    Moderator,
    /// Acts as owner in every room; also grants and revokes server roles
    /// and deactivates moderators and admins.
    Admin,
}

impl ServerRole {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Moderator => "moderator",
            Self::Admin => "admin",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "moderator" => Some(Self::Moderator),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }

    /// The room role this server role acts as in every room.
    pub fn in_rooms(self) -> Role {
        match self {
            Self::Moderator => Role::Admin,
            Self::Admin => Role::Owner,
        }
    }
}

/// What someone may do in a room: the higher of their role as a member
/// (`room`, `None` if they are not one) and what their server role acts as
/// there. `None`: neither a member nor a server admin or moderator.
pub fn effective_role(room: Option<Role>, server: Option<ServerRole>) -> Option<Role> {
    room.max(server.map(ServerRole::in_rooms))
}

/// Whether `actor` may act on an account holding `target` (deactivate it):
/// admins on anyone, moderators on ordinary accounts only.
pub fn outranks_account(actor: Option<ServerRole>, target: Option<ServerRole>) -> bool {
    match actor {
        Some(ServerRole::Admin) => true,
        Some(ServerRole::Moderator) => target.is_none(),
        None => false,
    }
}

/// An account as admins see it: the user, their server role and whether
/// they may log in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Account {
    /// The user.
    #[serde(flatten)]
    pub user: User,
    /// `admin`, `moderator`, or `null` for an ordinary user.
    pub server_role: Option<ServerRole>,
    /// When the account was deactivated; `null` while it is active.
    #[serde(with = "time::serde::rfc3339::option")]
    pub deactivated_at: Option<OffsetDateTime>,
}

/// What a report is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ReportTarget {
    /// A message of a room.
    Message {
        /// The room.
        room_id: RoomId,
        /// The message's event id.
        event_id: EventId,
    },
    /// A user.
    User {
        /// The user.
        user_id: UserId,
    },
}

/// A report to file.
#[derive(Debug, Clone)]
pub struct NewReport {
    /// Who reports.
    pub reporter: UserId,
    /// What.
    pub target: ReportTarget,
    /// Why (checked by the caller).
    pub reason: String,
}

/// A report in the admin queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Report {
    /// Identifier (time-ordered: the queue's cursor).
    pub id: ReportId,
    /// Who reported it.
    pub reporter: UserId,
    /// What is reported.
    pub target: ReportTarget,
    /// The user concerned: the message's sender, or the reported user.
    pub subject: UserId,
    /// Why.
    pub reason: String,
    /// When it was filed.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// How it was resolved; `null` while open.
    pub resolution: Option<Resolution>,
}

/// How a report was resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Resolution {
    /// Who resolved it.
    pub by: Option<UserId>,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Their note.
    pub note: String,
}

/// An action the audit log records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    /// A server role was granted (`detail`: which).
    GrantRole,
    /// A server role was taken away (`detail`: which).
    RevokeRole,
    /// An account was deactivated.
    Deactivate,
    /// An account was reactivated.
    Reactivate,
    /// A message of someone else was deleted by a server admin or
    /// moderator.
    DeleteMessage,
    /// A member was removed from a room by a server admin or moderator.
    Kick,
    /// A user was banned from a room by a server admin or moderator.
    Ban,
    /// A room was renamed or re-topicked by a server admin or moderator.
    EditRoom,
    /// A member's room role was changed by a server admin (`detail`: the
    /// role).
    SetRoomRole,
    /// A room was deleted by a server admin.
    DeleteRoom,
    /// A report was resolved (`detail`: the note).
    ResolveReport,
}

impl AuditAction {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::GrantRole => "grant_role",
            Self::RevokeRole => "revoke_role",
            Self::Deactivate => "deactivate",
            Self::Reactivate => "reactivate",
            Self::DeleteMessage => "delete_message",
            Self::Kick => "kick",
            Self::Ban => "ban",
            Self::EditRoom => "edit_room",
            Self::SetRoomRole => "set_room_role",
            Self::DeleteRoom => "delete_room",
            Self::ResolveReport => "resolve_report",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::GrantRole,
            Self::RevokeRole,
            Self::Deactivate,
            Self::Reactivate,
            Self::DeleteMessage,
            Self::Kick,
            Self::Ban,
            Self::EditRoom,
            Self::SetRoomRole,
            Self::DeleteRoom,
            Self::ResolveReport,
        ]
        .into_iter()
        .find(|a| a.as_str() == s)
    }
}

/// An action to record.
#[derive(Debug, Clone, Default)]
pub struct NewAudit {
    /// Who acted; `None` for the command line.
    pub actor: Option<UserId>,
    /// The account acted on, if any.
    pub target_user: Option<UserId>,
    /// The room acted in, if any.
    pub room_id: Option<RoomId>,
    /// The message or report acted on, if any.
    pub target_id: Option<uuid::Uuid>,
    /// Free text: the role granted, the note of a resolution.
    pub detail: String,
}

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    /// Identifier (time-ordered: the log's cursor).
    pub id: AuditId,
    /// Who acted; `null` for the command line.
    pub actor: Option<UserId>,
    /// What they did.
    pub action: AuditAction,
    /// The account acted on.
    pub target_user: Option<UserId>,
    /// The room acted in.
    pub room_id: Option<RoomId>,
    /// The message or report acted on.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub target_id: Option<uuid::Uuid>,
    /// The role granted, the note of a resolution.
    pub detail: String,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_role_acts_as_a_room_role_in_every_room() {
        assert_eq!(effective_role(None, None), None);
        assert_eq!(
            effective_role(None, Some(ServerRole::Admin)),
            Some(Role::Owner)
        );
        assert_eq!(
            effective_role(None, Some(ServerRole::Moderator)),
            Some(Role::Admin)
        );
        // The higher of the two wins either way.
        assert_eq!(
            effective_role(Some(Role::Owner), Some(ServerRole::Moderator)),
            Some(Role::Owner)
        );
        assert_eq!(
            effective_role(Some(Role::Member), Some(ServerRole::Moderator)),
            Some(Role::Admin)
        );
        assert_eq!(effective_role(Some(Role::Member), None), Some(Role::Member));
    }

    #[test]
    fn moderators_act_only_on_ordinary_accounts() {
        use ServerRole::*;
        assert!(outranks_account(Some(Admin), Some(Admin)));
        assert!(outranks_account(Some(Moderator), None));
        assert!(!outranks_account(Some(Moderator), Some(Moderator)));
        assert!(!outranks_account(Some(Moderator), Some(Admin)));
        assert!(!outranks_account(None, None));
    }

    #[test]
    fn audit_actions_round_trip_their_stored_names() {
        for a in [
            AuditAction::GrantRole,
            AuditAction::DeleteRoom,
            AuditAction::ResolveReport,
        ] {
            assert_eq!(AuditAction::parse(a.as_str()), Some(a));
        }
    }
}
