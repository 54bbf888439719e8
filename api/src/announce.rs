//! Telling the gateways what the api changed. Every room event the api
//! commits is published on the room's topic, so members see joins, leaves
//! and edits live; a user added to or removed from a room is also told on
//! their own topic, so their gateways start or stop delivering it at once.
//! Best effort, after the commit: a lost announcement is repaired by the
//! gateways from the store. A login session that ends is announced on its
//! user's topic too, so every gateway closes its sockets; one that missed
//! it closes them at the next `auth` (or at the token's expiry), since it
//! checks the session again there.

use bytes::Bytes;
use chat_shared::bus::{SessionEnded, Topic};
use chat_shared::model::{EventBody, Invite, InviteId, RoomEvent, RoomId, SessionId, UserId};
use chat_shared::protocol::ServerFrame;

use crate::state::AppState;

impl AppState {
    /// Publishes a committed event, and for a join or a leave tells the
    /// user concerned.
    pub(crate) async fn announce(&self, event: &RoomEvent) {
        let frame = serde_json::to_vec(event).expect("events serialise");
        // Within the request's trace: the gateways' deliveries continue it.
        self.publisher
            .publish_traced(Topic::Room(event.room_id), Bytes::from(frame));
        match event.body {
            EventBody::MemberJoined { user } => match self.store.room(event.room_id).await {
                Ok(Some(room)) => {
                    let frame = ServerFrame::RoomAdded {
                        room,
                        seq: event.seq,
                    };
                    self.tell(user, &frame);
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "cannot announce a join"),
            },
            EventBody::MemberLeft { user, .. } => self.announce_removed(user, event.room_id),
            _ => {}
        }
    }

    /// Publishes several events in order.
    pub(crate) async fn announce_all(&self, events: &[RoomEvent]) {
        for event in events {
            self.announce(event).await;
        }
    }

    /// Tells `user` they have `room` now, its events from `seq` on.
    pub(crate) fn announce_added(&self, user: UserId, room: &chat_shared::model::Room, seq: i64) {
        let frame = ServerFrame::RoomAdded {
            room: room.clone(),
            seq,
        };
        self.tell(user, &frame);
    }

    /// Tells the invitee of a new invitation, on every gateway.
    pub(crate) fn announce_invite(&self, invite: &Invite) {
        self.tell(
            invite.user_id,
            &ServerFrame::Invite {
                invite: Box::new(invite.clone()),
            },
        );
    }

    /// Tells `user` that their invitation `id` is gone (accepted, declined
    /// or withdrawn), so their other sessions drop it too.
    pub(crate) fn announce_invite_removed(&self, user: UserId, id: InviteId) {
        self.tell(user, &ServerFrame::InviteRemoved { invite_id: id });
    }

    /// Tells `user` that `room` is gone for them.
    pub(crate) fn announce_removed(&self, user: UserId, room: RoomId) {
        self.tell(user, &ServerFrame::RoomRemoved { room_id: room });
    }

    /// Tells every gateway that `user`'s login session `session` has ended.
    pub(crate) fn announce_session_ended(&self, user: UserId, session: SessionId) {
        self.publisher.publish(
            Topic::User(user),
            SessionEnded {
                session_id: session,
            }
            .to_bytes(),
        );
    }

    /// Ends every live session of `user` but `except` (all when `None`)
    /// and tells every gateway to close their sockets.
    pub(crate) async fn end_sessions(
        &self,
        user: UserId,
        except: Option<SessionId>,
    ) -> Result<(), chat_shared::Error> {
        for session in self.store.revoke_sessions(user, except).await? {
            self.announce_session_ended(user, session);
        }
        Ok(())
    }

    pub(crate) fn tell(&self, user: UserId, frame: &ServerFrame) {
        self.publisher
            .publish(Topic::User(user), Bytes::from(frame.to_json()));
    }
}
