//! One error type for the extension, mapped to SQLSTATEs when it reaches SQL.
//! Messages never carry secrets: the salesforce crate redacts them at the source.

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{PgLogLevel, PgSqlErrorCode};

#[derive(thiserror::Error, Debug)]
pub enum SyncError {
    /// A bad argument from the caller: says which and why.
    #[error("{0}")]
    Invalid(String),
    /// The caller lacks a privilege: the message names the function and the grant needed.
    #[error("{0}")]
    Denied(String),
    /// Something named doesn't exist (connection, table, field...).
    #[error("{0}")]
    NotFound(String),
    /// Salesforce refused or failed the request.
    #[error("Salesforce: {0}")]
    Salesforce(#[from] salesforce::Error),
    /// An SPI statement failed.
    #[error("database: {0}")]
    Spi(String),
    /// A write-through call Salesforce refused or failed; the message is complete (it names
    /// the table, the key and Salesforce's errorCode, message and fields).
    #[error("{0}")]
    External(String),
    /// A value Salesforce would refuse, found before sending (write-through): the message
    /// names the table, the key, the field and Salesforce's code for it.
    #[error("{0}")]
    BadValue(String),
    /// A write-through call that never got an answer (connection refused, timeout).
    #[error("{0}")]
    Unreachable(String),
    /// A stored connection cannot log in as stored: its secret is missing (not part of a
    /// dump) or its secret file cannot be read. Says how to enter it again.
    #[error("{0}")]
    Credentials(String),
    /// The installed library is newer than this database's catalog (before `ALTER EXTENSION
    /// sfsync UPDATE`): says so and what to run.
    #[error("{0}")]
    Outdated(String),
    /// A table's mapping changed (an ALTER TABLE committed) after this pass read it: the
    /// step is left to the next pass, which reads the mappings again.
    #[error("{0}")]
    Stale(String),
}

impl From<pgrx::spi::Error> for SyncError {
    fn from(e: pgrx::spi::Error) -> Self {
        SyncError::Spi(e.to_string())
    }
}

pub type Result<T, E = SyncError> = std::result::Result<T, E>;

impl SyncError {
    fn sqlstate(&self) -> PgSqlErrorCode {
        match self {
            SyncError::Invalid(_) => PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            SyncError::NotFound(_) => PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            SyncError::Denied(_) => PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            SyncError::Salesforce(e) => match e {
                salesforce::Error::Auth { .. } => PgSqlErrorCode::ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION,
                salesforce::Error::Transport(_) => PgSqlErrorCode::ERRCODE_CONNECTION_FAILURE,
                salesforce::Error::Config(_) => PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                _ => PgSqlErrorCode::ERRCODE_EXTERNAL_ROUTINE_EXCEPTION,
            },
            SyncError::Spi(_) => PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            SyncError::External(_) => PgSqlErrorCode::ERRCODE_EXTERNAL_ROUTINE_EXCEPTION,
            SyncError::Unreachable(_) => PgSqlErrorCode::ERRCODE_CONNECTION_FAILURE,
            SyncError::BadValue(_) => PgSqlErrorCode::ERRCODE_DATA_EXCEPTION,
            SyncError::Credentials(_) => PgSqlErrorCode::ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION,
            SyncError::Outdated(_) | SyncError::Stale(_) => PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        }
    }

    /// Raises this error as a Postgres ERROR (never returns).
    pub fn raise(self) -> ! {
        ErrorReport::new(self.sqlstate(), self.to_string(), "sfsync").report(PgLogLevel::ERROR);
        unreachable!()
    }
}

/// Unwraps or raises: the bridge from `Result` to SQL-facing functions.
pub trait OrRaise<T> {
    fn or_raise(self) -> T;
}

impl<T> OrRaise<T> for Result<T> {
    fn or_raise(self) -> T {
        self.unwrap_or_else(|e| e.raise())
    }
}
