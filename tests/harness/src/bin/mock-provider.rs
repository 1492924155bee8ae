//! The provider stand-in of the test suite as a process of its own, for
//! checks that run weft outside `cargo test` (scripts/images runs a turn in
//! each container image against it). Serves the scenarios described in
//! `clawft_harness::server` until killed, or until ten minutes pass with no
//! request.
//!
//! Usage: `mock-provider [--port-file PATH]`: prints the `api_base` of the
//! `ok` scenario, and writes the port to PATH once it is listening.

use std::process::ExitCode;
use std::time::Duration;

use clawft_harness::Server;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let port_file = match args.as_slice() {
        [] => None,
        [flag, path] if flag == "--port-file" => Some(path.clone()),
        _ => {
            eprintln!("usage: mock-provider [--port-file PATH]");
            return ExitCode::from(2);
        }
    };
    let server = Server::start();
    println!("{}", server.base("ok"));
    if let Some(path) = port_file {
        if let Err(e) = std::fs::write(&path, server.addr().port().to_string()) {
            eprintln!("mock-provider: cannot write {path}: {e}");
            return ExitCode::FAILURE;
        }
    }
    while server.is_running() {
        std::thread::sleep(Duration::from_millis(200));
    }
    ExitCode::SUCCESS
}
