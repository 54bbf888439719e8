//! What a gateway counts, as small calls for the places that count it
//! (series names and label values live here and in `chat_shared::metrics`,
//! never at the call sites). Label values come from fixed sets, so a client
//! cannot mint series.

use std::borrow::Cow;
use std::time::Instant;

use chat_shared::metrics::{self, names, scope};
use chat_shared::protocol::ClientFrame;
use serde::Deserialize;

use crate::delivery::envelope::{EventMeta, FrameKind};

/// One open WebSocket session: counted open on creation, held for the
/// session's life, and counted closed (with the code sent, or `abnormal`)
/// when the session decides to close or the guard drops.
pub struct Connection {
    /// Set once the closing code is counted.
    counted: bool,
}

impl Connection {
    /// A session started.
    pub fn opened() -> Self {
        ::metrics::counter!(names::GATEWAY_CONNECTIONS_OPENED).increment(1);
        ::metrics::gauge!(names::GATEWAY_CONNECTIONS).increment(1.0);
        Self { counted: false }
    }

    /// The gateway is closing the session with `code`: counted now, before
    /// the close frame is written, so the count is timely even when that
    /// write waits on a stalled socket.
    pub fn closing(&mut self, code: u16) {
        if self.counted {
            return;
        }
        self.counted = true;
        if code == crate::wire::close::SLOW_CONSUMER {
            ::metrics::counter!(names::GATEWAY_SLOW_CONSUMER_CLOSES).increment(1);
        }
        ::metrics::counter!(names::GATEWAY_CONNECTIONS_CLOSED, "code" => code_label(code))
            .increment(1);
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if !self.counted {
            // No close frame went out: the socket died under the session.
            ::metrics::counter!(names::GATEWAY_CONNECTIONS_CLOSED, "code" => "abnormal")
                .increment(1);
        }
        ::metrics::gauge!(names::GATEWAY_CONNECTIONS).decrement(1.0);
    }
}

fn code_label(code: u16) -> Cow<'static, str> {
    use crate::wire::close::*;
    match code {
        NORMAL => "1000".into(),
        PROTOCOL_ERROR => "1002".into(),
        INVALID_DATA => "1007".into(),
        TOO_BIG => "1009".into(),
        RESTARTING => "1012".into(),
        SLOW_CONSUMER => "1013".into(),
        HEARTBEAT_TIMEOUT => "4000".into(),
        TOKEN_EXPIRED => "4001".into(),
        SESSION_REVOKED => "4002".into(),
        UNAVAILABLE => "4003".into(),
        other => other.to_string().into(),
    }
}

/// A handshake refused over plain HTTP; `reason` is the error code sent.
pub fn handshake_rejected(reason: &'static str) {
    ::metrics::counter!(names::GATEWAY_HANDSHAKE_REJECTIONS, "reason" => reason).increment(1);
}

/// A connection refused because the gateway holds `CHAT_MAX_CONNECTIONS`.
pub fn connection_limited() {
    metrics::rate_limited(scope::CONNECTIONS);
}

/// A send, typing or signal over the user's rate.
pub fn send_limited() {
    metrics::rate_limited(scope::SEND);
}

/// A client frame, or `None` for one that did not parse.
pub fn frame_in(frame: Option<&ClientFrame>) {
    let kind = frame.map_or("invalid", ClientFrame::kind);
    ::metrics::counter!(names::GATEWAY_FRAMES_IN, "type" => kind).increment(1);
}

/// A send acknowledged.
pub fn ack() {
    ::metrics::counter!(names::GATEWAY_ACKS).increment(1);
}

/// A store read made to fill a gap.
pub fn gap_repair() {
    ::metrics::counter!(names::GATEWAY_GAP_REPAIRS).increment(1);
}

/// Times one fan-out; recorded when dropped.
pub struct FanOut(Instant);

impl FanOut {
    /// Starts timing.
    pub fn start() -> Self {
        Self(Instant::now())
    }
}

impl Drop for FanOut {
    fn drop(&mut self) {
        ::metrics::histogram!(names::GATEWAY_FANOUT_SECONDS).record(self.0.elapsed().as_secs_f64());
    }
}

/// A frame of a known type written to a client.
pub fn frame_out(kind: FrameKind) {
    Written::get().frames[kind as usize].increment(1);
}

/// The handles of what every written frame records, looked up once: a
/// lookup hashes the series key, and a busy gateway writes a million
/// frames a second.
struct Written {
    frames: [::metrics::Counter; FrameKind::ALL.len()],
    delivery: ::metrics::Histogram,
}

impl Written {
    fn get() -> &'static Self {
        static WRITTEN: std::sync::LazyLock<Written> = std::sync::LazyLock::new(|| {
            // Handles taken before the recorder is installed would count
            // nowhere, for good.
            metrics::install();
            Written {
                frames: FrameKind::ALL.map(
                    |kind| ::metrics::counter!(names::GATEWAY_FRAMES_OUT, "type" => kind.name()),
                ),
                delivery: ::metrics::histogram!(names::DELIVERY_LATENCY_SECONDS),
            }
        });
        &WRITTEN
    }
}

/// The fields of a written frame that the metrics need.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    ts: Option<Cow<'a, str>>,
}

/// A room event written to a client: counted by type; written `live` (not
/// replayed for a `sync`), it also records its delivery latency, from its
/// commit time to now.
pub fn event_written(event: EventMeta, live: bool) {
    let written = Written::get();
    written.frames[event.kind as usize].increment(1);
    if let (true, Some(committed)) = (live, event.committed) {
        let age = time::OffsetDateTime::now_utc() - committed;
        // Clocks of different hosts may disagree a little.
        written.delivery.record(age.as_seconds_f64().max(0.0));
    }
}

/// Any other text frame written to a client (a reply, a relayed frame),
/// read for its type: counted like [`event_written`] for room events.
pub fn frame_written(text: &[u8], live: bool) {
    let Ok(head) = serde_json::from_slice::<Head>(text) else {
        return frame_out(FrameKind::Other);
    };
    let kind = head.kind.as_deref().unwrap_or_default();
    if FrameKind::of(kind).is_event() {
        return event_written(EventMeta::read(kind, head.ts.as_deref()), live);
    }
    frame_out(FrameKind::of(kind));
}

/// The `/metrics` body.
pub fn render() -> String {
    metrics::render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_frames_are_typed_from_their_json() {
        let event = br#"{"room_id":"r","seq":3,"ts":"2024-01-01T00:00:00.5Z","type":"message","body":"{\"type\":\"x\"}"}"#;
        let head: Head = serde_json::from_slice(event).unwrap();
        assert_eq!(head.kind.as_deref(), Some("message"));
        assert!(EventMeta::read("message", head.ts.as_deref())
            .committed
            .is_some());
        let head: Head = serde_json::from_slice(br#"{"type":"pong"}"#).unwrap();
        assert_eq!(head.kind.as_deref(), Some("pong"));
        assert!(head.ts.is_none());
    }

    #[test]
    fn close_codes_are_labelled_by_number() {
        assert_eq!(code_label(1013), "1013");
        assert_eq!(code_label(4000), "4000");
        assert_eq!(code_label(1234), "1234");
    }
}
