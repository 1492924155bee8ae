//! `clawft-agent.wasm`: the agent as a library component for hosts to call
//! (`wit/clawft.wit`). Its command entry point only says so.

fn main() -> std::process::ExitCode {
    eprintln!(
        "clawft-agent.wasm is a library: call its clawft:agent/agent exports from a host \
         (see wit/clawft.wit); run weft.wasm for the command"
    );
    std::process::ExitCode::from(2)
}

#[cfg(all(target_os = "wasi", target_env = "p2"))]
use clawft::component::Library;
#[cfg(all(target_os = "wasi", target_env = "p2"))]
clawft::component::export_library!(Library);
