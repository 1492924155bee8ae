//! The `weft` command line: parsing, the commands, and exit codes.
//!
//! Exit 0 on success, 2 for usage or configuration errors, 1 for failures at
//! run time. Errors go to stderr as one line; replies go to stdout. Under
//! WASI 0.2 the host only learns success or failure (its stable
//! `wasi:cli/exit` has no code), so the component's usage errors exit 1.

use std::io::{self, BufRead, IsTerminal, Read, Write};
use std::process::ExitCode;

use crate::agent::{self, print, Event, Notice, Turn, MAX_MESSAGE_BYTES};
use crate::config::{env, Config, Settings};
use crate::conversation::Message;
use crate::error::Error;
use crate::home::Home;
use crate::json::{object, Json, Member};
use crate::secrets::{quoted, shown_value, Terminal};
use crate::session::{Sessions, Skipped};
use crate::tools::{Caller, Toolbox};

/// The session used when `-s` is not given.
pub const DEFAULT_SESSION: &str = "default";

/// The target this binary was built for, e.g. `wasm32-wasip2` or
/// `aarch64-unknown-linux-musl` (set by `build.rs`).
pub const PLATFORM: &str = env!("CLAWFT_TARGET");

const HELP: &str = "\
weft - a small, portable LLM agent (clawft)

Usage:
  weft agent [-m TEXT] [-s KEY] [--model PROVIDER/MODEL] [--no-stream] [--no-tools]
  weft sessions list | show KEY | rm KEY
  weft config check | show
  weft status
  weft gateway [--listen ADDRESS:PORT]
  weft --help | --version

Commands:
  agent      Send a message and print the reply as it streams in. The message
             comes from -m, else from stdin; on a terminal, weft asks for one
             message after another until an empty line or end of input. The
             model may use tools (files in the workspace; web and exec when
             enabled); each call is one line on stderr.
  sessions   List, print or delete the conversations kept in the home directory.
  config     Check the configuration, or show it with secrets hidden.
  status     Print version, platform, HTTP support and home directory as JSON.
  gateway    Serve the OpenAI-compatible API (POST /v1/chat/completions,
             GET /v1/models, /healthz, /readyz) on 127.0.0.1:8080 or --listen,
             until SIGTERM or SIGINT. Clients send Authorization: Bearer TOKEN
             when $CLAWFT_GATEWAY_TOKEN or gateway.tokens is set; an address
             other than loopback needs one.

Options for agent:
  -m, --message TEXT         the message to send
  -s, --session KEY          the conversation to continue (default: default)
      --model PROVIDER/MODEL use this model instead of the configured one
      --no-stream            wait for the whole reply instead of streaming it
      --no-tools             no tools for this turn

Home: $CLAWFT_HOME, else $HOME/.clawft (native) or /config (WebAssembly).
Config: <home>/config.json. Sessions: <home>/sessions/<key>.jsonl.
Workspace: <home>/workspace (native) or /workspace (WebAssembly), unless
agents.defaults.workspace names another.
Exit codes: 0 success, 1 failure at run time, 2 usage or configuration error
(the wasm32-wasip2 component exits 1 for both: WASI 0.2 reports only
success or failure).
";

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Agent {
        message: Option<String>,
        session: String,
        model: Option<String>,
        stream: bool,
        tools: bool,
    },
    SessionsList,
    SessionsShow(String),
    SessionsRemove(String),
    ConfigCheck,
    ConfigShow,
    Status,
    Gateway {
        listen: String,
    },
    Help,
    Version,
}

/// Parses the arguments after the program name.
pub fn parse(args: &[String]) -> Result<Command, Error> {
    let usage = |msg: String| Error::Usage(msg);
    let mut args = args.iter().map(String::as_str);
    let Some(first) = args.next() else {
        return Err(usage("no command given".into()));
    };
    let rest: Vec<&str> = args.collect();
    // Help right after the command (`weft sessions --help`); within agent's
    // flags it is one of them, so `-m -h` sends "-h" as the message.
    if first != "agent" && matches!(rest.first(), Some(&("-h" | "--help"))) {
        return Ok(Command::Help);
    }
    let no_more = |cmd: Command, extra: &[&str]| match extra.first() {
        None => Ok(cmd),
        Some(arg) => Err(usage(format!("unexpected argument '{arg}'"))),
    };
    match first {
        "-h" | "--help" | "help" => Ok(Command::Help),
        "-V" | "--version" | "version" => Ok(Command::Version),
        "status" => no_more(Command::Status, &rest),
        "gateway" => parse_gateway(&rest),
        "agent" => parse_agent(&rest),
        "sessions" => match rest.as_slice() {
            ["list", extra @ ..] => no_more(Command::SessionsList, extra),
            ["show", key, extra @ ..] => no_more(Command::SessionsShow(key.to_string()), extra),
            ["rm", key, extra @ ..] => no_more(Command::SessionsRemove(key.to_string()), extra),
            ["show" | "rm"] => Err(usage(format!("sessions {} needs a session key", rest[0]))),
            [] => Err(usage("sessions needs list, show KEY or rm KEY".into())),
            [other, ..] => Err(usage(format!("unknown sessions command '{other}'"))),
        },
        "config" => match rest.as_slice() {
            ["check", extra @ ..] => no_more(Command::ConfigCheck, extra),
            ["show", extra @ ..] => no_more(Command::ConfigShow, extra),
            [] => Err(usage("config needs check or show".into())),
            [other, ..] => Err(usage(format!("unknown config command '{other}'"))),
        },
        other => Err(usage(format!("unknown command '{other}'"))),
    }
}

/// Where `weft gateway` listens unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

fn parse_gateway(args: &[&str]) -> Result<Command, Error> {
    let mut listen = DEFAULT_LISTEN.to_owned();
    let mut args = args.iter();
    while let Some(&arg) = args.next() {
        match arg.split_once('=') {
            Some(("--listen", value)) => listen = value.to_owned(),
            _ if arg == "--listen" => match args.next() {
                Some(value) => listen = (*value).to_owned(),
                None => return Err(Error::Usage("--listen needs an address".into())),
            },
            _ => {
                return Err(Error::Usage(format!(
                    "unknown argument '{arg}' for gateway"
                )))
            }
        }
    }
    Ok(Command::Gateway { listen })
}

fn parse_agent(args: &[&str]) -> Result<Command, Error> {
    let mut message = None;
    let mut session = DEFAULT_SESSION.to_owned();
    let mut model = None;
    let mut stream = true;
    let mut tools = true;
    let mut args = args.iter();
    while let Some(&arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value)),
            _ => (arg, None),
        };
        let mut value = || -> Result<String, Error> {
            match inline.or_else(|| args.next().copied()) {
                Some(v) => Ok(v.to_owned()),
                None => Err(Error::Usage(format!("{flag} needs a value"))),
            }
        };
        match flag {
            "-h" | "--help" => return Ok(Command::Help),
            "-m" | "--message" => message = Some(value()?),
            "-s" | "--session" => session = value()?,
            "--model" => model = Some(value()?),
            "--no-stream" => stream = false,
            "--stream" => stream = true,
            "--no-tools" => tools = false,
            other if other.starts_with('-') => {
                return Err(Error::Usage(format!("unknown option '{other}' for agent")))
            }
            other => {
                return Err(Error::Usage(format!(
                    "unexpected argument '{other}'; pass the message with -m"
                )))
            }
        }
    }
    Ok(Command::Agent {
        message,
        session,
        model,
        stream,
        tools,
    })
}

/// Runs `weft` with the process's arguments, environment and stdio.
pub fn main() -> ExitCode {
    // Lossy, so an argument that is not UTF-8 is an error message, not a panic.
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let (result, in_turn) = match parse(&args) {
        Ok(command) => {
            let in_turn = matches!(command, Command::Agent { .. });
            (run(command), in_turn)
        }
        Err(err) => (Err(err), false),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let _ = writeln!(io::stderr(), "{}", describe(&err, in_turn));
            ExitCode::from(err.exit_code())
        }
    }
}

/// The stderr line for an error. A turn that failed at run time also says
/// that nothing was saved, so the user knows the session is unchanged.
pub fn describe(err: &Error, in_turn: bool) -> String {
    let says_so = matches!(err, Error::TurnsFailed { .. } | Error::NotSaved { .. });
    if in_turn && err.exit_code() == 1 && !says_so {
        format!("error: {err} (the turn was not saved)")
    } else {
        format!("error: {err}")
    }
}

/// Runs one parsed command. On a terminal, text from outside (replies,
/// sessions) passes through [`Terminal`]; a pipe gets it exactly.
pub fn run(command: Command) -> Result<(), Error> {
    let stdout = io::stdout();
    if stdout.is_terminal() {
        run_with(command, &mut Terminal::new(stdout.lock()))
    } else {
        run_with(command, &mut stdout.lock())
    }
}

fn run_with(command: Command, out: &mut dyn Write) -> Result<(), Error> {
    match command {
        Command::Help => print(out, HELP),
        Command::Version => print(out, &format!("weft {}\n", env!("CARGO_PKG_VERSION"))),
        Command::Status => status(out),
        Command::Gateway { listen } => gateway(&listen),
        Command::Agent {
            message,
            session,
            model,
            stream,
            tools,
        } => {
            let (home, settings, tools) = agent::prepare(model.as_deref(), tools)?;
            let chat = Chat {
                home: &home,
                settings: &settings,
                tools: &tools,
                session: &session,
                stream,
            };
            match message {
                Some(text) => chat.turn(&text, out),
                None if io::stdin().is_terminal() => chat.interactive(out),
                None => chat.turn(&read_stdin()?, out),
            }
        }
        Command::SessionsList => {
            let home = Home::discover(env)?;
            let listing = Sessions::new(&home).list()?;
            for (key, why) in &listing.unreadable {
                let _ = writeln!(
                    io::stderr(),
                    "warning: session '{key}' is unreadable: {why}"
                );
            }
            let list = listing.sessions;
            if list.is_empty() {
                let dir = home.sessions_dir()?;
                let _ = writeln!(io::stderr(), "no sessions in {}", dir.display());
            }
            let width = list
                .iter()
                .map(|s| s.key.chars().count())
                .max()
                .unwrap_or(0);
            let text: String = list
                .iter()
                .map(|s| {
                    let plural = if s.messages == 1 { "" } else { "s" };
                    format!(
                        "{:width$}  {:>5} message{plural:1}  {}\n",
                        s.key, s.messages, s.updated
                    )
                })
                .collect();
            print(out, &text)
        }
        Command::SessionsShow(key) => {
            let home = Home::discover(env)?;
            // Buffered: a long session is a few large writes, not one per message.
            let mut buffered = io::BufWriter::with_capacity(64 << 10, out);
            let mut failed = None;
            let exists = Sessions::new(&home).scan(&key, |entry| match entry {
                Ok(m) if failed.is_none() => {
                    failed = buffered.write_all(shown_message(&m).as_bytes()).err();
                }
                Ok(_) => {}
                Err(skipped) => {
                    let _ = writeln!(io::stderr(), "{}", skipped_line(&key, &skipped));
                }
            })?;
            let flushed = buffered.flush();
            match (exists, failed.map_or(flushed, Err)) {
                (false, _) => Err(Error::NoSuchSession(key)),
                (true, Err(err)) => Err(Error::Output(err)),
                (true, Ok(())) => Ok(()),
            }
        }
        Command::SessionsRemove(key) => {
            let home = Home::discover(env)?;
            Sessions::new(&home).remove(&key)?;
            let _ = writeln!(io::stderr(), "removed session {}", quoted(&key));
            Ok(())
        }
        Command::ConfigCheck => {
            let home = Home::discover(env)?;
            let config = Config::load(&home)?;
            let settings = config.settings(None, env)?;
            settings.provider.require_key()?;
            crate::gateway::Gateway::tokens(&config, env)?;
            for note in config.notes() {
                let _ = writeln!(io::stderr(), "note: {note}");
            }
            print(
                out,
                &format!(
                    "config ok: {} via {} ({}), API key {}; provider chosen by {}\n",
                    settings.qualified_model(),
                    settings.provider.api_base,
                    settings.provider.protocol.name(),
                    settings.provider.key_source,
                    settings.rule
                ),
            )
        }
        Command::ConfigShow => {
            let home = Home::discover(env)?;
            let config = Config::load(&home)?;
            let settings = config.settings(None, env)?;
            let shown = show_config(&home, &config, &settings)?;
            print(out, &format!("{shown}\n"))
        }
    }
}

/// One conversation on the command line.
struct Chat<'a> {
    home: &'a Home,
    settings: &'a Settings,
    tools: &'a Toolbox,
    session: &'a str,
    stream: bool,
}

impl Chat<'_> {
    fn turn(&self, message: &str, out: &mut dyn Write) -> Result<(), Error> {
        let turn = Turn {
            session: self.session,
            message,
            stream: self.stream,
        };
        let session = self.session;
        let mut notice = |n: Notice<'_>| {
            let line = match n {
                Notice::Skipped(s) => skipped_line(session, s),
                Notice::Turn(Event::Retrying {
                    retry,
                    max_retries,
                    delay,
                    cause,
                }) => format!(
                    "retry {retry} of {max_retries} in {} s: {cause}",
                    seconds(*delay)
                ),
                Notice::Turn(Event::Repaired(count)) => {
                    format!("note: {count} broken character(s) in the reply were shown as \u{fffd}")
                }
                Notice::Turn(Event::Tool { name, summary, .. }) => format!("tool {name} {summary}"),
                Notice::Turn(Event::Text(_)) => return,
            };
            let _ = writeln!(io::stderr(), "{line}");
        };
        let tools = self.tools.clone();
        agent::run_turn(self.home, self.settings, tools, &turn, out, &mut notice).map(drop)
    }

    /// One turn per line typed, until an empty line, `/exit` or end of input.
    fn interactive(&self, out: &mut dyn Write) -> Result<(), Error> {
        let mut lines = io::stdin().lock().lines();
        let (mut turns, mut failed) = (0, 0);
        loop {
            let _ = write!(io::stderr(), "you> ");
            let Some(line) = lines.next() else { break };
            let line = line.map_err(|e| Error::io("stdin", e))?;
            let line = line.trim();
            if line.is_empty() || line == "/exit" || line == "/quit" {
                break;
            }
            turns += 1;
            match self.turn(line, out) {
                Ok(()) => {}
                // Nowhere to show replies: stop rather than pay for more.
                Err(err @ Error::Output(_)) => return Err(err),
                Err(err) => {
                    failed += 1;
                    let _ = writeln!(io::stderr(), "{}", describe(&err, true));
                }
            }
        }
        match failed {
            0 => Ok(()),
            _ => Err(Error::TurnsFailed { failed, of: turns }),
        }
    }
}

fn read_stdin() -> Result<String, Error> {
    let mut bytes = Vec::new();
    io::stdin()
        .take(MAX_MESSAGE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io("stdin", e))?;
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(Error::Usage(format!(
            "the message on stdin is longer than {MAX_MESSAGE_BYTES} bytes"
        )));
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::Usage("the message on stdin is not UTF-8 text".into()))?;
    if text.trim().is_empty() {
        return Err(Error::Usage(
            "no message: pass -m TEXT or pipe the message on stdin".into(),
        ));
    }
    Ok(text)
}

/// A message as `sessions show` prints it: a header line, then its text,
/// its tool calls and results.
fn shown_message(m: &Message) -> String {
    format!("[{}] {}\n{}\n", m.timestamp, m.role.name(), m.as_text())
}

fn skipped_line(key: &str, s: &Skipped) -> String {
    format!(
        "warning: session {}: skipped line {} ({}); the file is left as it is",
        quoted(key),
        s.line,
        s.reason
    )
}

/// `weft gateway`: serves the OpenAI-compatible API until SIGTERM or
/// SIGINT. A non-loopback address needs a client token.
#[cfg(not(target_os = "wasi"))]
fn gateway(listen: &str) -> Result<(), Error> {
    use crate::gateway::{Gateway, Limits};
    use crate::http::server::native::{serve, Options};

    let address: std::net::SocketAddr = listen.parse().map_err(|_| {
        Error::Usage(format!(
            "--listen needs an address and port, such as 127.0.0.1:8080, not '{listen}'"
        ))
    })?;
    let home = Home::discover(env)?;
    let config = Config::load(&home)?;
    let tokens = Gateway::tokens(&config, env)?;
    if !address.ip().is_loopback() && tokens.is_empty() {
        return Err(Error::Config(format!(
            "refusing to listen on {address} without a client token: set {} or gateway.tokens \
             (only a loopback address may go without one)",
            crate::gateway::TOKEN_ENV
        )));
    }
    let limits = Limits::from_config(&config.gateway);
    let gateway = Gateway::new(home, env, limits);
    let options = Options {
        listen: address,
        limits,
        workers: limits.max_connections,
    };
    serve(&gateway, &options, &|line: &str| {
        // One write per line, so lines from many workers stay whole.
        let _ = io::stderr().write_all(format!("{line}\n").as_bytes());
    })
}

/// Under WASI the gateway is its own component, served by the host.
#[cfg(target_os = "wasi")]
fn gateway(_listen: &str) -> Result<(), Error> {
    Err(Error::Usage(
        "in WebAssembly the gateway is weft-gateway.wasm, served by the host: \
         wasmtime serve -S cli --dir HOME::/config weft-gateway.wasm"
            .into(),
    ))
}

/// `weft status`: version, platform, HTTP, home and whether the config
/// resolves, as JSON.
fn status(out: &mut dyn Write) -> Result<(), Error> {
    print(out, &format!("{}\n", status_report().to_pretty_text()))
}

/// What `weft status` reports, as JSON.
pub fn status_report() -> Json {
    let home = Home::discover(env);
    let config = match home.as_ref().map_err(|e| e.to_string()).and_then(|h| {
        Config::load(h)
            .and_then(|c| c.settings(None, env))
            .map_err(|e| e.to_string())
    }) {
        Ok(s) => object([
            ("ok", true.into()),
            ("model", s.qualified_model().into()),
            ("provider", s.provider.name.as_str().into()),
            ("provider_rule", s.rule.to_string().into()),
        ]),
        Err(e) => object([("ok", false.into()), ("error", e.into())]),
    };
    object([
        ("name", "clawft".into()),
        ("version", env!("CARGO_PKG_VERSION").into()),
        ("platform", PLATFORM.into()),
        ("http", crate::http::AVAILABLE.into()),
        (
            "home",
            home.as_ref()
                .ok()
                .map(|h| h.root().display().to_string())
                .into(),
        ),
        (
            "home_source",
            home.as_ref().ok().map(|h| h.source().describe()).into(),
        ),
        ("config", config),
    ])
}

/// `weft config show`: the effective configuration, every secret replaced
/// by where it came from.
fn show_config(home: &Home, config: &Config, settings: &Settings) -> Result<String, Error> {
    let t = config.tool_settings(home, env);
    let offered: Vec<Json> = Toolbox::new(&t, Caller::Cli)
        .specs()
        .iter()
        .map(|s| s.name.into())
        .collect();
    let tools = object([
        ("workspace", t.workspace.display().to_string().into()),
        ("offered", offered.into()),
        (
            "exec_allow",
            t.exec_allow
                .iter()
                .map(|p| p.as_str().into())
                .collect::<Vec<Json>>()
                .into(),
        ),
        ("max_tool_iterations", u64::from(t.max_iterations).into()),
        ("max_tool_result_chars", (t.max_result_chars as u64).into()),
    ]);
    let path = home.config_file()?;
    let p = &settings.provider;
    let headers = p
        .extra_headers
        .iter()
        .map(|(name, value)| Member::new(name, shown_value(name, value)))
        .collect();
    let provider = object([
        ("name", p.name.as_str().into()),
        ("protocol", p.protocol.name().into()),
        ("api_base", p.api_base.as_str().into()),
        ("api_key", p.key_source.to_string().into()),
        ("extra_headers", Json::Object(headers)),
        ("connect_timeout_secs", p.timeouts.connect.as_secs().into()),
        ("timeout_secs", p.timeouts.response.as_secs().into()),
        ("max_tokens_field", p.max_tokens_field.name().into()),
        ("max_retries", u64::from(p.max_retries).into()),
    ]);
    let configured: Vec<Json> = config
        .providers
        .iter()
        .map(|(k, _)| k.as_str().into())
        .collect();
    let shown = object([
        ("config_file", path.display().to_string().into()),
        ("config_file_exists", path.exists().into()),
        ("model", settings.qualified_model().into()),
        ("provider_rule", settings.rule.to_string().into()),
        ("max_tokens", u64::from(settings.max_tokens).into()),
        ("temperature", settings.temperature.as_ref().into()),
        ("system_prompt", settings.system_prompt.as_deref().into()),
        ("memory_window", (settings.memory_window as u64).into()),
        ("provider", provider),
        ("configured_providers", configured.into()),
        ("tools", tools),
    ]);
    Ok(shown.to_pretty_text())
}

/// A duration as seconds with one decimal, without core's float formatting
/// (which costs the wasm build ~20 KB).
fn seconds(d: std::time::Duration) -> String {
    // u64 arithmetic: Duration::as_millis is a u128, whose formatting and
    // division cost the wasm build ~2.5 KB.
    let tenths = (d.as_secs() * 1000 + u64::from(d.subsec_millis()) + 50) / 100;
    format!("{}.{}", tenths / 10, tenths % 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn agent_flags_parse_in_every_spelling() {
        assert_eq!(
            parse(&args(
                "agent -m hello -s work --model anthropic/claude --no-stream"
            ))
            .unwrap(),
            Command::Agent {
                message: Some("hello".into()),
                session: "work".into(),
                model: Some("anthropic/claude".into()),
                stream: false,
                tools: true,
            }
        );
        assert_eq!(
            parse(&args("agent --message=hi --session=s2")).unwrap(),
            Command::Agent {
                message: Some("hi".into()),
                session: "s2".into(),
                model: None,
                stream: true,
                tools: true,
            }
        );
        assert_eq!(
            parse(&args("agent")).unwrap(),
            Command::Agent {
                message: None,
                session: DEFAULT_SESSION.into(),
                model: None,
                stream: true,
                tools: true,
            }
        );
    }

    #[test]
    fn subcommands_parse() {
        assert_eq!(
            parse(&args("sessions list")).unwrap(),
            Command::SessionsList
        );
        assert_eq!(
            parse(&args("sessions show work")).unwrap(),
            Command::SessionsShow("work".into())
        );
        assert_eq!(
            parse(&args("sessions rm work")).unwrap(),
            Command::SessionsRemove("work".into())
        );
        assert_eq!(parse(&args("config check")).unwrap(), Command::ConfigCheck);
        assert_eq!(parse(&args("config show")).unwrap(), Command::ConfigShow);
        assert_eq!(parse(&args("status")).unwrap(), Command::Status);
        assert_eq!(parse(&args("--version")).unwrap(), Command::Version);
        assert_eq!(parse(&args("-h")).unwrap(), Command::Help);
        assert_eq!(parse(&args("agent --help")).unwrap(), Command::Help);
        assert_eq!(parse(&args("sessions -h")).unwrap(), Command::Help);
        // Found in review: a message that happens to be "-h" is a message.
        assert_eq!(
            parse(&args("agent -m -h")).unwrap(),
            Command::Agent {
                message: Some("-h".into()),
                session: DEFAULT_SESSION.into(),
                model: None,
                stream: true,
                tools: true,
            }
        );
    }

    #[test]
    fn mistakes_are_usage_errors() {
        for line in [
            "",
            "chat",
            "agent -m",
            "agent --bogus",
            "agent hello",
            "sessions",
            "sessions show",
            "sessions list extra",
            "config",
            "config edit",
            "status now",
        ] {
            let err = parse(&args(line)).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{line:?}: {err}");
        }
    }
}
