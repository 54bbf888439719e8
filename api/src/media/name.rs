//! An upload's file name: checked once into a [`FileName`] that can never be
//! a path or hide what it is, and written back into a `Content-Disposition`
//! header that cannot be broken out of.
//!
//! [`FileName::parse`] takes the name already decoded: the HTTP layer
//! undoes the transfer encoding exactly once (a multipart `filename*=` in
//! RFC 5987 form, or a percent-encoded query value) and refuses bytes that
//! are not UTF-8, since a `&str` is all this module accepts. Percent
//! sequences left in the decoded name are kept as the characters they are:
//! `a%2Fb` is a five-character name with no separator in it, and decoding
//! it again here would turn a harmless name into a path.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::MediaError;

/// The longest name, in bytes of UTF-8: the limit of ext4, APFS and NTFS
/// (in UTF-16 units there, which 255 bytes never exceed), so a download
/// saves under the name it was sent with.
const MAX_BYTES: usize = 255;

/// The bytes RFC 5987 lets through unencoded in `filename*` (`attr-char`);
/// every other byte is percent-encoded.
const ATTR_CHAR_ESCAPES: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// A file name as the user gave it, minus the surrounding white space, that
/// passed every rule of [`FileName::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileName(String);

impl FileName {
    /// Checks a decoded file name. Leading and trailing white space is
    /// trimmed rather than refused: nobody sees it, Windows drops it on
    /// save, and a name pasted with a stray space is not an attack.
    /// Refused: an empty name, one over 255 bytes, a `/` or `\` anywhere
    /// (a path, on any system we serve), a name of dots only (`.`, `..`,
    /// which Windows would save as nothing), control characters (NUL, CR,
    /// LF, DEL, C1), the bidirectional controls that make `exe.pdf` show
    /// for a name ending in `fdp.exe` (U+061C, U+200E, U+200F,
    /// U+202A–U+202E, U+2066–U+2069) and the line and paragraph separators
    /// (U+2028, U+2029) that split a name in two where it is shown. Other
    /// white space stays: macOS names its screenshots with U+202F.
    pub fn parse(raw: &str) -> Result<Self, MediaError> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(MediaError::InvalidName("it is empty"));
        }
        if name.len() > MAX_BYTES {
            return Err(MediaError::InvalidName("it is longer than 255 bytes"));
        }
        if name.contains(['/', '\\']) {
            return Err(MediaError::InvalidName("'/' and '\\' are not allowed"));
        }
        if name.chars().all(|c| c == '.') {
            return Err(MediaError::InvalidName("a name of dots only is a path"));
        }
        if name.chars().any(char::is_control) {
            return Err(MediaError::InvalidName(
                "control characters are not allowed",
            ));
        }
        if name.chars().any(reorders_or_breaks_text) {
            return Err(MediaError::InvalidName(
                "bidirectional controls and line separators are not allowed",
            ));
        }
        Ok(Self(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The `Content-Disposition` value that serves the file under this
    /// name (RFC 6266): `inline` for what may be shown in the page (the
    /// raster images), `attachment` for everything else. It carries
    /// `filename*=UTF-8''…`, the exact name percent-encoded (RFC 5987), and
    /// before it a quoted ASCII `filename` for clients that ignore
    /// `filename*`, in which every byte outside printable ASCII, and `"`,
    /// `\` and `%` (which some clients decode), is `_`. Both parts are
    /// printable ASCII with no quote of their own, so no name can end the
    /// quoted string, add a parameter or start a new header line.
    pub fn content_disposition(&self, inline: bool) -> String {
        let disposition = if inline { "inline" } else { "attachment" };
        let fallback: String = self
            .0
            .chars()
            .map(|c| match c {
                '"' | '\\' | '%' => '_',
                ' '..='~' => c,
                _ => '_',
            })
            .collect();
        let encoded = utf8_percent_encode(&self.0, ATTR_CHAR_ESCAPES);
        format!("{disposition}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
    }
}

/// Characters that reorder the text around them or end its line.
fn reorders_or_breaks_text(c: char) -> bool {
    matches!(
        c,
        '\u{061C}'
            | '\u{200E}'
            | '\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2066}'..='\u{2069}'
            | '\u{2028}'
            | '\u{2029}'
    )
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;
    use percent_encoding::percent_decode_str;
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Whatever the name, one that passes is no path, parses to itself,
        /// and gives a header of printable ASCII with one quoted string
        /// whose `filename*` decodes to the name exactly.
        #[test]
        fn every_accepted_name_makes_a_safe_header(
            // Any text, and text without control characters (which mostly
            // passes), so both the refusals and the headers get exercised.
            raw in prop_oneof![any::<String>(), "\\PC{0,300}"],
            inline: bool,
        ) {
            if let Ok(name) = FileName::parse(&raw) {
                prop_assert!(!name.as_str().contains(['/', '\\']));
                prop_assert_eq!(FileName::parse(name.as_str()), Ok(name.clone()));
                let value = name.content_disposition(inline);
                prop_assert!(value.bytes().all(|b| (b' '..=b'~').contains(&b)));
                prop_assert_eq!(value.matches('"').count(), 2);
                let encoded = value.split_once("filename*=UTF-8''").unwrap().1;
                prop_assert_eq!(percent_decode_str(encoded).decode_utf8().unwrap(), name.as_str());
            }
        }
    }

    fn refused(raw: &str) -> bool {
        matches!(FileName::parse(raw), Err(MediaError::InvalidName(_)))
    }

    #[test]
    fn ordinary_names_pass_unchanged() {
        for ok in [
            "report.pdf",
            ".bashrc",
            "...hidden",
            "a..b",
            "résumé final (2).docx",
            "李小龙.png",
            "Screenshot 2024-05-01 at 10.00.00\u{202F}AM.png",
            "👩\u{200D}💻 notes.txt",
            "a%2Fb.txt",
            "quote\"semi;colon.txt",
        ] {
            assert_eq!(FileName::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn white_space_around_is_trimmed() {
        assert_eq!(
            FileName::parse("  photo.jpg \u{3000}").unwrap().as_str(),
            "photo.jpg"
        );
    }

    #[test]
    fn empty_and_blank_names_are_refused() {
        assert!(refused(""));
        assert!(refused("   "));
        assert!(refused("\u{00A0}"));
    }

    #[test]
    fn length_is_bounded_in_bytes() {
        assert!(FileName::parse(&"a".repeat(255)).is_ok());
        assert!(refused(&"a".repeat(256)));
        // 128 two-byte characters: 128 characters but 256 bytes.
        assert!(refused(&"é".repeat(128)));
        assert!(FileName::parse(&"é".repeat(127)).is_ok());
    }

    #[test]
    fn separators_and_dot_names_are_refused() {
        for bad in [
            "../etc/passwd",
            "a/b",
            "/abs",
            "dir\\file.txt",
            "..\\..\\boot.ini",
            ".",
            "..",
            "...",
            " .. ",
        ] {
            assert!(refused(bad), "{bad:?}");
        }
    }

    #[test]
    fn control_characters_are_refused() {
        for bad in [
            "a\0b",
            "a\rb",
            "a\nb",
            "a\tb",
            "a\u{1B}[31mb",
            "a\u{7F}b",
            "a\u{85}b",
        ] {
            assert!(refused(bad), "{bad:?}");
        }
    }

    #[test]
    fn bidirectional_controls_and_separators_are_refused() {
        for bad in [
            "invoice\u{202E}fdp.exe",
            "a\u{202A}b",
            "a\u{202B}b",
            "a\u{202C}b",
            "a\u{202D}b",
            "a\u{2066}b",
            "a\u{2067}b",
            "a\u{2068}b",
            "a\u{2069}b",
            "a\u{200E}b",
            "a\u{200F}b",
            "a\u{061C}b",
            "a\u{2028}b",
            "a\u{2029}b",
        ] {
            assert!(refused(bad), "{bad:?}");
        }
    }

    #[test]
    fn content_disposition_of_an_ascii_name() {
        let name = FileName::parse("report 2024.pdf").unwrap();
        assert_eq!(
            name.content_disposition(false),
            "attachment; filename=\"report 2024.pdf\"; filename*=UTF-8''report%202024.pdf"
        );
        assert_eq!(
            name.content_disposition(true),
            "inline; filename=\"report 2024.pdf\"; filename*=UTF-8''report%202024.pdf"
        );
    }

    #[test]
    fn content_disposition_of_a_unicode_name() {
        let name = FileName::parse("résumé 李.pdf").unwrap();
        assert_eq!(
            name.content_disposition(false),
            "attachment; filename=\"r_sum_ _.pdf\"; \
             filename*=UTF-8''r%C3%A9sum%C3%A9%20%E6%9D%8E.pdf"
        );
    }

    #[test]
    fn content_disposition_cannot_be_broken_out_of() {
        let name = FileName::parse("a\"; filename=\"evil.html%22.txt").unwrap();
        let value = name.content_disposition(false);
        assert_eq!(
            value,
            "attachment; filename=\"a_; filename=_evil.html_22.txt\"; \
             filename*=UTF-8''a%22%3B%20filename%3D%22evil.html%2522.txt"
        );
        // One quoted string: the only quotes are the pair around the fallback.
        assert_eq!(value.matches('"').count(), 2);
        // CR and LF never reach the header: parse refuses them, and the
        // encoding would escape them if it did not.
        assert!(refused("a.txt\r\nSet-Cookie: x=1"));
        for name in ["a\"b", "é\u{202F}ü", "a;b=c", "a'b"] {
            let value = FileName::parse(name).unwrap().content_disposition(true);
            assert!(HeaderValue::from_str(&value).is_ok(), "{value}");
            assert!(value.bytes().all(|b| (b' '..=b'~').contains(&b)), "{value}");
        }
    }
}
