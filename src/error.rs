//! The error type every layer returns, and the documented process exit codes it maps to.

use std::fmt;

/// Process exit codes (README "Exit codes"). nccl-tests' own codes are noted where ours differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum ExitCode {
    Success = 0,
    /// A bug in collbench (a panic, an internal invariant).
    Internal = 1,
    /// Bad command line (nccl-tests uses 6; 2 is the convention of clap and most Unix tools).
    Usage = 2,
    /// A communication or device library failed: NCCL, RCCL, CUDA, HIP or MPI.
    Library = 3,
    /// An operation did not finish within -T seconds.
    Timeout = 4,
    /// Not enough devices, or something this backend or library cannot do.
    Unsupported = 5,
    /// The correctness check found wrong elements (as nccl-tests).
    CheckFailed = 7,
    /// A --expect rule of the gate failed.
    GateFailed = 8,
    /// `collbench compare` found a regression.
    Regression = 9,
    /// A results file could not be written or read.
    Io = 10,
}

impl ExitCode {
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// What went wrong, with enough context for a user on a cluster to act on it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Usage(String),
    /// A library call failed; `detail` carries the library's own words.
    #[error("{library} error on rank {rank} ({host}): {call}: {detail}")]
    Library {
        library: String,
        call: String,
        detail: String,
        rank: usize,
        host: String,
    },
    #[error("timeout on rank {rank} ({host}): {what} did not finish within {seconds} s")]
    Timeout {
        what: String,
        seconds: f64,
        rank: usize,
        host: String,
    },
    #[error("{0}")]
    Unsupported(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::Usage(_) => ExitCode::Usage,
            Error::Library { .. } => ExitCode::Library,
            Error::Timeout { .. } => ExitCode::Timeout,
            Error::Unsupported(_) => ExitCode::Unsupported,
            Error::Io { .. } => ExitCode::Io,
            Error::Internal(_) => ExitCode::Internal,
        }
    }

    pub fn usage(message: impl fmt::Display) -> Self {
        Error::Usage(message.to_string())
    }

    pub fn io(context: impl fmt::Display, source: std::io::Error) -> Self {
        Error::Io {
            context: context.to_string(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
