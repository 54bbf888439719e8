//! The one error type of `chat-shared`: store outcomes in domain terms,
//! token and key failures, and configuration mistakes.

/// What can go wrong in the shared core.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The thing named does not exist.
    #[error("not found")]
    NotFound,
    /// A uniqueness rule would be broken (the value says which).
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// The user is not a member of the room.
    #[error("not a member of the room")]
    NotMember,
    /// The user is banned from the room.
    #[error("banned from the room")]
    Banned,
    /// The acting user's role, as it is at the commit, does not allow the
    /// change (checked inside the change's transaction).
    #[error("your role does not allow this")]
    NotAllowed,
    /// A field names something it may not (a reply to a message that is
    /// not in the room); the text says which and why.
    #[error("{0}")]
    Invalid(&'static str),
    /// The database failed or could not be reached.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The store could not take a write now (its disk is full or
    /// read-only, its writer stopped, its connection died before the
    /// commit answered). Nothing was acknowledged; whether the write
    /// landed is for a retry with the same `client_id` to find out.
    #[error("the store refused the write: {0}")]
    Unavailable(String),
    /// A migration failed at start-up.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// An access token failed verification (bad signature, algorithm,
    /// issuer, audience, or expired).
    #[error("invalid access token: {0}")]
    InvalidToken(#[from] jsonwebtoken::errors::Error),
    /// A signing or verification key could not be read, parsed or written.
    #[error("{0}")]
    Key(String),
    /// An environment variable has a value that cannot be used.
    #[error("{0}")]
    Config(String),
    /// The bus (Redis) failed or could not be reached.
    #[error("bus error: {0}")]
    Bus(String),
    /// A file or socket operation failed (data dir, listener).
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Result with the shared error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// What a conflict the store reports about a message means to the
    /// person who asked (the api and the gateway say the same), by its
    /// code; `None` for the conflicts that are not about messages.
    pub fn message_conflict(code: &str) -> Option<&'static str> {
        Some(match code {
            "message_deleted" => "the message was deleted",
            "already_reacted" => "you already reacted with that emoji",
            "not_reacted" => "you have not reacted with that emoji",
            "too_many_reactions" => "a message takes at most 20 different emoji",
            "already_pinned" => "the message is already pinned",
            "not_pinned" => "the message is not pinned",
            "too_many_pins" => "a room has at most 50 pinned messages",
            _ => return None,
        })
    }

    /// Whether the failure is the database being unreachable, saturated or
    /// out of room (worth a 503 and a retry) rather than a bug.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Unavailable(_) => true,
            Self::Database(
                sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed,
            ) => true,
            Self::Database(sqlx::Error::Database(e)) => storage_refused(e.as_ref()),
            _ => false,
        }
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
    use super::{postgres_refused, sqlite_refused};

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
}
