//! The OpenAI chat-completions wire format, spoken by most providers.
//!
//! `POST {api_base}/chat/completions` with `Authorization: Bearer KEY`.
//! Tools go in `tools` as functions; the model's calls come back in
//! `tool_calls`, with their arguments as JSON text, and each result goes
//! back as one `role: "tool"` message, right after the assistant message
//! that made the calls. A streamed reply is SSE: `data: {chunk}` events
//! whose `choices[0].delta` carries text and pieces of tool calls (keyed by
//! `index`, and by `id` since some compatible servers reuse index 0 for
//! parallel calls), ended by `data: [DONE]`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::stream::{self, Pieces};
use super::{Ask, Decoder, Failure, Fault, Reply, Step, Stop, Wire};
use crate::config::Settings;
use crate::conversation::{Message, Role, ToolCall};
use crate::json::{self, object, Json, Member};
use crate::secrets::Secret;
use crate::sse::Event;

/// The OpenAI chat-completions protocol.
pub struct OpenAi;

impl Wire for OpenAi {
    fn name(&self) -> &'static str {
        "openai"
    }

    fn path(&self) -> &'static str {
        "/chat/completions"
    }

    fn auth_headers(&self, key: Option<&Secret>) -> Vec<(String, String)> {
        key.map(|k| ("authorization".to_owned(), format!("Bearer {}", k.expose())))
            .into_iter()
            .collect()
    }

    /// The request body. The reply limit's field depends on the endpoint
    /// (see [`crate::config::TokenLimitField`]).
    fn body(&self, settings: &Settings, ask: &Ask<'_>) -> Json {
        let mut messages: Vec<Json> = Vec::with_capacity(ask.history.len() + 1);
        if let Some(system) = &settings.system_prompt {
            messages.push(object([
                ("role", "system".into()),
                ("content", system.as_str().into()),
            ]));
        }
        for message in ask.history.iter().filter(|m| m.is_sendable()) {
            encode(message, &mut messages);
        }
        let mut body = vec![
            Member::new("model", settings.model.as_str()),
            Member::new("messages", messages),
            Member::new("stream", ask.stream),
            Member::new(
                settings.provider.max_tokens_field.name(),
                u64::from(settings.max_tokens),
            ),
        ];
        if let Some(t) = &settings.temperature {
            body.push(Member::new("temperature", t));
        }
        if !ask.tools.is_empty() {
            let tools = ask
                .tools
                .iter()
                .map(|t| {
                    object([
                        ("type", "function".into()),
                        (
                            "function",
                            object([
                                ("name", t.name.into()),
                                ("description", t.description.into()),
                                ("parameters", t.parameters.clone()),
                            ]),
                        ),
                    ])
                })
                .collect::<Vec<_>>();
            body.push(Member::new("tools", tools));
            if !ask.may_call {
                body.push(Member::new("tool_choice", "none"));
            }
        }
        Json::Object(body)
    }

    fn complete(&self, body: &[u8]) -> Result<Reply, String> {
        let reply = json::parse(body).map_err(|e| format!("invalid JSON: {e}"))?;
        let choice = first_choice(&reply).ok_or("the reply has no choices")?;
        let message = choice.get("message").ok_or("the reply has no message")?;
        let text = message
            .get("content")
            .and_then(Json::as_str)
            .or_else(|| message.get("refusal").and_then(Json::as_str));
        let mut calls = Vec::new();
        for (i, call) in message
            .get("tool_calls")
            .and_then(Json::as_array)
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let function = call.get("function");
            let name = function.and_then(|f| f.get("name")).and_then(Json::as_str);
            let Some(name) = name.filter(|n| !n.is_empty()) else {
                return Err("a tool call has no function name".into());
            };
            calls.push(ToolCall {
                id: call_id(call.get("id").and_then(Json::as_str), i),
                name: name.to_owned(),
                arguments: function
                    .and_then(|f| f.get("arguments"))
                    .map(arguments_text)
                    .unwrap_or_default(),
            });
        }
        if text.is_none() && calls.is_empty() {
            return Err("the reply has no text content".into());
        }
        let stop = choice
            .get("finish_reason")
            .and_then(Json::as_str)
            .map(Stop::from_name)
            .unwrap_or_default();
        Ok(Reply {
            text: text.unwrap_or_default().to_owned(),
            calls,
            stop,
            repaired: 0,
        })
    }

    fn decoder(&self) -> Box<dyn Decoder> {
        Box::<Stream>::default()
    }
}

/// One conversation message in OpenAI's shapes: a tool message per result.
fn encode(message: &Message, out: &mut Vec<Json>) {
    match message.role {
        Role::Tool => {
            for result in message.results() {
                out.push(object([
                    ("role", "tool".into()),
                    ("tool_call_id", result.call_id.as_str().into()),
                    ("content", result.content.as_str().into()),
                ]));
            }
        }
        role => {
            let text = message.joined_text();
            let calls = crate::record::tool_calls(message);
            let content = if text.is_empty() && !calls.is_empty() {
                Json::Null
            } else {
                text.into()
            };
            let mut m = vec![
                Member::new("role", role.name()),
                Member::new("content", content),
            ];
            if !calls.is_empty() {
                m.push(Member::new("tool_calls", calls));
            }
            out.push(Json::Object(m));
        }
    }
}

/// The first choice of a reply or chunk.
fn first_choice(reply: &Json) -> Option<&Json> {
    reply.get("choices")?.as_array()?.first()
}

/// Arguments as text: the string as sent, or (from servers that send an
/// object) that object written out.
fn arguments_text(value: &Json) -> String {
    match value {
        Json::String(text) => text.clone(),
        Json::Null => String::new(),
        other => other.to_text(),
    }
}

/// A call's id, or one made up for servers that send none: unique across
/// replies and runs (the time and a counter), since a session may later be
/// sent to a provider that refuses repeated ids.
fn call_id(id: Option<&str>, position: usize) -> String {
    static MADE_UP: AtomicU64 = AtomicU64::new(0);
    match id {
        Some(id) if !id.is_empty() => id.to_owned(),
        _ => {
            let micros = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| {
                d.as_secs() * 1_000_000 + u64::from(d.subsec_micros())
            });
            let count = MADE_UP.fetch_add(1, Ordering::Relaxed);
            format!("call_{micros}_{count}_{position}")
        }
    }
}

/// A streamed reply being read: the text so far, and each tool call as its
/// pieces arrive.
#[derive(Default)]
struct Stream {
    text: Pieces,
    calls: Vec<PartialCall>,
    stop: Option<Stop>,
}

/// A tool call whose pieces are still arriving.
struct PartialCall {
    index: Option<u64>,
    id: String,
    name: String,
    arguments: Pieces,
}

impl Stream {
    /// The call a `tool_calls` delta entry continues, or a new one. An id
    /// names its call; without one, the entry continues the latest call at
    /// its index.
    fn call_for(&mut self, index: Option<u64>, id: Option<&str>) -> &mut PartialCall {
        let id = id.filter(|id| !id.is_empty());
        let found = match id {
            Some(id) => self.calls.iter().position(|c| c.id == id),
            None => self
                .calls
                .iter()
                .rposition(|c| index.is_none() || c.index == index),
        };
        let at = match found {
            Some(at) => at,
            None => {
                let position = self.calls.len();
                self.calls.push(PartialCall {
                    index,
                    id: call_id(id, position),
                    name: String::new(),
                    arguments: Pieces::default(),
                });
                position
            }
        };
        &mut self.calls[at]
    }
}

impl Decoder for Stream {
    fn event(&mut self, event: &Event) -> Result<Step, Fault> {
        let data = event.data.trim();
        if data == "[DONE]" {
            return Ok(Step {
                text: self.text.finish(),
                done: true,
            });
        }
        let chunk = json::parse_piece(data.as_bytes())
            .map_err(|e| format!("invalid JSON in stream: {e}"))?;
        if chunk.get("error").is_some_and(|e| !e.is_null()) {
            return Err(Fault::Failed(Failure::from_body(data.as_bytes())));
        }
        let Some(choice) = first_choice(&chunk) else {
            return Ok(Step::default()); // e.g. the usage chunk
        };
        let delta = choice.get("delta").or_else(|| choice.get("message"));
        let mut step = Step::default();
        // A refusal streams in a field of its own; it is the reply all the same.
        for field in ["content", "refusal"] {
            if let Some(piece) = delta.and_then(|d| d.get(field)).and_then(Json::as_str) {
                step.text.push_str(&self.text.push(piece));
            }
        }
        for entry in delta
            .and_then(|d| d.get("tool_calls"))
            .and_then(Json::as_array)
            .unwrap_or_default()
        {
            let index = entry.get("index").and_then(Json::as_u64);
            let id = entry.get("id").and_then(Json::as_str);
            let call = self.call_for(index, id);
            let function = entry.get("function");
            if let Some(name) = function.and_then(|f| f.get("name")).and_then(Json::as_str) {
                // Servers differ: the name once, or repeated in every piece.
                if call.name.is_empty() {
                    name.clone_into(&mut call.name);
                } else if name != call.name {
                    call.name.push_str(name);
                }
            }
            match function.and_then(|f| f.get("arguments")) {
                Some(Json::String(piece)) => {
                    call.arguments.push(piece);
                }
                Some(Json::Null) | None => {}
                Some(whole) => {
                    call.arguments.push(&whole.to_text());
                }
            }
        }
        // Some servers send "" on every chunk until the last: not an end.
        let reason = choice.get("finish_reason").and_then(Json::as_str);
        if let Some(reason) = reason.filter(|r| !r.trim().is_empty()) {
            self.stop = Some(Stop::from_name(reason));
            step.text.push_str(&self.text.finish());
            step.done = true;
        }
        Ok(step)
    }

    fn finish(mut self: Box<Self>) -> Result<Reply, String> {
        let mut repaired = 0;
        let mut calls = Vec::with_capacity(self.calls.len());
        for call in std::mem::take(&mut self.calls) {
            if call.name.is_empty() {
                return Err(format!("tool call {} has no function name", call.id));
            }
            let (arguments, broken) = call.arguments.into_parts();
            repaired += broken;
            calls.push(ToolCall {
                id: call.id,
                name: call.name,
                arguments,
            });
        }
        Ok(stream::reply(
            std::mem::take(&mut self.text),
            calls,
            self.stop.take(),
            repaired,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::conversation::{Part, ToolResult};
    use crate::provider::ToolSpec;

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

    fn ask<'a>(history: &'a [Message], tools: &'a [ToolSpec], stream: bool) -> Ask<'a> {
        Ask {
            history,
            tools,
            may_call: true,
            stream,
        }
    }

    fn body_json(s: &Settings, ask: &Ask<'_>) -> serde_json::Value {
        serde_json::from_str(&OpenAi.body(s, ask).to_text()).unwrap()
    }

    /// Feeds events to a fresh decoder; returns the text shown and the reply.
    fn decode(events: &[&str]) -> (String, Result<Reply, String>) {
        let mut decoder = OpenAi.decoder();
        let mut shown = String::new();
        for data in events {
            match decoder.event(&event(data)) {
                Ok(step) => shown.push_str(&step.text),
                Err(fault) => return (shown, Err(format!("{fault:?}"))),
            }
        }
        (shown, decoder.finish())
    }

    #[test]
    fn the_body_carries_system_prompt_history_and_limits() {
        let s = settings(
            "groq/llama-3.1-8b",
            r#"{"agents":{"defaults":{"systemPrompt":"Be brief.","temperature":0.5,"maxTokens":64}}}"#,
        );
        let history = [
            Message::text(Role::User, "hi"),
            Message::text(Role::Assistant, "hello"),
            Message::text(Role::User, "and now?"),
        ];
        assert_eq!(
            body_json(&s, &ask(&history, &[], true)),
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
        let json = body_json(&s, &ask(&history, &[], false));
        assert_eq!(json["max_completion_tokens"], 4096);
        assert!(json.get("max_tokens").is_none() && json.get("temperature").is_none());
        assert!(json.get("tools").is_none());
    }

    #[test]
    fn tools_calls_and_results_take_the_documented_shapes() {
        let s = settings("openai/gpt-5", "{}");
        let tools = [ToolSpec {
            name: "read_file",
            description: "Reads a file.",
            parameters: json::parse(
                br#"{"type":"object","properties":{"path":{"type":"string"}},"required":["path"]}"#,
            )
            .unwrap(),
        }];
        let call = |id: &str| ToolCall {
            id: id.into(),
            name: "read_file".into(),
            arguments: format!(r#"{{"path":"{id}.md"}}"#),
        };
        let result = |id: &str, is_error| ToolResult {
            call_id: id.into(),
            name: "read_file".into(),
            content: format!("text of {id}"),
            is_error,
        };
        let history = [
            Message::text(Role::User, "read both"),
            Message::new(
                Role::Assistant,
                vec![Part::Call(call("a")), Part::Call(call("b"))],
            ),
            Message::new(Role::Tool, vec![Part::Result(result("a", false))]),
            Message::new(Role::Tool, vec![Part::Result(result("b", true))]),
        ];
        let json = body_json(&s, &ask(&history, &tools, false));
        assert_eq!(
            json["tools"],
            serde_json::json!([{"type": "function", "function": {
                "name": "read_file", "description": "Reads a file.",
                "parameters": {"type":"object","properties":{"path":{"type":"string"}},"required":["path"]}}}])
        );
        assert!(json.get("tool_choice").is_none());
        assert_eq!(
            json["messages"],
            serde_json::json!([
                {"role": "user", "content": "read both"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "a", "type": "function", "function": {"name": "read_file", "arguments": "{\"path\":\"a.md\"}"}},
                    {"id": "b", "type": "function", "function": {"name": "read_file", "arguments": "{\"path\":\"b.md\"}"}}
                ]},
                {"role": "tool", "tool_call_id": "a", "content": "text of a"},
                {"role": "tool", "tool_call_id": "b", "content": "text of b"}
            ])
        );
        let mut no_calls = ask(&history, &tools, false);
        no_calls.may_call = false;
        assert_eq!(body_json(&s, &no_calls)["tool_choice"], "none");
    }

    #[test]
    fn complete_replies_yield_text_and_calls() {
        let ok = br#"{"id":"x","choices":[{"index":0,"message":{"role":"assistant","content":"Hi!"},"finish_reason":"stop"}]}"#;
        let reply = OpenAi.complete(ok).unwrap();
        assert_eq!((reply.text.as_str(), reply.stop), ("Hi!", Stop::Done));
        let refusal = br#"{"choices":[{"message":{"content":null,"refusal":"No."}}]}"#;
        assert_eq!(OpenAi.complete(refusal).unwrap().text, "No.");
        let calls = br#"{"choices":[{"message":{"content":null,"tool_calls":[
            {"id":"call_1","type":"function","function":{"name":"list_dir","arguments":"{\"path\":\".\"}"}},
            {"type":"function","function":{"name":"read_file","arguments":{"path":"x"}}}]},
            "finish_reason":"tool_calls"}]}"#;
        let reply = OpenAi.complete(calls).unwrap();
        assert_eq!(reply.stop, Stop::ToolUse);
        assert_eq!(
            reply.calls,
            [
                ToolCall {
                    id: "call_1".into(),
                    name: "list_dir".into(),
                    arguments: r#"{"path":"."}"#.into()
                },
                // No id from the server: one is made up; an object is written out.
                ToolCall {
                    id: reply.calls[1].id.clone(),
                    name: "read_file".into(),
                    arguments: r#"{"path":"x"}"#.into()
                }
            ]
        );
        assert!(reply.calls[1].id.starts_with("call_") && reply.calls[1].id.len() <= 40);
        let again = OpenAi.complete(calls).unwrap();
        assert_ne!(again.calls[1].id, reply.calls[1].id, "made-up ids repeat");
        assert!(OpenAi.complete(br#"{"choices":[]}"#).is_err());
        assert!(OpenAi.complete(b"not json").is_err());
    }

    #[test]
    fn an_empty_finish_reason_does_not_end_the_stream() {
        let mut decoder = OpenAi.decoder();
        let mut done = Vec::new();
        for data in [
            r#"{"choices":[{"delta":{"content":"Hel"},"finish_reason":""}]}"#,
            r#"{"choices":[{"delta":{"content":"lo"},"finish_reason":""}]}"#,
            r#"{"choices":[{"delta":{},"finish_reason":"stop"}]}"#,
        ] {
            done.push(decoder.event(&event(data)).unwrap().done);
        }
        assert_eq!(done, [false, false, true]);
        assert_eq!(decoder.finish().unwrap().text, "Hello");
    }

    #[test]
    fn stream_events_become_text() {
        let (shown, reply) = decode(&[
            r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}"#,
            r#"{"choices":[],"usage":{"total_tokens":3}}"#,
            // Found in review: text and finish_reason in one chunk was lost.
            r#"{"choices":[{"delta":{"content":"lo"},"finish_reason":"stop"}]}"#,
        ]);
        assert_eq!(shown, "Hello");
        let reply = reply.unwrap();
        assert_eq!((reply.text.as_str(), reply.stop), ("Hello", Stop::Done));
        let (shown, _) =
            decode(&[r#"{"choices":[{"delta":{"refusal":"I can't."},"finish_reason":null}]}"#]);
        assert_eq!(shown, "I can't.");
        let mut decoder = OpenAi.decoder();
        assert!(decoder.event(&event("[DONE]")).unwrap().done);
        assert!(decoder.event(&event("{oops")).is_err());
        let error = r#"{"error":{"message":"overloaded","type":"server_error"}}"#;
        assert_eq!(
            OpenAi.decoder().event(&event(error)),
            Err(Fault::Failed(Failure {
                message: "overloaded".into(),
                kind: Some("server_error".into())
            }))
        );
    }

    #[test]
    fn streamed_tool_calls_are_assembled_from_their_pieces() {
        // Two parallel calls, arguments split into many pieces and interleaved.
        let (shown, reply) = decode(&[
            r#"{"choices":[{"delta":{"content":"Let me look."}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"read_file","arguments":""}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"pa"}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"list_dir","arguments":"{\"path\""}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"th\":\"notes.md\"}"}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":1,"function":{"arguments":":\".\"}"}}]}}]}"#,
            r#"{"choices":[{"delta":{},"finish_reason":"tool_calls"}]}"#,
        ]);
        assert_eq!(shown, "Let me look.");
        let reply = reply.unwrap();
        assert_eq!(reply.stop, Stop::ToolUse);
        let got: Vec<_> = reply
            .calls
            .iter()
            .map(|c| (c.id.as_str(), c.name.as_str(), c.arguments.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("call_a", "read_file", r#"{"path":"notes.md"}"#),
                ("call_b", "list_dir", r#"{"path":"."}"#)
            ]
        );
    }

    #[test]
    fn parallel_calls_that_reuse_index_0_are_told_apart_by_id() {
        let (_, reply) = decode(&[
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"c1","function":{"name":"read_file","arguments":"{\"path\":"}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"a\"}"}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"c2","function":{"name":"read_file","arguments":"{\"path\":\"b\"}"}}]}}]}"#,
            "[DONE]",
        ]);
        let reply = reply.unwrap();
        let got: Vec<_> = reply
            .calls
            .iter()
            .map(|c| (c.id.as_str(), c.arguments.as_str()))
            .collect();
        assert_eq!(got, [("c1", r#"{"path":"a"}"#), ("c2", r#"{"path":"b"}"#)]);
        assert_eq!(reply.stop, Stop::ToolUse);
    }

    #[test]
    fn a_surrogate_pair_split_between_chunks_is_joined() {
        // Found in review: this killed a streamed turn after text was shown.
        let (shown, reply) = decode(&[
            r#"{"choices":[{"delta":{"content":"smile \ud83d"}}]}"#,
            r#"{"choices":[{"delta":{"content":"\ude00!"}}]}"#,
            r#"{"choices":[{"delta":{"content":" lone \udc00"},"finish_reason":"stop"}]}"#,
        ]);
        assert_eq!(shown, "smile 😀! lone \u{fffd}");
        let reply = reply.unwrap();
        assert_eq!(reply.text, shown);
        assert_eq!(reply.repaired, 1);
    }
}
