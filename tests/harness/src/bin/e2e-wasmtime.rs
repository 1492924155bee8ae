//! Real agent turns in wasmtime against a local test server, no API key
//! needed: a conversation (OpenAI protocol), an Anthropic turn, and a turn
//! whose model reads and writes files in a preopened workspace; the same
//! scenario code the test suite runs.
//!
//! Usage: `e2e-wasmtime [--wasm weft.wasm] [--wasmtime path/to/wasmtime]`
//! (defaults: `$CLAWFT_WASIP2` or `target/dist/wasm32-wasip2/weft.wasm`,
//! and `$WASMTIME` or `wasmtime` on PATH).

use std::path::PathBuf;
use std::process::ExitCode;

use clawft_harness::{scenarios, weft, Server, Weft};

fn main() -> ExitCode {
    let mut wasm = None;
    let mut wasmtime = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--wasm", Some(v)) => wasm = Some(PathBuf::from(v)),
            ("--wasmtime", Some(v)) => wasmtime = Some(PathBuf::from(v)),
            _ => {
                eprintln!("usage: e2e-wasmtime [--wasm weft.wasm] [--wasmtime PATH]");
                return ExitCode::from(2);
            }
        }
    }
    let weft = match wasm {
        Some(wasm) => Weft::wasip2_at(wasm, wasmtime.unwrap_or_else(weft::wasmtime)),
        None => {
            if let Some(path) = wasmtime {
                std::env::set_var("WASMTIME", path);
            }
            Weft::wasip2()
        }
    };
    let server = Server::start();
    println!("clawft end-to-end: the wasm32-wasip2 component in wasmtime, talking to a");
    println!(
        "provider stand-in on {} (OpenAI and Anthropic protocols)\n",
        server.addr()
    );

    match scenarios::conversation(&weft, &server, true) {
        Ok(runs) => {
            for run in &runs {
                println!("$ {}\n{}", run.command, run.stdout);
            }
            let lines = weft.session_lines("work");
            println!(
                "session file sessions/work.jsonl: {} lines (metadata + 4 messages)",
                lines.len()
            );
        }
        Err(why) => {
            eprintln!("e2e-wasmtime: FAILED (OpenAI conversation)\n{why}");
            return ExitCode::FAILURE;
        }
    }
    if let Err(why) = scenarios::anthropic_turn(&weft, &server, true) {
        eprintln!("e2e-wasmtime: FAILED (Anthropic turn)\n{why}");
        return ExitCode::FAILURE;
    }
    println!("anthropic protocol turn: ok");

    // Tools: the model reads notes.md in the preopened workspace and
    // writes todo.md from it.
    if let Err(why) = clawft_harness::tools::read_then_write(
        &weft,
        &server,
        clawft_harness::tools::Protocol::OpenAi,
        true,
    ) {
        eprintln!("e2e-wasmtime: FAILED (tool turn)\n{why}");
        return ExitCode::FAILURE;
    }
    let todo = std::fs::read_to_string(weft.workspace().join("todo.md")).unwrap_or_default();
    println!(
        "tool turn: the model read /workspace/notes.md and wrote /workspace/todo.md ({} bytes), \
         two rounds of tool calls saved in sessions/tools.jsonl",
        todo.len()
    );
    println!("\ne2e-wasmtime: ok");
    ExitCode::SUCCESS
}
