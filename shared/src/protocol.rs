//! Wire protocol v1 of the WebSocket at `/v1/ws`: JSON text frames tagged by
//! `type`. Data only; `docs/protocol.md` is the normative description.
//!
//! Room events (`message`, the changes of a message, `member_joined`,
//! `member_left`, `role_changed`, `room_updated`, `member_muted`,
//! `member_unmuted`, `slow_mode_changed`, `member_invited`, `invite_declined`,
//! `invite_cancelled`, `call_started`, `call_ended`) travel as
//! [`RoomEvent`](crate::model::RoomEvent) JSON, the same bytes as in a
//! history page; the other server frames are [`ServerFrame`]s.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::calls::Call;
use crate::model::{
    AttachmentId, CallId, ConnectionId, EventId, Invite, InviteId, Room, RoomId, User, UserId,
};

/// The subprotocol a client must offer (and the server echoes).
pub const SUBPROTOCOL: &str = "chat.v1";

/// Prefix of the subprotocol entry carrying the access token
/// (`Sec-WebSocket-Protocol: chat.v1, bearer.<jwt>`).
pub const BEARER_PREFIX: &str = "bearer.";

/// What a client may send.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    /// Post a message; answered by `ack` once it is durable.
    Send {
        /// Where.
        room_id: RoomId,
        /// Idempotency key: resending it returns the original seq.
        client_id: String,
        /// The text.
        body: String,
        /// The message of the room it answers.
        #[serde(default)]
        reply_to: Option<EventId>,
        /// Files uploaded to the room (`POST /v1/rooms/{id}/attachments`)
        /// that it carries; with any, the text may be empty.
        #[serde(default)]
        attachments: Vec<AttachmentId>,
    },
    /// Change the text of one of my messages; answered by `ack`.
    Edit {
        /// Where.
        room_id: RoomId,
        /// Idempotency key of the edit.
        client_id: String,
        /// The message.
        target: EventId,
        /// The new text.
        body: String,
    },
    /// Delete (erase) a message: mine, or any as an owner or admin.
    Delete {
        /// Where.
        room_id: RoomId,
        /// Idempotency key of the deletion.
        client_id: String,
        /// The message.
        target: EventId,
    },
    /// Add my reaction to a message.
    React {
        /// Where.
        room_id: RoomId,
        /// Idempotency key of the reaction.
        client_id: String,
        /// The message.
        target: EventId,
        /// One emoji.
        emoji: String,
    },
    /// Take my reaction back.
    Unreact {
        /// Where.
        room_id: RoomId,
        /// Idempotency key of the removal.
        client_id: String,
        /// The message.
        target: EventId,
        /// The emoji.
        emoji: String,
    },
    /// Pin a message (owners and admins).
    Pin {
        /// Where.
        room_id: RoomId,
        /// Idempotency key of the pin.
        client_id: String,
        /// The message.
        target: EventId,
    },
    /// Unpin a message (owners and admins).
    Unpin {
        /// Where.
        room_id: RoomId,
        /// Idempotency key.
        client_id: String,
        /// The message.
        target: EventId,
    },
    /// Replay each room from just after the given seq, then go live.
    Sync {
        /// Room → the last seq the client has.
        rooms: HashMap<RoomId, i64>,
    },
    /// "I am typing" in a room (ephemeral).
    Typing {
        /// Where.
        room_id: RoomId,
    },
    /// Mark a room read up to `seq` (stored, then broadcast).
    Read {
        /// Where.
        room_id: RoomId,
        /// The newest seq seen.
        seq: i64,
    },
    /// Call the other member of a DM (or private room of two): answered
    /// by a `call` frame (ringing, or already ended: `busy`, `missed`).
    CallPlace {
        /// Where.
        room_id: RoomId,
        /// With video, or voice only.
        #[serde(default)]
        video: bool,
    },
    /// Take a call ringing for me, on this connection (the only one of
    /// mine that takes part from then on).
    CallAccept {
        /// The call.
        call_id: CallId,
    },
    /// Turn down a call ringing for me, on every connection of mine.
    CallDecline {
        /// The call.
        call_id: CallId,
    },
    /// End a call of mine (while it rings: cancel or decline it).
    CallHangup {
        /// The call.
        call_id: CallId,
    },
    /// A WebRTC signalling message for the other party's connection in a
    /// call (every connection of the callee while it rings).
    Signal {
        /// The call.
        call_id: CallId,
        /// Offer, answer or ICE candidate.
        kind: SignalKind,
        /// Opaque to the server (SDP, candidate…), at most
        /// [`MAX_SIGNAL_PAYLOAD_BYTES`] as JSON.
        #[serde(default)]
        payload: serde_json::Value,
    },
    /// A fresh access token, extending the session past the old one's expiry.
    Auth {
        /// The JWT.
        token: String,
    },
    /// Application-level liveness check; answered by `pong`.
    Ping,
}

impl ClientFrame {
    /// Every frame type, as its `type` says it.
    pub const KINDS: [&'static str; 17] = [
        "send",
        "edit",
        "delete",
        "react",
        "unreact",
        "pin",
        "unpin",
        "sync",
        "typing",
        "read",
        "call_place",
        "call_accept",
        "call_decline",
        "call_hangup",
        "signal",
        "auth",
        "ping",
    ];

    /// This frame's `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Send { .. } => "send",
            Self::Edit { .. } => "edit",
            Self::Delete { .. } => "delete",
            Self::React { .. } => "react",
            Self::Unreact { .. } => "unreact",
            Self::Pin { .. } => "pin",
            Self::Unpin { .. } => "unpin",
            Self::Sync { .. } => "sync",
            Self::Typing { .. } => "typing",
            Self::Read { .. } => "read",
            Self::CallPlace { .. } => "call_place",
            Self::CallAccept { .. } => "call_accept",
            Self::CallDecline { .. } => "call_decline",
            Self::CallHangup { .. } => "call_hangup",
            Self::Signal { .. } => "signal",
            Self::Auth { .. } => "auth",
            Self::Ping => "ping",
        }
    }
}

/// The kinds of WebRTC signalling message relayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignalKind {
    /// SDP offer.
    Offer,
    /// SDP answer.
    Answer,
    /// ICE candidate.
    Ice,
}

/// The largest `payload` of a `signal`, as JSON: an SDP with audio, video
/// and a data channel is a few KiB.
pub const MAX_SIGNAL_PAYLOAD_BYTES: usize = 16 * 1024;

/// A room and the head of its log, as listed in `hello`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomHead {
    /// The room.
    pub room_id: RoomId,
    /// Its newest seq when the session started.
    pub last_seq: i64,
}

/// Online or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PresenceStatus {
    /// At least one session is connected somewhere.
    Online,
    /// No session anywhere.
    Offline,
}

/// What the server sends besides room events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// First frame of every session.
    Hello {
        /// This connection's id, unique across gateways: the party of a
        /// call it takes part in (`caller_session`, `callee_session`), and
        /// what to quote to support.
        session_id: ConnectionId,
        /// Who is connected.
        user: User,
        /// My rooms and their heads.
        rooms: Vec<RoomHead>,
        /// How often the server pings; a client that hears nothing for two
        /// intervals should reconnect.
        heartbeat_ms: u64,
    },
    /// A `send` is durable.
    Ack {
        /// The client's key.
        client_id: String,
        /// The room.
        room_id: RoomId,
        /// The message's seq (the original one on a retry).
        seq: i64,
        /// The message's id.
        id: EventId,
        /// When it was committed.
        #[serde(with = "time::serde::rfc3339")]
        ts: OffsetDateTime,
    },
    /// A frame could not be honoured.
    Error {
        /// Stable cause, e.g. `not_member`.
        code: String,
        /// For people.
        message: String,
        /// The `client_id` of the failed `send`, if it was one.
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    /// A `sync` of one room has replayed everything up to `seq`; live
    /// events follow.
    Synced {
        /// The room.
        room_id: RoomId,
        /// The last seq replayed.
        seq: i64,
    },
    /// Someone is typing.
    Typing {
        /// Where.
        room_id: RoomId,
        /// Who.
        user_id: UserId,
    },
    /// Someone's read marker moved.
    Read {
        /// Where.
        room_id: RoomId,
        /// Whose.
        user_id: UserId,
        /// Up to which seq.
        seq: i64,
    },
    /// Someone who shares a room with me came online or went offline.
    Presence {
        /// Who.
        user_id: UserId,
        /// Their status.
        status: PresenceStatus,
    },
    /// A call of mine changed (placed, accepted, ended): sent to every
    /// connection of both parties, and to a connection that opens while a
    /// call rings for its user.
    Call {
        /// The call as it is now (boxed: it would make every frame its
        /// size).
        call: Box<Call>,
    },
    /// A relayed WebRTC signalling message of a call.
    Signal {
        /// The call.
        call_id: CallId,
        /// Sender.
        from_user: UserId,
        /// The connection it is for (the gateways route by it); absent
        /// for a ringing call's caller signalling every connection of the
        /// callee.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to_session: Option<ConnectionId>,
        /// What it is.
        kind: SignalKind,
        /// Opaque payload.
        payload: serde_json::Value,
    },
    /// I was added to a room (joined, invited, or a DM was opened).
    RoomAdded {
        /// The room.
        room: Room,
        /// The seq of the event that added me: delivery starts there.
        seq: i64,
    },
    /// I was removed from a room (left, kicked, banned, or it was deleted).
    RoomRemoved {
        /// The room.
        room_id: RoomId,
    },
    /// I blocked or unblocked `user_id` (from any of my sessions), so each
    /// of my clients collapses or shows their messages again.
    BlockChanged {
        /// Whom.
        user_id: UserId,
        /// Blocked now?
        blocked: bool,
    },
    /// I was invited into a room: it waits for my accept or decline
    /// (`POST /v1/invites/{id}/accept`).
    Invite {
        /// The invitation (boxed: the largest of the frames by far, it
        /// would make every frame its size).
        invite: Box<Invite>,
    },
    /// An invitation of mine is gone: accepted or declined (in any of my
    /// sessions) or withdrawn.
    InviteRemoved {
        /// Which.
        invite_id: InviteId,
    },
    /// Answer to `ping`.
    Pong,
    /// Someone I share a room with (or I myself, from another device)
    /// changed their profile: their display name, say. Sent live to the
    /// sockets of every user sharing a room with them; a client that
    /// missed it reads the user anew at its next load.
    UserUpdated {
        /// The user as they are now (not `user`, which the gateways read
        /// as a user's id on the bus).
        profile: User,
    },
}

impl ServerFrame {
    /// An `error` frame.
    pub fn error(code: &str, message: impl Into<String>, reference: Option<String>) -> Self {
        Self::Error {
            code: code.to_owned(),
            message: message.into(),
            reference,
        }
    }

    /// The frame as JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("server frames serialise")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_frames_parse_by_type() {
        let send: ClientFrame = serde_json::from_str(
            r#"{"type":"send","room_id":"00000000-0000-7000-8000-000000000001","client_id":"c1","body":"hi"}"#,
        )
        .unwrap();
        assert!(matches!(send, ClientFrame::Send { ref body, .. } if body == "hi"));
        let ping: ClientFrame = serde_json::from_str(r#"{"type":"ping"}"#).unwrap();
        assert_eq!(ping, ClientFrame::Ping);
        let sync: ClientFrame = serde_json::from_str(
            r#"{"type":"sync","rooms":{"00000000-0000-7000-8000-000000000001":5}}"#,
        )
        .unwrap();
        assert!(matches!(sync, ClientFrame::Sync { rooms } if rooms.len() == 1));
    }

    #[test]
    fn unknown_types_and_missing_fields_are_rejected() {
        assert!(serde_json::from_str::<ClientFrame>(r#"{"type":"shout"}"#).is_err());
        assert!(serde_json::from_str::<ClientFrame>(r#"{"type":"send","body":"x"}"#).is_err());
        assert!(serde_json::from_str::<ClientFrame>(r#"{"body":"x"}"#).is_err());
    }

    #[test]
    fn server_frames_carry_their_type() {
        let json = ServerFrame::Pong.to_json();
        assert_eq!(json, r#"{"type":"pong"}"#);
        let json = ServerFrame::error("not_member", "no", Some("c1".into())).to_json();
        assert_eq!(
            json,
            r#"{"type":"error","code":"not_member","message":"no","ref":"c1"}"#
        );
    }
}
