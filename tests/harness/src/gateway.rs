//! Runs `weft gateway` for a test: natively (`weft gateway --listen
//! 127.0.0.1:0`) or as `weft-gateway.wasm` under `wasmtime serve`, against a
//! home directory the test prepared; plus a small HTTP/1.1 client over a
//! plain `TcpStream` for requests no real client would send, and a runner
//! for the official OpenAI SDK scripts in `tests/hosts/`.
//!
//! Both hosts listen on a port the kernel picks and say which on their
//! output, so no port is guessed. A missing artifact or host is a loud
//! failure naming the script that provides it.

use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::weft::{run_to_end, target_dir, wasmtime, Output};

/// How long a gateway may take to start listening (the first `wasmtime
/// serve` of a component compiles it).
const START_LIMIT: Duration = Duration::from_secs(120);
/// How long a gateway may take to stop once asked.
const STOP_LIMIT: Duration = Duration::from_secs(60);
/// How long one SDK script may run.
const SCRIPT_LIMIT: Duration = Duration::from_secs(180);
/// How long the raw client waits for any byte of an answer.
const READ_LIMIT: Duration = Duration::from_secs(60);

/// What serves the gateway.
#[derive(Debug, Clone)]
pub enum Host {
    /// The native `weft` binary: `weft gateway`.
    Native(PathBuf),
    /// `weft-gateway.wasm` under `wasmtime serve -S cli`.
    Wasmtime { wasm: PathBuf, wasmtime: PathBuf },
}

impl Host {
    /// The native binary at `weft` (in a test: `env!("CARGO_BIN_EXE_weft")`).
    pub fn native(weft: impl Into<PathBuf>) -> Host {
        Host::Native(weft.into())
    }

    /// `$CLAWFT_GATEWAY_WASM`, else the shipped
    /// `target/dist/wasm32-wasip2/weft-gateway.wasm`, under wasmtime.
    pub fn wasmtime() -> Host {
        let wasm = std::env::var_os("CLAWFT_GATEWAY_WASM")
            .map(PathBuf::from)
            .unwrap_or_else(|| target_dir().join("dist/wasm32-wasip2/weft-gateway.wasm"));
        assert!(
            wasm.is_file(),
            "{} is missing: build it with `scripts/build wasm32-wasip2` \
             (or set CLAWFT_GATEWAY_WASM to a built weft-gateway.wasm)",
            wasm.display()
        );
        Host::Wasmtime {
            wasm,
            wasmtime: wasmtime(),
        }
    }

    pub fn is_native(&self) -> bool {
        matches!(self, Host::Native(_))
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Native(_) => f.write_str("native weft gateway"),
            Host::Wasmtime { .. } => f.write_str("wasmtime serve weft-gateway.wasm"),
        }
    }
}

/// A running gateway; dropping it kills the process if it still runs.
pub struct Gateway {
    host: Host,
    child: Child,
    addr: SocketAddr,
    /// Where `wasmtime serve` starts a graceful stop when connected to.
    shutdown: Option<SocketAddr>,
    /// Every line the process printed, stdout and stderr, in arrival order.
    lines: Arc<Mutex<Vec<String>>>,
    /// The threads reading stdout and stderr; they end with the process.
    readers: Vec<thread::JoinHandle<()>>,
    command: String,
    /// The token given to a wasm gateway that the test gave none: it
    /// never serves without one (see [`Gateway::authorized`]).
    auto_token: Option<&'static str>,
}

/// The token a wasm gateway gets when a test configures none.
pub const WASM_TOKEN: &str = "clawft-harness-wasm-token-3d8e";

/// How a gateway ended, and all it printed.
#[derive(Debug)]
pub struct Stopped {
    /// None when a signal ended it.
    pub code: Option<i32>,
    pub output: String,
}

impl Gateway {
    /// Starts the gateway on `home` (natively `CLAWFT_HOME`; under wasmtime
    /// preopened as `/config`, with `home/workspace` as `/workspace`), in an
    /// environment holding only `env`, and waits until it listens.
    pub fn start(host: &Host, home: &Path, env: &[(&str, &str)]) -> Gateway {
        // The wasm gateway asks for a token always (it cannot see its
        // address): a test that configures none gets one, and
        // `authorized` adds it to requests that carry none.
        let configured = env.iter().any(|(k, _)| *k == "CLAWFT_GATEWAY_TOKEN")
            || std::fs::read_to_string(home.join("config.json"))
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .is_some_and(|c| {
                    c["gateway"]["tokens"]
                        .as_array()
                        .is_some_and(|t| !t.is_empty())
                });
        let auto_token =
            (matches!(host, Host::Wasmtime { .. }) && !configured).then_some(WASM_TOKEN);
        let mut env = env.to_vec();
        if let Some(token) = auto_token {
            env.push(("CLAWFT_GATEWAY_TOKEN", token));
        }
        let mut command = match host {
            Host::Native(weft) => {
                let mut c = Command::new(weft);
                c.env_clear().env("CLAWFT_HOME", home);
                c.envs(env.iter().copied());
                c.args(["gateway", "--listen", "127.0.0.1:0"]);
                c
            }
            Host::Wasmtime { wasm, wasmtime } => {
                let workspace = home.join("workspace");
                std::fs::create_dir_all(&workspace).expect("create the workspace");
                let mut c = Command::new(wasmtime);
                c.env_clear();
                c.args(["serve", "-S", "cli", "--dir"])
                    .arg(format!("{}::/config", home.display()))
                    .arg("--dir")
                    .arg(format!("{}::/workspace", workspace.display()));
                for (name, value) in env {
                    c.arg("--env").arg(format!("{name}={value}"));
                }
                c.args(["--addr", "127.0.0.1:0", "--shutdown-addr", "127.0.0.1:0"]);
                c.arg(wasm);
                c
            }
        };
        let shown = format!("{command:?}");
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {shown}: {e}"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let readers = vec![
            collect_lines(child.stdout.take().expect("piped stdout"), &lines),
            collect_lines(child.stderr.take().expect("piped stderr"), &lines),
        ];
        let mut gateway = Gateway {
            host: host.clone(),
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            shutdown: None,
            lines,
            readers,
            command: shown,
            auto_token,
        };
        gateway.wait_until_listening();
        gateway
    }

    /// Reads the addresses the host printed: `listening on http://ADDR`
    /// (weft), `Serving HTTP on http://ADDR/` and `Listening for shutdown
    /// on tcp://ADDR/` (wasmtime).
    fn wait_until_listening(&mut self) {
        let started = Instant::now();
        loop {
            let (serving, shutdown) = {
                let lines = self.lines.lock().unwrap();
                let find = |prefix: &str| {
                    lines.iter().find_map(|l| {
                        let rest = l.trim().strip_prefix(prefix)?;
                        rest.trim_end_matches('/').parse::<SocketAddr>().ok()
                    })
                };
                match self.host {
                    Host::Native(_) => (find("listening on http://"), None),
                    Host::Wasmtime { .. } => (
                        find("Serving HTTP on http://"),
                        find("Listening for shutdown on tcp://"),
                    ),
                }
            };
            let ready = match self.host {
                Host::Native(_) => serving.is_some(),
                Host::Wasmtime { .. } => serving.is_some() && shutdown.is_some(),
            };
            if ready {
                self.addr = serving.unwrap();
                self.shutdown = shutdown;
                return;
            }
            if let Some(status) = self.child.try_wait().expect("wait for the gateway") {
                panic!(
                    "{} exited ({status}) before listening:\n{}",
                    self.command,
                    self.output()
                );
            }
            if started.elapsed() > START_LIMIT {
                panic!(
                    "{} did not listen within {START_LIMIT:?}:\n{}",
                    self.command,
                    self.output()
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn host(&self) -> &Host {
        &self.host
    }

    /// `request` with the harness's own token when this gateway got one
    /// and the request carries none.
    pub fn authorized(&self, request: Request) -> Request {
        match self.auto_token {
            Some(token) if !request.has_header("authorization") => request.bearer(token),
            _ => request,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The `base_url` an OpenAI client is given: `http://ADDR/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process printed so far.
    pub fn output(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// The access lines so far (`METHOD PATH STATUS DURATIONms session=KEY
    /// tools=N`), without wasmtime's `stderr [N] :: ` prefixes.
    pub fn access_lines(&self) -> Vec<String> {
        records(&self.output())
            .into_iter()
            .filter(|l| AccessLine::parse(l).is_some())
            .collect()
    }

    /// Waits (up to `limit`) until `count` access lines match, and returns
    /// them; panics with the output when they do not come.
    pub fn wait_for_access(
        &self,
        count: usize,
        limit: Duration,
        matches: impl Fn(&AccessLine) -> bool,
    ) -> Vec<AccessLine> {
        let started = Instant::now();
        loop {
            let found: Vec<AccessLine> = self
                .access_lines()
                .iter()
                .filter_map(|l| AccessLine::parse(l))
                .filter(|a| matches(a))
                .collect();
            if found.len() >= count {
                return found;
            }
            if started.elapsed() > limit {
                panic!(
                    "{}: expected {count} matching access lines within {limit:?}, found {}:\n{}",
                    self.host,
                    found.len(),
                    self.output()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Asks for a graceful stop: SIGTERM natively; under wasmtime a
    /// connection to its shutdown address (its SIGTERM kills in-flight
    /// requests; the graceful stop is SIGINT or this).
    pub fn begin_stop(&self) {
        match self.shutdown {
            Some(addr) => {
                let _ = TcpStream::connect_timeout(&addr, Duration::from_secs(5));
            }
            None => self.signal("TERM"),
        }
    }

    /// Sends a signal to the process by name (`TERM`, `INT`).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} {} failed", self.pid());
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .try_wait()
            .expect("wait for the gateway")
            .is_none()
    }

    /// Waits for the process to end (it must within a minute).
    pub fn wait(mut self) -> Stopped {
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for the gateway") {
                break status;
            }
            if started.elapsed() > STOP_LIMIT {
                let _ = self.child.kill();
                panic!(
                    "{} did not stop within {STOP_LIMIT:?}:\n{}",
                    self.command,
                    self.output()
                );
            }
            thread::sleep(Duration::from_millis(10));
        };
        // The last lines: the readers end when the pipes close.
        for reader in std::mem::take(&mut self.readers) {
            let _ = reader.join();
        }
        Stopped {
            code: status.code(),
            output: self.output(),
        }
    }

    /// A graceful stop, waited for.
    pub fn stop(self) -> Stopped {
        self.begin_stop();
        self.wait()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn collect_lines(
    pipe: impl Read + Send + 'static,
    lines: &Arc<Mutex<Vec<String>>>,
) -> thread::JoinHandle<()> {
    let lines = lines.clone();
    thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            match line {
                Ok(line) => lines.lock().unwrap().push(line),
                Err(_) => return,
            }
        }
    })
}

/// The log's records: its lines without the `stderr [N] :: ` prefixes
/// `wasmtime serve` writes for each request's instance, split again after
/// each `tools=N`. Concurrent instances' writes interleave (wasmtime writes
/// a prefix apart from the text after it, and the guest a line apart from
/// its newline), so two records can share one line of output.
fn records(text: &str) -> Vec<String> {
    let mut records = Vec::new();
    for line in text.lines() {
        let clean = without_prefixes(line);
        let mut rest = clean.as_str();
        while let Some(at) = rest.find(" tools=") {
            let digits = at + " tools=".len();
            let end = digits
                + rest[digits..]
                    .bytes()
                    .take_while(u8::is_ascii_digit)
                    .count();
            records.push(rest[..end].trim().to_owned());
            rest = &rest[end..];
        }
        if !rest.trim().is_empty() {
            records.push(rest.trim().to_owned());
        }
    }
    records
}

/// A line with every `stdout [N] :: ` and `stderr [N] :: ` taken out.
fn without_prefixes(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    loop {
        let next = ["stderr [", "stdout ["]
            .iter()
            .filter_map(|p| rest.find(p).map(|i| (i, p.len())))
            .min();
        let Some((at, len)) = next else {
            out.push_str(rest);
            return out;
        };
        let after = &rest[at + len..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && after[digits..].starts_with("] :: ") {
            out.push_str(&rest[..at]);
            rest = &after[digits + "] :: ".len()..];
        } else {
            out.push_str(&rest[..at + len]);
            rest = after;
        }
    }
}

/// One access line, read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLine {
    pub method: String,
    pub path: String,
    pub status: u16,
    pub millis: u64,
    /// None for `session=-`.
    pub session: Option<String>,
    pub tools: usize,
}

impl AccessLine {
    /// `METHOD PATH STATUS DURATIONms session=KEY tools=N`, else None.
    pub fn parse(line: &str) -> Option<AccessLine> {
        let words: Vec<&str> = line.split(' ').collect();
        let [method, path, status, millis, session, tools] = words[..] else {
            return None;
        };
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
            return None;
        }
        let session = session.strip_prefix("session=")?;
        Some(AccessLine {
            method: method.to_owned(),
            path: path.to_owned(),
            status: status.parse().ok()?,
            millis: millis.strip_suffix("ms")?.parse().ok()?,
            session: (session != "-").then(|| session.to_owned()),
            tools: tools.strip_prefix("tools=")?.parse().ok()?,
        })
    }
}

/// A request for the raw client. Every request says `Connection: close`,
/// so the answer ends with the connection.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Send `Content-Length` for the body (else the body is sent chunked).
    pub declare_length: bool,
}

impl Request {
    pub fn new(method: &str, path: &str) -> Request {
        Request {
            method: method.to_owned(),
            path: path.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
            declare_length: true,
        }
    }

    pub fn get(path: &str) -> Request {
        Request::new("GET", path)
    }

    /// `POST /v1/chat/completions` with this JSON body.
    pub fn chat(body: &Value) -> Request {
        Request::new("POST", "/v1/chat/completions")
            .header("content-type", "application/json")
            .body(body.to_string())
    }

    pub fn header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn has_header(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    pub fn bearer(self, token: &str) -> Request {
        self.header("authorization", &format!("Bearer {token}"))
    }

    pub fn session(self, key: &str) -> Request {
        self.header("x-clawft-session", key)
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = body.into();
        self
    }

    /// Sends the body with `Transfer-Encoding: chunked` instead of a length.
    pub fn chunked(mut self) -> Request {
        self.declare_length = false;
        self
    }

    /// The request head as sent.
    fn head(&self, addr: SocketAddr) -> Vec<u8> {
        let mut head = format!("{} {} HTTP/1.1\r\n", self.method, self.path);
        if !self.has_header("host") {
            head.push_str(&format!("host: {addr}\r\n"));
        }
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        let sends_body = !self.body.is_empty() || self.method == "POST";
        if sends_body && self.declare_length {
            head.push_str(&format!("content-length: {}\r\n", self.body.len()));
        } else if sends_body {
            head.push_str("transfer-encoding: chunked\r\n");
        }
        head.push_str("connection: close\r\n\r\n");
        head.into_bytes()
    }

    /// The body as sent: as it is, or in 64 KiB chunks.
    fn framed_body(&self) -> Vec<u8> {
        if self.declare_length {
            return self.body.clone();
        }
        let mut framed = Vec::with_capacity(self.body.len() + 64);
        for piece in self.body.chunks(64 << 10) {
            framed.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
            framed.extend_from_slice(piece);
            framed.extend_from_slice(b"\r\n");
        }
        framed.extend_from_slice(b"0\r\n\r\n");
        framed
    }

    /// Sends the request and reads the whole answer.
    pub fn send(&self, addr: SocketAddr) -> io::Result<Reply> {
        let mut bytes = self.head(addr);
        bytes.extend_from_slice(&self.framed_body());
        send_raw(addr, &bytes)
    }

    /// Sends the request and returns the connection, to read the answer
    /// as it arrives.
    pub fn open(&self, addr: SocketAddr) -> io::Result<Streaming> {
        let mut stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(READ_LIMIT))?;
        let mut bytes = self.head(addr);
        bytes.extend_from_slice(&self.framed_body());
        stream.write_all(&bytes)?;
        Ok(Streaming {
            stream,
            received: Vec::new(),
        })
    }
}

/// Writes `bytes` (on a thread of its own, so a server that answers
/// before it read everything is heard) and reads the answer to the end.
pub fn send_raw(addr: SocketAddr, bytes: &[u8]) -> io::Result<Reply> {
    let stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(READ_LIMIT))?;
    stream.set_write_timeout(Some(READ_LIMIT))?;
    let mut writer = stream.try_clone()?;
    let mut reader = stream;
    thread::scope(|scope| {
        scope.spawn(move || {
            // A server that refuses the body closes early: that is its answer.
            let _ = writer.write_all(bytes);
        });
        let received = read_all(&mut reader)?;
        // Unblocks the writer if the server stopped reading.
        let _ = reader.shutdown(Shutdown::Both);
        Reply::parse(&received)
    })
}

/// Reads until the peer closes, keeping what arrived before a reset.
fn read_all(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut received = Vec::new();
    let mut buf = [0u8; 16 << 10];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Ok(received),
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset && !received.is_empty() => {
                return Ok(received)
            }
            Err(e) => return Err(e),
        }
    }
}

/// A connection whose answer is read as it arrives.
pub struct Streaming {
    stream: TcpStream,
    received: Vec<u8>,
}

impl Streaming {
    /// Reads until what arrived (raw, framing included) contains `needle`;
    /// returns it all as text.
    pub fn read_until(&mut self, needle: &str) -> io::Result<String> {
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&self.received).contains(needle) {
            let n = self.stream.read(&mut buf)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "closed before {needle:?} arrived; got {:?}",
                        String::from_utf8_lossy(&self.received)
                    ),
                ));
            }
            self.received.extend_from_slice(&buf[..n]);
        }
        Ok(String::from_utf8_lossy(&self.received).into_owned())
    }

    /// Reads the rest of the answer and parses the whole of it.
    pub fn finish(mut self) -> io::Result<Reply> {
        let rest = read_all(&mut self.stream)?;
        self.received.extend_from_slice(&rest);
        Reply::parse(&self.received)
    }

    /// Closes the connection abruptly, as a client that goes away.
    pub fn abandon(self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

/// An answer as the raw client read it.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    /// Names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body, chunked coding removed.
    pub body: Vec<u8>,
}

impl Reply {
    fn parse(received: &[u8]) -> io::Result<Reply> {
        let bad = |why: &str| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{why}: {:?}", String::from_utf8_lossy(received)),
            )
        };
        let end = find(received, b"\r\n\r\n").ok_or_else(|| bad("no complete head"))?;
        let head = String::from_utf8_lossy(&received[..end]).into_owned();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("no status"))?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let raw = &received[end + 4..];
        let chunked = headers
            .iter()
            .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
        let body = if chunked {
            dechunk(raw).ok_or_else(|| bad("broken chunked body"))?
        } else {
            raw.to_vec()
        };
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON (Null if it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// `error.code` of an OpenAI-style error body.
    pub fn error_code(&self) -> Option<String> {
        self.json()["error"]["code"].as_str().map(str::to_owned)
    }

    /// The `data:` payloads of an SSE body, in order.
    pub fn events(&self) -> Vec<String> {
        self.text()
            .split("\n\n")
            .filter_map(|event| event.strip_prefix("data: "))
            .map(str::to_owned)
            .collect()
    }

    /// The assistant's text: the message of a whole answer, or the content
    /// deltas of a stream joined.
    pub fn content(&self) -> String {
        if self.header("content-type") == Some("text/event-stream") {
            self.events()
                .iter()
                .filter_map(|e| serde_json::from_str::<Value>(e).ok())
                .filter_map(|e| {
                    e["choices"][0]["delta"]["content"]
                        .as_str()
                        .map(str::to_owned)
                })
                .collect()
        } else {
            self.json()["choices"][0]["message"]["content"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        }
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?} {}", self.status, self.headers, self.text())
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Removes chunked coding; None if it is broken or unfinished.
fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = find(raw, b"\r\n")?;
        let size_text = std::str::from_utf8(&raw[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Some(body);
        }
        if raw.len() < size + 2 {
            return None;
        }
        body.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

/// The Python of the hosts venv: `$CLAWFT_HOSTS/venv/bin/python`, else
/// `target/hosts/venv/bin/python` (made by `scripts/setup-hosts`).
pub fn python() -> PathBuf {
    let hosts = std::env::var_os("CLAWFT_HOSTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("hosts"));
    let python = hosts.join("venv/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: install the hosts with `scripts/setup-hosts` \
         (or set CLAWFT_HOSTS to where it installed them)",
        python.display()
    );
    python
}

/// A client script in `tests/hosts/`.
pub fn host_script(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../hosts")
        .join(name);
    assert!(path.is_file(), "{} is missing", path.display());
    path
}

/// Runs `tests/hosts/SCRIPT ARGS` with the venv's Python, in a clean
/// environment (no proxy or OpenAI variables from outside).
pub fn run_script(script: &str, args: &[&str]) -> Output {
    let python = python();
    let path = host_script(script);
    let mut command = Command::new(&python);
    command
        .env_clear()
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1")
        .arg(&path)
        .args(args);
    let shown = format!("python {script} {}", args.join(" "));
    run_to_end(command, shown, None, SCRIPT_LIMIT)
}

/// A session file's lines as JSON, checked whole: every line parses, the
/// first is the metadata, the rest are user/assistant turns (tool calls
/// and results between them). Returns the messages (metadata left out).
pub fn whole_session(path: &Path) -> Result<Vec<Value>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !text.ends_with('\n') {
        return Err(format!("{} does not end with a newline", path.display()));
    }
    let mut lines = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let value: Value = serde_json::from_str(line)
            .map_err(|e| format!("{} line {}: {e}: {line:?}", path.display(), i + 1))?;
        lines.push(value);
    }
    let Some((meta, messages)) = lines.split_first() else {
        return Err(format!("{} is empty", path.display()));
    };
    if meta["_type"] != "metadata" {
        return Err(format!(
            "{}: first line is not metadata: {meta}",
            path.display()
        ));
    }
    // Turns: a user message, then assistant and tool messages, ending with
    // an assistant message.
    let mut expect_user = true;
    for (i, m) in messages.iter().enumerate() {
        let role = m["role"].as_str().unwrap_or("?");
        let ok = match (expect_user, role) {
            (true, "user") => {
                expect_user = false;
                true
            }
            (false, "assistant") => {
                let ends_turn = messages.get(i + 1).is_none_or(|n| n["role"] == "user");
                expect_user = ends_turn;
                true
            }
            (false, "tool") => true,
            _ => false,
        };
        if !ok {
            return Err(format!(
                "{}: message {} has role {role} out of turn:\n{text}",
                path.display(),
                i + 1
            ));
        }
    }
    if !expect_user {
        return Err(format!(
            "{}: the last turn is unfinished:\n{text}",
            path.display()
        ));
    }
    Ok(messages.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_interleaved_instances() {
        let text = "Serving HTTP on http://127.0.0.1:1/\n\
                    stderr [3] :: stderr [4] :: POST /a 200 5ms session=k tools=0\n\
                    POST /b 200 6ms session=- tools=2stderr [5] :: GET /c 404 0ms session=- tools=0\n\
                    stderr [6] :: data [7] :: x";
        let lines: Vec<AccessLine> = records(text)
            .iter()
            .filter_map(|l| AccessLine::parse(l))
            .collect();
        let seen: Vec<_> = lines
            .iter()
            .map(|l| (l.method.as_str(), l.path.as_str(), l.status, l.tools))
            .collect();
        assert_eq!(
            seen,
            [
                ("POST", "/a", 200, 0),
                ("POST", "/b", 200, 2),
                ("GET", "/c", 404, 0)
            ]
        );
        assert_eq!(lines[0].session.as_deref(), Some("k"));
        assert_eq!(records("stderr [6] :: data [7] :: x"), ["data [7] :: x"]);
    }

    #[test]
    fn chunked_bodies_decode() {
        assert_eq!(
            dechunk(b"3\r\nabc\r\n2;x=1\r\nde\r\n0\r\n\r\n").as_deref(),
            Some(&b"abcde"[..])
        );
        assert_eq!(dechunk(b"3\r\nab"), None);
    }
}
