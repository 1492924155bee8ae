//! Tool-loop scenarios: real weft runs against the scripted model
//! ([`crate::model`]), for both protocols, streamed and whole, natively
//! and in wasmtime. The plan goes in the message; the workspace is a real
//! directory the test fills and inspects.

use std::fs;
use std::path::Path;

use serde_json::{json, Value};

pub use crate::scenarios::Outcome;
use crate::scenarios::TEST_KEY;
use crate::server::Server;
use crate::weft::{Build, Output, Weft};

/// The two wire protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    OpenAi,
    Anthropic,
}

impl Protocol {
    pub const BOTH: [Protocol; 2] = [Protocol::OpenAi, Protocol::Anthropic];
}

/// A config whose provider is the scripted model, speaking `protocol`.
pub fn model_config(server: &Server, protocol: Protocol, tools: Value) -> Value {
    let name = match protocol {
        Protocol::OpenAi => "openai",
        Protocol::Anthropic => "anthropic",
    };
    json!({
        "agents": {"defaults": {"model": "mock/model-1", "maxTokens": 512}},
        "providers": {"mock": {"apiBase": server.base("model"), "protocol": name,
                               "apiKeyEnv": "MOCK_API_KEY", "timeoutSecs": 20}},
        "tools": tools
    })
}

/// Runs `weft agent` with the plan as the message.
pub fn run_plan(weft: &Weft, plan: &Value, session: &str, stream: bool, extra: &[&str]) -> Output {
    let message = plan.to_string();
    let mut args = vec!["agent", "-s", session, "-m", &message];
    if !stream {
        args.push("--no-stream");
    }
    args.extend_from_slice(extra);
    weft.cmd(&args).env("MOCK_API_KEY", TEST_KEY).run()
}

/// The `tool NAME ...` lines on stderr.
pub fn tool_lines(out: &Output) -> Vec<String> {
    out.stderr
        .lines()
        .filter(|l| l.starts_with("tool "))
        .map(str::to_owned)
        .collect()
}

fn roles(weft: &Weft, session: &str) -> Vec<String> {
    weft.session_lines(session)
        .iter()
        .skip(1)
        .map(|l| l["role"].as_str().unwrap_or("?").to_owned())
        .collect()
}

/// The model reads notes.md, then writes todo.md from what it read: two
/// rounds of tools, text before the calls, the reply, the stderr lines,
/// the file, the saved exchange; then a second turn resends the history
/// in the protocol's shape (the stand-in checks it), and a third switches
/// to the other protocol mid-session.
pub fn read_then_write(weft: &Weft, server: &Server, protocol: Protocol, stream: bool) -> Outcome {
    weft.write_config(&model_config(server, protocol, json!({})));
    let ws = weft.workspace();
    fs::create_dir_all(&ws).map_err(|e| e.to_string())?;
    fs::write(ws.join("notes.md"), "buy milk\ncall Ada\n").map_err(|e| e.to_string())?;
    server.take_requests();
    let plan = json!({"plan": [
        {"say": "Reading the notes.", "calls": [{"name": "read_file", "arguments": {"path": "notes.md"}}]},
        {"calls": [{"name": "write_file", "arguments": {"path": "todo.md", "content": "$result0"}}]}
    ]});
    let out = run_plan(weft, &plan, "tools", stream, &[]);
    ensure!(out.code == 0, "turn failed:\n{out}");
    ensure!(
        out.stdout.starts_with("Reading the notes.\n"),
        "the text before the calls:\n{out}"
    );
    ensure!(
        out.stdout
            .ends_with("done after 2 rounds: created 'todo.md' (18 bytes)\n"),
        "the final reply:\n{out}"
    );
    let lines = tool_lines(&out);
    ensure!(
        lines
            == [
                "tool read_file notes.md -> 18 B",
                "tool write_file todo.md <- 18 B"
            ],
        "stderr tool lines {lines:?}:\n{out}"
    );
    let todo = fs::read_to_string(ws.join("todo.md")).map_err(|e| format!("todo.md: {e}"))?;
    ensure!(todo == "buy milk\ncall Ada\n", "todo.md holds {todo:?}");
    ensure!(server.take_requests().len() == 3, "expected 3 requests");
    let saved = roles(weft, "tools");
    ensure!(
        saved
            == [
                "user",
                "assistant",
                "tool",
                "assistant",
                "tool",
                "assistant"
            ],
        "session roles {saved:?}"
    );
    let lines = weft.session_lines("tools");
    ensure!(
        lines[2]["tool_calls"][0]["function"]["name"] == "read_file"
            && lines[3]["tool_call_id"] == lines[2]["tool_calls"][0]["id"]
            && lines[3]["content"] == "buy milk\ncall Ada\n",
        "the exchange on disk: {lines:?}"
    );

    // The next turn sends the whole exchange back, in this protocol's shape.
    let again = weft
        .cmd(&["agent", "-s", "tools", "-m", "thanks"])
        .env("MOCK_API_KEY", TEST_KEY)
        .run();
    ensure!(
        again.code == 0,
        "second turn (the history was refused?):\n{again}"
    );
    let sent = server.take_requests();
    ensure!(sent.len() == 1, "second turn made {} requests", sent.len());

    // And so does the other protocol, from the same session.
    let other = match protocol {
        Protocol::OpenAi => Protocol::Anthropic,
        Protocol::Anthropic => Protocol::OpenAi,
    };
    weft.write_config(&model_config(server, other, json!({})));
    let switched = weft
        .cmd(&["agent", "-s", "tools", "-m", "and now?"])
        .env("MOCK_API_KEY", TEST_KEY)
        .run();
    ensure!(switched.code == 0, "after switching protocol:\n{switched}");
    Ok(())
}

/// Two calls in one reply, their arguments in 3-byte pieces interleaved
/// (and, for OpenAI, once more with every call under index 0).
pub fn parallel_calls(weft: &Weft, server: &Server, protocol: Protocol, stream: bool) -> Outcome {
    weft.write_config(&model_config(server, protocol, json!({})));
    let ws = weft.workspace();
    fs::create_dir_all(ws.join("docs")).map_err(|e| e.to_string())?;
    fs::write(ws.join("docs/a.md"), "alpha").map_err(|e| e.to_string())?;
    for reuse_index in [false, true] {
        if reuse_index && protocol == Protocol::Anthropic {
            continue;
        }
        let plan = json!({"reuse_index": reuse_index, "plan": [{"calls": [
            {"name": "read_file", "arguments": {"path": "docs/a.md"}},
            {"name": "list_dir", "arguments": {"path": "docs"}}
        ]}]});
        let out = run_plan(weft, &plan, "parallel", stream, &[]);
        ensure!(out.code == 0, "turn failed:\n{out}");
        ensure!(
            out.stdout == "done after 1 rounds: alpha | a.md (file, 5 B)\n",
            "reply (reuse_index {reuse_index}):\n{out}"
        );
        ensure!(tool_lines(&out).len() == 2, "two tool lines:\n{out}");
    }
    Ok(())
}

/// Arguments cut off mid-JSON and a tool that does not exist: the model
/// gets an error for each and the turn goes on to its answer.
pub fn bad_calls(weft: &Weft, server: &Server, protocol: Protocol, stream: bool) -> Outcome {
    weft.write_config(&model_config(server, protocol, json!({})));
    let plan = json!({"plan": [{"calls": [
        {"name": "read_file", "raw_arguments": "{\"path\": \"no"},
        {"name": "delete_everything", "arguments": {}},
        {"name": "x\u{1b}]52;c;cm0gLXJmIH4K\u{7}\u{1b}[2J\u{9b}31m", "arguments": {}}
    ]}]});
    let out = run_plan(weft, &plan, "bad", stream, &[]);
    ensure!(out.code == 0, "a bad call failed the turn:\n{out}");
    ensure!(
        out.stdout
            .contains("[error] error: the arguments are not a JSON object")
            && out
                .stdout
                .contains("[error] error: there is no tool named 'delete_everything'"),
        "the model did not get both errors:\n{out}"
    );
    // The name the model chose reaches stderr (a terminal) without its
    // control characters.
    ensure!(
        !out.stderr.contains(['\u{1b}', '\u{7}', '\u{9b}']),
        "control characters from a tool name reached stderr:\n{out}"
    );
    ensure!(
        roles(weft, "bad") == ["user", "assistant", "tool", "tool", "tool", "assistant"],
        "saved {:?}",
        roles(weft, "bad")
    );
    Ok(())
}

/// A model that never stops calling tools hits the round limit; one that
/// repeats the same call is stopped sooner. Neither turn is saved.
pub fn limits(weft: &Weft, server: &Server, protocol: Protocol, stream: bool) -> Outcome {
    let mut config = model_config(server, protocol, json!({}));
    config["agents"]["defaults"]["maxToolIterations"] = json!(4);
    weft.write_config(&config);
    server.take_requests();
    let forever = json!({"plan": [], "then": "new"});
    let out = run_plan(weft, &forever, "limit", stream, &[]);
    check_last_error(
        &out,
        &["still calling tools after 4 rounds", "max_tool_iterations"],
    )?;
    ensure!(server.take_requests().len() == 4, "expected 4 requests");
    ensure!(
        !weft.session_file("limit").exists(),
        "a stopped turn was saved"
    );

    let same = json!({"plan": [{"calls": [{"name": "list_dir", "arguments": {"path": "."}}]}], "then": "same"});
    let out = run_plan(weft, &same, "repeat", stream, &[]);
    check_last_error(&out, &["called 'list_dir' with the same arguments 3 times"])?;
    ensure!(server.take_requests().len() == 3, "expected 3 requests");
    ensure!(
        !weft.session_file("repeat").exists(),
        "a stopped turn was saved"
    );
    Ok(())
}

/// A crash tore a saved tool turn: the session file ends inside the line of
/// a tool result, so a call has no result. The next turns still go out in
/// a shape the provider accepts (the stand-in refuses a call left
/// unanswered, as the real APIs do), with a stand-in error result for the
/// lost one, and the session file keeps every line it had.
pub fn torn_session(weft: &Weft, server: &Server, protocol: Protocol) -> Outcome {
    weft.write_config(&model_config(server, protocol, json!({})));
    fs::create_dir_all(weft.workspace()).map_err(|e| e.to_string())?;
    let plan = json!({"plan": [{"calls": [
        {"name": "list_dir", "arguments": {}},
        {"name": "list_dir", "arguments": {"path": "."}}
    ]}]});
    let out = run_plan(weft, &plan, "torn", false, &[]);
    ensure!(out.code == 0, "the first turn failed:\n{out}");
    let path = weft.session_file("torn");
    let text = fs::read_to_string(&path).map_err(|e| e.to_string())?;
    let second_result = text
        .match_indices("{\"role\":\"tool\"")
        .nth(1)
        .map(|(at, _)| at)
        .ok_or_else(|| format!("no second tool line in:\n{text}"))?;
    let torn = &text[..second_result + 30];
    fs::write(&path, torn).map_err(|e| e.to_string())?;
    for turn in 0..2 {
        let out = run_plan(weft, &plan, "torn", turn == 1, &[]);
        ensure!(out.code == 0, "turn {turn} after the tear failed:\n{out}");
        ensure!(
            out.stdout.starts_with("done after 1 rounds"),
            "turn {turn} answered:\n{out}"
        );
    }
    let now = fs::read_to_string(&path).map_err(|e| e.to_string())?;
    ensure!(now.starts_with(torn), "the torn session lost lines:\n{now}");
    Ok(())
}

/// The run failed (exit 1) and its last stderr line says all of `words`.
fn check_last_error(out: &Output, words: &[&str]) -> Outcome {
    ensure!(out.code == 1, "expected exit 1:\n{out}");
    let last = out.stderr.lines().last().unwrap_or_default();
    ensure!(last.starts_with("error: "), "last line {last:?}:\n{out}");
    for w in words {
        ensure!(last.contains(w), "the error lacks {w:?}:\n{out}");
    }
    ensure!(last.contains("not saved"), "no not-saved note:\n{out}");
    Ok(())
}

/// Escape attempts (`..`, absolute paths, symlinks out) are refused and
/// the file outside is untouched. Under wasm the workspace is a preopen of
/// its own; there a second run sets the workspace to `/`, as if the
/// resolver let everything through, and the host still refuses what it
/// never preopened.
pub fn escapes_are_refused(weft: &Weft, server: &Server, protocol: Protocol) -> Outcome {
    weft.write_config(&model_config(server, protocol, json!({})));
    let ws = weft.workspace();
    fs::create_dir_all(&ws).map_err(|e| e.to_string())?;
    let outside = tempfile::tempdir().map_err(|e| e.to_string())?;
    let secret = outside.path().join("secret.txt");
    fs::write(&secret, "keep out").map_err(|e| e.to_string())?;
    fs::write(weft.home().join("home-secret.txt"), "keep out").map_err(|e| e.to_string())?;
    #[cfg(unix)]
    {
        let _ = std::os::unix::fs::symlink(&secret, ws.join("link"));
        let _ = std::os::unix::fs::symlink(outside.path(), ws.join("out"));
    }
    let host_secret = secret.display().to_string();
    let attempts = [
        json!({"name": "read_file", "arguments": {"path": "../home-secret.txt"}}),
        json!({"name": "read_file", "arguments": {"path": host_secret}}),
        json!({"name": "read_file", "arguments": {"path": "/config/home-secret.txt"}}),
        json!({"name": "read_file", "arguments": {"path": "link"}}),
        json!({"name": "read_file", "arguments": {"path": "out/secret.txt"}}),
        json!({"name": "write_file", "arguments": {"path": "../home-secret.txt", "content": "pwned"}}),
        json!({"name": "write_file", "arguments": {"path": host_secret, "content": "pwned"}}),
        json!({"name": "edit_file", "arguments": {"path": "out/secret.txt", "old_text": "keep", "new_text": "pwned"}}),
        json!({"name": "list_dir", "arguments": {"path": ".."}}),
        json!({"name": "search", "arguments": {"pattern": "keep", "path": "../.."}}),
    ];
    let plan = json!({"plan": [{"calls": attempts}]});
    let out = run_plan(weft, &plan, "escape", true, &[]);
    ensure!(out.code == 0, "turn failed:\n{out}");
    let errors = out.stdout.matches("[error]").count();
    ensure!(
        errors == attempts.len(),
        "{errors} of {} attempts refused:\n{out}",
        attempts.len()
    );
    untouched(&secret, weft.home())?;

    if weft.build != Build::Native {
        // The second wall: a workspace of `/`, so the resolver allows every
        // path, and still nothing outside the preopens can be reached.
        let mut config = model_config(server, protocol, json!({}));
        config["agents"]["defaults"]["workspace"] = json!("/");
        weft.write_config(&config);
        let plan = json!({"plan": [{"calls": [
            {"name": "read_file", "arguments": {"path": host_secret}},
            {"name": "write_file", "arguments": {"path": host_secret, "content": "pwned"}},
            {"name": "write_file", "arguments": {"path": format!("{}/new.txt", outside.path().display()), "content": "pwned"}}
        ]}]});
        let out = run_plan(weft, &plan, "escape2", true, &[]);
        ensure!(out.code == 0, "turn failed:\n{out}");
        ensure!(
            out.stdout.matches("[error]").count() == 3,
            "the host let a call through:\n{out}"
        );
        untouched(&secret, weft.home())?;
        ensure!(
            !outside.path().join("new.txt").exists(),
            "a file appeared outside the preopens"
        );
    }
    Ok(())
}

fn untouched(secret: &Path, home: &Path) -> Outcome {
    let a = fs::read_to_string(secret).map_err(|e| e.to_string())?;
    let b = fs::read_to_string(home.join("home-secret.txt")).map_err(|e| e.to_string())?;
    ensure!(
        a == "keep out" && b == "keep out",
        "a file outside the workspace changed"
    );
    Ok(())
}

/// `--no-tools`: no tools in the request, a plain answer.
pub fn no_tools(weft: &Weft, server: &Server, protocol: Protocol) -> Outcome {
    weft.write_config(&model_config(server, protocol, json!({})));
    server.take_requests();
    let plan = json!({"plan": [{"calls": [{"name": "list_dir", "arguments": {}}]}]});
    let out = run_plan(weft, &plan, "quiet", true, &["--no-tools"]);
    ensure!(out.code == 0, "turn failed:\n{out}");
    ensure!(out.stdout == "no tools offered; round 0\n", "reply:\n{out}");
    let sent = server.take_requests();
    ensure!(
        sent.len() == 1 && sent[0].json().get("tools").is_none(),
        "tools were sent"
    );
    Ok(())
}

/// `web_fetch` through the build's own HTTP (wasi:http in the component):
/// a page comes back as readable text; binary and missing pages are errors.
pub fn web_fetch(weft: &Weft, server: &Server, protocol: Protocol) -> Outcome {
    weft.write_config(&model_config(
        server,
        protocol,
        json!({"web": {"enable": true, "timeout": 2}}),
    ));
    let page = |name: &str| format!("http://{}/{name}", server.addr());
    let plan = json!({"plan": [{"calls": [
        {"name": "web_fetch", "arguments": {"url": page("page")}},
        {"name": "web_fetch", "arguments": {"url": page("page-binary")}},
        {"name": "web_fetch", "arguments": {"url": page("nothing")}},
        {"name": "web_fetch", "arguments": {"url": page("page-moved")}},
        {"name": "web_fetch", "arguments": {"url": page("page-loop")}},
        {"name": "web_fetch", "arguments": {"url": page("page-drip")}}
    ]}]});
    let out = run_plan(weft, &plan, "web", true, &[]);
    ensure!(out.code == 0, "turn failed:\n{out}");
    let results: Vec<&str> = out.stdout.split(" | ").collect();
    ensure!(results.len() == 6, "six results expected:\n{out}");
    let expected = [
        "Stand-in page\nWeather\nSunny & warm, 21 C.".to_owned(),
        "is image/png, not text".to_owned(),
        "answered HTTP 404".to_owned(),
        format!("[redirected to {}]\nplain words", page("page-text")),
        "redirected more than 5 times".to_owned(),
        "did not answer within 2 s".to_owned(),
    ];
    for (result, expected) in results.iter().zip(&expected) {
        ensure!(
            result.contains(expected.as_str()),
            "{expected:?} not in {result:?}:\n{out}"
        );
    }
    Ok(())
}

/// `exec` (native only): an allowed program runs in the workspace; others
/// are refused.
pub fn exec(weft: &Weft, server: &Server) -> Outcome {
    weft.write_config(&model_config(
        server,
        Protocol::OpenAi,
        json!({"exec": {"enable": true, "allow": ["ls"]}}),
    ));
    let ws = weft.workspace();
    fs::create_dir_all(&ws).map_err(|e| e.to_string())?;
    fs::write(ws.join("visible.txt"), "x").map_err(|e| e.to_string())?;
    let plan = json!({"plan": [{"calls": [
        {"name": "exec", "arguments": {"program": "ls"}},
        {"name": "exec", "arguments": {"program": "cat", "args": ["../config.json"]}}
    ]}]});
    let out = run_plan(weft, &plan, "exec", true, &[]);
    ensure!(out.code == 0, "turn failed:\n{out}");
    ensure!(
        out.stdout.contains("[exit 0]") && out.stdout.contains("visible.txt"),
        "ls did not run in the workspace:\n{out}"
    );
    ensure!(
        out.stdout
            .contains("[error] error: 'cat' is not an allowed program"),
        "{out}"
    );
    Ok(())
}
