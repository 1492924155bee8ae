//! Reading a streamed reply: SSE events from the body, each handed to the
//! protocol's [`Decoder`], text shown as it arrives, bounds enforced; and
//! [`Pieces`], which joins text that arrives in pieces, repairing what a
//! re-chunking proxy broke.

use super::{bad_reply, clean, max_stream_events, Fault, Reply, MAX_REPLY_BYTES, MAX_STREAM_BYTES};
use crate::config::Settings;
use crate::error::Error;
use crate::http::{HttpError, Response};
use crate::sse::{Event, SseParser};

/// Reads events until the provider says the reply is complete (then
/// stops, whether or not the server closes) or the body ends.
pub(super) fn read(
    settings: &Settings,
    mut response: Response,
    on_text: &mut dyn FnMut(&str) -> Result<(), Error>,
) -> Result<Reply, Error> {
    let provider = &settings.provider;
    let interrupted = |detail: &str| Error::StreamInterrupted {
        provider: provider.name.clone(),
        detail: clean(provider, detail),
    };
    let mut decoder = provider.protocol.wire().decoder();
    let mut parser = SseParser::default();
    let mut events: Vec<Event> = Vec::new();
    let (mut received, mut shown, mut count) = (0usize, 0usize, 0usize);
    let max_events = max_stream_events(settings.max_tokens);
    let mut buf = vec![0u8; 16 * 1024];
    let mut done = false;
    while !done {
        let n = match response.body.read(&mut buf) {
            Ok(n) => n,
            Err(timeout @ HttpError::Timeout { .. }) => return Err(Error::Http(timeout)),
            Err(err) => return Err(interrupted(&format!("broke off the reply: {err}"))),
        };
        if n == 0 {
            // A last event without its closing blank line still counts.
            events.extend(parser.finish());
        } else {
            received += n;
            if received > MAX_STREAM_BYTES {
                let detail = format!("the stream is longer than {MAX_STREAM_BYTES} bytes");
                return Err(bad_reply(provider, &detail));
            }
            parser
                .push(&buf[..n], &mut events)
                .map_err(|e| bad_reply(provider, &e.to_string()))?;
        }
        for event in events.drain(..) {
            if done {
                break;
            }
            count += 1;
            if count > max_events {
                let detail = format!("more than {max_events} events in one reply");
                return Err(bad_reply(provider, &detail));
            }
            let step = decoder.event(&event).map_err(|fault| match fault {
                Fault::Bad(detail) => bad_reply(provider, &detail),
                Fault::Failed(failure) => Error::ProviderError {
                    provider: provider.name.clone(),
                    message: clean(provider, &failure.message),
                    kind: failure.kind,
                },
            })?;
            if !step.text.is_empty() {
                shown += step.text.len();
                if shown > MAX_REPLY_BYTES {
                    let detail = format!("the reply is longer than {MAX_REPLY_BYTES} bytes");
                    return Err(bad_reply(provider, &detail));
                }
                on_text(&step.text)?;
            }
            done = step.done;
        }
        if n == 0 && !done {
            return Err(interrupted(
                "closed the stream before the reply was complete",
            ));
        }
    }
    let mut reply = decoder
        .finish()
        .map_err(|detail| bad_reply(provider, &detail))?;
    reply.repaired += parser.repaired();
    Ok(reply)
}

/// Text that arrives in pieces (a reply's text, a tool call's arguments),
/// joined. A proxy that re-chunks by UTF-16 code unit can cut a surrogate
/// pair between two events; [`crate::json::parse_piece`] keeps each half as
/// a stand-in, and this joins them again. A half without its partner is
/// shown as U+FFFD and counted.
#[derive(Debug, Default)]
pub struct Pieces {
    text: String,
    /// A high surrogate waiting for the next piece.
    held: Option<u16>,
    repaired: usize,
}

impl Pieces {
    /// Adds a piece; returns the text that is now final (what to show).
    pub fn push(&mut self, piece: &str) -> String {
        let mut out = String::with_capacity(piece.len());
        for c in piece.chars() {
            match crate::json::unpaired_surrogate(c) {
                Some(high @ 0xD800..=0xDBFF) => {
                    self.flush_held(&mut out);
                    self.held = Some(high);
                }
                Some(low) => match self.held.take() {
                    Some(high) => {
                        let code = 0x10000
                            + ((u32::from(high) - 0xD800) << 10)
                            + (u32::from(low) - 0xDC00);
                        out.push(char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER));
                    }
                    None => {
                        self.repaired += 1;
                        out.push(char::REPLACEMENT_CHARACTER);
                    }
                },
                None => {
                    self.flush_held(&mut out);
                    out.push(c);
                }
            }
        }
        self.text.push_str(&out);
        out
    }

    /// No more pieces: a half still held is shown as U+FFFD.
    pub fn finish(&mut self) -> String {
        let mut out = String::new();
        self.flush_held(&mut out);
        self.text.push_str(&out);
        out
    }

    fn flush_held(&mut self, out: &mut String) {
        if self.held.take().is_some() {
            self.repaired += 1;
            out.push(char::REPLACEMENT_CHARACTER);
        }
    }

    /// The joined text (after [`Pieces::finish`]) and how many characters
    /// were repaired.
    pub fn into_parts(self) -> (String, usize) {
        (self.text, self.repaired)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json;

    fn piece(json_string: &str) -> String {
        json::parse_piece(json_string.as_bytes())
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn a_surrogate_pair_split_across_pieces_is_joined() {
        let mut p = Pieces::default();
        assert_eq!(p.push(&piece(r#""hi \ud83d""#)), "hi ");
        assert_eq!(p.push(&piece(r#""\ude00!""#)), "😀!");
        assert_eq!(p.finish(), "");
        assert_eq!(p.into_parts(), ("hi 😀!".to_owned(), 0));
    }

    #[test]
    fn halves_without_partners_become_replacement_characters() {
        let mut p = Pieces::default();
        assert_eq!(p.push(&piece(r#""a\ude00b""#)), "a\u{fffd}b");
        assert_eq!(p.push(&piece(r#""\ud83dc""#)), "\u{fffd}c");
        assert_eq!(p.push(&piece(r#""\ud83d""#)), "");
        assert_eq!(p.push(&piece(r#""\ud83d""#)), "\u{fffd}");
        assert_eq!(p.finish(), "\u{fffd}");
        let (text, repaired) = p.into_parts();
        assert_eq!(text, "a\u{fffd}b\u{fffd}c\u{fffd}\u{fffd}");
        assert_eq!(repaired, 4);
    }
}
