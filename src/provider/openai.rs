//! The OpenAI chat-completions wire format, spoken by most providers.
//!
//! `POST {api_base}/chat/completions` with `Authorization: Bearer KEY`. A
//! streamed reply is SSE: `data: {chunk}` events whose
//! `choices[0].delta.content` carries text, ended by `data: [DONE]`.

use super::{Failure, StreamItem};
use crate::config::{Secret, Settings};
use crate::json::{self, object, Json, Member};
use crate::session::Message;
use crate::sse::Event;

pub fn auth_headers(key: Option<&Secret>) -> Vec<(String, String)> {
    key.map(|k| ("authorization".to_owned(), format!("Bearer {}", k.expose())))
        .into_iter()
        .collect()
}

/// The request body. OpenAI's own API wants `max_completion_tokens` (its
/// newer models reject `max_tokens`); compatible servers want `max_tokens`.
pub fn body(settings: &Settings, history: &[Message], stream: bool) -> Json {
    let message =
        |role: &str, content: &str| object([("role", role.into()), ("content", content.into())]);
    let mut messages: Vec<Json> = Vec::with_capacity(history.len() + 1);
    if let Some(system) = &settings.system_prompt {
        messages.push(message("system", system));
    }
    messages.extend(
        history
            .iter()
            .filter(|m| super::sendable(m))
            .map(|m| message(m.role.name(), &m.content)),
    );
    let limit = if settings.provider.name == "openai" {
        "max_completion_tokens"
    } else {
        "max_tokens"
    };
    let mut body = vec![
        Member::new("model", settings.model.as_str()),
        Member::new("messages", messages),
        Member::new("stream", stream),
        Member::new(limit, u64::from(settings.max_tokens)),
    ];
    if let Some(t) = &settings.temperature {
        body.push(Member::new("temperature", t));
    }
    Json::Object(body)
}

/// The first choice's message (or, in a stream chunk, its delta).
fn first_choice(reply: &Json) -> Option<&Json> {
    reply.get("choices")?.as_array()?.first()
}

/// The text of a complete (non-streamed) reply.
pub fn complete_text(body: &[u8]) -> Result<String, String> {
    let reply = json::parse(body).map_err(|e| format!("invalid JSON: {e}"))?;
    let message = first_choice(&reply)
        .and_then(|c| c.get("message"))
        .ok_or("the reply has no choices")?;
    message
        .get("content")
        .and_then(Json::as_str)
        .or_else(|| message.get("refusal").and_then(Json::as_str))
        .map(str::to_owned)
        .ok_or_else(|| "the reply has no text content".to_owned())
}

/// Interprets one SSE event.
pub fn stream_item(event: &Event) -> Result<StreamItem, String> {
    let data = event.data.trim();
    if data == "[DONE]" {
        return Ok(StreamItem::Finished);
    }
    let chunk = json::parse(data.as_bytes()).map_err(|e| format!("invalid JSON in stream: {e}"))?;
    if chunk.get("error").is_some_and(|e| !e.is_null()) {
        return Ok(StreamItem::Failed(Failure::from_body(data.as_bytes())));
    }
    let Some(choice) = first_choice(&chunk) else {
        return Ok(StreamItem::Nothing); // e.g. the usage chunk
    };
    let delta = choice.get("delta").or_else(|| choice.get("message"));
    // A refusal streams in a field of its own; it is the reply all the same.
    let text = ["content", "refusal"]
        .into_iter()
        .find_map(|field| delta.and_then(|d| d.get(field)).and_then(Json::as_str))
        .unwrap_or("");
    let last = choice.get("finish_reason").is_some_and(|r| !r.is_null());
    Ok(match (text.is_empty(), last) {
        (false, last) => StreamItem::Text {
            text: text.to_owned(),
            last,
        },
        (true, true) => StreamItem::Finished,
        (true, false) => StreamItem::Nothing,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::session::Role;

    fn settings(model: &str, config: &str) -> Settings {
        Config::parse(config)
            .unwrap()
            .settings(Some(model), |_| Some("sk-test".into()))
            .unwrap()
    }

    fn event(data: &str) -> Event {
        Event {
            name: String::new(),
            data: data.into(),
        }
    }

    #[test]
    fn the_body_carries_system_prompt_history_and_limits() {
        let s = settings(
            "groq/llama-3.1-8b",
            r#"{"agents":{"defaults":{"systemPrompt":"Be brief.","temperature":0.5,"maxTokens":64}}}"#,
        );
        let history = [
            Message::new(Role::User, "hi"),
            Message::new(Role::Assistant, "hello"),
            Message::new(Role::User, "and now?"),
        ];
        let json =
            serde_json::from_str::<serde_json::Value>(&body(&s, &history, true).to_text()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "model": "llama-3.1-8b",
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "hi"},
                    {"role": "assistant", "content": "hello"},
                    {"role": "user", "content": "and now?"}
                ],
                "stream": true,
                "max_tokens": 64,
                "temperature": 0.5
            })
        );
        let s = settings("openai/gpt-5", "{}");
        let json = serde_json::from_str::<serde_json::Value>(&body(&s, &history, false).to_text())
            .unwrap();
        assert_eq!(json["max_completion_tokens"], 4096);
        assert!(json.get("max_tokens").is_none() && json.get("temperature").is_none());
    }

    #[test]
    fn complete_replies_yield_their_text() {
        let ok = br#"{"id":"x","choices":[{"index":0,"message":{"role":"assistant","content":"Hi!"},"finish_reason":"stop"}]}"#;
        assert_eq!(complete_text(ok).unwrap(), "Hi!");
        let refusal = br#"{"choices":[{"message":{"content":null,"refusal":"No."}}]}"#;
        assert_eq!(complete_text(refusal).unwrap(), "No.");
        assert!(complete_text(br#"{"choices":[]}"#).is_err());
        assert!(complete_text(b"not json").is_err());
    }

    #[test]
    fn stream_events_map_to_items() {
        let role = r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#;
        let text = r#"{"choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}"#;
        let stop = r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#;
        let usage = r#"{"choices":[],"usage":{"total_tokens":3}}"#;
        let error = r#"{"error":{"message":"overloaded","type":"server_error"}}"#;
        assert_eq!(stream_item(&event(role)).unwrap(), StreamItem::Nothing);
        assert_eq!(
            stream_item(&event(text)).unwrap(),
            StreamItem::Text {
                text: "Hel".into(),
                last: false
            }
        );
        assert_eq!(stream_item(&event(stop)).unwrap(), StreamItem::Finished);
        assert_eq!(stream_item(&event(usage)).unwrap(), StreamItem::Nothing);
        assert_eq!(stream_item(&event("[DONE]")).unwrap(), StreamItem::Finished);
        assert_eq!(
            stream_item(&event(error)).unwrap(),
            StreamItem::Failed(Failure {
                message: "overloaded".into(),
                kind: Some("server_error".into())
            })
        );
        // Found in review: text and finish_reason in one chunk, and a
        // streamed refusal, were both lost.
        let last = r#"{"choices":[{"delta":{"content":" world"},"finish_reason":"stop"}]}"#;
        assert_eq!(
            stream_item(&event(last)).unwrap(),
            StreamItem::Text {
                text: " world".into(),
                last: true
            }
        );
        let refusal = r#"{"choices":[{"delta":{"refusal":"I can't."},"finish_reason":null}]}"#;
        assert_eq!(
            stream_item(&event(refusal)).unwrap(),
            StreamItem::Text {
                text: "I can't.".into(),
                last: false
            }
        );
        assert!(stream_item(&event("{oops")).is_err());
    }
}
