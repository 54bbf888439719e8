//! The request id both binaries put on every HTTP response and every log
//! line of a request: the caller's `x-request-id` when it is sane (a load
//! balancer's or a client's), otherwise a new UUID v7, so ids sort by time.

/// The header carrying it, in and out.
pub const HEADER: &str = "x-request-id";

/// Longest incoming id kept; longer ones are replaced.
const MAX_LEN: usize = 128;

/// A new id: a hyphenated UUID v7.
pub fn new() -> String {
    uuid::Uuid::now_v7().hyphenated().to_string()
}

/// The incoming id if it is sane (1 to 128 of `A–Z a–z 0–9 - _ . :`, so it
/// cannot forge or break a log line), otherwise a new one.
pub fn keep_or_new(incoming: Option<&[u8]>) -> String {
    match incoming {
        Some(id) if is_sane(id) => String::from_utf8_lossy(id).into_owned(),
        _ => new(),
    }
}

fn is_sane(id: &[u8]) -> bool {
    (1..=MAX_LEN).contains(&id.len())
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sane_ids_are_kept_and_others_replaced_by_a_uuid_v7() {
        assert_eq!(keep_or_new(Some(b"abc-123_x.y:z")), "abc-123_x.y:z");
        let nginx = "0123456789abcdef0123456789abcdef";
        assert_eq!(keep_or_new(Some(nginx.as_bytes())), nginx);
        for bad in [
            &b""[..],
            b"has space",
            b"new\nline",
            b"quote\"",
            &[b'a'; 129],
        ] {
            let id = keep_or_new(Some(bad));
            assert_ne!(id.as_bytes(), bad);
            assert_eq!(uuid::Uuid::parse_str(&id).unwrap().get_version_num(), 7);
        }
        let fresh = keep_or_new(None);
        assert_eq!(fresh.len(), 36);
        assert_eq!(uuid::Uuid::parse_str(&fresh).unwrap().get_version_num(), 7);
    }
}
