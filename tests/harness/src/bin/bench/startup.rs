//! Start-up: `weft status` natively and in wasmtime, beside hello-world
//! floors; the library component's `status()`; and each gateway from launch
//! to its first answer.

use std::process::Output;

use crate::gateway;
use crate::report::{Report, Table};
use crate::run::{self, Run};
use crate::stats::Stats;
use crate::{Bench, RssRows, Wasm};

pub struct Startup {
    table: Table,
}

pub fn measure(bench: &Bench, rss: &mut RssRows) -> Startup {
    let home = bench.scratch().join("startup");
    std::fs::create_dir_all(&home).expect("create a home");
    let n = bench.runs.startup;
    let time = |run: &Run| run::series(run, n, &run::succeeded);

    let native = bench.native(&bench.native_weft(), &home).arg("status");
    let hello_native = bench.native(&bench.built("hello-musl"), &home);
    let cached = bench
        .wasm(&bench.component(), Wasm::Cached, &home)
        .arg("status");
    let plain_cached = bench
        .wasm(&bench.built("weft-noopt.wasm"), Wasm::Cached, &home)
        .arg("status");
    let hello_cached = bench.wasm(&bench.built("hello.wasm"), Wasm::Cached, &home);
    let cwasm = bench
        .wasm(&bench.built("weft.cwasm"), Wasm::Precompiled, &home)
        .arg("status");
    let hello_cwasm = bench.wasm(&bench.built("hello.cwasm"), Wasm::Precompiled, &home);
    let library = bench.wasm_with(
        &bench.shipped_component("clawft-agent.wasm"),
        Wasm::Cached,
        &home,
        &["--invoke", "status()"],
    );

    // Alternate weft and its floor so drift on the machine hits both alike.
    let floor_native = time(&hello_native);
    let weft_native = time(&native);
    let floor_cached = time(&hello_cached);
    let weft_cached = time(&cached);
    let weft_plain_cached = time(&plain_cached);
    let floor_cwasm = time(&hello_cwasm);
    let weft_cwasm = time(&cwasm);
    let library_cached = run::series(&library, n, &library_status);
    let [native_gateway, wasm_gateway] = gateway::hosts(bench);
    let native_ready = gateway::first_answer(&native_gateway, &home, n);
    let wasm_ready = gateway::first_answer(&wasm_gateway, &home, n);

    let mut table = Table::new(&["run", ">median (min–max)", "floor", ">× floor"]);
    let mut row = |what: &str, stats: &Stats, floor: Option<(&str, &Stats)>| {
        let (name, ratio) = match floor {
            Some((name, floor)) => (name.to_owned(), stats.ratio_to(floor)),
            None => ("(floor)".to_owned(), String::new()),
        };
        table.row(vec![what.into(), stats.to_string(), name, ratio]);
    };
    let arch = std::env::consts::ARCH;
    row(&format!("hello, static musl {arch}"), &floor_native, None);
    row(
        &format!("`weft status`, static musl {arch}"),
        &weft_native,
        Some(("hello, static musl", &floor_native)),
    );
    row(
        "hello component, wasmtime, compile cache warm",
        &floor_cached,
        None,
    );
    row(
        "`weft status`, shipped `weft.wasm` in wasmtime, compile cache warm",
        &weft_cached,
        Some(("hello component, cache", &floor_cached)),
    );
    row(
        "`weft status`, the component without wasm-opt, compile cache warm",
        &weft_plain_cached,
        Some(("hello component, cache", &floor_cached)),
    );
    row("hello component, precompiled `.cwasm`", &floor_cwasm, None);
    row(
        "`weft status`, precompiled `weft.cwasm`",
        &weft_cwasm,
        Some(("hello `.cwasm`", &floor_cwasm)),
    );
    row(
        "`status()` of `clawft-agent.wasm` (`--invoke`), compile cache warm",
        &library_cached,
        Some(("hello component, cache", &floor_cached)),
    );
    row(
        "`weft gateway` native: launch → first `GET /healthz` answered",
        &native_ready,
        Some(("`weft status`, native", &weft_native)),
    );
    row(
        "`wasmtime serve` weft-gateway.wasm: launch → first `GET /healthz` answered, cache warm",
        &wasm_ready,
        Some(("`weft status`, cache", &weft_cached)),
    );

    let median_rss = |run: &Run| bench.peak_rss(run, &run::succeeded);
    rss.push((
        format!("hello, static musl {arch} (floor)"),
        median_rss(&hello_native),
    ));
    rss.push((
        format!("`weft status`, static musl {arch}"),
        median_rss(&native),
    ));
    rss.push((
        "hello component in wasmtime, cache warm (floor)".into(),
        median_rss(&hello_cached),
    ));
    rss.push((
        "`weft status` in wasmtime, cache warm".into(),
        median_rss(&cached),
    ));
    rss.push((
        "`status()` of clawft-agent.wasm in wasmtime, cache warm".into(),
        bench.peak_rss(&library, &library_status),
    ));
    Startup { table }
}

/// `wasmtime run --invoke 'status()'` printed the status of a wasip2 build.
fn library_status(output: &Output) -> Result<(), String> {
    run::succeeded(output)?;
    if String::from_utf8_lossy(&output.stdout).contains("wasm32-wasip2") {
        Ok(())
    } else {
        Err("the status does not name wasm32-wasip2".into())
    }
}

impl Startup {
    pub fn write(&self, report: &mut Report) {
        report.heading(2, "Start-up");
        report.para(
            "`weft status` (reads the config, prints JSON) against a program that \
             only prints a line. In wasmtime: `wasmtime run -C cache=y -S http --dir \
             HOME::/config` after one warm-up run fills the compile cache, and \
             `wasmtime run --allow-precompiled …` on the output of `wasmtime compile`. \
             The library component (`clawft-agent.wasm`) is called with `wasmtime run \
             --invoke 'status()'`, the same flags otherwise. A gateway's start-up is \
             from launch (`weft gateway --listen 127.0.0.1:0`, or `wasmtime serve -C \
             cache=y -S cli --dir HOME::/config --addr 127.0.0.1:0`) until the bench \
             has read the address it prints and the answer to its first `GET \
             /healthz`, on a new connection; its `floor` column is only a point of \
             comparison.",
        );
        report.table(&self.table);
    }
}
