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

/// The last `size` messages, starting with a user message: a turn starts
/// with the user, so the window never opens on an assistant reply or on
/// tool results whose calls were cut off (providers refuse both).
pub fn window(messages: &[Message], size: usize) -> &[Message] {
    let mut recent = &messages[messages.len().saturating_sub(size)..];
    while recent.first().is_some_and(|m| m.role != Role::User) {
        recent = &recent[1..];
    }
    recent
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
        let contents = |w: &[Message]| w.iter().map(Message::joined_text).collect::<Vec<_>>();
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
}
