//! clawft: a small, fast, portable LLM agent.
//!
//! One core serves every build: the `wasm32-wasip2` component (HTTP through
//! `wasi:http`), the `wasm32-wasip1` module (files only), and static native
//! binaries. Target-specific code lives in exactly two places: [`http`]
//! (which backend sends requests) and `alloc` (the wasm allocator).
//!
//! The flow of one turn, for an embedder:
//!
//! ```no_run
//! use clawft::{agent, config::Config, home::Home};
//!
//! let home = Home::discover(|name| std::env::var(name).ok())?;
//! let settings = Config::load(&home)?.settings(None, |name| std::env::var(name).ok())?;
//! let turn = agent::Turn { session: "default", message: "hello", stream: true };
//! let outcome = agent::run_turn(&home, &settings, &turn, &mut std::io::stdout(), &mut |_| {})?;
//! println!("({} bytes)", outcome.reply.len());
//! # Ok::<(), clawft::Error>(())
//! ```

pub mod agent;
mod alloc;
pub mod cli;
pub mod config;
pub mod error;
pub mod home;
pub mod http;
pub mod provider;
pub mod session;
pub mod sse;
pub mod time;

pub use error::Error;
