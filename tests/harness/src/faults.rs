//! Reliability scenarios: retries, broken and endless replies, a key that
//! must never show, and many writers on one session. Run against every build
//! like [`crate::scenarios`].

use std::path::Path;
use std::thread;
use std::time::Duration;

use serde_json::{json, Value};

use crate::scenarios::{agent, expect_failure, openai_config, Outcome, TEST_KEY};
use crate::server::Server;
use crate::weft::{Output, Weft};

fn retry_lines(out: &Output) -> Vec<&str> {
    out.stderr
        .lines()
        .filter(|l| l.starts_with("retry "))
        .collect()
}

fn config_with(server: &Server, scenario: &str, provider: Value) -> Value {
    let mut config = openai_config(&server.base(scenario));
    for (k, v) in provider.as_object().into_iter().flatten() {
        config["providers"]["mock"][k] = v.clone();
    }
    config
}

/// Transient statuses are retried until the reply comes, one stderr line a
/// retry, and the turn is saved once.
pub fn retries_until_success(weft: &Weft, server: &Server) -> Outcome {
    weft.write_config(&openai_config(&server.base("flaky-2-529")));
    let out = agent(weft, &["-m", "hi", "-s", "retry"]);
    ensure!(out.code == 0, "turn failed:\n{out}");
    ensure!(out.stdout == "echo: hi [history 1]\n", "reply:\n{out}");
    let retries = retry_lines(&out);
    ensure!(retries.len() == 2, "expected 2 retry lines:\n{out}");
    ensure!(
        retries[0].starts_with("retry 1 of 2 in ") && retries[0].contains("HTTP 529"),
        "{}",
        retries[0]
    );
    ensure!(server.take_requests().len() == 3, "expected 3 requests");
    ensure!(
        weft.session_lines("retry").len() == 3,
        "the turn was not saved once"
    );
    Ok(())
}

/// Retries stop at `max_retries`; then the last error is reported.
pub fn retries_give_up(weft: &Weft, server: &Server) -> Outcome {
    weft.write_config(&openai_config(&server.base("flaky-9-503")));
    server.take_requests();
    let out = agent(weft, &["-m", "hi", "-s", "giveup"]);
    ensure!(out.code == 1, "expected failure:\n{out}");
    ensure!(retry_lines(&out).len() == 2, "expected 2 retries:\n{out}");
    let last = out.stderr.lines().last().unwrap_or_default();
    ensure!(
        last.contains("HTTP 503") && last.contains("not saved"),
        "last line: {last}"
    );
    ensure!(server.take_requests().len() == 3, "expected 3 requests");
    ensure!(
        !weft.session_file("giveup").exists(),
        "a failed turn was saved"
    );

    weft.write_config(&config_with(
        server,
        "flaky-9-500",
        json!({"maxRetries": 0}),
    ));
    let out = agent(weft, &["-m", "hi", "-s", "giveup"]);
    expect_failure(&out, 1, &["HTTP 500"])?;
    ensure!(
        server.take_requests().len() == 1,
        "max_retries 0 still retried"
    );
    Ok(())
}

/// Other client errors are final at once.
pub fn client_errors_are_not_retried(weft: &Weft, server: &Server) -> Outcome {
    for scenario in ["status-400", "status-401", "status-404", "status-422"] {
        weft.write_config(&openai_config(&server.base(scenario)));
        server.take_requests();
        let out = agent(weft, &["-m", "hi"]);
        expect_failure(&out, 1, &["HTTP"])?;
        ensure!(server.take_requests().len() == 1, "{scenario} was retried");
    }
    Ok(())
}

/// A `Retry-After` is waited out before the next attempt.
pub fn retry_after_is_obeyed(weft: &Weft, server: &Server) -> Outcome {
    weft.write_config(&openai_config(&server.base("retry-after-1")));
    server.take_requests();
    let out = agent(weft, &["-m", "hi"]);
    ensure!(out.code == 0, "turn failed:\n{out}");
    let retries = retry_lines(&out);
    ensure!(
        retries.len() == 1 && retries[0].contains("in 1.0 s") && retries[0].contains("HTTP 429"),
        "retry lines:\n{out}"
    );
    let requests = server.take_requests();
    ensure!(
        requests.len() == 2,
        "expected 2 requests, got {}",
        requests.len()
    );
    let gap = requests[1].at.duration_since(requests[0].at);
    ensure!(gap >= Duration::from_millis(950), "retried after {gap:?}");
    Ok(())
}

/// A connection dropped before any answer is retried.
pub fn dropped_connections_are_retried(weft: &Weft, server: &Server) -> Outcome {
    weft.write_config(&openai_config(&server.base("drop-1")));
    let out = agent(weft, &["-m", "hi", "-s", "drop"]);
    ensure!(out.code == 0, "turn failed:\n{out}");
    ensure!(out.stdout == "echo: hi [history 1]\n", "reply:\n{out}");
    ensure!(retry_lines(&out).len() == 1, "expected one retry:\n{out}");
    Ok(())
}

/// Once part of the reply was printed, a broken stream is reported, not
/// retried: the user never sees text twice.
pub fn shown_text_is_never_sent_twice(weft: &Weft, server: &Server) -> Outcome {
    weft.write_config(&openai_config(&server.base("cut")));
    server.take_requests();
    let out = agent(weft, &["-m", "one two three four five six", "-s", "cut"]);
    ensure!(out.code == 1, "expected failure:\n{out}");
    ensure!(
        retry_lines(&out).is_empty(),
        "retried after showing text:\n{out}"
    );
    ensure!(out.stderr.contains("stream interrupted"), "stderr:\n{out}");
    ensure!(
        out.stdout.starts_with("echo:") && out.stdout.matches("echo:").count() == 1,
        "stdout:\n{out}"
    );
    ensure!(
        server.take_requests().len() == 1,
        "the request was repeated"
    );
    ensure!(
        !weft.session_file("cut").exists(),
        "an interrupted turn was saved"
    );
    Ok(())
}

/// Broken replies give one clear error line, no panic, nothing saved.
pub fn broken_replies(weft: &Weft, server: &Server) -> Outcome {
    let cases = [
        ("malformed", true, "cannot read"),
        ("malformed", false, "cannot read"),
        ("bad-utf8", false, "cannot read"),
        ("close-mid-body", false, "error:"),
    ];
    for (scenario, stream, words) in cases {
        weft.write_config(&config_with(server, scenario, json!({"maxRetries": 0})));
        let mut args = vec!["-m", "hi", "-s", "broken"];
        if !stream {
            args.push("--no-stream");
        }
        let out = agent(weft, &args);
        expect_failure(&out, 1, &[words])?;
        ensure!(!out.stderr.contains("panicked"), "panic:\n{out}");
        ensure!(!weft.session_file("broken").exists(), "{scenario}: saved");
    }
    Ok(())
}

/// A stream that arrives with broken characters is shown and saved with
/// U+FFFD in their place and a note, not lost after it was half shown; a
/// surrogate pair cut between two events is joined again.
pub fn broken_characters_are_repaired(weft: &Weft, server: &Server) -> Outcome {
    weft.write_config(&config_with(server, "bad-utf8", json!({"maxRetries": 0})));
    let out = agent(weft, &["-m", "hi", "-s", "utf8"]);
    ensure!(out.code == 0, "turn failed:\n{out}");
    ensure!(out.stdout == "ok \u{fffd}\u{fffd}\n", "reply:\n{out}");
    ensure!(
        out.stderr.contains("note: 2 broken character(s)"),
        "no note:\n{out}"
    );
    ensure!(weft.session_lines("utf8").len() == 3, "not saved");

    weft.write_config(&config_with(
        server,
        "split-surrogate",
        json!({"maxRetries": 0}),
    ));
    let out = agent(weft, &["-m", "hi", "-s", "utf16"]);
    ensure!(out.code == 0, "turn failed:\n{out}");
    ensure!(out.stdout == "smile 😀\n", "reply:\n{out}");
    ensure!(out.stderr.is_empty(), "stderr:\n{out}");
    Ok(())
}

/// A stream that never ends is cut off at the event bound.
pub fn endless_stream_is_bounded(weft: &Weft, server: &Server) -> Outcome {
    weft.write_config(&config_with(server, "endless", json!({"maxRetries": 0})));
    let out = agent(weft, &["-m", "hi", "-s", "endless"]);
    ensure!(out.code == 1, "expected failure:\n{out}");
    let last = out.stderr.lines().last().unwrap_or_default();
    ensure!(last.contains("events in one reply"), "stderr:\n{out}");
    ensure!(!weft.session_file("endless").exists(), "saved");
    Ok(())
}

/// Every file under `dir`, with its contents.
fn files_under(dir: &Path, found: &mut Vec<(String, Vec<u8>)>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, found);
        } else if let Ok(bytes) = std::fs::read(&path) {
            found.push((path.display().to_string(), bytes));
        }
    }
}

/// The key goes through every path (success, error statuses, a provider that
/// echoes it, timeouts, retries, config and status commands) and shows up in
/// no output and no file under home.
pub fn key_appears_nowhere(weft: &Weft, server: &Server) -> Outcome {
    let mut outputs = Vec::new();
    let runs: &[(&str, Value, &[&str])] = &[
        ("ok", json!({}), &["-m", "hi", "-s", "k"]),
        ("ok", json!({}), &["-m", "again", "-s", "k", "--no-stream"]),
        ("echo-key", json!({}), &["-m", "hi", "-s", "k"]),
        ("status-401", json!({}), &["-m", "hi", "-s", "k"]),
        ("status-403", json!({}), &["-m", "hi", "-s", "k"]),
        (
            "status-500",
            json!({"maxRetries": 1}),
            &["-m", "hi", "-s", "k"],
        ),
        ("flaky-1-429", json!({}), &["-m", "hi", "-s", "k"]),
        (
            "slow-3000",
            json!({"timeoutSecs": 1, "maxRetries": 0}),
            &["-m", "hi", "-s", "k"],
        ),
        ("cut", json!({}), &["-m", "one two three four", "-s", "k"]),
    ];
    for (scenario, provider, args) in runs {
        weft.write_config(&config_with(server, scenario, provider.clone()));
        outputs.push(agent(weft, args));
    }
    for args in [
        &["config", "show"][..],
        &["config", "check"],
        &["status"],
        &["sessions", "list"],
        &["sessions", "show", "k"],
    ] {
        outputs.push(weft.cmd(args).env("MOCK_API_KEY", TEST_KEY).run());
    }
    ensure!(
        outputs[0].code == 0,
        "the successful turn failed:\n{}",
        outputs[0]
    );
    for out in &outputs {
        ensure!(
            !out.stdout.contains(TEST_KEY) && !out.stderr.contains(TEST_KEY),
            "the key leaked:\n{out}"
        );
    }
    let mut files = Vec::new();
    files_under(weft.home(), &mut files);
    ensure!(
        files.len() >= 2,
        "expected config and session files: {files:?}"
    );
    for (path, bytes) in files {
        let text = String::from_utf8_lossy(&bytes);
        ensure!(!text.contains(TEST_KEY), "the key is in {path}");
    }
    Ok(())
}

/// `processes` weft processes each append `turns` turns to one session at
/// once: every line parses, every turn is there, each user line directly
/// followed by its reply.
pub fn concurrent_writers(
    make: impl Fn() -> Weft,
    server: &Server,
    processes: usize,
    turns: usize,
) -> Outcome {
    let first = make();
    let mut config = openai_config(&server.base("ok"));
    config["agents"]["defaults"]["memoryWindow"] = json!(2);
    first.write_config(&config);
    let home = first.home().to_owned();
    // Long enough that a turn is well over one 4096-byte write.
    let padding = "x".repeat(6000);
    let failures: Vec<String> = thread::scope(|scope| {
        let workers: Vec<_> = (0..processes)
            .map(|p| {
                let weft = make().sharing_home(&home);
                let padding = &padding;
                scope.spawn(move || {
                    let mut failed = Vec::new();
                    for t in 0..turns {
                        let message = format!("p{p} t{t} {padding}");
                        let out = agent(&weft, &["-m", &message, "-s", "shared"]);
                        if out.code != 0 {
                            failed.push(out.to_string());
                        }
                    }
                    failed
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("worker thread"))
            .collect()
    });
    ensure!(
        failures.is_empty(),
        "turns failed:\n{}",
        failures.join("\n")
    );

    let text = std::fs::read_to_string(first.session_file("shared")).map_err(|e| e.to_string())?;
    let lines: Vec<Value> = text
        .lines()
        .enumerate()
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| format!("line {}: {e}", i + 1)))
        .collect::<Result<_, _>>()?;
    let metadata = lines.iter().filter(|l| l["_type"] == "metadata").count();
    ensure!(metadata == 1, "{metadata} metadata lines");
    let messages: Vec<&Value> = lines.iter().filter(|l| l["role"].is_string()).collect();
    ensure!(
        messages.len() == 2 * processes * turns,
        "{} messages for {} turns",
        messages.len(),
        processes * turns
    );
    for pair in messages.chunks(2) {
        ensure!(
            pair[0]["role"] == "user" && pair[1]["role"] == "assistant",
            "a turn was split: {} / {}",
            pair[0]["role"],
            pair[1]["role"]
        );
    }
    for p in 0..processes {
        for t in 0..turns {
            let prefix = format!("p{p} t{t} ");
            ensure!(
                messages.iter().any(|m| m["content"]
                    .as_str()
                    .is_some_and(|c| c.starts_with(&prefix))),
                "turn {prefix} is missing"
            );
        }
    }
    Ok(())
}
