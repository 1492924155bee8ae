//! One full turn against the stand-in on 127.0.0.1, natively and in
//! wasmtime, beside curl sending the same request; and streaming time to
//! first token.

use std::process::Output;
use std::time::{Duration, Instant};

use clawft_harness::server::Recorded;
use clawft_harness::Server;

use crate::report::{Report, Table};
use crate::run::{self, Run};
use crate::scaling::{write_session, TURN_HISTORY};
use crate::stats::Stats;
use crate::{Bench, RssRows, Wasm};

pub struct Turn {
    turns: Table,
    first_token: Table,
    /// `curl --version`: what curl's own start-up costs here.
    curl_startup: Stats,
}

const MESSAGE: &str = "hello there";
const SESSION: &str = "bench";

/// weft printed the stand-in's echo of the message.
fn replied(output: &Output) -> Result<(), String> {
    run::succeeded(output)?;
    let expected = format!("echo: {MESSAGE}");
    if String::from_utf8_lossy(&output.stdout).starts_with(&expected) {
        Ok(())
    } else {
        Err(format!("the reply does not start with {expected:?}"))
    }
}

/// curl received the stand-in's answer.
fn answered(output: &Output) -> Result<(), String> {
    run::succeeded(output)?;
    if String::from_utf8_lossy(&output.stdout).contains("echo:") {
        Ok(())
    } else {
        Err("no echo in the answer".into())
    }
}

/// `weft agent` with the bench message, streamed or not.
fn agent(run: Run, stream: bool) -> Run {
    let run = run.args(&["agent", "-s", SESSION, "-m", MESSAGE]);
    if stream {
        run
    } else {
        run.arg("--no-stream")
    }
}

pub fn measure(bench: &Bench, rss: &mut RssRows) -> Turn {
    let server = Server::start();
    let home = bench.home("turn", &server);
    let native_weft = bench.native_weft();
    let p2 = bench.component();
    let native = |stream| agent(bench.native(&native_weft, &home), stream);
    let wasm = |stream| agent(bench.wasm(&p2, Wasm::Cached, &home), stream);
    let n = bench.runs.turn;
    // Every run starts from the same session, so every client sends the same
    // request: restored untimed, fsynced.
    let restore = || {
        write_session(&home, SESSION, TURN_HISTORY);
        drop(server.take_requests());
    };
    let before = |_| restore();

    let mut turns = Table::new(&[
        "turn",
        ">native (static musl)",
        ">wasm (wasmtime, cache warm)",
        ">curl, same POST (floor)",
        ">native × curl",
        ">wasm × curl",
    ]);
    let mut curls = Vec::new();
    for (stream, what) in [(true, "streamed (default)"), (false, "`--no-stream`")] {
        let native_t = run::series_with(n, &replied, || native(stream), before);
        restore();
        let curl = curl_like(bench, &server, &native(stream), stream);
        let curl_t = run::series_with(n, &answered, || curl.clone(), before);
        let wasm_t = run::series_with(n, &replied, || wasm(stream), before);
        turns.row(vec![
            what.into(),
            native_t.to_string(),
            wasm_t.to_string(),
            curl_t.to_string(),
            native_t.ratio_to(&curl_t),
            wasm_t.ratio_to(&curl_t),
        ]);
        curls.push(curl);
    }
    let streamed_curl = &curls[0];

    let mut first_token = Table::new(&[
        "client",
        ">server sent first text event → client printed first byte",
        ">launch → first byte printed",
    ]);
    for (what, run, mark) in [
        ("native weft", native(true), Mark::FirstText),
        (
            "wasm weft (wasmtime, cache warm)",
            wasm(true),
            Mark::FirstText,
        ),
        (
            "curl -N (floor; raw stream, first event)",
            streamed_curl.clone(),
            Mark::FirstEvent,
        ),
    ] {
        let check: run::Check<'_> = if mark == Mark::FirstText {
            &replied
        } else {
            &answered
        };
        let (latency, from_launch) = first_token_series(&server, &run, n, mark, check, &restore);
        first_token.row(vec![
            what.into(),
            latency.to_string(),
            from_launch.to_string(),
        ]);
    }

    rss.push((
        "native turn, streamed".into(),
        bench.peak_rss(&native(true), &replied),
    ));
    rss.push((
        "wasm turn in wasmtime, streamed".into(),
        bench.peak_rss(&wasm(true), &replied),
    ));
    rss.push((
        "curl, the same streamed POST (floor)".into(),
        bench.peak_rss(streamed_curl, &answered),
    ));
    let curl_version = Run::new(run::on_path("curl")).arg("--version");
    let curl_startup = run::series(&curl_version, bench.runs.startup, &run::succeeded);
    Turn {
        turns,
        first_token,
        curl_startup,
    }
}

/// curl sending exactly what `weft_run` sends: runs weft once, takes the
/// request the server recorded, and replays its endpoint, headers and body.
fn curl_like(bench: &Bench, server: &Server, weft_run: &Run, stream: bool) -> Run {
    let (_, output) = weft_run.once();
    run::verify(weft_run, &output, &replied);
    let request = server.take_requests().pop().expect("weft sent a request");
    let body = bench.scratch().join(format!(
        "body-{}.json",
        if stream { "stream" } else { "plain" }
    ));
    std::fs::write(&body, &request.body).expect("write the request body");
    // `Expect:` stops curl asking for `100 Continue` before a large body,
    // which weft never does.
    let mut curl = Run::new(run::on_path("curl"))
        .args(&["-sS", "-N", "--fail", "-X", "POST", "-H", "Expect:"]);
    for (name, value) in &request.headers {
        let hop_by_hop = ["host", "content-length", "transfer-encoding", "connection"];
        if !hop_by_hop.contains(&name.as_str()) {
            curl = curl.arg("-H").arg(format!("{name}: {value}"));
        }
    }
    curl.arg("--data-binary")
        .arg(format!("@{}", body.display()))
        .arg(format!("http://{}{}", server.addr(), request.path))
}

/// Which moment of the server's reply the first printed byte answers to.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mark {
    FirstText,
    FirstEvent,
}

/// Time from the server's mark to the first byte on stdout, and from launch
/// to that byte, over `n` runs after one warm-up.
fn first_token_series(
    server: &Server,
    run: &Run,
    n: usize,
    mark: Mark,
    check: run::Check<'_>,
    restore: &dyn Fn(),
) -> (Stats, Stats) {
    let mut latency = Vec::new();
    let mut from_launch = Vec::new();
    for i in 0..=n {
        restore();
        let result = run::first_byte(run);
        run::verify(run, &result.output, check);
        let request: Recorded = server.take_requests().pop().expect("a request");
        let sent = match mark {
            Mark::FirstText => request.first_text_sent(),
            Mark::FirstEvent => request.first_event_sent(),
        };
        let (Some(sent), Some(printed)) = (sent, result.first_byte) else {
            panic!("{}: no streamed text, or nothing printed", run.shown());
        };
        if i > 0 {
            latency.push(since(printed, sent));
            from_launch.push(since(printed, result.started));
        }
    }
    (Stats::of(latency), Stats::of(from_launch))
}

fn since(later: Instant, earlier: Instant) -> Duration {
    later.saturating_duration_since(earlier)
}

impl Turn {
    pub fn write(&self, report: &mut Report) {
        report.heading(2, "One turn against a server on 127.0.0.1");
        report.para(&format!(
            "`weft agent -s {SESSION} -m \"{MESSAGE}\"` with a session of \
             {TURN_HISTORY} messages, restored before every run: read the config, \
             load the session, POST it with the message to the provider stand-in, \
             print the reply, append the turn. curl sends the same request \
             (endpoint, headers, JSON body) and prints the answer: the HTTP \
             exchange alone."
        ));
        report.table(&self.turns);
        report.para(&format!(
            "curl is the floor for the exchange, not for starting a process: it is \
             dynamically linked and initialises its TLS and compression libraries, \
             so `curl --version` alone takes {} here.",
            self.curl_startup
        ));
        report.heading(3, "Streaming: time to first token");
        report.para(
            "From the moment the server wrote the first SSE event carrying reply \
             text to the moment the bench could read the first byte weft printed: \
             what weft adds before a token shows. `launch → first byte` is what a \
             user waits from pressing enter, the provider's time included (the \
             stand-in answers at once, then pauses 2 ms between events).",
        );
        report.table(&self.first_token);
    }
}
