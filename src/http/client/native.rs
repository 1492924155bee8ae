//! Native HTTP (Linux, static musl) through `ureq`: blocking, no async
//! runtime, rustls with the Mozilla roots compiled in, so the binary works in
//! an empty root filesystem such as a `FROM scratch` image.
//!
//! - `SSL_CERT_FILE` names a PEM bundle that replaces the built-in roots (the
//!   OpenSSL convention), for a private CA or an intercepting proxy.
//! - `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY` are honoured (ureq
//!   reads them; an `https` target is tunnelled with `CONNECT`).

use std::io::{self, Read};
use std::sync::OnceLock;

use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};

use crate::http::{HttpError, Method, Phase, ReadBody, Request, Response, Timeouts, Url};

pub const AVAILABLE: bool = true;

/// ureq takes the URL as text; `_url` is the same, already checked.
pub fn send(request: &Request, _url: &Url<'_>) -> Result<Response, HttpError> {
    let agent = agent()?;
    let timeouts = request.timeouts;
    let exchange = match request.method {
        Method::Post => {
            let mut builder = with_timeouts(agent.post(&request.url), timeouts);
            for (name, value) in &request.headers {
                builder = builder.header(name, value);
            }
            builder.send(&request.body[..])
        }
        Method::Get => {
            let mut builder = with_timeouts(agent.get(&request.url), timeouts);
            for (name, value) in &request.headers {
                builder = builder.header(name, value);
            }
            builder.call()
        }
    };
    let response = exchange.map_err(|e| map_error(e, timeouts, Phase::FirstByte))?;

    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .filter_map(|(name, value)| {
            Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect();
    let reader = response.into_body().into_reader();
    Ok(Response {
        status,
        headers,
        body: Box::new(NativeBody { reader, timeouts }),
    })
}

/// The process's one agent: its TLS roots (the built-in ones, or
/// `SSL_CERT_FILE`'s) are read and set up once, not for every request. It
/// keeps no idle connections, so every request connects afresh. An agent
/// that cannot be built is not kept: each request reports why.
fn agent() -> Result<&'static ureq::Agent, HttpError> {
    static AGENT: OnceLock<ureq::Agent> = OnceLock::new();
    if let Some(agent) = AGENT.get() {
        return Ok(agent);
    }
    let mut tls = TlsConfig::builder();
    if let Some(path) = std::env::var_os("SSL_CERT_FILE").filter(|p| !p.is_empty()) {
        tls = tls.root_certs(custom_roots(&path.to_string_lossy())?);
    }
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .max_idle_connections(0)
        // ureq's 128 KiB buffers, allocated and zeroed per connection, were
        // a third of the gateway's CPU under load (measured by the bench);
        // a provider's response head is a few KiB.
        .max_response_header_size(32 << 10)
        .input_buffer_size(32 << 10)
        .output_buffer_size(16 << 10)
        .tls_config(tls.build())
        .build();
    Ok(AGENT.get_or_init(|| config.new_agent()))
}

/// A request's own limits: connecting, then the response (each wait for
/// bytes, sending included).
fn with_timeouts<B>(
    builder: ureq::RequestBuilder<B>,
    timeouts: Timeouts,
) -> ureq::RequestBuilder<B> {
    builder
        .config()
        .timeout_connect(Some(timeouts.connect))
        .timeout_send_request(Some(timeouts.response))
        .timeout_send_body(Some(timeouts.response))
        .timeout_recv_response(Some(timeouts.response))
        .timeout_per_read(Some(timeouts.response))
        .build()
}

/// Loads every certificate in a PEM file as the set of trusted roots.
fn custom_roots(path: &str) -> Result<RootCerts, HttpError> {
    let pem = std::fs::read(path)
        .map_err(|e| HttpError::Tls(format!("cannot read SSL_CERT_FILE {path}: {e}")))?;
    let mut certs: Vec<Certificate<'static>> = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(PemItem::Certificate(cert)) => certs.push(cert),
            Ok(_) => {}
            Err(e) => return Err(HttpError::Tls(format!("SSL_CERT_FILE {path}: {e}"))),
        }
    }
    if certs.is_empty() {
        return Err(HttpError::Tls(format!(
            "SSL_CERT_FILE {path} holds no PEM certificates"
        )));
    }
    Ok(RootCerts::new_with_certs(&certs))
}

struct NativeBody {
    reader: ureq::BodyReader<'static>,
    timeouts: Timeouts,
}

impl ReadBody for NativeBody {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, HttpError> {
        self.reader
            .read(buf)
            .map_err(|e| map_io_error(e, self.timeouts, Phase::BetweenBytes))
    }
}

/// `waiting` is the phase a read timeout belongs to where it struck:
/// before the response headers, the first byte; after them, between bytes.
fn map_error(err: ureq::Error, timeouts: Timeouts, waiting: Phase) -> HttpError {
    use ureq::Error as E;
    match err {
        E::Timeout(which) => {
            use ureq::Timeout as T;
            let phase = match which {
                T::Resolve | T::Connect => Phase::Connect,
                T::SendRequest | T::SendBody | T::PerWrite | T::Await100 => Phase::Send,
                T::RecvBody => Phase::BetweenBytes,
                _ => waiting,
            };
            timeouts.exceeded(phase)
        }
        E::HostNotFound => HttpError::Unavailable("DNS lookup failed: host not found".into()),
        E::ConnectionFailed => HttpError::Unavailable("could not connect to the server".into()),
        E::ConnectProxyFailed(why) => HttpError::Unavailable(format!("the proxy refused: {why}")),
        E::InvalidProxyUrl => {
            HttpError::Unavailable("the proxy URL in the *_PROXY variables is invalid".into())
        }
        E::BadUri(why) => HttpError::InvalidUrl(why),
        E::Http(why) => HttpError::InvalidRequest(why.to_string()),
        E::Tls(why) => HttpError::Tls(why.into()),
        E::Pem(why) => HttpError::Tls(why.to_string()),
        E::Rustls(why) => HttpError::Tls(why.to_string()),
        E::Io(io) => map_io_error(io, timeouts, waiting),
        other => HttpError::Transport(other.to_string()),
    }
}

fn map_io_error(err: io::Error, timeouts: Timeouts, waiting: Phase) -> HttpError {
    if err.get_ref().is_some_and(|inner| inner.is::<ureq::Error>()) {
        let inner = err.into_inner().expect("checked above");
        let ureq_err = inner.downcast::<ureq::Error>().expect("checked above");
        return map_error(*ureq_err, timeouts, waiting);
    }
    // rustls reports a failed handshake (say, an unknown issuer) as an
    // io::Error that carries its own error.
    if let Some(tls) = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    {
        return HttpError::Tls(tls.to_string());
    }
    match err.kind() {
        io::ErrorKind::ConnectionRefused => {
            HttpError::Unavailable("connection refused by the server".into())
        }
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => timeouts.exceeded(waiting),
        io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => {
            HttpError::Unavailable(format!("no route to the server: {err}"))
        }
        io::ErrorKind::UnexpectedEof => {
            HttpError::Transport("the server closed the connection early".into())
        }
        _ => HttpError::Transport(err.to_string()),
    }
}
