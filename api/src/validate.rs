//! Field rules for request bodies. Each check returns the cleaned value or
//! a 422 naming the field, before anything touches the store.

use chat_shared::model::AttachmentId;

use crate::error::ApiError;

/// Longest password accepted, in bytes (argon2 cost does not depend on it,
/// but nobody needs more, and it bounds the request).
pub const MAX_PASSWORD_BYTES: usize = 256;

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::Validation(message.into())
}

/// 3–32 characters of ASCII letters, digits, `_`, `.` and `-`, starting
/// with a letter or digit.
pub fn username(name: &str) -> Result<(), ApiError> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    let ok_start = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    if !(3..=32).contains(&name.len()) || !ok_chars || !ok_start {
        return Err(invalid(
            "username: 3 to 32 letters, digits, '_', '.' or '-', starting with a letter or digit",
        ));
    }
    Ok(())
}

/// 8 to [`MAX_PASSWORD_BYTES`] bytes.
pub fn password(password: &str) -> Result<(), ApiError> {
    if password.chars().count() < 8 || password.len() > MAX_PASSWORD_BYTES {
        return Err(invalid(format!(
            "password: at least 8 characters and at most {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    Ok(())
}

/// Trimmed text of `min..=max` characters with no control characters.
pub fn text(field: &str, value: &str, min: usize, max: usize) -> Result<String, ApiError> {
    let value = value.trim();
    let len = value.chars().count();
    if len < min || len > max {
        return Err(invalid(format!("{field}: {min} to {max} characters")));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(format!(
            "{field}: control characters are not allowed"
        )));
    }
    Ok(value.to_owned())
}

/// A shown name: 1–64 characters, each one that shows or a plain space:
/// no control, bidirectional, zero-width or line-separator characters
/// (they let one name pass for another: "\u{202E}nimda" shows as
/// "admin"). The zero-width joiner and the emoji variation selector are
/// kept after a non-ASCII character, where emoji sequences need them.
pub fn display_name(name: &str) -> Result<String, ApiError> {
    let name = text("display_name", name, 1, 64)?;
    let mut previous = None;
    for c in name.chars() {
        let emoji_glue =
            matches!(c, '\u{200D}' | '\u{FE0F}') && previous.is_some_and(|p: char| !p.is_ascii());
        if !(c == ' ' || chat_shared::model::is_visible(c) || emoji_glue) {
            return Err(invalid(format!(
                "display_name: {:?} is not allowed (control, bidirectional, zero-width and line-separator characters are refused)",
                c
            )));
        }
        previous = Some(c);
    }
    if !name.chars().any(chat_shared::model::is_visible) {
        return Err(invalid("display_name: must show at least one character"));
    }
    Ok(name)
}

/// The username a valid display name would pass for, if it has a
/// username's shape (the store compares usernames case-insensitively; a
/// display name's emoji glue only follows non-ASCII, which no username has).
pub fn username_lookalike(display_name: &str) -> Option<&str> {
    username(display_name).is_ok().then_some(display_name)
}

/// A room name: 1–64 characters.
pub fn room_name(name: &str) -> Result<String, ApiError> {
    text("name", name, 1, 64)
}

/// A room topic: up to 512 characters.
pub fn topic(topic: &str) -> Result<String, ApiError> {
    text("topic", topic, 0, 512)
}

/// A client's idempotency key (the rule the gateway applies too).
pub fn client_id(id: &str) -> Result<(), ApiError> {
    chat_shared::model::check_client_id(id).map_err(invalid)
}

/// A message text (the rule the gateway applies too).
pub fn message_body(body: &str, max: usize) -> Result<(), ApiError> {
    chat_shared::model::check_message_body(body, max).map_err(invalid)
}

/// A message to send: its text (which may be empty when it carries files)
/// and its attachments.
pub fn message_content(
    body: &str,
    attachments: &[AttachmentId],
    max: usize,
) -> Result<(), ApiError> {
    chat_shared::model::check_message_content(body, attachments, max).map_err(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_refuse_what_hides_or_reorders_text() {
        for ok in ["Bob", "Anna Lee", "Zoë", "Anna ❤️", "👩‍💻 dev", "李小龙"] {
            assert!(display_name(ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "\u{202E}nimda",
            "bo\u{200B}b",
            "bob\u{2028}admin",
            "a\u{2066}b",
            "\u{200D}bob",
            "bob\u{FE0F}",
            "tab\there",
            "\u{200B}\u{200B}",
        ] {
            assert!(display_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(username_lookalike("Bob"), Some("Bob"));
        assert_eq!(username_lookalike("Anna Lee"), None);
    }

    #[test]
    fn usernames() {
        for ok in ["bob", "alice_1", "a.b-c", "X99"] {
            assert!(username(ok).is_ok(), "{ok}");
        }
        for bad in ["ab", "_bob", "bob smith", "böb", &"a".repeat(33), ""] {
            assert!(username(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn text_is_trimmed_and_bounded() {
        assert_eq!(room_name("  lobby ").unwrap(), "lobby");
        assert!(room_name("   ").is_err());
        assert!(room_name("a\u{0}b").is_err());
        assert!(topic(&"x".repeat(513)).is_err());
    }

    #[test]
    fn message_bodies() {
        assert!(message_body("hi", 10).is_ok());
        assert!(message_body(" \n", 10).is_err());
        assert!(message_body("a\0b", 10).is_err());
        assert!(message_body(&"é".repeat(11), 10).is_err());
        assert!(message_body(&"é".repeat(10), 10).is_ok());
    }
}
