//! One agent turn: load the session, ask the provider, show the reply as it
//! arrives, then save the user message and the reply together.
//!
//! A turn is saved only once the reply is complete, so a failed turn (an
//! error status, a timeout, a cut-off stream) leaves the session exactly as
//! it was. Failed attempts are retried as [`crate::retry`] describes, never
//! after part of the reply was shown.

use std::io::Write;
use std::time::Duration;

use crate::config::Settings;
use crate::error::Error;
use crate::home::Home;
use crate::session::{Message, Role, Sessions, Skipped};
use crate::{http, provider, retry};

/// The longest message a user may send in one turn.
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;

/// What to do in one turn.
#[derive(Debug, Clone)]
pub struct Turn<'a> {
    pub session: &'a str,
    pub message: &'a str,
    /// Ask for a streamed reply and print it piece by piece.
    pub stream: bool,
}

/// What a completed turn produced.
#[derive(Debug)]
pub struct Outcome {
    pub reply: String,
    /// How many attempts the reply took.
    pub attempts: u32,
}

/// Things worth telling the user while a turn runs.
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
}

/// Runs one turn, writing the reply to `out` as it arrives and telling
/// `notice` about skipped session lines and retries.
pub fn run_turn(
    home: &Home,
    settings: &Settings,
    turn: &Turn<'_>,
    out: &mut dyn Write,
    notice: &mut dyn FnMut(Notice<'_>),
) -> Result<Outcome, Error> {
    let message = turn.message.trim();
    if message.is_empty() {
        return Err(Error::Usage("the message is empty".into()));
    }
    if message.len() > MAX_MESSAGE_BYTES {
        return Err(Error::Usage(format!(
            "the message is longer than {MAX_MESSAGE_BYTES} bytes"
        )));
    }
    let sessions = Sessions::new(home);
    let session = sessions.load_recent(turn.session, settings.memory_window)?;
    for skipped in &session.skipped {
        notice(Notice::Skipped(skipped));
    }

    let user = Message::new(Role::User, message);
    let mut history = window(&session.messages, settings.memory_window).to_vec();
    history.push(user.clone());
    let request = provider::request(settings, &history, turn.stream)?;

    let max_retries = settings.provider.max_retries;
    let mut attempts = 0;
    let reply = loop {
        attempts += 1;
        let mut shown = false;
        let result = http::post(&request)
            .map_err(Error::from)
            .and_then(|response| {
                provider::read_reply(settings, response, turn.stream, &mut |text| {
                    shown |= !text.is_empty();
                    print(out, text)
                })
            });
        match result {
            Ok(reply) => break reply,
            Err(err) if attempts <= max_retries && retry::is_retryable(&err, shown) => {
                let retry_after = match &err {
                    Error::Status { retry_after, .. } => *retry_after,
                    _ => None,
                };
                let delay = retry::delay(attempts, retry_after);
                notice(Notice::Retrying {
                    retry: attempts,
                    max_retries,
                    delay,
                    cause: &err,
                });
                std::thread::sleep(delay);
            }
            Err(err) => {
                if shown {
                    let _ = print(out, "\n"); // end the partial reply's line
                }
                return Err(err);
            }
        }
    };
    if !reply.is_empty() && !reply.ends_with('\n') {
        print(out, "\n")?;
    }

    sessions.append(
        turn.session,
        &[user, Message::new(Role::Assistant, reply.clone())],
    )?;
    Ok(Outcome { reply, attempts })
}

/// Writes text to the user's output at once (flushed), so streamed
/// replies appear as they arrive.
pub(crate) fn print(out: &mut dyn Write, text: &str) -> Result<(), Error> {
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(Error::Output)
}

/// The last `size` messages, starting with a user message (providers such
/// as Anthropic refuse a conversation that opens with the assistant).
pub fn window(messages: &[Message], size: usize) -> &[Message] {
    let mut recent = &messages[messages.len().saturating_sub(size)..];
    while recent.first().is_some_and(|m| m.role != Role::User) {
        recent = &recent[1..];
    }
    recent
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_keeps_the_latest_messages_and_opens_with_the_user() {
        let talk: Vec<Message> = (0..6)
            .map(|i| {
                let role = if i % 2 == 0 {
                    Role::User
                } else {
                    Role::Assistant
                };
                Message::new(role, i.to_string())
            })
            .collect();
        let contents = |w: &[Message]| w.iter().map(|m| m.content.clone()).collect::<Vec<_>>();
        assert_eq!(contents(window(&talk, 4)), ["2", "3", "4", "5"]);
        assert_eq!(contents(window(&talk, 3)), ["4", "5"]);
        assert_eq!(contents(window(&talk, 100)).len(), 6);
        assert!(window(&talk, 0).is_empty());
    }
}
