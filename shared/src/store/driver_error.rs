//! Where a database driver's error becomes a domain error: the one place
//! the store's adapters meet `sqlx::Error`, so [`Error`] carries no driver
//! type and nothing above the store depends on the driver. A failure keeps
//! what callers act on (its text for the log, and whether the database
//! refused the work for now) and the rules the adapters map to domain
//! answers (a unique or foreign-key violation) are named here.

use super::Error;

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        Error::Database {
            unavailable: refused_for_now(&err),
            message: err.to_string(),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for Error {
    fn from(err: sqlx::migrate::MigrateError) -> Self {
        Error::Migrate(err.to_string())
    }
}

/// A value read back that the store never writes: a bug or a hand-edited
/// database, not an outage.
pub(super) fn corrupt(column: &str, value: &str) -> Error {
    Error::Database {
        message: format!("unexpected value {value:?} in {column}"),
        unavailable: false,
    }
}

/// Maps a foreign-key violation (a room or user that does not exist) to
/// `NotFound`; any other error passes through.
pub(super) fn missing_reference(err: sqlx::Error) -> Error {
    if err
        .as_database_error()
        .is_some_and(|e| e.is_foreign_key_violation())
    {
        Error::NotFound
    } else {
        err.into()
    }
}

/// Whether a sqlx error is the violation of a unique index or primary key.
pub(super) fn is_unique_violation(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .is_some_and(|e| e.is_unique_violation())
}

/// Whether the failure is the database being unreachable, saturated or out
/// of room (worth a 503 and a retry) rather than a bug.
fn refused_for_now(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => true,
        sqlx::Error::Database(e) => storage_refused(e.as_ref()),
        _ => false,
    }
}

/// Whether a database error says the storage refused the work rather than
/// the statement being wrong.
fn storage_refused(e: &dyn sqlx::error::DatabaseError) -> bool {
    let Some(code) = e.code() else {
        return false;
    };
    if e.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        code.parse().is_ok_and(sqlite_refused)
    } else {
        postgres_refused(&code)
    }
}

/// SQLite's result codes (the primary code is the low byte of an extended
/// one): BUSY, LOCKED, READONLY, IOERR, FULL, CANTOPEN.
fn sqlite_refused(code: u32) -> bool {
    matches!(code & 0xff, 5 | 6 | 8 | 10 | 13 | 14)
}

/// PostgreSQL's SQLSTATEs: connection exceptions (08), a read-only standby
/// (25006), insufficient resources such as a full disk (53), an operator's
/// shutdown (57P) and system I/O errors (58).
fn postgres_refused(sqlstate: &str) -> bool {
    ["08", "53", "57P", "58"]
        .iter()
        .any(|class| sqlstate.starts_with(class))
        || sqlstate == "25006"
}

#[cfg(test)]
mod tests {
    use super::{postgres_refused, sqlite_refused, Error};

    #[test]
    fn storage_failures_are_told_from_statement_errors() {
        // SQLITE_FULL, SQLITE_IOERR_WRITE, SQLITE_READONLY, SQLITE_BUSY.
        for refused in [13, 778, 8, 5] {
            assert!(sqlite_refused(refused), "{refused}");
        }
        // Constraint, unique, error (a trigger's RAISE).
        for statement in [19, 2067, 1] {
            assert!(!sqlite_refused(statement), "{statement}");
        }
        for refused in ["53100", "57P01", "58030", "08006", "25006"] {
            assert!(postgres_refused(refused), "{refused}");
        }
        // Unique violation, syntax, a raised exception.
        for statement in ["23505", "42601", "P0001"] {
            assert!(!postgres_refused(statement), "{statement}");
        }
    }

    #[test]
    fn a_pool_that_cannot_serve_is_unavailable_and_a_decode_failure_is_not() {
        assert!(Error::from(sqlx::Error::PoolTimedOut).is_unavailable());
        assert!(!Error::from(sqlx::Error::RowNotFound).is_unavailable());
    }
}
