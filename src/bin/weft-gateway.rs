//! `weft-gateway.wasm`: the gateway as a `wasi:http/incoming-handler`
//! component, for `wasmtime serve -S cli --dir HOME::/config` and other
//! wasi:http platforms. Its command entry point only says so.

fn main() -> std::process::ExitCode {
    eprintln!(
        "weft-gateway.wasm serves HTTP: run it with \
         wasmtime serve -S cli --dir HOME::/config weft-gateway.wasm"
    );
    std::process::ExitCode::from(2)
}

#[cfg(all(target_os = "wasi", target_env = "p2"))]
mod handler {
    use clawft::config::{env, Config};
    use clawft::gateway::{Gateway, Limits};
    use clawft::home::Home;
    use wasip2::exports::http::incoming_handler::Guest;
    use wasip2::http::types::{IncomingRequest, ResponseOutparam};

    pub struct Handler;

    impl Guest for Handler {
        fn handle(request: IncomingRequest, out: ResponseOutparam) {
            // A home that cannot be found still gets an answer: the gateway
            // reports it on every route but /healthz.
            let home = Home::discover(env)
                .unwrap_or_else(|_| Home::at("/config", clawft::home::HomeSource::WasiDefault));
            let limits = Config::load(&home)
                .map(|c| Limits::from_config(&c.gateway))
                .unwrap_or_default();
            let gateway = Gateway::new(home, env, limits).always_asking_for_a_token();
            let line = clawft::http::server::wasip2::serve(&gateway, limits, request, out);
            // One write per line, so lines of concurrent instances stay whole.
            let _ =
                std::io::Write::write_all(&mut std::io::stderr(), format!("{line}\n").as_bytes());
        }
    }

    wasip2::http::proxy::export!(Handler);
}
