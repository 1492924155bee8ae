//! A small HTTP/1.1 client for timing servers: std threads and
//! `TcpStream`, one connection per client, kept open for the next request
//! while the server allows it (the stand-in closes after every answer; the
//! gateways keep connections alive).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

/// How long any read or write may stall before the exchange fails.
const IO_LIMIT: Duration = Duration::from_secs(60);

/// A request, framed once and sent as the same bytes every time.
#[derive(Debug, Clone)]
pub struct Request {
    addr: SocketAddr,
    bytes: Vec<u8>,
}

impl Request {
    /// `method path` with these headers and body (a `content-length` is
    /// added); hop-by-hop headers in `headers` are left out.
    pub fn new(
        addr: SocketAddr,
        method: &str,
        path: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Request {
        let mut head = format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\n");
        let hop_by_hop = ["host", "content-length", "transfer-encoding", "connection"];
        for (name, value) in headers {
            if !hop_by_hop.contains(&name.to_ascii_lowercase().as_str()) {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
        }
        if !body.is_empty() || method == "POST" {
            head.push_str(&format!("content-length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body);
        Request { addr, bytes }
    }

    pub fn get(addr: SocketAddr, path: &str) -> Request {
        Request::new(addr, "GET", path, &[], &[])
    }
}

/// A response, its body de-chunked.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
    /// The server closes the connection after this answer.
    close: bool,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// What an answer must be for its time to count.
pub type Check = fn(&Answer) -> Result<(), String>;

/// One client's connection, opened on first use and again after the
/// server closes it.
pub struct Client {
    addr: SocketAddr,
    conn: Option<BufReader<TcpStream>>,
}

impl Client {
    pub fn new(addr: SocketAddr) -> Client {
        Client { addr, conn: None }
    }

    /// Sends `request` and reads its whole answer.
    pub fn exchange(&mut self, request: &Request) -> io::Result<Answer> {
        let reused = self.conn.is_some();
        match self.try_exchange(request) {
            // A kept-alive connection the server closed while idle: once
            // more on a fresh one.
            Err(e) if reused && is_stale(&e) => {
                self.conn = None;
                self.try_exchange(request)
            }
            other => other,
        }
    }

    fn try_exchange(&mut self, request: &Request) -> io::Result<Answer> {
        if self.conn.is_none() {
            let stream = TcpStream::connect(self.addr)?;
            stream.set_nodelay(true)?;
            stream.set_read_timeout(Some(IO_LIMIT))?;
            stream.set_write_timeout(Some(IO_LIMIT))?;
            self.conn = Some(BufReader::new(stream));
        }
        let conn = self.conn.as_mut().expect("connected");
        let result = conn
            .get_mut()
            .write_all(&request.bytes)
            .and_then(|()| read_answer(conn));
        match result {
            Ok(answer) => {
                if answer.close {
                    self.conn = None;
                }
                Ok(answer)
            }
            Err(e) => {
                self.conn = None;
                Err(e)
            }
        }
    }
}

fn is_stale(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

fn read_answer(conn: &mut BufReader<TcpStream>) -> io::Result<Answer> {
    let mut line = String::new();
    if conn.read_line(&mut line)? == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other(format!("not an HTTP status line: {line:?}")))?;
    let mut length = None;
    let mut chunked = false;
    let mut close = line.starts_with("HTTP/1.0");
    loop {
        line.clear();
        if conn.read_line(&mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        let Some((name, value)) = trimmed.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
        match name.as_str() {
            "content-length" => length = value.parse::<usize>().ok(),
            "transfer-encoding" => chunked = value.to_ascii_lowercase().contains("chunked"),
            "connection" => close = value.eq_ignore_ascii_case("close"),
            _ => {}
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            conn.read_line(&mut line)?;
            let size = line.trim().split(';').next().unwrap_or("");
            let size = usize::from_str_radix(size, 16)
                .map_err(|_| io::Error::other(format!("bad chunk size {line:?}")))?;
            if size == 0 {
                // Trailers, then the empty line.
                loop {
                    line.clear();
                    if conn.read_line(&mut line)? == 0 || line.trim_end().is_empty() {
                        break;
                    }
                }
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            conn.read_exact(&mut body[start..])?;
            line.clear();
            conn.read_line(&mut line)?;
        }
    } else if let Some(length) = length {
        body.resize(length, 0);
        conn.read_exact(&mut body)?;
    } else {
        conn.read_to_end(&mut body)?;
        close = true;
    }
    Ok(Answer {
        status,
        body,
        close,
    })
}

/// Sends `request` once on a fresh connection and checks the answer;
/// panics if it fails (a load whose answers are wrong means nothing).
pub fn once(request: &Request, check: Check) -> Duration {
    let started = Instant::now();
    let answer = Client::new(request.addr)
        .exchange(request)
        .unwrap_or_else(|e| panic!("request to {}: {e}", request.addr));
    let elapsed = started.elapsed();
    verify(request, &answer, check);
    elapsed
}

/// Sends `request` on a fresh connection and reads until the server closes
/// it, parsing nothing: the time is the connection, the server's work and
/// the transfer, with as little of the client's as can be. For servers
/// that close after every answer, as the stand-in does. Returns the time
/// and the raw answer.
pub fn raw_once(request: &Request) -> (Duration, Vec<u8>) {
    let started = Instant::now();
    let exchange = || -> io::Result<Vec<u8>> {
        let mut stream = TcpStream::connect(request.addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(IO_LIMIT))?;
        stream.write_all(&request.bytes)?;
        let mut raw = Vec::with_capacity(64 << 10);
        stream.read_to_end(&mut raw)?;
        Ok(raw)
    };
    let raw = exchange().unwrap_or_else(|e| panic!("request to {}: {e}", request.addr));
    (started.elapsed(), raw)
}

fn verify(request: &Request, answer: &Answer, check: Check) {
    if let Err(why) = check(answer) {
        let text = answer.text();
        let shown: String = text.chars().take(600).collect();
        panic!(
            "request to {}: {why} (status {}): {shown}",
            request.addr, answer.status
        );
    }
}

/// The times of one load: every request's latency, and the wall-clock
/// time from the start signal until the last answer.
pub struct Load {
    pub latencies: Vec<Duration>,
    pub wall: Duration,
}

impl Load {
    pub fn per_second(&self) -> f64 {
        self.latencies.len() as f64 / self.wall.as_secs_f64()
    }
}

/// `clients` threads, each on its own connection, send `request`
/// back-to-back `per_client` times after one untimed request each (which
/// opens the connection); all start together.
pub fn run(request: &Request, clients: usize, per_client: usize, check: Check) -> Load {
    let start = Arc::new(Barrier::new(clients + 1));
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let (request, start) = (request.clone(), start.clone());
            thread::spawn(move || {
                let mut client = Client::new(request.addr);
                let exchange = |client: &mut Client| {
                    let answer = client
                        .exchange(&request)
                        .unwrap_or_else(|e| panic!("request to {}: {e}", request.addr));
                    verify(&request, &answer, check);
                };
                exchange(&mut client);
                start.wait();
                let mut times = Vec::with_capacity(per_client);
                for _ in 0..per_client {
                    let began = Instant::now();
                    exchange(&mut client);
                    times.push(began.elapsed());
                }
                times
            })
        })
        .collect();
    start.wait();
    let began = Instant::now();
    let mut latencies = Vec::with_capacity(clients * per_client);
    for worker in workers {
        match worker.join() {
            Ok(times) => latencies.extend(times),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
    Load {
        latencies,
        wall: began.elapsed(),
    }
}
