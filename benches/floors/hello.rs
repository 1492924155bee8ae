//! The start-up floor for `scripts/bench`: the least a Rust program can do.
//! Built with rustc alone, with the release profile's options, as a static
//! musl binary and as a wasm32-wasip2 component; weft's start-up is reported
//! as a ratio to these.

fn main() {
    println!("hello");
}
