//! How a turn and a full load grow with the session: 10, 1,000 and 100,000
//! messages.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::Output;

use clawft_harness::Server;

use crate::report::{Report, Table};
use crate::run::{self, Run};
use crate::stats::{ms, thousands, Stats};
use crate::{Bench, RssRows, Wasm};

pub const SIZES: [usize; 3] = [10, 1_000, 100_000];
const KEY: &str = "big";
/// The session every turn measured outside this module starts from.
pub const TURN_HISTORY: usize = 10;

pub struct Scaling {
    turns: Table,
    loads: Table,
}

fn replied(output: &Output) -> Result<(), String> {
    run::succeeded(output)?;
    if output.stdout.starts_with(b"echo: hello") {
        Ok(())
    } else {
        Err("no echo of the message".into())
    }
}

fn refused(output: &Output) -> Result<(), String> {
    if output.status.success() {
        return Err("a refused turn succeeded".into());
    }
    if String::from_utf8_lossy(&output.stderr).contains("400") {
        Ok(())
    } else {
        Err("no HTTP 400 in the error".into())
    }
}

fn printed(output: &Output) -> Result<(), String> {
    run::succeeded(output)?;
    if output.stdout.is_empty() {
        Err("printed nothing".into())
    } else {
        Ok(())
    }
}

fn turn(run: Run) -> Run {
    run.args(&["agent", "-s", KEY, "-m", "hello", "--no-stream"])
}

fn refused_turn(run: Run) -> Run {
    turn(run).args(&["--model", "refuse/echo-1"])
}

pub fn measure(bench: &Bench, rss: &mut RssRows) -> Scaling {
    let server = Server::start();
    let native_weft = bench.native_weft();
    let p2 = bench.component();
    let (n_turns, n_loads) = (bench.runs.turn, bench.runs.loads);

    let mut turns = Table::new(&[
        "messages",
        ">file",
        ">native turn",
        ">native, refused (no save)",
        ">native saved − refused",
        ">wasm turn",
        ">wasm, refused (no save)",
        ">wasm saved − refused",
    ]);
    let mut loads = Table::new(&[
        "messages",
        ">native `sessions show`",
        ">native `sessions list`",
        ">wasm `sessions show`",
        ">wasm `sessions list`",
    ]);
    for size in SIZES {
        eprintln!("bench:   {} messages", thousands(size as u64));
        let home = bench.home(&format!("scale-{size}"), &server);
        let bytes = write_session(&home, KEY, size);
        // Every run starts from the same session: restored untimed, fsynced.
        let restore = |_| {
            write_session(&home, KEY, size);
            drop(server.take_requests());
        };
        let native = || bench.native(&native_weft, &home);
        let wasm = || bench.wasm(&p2, Wasm::Cached, &home);
        let series = |n: usize, check: run::Check<'_>, make: &dyn Fn() -> Run| {
            run::series_with(n, check, make, restore)
        };

        let native_ok = series(n_turns, &replied, &|| turn(native()));
        let native_no = series(n_turns, &refused, &|| refused_turn(native()));
        let wasm_ok = series(n_turns, &replied, &|| turn(wasm()));
        let wasm_no = series(n_turns, &refused, &|| refused_turn(wasm()));
        turns.row(vec![
            thousands(size as u64),
            format!("{} B", thousands(bytes)),
            native_ok.to_string(),
            native_no.to_string(),
            difference(&native_ok, &native_no),
            wasm_ok.to_string(),
            wasm_no.to_string(),
            difference(&wasm_ok, &wasm_no),
        ]);

        let show = |run: Run| run.args(&["sessions", "show", KEY]);
        let list = |run: Run| run.args(&["sessions", "list"]);
        loads.row(vec![
            thousands(size as u64),
            series(n_loads, &printed, &|| show(native())).to_string(),
            series(n_loads, &printed, &|| list(native())).to_string(),
            series(n_loads, &printed, &|| show(wasm())).to_string(),
            series(n_loads, &printed, &|| list(wasm())).to_string(),
        ]);

        let messages = thousands(size as u64);
        rss.push((
            format!("native turn, session of {messages} messages"),
            bench.peak_rss(&turn(native()), &replied),
        ));
        rss.push((
            format!("native `sessions show`, {messages} messages"),
            bench.peak_rss(&show(native()), &printed),
        ));
    }
    Scaling { turns, loads }
}

/// `a − b` of the medians, signed.
fn difference(a: &Stats, b: &Stats) -> String {
    if a.median >= b.median {
        format!("+{}", ms(a.median - b.median))
    } else {
        format!("-{}", ms(b.median - a.median))
    }
}

/// Writes the session `key` with `size` messages (user and assistant taking
/// turns, 60 to 140 bytes of text each) and flushes it to disk, so no timed
/// fsync pays for it. Returns the file's size.
pub fn write_session(home: &Path, key: &str, size: usize) -> u64 {
    let dir = home.join("sessions");
    std::fs::create_dir_all(&dir).expect("create sessions/");
    let path = dir.join(format!("{key}.jsonl"));
    let file = File::create(&path).expect("create the session");
    let mut out = BufWriter::new(&file);
    let line = |value: serde_json::Value| format!("{value}\n");
    let meta = serde_json::json!({
        "_type": "metadata", "key": key, "created_at": "2025-01-01T00:00:00Z", "format": 1
    });
    out.write_all(line(meta).as_bytes()).expect("write");
    for i in 0..size {
        let (role, content) = if i.is_multiple_of(2) {
            (
                "user",
                format!("Question {i}: how would you keep this part small and fast?"),
            )
        } else {
            (
                "assistant",
                format!(
                    "Answer {i}: measure first, keep one module per concern, cut what \
                     users do not need, and check each change against the numbers again."
                ),
            )
        };
        let seconds = i % 60;
        let message = serde_json::json!({
            "role": role, "content": content,
            "timestamp": format!("2025-01-01T00:{:02}:{seconds:02}Z", (i / 60) % 60)
        });
        out.write_all(line(message).as_bytes()).expect("write");
    }
    out.flush().expect("flush");
    drop(out);
    file.sync_all().expect("fsync the session");
    std::fs::metadata(&path).expect("session metadata").len()
}

impl Scaling {
    pub fn write(&self, report: &mut Report) {
        report.heading(2, "Session size");
        report.para(
            "A turn (`weft agent -s big -m hello --no-stream`) with a session of 10, \
             1,000 and 100,000 messages already on disk. The refused turn is the same \
             turn against a provider that answers HTTP 400: it loads the session and \
             sends the request but saves nothing, so `saved − refused` is about what \
             the append costs.",
        );
        report.table(&self.turns);
        report.para(
            "Full loads: `weft sessions show big` prints every message; `weft sessions \
             list` reads every session to count its messages.",
        );
        report.table(&self.loads);
    }
}
