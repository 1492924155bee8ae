//! The agent as a library component (`wit/clawft.wit`): the exported
//! `clawft:agent/agent` interface, for any WASI 0.2 host to call. The
//! same core as the command: config and sessions from the preopened home,
//! the provider through `wasi:http`, the turn engine of [`crate::agent`].
//!
//! The binary that ships it calls [`export!`](crate::export_library) with
//! [`Library`]; this module only implements the interface.

use std::cell::RefCell;

use crate::agent::{self, Event, Run};
use crate::config::env;
use crate::error::Error as Failure;
use crate::home::Home;
use crate::http::HttpError;
use crate::session::Sessions;

wit_bindgen::generate!({
    world: "library",
    path: "wit",
    pub_export_macro: true,
    export_macro_name: "export_library",
    default_bindings_module: "clawft::component",
});

use exports::clawft::agent::agent::{
    Error, Guest, GuestTurnStream, Message, Options, ProviderStatus, SessionInfo, TurnRequest,
    TurnStream,
};

/// The implementation of `clawft:agent/agent`.
pub struct Library;

/// Every agent error as the interface's case for it.
impl From<Failure> for Error {
    fn from(err: Failure) -> Error {
        let text = err.to_string();
        let status = |provider: String, status: u16, message: String| ProviderStatus {
            provider,
            status,
            message,
        };
        match err {
            Failure::Usage(_) | Failure::SessionKey { .. } => Error::Usage(text),
            Failure::Config(_) => Error::Config(text),
            Failure::NoSuchSession(_) => Error::NoSuchSession(text),
            Failure::Http(HttpError::Timeout { .. }) => Error::Timeout(text),
            // A bad api_base or header is the config's fault, not the network's.
            Failure::Http(HttpError::InvalidUrl(_) | HttpError::InvalidRequest(_)) => {
                Error::Config(text)
            }
            Failure::Http(_) => Error::HttpUnavailable(text),
            Failure::InvalidApiKey {
                provider,
                status: code,
                message,
            } => Error::InvalidApiKey(status(provider, code, message)),
            Failure::Status {
                provider,
                status: code,
                message,
                ..
            } => Error::ProviderStatus(status(provider, code, message)),
            Failure::ProviderError { .. }
            | Failure::BadReply { .. }
            | Failure::StreamInterrupted { .. } => Error::ProviderReply(text),
            Failure::ToolLimit { .. } | Failure::ToolRepeat { .. } => Error::ToolLimit(text),
            Failure::Sandbox { .. }
            | Failure::Io { .. }
            | Failure::Output(_)
            | Failure::NotSaved { .. }
            | Failure::TurnsFailed { .. } => Error::Storage(text),
        }
    }
}

/// A turn ready to run: its engine and where to save it.
struct Prepared {
    run: Run,
    home: Home,
    session: String,
    /// The user's message, first of what the turn adds.
    start: usize,
}

fn prepare(request: TurnRequest) -> Result<Prepared, Failure> {
    let TurnRequest {
        session,
        message,
        options: Options {
            model,
            stream,
            tools,
        },
    } = request;
    let (home, settings, toolbox) = agent::prepare(model.as_deref(), tools)?;
    let sessions = Sessions::new(&home);
    let conversation = agent::history(&sessions, &settings, &session, &message, &mut |_| {})?;
    let start = conversation.len() - 1;
    Ok(Prepared {
        run: Run::new(settings, toolbox, conversation, stream),
        home,
        session,
        start,
    })
}

impl Prepared {
    /// The next piece of text, or `None` once the turn is complete and saved.
    fn next_text(&mut self) -> Result<Option<String>, Failure> {
        while let Some(event) = self.run.next()? {
            if let Event::Text(text) = event {
                return Ok(Some(text));
            }
        }
        let added = &self.run.conversation()[self.start..];
        agent::save(&Sessions::new(&self.home), &self.session, added)?;
        Ok(None)
    }
}

impl Guest for Library {
    type TurnStream = Stream;

    fn turn(request: TurnRequest) -> Result<String, Error> {
        let mut turn = prepare(request)?;
        let mut reply = String::new();
        while let Some(text) = turn.next_text()? {
            reply.push_str(&text);
        }
        Ok(reply)
    }

    fn start_turn(request: TurnRequest) -> Result<TurnStream, Error> {
        let turn = prepare(request)?;
        Ok(TurnStream::new(Stream(RefCell::new(Turn::Running(
            Box::new(turn),
        )))))
    }

    fn list_sessions() -> Result<Vec<SessionInfo>, Error> {
        let home = Home::discover(env)?;
        let listing = Sessions::new(&home).list()?;
        Ok(listing
            .sessions
            .into_iter()
            .map(|s| SessionInfo {
                key: s.key,
                messages: u32::try_from(s.messages).unwrap_or(u32::MAX),
                updated: s.updated,
            })
            .collect())
    }

    fn show_session(key: String) -> Result<Vec<Message>, Error> {
        let home = Home::discover(env)?;
        let session = Sessions::new(&home).load(&key)?;
        if !session.exists {
            return Err(Failure::NoSuchSession(key).into());
        }
        Ok(session
            .messages
            .iter()
            .map(|m| Message {
                role: m.role.name().to_owned(),
                text: m.as_text().trim_end_matches('\n').to_owned(),
                timestamp: m.timestamp.clone(),
            })
            .collect())
    }

    fn remove_session(key: String) -> Result<(), Error> {
        let home = Home::discover(env)?;
        Ok(Sessions::new(&home).remove(&key)?)
    }

    fn status() -> String {
        crate::cli::status_report().to_pretty_text()
    }
}

/// A running turn. Methods take `&self`, so the turn sits in a cell; a
/// dropped stream saves nothing.
pub struct Stream(RefCell<Turn>);

enum Turn {
    Running(Box<Prepared>),
    /// Complete and saved: `next` keeps answering none.
    Complete,
    /// Ended by an error, already reported: `next` says so, rather than a
    /// none that would claim the turn was saved.
    Failed,
}

impl GuestTurnStream for Stream {
    fn next(&self) -> Result<Option<String>, Error> {
        let mut turn = self.0.borrow_mut();
        let Turn::Running(running) = &mut *turn else {
            return match *turn {
                Turn::Failed => Err(Error::Usage(
                    "this turn already ended with the error reported before".into(),
                )),
                _ => Ok(None),
            };
        };
        match running.next_text() {
            Ok(Some(text)) => Ok(Some(text)),
            Ok(None) => {
                *turn = Turn::Complete;
                Ok(None)
            }
            Err(err) => {
                *turn = Turn::Failed;
                Err(err.into())
            }
        }
    }
}
