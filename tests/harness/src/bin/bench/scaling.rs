//! How a turn and a full load grow with the session: 10, 1,000 and 100,000
//! messages, and a turn with long messages before the ones it sends.

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

/// A session of `older` messages of `bytes` bytes each, then `recent`
/// short ones.
struct Large {
    older: usize,
    bytes: usize,
    recent: usize,
}

/// The window a turn sends (the config's `memory_window`, 50 by default) is
/// the 50 short messages; what lies beyond it grows from 10 KiB to 60 MiB.
/// The last row sends 50 of its long messages.
const LARGE: [Large; 3] = [
    Large {
        older: 10,
        bytes: 1 << 10,
        recent: 50,
    },
    Large {
        older: 60,
        bytes: 1 << 20,
        recent: 50,
    },
    Large {
        older: 60,
        bytes: 1 << 20,
        recent: 0,
    },
];

impl Large {
    fn describe(&self) -> String {
        let size = if self.bytes >= 1 << 20 {
            format!("{} MiB", self.bytes >> 20)
        } else {
            format!("{} KiB", self.bytes >> 10)
        };
        match self.recent {
            0 => format!("{} × {size}", self.older),
            n => format!("{} × {size}, then {n} short", self.older),
        }
    }
}

pub struct Scaling {
    turns: Table,
    loads: Table,
    large: Table,
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

    let mut large = Table::new(&["session", ">file", ">native turn", ">wasm turn"]);
    for shape in &LARGE {
        let described = shape.describe();
        eprintln!("bench:   {described}");
        let home = bench.home("scale-large", &server);
        let bytes = write_large_session(&home, KEY, shape);
        let restore = |_| {
            write_large_session(&home, KEY, shape);
            drop(server.take_requests());
        };
        let native = || bench.native(&native_weft, &home);
        let wasm = || bench.wasm(&p2, Wasm::Cached, &home);
        let native_ok = run::series_with(n_turns, &replied, || turn(native()), restore);
        let wasm_ok = run::series_with(n_turns, &replied, || turn(wasm()), restore);
        large.row(vec![
            described.clone(),
            format!("{} B", thousands(bytes)),
            native_ok.to_string(),
            wasm_ok.to_string(),
        ]);
        if shape.recent > 0 && shape.bytes >= 1 << 20 {
            rss.push((
                format!("native turn, session of {described}"),
                bench.peak_rss(&turn(native()), &replied),
            ));
        }
    }
    Scaling {
        turns,
        loads,
        large,
    }
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

/// Writes the session `key` as `shape` says (user and assistant taking
/// turns; long messages are English-like text) and flushes it to disk.
/// Returns the file's size.
fn write_large_session(home: &Path, key: &str, shape: &Large) -> u64 {
    let dir = home.join("sessions");
    std::fs::create_dir_all(&dir).expect("create sessions/");
    let path = dir.join(format!("{key}.jsonl"));
    let file = File::create(&path).expect("create the session");
    let mut out = BufWriter::new(&file);
    let meta = serde_json::json!({
        "_type": "metadata", "key": key, "created_at": "2025-01-01T00:00:00Z", "format": 1
    });
    writeln!(out, "{meta}").expect("write");
    let sentence = "A long pasted log line, or a file someone asked about, goes on. ";
    let long = sentence.repeat(shape.bytes / sentence.len() + 1)[..shape.bytes].to_owned();
    let count = shape.older + shape.recent;
    for i in 0..count {
        let role = if i.is_multiple_of(2) {
            "user"
        } else {
            "assistant"
        };
        let content = if i < shape.older {
            long.clone()
        } else {
            format!("Short message {i}: what changed since the last one?")
        };
        let message = serde_json::json!({
            "role": role, "content": content, "timestamp": "2025-01-01T00:00:00Z"
        });
        writeln!(out, "{message}").expect("write");
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
        report.para(
            "Long messages: the same turn with a session whose window (the last 50 \
             messages, which the turn sends) is 50 short messages, after 10 messages \
             of 1 KiB or 60 of 1 MiB that it does not send; then a session of only \
             60 messages of 1 MiB, of which the turn sends 50 (50 MiB). A turn reads \
             a session from its end and stops once it has the window, so what lies \
             beyond the window should not matter.",
        );
        report.table(&self.large);
    }
}
