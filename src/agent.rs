//! A turn: the user's message, then the model and its tools until the
//! model answers.
//!
//! One engine drives every turn, whoever asks: [`Run`] hands out what
//! happens, one [`Event`] at a time (text as it arrives, retries, tool
//! calls), so a host can pull a turn piece by piece (the component's
//! `turn-stream`). [`respond`] pushes the same events into callbacks (the
//! command line, the gateway), and [`run_turn`] loads and saves a session
//! around it.
//!
//! - Each request is tried again as [`crate::retry`] says, never after
//!   part of its reply was shown.
//! - The model's tool calls are run and answered, and the model asked
//!   again, until it answers without calls, up to
//!   `agents.defaults.max_tool_iterations` rounds, and stopped sooner when
//!   it repeats the same calls round after round.
//! - Nothing is saved by the engine: a turn is saved once, whole, by the
//!   caller; a failed turn changes nothing in the session.

use std::io::Write;
use std::time::Duration;

use crate::config::Settings;
use crate::conversation::{window, Message, Part, Role, ToolResult};
use crate::error::Error;
use crate::home::Home;
use crate::provider::{self, Ask, Reader, Reply, Stop, ToolSpec};
use crate::session::{Sessions, Skipped};
use crate::tools::{Caller, Toolbox, MAX_CALLS_PER_ROUND, MAX_REPEATS};
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
}

/// Something that happened in a running turn.
#[derive(Debug)]
pub enum Event {
    /// A piece of the reply's text, to show at once.
    Text(String),
    /// An attempt failed and another follows after `delay`.
    Retrying {
        /// 1 for the first retry.
        retry: u32,
        max_retries: u32,
        delay: Duration,
        cause: Error,
    },
    /// Characters arrived broken (a stream cut through a character) and
    /// were shown as U+FFFD.
    Repaired(usize),
    /// A tool ran. `name` and `summary` are already one clean line each.
    Tool {
        name: String,
        summary: String,
        is_error: bool,
    },
}

/// Things worth telling the person while a turn runs (all but the text).
#[derive(Debug)]
pub enum Notice<'a> {
    /// A line of the session file could not be read and was left out.
    Skipped(&'a Skipped),
    /// Any event of the turn but its text.
    Turn(&'a Event),
}

/// A turn running: the conversation it adds to, and where it is.
pub struct Run {
    settings: Settings,
    tools: Toolbox,
    specs: Vec<ToolSpec>,
    conversation: Vec<Message>,
    start: usize,
    stream: bool,
    state: State,
    round: u32,
    /// The signature of the last round's calls, and how often it came.
    last_calls: String,
    repeats: usize,
    /// Whether the text shown so far ends a line (to start the next
    /// round's text on one of its own).
    ended_line: bool,
    /// The latest reply was cut at `max_tokens`.
    cut: bool,
}

enum State {
    /// The next request is to be sent, after `wait`; `attempt` counts from 1.
    Ask {
        attempt: u32,
        wait: Duration,
    },
    /// A reply is arriving; `shown` once any of its text was handed out.
    Reading {
        reader: Box<Reader>,
        attempt: u32,
        shown: bool,
    },
    /// The reply's calls are being run, one per event.
    Tools {
        reply: Reply,
        next: usize,
    },
    Done,
}

impl Run {
    /// A turn over `conversation`, which ends with the new user message.
    pub fn new(
        settings: Settings,
        tools: Toolbox,
        conversation: Vec<Message>,
        stream: bool,
    ) -> Run {
        // Earlier calls in the history are read against their definitions,
        // so a turn without tools still lists them, with calling switched off.
        let earlier_calls = conversation
            .iter()
            .any(|m| m.parts.iter().any(|p| !matches!(p, Part::Text(_))));
        let specs = match (tools.is_empty(), earlier_calls) {
            (false, _) => tools.specs(),
            (true, true) => Toolbox::every_spec(),
            (true, false) => Vec::new(),
        };
        Run {
            settings,
            tools,
            specs,
            start: conversation.len(),
            conversation,
            stream,
            state: State::Ask {
                attempt: 1,
                wait: Duration::ZERO,
            },
            round: 0,
            last_calls: String::new(),
            repeats: 0,
            ended_line: true,
            cut: false,
        }
    }

    /// What happens next, or `None` when the model has answered. An error
    /// ends the turn.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Event>, Error> {
        let result = self.step();
        if result.is_err() {
            self.state = State::Done;
        }
        result
    }

    /// The conversation with what the turn added.
    pub fn conversation(&self) -> &[Message] {
        &self.conversation
    }

    /// The messages the turn added (the user's message is not among them
    /// unless it was not in the history given).
    pub fn added(&self) -> &[Message] {
        &self.conversation[self.start..]
    }

    /// Whether the latest reply was cut at `max_tokens`: once the turn is
    /// complete, whether its answer was.
    pub fn cut_short(&self) -> bool {
        self.cut
    }

    /// Gives back the conversation, with what the turn added.
    pub fn into_conversation(self) -> Vec<Message> {
        self.conversation
    }

    fn step(&mut self) -> Result<Option<Event>, Error> {
        loop {
            match std::mem::replace(&mut self.state, State::Done) {
                State::Done => return Ok(None),
                State::Ask { attempt, wait } => {
                    std::thread::sleep(wait);
                    if attempt == 1 {
                        self.round += 1;
                    }
                    let request = provider::request(
                        &self.settings,
                        &Ask {
                            history: &self.conversation,
                            tools: &self.specs,
                            may_call: !self.tools.is_empty(),
                            stream: self.stream,
                        },
                    )?;
                    let reader = http::send(&request)
                        .map_err(Error::from)
                        .and_then(|response| Reader::new(&self.settings, response, self.stream));
                    match reader {
                        Ok(reader) => {
                            self.state = State::Reading {
                                reader: Box::new(reader),
                                attempt,
                                shown: false,
                            }
                        }
                        Err(err) => return self.retry(err, attempt, false).map(Some),
                    }
                }
                State::Reading {
                    mut reader,
                    attempt,
                    shown,
                } => match reader.next_text() {
                    Ok(Some(text)) => {
                        let text = if !shown && !self.ended_line {
                            format!("\n{text}")
                        } else {
                            text
                        };
                        self.ended_line = text.ends_with('\n');
                        self.state = State::Reading {
                            reader,
                            attempt,
                            shown: true,
                        };
                        return Ok(Some(Event::Text(text)));
                    }
                    Ok(None) => match reader.finish() {
                        Ok(reply) => {
                            let repaired = reply.repaired;
                            self.answered(reply)?;
                            if repaired > 0 {
                                return Ok(Some(Event::Repaired(repaired)));
                            }
                        }
                        Err(err) => return self.retry(err, attempt, shown).map(Some),
                    },
                    Err(err) => return self.retry(err, attempt, shown).map(Some),
                },
                State::Tools { reply, next } => {
                    let Some(call) = reply.calls.get(next) else {
                        self.state = State::Ask {
                            attempt: 1,
                            wait: Duration::ZERO,
                        };
                        continue;
                    };
                    let outcome = if next < MAX_CALLS_PER_ROUND {
                        self.tools.run(call)
                    } else {
                        self.tools.not_run()
                    };
                    let event = Event::Tool {
                        // Chosen by the model: it reaches the terminal.
                        name: secrets::one_line(&call.name),
                        summary: secrets::one_line(&outcome.summary),
                        is_error: outcome.is_error,
                    };
                    self.conversation.push(Message::new(
                        Role::Tool,
                        vec![Part::Result(ToolResult {
                            call_id: call.id.clone(),
                            name: call.name.clone(),
                            content: outcome.content,
                            is_error: outcome.is_error,
                        })],
                    ));
                    self.state = State::Tools {
                        reply,
                        next: next + 1,
                    };
                    return Ok(Some(event));
                }
            }
        }
    }

    /// A request failed: another attempt if it is worth one, else the end.
    fn retry(&mut self, err: Error, attempt: u32, shown: bool) -> Result<Event, Error> {
        let max_retries = self.settings.provider.max_retries;
        if attempt > max_retries || !retry::is_retryable(&err, shown) {
            return Err(err);
        }
        let retry_after = match &err {
            Error::Status { retry_after, .. } => *retry_after,
            _ => None,
        };
        let delay = retry::delay(attempt, retry_after);
        // The event goes out first, so the person knows why it is quiet.
        self.state = State::Ask {
            attempt: attempt + 1,
            wait: delay,
        };
        Ok(Event::Retrying {
            retry: attempt,
            max_retries,
            delay,
            cause: err,
        })
    }

    /// A reply is complete: the turn ends, or its calls are run next.
    fn answered(&mut self, reply: Reply) -> Result<(), Error> {
        self.conversation.push(reply.message());
        self.cut = reply.stop == Stop::Length;
        if reply.calls.is_empty() {
            self.state = State::Done;
            return Ok(());
        }
        let max_rounds = self.tools.settings().max_iterations;
        if self.round >= max_rounds {
            return Err(Error::ToolLimit { rounds: max_rounds });
        }
        // The same calls again and again: the model is stuck.
        let calls = signature(&reply);
        self.repeats = if calls == self.last_calls {
            self.repeats + 1
        } else {
            1
        };
        if self.repeats >= MAX_REPEATS {
            return Err(Error::ToolRepeat {
                name: reply.calls[0].name.clone(),
                times: self.repeats,
            });
        }
        self.last_calls = calls;
        self.state = State::Tools { reply, next: 0 };
        Ok(())
    }
}

/// The calls of one reply as text, to notice a model asking the same again.
fn signature(reply: &Reply) -> String {
    let calls: Vec<String> = reply
        .calls
        .iter()
        .map(|c| {
            let args = provider::arguments_object(&c.arguments)
                .map_or_else(|| c.arguments.clone(), |a| a.to_text());
            format!("{} {args}", c.name)
        })
        .collect();
    calls.join("\n")
}

/// Where a turn's text and notices go.
pub struct Sink<'a> {
    /// Reply text, as it arrives.
    pub text: &'a mut dyn FnMut(&str) -> Result<(), Error>,
    pub notice: &'a mut dyn FnMut(Notice<'_>),
}

/// Runs a turn to its end, text and notices into `sink`: the model and its
/// tools until the model answers without calling one. `conversation` ends
/// with the new user message; the turn's messages are appended to it.
/// Nothing is saved.
pub fn respond(
    settings: &Settings,
    tools: Toolbox,
    conversation: Vec<Message>,
    stream: bool,
    sink: &mut Sink<'_>,
) -> Result<Vec<Message>, Error> {
    let mut run = Run::new(settings.clone(), tools, conversation, stream);
    while let Some(event) = run.next()? {
        match &event {
            Event::Text(text) => (sink.text)(text)?,
            other => (sink.notice)(Notice::Turn(other)),
        }
    }
    Ok(run.into_conversation())
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

/// The recent history of a session, as a turn sends it, with the new user
/// message at its end; skipped lines go to `notice`.
pub fn history(
    sessions: &Sessions<'_>,
    settings: &Settings,
    key: &str,
    message: &str,
    notice: &mut dyn FnMut(Notice<'_>),
) -> Result<Vec<Message>, Error> {
    let message = check_message(message)?;
    let session = sessions.load_recent(key, settings.memory_window)?;
    for skipped in &session.skipped {
        notice(Notice::Skipped(skipped));
    }
    let mut conversation = window(&session.messages, settings.memory_window);
    conversation.push(Message::text(Role::User, message));
    Ok(conversation)
}

/// What a turn needs from the process environment, as the command line
/// and the library component set it up: the home, the settings for
/// `model` (its key required), and the tools, or none when `tools` is off.
pub fn prepare(model: Option<&str>, tools: bool) -> Result<(Home, Settings, Toolbox), Error> {
    let env = crate::config::env;
    let home = Home::discover(env)?;
    let config = crate::config::Config::load(&home)?;
    let settings = config.settings(model, env)?;
    settings.provider.require_key()?;
    let tool_settings = config.tool_settings(&home, env);
    let toolbox = if tools {
        Toolbox::new(&tool_settings, Caller::Cli)
    } else {
        Toolbox::none(&tool_settings)
    };
    Ok((home, settings, toolbox))
}

/// Runs one turn of a saved session: loads its recent history, responds
/// (text to `out` as it arrives), then saves the user message and all the
/// turn added in one append.
pub fn run_turn(
    home: &Home,
    settings: &Settings,
    tools: Toolbox,
    turn: &Turn<'_>,
    out: &mut dyn Write,
    notice: &mut dyn FnMut(Notice<'_>),
) -> Result<Outcome, Error> {
    let sessions = Sessions::new(home);
    let conversation = history(&sessions, settings, turn.session, turn.message, notice)?;
    let start = conversation.len() - 1;
    let mut reply = String::new();
    let result = respond(
        settings,
        tools,
        conversation,
        turn.stream,
        &mut Sink {
            text: &mut |text: &str| {
                reply.push_str(text);
                print(out, text)
            },
            notice,
        },
    );
    let mut conversation = match result {
        Ok(conversation) => conversation,
        Err(err) => {
            if !reply.is_empty() && !reply.ends_with('\n') {
                let _ = print(out, "\n"); // end the partial reply's line
            }
            return Err(err);
        }
    };
    if !reply.is_empty() && !reply.ends_with('\n') {
        print(out, "\n")?;
    }
    let messages = conversation.split_off(start);
    save(&sessions, turn.session, &messages)?;
    Ok(Outcome { reply, messages })
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
