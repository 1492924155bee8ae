//! The Anthropic messages wire format.
//!
//! `POST {api_base}/messages` with `x-api-key` and `anthropic-version:
//! 2023-06-01`; `max_tokens` is required and the system prompt is a top-level
//! field. Tools go in `tools` with an `input_schema`; the model's calls are
//! `tool_use` content blocks (text blocks first), and their results go back
//! as `tool_result` blocks, all of them first in the very next user message,
//! `is_error` set for failures. A streamed reply is SSE with named events:
//! `content_block_start` opens a text or tool_use block, `content_block_delta`
//! carries `text_delta` or a piece of the tool input (`input_json_delta`,
//! buffered per block and read at `content_block_stop`, where empty means
//! `{}`), `message_delta` the stop reason, `message_stop` the end, and
//! `error` a failure mid-stream (for example `overloaded_error`).

use super::stream::{self, Pieces};
use super::{arguments_object, Ask, Decoder, Failure, Fault, Reply, Step, Stop, Wire};
use crate::config::Settings;
use crate::conversation::{Message, Role, ToolCall};
use crate::json::{self, object, Json, Member};
use crate::secrets::Secret;
use crate::sse::Event;

pub const API_VERSION: &str = "2023-06-01";

/// The Anthropic messages protocol.
pub struct Anthropic;

impl Wire for Anthropic {
    fn name(&self) -> &'static str {
        "anthropic"
    }

    fn path(&self) -> &'static str {
        "/messages"
    }

    fn auth_headers(&self, key: Option<&Secret>) -> Vec<(String, String)> {
        let mut headers = vec![("anthropic-version".to_owned(), API_VERSION.to_owned())];
        if let Some(key) = key {
            headers.push(("x-api-key".to_owned(), key.expose().to_owned()));
        }
        headers
    }

    fn body(&self, settings: &Settings, ask: &Ask<'_>) -> Json {
        let mut messages: Vec<Json> = Vec::with_capacity(ask.history.len());
        let mut results: Vec<Json> = Vec::new();
        let mut ids = BlockIds::default();
        // System messages (a gateway client sends them) join the top-level
        // system prompt: Anthropic has no system role in `messages`.
        let mut system: Vec<String> = settings.system_prompt.iter().cloned().collect();
        for message in ask.history.iter().filter(|m| m.is_sendable()) {
            if message.role == Role::System {
                system.push(message.joined_text());
                continue;
            }
            if message.role == Role::Tool {
                // Every result of one round goes in the one user message after the calls.
                results.extend(message.results().map(|r| {
                    let mut block = vec![
                        Member::new("type", "tool_result"),
                        Member::new("tool_use_id", ids.for_result(&r.call_id)),
                        Member::new("content", r.content.as_str()),
                    ];
                    if r.is_error {
                        block.push(Member::new("is_error", true));
                    }
                    Json::Object(block)
                }));
                continue;
            }
            if !results.is_empty() {
                messages.push(user_results(std::mem::take(&mut results)));
            }
            messages.push(encode(message, &ids.for_calls(message)));
        }
        if !results.is_empty() {
            messages.push(user_results(results));
        }
        let mut body = vec![
            Member::new("model", settings.model.as_str()),
            Member::new("max_tokens", u64::from(settings.max_tokens)),
        ];
        if !system.is_empty() {
            body.push(Member::new("system", system.join("\n\n")));
        }
        body.push(Member::new("messages", messages));
        body.push(Member::new("stream", ask.stream));
        if let Some(t) = &settings.temperature {
            body.push(Member::new("temperature", t));
        }
        if !ask.tools.is_empty() {
            let tools = ask
                .tools
                .iter()
                .map(|t| {
                    object([
                        ("name", t.name.into()),
                        ("description", t.description.into()),
                        ("input_schema", t.parameters.clone()),
                    ])
                })
                .collect::<Vec<_>>();
            body.push(Member::new("tools", tools));
            if !ask.may_call {
                body.push(Member::new(
                    "tool_choice",
                    object([("type", "none".into())]),
                ));
            }
        }
        Json::Object(body)
    }

    /// A complete reply: its text blocks joined, its tool_use blocks as calls.
    fn complete(&self, body: &[u8]) -> Result<Reply, String> {
        let reply = json::parse(body).map_err(|e| format!("invalid JSON: {e}"))?;
        let blocks = reply
            .get("content")
            .and_then(Json::as_array)
            .ok_or("the reply has no content")?;
        let mut out = Reply::default();
        let mut has_text = false;
        for block in blocks {
            match block.get("type").and_then(Json::as_str) {
                Some("text") => {
                    if let Some(text) = block.get("text").and_then(Json::as_str) {
                        out.text.push_str(text);
                        has_text = true;
                    }
                }
                Some("tool_use") => {
                    let field = |name| block.get(name).and_then(Json::as_str);
                    let (Some(id), Some(name)) = (field("id"), field("name")) else {
                        return Err("a tool_use block without an id or name".into());
                    };
                    out.calls.push(ToolCall {
                        id: id.to_owned(),
                        name: name.to_owned(),
                        arguments: block
                            .get("input")
                            .map_or_else(|| "{}".into(), Json::to_text),
                    });
                }
                _ => {} // thinking and other blocks are not shown
            }
        }
        if !has_text && out.calls.is_empty() {
            return Err("the reply has no text block".into());
        }
        out.stop = reply
            .get("stop_reason")
            .and_then(Json::as_str)
            .map(Stop::from_name)
            .unwrap_or_default();
        Ok(out)
    }

    fn decoder(&self) -> Box<dyn Decoder> {
        Box::<Stream>::default()
    }
}

/// A user or assistant message: plain text, or content blocks when it
/// carries tool calls (text first), with these block ids.
fn encode(message: &Message, block_ids: &[String]) -> Json {
    let text = message.joined_text();
    let content = if message.calls().next().is_none() {
        Json::from(text)
    } else {
        let mut blocks = Vec::new();
        if !text.trim().is_empty() {
            blocks.push(object([("type", "text".into()), ("text", text.into())]));
        }
        for (call, id) in message.calls().zip(block_ids) {
            // Arguments that were not a JSON object were answered with an
            // error already; the block still needs an object.
            let input = arguments_object(&call.arguments).unwrap_or(Json::Object(Vec::new()));
            blocks.push(object([
                ("type", "tool_use".into()),
                ("id", id.as_str().into()),
                ("name", call.name.as_str().into()),
                ("input", input),
            ]));
        }
        Json::Array(blocks)
    };
    object([("role", message.role.name().into()), ("content", content)])
}

fn user_results(blocks: Vec<Json>) -> Json {
    object([("role", "user".into()), ("content", Json::Array(blocks))])
}

/// Call ids as Anthropic accepts them: letters, digits, `_` and `-` only,
/// and each used once in a request. A session that switched provider may
/// hold ids with other characters, or ids that repeat (made up for servers
/// that sent none); each call gets an id of its own, and its results the
/// same one.
#[derive(Default)]
struct BlockIds {
    used: Vec<String>,
    /// The calls of the latest assistant message: (call id, block id).
    round: Vec<(String, String)>,
}

impl BlockIds {
    /// The block ids for an assistant message's calls, in order.
    fn for_calls(&mut self, message: &Message) -> Vec<String> {
        self.round.clear();
        message
            .calls()
            .map(|call| {
                let clean = clean_id(&call.id);
                let mut unique = clean.clone();
                let mut n = 1;
                while self.used.contains(&unique) {
                    n += 1;
                    unique = format!("{clean}_{n}");
                }
                self.used.push(unique.clone());
                self.round.push((call.id.clone(), unique.clone()));
                unique
            })
            .collect()
    }

    /// The block id of the call a result answers.
    fn for_result(&mut self, call_id: &str) -> String {
        match self.round.iter().position(|(id, _)| id == call_id) {
            Some(at) => self.round.remove(at).1,
            None => clean_id(call_id),
        }
    }
}

fn clean_id(id: &str) -> String {
    let clean: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.is_empty() {
        "call".to_owned()
    } else {
        clean
    }
}

/// A streamed reply being read: its text, and its blocks by index.
#[derive(Default)]
struct Stream {
    text: Pieces,
    blocks: Vec<(u64, Block)>,
    calls: Vec<ToolCall>,
    stop: Option<Stop>,
    repaired: usize,
}

enum Block {
    Text,
    /// A tool call whose input JSON arrives in pieces.
    ToolUse {
        id: String,
        name: String,
        input: Pieces,
    },
    /// Thinking and other blocks: nothing to show.
    Other,
}

impl Stream {
    fn block(&mut self, index: Option<u64>) -> Result<&mut Block, String> {
        let index = index.ok_or("a content block event without an index")?;
        self.blocks
            .iter_mut()
            .find(|(i, _)| *i == index)
            .map(|(_, b)| b)
            .ok_or_else(|| format!("content block {index} was never started"))
    }

    /// A tool_use block is complete: its input is read now.
    fn close(&mut self, index: Option<u64>) -> Result<(), String> {
        let block = self.block(index)?;
        if let Block::ToolUse { id, name, input } = std::mem::replace(block, Block::Other) {
            let (text, repaired) = input.into_parts();
            self.repaired += repaired;
            self.calls.push(ToolCall {
                id,
                name,
                arguments: if text.trim().is_empty() {
                    "{}".into()
                } else {
                    text
                },
            });
        }
        Ok(())
    }
}

impl Decoder for Stream {
    fn event(&mut self, event: &Event) -> Result<Step, Fault> {
        // The `type` inside the data is authoritative; the event name repeats it.
        let data = json::parse_piece(event.data.as_bytes())
            .map_err(|e| format!("invalid JSON in '{}' event: {e}", event.name))?;
        fn kind(v: Option<&Json>) -> Option<&str> {
            v?.get("type")?.as_str()
        }
        let index = data.get("index").and_then(Json::as_u64);
        let mut step = Step::default();
        match kind(Some(&data)) {
            Some("content_block_start") => {
                let block = data.get("content_block");
                let opened = match kind(block) {
                    Some("text") => {
                        if let Some(t) = block.and_then(|b| b.get("text")).and_then(Json::as_str) {
                            step.text = self.text.push(t);
                        }
                        Block::Text
                    }
                    Some("tool_use") => {
                        let field = |name| block.and_then(|b| b.get(name)).and_then(Json::as_str);
                        let (Some(id), Some(name)) = (field("id"), field("name")) else {
                            return Err("a tool_use block without an id or name".to_owned().into());
                        };
                        Block::ToolUse {
                            id: id.to_owned(),
                            name: name.to_owned(),
                            input: Pieces::default(),
                        }
                    }
                    _ => Block::Other,
                };
                let index = index.ok_or("content_block_start without an index".to_owned())?;
                self.blocks.push((index, opened));
            }
            Some("content_block_delta") => {
                let delta = data.get("delta");
                match kind(delta) {
                    Some("text_delta") => {
                        let t = delta.and_then(|d| d.get("text")).and_then(Json::as_str);
                        step.text = self.text.push(t.unwrap_or_default());
                    }
                    Some("input_json_delta") => {
                        let piece = delta
                            .and_then(|d| d.get("partial_json"))
                            .and_then(Json::as_str)
                            .unwrap_or_default();
                        if let Block::ToolUse { input, .. } = self.block(index)? {
                            input.push(piece);
                        }
                    }
                    _ => {} // thinking and signature deltas are not shown
                }
            }
            Some("content_block_stop") => {
                step.text = self.text.finish();
                self.close(index)?;
            }
            Some("message_delta") => {
                if let Some(reason) = data
                    .get("delta")
                    .and_then(|d| d.get("stop_reason"))
                    .and_then(Json::as_str)
                {
                    self.stop = Some(Stop::from_name(reason));
                }
            }
            Some("message_stop") => {
                step.text = self.text.finish();
                step.done = true;
            }
            Some("error") => {
                return Err(Fault::Failed(Failure::from_body(event.data.as_bytes())));
            }
            Some(_) => {} // message_start, ping
            None => return Err(format!("a '{}' event without a type", event.name).into()),
        }
        Ok(step)
    }

    fn finish(mut self: Box<Self>) -> Result<Reply, String> {
        // A tool_use block the stream never closed is read as it stands.
        let open: Vec<u64> = self
            .blocks
            .iter()
            .filter(|(_, b)| matches!(b, Block::ToolUse { .. }))
            .map(|(i, _)| *i)
            .collect();
        for index in open {
            self.close(Some(index))?;
        }
        Ok(stream::reply(
            std::mem::take(&mut self.text),
            std::mem::take(&mut self.calls),
            self.stop.take(),
            self.repaired,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::conversation::{Part, ToolResult};
    use crate::provider::ToolSpec;

    fn event(name: &str, data: &str) -> Event {
        Event {
            name: name.into(),
            data: data.into(),
        }
    }

    fn settings() -> Settings {
        Config::parse(r#"{"agents":{"defaults":{"systemPrompt":"Be brief."}}}"#)
            .unwrap()
            .settings(Some("anthropic/claude-sonnet-4-5"), |_| Some("k".into()))
            .unwrap()
    }

    fn body_json(history: &[Message], tools: &[ToolSpec], may_call: bool) -> serde_json::Value {
        let ask = Ask {
            history,
            tools,
            may_call,
            stream: false,
        };
        serde_json::from_str(&Anthropic.body(&settings(), &ask).to_text()).unwrap()
    }

    #[test]
    fn repeated_and_foreign_call_ids_become_unique_block_ids() {
        let call = |id: &str| {
            Part::Call(ToolCall {
                id: id.into(),
                name: "read_file".into(),
                arguments: "{}".into(),
            })
        };
        let result = |id: &str| {
            Message::new(
                Role::Tool,
                vec![Part::Result(ToolResult {
                    call_id: id.into(),
                    name: "read_file".into(),
                    content: format!("for {id}"),
                    is_error: false,
                })],
            )
        };
        let history = [
            Message::text(Role::User, "go"),
            Message::new(
                Role::Assistant,
                vec![call("functions.read:0"), call("functions.read_0")],
            ),
            result("functions.read:0"),
            result("functions.read_0"),
            Message::new(Role::Assistant, vec![call("functions.read:0")]),
            result("functions.read:0"),
        ];
        let body = body_json(&history, &[], false);
        let ids = |at: usize, kind: &str, key: &str| -> Vec<String> {
            body["messages"][at]["content"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|b| b["type"] == kind)
                .map(|b| b[key].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(
            ids(1, "tool_use", "id"),
            ["functions_read_0", "functions_read_0_2"]
        );
        assert_eq!(
            ids(2, "tool_result", "tool_use_id"),
            ["functions_read_0", "functions_read_0_2"]
        );
        assert_eq!(ids(3, "tool_use", "id"), ["functions_read_0_3"]);
        assert_eq!(ids(4, "tool_result", "tool_use_id"), ["functions_read_0_3"]);
    }

    /// Feeds named events; returns the text shown and the reply.
    fn decode(events: &[(&str, &str)]) -> (String, Result<Reply, String>) {
        let mut decoder = Anthropic.decoder();
        let mut shown = String::new();
        for (name, data) in events {
            match decoder.event(&event(name, data)) {
                Ok(step) => shown.push_str(&step.text),
                Err(fault) => return (shown, Err(format!("{fault:?}"))),
            }
        }
        (shown, decoder.finish())
    }

    #[test]
    fn the_system_prompt_is_top_level_and_max_tokens_is_always_sent() {
        let history = [Message::text(Role::User, "hi")];
        assert_eq!(
            body_json(&history, &[], true),
            serde_json::json!({
                "model": "claude-sonnet-4-5",
                "max_tokens": 4096,
                "system": "Be brief.",
                "messages": [{"role": "user", "content": "hi"}],
                "stream": false
            })
        );
        let headers = Anthropic.auth_headers(Some(&Secret::new("k")));
        assert!(headers.contains(&("anthropic-version".into(), "2023-06-01".into())));
        assert!(headers.contains(&("x-api-key".into(), "k".into())));
    }

    #[test]
    fn system_messages_in_the_history_join_the_system_prompt() {
        let history = [
            Message::text(Role::System, "Answer in French."),
            Message::text(Role::User, "hi"),
        ];
        let json = body_json(&history, &[], true);
        assert_eq!(json["system"], "Be brief.\n\nAnswer in French.");
        assert_eq!(
            json["messages"],
            serde_json::json!([{"role": "user", "content": "hi"}])
        );
    }

    #[test]
    fn tool_use_and_tool_result_blocks_take_the_documented_shapes() {
        let tools = [ToolSpec {
            name: "read_file",
            description: "Reads a file.",
            parameters: json::parse(br#"{"type":"object","properties":{}}"#).unwrap(),
        }];
        let call = |id: &str, args: &str| {
            Part::Call(ToolCall {
                id: id.into(),
                name: "read_file".into(),
                arguments: args.into(),
            })
        };
        let result = |id: &str, is_error| {
            Message::new(
                Role::Tool,
                vec![Part::Result(ToolResult {
                    call_id: id.into(),
                    name: "read_file".into(),
                    content: format!("out {id}"),
                    is_error,
                })],
            )
        };
        let history = [
            Message::text(Role::User, "go"),
            Message::new(
                Role::Assistant,
                vec![
                    Part::Text("Reading.".into()),
                    call("toolu_1", r#"{"path":"a"}"#),
                    // From an OpenAI-compatible server: an id Anthropic refuses, bad JSON.
                    call("call:2", r#"{"path":"#),
                ],
            ),
            result("toolu_1", false),
            result("call:2", true),
            Message::text(Role::Assistant, "Done."),
        ];
        let json = body_json(&history, &tools, false);
        assert_eq!(
            json["messages"],
            serde_json::json!([
                {"role": "user", "content": "go"},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "Reading."},
                    {"type": "tool_use", "id": "toolu_1", "name": "read_file", "input": {"path": "a"}},
                    {"type": "tool_use", "id": "call_2", "name": "read_file", "input": {}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "out toolu_1"},
                    {"type": "tool_result", "tool_use_id": "call_2", "content": "out call:2", "is_error": true}
                ]},
                {"role": "assistant", "content": "Done."}
            ])
        );
        assert_eq!(
            json["tools"],
            serde_json::json!([{"name": "read_file", "description": "Reads a file.",
                "input_schema": {"type": "object", "properties": {}}}])
        );
        assert_eq!(json["tool_choice"], serde_json::json!({"type": "none"}));
    }

    #[test]
    fn complete_replies_join_text_and_read_tool_use() {
        let ok = br#"{"id":"msg_1","type":"message","role":"assistant","content":[{"type":"text","text":"Hel"},{"type":"tool_use","id":"t","name":"x","input":{"a":1}},{"type":"text","text":"lo"}],"stop_reason":"tool_use"}"#;
        let reply = Anthropic.complete(ok).unwrap();
        assert_eq!(reply.text, "Hello");
        assert_eq!(reply.stop, Stop::ToolUse);
        assert_eq!(
            reply.calls,
            [ToolCall {
                id: "t".into(),
                name: "x".into(),
                arguments: r#"{"a":1}"#.into()
            }]
        );
        assert!(Anthropic.complete(br#"{"content":[]}"#).is_err());
    }

    #[test]
    fn a_streamed_reply_with_text_then_tool_use_is_assembled() {
        let (shown, reply) = decode(&[
            (
                "message_start",
                r#"{"type":"message_start","message":{"id":"m","content":[]}}"#,
            ),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            ),
            ("ping", r#"{"type": "ping"}"#),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Let me "}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"check."}}"#,
            ),
            (
                "content_block_stop",
                r#"{"type":"content_block_stop","index":0}"#,
            ),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_9","name":"read_file","input":{}}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"path\": \"no"}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"tes.md\"}"}}"#,
            ),
            (
                "content_block_stop",
                r#"{"type":"content_block_stop","index":1}"#,
            ),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_10","name":"list_dir","input":{}}}"#,
            ),
            (
                "content_block_stop",
                r#"{"type":"content_block_stop","index":2}"#,
            ),
            (
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":20}}"#,
            ),
            ("message_stop", r#"{"type":"message_stop"}"#),
        ]);
        assert_eq!(shown, "Let me check.");
        let reply = reply.unwrap();
        assert_eq!(reply.stop, Stop::ToolUse);
        let got: Vec<_> = reply
            .calls
            .iter()
            .map(|c| (c.id.as_str(), c.name.as_str(), c.arguments.as_str()))
            .collect();
        // Empty input means {}.
        assert_eq!(
            got,
            [
                ("toolu_9", "read_file", r#"{"path": "notes.md"}"#),
                ("toolu_10", "list_dir", "{}")
            ]
        );
    }

    #[test]
    fn stream_errors_and_nonsense_are_reported() {
        let (_, reply) = decode(&[(
            "error",
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        )]);
        assert!(reply.unwrap_err().contains("overloaded_error"));
        let mut decoder = Anthropic.decoder();
        assert!(decoder.event(&event("x", "nope")).is_err());
        assert!(decoder.event(&event("x", "{}")).is_err());
        let delta = r#"{"type":"content_block_delta","index":4,"delta":{"type":"input_json_delta","partial_json":"{"}}"#;
        assert!(decoder.event(&event("content_block_delta", delta)).is_err());
    }

    #[test]
    fn a_surrogate_pair_split_between_deltas_is_joined() {
        let (shown, reply) = decode(&[
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"\ud83d"}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"\ude00"}}"#,
            ),
            ("message_stop", r#"{"type":"message_stop"}"#),
        ]);
        assert_eq!(shown, "😀");
        assert_eq!(reply.unwrap().repaired, 0);
    }
}
