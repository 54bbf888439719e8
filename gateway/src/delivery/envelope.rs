//! A bus message as the hub routes it: what it is, read once when it
//! arrives (or known without reading when this gateway made it), and its
//! bytes, which go to clients untouched.
//!
//! Routing by a typed [`Kind`] rather than by `type` strings keeps every
//! rule of what goes where in one `match`, and reading a message once
//! means an event's seq, type and commit time are never parsed again on
//! its way to a thousand sockets.

use bytes::Bytes;
use chat_shared::bus::{SessionEnded, Topic};
use chat_shared::model::{ConnectionId, RoomEvent, RoomId, SessionId, UserId};
use serde::Deserialize;
use time::OffsetDateTime;

use super::presence::PresenceMessage;

/// The type of a frame written to a client, as the metrics count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameKind {
    // Room events first: they have a commit time.
    Message,
    MemberJoined,
    MemberLeft,
    RoleChanged,
    RoomUpdated,
    // Then every other server frame.
    Hello,
    Ack,
    Error,
    Synced,
    Typing,
    Read,
    Presence,
    Call,
    Signal,
    RoomAdded,
    RoomRemoved,
    Pong,
    /// Any other type (a change of a message, say).
    Other,
}

impl FrameKind {
    /// Every kind, in order.
    pub const ALL: [FrameKind; 18] = [
        Self::Message,
        Self::MemberJoined,
        Self::MemberLeft,
        Self::RoleChanged,
        Self::RoomUpdated,
        Self::Hello,
        Self::Ack,
        Self::Error,
        Self::Synced,
        Self::Typing,
        Self::Read,
        Self::Presence,
        Self::Call,
        Self::Signal,
        Self::RoomAdded,
        Self::RoomRemoved,
        Self::Pong,
        Self::Other,
    ];

    /// The kind of a frame whose `type` is `name`.
    pub fn of(name: &str) -> Self {
        Self::ALL
            .into_iter()
            .find(|kind| kind.name() == name)
            .unwrap_or(Self::Other)
    }

    /// Its `type` on the wire (the metrics label).
    pub fn name(self) -> &'static str {
        match self {
            Self::Message => "message",
            Self::MemberJoined => "member_joined",
            Self::MemberLeft => "member_left",
            Self::RoleChanged => "role_changed",
            Self::RoomUpdated => "room_updated",
            Self::Hello => "hello",
            Self::Ack => "ack",
            Self::Error => "error",
            Self::Synced => "synced",
            Self::Typing => "typing",
            Self::Read => "read",
            Self::Presence => "presence",
            Self::Call => "call",
            Self::Signal => "signal",
            Self::RoomAdded => "room_added",
            Self::RoomRemoved => "room_removed",
            Self::Pong => "pong",
            Self::Other => "other",
        }
    }

    /// Whether frames of this kind are room log events with a commit time.
    pub fn is_event(self) -> bool {
        (self as u8) <= Self::RoomUpdated as u8
    }
}

/// What the metrics need of a room event: its type and commit time, known
/// once per event, not once per socket it is written to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EventMeta {
    /// Its type (`Other` for types the metrics do not tell apart).
    pub kind: FrameKind,
    /// When it was committed, if known.
    pub committed: Option<OffsetDateTime>,
}

impl EventMeta {
    /// From an event's `type` and RFC 3339 `ts`.
    pub fn read(kind: &str, ts: Option<&str>) -> Self {
        let kind = FrameKind::of(kind);
        Self {
            kind: if kind.is_event() {
                kind
            } else {
                FrameKind::Other
            },
            committed: ts.and_then(|ts| {
                OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339).ok()
            }),
        }
    }

    /// From an event in hand.
    pub fn of(event: &RoomEvent) -> Self {
        let kind = FrameKind::of(event.body.kind());
        Self {
            kind: if kind.is_event() {
                kind
            } else {
                FrameKind::Other
            },
            committed: Some(event.ts),
        }
    }
}

/// A room log event, as delivered: read once, shared by every recipient.
#[derive(Debug, Clone, PartialEq)]
pub struct LogEvent {
    /// Its place in the room's log.
    pub seq: i64,
    /// The frame clients get.
    pub frame: Bytes,
    /// Its type and commit time.
    pub meta: EventMeta,
    /// For a `member_left`: who left (they get nothing of the room after
    /// it).
    pub left: Option<UserId>,
}

impl LogEvent {
    /// An event in hand, serialised once.
    pub fn of(event: &RoomEvent) -> Self {
        let frame = Bytes::from(serde_json::to_vec(event).expect("events serialise"));
        Self::with_frame(event, frame)
    }

    /// An event in hand and its frame: typed without reading the frame.
    pub fn with_frame(event: &RoomEvent, frame: Bytes) -> Self {
        let left = match &event.body {
            chat_shared::model::EventBody::MemberLeft { user, .. } => Some(*user),
            _ => None,
        };
        Self {
            seq: event.seq,
            frame,
            meta: EventMeta::of(event),
            left,
        }
    }
}

/// A bus message, typed: what routing needs to know of it, and the bytes
/// clients get.
#[derive(Debug, Clone, PartialEq)]
pub enum Envelope {
    /// A room log event, to be delivered in seq order.
    Event(LogEvent),
    /// A room frame with no place in the log (typing, a read marker).
    Ephemeral {
        /// Its type.
        kind: FrameKind,
        /// Who is typing (for typing only: not shown to those who block
        /// them).
        from: Option<UserId>,
        /// The frame.
        frame: Bytes,
    },
    /// What gateways tell each other about presence.
    Presence(PresenceMessage),
    /// To a user: they were added to `room`, by the event at `seq`.
    RoomAdded {
        /// The room.
        room: RoomId,
        /// The room's newest seq when the message was made.
        last_seq: i64,
        /// The event that added them.
        seq: Option<i64>,
        /// The frame.
        frame: Bytes,
    },
    /// To a user: they are no longer in `room`.
    RoomRemoved {
        /// The room.
        room: RoomId,
    },
    /// To a user: one of their login sessions ended.
    SessionEnded {
        /// The login session.
        session: SessionId,
    },
    /// To a user: they blocked `user` (or no longer do), from one of
    /// their sessions; their clients get the frame too.
    BlockChanged {
        /// Whom.
        user: UserId,
        /// Blocked now?
        blocked: bool,
        /// The frame.
        frame: Bytes,
    },
    /// To a user: `blocker` now blocks them (or no longer does).
    Blocked {
        /// Who.
        blocker: UserId,
        /// Blocks them now?
        blocked: bool,
    },
    /// Any other frame for a user (a call, a signal).
    ToUser {
        /// Its type.
        kind: FrameKind,
        /// The room it is about, if it names one.
        room: Option<RoomId>,
        /// The one connection of the user it is for (a call's signal), or
        /// `None` for all of them.
        to_session: Option<ConnectionId>,
        /// The frame.
        frame: Bytes,
    },
}

/// The fields of a bus message that routing reads; the rest stays in the
/// bytes.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    seq: Option<i64>,
    #[serde(borrow)]
    ts: Option<std::borrow::Cow<'a, str>>,
    user: Option<UserId>,
    room_id: Option<RoomId>,
    room: Option<RoomRef>,
    session_id: Option<SessionId>,
    blocker: Option<UserId>,
    user_id: Option<UserId>,
    blocked: Option<bool>,
    to_session: Option<ConnectionId>,
}

#[derive(Deserialize)]
struct RoomRef {
    id: RoomId,
    #[serde(default)]
    last_seq: i64,
}

impl Envelope {
    /// A message from the bus on `topic`, read once; `None` if it is not
    /// one this gateway understands.
    pub fn read(topic: Topic, frame: Bytes) -> Option<Self> {
        let head: Head = serde_json::from_slice(&frame).ok()?;
        let name = head.kind.as_ref();
        if name.starts_with("presence_") || name == "gateway_alive" {
            return serde_json::from_slice(&frame).ok().map(Self::Presence);
        }
        Some(match topic {
            // A read marker's seq is that of the event read, not a place in
            // the log.
            Topic::Room(_) => match head.seq {
                Some(seq) if name != "read" => Self::Event(LogEvent {
                    seq,
                    meta: EventMeta::read(name, head.ts.as_deref()),
                    left: head.user.filter(|_| name == "member_left"),
                    frame,
                }),
                _ => Self::Ephemeral {
                    kind: FrameKind::of(name),
                    from: head.user_id.filter(|_| name == "typing"),
                    frame,
                },
            },
            Topic::User(_) => match (name, head.room, head.room_id, head.session_id) {
                (SessionEnded::TYPE, _, _, Some(session)) => Self::SessionEnded { session },
                ("block_changed", _, _, _) if head.user_id.is_some() && head.blocked.is_some() => {
                    Self::BlockChanged {
                        user: head.user_id?,
                        blocked: head.blocked?,
                        frame,
                    }
                }
                ("blocked_by" | "unblocked_by", _, _, _) if head.blocker.is_some() => {
                    Self::Blocked {
                        blocker: head.blocker?,
                        blocked: name == "blocked_by",
                    }
                }
                ("room_added", Some(room), _, _) => Self::RoomAdded {
                    room: room.id,
                    last_seq: room.last_seq,
                    seq: head.seq,
                    frame,
                },
                ("room_removed", _, Some(room), _) => Self::RoomRemoved { room },
                (name, room, room_id, _) => Self::ToUser {
                    kind: FrameKind::of(name),
                    room: room_id.or(room.map(|room| room.id)),
                    to_session: head.to_session,
                    frame,
                },
            },
            Topic::Presence => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_shared::bus::BlockNotice;

    fn room() -> RoomId {
        RoomId(uuid::Uuid::new_v4())
    }

    fn read(topic: Topic, json: &str) -> Option<Envelope> {
        Envelope::read(topic, Bytes::from(json.to_owned()))
    }

    #[test]
    fn room_events_are_typed_with_their_seq_and_commit_time() {
        let kind = read(
            Topic::Room(room()),
            r#"{"room_id":"00000000-0000-0000-0000-000000000001","seq":3,"ts":"2024-01-01T00:00:00.5Z","type":"message","body":"{\"type\":\"x\"}"}"#,
        );
        let Some(Envelope::Event(event)) = kind else {
            panic!("an event: {kind:?}");
        };
        assert_eq!((event.seq, event.meta.kind), (3, FrameKind::Message));
        assert_eq!(event.left, None);
        assert!(event.meta.committed.is_some());
    }

    #[test]
    fn a_member_left_names_who_left() {
        let user = UserId(uuid::Uuid::new_v4());
        let json = format!(r#"{{"type":"member_left","seq":9,"user":"{}"}}"#, user.0);
        let kind = read(Topic::Room(room()), &json);
        assert!(matches!(kind, Some(Envelope::Event(e)) if e.seq == 9 && e.left == Some(user)));
    }

    #[test]
    fn read_markers_and_typing_have_no_place_in_the_log() {
        let kind = |json: &str| match read(Topic::Room(room()), json) {
            Some(Envelope::Ephemeral { kind, .. }) => Some(kind),
            _ => None,
        };
        assert_eq!(kind(r#"{"type":"read","seq":4}"#), Some(FrameKind::Read));
        assert_eq!(kind(r#"{"type":"typing"}"#), Some(FrameKind::Typing));
        let typist = UserId(uuid::Uuid::new_v4());
        let json = format!(
            r#"{{"type":"typing","room_id":"{}","user_id":"{}"}}"#,
            room().0,
            typist.0
        );
        assert!(matches!(
            read(Topic::Room(room()), &json),
            Some(Envelope::Ephemeral { from: Some(from), .. }) if from == typist
        ));
    }

    #[test]
    fn user_messages_are_told_apart() {
        let user = Topic::User(UserId(uuid::Uuid::new_v4()));
        let id = room();
        let json = format!(
            r#"{{"type":"room_added","room":{{"id":"{}","last_seq":12}},"seq":11}}"#,
            id.0
        );
        assert!(matches!(
            read(user, &json),
            Some(Envelope::RoomAdded { room, last_seq: 12, seq: Some(11), .. }) if room == id
        ));
        let json = format!(r#"{{"type":"room_removed","room_id":"{}"}}"#, id.0);
        assert_eq!(read(user, &json), Some(Envelope::RoomRemoved { room: id }));
        let session = SessionId(uuid::Uuid::new_v4());
        let ended = SessionEnded {
            session_id: session,
        }
        .to_bytes();
        assert_eq!(
            Envelope::read(user, ended),
            Some(Envelope::SessionEnded { session })
        );
        let blocker = UserId(uuid::Uuid::new_v4());
        let json = format!(
            r#"{{"type":"block_changed","user_id":"{}","blocked":true}}"#,
            blocker.0
        );
        assert!(matches!(
            read(user, &json),
            Some(Envelope::BlockChanged { user, blocked: true, .. }) if user == blocker
        ));
        for (notice, blocked) in [
            (BlockNotice::BlockedBy { blocker }, true),
            (BlockNotice::UnblockedBy { blocker }, false),
        ] {
            assert_eq!(
                Envelope::read(user, notice.to_bytes()),
                Some(Envelope::Blocked { blocker, blocked })
            );
        }
        assert!(matches!(
            read(user, r#"{"type":"signal","from":"x"}"#),
            Some(Envelope::ToUser {
                kind: FrameKind::Signal,
                room: None,
                to_session: None,
                ..
            })
        ));
        let to = ConnectionId::new();
        let json = format!(r#"{{"type":"signal","to_session":"{}"}}"#, to.0);
        assert!(matches!(
            read(user, &json),
            Some(Envelope::ToUser {
                kind: FrameKind::Signal,
                to_session: Some(session),
                ..
            }) if session == to
        ));
    }

    #[test]
    fn presence_is_read_whole_and_garbage_is_refused() {
        let gateway = uuid::Uuid::new_v4();
        let json = format!(r#"{{"type":"gateway_alive","gateway":"{gateway}"}}"#);
        assert_eq!(
            read(Topic::Presence, &json),
            Some(Envelope::Presence(PresenceMessage::GatewayAlive {
                gateway
            }))
        );
        assert_eq!(read(Topic::Room(room()), "not json"), None);
        assert_eq!(read(Topic::Room(room()), r#"{"seq":1}"#), None);
    }

    #[test]
    fn event_kinds_come_first_and_names_round_trip() {
        for kind in FrameKind::ALL {
            assert_eq!(FrameKind::of(kind.name()), kind);
        }
        assert!(FrameKind::RoomUpdated.is_event() && !FrameKind::Hello.is_event());
        assert_eq!(FrameKind::of("message_edited"), FrameKind::Other);
    }
}
