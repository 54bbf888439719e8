//! What the store's SQL asks of a database, so that each area's code is
//! written once, as ordinary generic Rust over sqlx, for both PostgreSQL
//! and SQLite: the statements are the same text in both (`$n` parameters,
//! `RETURNING`, `ON CONFLICT`, `lower`, `LIKE … ESCAPE`; every value is
//! bound from Rust), and what differs is named here ([`Dialect`]).
//!
//! Rust does not carry a trait's where-clauses to the code that uses the
//! trait (rust-lang/rust#20671), so the driver capabilities the statements
//! need (run on a connection, bind and read these column types) cannot live
//! on [`Dialect`] itself: each area's impl block states them, as
//! `where DB: Dialect, …` in the same order, and the compiler checks every
//! statement against both drivers.

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;

use super::durability::{POSTGRES_BEGIN, SQLITE_BEGIN};

/// How the two databases differ for the store, beyond the driver.
pub trait Dialect: sqlx::Database<QueryResult: RowsAffected> {
    /// How a write transaction begins (see `durability`).
    const BEGIN: &'static str;
    /// How a read-only transaction whose statements all see one snapshot
    /// begins (a timeline page and its head).
    const SNAPSHOT: &'static str;
}

impl Dialect for sqlx::Postgres {
    const BEGIN: &'static str = POSTGRES_BEGIN;
    const SNAPSHOT: &'static str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";
}

impl Dialect for sqlx::Sqlite {
    const BEGIN: &'static str = SQLITE_BEGIN;
    /// In WAL mode a read transaction sees one snapshot; the read pool's
    /// connections are read-only.
    const SNAPSHOT: &'static str = "BEGIN";
}

/// The current time, truncated to the microsecond both databases store, so
/// an event returned by an append equals the same event read back.
pub(super) fn now() -> time::OffsetDateTime {
    let t = time::OffsetDateTime::now_utc();
    t.replace_nanosecond(t.nanosecond() / 1_000 * 1_000)
        .expect("a truncated nanosecond is in range")
}

/// A point in time as bound to a statement. PostgreSQL gets a `timestamptz`.
/// SQLite keeps timestamps as TEXT and compares and sorts them as text
/// (token expiry, session and member order), so it gets one fixed-width UTC
/// form: sqlx's own RFC 3339 encoding drops trailing zeros of the fraction
/// (and the whole fraction when it is zero), and then `"…:01Z" > "…:01.5Z"`
/// would keep a token alive for up to a second past its expiry.
#[derive(Debug, Clone, Copy)]
pub struct Timestamp(pub time::OffsetDateTime);

impl sqlx::Type<sqlx::Sqlite> for Timestamp {
    fn type_info() -> sqlx::sqlite::SqliteTypeInfo {
        <time::OffsetDateTime as sqlx::Type<sqlx::Sqlite>>::type_info()
    }
}

impl<'q> sqlx::Encode<'q, sqlx::Sqlite> for Timestamp {
    fn encode_by_ref(
        &self,
        buf: &mut Vec<sqlx::sqlite::SqliteArgumentValue<'q>>,
    ) -> Result<IsNull, BoxDynError> {
        // `YYYY-MM-DDTHH:MM:SS.ffffffZ`: RFC 3339, so it decodes as before,
        // and text order is time order.
        let t = self.0.to_offset(time::UtcOffset::UTC);
        let text = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.microsecond()
        );
        <String as sqlx::Encode<'q, sqlx::Sqlite>>::encode(text, buf)
    }
}

impl sqlx::Type<sqlx::Postgres> for Timestamp {
    fn type_info() -> sqlx::postgres::PgTypeInfo {
        <time::OffsetDateTime as sqlx::Type<sqlx::Postgres>>::type_info()
    }
}

impl sqlx::Encode<'_, sqlx::Postgres> for Timestamp {
    fn encode_by_ref(
        &self,
        buf: &mut sqlx::postgres::PgArgumentBuffer,
    ) -> Result<IsNull, BoxDynError> {
        <time::OffsetDateTime as sqlx::Encode<'_, sqlx::Postgres>>::encode_by_ref(&self.0, buf)
    }
}

/// How many rows a statement changed: each driver's result type says it
/// with a method of its own, so generic code asks through this.
pub trait RowsAffected {
    /// The number of rows the statement inserted, updated or deleted.
    fn rows_affected(&self) -> u64;
}

impl RowsAffected for sqlx::postgres::PgQueryResult {
    fn rows_affected(&self) -> u64 {
        sqlx::postgres::PgQueryResult::rows_affected(self)
    }
}

impl RowsAffected for sqlx::sqlite::SqliteQueryResult {
    fn rows_affected(&self) -> u64 {
        sqlx::sqlite::SqliteQueryResult::rows_affected(self)
    }
}

/// A statement whose text holds a list of values (`IN (…)`), written with
/// the placeholders and arguments sqlx's `QueryBuilder` gives it. Generic
/// code cannot run a `QueryBuilder`'s query: the builder lends its
/// arguments for as long as it lives, and without knowing the database the
/// compiler cannot end that loan before the builder is dropped. This one
/// hands its text and arguments over ([`ListStatement::finish`]).
pub(super) struct ListStatement<'a, DB: sqlx::Database> {
    sql: String,
    args: DB::Arguments<'a>,
    /// The first value that could not be bound, reported by `finish`.
    error: Option<BoxDynError>,
}

impl<'a, DB: sqlx::Database> ListStatement<'a, DB> {
    /// A statement beginning with `sql`.
    pub(super) fn new(sql: &str) -> Self {
        Self {
            sql: sql.to_owned(),
            args: Default::default(),
            error: None,
        }
    }

    /// Appends text.
    pub(super) fn push(&mut self, text: &str) -> &mut Self {
        self.sql.push_str(text);
        self
    }

    /// Appends a placeholder bound to `value`.
    pub(super) fn push_bind<T>(&mut self, value: T) -> &mut Self
    where
        T: 'a + sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    {
        use sqlx::Arguments as _;
        if let Err(e) = self.args.add(value) {
            self.error.get_or_insert(e);
        }
        if let Err(e) = self.args.format_placeholder(&mut self.sql) {
            self.error.get_or_insert(Box::new(e));
        }
        self
    }

    /// Appends `values` as placeholders separated by `, `.
    pub(super) fn push_binds<T>(&mut self, values: impl IntoIterator<Item = T>) -> &mut Self
    where
        T: 'a + sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    {
        for (i, value) in values.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.push_bind(value);
        }
        self
    }

    /// The statement's text and arguments, for `sqlx::query_as_with`.
    pub(super) fn finish(self) -> Result<(String, DB::Arguments<'a>), sqlx::Error> {
        match self.error {
            Some(e) => Err(sqlx::Error::Encode(e)),
            None => Ok((self.sql, self.args)),
        }
    }
}
