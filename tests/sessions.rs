//! Session files end to end, natively and in the wasip2 component under
//! wasmtime, against a real HTTP server on 127.0.0.1: files private whatever
//! the umask, keys that differ only in case kept apart, a session an earlier
//! version named still used, and a turn right after a crashed writer saved.

use std::path::Path;
use std::time::{Duration, SystemTime};

use clawft_harness::scenarios::{openai_config, TEST_KEY};
use clawft_harness::{Output, Server, Weft};

fn native() -> Weft {
    Weft::native(env!("CARGO_BIN_EXE_weft"))
}

fn turn(weft: &Weft, key: &str, message: &str) -> Output {
    let out = weft
        .cmd(&["agent", "-s", key, "-m", message, "--no-stream"])
        .env("MOCK_API_KEY", TEST_KEY)
        .run();
    assert_eq!(out.code, 0, "{out}");
    out
}

fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// `Work` and `work` are two sessions in two files whose names differ in
/// more than case.
fn keys_differing_in_case(weft: &Weft) {
    let server = Server::start();
    weft.write_config(&openai_config(&server.base("ok")));
    turn(weft, "Work", "upper");
    turn(weft, "work", "lower");
    turn(weft, "Work", "upper again");
    let sessions = weft.home().join("sessions");
    assert_eq!(file_names(&sessions), ["%57ork.jsonl", "work.jsonl"]);
    let list = weft.run(&["sessions", "list"]);
    let lines: Vec<_> = list.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{list}");
    assert!(
        lines[0].starts_with("Work ") && lines[0].contains("4 messages"),
        "{list}"
    );
    assert!(
        lines[1].starts_with("work ") && lines[1].contains("2 messages"),
        "{list}"
    );
    let show = weft.run(&["sessions", "show", "work"]);
    assert!(
        show.stdout.contains("lower") && !show.stdout.contains("upper"),
        "{show}"
    );
}

/// A session an earlier version named `Work.jsonl` is still listed once,
/// shown, continued in place (its history sent) and removed under `Work`.
fn a_session_named_by_an_earlier_version(weft: &Weft) {
    let server = Server::start();
    weft.write_config(&openai_config(&server.base("ok")));
    let sessions = weft.home().join("sessions");
    std::fs::create_dir_all(&sessions).unwrap();
    let old = sessions.join("Work.jsonl");
    std::fs::write(
        &old,
        "{\"_type\":\"metadata\",\"key\":\"Work\",\"created_at\":\"2025-01-01T00:00:00Z\",\"format\":1}\n\
         {\"role\":\"user\",\"content\":\"from before\",\"timestamp\":\"2025-01-01T00:00:00Z\"}\n",
    )
    .unwrap();

    let list = weft.run(&["sessions", "list"]);
    assert_eq!(list.stdout.lines().count(), 1, "{list}");
    assert!(
        list.stdout.starts_with("Work ") && list.stdout.contains("1 message"),
        "{list}"
    );
    let show = weft.run(&["sessions", "show", "Work"]);
    assert!(show.stdout.contains("from before"), "{show}");

    turn(weft, "Work", "and now");
    let sent = server.take_requests().pop().expect("a request");
    let body = String::from_utf8_lossy(&sent.body).into_owned();
    assert!(body.contains("from before"), "history not sent: {body}");
    assert_eq!(file_names(&sessions), ["Work.jsonl"], "appended in place");
    let text = std::fs::read_to_string(&old).unwrap();
    assert_eq!(text.lines().count(), 4, "{text}");

    let rm = weft.run(&["sessions", "rm", "Work"]);
    assert_eq!(rm.code, 0, "{rm}");
    assert!(file_names(&sessions).is_empty());
}

#[test]
fn native_keys_differing_in_case() {
    keys_differing_in_case(&native());
}

#[test]
fn wasip2_keys_differing_in_case() {
    keys_differing_in_case(&Weft::wasip2());
}

#[test]
fn native_a_session_named_by_an_earlier_version() {
    a_session_named_by_an_earlier_version(&native());
}

#[test]
fn wasip2_a_session_named_by_an_earlier_version() {
    a_session_named_by_an_earlier_version(&Weft::wasip2());
}

/// Session files are 0600 in a 0700 directory even with umask 000.
#[cfg(unix)]
#[test]
fn native_session_files_are_private_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let server = Server::start();
    let weft = native();
    weft.write_config(&openai_config(&server.base("ok")));
    let out = std::process::Command::new("sh")
        .args(["-c", "umask 000 && exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_weft"))
        .args([
            "agent",
            "-s",
            "secret",
            "-m",
            "my key is 1234",
            "--no-stream",
        ])
        .env_clear()
        .env("CLAWFT_HOME", weft.home())
        .env("MOCK_API_KEY", TEST_KEY)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    let sessions = weft.home().join("sessions");
    assert_eq!(mode(&sessions), 0o700);
    assert_eq!(mode(&sessions.join("secret.jsonl")), 0o600);
}

/// Under WASI the lock is a file. One left by a writer that crashed a
/// moment ago is outlived: the turn waits until it is stale, takes it over
/// and saves (before, the wait gave up at 10 s, 20 s before staleness).
#[test]
fn wasip2_a_turn_right_after_a_crashed_writer_saves() {
    const STALE: Duration = Duration::from_secs(30);
    let server = Server::start();
    let weft = Weft::wasip2();
    weft.write_config(&openai_config(&server.base("ok")));
    turn(&weft, "default", "before the crash");
    let lock = weft.home().join("sessions/default.jsonl.lock");
    std::fs::write(&lock, "crashed").unwrap();
    // Stale in 12 s.
    let file = std::fs::File::options().write(true).open(&lock).unwrap();
    file.set_modified(SystemTime::now() - (STALE - Duration::from_secs(12)))
        .unwrap();
    drop(file);

    let out = turn(&weft, "default", "after the crash");
    assert!(out.elapsed >= Duration::from_secs(11), "{out}");
    assert!(out.stdout.contains("echo: after the crash"), "{out}");
    assert_eq!(weft.session_lines("default").len(), 5, "not saved");
    assert!(!lock.exists(), "the lock was left behind");
    let left = file_names(&weft.home().join("sessions"));
    assert_eq!(left, ["default.jsonl"]);
}
