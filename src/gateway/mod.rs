//! `weft gateway`: the agent as an OpenAI-compatible HTTP service.
//!
//! This module is the service itself, whatever serves it: it takes a
//! request whose body was already read (within [`Limits::max_body`]) and
//! answers through a [`Respond`], streaming when asked. The native server
//! (`crate::http::server`) and the `wasi:http/incoming-handler` export
//! both hand requests to [`Gateway::handle`]. All state lives in the home
//! directory (config and session files), so a fresh instance per request,
//! as `wasmtime serve` makes, loses nothing.
//!
//! - `POST /v1/chat/completions`: a turn of the agent loop (tools,
//!   retries, limits), streamed as OpenAI's SSE chunks or whole. With
//!   `X-Clawft-Session: KEY` the turn continues that session and is saved
//!   to it; without, the request's messages are the whole history.
//! - `GET /v1/models`, `GET /healthz`, `GET /readyz`.
//! - Errors are OpenAI's JSON shape with the status a client acts on.
//! - Every client token may use every session: tokens keep strangers
//!   out, they do not separate clients from each other.
//! - Without a token (loopback only), a request must be addressed to
//!   localhost and come from no other web origin, and a chat request must
//!   say it is JSON: a web page the user visits can then neither drive the
//!   agent (a cross-origin JSON post needs a preflight, which is never
//!   granted) nor reach it through a name that resolves to 127.0.0.1.
//!   A token makes these unnecessary (a page cannot send one).

mod api;

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::agent::{self, Event, Run};
use crate::config::Config;
use crate::conversation::Role;
use crate::error::Error;
use crate::home::Home;
use crate::json::{object, Json};
use crate::secrets::Secret;
use crate::session::Sessions;
use crate::tools::{Caller, Toolbox};

pub use api::{send_error, ApiError};

/// The status logged for a client that left before its answer was whole
/// (nginx's "client closed request"; never sent).
pub const CLIENT_GONE: u16 = 499;

/// The header that names a session to continue and save.
pub const SESSION_HEADER: &str = "x-clawft-session";
/// The environment variable holding a client token.
pub const TOKEN_ENV: &str = "CLAWFT_GATEWAY_TOKEN";
/// The shortest client token accepted: a short one can be guessed.
pub const MIN_TOKEN_CHARS: usize = 16;

/// Bounds on what one client may ask of the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest request body.
    pub max_body: usize,
    /// The largest request head (request line and headers).
    pub max_head: usize,
    /// Turns running at once; more are answered 429.
    pub max_turns: usize,
    /// Connections open at once; more are answered 503 at once.
    pub max_connections: usize,
    /// How long a client may take to send its request, and to take each
    /// piece of the answer, in seconds.
    pub io_timeout_secs: u64,
    /// How long in-flight turns may finish after SIGTERM, in seconds.
    pub grace_secs: u64,
}

impl Limits {
    /// The defaults, with what the `gateway` section of the config sets.
    pub fn from_config(config: &crate::config::GatewayConfig) -> Limits {
        let d = Limits::default();
        Limits {
            max_body: config.max_body_bytes.unwrap_or(d.max_body),
            max_head: d.max_head,
            max_turns: config.max_concurrent_turns.unwrap_or(d.max_turns),
            max_connections: config.max_connections.unwrap_or(d.max_connections),
            io_timeout_secs: config.io_timeout_secs.unwrap_or(d.io_timeout_secs),
            grace_secs: config.grace_secs.unwrap_or(d.grace_secs),
        }
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_body: 4 << 20,
            max_head: 16 << 10,
            max_turns: 8,
            max_connections: 64,
            io_timeout_secs: 30,
            grace_secs: 30,
        }
    }
}

/// A request as the server read it.
#[derive(Debug)]
pub struct Incoming<'a> {
    pub method: &'a str,
    /// The path, without the query.
    pub path: &'a str,
    /// Names in lower case.
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

impl Incoming<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        crate::http::header(self.headers, name)
    }
}

/// Where an answer goes: a status and headers, then the body in pieces,
/// each sent at once.
pub trait Respond {
    fn start(&mut self, status: u16, headers: &[(&str, &str)]) -> io::Result<()>;
    fn send(&mut self, piece: &[u8]) -> io::Result<()>;
}

/// Answers requests; the servers (native and `wasi:http`) call it for
/// each request they read.
pub trait Handler: Sync {
    fn handle(&self, request: &Incoming<'_>, out: &mut dyn Respond) -> Served;
}

impl Handler for Gateway {
    fn handle(&self, request: &Incoming<'_>, out: &mut dyn Respond) -> Served {
        Gateway::handle(self, request, out)
    }
}

/// What happened to one request, for the access line.
#[derive(Debug, Default)]
pub struct Served {
    pub status: u16,
    pub session: Option<String>,
    pub tool_calls: usize,
}

impl Served {
    /// The access line both servers write:
    /// `METHOD PATH STATUS DURATIONms session=KEY tools=N`. No query, no
    /// header value but the session's name, whose spaces and control
    /// characters become `_` so the line still splits on spaces.
    pub fn access_line(&self, method: &str, path: &str, status: u16, elapsed: Duration) -> String {
        let session: String = match &self.session {
            Some(key) => key
                .chars()
                .map(|c| if c.is_control() || c == ' ' { '_' } else { c })
                .collect(),
            None => "-".into(),
        };
        format!(
            "{method} {path} {status} {}ms session={session} tools={}",
            elapsed.as_millis(),
            self.tool_calls
        )
    }
}

/// The service: the home it serves from, and the turns running now.
pub struct Gateway {
    home: Home,
    env: fn(&str) -> Option<String>,
    limits: Limits,
    turns: AtomicUsize,
    /// Ask for a token even when none is configured (every call is then
    /// refused until one is): for a host whose listening address the
    /// gateway cannot see.
    always_token: bool,
}

impl Gateway {
    pub fn new(home: Home, env: fn(&str) -> Option<String>, limits: Limits) -> Gateway {
        Gateway {
            home,
            env,
            limits,
            turns: AtomicUsize::new(0),
            always_token: false,
        }
    }

    /// A gateway that never serves without a configured token. `wasmtime
    /// serve` listens on 0.0.0.0 unless told otherwise, and a handler
    /// cannot see the address, so the wasm gateway asks for one always.
    pub fn always_asking_for_a_token(mut self) -> Gateway {
        self.always_token = true;
        self
    }

    /// The client tokens: `gateway.tokens` in the config and
    /// `$CLAWFT_GATEWAY_TOKEN`, trimmed; blank ones do not count. None at
    /// all means no token is asked for; one shorter than
    /// [`MIN_TOKEN_CHARS`] is a config error.
    pub fn tokens(config: &Config, env: fn(&str) -> Option<String>) -> Result<Vec<Secret>, Error> {
        let from_env = env(TOKEN_ENV);
        let mut tokens = Vec::new();
        for (i, token) in config
            .gateway
            .tokens
            .iter()
            .chain(from_env.as_ref())
            .enumerate()
        {
            let token = token.trim();
            // A blank token would let in anyone who sends "Bearer ".
            if token.is_empty() {
                continue;
            }
            if token.chars().count() < MIN_TOKEN_CHARS {
                let which = match config.gateway.tokens.get(i) {
                    Some(_) => format!("gateway.tokens[{i}]"),
                    None => format!("${TOKEN_ENV}"),
                };
                return Err(Error::Config(format!(
                    "{which} is shorter than {MIN_TOKEN_CHARS} characters, which can be \
                     guessed; use a long random one (openssl rand -hex 24)"
                )));
            }
            tokens.push(Secret::new(token));
        }
        Ok(tokens)
    }

    /// Answers one request.
    pub fn handle(&self, request: &Incoming<'_>, out: &mut dyn Respond) -> Served {
        let mut served = Served::default();
        let result = self.route(request, out, &mut served);
        if let Err(err) = result {
            served.status = err.status;
            let _ = api::send_error(out, &err);
        }
        served
    }

    fn route(
        &self,
        request: &Incoming<'_>,
        out: &mut dyn Respond,
        served: &mut Served,
    ) -> Result<(), ApiError> {
        let allowed = match request.path {
            "/healthz" | "/readyz" | "/v1/models" => "GET",
            "/v1/chat/completions" => "POST",
            _ => return Err(ApiError::not_found(request.path)),
        };
        if request.method != allowed {
            return Err(ApiError::method(request.method, allowed));
        }
        if request.path == "/healthz" {
            served.status = 200;
            return api::send_json(out, 200, &object([("status", "ok".into())]));
        }
        // Before any token is checked: say what is wrong, not the details.
        let config = Config::load(&self.home).map_err(|_| match request.path {
            "/readyz" => ApiError::unavailable("the config does not load; run weft config check"),
            _ => ApiError::from_error(&Error::Config(
                "the gateway's config does not load; weft config check says why".into(),
            )),
        })?;
        if request.path == "/readyz" {
            return self.ready(&config, out, served);
        }
        self.authorize(&config, request)?;
        match request.path {
            "/v1/models" => {
                let models = self.models(&config)?;
                served.status = 200;
                api::send_json(out, 200, &models)
            }
            _ => self.chat(&config, request, out, served),
        }
    }

    /// A bearer token from the request must match one configured token,
    /// compared in constant time. Without tokens, only local clients may
    /// ask (see [`is_local`]).
    fn authorize(&self, config: &Config, request: &Incoming<'_>) -> Result<(), ApiError> {
        let tokens = Gateway::tokens(config, self.env).map_err(|_| {
            ApiError::from_error(&Error::Config(
                "the gateway's client tokens are not usable; weft config check says why".into(),
            ))
        })?;
        if tokens.is_empty() && self.always_token {
            return Err(ApiError::unauthorized(&format!(
                "no client token is configured: set {TOKEN_ENV} or gateway.tokens \
                 (this gateway cannot see which address it listens on, so it always asks for one)"
            )));
        }
        if tokens.is_empty() {
            return is_local(request);
        }
        let given = request
            .header("authorization")
            .and_then(|v| v.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        let Some(given) = given else {
            return Err(ApiError::unauthorized(
                "this gateway needs a token: send Authorization: Bearer TOKEN",
            ));
        };
        // Every token is compared, so timing says nothing about which matched.
        let matched = tokens.iter().fold(false, |any, t| t.matches(given) | any);
        if matched {
            Ok(())
        } else {
            Err(ApiError::unauthorized(
                "the token is not one this gateway accepts",
            ))
        }
    }

    fn ready(
        &self,
        config: &Config,
        out: &mut dyn Respond,
        served: &mut Served,
    ) -> Result<(), ApiError> {
        // Unauthenticated, so it says what is wrong but not the details
        // (paths, variable names); `weft config check` shows those.
        config.settings(None, self.env).map_err(|_| {
            ApiError::unavailable("the config does not give a usable model; run weft config check")
        })?;
        let unwritable = || ApiError::unavailable("the sessions directory is not writable");
        let dir = self.home.sessions_dir().map_err(|_| unwritable())?;
        let probe = dir.join(".ready-probe");
        crate::session::file::create_private_dir(&dir)
            .and_then(|()| std::fs::write(&probe, b"ok"))
            .and_then(|()| std::fs::remove_file(&probe))
            .map_err(|_| unwritable())?;
        served.status = 200;
        api::send_json(out, 200, &object([("status", "ready".into())]))
    }

    /// The configured default model, and any listed under `gateway.models`.
    fn models(&self, config: &Config) -> Result<Json, ApiError> {
        let settings = config
            .settings(None, self.env)
            .map_err(|e| ApiError::from_error(&e))?;
        let mut ids = vec![settings.qualified_model()];
        for model in &config.gateway.models {
            if !ids.contains(model) {
                ids.push(model.clone());
            }
        }
        Ok(api::model_list(&ids))
    }

    fn chat(
        &self,
        config: &Config,
        request: &Incoming<'_>,
        out: &mut dyn Respond,
        served: &mut Served,
    ) -> Result<(), ApiError> {
        let body = api::ChatRequest::parse(request.body)?;
        let mut settings =
            config
                .settings(body.model.as_deref(), self.env)
                .map_err(|e| match e {
                    Error::Config(why) => ApiError::bad_model(&why),
                    other => ApiError::from_error(&other),
                })?;
        body.apply(&mut settings);
        settings
            .provider
            .require_key()
            .map_err(|e| ApiError::from_error(&e))?;
        let session = request
            .header(SESSION_HEADER)
            .map(|k| k.trim().to_owned())
            .filter(|k| !k.is_empty());
        if let Some(key) = &session {
            crate::session::file_stem(key).map_err(|e| ApiError::invalid(&e.to_string()))?;
        }
        served.session = session.clone();

        // A place among the running turns, or 429.
        let running = self.turns.fetch_add(1, Ordering::SeqCst);
        let _place = Place(&self.turns);
        if running >= self.limits.max_turns {
            return Err(ApiError::busy(self.limits.max_turns));
        }

        let sessions = Sessions::new(&self.home);
        let conversation = match &session {
            Some(key) => {
                // The session holds the history; the request's last
                // message is the new one, and must be the user's.
                let last = body
                    .messages
                    .last()
                    .filter(|m| m.role == Role::User)
                    .ok_or_else(|| {
                        ApiError::invalid(
                            "with X-Clawft-Session the last message must be the user's new one",
                        )
                    })?;
                agent::history(&sessions, &settings, key, &last.joined_text(), &mut |_| {})
                    .map_err(|e| ApiError::from_error(&e))?
            }
            None => body.messages,
        };
        let start = conversation.len() - usize::from(session.is_some());
        let tool_settings = config.tool_settings(&self.home, self.env);
        let tools = if body.tools_off {
            Toolbox::none(&tool_settings)
        } else {
            Toolbox::new(&tool_settings, Caller::Gateway)
        };
        let answer = api::Answer::new(&settings.qualified_model(), body.stream);
        let mut streaming = false;
        let result = self.run(
            Run::new(settings, tools, conversation, body.stream),
            &answer,
            out,
            &mut streaming,
            served,
        );
        // Saved whole, or not at all, before the answer ends.
        let result = result.and_then(|done| {
            if let Some(key) = &session {
                agent::save(&sessions, key, &done.run.conversation()[start..])?;
            }
            Ok(done)
        });
        match (result, body.stream) {
            (Ok(done), false) => answer
                .finish_whole(out, &done.text, done.run.cut_short())
                .map_err(ApiError::io)?,
            (Ok(done), true) => {
                if !streaming {
                    answer.start_stream(out).map_err(ApiError::io)?;
                }
                answer
                    .end_stream(out, Ok(done.run.cut_short()))
                    .map_err(ApiError::io)?;
            }
            // The client went away: nothing to answer, nothing saved.
            (Err(Error::Output(_)), _) => {
                served.status = CLIENT_GONE;
                return Ok(());
            }
            // Once a stream has started its status is sent: the error goes
            // in the stream, as OpenAI's own streams report them.
            (Err(err), true) if streaming => {
                let failure = ApiError::from_error(&err);
                served.status = failure.status;
                let _ = answer.end_stream(out, Err(&failure));
                return Ok(());
            }
            (Err(err), _) => return Err(ApiError::from_error(&err)),
        }
        served.status = 200;
        Ok(())
    }

    /// Runs the turn. Streaming, its text goes out as chunks, and after
    /// each tool a comment line, which keeps proxies from timing out a
    /// quiet stream and finds a client that left: a write that fails stops
    /// the turn (as [`Error::Output`]) before its next request, and it is
    /// not saved. Whole, the text is collected as it arrives, so both
    /// answers read the same.
    fn run(
        &self,
        mut run: Run,
        answer: &api::Answer,
        out: &mut dyn Respond,
        streaming: &mut bool,
        served: &mut Served,
    ) -> Result<Done, Error> {
        let mut text = String::new();
        let mut start = |out: &mut dyn Respond| -> Result<(), Error> {
            if !*streaming {
                answer.start_stream(out).map_err(Error::Output)?;
                *streaming = true;
            }
            Ok(())
        };
        while let Some(event) = run.next()? {
            match event {
                Event::Text(piece) if answer.stream => {
                    start(out)?;
                    answer.chunk(out, &piece).map_err(Error::Output)?;
                }
                Event::Text(piece) => text.push_str(&piece),
                Event::Tool { name, .. } => {
                    served.tool_calls += 1;
                    if answer.stream {
                        start(out)?;
                        let comment = format!(": tool {name}\n\n");
                        out.send(comment.as_bytes()).map_err(Error::Output)?;
                    }
                }
                Event::Retrying { .. } | Event::Repaired(_) => {}
            }
        }
        Ok(Done { run, text })
    }
}

/// A turn that completed.
struct Done {
    run: Run,
    /// The whole text, when it was not streamed.
    text: String,
}

/// Whether a request without a token may be served: it is addressed to
/// this machine by a loopback name (`Host`), and, if a browser sent it,
/// from a page served by this machine (`Origin`). A page elsewhere cannot
/// forge either, and a name that resolves to 127.0.0.1 still arrives as
/// itself. A body must be declared JSON, which a page of another site
/// cannot do without a preflight (never granted here). With a token none
/// of this is needed: a browser cannot attach one unasked.
fn is_local(request: &Incoming<'_>) -> Result<(), ApiError> {
    let json = request.header("content-type").is_some_and(|t| {
        let kind = t.split(';').next().unwrap_or("").trim();
        kind.eq_ignore_ascii_case("application/json")
    });
    if request.method == "POST" && !json {
        return Err(ApiError::media_type());
    }
    if let Some(host) = request.header("host").filter(|h| !is_loopback_name(h)) {
        return Err(ApiError::forbidden(&format!(
            "this gateway has no client token, so it answers only requests addressed to \
             localhost, not to {}; set {TOKEN_ENV} or gateway.tokens to serve other names",
            crate::secrets::quoted(host)
        )));
    }
    let foreign = request.header("origin").filter(|origin| {
        let host = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"));
        !host.is_some_and(is_loopback_name)
    });
    if let Some(origin) = foreign {
        return Err(ApiError::forbidden(&format!(
            "this gateway has no client token, so it refuses requests from web pages of \
             other sites ({})",
            crate::secrets::quoted(origin)
        )));
    }
    Ok(())
}

/// `localhost` or a loopback address, with or without a port.
fn is_loopback_name(host_and_port: &str) -> bool {
    let host = match host_and_port.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or(""),
        None => host_and_port
            .rsplit_once(':')
            .map_or(host_and_port, |(host, _)| host),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A place among the running turns, given back when dropped.
struct Place<'a>(&'a AtomicUsize);

impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_access_line_splits_on_spaces_whatever_the_session_is_called() {
        let served = Served {
            status: 200,
            session: Some("a b\tc".into()),
            tool_calls: 2,
        };
        let line = served.access_line(
            "POST",
            "/v1/chat/completions",
            200,
            Duration::from_millis(7),
        );
        assert_eq!(
            line,
            "POST /v1/chat/completions 200 7ms session=a_b_c tools=2"
        );
        let line = Served::default().access_line("GET", "/healthz", 200, Duration::ZERO);
        assert_eq!(line, "GET /healthz 200 0ms session=- tools=0");
    }

    #[test]
    fn blank_tokens_are_skipped_and_a_short_one_is_named_by_its_place() {
        let config = Config::parse(r#"{"gateway":{"tokens":["  ", "short-token"]}}"#).unwrap();
        let err = Gateway::tokens(&config, |_| None).unwrap_err().to_string();
        assert!(err.contains("gateway.tokens[1] is shorter than"), "{err}");
        let config = Config::parse(r#"{"gateway":{"tokens":["", " 0123456789abcdef "]}}"#).unwrap();
        let tokens = Gateway::tokens(&config, |_| None).unwrap();
        assert_eq!(tokens.len(), 1);
    }
}
