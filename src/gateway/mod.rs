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

mod api;

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::agent::{self, Event, Notice, Sink};
use crate::config::{Config, Settings};
use crate::conversation::{window, Message, Role};
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

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The client tokens: `gateway.tokens` in the config and
    /// `$CLAWFT_GATEWAY_TOKEN`. None at all means no token is asked for.
    pub fn tokens(config: &Config, env: fn(&str) -> Option<String>) -> Vec<Secret> {
        let mut tokens: Vec<Secret> = config.gateway.tokens.iter().map(Secret::new).collect();
        if let Some(token) = env(TOKEN_ENV).filter(|t| !t.trim().is_empty()) {
            tokens.push(Secret::new(token.trim()));
        }
        tokens
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
        let config = Config::load(&self.home).map_err(|e| match request.path {
            "/readyz" => ApiError::unavailable(&e.to_string()),
            _ => ApiError::from_error(&e),
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
    /// compared in constant time. Without tokens, every client may ask.
    fn authorize(&self, config: &Config, request: &Incoming<'_>) -> Result<(), ApiError> {
        let tokens = Gateway::tokens(config, self.env);
        if tokens.is_empty() && self.always_token {
            return Err(ApiError::unauthorized(&format!(
                "no client token is configured: set {TOKEN_ENV} or gateway.tokens \
                 (this gateway cannot see which address it listens on, so it always asks for one)"
            )));
        }
        if tokens.is_empty() {
            return Ok(());
        }
        let given = request
            .header("authorization")
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim);
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
        config
            .settings(None, self.env)
            .map_err(|e| ApiError::unavailable(&e.to_string()))?;
        let dir = self
            .home
            .sessions_dir()
            .map_err(|e| ApiError::unavailable(&e.to_string()))?;
        let probe = dir.join(".ready-probe");
        std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(&probe, b"ok"))
            .and_then(|()| std::fs::remove_file(&probe))
            .map_err(|e| {
                ApiError::unavailable(&format!("{} is not writable: {e}", dir.display()))
            })?;
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
                let saved = sessions
                    .load_recent(key, settings.memory_window)
                    .map_err(|e| ApiError::from_error(&e))?;
                let mut history = window(&saved.messages, settings.memory_window);
                let last = body
                    .messages
                    .iter()
                    .rev()
                    .find(|m| m.role == Role::User)
                    .cloned()
                    .ok_or_else(|| ApiError::invalid("messages holds no user message to send"))?;
                history.push(last);
                history
            }
            None => body.messages.clone(),
        };
        let start = conversation.len() - usize::from(session.is_some());
        let tools = Toolbox::new(&config.tool_settings(&self.home, self.env), Caller::Gateway);
        let answer = api::Answer::new(&settings.qualified_model(), body.stream);
        let mut streaming = false;
        let result = self.run(
            &settings,
            tools,
            conversation,
            &answer,
            out,
            &mut streaming,
            served,
        );
        // Saved whole, or not at all, before the answer ends.
        let result = result.and_then(|conversation| {
            if let Some(key) = &session {
                agent::save(&sessions, key, &conversation[start..])?;
            }
            Ok(conversation)
        });
        match (result, body.stream) {
            (Ok(conversation), false) => answer
                .finish_whole(out, &conversation[start..])
                .map_err(ApiError::io)?,
            (Ok(_), true) => {
                if !streaming {
                    answer.start_stream(out).map_err(ApiError::io)?;
                }
                answer.end_stream(out, None).map_err(ApiError::io)?;
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
                let _ = answer.end_stream(out, Some(&failure));
                return Ok(());
            }
            (Err(err), _) => return Err(ApiError::from_error(&err)),
        }
        served.status = 200;
        Ok(())
    }

    /// Runs the turn, streaming its text as chunks when asked. A client
    /// that goes away stops the turn (its text cannot be written), which
    /// is then not saved.
    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        settings: &Settings,
        tools: Toolbox,
        conversation: Vec<Message>,
        answer: &api::Answer,
        out: &mut dyn Respond,
        streaming: &mut bool,
        served: &mut Served,
    ) -> Result<Vec<Message>, Error> {
        let stream = answer.stream;
        let mut calls = 0;
        let result = agent::respond(
            settings,
            tools,
            conversation,
            stream,
            &mut Sink {
                text: &mut |text: &str| {
                    if !stream {
                        return Ok(());
                    }
                    if !*streaming {
                        answer.start_stream(out).map_err(Error::Output)?;
                        *streaming = true;
                    }
                    answer.chunk(out, text).map_err(Error::Output)
                },
                notice: &mut |n: Notice<'_>| {
                    if let Notice::Turn(Event::Tool { .. }) = n {
                        calls += 1;
                    }
                },
            },
        );
        served.tool_calls = calls;
        result
    }
}

/// A place among the running turns, given back when dropped.
struct Place<'a>(&'a AtomicUsize);

impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
