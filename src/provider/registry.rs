//! The providers clawft knows, and the one place that decides which
//! provider and model a turn uses: the config only parses.
//!
//! The names are nanobot's, so its config files work unchanged (`lmStudio`
//! and `lm_studio` are one name). The provider is chosen by the first rule
//! that applies ([`Rule`]):
//! 1. the `--model` given on the command line names a provider as its
//!    prefix (`anthropic/claude-sonnet-4-5`): that one, prefix removed;
//! 2. `agents.defaults.provider` names one: that one, model sent unchanged;
//! 3. the model's prefix names one: that one, prefix removed;
//! 4. a provider with a key whose keywords the model name contains
//!    (`claude` for anthropic); 5. the first provider with a key. In 4 and
//!    5 the model is sent unchanged.

use std::time::Duration;

use super::Protocol;
use crate::config::{
    snake_case, Config, KeySource, Provider, ProviderConfig, TokenLimitField,
    DEFAULT_CONNECT_TIMEOUT_SECS, DEFAULT_MODEL, DEFAULT_TIMEOUT_SECS,
};
use crate::error::Error;
use crate::http::Timeouts;
use crate::secrets::Secret;

/// How a provider takes its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// The protocol's own header (`Authorization: Bearer`, `x-api-key`).
    Protocol,
    /// An `api-key` header, as Azure OpenAI wants.
    ApiKeyHeader,
}

/// A provider clawft knows without configuration.
#[derive(Debug)]
pub struct Builtin {
    pub name: &'static str,
    /// None when the user must give one (`custom`, `azure_openai`).
    pub api_base: Option<&'static str>,
    /// The environment variable its key is usually kept in.
    pub key_env: Option<&'static str>,
    pub protocol: Protocol,
    pub needs_key: bool,
    pub auth: Auth,
    /// Words in a model name that point to this provider.
    pub keywords: &'static [&'static str],
}

const fn hosted(
    name: &'static str,
    api_base: &'static str,
    key_env: &'static str,
    keywords: &'static [&'static str],
) -> Builtin {
    Builtin {
        name,
        api_base: Some(api_base),
        key_env: Some(key_env),
        protocol: Protocol::OpenAi,
        needs_key: true,
        auth: Auth::Protocol,
        keywords,
    }
}

const fn local(name: &'static str, api_base: &'static str, key_env: &'static str) -> Builtin {
    Builtin {
        name,
        api_base: Some(api_base),
        key_env: Some(key_env),
        protocol: Protocol::OpenAi,
        needs_key: false,
        auth: Auth::Protocol,
        keywords: &[],
    }
}

/// Every provider clawft can speak to. Gateways that serve every model come
/// before single-vendor ones, so the key-present fallback prefers them.
pub const BUILTINS: &[Builtin] = &[
    hosted(
        "openrouter",
        "https://openrouter.ai/api/v1",
        "OPENROUTER_API_KEY",
        &["openrouter"],
    ),
    hosted(
        "aihubmix",
        "https://aihubmix.com/v1",
        "AIHUBMIX_API_KEY",
        &["aihubmix"],
    ),
    hosted(
        "openai",
        "https://api.openai.com/v1",
        "OPENAI_API_KEY",
        &["gpt", "o1", "o3", "o4"],
    ),
    Builtin {
        name: "anthropic",
        api_base: Some("https://api.anthropic.com/v1"),
        key_env: Some("ANTHROPIC_API_KEY"),
        protocol: Protocol::Anthropic,
        needs_key: true,
        auth: Auth::Protocol,
        keywords: &["claude"],
    },
    Builtin {
        name: "azure_openai",
        api_base: None, // https://RESOURCE.openai.azure.com/openai/v1
        key_env: Some("AZURE_OPENAI_API_KEY"),
        protocol: Protocol::OpenAi,
        needs_key: true,
        auth: Auth::ApiKeyHeader,
        keywords: &[],
    },
    hosted(
        "deepseek",
        "https://api.deepseek.com/v1",
        "DEEPSEEK_API_KEY",
        &["deepseek"],
    ),
    hosted(
        "groq",
        "https://api.groq.com/openai/v1",
        "GROQ_API_KEY",
        &["groq"],
    ),
    hosted(
        "gemini",
        "https://generativelanguage.googleapis.com/v1beta/openai",
        "GEMINI_API_KEY",
        &["gemini"],
    ),
    hosted(
        "mistral",
        "https://api.mistral.ai/v1",
        "MISTRAL_API_KEY",
        &["mistral", "codestral"],
    ),
    hosted("xai", "https://api.x.ai/v1", "XAI_API_KEY", &["grok"]),
    hosted(
        "together",
        "https://api.together.xyz/v1",
        "TOGETHER_API_KEY",
        &[],
    ),
    hosted(
        "moonshot",
        "https://api.moonshot.ai/v1",
        "MOONSHOT_API_KEY",
        &["moonshot", "kimi"],
    ),
    hosted(
        "dashscope",
        "https://dashscope.aliyuncs.com/compatible-mode/v1",
        "DASHSCOPE_API_KEY",
        &["qwen"],
    ),
    hosted(
        "siliconflow",
        "https://api.siliconflow.cn/v1",
        "SILICONFLOW_API_KEY",
        &[],
    ),
    hosted(
        "zhipu",
        "https://open.bigmodel.cn/api/paas/v4",
        "ZHIPUAI_API_KEY",
        &["glm"],
    ),
    hosted(
        "minimax",
        "https://api.minimax.io/v1",
        "MINIMAX_API_KEY",
        &["minimax"],
    ),
    hosted(
        "huggingface",
        "https://router.huggingface.co/v1",
        "HF_TOKEN",
        &[],
    ),
    hosted(
        "nvidia",
        "https://integrate.api.nvidia.com/v1",
        "NVIDIA_API_KEY",
        &[],
    ),
    local("ollama", "http://localhost:11434/v1", "OLLAMA_API_KEY"),
    local("vllm", "http://localhost:8000/v1", "VLLM_API_KEY"),
    local("lm_studio", "http://localhost:1234/v1", "LM_STUDIO_API_KEY"),
    Builtin {
        name: "custom",
        api_base: None,
        key_env: None,
        protocol: Protocol::OpenAi,
        needs_key: false,
        auth: Auth::Protocol,
        keywords: &[],
    },
];

/// Providers a nanobot config may name that speak no protocol clawft has.
const FOREIGN: &[(&str, &str)] = &[
    ("bedrock", "AWS Bedrock's Converse API"),
    ("openai_codex", "OpenAI Codex's OAuth sign-in"),
    ("github_copilot", "GitHub Copilot's OAuth sign-in"),
    ("xai_grok", "xAI's OAuth sign-in"),
];

/// The built-in provider of that name (either spelling), if any.
pub fn builtin(name: &str) -> Option<&'static Builtin> {
    let name = snake_case(name);
    BUILTINS.iter().find(|b| b.name == name)
}

/// Which rule chose the provider, for `config check` and `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// `--model` named it as its prefix.
    CommandLine,
    /// `agents.defaults.provider` named it.
    Configured,
    /// The model's `provider/` prefix named it.
    Prefix,
    /// Its key is present and the model name contains this keyword.
    Keyword(&'static str),
    /// It is the first provider with a key present.
    KeyPresent,
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rule::CommandLine => f.write_str("the provider prefix of --model"),
            Rule::Configured => f.write_str("agents.defaults.provider"),
            Rule::Prefix => f.write_str("the model's provider prefix"),
            Rule::Keyword(k) => write!(f, "the model name contains '{k}' and its key is set"),
            Rule::KeyPresent => f.write_str("the first provider whose key is set"),
        }
    }
}

/// The provider and the model name to send, and why.
pub fn select(
    config: &Config,
    model_override: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Provider, String, Rule), Error> {
    let defaults = &config.agents.defaults;
    let forced = defaults
        .provider
        .as_deref()
        .filter(|p| !p.eq_ignore_ascii_case("auto"));
    let prefixed = |model: &str| -> Option<(String, String)> {
        let (prefix, rest) = model.split_once('/')?;
        (!rest.is_empty() && known(config, prefix)).then(|| (prefix.to_owned(), rest.to_owned()))
    };
    if let Some(model) = model_override {
        if let Some((name, rest)) = prefixed(model) {
            return Ok((resolve(config, &name, env)?, rest, Rule::CommandLine));
        }
    }
    let model = model_override
        .or(defaults.model.as_deref())
        .unwrap_or(DEFAULT_MODEL);
    if let Some(name) = forced {
        return Ok((
            resolve(config, name, env)?,
            model.to_owned(),
            Rule::Configured,
        ));
    }
    if let Some((name, rest)) = prefixed(model) {
        return Ok((resolve(config, &name, env)?, rest, Rule::Prefix));
    }
    // No prefix clawft knows: the providers whose keys are present.
    let lower = model.to_ascii_lowercase();
    let mut with_key = Vec::new();
    for name in candidates(config) {
        if let Ok(provider) = resolve(config, &name, env) {
            if provider.api_key.is_some() {
                with_key.push(provider);
            }
        }
    }
    for provider in &with_key {
        let words = builtin(&provider.name).map_or(&[][..], |b| b.keywords);
        if let Some(word) = words.iter().find(|w| lower.contains(*w)) {
            return Ok((provider.clone(), model.to_owned(), Rule::Keyword(word)));
        }
    }
    match with_key.into_iter().next() {
        Some(provider) => Ok((provider, model.to_owned(), Rule::KeyPresent)),
        None => Err(Error::Config(format!(
            "model '{model}' names no provider clawft knows (as in openai/{model}), and no \
             provider has a key to fall back on: set agents.defaults.provider, or a key"
        ))),
    }
}

/// Configured providers first, in the file's order, then the built-in
/// ones, each once.
fn candidates(config: &Config) -> Vec<String> {
    let mut names: Vec<String> = config
        .providers
        .iter()
        .map(|(k, _)| snake_case(k))
        .collect();
    for b in BUILTINS {
        if !names.iter().any(|n| n == b.name) {
            names.push(b.name.to_owned());
        }
    }
    names
}

/// Whether `name` is a provider: configured, built in, or one clawft
/// knows it cannot speak (so selecting it gives that error).
fn known(config: &Config, name: &str) -> bool {
    section(config, name).is_some()
        || builtin(name).is_some()
        || FOREIGN.iter().any(|(n, _)| *n == snake_case(name))
}

/// The config section for a provider, matching either spelling.
fn section<'c>(config: &'c Config, name: &str) -> Option<&'c ProviderConfig> {
    let wanted = snake_case(name);
    config
        .providers
        .iter()
        .find(|(k, _)| snake_case(k) == wanted)
        .map(|(_, v)| v)
}

/// Builds the provider named `name` from built-in knowledge and its section.
pub fn resolve(
    config: &Config,
    name: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Provider, Error> {
    let key = snake_case(name);
    if let Some((_, what)) = FOREIGN.iter().find(|(n, _)| *n == key) {
        return Err(Error::Config(format!(
            "provider '{name}' needs {what}, which clawft does not speak; \
             use an OpenAI- or Anthropic-compatible provider"
        )));
    }
    let configured = section(config, name);
    let known = builtin(name);
    let unconfigured = ProviderConfig::default();
    let Some(section) = configured.or(known.map(|_| &unconfigured)) else {
        return Err(Error::Config(format!(
            "unknown provider '{name}': add providers.{name} with api_base and protocol \
             (\"openai\" or \"anthropic\"), or use one of {}",
            BUILTINS
                .iter()
                .map(|b| b.name)
                .collect::<Vec<_>>()
                .join(", ")
        )));
    };
    let config_error = |what: String| Error::Config(format!("providers.{name}{what}"));
    let protocol = match (&section.protocol, known) {
        (Some(Ok(p)), _) => *p,
        (Some(Err(api)), _) => {
            return Err(config_error(format!(
                ".apiType '{api}' is an API clawft does not speak; use \"openai\" or \"anthropic\""
            )))
        }
        (None, Some(b)) => b.protocol,
        (None, None) => {
            return Err(config_error(
                " needs \"protocol\": \"openai\" or \"anthropic\"".into(),
            ))
        }
    };
    let api_base = match (&section.api_base, known.and_then(|b| b.api_base)) {
        (Some(base), _) => base.trim_end_matches('/').to_owned(),
        (None, Some(base)) => base.to_owned(),
        (None, None) => {
            return Err(config_error(
                " needs \"api_base\", for example \"https://host/v1\"".into(),
            ))
        }
    };
    let url =
        crate::http::Url::parse(&api_base).map_err(|e| config_error(format!(".api_base: {e}")))?;
    if api_base.contains(['?', '#']) {
        // The endpoint path is appended: a query or fragment would swallow it.
        return Err(config_error(
            ".api_base must not have a query or fragment ('?', '#')".into(),
        ));
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
                    Some(Secret::new(key.trim())),
                    KeySource::Env(var.to_owned()),
                ),
                None => (None, KeySource::Missing(Some(var.to_owned()))),
            },
            None => (None, KeySource::Missing(None)),
        }
    };
    if let Some(key) = &api_key {
        if !crate::config::is_header_value(key.expose()) {
            return Err(Error::Config(format!(
                "the API key for provider '{name}' contains spaces or control characters"
            )));
        }
    }
    let mut extra_headers = Vec::new();
    for (header, value) in section.extra_headers.iter().flatten() {
        if !crate::config::is_header_name(header) || !crate::config::is_header_value(value) {
            return Err(config_error(format!(
                ".extra_headers: '{header}' is not a valid HTTP header \
                 (names are letters, digits and -; values are one line)"
            )));
        }
        extra_headers.push((header.clone(), value.clone()));
    }
    let timeout_secs = section.timeout_secs.unwrap_or(DEFAULT_TIMEOUT_SECS);
    let connect_secs = section
        .connect_timeout_secs
        .unwrap_or(DEFAULT_CONNECT_TIMEOUT_SECS.min(timeout_secs));
    let max_tokens_field = match section.max_tokens_field {
        Some(field) => field,
        None if protocol == Protocol::OpenAi => TokenLimitField::for_host(url.host()),
        None => TokenLimitField::MaxTokens,
    };
    Ok(Provider {
        name: known.map_or_else(|| name.to_owned(), |b| b.name.to_owned()),
        protocol,
        api_base,
        api_key,
        key_source,
        key_required: known.is_some_and(|b| b.needs_key),
        auth: known.map_or(Auth::Protocol, |b| b.auth),
        extra_headers,
        timeouts: Timeouts {
            connect: Duration::from_secs(connect_secs),
            response: Duration::from_secs(timeout_secs),
        },
        max_tokens_field,
        max_retries: section
            .max_retries
            .unwrap_or(crate::retry::DEFAULT_MAX_RETRIES),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pick(
        config: &str,
        model: Option<&str>,
        keys: &[&str],
    ) -> Result<(String, String, Rule), String> {
        let config = Config::parse(config).map_err(|e| e.to_string())?;
        let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        let env = move |var: &str| keys.contains(&var.to_owned()).then(|| "k-123456789".into());
        select(&config, model, &env)
            .map(|(p, m, r)| (p.name, m, r))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn builtins_have_unique_names_and_versioned_bases() {
        for (i, b) in BUILTINS.iter().enumerate() {
            assert!(BUILTINS[i + 1..].iter().all(|o| o.name != b.name));
            if let Some(base) = b.api_base {
                assert!(crate::http::Url::parse(base).is_ok(), "{}", b.name);
                assert!(!base.ends_with('/'));
            }
        }
        assert_eq!(builtin("groq").unwrap().protocol, Protocol::OpenAi);
        assert!(!builtin("ollama").unwrap().needs_key);
        assert_eq!(builtin("lmStudio").unwrap().name, "lm_studio");
        assert_eq!(builtin("azureOpenai").unwrap().auth, Auth::ApiKeyHeader);
    }

    #[test]
    fn a_named_provider_gets_the_model_unchanged() {
        // Found trying a config nanobot's onboard wrote: the anthropic/
        // prefix was read as the provider although openrouter was named.
        let file = r#"{"agents":{"defaults":{"model":"anthropic/claude-opus-4-5","provider":"openrouter"}}}"#;
        assert_eq!(
            pick(file, None, &["OPENROUTER_API_KEY"]).unwrap(),
            (
                "openrouter".into(),
                "anthropic/claude-opus-4-5".into(),
                Rule::Configured
            )
        );
        // --model with a provider prefix still picks that provider for the turn.
        assert_eq!(
            pick(file, Some("groq/llama-3"), &[]).unwrap(),
            ("groq".into(), "llama-3".into(), Rule::CommandLine)
        );
        // --model without one goes to the named provider, unchanged.
        assert_eq!(
            pick(file, Some("meta-llama/llama-3"), &[]).unwrap().0,
            "openrouter"
        );
    }

    #[test]
    fn auto_reads_the_prefix_then_the_keys_present() {
        let auto = r#"{"agents":{"defaults":{"model":"openai/gpt-4o","provider":"auto"}}}"#;
        assert_eq!(
            pick(auto, None, &[]).unwrap(),
            ("openai".into(), "gpt-4o".into(), Rule::Prefix)
        );
        let bare = r#"{"agents":{"defaults":{"model":"claude-opus-4-5"}}}"#;
        assert_eq!(
            pick(bare, None, &["OPENAI_API_KEY", "ANTHROPIC_API_KEY"]).unwrap(),
            (
                "anthropic".into(),
                "claude-opus-4-5".into(),
                Rule::Keyword("claude")
            )
        );
        assert_eq!(
            pick(bare, None, &["DEEPSEEK_API_KEY"]).unwrap(),
            (
                "deepseek".into(),
                "claude-opus-4-5".into(),
                Rule::KeyPresent
            )
        );
        let err = pick(bare, None, &[]).unwrap_err();
        assert!(err.contains("names no provider"), "{err}");
        // A prefix that is no provider is part of the model's name.
        let vendor = r#"{"agents":{"defaults":{"model":"meta-llama/llama-3"}}}"#;
        assert_eq!(
            pick(vendor, None, &["OPENROUTER_API_KEY"]).unwrap(),
            (
                "openrouter".into(),
                "meta-llama/llama-3".into(),
                Rule::KeyPresent
            )
        );
    }

    #[test]
    fn the_key_fallback_follows_the_file_order() {
        // Found by the gateway tests: the fallback went by name, not by file.
        let file = r#"{"agents":{"defaults":{"model":"nosuch/gpt-x"}},"providers":{
            "zeta":{"apiBase":"http://127.0.0.1:9/v1","protocol":"openai","apiKey":"k-zeta-123456"},
            "alpha":{"apiBase":"http://127.0.0.1:9/v1","protocol":"openai","apiKey":"k-alpha-123456"}}}"#;
        assert_eq!(
            pick(file, None, &[]).unwrap(),
            ("zeta".into(), "nosuch/gpt-x".into(), Rule::KeyPresent)
        );
    }

    #[test]
    fn custom_speaks_openai_unless_api_type_says_anthropic() {
        let custom = |api_type: &str| {
            format!(
                r#"{{"agents":{{"defaults":{{"model":"qwen2.5","provider":"custom"}}}},
                "providers":{{"custom":{{"apiBase":"http://127.0.0.1:9/v1","apiType":"{api_type}"}}}}}}"#
            )
        };
        for (api_type, protocol) in [
            ("auto", Protocol::OpenAi),
            ("openai", Protocol::OpenAi),
            ("anthropic", Protocol::Anthropic),
        ] {
            let config = Config::parse(&custom(api_type)).unwrap();
            let (p, model, _) = select(&config, None, &|_| None).unwrap();
            assert_eq!(
                (p.name.as_str(), model.as_str(), p.protocol),
                ("custom", "qwen2.5", protocol)
            );
            assert!(
                p.require_key().unwrap().is_none(),
                "a local endpoint needs no key"
            );
        }
        let err = pick(&custom("responses"), None, &[]).unwrap_err();
        assert!(err.contains("apiType 'responses'"), "{err}");
        let err = pick(
            r#"{"agents":{"defaults":{"provider":"custom"}}}"#,
            None,
            &[],
        )
        .unwrap_err();
        assert!(err.contains("providers.custom needs \"api_base\""), "{err}");
    }

    #[test]
    fn providers_clawft_cannot_speak_are_an_error_only_when_chosen() {
        let file = r#"{"providers":{"bedrock":{"region":"us-east-1"}},"agents":{"defaults":{"model":"openai/gpt-4o"}}}"#;
        assert_eq!(pick(file, None, &[]).unwrap().0, "openai");
        let err = pick(file, Some("bedrock/claude"), &[]).unwrap_err();
        assert!(
            err.contains("provider 'bedrock' needs AWS Bedrock"),
            "{err}"
        );
    }
}
