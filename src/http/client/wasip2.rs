//! Outgoing HTTP on `wasm32-wasip2` through `wasi:http/outgoing-handler`, using the raw
//! WASI 0.2 bindings from the `wasip2` crate. TLS is the host's job.
//!
//! Why raw bindings and not a client crate (measured with a minimal POST bin,
//! opt-level "z", LTO, one codegen unit, panic=abort, stripped):
//!
//! | client                 | .wasm bytes | gzip -9 | body > 4096 B | timeouts            |
//! |------------------------|-------------|---------|---------------|---------------------|
//! | `wasi-http-client` 0.2 | 373,503     | 134,644 | traps         | connect only        |
//! | `waki` 0.5             | 227,932     |  82,934 | ok            | connect only        |
//! | `wstd` 0.6 (async)     | 276,650     | 100,591 | ok            | all three           |
//! | raw `wasip2` 2.0       | 123,281     |  43,985 | ok, chunked   | all three           |
//!
//! `wasi-http-client`, the design's first choice, writes the whole body with a
//! single `blocking-write-and-flush`, which WASI caps at 4096 bytes: any real
//! chat history traps. It also pulls in URL/IDNA tables (~250 KB). The raw
//! bindings cost the least, let us write the body in 4096-byte pieces with an
//! exact `content-length` (the crates sent chunked bodies), and expose the
//! connect, first-byte and between-bytes timeouts.

use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, FutureIncomingResponse, HeaderError, IncomingBody, IncomingResponse, Method,
    OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
};
use wasip2::io::streams::{InputStream, StreamError};

use crate::http::{self, HttpError, Phase, ReadBody, Request, Response, Timeouts, Url};

pub const AVAILABLE: bool = true;

/// The most `blocking-write-and-flush` accepts in one call.
const WRITE_PIECE: usize = 4096;

pub fn send(request: &Request, url: &Url<'_>) -> Result<Response, HttpError> {
    let timeout = Timeout(request.timeouts);

    let mut fields: Vec<(String, Vec<u8>)> = request
        .headers
        .iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), value.as_bytes().to_vec()))
        .collect();
    if request.method == http::Method::Post {
        fields.push((
            "content-length".into(),
            request.body.len().to_string().into_bytes(),
        ));
    }
    let headers = Fields::from_list(&fields).map_err(|e| {
        HttpError::InvalidRequest(
            match e {
                HeaderError::Forbidden => "the host forbids one of the request headers",
                HeaderError::InvalidSyntax => "a request header is not valid HTTP",
                HeaderError::Immutable => "the host would not let the headers be set",
            }
            .into(),
        )
    })?;

    let outgoing = OutgoingRequest::new(headers);
    let scheme = if url.https {
        Scheme::Https
    } else {
        Scheme::Http
    };
    let set = [
        outgoing.set_method(&match request.method {
            http::Method::Get => Method::Get,
            http::Method::Post => Method::Post,
        }),
        outgoing.set_scheme(Some(&scheme)),
        outgoing.set_authority(Some(url.authority)),
        outgoing.set_path_with_query(Some(url.path_and_query)),
    ];
    if set.iter().any(Result::is_err) {
        return Err(HttpError::InvalidUrl(format!(
            "the host rejected '{}'",
            request.url
        )));
    }

    // A host that cannot honour a timeout says so with Err; the request still goes.
    let options = RequestOptions::new();
    let nanos = |d: std::time::Duration| Some(d.as_nanos().min(u64::MAX as u128) as u64);
    let _ = options.set_connect_timeout(nanos(request.timeouts.connect));
    let _ = options.set_first_byte_timeout(nanos(request.timeouts.response));
    let _ = options.set_between_bytes_timeout(nanos(request.timeouts.response));

    let body = outgoing
        .body()
        .map_err(|()| HttpError::Transport("request body already taken".into()))?;
    let future = outgoing_handler::handle(outgoing, Some(options))
        .map_err(|c| timeout.map(c, Phase::FirstByte))?;

    // A failed write is only a symptom: if the connection was refused, the
    // response future says so; if the server answered early (a 401 before
    // reading the body, say), the response is the thing to report.
    let write_result = write_body(&body, &request.body, timeout);
    let finish_result =
        OutgoingBody::finish(body, None).map_err(|c| timeout.map(c, Phase::FirstByte));
    let incoming = wait_for(&future, timeout)?;
    if incoming.status() < 400 {
        write_result?;
        finish_result?;
    }

    let status = incoming.status();
    let headers = incoming
        .headers()
        .entries()
        .into_iter()
        .filter_map(|(name, value)| Some((name, String::from_utf8(value).ok()?)))
        .collect();
    let body = incoming
        .consume()
        .map_err(|()| HttpError::Transport("response body already taken".into()))?;
    let stream = body
        .stream()
        .map_err(|()| HttpError::Transport("response stream already taken".into()))?;
    Ok(Response {
        status,
        headers,
        body: Box::new(WasiBody {
            stream,
            _body: body,
            _response: incoming,
            timeout,
        }),
    })
}

fn write_body(body: &OutgoingBody, bytes: &[u8], timeout: Timeout) -> Result<(), HttpError> {
    let stream = body
        .write()
        .map_err(|()| HttpError::Transport("request stream already taken".into()))?;
    for piece in bytes.chunks(WRITE_PIECE) {
        stream
            .blocking_write_and_flush(piece)
            .map_err(|e| timeout.map_stream(e, Phase::Send))?;
    }
    Ok(())
}

fn wait_for(
    future: &FutureIncomingResponse,
    timeout: Timeout,
) -> Result<IncomingResponse, HttpError> {
    loop {
        match future.get() {
            Some(Ok(Ok(response))) => return Ok(response),
            Some(Ok(Err(code))) => return Err(timeout.map(code, Phase::FirstByte)),
            Some(Err(())) => {
                return Err(HttpError::Transport("response already taken".into()));
            }
            None => future.subscribe().block(),
        }
    }
}

/// The response body. Fields drop in order: a WASI child resource (the
/// stream) must go before its parent (the body, then the response).
struct WasiBody {
    stream: InputStream,
    _body: IncomingBody,
    _response: IncomingResponse,
    timeout: Timeout,
}

impl ReadBody for WasiBody {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, HttpError> {
        loop {
            // blocking-read returns at most the length asked for.
            match self.stream.blocking_read(buf.len() as u64) {
                Ok(bytes) if bytes.is_empty() => continue,
                Ok(bytes) => {
                    buf[..bytes.len()].copy_from_slice(&bytes);
                    return Ok(bytes.len());
                }
                Err(StreamError::Closed) => return Ok(0),
                Err(e) => return Err(self.timeout.map_stream(e, Phase::BetweenBytes)),
            }
        }
    }
}

/// Carries the configured timeouts so error messages can quote them.
#[derive(Clone, Copy)]
struct Timeout(Timeouts);

impl Timeout {
    /// `waiting` is the phase a read timeout belongs to where it struck.
    fn map(self, code: ErrorCode, waiting: Phase) -> HttpError {
        map_code(code, |phase| self.0.exceeded(phase.unwrap_or(waiting)))
    }

    fn map_stream(self, err: StreamError, waiting: Phase) -> HttpError {
        match err {
            StreamError::Closed => {
                HttpError::Transport("the server closed the connection early".into())
            }
            StreamError::LastOperationFailed(io) => {
                match wasip2::http::types::http_error_code(&io) {
                    Some(code) => self.map(code, waiting),
                    None => self.classify_debug_text(&io.to_debug_string(), waiting),
                }
            }
        }
    }

    /// A stream error without a WASI error code has only a debug string
    /// (wasmtime reports a between-bytes timeout this way, followed by a
    /// host backtrace). Its first line is classified and kept; the rest is
    /// host detail that means nothing to a user.
    fn classify_debug_text(self, text: &str, waiting: Phase) -> HttpError {
        let first = text.lines().next().unwrap_or_default().trim();
        let lower = first.to_ascii_lowercase();
        if lower.contains("timeout") || lower.contains("timed out") {
            self.0.exceeded(waiting)
        } else {
            HttpError::Transport(first.to_owned())
        }
    }
}

/// WASI error codes, grouped into the errors a user can act on; `timeout`
/// makes the error for a timeout in a known phase (or, for a read timeout,
/// `None`: the phase the caller was waiting in).
fn map_code(code: ErrorCode, timeout: impl Fn(Option<Phase>) -> HttpError) -> HttpError {
    use ErrorCode as C;
    match code {
        C::DnsTimeout | C::ConnectionTimeout => timeout(Some(Phase::Connect)),
        C::ConnectionReadTimeout => timeout(None),
        C::ConnectionWriteTimeout => timeout(Some(Phase::Send)),
        C::HttpResponseTimeout => timeout(Some(Phase::FirstByte)),
        C::DnsError(p) => HttpError::Unavailable(format!(
            "DNS lookup failed ({})",
            p.rcode.as_deref().unwrap_or("no detail")
        )),
        C::DestinationNotFound => {
            HttpError::Unavailable("DNS lookup failed: host not found".into())
        }
        C::ConnectionRefused => HttpError::Unavailable("connection refused by the server".into()),
        C::DestinationUnavailable | C::DestinationIpUnroutable => {
            HttpError::Unavailable("the server cannot be reached".into())
        }
        C::DestinationIpProhibited | C::HttpRequestDenied => {
            HttpError::Unavailable("the WebAssembly host denied this request".into())
        }
        C::TlsProtocolError => HttpError::Tls("protocol error".into()),
        C::TlsCertificateError => HttpError::Tls("the server's certificate is not trusted".into()),
        C::TlsAlertReceived(alert) => HttpError::Tls(format!(
            "alert from the server: {}",
            alert.alert_message.as_deref().unwrap_or("no detail")
        )),
        C::ConnectionTerminated => {
            HttpError::Transport("the server closed the connection early".into())
        }
        C::InternalError(detail) => HttpError::Transport(format!(
            "host error: {}",
            detail.as_deref().unwrap_or("no detail")
        )),
        // Worded by hand: the derived Debug of every code costs the
        // component about 8 KB.
        C::ConnectionLimitReached => HttpError::Transport("the host's connection limit".into()),
        C::HttpRequestUriInvalid | C::HttpRequestUriTooLong | C::HttpRequestMethodInvalid => {
            HttpError::InvalidUrl("the host refused the request's URL or method".into())
        }
        C::HttpRequestLengthRequired
        | C::HttpRequestBodySize(_)
        | C::HttpRequestHeaderSectionSize(_)
        | C::HttpRequestHeaderSize(_)
        | C::HttpRequestTrailerSectionSize(_)
        | C::HttpRequestTrailerSize(_) => {
            HttpError::Transport("the request is too large for the host or server".into())
        }
        C::HttpResponseIncomplete => {
            HttpError::Transport("the server's response was cut short".into())
        }
        C::HttpResponseHeaderSectionSize(_)
        | C::HttpResponseHeaderSize(_)
        | C::HttpResponseBodySize(_)
        | C::HttpResponseTrailerSectionSize(_)
        | C::HttpResponseTrailerSize(_) => {
            HttpError::Transport("the server's response is too large for the host".into())
        }
        C::HttpResponseTransferCoding(_)
        | C::HttpResponseContentCoding(_)
        | C::HttpUpgradeFailed
        | C::HttpProtocolError => {
            HttpError::Transport("the server sent a malformed HTTP response".into())
        }
        C::LoopDetected => HttpError::Transport("the host detected a request loop".into()),
        C::ConfigurationError => {
            HttpError::Unavailable("the WebAssembly host's HTTP is misconfigured".into())
        }
    }
}
