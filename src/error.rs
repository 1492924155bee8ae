//! One error type for the whole agent.
//!
//! Every variant is something a caller can match on and a person can read:
//! `Display` is a single line meant for stderr. Secrets never reach these
//! messages; text that came from a provider is passed through
//! [`crate::provider::clean`] (redacted, one line) before it is stored here.

use std::fmt;
use std::io;

use crate::http::HttpError;
use crate::secrets::quoted;

/// Everything that can go wrong in clawft.
#[derive(Debug)]
pub enum Error {
    /// The command line could not be understood.
    Usage(String),
    /// The configuration is missing something or is malformed.
    Config(String),
    /// A path would leave the clawft home directory.
    Sandbox { path: String, reason: &'static str },
    /// A session key is not acceptable as a file name.
    SessionKey { key: String, reason: &'static str },
    /// The named session does not exist.
    NoSuchSession(String),
    /// Reading or writing a file failed.
    Io { path: String, source: io::Error },
    /// The request never got an answer: no HTTP, unreachable, timed out, TLS.
    Http(HttpError),
    /// The provider refused the credentials (HTTP 401 or 403).
    InvalidApiKey {
        provider: String,
        status: u16,
        message: String,
    },
    /// The provider answered with another non-success status.
    Status {
        provider: String,
        status: u16,
        message: String,
        /// How long the provider asked us to wait (`Retry-After`).
        retry_after: Option<std::time::Duration>,
    },
    /// The provider reported an error inside a streamed reply.
    ProviderError {
        provider: String,
        message: String,
        /// Its type (`overloaded_error`, `invalid_request_error`, ...).
        kind: Option<String>,
    },
    /// The reply was not in the shape the protocol promises.
    BadReply { provider: String, detail: String },
    /// A streamed reply stopped before the provider said it was complete.
    StreamInterrupted { provider: String, detail: String },
    /// Writing the reply to the caller's output failed (for example a closed pipe).
    Output(io::Error),
    /// Some turns of an interactive run failed (each was reported as it
    /// happened; the others were saved).
    TurnsFailed { failed: usize, of: usize },
    /// The model was still calling tools when the turn's round limit
    /// (`agents.defaults.max_tool_iterations`) was reached.
    ToolLimit { rounds: u32 },
    /// The model made the same tool calls round after round.
    ToolRepeat { name: String, times: usize },
    /// The reply was shown but the turn could not be saved; `kept` names
    /// the session it was kept in instead, if that worked.
    NotSaved {
        session: String,
        cause: Box<Error>,
        kept: Option<String>,
    },
}

impl Error {
    /// The process exit code for this error: 2 for usage and configuration
    /// mistakes the user can fix before running again, 1 for failures at run time.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) | Error::Config(_) | Error::SessionKey { .. } => 2,
            _ => 1,
        }
    }

    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl fmt::Display, source: io::Error) -> Self {
        Error::Io {
            path: path.to_string(),
            source,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(msg) => write!(f, "{msg} (see `weft --help`)"),
            Error::Config(msg) => write!(f, "config: {msg}"),
            Error::Sandbox { path, reason } => write!(f, "refused path '{path}': {reason}"),
            Error::SessionKey { key, reason } => {
                write!(f, "invalid session key {}: {reason}", quoted(key))
            }
            Error::NoSuchSession(key) => write!(f, "no session named {}", quoted(key)),
            Error::Io { path, source } => write!(f, "{path}: {source}"),
            Error::Http(err) => err.fmt(f),
            Error::InvalidApiKey {
                provider,
                status,
                message,
            } => write!(
                f,
                "Invalid API key for provider '{provider}' (HTTP {status}): {message}"
            ),
            Error::Status {
                provider,
                status,
                message,
                ..
            } => write!(f, "provider '{provider}' answered HTTP {status}: {message}"),
            Error::ProviderError {
                provider, message, ..
            } => {
                write!(f, "provider '{provider}' reported an error: {message}")
            }
            Error::BadReply { provider, detail } => {
                write!(
                    f,
                    "provider '{provider}' sent a reply clawft cannot read: {detail}"
                )
            }
            Error::StreamInterrupted { provider, detail } => {
                write!(f, "stream interrupted: provider '{provider}' {detail}")
            }
            Error::Output(err) => write!(f, "cannot write the reply: {err}"),
            Error::TurnsFailed { failed, of } => {
                write!(f, "{failed} of {of} turns failed; the others were saved")
            }
            Error::ToolLimit { rounds } => write!(
                f,
                "the model was still calling tools after {rounds} rounds, the limit \
                 (agents.defaults.max_tool_iterations); the turn was stopped"
            ),
            Error::ToolRepeat { name, times } => write!(
                f,
                "the model called {} with the same arguments {times} times in a row; \
                 the turn was stopped",
                quoted(name)
            ),
            Error::NotSaved {
                session,
                cause,
                kept,
            } => {
                write!(
                    f,
                    "the reply could not be saved to session {} ({cause})",
                    quoted(session)
                )?;
                match kept {
                    Some(kept) => write!(
                        f,
                        "; the turn was kept as session {} (weft sessions show {kept})",
                        quoted(kept)
                    ),
                    None => write!(
                        f,
                        ", nor kept beside it; it exists only in the output above"
                    ),
                }
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } | Error::Output(source) => Some(source),
            Error::Http(err) => Some(err),
            Error::NotSaved { cause, .. } => Some(cause.as_ref()),
            _ => None,
        }
    }
}

impl From<HttpError> for Error {
    fn from(err: HttpError) -> Self {
        Error::Http(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unsaved_turn_says_where_it_is() {
        let unsaved = |kept: Option<&str>| Error::NotSaved {
            session: "work".into(),
            cause: Box::new(Error::Config("disk full".into())),
            kept: kept.map(str::to_owned),
        };
        assert_eq!(
            unsaved(Some("work.unsaved-1")).to_string(),
            "the reply could not be saved to session 'work' (config: disk full); the turn \
             was kept as session 'work.unsaved-1' (weft sessions show work.unsaved-1)"
        );
        assert_eq!(
            unsaved(None).to_string(),
            "the reply could not be saved to session 'work' (config: disk full), nor kept \
             beside it; it exists only in the output above"
        );
    }

    #[test]
    fn usage_and_config_errors_exit_with_2_others_with_1() {
        assert_eq!(Error::Usage("x".into()).exit_code(), 2);
        assert_eq!(Error::Config("x".into()).exit_code(), 2);
        assert_eq!(Error::NoSuchSession("x".into()).exit_code(), 1);
        let timeout = Error::Http(HttpError::Timeout {
            phase: crate::http::Phase::FirstByte,
            limit: std::time::Duration::from_secs(600),
        });
        assert_eq!(timeout.exit_code(), 1);
    }

    #[test]
    fn messages_carry_the_words_users_search_for() {
        let e = Error::InvalidApiKey {
            provider: "openai".into(),
            status: 401,
            message: "bad key".into(),
        };
        assert_eq!(
            e.to_string(),
            "Invalid API key for provider 'openai' (HTTP 401): bad key"
        );
        let e = Error::Http(HttpError::Timeout {
            phase: crate::http::Phase::FirstByte,
            limit: std::time::Duration::from_secs(600),
        });
        assert_eq!(
            e.to_string(),
            "Request timed out waiting for the response (limit 600 s)"
        );
        let e = Error::Http(HttpError::Unavailable("connection refused".into()));
        assert!(e.to_string().starts_with("HTTP unavailable"));
    }
}
