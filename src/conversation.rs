//! The conversation as clawft thinks of it, whatever the wire protocol or
//! the file it is kept in: messages with a role and parts (text, a call of
//! a tool, a tool's result). [`crate::provider`] turns it into each
//! protocol's request shape; [`crate::session`] into lines on disk.

/// Who said it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    System,
    User,
    Assistant,
    /// The results of the tools the assistant called just before.
    Tool,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }

    pub fn from_name(name: &str) -> Option<Role> {
        match name {
            "system" => Some(Role::System),
            "user" => Some(Role::User),
            "assistant" => Some(Role::Assistant),
            "tool" => Some(Role::Tool),
            _ => None,
        }
    }
}

/// The model asking for a tool to be run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    /// The provider's id for the call, which its result must quote.
    pub id: String,
    pub name: String,
    /// The arguments as JSON text, exactly as the model wrote them (they
    /// may not even be valid JSON).
    pub arguments: String,
}

/// What running a tool gave, for the model to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolResult {
    /// The [`ToolCall::id`] this answers.
    pub call_id: String,
    /// The tool's name (OpenAI-style records carry it; handy when reading).
    pub name: String,
    pub content: String,
    /// The tool failed; `content` says why.
    pub is_error: bool,
}

/// One piece of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Text(String),
    Call(ToolCall),
    Result(ToolResult),
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub role: Role,
    pub parts: Vec<Part>,
    /// RFC 3339 UTC; empty when a file written by another tool had none.
    pub timestamp: String,
}

impl Message {
    /// A message of plain text, stamped with the current time.
    pub fn text(role: Role, text: impl Into<String>) -> Message {
        Message::new(role, vec![Part::Text(text.into())])
    }

    /// A message of these parts, stamped with the current time.
    pub fn new(role: Role, parts: Vec<Part>) -> Message {
        Message {
            role,
            parts,
            timestamp: crate::time::now(),
        }
    }

    /// The text parts, joined.
    pub fn joined_text(&self) -> String {
        let mut text = String::new();
        for part in &self.parts {
            if let Part::Text(t) = part {
                text.push_str(t);
            }
        }
        text
    }

    /// The message as a person reads it: its text, each call as
    /// `-> name arguments`, each result as `<- name` and its content; every
    /// part ends a line.
    pub fn as_text(&self) -> String {
        let mut text = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => text.push_str(t),
                Part::Call(c) => {
                    text.push_str("-> ");
                    text.push_str(&c.name);
                    text.push(' ');
                    text.push_str(&c.arguments);
                }
                Part::Result(r) => {
                    text.push_str("<- ");
                    text.push_str(&r.name);
                    text.push_str(if r.is_error { " (failed)\n" } else { "\n" });
                    text.push_str(&r.content);
                }
            }
            if !text.ends_with('\n') {
                text.push('\n');
            }
        }
        text
    }

    /// The tool calls this (assistant) message makes.
    pub fn calls(&self) -> impl Iterator<Item = &ToolCall> {
        self.parts.iter().filter_map(|p| match p {
            Part::Call(call) => Some(call),
            _ => None,
        })
    }

    /// The tool results this (tool) message carries.
    pub fn results(&self) -> impl Iterator<Item = &ToolResult> {
        self.parts.iter().filter_map(|p| match p {
            Part::Result(result) => Some(result),
            _ => None,
        })
    }

    /// Whether a provider would accept it: text that is not blank, or any
    /// call or result (an old session may hold an empty message, which
    /// providers refuse).
    pub fn is_sendable(&self) -> bool {
        self.parts.iter().any(|p| match p {
            Part::Text(t) => !t.trim().is_empty(),
            Part::Call(_) | Part::Result(_) => true,
        })
    }
}

/// The last `size` messages, as a turn sends them, in a shape providers
/// accept:
///
/// - The window opens on the first user message in it; a window that holds
///   none (one long tool turn fills it) opens on the first assistant
///   message, after a short user note, since providers expect the user to
///   speak first. It never opens on tool results, whose calls it cut off.
/// - Each call is answered right after it. A session torn by a crash can
///   hold a call whose result was lost, which providers refuse for good:
///   an error result stands in for the lost one. A result whose call is
///   gone is left out.
pub fn window(messages: &[Message], size: usize) -> Vec<Message> {
    let recent = &messages[messages.len().saturating_sub(size)..];
    let opening = recent
        .iter()
        .position(|m| m.role == Role::User)
        .or_else(|| recent.iter().position(|m| m.role == Role::Assistant));
    let Some(at) = opening else {
        return Vec::new();
    };
    let mut window = Vec::with_capacity(recent.len() - at + 1);
    if recent[at].role != Role::User {
        window.push(Message {
            role: Role::User,
            parts: vec![Part::Text(EARLIER_NOT_SHOWN.into())],
            timestamp: recent[at].timestamp.clone(),
        });
    }
    // Calls still waiting for results: (id, tool name).
    let mut open: Vec<(String, String)> = Vec::new();
    for message in &recent[at..] {
        let mut message = message.clone();
        if message.role == Role::Tool {
            message.parts.retain(|part| match part {
                Part::Result(r) => take(&mut open, &r.call_id),
                _ => false,
            });
            if !message.parts.is_empty() {
                window.push(message);
            }
            continue;
        }
        answer_lost(&mut window, &mut open);
        if message.role == Role::Assistant {
            open = message
                .calls()
                .map(|c| (c.id.clone(), c.name.clone()))
                .collect();
        }
        window.push(message);
    }
    answer_lost(&mut window, &mut open);
    window
}

/// The user note a window opens with when it starts inside a turn.
pub const EARLIER_NOT_SHOWN: &str = "(The earlier part of this conversation is not shown.)";

/// What stands in for a tool result that is missing from the history.
pub const RESULT_LOST: &str = "the result of this call was lost (the session was not saved whole)";

/// Removes the open call with this id; whether there was one.
fn take(open: &mut Vec<(String, String)>, id: &str) -> bool {
    let found = open.iter().position(|(open_id, _)| open_id == id);
    if let Some(at) = found {
        open.remove(at);
    }
    found.is_some()
}

/// An error result for each call still waiting for one.
fn answer_lost(window: &mut Vec<Message>, open: &mut Vec<(String, String)>) {
    for (call_id, name) in open.drain(..) {
        let timestamp = window
            .last()
            .map(|m| m.timestamp.clone())
            .unwrap_or_default();
        window.push(Message {
            role: Role::Tool,
            parts: vec![Part::Result(ToolResult {
                call_id,
                name,
                content: RESULT_LOST.into(),
                is_error: true,
            })],
            timestamp,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_keeps_the_latest_messages_and_opens_with_the_user() {
        let talk: Vec<Message> = (0..6)
            .map(|i| {
                let role = if i % 2 == 0 {
                    Role::User
                } else {
                    Role::Assistant
                };
                Message::text(role, i.to_string())
            })
            .collect();
        let contents = |w: Vec<Message>| w.iter().map(Message::joined_text).collect::<Vec<_>>();
        assert_eq!(contents(window(&talk, 4)), ["2", "3", "4", "5"]);
        assert_eq!(contents(window(&talk, 3)), ["4", "5"]);
        assert_eq!(contents(window(&talk, 100)).len(), 6);
        assert!(window(&talk, 0).is_empty());
    }

    #[test]
    fn a_window_never_opens_on_tool_results() {
        let call = ToolCall {
            id: "c1".into(),
            name: "read_file".into(),
            arguments: "{}".into(),
        };
        let result = ToolResult {
            call_id: "c1".into(),
            name: "read_file".into(),
            content: "x".into(),
            is_error: false,
        };
        let talk = [
            Message::text(Role::User, "a"),
            Message::new(Role::Assistant, vec![Part::Call(call)]),
            Message::new(Role::Tool, vec![Part::Result(result)]),
            Message::text(Role::Assistant, "done"),
            Message::text(Role::User, "b"),
        ];
        assert_eq!(window(&talk, 4).len(), 1);
        assert_eq!(window(&talk, 5).len(), 5);
        assert!(talk[1].is_sendable() && talk[2].is_sendable());
        assert!(!Message::text(Role::Assistant, " ").is_sendable());
    }

    fn call(id: &str) -> Part {
        Part::Call(ToolCall {
            id: id.into(),
            name: "read_file".into(),
            arguments: "{}".into(),
        })
    }

    fn result(id: &str) -> Part {
        Part::Result(ToolResult {
            call_id: id.into(),
            name: "read_file".into(),
            content: format!("content of {id}"),
            is_error: false,
        })
    }

    #[test]
    fn a_window_inside_one_long_tool_turn_keeps_its_end() {
        let mut talk = vec![Message::text(Role::User, "read them all")];
        for round in 0..12 {
            let ids: Vec<String> = (0..4).map(|i| format!("c{round}-{i}")).collect();
            talk.push(Message::new(
                Role::Assistant,
                ids.iter().map(|id| call(id)).collect(),
            ));
            talk.extend(
                ids.iter()
                    .map(|id| Message::new(Role::Tool, vec![result(id)])),
            );
        }
        talk.push(Message::text(Role::Assistant, "all read"));
        assert_eq!(talk.len(), 62);
        let kept = window(&talk, 50);
        assert_eq!(kept[0].joined_text(), EARLIER_NOT_SHOWN);
        assert_eq!(kept[1].role, Role::Assistant);
        assert_eq!(kept.last().unwrap().joined_text(), "all read");
        assert_eq!(
            kept.len(),
            1 + 50 - 4,
            "opens on the first call after the cut"
        );
    }

    #[test]
    fn lost_results_are_stood_in_for_and_orphans_dropped() {
        let talk = vec![
            Message::text(Role::User, "a"),
            Message::new(Role::Assistant, vec![call("c1"), call("c2")]),
            Message::new(Role::Tool, vec![result("c1")]),
            // c2's result was torn off by a crash.
            Message::text(Role::User, "b"),
            Message::new(Role::Tool, vec![result("gone")]),
            Message::text(Role::Assistant, "ok"),
        ];
        let shape = |messages: &[Message]| -> Vec<(Role, String)> {
            messages
                .iter()
                .map(|m| {
                    let what = match &m.parts[0] {
                        Part::Result(r) => format!("{} {}", r.call_id, r.is_error),
                        _ => m.as_text(),
                    };
                    (m.role, what)
                })
                .collect()
        };
        let fixed = window(&talk, 100);
        assert_eq!(
            shape(&fixed),
            [
                (Role::User, "a\n".to_owned()),
                (
                    Role::Assistant,
                    "-> read_file {}\n-> read_file {}\n".to_owned()
                ),
                (Role::Tool, "c1 false".to_owned()),
                (Role::Tool, "c2 true".to_owned()),
                (Role::User, "b\n".to_owned()),
                (Role::Assistant, "ok\n".to_owned()),
            ]
        );
        assert_eq!(window(&fixed, 100), fixed);
        // A history ending in a call still waiting gets its stand-in too.
        assert_eq!(
            shape(&window(&talk[..3], 100))[3],
            (Role::Tool, "c2 true".to_owned())
        );
    }
}
