//! clawft: a small, fast, portable LLM agent.
//!
//! One core serves every build: the `wasm32-wasip2` component (HTTP through
//! `wasi:http`), the `wasm32-wasip1` module (files only), and static native
//! binaries. Target-specific code lives in one place per concern: [`http`]
//! picks the backend that sends requests, and the `exec` tool exists only
//! natively.
//!
//! The allocator on wasm32 is dlmalloc: the one inside wasi-libc, which Rust's
//! std uses by default. The `dlmalloc` crate as `#[global_allocator]` was
//! measured and dropped. On wasip2 it corrupts the heap, because wasi-libc's
//! `cabi_realloc` hands us host-returned buffers from libc `malloc` that Rust
//! would then free into a second heap; and it added 7.6 KB (wasip2) and
//! 6.9 KB (wasip1) since libc's malloc stays linked anyway.
//!
//! The flow of one turn, for an embedder:
//!
//! ```no_run
//! use clawft::{agent, config::Config, home::Home, tools::{Caller, Toolbox}};
//!
//! let env = |name: &str| std::env::var(name).ok();
//! let home = Home::discover(env)?;
//! let config = Config::load(&home)?;
//! let settings = config.settings(None, env)?;
//! let tools = Toolbox::new(&config.tool_settings(&home, env), Caller::Cli);
//! let turn = agent::Turn { session: "default", message: "hello", stream: true };
//! let outcome = agent::run_turn(&home, &settings, tools, &turn, &mut std::io::stdout(), &mut |_| {})?;
//! println!("({} bytes)", outcome.reply.len());
//! # Ok::<(), clawft::Error>(())
//! ```

pub mod agent;
pub mod cli;
#[cfg(all(target_os = "wasi", target_env = "p2"))]
pub mod component;
pub mod config;
pub mod conversation;
pub mod error;
pub mod gateway;
pub mod home;
pub mod http;
pub mod json;
pub mod provider;
pub mod record;
pub mod retry;
pub mod sandbox;
pub mod secrets;
pub mod session;
pub mod sse;
pub mod time;
pub mod tools;

pub use error::Error;

/// Helpers for the unit tests, which also run inside wasmtime.
#[cfg(test)]
pub(crate) mod test_support {
    /// A scratch directory that is removed afterwards. Made under `$TMPDIR`
    /// (else `/tmp`) by name, because `std::env::temp_dir` panics under WASI.
    pub fn scratch() -> tempfile::TempDir {
        let base = std::env::var("TMPDIR").unwrap_or_else(|_| "/tmp".into());
        tempfile::Builder::new()
            .prefix("clawft-test-")
            .tempdir_in(base)
            .expect("a scratch directory")
    }
}
