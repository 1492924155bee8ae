//! The static musl binaries that ship (`weft-x86_64-musl`, `weft-aarch64-musl`
//! in the flake) do real turns against the local server; the one for the
//! other architecture runs under qemu. Built by `scripts/test`; missing
//! binaries fail the test with the command that builds them.

use clawft_harness::scenarios::{self as s, Outcome};
use clawft_harness::{Server, Weft};

fn check<T>(outcome: Outcome<T>) {
    if let Err(why) = outcome {
        panic!("{why}");
    }
}

#[test]
fn x86_64_musl_conversation_and_status() {
    let weft = Weft::static_musl("x86_64");
    check(s::conversation(&weft, &Server::start(), true));
    check(s::status_report(&weft));
}

#[test]
fn aarch64_musl_conversation_and_status() {
    let weft = Weft::static_musl("aarch64");
    check(s::conversation(&weft, &Server::start(), true));
    check(s::anthropic_turn(&weft, &Server::start(), false));
    check(s::status_report(&weft));
}
