//! `weft`, the clawft command. Everything lives in the library; see `cli`.

fn main() -> std::process::ExitCode {
    clawft::cli::main()
}
