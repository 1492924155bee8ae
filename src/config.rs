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
use crate::json::{self, Json, Member};
use crate::provider::{builtin, Protocol};

/// The model used when neither the config nor `--model` names one.
pub const DEFAULT_MODEL: &str = "openai/gpt-4o-mini";
pub const DEFAULT_MAX_TOKENS: u32 = 4096;
pub const DEFAULT_MEMORY_WINDOW: usize = 50;
pub const DEFAULT_TIMEOUT_SECS: u64 = 30;
/// The largest values a config may ask for: bounds, not suggestions.
pub const MAX_RETRIES: u32 = 10;
pub const MAX_TOKENS: u64 = 1_000_000;
pub const MAX_MEMORY_WINDOW: u64 = 10_000;
pub const MAX_TIMEOUT_SECS: u64 = 86_400;
/// A config file larger than this is refused rather than read.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// The parsed `config.json`. Every field is optional.
#[derive(Debug, Default)]
pub struct Config {
    pub agents: Agents,
    pub providers: BTreeMap<String, ProviderConfig>,
}

#[derive(Debug, Default)]
pub struct Agents {
    pub defaults: AgentDefaults,
}

#[derive(Debug, Default)]
pub struct AgentDefaults {
    pub model: Option<String>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<Temperature>,
    pub system_prompt: Option<String>,
    pub memory_window: Option<usize>,
}

/// A sampling temperature, kept as the decimal text the user wrote: it is
/// sent exactly as written, and the build needs no float formatting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Temperature(String);

impl Temperature {
    /// The number as written, e.g. `0.7`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Its value, for range checks.
    pub fn value(&self) -> f64 {
        json::number_value(&self.0).unwrap_or(f64::NAN)
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
    /// Retries after a failed attempt (see [`crate::retry`]); 0 disables them.
    pub max_retries: Option<u32>,
    /// Wire protocol of a provider clawft does not know: `openai` or `anthropic`.
    pub protocol: Option<Protocol>,
}

/// An API key. It has no `Display`, and `Debug` hides it, so it cannot slip
/// into a message by accident; [`Secret::expose`] is the one way out.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The key itself, for the one header that carries it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
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
                        config.providers.insert(p.key.clone(), provider);
                    }
                }
                _ => {} // other tools' sections (nanobot's channels, tools, ...)
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
        let model = model_override
            .or(defaults.model.as_deref())
            .unwrap_or(DEFAULT_MODEL);
        let (provider_name, model_name) = split_model(model)?;
        let provider = self.provider(provider_name, env)?;
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
            model: model_name.to_owned(),
            max_tokens: defaults.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
            temperature: defaults.temperature.clone(),
            system_prompt: defaults.system_prompt.clone(),
            memory_window: defaults.memory_window.unwrap_or(DEFAULT_MEMORY_WINDOW),
        })
    }

    fn provider(
        &self,
        name: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Provider, Error> {
        let configured = self.providers.get(name);
        let known = builtin(name);
        let unconfigured = ProviderConfig::default();
        let Some(section) = configured.or(known.map(|_| &unconfigured)) else {
            return Err(Error::Config(format!(
                "unknown provider '{name}': add providers.{name} with api_base and protocol \
                 (\"openai\" or \"anthropic\"), or use one of {}",
                crate::provider::BUILTINS
                    .iter()
                    .map(|b| b.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };

        let protocol = match (section.protocol, known) {
            (Some(p), _) => p,
            (None, Some(b)) => b.protocol,
            (None, None) => {
                return Err(Error::Config(format!(
                    "providers.{name} needs \"protocol\": \"openai\" or \"anthropic\""
                )))
            }
        };
        let api_base = match (&section.api_base, known) {
            (Some(base), _) => base.trim_end_matches('/').to_owned(),
            (None, Some(b)) => b.api_base.to_owned(),
            (None, None) => {
                return Err(Error::Config(format!(
                    "providers.{name} needs \"api_base\", for example \"https://host/v1\""
                )))
            }
        };
        crate::http::Url::parse(&api_base)
            .map_err(|e| Error::Config(format!("providers.{name}.api_base: {e}")))?;
        if api_base.contains(['?', '#']) {
            // The endpoint path is appended: a query or fragment would swallow it.
            return Err(Error::Config(format!(
                "providers.{name}.api_base must not have a query or fragment ('?', '#')"
            )));
        }

        let (api_key, key_source) = if let Some(key) = &section.api_key {
            (Some(key.clone()), KeySource::Config)
        } else {
            let var = section
                .api_key_env
                .as_deref()
                .or(known.and_then(|b| b.key_env));
            match var {
                Some(var) => match env(var).filter(|v| !v.trim().is_empty()) {
                    // A key pasted with a trailing newline is still the key.
                    Some(key) => (
                        Some(Secret(key.trim().to_owned())),
                        KeySource::Env(var.to_owned()),
                    ),
                    None => (None, KeySource::Missing(Some(var.to_owned()))),
                },
                None => (None, KeySource::Missing(None)),
            }
        };
        let key_required = known.is_some_and(|b| b.needs_key);

        if let Some(key) = &api_key {
            if !is_header_value(key.expose()) {
                return Err(Error::Config(format!(
                    "the API key for provider '{name}' contains spaces or control characters"
                )));
            }
        }
        let mut extra_headers = Vec::new();
        for (header, value) in section.extra_headers.iter().flatten() {
            if !is_header_name(header) || !is_header_value(value) {
                return Err(Error::Config(format!(
                    "providers.{name}.extra_headers: '{header}' is not a valid HTTP header \
                     (names are letters, digits and -; values are one line)"
                )));
            }
            extra_headers.push((header.clone(), value.clone()));
        }
        let timeout_secs = section.timeout_secs.unwrap_or(DEFAULT_TIMEOUT_SECS);
        Ok(Provider {
            name: name.to_owned(),
            protocol,
            api_base,
            api_key,
            key_source,
            key_required,
            extra_headers,
            timeout: Duration::from_secs(timeout_secs),
            max_retries: section
                .max_retries
                .unwrap_or(crate::retry::DEFAULT_MAX_RETRIES),
        })
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
                    Json::Number(text) => text.clone(),
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

    fn defaults(&self, section: &Member) -> Result<AgentDefaults, String> {
        let mut d = AgentDefaults::default();
        for m in self.object(section, "agents.defaults")? {
            let path = format!("agents.defaults.{}", m.key);
            match m.key.as_str() {
                "model" => d.model = self.text(m, &path)?,
                "max_tokens" | "maxTokens" => {
                    d.max_tokens = self.whole(m, &path, 1..=MAX_TOKENS)?;
                }
                "memory_window" | "memoryWindow" => {
                    d.memory_window = self.whole(m, &path, 0..=MAX_MEMORY_WINDOW)?;
                }
                "system_prompt" | "systemPrompt" => d.system_prompt = self.text(m, &path)?,
                "temperature" => {
                    d.temperature = match &m.value {
                        Json::Null => None,
                        Json::Number(text) => Some(Temperature(text.clone())),
                        _ => return Err(self.wrong(m, &path, "a number")),
                    }
                }
                _ => {}
            }
        }
        Ok(d)
    }

    fn provider(&self, section: &Member) -> Result<ProviderConfig, String> {
        let mut p = ProviderConfig::default();
        let name = &section.key;
        for m in self.object(section, &format!("providers.{name}"))? {
            let path = format!("providers.{name}.{}", m.key);
            match m.key.as_str() {
                "api_key" | "apiKey" => p.api_key = self.text(m, &path)?.map(Secret),
                "api_key_env" | "apiKeyEnv" => p.api_key_env = self.text(m, &path)?,
                "api_base" | "apiBase" => p.api_base = self.text(m, &path)?,
                "timeout_secs" | "timeoutSecs" => {
                    p.timeout_secs = self.whole(m, &path, 1..=MAX_TIMEOUT_SECS)?;
                }
                "max_retries" | "maxRetries" => {
                    p.max_retries = self.whole(m, &path, 0..=u64::from(MAX_RETRIES))?;
                }
                "extra_headers" | "extraHeaders" => {
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
                "protocol" => {
                    p.protocol = match self.text(m, &path)?.as_deref() {
                        None => None,
                        Some("openai" | "openai-compatible" | "openai_compatible") => {
                            Some(Protocol::OpenAi)
                        }
                        Some("anthropic") => Some(Protocol::Anthropic),
                        Some(_) => return Err(self.wrong(m, &path, "\"openai\" or \"anthropic\"")),
                    }
                }
                _ => {}
            }
        }
        Ok(p)
    }
}

/// An HTTP header name: a non-empty token (RFC 9110).
fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// An HTTP header value we are willing to send: printable, no line breaks,
/// no NUL, no leading or trailing space.
fn is_header_value(value: &str) -> bool {
    value.trim() == value && !value.chars().any(|c| c.is_control() && c != '\t')
}

/// Splits `provider/model` at the first slash (`openrouter/anthropic/claude`
/// keeps its inner slash).
pub fn split_model(model: &str) -> Result<(&str, &str), Error> {
    match model.split_once('/') {
        Some((p, m)) if !p.is_empty() && !m.is_empty() => Ok((p, m)),
        _ => Err(Error::Config(format!(
            "model '{model}' needs a provider prefix, for example openai/{model}"
        ))),
    }
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
    pub extra_headers: Vec<(String, String)>,
    pub timeout: Duration,
    /// Retries after a failed attempt.
    pub max_retries: u32,
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
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .finish()
    }
}

/// A header's value fit to show a person: "(hidden)" for a credential.
pub fn shown_value<'a>(name: &str, value: &'a str) -> &'a str {
    if looks_secret(name) {
        "(hidden)"
    } else {
        value
    }
}

/// Whether a header's value is a credential, judging by its name.
fn looks_secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["auth", "key", "token", "secret", "cookie", "password"]
        .iter()
        .any(|w| name.contains(w))
}

impl Provider {
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
        assert_eq!(s.provider.timeout, Duration::from_secs(30));
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
            ("mystery/m", "unknown provider 'mystery'"),
            ("no-prefix", "needs a provider prefix"),
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
    fn credential_headers_are_hidden() {
        assert!(looks_secret("Authorization"));
        assert!(looks_secret("X-Api-Key"));
        assert!(!looks_secret("HTTP-Referer"));
        assert!(!looks_secret("X-Title"));
        assert_eq!(shown_value("X-Api-Key", "k"), "(hidden)");
        assert_eq!(shown_value("X-Title", "t"), "t");
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
        let request = crate::provider::request(&s, &[], false).unwrap();
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
