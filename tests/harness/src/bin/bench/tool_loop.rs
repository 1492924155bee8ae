//! What one round of the tool loop costs: a turn in which the stand-in's
//! scripted model (`tests/harness/src/model.rs`) calls `list_dir` ten
//! rounds running, against a plain turn of one request, natively and in
//! wasmtime; and the stand-in's own share, from replaying the same
//! requests to it without weft.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use clawft_harness::server::Recorded;
use clawft_harness::Server;
use serde_json::{json, Value};

use crate::load;
use crate::report::{Report, Table};
use crate::run::{self, Run};
use crate::stats::{ms, Stats};
use crate::{Bench, RssRows, Wasm, KEY_VAR};

/// Rounds of tool calls in the measured turn.
pub const STEPS: usize = 10;
/// Entries in each directory the model lists.
const FILES_PER_DIR: usize = 3;
const LOOP_SESSION: &str = "loop";
const PLAIN_SESSION: &str = "plain";

pub struct ToolLoop {
    table: Table,
}

/// The plan: round `i` lists directory `d<i>`, each a new argument (three
/// identical rounds in a row would stop the loop), then the model answers.
fn loop_plan() -> Value {
    let rounds: Vec<Value> = (0..STEPS)
        .map(|i| json!({"calls": [{"name": "list_dir", "arguments": {"path": format!("d{i}")}}]}))
        .collect();
    json!({"plan": rounds, "then": "answer"})
}

/// No rounds: the model answers the first request, tools offered all the same.
fn plain_plan() -> Value {
    json!({"plan": [], "then": "answer"})
}

fn looped(output: &Output) -> Result<(), String> {
    run::succeeded(output)?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !stdout.contains(&format!("done after {STEPS} rounds")) {
        return Err(format!(
            "the reply does not say \"done after {STEPS} rounds\""
        ));
    }
    let calls = String::from_utf8_lossy(&output.stderr)
        .lines()
        .filter(|l| l.starts_with("tool list_dir d"))
        .count();
    if calls == STEPS {
        Ok(())
    } else {
        Err(format!(
            "{calls} `tool list_dir` lines on stderr, not {STEPS}"
        ))
    }
}

fn answered_at_once(output: &Output) -> Result<(), String> {
    run::succeeded(output)?;
    if String::from_utf8_lossy(&output.stdout).contains("done after 0 rounds") {
        Ok(())
    } else {
        Err("the reply does not say \"done after 0 rounds\"".into())
    }
}

/// A home whose provider is the scripted model, and a workspace of
/// `STEPS` small directories.
fn prepare_home(bench: &Bench, server: &Server) -> std::path::PathBuf {
    let home = bench.scratch().join("tool-loop");
    let workspace = home.join("workspace");
    for d in 0..STEPS {
        let dir = workspace.join(format!("d{d}"));
        std::fs::create_dir_all(&dir).expect("create a workspace directory");
        for f in 0..FILES_PER_DIR {
            let text = format!("file {f} of directory {d}: a few bytes to list.\n");
            std::fs::write(dir.join(format!("notes-{f}.md")), text).expect("write a file");
        }
    }
    let config = json!({
        "agents": {"defaults": {"model": "mock/model-1"}},
        "providers": {"mock": {"apiBase": server.base("model"), "protocol": "openai",
                               "apiKeyEnv": KEY_VAR, "timeoutSecs": 30}}
    });
    std::fs::write(
        home.join("config.json"),
        serde_json::to_string_pretty(&config).expect("config"),
    )
    .expect("write config.json");
    home
}

/// Every run starts without the sessions the runs write.
fn forget_sessions(home: &Path, server: &Server) {
    for session in [LOOP_SESSION, PLAIN_SESSION] {
        let _ = std::fs::remove_file(home.join("sessions").join(format!("{session}.jsonl")));
    }
    drop(server.take_requests());
}

pub fn measure(bench: &Bench, rss: &mut RssRows) -> ToolLoop {
    let server = Server::start();
    let home = prepare_home(bench, &server);
    let native_weft = bench.native_weft();
    let p2 = bench.component();
    let workspace = format!("{}::/workspace", home.join("workspace").display());
    let native = || bench.native(&native_weft, &home);
    let wasm = || bench.wasm_with(&p2, Wasm::Cached, &home, &["--dir", &workspace]);
    let (loop_message, plain_message) = (loop_plan().to_string(), plain_plan().to_string());
    let agent = |run: Run, session: &str, message: &str, stream: bool| {
        let run = run.args(&["agent", "-s", session, "-m", message]);
        if stream {
            run
        } else {
            run.arg("--no-stream")
        }
    };

    let mut table = Table::new(&[
        "build",
        "replies",
        ">plain turn (1 request)",
        &format!(">{STEPS}-step loop ({} requests)", STEPS + 1),
        ">per step",
        ">stand-in's share per step",
        ">weft's own per step",
    ]);
    let builds: [(&str, &dyn Fn() -> Run); 2] = [
        ("native (static musl)", &native),
        ("wasm (wasmtime, cache warm)", &wasm),
    ];
    for (build, make) in builds {
        for (stream, replies) in [(true, "streamed (default)"), (false, "`--no-stream`")] {
            let plain = || agent(make(), PLAIN_SESSION, &plain_message, stream);
            let turn = || agent(make(), LOOP_SESSION, &loop_message, stream);
            let timing = paired(bench, &server, &home, &plain, &turn);
            let standin = replayed(bench, &server, &timing.requests);
            let own = timing.per_step.median.saturating_sub(standin.median);
            table.row(vec![
                build.into(),
                replies.into(),
                timing.plain.to_string(),
                timing.looped.to_string(),
                timing.per_step.to_string(),
                standin.to_string(),
                ms(own),
            ]);
        }
        // Like the timed runs, each starts from no session.
        let run = agent(make(), LOOP_SESSION, &loop_message, true);
        let mut peaks: Vec<u64> = (0..bench.runs.rss)
            .map(|_| {
                forget_sessions(&home, &server);
                run::peak_rss_kib(&run, bench.scratch(), &looped)
            })
            .collect();
        peaks.sort_unstable();
        rss.push((
            format!("{STEPS}-step tool loop, {build}, streamed"),
            peaks[peaks.len() / 2],
        ));
    }
    ToolLoop { table }
}

/// The plain turn, the loop, and the loop's extra time per step, from
/// runs taken in pairs (plain, then loop) so drift hits both alike.
struct Paired {
    plain: Stats,
    looped: Stats,
    per_step: Stats,
    /// The requests of the last loop run, as the stand-in received them.
    requests: Vec<Recorded>,
}

fn paired(
    bench: &Bench,
    server: &Server,
    home: &Path,
    plain: &dyn Fn() -> Run,
    turn: &dyn Fn() -> Run,
) -> Paired {
    let (mut plains, mut loops, mut steps) = (Vec::new(), Vec::new(), Vec::new());
    let mut requests = Vec::new();
    for i in 0..=bench.runs.turn {
        forget_sessions(home, server);
        let run = plain();
        let (plain_time, output) = run.once();
        run::verify(&run, &output, &answered_at_once);
        forget_sessions(home, server);
        let run = turn();
        let (loop_time, output) = run.once();
        run::verify(&run, &output, &looped);
        requests = server.take_requests();
        assert_eq!(
            requests.len(),
            STEPS + 1,
            "{}: the loop should make {} requests",
            run.shown(),
            STEPS + 1
        );
        if i > 0 {
            plains.push(plain_time);
            loops.push(loop_time);
            steps.push(loop_time.saturating_sub(plain_time) / STEPS as u32);
        }
    }
    Paired {
        plain: Stats::of(plains),
        looped: Stats::of(loops),
        per_step: Stats::of(steps),
        requests,
    }
}

/// The stand-in's time for the loop's extra requests (all but the first,
/// which the plain turn also sends), replayed byte for byte from the bench
/// one after another and read raw (parsing nothing), per step.
fn replayed(bench: &Bench, server: &Server, recorded: &[Recorded]) -> Stats {
    let addr = server.addr();
    let requests: Vec<load::Request> = recorded[1..]
        .iter()
        .map(|r| load::Request::new(addr, &r.method, &r.path, &r.headers, &r.body))
        .collect();
    let times: Vec<Duration> = (0..=bench.runs.turn)
        .map(|_| {
            let total: Duration = requests
                .iter()
                .map(|r| {
                    let (time, raw) = load::raw_once(r);
                    if let Err(why) = model_answered(&raw) {
                        panic!("replaying a loop request: {why}");
                    }
                    time
                })
                .sum();
            total / STEPS as u32
        })
        .skip(1)
        .collect();
    Stats::of(times)
}

/// The scripted model answered (a call, or at the end its reply), rather
/// than refusing the request.
fn model_answered(raw: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(raw);
    if text.starts_with("HTTP/1.1 200") && text.contains("chatcmpl-model") {
        Ok(())
    } else {
        let shown: String = text.chars().take(400).collect();
        Err(format!("the scripted model did not answer 200: {shown}"))
    }
}

impl ToolLoop {
    pub fn write(&self, report: &mut Report) {
        report.heading(2, "Tool loop");
        report.para(&format!(
            "What a round of tool calls costs. The stand-in's scripted model \
             (`model` scenario, `tests/harness/src/model.rs`) reads a plan from the \
             message: the loop turn calls `list_dir` on a directory of \
             {FILES_PER_DIR} files in each of {STEPS} rounds (a new directory each \
             round), then answers; the plain turn has an empty plan, so the model \
             answers the first request, with the same tools offered. Both start \
             from no session. Runs are taken in pairs, plain then loop, and `per \
             step` is `(loop − plain) / {STEPS}` of each pair: a request with the \
             history so far, the reply parsed, the call run and its line printed \
             on stderr. `stand-in's share` is the {STEPS} extra requests the loop \
             sent, replayed byte for byte from the bench process to the stand-in \
             (new connection each, as weft makes) and read to the end without \
             being parsed, per step; `weft's own` is the \
             difference of the medians. The streamed replies arrive in 3-byte \
             pieces with no pause between events."
        ));
        report.table(&self.table);
    }
}
