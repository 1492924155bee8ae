//! A streamed OpenAI-style reply: SSE framing, chunk JSON, bounds.
#![no_main]

mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| common::read_streamed("openai/m", data));
