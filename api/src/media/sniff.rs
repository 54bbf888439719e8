//! What an upload is, from its first bytes and the Content-Type it was sent
//! with: the type we store and serve it as, and whether it may be shown
//! inline. A declared type the bytes contradict is refused; a type a
//! browser would run is never kept.
//!
//! The bytes are matched by the `infer` crate (magic numbers, some 150
//! types). Where the bytes show a signature, the declared type must agree;
//! where a raster image we show is declared, the bytes must be it. Only
//! what we can vouch for is stored: a type read from the bytes, or, when
//! the bytes match nothing, a declared type from a short list of inert
//! ones; anything else becomes `application/octet-stream`. Every stored type
//! is one of our `'static` strings, never the client's text.
//!
//! Unrecognised bytes declared as another format with a signature (a
//! "video/mp4" `infer` does not know) are stored as
//! `application/octet-stream` rather than refused: the signature lists
//! trail the formats (a camera's new MP4 brand, an MP3 without an ID3
//! tag), a download is harmless whatever it holds, and refusing would turn
//! every gap in them into an upload users cannot send.
//!
//! It is long for its tables (inert types, aliases, container families)
//! and its tests: a case for each format and each lie, and a property that
//! no input gets an active type stored.

use infer::MatcherType;

use super::{ImageFormat, MediaError};

/// How many bytes of the start of a file [`inspect`] looks at. `infer`'s
/// deepest look is into the first entries of a ZIP (to tell DOCX from
/// EPUB), which fit well within 8 KiB; a longer prefix is cut to this so
/// the answer does not depend on how much the caller had buffered.
pub const SNIFF_LEN: usize = 8 * 1024;

/// The type that says nothing: what an unknown upload is stored as, and a
/// declared type that claims nothing.
const OCTET_STREAM: &str = "application/octet-stream";

/// Declared types kept as they are when the bytes match no signature: text
/// and data that a browser shows as text or offers to save, never runs.
/// Left out on purpose, and so stored as `application/octet-stream`: HTML,
/// XHTML, XML and SVG (they run scripts in a page of our origin), and
/// JavaScript and CSS (`nosniff` blocks scripts and styles of any other
/// type, so never storing these types keeps uploads from being loaded as
/// our own script or style).
const INERT: &[&str] = &[
    "application/json",
    "text/calendar",
    "text/csv",
    "text/markdown",
    "text/plain",
    "text/tab-separated-values",
    "text/vcard",
];

/// Types `infer` reads from the bytes that a browser would still run:
/// stored as `application/octet-stream`. (HTML and XML are text sniffs,
/// which are never stored, and `infer` has no signature for SVG, JavaScript
/// or CSS.)
const ACTIVE: &[&str] = &["application/x-shockwave-flash"];

/// Other names clients send for a type, mapped to the one `infer` uses (or
/// to the one on [`INERT`]), so that the same type declared another way is
/// not taken for a lie.
const ALIASES: &[(&str, &str)] = &[
    ("application/x-7z", "application/x-7z-compressed"),
    ("application/x-bzip", "application/x-bzip2"),
    (
        "application/x-dosexec",
        "application/vnd.microsoft.portable-executable",
    ),
    ("application/x-gzip", "application/gzip"),
    (
        "application/x-msdos-program",
        "application/vnd.microsoft.portable-executable",
    ),
    (
        "application/x-msdownload",
        "application/vnd.microsoft.portable-executable",
    ),
    ("application/x-pdf", "application/pdf"),
    ("application/x-rar", "application/vnd.rar"),
    ("application/x-rar-compressed", "application/vnd.rar"),
    ("application/x-rtf", "application/rtf"),
    ("application/x-sqlite3", "application/vnd.sqlite3"),
    ("application/x-zip", "application/zip"),
    ("application/x-zip-compressed", "application/zip"),
    ("audio/flac", "audio/x-flac"),
    ("audio/mp3", "audio/mpeg"),
    ("audio/mp4", "audio/m4a"),
    ("audio/mpeg3", "audio/mpeg"),
    ("audio/vnd.wave", "audio/x-wav"),
    ("audio/wav", "audio/x-wav"),
    ("audio/wave", "audio/x-wav"),
    ("audio/x-m4a", "audio/m4a"),
    ("audio/x-mp3", "audio/mpeg"),
    ("font/otf", "application/font-sfnt"),
    ("font/ttf", "application/font-sfnt"),
    ("font/woff", "application/font-woff"),
    ("font/woff2", "application/font-woff"),
    ("image/apng", "image/png"),
    ("image/heic", "image/heif"),
    ("image/jpg", "image/jpeg"),
    ("image/pjpeg", "image/jpeg"),
    ("image/x-icon", "image/vnd.microsoft.icon"),
    ("image/x-png", "image/png"),
    ("text/rtf", "application/rtf"),
    ("text/x-markdown", "text/markdown"),
    ("text/x-vcard", "text/vcard"),
    ("video/avi", "video/x-msvideo"),
    ("video/msvideo", "video/x-msvideo"),
];

/// Types that share one container, so the bytes show the container's
/// signature (or `infer` names a sibling): a DOCX is a ZIP, an iPhone's
/// `.mov` is ISO BMFF like an MP4. A declared type and the bytes' type in
/// one family agree.
const FAMILIES: &[&[&str]] = &[
    &[
        "application/zip",
        "application/epub+zip",
        "application/java-archive",
        "application/vnd.android.package-archive",
        "application/vnd.oasis.opendocument.presentation",
        "application/vnd.oasis.opendocument.spreadsheet",
        "application/vnd.oasis.opendocument.text",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ],
    &[
        "application/x-ole-storage",
        "application/msword",
        "application/vnd.ms-excel",
        "application/vnd.ms-outlook",
        "application/vnd.ms-powerpoint",
        "application/x-msi",
    ],
    &[
        "video/mp4",
        "video/quicktime",
        "video/x-m4v",
        "video/3gpp",
        "video/3gpp2",
        "audio/m4a",
        "image/avif",
        "image/heif",
    ],
    &["video/x-matroska", "video/webm", "audio/webm"],
    &["audio/ogg", "audio/opus", "video/ogg", "application/ogg"],
    &[
        "image/tiff",
        "image/x-canon-cr2",
        "image/x-adobe-dng",
        "image/x-nikon-nef",
    ],
];

/// What an upload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A raster image we decode, measure and thumbnail.
    Image(ImageFormat),
    /// Anything else: stored and served as a download.
    File,
}

/// The verdict on an upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inspection {
    /// What it is.
    pub kind: Kind,
    /// The Content-Type to store and serve it with.
    pub content_type: &'static str,
}

impl Inspection {
    /// Whether it may be served `inline` (shown in the page): only the
    /// raster images, which a browser decodes and never runs. Everything
    /// else is an `attachment`.
    pub fn inline(&self) -> bool {
        matches!(self.kind, Kind::Image(_))
    }
}

/// Decides what an upload is from its declared Content-Type (the header as
/// sent, if any) and the first bytes of the file (up to [`SNIFF_LEN`] are
/// looked at; the whole file when it is shorter).
///
/// A declared type that is not a valid media type is treated as absent:
/// it claims nothing, and the bytes decide. So is
/// `application/octet-stream`. Refused with [`MediaError::TypeMismatch`]:
/// bytes of one type declared as another (a JPEG sent as `image/png`, a PNG
/// as `application/pdf`, a program as an image), and one of our raster
/// types declared for bytes that are none (HTML or SVG sent as
/// `image/png`).
pub fn inspect(declared: Option<&str>, prefix: &[u8]) -> Result<Inspection, MediaError> {
    let prefix = &prefix[..prefix.len().min(SNIFF_LEN)];
    let declared = declared
        .and_then(essence)
        .filter(|declared| declared != OCTET_STREAM);
    let matched = infer::get(prefix);
    // Text sniffs (HTML, XML, shell scripts) are guesses from a leading
    // tag or `#!`, not signatures: a text file that starts with `<p>` is
    // still a text file.
    let signature = matched
        .filter(|t| t.matcher_type() != MatcherType::Text)
        .map(|t| t.mime_type())
        .filter(|&actual| actual != OCTET_STREAM);

    // Some signatures are two or three letters ("BM" for BMP, "MZ" for a
    // program, "ID3" for MP3) that also begin ordinary text: bytes that
    // read as text, declared as text, are that text.
    if signature.is_some() && looks_like_text(prefix) {
        if let Some(text) = declared.as_deref().and_then(inert) {
            return Ok(Inspection {
                kind: Kind::File,
                content_type: text,
            });
        }
    }
    match (signature, declared) {
        (Some(actual), Some(declared)) if !agree(&declared, actual) => {
            Err(MediaError::TypeMismatch { declared, actual })
        }
        (Some(actual), _) => Ok(from_signature(actual)),
        (None, Some(declared)) if ImageFormat::from_content_type(&declared).is_some() => {
            Err(MediaError::TypeMismatch {
                declared,
                actual: matched.map_or("not of any type we recognise", |t| t.mime_type()),
            })
        }
        (None, declared) => Ok(Inspection {
            kind: Kind::File,
            content_type: declared.as_deref().and_then(inert).unwrap_or(OCTET_STREAM),
        }),
    }
}

/// Our `'static` copy of a declared type, if it is on [`INERT`].
fn inert(declared: &str) -> Option<&'static str> {
    INERT.iter().find(|&&inert| inert == declared).copied()
}

/// Whether the bytes read as text: UTF-8 (a character cut off by the end
/// of the prefix allowed) with no control character but tab, line feed,
/// form feed and carriage return. The files whose signatures text can
/// begin with have NULs or bytes invalid in UTF-8 in their first KiB.
fn looks_like_text(prefix: &[u8]) -> bool {
    let text = match std::str::from_utf8(prefix) {
        Ok(text) => text,
        Err(e) if e.error_len().is_none() => {
            std::str::from_utf8(&prefix[..e.valid_up_to()]).unwrap_or_default()
        }
        Err(_) => return false,
    };
    text.chars()
        .all(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\x0C' | '\r'))
}

/// The verdict for bytes whose signature is `actual`.
fn from_signature(actual: &'static str) -> Inspection {
    match ImageFormat::from_content_type(actual) {
        Some(format) => Inspection {
            kind: Kind::Image(format),
            content_type: format.content_type(),
        },
        None => Inspection {
            kind: Kind::File,
            content_type: if ACTIVE.contains(&actual) {
                OCTET_STREAM
            } else {
                actual
            },
        },
    }
}

/// The `type/subtype` of a Content-Type, lowercased, parameters dropped and
/// aliases resolved; `None` unless both parts are RFC 6838 names (which
/// also makes it safe to echo in an error message).
fn essence(content_type: &str) -> Option<String> {
    let essence = content_type.split(';').next()?.trim().to_ascii_lowercase();
    let (kind, subtype) = essence.split_once('/')?;
    if !(is_restricted_name(kind) && is_restricted_name(subtype)) {
        return None;
    }
    let canonical = ALIASES
        .iter()
        .find(|(alias, _)| *alias == essence)
        .map(|(_, canonical)| *canonical);
    Some(canonical.map_or(essence, str::to_owned))
}

/// RFC 6838 `restricted-name`: 1–127 characters, a letter or digit first.
fn is_restricted_name(name: &str) -> bool {
    name.len() <= 127
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$&-^_.+".contains(c))
}

/// Whether a declared type and the bytes' type name the same format.
fn agree(declared: &str, actual: &str) -> bool {
    declared == actual
        || FAMILIES
            .iter()
            .any(|family| family.contains(&declared) && family.contains(&actual))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Types a browser runs or renders as a document of our origin.
    const NEVER_STORED: &[&str] = &[
        "text/html",
        "application/xhtml+xml",
        "image/svg+xml",
        "text/xml",
        "application/xml",
        "text/javascript",
        "application/javascript",
        "text/css",
        "application/x-shockwave-flash",
    ];

    const RASTER: &[&str] = &["image/png", "image/jpeg", "image/gif", "image/webp"];

    /// Starts of files: each signature we test, markup, and nothing.
    const LEADS: &[&[u8]] = &[
        b"", PNG, JPEG, GIF, WEBP, PDF, EXE, SWF, HTML, SVG, BARE_SVG, TEXT,
    ];

    proptest! {
        /// Whatever is declared and whatever the bytes: no active type is
        /// stored, only a raster image is inline, and a declared raster
        /// type that is accepted is what the bytes are.
        #[test]
        fn no_upload_is_stored_as_something_that_runs(
            declared in proptest::option::of(prop_oneof![
                proptest::sample::select(NEVER_STORED).prop_map(str::to_owned),
                proptest::sample::select(RASTER).prop_map(str::to_owned),
                proptest::sample::select(INERT).prop_map(str::to_owned),
                "[a-z]{1,8}/[a-z+.-]{1,12}",
            ]),
            lead in proptest::sample::select(LEADS),
            tail in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let bytes = [lead, &tail].concat();
            if let Ok(seen) = inspect(declared.as_deref(), &bytes) {
                prop_assert!(!NEVER_STORED.contains(&seen.content_type), "{seen:?}");
                let raster = ImageFormat::from_content_type(seen.content_type);
                prop_assert_eq!(seen.inline(), raster.is_some());
                if let Some(declared) = declared.as_deref() {
                    if ImageFormat::from_content_type(declared).is_some() {
                        prop_assert_eq!(seen.content_type, declared);
                    }
                }
            }
        }
    }

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0";
    const JPEG: &[u8] = b"\xff\xd8\xff\xe0\0\x10JFIF\0\x01\x01\0\0\x01\0\x01\0\0";
    const GIF: &[u8] = b"GIF89a\x01\0\x01\0\x80\0\0";
    const WEBP: &[u8] = b"RIFF\x24\0\0\0WEBPVP8 \x18\0\0\0";
    const PDF: &[u8] = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n";
    const EXE: &[u8] = b"MZ\x90\0\x03\0\0\0\x04\0\0\0\xff\xff\0\0";
    const SWF: &[u8] = b"FWS\x0a\x20\0\0\0";
    const HTML: &[u8] = b"<!DOCTYPE html>\n<html><script>alert(1)</script></html>";
    const SVG: &[u8] = b"<?xml version=\"1.0\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" \
                         onload=\"alert(1)\"/>";
    const BARE_SVG: &[u8] = b"<svg xmlns=\"http://www.w3.org/2000/svg\"><script>x</script></svg>";
    const TEXT: &[u8] = b"just some notes\nand a second line\n";

    /// A ZIP's first local file header, for an entry of this name.
    fn zip_with(entry: &str) -> Vec<u8> {
        let mut bytes = b"PK\x03\x04\x14\0\0\0\x08\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0".to_vec();
        bytes.extend_from_slice(&(entry.len() as u16).to_le_bytes());
        bytes.extend_from_slice(&[0, 0]);
        bytes.extend_from_slice(entry.as_bytes());
        bytes.extend_from_slice(&[0; 64]);
        bytes
    }

    fn ok(declared: Option<&str>, bytes: &[u8]) -> Inspection {
        inspect(declared, bytes).unwrap_or_else(|e| panic!("{declared:?}: {e}"))
    }

    fn mismatch(declared: &str, bytes: &[u8]) -> (String, &'static str) {
        match inspect(Some(declared), bytes) {
            Err(MediaError::TypeMismatch { declared, actual }) => (declared, actual),
            other => panic!("{declared}: expected a mismatch, got {other:?}"),
        }
    }

    fn file(content_type: &'static str) -> Inspection {
        Inspection {
            kind: Kind::File,
            content_type,
        }
    }

    #[test]
    fn each_raster_format_is_an_inline_image() {
        for (bytes, format, declared) in [
            (PNG, ImageFormat::Png, "image/png"),
            (JPEG, ImageFormat::Jpeg, "image/jpeg"),
            (GIF, ImageFormat::Gif, "image/gif"),
            (WEBP, ImageFormat::WebP, "image/webp"),
        ] {
            let expected = Inspection {
                kind: Kind::Image(format),
                content_type: declared,
            };
            for header in [
                None,
                Some(declared),
                Some("application/octet-stream"),
                Some(&*declared.to_uppercase()),
                Some(&*format!("{declared}; charset=binary")),
            ] {
                assert_eq!(ok(header, bytes), expected, "{header:?}");
            }
            assert!(expected.inline());
        }
        assert_eq!(
            ok(Some("image/jpg"), JPEG).kind,
            Kind::Image(ImageFormat::Jpeg)
        );
        assert_eq!(
            ok(Some("image/x-png"), PNG).kind,
            Kind::Image(ImageFormat::Png)
        );
    }

    #[test]
    fn an_image_declared_as_another_format_is_refused() {
        assert_eq!(
            mismatch("image/jpeg", PNG),
            ("image/jpeg".into(), "image/png")
        );
        assert_eq!(
            mismatch("image/png", JPEG),
            ("image/png".into(), "image/jpeg")
        );
        assert_eq!(
            mismatch("image/webp", GIF),
            ("image/webp".into(), "image/gif")
        );
        assert_eq!(
            mismatch("application/pdf", PNG),
            ("application/pdf".into(), "image/png")
        );
        assert_eq!(
            mismatch("text/plain", PNG),
            ("text/plain".into(), "image/png")
        );
    }

    #[test]
    fn markup_declared_as_an_image_is_refused() {
        assert_eq!(
            mismatch("image/png", HTML),
            ("image/png".into(), "text/html")
        );
        assert_eq!(mismatch("image/gif", SVG), ("image/gif".into(), "text/xml"));
        assert_eq!(
            mismatch("image/jpeg", BARE_SVG),
            ("image/jpeg".into(), "not of any type we recognise")
        );
        assert_eq!(
            mismatch("image/png", TEXT),
            ("image/png".into(), "not of any type we recognise")
        );
        assert_eq!(
            mismatch("image/png", b""),
            ("image/png".into(), "not of any type we recognise")
        );
    }

    #[test]
    fn a_program_is_a_download_and_never_an_image() {
        let exe = "application/vnd.microsoft.portable-executable";
        assert_eq!(mismatch("image/png", EXE), ("image/png".into(), exe));
        assert_eq!(
            mismatch("application/pdf", EXE),
            ("application/pdf".into(), exe)
        );
        for header in [
            None,
            Some("application/octet-stream"),
            Some("application/x-msdownload"),
        ] {
            let seen = ok(header, EXE);
            assert_eq!(seen, file(exe), "{header:?}");
            assert!(!seen.inline());
        }
    }

    #[test]
    fn a_document_keeps_its_type_as_a_download() {
        assert_eq!(ok(Some("application/pdf"), PDF), file("application/pdf"));
        assert_eq!(ok(None, PDF), file("application/pdf"));
        assert_eq!(
            mismatch("text/plain", PDF),
            ("text/plain".into(), "application/pdf")
        );
        // A claim the bytes neither show nor contradict is not vouched for.
        assert_eq!(ok(Some("application/pdf"), TEXT), file(OCTET_STREAM));
        assert_eq!(
            ok(Some("video/mp4"), b"\0\0\0\x18ftypXAVC"),
            file(OCTET_STREAM)
        );
    }

    #[test]
    fn active_types_are_stored_as_octet_stream() {
        for (declared, bytes) in [
            ("text/html", HTML),
            ("text/html; charset=utf-8", HTML),
            ("application/xhtml+xml", HTML),
            ("image/svg+xml", SVG),
            ("image/svg+xml", BARE_SVG),
            ("text/xml", SVG),
            ("application/xml", SVG),
            (
                "application/javascript",
                b"alert(document.cookie)".as_slice(),
            ),
            ("text/javascript", b"alert(document.cookie)".as_slice()),
            ("text/css", b"body { background: url(x) }".as_slice()),
        ] {
            let seen = ok(Some(declared), bytes);
            assert_eq!(seen, file(OCTET_STREAM), "{declared}");
            assert!(!seen.inline());
        }
        assert_eq!(ok(None, HTML), file(OCTET_STREAM));
        assert_eq!(ok(None, SVG), file(OCTET_STREAM));
        assert_eq!(
            ok(Some("application/x-shockwave-flash"), SWF),
            file(OCTET_STREAM)
        );
        assert_eq!(ok(None, SWF), file(OCTET_STREAM));
    }

    #[test]
    fn unrecognised_bytes_keep_only_an_inert_declared_type() {
        assert_eq!(ok(Some("text/plain"), TEXT), file("text/plain"));
        assert_eq!(
            ok(Some("Text/Plain; charset=\"utf-8\""), TEXT),
            file("text/plain")
        );
        assert_eq!(ok(Some("text/csv"), b"a,b\n1,2\n"), file("text/csv"));
        assert_eq!(
            ok(Some("text/x-markdown"), b"# title\n"),
            file("text/markdown")
        );
        assert_eq!(
            ok(Some("application/json"), b"{\"a\":1}"),
            file("application/json")
        );
        // Text that happens to start with a tag is still the text it says.
        assert_eq!(
            ok(Some("text/plain"), b"<p>a paragraph</p>"),
            file("text/plain")
        );
        for declared in [None, Some("application/x-custom"), Some("audio/x-ms-wma")] {
            assert_eq!(ok(declared, TEXT), file(OCTET_STREAM), "{declared:?}");
        }
        assert_eq!(ok(None, b""), file(OCTET_STREAM));
    }

    #[test]
    fn text_that_begins_like_a_signature_stays_the_text_it_is_declared() {
        let bmw = b"BMW service due in March\nBMI 22\n";
        let mz = "MZ: notes on the Mazda, ünd so weiter\n".as_bytes();
        assert_eq!(infer::get(bmw).map(|t| t.mime_type()), Some("image/bmp"));
        assert_eq!(ok(Some("text/plain"), bmw), file("text/plain"));
        assert_eq!(ok(Some("text/csv"), mz), file("text/csv"));
        assert_eq!(
            ok(Some("text/plain"), b"ID3 tags, explained\n"),
            file("text/plain")
        );
        // A character cut by the end of the prefix is still text.
        // (Three bytes, then two-byte characters: SNIFF_LEN falls in one.)
        let cut = [&b"BMx"[..], "é".repeat(SNIFF_LEN).as_bytes()].concat();
        assert_eq!(ok(Some("text/plain"), &cut), file("text/plain"));
        // Binary bytes behind the signature are the format they start.
        assert_eq!(
            mismatch("text/plain", b"BM\x36\0\x0c\0\0\0\0\0\x36\0\0\0"),
            ("text/plain".into(), "image/bmp")
        );
        assert_eq!(
            mismatch("text/plain", EXE),
            (
                "text/plain".into(),
                "application/vnd.microsoft.portable-executable"
            )
        );
        // Not declared as text, the signature decides.
        assert_eq!(ok(None, bmw), file("image/bmp"));
        assert_eq!(
            mismatch("image/png", bmw),
            ("image/png".into(), "image/bmp")
        );
    }

    #[test]
    fn a_malformed_declared_type_claims_nothing() {
        for declared in [
            "",
            "png",
            "image/",
            "/png",
            "image/png, text/html",
            "image/png\r\nX-Evil: 1",
            "text/plain garbage",
        ] {
            assert_eq!(
                ok(Some(declared), PNG).kind,
                Kind::Image(ImageFormat::Png),
                "{declared:?}"
            );
            assert_eq!(ok(Some(declared), TEXT), file(OCTET_STREAM), "{declared:?}");
        }
    }

    #[test]
    fn containers_agree_with_their_members() {
        let docx = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";
        let plain_zip = zip_with("notes.txt");
        let word_zip = zip_with("word/document.xml");
        assert_eq!(ok(None, &plain_zip), file("application/zip"));
        assert_eq!(ok(Some(docx), &plain_zip), file("application/zip"));
        assert_eq!(
            ok(Some("application/x-zip-compressed"), &plain_zip),
            file("application/zip")
        );
        assert_eq!(ok(Some("application/zip"), &word_zip), file(docx));
        assert_eq!(
            mismatch("application/pdf", &plain_zip),
            ("application/pdf".into(), "application/zip")
        );

        let mov = b"\0\0\0\x14ftypqt  \0\0\0\0qt  \0\0\0\x08wide";
        assert_eq!(ok(Some("video/mp4"), mov), file("video/quicktime"));
    }

    #[test]
    fn only_the_first_sniff_len_bytes_count() {
        let mut late_png = vec![b' '; SNIFF_LEN];
        late_png.extend_from_slice(PNG);
        assert_eq!(ok(None, &late_png), file(OCTET_STREAM));
    }
}
