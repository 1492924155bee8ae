//! The gateway as a `wasi:http/incoming-handler`: the host (`wasmtime
//! serve`, or any wasi:http platform) accepts connections and parses HTTP;
//! this reads the request within the gateway's limits, hands it to the
//! [`Handler`], and streams the answer through the outgoing body.
//!
//! Each request may run in a fresh instance, so nothing is kept between
//! requests: config and sessions are files (the session lock works across
//! instances). What the host leaves to the guest is enforced here: the
//! body's size (413) and how long it may take to arrive (408). The number
//! of requests at once and the time to send a head are the host's
//! (`wasmtime serve --max-concurrent-requests`).

use std::io;
use std::time::{Duration, Instant};

use wasip2::clocks::monotonic_clock;
use wasip2::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use wasip2::io::streams::{OutputStream, StreamError};

use crate::gateway::{send_error, ApiError, Handler, Incoming, Limits, Respond, Served};

/// The most `blocking-write-and-flush` accepts in one call.
const WRITE_PIECE: usize = 4096;

/// Answers one request the host received; returns the access line.
pub fn serve(
    handler: &dyn Handler,
    limits: Limits,
    request: IncomingRequest,
    out: ResponseOutparam,
) -> String {
    let started = Instant::now();
    let method = match request.method() {
        Method::Get => "GET".to_owned(),
        Method::Post => "POST".to_owned(),
        Method::Head => "HEAD".to_owned(),
        Method::Put => "PUT".to_owned(),
        Method::Delete => "DELETE".to_owned(),
        Method::Options => "OPTIONS".to_owned(),
        Method::Patch => "PATCH".to_owned(),
        Method::Connect => "CONNECT".to_owned(),
        Method::Trace => "TRACE".to_owned(),
        Method::Other(other) => other,
    };
    let target = request.path_with_query().unwrap_or_else(|| "/".into());
    let path = target.split('?').next().unwrap_or("/").to_owned();
    let headers: Vec<(String, String)> = request
        .headers()
        .entries()
        .into_iter()
        .map(|(name, value)| {
            (
                name.to_ascii_lowercase(),
                String::from_utf8_lossy(&value).into_owned(),
            )
        })
        .collect();
    let mut response = Response {
        out: Some(out),
        body: None,
    };
    let (status, served) = match read_body(&request, limits) {
        Ok(body) => {
            let incoming = Incoming {
                method: &method,
                path: &path,
                headers: &headers,
                body: &body,
            };
            let served = handler.handle(&incoming, &mut response);
            if response.out.is_some() {
                // The handler answered nothing: still an answer.
                let _ = send_error(&mut response, &ApiError::no_answer());
                (500, Served::default())
            } else {
                (served.status, served)
            }
        }
        Err(refusal) => {
            let _ = send_error(&mut response, &refusal);
            (refusal.status, Served::default())
        }
    };
    served.access_line(&method, &path, status, started.elapsed())
}

/// The request body, refused past `limits.max_body` (413) or when it
/// trickles in slower than `limits.io_timeout_secs` allows (408).
fn read_body(request: &IncomingRequest, limits: Limits) -> Result<Vec<u8>, ApiError> {
    let declared = request
        .headers()
        .get("content-length")
        .first()
        .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body as u64) {
        return Err(ApiError::too_large(limits.max_body));
    }
    let Ok(body) = request.consume() else {
        return Ok(Vec::new());
    };
    let Ok(stream) = body.stream() else {
        return Ok(Vec::new());
    };
    let deadline = Instant::now() + Duration::from_secs(limits.io_timeout_secs);
    let mut bytes = Vec::new();
    loop {
        match stream.read(64 << 10) {
            Ok(chunk) if chunk.is_empty() => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(ApiError::timed_out(
                        "the request body did not arrive in time",
                    ));
                }
                let ready = stream.subscribe();
                let timer = monotonic_clock::subscribe_duration(left.as_nanos() as u64);
                wasip2::io::poll::poll(&[&ready, &timer]);
            }
            Ok(chunk) => {
                if bytes.len() + chunk.len() > limits.max_body {
                    return Err(ApiError::too_large(limits.max_body));
                }
                bytes.extend_from_slice(&chunk);
            }
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(_)) => {
                return Err(ApiError::invalid("the request body broke off"))
            }
        }
    }
    drop(stream);
    let _ = wasip2::http::types::IncomingBody::finish(body);
    Ok(bytes)
}

/// The answer: status and headers go out on `start`, then each piece.
struct Response {
    out: Option<ResponseOutparam>,
    body: Option<(OutputStream, OutgoingBody)>,
}

impl Respond for Response {
    /// The outparam is taken only once the response is built: if building
    /// fails, it is still there for the caller's error answer.
    fn start(&mut self, status: u16, headers: &[(&str, &str)]) -> io::Result<()> {
        if self.out.is_none() {
            return Err(io::Error::other("the answer was already started"));
        }
        let fields: Vec<(String, Vec<u8>)> = headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), v.as_bytes().to_vec()))
            .collect();
        let fields = Fields::from_list(&fields)
            .map_err(|_| io::Error::other("the host refused a response header"))?;
        let response = OutgoingResponse::new(fields);
        let _ = response.set_status_code(status);
        let body = response
            .body()
            .map_err(|()| io::Error::other("the response body was already taken"))?;
        if let Some(out) = self.out.take() {
            ResponseOutparam::set(out, Ok(response));
        }
        let stream = body
            .write()
            .map_err(|()| io::Error::other("the response stream was already taken"))?;
        self.body = Some((stream, body));
        Ok(())
    }

    fn send(&mut self, piece: &[u8]) -> io::Result<()> {
        let (stream, _) = self
            .body
            .as_ref()
            .ok_or_else(|| io::Error::other("the answer was not started"))?;
        for chunk in piece.chunks(WRITE_PIECE) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))?;
        }
        Ok(())
    }
}

impl Drop for Response {
    /// The stream goes before its body, and the body is finished so the
    /// host knows the answer is whole.
    fn drop(&mut self) {
        if let Some((stream, body)) = self.body.take() {
            drop(stream);
            let _ = OutgoingBody::finish(body, None);
        }
    }
}
