//! Incoming HTTP: the server side, for `weft gateway`. Natively a blocking
//! server with a bounded pool of workers ([`native`]); in the wasip2
//! component the host serves and calls the `wasi:http/incoming-handler`
//! export. Both read a request within the gateway's [`Limits`] and hand it
//! to a [`Handler`].
//!
//! [`Limits`]: crate::gateway::Limits
//! [`Handler`]: crate::gateway::Handler

#[cfg(not(target_os = "wasi"))]
pub mod native;

#[cfg(all(target_os = "wasi", target_env = "p2"))]
pub mod wasip2;
