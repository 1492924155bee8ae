//! `config.json`: the file, its defaults, and how a `provider/model` name
//! becomes concrete [`Settings`].
//!
//! The shape is the one clawft and nanobot users already have:
//!
//! ```json
//! {
//!   "agents": { "defaults": { "model": "anthropic/claude-sonnet-4-5", "maxTokens": 4096 } },
//!   "providers": { "anthropic": { "apiKey": "sk-ant-..." } }
//! }
//! ```
//!
//! snake_case and camelCase names both work, unknown fields are ignored, and
//! empty strings count as "not set" (nanobot writes `"apiKey": ""`).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::error::Error;
use crate::home::Home;
use crate::http::Timeouts;
use crate::json::{self, Json, Member, Number};
use crate::provider::Protocol;
use crate::secrets::{shown_value, Redactions, Secret};

/// A variable of the process environment. Home, keys and tool settings
/// take the lookup as a function, so tests can hand them another.
pub fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// The model used when neither the config nor `--model` names one.
pub const DEFAULT_MODEL: &str = "openai/gpt-4o-mini";
pub const DEFAULT_MAX_TOKENS: u32 = 4096;
pub const DEFAULT_MEMORY_WINDOW: usize = 50;
/// How long a provider may take to answer, and to send each further
/// piece: as long as the official SDKs wait, since a reasoning model may
/// think for minutes before its first byte.
pub const DEFAULT_TIMEOUT_SECS: u64 = 600;
/// How long connecting may take (never longer than `timeout_secs`).
pub const DEFAULT_CONNECT_TIMEOUT_SECS: u64 = 10;
/// The largest values a config may ask for: bounds, not suggestions.
pub const MAX_RETRIES: u32 = 10;
pub const MAX_TOKENS: u64 = 1_000_000;
pub const MAX_MEMORY_WINDOW: u64 = 10_000;
pub const MAX_TIMEOUT_SECS: u64 = 86_400;
pub const MAX_TOOL_ITERATIONS: u64 = 1_000;
pub const MAX_TOOL_RESULT_CHARS: u64 = 1_000_000;
pub const MAX_WEB_BYTES: u64 = 64 << 20;
/// A config file larger than this is refused rather than read.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// The parsed `config.json`. Every field is optional.
#[derive(Debug, Default)]
pub struct Config {
    pub agents: Agents,
    /// The provider sections, in the file's order (a repeated name keeps
    /// its last value, in the place it first had).
    pub providers: Vec<(String, ProviderConfig)>,
    pub tools: ToolsConfig,
    pub gateway: GatewayConfig,
}

/// The `gateway` section: who may call `weft gateway`, and its bounds.
#[derive(Default)]
pub struct GatewayConfig {
    /// Client tokens (with `$CLAWFT_GATEWAY_TOKEN`).
    pub tokens: Vec<String>,
    /// Models `GET /v1/models` lists besides the default.
    pub models: Vec<String>,
    pub max_body_bytes: Option<usize>,
    pub max_concurrent_turns: Option<usize>,
    pub max_connections: Option<usize>,
    pub io_timeout_secs: Option<u64>,
    pub grace_secs: Option<u64>,
}

impl fmt::Debug for GatewayConfig {
    /// The tokens are counted, never shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewayConfig")
            .field("tokens", &self.tokens.len())
            .field("models", &self.models)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_concurrent_turns", &self.max_concurrent_turns)
            .field("max_connections", &self.max_connections)
            .field("io_timeout_secs", &self.io_timeout_secs)
            .field("grace_secs", &self.grace_secs)
            .finish()
    }
}

#[derive(Debug, Default)]
pub struct Agents {
    pub defaults: AgentDefaults,
}

#[derive(Debug, Default)]
pub struct AgentDefaults {
    pub model: Option<String>,
    /// The provider to use, or `auto` (nanobot's field).
    pub provider: Option<String>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<Temperature>,
    pub system_prompt: Option<String>,
    pub memory_window: Option<usize>,
    /// Where the tools work.
    pub workspace: Option<String>,
    pub max_tool_iterations: Option<u32>,
    pub max_tool_result_chars: Option<usize>,
}

/// The `tools` section, in nanobot's shape.
#[derive(Debug, Default)]
pub struct ToolsConfig {
    /// nanobot's switch; clawft always confines the tools, so only `false`
    /// is worth a note (it is not obeyed).
    pub restrict_to_workspace: Option<bool>,
    pub file_enable: Option<bool>,
    pub web_enable: Option<bool>,
    pub web_timeout_secs: Option<u64>,
    pub web_max_bytes: Option<usize>,
    pub exec_enable: Option<bool>,
    pub exec_allow: Option<Vec<String>>,
    pub exec_timeout_secs: Option<u64>,
    pub exec_gateway: Option<bool>,
    pub web_gateway: Option<bool>,
    /// Tools switched off one by one.
    pub disabled: Option<Vec<String>>,
}

/// A sampling temperature, kept as the number the user wrote: it is sent
/// exactly as written, and the build needs no float formatting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Temperature(Number);

impl Temperature {
    /// A temperature from a number read elsewhere (a gateway request).
    pub fn from_number(n: Number) -> Temperature {
        Temperature(n)
    }

    /// The number as written, e.g. `0.7`.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// Its value, for range checks.
    pub fn value(&self) -> f64 {
        self.0.value()
    }
}

impl From<&Temperature> for Json {
    fn from(t: &Temperature) -> Json {
        Json::Number(t.0.clone())
    }
}

#[derive(Default)]
pub struct ProviderConfig {
    pub api_key: Option<Secret>,
    pub api_key_env: Option<String>,
    pub api_base: Option<String>,
    pub extra_headers: Option<BTreeMap<String, String>>,
    pub timeout_secs: Option<u64>,
    pub connect_timeout_secs: Option<u64>,
    /// Which request field carries the reply limit (OpenAI protocol only).
    pub max_tokens_field: Option<TokenLimitField>,
    /// Retries after a failed attempt (see [`crate::retry`]); 0 disables them.
    pub max_retries: Option<u32>,
    /// The wire protocol (`protocol`, or nanobot's `apiType`): what it
    /// names, or the name clawft does not speak.
    pub protocol: Option<Result<Protocol, String>>,
}

impl Config {
    /// Reads `<home>/config.json`; a missing file means all defaults.
    pub fn load(home: &Home) -> Result<Config, Error> {
        let path = home.config_file()?;
        let text = match read_bounded(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
            Err(e) => return Err(Error::Config(format!("{}: {e}", path.display()))),
        };
        Config::parse(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
    }

    /// Parses config text; every error names its line and column, and for
    /// a value of the wrong type also the field, e.g. `line 3, column 18:
    /// agents.defaults.maxTokens must be a whole number, not a string`.
    pub fn parse(text: &str) -> Result<Config, String> {
        // RFC 8259 lets a reader ignore a byte-order mark; editors write one.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let root = json::parse(text.as_bytes()).map_err(|e| e.to_string())?;
        let fields = Fields {
            text: text.as_bytes(),
        };
        let mut config = Config::default();
        let top = root
            .as_object()
            .ok_or("the file must hold one JSON object, { ... }")?;
        for m in top {
            match m.key.as_str() {
                "agents" => {
                    for m in fields.object(m, "agents")? {
                        if m.key == "defaults" {
                            config.agents.defaults = fields.defaults(m)?;
                        }
                    }
                }
                "providers" => {
                    for p in fields.object(m, "providers")? {
                        let provider = fields.provider(p)?;
                        match config.providers.iter_mut().find(|(k, _)| *k == p.key) {
                            Some((_, earlier)) => *earlier = provider,
                            None => config.providers.push((p.key.clone(), provider)),
                        }
                    }
                }
                "tools" => config.tools = fields.tools(m)?,
                "gateway" => config.gateway = fields.gateway(m)?,
                _ => {} // other programs' sections (nanobot's channels, ...)
            }
        }
        Ok(config)
    }

    /// Turns the file plus `--model` and the environment into what one turn needs.
    pub fn settings(
        &self,
        model_override: Option<&str>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Settings, Error> {
        let defaults = &self.agents.defaults;
        let (provider, model, rule) =
            crate::provider::registry::select(self, model_override, &env)?;
        if let Some(t) = &defaults.temperature {
            if !(0.0..=2.0).contains(&t.value()) {
                return Err(Error::Config(format!(
                    "agents.defaults.temperature is {}; use a value from 0 to 2",
                    t.as_str()
                )));
            }
        }
        Ok(Settings {
            provider,
            model,
            rule,
            max_tokens: defaults.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
            temperature: defaults.temperature.clone(),
            system_prompt: defaults.system_prompt.clone(),
            memory_window: defaults.memory_window.unwrap_or(DEFAULT_MEMORY_WINDOW),
        })
    }

    /// Settings that do not do what they may seem to, said plainly (for
    /// `weft config check`).
    pub fn notes(&self) -> Vec<&'static str> {
        let t = &self.tools;
        let mut notes = Vec::new();
        if t.restrict_to_workspace == Some(false) {
            notes.push(
                "tools.restrictToWorkspace is false, which clawft does not obey: \
                 the file tools are always confined to the workspace",
            );
        }
        // The rest is about exec, which only native builds have.
        if !crate::tools::exec::AVAILABLE {
            return notes;
        }
        if t.exec_enable == Some(true) && t.exec_allow.as_ref().is_none_or(Vec::is_empty) {
            notes.push(
                "tools.exec.enable is true but tools.exec.allow names no program, \
                 so exec is not offered",
            );
        }
        /// Programs that run code they are given or find in the workspace.
        const RUNNERS: [&str; 36] = [
            "sh", "bash", "dash", "zsh", "ksh", "fish", "busybox", "env", "xargs", "find", "awk",
            "gawk", "sed", "tar", "rsync", "zip", "git", "cargo", "make", "npm", "npx", "yarn",
            "pnpm", "pip", "uv", "node", "deno", "bun", "python", "python3", "perl", "ruby", "php",
            "lua", "java", "go",
        ];
        let allowed = t.exec_allow.iter().flatten();
        if t.exec_enable == Some(true) && allowed.clone().any(|p| RUNNERS.contains(&p.as_str())) {
            notes.push(
                "tools.exec.allow names a program that runs code it is given or finds in \
                 the workspace (a shell, git, a build tool, an interpreter): the model can \
                 then run anything your user can",
            );
        }
        notes
    }

    /// The tool settings, with the workspace resolved: the configured one
    /// (`~` is `$HOME`, a relative path is under home), else
    /// `<home>/workspace`; under WASI an absolute guest path, else
    /// `/workspace`, which the host preopens.
    pub fn tool_settings(
        &self,
        home: &Home,
        env: impl Fn(&str) -> Option<String>,
    ) -> crate::tools::ToolSettings {
        use crate::tools as t;
        let d = &self.agents.defaults;
        let c = &self.tools;
        let configured = d.workspace.as_deref();
        let workspace = if cfg!(target_os = "wasi") {
            match configured {
                Some(path) if path.starts_with('/') => path.into(),
                _ => std::path::PathBuf::from("/workspace"),
            }
        } else {
            match configured {
                None => home.root().join("workspace"),
                Some(path) if path == "~" || path.starts_with("~/") => {
                    match env("HOME").filter(|h| !h.is_empty()) {
                        Some(user) => {
                            std::path::Path::new(&user).join(path[1..].trim_start_matches('/'))
                        }
                        None => home.root().join("workspace"),
                    }
                }
                Some(path) => home.root().join(path), // an absolute path replaces the root
            }
        };
        t::ToolSettings {
            workspace,
            home: home.root().to_owned(),
            files: c.file_enable.unwrap_or(true),
            web: c.web_enable.unwrap_or(false),
            exec: c.exec_enable.unwrap_or(false),
            exec_in_gateway: c.exec_gateway.unwrap_or(false),
            web_in_gateway: c.web_gateway.unwrap_or(false),
            exec_allow: c.exec_allow.clone().unwrap_or_default(),
            exec_timeout: Duration::from_secs(
                c.exec_timeout_secs.unwrap_or(t::DEFAULT_EXEC_TIMEOUT_SECS),
            ),
            disabled: c.disabled.clone().unwrap_or_default(),
            web_timeout: Duration::from_secs(
                c.web_timeout_secs.unwrap_or(t::DEFAULT_WEB_TIMEOUT_SECS),
            ),
            web_max_bytes: c.web_max_bytes.unwrap_or(t::DEFAULT_WEB_MAX_BYTES),
            max_iterations: d.max_tool_iterations.unwrap_or(t::DEFAULT_MAX_ITERATIONS),
            max_result_chars: d
                .max_tool_result_chars
                .unwrap_or(t::DEFAULT_MAX_RESULT_CHARS),
        }
    }
}

/// Reads typed fields out of the parsed file; an error names the field's
/// path (as the user spelled it) and where its value is.
struct Fields<'t> {
    text: &'t [u8],
}

impl Fields<'_> {
    fn wrong(&self, m: &Member, path: &str, wanted: &str) -> String {
        let (line, column) = json::position(self.text, m.offset);
        format!(
            "line {line}, column {column}: {path} must be {wanted}, not {}",
            m.value.kind()
        )
    }

    fn object<'j>(&self, m: &'j Member, path: &str) -> Result<&'j [Member], String> {
        match &m.value {
            Json::Null => Ok(&[]),
            value => value
                .as_object()
                .ok_or_else(|| self.wrong(m, path, "an object")),
        }
    }

    /// A string; null and blank count as not set (nanobot writes `""`).
    fn text(&self, m: &Member, path: &str) -> Result<Option<String>, String> {
        match &m.value {
            Json::Null => Ok(None),
            Json::String(s) if s.trim().is_empty() => Ok(None),
            Json::String(s) => Ok(Some(s.clone())),
            _ => Err(self.wrong(m, path, "a string")),
        }
    }

    /// A whole number within `range`; null counts as not set.
    fn whole<T: TryFrom<u64>>(
        &self,
        m: &Member,
        path: &str,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<Option<T>, String> {
        if m.value.is_null() {
            return Ok(None);
        }
        match m
            .value
            .as_u64()
            .filter(|n| range.contains(n))
            .map(T::try_from)
        {
            Some(Ok(n)) => Ok(Some(n)),
            _ => {
                let (line, column) = json::position(self.text, m.offset);
                let got = match &m.value {
                    Json::Number(n) => n.to_string(),
                    other => other.kind().to_owned(),
                };
                Err(format!(
                    "line {line}, column {column}: {path} must be a whole number from {} to {}, not {got}",
                    range.start(),
                    range.end()
                ))
            }
        }
    }

    /// A value of type `T` (a flag, a list of strings); null counts as not
    /// set.
    fn value<T: json::FromJson>(&self, m: &Member, path: &str) -> Result<Option<T>, String> {
        match &m.value {
            Json::Null => Ok(None),
            value => T::from_json(value)
                .map(Some)
                .ok_or_else(|| self.wrong(m, path, T::WANTED)),
        }
    }

    fn defaults(&self, section: &Member) -> Result<AgentDefaults, String> {
        let mut d = AgentDefaults::default();
        for m in self.object(section, "agents.defaults")? {
            let path = format!("agents.defaults.{}", m.key);
            match snake_case(&m.key).as_str() {
                "model" => d.model = self.text(m, &path)?,
                "provider" => d.provider = self.text(m, &path)?,
                "max_tokens" => {
                    d.max_tokens = self.whole(m, &path, 1..=MAX_TOKENS)?;
                }
                "memory_window" => {
                    d.memory_window = self.whole(m, &path, 0..=MAX_MEMORY_WINDOW)?;
                }
                "system_prompt" => d.system_prompt = self.text(m, &path)?,
                "workspace" => d.workspace = self.text(m, &path)?,
                "max_tool_iterations" => {
                    d.max_tool_iterations = self.whole(m, &path, 1..=MAX_TOOL_ITERATIONS)?;
                }
                "max_tool_result_chars" => {
                    d.max_tool_result_chars = self.whole(m, &path, 100..=MAX_TOOL_RESULT_CHARS)?;
                }
                "temperature" => {
                    d.temperature = match &m.value {
                        Json::Null => None,
                        Json::Number(n) => Some(Temperature(n.clone())),
                        _ => return Err(self.wrong(m, &path, "a number")),
                    }
                }
                _ => {}
            }
        }
        Ok(d)
    }

    fn tools(&self, section: &Member) -> Result<ToolsConfig, String> {
        let mut t = ToolsConfig::default();
        for m in self.object(section, "tools")? {
            let path = format!("tools.{}", m.key);
            match snake_case(&m.key).as_str() {
                "restrict_to_workspace" => t.restrict_to_workspace = self.value(m, &path)?,
                "disabled" => t.disabled = self.value(m, &path)?,
                group @ ("file" | "web" | "exec") => {
                    for f in self.object(m, &path)? {
                        let path = format!("{path}.{}", f.key);
                        match (group, snake_case(&f.key).as_str()) {
                            ("file", "enable") => t.file_enable = self.value(f, &path)?,
                            ("web", "enable") => t.web_enable = self.value(f, &path)?,
                            ("web", "timeout" | "timeout_secs") => {
                                t.web_timeout_secs = self.whole(f, &path, 1..=MAX_TIMEOUT_SECS)?;
                            }
                            ("web", "max_bytes") => {
                                t.web_max_bytes = self.whole(f, &path, 1..=MAX_WEB_BYTES)?;
                            }
                            ("exec", "enable") => t.exec_enable = self.value(f, &path)?,
                            ("exec", "allow") => t.exec_allow = self.value(f, &path)?,
                            ("exec", "timeout" | "timeout_secs") => {
                                t.exec_timeout_secs = self.whole(f, &path, 1..=MAX_TIMEOUT_SECS)?;
                            }
                            ("exec", "gateway") => t.exec_gateway = self.value(f, &path)?,
                            ("web", "gateway") => t.web_gateway = self.value(f, &path)?,
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(t)
    }

    fn gateway(&self, section: &Member) -> Result<GatewayConfig, String> {
        let mut g = GatewayConfig::default();
        for m in self.object(section, "gateway")? {
            let path = format!("gateway.{}", m.key);
            match snake_case(&m.key).as_str() {
                "tokens" => g.tokens = self.value(m, &path)?.unwrap_or_default(),
                "models" => g.models = self.value(m, &path)?.unwrap_or_default(),
                "max_body_bytes" => g.max_body_bytes = self.whole(m, &path, 1024..=(256 << 20))?,
                "max_concurrent_turns" => {
                    g.max_concurrent_turns = self.whole(m, &path, 1..=10_000)?;
                }
                "max_connections" => g.max_connections = self.whole(m, &path, 1..=100_000)?,
                "io_timeout_secs" => g.io_timeout_secs = self.whole(m, &path, 1..=3600)?,
                "grace_secs" => g.grace_secs = self.whole(m, &path, 0..=3600)?,
                _ => {} // nanobot's host, port, heartbeat: not ours
            }
        }
        Ok(g)
    }

    fn provider(&self, section: &Member) -> Result<ProviderConfig, String> {
        let mut p = ProviderConfig::default();
        let name = &section.key;
        for m in self.object(section, &format!("providers.{name}"))? {
            let path = format!("providers.{name}.{}", m.key);
            match snake_case(&m.key).as_str() {
                "api_key" => p.api_key = self.text(m, &path)?.map(Secret::new),
                "api_key_env" => p.api_key_env = self.text(m, &path)?,
                "api_base" => p.api_base = self.text(m, &path)?,
                "timeout_secs" => {
                    p.timeout_secs = self.whole(m, &path, 1..=MAX_TIMEOUT_SECS)?;
                }
                "connect_timeout_secs" => {
                    p.connect_timeout_secs = self.whole(m, &path, 1..=MAX_TIMEOUT_SECS)?;
                }
                "max_tokens_field" => {
                    p.max_tokens_field = match self.text(m, &path)?.as_deref() {
                        None => None,
                        Some("max_tokens") => Some(TokenLimitField::MaxTokens),
                        Some("max_completion_tokens") => Some(TokenLimitField::MaxCompletionTokens),
                        Some(_) => {
                            return Err(self.wrong(
                                m,
                                &path,
                                "\"max_tokens\" or \"max_completion_tokens\"",
                            ))
                        }
                    }
                }
                "max_retries" => {
                    p.max_retries = self.whole(m, &path, 0..=u64::from(MAX_RETRIES))?;
                }
                "extra_headers" => {
                    let mut headers = BTreeMap::new();
                    for h in self.object(m, &path)? {
                        let header_path = format!("{path}.{}", h.key);
                        let value = match &h.value {
                            Json::String(v) => v.clone(),
                            _ => return Err(self.wrong(h, &header_path, "a string")),
                        };
                        headers.insert(h.key.clone(), value);
                    }
                    p.extra_headers = Some(headers);
                }
                "protocol" | "api_type" => {
                    p.protocol = match self.text(m, &path)?.as_deref() {
                        None => None,
                        Some(
                            "openai" | "openai-compatible" | "openai_compatible" | "auto"
                            | "chat_completions",
                        ) => Some(Ok(Protocol::OpenAi)),
                        Some("anthropic") => Some(Ok(Protocol::Anthropic)),
                        Some(other) if m.key != "protocol" => Some(Err(other.to_owned())),
                        Some(_) => return Err(self.wrong(m, &path, "\"openai\" or \"anthropic\"")),
                    }
                }
                _ => {}
            }
        }
        Ok(p)
    }
}

/// A field name as snake_case: nanobot writes camelCase (`maxTokens`),
/// clawft documents snake_case (`max_tokens`); both mean the same field.
pub fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// An HTTP header name: a non-empty token (RFC 9110).
pub(crate) fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// An HTTP header value we are willing to send: printable, no line breaks,
/// no NUL, no leading or trailing space.
pub(crate) fn is_header_value(value: &str) -> bool {
    value.trim() == value && !value.chars().any(|c| c.is_control() && c != '\t')
}

fn read_bounded(path: &std::path::Path) -> std::io::Result<String> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let mut text = String::new();
    file.take(MAX_CONFIG_BYTES + 1).read_to_string(&mut text)?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(std::io::Error::other(format!(
            "larger than the {MAX_CONFIG_BYTES}-byte limit for a config file"
        )));
    }
    Ok(text)
}

/// Everything one turn needs, resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    pub provider: Provider,
    /// The model name as the provider knows it (prefix stripped).
    pub model: String,
    /// Which rule chose the provider.
    pub rule: crate::provider::registry::Rule,
    pub max_tokens: u32,
    pub temperature: Option<Temperature>,
    pub system_prompt: Option<String>,
    /// How many past messages go with each request.
    pub memory_window: usize,
}

impl Settings {
    /// `provider/model`, as the user wrote it.
    pub fn qualified_model(&self) -> String {
        format!("{}/{}", self.provider.name, self.model)
    }
}

/// A provider, resolved from built-in knowledge and the config file.
#[derive(Clone)]
pub struct Provider {
    pub name: String,
    pub protocol: Protocol,
    /// Base URL including the version path, without a trailing slash.
    pub api_base: String,
    pub api_key: Option<Secret>,
    pub key_source: KeySource,
    /// Whether requests without a key are pointless (false for local servers).
    pub key_required: bool,
    /// How the key is sent.
    pub auth: crate::provider::registry::Auth,
    pub extra_headers: Vec<(String, String)>,
    pub timeouts: Timeouts,
    pub max_tokens_field: TokenLimitField,
    /// Retries after a failed attempt.
    pub max_retries: u32,
}

/// The request field that carries the reply limit. OpenAI's own API
/// (and Azure OpenAI) want `max_completion_tokens`, which their newer
/// models require; compatible servers want `max_tokens`. Chosen by the
/// endpoint, or set with `max_tokens_field`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenLimitField {
    MaxTokens,
    MaxCompletionTokens,
}

impl TokenLimitField {
    pub fn name(self) -> &'static str {
        match self {
            TokenLimitField::MaxTokens => "max_tokens",
            TokenLimitField::MaxCompletionTokens => "max_completion_tokens",
        }
    }

    /// What the server at `host` wants: OpenAI's and Azure's hosts the
    /// newer field, every other server the classic one.
    pub fn for_host(host: &str) -> TokenLimitField {
        let host = host.to_ascii_lowercase();
        let openai = host == "api.openai.com"
            || host.ends_with(".openai.azure.com")
            || host.ends_with(".cognitiveservices.azure.com");
        if openai {
            TokenLimitField::MaxCompletionTokens
        } else {
            TokenLimitField::MaxTokens
        }
    }
}

impl fmt::Debug for ProviderConfig {
    /// Like a derived Debug, with credential headers hidden (the key hides itself).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers = self.extra_headers.as_ref().map(|h| shown_headers(h.iter()));
        f.debug_struct("ProviderConfig")
            .field("api_key", &self.api_key)
            .field("api_key_env", &self.api_key_env)
            .field("api_base", &self.api_base)
            .field("extra_headers", &headers)
            .field("timeout_secs", &self.timeout_secs)
            .field("connect_timeout_secs", &self.connect_timeout_secs)
            .field("max_tokens_field", &self.max_tokens_field)
            .field("max_retries", &self.max_retries)
            .field("protocol", &self.protocol)
            .finish()
    }
}

/// Header names with their values as [`shown_value`] shows them.
fn shown_headers<'a>(
    headers: impl Iterator<Item = (&'a String, &'a String)>,
) -> Vec<(&'a str, &'a str)> {
    headers
        .map(|(n, v)| (n.as_str(), shown_value(n, v)))
        .collect()
}

impl fmt::Debug for Provider {
    /// The key's source, never the key; credential headers hidden.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers = shown_headers(self.extra_headers.iter().map(|(n, v)| (n, v)));
        f.debug_struct("Provider")
            .field("name", &self.name)
            .field("protocol", &self.protocol)
            .field("api_base", &self.api_base)
            .field("key_source", &self.key_source)
            .field("key_required", &self.key_required)
            .field("extra_headers", &headers)
            .field("timeouts", &self.timeouts)
            .field("max_tokens_field", &self.max_tokens_field)
            .field("max_retries", &self.max_retries)
            .finish()
    }
}

impl Provider {
    /// Every credential this provider is configured with (the key, and
    /// credential headers such as Azure's `api-key`), to remove from
    /// anything it says before anyone sees it.
    pub fn redactions(&self) -> Redactions {
        let mut redactions = Redactions::new();
        if let Some(key) = &self.api_key {
            redactions.add(key.expose());
        }
        for (name, value) in &self.extra_headers {
            redactions.add_header(name, value);
        }
        redactions
    }

    /// The key, or the config error that tells the user how to supply one.
    pub fn require_key(&self) -> Result<Option<&Secret>, Error> {
        match (&self.api_key, self.key_required) {
            (Some(key), _) => Ok(Some(key)),
            (None, false) => Ok(None),
            (None, true) => Err(Error::Config(format!(
                "no API key for provider '{}': {}",
                self.name,
                match &self.key_source {
                    KeySource::Missing(Some(var)) => format!(
                        "set {var} or providers.{}.api_key in config.json",
                        self.name
                    ),
                    _ => format!("set providers.{}.api_key in config.json", self.name),
                }
            ))),
        }
    }
}

/// Where the API key came from; shown by `config show` instead of the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Config,
    Env(String),
    /// No key; the variable that was looked at, if any.
    Missing(Option<String>),
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Config => f.write_str("set in config.json"),
            KeySource::Env(var) => write!(f, "set from ${var}"),
            KeySource::Missing(Some(var)) => write!(f, "not set (${var} is empty)"),
            KeySource::Missing(None) => f.write_str("not set"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn an_empty_file_means_defaults() {
        let config = Config::parse("{}").unwrap();
        let s = config
            .settings(None, |v| (v == "OPENAI_API_KEY").then(|| "sk-test".into()))
            .unwrap();
        assert_eq!(s.qualified_model(), DEFAULT_MODEL);
        assert_eq!(s.provider.api_base, "https://api.openai.com/v1");
        assert_eq!(
            s.provider.key_source,
            KeySource::Env("OPENAI_API_KEY".into())
        );
        assert_eq!(s.provider.api_key.as_ref().unwrap().expose(), "sk-test");
        assert_eq!(s.memory_window, DEFAULT_MEMORY_WINDOW);
        assert_eq!(
            s.provider.timeouts,
            Timeouts {
                connect: Duration::from_secs(10),
                response: Duration::from_secs(600)
            }
        );
    }

    #[test]
    fn nanobot_camel_case_files_work() {
        let config = Config::parse(
            r#"{
              "agents": {"defaults": {"model": "openrouter/anthropic/claude-3.5-sonnet",
                 "maxTokens": 512, "temperature": 0.2, "memoryWindow": 8,
                 "systemPrompt": "Be brief.", "maxToolIterations": 20, "workspace": "~/x"}},
              "providers": {
                 "openrouter": {"apiKey": "sk-or", "extraHeaders": {"X-Title": "clawft"}},
                 "openai": {"apiKey": "", "apiBase": null}
              },
              "channels": {"telegram": {"enabled": false}}
            }"#,
        )
        .unwrap();
        let s = config.settings(None, no_env).unwrap();
        assert_eq!(s.provider.name, "openrouter");
        assert_eq!(s.model, "anthropic/claude-3.5-sonnet");
        assert_eq!(s.provider.api_base, "https://openrouter.ai/api/v1");
        assert_eq!(s.max_tokens, 512);
        assert_eq!(s.temperature.as_ref().map(Temperature::as_str), Some("0.2"));
        assert_eq!(s.memory_window, 8);
        assert_eq!(s.system_prompt.as_deref(), Some("Be brief."));
        assert_eq!(s.provider.key_source, KeySource::Config);
        assert_eq!(
            s.provider.extra_headers,
            vec![("X-Title".into(), "clawft".into())]
        );

        // The empty apiKey for openai counts as unset: the environment is asked.
        let s = config.settings(Some("openai/gpt-4o"), no_env).unwrap();
        assert_eq!(
            s.provider.key_source,
            KeySource::Missing(Some("OPENAI_API_KEY".into()))
        );
        let err = s.provider.require_key().unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("set OPENAI_API_KEY"), "{err}");
    }

    #[test]
    #[cfg(not(target_os = "wasi"))]
    fn a_workspace_under_tilde_needs_a_home_that_is_set() {
        let config = Config::parse(r#"{"agents":{"defaults":{"workspace":"~/proj"}}}"#).unwrap();
        let dir = crate::test_support::scratch();
        let home = Home::at(dir.path(), crate::home::HomeSource::ClawftHome);
        let with_home =
            |value: &'static str| move |name: &str| (name == "HOME").then(|| value.to_owned());
        let tools = config.tool_settings(&home, with_home("/home/ada"));
        assert_eq!(tools.workspace, std::path::Path::new("/home/ada/proj"));
        // An empty HOME is no home (as for finding clawft's home), never a
        // workspace relative to wherever weft was started.
        let tools = config.tool_settings(&home, with_home(""));
        assert_eq!(tools.workspace, dir.path().join("workspace"));
    }

    #[test]
    fn a_custom_provider_needs_a_base_and_a_protocol() {
        let config = Config::parse(
            r#"{"providers": {
                 "local": {"api_base": "http://127.0.0.1:8000/v1/", "protocol": "openai"},
                 "nobase": {"protocol": "anthropic"},
                 "noproto": {"api_base": "http://x/v1"}
            }}"#,
        )
        .unwrap();
        let s = config.settings(Some("local/qwen"), no_env).unwrap();
        assert_eq!(s.provider.api_base, "http://127.0.0.1:8000/v1");
        assert_eq!(s.provider.protocol, Protocol::OpenAi);
        assert!(s.provider.require_key().unwrap().is_none());

        for (model, words) in [
            ("nobase/m", "api_base"),
            ("noproto/m", "protocol"),
            // A prefix that names no provider is part of the model's name,
            // and no provider has a key to send it to.
            ("mystery/m", "names no provider clawft knows"),
            ("no-prefix", "names no provider clawft knows"),
        ] {
            let err = config.settings(Some(model), no_env).unwrap_err();
            assert!(err.to_string().contains(words), "{model}: {err}");
            assert_eq!(err.exit_code(), 2);
        }
    }

    #[test]
    fn malformed_keys_headers_and_bases_are_config_errors() {
        // Found in review: these went out as requests, failed as "connection
        // failed" and were retried.
        let key = |k: &str| {
            Config::parse("{}")
                .unwrap()
                .settings(None, |_| Some(k.into()))
        };
        assert!(key("sk-abc\n").is_ok(), "a trailing newline is trimmed");
        let err = key("sk-a\rbc").unwrap_err();
        assert!(err.to_string().contains("control characters"), "{err}");
        for (config, words) in [
            (
                r#"{"providers":{"openai":{"extraHeaders":{"Bad Header":"x"}}}}"#,
                "'Bad Header'",
            ),
            (
                r#"{"providers":{"openai":{"extraHeaders":{"X-A":"a\nb"}}}}"#,
                "'X-A'",
            ),
            (
                r#"{"providers":{"openai":{"apiBase":"https://h/v1?x=1"}}}"#,
                "query",
            ),
            (
                r#"{"providers":{"openai":{"apiBase":"https://h/v1#f"}}}"#,
                "query",
            ),
        ] {
            let err = Config::parse(config)
                .unwrap()
                .settings(None, |_| Some("k".into()))
                .unwrap_err();
            assert!(err.to_string().contains(words), "{err}");
            assert_eq!(err.exit_code(), 2);
        }
    }

    #[test]
    fn api_key_env_names_the_variable() {
        let config =
            Config::parse(r#"{"providers": {"anthropic": {"api_key_env": "MY_CLAUDE_KEY"}}}"#)
                .unwrap();
        let s = config
            .settings(Some("anthropic/claude-x"), |v| {
                (v == "MY_CLAUDE_KEY").then(|| "sk-ant".into())
            })
            .unwrap();
        assert_eq!(
            s.provider.key_source,
            KeySource::Env("MY_CLAUDE_KEY".into())
        );
        assert_eq!(s.provider.protocol, Protocol::Anthropic);
    }

    #[test]
    fn syntax_errors_name_line_and_column() {
        let err = Config::parse("{\n  \"agents\": {,}\n}").unwrap_err();
        assert!(err.starts_with("line 2, column 14:"), "{err}");
        let err = Config::parse(r#"{"agents": {"defaults": {"maxTokens": "many"}}}"#).unwrap_err();
        assert_eq!(
            err,
            "line 1, column 39: agents.defaults.maxTokens must be a whole number from 1 to 1000000, not a string"
        );
        // Found in review: a huge timeout crashed the native HTTP client.
        for (field, value, words) in [
            (
                "timeout_secs",
                "18446744073709551615",
                "from 1 to 86400, not 18446744073709551615",
            ),
            ("timeout_secs", "0", "from 1 to 86400, not 0"),
            ("max_retries", "11", "from 0 to 10, not 11"),
        ] {
            let text = format!("{{\"providers\": {{\"x\": {{\"{field}\": {value}}}}}}}");
            let err = Config::parse(&text).unwrap_err();
            assert!(err.contains(words), "{err}");
        }
        let err =
            Config::parse(r#"{"agents": {"defaults": {"memoryWindow": 99999}}}"#).unwrap_err();
        assert!(err.contains("from 0 to 10000"), "{err}");
        let err = Config::parse("{\"providers\": {\"x\": {\"protocol\": \"grpc\"}}}").unwrap_err();
        assert!(
            err.contains("providers.x.protocol must be \"openai\" or \"anthropic\""),
            "{err}"
        );
        assert!(Config::parse("[]").unwrap_err().contains("one JSON object"));
    }

    #[test]
    fn timeouts_split_into_connect_and_response_and_old_files_keep_working() {
        let timeouts = |text: &str| {
            Config::parse(text)
                .unwrap()
                .settings(Some("openai/m"), |_| Some("k".into()))
                .unwrap()
                .provider
                .timeouts
        };
        let secs = |c, r| Timeouts {
            connect: Duration::from_secs(c),
            response: Duration::from_secs(r),
        };
        // A file from before the split: its timeout_secs still bounds every
        // phase it used to, connecting included.
        assert_eq!(
            timeouts(r#"{"providers":{"openai":{"timeout_secs":5}}}"#),
            secs(5, 5)
        );
        assert_eq!(
            timeouts(r#"{"providers":{"openai":{"timeoutSecs":120}}}"#),
            secs(10, 120)
        );
        assert_eq!(
            timeouts(r#"{"providers":{"openai":{"connectTimeoutSecs":3}}}"#),
            secs(3, 600)
        );
    }

    #[test]
    fn the_token_limit_field_follows_the_endpoint_or_the_config() {
        let field = |model: &str, text: &str| {
            Config::parse(text)
                .unwrap()
                .settings(Some(model), |_| Some("k".into()))
                .unwrap()
                .provider
                .max_tokens_field
        };
        use TokenLimitField::*;
        assert_eq!(field("openai/gpt-5", "{}"), MaxCompletionTokens);
        assert_eq!(field("groq/llama", "{}"), MaxTokens);
        // Found in review: a custom provider pointed at OpenAI or Azure sent
        // max_tokens, which newer models refuse.
        let custom = r#"{"providers":{"mine":{"apiBase":"https://api.openai.com/v1","protocol":"openai"},
            "azure":{"apiBase":"https://x.openai.azure.com/openai/deployments/d","protocol":"openai"},
            "local":{"apiBase":"http://127.0.0.1:8000/v1","protocol":"openai","maxTokensField":"max_completion_tokens"},
            "proxy":{"apiBase":"https://api.openai.com/v1","protocol":"openai","max_tokens_field":"max_tokens"}}}"#;
        assert_eq!(field("mine/gpt-5", custom), MaxCompletionTokens);
        assert_eq!(field("azure/gpt-5", custom), MaxCompletionTokens);
        assert_eq!(field("local/m", custom), MaxCompletionTokens);
        assert_eq!(field("proxy/m", custom), MaxTokens);
        let err = Config::parse(r#"{"providers":{"x":{"maxTokensField":"limit"}}}"#).unwrap_err();
        assert!(
            err.contains("\"max_tokens\" or \"max_completion_tokens\""),
            "{err}"
        );
    }

    #[test]
    fn settings_that_would_widen_the_tools_are_noted_not_obeyed() {
        let config = Config::parse(
            r#"{"tools":{"restrictToWorkspace":false,"exec":{"enable":true,"timeout":60}}}"#,
        )
        .unwrap();
        let notes = config.notes();
        let exec = crate::tools::exec::AVAILABLE;
        assert_eq!(notes.len(), if exec { 2 } else { 1 }, "{notes:?}");
        assert!(notes[0].contains("does not obey"));
        let dir = crate::test_support::scratch();
        let home = Home::at(dir.path(), crate::home::HomeSource::ClawftHome);
        let tools = config.tool_settings(&home, no_env);
        assert!(tools.exec && tools.exec_allow.is_empty() && !tools.web);
        let offered = crate::tools::Toolbox::new(&tools, crate::tools::Caller::Cli).specs();
        assert!(offered.iter().all(|t| t.name != "exec"));
        assert!(Config::parse("{}").unwrap().notes().is_empty());
        let runs_code = |allow: &str| {
            let text = format!(r#"{{"tools":{{"exec":{{"enable":true,"allow":{allow}}}}}}}"#);
            Config::parse(&text)
                .unwrap()
                .notes()
                .iter()
                .any(|n| n.contains("anything"))
        };
        assert_eq!(runs_code(r#"["ls", "git"]"#), exec);
        assert!(!runs_code(r#"["ls", "wc"]"#));
    }

    #[test]
    fn a_byte_order_mark_is_ignored() {
        // Found in review: "line 1, column 1: expected a value".
        let config =
            Config::parse("\u{feff}{\"agents\":{\"defaults\":{\"maxTokens\":7}}}").unwrap();
        assert_eq!(config.agents.defaults.max_tokens, Some(7));
    }

    #[test]
    fn every_credential_is_redacted_from_what_a_provider_says() {
        let config = Config::parse(
            r#"{"providers":{"azure":{"apiBase":"https://x.openai.azure.com/v1","protocol":"openai",
                "apiKey":"x","extraHeaders":{"api-key":"azure-key-123456","X-Title":"clawft-title"}}}}"#,
        )
        .unwrap();
        let s = config.settings(Some("azure/gpt"), no_env).unwrap();
        let said = "bad api-key azure-key-123456 for mistral, app clawft-title";
        // The one-letter placeholder key is left alone rather than cutting words.
        assert_eq!(
            s.provider.redactions().redact(said),
            "bad api-key [redacted] for mistral, app clawft-title"
        );
    }

    #[test]
    fn secrets_do_not_debug_print() {
        let config = Config::parse(
            r#"{"providers": {"openai": {"apiKey": "sk-hidden",
                "extraHeaders": {"X-Api-Key": "sk-hidden2", "X-Title": "shown"}}}}"#,
        )
        .unwrap();
        let s = config.settings(None, no_env).unwrap();
        // Found in review: Request and Provider printed keys and credential headers.
        let ask = crate::provider::Ask {
            history: &[],
            tools: &[],
            may_call: false,
            stream: false,
        };
        let request = crate::provider::request(&s, &ask).unwrap();
        let shown = format!("{config:?} {s:?} {request:?}");
        assert!(!shown.contains("sk-hidden"), "{shown}");
        assert!(shown.contains("shown"), "{shown}");
    }

    #[test]
    fn out_of_range_temperature_is_a_config_error() {
        let config = Config::parse(r#"{"agents": {"defaults": {"temperature": 7}}}"#).unwrap();
        let err = config.settings(None, no_env).unwrap_err();
        assert!(err.to_string().contains("temperature"), "{err}");
    }
}
