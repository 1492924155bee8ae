//! Start-up: `weft status` natively and in wasmtime, beside hello-world floors.

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

    // Alternate weft and its floor so drift on the machine hits both alike.
    let floor_native = time(&hello_native);
    let weft_native = time(&native);
    let floor_cached = time(&hello_cached);
    let weft_cached = time(&cached);
    let weft_plain_cached = time(&plain_cached);
    let floor_cwasm = time(&hello_cwasm);
    let weft_cwasm = time(&cwasm);

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
    Startup { table }
}

impl Startup {
    pub fn write(&self, report: &mut Report) {
        report.heading(2, "Start-up");
        report.para(
            "`weft status` (reads the config, prints JSON) against a program that \
             only prints a line. In wasmtime: `wasmtime run -C cache=y -S http --dir \
             HOME::/config` after one warm-up run fills the compile cache, and \
             `wasmtime run --allow-precompiled …` on the output of `wasmtime compile`.",
        );
        report.table(&self.table);
    }
}
