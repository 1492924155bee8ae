//! LLM providers: which ones clawft knows ([`registry`]), how a
//! conversation becomes an HTTP request, and how a reply, whole or
//! streamed, becomes text and tool calls ([`Reply`]).
//!
//! Two wire protocols cover the field, each one [`Wire`]: OpenAI chat
//! completions (OpenAI, OpenRouter, Groq, DeepSeek, Ollama, vLLM, ...) in
//! [`openai`], and Anthropic messages in [`anthropic`]. A streamed reply is
//! read by the protocol's [`Decoder`], which keeps state across events:
//! tool-call arguments arrive in pieces, and so may a character. Both speak
//! through [`crate::http`].

pub mod anthropic;
pub mod openai;
pub mod registry;
mod stream;

pub use registry::{builtin, Builtin, BUILTINS};

use crate::config::{Provider, Settings};
use crate::conversation::{Message, Part, Role, ToolCall};
use crate::error::Error;
use crate::http::{self, Method, Response};
use crate::json::{self, Json};
use crate::secrets::Secret;
use crate::sse::Event;

/// The largest complete (non-streamed) reply body clawft will hold.
pub const MAX_REPLY_BYTES: usize = 8 << 20;
/// The largest error body read to find the provider's message.
pub const MAX_ERROR_BYTES: usize = 64 << 10;
/// The most bytes one streamed reply may take on the wire (events, pings
/// and comments included).
pub const MAX_STREAM_BYTES: usize = 64 << 20;

/// The most events one streamed reply may carry: generous for `max_tokens`
/// (an event carries at least one token), small enough that an endless
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
        self.wire().name()
    }

    /// The protocol's request and reply formats.
    pub fn wire(self) -> &'static dyn Wire {
        match self {
            Protocol::OpenAi => &openai::OpenAi,
            Protocol::Anthropic => &anthropic::Anthropic,
        }
    }
}

/// One wire protocol: the request it wants, the replies it gives.
pub trait Wire: Sync {
    fn name(&self) -> &'static str;
    /// Where requests go, under the provider's `api_base`.
    fn path(&self) -> &'static str;
    fn auth_headers(&self, key: Option<&Secret>) -> Vec<(String, String)>;
    /// The request body for `ask`.
    fn body(&self, settings: &Settings, ask: &Ask<'_>) -> Json;
    /// Reads a complete (non-streamed) reply body.
    fn complete(&self, body: &[u8]) -> Result<Reply, String>;
    /// A fresh reader for one streamed reply.
    fn decoder(&self) -> Box<dyn Decoder>;
}

/// Reads one streamed reply, event by event, keeping what spans events.
pub trait Decoder {
    /// Takes one event; says what text it adds (to show at once) and
    /// whether the reply is complete.
    fn event(&mut self, event: &Event) -> Result<Step, Fault>;
    /// The reply, once the stream is complete.
    fn finish(self: Box<Self>) -> Result<Reply, String>;
}

/// What one streamed event added.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Step {
    /// Text to show now; empty for most non-text events.
    pub text: String,
    /// The provider said the reply is complete.
    pub done: bool,
}

/// Why a streamed event ends the reply.
#[derive(Debug, PartialEq, Eq)]
pub enum Fault {
    /// The event is not what the protocol promises.
    Bad(String),
    /// The provider reported an error inside the stream.
    Failed(Failure),
}

impl From<String> for Fault {
    fn from(detail: String) -> Fault {
        Fault::Bad(detail)
    }
}

/// A tool offered to the model.
#[derive(Debug, Clone)]
pub struct ToolSpec {
    pub name: &'static str,
    pub description: &'static str,
    /// A JSON Schema object for the arguments.
    pub parameters: Json,
}

/// What one request asks of the model.
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    /// The conversation so far, ending with the newest user message or
    /// tool results; the bodies leave out what is not sendable.
    pub history: &'a [Message],
    /// The tools the model may know of.
    pub tools: &'a [ToolSpec],
    /// Whether it may call them now. Off with tools still listed when the
    /// history holds earlier calls, which a provider reads only against
    /// their definitions.
    pub may_call: bool,
    pub stream: bool,
}

/// A complete reply: its text and the tools it asks to run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reply {
    pub text: String,
    pub calls: Vec<ToolCall>,
    pub stop: Stop,
    /// Characters that arrived broken (invalid UTF-8, half a surrogate
    /// pair) and were shown as U+FFFD.
    pub repaired: usize,
}

impl Reply {
    /// The reply as the assistant's message: its text, then its calls.
    pub fn message(&self) -> Message {
        let mut parts = Vec::new();
        if !self.text.is_empty() {
            parts.push(Part::Text(self.text.clone()));
        }
        parts.extend(self.calls.iter().cloned().map(Part::Call));
        Message::new(Role::Assistant, parts)
    }
}

/// Why the model stopped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Stop {
    /// It finished its answer.
    #[default]
    Done,
    /// It wants the tools it called run.
    ToolUse,
    /// It hit the `max_tokens` limit.
    Length,
    /// Another reason, as the provider named it (a content filter, ...).
    Other(String),
}

impl Stop {
    /// Reads either protocol's name for a reason.
    pub fn from_name(name: &str) -> Stop {
        match name {
            "stop" | "end_turn" | "stop_sequence" => Stop::Done,
            "tool_calls" | "tool_use" | "function_call" => Stop::ToolUse,
            "length" | "max_tokens" => Stop::Length,
            other => Stop::Other(other.to_owned()),
        }
    }
}

/// Builds the HTTP request for `ask`.
pub fn request(settings: &Settings, ask: &Ask<'_>) -> Result<http::Request, Error> {
    let provider = &settings.provider;
    let key = provider.require_key()?;
    let wire = provider.protocol.wire();
    let accept = if ask.stream {
        "text/event-stream"
    } else {
        "application/json"
    };
    let mut headers = vec![
        ("content-type".to_owned(), "application/json".to_owned()),
        ("accept".to_owned(), accept.to_owned()),
        ("user-agent".to_owned(), http::USER_AGENT.to_owned()),
    ];
    match (provider.auth, key) {
        (registry::Auth::ApiKeyHeader, Some(key)) => {
            headers.push(("api-key".to_owned(), key.expose().to_owned()));
        }
        _ => headers.extend(wire.auth_headers(key)),
    }
    headers.extend(provider.extra_headers.iter().cloned());
    Ok(http::Request {
        method: Method::Post,
        url: format!("{}{}", provider.api_base, wire.path()),
        headers,
        body: wire.body(settings, ask).to_text().into_bytes(),
        timeouts: provider.timeouts,
    })
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

/// Reads a reply, handing text to `on_text` as it arrives (see [`Reader`]).
pub fn read_reply(
    settings: &Settings,
    response: Response,
    stream: bool,
    on_text: &mut dyn FnMut(&str) -> Result<(), Error>,
) -> Result<Reply, Error> {
    let mut reader = Reader::new(settings, response, stream)?;
    while let Some(text) = reader.next_text()? {
        on_text(&text)?;
    }
    reader.finish()
}

pub use stream::Reader;

/// Turns a non-success response into the error a user can act on.
pub(crate) fn status_error(provider: &Provider, mut response: Response) -> Error {
    let status = response.status;
    let retry_after = crate::retry::retry_after(&response.headers, std::time::SystemTime::now());
    // The first 64 KiB are enough to find a message; a longer body is not an
    // excuse to lose it.
    let body = response.read_prefix(MAX_ERROR_BYTES);
    let message = match error_message(&body) {
        Some(message) => clean(provider, &message),
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

/// Text a provider sent, fit for one line of stderr: every credential the
/// provider is configured with removed, then made one short line.
pub fn clean(provider: &Provider, text: &str) -> String {
    provider.redactions().one_line(text)
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

pub(crate) fn bad_reply(provider: &Provider, detail: &str) -> Error {
    Error::BadReply {
        provider: provider.name.clone(),
        detail: clean(provider, detail),
    }
}

/// The JSON object a tool call's arguments text holds, if it holds one.
pub fn arguments_object(arguments: &str) -> Option<Json> {
    let text = if arguments.trim().is_empty() {
        "{}"
    } else {
        arguments
    };
    json::parse(text.as_bytes())
        .ok()
        .filter(|v| v.as_object().is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::http::{HttpError, Phase};
    use std::time::Duration;

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
                    Err(HttpError::Timeout {
                        phase: Phase::BetweenBytes,
                        limit: Duration::from_secs(1),
                    })
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
        (result.map(|r| r.text), shown)
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
        use crate::conversation::Role;
        let history = [
            Message::text(Role::User, "hi"),
            Message::text(Role::Assistant, " "),
            Message::text(Role::User, "again"),
        ];
        for model in ["openai/m", "anthropic/m"] {
            let ask = Ask {
                history: &history,
                tools: &[],
                may_call: false,
                stream: false,
            };
            let r = request(&settings(model), &ask).unwrap();
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
    fn an_invalid_utf8_stream_is_repaired_not_lost() {
        // Found in review: one broken byte killed a turn whose text was shown.
        let sse = "text/event-stream";
        let mut body = b"data: {\"choices\":[{\"delta\":{\"content\":\"ok ".to_vec();
        body.push(0xff);
        body.extend_from_slice(b"\"},\"finish_reason\":\"stop\"}]}\n\n");
        let response = Response {
            status: 200,
            headers: vec![("content-type".into(), sse.into())],
            body: Box::new(Scripted(vec![body], false)),
        };
        let mut shown = String::new();
        let reply = read_reply(&settings("openai/m"), response, true, &mut |t| {
            shown.push_str(t);
            Ok(())
        })
        .unwrap();
        assert_eq!((reply.text.as_str(), reply.repaired), ("ok \u{fffd}", 1));
        assert_eq!(shown, reply.text);
    }
}
