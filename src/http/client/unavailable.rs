//! HTTP on hosts without `wasi:http` (`wasm32-wasip1`, for example WAMR).
//!
//! Files, sessions and configuration still work there; every request
//! answers the same clear error, and the module imports nothing from
//! `wasi:http`, so such hosts can load it.

use crate::http::{HttpError, Request, Response, Url};

pub const AVAILABLE: bool = false;

pub fn send(_request: &Request, _url: &Url<'_>) -> Result<Response, HttpError> {
    Err(HttpError::Unavailable(
        "this WebAssembly host offers no outgoing HTTP (a wasm32-wasip1 build); \
         run the wasm32-wasip2 component with `wasmtime run -S http` or use the native weft"
            .into(),
    ))
}
