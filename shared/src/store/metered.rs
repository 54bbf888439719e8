//! Timing of every store call, as a wrapper around an adapter: each method
//! of the port is timed under its own name and its database failures
//! counted (`chat_store_query_seconds{op}`, `chat_store_errors_total{op}`).
//! [`connect`](super::connect) wraps the adapter it opens, so every caller
//! is measured and the adapters stay free of metrics. The compiler checks
//! that no method is left out: the wrapper implements the whole port.

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    AdminStore, Appended, AttachmentStore, BlockStore, CallStore, Credentials, DirectSend, DmStore,
    Health, InviteLinkStore, InviteStore, MessageChange, MessageStore, ModerationStore,
    NewAttachment, NewInviteLink, NewMessage, NewRoom, NewUser, Page, ProfileStore, ReadMark,
    RefreshToken, Result, RoomLog, RoomStore, Rotation, SearchPage, SearchStore, Session,
    SessionStore, Standing, Store, StoredAttachment, Submitted, Timeline, Uploaded, UserStore,
};
use crate::admin::{Account, AuditAction, AuditEntry, NewAudit, NewReport, Report, ServerRole};
use crate::calls::{Call, CallEnd, NewCall};
use crate::metrics::store_call;
use crate::model::{
    AttachmentId, AuditId, Ban, BlockedUser, CallId, ConnectionId, EventId, Invite, InviteId,
    InviteLink, LeaveReason, Member, MyRoom, ReportId, Role, Room, RoomEvent, RoomId, SessionId,
    User, UserId,
};
use crate::search::{SearchHit, SearchQuery};

/// An adapter whose every call is timed and counted.
pub(super) struct Metered<S>(pub(super) S);

#[async_trait]
impl<S: UserStore> UserStore for Metered<S> {
    async fn create_user(&self, new: NewUser) -> Result<User> {
        store_call("create_user", self.0.create_user(new)).await
    }

    async fn credentials(&self, username: &str) -> Result<Option<Credentials>> {
        store_call("credentials", self.0.credentials(username)).await
    }

    async fn user(&self, id: UserId) -> Result<Option<User>> {
        store_call("user", self.0.user(id)).await
    }

    async fn search_users(&self, query: &str, limit: u32) -> Result<Vec<User>> {
        store_call("search_users", self.0.search_users(query, limit)).await
    }
}

#[async_trait]
impl<S: SessionStore> SessionStore for Metered<S> {
    async fn create_session(
        &self,
        user: UserId,
        user_agent: Option<String>,
        token: RefreshToken,
    ) -> Result<Session> {
        let call = self.0.create_session(user, user_agent, token);
        store_call("create_session", call).await
    }

    async fn rotate_refresh_token(&self, presented: &[u8], next: RefreshToken) -> Result<Rotation> {
        let call = self.0.rotate_refresh_token(presented, next);
        store_call("rotate_refresh_token", call).await
    }

    async fn session(&self, id: SessionId) -> Result<Option<Session>> {
        store_call("session", self.0.session(id)).await
    }

    async fn active_sessions(&self, user: UserId) -> Result<Vec<Session>> {
        store_call("active_sessions", self.0.active_sessions(user)).await
    }

    async fn revoke_session(&self, user: UserId, id: SessionId) -> Result<bool> {
        store_call("revoke_session", self.0.revoke_session(user, id)).await
    }

    async fn revoke_sessions(
        &self,
        user: UserId,
        except: Option<SessionId>,
    ) -> Result<Vec<SessionId>> {
        store_call("revoke_sessions", self.0.revoke_sessions(user, except)).await
    }
}

#[async_trait]
impl<S: RoomStore> RoomStore for Metered<S> {
    async fn create_room(&self, new: NewRoom) -> Result<(Room, RoomEvent)> {
        store_call("create_room", self.0.create_room(new)).await
    }

    async fn room(&self, id: RoomId) -> Result<Option<Room>> {
        store_call("room", self.0.room(id)).await
    }

    async fn update_room(
        &self,
        id: RoomId,
        by: UserId,
        name: String,
        topic: String,
    ) -> Result<(Room, Option<RoomEvent>)> {
        store_call("update_room", self.0.update_room(id, by, name, topic)).await
    }

    async fn delete_room(&self, id: RoomId) -> Result<bool> {
        store_call("delete_room", self.0.delete_room(id)).await
    }

    async fn my_rooms(&self, user: UserId) -> Result<Vec<MyRoom>> {
        store_call("my_rooms", self.0.my_rooms(user)).await
    }

    async fn public_rooms(&self) -> Result<Vec<Room>> {
        store_call("public_rooms", self.0.public_rooms()).await
    }

    async fn direct_room(&self, a: UserId, b: UserId) -> Result<(Room, bool)> {
        store_call("direct_room", self.0.direct_room(a, b)).await
    }

    async fn role(&self, room: RoomId, user: UserId) -> Result<Option<Role>> {
        store_call("role", self.0.role(room, user)).await
    }

    async fn members(&self, room: RoomId) -> Result<Vec<Member>> {
        store_call("members", self.0.members(room)).await
    }

    async fn add_member(
        &self,
        room: RoomId,
        user: UserId,
        by: UserId,
        role: Role,
    ) -> Result<RoomEvent> {
        store_call("add_member", self.0.add_member(room, user, by, role)).await
    }

    async fn remove_member(
        &self,
        room: RoomId,
        user: UserId,
        by: UserId,
        reason: LeaveReason,
    ) -> Result<RoomEvent> {
        let call = self.0.remove_member(room, user, by, reason);
        store_call("remove_member", call).await
    }

    async fn set_role(
        &self,
        room: RoomId,
        user: UserId,
        by: UserId,
        role: Role,
    ) -> Result<Vec<RoomEvent>> {
        store_call("set_role", self.0.set_role(room, user, by, role)).await
    }

    async fn ban(
        &self,
        room: RoomId,
        user: UserId,
        by: UserId,
        reason: String,
    ) -> Result<Option<RoomEvent>> {
        store_call("ban", self.0.ban(room, user, by, reason)).await
    }

    async fn unban(&self, room: RoomId, user: UserId) -> Result<bool> {
        store_call("unban", self.0.unban(room, user)).await
    }

    async fn bans(&self, room: RoomId) -> Result<Vec<Ban>> {
        store_call("bans", self.0.bans(room)).await
    }
}

#[async_trait]
impl<S: RoomLog> RoomLog for Metered<S> {
    async fn append_message(
        &self,
        room: RoomId,
        sender: UserId,
        message: NewMessage,
    ) -> Result<Appended> {
        let call = self.0.append_message(room, sender, message);
        store_call("append_message", call).await
    }

    /// Timed until the append is queued; its commit is timed by the caller
    /// that waits for it (`store_answered`) and by the group commit.
    async fn submit_message(
        &self,
        room: RoomId,
        sender: UserId,
        message: NewMessage,
    ) -> Result<Submitted> {
        let call = self.0.submit_message(room, sender, message);
        store_call("submit_message", call).await
    }

    async fn events(&self, room: RoomId, page: Page) -> Result<Vec<RoomEvent>> {
        store_call("events", self.0.events(room, page)).await
    }

    async fn heads(&self, rooms: &[RoomId]) -> Result<Vec<(RoomId, i64)>> {
        store_call("heads", self.0.heads(rooms)).await
    }

    async fn mark_read(&self, room: RoomId, user: UserId, seq: i64) -> Result<ReadMark> {
        store_call("mark_read", self.0.mark_read(room, user, seq)).await
    }
}

#[async_trait]
impl<S: MessageStore> MessageStore for Metered<S> {
    async fn change_message(
        &self,
        room: RoomId,
        actor: UserId,
        target: EventId,
        client_id: Option<&str>,
        change: MessageChange,
    ) -> Result<Appended> {
        let call = self
            .0
            .change_message(room, actor, target, client_id, change);
        store_call("change_message", call).await
    }

    async fn timeline(&self, room: RoomId, viewer: UserId, page: Page) -> Result<Timeline> {
        store_call("timeline", self.0.timeline(room, viewer, page)).await
    }

    async fn pins(&self, room: RoomId, viewer: UserId) -> Result<Timeline> {
        store_call("pins", self.0.pins(room, viewer)).await
    }
}

#[async_trait]
impl<S: AttachmentStore> AttachmentStore for Metered<S> {
    async fn begin_upload(&self, new: NewAttachment) -> Result<AttachmentId> {
        store_call("begin_upload", self.0.begin_upload(new)).await
    }

    async fn finish_upload(&self, id: AttachmentId, uploaded: Uploaded) -> Result<()> {
        store_call("finish_upload", self.0.finish_upload(id, uploaded)).await
    }

    async fn abandon_upload(&self, id: AttachmentId) -> Result<()> {
        store_call("abandon_upload", self.0.abandon_upload(id)).await
    }

    async fn attachment(&self, id: AttachmentId) -> Result<Option<StoredAttachment>> {
        store_call("attachment", self.0.attachment(id)).await
    }

    async fn expire_attachments(&self, created_before: OffsetDateTime) -> Result<u64> {
        let call = self.0.expire_attachments(created_before);
        store_call("expire_attachments", call).await
    }

    async fn deleted_attachments(&self, limit: u32) -> Result<Vec<AttachmentId>> {
        store_call("deleted_attachments", self.0.deleted_attachments(limit)).await
    }

    async fn forget_attachment(&self, id: AttachmentId) -> Result<()> {
        store_call("forget_attachment", self.0.forget_attachment(id)).await
    }
}

#[async_trait]
impl<S: SearchStore> SearchStore for Metered<S> {
    async fn search_messages(
        &self,
        user: UserId,
        query: &SearchQuery,
        page: SearchPage,
    ) -> Result<Vec<SearchHit>> {
        let call = self.0.search_messages(user, query, page);
        store_call("search_messages", call).await
    }
}

#[async_trait]
impl<S: AdminStore> AdminStore for Metered<S> {
    async fn account(&self, user: UserId) -> Result<Option<Account>> {
        store_call("account", self.0.account(user)).await
    }

    async fn account_by_name(&self, username: &str) -> Result<Option<Account>> {
        store_call("account_by_name", self.0.account_by_name(username)).await
    }

    async fn accounts(
        &self,
        query: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Account>> {
        store_call("accounts", self.0.accounts(query, after, limit)).await
    }

    async fn effective_role(&self, room: RoomId, user: UserId) -> Result<Option<Role>> {
        store_call("effective_role", self.0.effective_role(room, user)).await
    }

    async fn set_server_role(
        &self,
        user: UserId,
        role: Option<ServerRole>,
        by: Option<UserId>,
    ) -> Result<Account> {
        let call = self.0.set_server_role(user, role, by);
        store_call("set_server_role", call).await
    }

    async fn set_deactivated(
        &self,
        user: UserId,
        deactivated: bool,
        by: UserId,
    ) -> Result<Account> {
        let call = self.0.set_deactivated(user, deactivated, by);
        store_call("set_deactivated", call).await
    }

    async fn record_audit(&self, action: AuditAction, entry: NewAudit) -> Result<()> {
        store_call("record_audit", self.0.record_audit(action, entry)).await
    }

    async fn audit_log(&self, before: Option<AuditId>, limit: u32) -> Result<Vec<AuditEntry>> {
        store_call("audit_log", self.0.audit_log(before, limit)).await
    }

    async fn file_report(&self, new: NewReport) -> Result<Report> {
        store_call("file_report", self.0.file_report(new)).await
    }

    async fn reports(
        &self,
        resolved: bool,
        before: Option<ReportId>,
        limit: u32,
    ) -> Result<Vec<Report>> {
        store_call("reports", self.0.reports(resolved, before, limit)).await
    }

    async fn resolve_report(&self, id: ReportId, by: UserId, note: String) -> Result<Report> {
        store_call("resolve_report", self.0.resolve_report(id, by, note)).await
    }
}

#[async_trait]
impl<S: ModerationStore> ModerationStore for Metered<S> {
    async fn mute(
        &self,
        room: RoomId,
        user: UserId,
        by: UserId,
        until: OffsetDateTime,
    ) -> Result<RoomEvent> {
        store_call("mute", self.0.mute(room, user, by, until)).await
    }

    async fn unmute(&self, room: RoomId, user: UserId, by: UserId) -> Result<RoomEvent> {
        store_call("unmute", self.0.unmute(room, user, by)).await
    }

    async fn standing(&self, room: RoomId, user: UserId) -> Result<Option<Standing>> {
        store_call("standing", self.0.standing(room, user)).await
    }

    async fn set_slow_mode(
        &self,
        room: RoomId,
        by: UserId,
        seconds: u32,
    ) -> Result<(Room, Option<RoomEvent>)> {
        store_call("set_slow_mode", self.0.set_slow_mode(room, by, seconds)).await
    }
}

#[async_trait]
impl<S: BlockStore> BlockStore for Metered<S> {
    async fn block(&self, blocker: UserId, blocked: UserId) -> Result<bool> {
        store_call("block", self.0.block(blocker, blocked)).await
    }

    async fn unblock(&self, blocker: UserId, blocked: UserId) -> Result<bool> {
        store_call("unblock", self.0.unblock(blocker, blocked)).await
    }

    async fn blocked_users(&self, blocker: UserId) -> Result<Vec<BlockedUser>> {
        store_call("blocked_users", self.0.blocked_users(blocker)).await
    }

    async fn blockers_of(&self, user: UserId) -> Result<Vec<UserId>> {
        store_call("blockers_of", self.0.blockers_of(user)).await
    }

    async fn blocks(&self, blocker: UserId, blocked: UserId) -> Result<bool> {
        store_call("blocks", self.0.blocks(blocker, blocked)).await
    }

    async fn blocked_between(&self, a: UserId, b: UserId) -> Result<bool> {
        store_call("blocked_between", self.0.blocked_between(a, b)).await
    }

    async fn direct_send(&self, room: RoomId, sender: UserId) -> Result<DirectSend> {
        store_call("direct_send", self.0.direct_send(room, sender)).await
    }
}

#[async_trait]
impl<S: InviteStore> InviteStore for Metered<S> {
    async fn create_invite(
        &self,
        room: RoomId,
        user: UserId,
        by: UserId,
    ) -> Result<(Invite, RoomEvent)> {
        store_call("create_invite", self.0.create_invite(room, user, by)).await
    }

    async fn invites(&self, user: UserId) -> Result<Vec<Invite>> {
        store_call("invites", self.0.invites(user)).await
    }

    async fn room_invites(&self, room: RoomId) -> Result<Vec<Invite>> {
        store_call("room_invites", self.0.room_invites(room)).await
    }

    async fn invite(&self, id: InviteId) -> Result<Option<Invite>> {
        store_call("invite", self.0.invite(id)).await
    }

    async fn accept_invite(&self, id: InviteId, user: UserId) -> Result<RoomEvent> {
        store_call("accept_invite", self.0.accept_invite(id, user)).await
    }

    async fn decline_invite(&self, id: InviteId, user: UserId) -> Result<RoomEvent> {
        store_call("decline_invite", self.0.decline_invite(id, user)).await
    }

    async fn cancel_invite(
        &self,
        room: RoomId,
        user: UserId,
        by: UserId,
    ) -> Result<(InviteId, RoomEvent)> {
        store_call("cancel_invite", self.0.cancel_invite(room, user, by)).await
    }
}

#[async_trait]
impl<S: ProfileStore> ProfileStore for Metered<S> {
    async fn account_credentials(&self, user: UserId) -> Result<Option<Credentials>> {
        store_call("account_credentials", self.0.account_credentials(user)).await
    }

    async fn set_password_hash(&self, user: UserId, hash: &str) -> Result<bool> {
        store_call("set_password_hash", self.0.set_password_hash(user, hash)).await
    }

    async fn set_display_name(&self, user: UserId, name: &str) -> Result<Option<User>> {
        store_call("set_display_name", self.0.set_display_name(user, name)).await
    }

    async fn room_mates(&self, user: UserId) -> Result<Vec<UserId>> {
        store_call("room_mates", self.0.room_mates(user)).await
    }

    async fn memberships(&self, user: UserId) -> Result<Vec<RoomId>> {
        store_call("memberships", self.0.memberships(user)).await
    }

    async fn erase_account(&self, user: UserId) -> Result<Option<User>> {
        store_call("erase_account", self.0.erase_account(user)).await
    }

    async fn avatar(&self, user: UserId) -> Result<Option<String>> {
        store_call("avatar", self.0.avatar(user)).await
    }

    async fn set_avatar(&self, user: UserId, version: Option<&str>) -> Result<Option<User>> {
        store_call("set_avatar", self.0.set_avatar(user, version)).await
    }

    async fn is_erased(&self, user: UserId) -> Result<bool> {
        store_call("is_erased", self.0.is_erased(user)).await
    }
}

#[async_trait]
impl<S: DmStore> DmStore for Metered<S> {
    async fn accept_dm(&self, room: RoomId, user: UserId) -> Result<()> {
        store_call("accept_dm", self.0.accept_dm(room, user)).await
    }

    async fn decline_dm(&self, room: RoomId, user: UserId) -> Result<()> {
        store_call("decline_dm", self.0.decline_dm(room, user)).await
    }

    async fn close_dm(&self, room: RoomId, user: UserId) -> Result<()> {
        store_call("close_dm", self.0.close_dm(room, user)).await
    }
}

#[async_trait]
impl<S: InviteLinkStore> InviteLinkStore for Metered<S> {
    async fn create_invite_link(
        &self,
        room: RoomId,
        by: UserId,
        link: NewInviteLink,
    ) -> Result<InviteLink> {
        store_call(
            "create_invite_link",
            self.0.create_invite_link(room, by, link),
        )
        .await
    }

    async fn invite_links(&self, room: RoomId) -> Result<Vec<InviteLink>> {
        store_call("invite_links", self.0.invite_links(room)).await
    }

    async fn revoke_invite_link(&self, room: RoomId, code: &str) -> Result<bool> {
        store_call("revoke_invite_link", self.0.revoke_invite_link(room, code)).await
    }

    async fn join_by_link(&self, code: &str, user: UserId) -> Result<RoomEvent> {
        store_call("join_by_link", self.0.join_by_link(code, user)).await
    }
}

#[async_trait]
impl<S: CallStore> CallStore for Metered<S> {
    async fn place_call(&self, call: NewCall) -> Result<(Call, Vec<RoomEvent>)> {
        store_call("place_call", self.0.place_call(call)).await
    }

    async fn accept_call(
        &self,
        id: CallId,
        user: UserId,
        session: ConnectionId,
        gateway: Uuid,
    ) -> Result<Call> {
        let call = self.0.accept_call(id, user, session, gateway);
        store_call("accept_call", call).await
    }

    async fn end_call(&self, id: CallId, end: CallEnd) -> Result<(Call, RoomEvent)> {
        store_call("end_call", self.0.end_call(id, end)).await
    }

    async fn call(&self, id: CallId) -> Result<Option<Call>> {
        store_call("call", self.0.call(id)).await
    }

    async fn active_calls(&self, user: UserId) -> Result<Vec<Call>> {
        store_call("active_calls", self.0.active_calls(user)).await
    }

    async fn connection_closed(
        &self,
        user: UserId,
        session: ConnectionId,
    ) -> Result<Vec<(Call, RoomEvent)>> {
        let call = self.0.connection_closed(user, session);
        store_call("connection_closed", call).await
    }

    async fn gateway_alive(&self, gateway: Uuid) -> Result<()> {
        store_call("gateway_alive", self.0.gateway_alive(gateway)).await
    }

    async fn gateway_stopped(&self, gateway: Uuid) -> Result<()> {
        store_call("gateway_stopped", self.0.gateway_stopped(gateway)).await
    }

    async fn sweep_calls(
        &self,
        ring_timeout: std::time::Duration,
        lease: std::time::Duration,
    ) -> Result<Vec<(Call, RoomEvent)>> {
        let call = self.0.sweep_calls(ring_timeout, lease);
        store_call("sweep_calls", call).await
    }
}

#[async_trait]
impl<S: Store> Store for Metered<S> {
    async fn health(&self) -> Result<Health> {
        store_call("health", self.0.health()).await
    }
}
