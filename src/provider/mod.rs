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
    10_000 + 8 * max_tokens as usize
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
/// user message.
pub fn request(
    settings: &Settings,
    history: &[Message],
    stream: bool,
) -> Result<http::Request, Error> {
    let provider = &settings.provider;
    let key = provider.require_key()?;
    let (path, auth, body) = match provider.protocol {
        Protocol::OpenAi => (
            "/chat/completions",
            openai::auth_headers(key),
            openai::body(settings, history, stream),
        ),
        Protocol::Anthropic => (
            "/messages",
            anthropic::auth_headers(key),
            anthropic::body(settings, history, stream),
        ),
    };
    let accept = if stream {
        "text/event-stream"
    } else {
        "application/json"
    };
    let mut headers = vec![
        ("content-type".to_owned(), "application/json".to_owned()),
        ("accept".to_owned(), accept.to_owned()),
        (
            "user-agent".to_owned(),
            concat!("clawft/", env!("CARGO_PKG_VERSION")).to_owned(),
        ),
    ];
    headers.extend(auth);
    headers.extend(provider.extra_headers.iter().cloned());
    Ok(http::Request {
        url: format!("{}{path}", provider.api_base),
        headers,
        body: body.to_text().into_bytes(),
        timeout: provider.timeout,
    })
}

/// What one event of a streamed reply means.
#[derive(Debug, PartialEq, Eq)]
pub enum StreamItem {
    Text(String),
    /// The provider said the reply is complete.
    Finished,
    /// An event that carries nothing for the user (role headers, pings, usage).
    Nothing,
    /// The provider reported an error inside the stream.
    Failed(String),
}

/// Reads a reply. Text is handed to `on_text` as it arrives (once, whole,
/// when not streaming); the complete text is returned.
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
    if !(stream && is_sse) {
        // Also the path for a server that ignores `"stream": true`.
        let body = response.read_to_end(MAX_REPLY_BYTES).map_err(Error::Http)?;
        let text = match provider.protocol {
            Protocol::OpenAi => openai::complete_text(&body),
            Protocol::Anthropic => anthropic::complete_text(&body),
        }
        .map_err(|detail| bad_reply(provider, detail))?;
        on_text(&text)?;
        return Ok(text);
    }
    read_stream(settings, response, on_text)
}

fn read_stream(
    settings: &Settings,
    mut response: Response,
    on_text: &mut dyn FnMut(&str) -> Result<(), Error>,
) -> Result<String, Error> {
    let provider = &settings.provider;
    let max_events = max_stream_events(settings.max_tokens);
    let interrupted = |detail: String| Error::StreamInterrupted {
        provider: provider.name.clone(),
        detail,
    };
    let mut parser = SseParser::default();
    let mut events: Vec<Event> = Vec::new();
    let mut text = String::new();
    let mut finished = false;
    let mut seen = 0usize;
    let mut received = 0usize;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match response.body.read(&mut buf) {
            Ok(n) => n,
            Err(HttpError::Timeout(phase)) => return Err(Error::Http(HttpError::Timeout(phase))),
            Err(err) => return Err(interrupted(format!("broke off the reply: {err}"))),
        };
        if n == 0 {
            break;
        }
        received += n;
        if received > MAX_STREAM_BYTES {
            return Err(bad_reply(
                provider,
                format!("the stream is longer than {MAX_STREAM_BYTES} bytes"),
            ));
        }
        parser
            .push(&buf[..n], &mut events)
            .map_err(|e| bad_reply(provider, e.to_string()))?;
        for event in events.drain(..) {
            seen += 1;
            if seen > max_events {
                return Err(bad_reply(
                    provider,
                    format!("more than {max_events} events in one reply"),
                ));
            }
            let item = match provider.protocol {
                Protocol::OpenAi => openai::stream_item(&event),
                Protocol::Anthropic => anthropic::stream_item(&event),
            }
            .map_err(|detail| bad_reply(provider, detail))?;
            match item {
                StreamItem::Text(piece) => {
                    if text.len() + piece.len() > MAX_REPLY_BYTES {
                        return Err(bad_reply(
                            provider,
                            format!("the reply is longer than {MAX_REPLY_BYTES} bytes"),
                        ));
                    }
                    on_text(&piece)?;
                    text.push_str(&piece);
                }
                StreamItem::Finished => finished = true,
                StreamItem::Nothing => {}
                StreamItem::Failed(message) => {
                    return Err(Error::ProviderError {
                        provider: provider.name.clone(),
                        message: redact(&message, provider.api_key.as_ref()),
                    })
                }
            }
        }
    }
    parser.finish();
    if !finished {
        return Err(interrupted(
            "closed the stream before the reply was complete".into(),
        ));
    }
    Ok(text)
}

/// Turns a non-success response into the error a user can act on.
fn status_error(provider: &Provider, mut response: Response) -> Error {
    let status = response.status;
    let retry_after = crate::retry::retry_after(&response.headers, std::time::SystemTime::now());
    let body = response.read_to_end(MAX_ERROR_BYTES).unwrap_or_default();
    let message = error_message(&body)
        .map(|m| redact(&m, provider.api_key.as_ref()))
        .unwrap_or_else(|| reason_phrase(status).to_owned());
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

/// The provider's own words from an error body: `{"error":{"message":..}}`
/// (OpenAI, Anthropic), `{"error":".."}` (Ollama) or `{"message":..}`;
/// otherwise a short plain-text body as is.
pub fn error_message(body: &[u8]) -> Option<String> {
    let Ok(parsed) = json::parse(body) else {
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        return (!text.is_empty() && !text.starts_with('<')).then(|| shorten(text));
    };
    let error = parsed.get("error");
    let found = error
        .and_then(|e| e.get("message"))
        .or(error)
        .or_else(|| parsed.get("message"))
        .and_then(Json::as_str)?;
    Some(shorten(found.trim()))
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

fn bad_reply(provider: &Provider, detail: String) -> Error {
    Error::BadReply {
        provider: provider.name.clone(),
        detail: redact(&detail, provider.api_key.as_ref()),
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
