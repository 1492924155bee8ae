//! Reading a reply as it arrives: [`Reader`] hands out its text piece by
//! piece (SSE events through the protocol's [`Decoder`], bounds enforced;
//! a whole body at once), and [`Pieces`] joins text that arrives in
//! pieces, repairing what a re-chunking proxy broke.

use super::{
    bad_reply, clean, max_stream_events, status_error, Decoder, Fault, Reply, Stop, ToolCall,
    MAX_REPLY_BYTES, MAX_STREAM_BYTES,
};
use crate::config::{Provider, Settings};
use crate::error::Error;
use crate::http::{HttpError, Response};
use crate::sse::{Event, SseParser};

/// A reply being read. [`Reader::next_text`] gives each piece of text as
/// it arrives and `None` once the provider said the reply is complete
/// (then stops, whether or not the server closes); [`Reader::finish`] gives
/// the whole reply. A reply with neither text nor tool calls is an error,
/// never saved.
pub struct Reader {
    provider: Provider,
    response: Response,
    body: Body,
}

enum Body {
    Stream(Box<StreamState>),
    /// A whole body: its reply, until its text was handed out.
    Whole(Reply),
    /// The reply, read to its end and its text handed out.
    Done(Reply),
}

struct StreamState {
    decoder: Box<dyn Decoder>,
    parser: SseParser,
    /// What the last read parsed, taken one by one before the next read.
    events: std::vec::IntoIter<Event>,
    received: usize,
    shown: usize,
    count: usize,
    max_events: usize,
    ended: bool,
}

impl Reader {
    /// Starts on a response: a failure status is the error it says; a
    /// whole body (also from a server that ignores `"stream": true`) is read
    /// at once.
    pub fn new(settings: &Settings, mut response: Response, stream: bool) -> Result<Reader, Error> {
        let provider = &settings.provider;
        if !(200..300).contains(&response.status) {
            return Err(status_error(provider, response));
        }
        let is_sse = response
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/event-stream"));
        let body = if stream && is_sse {
            Body::Stream(Box::new(StreamState {
                decoder: provider.protocol.wire().decoder(),
                parser: SseParser::default(),
                events: Vec::new().into_iter(),
                received: 0,
                shown: 0,
                count: 0,
                max_events: max_stream_events(settings.max_tokens),
                ended: false,
            }))
        } else {
            let bytes = response
                .read_to_end(MAX_REPLY_BYTES, None)
                .map_err(Error::Http)?;
            let reply = provider
                .protocol
                .wire()
                .complete(&bytes)
                .map_err(|detail| bad_reply(provider, &detail))?;
            Body::Whole(reply)
        };
        Ok(Reader {
            provider: provider.clone(),
            response,
            body,
        })
    }

    /// The next piece of text, or `None` when the reply is complete.
    pub fn next_text(&mut self) -> Result<Option<String>, Error> {
        match &mut self.body {
            Body::Whole(reply) => {
                let reply = std::mem::take(reply);
                let text = (!reply.text.trim().is_empty()).then(|| reply.text.clone());
                self.body = Body::Done(reply);
                Ok(text)
            }
            Body::Done(_) => Ok(None),
            Body::Stream(state) => {
                let provider = &self.provider;
                loop {
                    if let Some(event) = state.events.next() {
                        let step = state.take(provider, &event)?;
                        if step.done {
                            let Body::Stream(state) =
                                std::mem::replace(&mut self.body, Body::Done(Reply::default()))
                            else {
                                unreachable!("matched above");
                            };
                            let reply = state.finish(provider)?;
                            self.body = Body::Done(reply);
                            return Ok((!step.text.is_empty()).then_some(step.text));
                        }
                        if !step.text.is_empty() {
                            return Ok(Some(step.text));
                        }
                        continue;
                    }
                    if state.ended {
                        return Err(interrupted(
                            provider,
                            "closed the stream before the reply was complete",
                        ));
                    }
                    state.fill(provider, &mut self.response)?;
                }
            }
        }
    }

    /// The complete reply, once [`Reader::next_text`] returned `None`.
    pub fn finish(mut self) -> Result<Reply, Error> {
        while self.next_text()?.is_some() {}
        let reply = match self.body {
            Body::Whole(reply) | Body::Done(reply) => reply,
            Body::Stream(_) => unreachable!("read to the end above"),
        };
        if reply.text.trim().is_empty() && reply.calls.is_empty() {
            return Err(bad_reply(&self.provider, "the reply has no text"));
        }
        Ok(reply)
    }
}

fn interrupted(provider: &Provider, detail: &str) -> Error {
    Error::StreamInterrupted {
        provider: provider.name.clone(),
        detail: clean(provider, detail),
    }
}

impl StreamState {
    /// Reads more of the body into events; at its end, the last event
    /// without its blank line still counts.
    fn fill(&mut self, provider: &Provider, response: &mut Response) -> Result<(), Error> {
        let mut buf = [0u8; 16 * 1024];
        let n = match response.body.read(&mut buf) {
            Ok(n) => n,
            Err(timeout @ HttpError::Timeout { .. }) => return Err(Error::Http(timeout)),
            Err(err) => {
                return Err(interrupted(
                    provider,
                    &format!("broke off the reply: {err}"),
                ))
            }
        };
        let mut events = Vec::new();
        if n == 0 {
            events.extend(self.parser.finish());
            self.ended = true;
        } else {
            self.received += n;
            if self.received > MAX_STREAM_BYTES {
                let detail = format!("the stream is longer than {MAX_STREAM_BYTES} bytes");
                return Err(bad_reply(provider, &detail));
            }
            self.parser
                .push(&buf[..n], &mut events)
                .map_err(|e| bad_reply(provider, &e.to_string()))?;
        }
        self.events = events.into_iter();
        Ok(())
    }

    /// Hands one event to the decoder, within the bounds.
    fn take(&mut self, provider: &Provider, event: &Event) -> Result<super::Step, Error> {
        self.count += 1;
        if self.count > self.max_events {
            let detail = format!("more than {} events in one reply", self.max_events);
            return Err(bad_reply(provider, &detail));
        }
        let step = self.decoder.event(event).map_err(|fault| match fault {
            Fault::Bad(detail) => bad_reply(provider, &detail),
            Fault::Failed(failure) => Error::ProviderError {
                provider: provider.name.clone(),
                message: clean(provider, &failure.message),
                kind: failure.kind,
            },
        })?;
        self.shown += step.text.len();
        if self.shown > MAX_REPLY_BYTES {
            let detail = format!("the reply is longer than {MAX_REPLY_BYTES} bytes");
            return Err(bad_reply(provider, &detail));
        }
        Ok(step)
    }

    fn finish(self, provider: &Provider) -> Result<Reply, Error> {
        let mut reply = self
            .decoder
            .finish()
            .map_err(|detail| bad_reply(provider, &detail))?;
        reply.repaired += self.parser.repaired();
        Ok(reply)
    }
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

    /// The joined text, finished, and how many characters were repaired.
    pub fn into_parts(mut self) -> (String, usize) {
        self.finish();
        (self.text, self.repaired)
    }
}

/// The reply a decoder assembled from a stream. A stream that never said why
/// it stopped stopped to have its tools run if it called any, else it was
/// done. `repaired` counts what was repaired outside the text.
pub fn reply(text: Pieces, calls: Vec<ToolCall>, stop: Option<Stop>, repaired: usize) -> Reply {
    let (text, text_repaired) = text.into_parts();
    let stop = match stop {
        Some(stop) => stop,
        None if calls.is_empty() => Stop::Done,
        None => Stop::ToolUse,
    };
    Reply {
        text,
        calls,
        stop,
        repaired: repaired + text_repaired,
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
