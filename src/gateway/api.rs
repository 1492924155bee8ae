//! The OpenAI chat-completions API as the gateway serves it: reading a
//! request, writing replies (whole, or as `chat.completion.chunk` events
//! ending `data: [DONE]`), and errors as `{"error": {...}}` with the status
//! a client acts on.

use std::io;

use super::Respond;
use crate::config::{Settings, Temperature};
use crate::conversation::{Message, Part, Role, ToolCall, ToolResult};
use crate::error::Error;
use crate::http::HttpError;
use crate::json::{self, object, Json, Member};

/// An error as a client receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
    /// OpenAI's `type`: `invalid_request_error`, `authentication_error`, ...
    pub kind: &'static str,
    pub code: Option<&'static str>,
    /// Extra headers (`Allow`, `Retry-After`).
    pub headers: Vec<(&'static str, String)>,
}

impl ApiError {
    pub(crate) fn new(
        status: u16,
        kind: &'static str,
        code: Option<&'static str>,
        message: String,
    ) -> ApiError {
        ApiError {
            status,
            message,
            kind,
            code,
            headers: Vec::new(),
        }
    }

    pub fn invalid(message: &str) -> ApiError {
        ApiError::new(400, "invalid_request_error", None, message.to_owned())
    }

    pub fn bad_model(message: &str) -> ApiError {
        ApiError::new(
            400,
            "invalid_request_error",
            Some("model_not_found"),
            message.to_owned(),
        )
    }

    pub fn unauthorized(message: &str) -> ApiError {
        ApiError::new(
            401,
            "authentication_error",
            Some("invalid_api_key"),
            message.to_owned(),
        )
    }

    pub fn forbidden(message: &str) -> ApiError {
        ApiError::new(
            403,
            "permission_error",
            Some("forbidden"),
            message.to_owned(),
        )
    }

    pub fn media_type() -> ApiError {
        ApiError::new(
            415,
            "invalid_request_error",
            Some("unsupported_media_type"),
            "without a client token this gateway takes only bodies sent as \
             Content-Type: application/json"
                .to_owned(),
        )
    }

    /// A request field the gateway does not serve, refused rather than
    /// quietly ignored.
    fn unsupported(message: &str) -> ApiError {
        ApiError::new(
            400,
            "invalid_request_error",
            Some("unsupported_parameter"),
            message.to_owned(),
        )
    }

    pub fn not_found(path: &str) -> ApiError {
        ApiError::new(
            404,
            "invalid_request_error",
            Some("not_found"),
            format!("no route {path}"),
        )
    }

    pub fn method(method: &str, allowed: &'static str) -> ApiError {
        let mut err = ApiError::new(
            405,
            "invalid_request_error",
            Some("method_not_allowed"),
            format!("{method} is not allowed here; use {allowed}"),
        );
        err.headers.push(("allow", allowed.to_owned()));
        err
    }

    pub fn too_large(limit: usize) -> ApiError {
        ApiError::new(
            413,
            "invalid_request_error",
            Some("request_too_large"),
            format!("the request body is larger than {limit} bytes"),
        )
    }

    pub fn head_too_large(limit: usize) -> ApiError {
        ApiError::new(
            431,
            "invalid_request_error",
            Some("headers_too_large"),
            format!("the request headers are larger than {limit} bytes"),
        )
    }

    /// The request (its head or body) did not arrive in time.
    pub fn timed_out(message: &str) -> ApiError {
        ApiError::new(
            408,
            "invalid_request_error",
            Some("request_timeout"),
            message.to_owned(),
        )
    }

    /// The handler returned without answering.
    pub fn no_answer() -> ApiError {
        ApiError::new(
            500,
            "server_error",
            Some("no_answer"),
            "the gateway gave no answer".into(),
        )
    }

    pub fn busy(limit: usize) -> ApiError {
        let mut err = ApiError::new(
            429,
            "rate_limit_error",
            Some("too_many_turns"),
            format!("{limit} turns are running already; try again shortly"),
        );
        err.headers.push(("retry-after", "1".to_owned()));
        err
    }

    pub fn unavailable(message: &str) -> ApiError {
        ApiError::new(503, "server_error", Some("not_ready"), message.to_owned())
    }

    pub fn io(err: io::Error) -> ApiError {
        ApiError::new(500, "server_error", None, format!("cannot answer: {err}"))
    }

    /// The status and words for an agent error: the provider's failures are
    /// a bad gateway (504 for a timeout), the client's mistakes a 400.
    pub fn from_error(err: &Error) -> ApiError {
        let message = err.to_string();
        match err {
            Error::Usage(_) | Error::SessionKey { .. } => ApiError::invalid(&message),
            Error::Config(_) => ApiError::new(500, "server_error", Some("config_error"), message),
            Error::Http(HttpError::Timeout { .. }) => {
                ApiError::new(504, "server_error", Some("provider_timeout"), message)
            }
            Error::Http(_)
            | Error::InvalidApiKey { .. }
            | Error::Status { .. }
            | Error::ProviderError { .. }
            | Error::BadReply { .. }
            | Error::StreamInterrupted { .. } => {
                ApiError::new(502, "server_error", Some("provider_error"), message)
            }
            Error::ToolLimit { .. } | Error::ToolRepeat { .. } => {
                ApiError::new(500, "server_error", Some("tool_limit"), message)
            }
            _ => ApiError::new(500, "server_error", None, message),
        }
    }

    fn body(&self) -> Json {
        object([(
            "error",
            object([
                ("message", self.message.as_str().into()),
                ("type", self.kind.into()),
                ("param", Json::Null),
                ("code", self.code.into()),
            ]),
        )])
    }
}

pub fn send_json(out: &mut dyn Respond, status: u16, body: &Json) -> Result<(), ApiError> {
    write_json(out, status, body, &[]).map_err(ApiError::io)
}

pub fn send_error(out: &mut dyn Respond, err: &ApiError) -> io::Result<()> {
    write_json(out, err.status, &err.body(), &err.headers)
}

/// A whole JSON answer with its length, and any extra headers after.
fn write_json(
    out: &mut dyn Respond,
    status: u16,
    body: &Json,
    extra: &[(&'static str, String)],
) -> io::Result<()> {
    let text = body.to_text();
    let length = text.len().to_string();
    let mut headers: Vec<(&str, &str)> = vec![
        ("content-type", "application/json"),
        ("content-length", &length),
    ];
    headers.extend(extra.iter().map(|(n, v)| (*n, v.as_str())));
    out.start(status, &headers)?;
    out.send(text.as_bytes())
}

/// `GET /v1/models`.
pub fn model_list(ids: &[String]) -> Json {
    let data: Vec<Json> = ids
        .iter()
        .map(|id| {
            let owner = id.split('/').next().unwrap_or("clawft");
            object([
                ("id", id.as_str().into()),
                ("object", "model".into()),
                ("created", 0u64.into()),
                ("owned_by", owner.into()),
            ])
        })
        .collect();
    object([("object", "list".into()), ("data", data.into())])
}

/// What a chat-completions request asks.
#[derive(Debug)]
pub struct ChatRequest {
    pub model: Option<String>,
    pub messages: Vec<Message>,
    pub stream: bool,
    pub max_tokens: Option<u32>,
    pub temperature: Option<Temperature>,
    /// `tool_choice: "none"`: the turn offers no tools.
    pub tools_off: bool,
}

impl ChatRequest {
    pub fn parse(body: &[u8]) -> Result<ChatRequest, ApiError> {
        let value = json::parse(body)
            .map_err(|e| ApiError::invalid(&format!("the body is not JSON: {e}")))?;
        if value.as_object().is_none() {
            return Err(ApiError::invalid("the body must be a JSON object"));
        }
        let field = |e: json::FieldError| ApiError::invalid(&e.to_string());
        let model: Option<String> = value.field("model").map_err(field)?;
        let stream = value
            .field::<bool>("stream")
            .map_err(field)?
            .unwrap_or(false);
        let limit = match value.field::<u64>("max_completion_tokens").map_err(field)? {
            Some(n) => Some(n),
            None => value.field::<u64>("max_tokens").map_err(field)?,
        };
        let max_tokens = limit
            .map(|n| {
                u32::try_from(n)
                    .ok()
                    .filter(|n| (1..=1_000_000).contains(n))
            })
            .map(|n| n.ok_or_else(|| ApiError::invalid("'max_tokens' must be from 1 to 1000000")))
            .transpose()?;
        let temperature = match value.get("temperature") {
            None | Some(Json::Null) => None,
            Some(Json::Number(n)) if (0.0..=2.0).contains(&n.value()) => {
                Some(Temperature::from_number(n.clone()))
            }
            Some(_) => {
                return Err(ApiError::invalid(
                    "'temperature' must be a number from 0 to 2",
                ))
            }
        };
        // The gateway runs its own tools; a client's tools would be dropped
        // silently and the server's offered instead, so they are refused.
        let present = |name: &str| match value.get(name) {
            None | Some(Json::Null) => false,
            Some(Json::Array(items)) => !items.is_empty(),
            Some(_) => true,
        };
        if present("tools") || present("functions") {
            return Err(ApiError::unsupported(
                "this gateway runs its own tools (see tools in its config); a client's \
                 'tools' or 'functions' are not supported",
            ));
        }
        let tools_off = match value.get("tool_choice") {
            None | Some(Json::Null) => false,
            Some(Json::String(choice)) if choice == "auto" => false,
            Some(Json::String(choice)) if choice == "none" => true,
            Some(_) => {
                return Err(ApiError::unsupported(
                    "'tool_choice' may be \"auto\" or \"none\" here",
                ))
            }
        };
        if value
            .field::<u64>("n")
            .map_err(field)?
            .is_some_and(|n| n != 1)
        {
            return Err(ApiError::unsupported(
                "'n' must be 1: one answer per request",
            ));
        }
        let raw = value
            .get("messages")
            .and_then(Json::as_array)
            .ok_or_else(|| ApiError::invalid("'messages' must be an array of messages"))?;
        if raw.is_empty() {
            return Err(ApiError::invalid("'messages' is empty"));
        }
        let mut messages = Vec::with_capacity(raw.len());
        for (i, m) in raw.iter().enumerate() {
            messages.push(
                message(m).map_err(|why| ApiError::invalid(&format!("messages[{i}]: {why}")))?,
            );
        }
        Ok(ChatRequest {
            model: model.filter(|m| !m.trim().is_empty()),
            messages,
            stream,
            max_tokens,
            temperature,
            tools_off,
        })
    }

    /// The request's own limits over the configured ones.
    pub fn apply(&self, settings: &mut Settings) {
        if let Some(n) = self.max_tokens {
            settings.max_tokens = n;
        }
        if let Some(t) = &self.temperature {
            settings.temperature = Some(t.clone());
        }
    }
}

/// One message of the request, in OpenAI's shape.
fn message(m: &Json) -> Result<Message, String> {
    let role: String = m.required("role").map_err(|e| e.to_string())?;
    let role = match Role::from_name(&role) {
        Some(role) => role,
        None if role == "developer" => Role::System,
        None => return Err(format!("unknown role '{role}'")),
    };
    let text = content_text(m.get("content")).ok_or("'content' must be text or text parts")?;
    let mut parts = Vec::new();
    if role == Role::Tool {
        let call_id: String = m.required("tool_call_id").map_err(|e| e.to_string())?;
        parts.push(Part::Result(ToolResult {
            call_id,
            name: m.field::<String>("name").ok().flatten().unwrap_or_default(),
            content: text,
            is_error: false,
        }));
        return Ok(Message::new(role, parts));
    }
    if !text.is_empty() {
        parts.push(Part::Text(text));
    }
    for call in m
        .get("tool_calls")
        .and_then(Json::as_array)
        .unwrap_or_default()
    {
        let id: String = call
            .required("id")
            .map_err(|e| format!("tool_calls: {e}"))?;
        let function = call
            .get("function")
            .ok_or("a tool call without 'function'")?;
        parts.push(Part::Call(ToolCall {
            id,
            name: function
                .required("name")
                .map_err(|e| format!("tool_calls: {e}"))?,
            arguments: function
                .field("arguments")
                .map_err(|e| format!("tool_calls: {e}"))?
                .unwrap_or_default(),
        }));
    }
    if parts.is_empty() {
        parts.push(Part::Text(String::new()));
    }
    Ok(Message::new(role, parts))
}

/// A message's content: a string, null, or an array of text parts.
fn content_text(content: Option<&Json>) -> Option<String> {
    match content {
        None | Some(Json::Null) => Some(String::new()),
        Some(Json::String(s)) => Some(s.clone()),
        Some(Json::Array(parts)) => parts
            .iter()
            .map(|p| match p.get("type").and_then(Json::as_str) {
                Some("text") => p.get("text").and_then(Json::as_str),
                _ => None,
            })
            .collect::<Option<Vec<&str>>>()
            .map(|texts| texts.concat()),
        Some(_) => None,
    }
}

/// OpenAI's words for how an answer ended.
fn finish_reason(cut: bool) -> &'static str {
    if cut {
        "length"
    } else {
        "stop"
    }
}

/// One answer being written: its id, model and creation time.
pub struct Answer {
    id: String,
    model: String,
    created: u64,
    pub stream: bool,
}

impl Answer {
    pub fn new(model: &str, stream: bool) -> Answer {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let (created, nanos) = (now.as_secs(), now.subsec_nanos());
        Answer {
            id: format!("chatcmpl-clawft-{created:x}{nanos:08x}"),
            model: model.to_owned(),
            created,
            stream,
        }
    }

    fn head(&self, object_kind: &str) -> Vec<Member> {
        vec![
            Member::new("id", self.id.as_str()),
            Member::new("object", object_kind),
            Member::new("created", self.created),
            Member::new("model", self.model.as_str()),
        ]
    }

    fn event(&self, delta: Json, finish: Option<&str>) -> String {
        let mut chunk = self.head("chat.completion.chunk");
        chunk.push(Member::new(
            "choices",
            vec![object([
                ("index", 0u64.into()),
                ("delta", delta),
                ("finish_reason", finish.into()),
            ])],
        ));
        format!("data: {}\n\n", Json::Object(chunk).to_text())
    }

    pub fn start_stream(&self, out: &mut dyn Respond) -> io::Result<()> {
        out.start(
            200,
            &[
                ("content-type", "text/event-stream"),
                ("cache-control", "no-cache"),
            ],
        )?;
        let first = self.event(
            object([("role", "assistant".into()), ("content", "".into())]),
            None,
        );
        out.send(first.as_bytes())
    }

    pub fn chunk(&self, out: &mut dyn Respond, text: &str) -> io::Result<()> {
        out.send(
            self.event(object([("content", text.into())]), None)
                .as_bytes(),
        )
    }

    /// The last chunk and `[DONE]`: finished (`length` when the reply was
    /// cut at max_tokens), or an error in an event of its own.
    pub fn end_stream(
        &self,
        out: &mut dyn Respond,
        end: Result<bool, &ApiError>,
    ) -> io::Result<()> {
        let mut tail = match end {
            Ok(cut) => self.event(object([]), Some(finish_reason(cut))),
            Err(err) => format!("data: {}\n\n", err.body().to_text()),
        };
        tail.push_str("data: [DONE]\n\n");
        out.send(tail.as_bytes())
    }

    /// The whole reply: all the text of the turn, as a stream would have
    /// carried it.
    pub fn finish_whole(&self, out: &mut dyn Respond, text: &str, cut: bool) -> io::Result<()> {
        let mut body = self.head("chat.completion");
        body.push(Member::new(
            "choices",
            vec![object([
                ("index", 0u64.into()),
                (
                    "message",
                    object([("role", "assistant".into()), ("content", text.into())]),
                ),
                ("finish_reason", finish_reason(cut).into()),
            ])],
        ));
        write_json(out, 200, &Json::Object(body), &[])
    }
}
