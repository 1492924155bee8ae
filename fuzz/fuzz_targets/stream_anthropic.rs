//! A streamed Anthropic-style reply: named SSE events, deltas, errors, bounds.
#![no_main]

mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| common::read_streamed("anthropic/m", data));
