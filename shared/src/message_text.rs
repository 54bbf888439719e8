//! What the server reads in what people write: the `@` mentions of a
//! message's text, and whether a reaction is one emoji. The api and the
//! gateway both go through these, so a REST send and a `send` frame mention
//! the same people.

/// The most distinct people one text can mention; later names are text.
pub const MAX_MENTIONS: usize = 50;

/// The most distinct emoji on one message.
pub const MAX_EMOJI_PER_MESSAGE: usize = 20;

/// The most pinned messages of one room.
pub const MAX_PINS_PER_ROOM: i64 = 50;

/// What a text mentions, before the store resolves the names against the
/// room's members at the commit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mentioned {
    /// Lowercased usernames, each once, in the order first written.
    pub names: Vec<String>,
    /// Whether the text says `@room` (honoured for owners and admins only).
    pub room: bool,
}

/// Finds `@username` and `@room` in `text`. An `@` counts only at the start
/// or after a character that cannot be part of a name (so `bob@example.org`
/// mentions nobody), and the name is the longest run of username characters
/// after it, less a trailing `.` or `-` (sentence punctuation: "thanks
/// @bob."). Names outside the username rules (3–32 characters) are text.
pub fn mentions(text: &str) -> Mentioned {
    let mut found = Mentioned::default();
    let mut previous: Option<char> = None;
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        let starts = c == '@' && !previous.is_some_and(is_name_char);
        previous = Some(c);
        if !starts {
            continue;
        }
        let rest = &text[at + 1..];
        let end = rest.find(|c: char| !is_name_char(c)).unwrap_or(rest.len());
        let name = rest[..end].trim_end_matches(['.', '-']);
        if name.eq_ignore_ascii_case("room") {
            found.room = true;
        } else if (3..=32).contains(&name.len())
            && name.starts_with(|c: char| c.is_ascii_alphanumeric())
            && found.names.len() < MAX_MENTIONS
        {
            let name = name.to_ascii_lowercase();
            if !found.names.contains(&name) {
                found.names.push(name);
            }
        }
        // Skip the name: an `@` inside it starts nothing.
        while chars.peek().is_some_and(|(i, _)| *i < at + 1 + end) {
            previous = chars.next().map(|(_, c)| c);
        }
    }
    found
}

/// The characters of a username (see the api's registration rules).
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

/// The emoji `text` is, in its fully qualified form (so "❤" and "❤️" are
/// one reaction), or `None` when it is not exactly one emoji of the
/// Unicode list: no text, no two emoji, no lone skin-tone modifier.
pub fn emoji(text: &str) -> Option<&'static str> {
    emojis::get(text).map(emojis::Emoji::as_str)
}

#[cfg(test)]
mod tests {
    use super::{emoji, mentions};

    fn names(text: &str) -> (Vec<String>, bool) {
        let found = mentions(text);
        (found.names, found.room)
    }

    #[test]
    fn mentions_are_names_after_an_at_sign_that_starts_a_word() {
        assert_eq!(
            names("hi @Bob and @carol_1!"),
            (vec!["bob".into(), "carol_1".into()], false)
        );
        assert_eq!(names("thanks @bob."), (vec!["bob".into()], false));
        assert_eq!(names("@bob @BOB @bob"), (vec!["bob".into()], false));
        assert_eq!(names("mail bob@example.org"), (vec![], false));
        assert_eq!(
            names("@ab is too short, @@bob counts"),
            (vec!["bob".into()], false)
        );
        assert_eq!(names("@room look"), (vec![], true));
        assert_eq!(names("@roommate"), (vec!["roommate".into()], false));
        assert_eq!(names("(@dave)"), (vec!["dave".into()], false));
        assert_eq!(names("é@dave"), (vec!["dave".into()], false));
        let many: String = (0..60).map(|i| format!("@user{i} ")).collect();
        assert_eq!(mentions(&many).names.len(), super::MAX_MENTIONS);
    }

    #[test]
    fn a_reaction_is_exactly_one_emoji() {
        assert_eq!(emoji("👍"), Some("👍"));
        assert_eq!(emoji("👍🏽"), Some("👍🏽"));
        assert_eq!(emoji("👩‍💻"), Some("👩‍💻"));
        assert_eq!(emoji("🇫🇷"), Some("🇫🇷"));
        assert!(emoji("❤").is_some());
        assert_eq!(emoji("❤"), emoji("❤️"));
        for refused in ["", "a", "👍👍", "👍 ", " 👍", "🏽", "<b>", "\u{200d}", "1"] {
            assert_eq!(emoji(refused), None, "{refused:?}");
        }
    }
}
