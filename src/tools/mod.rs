//! The tools a model may call: which are offered ([`Toolbox`]), what each
//! takes (one declarative [`Spec`] that gives both the JSON Schema sent to
//! the provider and the reading of the arguments), and running one call.
//!
//! Every file tool works inside the workspace through the one resolver
//! ([`crate::sandbox`]); under WASI the host's preopens are a second wall.
//! A tool that fails, an unknown tool, or arguments that are not a JSON
//! object give the model an error to read, never a failed turn.

pub(crate) mod exec;
mod files;
mod web;

use std::path::PathBuf;
use std::time::Duration;

use crate::conversation::ToolCall;
use crate::json::{object, FieldError, Json, Member};
use crate::provider::{arguments_object, ToolSpec};

pub use files::Workspace;

/// The tool-loop and tool settings, resolved from the config.
#[derive(Debug, Clone)]
pub struct ToolSettings {
    /// Where the file tools (and `exec`) work.
    pub workspace: PathBuf,
    /// The clawft home, which the tools may not touch even when it lies
    /// inside the workspace.
    pub home: PathBuf,
    /// The file tools: read, write, edit, list, search.
    pub files: bool,
    pub web: bool,
    pub exec: bool,
    /// Whether `exec` may run for gateway clients too.
    pub exec_in_gateway: bool,
    /// Whether `web_fetch` may run for gateway clients too (it reaches the
    /// gateway host's network: internal services, cloud metadata).
    pub web_in_gateway: bool,
    /// Programs `exec` may run, by name.
    pub exec_allow: Vec<String>,
    pub exec_timeout: Duration,
    /// Tools switched off one by one, by name.
    pub disabled: Vec<String>,
    pub web_timeout: Duration,
    pub web_max_bytes: usize,
    /// Model requests in one turn before the loop gives up.
    pub max_iterations: u32,
    /// The most characters of one tool result the model gets.
    pub max_result_chars: usize,
}

pub const DEFAULT_MAX_ITERATIONS: u32 = 20;
pub const DEFAULT_MAX_RESULT_CHARS: usize = 16_000;
pub const DEFAULT_EXEC_TIMEOUT_SECS: u64 = 60;
pub const DEFAULT_WEB_TIMEOUT_SECS: u64 = 30;
pub const DEFAULT_WEB_MAX_BYTES: usize = 1 << 20;
/// The same call (name and arguments) this many rounds in a row ends the turn.
pub const MAX_REPEATS: usize = 3;
/// The most calls of one reply that run; the rest are answered with an
/// error (a looping model or a broken server can send thousands).
pub const MAX_CALLS_PER_ROUND: usize = 64;

/// Who is asking: the gateway offers `exec` only if the config says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    Cli,
    Gateway,
}

/// The type of one argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    String,
    Integer,
    Boolean,
    StringList,
}

/// One argument of a tool.
#[derive(Debug)]
pub struct Param {
    pub name: &'static str,
    pub kind: Kind,
    pub required: bool,
    pub doc: &'static str,
}

/// A tool as the model sees it.
#[derive(Debug)]
pub struct Spec {
    pub name: &'static str,
    pub description: &'static str,
    pub params: &'static [Param],
}

impl Spec {
    /// The JSON Schema of the arguments.
    pub fn schema(&self) -> Json {
        let properties = self
            .params
            .iter()
            .map(|p| {
                let mut schema = match p.kind {
                    Kind::String => vec![Member::new("type", "string")],
                    Kind::Integer => vec![Member::new("type", "integer")],
                    Kind::Boolean => vec![Member::new("type", "boolean")],
                    Kind::StringList => vec![
                        Member::new("type", "array"),
                        Member::new("items", object([("type", "string".into())])),
                    ],
                };
                schema.push(Member::new("description", p.doc));
                Member {
                    key: p.name.to_owned(),
                    value: Json::Object(schema),
                    offset: 0,
                }
            })
            .collect();
        let required: Vec<Json> = self
            .params
            .iter()
            .filter(|p| p.required)
            .map(|p| p.name.into())
            .collect();
        object([
            ("type", "object".into()),
            ("properties", Json::Object(properties)),
            ("required", required.into()),
        ])
    }

    pub fn tool_spec(&self) -> ToolSpec {
        ToolSpec {
            name: self.name,
            description: self.description,
            parameters: self.schema(),
        }
    }
}

/// The arguments of one call, read against its [`Spec`].
pub struct Args {
    value: Json,
}

impl Args {
    /// A required argument.
    pub fn get<T: crate::json::FromJson>(&self, name: &str) -> Result<T, String> {
        self.value.required(name).map_err(|e| describe(&e))
    }

    /// An optional argument.
    pub fn opt<T: crate::json::FromJson>(&self, name: &str) -> Result<Option<T>, String> {
        self.value.field(name).map_err(|e| describe(&e))
    }
}

fn describe(err: &FieldError) -> String {
    format!("argument {err}")
}

/// What one call gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// What the model reads (capped).
    pub content: String,
    pub is_error: bool,
    /// A few words for the person watching: `notes.md -> 1.2 KB`.
    pub summary: String,
}

/// The tools one turn offers, ready to run.
#[derive(Debug, Clone)]
pub struct Toolbox {
    settings: ToolSettings,
    offered: Vec<&'static Spec>,
}

/// Every tool clawft has, in the order they are offered.
fn all_specs() -> Vec<&'static Spec> {
    let mut specs: Vec<&'static Spec> = files::SPECS.iter().collect();
    specs.push(&web::SPEC);
    if exec::AVAILABLE {
        specs.push(&exec::SPEC);
    }
    specs
}

impl Toolbox {
    /// The tools the settings allow for this caller.
    pub fn new(settings: &ToolSettings, caller: Caller) -> Toolbox {
        let allowed = |spec: &Spec| {
            let group = match spec.name {
                "web_fetch" => settings.web && (caller == Caller::Cli || settings.web_in_gateway),
                "exec" => {
                    settings.exec
                        && !settings.exec_allow.is_empty()
                        && (caller == Caller::Cli || settings.exec_in_gateway)
                }
                _ => settings.files,
            };
            group && !settings.disabled.iter().any(|d| d == spec.name)
        };
        Toolbox {
            settings: settings.clone(),
            offered: all_specs().into_iter().filter(|s| allowed(s)).collect(),
        }
    }

    /// No tools at all (`--no-tools`).
    pub fn none(settings: &ToolSettings) -> Toolbox {
        Toolbox {
            settings: settings.clone(),
            offered: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.offered.is_empty()
    }

    pub fn settings(&self) -> &ToolSettings {
        &self.settings
    }

    /// The offered tools, as the provider is told of them.
    pub fn specs(&self) -> Vec<ToolSpec> {
        self.offered.iter().map(|s| s.tool_spec()).collect()
    }

    /// Every tool clawft has, for a provider reading earlier calls in a
    /// turn that offers none.
    pub fn every_spec() -> Vec<ToolSpec> {
        all_specs().iter().map(|s| s.tool_spec()).collect()
    }

    /// Runs one call. Whatever happens becomes an [`Outcome`] for the model.
    pub fn run(&self, call: &ToolCall) -> Outcome {
        let Some(spec) = self.offered.iter().find(|s| s.name == call.name) else {
            let names: Vec<&str> = self.offered.iter().map(|s| s.name).collect();
            return self.error(format!(
                "there is no tool named '{}'; the tools are: {}",
                call.name,
                names.join(", ")
            ));
        };
        let Some(value) = arguments_object(&call.arguments) else {
            return self.error(
                "the arguments are not a JSON object (they may have been cut off); \
                 send the call again with complete JSON arguments"
                    .into(),
            );
        };
        let args = Args { value };
        let result = match spec.name {
            "web_fetch" => web::run(&self.settings, &args),
            "exec" => exec::run(&self.settings, &args),
            name => files::run(
                name,
                &Workspace::new(&self.settings.workspace, &self.settings.home),
                &args,
            ),
        };
        match result {
            Ok((content, summary)) => Outcome {
                content: cap(&content, self.settings.max_result_chars),
                is_error: false,
                summary,
            },
            Err(why) => self.error(why),
        }
    }

    /// The answer to a call beyond [`MAX_CALLS_PER_ROUND`], which is not run.
    pub fn not_run(&self) -> Outcome {
        self.error(format!(
            "not run: at most {MAX_CALLS_PER_ROUND} calls of one reply are run; \
             ask again for the rest"
        ))
    }

    fn error(&self, why: String) -> Outcome {
        let summary = format!("error: {why}");
        Outcome {
            content: cap(&summary, self.settings.max_result_chars),
            is_error: true,
            summary,
        }
    }
}

/// Text cut to `max` characters, saying so when it was cut.
pub fn cap(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some((cut, _)) => {
            let total = text.chars().count();
            format!(
                "{}\n[cut: the first {max} of {total} characters are shown]",
                &text[..cut]
            )
        }
    }
}

/// A byte count as a person reads it: `512 B`, `1.2 KB`, `3.4 MB`.
pub fn size(bytes: usize) -> String {
    let bytes = bytes as u64;
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let (unit, scale) = if bytes < 1_000_000 {
        ("KB", 1000)
    } else {
        ("MB", 1_000_000)
    };
    let tenths = (bytes * 10 + scale / 2) / scale;
    format!("{}.{} {unit}", tenths / 10, tenths % 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn settings(workspace: &std::path::Path) -> ToolSettings {
        ToolSettings {
            workspace: workspace.to_owned(),
            home: workspace.join("no-home-here"),
            files: true,
            web: false,
            exec: false,
            exec_in_gateway: false,
            web_in_gateway: false,
            exec_allow: Vec::new(),
            exec_timeout: Duration::from_secs(5),
            disabled: Vec::new(),
            web_timeout: Duration::from_secs(5),
            web_max_bytes: DEFAULT_WEB_MAX_BYTES,
            max_iterations: DEFAULT_MAX_ITERATIONS,
            max_result_chars: DEFAULT_MAX_RESULT_CHARS,
        }
    }

    fn call(name: &str, arguments: &str) -> ToolCall {
        ToolCall {
            id: "c".into(),
            name: name.into(),
            arguments: arguments.into(),
        }
    }

    #[test]
    fn schemas_say_what_each_argument_is() {
        let dir = crate::test_support::scratch();
        let specs = Toolbox::new(&settings(dir.path()), Caller::Cli).specs();
        let names: Vec<&str> = specs.iter().map(|s| s.name).collect();
        assert_eq!(
            names,
            ["read_file", "write_file", "edit_file", "list_dir", "search"]
        );
        let read: serde_json::Value = serde_json::from_str(&specs[0].parameters.to_text()).unwrap();
        assert_eq!(read["type"], "object");
        assert_eq!(read["properties"]["path"]["type"], "string");
        assert_eq!(read["properties"]["start_line"]["type"], "integer");
        assert_eq!(read["required"], serde_json::json!(["path"]));
    }

    #[test]
    fn bad_calls_become_errors_for_the_model() {
        let dir = crate::test_support::scratch();
        let mut s = settings(dir.path());
        s.disabled.push("write_file".into());
        let tools = Toolbox::new(&s, Caller::Cli);
        let unknown = tools.run(&call("delete_everything", "{}"));
        assert!(unknown.is_error);
        assert!(unknown
            .content
            .contains("no tool named 'delete_everything'"));
        assert!(unknown.content.contains("read_file, edit_file"));
        let cut_off = tools.run(&call("read_file", r#"{"path": "no"#));
        assert!(cut_off.is_error && cut_off.content.contains("not a JSON object"));
        let wrong_type = tools.run(&call("read_file", r#"{"path": 7}"#));
        assert_eq!(
            wrong_type.content,
            "error: argument 'path' must be a string, not a number"
        );
        let missing = tools.run(&call("read_file", "{}"));
        assert_eq!(missing.content, "error: argument 'path' is required");
        assert!(tools
            .run(&call("write_file", "{}"))
            .content
            .contains("no tool named"));
    }

    #[test]
    fn exec_and_web_are_off_unless_enabled_and_for_the_gateway_unless_said() {
        let dir = crate::test_support::scratch();
        let mut s = settings(dir.path());
        let names = |s: &ToolSettings, caller| -> Vec<&'static str> {
            Toolbox::new(s, caller)
                .specs()
                .iter()
                .map(|t| t.name)
                .collect()
        };
        assert!(!names(&s, Caller::Cli).contains(&"web_fetch"));
        s.web = true;
        s.exec = true;
        assert!(names(&s, Caller::Cli).contains(&"web_fetch"));
        assert!(!names(&s, Caller::Cli).contains(&"exec"), "no allowlist");
        s.exec_allow.push("ls".into());
        assert_eq!(names(&s, Caller::Cli).contains(&"exec"), exec::AVAILABLE);
        assert!(!names(&s, Caller::Gateway).contains(&"exec"));
        assert!(!names(&s, Caller::Gateway).contains(&"web_fetch"));
        s.web_in_gateway = true;
        assert!(names(&s, Caller::Gateway).contains(&"web_fetch"));
        s.exec_in_gateway = true;
        assert_eq!(
            names(&s, Caller::Gateway).contains(&"exec"),
            exec::AVAILABLE
        );
        s.files = false;
        assert!(!names(&s, Caller::Cli).contains(&"read_file"));
        assert!(Toolbox::none(&s).is_empty());
    }

    #[test]
    fn results_are_capped_and_say_so() {
        assert_eq!(cap("short", 10), "short");
        assert_eq!(
            cap("abcdefghij", 4),
            "abcd\n[cut: the first 4 of 10 characters are shown]"
        );
        assert_eq!(size(999), "999 B");
        assert_eq!(size(1234), "1.2 KB");
        assert_eq!(size(3_450_000), "3.5 MB");
    }
}
