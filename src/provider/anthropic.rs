//! The Anthropic messages wire format.
//!
//! `POST {api_base}/messages` with `x-api-key` and `anthropic-version:
//! 2023-06-01`; `max_tokens` is required and the system prompt is a top-level
//! field. A streamed reply is SSE with named events: text arrives in
//! `content_block_delta` (`text_delta`), the end is `message_stop`, and
//! `error` reports a failure mid-stream (for example `overloaded_error`).

use super::{Failure, StreamItem};
use crate::config::{Secret, Settings};
use crate::json::{self, object, Json, Member};
use crate::session::Message;
use crate::sse::Event;

pub const API_VERSION: &str = "2023-06-01";

pub fn auth_headers(key: Option<&Secret>) -> Vec<(String, String)> {
    let mut headers = vec![("anthropic-version".to_owned(), API_VERSION.to_owned())];
    if let Some(key) = key {
        headers.push(("x-api-key".to_owned(), key.expose().to_owned()));
    }
    headers
}

/// The request body: `max_tokens` is required, the system prompt top-level.
pub fn body(settings: &Settings, history: &[Message], stream: bool) -> Json {
    let messages: Vec<Json> = history
        .iter()
        .filter(|m| super::sendable(m))
        .map(|m| {
            object([
                ("role", m.role.name().into()),
                ("content", m.content.as_str().into()),
            ])
        })
        .collect();
    let mut body = vec![
        Member::new("model", settings.model.as_str()),
        Member::new("max_tokens", u64::from(settings.max_tokens)),
    ];
    if let Some(system) = &settings.system_prompt {
        body.push(Member::new("system", system.as_str()));
    }
    body.push(Member::new("messages", messages));
    body.push(Member::new("stream", stream));
    if let Some(t) = &settings.temperature {
        body.push(Member::new("temperature", t));
    }
    Json::Object(body)
}

/// The text of a complete (non-streamed) reply: its text blocks, joined.
pub fn complete_text(body: &[u8]) -> Result<String, String> {
    let reply = json::parse(body).map_err(|e| format!("invalid JSON: {e}"))?;
    let blocks = reply
        .get("content")
        .and_then(Json::as_array)
        .ok_or("the reply has no content")?;
    let texts: Vec<&str> = blocks
        .iter()
        .filter(|b| b.get("type").and_then(Json::as_str) == Some("text"))
        .filter_map(|b| b.get("text").and_then(Json::as_str))
        .collect();
    if texts.is_empty() {
        return Err("the reply has no text block".into());
    }
    Ok(texts.concat())
}

/// Interprets one SSE event.
pub fn stream_item(event: &Event) -> Result<StreamItem, String> {
    // The `type` inside the data is authoritative; the event name repeats it.
    let data = json::parse(event.data.as_bytes())
        .map_err(|e| format!("invalid JSON in '{}' event: {e}", event.name))?;
    fn kind(v: Option<&Json>) -> Option<&str> {
        v?.get("type")?.as_str()
    }
    fn text(v: Option<&Json>) -> StreamItem {
        match v.and_then(|v| v.get("text")).and_then(Json::as_str) {
            Some(t) if !t.is_empty() => StreamItem::Text {
                text: t.to_owned(),
                last: false,
            },
            _ => StreamItem::Nothing,
        }
    }
    Ok(match kind(Some(&data)) {
        Some("content_block_delta") => match kind(data.get("delta")) {
            Some("text_delta") => text(data.get("delta")),
            _ => StreamItem::Nothing, // thinking or tool-input deltas are not shown
        },
        Some("content_block_start") => match kind(data.get("content_block")) {
            Some("text") => text(data.get("content_block")),
            _ => StreamItem::Nothing,
        },
        Some("message_stop") => StreamItem::Finished,
        Some("error") => StreamItem::Failed(Failure::from_body(event.data.as_bytes())),
        Some(_) => StreamItem::Nothing, // message_start, message_delta, ping, block stops
        None => return Err(format!("a '{}' event without a type", event.name)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::session::Role;

    fn event(name: &str, data: &str) -> Event {
        Event {
            name: name.into(),
            data: data.into(),
        }
    }

    #[test]
    fn the_system_prompt_is_top_level_and_max_tokens_is_always_sent() {
        let s = Config::parse(r#"{"agents":{"defaults":{"systemPrompt":"Be brief."}}}"#)
            .unwrap()
            .settings(Some("anthropic/claude-sonnet-4-5"), |_| Some("k".into()))
            .unwrap();
        let history = [Message::new(Role::User, "hi")];
        let json = serde_json::from_str::<serde_json::Value>(&body(&s, &history, false).to_text())
            .unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "model": "claude-sonnet-4-5",
                "max_tokens": 4096,
                "system": "Be brief.",
                "messages": [{"role": "user", "content": "hi"}],
                "stream": false
            })
        );
        let headers = auth_headers(Some(&Secret::new("k")));
        assert!(headers.contains(&("anthropic-version".into(), "2023-06-01".into())));
        assert!(headers.contains(&("x-api-key".into(), "k".into())));
    }

    #[test]
    fn complete_replies_join_their_text_blocks() {
        let ok = br#"{"id":"msg_1","type":"message","role":"assistant","content":[{"type":"text","text":"Hel"},{"type":"tool_use","id":"t","name":"x","input":{}},{"type":"text","text":"lo"}],"stop_reason":"end_turn"}"#;
        assert_eq!(complete_text(ok).unwrap(), "Hello");
        assert!(complete_text(br#"{"content":[]}"#).is_err());
    }

    #[test]
    fn stream_events_map_to_items() {
        let cases = [
            (
                event(
                    "message_start",
                    r#"{"type":"message_start","message":{"id":"m","content":[]}}"#,
                ),
                StreamItem::Nothing,
            ),
            (
                event(
                    "content_block_start",
                    r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
                ),
                StreamItem::Nothing,
            ),
            (event("ping", r#"{"type": "ping"}"#), StreamItem::Nothing),
            (
                event(
                    "content_block_delta",
                    r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#,
                ),
                StreamItem::Text {
                    text: "Hi".into(),
                    last: false,
                },
            ),
            (
                event(
                    "content_block_delta",
                    r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{"}}"#,
                ),
                StreamItem::Nothing,
            ),
            (
                event(
                    "content_block_stop",
                    r#"{"type":"content_block_stop","index":0}"#,
                ),
                StreamItem::Nothing,
            ),
            (
                event(
                    "message_delta",
                    r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":2}}"#,
                ),
                StreamItem::Nothing,
            ),
            (
                event("message_stop", r#"{"type":"message_stop"}"#),
                StreamItem::Finished,
            ),
            (
                event(
                    "error",
                    r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
                ),
                StreamItem::Failed(Failure {
                    message: "Overloaded".into(),
                    kind: Some("overloaded_error".into()),
                }),
            ),
        ];
        for (event, expected) in cases {
            assert_eq!(stream_item(&event).unwrap(), expected, "{}", event.name);
        }
        assert!(stream_item(&event("x", "nope")).is_err());
    }
}
