//! LLM providers: which ones clawft knows, how a chat becomes an HTTP request,
//! and how a reply (whole or streamed) becomes text.
//!
//! Two wire protocols cover the field: OpenAI chat completions (OpenAI,
//! OpenRouter, Groq, DeepSeek, Ollama, vLLM, ...) in [`openai`], and
//! Anthropic messages in [`anthropic`]. Both speak through [`crate::http`].

pub mod anthropic;
pub mod openai;

use crate::config::{Provider, Secret, Settings};
use crate::error::Error;
use crate::http::{self, HttpError, Response};
use crate::json::{self, Json};
use crate::session::Message;
use crate::sse::{Event, SseParser};

/// The largest complete (non-streamed) reply body clawft will hold.
pub const MAX_REPLY_BYTES: usize = 8 << 20;
/// The largest error body read to find the provider's message.
pub const MAX_ERROR_BYTES: usize = 64 << 10;
/// The most bytes one streamed reply may take on the wire (events, pings
/// and comments included).
pub const MAX_STREAM_BYTES: usize = 64 << 20;

/// The most events one streamed reply may carry: generous for `max_tokens`
/// (a text event carries at least one token), small enough that an endless
/// stream ends soon.
pub fn max_stream_events(max_tokens: u32) -> usize {
    (max_tokens as usize)
        .saturating_mul(8)
        .saturating_add(10_000)
}

/// How a provider expects to be spoken to (`"protocol"` in the config:
/// `openai`, also spelled `openai-compatible`, or `anthropic`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `POST {base}/chat/completions`, `Authorization: Bearer`.
    OpenAi,
    /// `POST {base}/messages`, `x-api-key`, `anthropic-version`.
    Anthropic,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::OpenAi => "openai",
            Protocol::Anthropic => "anthropic",
        }
    }

    /// Where requests go, under the provider's `api_base`.
    fn path(self) -> &'static str {
        match self {
            Protocol::OpenAi => "/chat/completions",
            Protocol::Anthropic => "/messages",
        }
    }

    fn auth_headers(self, key: Option<&Secret>) -> Vec<(String, String)> {
        match self {
            Protocol::OpenAi => openai::auth_headers(key),
            Protocol::Anthropic => anthropic::auth_headers(key),
        }
    }

    fn body(self, settings: &Settings, history: &[Message], stream: bool) -> Json {
        match self {
            Protocol::OpenAi => openai::body(settings, history, stream),
            Protocol::Anthropic => anthropic::body(settings, history, stream),
        }
    }

    fn complete_text(self, body: &[u8]) -> Result<String, String> {
        match self {
            Protocol::OpenAi => openai::complete_text(body),
            Protocol::Anthropic => anthropic::complete_text(body),
        }
    }

    fn stream_item(self, event: &Event) -> Result<StreamItem, String> {
        match self {
            Protocol::OpenAi => openai::stream_item(event),
            Protocol::Anthropic => anthropic::stream_item(event),
        }
    }
}

/// A provider clawft knows without configuration.
#[derive(Debug)]
pub struct Builtin {
    pub name: &'static str,
    pub api_base: &'static str,
    /// The environment variable its key is usually kept in.
    pub key_env: Option<&'static str>,
    pub protocol: Protocol,
    pub needs_key: bool,
}

const fn hosted(name: &'static str, api_base: &'static str, key_env: &'static str) -> Builtin {
    Builtin {
        name,
        api_base,
        key_env: Some(key_env),
        protocol: Protocol::OpenAi,
        needs_key: true,
    }
}

pub const BUILTINS: &[Builtin] = &[
    hosted("openai", "https://api.openai.com/v1", "OPENAI_API_KEY"),
    Builtin {
        name: "anthropic",
        api_base: "https://api.anthropic.com/v1",
        key_env: Some("ANTHROPIC_API_KEY"),
        protocol: Protocol::Anthropic,
        needs_key: true,
    },
    hosted(
        "openrouter",
        "https://openrouter.ai/api/v1",
        "OPENROUTER_API_KEY",
    ),
    hosted("groq", "https://api.groq.com/openai/v1", "GROQ_API_KEY"),
    hosted(
        "deepseek",
        "https://api.deepseek.com/v1",
        "DEEPSEEK_API_KEY",
    ),
    hosted(
        "gemini",
        "https://generativelanguage.googleapis.com/v1beta/openai",
        "GEMINI_API_KEY",
    ),
    hosted("mistral", "https://api.mistral.ai/v1", "MISTRAL_API_KEY"),
    hosted("xai", "https://api.x.ai/v1", "XAI_API_KEY"),
    hosted(
        "together",
        "https://api.together.xyz/v1",
        "TOGETHER_API_KEY",
    ),
    Builtin {
        name: "ollama",
        api_base: "http://localhost:11434/v1",
        key_env: Some("OLLAMA_API_KEY"),
        protocol: Protocol::OpenAi,
        needs_key: false,
    },
];

/// The built-in provider of that name, if any.
pub fn builtin(name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.name == name)
}

/// Builds the HTTP request for one chat turn. `history` ends with the new
/// user message; the bodies leave out what is not [`sendable`].
pub fn request(
    settings: &Settings,
    history: &[Message],
    stream: bool,
) -> Result<http::Request, Error> {
    let provider = &settings.provider;
    let key = provider.require_key()?;
    let protocol = provider.protocol;
    let accept = if stream {
        "text/event-stream"
    } else {
        "application/json"
    };
    let mut headers = vec![
        ("content-type".to_owned(), "application/json".to_owned()),
        ("accept".to_owned(), accept.to_owned()),
        ("user-agent".to_owned(), http::USER_AGENT.to_owned()),
    ];
    headers.extend(protocol.auth_headers(key));
    headers.extend(provider.extra_headers.iter().cloned());
    Ok(http::Request {
        url: format!("{}{}", provider.api_base, protocol.path()),
        headers,
        body: protocol
            .body(settings, history, stream)
            .to_text()
            .into_bytes(),
        timeout: provider.timeout,
    })
}

/// Whether a message can go to a provider: an empty one (an old session
/// may hold one) is refused by them, so it is left out.
fn sendable(message: &Message) -> bool {
    !message.content.trim().is_empty()
}

/// What one event of a streamed reply says.
#[derive(Debug, PartialEq, Eq)]
pub enum StreamItem {
    /// Text to show; `last` when the same event also ends the reply.
    Text { text: String, last: bool },
    /// The provider said the reply is complete.
    Finished,
    /// An event that carries nothing for the user (role headers, pings, usage).
    Nothing,
    /// The provider reported an error inside the stream.
    Failed(Failure),
}

/// An error a provider reported inside a stream.
#[derive(Debug, PartialEq, Eq)]
pub struct Failure {
    pub message: String,
    /// Its type, e.g. `overloaded_error`, which decides whether to retry.
    pub kind: Option<String>,
}

impl Failure {
    /// Reads an error event's data (the same shape as an error body).
    pub fn from_body(body: &[u8]) -> Failure {
        let parsed = json::parse(body).ok();
        let found = match &parsed {
            Some(parsed) => message_in(parsed),
            None => error_message(body),
        };
        Failure {
            message: found.unwrap_or_else(|| "an error without a message".into()),
            kind: parsed.as_ref().and_then(kind_in),
        }
    }
}

/// Reads a reply. Text is handed to `on_text` as it arrives (once, whole,
/// when not streaming); the complete text is returned. An empty reply is an
/// error, never saved.
pub fn read_reply(
    settings: &Settings,
    mut response: Response,
    stream: bool,
    on_text: &mut dyn FnMut(&str) -> Result<(), Error>,
) -> Result<String, Error> {
    let provider = &settings.provider;
    if !(200..300).contains(&response.status) {
        return Err(status_error(provider, response));
    }
    let is_sse = response
        .header("content-type")
        .is_some_and(|t| t.starts_with("text/event-stream"));
    let text = if stream && is_sse {
        Stream::new(settings, on_text).read(response)?
    } else {
        // Also the path for a server that ignores `"stream": true`.
        let body = response.read_to_end(MAX_REPLY_BYTES).map_err(Error::Http)?;
        let text = provider
            .protocol
            .complete_text(&body)
            .map_err(|detail| bad_reply(provider, &detail))?;
        if !text.trim().is_empty() {
            on_text(&text)?;
        }
        text
    };
    if text.trim().is_empty() {
        return Err(bad_reply(provider, "the reply has no text"));
    }
    Ok(text)
}

/// A streamed reply being read: the text so far, and the bounds.
struct Stream<'a> {
    settings: &'a Settings,
    on_text: &'a mut dyn FnMut(&str) -> Result<(), Error>,
    text: String,
    finished: bool,
    events: usize,
    max_events: usize,
}

impl<'a> Stream<'a> {
    fn new(settings: &'a Settings, on_text: &'a mut dyn FnMut(&str) -> Result<(), Error>) -> Self {
        Stream {
            settings,
            on_text,
            text: String::new(),
            finished: false,
            events: 0,
            max_events: max_stream_events(settings.max_tokens),
        }
    }

    /// Reads events until the provider says the reply is complete (then
    /// stops, whether or not the server closes) or the body ends.
    fn read(mut self, mut response: Response) -> Result<String, Error> {
        let provider = &self.settings.provider;
        let mut parser = SseParser::default();
        let mut events: Vec<Event> = Vec::new();
        let mut received = 0usize;
        let mut buf = vec![0u8; 16 * 1024];
        while !self.finished {
            let n = match response.body.read(&mut buf) {
                Ok(n) => n,
                Err(HttpError::Timeout(phase)) => {
                    return Err(Error::Http(HttpError::Timeout(phase)))
                }
                Err(err) => return Err(self.interrupted(&format!("broke off the reply: {err}"))),
            };
            if n == 0 {
                // A last event without its closing blank line still counts.
                if let Some(event) = parser.finish() {
                    self.apply(&event)?;
                }
                break;
            }
            received += n;
            if received > MAX_STREAM_BYTES {
                let detail = format!("the stream is longer than {MAX_STREAM_BYTES} bytes");
                return Err(bad_reply(provider, &detail));
            }
            parser
                .push(&buf[..n], &mut events)
                .map_err(|e| bad_reply(provider, &e.to_string()))?;
            for event in events.drain(..) {
                if !self.finished {
                    self.apply(&event)?;
                }
            }
        }
        if !self.finished {
            return Err(self.interrupted("closed the stream before the reply was complete"));
        }
        Ok(self.text)
    }

    /// Shows and keeps the text an event carries, or fails as it says.
    fn apply(&mut self, event: &Event) -> Result<(), Error> {
        let provider = &self.settings.provider;
        self.events += 1;
        if self.events > self.max_events {
            let detail = format!("more than {} events in one reply", self.max_events);
            return Err(bad_reply(provider, &detail));
        }
        let item = provider
            .protocol
            .stream_item(event)
            .map_err(|detail| bad_reply(provider, &detail))?;
        match item {
            StreamItem::Text { text, last } => {
                if self.text.len() + text.len() > MAX_REPLY_BYTES {
                    let detail = format!("the reply is longer than {MAX_REPLY_BYTES} bytes");
                    return Err(bad_reply(provider, &detail));
                }
                (self.on_text)(&text)?;
                self.text.push_str(&text);
                self.finished = last;
            }
            StreamItem::Finished => self.finished = true,
            StreamItem::Nothing => {}
            StreamItem::Failed(failure) => {
                return Err(Error::ProviderError {
                    provider: provider.name.clone(),
                    message: clean(&failure.message, provider.api_key.as_ref()),
                    kind: failure.kind,
                })
            }
        }
        Ok(())
    }

    fn interrupted(&self, detail: &str) -> Error {
        let provider = &self.settings.provider;
        Error::StreamInterrupted {
            provider: provider.name.clone(),
            detail: clean(detail, provider.api_key.as_ref()),
        }
    }
}

/// Turns a non-success response into the error a user can act on.
fn status_error(provider: &Provider, mut response: Response) -> Error {
    let status = response.status;
    let retry_after = crate::retry::retry_after(&response.headers, std::time::SystemTime::now());
    // The first 64 KiB are enough to find a message; a longer body is not an
    // excuse to lose it.
    let body = response.read_prefix(MAX_ERROR_BYTES);
    let message = match error_message(&body) {
        Some(message) => clean(&message, provider.api_key.as_ref()),
        None => reason_phrase(status).to_owned(),
    };
    let provider = provider.name.clone();
    match status {
        401 | 403 => Error::InvalidApiKey {
            provider,
            status,
            message,
        },
        _ => Error::Status {
            provider,
            status,
            message,
            retry_after,
        },
    }
}

/// The provider's own words from an error body, as sent: `{"error":
/// {"message":..}}` (OpenAI, Anthropic), `{"error":".."}` (Ollama) or
/// `{"message":..}`; otherwise a plain-text body as it is. Pass the result
/// through [`clean`] before showing it.
pub fn error_message(body: &[u8]) -> Option<String> {
    match json::parse(body) {
        Ok(parsed) => message_in(&parsed),
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            (!text.is_empty() && !text.starts_with('<')).then(|| text.to_owned())
        }
    }
}

/// The message of a parsed error body.
fn message_in(parsed: &Json) -> Option<String> {
    let error = parsed.get("error");
    [
        error.and_then(|e| e.get("message")),
        error,
        parsed.get("message"),
    ]
    .into_iter()
    .flatten()
    .find_map(Json::as_str)
    .map(|m| m.trim().to_owned())
}

/// The error's type or code, e.g. `overloaded_error` or `rate_limit_exceeded`.
fn kind_in(parsed: &Json) -> Option<String> {
    let error = parsed.get("error")?;
    error
        .get("type")
        .or_else(|| error.get("code"))
        .and_then(Json::as_str)
        .map(str::to_owned)
}

/// Text from outside (a provider's message) made fit for one stderr line:
/// first every copy of the key removed, then control characters (newlines,
/// terminal escapes) turned into spaces, then cut to 500 characters. In that
/// order, so a cut can never leave part of the key behind.
pub fn clean(text: &str, key: Option<&Secret>) -> String {
    let redacted = redact(text, key);
    let one_line: String = redacted
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    shorten(one_line.trim())
}

fn shorten(text: &str) -> String {
    const MAX: usize = 500;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        400 => "bad request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not found (check api_base and the model name)",
        408 => "request timeout",
        429 => "rate limited",
        500 => "internal server error",
        502 => "bad gateway",
        503 => "service unavailable",
        504 => "gateway timeout",
        529 => "overloaded",
        _ => "no error message in the response",
    }
}

fn bad_reply(provider: &Provider, detail: &str) -> Error {
    Error::BadReply {
        provider: provider.name.clone(),
        detail: clean(detail, provider.api_key.as_ref()),
    }
}

/// Removes every copy of the key from text that came from outside (a
/// provider that echoes the key back must not make us print it).
pub fn redact(text: &str, key: Option<&Secret>) -> String {
    match key.map(Secret::expose) {
        Some(key) if !key.is_empty() => text.replace(key, "[redacted]"),
        _ => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const KEY: &str = "KEYKEYKEY-distinctive-0123456789";

    fn settings(model: &str) -> Settings {
        Config::parse("{}")
            .unwrap()
            .settings(Some(model), |_| Some(KEY.into()))
            .unwrap()
    }

    /// A body that hands out its pieces one read at a time, then fails if
    /// read again (a server that keeps the connection open).
    struct Scripted(Vec<Vec<u8>>, bool);

    impl http::ReadBody for Scripted {
        fn read(&mut self, buf: &mut [u8]) -> Result<usize, HttpError> {
            if self.0.is_empty() {
                return if self.1 {
                    Err(HttpError::Timeout("(read after the end)".into()))
                } else {
                    Ok(0)
                };
            }
            let n = buf.len().min(self.0[0].len());
            buf[..n].copy_from_slice(&self.0[0][..n]);
            self.0[0].drain(..n);
            if self.0[0].is_empty() {
                self.0.remove(0);
            }
            Ok(n)
        }
    }

    fn reply(status: u16, content_type: &str, pieces: &[&str], open: bool) -> Response {
        Response {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            body: Box::new(Scripted(
                pieces.iter().map(|p| p.as_bytes().to_vec()).collect(),
                open,
            )),
        }
    }

    fn read(model: &str, response: Response) -> (Result<String, Error>, String) {
        let mut shown = String::new();
        let result = read_reply(&settings(model), response, true, &mut |t| {
            shown.push_str(t);
            Ok(())
        });
        (result, shown)
    }

    #[test]
    fn a_stream_ends_on_its_last_event_however_it_arrives() {
        let sse = "text/event-stream";
        let chunk = |text: &str, finish: &str| {
            format!("data: {{\"choices\":[{{\"delta\":{{\"content\":\"{text}\"}},\"finish_reason\":{finish}}}]}}\n\n")
        };
        // Text and finish_reason in one chunk, no [DONE], connection left open.
        let r = reply(
            200,
            sse,
            &[&chunk("Hello", "null"), &chunk(" world", "\"stop\"")],
            true,
        );
        assert_eq!(read("openai/m", r).0.unwrap(), "Hello world");
        // [DONE] without its blank line, then the end.
        let r = reply(200, sse, &[&chunk("Hi", "null"), "data: [DONE]"], false);
        assert_eq!(read("openai/m", r).0.unwrap(), "Hi");
        // Anthropic's message_stop, connection left open.
        let events = [
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"Yo\"}}\n\n",
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
        ];
        let r = reply(200, sse, &events, true);
        assert_eq!(read("anthropic/m", r).0.unwrap(), "Yo");
        // Cut off: shown, then reported, never finished.
        let r = reply(200, sse, &[&chunk("Hel", "null")], false);
        let (result, shown) = read("openai/m", r);
        assert_eq!(shown, "Hel");
        assert!(matches!(result, Err(Error::StreamInterrupted { .. })));
    }

    #[test]
    fn empty_messages_are_left_out_of_requests() {
        use crate::session::Role;
        let history = [
            Message::new(Role::User, "hi"),
            Message::new(Role::Assistant, " "),
            Message::new(Role::User, "again"),
        ];
        for model in ["openai/m", "anthropic/m"] {
            let r = request(&settings(model), &history, false).unwrap();
            let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            let sent = body["messages"].as_array().unwrap();
            assert_eq!(sent.len(), 2, "{model}: {body}");
        }
    }

    #[test]
    fn an_empty_reply_is_an_error_not_a_turn() {
        let r = reply(200, "text/event-stream", &["data: [DONE]\n\n"], false);
        assert!(matches!(read("openai/m", r).0, Err(Error::BadReply { .. })));
        let r = reply(
            200,
            "application/json",
            &[r#"{"choices":[{"message":{"content":""}}]}"#],
            false,
        );
        assert!(matches!(read("openai/m", r).0, Err(Error::BadReply { .. })));
    }

    #[test]
    fn provider_text_is_redacted_before_it_is_cut_and_kept_on_one_line() {
        // Found in review: the key straddling the 500-character cut survived in part.
        for prefix in [490, 495, 499] {
            let body = format!(
                "{{\"error\":{{\"message\":\"{} {KEY}\"}}}}",
                "x".repeat(prefix)
            );
            let Err(err) = read("openai/m", reply(400, "application/json", &[&body], false)).0
            else {
                panic!("a 400 is an error");
            };
            assert!(!err.to_string().contains(&KEY[..6]), "{err}");
        }
        let body = r#"{"error":{"message":"first
second [31mred"}}"#;
        let err = read("openai/m", reply(500, "application/json", &[body], false))
            .0
            .unwrap_err();
        let text = err.to_string();
        assert!(!text.contains('\n') && !text.contains('\u{1b}'), "{text:?}");
        assert!(text.contains("first second  [31mred"), "{text:?}");
    }

    #[test]
    fn a_long_error_body_still_yields_its_message() {
        let body = format!("{}{}", "overloaded, try later ", "x".repeat(100_000));
        let err = read("openai/m", reply(503, "text/plain", &[&body], false))
            .0
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("HTTP 503: overloaded, try later x"),
            "{err}"
        );
        let nested = r#"{"error":{"code":"E1"},"message":"top-level words"}"#;
        assert_eq!(
            error_message(nested.as_bytes()).as_deref(),
            Some("top-level words")
        );
    }

    #[test]
    fn mid_stream_errors_carry_their_kind() {
        let event = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
        let r = reply(200, "text/event-stream", &[event], false);
        match read("anthropic/m", r).0 {
            Err(Error::ProviderError { message, kind, .. }) => {
                assert_eq!(
                    (message.as_str(), kind.as_deref()),
                    ("Overloaded", Some("overloaded_error"))
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn error_messages_are_found_in_every_shape() {
        let openai = br#"{"error":{"message":"Incorrect API key","type":"invalid_request_error","code":"invalid_api_key"}}"#;
        let anthropic =
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        let ollama = br#"{"error":"model 'x' not found"}"#;
        assert_eq!(error_message(openai).unwrap(), "Incorrect API key");
        assert_eq!(error_message(anthropic).unwrap(), "Overloaded");
        assert_eq!(error_message(ollama).unwrap(), "model 'x' not found");
        assert_eq!(error_message(b"upstream down").unwrap(), "upstream down");
        assert_eq!(error_message(b"<html>502</html>"), None);
        assert_eq!(error_message(b"{}"), None);
    }

    #[test]
    fn redact_removes_every_copy_of_the_key() {
        let key = Secret::new("sk-123");
        assert_eq!(
            redact("bad key sk-123, really sk-123", Some(&key)),
            "bad key [redacted], really [redacted]"
        );
        assert_eq!(redact("nothing", None), "nothing");
    }

    #[test]
    fn builtins_have_unique_names_and_versioned_bases() {
        for (i, b) in BUILTINS.iter().enumerate() {
            assert!(BUILTINS[i + 1..].iter().all(|o| o.name != b.name));
            assert!(crate::http::Url::parse(b.api_base).is_ok(), "{}", b.name);
            assert!(!b.api_base.ends_with('/'));
        }
        assert_eq!(builtin("groq").unwrap().protocol, Protocol::OpenAi);
        assert!(!builtin("ollama").unwrap().needs_key);
    }
}
