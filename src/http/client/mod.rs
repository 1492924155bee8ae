//! Outgoing requests: the one place that picks a backend for the target.

#[cfg(all(target_os = "wasi", target_env = "p2"))]
#[path = "wasip2.rs"]
mod backend;

#[cfg(all(target_os = "wasi", not(target_env = "p2")))]
#[path = "unavailable.rs"]
mod backend;

#[cfg(not(target_os = "wasi"))]
#[path = "native.rs"]
mod backend;

use super::{HttpError, Request, Response, Url};

/// Whether this build can make HTTP requests at all.
pub const AVAILABLE: bool = backend::AVAILABLE;

/// Sends a request and returns as soon as the response headers arrive; the
/// body is read from [`Response::body`] as it comes.
pub fn send(request: &Request) -> Result<Response, HttpError> {
    let url = Url::parse(&request.url)?;
    backend::send(request, &url)
}
