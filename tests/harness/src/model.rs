//! A scripted model for tool conversations, served under the `model`
//! scenario of the [`crate::server`] stand-in.
//!
//! The test writes the plan into the user message, as JSON, so one server
//! serves every conversation:
//!
//! ```json
//! {"plan": [
//!    {"say": "Reading.", "calls": [{"name": "read_file", "arguments": {"path": "notes.md"}}]},
//!    {"calls": [{"name": "write_file", "arguments": {"path": "todo.md", "content": "$result0"}}]}
//!  ],
//!  "then": "answer"}
//! ```
//!
//! Each round of the plan is one reply: some text, then the tool calls.
//! `$resultN` in an argument is replaced by the content of the N-th tool
//! result the model just received; `raw_arguments` sends arguments as
//! they are (malformed ones included). When the plan is used up, `then`
//! says what follows: `answer` (the default) replies `done: ` and the last
//! results, `same` repeats the last round's calls forever, `new` calls
//! `list_dir` forever with a new argument each round. `reuse_index` sends
//! parallel OpenAI calls all under index 0, as some servers do; `cut`
//! ends the final answer as cut at max_tokens.
//!
//! A request without tools (or with calling switched off) gets a plain
//! answer. Streamed replies cut the arguments into 3-byte pieces and interleave
//! parallel calls. Every request is first checked against the rules the
//! providers' references state for tool conversations; a violation is
//! answered 400 with what was wrong, as the real APIs do.

use serde_json::{json, Value};

use crate::server::Wire;

/// The conversation as the request carries it, reduced to what the
/// model needs: the plan, the round, and the results just received.
struct Seen {
    plan: Value,
    /// Replies the assistant already gave since the plan was sent.
    round: usize,
    /// The tool results of the latest round: (content, is_error).
    results: Vec<(String, bool)>,
}

/// The reply to a `model` request: a complete body or SSE events, or a
/// 400 with why the request breaks the protocol's rules.
pub enum Answer {
    Whole(Value),
    Events(Vec<String>),
    Refused(String),
}

pub fn answer(wire: Wire, body: &Value, stream: bool) -> Answer {
    if let Err(why) = check(wire, body) {
        return Answer::Refused(why);
    }
    let seen = match read(wire, body) {
        Ok(seen) => seen,
        Err(why) => return Answer::Refused(why),
    };
    // Without tools, or told not to call them, a model answers in words.
    let may_call = body["tools"].as_array().is_some_and(|t| !t.is_empty())
        && body["tool_choice"] != json!("none")
        && body["tool_choice"]["type"] != json!("none");
    let (text, calls) = if may_call {
        next(&seen)
    } else {
        (
            format!("no tools offered; round {}", seen.round),
            Vec::new(),
        )
    };
    let reuse_index = seen.plan["reuse_index"] == json!(true);
    // The final answer said to stop at max_tokens.
    let cut = calls.is_empty() && seen.plan["cut"] == json!(true);
    match (wire, stream) {
        (Wire::OpenAi, false) => Answer::Whole(openai_whole(&text, &calls, cut)),
        (Wire::OpenAi, true) => Answer::Events(openai_events(&text, &calls, reuse_index, cut)),
        (Wire::Anthropic, false) => Answer::Whole(anthropic_whole(&text, &calls, cut)),
        (Wire::Anthropic, true) => Answer::Events(anthropic_events(&text, &calls, cut)),
    }
}

/// One call to make: its id, name and arguments text.
struct Call {
    id: String,
    name: String,
    arguments: String,
}

/// What the next reply says and calls.
fn next(seen: &Seen) -> (String, Vec<Call>) {
    let rounds = seen.plan["plan"].as_array().cloned().unwrap_or_default();
    let then = seen.plan["then"].as_str().unwrap_or("answer");
    let round = if seen.round < rounds.len() {
        Some(rounds[seen.round].clone())
    } else {
        match then {
            "same" => rounds.last().cloned(),
            "new" => Some(
                json!({"calls": [{"name": "list_dir", "arguments": {"path": format!("./{}", seen.round)}}]}),
            ),
            _ => None,
        }
    };
    let Some(round) = round else {
        let results: Vec<String> = seen
            .results
            .iter()
            .map(|(content, is_error)| {
                let short: String = content.chars().take(80).collect();
                if *is_error {
                    format!("[error] {short}")
                } else {
                    short
                }
            })
            .collect();
        return (
            format!("done after {} rounds: {}", seen.round, results.join(" | ")),
            Vec::new(),
        );
    };
    let text = round["say"].as_str().unwrap_or("").to_owned();
    let calls = round["calls"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, c)| Call {
            id: format!("call_{}_{i}", seen.round),
            name: c["name"].as_str().unwrap_or("").to_owned(),
            arguments: match c.get("raw_arguments").and_then(Value::as_str) {
                Some(raw) => raw.to_owned(),
                None => substitute(&c["arguments"], &seen.results).to_string(),
            },
        })
        .collect();
    (text, calls)
}

/// Arguments with `$resultN` replaced by the N-th result's content.
fn substitute(value: &Value, results: &[(String, bool)]) -> Value {
    match value {
        Value::String(s) => match s
            .strip_prefix("$result")
            .and_then(|n| n.parse::<usize>().ok())
        {
            Some(n) => json!(results.get(n).map(|r| r.0.clone()).unwrap_or_default()),
            None => value.clone(),
        },
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), substitute(v, results)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Finds the plan (the last user message that holds one), counts the
/// assistant replies since, and collects the latest round's results.
fn read(wire: Wire, body: &Value) -> Result<Seen, String> {
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let plan_at = messages
        .iter()
        .rposition(|m| m["role"] == "user" && user_text(m).is_some_and(|t| t.contains("\"plan\"")))
        .ok_or("no message holds a plan")?;
    let plan: Value = serde_json::from_str(&user_text(&messages[plan_at]).unwrap_or_default())
        .map_err(|e| format!("the plan is not JSON: {e}"))?;
    let after = &messages[plan_at + 1..];
    let round = after.iter().filter(|m| m["role"] == "assistant").count();
    let mut results = Vec::new();
    for m in after.iter().rev() {
        match (wire, m["role"].as_str()) {
            (Wire::OpenAi, Some("tool")) => {
                let content = m["content"].as_str().unwrap_or("").to_owned();
                let is_error = content.starts_with("error:");
                results.insert(0, (content, is_error));
            }
            (Wire::Anthropic, Some("user")) => {
                for block in m["content"].as_array().into_iter().flatten() {
                    if block["type"] == "tool_result" {
                        let content = block["content"].as_str().unwrap_or("").to_owned();
                        results.push((content, block["is_error"] == json!(true)));
                    }
                }
                break;
            }
            _ => break,
        }
    }
    Ok(Seen {
        plan,
        round,
        results,
    })
}

/// A user message's text: a string, or (Anthropic) its text blocks.
fn user_text(message: &Value) -> Option<String> {
    match &message["content"] {
        Value::String(s) => Some(s.clone()),
        Value::Array(blocks) => Some(
            blocks
                .iter()
                .filter(|b| b["type"] == "text")
                .filter_map(|b| b["text"].as_str())
                .collect(),
        ),
        _ => None,
    }
}

/// The rules each provider's API reference states for tool conversations.
fn check(wire: Wire, body: &Value) -> Result<(), String> {
    let messages = body["messages"]
        .as_array()
        .ok_or("messages must be an array")?;
    let tools = body["tools"].as_array();
    for tool in tools.into_iter().flatten() {
        let (name, schema) = match wire {
            Wire::OpenAi => {
                if tool["type"] != "function" {
                    return Err("tools[].type must be \"function\"".into());
                }
                (&tool["function"]["name"], &tool["function"]["parameters"])
            }
            Wire::Anthropic => (&tool["name"], &tool["input_schema"]),
        };
        let name = name.as_str().ok_or("a tool without a name")?;
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(format!("tool name {name:?} has characters the API refuses"));
        }
        if schema["type"] != "object" {
            return Err(format!("the schema of tool {name} must be of type object"));
        }
    }
    match wire {
        Wire::OpenAi => check_openai(messages),
        Wire::Anthropic => check_anthropic(messages, tools.is_some()),
    }
}

/// OpenAI: an assistant message with `tool_calls` is followed at once by
/// one `tool` message per call id, and a `tool` message answers a call.
fn check_openai(messages: &[Value]) -> Result<(), String> {
    let mut i = 0;
    while i < messages.len() {
        let m = &messages[i];
        match m["role"].as_str() {
            Some("assistant") => {
                let calls = m["tool_calls"].as_array().cloned().unwrap_or_default();
                let mut ids = Vec::new();
                for call in &calls {
                    let id = call["id"].as_str().ok_or("a tool call without an id")?;
                    if call["type"] != "function" || !call["function"]["arguments"].is_string() {
                        return Err(format!(
                            "tool call {id}: type must be function and arguments a string"
                        ));
                    }
                    ids.push(id.to_owned());
                }
                let content = &m["content"];
                if !calls.is_empty() && !content.is_null() && !content.is_string() {
                    return Err("an assistant message's content must be a string or null".into());
                }
                let mut j = i + 1;
                while j < messages.len() && messages[j]["role"] == "tool" {
                    let id = messages[j]["tool_call_id"].as_str().unwrap_or("");
                    if !ids.iter().any(|x| x == id) {
                        return Err(format!("a tool message answers {id:?}, which the assistant message before did not call"));
                    }
                    if !messages[j]["content"].is_string() {
                        return Err("a tool message's content must be a string".into());
                    }
                    ids.retain(|x| x != id);
                    j += 1;
                }
                if !ids.is_empty() {
                    return Err(format!(
                        "An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. Missing: {ids:?}"
                    ));
                }
                i = j;
            }
            Some("tool") => {
                return Err(
                    "a tool message must follow an assistant message with tool_calls".into(),
                )
            }
            Some("user" | "system") => i += 1,
            other => return Err(format!("unknown role {other:?}")),
        }
    }
    Ok(())
}

/// Anthropic: roles user and assistant only; every tool_use is answered
/// by a tool_result in the very next user message, results first; tool
/// blocks need `tools` defined.
fn check_anthropic(messages: &[Value], has_tools: bool) -> Result<(), String> {
    if messages.first().map(|m| &m["role"]) != Some(&json!("user")) {
        return Err("the first message must use the user role".into());
    }
    let mut every_use: Vec<&str> = messages
        .iter()
        .flat_map(|m| m["content"].as_array().into_iter().flatten())
        .filter(|b| b["type"] == "tool_use")
        .filter_map(|b| b["id"].as_str())
        .collect();
    every_use.sort_unstable();
    if let Some(pair) = every_use.windows(2).find(|pair| pair[0] == pair[1]) {
        return Err(format!("`tool_use` ids must be unique: {:?}", pair[0]));
    }
    for (i, m) in messages.iter().enumerate() {
        let role = m["role"].as_str().unwrap_or("");
        if role != "user" && role != "assistant" {
            return Err(format!("messages.{i}.role: unexpected value {role:?}"));
        }
        let blocks = m["content"].as_array().cloned().unwrap_or_default();
        let uses: Vec<String> = blocks
            .iter()
            .filter(|b| b["type"] == "tool_use")
            .map(|b| b["id"].as_str().unwrap_or("").to_owned())
            .collect();
        for b in &blocks {
            if (b["type"] == "tool_use" || b["type"] == "tool_result") && !has_tools {
                return Err(
                    "requests with tool_use or tool_result blocks must define tools".into(),
                );
            }
            if b["type"] == "tool_use" {
                let id = b["id"].as_str().unwrap_or("");
                if id.is_empty()
                    || !id
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                {
                    return Err(format!(
                        "tool_use id {id:?} does not match ^[a-zA-Z0-9_-]+$"
                    ));
                }
                if !b["input"].is_object() {
                    return Err("tool_use.input must be an object".into());
                }
            }
        }
        if role == "assistant" {
            // Text blocks may come first; a tool_use is never before text.
            let first_use = blocks.iter().position(|b| b["type"] == "tool_use");
            if let Some(at) = first_use {
                if blocks[at..].iter().any(|b| b["type"] == "text") {
                    return Err("text blocks must come before tool_use blocks".into());
                }
            }
        }
        if !uses.is_empty() {
            let next = messages
                .get(i + 1)
                .ok_or("tool_use ids were found without tool_result blocks immediately after")?;
            let next_blocks = next["content"].as_array().cloned().unwrap_or_default();
            let results: Vec<&str> = next_blocks
                .iter()
                .take_while(|b| b["type"] == "tool_result")
                .filter_map(|b| b["tool_use_id"].as_str())
                .collect();
            if next["role"] != "user"
                || results.len() != uses.len()
                || uses.iter().any(|u| !results.contains(&u.as_str()))
            {
                return Err(format!(
                    "messages.{}: tool_use ids were found without tool_result blocks immediately after: {uses:?}",
                    i + 1
                ));
            }
            if next_blocks
                .iter()
                .skip(results.len())
                .any(|b| b["type"] == "tool_result")
            {
                return Err("tool_result blocks must come first in the user message".into());
            }
        }
    }
    Ok(())
}

fn openai_whole(text: &str, calls: &[Call], cut: bool) -> Value {
    let tool_calls: Vec<Value> = calls
        .iter()
        .map(|c| json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}))
        .collect();
    let mut message = json!({"role": "assistant", "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { json!(text) }});
    if !calls.is_empty() {
        message["tool_calls"] = json!(tool_calls);
    }
    let finish = match (calls.is_empty(), cut) {
        (false, _) => "tool_calls",
        (true, true) => "length",
        (true, false) => "stop",
    };
    json!({"id": "chatcmpl-model", "object": "chat.completion", "model": "mock",
           "choices": [{"index": 0, "message": message, "finish_reason": finish}]})
}

/// Pieces of at most three bytes, cut at character boundaries.
fn pieces(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        if current.len() + c.len_utf8() > 3 && !current.is_empty() {
            out.push(std::mem::take(&mut current));
        }
        current.push(c);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

fn openai_events(text: &str, calls: &[Call], reuse_index: bool, cut: bool) -> Vec<String> {
    let chunk = |delta: Value, finish: Value| {
        format!(
            "data: {}\n\n",
            json!({"id": "chatcmpl-model", "object": "chat.completion.chunk",
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        )
    };
    let header = |index: usize, c: &Call| {
        chunk(
            json!({"tool_calls": [{"index": index, "id": c.id, "type": "function",
                                   "function": {"name": c.name, "arguments": ""}}]}),
            Value::Null,
        )
    };
    let piece = |index: usize, p: &str| {
        chunk(
            json!({"tool_calls": [{"index": index, "function": {"arguments": p}}]}),
            Value::Null,
        )
    };
    let mut out = vec![chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    )];
    for p in pieces(text) {
        out.push(chunk(json!({"content": p}), Value::Null));
    }
    if reuse_index {
        // Call after call, all at index 0: only the id tells them apart.
        for c in calls {
            out.push(header(0, c));
            out.extend(pieces(&c.arguments).iter().map(|p| piece(0, p)));
        }
    } else {
        // Every call's header, then their pieces interleaved.
        for (i, c) in calls.iter().enumerate() {
            out.push(header(i, c));
        }
        let cut: Vec<Vec<String>> = calls.iter().map(|c| pieces(&c.arguments)).collect();
        let longest = cut.iter().map(Vec::len).max().unwrap_or(0);
        for k in 0..longest {
            for (i, p) in cut.iter().enumerate() {
                if let Some(p) = p.get(k) {
                    out.push(piece(i, p));
                }
            }
        }
    }
    let finish = match (calls.is_empty(), cut) {
        (false, _) => "tool_calls",
        (true, true) => "length",
        (true, false) => "stop",
    };
    out.push(chunk(json!({}), json!(finish)));
    out.push("data: [DONE]\n\n".to_owned());
    out
}

fn anthropic_input(arguments: &str) -> Value {
    serde_json::from_str(arguments).unwrap_or_else(|_| json!(arguments))
}

fn anthropic_whole(text: &str, calls: &[Call], cut: bool) -> Value {
    let mut content = Vec::new();
    if !text.is_empty() || calls.is_empty() {
        content.push(json!({"type": "text", "text": text}));
    }
    for c in calls {
        content.push(json!({"type": "tool_use", "id": c.id, "name": c.name, "input": anthropic_input(&c.arguments)}));
    }
    let stop = match (calls.is_empty(), cut) {
        (false, _) => "tool_use",
        (true, true) => "max_tokens",
        (true, false) => "end_turn",
    };
    json!({"id": "msg_model", "type": "message", "role": "assistant", "model": "mock",
           "content": content, "stop_reason": stop, "usage": {"input_tokens": 1, "output_tokens": 1}})
}

fn anthropic_events(text: &str, calls: &[Call], cut: bool) -> Vec<String> {
    let named = |name: &str, v: Value| format!("event: {name}\ndata: {v}\n\n");
    let mut out = vec![named(
        "message_start",
        json!({"type": "message_start", "message": {"id": "msg_model", "type": "message", "role": "assistant", "content": [], "model": "mock"}}),
    )];
    let mut index = 0;
    if !text.is_empty() || calls.is_empty() {
        out.push(named("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})));
        for p in pieces(text) {
            out.push(named("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}})));
        }
        out.push(named(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ));
        index = 1;
    }
    for c in calls {
        out.push(named(
            "content_block_start",
            json!({"type": "content_block_start", "index": index, "content_block": {"type": "tool_use", "id": c.id, "name": c.name, "input": {}}}),
        ));
        out.push(named("content_block_delta", json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": ""}})));
        for p in pieces(&c.arguments) {
            out.push(named("content_block_delta", json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": p}})));
        }
        out.push(named(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": index}),
        ));
        index += 1;
    }
    let stop = match (calls.is_empty(), cut) {
        (false, _) => "tool_use",
        (true, true) => "max_tokens",
        (true, false) => "end_turn",
    };
    out.push(named("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": stop}, "usage": {"output_tokens": 9}})));
    out.push(named("message_stop", json!({"type": "message_stop"})));
    out
}
