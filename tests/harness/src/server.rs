//! A provider stand-in on 127.0.0.1 that speaks both chat protocols.
//!
//! The scenario is the first path segment, so one server serves every test:
//! point a provider's `api_base` at [`Server::base`]`("ok")` and requests land
//! on `/ok/v1/chat/completions` (OpenAI) or `/ok/v1/messages` (Anthropic).
//!
//! | scenario     | behaviour                                                   |
//! |--------------|-------------------------------------------------------------|
//! | `ok`         | replies `echo: <last user message> [history N]`             |
//! | `status-NNN` | answers status NNN with the protocol's error JSON            |
//! | `slow-MS`    | waits MS milliseconds before answering                      |
//! | `stall-MS`   | streams the first piece, then goes quiet for MS milliseconds |
//! | `cut`        | streams part of the reply, then drops the connection        |
//! | `echo-key`   | answers 401 with a message that repeats the key it was sent  |
//! | `plain-json` | answers with a complete JSON reply even when asked to stream |
//! | `flaky-N-CODE` | answers status CODE to the first N requests, then as `ok` |
//! | `retry-after-S` | answers 429 with `Retry-After: S` once, then as `ok`      |
//! | `drop-N`     | closes the first N connections without a word, then as `ok` |
//! | `close-mid-body` | promises a JSON body, sends half, hangs up              |
//! | `malformed`  | answers 200 with broken JSON (in SSE data when streaming)   |
//! | `bad-utf8`   | answers 200 with bytes that are not UTF-8                   |
//! | `escapes`    | replies with terminal escapes (bold, an OSC 52 clipboard write) |
//! | `split-surrogate` | streams an emoji as two `\u` halves in two events      |
//! | `endless`    | streams text events until the client gives up               |
//! | `model`      | a scripted model for tool conversations (see [`crate::model`]) |
//! | `page...`    | GET: pages for the `web_fetch` tool (see [`serve_page`])      |
//!
//! Replies stream as SSE over chunked encoding, a word per event, the way
//! real providers do. Every request is recorded for the test to inspect,
//! with the moments its streamed reply's first event and first text event
//! went out (for time-to-first-token measurements). The server stops when
//! dropped, and by itself after ten idle minutes.
//!
//! [`Server::start_tls`] serves HTTPS with the test certificate in `certs/`
//! (signed by `certs/ca.pem`, a CA nothing else trusts).

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::model::Answer;

/// Idle time after which a forgotten server shuts itself down.
const IDLE_LIMIT: Duration = Duration::from_secs(600);

/// A request as the server received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// Names in lower case, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// When the request arrived.
    pub at: Instant,
    /// Filled in while the reply streams; shared by every clone.
    sent: Arc<StreamMarks>,
}

/// When a streamed reply's first event and first text event went out: the
/// moment just before each was written to the connection (in one write).
#[derive(Debug, Default)]
struct StreamMarks {
    first_event: OnceLock<Instant>,
    first_text: OnceLock<Instant>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// When the first SSE event of the reply went out (None unless streamed).
    pub fn first_event_sent(&self) -> Option<Instant> {
        self.sent.first_event.get().copied()
    }

    /// When the first SSE event carrying reply text went out (None unless
    /// streamed): the earliest moment a client could show a token.
    pub fn first_text_sent(&self) -> Option<Instant> {
        self.sent.first_text.get().copied()
    }

    /// The scenario: the first segment of the path.
    pub fn scenario(&self) -> &str {
        self.path
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap_or("")
    }

    /// The body as JSON (Null if it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// What the `escapes` scenario answers: formatting a terminal may show,
/// and an OSC 52 clipboard write it must not.
pub const ESCAPES_REPLY: &str = "\u{1b}[1mbold\u{1b}[0m \u{1b}]52;c;cHduZWQ=\u{7}safe text";

/// The test CA, PEM: trust it (`SSL_CERT_FILE`) to talk to [`Server::start_tls`].
pub const TEST_CA_PEM: &str = include_str!("../certs/ca.pem");
const SERVER_CERT_PEM: &str = include_str!("../certs/server.pem");
const SERVER_KEY_PEM: &str = include_str!("../certs/server.key");

/// The running server; dropping it stops it.
pub struct Server {
    addr: SocketAddr,
    tls: bool,
    log: Arc<Mutex<Vec<Recorded>>>,
    stop: Arc<AtomicBool>,
    accepting: thread::JoinHandle<()>,
}

/// Requests and connections seen per scenario, for the `flaky`/`drop` ones.
#[derive(Default)]
struct Counts {
    requests: HashMap<String, usize>,
}

impl Server {
    /// Binds a free port on 127.0.0.1 and serves plain HTTP.
    pub fn start() -> Server {
        Server::spawn(None)
    }

    /// Binds a free port on 127.0.0.1 and serves HTTPS with the test certificate.
    pub fn start_tls() -> Server {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs = CertificateDer::pem_slice_iter(SERVER_CERT_PEM.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .expect("test certificate");
        let key = PrivateKeyDer::from_pem_slice(SERVER_KEY_PEM.as_bytes()).expect("test key");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("TLS server config");
        Server::spawn(Some(Arc::new(config)))
    }

    fn spawn(tls: Option<Arc<rustls::ServerConfig>>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("local addr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(Mutex::new(Counts::default()));
        let last_activity = Arc::new(Mutex::new(Instant::now()));
        let has_tls = tls.is_some();
        let accepting = {
            let (log, stop, last_activity) = (log.clone(), stop.clone(), last_activity.clone());
            thread::spawn(move || accept_loop(listener, tls, log, counts, stop, last_activity))
        };
        {
            let stop = stop.clone();
            thread::spawn(move || stop_when_idle(addr, &stop, &last_activity));
        }
        Server {
            addr,
            tls: has_tls,
            log,
            stop,
            accepting,
        }
    }

    /// False once the server stopped (dropped, or idle too long).
    pub fn is_running(&self) -> bool {
        !self.accepting.is_finished()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// An `api_base` for a scenario, e.g. `http://127.0.0.1:PORT/ok/v1`.
    pub fn base(&self, scenario: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}/{scenario}/v1", self.addr)
    }

    /// Everything received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.log.lock().unwrap().clone()
    }

    /// Everything received since the last call; the server forgets it.
    pub fn take_requests(&self) -> Vec<Recorded> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        stop_accepting(self.addr, &self.stop);
    }
}

/// Tells the accepting thread to stop, and wakes it from `accept`.
fn stop_accepting(addr: SocketAddr, stop: &AtomicBool) {
    stop.store(true, Ordering::SeqCst);
    let _ = TcpStream::connect_timeout(&addr, Duration::from_secs(1));
}

/// Accepts in blocking mode, so a connection is answered the moment it
/// arrives (timings measured against the server include no polling delay).
fn accept_loop(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    log: Arc<Mutex<Vec<Recorded>>>,
    counts: Arc<Mutex<Counts>>,
    stop: Arc<AtomicBool>,
    last_activity: Arc<Mutex<Instant>>,
) {
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        match stream {
            Ok(stream) => {
                *last_activity.lock().unwrap() = Instant::now();
                let log = log.clone();
                let tls = tls.clone();
                let counts = counts.clone();
                thread::spawn(move || {
                    let _ = serve(stream, tls, &log, &counts);
                });
            }
            Err(_) => thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Stops the server once no connection arrived for [`IDLE_LIMIT`].
fn stop_when_idle(addr: SocketAddr, stop: &AtomicBool, last_activity: &Mutex<Instant>) {
    while !stop.load(Ordering::SeqCst) {
        if last_activity.lock().unwrap().elapsed() >= IDLE_LIMIT {
            stop_accepting(addr, stop);
            return;
        }
        thread::sleep(Duration::from_millis(200));
    }
}

/// A connection the server answers on: plain TCP or TLS over it.
trait Conn: Read + Write {
    /// Drops the connection abruptly, mid-reply.
    fn cut(&mut self) -> io::Result<()>;
}

impl Conn for TcpStream {
    fn cut(&mut self) -> io::Result<()> {
        self.shutdown(std::net::Shutdown::Both)
    }
}

impl Conn for rustls::StreamOwned<rustls::ServerConnection, TcpStream> {
    fn cut(&mut self) -> io::Result<()> {
        self.sock.shutdown(std::net::Shutdown::Both)
    }
}

fn serve(
    stream: TcpStream,
    tls: Option<Arc<rustls::ServerConfig>>,
    log: &Mutex<Vec<Recorded>>,
    counts: &Mutex<Counts>,
) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    // As real servers do: each streamed event leaves when written, not when
    // Nagle's algorithm has heard back about the previous one.
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    match tls {
        None => answer(stream, log, counts),
        Some(config) => {
            let session = rustls::ServerConnection::new(config).map_err(io::Error::other)?;
            answer(rustls::StreamOwned::new(session, stream), log, counts)
        }
    }
}

fn answer(
    mut conn: impl Conn,
    log: &Mutex<Vec<Recorded>>,
    counts: &Mutex<Counts>,
) -> io::Result<()> {
    let request = {
        let mut reader = BufReader::new(&mut conn);
        match read_request(&mut reader)? {
            Some(request) => request,
            None => return Ok(()),
        }
    };
    log.lock().unwrap().push(request.clone());
    let scenario = request.scenario();
    let seen = {
        let mut counts = counts.lock().unwrap();
        let n = counts.requests.entry(scenario.to_owned()).or_default();
        *n += 1;
        *n
    };
    respond(&mut conn, &request, seen)
}

fn read_request(reader: &mut impl BufRead) -> io::Result<Option<Recorded>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        if let Some((name, value)) = trimmed.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    let find = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if let Some(len) = find("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(len, 0);
        reader.read_exact(&mut body)?;
    } else if find("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        loop {
            line.clear();
            reader.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or("0"), 16)
                .unwrap_or(0);
            if size == 0 {
                line.clear();
                reader.read_line(&mut line)?;
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            reader.read_exact(&mut body[start..])?;
            line.clear();
            reader.read_line(&mut line)?;
        }
    }
    Ok(Some(Recorded {
        method,
        path,
        headers,
        body,
        at: Instant::now(),
        sent: Arc::default(),
    }))
}

/// The protocol a request speaks, from its path.
#[derive(Clone, Copy, PartialEq)]
pub enum Wire {
    OpenAi,
    Anthropic,
}

/// Answers a request; `seen` counts the requests to this scenario so far.
fn respond(stream: &mut impl Conn, request: &Recorded, seen: usize) -> io::Result<()> {
    let scenario = request.scenario();
    if request.method == "GET" {
        return serve_page(stream, scenario);
    }
    let wire = if request.path.ends_with("/messages") {
        Wire::Anthropic
    } else if request.path.ends_with("/chat/completions") {
        Wire::OpenAi
    } else {
        return send_json(
            stream,
            404,
            &json!({"error": {"message": "no such endpoint"}}),
        );
    };
    let body = request.json();
    let wants_stream = body["stream"] == json!(true);
    let reply = echo_reply(&body);

    if let Some((n, code)) = scenario
        .strip_prefix("flaky-")
        .and_then(|r| r.split_once('-'))
    {
        let (n, code): (usize, u16) = (n.parse().unwrap_or(1), code.parse().unwrap_or(500));
        if seen <= n {
            let message = format!("mock error {code} (attempt {seen})");
            return send_json(stream, code, &error_body(wire, code, &message));
        }
    }
    if let Some(secs) = scenario.strip_prefix("retry-after-") {
        if seen == 1 {
            let body = error_body(wire, 429, "mock rate limit").to_string();
            return write!(
                stream,
                "HTTP/1.1 429 Too Many Requests\r\nretry-after: {secs}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    }
    if let Some(n) = scenario.strip_prefix("drop-") {
        if seen <= n.parse().unwrap_or(1) {
            return stream.cut();
        }
    }
    if let Some(code) = scenario.strip_prefix("status-") {
        let code: u16 = code.parse().unwrap_or(500);
        return send_json(
            stream,
            code,
            &error_body(wire, code, &format!("mock error {code}")),
        );
    }
    if let Some(ms) = scenario.strip_prefix("slow-") {
        thread::sleep(Duration::from_millis(ms.parse().unwrap_or(5000)));
    }
    match scenario {
        "model" => match crate::model::answer(wire, &body, wants_stream) {
            Answer::Whole(reply) => send_json(stream, 200, &reply),
            Answer::Events(events) => send_stream_raw(
                stream,
                &events
                    .into_iter()
                    .map(String::into_bytes)
                    .collect::<Vec<_>>(),
            ),
            Answer::Refused(why) => send_json(stream, 400, &error_body(wire, 400, &why)),
        },
        "echo-key" => {
            let sent = request
                .header("authorization")
                .map(|v| v.trim_start_matches("Bearer ").to_owned())
                .or_else(|| request.header("x-api-key").map(str::to_owned))
                .unwrap_or_default();
            let message = format!("Incorrect API key provided: {sent}");
            send_json(stream, 401, &error_body(wire, 401, &message))
        }
        "plain-json" => send_json(stream, 200, &complete_body(wire, &reply)),
        "close-mid-body" => {
            let body = complete_body(wire, &reply).to_string();
            write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{}",
                body.len(),
                &body[..body.len() / 2]
            )?;
            stream.flush()?;
            stream.cut()
        }
        "malformed" if wants_stream => send_stream_raw(
            stream,
            &[b"data: {\"choices\": [{\"delta\": {\"content\": \"Hi\"\n\n".to_vec()],
        ),
        "malformed" => send_raw(stream, "application/json", b"{\"choices\": [{\"message\": "),
        "bad-utf8" if wants_stream => send_stream_raw(
            stream,
            &[
                b"data: {\"choices\":[{\"delta\":{\"content\":\"ok \xff\xfe\"}}]}\n\n".to_vec(),
                b"data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n".to_vec(),
            ],
        ),
        // A proxy that re-chunks by UTF-16 code unit cut the emoji in two.
        "split-surrogate" => send_stream_raw(
            stream,
            &[
                br#"data: {"choices":[{"delta":{"content":"smile \ud83d"}}]}"#.to_vec(),
                b"\n\n".to_vec(),
                br#"data: {"choices":[{"delta":{"content":"\ude00"},"finish_reason":"stop"}]}"#
                    .to_vec(),
                b"\n\ndata: [DONE]\n\n".to_vec(),
            ],
        ),
        "bad-utf8" => send_raw(
            stream,
            "application/json",
            b"{\"choices\":[{\"message\":{\"content\":\"\xff\xfe\"}}]}",
        ),
        "endless" => send_endless(stream, wire),
        "escapes" if wants_stream => {
            send_stream(stream, wire, ESCAPES_REPLY, None, false, &request.sent)
        }
        "escapes" => send_json(stream, 200, &complete_body(wire, ESCAPES_REPLY)),
        _ if !wants_stream => send_json(stream, 200, &complete_body(wire, &reply)),
        _ => {
            let stall = scenario
                .strip_prefix("stall-")
                .map(|ms| Duration::from_millis(ms.parse().unwrap_or(5000)));
            let cut = scenario == "cut";
            send_stream(stream, wire, &reply, stall, cut, &request.sent)
        }
    }
}

/// Pages for the `web_fetch` tool: `page` is HTML, `page-text` plain
/// text, `page-binary` an image, `page-big` 2 MB of text, `page-moved` a
/// redirect to `page-text`, `page-loop` a redirect to itself, `page-drip`
/// 100 bytes over 10 s; anything else 404.
fn serve_page(stream: &mut impl Conn, scenario: &str) -> io::Result<()> {
    match scenario {
        "page" => send_raw(
            stream,
            "text/html; charset=utf-8",
            b"<html><head><title>Stand-in page</title><script>var x = 1;</script></head>\
              <body><h1>Weather</h1><p>Sunny &amp; warm, 21 C.</p></body></html>",
        ),
        "page-text" => send_raw(stream, "text/plain", b"plain words\n"),
        "page-binary" => send_raw(stream, "image/png", b"\x89PNG\r\n\x1a\n"),
        "page-big" => send_raw(stream, "text/plain", &vec![b'x'; 2 << 20]),
        "page-moved" => send_redirect(stream, "/page-text"),
        "page-loop" => send_redirect(stream, "page-loop"),
        "page-drip" => {
            // 100 bytes, one every 100 ms: each byte is prompt, the whole slow.
            write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 100\r\nconnection: close\r\n\r\n"
            )?;
            for _ in 0..100 {
                stream.write_all(b"d")?;
                stream.flush()?;
                std::thread::sleep(Duration::from_millis(100));
            }
            Ok(())
        }
        _ => send_json(stream, 404, &json!({"error": {"message": "no such page"}})),
    }
}

/// The deterministic answer: the last user message (or its length, if
/// long) and how many messages the request carried.
fn echo_reply(body: &Value) -> String {
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let last = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .and_then(|m| m["content"].as_str())
        .unwrap_or("");
    let said = if last.len() > 200 {
        format!("{} bytes", last.len())
    } else {
        last.to_owned()
    };
    let history = messages.iter().filter(|m| m["role"] != "system").count();
    format!("echo: {said} [history {history}]")
}

fn error_body(wire: Wire, code: u16, message: &str) -> Value {
    match wire {
        Wire::OpenAi => {
            json!({"error": {"message": message, "type": "mock_error", "param": null, "code": code}})
        }
        Wire::Anthropic => {
            json!({"type": "error", "error": {"type": "mock_error", "message": message}})
        }
    }
}

fn complete_body(wire: Wire, reply: &str) -> Value {
    match wire {
        Wire::OpenAi => json!({
            "id": "chatcmpl-mock", "object": "chat.completion", "model": "mock",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
        }),
        Wire::Anthropic => json!({
            "id": "msg_mock", "type": "message", "role": "assistant", "model": "mock",
            "content": [{"type": "text", "text": reply}],
            "stop_reason": "end_turn", "usage": {"input_tokens": 1, "output_tokens": 1}
        }),
    }
}

fn send_json(stream: &mut impl Conn, status: u16, body: &Value) -> io::Result<()> {
    let body = body.to_string();
    write!(
        stream,
        "HTTP/1.1 {status} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        reason(status),
        body.len()
    )?;
    stream.flush()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        529 => "Overloaded",
        _ => "Status",
    }
}

fn send_raw(stream: &mut impl Conn, content_type: &str, body: &[u8]) -> io::Result<()> {
    write!(
        stream,
        "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )?;
    stream.write_all(body)?;
    stream.flush()
}

fn send_redirect(stream: &mut impl Conn, location: &str) -> io::Result<()> {
    write!(
        stream,
        "HTTP/1.1 301 Moved Permanently\r\nlocation: {location}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    )?;
    stream.flush()
}

fn send_stream_raw(stream: &mut impl Conn, events: &[Vec<u8>]) -> io::Result<()> {
    write!(
        stream,
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    )?;
    for event in events {
        write!(stream, "{:x}\r\n", event.len())?;
        stream.write_all(event)?;
        stream.write_all(b"\r\n")?;
    }
    stream.write_all(b"0\r\n\r\n")?;
    stream.flush()
}

/// One SSE event as written on the wire.
struct Event {
    wire: String,
    /// Whether it carries a piece of the reply's text.
    text: bool,
}

/// Text events without end, until the client hangs up.
fn send_endless(stream: &mut impl Conn, wire: Wire) -> io::Result<()> {
    write!(
        stream,
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    )?;
    let event = events(wire, "more")
        .into_iter()
        .find(|e| e.text)
        .expect("a text event");
    let batch = event.wire.repeat(64);
    loop {
        write!(stream, "{:x}\r\n{batch}\r\n", batch.len())?;
        stream.flush()?;
    }
}

/// The reply as SSE events, a word (with its leading space) per text event.
fn events(wire: Wire, reply: &str) -> Vec<Event> {
    let mut pieces: Vec<String> = Vec::new();
    for (i, word) in reply.split(' ').enumerate() {
        pieces.push(if i == 0 {
            word.to_owned()
        } else {
            format!(" {word}")
        });
    }
    let data = |v: Value| format!("data: {v}\n\n");
    let named = |name: &str, v: Value| format!("event: {name}\ndata: {v}\n\n");
    let meta = |wire: String| Event { wire, text: false };
    let text = |wire: String| Event { wire, text: true };
    let mut out = Vec::new();
    match wire {
        Wire::OpenAi => {
            let chunk = |delta: Value, finish: Value| {
                data(
                    json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk",
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}),
                )
            };
            out.push(meta(chunk(
                json!({"role": "assistant", "content": ""}),
                Value::Null,
            )));
            for p in pieces {
                out.push(text(chunk(json!({"content": p}), Value::Null)));
            }
            out.push(meta(chunk(json!({}), json!("stop"))));
            out.push(meta("data: [DONE]\n\n".to_owned()));
        }
        Wire::Anthropic => {
            out.push(meta(named("message_start", json!({"type": "message_start", "message": {"id": "msg_mock", "type": "message", "role": "assistant", "content": [], "model": "mock"}}))));
            out.push(meta(named("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}))));
            out.push(meta(named("ping", json!({"type": "ping"}))));
            for p in pieces {
                out.push(text(named("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}}))));
            }
            out.push(meta(named(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": 0}),
            )));
            out.push(meta(named("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 3}}))));
            out.push(meta(named("message_stop", json!({"type": "message_stop"}))));
        }
    }
    out
}

fn send_stream(
    stream: &mut impl Conn,
    wire: Wire,
    reply: &str,
    stall: Option<Duration>,
    cut: bool,
    marks: &StreamMarks,
) -> io::Result<()> {
    write!(
        stream,
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    )?;
    let events = events(wire, reply);
    let keep = if cut { events.len() / 2 } else { events.len() };
    for (i, event) in events.iter().take(keep).enumerate() {
        // One write per event, noted just before it goes out.
        let chunk = format!("{:x}\r\n{}\r\n", event.wire.len(), event.wire);
        let now = Instant::now();
        let _ = marks.first_event.set(now);
        if event.text {
            let _ = marks.first_text.set(now);
        }
        stream.write_all(chunk.as_bytes())?;
        stream.flush()?;
        if i == 1 {
            if let Some(pause) = stall {
                thread::sleep(pause);
            }
        }
        thread::sleep(Duration::from_millis(2));
    }
    if cut {
        return stream.cut();
    }
    write!(stream, "0\r\n\r\n")?;
    stream.flush()
}
