//! `bench`: the measuring half of `scripts/bench`, which builds everything
//! first. Measures sizes, start-up, one full turn against the provider
//! stand-in on 127.0.0.1, streaming time to first token, the cost of a
//! round of the tool loop, the gateway under load, session scaling and
//! peak memory, then writes a markdown report. Timings are only reported,
//! never judged: the bench fails only when a program does not do its job.
//!
//! Usage: `bench --work DIR --out FILE [--command TEXT] [--quick] [--only SECTIONS]`
//!
//! `--only` takes a comma-separated list of `sizes`, `startup`, `turn`,
//! `tools`, `gateway` and `scaling`, to measure part of the report again (e.g. before and after a
//! change); the report says which sections it holds.
//!
//! `DIR` holds what `scripts/bench` built besides the shipped artifacts (the
//! floors, the component without wasm-opt, the `.cwasm` files, the image
//! sizes); the shipped artifacts are read from `dist/` in the target
//! directory (`$CARGO_TARGET_DIR`, else the workspace's `target`), where
//! `scripts/build` puts them.

mod gateway;
mod load;
mod machine;
mod report;
mod run;
mod scaling;
mod sizes;
mod startup;
mod stats;
mod tool_loop;
mod turn;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clawft_harness::{weft, Server};
use serde_json::{json, Value};
use tempfile::TempDir;

use report::{Report, Table};
use run::Run;

/// How many timed runs each kind of figure gets.
#[derive(Debug, Clone, Copy)]
pub struct Runs {
    pub startup: usize,
    /// Turns, time to first token and session-size turns.
    pub turn: usize,
    /// Full session loads (`sessions show`, `sessions list`).
    pub loads: usize,
    pub rss: usize,
    /// Requests at each level of gateway load.
    pub requests: usize,
}

const FULL: Runs = Runs {
    startup: 20,
    turn: 10,
    loads: 5,
    rss: 3,
    requests: 1600,
};
const QUICK: Runs = Runs {
    startup: 3,
    turn: 3,
    loads: 2,
    rss: 1,
    requests: 96,
};

/// Where everything is, and how many runs to make.
pub struct Bench {
    target: PathBuf,
    work: PathBuf,
    /// Homes and request bodies, on the same filesystem as the build.
    scratch: TempDir,
    wasmtime: PathBuf,
    pub runs: Runs,
}

/// How wasmtime gets its machine code.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Wasm {
    /// `-C cache=y`: compiled on first use, then from the compile cache.
    Cached,
    /// A `.cwasm` from `wasmtime compile`, run with `--allow-precompiled`.
    Precompiled,
}

/// The model and key every home's config uses.
pub const MODEL: &str = "mock/echo-1";
pub const KEY_VAR: &str = "MOCK_API_KEY";
pub const KEY: &str = "bench-key";

impl Bench {
    /// The shipped static binary for this machine's architecture.
    pub fn native_weft(&self) -> PathBuf {
        let target = format!("{}-unknown-linux-musl", std::env::consts::ARCH);
        self.shipped(&target, "weft")
    }

    /// The shipped wasip2 component.
    pub fn component(&self) -> PathBuf {
        self.shipped("wasm32-wasip2", "weft.wasm")
    }

    /// A shipped wasip2 component by file name (`clawft-agent.wasm`, ...).
    pub fn shipped_component(&self, file: &str) -> PathBuf {
        self.shipped("wasm32-wasip2", file)
    }

    /// An artifact as `scripts/build` ships it, in `target/dist/`.
    pub fn shipped(&self, target: &str, file: &str) -> PathBuf {
        self.target.join("dist").join(target).join(file)
    }

    /// What cargo linked, before `scripts/build` optimised it.
    pub fn linked(&self, target: &str, file: &str) -> PathBuf {
        self.target.join(target).join("release").join(file)
    }

    /// A file `scripts/bench` left in the work directory.
    pub fn built(&self, name: &str) -> PathBuf {
        self.work.join(name)
    }

    pub fn scratch(&self) -> &Path {
        self.scratch.path()
    }

    pub fn wasmtime(&self) -> &Path {
        &self.wasmtime
    }

    /// A fresh home (with config) under the scratch directory.
    pub fn home(&self, name: &str, server: &Server) -> PathBuf {
        let home = self.scratch().join(name);
        std::fs::create_dir_all(&home).expect("create a home");
        let config = config(server);
        std::fs::write(
            home.join("config.json"),
            serde_json::to_string_pretty(&config).expect("config"),
        )
        .expect("write config.json");
        home
    }

    /// `weft` natively with `home`, the key in its environment and nothing else.
    pub fn native(&self, program: &Path, home: &Path) -> Run {
        Run::new(program).env("CLAWFT_HOME", home).env(KEY_VAR, KEY)
    }

    /// The median peak RSS in KiB over `runs.rss` runs.
    pub fn peak_rss(&self, run: &Run, check: run::Check<'_>) -> u64 {
        let mut values: Vec<u64> = (0..self.runs.rss)
            .map(|_| run::peak_rss_kib(run, self.scratch(), check))
            .collect();
        values.sort_unstable();
        values[values.len() / 2]
    }

    /// A component in wasmtime with `home` as `/config` and the key passed in.
    pub fn wasm(&self, component: &Path, how: Wasm, home: &Path) -> Run {
        self.wasm_with(component, how, home, &[])
    }

    /// As [`Bench::wasm`], with more wasmtime options before the component
    /// (another `--dir`, `--invoke`).
    pub fn wasm_with(&self, component: &Path, how: Wasm, home: &Path, options: &[&str]) -> Run {
        let mut run = Run::new(&self.wasmtime).arg("run");
        run = match how {
            Wasm::Cached => run.args(&["-C", "cache=y"]),
            Wasm::Precompiled => run.arg("--allow-precompiled"),
        };
        // wasmtime finds its compile cache under $HOME/.cache.
        if let Some(user_home) = std::env::var_os("HOME") {
            run = run.env("HOME", user_home);
        }
        run.args(&["-S", "http", "--dir"])
            .arg(format!("{}::/config", home.display()))
            .arg("--env")
            .arg(format!("{KEY_VAR}={KEY}"))
            .args(options)
            .arg(component)
    }
}

/// The config of every bench home: the stand-in's `ok` scenario as the
/// default provider, and a `refuse` provider whose every answer is HTTP 400
/// (final at once, nothing saved).
pub fn config(server: &Server) -> Value {
    json!({
        "agents": {"defaults": {"model": MODEL}},
        "providers": {
            "mock": {"apiBase": server.base("ok"), "protocol": "openai",
                     "apiKeyEnv": KEY_VAR, "timeoutSecs": 30},
            "refuse": {"apiBase": server.base("status-400"), "protocol": "openai",
                       "apiKeyEnv": KEY_VAR, "maxRetries": 0}
        }
    })
}

/// Peak memory figures gathered by the sections, shown together at the end.
pub type RssRows = Vec<(String, u64)>;

fn main() -> ExitCode {
    let mut work = None;
    let mut out = None;
    let mut command = String::from("(unknown)");
    let mut quick = false;
    let mut only: Option<Vec<String>> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--work" => work = args.next().map(PathBuf::from),
            "--out" => out = args.next().map(PathBuf::from),
            "--command" => command = args.next().unwrap_or_default(),
            "--quick" => quick = true,
            "--only" => {
                let Some(list) = args.next() else {
                    return usage();
                };
                let names: Vec<String> = list.split(',').map(str::to_owned).collect();
                if names.iter().any(|n| !SECTIONS.contains(&n.as_str())) {
                    return usage();
                }
                only = Some(names);
            }
            _ => return usage(),
        }
    }
    let (Some(work), Some(out)) = (work, out) else {
        return usage();
    };

    let runs = if quick { QUICK } else { FULL };
    let started = Instant::now();
    let bench = Bench {
        target: weft::target_dir(),
        scratch: tempfile::Builder::new()
            .prefix("homes-")
            .tempdir_in(&work)
            .expect("scratch directory"),
        work,
        wasmtime: weft::wasmtime(),
        runs,
    };
    let date = machine::now();
    machine::note_load();

    let wanted = |section: &str| only.as_ref().is_none_or(|o| o.iter().any(|n| n == section));
    let mut rss = RssRows::new();
    let sizes = wanted("sizes").then(|| {
        eprintln!("bench: sizes");
        sizes::measure(&bench)
    });
    let startup = wanted("startup").then(|| {
        eprintln!("bench: start-up");
        startup::measure(&bench, &mut rss)
    });
    let turn = wanted("turn").then(|| {
        eprintln!("bench: one turn, time to first token");
        turn::measure(&bench, &mut rss)
    });
    let tool_loop = wanted("tools").then(|| {
        eprintln!("bench: tool loop");
        tool_loop::measure(&bench, &mut rss)
    });
    let gateway = wanted("gateway").then(|| {
        eprintln!("bench: gateway under load");
        gateway::measure(&bench, &mut rss)
    });
    let scaling = wanted("scaling").then(|| {
        eprintln!("bench: session scaling");
        scaling::measure(&bench, &mut rss)
    });

    let mut report = Report::default();
    report.heading(1, "Benchmarks");
    report.para(&format!(
        "Written by `{command}` on {date}, commit {}, in {:.0} s of measuring \
         (builds not counted). Regenerate it rather than editing it: every \
         figure comes from one run on one machine, so compare figures within \
         this page, not across machines.",
        machine::revision(),
        started.elapsed().as_secs_f64()
    ));
    if quick {
        report.para(
            "**Quick run (`--quick`): too few repetitions to quote; run `scripts/bench` for real figures.**",
        );
    }
    if let Some(sections) = &only {
        report.para(&format!(
            "**Partial run (`--only {}`): the other sections were not measured.**",
            sections.join(",")
        ));
    }
    report.heading(2, "Machine");
    report.list(&machine::describe(bench.scratch()));
    report.heading(2, "Tools");
    report.list(&machine::tools(&bench.wasmtime));

    if let Some(sizes) = &sizes {
        sizes.write(&mut report);
    }
    if let Some(startup) = &startup {
        startup.write(&mut report);
    }
    if let Some(turn) = &turn {
        turn.write(&mut report);
    }
    if let Some(tool_loop) = &tool_loop {
        tool_loop.write(&mut report);
    }
    if let Some(gateway) = &gateway {
        gateway.write(&mut report);
    }
    if let Some(scaling) = &scaling {
        scaling.write(&mut report);
    }

    report.heading(2, "Peak memory");
    report.para(&format!(
        "Maximum resident set size (GNU time `%M`), median of {} run(s). In \
         wasmtime this is mostly wasmtime itself: compare with the hello \
         component. The gateway rows are the server's `VmHWM` (from \
         `/proc`) after one load, from a fresh start.",
        runs.rss
    ));
    let mut table = Table::new(&["run", ">peak RSS"]);
    for (what, kib) in &rss {
        table.row(vec![
            what.clone(),
            format!("{:.1} MiB", *kib as f64 / 1024.0),
        ]);
    }
    report.table(&table);

    report.heading(2, "How this was measured");
    report.para(&method(&runs));

    let text = report.finish();
    if let Err(e) = std::fs::write(&out, &text) {
        eprintln!("bench: cannot write {}: {e}", out.display());
        return ExitCode::FAILURE;
    }
    eprintln!(
        "bench: wrote {} ({:.0} s of measuring)",
        out.display(),
        started.elapsed().as_secs_f64()
    );
    if sizes.is_some_and(|s| !s.optimised_runs) {
        eprintln!("bench: FAILED: the wasm-opt'd component does not run `weft status`");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn method(runs: &Runs) -> String {
    format!(
        "- Every time is wall-clock from spawn to exit (or to the first byte read \
         from stdout), taken by the bench process (`tests/harness/src/bin/bench/`) \
         with stdout and stderr read through pipes. Each figure is the median of \
         its runs, with min–max in brackets: {} runs for start-up, {} for turns \
         (session-size turns included) and time to first token, {} for full \
         session loads, each series after one untimed warm-up run.
- The floors are `benches/floors/hello.rs` (prints one line) built with `rustc` \
         and the release profile's options: a static musl binary, and a wasm32-wasip2 \
         component run by wasmtime with the same flags as weft.
- The server is the test suite's provider stand-in (`tests/harness/src/server.rs`) \
         on 127.0.0.1, in the bench process. It streams a reply as one SSE event per \
         word with a 2 ms pause after each event, the way a provider trickles tokens, \
         so a streamed turn's time includes that pacing; the `--no-stream` rows do not.
- The curl floor sends the request weft sent, captured by the server: same \
         endpoint, same JSON body, same headers (`curl -sS -N --data-binary @body`).
- Time to first token: the server notes the moment just before it writes the \
         first SSE event carrying reply text (one write per event, `TCP_NODELAY`); the bench notes the moment it could read weft's first \
         byte of stdout. For curl, which prints the stream raw, the server's first event \
         counts instead.
- A turn loads the session, sends its last `memory_window` (50) messages and \
         the new one, prints the reply and appends the turn \
         in one write followed by fsync. Before every run the session is rewritten \
         to its starting state (untimed, with fsync), so every run does the same \
         work. A refused turn (HTTP 400 from the `status-400` scenario, no retries) \
         does everything but the append, so `saved − refused` approximates the cost \
         of saving. Session-size turns use `--no-stream`.
- Gateway latencies are per request, from the first byte written to the last \
         byte of the answer read, in the client's thread; p50 and p99 by nearest \
         rank over every client's requests; requests/s is all requests over the \
         wall-clock time from the clients' common start to the last answer.
- Nothing here fails on a time: the bench fails only if a program does not do its \
         job (wrong exit status or output).",
        runs.startup, runs.turn, runs.loads
    )
}

/// The sections `--only` can name.
const SECTIONS: [&str; 6] = ["sizes", "startup", "turn", "tools", "gateway", "scaling"];

fn usage() -> ExitCode {
    eprintln!(
        "usage: bench --work DIR --out FILE [--command TEXT] [--quick] [--only {}]",
        SECTIONS.join(",")
    );
    ExitCode::from(2)
}
