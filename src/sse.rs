//! Server-sent events, parsed incrementally as bytes arrive.
//!
//! Follows the WHATWG event-stream rules that chat APIs rely on: lines end in
//! `\n`, `\r\n` or `\r` (even when split across reads), `:` starts a comment,
//! `data` lines of one event are joined with `\n`, a blank line dispatches.
//! A line longer than the parser's limit is an error, never an unbounded
//! buffer. Bytes that are not UTF-8 are read as U+FFFD and counted (see
//! [`SseParser::repaired`]): one broken character must not lose a reply
//! that was already half shown.

use std::fmt;

/// The longest line accepted by [`SseParser::new`]; chat chunks are tiny,
/// but a whole non-delta message may arrive as one event.
pub const DEFAULT_MAX_LINE: usize = 1 << 20;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Event {
    /// The `event:` field; empty when the stream did not name one.
    pub name: String,
    pub data: String,
}

/// Why a stream could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseError {
    LineTooLong(usize),
}

impl fmt::Display for SseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SseError::LineTooLong(max) => write!(f, "an event line is longer than {max} bytes"),
        }
    }
}

impl std::error::Error for SseError {}

#[derive(Debug)]
pub struct SseParser {
    line: Vec<u8>,
    /// The previous chunk ended in `\r`; a leading `\n` belongs to it.
    after_cr: bool,
    event: Event,
    has_data: bool,
    max_line: usize,
    /// Invalid UTF-8 sequences read as U+FFFD so far.
    repaired: usize,
}

impl Default for SseParser {
    fn default() -> Self {
        SseParser::new(DEFAULT_MAX_LINE)
    }
}

impl SseParser {
    pub fn new(max_line: usize) -> SseParser {
        SseParser {
            line: Vec::new(),
            after_cr: false,
            event: Event::default(),
            has_data: false,
            max_line,
            repaired: 0,
        }
    }

    /// How many invalid UTF-8 sequences were read as U+FFFD.
    pub fn repaired(&self) -> usize {
        self.repaired
    }

    /// Feeds bytes; complete events are appended to `out`.
    pub fn push(&mut self, mut bytes: &[u8], out: &mut Vec<Event>) -> Result<(), SseError> {
        if self.after_cr {
            self.after_cr = false;
            if let Some(rest) = bytes.strip_prefix(b"\n") {
                bytes = rest;
            }
        }
        while let Some(end) = bytes.iter().position(|&b| b == b'\n' || b == b'\r') {
            self.extend_line(&bytes[..end])?;
            let is_cr = bytes[end] == b'\r';
            bytes = &bytes[end + 1..];
            if is_cr {
                match bytes.first() {
                    Some(b'\n') => bytes = &bytes[1..],
                    None => self.after_cr = true,
                    Some(_) => {}
                }
            }
            let line = std::mem::take(&mut self.line);
            self.line_done(&line, out)?;
            self.line = line;
            self.line.clear();
        }
        self.extend_line(bytes)
    }

    /// The stream ended: the event still being read, if its data is
    /// whole. The spec drops an event without its closing blank line; a chat
    /// client is better served by one last chance (`data: [DONE]` and EOF).
    pub fn finish(&mut self) -> Option<Event> {
        let mut out = Vec::new();
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            let _ = self.line_done(&line, &mut out);
        }
        let pending = std::mem::take(&mut self.event);
        let has_data = std::mem::replace(&mut self.has_data, false);
        self.after_cr = false;
        out.pop().or(has_data.then_some(pending))
    }

    fn extend_line(&mut self, bytes: &[u8]) -> Result<(), SseError> {
        if self.line.len() + bytes.len() > self.max_line {
            return Err(SseError::LineTooLong(self.max_line));
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    fn line_done(&mut self, line: &[u8], out: &mut Vec<Event>) -> Result<(), SseError> {
        if line.is_empty() {
            if self.has_data {
                out.push(std::mem::take(&mut self.event));
            } else {
                self.event.name.clear();
            }
            self.has_data = false;
            return Ok(());
        }
        let decoded;
        let line = match std::str::from_utf8(line) {
            Ok(line) => line,
            Err(_) => {
                let mut text = String::with_capacity(line.len() + 8);
                for chunk in line.utf8_chunks() {
                    text.push_str(chunk.valid());
                    if !chunk.invalid().is_empty() {
                        text.push(char::REPLACEMENT_CHARACTER);
                        self.repaired += 1;
                    }
                }
                decoded = text;
                &decoded
            }
        };
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "" => {} // a comment, used as keep-alive
            "event" => value.clone_into(&mut self.event.name),
            "data" => {
                if self.has_data {
                    self.event.data.push('\n');
                }
                if self.event.data.len() + value.len() > self.max_line {
                    return Err(SseError::LineTooLong(self.max_line));
                }
                self.event.data.push_str(value);
                self.has_data = true;
            }
            _ => {} // id, retry and unknown fields mean nothing to a chat client
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_in_pieces(input: &[u8], piece: usize) -> Vec<Event> {
        let mut parser = SseParser::default();
        let mut out = Vec::new();
        for chunk in input.chunks(piece) {
            parser.push(chunk, &mut out).unwrap();
        }
        out
    }

    #[test]
    fn events_come_out_whole_however_the_bytes_are_split() {
        let input = "event: content_block_delta\r\ndata: {\"a\":1}\r\n\r\n: keep-alive\n\ndata: x\ndata: y\n\ndata:[DONE]\r\r".as_bytes();
        let expected = vec![
            Event {
                name: "content_block_delta".into(),
                data: "{\"a\":1}".into(),
            },
            Event {
                name: String::new(),
                data: "x\ny".into(),
            },
            Event {
                name: String::new(),
                data: "[DONE]".into(),
            },
        ];
        for piece in 1..input.len() {
            assert_eq!(
                parse_in_pieces(input, piece),
                expected,
                "piece size {piece}"
            );
        }
    }

    #[test]
    fn multibyte_characters_may_be_split_between_reads() {
        let input = "data: héllo → 世界\n\n".as_bytes();
        for piece in 1..input.len() {
            assert_eq!(parse_in_pieces(input, piece)[0].data, "héllo → 世界");
        }
    }

    #[test]
    fn finish_hands_over_the_last_event_without_its_blank_line() {
        let mut parser = SseParser::default();
        let mut out = Vec::new();
        parser
            .push(b"data: whole\n\ndata: [DONE]", &mut out)
            .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(parser.finish().unwrap().data, "[DONE]");
        assert_eq!(parser.finish(), None);

        parser
            .push(b"event: message_stop\ndata: {}\n", &mut out)
            .unwrap();
        let last = parser.finish().unwrap();
        assert_eq!(
            (last.name.as_str(), last.data.as_str()),
            ("message_stop", "{}")
        );
        parser.push(b": only a comment", &mut out).unwrap();
        assert_eq!(parser.finish(), None);
    }

    #[test]
    fn limits_hold() {
        let mut parser = SseParser::new(16);
        let mut out = Vec::new();
        let err = parser.push(&[b'a'; 17], &mut out).unwrap_err();
        assert_eq!(err, SseError::LineTooLong(16));

        let mut parser = SseParser::new(16);
        let err = parser
            .push(b"data: 0123456789\ndata: 0123456789\n", &mut out)
            .unwrap_err();
        assert_eq!(err, SseError::LineTooLong(16));
    }

    #[test]
    fn invalid_utf8_is_read_as_replacement_characters_and_counted() {
        let mut parser = SseParser::default();
        let mut out = Vec::new();
        parser
            .push(b"data: a\xff\xfeb\xe4\n\ndata: ok\n\n", &mut out)
            .unwrap();
        assert_eq!(out[0].data, "a\u{fffd}\u{fffd}b\u{fffd}");
        assert_eq!(out[1].data, "ok");
        assert_eq!(parser.repaired(), 3);
    }
}
