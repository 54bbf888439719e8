//! The search language of `GET /v1/search`, parsed once in Rust into a
//! [`SearchQuery`] and rendered for each database, and what a search
//! finds ([`SearchHit`], its text cut into marked and unmarked
//! [`HighlightPart`]s).
//!
//! The language (docs/protocol.md, "Search"): words, all of which must
//! match; `"a phrase"`, whose words must follow one another; `-word` or
//! `-"a phrase"`, which must not match. A word is a run of letters and
//! digits; everything else separates words, so `deploy-bot` is the phrase
//! `"deploy bot"`. Both databases are given the same words, in the same
//! shape, and index the same words of a text (see the `0004_search`
//! migrations), so both find the same messages.
//!
//! Marks: the database marks each searched word in a text with two
//! private-use characters ([`MARK_START`], [`MARK_END`]), which the text
//! it marks cannot hold (the index reads them as spaces); [`highlight`]
//! splits on them and takes the characters from the original text, so the
//! client gets data, never HTML.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::error::{Error, Result};
use crate::model::{EventId, RoomId, UserId};

/// Longest query, in characters: longer ones are refused before any work.
pub const MAX_QUERY_CHARS: usize = 256;

/// Most words in a query, phrases' words and excluded ones included: each
/// is a lookup in the index.
pub const MAX_QUERY_WORDS: usize = 16;

/// Where the database starts a mark (private use: no text carries it into
/// the marking).
pub const MARK_START: char = '\u{E000}';

/// Where the database ends a mark.
pub const MARK_END: char = '\u{E001}';

/// One term of a query: a word, or a phrase of words that must follow one
/// another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    /// The words, in order (one for a plain word).
    pub words: Vec<String>,
    /// Whether matching messages are excluded (`-term`).
    pub excluded: bool,
}

/// A parsed query: at least one term that must match, at most
/// [`MAX_QUERY_WORDS`] words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchQuery {
    terms: Vec<Term>,
}

impl SearchQuery {
    /// Parses `text`, or says why it is refused (`Error::BadQuery`): over
    /// [`MAX_QUERY_CHARS`] characters (checked first, so a huge query costs
    /// nothing), over [`MAX_QUERY_WORDS`] words, or no word to find.
    pub fn parse(text: &str) -> Result<Self> {
        if text.len() > MAX_QUERY_CHARS && text.chars().nth(MAX_QUERY_CHARS).is_some() {
            return Err(Error::BadQuery(
                "query_too_long",
                format!("q: at most {MAX_QUERY_CHARS} characters"),
            ));
        }
        let mut terms = Vec::new();
        let mut chars = text.chars().peekable();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() {
                chars.next();
                continue;
            }
            let excluded = c == '-';
            if excluded {
                chars.next();
            }
            let raw: String = if chars.peek() == Some(&'"') {
                chars.next();
                chars.by_ref().take_while(|&c| c != '"').collect()
            } else {
                let mut raw = String::new();
                while let Some(c) = chars.next_if(|c| !c.is_whitespace() && *c != '"') {
                    raw.push(c);
                }
                raw
            };
            let words = words(&raw);
            if !words.is_empty() {
                terms.push(Term { words, excluded });
            }
        }
        let count: usize = terms.iter().map(|t| t.words.len()).sum();
        if count > MAX_QUERY_WORDS {
            return Err(Error::BadQuery(
                "too_many_words",
                format!("q: at most {MAX_QUERY_WORDS} words"),
            ));
        }
        if !terms.iter().any(|t| !t.excluded) {
            return Err(Error::BadQuery(
                "no_search_terms",
                "q: give at least one word to find (letters or digits, not only -excluded ones)"
                    .into(),
            ));
        }
        Ok(Self { terms })
    }

    /// The terms, in the order given.
    pub fn terms(&self) -> &[Term] {
        &self.terms
    }

    /// The query as PostgreSQL's `to_tsquery` reads it: `'a' & ('b' <->
    /// 'c') & !'d'`. Words hold only letters and digits, so quoting them
    /// is enough.
    pub fn to_tsquery(&self) -> String {
        let terms: Vec<String> = self
            .terms
            .iter()
            .map(|term| {
                let phrase = tsquery_phrase(&term.words);
                if term.excluded {
                    format!("!{phrase}")
                } else {
                    phrase
                }
            })
            .collect();
        terms.join(" & ")
    }

    /// The query as SQLite's FTS5 `MATCH` reads it: `"a" AND "b c" NOT
    /// "d"` (FTS5's `NOT` is binary: what the terms before it match,
    /// less what follows).
    pub fn to_fts5(&self) -> String {
        let wanted: Vec<String> = self.positive().map(fts5_phrase).collect();
        let mut query = wanted.join(" AND ");
        for term in self.terms.iter().filter(|t| t.excluded) {
            query.push_str(" NOT ");
            query.push_str(&fts5_phrase(term));
        }
        query
    }

    /// What to mark, for `to_tsquery`: every searched word, wherever it
    /// stands (each word of a phrase too, so both databases mark alike).
    pub fn marks_tsquery(&self) -> String {
        let words: Vec<String> = self.marked_words().map(tsquery_word).collect();
        words.join(" | ")
    }

    /// What to mark, for FTS5 (see [`SearchQuery::marks_tsquery`]).
    pub fn marks_fts5(&self) -> String {
        let words: Vec<String> = self.marked_words().map(|w| format!("\"{w}\"")).collect();
        words.join(" OR ")
    }

    fn positive(&self) -> impl Iterator<Item = &Term> {
        self.terms.iter().filter(|t| !t.excluded)
    }

    fn marked_words(&self) -> impl Iterator<Item = &str> {
        self.positive()
            .flat_map(|t| t.words.iter().map(String::as_str))
    }
}

/// The words of a stretch of query text: its runs of letters and digits.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

fn tsquery_word(word: &str) -> String {
    format!("'{word}'")
}

fn tsquery_phrase(words: &[String]) -> String {
    let quoted: Vec<String> = words.iter().map(|w| tsquery_word(w)).collect();
    match quoted.as_slice() {
        [one] => one.clone(),
        _ => format!("({})", quoted.join(" <-> ")),
    }
}

fn fts5_phrase(term: &Term) -> String {
    format!("\"{}\"", term.words.join(" "))
}

/// A stretch of a found message's text, marked if it is a searched word.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HighlightPart {
    /// The text, as it is in the message.
    pub text: String,
    /// Whether it is a searched word.
    #[serde(rename = "match")]
    pub matched: bool,
}

/// One message a search found, as it is now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SearchHit {
    /// Its room.
    pub room_id: RoomId,
    /// Its seq in the room (to open the room's timeline around it).
    pub seq: i64,
    /// The message's event id (UUID v7, time-ordered: the paging cursor).
    pub id: EventId,
    /// Who sent it.
    pub sender: Option<UserId>,
    /// When it was sent.
    #[serde(with = "time::serde::rfc3339")]
    pub ts: OffsetDateTime,
    /// When it was last edited.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub edited_at: Option<OffsetDateTime>,
    /// Its whole current text, in order, cut where the searched words
    /// start and end.
    pub highlight: Vec<HighlightPart>,
}

/// Cuts `text` into parts by the marks in `marked`, the same text as the
/// database marked it (where the index read spaces, `marked` may have
/// them; the characters always come from `text`). A `marked` that does
/// not line up with `text` gives the whole text unmarked.
pub fn highlight(text: &str, marked: &str) -> Vec<HighlightPart> {
    let unmarked = || {
        vec![HighlightPart {
            text: text.to_owned(),
            matched: false,
        }]
    };
    let mut parts: Vec<HighlightPart> = Vec::new();
    let mut original = text.chars();
    let mut matched = false;
    for c in marked.chars() {
        match c {
            MARK_START => matched = true,
            MARK_END => matched = false,
            _ => {
                let Some(own) = original.next() else {
                    return unmarked();
                };
                match parts.last_mut() {
                    Some(part) if part.matched == matched => part.text.push(own),
                    _ => parts.push(HighlightPart {
                        text: own.to_string(),
                        matched,
                    }),
                }
            }
        }
    }
    if original.next().is_some() {
        return unmarked();
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(text: &str) -> &'static str {
        match SearchQuery::parse(text) {
            Err(Error::BadQuery(code, _)) => code,
            other => panic!("{text:?} was not refused: {other:?}"),
        }
    }

    #[test]
    fn words_phrases_and_exclusions_render_alike_for_both_databases() {
        let query = SearchQuery::parse(r#"Deploy "fix the build" -staging -"old plan""#).unwrap();
        assert_eq!(
            query.to_tsquery(),
            "'Deploy' & ('fix' <-> 'the' <-> 'build') & !'staging' & !('old' <-> 'plan')"
        );
        assert_eq!(
            query.to_fts5(),
            r#""Deploy" AND "fix the build" NOT "staging" NOT "old plan""#
        );
        assert_eq!(query.marks_tsquery(), "'Deploy' | 'fix' | 'the' | 'build'");
        assert_eq!(
            query.marks_fts5(),
            r#""Deploy" OR "fix" OR "the" OR "build""#
        );
    }

    #[test]
    fn punctuation_separates_words_and_makes_phrases() {
        let query = SearchQuery::parse("deploy-bot example.com 'quoted' café").unwrap();
        let words: Vec<_> = query.terms().iter().map(|t| t.words.join(" ")).collect();
        assert_eq!(words, ["deploy bot", "example com", "quoted", "café"]);
        // Operators of either database are not words: nothing to inject.
        let query = SearchQuery::parse(r#"a&b | !c <-> d* NEAR(e) "f"#).unwrap();
        assert_eq!(
            query.to_tsquery(),
            "('a' <-> 'b') & 'c' & 'd' & ('NEAR' <-> 'e') & 'f'"
        );
        assert_eq!(
            query.to_fts5(),
            r#""a b" AND "c" AND "d" AND "NEAR e" AND "f""#
        );
        // Private-use characters (the marks) separate words too.
        let marks = format!("x{MARK_START}y{MARK_END}");
        assert_eq!(
            SearchQuery::parse(&marks).unwrap().terms()[0].words,
            ["x", "y"]
        );
    }

    #[test]
    fn queries_without_a_word_to_find_or_too_big_are_refused() {
        for empty in [
            "",
            "   ",
            "-",
            "\"\"",
            "- -",
            "!!! ...",
            "-secret",
            "-\"a b\" -c",
        ] {
            assert_eq!(code(empty), "no_search_terms", "{empty:?}");
        }
        assert_eq!(code(&"a".repeat(MAX_QUERY_CHARS + 1)), "query_too_long");
        assert_eq!(code(&"é".repeat(10_000)), "query_too_long");
        assert!(SearchQuery::parse(&"é".repeat(MAX_QUERY_CHARS)).is_ok());
        let seventeen = (0..17)
            .map(|i| format!("w{i}"))
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(code(&seventeen), "too_many_words");
        let phrase = format!("\"{}\"", "a ".repeat(17));
        assert_eq!(code(&phrase), "too_many_words");
        assert!(SearchQuery::parse(&"w ".repeat(16)).is_ok());
    }

    #[test]
    fn marks_become_parts_of_the_original_text() {
        let text = "We deploy-now, Über";
        let marked = format!("We {MARK_START}deploy{MARK_END} now  {MARK_START}Über{MARK_END}");
        let parts = highlight(text, &marked);
        let shown: Vec<_> = parts.iter().map(|p| (p.text.as_str(), p.matched)).collect();
        assert_eq!(
            shown,
            [
                ("We ", false),
                ("deploy", true),
                ("-now, ", false),
                ("Über", true)
            ]
        );
        assert_eq!(
            serde_json::to_value(&parts[1]).unwrap(),
            serde_json::json!({ "text": "deploy", "match": true })
        );
    }

    #[test]
    fn a_marking_that_does_not_line_up_leaves_the_text_unmarked() {
        let whole = vec![HighlightPart {
            text: "abc".into(),
            matched: false,
        }];
        assert_eq!(
            highlight("abc", &format!("{MARK_START}ab{MARK_END}")),
            whole
        );
        assert_eq!(highlight("abc", "abcd"), whole);
        assert_eq!(highlight("", ""), Vec::new());
    }
}
