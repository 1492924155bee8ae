//! A conversation message as one line of a session file, and back.
//!
//! The lines are shaped like OpenAI chat messages, the format nanobot and
//! most tools keep, so a session is readable with anything that reads
//! those, and files written before tools existed load unchanged:
//!
//! ```text
//! {"role":"user","content":"read notes.md","timestamp":"..."}
//! {"role":"assistant","content":"","tool_calls":[{"id":"c1","type":"function","function":{"name":"read_file","arguments":"{\"path\":\"notes.md\"}"}}],"timestamp":"..."}
//! {"role":"tool","tool_call_id":"c1","name":"read_file","content":"...","timestamp":"..."}
//! {"role":"assistant","content":"It says ...","timestamp":"..."}
//! ```
//!
//! A failed tool's line adds `"is_error":true`.

use crate::conversation::{Message, Part, Role, ToolCall, ToolResult};
use crate::json::{object, Json, Member};

/// The lines for one message, without newlines: one per tool result, one
/// for anything else.
pub fn to_lines(message: &Message) -> Vec<String> {
    let timestamp = || Member::new("timestamp", message.timestamp.as_str());
    if message.role == Role::Tool {
        return message
            .results()
            .map(|r| {
                let mut line = vec![
                    Member::new("role", "tool"),
                    Member::new("tool_call_id", r.call_id.as_str()),
                    Member::new("name", r.name.as_str()),
                    Member::new("content", r.content.as_str()),
                ];
                if r.is_error {
                    line.push(Member::new("is_error", true));
                }
                line.push(timestamp());
                Json::Object(line).to_text()
            })
            .collect();
    }
    let mut line = vec![
        Member::new("role", message.role.name()),
        Member::new("content", message.joined_text()),
    ];
    let calls = tool_calls(message);
    if !calls.is_empty() {
        line.push(Member::new("tool_calls", calls));
    }
    line.push(timestamp());
    vec![Json::Object(line).to_text()]
}

/// A message's tool calls in OpenAI's `tool_calls` shape, which session
/// lines share with the OpenAI wire.
pub fn tool_calls(message: &Message) -> Vec<Json> {
    message
        .calls()
        .map(|c| {
            object([
                ("id", c.id.as_str().into()),
                ("type", "function".into()),
                (
                    "function",
                    object([
                        ("name", c.name.as_str().into()),
                        ("arguments", c.arguments.as_str().into()),
                    ]),
                ),
            ])
        })
        .collect()
}

/// The message a parsed line holds, or why it is not one.
pub fn from_json(record: &Json) -> Result<Message, &'static str> {
    let role = record
        .get("role")
        .and_then(Json::as_str)
        .and_then(Role::from_name)
        .ok_or("not a message of a known role")?;
    let text = |name: &str| record.get(name).and_then(Json::as_str);
    let timestamp = text("timestamp").unwrap_or("").to_owned();
    let mut parts = Vec::new();
    if role == Role::Tool {
        let call_id = text("tool_call_id").ok_or("a tool result without its tool_call_id")?;
        parts.push(Part::Result(ToolResult {
            call_id: call_id.to_owned(),
            name: text("name").unwrap_or("").to_owned(),
            content: text("content").unwrap_or("").to_owned(),
            is_error: record.get("is_error").and_then(Json::as_bool) == Some(true),
        }));
        return Ok(Message {
            role,
            parts,
            timestamp,
        });
    }
    let calls = record.get("tool_calls").and_then(Json::as_array);
    match text("content") {
        Some(content) => parts.push(Part::Text(content.to_owned())),
        None if calls.is_some() => {}
        None => return Err("a message without content"),
    }
    for call in calls.unwrap_or_default() {
        let function = call.get("function");
        let field = |name| function.and_then(|f| f.get(name)).and_then(Json::as_str);
        let (Some(id), Some(name)) = (call.get("id").and_then(Json::as_str), field("name")) else {
            return Err("a tool call without its id or name");
        };
        parts.push(Part::Call(ToolCall {
            id: id.to_owned(),
            name: name.to_owned(),
            arguments: field("arguments").unwrap_or("{}").to_owned(),
        }));
    }
    if parts.len() > 1 {
        // Text first, and no empty text beside calls.
        parts.retain(|p| !matches!(p, Part::Text(t) if t.is_empty()));
    }
    Ok(Message {
        role,
        parts,
        timestamp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json;

    fn round_trip(message: &Message) -> Vec<Message> {
        to_lines(message)
            .iter()
            .map(|line| from_json(&json::parse(line.as_bytes()).unwrap()).unwrap())
            .collect()
    }

    #[test]
    fn every_kind_of_message_survives_the_file() {
        let call = ToolCall {
            id: "c1".into(),
            name: "read_file".into(),
            arguments: r#"{"path":"notes.md"}"#.into(),
        };
        let result = |id: &str, is_error| ToolResult {
            call_id: id.into(),
            name: "read_file".into(),
            content: "line\n\"quoted\"".into(),
            is_error,
        };
        let messages = [
            Message::text(Role::User, "hi"),
            Message::text(Role::Assistant, "hello"),
            Message::new(Role::Assistant, vec![Part::Call(call.clone())]),
            Message::new(
                Role::Assistant,
                vec![Part::Text("Looking.".into()), Part::Call(call)],
            ),
            Message::new(Role::Tool, vec![Part::Result(result("c1", false))]),
            Message::new(Role::Tool, vec![Part::Result(result("c1", true))]),
        ];
        for message in &messages {
            assert_eq!(
                round_trip(message),
                std::slice::from_ref(message),
                "{message:?}"
            );
        }
        let two = Message::new(
            Role::Tool,
            vec![
                Part::Result(result("a", false)),
                Part::Result(result("b", false)),
            ],
        );
        assert_eq!(round_trip(&two).len(), 2);
        let line = &to_lines(&messages[5])[0];
        assert!(line.contains(r#""is_error":true"#), "{line}");
    }

    #[test]
    fn lines_written_before_tools_load_as_they_did() {
        let old = json::parse(br#"{"role":"user","content":"a","timestamp":"t"}"#).unwrap();
        assert_eq!(
            from_json(&old).unwrap(),
            Message {
                role: Role::User,
                parts: vec![Part::Text("a".into())],
                timestamp: "t".into()
            }
        );
        for (bad, why) in [
            (
                r#"{"role":"robot","content":"x"}"#,
                "not a message of a known role",
            ),
            (
                r#"{"role":"tool","content":"x"}"#,
                "a tool result without its tool_call_id",
            ),
            (r#"{"role":"user"}"#, "a message without content"),
            (
                r#"{"role":"assistant","tool_calls":[{"function":{"name":"x"}}]}"#,
                "a tool call without its id or name",
            ),
        ] {
            assert_eq!(from_json(&json::parse(bad.as_bytes()).unwrap()), Err(why));
        }
    }
}
