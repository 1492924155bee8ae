//! One agent turn: load the session, ask the provider, show the reply as it
//! arrives, then save the user message and the reply together.
//!
//! A turn is saved only once the reply is complete, so a failed turn (an
//! error status, a timeout, a cut-off stream) leaves the session exactly as
//! it was.

use std::io::Write;

use crate::config::Settings;
use crate::error::Error;
use crate::home::Home;
use crate::session::{Message, Role, Sessions, Skipped};
use crate::{http, provider};

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
    /// Lines of the session file that were skipped when loading it.
    pub skipped: Vec<Skipped>,
}

/// Runs one turn, writing the reply to `out` as it arrives. `on_skipped`
/// hears about unreadable session lines before the request goes out.
pub fn run_turn(
    home: &Home,
    settings: &Settings,
    turn: &Turn<'_>,
    out: &mut dyn Write,
    on_skipped: &mut dyn FnMut(&Skipped),
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
    let session = sessions.load(turn.session)?;
    session.skipped.iter().for_each(on_skipped);

    let user = Message::new(Role::User, message);
    let mut history = window(&session.messages, settings.memory_window).to_vec();
    history.push(user.clone());

    let request = provider::request(settings, &history, turn.stream)?;
    let response = http::post(&request)?;
    let mut ends_with_newline = true;
    let reply = provider::read_reply(&settings.provider, response, turn.stream, &mut |text| {
        out.write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .map_err(Error::Output)?;
        if !text.is_empty() {
            ends_with_newline = text.ends_with('\n');
        }
        Ok(())
    })?;
    if !ends_with_newline {
        out.write_all(b"\n")
            .and_then(|()| out.flush())
            .map_err(Error::Output)?;
    }

    sessions.append(
        turn.session,
        &[user, Message::new(Role::Assistant, reply.clone())],
    )?;
    Ok(Outcome {
        reply,
        skipped: session.skipped,
    })
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
