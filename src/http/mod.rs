//! HTTP: the types every part of clawft speaks, and the outgoing
//! [`client`], with one backend per target:
//!
//! | target                     | backend                                          |
//! |----------------------------|--------------------------------------------------|
//! | `wasm32-wasip2`            | `wasi:http/outgoing-handler` through `wasip2`    |
//! | `wasm32-wasip1`            | none: every call is [`HttpError::Unavailable`]   |
//! | native (Linux, static musl)| `ureq` (blocking, rustls, bundled roots)         |
//!
//! [`client`] is the only place that chooses; the rest of clawft sees
//! [`send`], [`Request`], [`Response`] and [`HttpError`] only.

use std::fmt;
use std::time::{Duration, Instant};

pub mod client;
pub mod server;

pub use client::{send, AVAILABLE};

/// What clawft calls itself in the `user-agent` header.
pub const USER_AGENT: &str = concat!("clawft/", env!("CARGO_PKG_VERSION"));

/// The request methods clawft sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
        }
    }
}

/// How long each phase of an exchange may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Finding and connecting to the server (TLS handshake included).
    pub connect: Duration,
    /// Waiting for the first byte of the response, and then for each further
    /// byte: a model may think for minutes before it answers, and a stream is
    /// never cut off while it keeps flowing.
    pub response: Duration,
}

impl Timeouts {
    /// The timeout error for `phase`, quoting the limit that applied to it.
    pub fn exceeded(self, phase: Phase) -> HttpError {
        let limit = match phase {
            Phase::Connect => self.connect,
            Phase::Send | Phase::FirstByte | Phase::BetweenBytes => self.response,
        };
        HttpError::Timeout { phase, limit }
    }
}

/// A request with a complete body.
#[derive(Clone)]
pub struct Request {
    pub method: Method,
    pub url: String,
    /// Header names and values; secrets live here, so this type never prints them.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub timeouts: Timeouts,
}

impl fmt::Debug for Request {
    /// Header names only: their values carry the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &names)
            .field("body_bytes", &self.body.len())
            .field("timeouts", &self.timeouts)
            .finish()
    }
}

/// A response whose body is still on the wire.
pub struct Response {
    pub status: u16,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Box<dyn ReadBody>,
}

impl Response {
    /// The first value of a header, by lower-case name.
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// Reads at most `limit` bytes of the body, as many as arrive before the
    /// limit, the end or an error: enough to find an error message in.
    pub fn read_prefix(&mut self, limit: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = [0u8; 8192];
        while out.len() < limit {
            match self.body.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n.min(limit - out.len())]),
            }
        }
        out
    }

    /// Reads the whole body, refusing to hold more than `limit` bytes or,
    /// with a `deadline`, to go on reading past it (each read has its own
    /// timeout already; the deadline bounds them all together).
    pub fn read_to_end(
        &mut self,
        limit: usize,
        deadline: Option<Instant>,
    ) -> Result<Vec<u8>, HttpError> {
        let mut out = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            let n = self.body.read(&mut buf)?;
            if n == 0 {
                return Ok(out);
            }
            if out.len() + n > limit {
                return Err(HttpError::TooLarge(limit));
            }
            out.extend_from_slice(&buf[..n]);
            if deadline.is_some_and(|d| Instant::now() > d) {
                return Err(HttpError::Timeout {
                    phase: Phase::BetweenBytes,
                    limit: Duration::ZERO,
                });
            }
        }
    }
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

/// The first value of a header in a list of lower-case names and values.
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// A response body read piece by piece; `Ok(0)` means the body is complete.
pub trait ReadBody {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, HttpError>;
}

impl ReadBody for &[u8] {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, HttpError> {
        let n = buf.len().min(self.len());
        buf[..n].copy_from_slice(&self[..n]);
        *self = &self[n..];
        Ok(n)
    }
}

/// Why a request got no (complete) answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// There is no HTTP here (a host without `wasi:http`), or the server
    /// could not be reached at all: connection refused, DNS failure, no route.
    Unavailable(String),
    /// A phase of the exchange took longer than its limit.
    Timeout { phase: Phase, limit: Duration },
    /// The TLS handshake failed, usually an untrusted certificate.
    Tls(String),
    /// The URL is not an absolute `http` or `https` URL.
    InvalidUrl(String),
    /// The request could not be built (a header the client or host refuses):
    /// a mistake in the configuration, never worth retrying.
    InvalidRequest(String),
    /// The body is bigger than the caller allows.
    TooLarge(usize),
    /// The connection broke or the peer spoke broken HTTP mid-exchange.
    Transport(String),
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Unavailable(why) => write!(f, "HTTP unavailable: {why}"),
            HttpError::Timeout { phase, limit } => {
                let secs = limit.as_secs();
                match phase {
                    Phase::Connect => write!(f, "Request timed out while connecting (limit {secs} s)"),
                    Phase::Send => write!(f, "Request timed out sending the request (limit {secs} s)"),
                    Phase::FirstByte => {
                        write!(f, "Request timed out waiting for the response (limit {secs} s)")
                    }
                    Phase::BetweenBytes => write!(
                        f,
                        "Request timed out waiting for more of the reply (limit {secs} s between bytes)"
                    ),
                }
            }
            HttpError::Tls(why) => write!(f, "TLS error: {why}"),
            HttpError::InvalidUrl(why) => write!(f, "invalid URL: {why}"),
            HttpError::InvalidRequest(why) => write!(f, "invalid request: {why}"),
            HttpError::TooLarge(limit) => {
                write!(f, "response body is larger than the {limit}-byte limit")
            }
            HttpError::Transport(why) => write!(f, "connection failed: {why}"),
        }
    }
}

impl std::error::Error for HttpError {}

/// Where in an exchange a timeout struck.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Looking up or connecting to the server.
    Connect,
    /// Sending the request: the server cannot have acted on it yet.
    Send,
    /// The request was sent; no answer came.
    FirstByte,
    /// The answer started, then paused too long.
    BetweenBytes,
}

impl Phase {
    /// Whether the server has the whole request: from then on it may be
    /// working on it (and billing for it), so trying again is not free.
    pub fn request_delivered(self) -> bool {
        matches!(self, Phase::FirstByte | Phase::BetweenBytes)
    }
}

/// The parts of an absolute `http`/`https` URL that a request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url<'a> {
    pub https: bool,
    /// `host[:port]`, as written.
    pub authority: &'a str,
    /// Path and query, always starting with `/`.
    pub path_and_query: &'a str,
}

impl<'a> Url<'a> {
    /// The host, without the port or an IPv6 address's brackets.
    pub fn host(&self) -> &'a str {
        let authority = self.authority;
        if let Some(rest) = authority.strip_prefix('[') {
            return rest.split(']').next().unwrap_or(rest);
        }
        authority.split(':').next().unwrap_or(authority)
    }

    /// Splits a URL without allocating; refuses anything that is not plain
    /// `http(s)://authority/path`, so every backend sees the same rules.
    pub fn parse(url: &'a str) -> Result<Url<'a>, HttpError> {
        let bad = |why: &str| HttpError::InvalidUrl(format!("'{url}' {why}"));
        let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(bad("must start with http:// or https://"));
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        if authority.is_empty() {
            return Err(bad("has no host"));
        }
        if authority.contains('@') {
            return Err(bad("must not carry credentials; use the api_key setting"));
        }
        if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("contains spaces or control characters"));
        }
        let tail = tail.split('#').next().unwrap_or("");
        if tail.starts_with('?') {
            return Err(bad("needs a path before its query"));
        }
        let path_and_query = if tail.is_empty() { "/" } else { tail };
        Ok(Url {
            https,
            authority,
            path_and_query,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_urls_providers_use() {
        let u = Url::parse("https://api.openai.com/v1/chat/completions").unwrap();
        assert!(u.https);
        assert_eq!(u.authority, "api.openai.com");
        assert_eq!(u.path_and_query, "/v1/chat/completions");

        let u = Url::parse("http://127.0.0.1:8080").unwrap();
        assert!(!u.https);
        assert_eq!(u.authority, "127.0.0.1:8080");
        assert_eq!(u.path_and_query, "/");

        assert_eq!(u.host(), "127.0.0.1");
        let u = Url::parse("http://[::1]:11434/v1/x?a=b#frag").unwrap();
        assert_eq!(u.authority, "[::1]:11434");
        assert_eq!(u.host(), "::1");
        assert_eq!(u.path_and_query, "/v1/x?a=b");
    }

    #[test]
    fn refuses_what_is_not_an_http_url() {
        for bad in [
            "ftp://x/y",
            "api.openai.com/v1",
            "https:///v1",
            "https://user:pw@host/v1",
            "https://host/v 1",
            "https://host?x=1",
        ] {
            let err = Url::parse(bad).unwrap_err();
            assert!(matches!(err, HttpError::InvalidUrl(_)), "{bad}: {err:?}");
        }
    }

    #[test]
    fn read_to_end_enforces_its_limit() {
        let mut r = Response {
            status: 200,
            headers: vec![],
            body: Box::new(&b"0123456789"[..]),
        };
        assert_eq!(r.read_to_end(4, None), Err(HttpError::TooLarge(4)));
        let mut r = Response {
            status: 200,
            headers: vec![("retry-after".into(), "3".into())],
            body: Box::new(&b"0123456789"[..]),
        };
        assert_eq!(r.header("retry-after"), Some("3"));
        assert_eq!(r.read_to_end(10, None).unwrap(), b"0123456789");
    }
}
