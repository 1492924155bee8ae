//! Test support for clawft, shared by the integration tests and the
//! `e2e-wasmtime` command (`nix run .#e2e-wasmtime`):
//!
//! - [`server`]: a provider stand-in on 127.0.0.1 speaking the OpenAI and
//!   Anthropic protocols, with scenarios for errors, slowness and cut streams;
//! - [`weft`]: runs the native binary, the wasip2 component or the wasip1
//!   module (both in the wasmtime CLI) against a temporary home;
//! - [`hosts`]: the library component in the hosts that embed it (the
//!   wasmtime CLI's `--invoke`, Python, Node through jco), and `jco run`;
//! - [`model`]: a scripted model for tool conversations;
//! - [`proxy`]: a `CONNECT` proxy, to prove `HTTPS_PROXY` is honoured;
//! - [`scenarios`]: the end-to-end checks, written once for every build;
//! - [`tools`]: tool conversations against the scripted model;
//! - [`faults`]: the same for retries, broken replies, bounds, secrets and
//!   concurrent writers;
//! - [`gateway`]: runs `weft gateway` natively or under `wasmtime serve`, a
//!   raw HTTP/1.1 client for it, and the OpenAI SDK scripts' runner.

/// Returns `Err(message)` from a scenario unless the condition holds.
macro_rules! ensure {
    ($cond:expr, $($why:tt)+) => {
        if !$cond {
            return Err(format!($($why)+));
        }
    };
}

pub mod faults;
pub mod gateway;
pub mod hosts;
pub mod model;
pub mod proxy;
pub mod scenarios;
pub mod server;
pub mod tools;
pub mod weft;

pub use proxy::Proxy;
pub use server::Server;
pub use weft::{Build, Output, Weft};
