//! The crate's top-level error, and the one place that maps it to an exit code.

use crate::config::ConfigError;

/// What a command decided, when it ran to the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything asked for is online / done.
    Success,
    /// Some service is not online, failed or blocked (already reported).
    NotOnline,
    /// Stopped by this signal (Ctrl-C in `up`): exit 128 + signal, as
    /// shells expect (130 for SIGINT).
    Interrupted { signal: i32 },
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Usage(String),
    /// A service failed; the message says which and why.
    #[error("{0}")]
    Service(String),
    #[error("{0}")]
    Other(String),
    /// An operation failed; `context` says which.
    #[error("{context}: {source}")]
    Failed {
        context: String,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The supervisor refused the request.
    #[error("{message}")]
    Refused {
        kind: crate::control::ErrorKind,
        message: String,
    },
}

impl Error {
    /// Exit codes, the same for every command (see SPEC.md).
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_) | Error::Usage(_) => 2,
            Error::Service(_) | Error::Other(_) | Error::Failed { .. } => 1,
            Error::Refused { kind, .. } => kind.exit_code(),
        }
    }

    pub fn other(
        context: impl std::fmt::Display,
        err: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Error::Failed {
            context: context.to_string(),
            source: err.into(),
        }
    }
}

impl From<crate::graph::SelectError> for Error {
    fn from(e: crate::graph::SelectError) -> Self {
        Error::Usage(e.to_string())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
