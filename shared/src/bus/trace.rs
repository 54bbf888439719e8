//! The trace context riding on a bus message: an optional `traceparent`
//! field (W3C, version `00`) appended as the last member of the published
//! JSON object, beside — never inside — the event.
//!
//! `{"type":"message",…,"seq":7,"traceparent":"00-<trace>-<span>-01"}`
//!
//! It is added only by [`Publisher::publish_traced`](super::Publisher) and
//! only while traces are on, and every receiver takes it off before the
//! bytes go anywhere else ([`detach`]), so the stored event and the frames
//! clients get never carry it. A message without it (older publishers,
//! traces off) simply has no parent. Older gateways ignore the unknown
//! member when routing. Being the last member at a fixed length, it is
//! found and removed without parsing the message.

use bytes::{Bytes, BytesMut};

/// What precedes the value.
const KEY: &[u8] = b",\"traceparent\":\"";
/// `00-` + 32 hex + `-` + 16 hex + `-` + 2 hex.
const VALUE_LEN: usize = 55;
/// The whole appended member with the closing `"}`.
const SUFFIX_LEN: usize = KEY.len() + VALUE_LEN + 2;

/// `payload` (a JSON object) with `traceparent` as its last member;
/// `payload` unchanged if either is not what this expects.
pub fn attach(payload: Bytes, traceparent: &str) -> Bytes {
    let object =
        payload.len() > 2 && payload.first() == Some(&b'{') && payload.last() == Some(&b'}');
    if !object || !is_traceparent(traceparent.as_bytes()) {
        return payload;
    }
    let mut out = BytesMut::with_capacity(payload.len() + SUFFIX_LEN - 1);
    out.extend_from_slice(&payload[..payload.len() - 1]);
    out.extend_from_slice(KEY);
    out.extend_from_slice(traceparent.as_bytes());
    out.extend_from_slice(b"\"}");
    out.freeze()
}

/// Splits what [`attach`] made back into the original payload and the
/// `traceparent`; any other payload comes back untouched, with `None`.
pub fn detach(payload: Bytes) -> (Bytes, Option<String>) {
    let Some(start) = payload.len().checked_sub(SUFFIX_LEN) else {
        return (payload, None);
    };
    let suffix = &payload[start..];
    let value = &suffix[KEY.len()..KEY.len() + VALUE_LEN];
    if !suffix.starts_with(KEY) || !suffix.ends_with(b"\"}") || !is_traceparent(value) {
        return (payload, None);
    }
    let traceparent = String::from_utf8_lossy(value).into_owned();
    let mut out = BytesMut::with_capacity(start + 1);
    out.extend_from_slice(&payload[..start]);
    out.extend_from_slice(b"}");
    (out.freeze(), Some(traceparent))
}

fn is_traceparent(value: &[u8]) -> bool {
    let hex = |b: &u8| b.is_ascii_digit() || (b'a'..=b'f').contains(b);
    value.len() == VALUE_LEN
        && value.starts_with(b"00-")
        && value[35] == b'-'
        && value[52] == b'-'
        && value[3..35].iter().all(hex)
        && value[36..52].iter().all(hex)
        && value[53..].iter().all(hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_traceparent_rides_as_the_last_member_and_comes_off_again() {
        let event = Bytes::from_static(br#"{"type":"message","seq":7,"body":"hi"}"#);
        let sent = attach(event.clone(), TP);
        let json: serde_json::Value = serde_json::from_slice(&sent).unwrap();
        assert_eq!(json["traceparent"], TP);
        assert_eq!(json["seq"], 7);
        assert_eq!(detach(sent), (event, Some(TP.to_owned())));
    }

    #[test]
    fn messages_without_one_pass_untouched() {
        for payload in [
            &br#"{"type":"typing"}"#[..],
            b"",
            b"{}",
            b"not json",
            // A body that merely mentions it is inside a string.
            br#"{"body":"\",\"traceparent\":\"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\"}"}"#,
        ] {
            let payload = Bytes::copy_from_slice(payload);
            assert_eq!(detach(payload.clone()), (payload.clone(), None));
        }
        let event = Bytes::from_static(br#"{"seq":1}"#);
        assert_eq!(attach(event.clone(), "00-bad"), event);
        assert_eq!(
            attach(Bytes::from_static(b"{}"), TP),
            Bytes::from_static(b"{}")
        );
    }
}
