//! A turn: the user's message, then the model and its tools until the
//! model answers.
//!
//! Three layers, each usable alone:
//! - [`ask`]: one request to the provider, tried again as
//!   [`crate::retry`] describes (never after part of the reply was shown);
//! - [`respond`]: the tool loop, which asks, runs the tools the model
//!   calls, and asks again, until the model answers without calls; it
//!   returns what the turn added and saves nothing;
//! - [`run_turn`]: loads the session, responds, and saves the turn once,
//!   whole. A failed turn changes nothing in the session; a turn whose
//!   reply was shown but could not be saved is kept beside it.

use std::io::Write;
use std::time::Duration;

use crate::config::Settings;
use crate::conversation::{window, Message, Part, Role, ToolResult};
use crate::error::Error;
use crate::home::Home;
use crate::provider::{self, Ask, Reply, ToolSpec};
use crate::session::{Sessions, Skipped};
use crate::tools::{Toolbox, MAX_REPEATS};
use crate::{http, retry, secrets};

/// The longest message a user may send in one turn.
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;

/// What to do in one turn.
#[derive(Debug, Clone)]
pub struct Turn<'a> {
    pub session: &'a str,
    pub message: &'a str,
    /// Ask for streamed replies and show them piece by piece.
    pub stream: bool,
}

/// What a completed turn produced.
#[derive(Debug)]
pub struct Outcome {
    /// Everything the assistant said in the turn, as it was shown.
    pub reply: String,
    /// The messages the turn added to the session, the user's first.
    pub messages: Vec<Message>,
    /// Requests made to the provider, retries included.
    pub requests: u32,
}

/// Things worth telling the person while a turn runs.
#[derive(Debug)]
pub enum Notice<'a> {
    /// A line of the session file could not be read and was left out.
    Skipped(&'a Skipped),
    /// An attempt failed and another follows after `delay`.
    Retrying {
        /// 1 for the first retry.
        retry: u32,
        max_retries: u32,
        delay: Duration,
        cause: &'a Error,
    },
    /// Characters arrived broken (a stream cut through a character) and
    /// were shown as U+FFFD.
    Repaired(usize),
    /// A tool ran. `summary` is already one clean line.
    Tool {
        name: &'a str,
        summary: &'a str,
        is_error: bool,
    },
}

/// Where a turn's text and notices go.
pub struct Sink<'a> {
    /// Reply text, as it arrives.
    pub text: &'a mut dyn FnMut(&str) -> Result<(), Error>,
    pub notice: &'a mut dyn FnMut(Notice<'_>),
}

/// One request for `request`, tried again while the failure is worth it.
pub fn ask(settings: &Settings, request: &Ask<'_>, sink: &mut Sink<'_>) -> Result<Reply, Error> {
    let http_request = provider::request(settings, request)?;
    let max_retries = settings.provider.max_retries;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut shown = false;
        let result = http::send(&http_request)
            .map_err(Error::from)
            .and_then(|response| {
                provider::read_reply(settings, response, request.stream, &mut |text| {
                    shown |= !text.is_empty();
                    (sink.text)(text)
                })
            });
        match result {
            Ok(reply) => {
                if reply.repaired > 0 {
                    (sink.notice)(Notice::Repaired(reply.repaired));
                }
                return Ok(reply);
            }
            Err(err) if attempt <= max_retries && retry::is_retryable(&err, shown) => {
                let retry_after = match &err {
                    Error::Status { retry_after, .. } => *retry_after,
                    _ => None,
                };
                let delay = retry::delay(attempt, retry_after);
                (sink.notice)(Notice::Retrying {
                    retry: attempt,
                    max_retries,
                    delay,
                    cause: &err,
                });
                std::thread::sleep(delay);
            }
            Err(err) => return Err(err),
        }
    }
}

/// The model and its tools until the model answers without calling one.
/// `conversation` ends with the new user message; the messages the turn
/// adds are appended to it and their number returned. Nothing is saved.
pub fn respond(
    settings: &Settings,
    tools: &Toolbox,
    conversation: &mut Vec<Message>,
    stream: bool,
    sink: &mut Sink<'_>,
) -> Result<usize, Error> {
    let start = conversation.len();
    let max_rounds = tools.settings().max_iterations;
    // Earlier calls in the history are read against their definitions, so
    // a turn without tools still lists them, with calling switched off.
    let earlier_calls = conversation
        .iter()
        .any(|m| m.parts.iter().any(|p| !matches!(p, Part::Text(_))));
    let specs: Vec<ToolSpec> = match (tools.is_empty(), earlier_calls) {
        (false, _) => tools.specs(),
        (true, true) => Toolbox::every_spec(),
        (true, false) => Vec::new(),
    };
    let mut last_round = String::new();
    let mut repeats = 0;
    for round in 1.. {
        let request = Ask {
            history: conversation,
            tools: &specs,
            may_call: !tools.is_empty(),
            stream,
        };
        let mut ended_line = true;
        let reply = ask(
            settings,
            &request,
            &mut Sink {
                text: &mut |text: &str| {
                    ended_line = text.ends_with('\n');
                    (sink.text)(text)
                },
                notice: &mut *sink.notice,
            },
        )?;
        if !reply.text.is_empty() && !ended_line {
            (sink.text)("\n")?;
        }
        conversation.push(reply.message());
        if reply.calls.is_empty() {
            return Ok(conversation.len() - start);
        }
        if round >= max_rounds {
            return Err(Error::ToolLimit { rounds: max_rounds });
        }
        // The same calls again and again: the model is stuck.
        let this_round = signature(&reply);
        repeats = if this_round == last_round {
            repeats + 1
        } else {
            1
        };
        if repeats >= MAX_REPEATS {
            let call = &reply.calls[0];
            return Err(Error::ToolRepeat {
                name: call.name.clone(),
                times: repeats,
            });
        }
        last_round = this_round;
        for call in &reply.calls {
            let outcome = tools.run(call);
            let summary = secrets::one_line(&outcome.summary);
            (sink.notice)(Notice::Tool {
                name: &call.name,
                summary: &summary,
                is_error: outcome.is_error,
            });
            conversation.push(Message::new(
                Role::Tool,
                vec![Part::Result(ToolResult {
                    call_id: call.id.clone(),
                    name: call.name.clone(),
                    content: outcome.content,
                    is_error: outcome.is_error,
                })],
            ));
        }
    }
    unreachable!("the loop returns")
}

/// The calls of one reply as text, to notice a model asking the same again.
fn signature(reply: &Reply) -> String {
    let mut calls: Vec<String> = reply
        .calls
        .iter()
        .map(|c| {
            let args = provider::arguments_object(&c.arguments)
                .map_or_else(|| c.arguments.clone(), |a| a.to_text());
            format!("{} {args}", c.name)
        })
        .collect();
    calls.sort();
    calls.join("\n")
}

/// Checks a message a person sends: not empty, not too long.
pub fn check_message(message: &str) -> Result<&str, Error> {
    let message = message.trim();
    if message.is_empty() {
        return Err(Error::Usage("the message is empty".into()));
    }
    if message.len() > MAX_MESSAGE_BYTES {
        return Err(Error::Usage(format!(
            "the message is longer than {MAX_MESSAGE_BYTES} bytes"
        )));
    }
    Ok(message)
}

/// Runs one turn of a saved session: loads its recent history, responds
/// (text to `out` as it arrives), then saves the user message and all the
/// turn added in one append.
pub fn run_turn(
    home: &Home,
    settings: &Settings,
    tools: &Toolbox,
    turn: &Turn<'_>,
    out: &mut dyn Write,
    notice: &mut dyn FnMut(Notice<'_>),
) -> Result<Outcome, Error> {
    let message = check_message(turn.message)?;
    let sessions = Sessions::new(home);
    let session = sessions.load_recent(turn.session, settings.memory_window)?;
    for skipped in &session.skipped {
        notice(Notice::Skipped(skipped));
    }
    let mut conversation = window(&session.messages, settings.memory_window).to_vec();
    drop(session);
    let start = conversation.len();
    conversation.push(Message::text(Role::User, message));

    let mut reply = String::new();
    let mut requests = 0;
    let result = respond(
        settings,
        tools,
        &mut conversation,
        turn.stream,
        &mut Sink {
            text: &mut |text: &str| {
                reply.push_str(text);
                print(out, text)
            },
            notice: &mut |n: Notice<'_>| {
                if matches!(n, Notice::Retrying { .. }) {
                    requests += 1;
                }
                notice(n)
            },
        },
    );
    if let Err(err) = result {
        if !reply.is_empty() && !reply.ends_with('\n') {
            let _ = print(out, "\n"); // end the partial reply's line
        }
        return Err(err);
    }
    let messages = conversation.split_off(start);
    requests += messages
        .iter()
        .filter(|m| m.role == Role::Assistant)
        .count() as u32;
    save(&sessions, turn.session, &messages)?;
    Ok(Outcome {
        reply,
        messages,
        requests,
    })
}

/// Saves a turn. If that fails, the reply was already shown: the turn is
/// kept in a session of its own beside it, and the error says where.
pub fn save(sessions: &Sessions<'_>, key: &str, messages: &[Message]) -> Result<(), Error> {
    let Err(cause) = sessions.append(key, messages) else {
        return Ok(());
    };
    let kept = format!("{key}.unsaved-{}", crate::time::now().replace(':', ""));
    let kept = match sessions.append(&kept, messages) {
        Ok(()) => Some(kept),
        Err(_) => None,
    };
    Err(Error::NotSaved {
        session: key.to_owned(),
        cause: Box::new(cause),
        kept,
    })
}

/// Writes text to the person's output at once (flushed), so streamed
/// replies appear as they arrive.
pub fn print(out: &mut dyn Write, text: &str) -> Result<(), Error> {
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(Error::Output)
}
