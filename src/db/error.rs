//! What went wrong with the database, and whether trying again can help. Classified by
//! SQLSTATE (https://www.postgresql.org/docs/current/errcodes-appendix.html).

use crate::rds_iam::RdsIamError;

/// Raised by the functions of the migrations when a write would change other rows than
/// the ones decided: the statement fails and commits nothing.
pub const INCONSISTENT: &str = "IV001";

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// A fault that can pass: a lost or refused connection, a lock wait or statement that
    /// timed out, a deadlock, a serialization failure, a server restarting or full.
    #[error("database unavailable{}: {source}", sqlstate_suffix(.sqlstate.as_deref()))]
    Transient {
        sqlstate: Option<String>,
        #[source]
        source: sqlx::Error,
    },
    /// The invocation's time ran out while waiting for the database.
    #[error("the database did not answer within the invocation's time")]
    OutOfTime,
    /// The same call would fail the same way: bad data, a schema that does not match the
    /// code (deployed before migrating), a constraint.
    #[error("database refused the call (SQLSTATE {sqlstate}): {source}")]
    Permanent {
        sqlstate: String,
        #[source]
        source: sqlx::Error,
    },
    /// A write would have broken all-or-nothing; it committed nothing.
    #[error("inconsistent inventory: {message}")]
    Inconsistent { message: String },
    /// The answer could not be read, or the call could not be written.
    #[error("cannot read the answer of {function}: {source}")]
    Decode {
        function: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("cannot sign in to the database: {0}")]
    Auth(#[from] RdsIamError),
}

fn sqlstate_suffix(sqlstate: Option<&str>) -> String {
    sqlstate
        .map(|code| format!(" (SQLSTATE {code})"))
        .unwrap_or_default()
}

/// Whether a SQLSTATE names a fault that can pass.
pub fn is_transient_sqlstate(code: &str) -> bool {
    matches!(
        code,
        // serialization_failure, deadlock_detected, lock_not_available, query_canceled
        // (statement or lock timeout), admin_shutdown, crash_shutdown, cannot_connect_now,
        // too_many_connections
        "40001" | "40P01" | "55P03" | "57014" | "57P01" | "57P02" | "57P03" | "53300"
    ) || code.starts_with("08")
}

impl DbError {
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Transient { .. } | Self::OutOfTime => true,
            Self::Auth(error) => error.is_retryable(),
            Self::Permanent { .. } | Self::Inconsistent { .. } | Self::Decode { .. } => false,
        }
    }

    /// The SQLSTATE the server answered, if it did.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            Self::Transient { sqlstate, .. } => sqlstate.as_deref(),
            Self::Permanent { sqlstate, .. } => Some(sqlstate),
            Self::Inconsistent { .. } => Some(INCONSISTENT),
            _ => None,
        }
    }

    /// The server cancelled the statement (57014): a statement timeout, or an operator.
    pub(super) fn is_statement_timeout(error: &sqlx::Error) -> bool {
        matches!(error, sqlx::Error::Database(database) if database.code().as_deref() == Some("57014"))
    }

    /// Whether the connection that gave this error must be closed: after anything but a
    /// server's error answer, it is in an unknown state.
    pub(super) fn breaks_connection(error: &sqlx::Error) -> bool {
        !matches!(error, sqlx::Error::Database(_))
    }
}

impl From<sqlx::Error> for DbError {
    fn from(error: sqlx::Error) -> Self {
        let code = match &error {
            sqlx::Error::Database(database) => database.code().map(|code| code.into_owned()),
            _ => None,
        };
        match code {
            Some(code) if code == INCONSISTENT => Self::Inconsistent {
                message: match &error {
                    sqlx::Error::Database(database) => database.message().to_owned(),
                    other => other.to_string(),
                },
            },
            Some(code) if is_transient_sqlstate(&code) => Self::Transient {
                sqlstate: Some(code),
                source: error,
            },
            Some(code) => Self::Permanent {
                sqlstate: code,
                source: error,
            },
            None => match error {
                // Dropped, refused or reset connections, TLS trouble, a pool or worker that
                // went away: another attempt, on a new connection, can succeed.
                sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::Protocol(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed => Self::Transient {
                    sqlstate: None,
                    source: error,
                },
                // A decode or configuration error comes back on every attempt.
                other => Self::Permanent {
                    sqlstate: "-----".into(),
                    source: other,
                },
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_sqlstates_are_the_ones_a_retry_can_mend() {
        for code in [
            "40001", "40P01", "55P03", "57014", "57P01", "08000", "08006", "08P01", "53300",
        ] {
            assert!(is_transient_sqlstate(code), "{code} should be transient");
        }
        for code in [
            "23505", "23503", "42P01", "42703", "42883", "22P02", "22001", "P0001", "28P01",
            "IV001",
        ] {
            assert!(!is_transient_sqlstate(code), "{code} should be permanent");
        }
    }

    /// A server's error answer with this SQLSTATE.
    #[derive(Debug)]
    struct Answered(&'static str);

    impl std::fmt::Display for Answered {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "error {}", self.0)
        }
    }

    impl std::error::Error for Answered {}

    impl sqlx::error::DatabaseError for Answered {
        fn message(&self) -> &str {
            "the server said no"
        }
        fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
            Some(self.0.into())
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> sqlx::error::ErrorKind {
            sqlx::error::ErrorKind::Other
        }
    }

    fn answered(code: &'static str) -> DbError {
        DbError::from(sqlx::Error::Database(Box::new(Answered(code))))
    }

    #[test]
    fn a_server_error_is_classified_by_its_sqlstate_and_keeps_it() {
        let deadlock = answered("40P01");
        let lock_timeout = answered("55P03");
        let missing_column = answered("42703");
        let duplicate = answered("23505");
        let mismatch = answered(INCONSISTENT);

        assert!(deadlock.is_retryable() && lock_timeout.is_retryable());
        assert!(!missing_column.is_retryable() && !duplicate.is_retryable());
        assert_eq!(missing_column.sqlstate(), Some("42703"));
        assert!(
            missing_column.to_string().contains("SQLSTATE 42703"),
            "{missing_column}"
        );
        assert!(matches!(mismatch, DbError::Inconsistent { .. }));
        assert!(!mismatch.is_retryable());
    }

    #[test]
    fn connection_faults_are_transient_and_decode_faults_permanent() {
        let refused = DbError::from(sqlx::Error::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        )));
        let pool = DbError::from(sqlx::Error::PoolTimedOut);
        let decode = DbError::from(sqlx::Error::ColumnNotFound("result".into()));
        let missing = DbError::from(sqlx::Error::RowNotFound);

        assert!(refused.is_retryable() && pool.is_retryable());
        assert!(!decode.is_retryable() && !missing.is_retryable());
        assert!(matches!(decode, DbError::Permanent { .. }));
    }

    #[test]
    fn running_out_of_time_is_retryable() {
        assert!(DbError::OutOfTime.is_retryable());
        assert!(
            !DbError::Inconsistent {
                message: "2 of 3 seats taken".into()
            }
            .is_retryable()
        );
    }
}
