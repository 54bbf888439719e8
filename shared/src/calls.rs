//! One-to-one calls' vocabulary: a call's state and why it ended, the call
//! as both parties' clients are told of it, and the ICE servers handed to
//! them (with TURN credentials in the TURN REST API scheme coturn checks).
//!
//! A call lives in a DM (or a private room of two). The server keeps its
//! state (`calls` in the store), relays its WebRTC signalling between the
//! two connections taking part, and records its start and end in the
//! room's log; media flows peer to peer, or through TURN, never through a
//! gateway. `docs/protocol.md` ("Calls") is the normative description.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::model::{CallId, ConnectionId, RoomId, UserId};

/// Where a call is in its life: ringing → accepted → ended, or ringing →
/// ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallState {
    /// Placed; ringing every connection of the callee.
    Ringing,
    /// Taken by one connection of the callee; media may flow.
    Accepted,
    /// Over (see its [`CallEndReason`]).
    Ended,
}

impl CallState {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ringing => "ringing",
            Self::Accepted => "accepted",
            Self::Ended => "ended",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ringing" => Some(Self::Ringing),
            "accepted" => Some(Self::Accepted),
            "ended" => Some(Self::Ended),
            _ => None,
        }
    }
}

/// Why a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallEndReason {
    /// A party hung up after it was accepted.
    Completed,
    /// The callee declined it (or hung up while it rang).
    Declined,
    /// Nobody answered within the ring timeout, or the callee had no
    /// connection anywhere when it was placed.
    Missed,
    /// The caller hung up (or their connection closed) while it rang.
    Cancelled,
    /// The callee was in another call.
    Busy,
    /// The server ended it: a party's connection or gateway was lost, or
    /// they may no longer call (they left the room, a block).
    Failed,
}

impl CallEndReason {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Declined => "declined",
            Self::Missed => "missed",
            Self::Cancelled => "cancelled",
            Self::Busy => "busy",
            Self::Failed => "failed",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Completed,
            Self::Declined,
            Self::Missed,
            Self::Cancelled,
            Self::Busy,
            Self::Failed,
        ]
        .into_iter()
        .find(|reason| reason.as_str() == s)
    }
}

/// A call, as both parties' connections are told of it (`call` frames) on
/// every change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Call {
    /// Identifier.
    pub id: CallId,
    /// The DM (or private room of two) it belongs to.
    pub room_id: RoomId,
    /// Who placed it.
    pub caller: UserId,
    /// Who is called: the room's other member.
    pub callee: UserId,
    /// With video, or voice only.
    pub video: bool,
    /// Where it is.
    pub state: CallState,
    /// Why it ended, once it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<CallEndReason>,
    /// The caller's connection taking part (its `hello`'s `session_id`).
    pub caller_session: ConnectionId,
    /// The callee's connection that accepted it, once one has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callee_session: Option<ConnectionId>,
    /// When it was placed.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it was accepted.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub accepted_at: Option<OffsetDateTime>,
    /// When it ended.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub ended_at: Option<OffsetDateTime>,
}

impl Call {
    /// Whether `user` is its caller or callee.
    pub fn has_party(&self, user: UserId) -> bool {
        self.caller == user || self.callee == user
    }

    /// The other party than `user`.
    pub fn peer_of(&self, user: UserId) -> UserId {
        if user == self.caller {
            self.callee
        } else {
            self.caller
        }
    }

    /// How long it lasted from its accept, in whole seconds (once ended
    /// after an accept).
    pub fn duration_secs(&self) -> Option<u64> {
        let (accepted, ended) = (self.accepted_at?, self.ended_at?);
        Some(u64::try_from((ended - accepted).whole_seconds()).unwrap_or(0))
    }
}

/// A call to place (see `CallStore::place_call`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewCall {
    /// The DM (or private room of two).
    pub room: RoomId,
    /// Who calls.
    pub caller: UserId,
    /// The caller's connection placing it.
    pub session: ConnectionId,
    /// The gateway holding that connection (its lease keeps the call).
    pub gateway: Uuid,
    /// With video?
    pub video: bool,
}

/// Who or what ends a call (see `CallStore::end_call`); the store decides
/// the [`CallEndReason`] from it and the call's state at the commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallEnd {
    /// A party hangs up: `completed` once accepted; while ringing,
    /// `cancelled` from the caller, `declined` from the callee.
    Hangup(UserId),
    /// The callee declines a ringing call (`call_not_ringing` otherwise).
    Decline(UserId),
    /// The callee had no connection anywhere (`missed`), only while ringing.
    Unreachable,
}

/// One ICE server for `RTCPeerConnection` (`RTCIceServer`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IceServer {
    /// `stun:`, `turn:` or `turns:` URLs.
    pub urls: Vec<String>,
    /// TURN only: `<unix expiry>:<user id>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN only: base64 HMAC-SHA1 of `username` under the shared secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// TURN credentials in the TURN REST API scheme (coturn's
/// `use-auth-secret`): the username is the expiry (Unix seconds) and the
/// user's id, the password the base64 HMAC-SHA1 of the username under the
/// secret shared with the TURN server, which recomputes it; nothing is
/// stored on either side. Returns `(username, credential)`.
pub fn turn_credentials(secret: &[u8], user: UserId, expires: OffsetDateTime) -> (String, String) {
    let username = format!("{}:{}", expires.unix_timestamp(), user);
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(username.as_bytes());
    let credential = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    (username, credential)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turn_credentials_match_the_turn_rest_api_scheme() {
        // The vector: `printf '%s' '1700000000:00000000-0000-7000-8000-000000000001' |
        // openssl dgst -sha1 -hmac north-wind -binary | base64`.
        let user: UserId = "00000000-0000-7000-8000-000000000001".parse().unwrap();
        let expires = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let (username, credential) = turn_credentials(b"north-wind", user, expires);
        assert_eq!(username, "1700000000:00000000-0000-7000-8000-000000000001");
        assert_eq!(credential, TURN_VECTOR);
    }

    const TURN_VECTOR: &str = "tCG8BDQN1xfJJU133w9BrVXwrFM=";

    #[test]
    fn names_round_trip() {
        for state in [CallState::Ringing, CallState::Accepted, CallState::Ended] {
            assert_eq!(CallState::parse(state.as_str()), Some(state));
        }
        for reason in [
            CallEndReason::Completed,
            CallEndReason::Declined,
            CallEndReason::Missed,
            CallEndReason::Cancelled,
            CallEndReason::Busy,
            CallEndReason::Failed,
        ] {
            assert_eq!(CallEndReason::parse(reason.as_str()), Some(reason));
            let json = serde_json::to_string(&reason).unwrap();
            assert_eq!(json, format!("\"{}\"", reason.as_str()));
        }
        assert_eq!(CallEndReason::parse("exploded"), None);
    }
}
