//! [`HarnessError`]: why setting up, starting or waiting on a machine failed.

use std::fmt;
use std::io;
use std::process::ExitStatus;
use std::time::Duration;

/// How many transcript lines an error message quotes.
pub(crate) const TAIL_LINES: usize = 60;

/// Why waiting on a machine failed. `Display` quotes the end of the transcript.
#[derive(Debug)]
pub enum HarnessError {
    /// The environment is not set up (message says how to fix it).
    Setup(String),
    /// Starting or talking to QEMU failed.
    Io(io::Error),
    /// A QMP command failed or QEMU's QMP socket did not answer (message says which).
    Qmp(String),
    /// `what` did not happen within `waited`.
    Timeout {
        /// What was awaited.
        what: String,
        /// How long the harness waited.
        waited: Duration,
        /// The last lines of the transcript (and QEMU's stderr, if any).
        tail: String,
    },
    /// QEMU exited before `what` happened.
    Exited {
        /// What was awaited.
        what: String,
        /// QEMU's exit status, if it was collected.
        status: Option<ExitStatus>,
        /// The last lines of the transcript (and QEMU's stderr, if any).
        tail: String,
    },
}

impl fmt::Display for HarnessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HarnessError::Setup(message) => write!(f, "{message}"),
            HarnessError::Io(error) => write!(f, "QEMU i/o error: {error}"),
            HarnessError::Qmp(message) => write!(f, "QMP: {message}"),
            HarnessError::Timeout { what, waited, tail } => write!(
                f,
                "timed out after {:.1} s waiting for {what}\n--- last {TAIL_LINES} lines of the console ---\n{tail}",
                waited.as_secs_f64()
            ),
            HarnessError::Exited { what, status, tail } => {
                let status = status.map_or_else(|| "unknown status".to_owned(), |s| s.to_string());
                write!(
                    f,
                    "QEMU exited ({status}) while waiting for {what}\n--- last {TAIL_LINES} lines of the console ---\n{tail}"
                )
            }
        }
    }
}

impl std::error::Error for HarnessError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HarnessError::Io(error) => Some(error),
            _ => None,
        }
    }
}

impl From<io::Error> for HarnessError {
    fn from(error: io::Error) -> Self {
        HarnessError::Io(error)
    }
}

/// `error` with `what` as the thing that was awaited.
pub(crate) fn rename(error: HarnessError, what: &str) -> HarnessError {
    match error {
        HarnessError::Timeout { waited, tail, .. } => HarnessError::Timeout {
            what: what.to_owned(),
            waited,
            tail,
        },
        HarnessError::Exited { status, tail, .. } => HarnessError::Exited {
            what: what.to_owned(),
            status,
            tail,
        },
        other => other,
    }
}
