//! The agent as a library: `clawft-agent.wasm` called through its
//! `clawft:agent/agent` exports by the hosts a user would embed it in, each
//! against a real provider stand-in on 127.0.0.1 and a real home directory:
//!
//! - the wasmtime CLI, `wasmtime run --invoke` (plain functions only: it
//!   cannot call resources);
//! - Python, PyPI `wasmtime` (`tests/hosts/agent_host.py`);
//! - Node, the module `jco transpile` makes, on preview2-shim
//!   (`tests/hosts/agent_host.mjs`);
//! - the examples in `examples/`, run with `scripts/example` exactly as
//!   `examples/README.md` says;
//! - and the command `weft.wasm` under `jco run`, which must save its session.
//!
//! Needs `scripts/build wasm32-wasip2` and `scripts/setup-hosts`; without
//! them every test fails and names the script.

use serde_json::json;

use clawft_harness::hosts::{self, Host, HostError, Streamed, TurnRequest};
use clawft_harness::scenarios::{openai_config, TEST_KEY};
use clawft_harness::server::Recorded;
use clawft_harness::{Server, Weft};

/// Milliseconds the `stall-` provider waits after the first piece of text.
const STALL_MS: u64 = 1000;

/// The guest's environment: the keys of the stand-in's providers, and no
/// `OPENAI_API_KEY`, so the `openai` provider lacks its key.
const KEYS: [(&str, &str); 2] = [("MOCK_API_KEY", TEST_KEY), ("ANTHROPIC_API_KEY", TEST_KEY)];

/// A home (and the command, to read it as a user would) with a config
/// whose providers are the stand-in's scenarios, chosen per turn by model:
/// `mock/` answers, `anthropic/` answers in the Anthropic protocol,
/// `down/` answers 503 (no retries), `badkey/` answers 401, `stall/` pauses
/// after its first piece.
fn home(server: &Server) -> Weft {
    let weft = Weft::wasip2();
    let mut config = openai_config(&server.base("ok"));
    let providers = &mut config["providers"];
    let openai = |scenario: &str| {
        json!({"apiBase": server.base(scenario), "protocol": "openai",
               "apiKeyEnv": "MOCK_API_KEY", "timeoutSecs": 10, "maxRetries": 0})
    };
    providers["anthropic"] = json!({"apiBase": server.base("ok"), "timeoutSecs": 10});
    providers["down"] = openai("status-503");
    providers["badkey"] = openai("status-401");
    providers["stall"] = openai(&format!("stall-{STALL_MS}"));
    weft.write_config(&config);
    weft
}

fn only_request(server: &Server) -> Recorded {
    let mut got = server.take_requests();
    assert_eq!(got.len(), 1, "expected one request, got {got:?}");
    got.remove(0)
}

/// The words of a streamed reply, each with the space before it, as the
/// stand-in sends them: one piece per event.
fn words(reply: &str) -> Vec<String> {
    let mut words = reply.split(' ');
    let first = words.next().unwrap_or_default().to_owned();
    std::iter::once(first)
        .chain(words.map(|word| format!(" {word}")))
        .collect()
}

fn streamed(host: Host, result: Result<Streamed, HostError>) -> Streamed {
    let streamed = result.unwrap_or_else(|e| panic!("{host}: start-turn failed: {e}"));
    assert_eq!(streamed.end, Ok(()), "{host}: the stream ended in an error");
    if let Some(again) = &streamed.again {
        assert_eq!(again, &Ok(None), "{host}: next after the end");
    }
    streamed
}

/// Turns in both protocols, whole and streamed, the session file written
/// by one call and read by the next (in a new instance), text that
/// arrives while the provider is still talking, the session functions and
/// status; the command reads what the library wrote.
fn conversation(host: Host) {
    let server = Server::start();
    let weft = home(&server);
    let mut agent = host.start(weft.home(), &KEYS);

    let reply = agent.turn(&TurnRequest::new("chat", "hello"));
    assert_eq!(reply.as_deref(), Ok("echo: hello [history 1]"), "{host}");
    let request = only_request(&server);
    assert_eq!(request.path, "/ok/v1/chat/completions");
    assert_eq!(
        request.header("authorization"),
        Some(format!("Bearer {TEST_KEY}").as_str())
    );
    assert_eq!(request.json()["stream"], json!(false));
    assert_eq!(weft.session_lines("chat").len(), 3, "{host}: session file");

    // A new instance finds the conversation in the file.
    drop(agent);
    let mut agent = host.start(weft.home(), &KEYS);
    let second = streamed(
        host,
        agent.stream(&TurnRequest::new("chat", "and now").streamed()),
    );
    assert_eq!(second.pieces, words("echo: and now [history 3]"), "{host}");
    assert_eq!(only_request(&server).json()["stream"], json!(true));
    assert_eq!(weft.session_lines("chat").len(), 5, "{host}: session file");

    let claude = TurnRequest::new("claude", "hi claude").model("anthropic/claude-mock");
    let first = streamed(host, agent.stream(&claude.clone().streamed()));
    assert_eq!(first.pieces, words("echo: hi claude [history 1]"), "{host}");
    let request = only_request(&server);
    assert_eq!(request.path, "/ok/v1/messages");
    assert_eq!(request.header("x-api-key"), Some(TEST_KEY));
    let reply = agent.turn(&TurnRequest {
        message: "more".into(),
        ..claude
    });
    assert_eq!(reply.as_deref(), Ok("echo: more [history 3]"), "{host}");
    assert_eq!(only_request(&server).json()["stream"], json!(false));

    // The first piece reaches the host while the provider still holds back
    // the rest.
    let slow = streamed(
        host,
        agent.stream(
            &TurnRequest::new("slow", "one two")
                .model("stall/echo-1")
                .streamed(),
        ),
    );
    assert_eq!(slow.pieces, words("echo: one two [history 1]"), "{host}");
    let gap = slow.arrived_ms[1] - slow.arrived_ms[0];
    assert!(
        gap >= STALL_MS as f64 / 2.0,
        "{host}: the first piece arrived only {gap:.0} ms before the second: {:?}",
        slow.arrived_ms
    );

    let sessions = agent.list_sessions().expect("list-sessions");
    let mut listed: Vec<(&str, u64)> = sessions
        .iter()
        .map(|s| {
            (
                s["key"].as_str().unwrap_or("?"),
                s["messages"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    listed.sort();
    assert_eq!(listed, [("chat", 4), ("claude", 4), ("slow", 2)], "{host}");
    assert!(
        sessions
            .iter()
            .all(|s| s["updated"].as_str().is_some_and(|t| t.ends_with('Z'))),
        "{host}: {sessions:?}"
    );

    let messages = agent.show_session("chat").expect("show-session");
    let shown: Vec<(&str, &str)> = messages
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap_or("?"),
                m["text"].as_str().unwrap_or("?").trim_end(),
            )
        })
        .collect();
    assert_eq!(
        shown,
        [
            ("user", "hello"),
            ("assistant", "echo: hello [history 1]"),
            ("user", "and now"),
            ("assistant", "echo: and now [history 3]"),
        ],
        "{host}"
    );
    let show = weft.run(&["sessions", "show", "claude"]);
    assert!(
        show.code == 0 && show.stdout.contains("echo: more [history 3]"),
        "{show}"
    );

    assert_eq!(agent.remove_session("slow"), Ok(()), "{host}");
    assert!(
        !weft.session_file("slow").exists(),
        "{host}: the file stayed"
    );
    assert_eq!(agent.list_sessions().map(|l| l.len()), Ok(2), "{host}");

    let status = agent.status();
    assert_eq!(status["platform"], "wasm32-wasip2", "{host}: {status}");
    assert_eq!(status["http"], true, "{host}: {status}");
    assert_eq!(status["home"], "/config", "{host}: {status}");
    assert_eq!(status["config"]["model"], "mock/echo-1", "{host}: {status}");
}

/// A stream the host drops mid-turn saves nothing, and the instance goes
/// on working.
fn dropped_stream(host: Host) {
    let server = Server::start();
    let weft = home(&server);
    let mut agent = host.start(weft.home(), &KEYS);
    let request = TurnRequest::new("dropped", "one two three four").streamed();
    let taken = agent
        .stream_then_drop(&request, 1)
        .unwrap_or_else(|e| panic!("{host}: start-turn failed: {e}"));
    assert_eq!(taken.pieces, ["echo:"], "{host}");
    assert!(!weft.session_file("dropped").exists(), "{host}: saved");
    assert_eq!(agent.list_sessions(), Ok(vec![]), "{host}");
    let reply = agent.turn(&TurnRequest::new("dropped", "again"));
    assert_eq!(reply.as_deref(), Ok("echo: again [history 1]"), "{host}");
}

/// Each failure arrives as its own case of the `error` variant, with its
/// payload, in the host's language; failed turns save nothing.
fn typed_errors(host: Host) {
    let server = Server::start();
    let weft = home(&server);
    let mut agent = host.start(weft.home(), &KEYS);
    let turn = |agent: &mut hosts::Agent, request: TurnRequest| match agent.turn(&request) {
        Ok(reply) => panic!("{host}: {request:?} succeeded: {reply:?}"),
        Err(error) => error,
    };

    let down = TurnRequest::new("err", "hi").model("down/echo-1");
    let error = turn(&mut agent, down.clone());
    assert_eq!(error.tag, "provider-status", "{host}: {error}");
    assert_eq!(
        error.val,
        json!({"provider": "down", "status": 503, "message": "mock error 503"}),
        "{host}"
    );
    assert_eq!(server.take_requests().len(), 1, "maxRetries 0 retried");

    let error = turn(
        &mut agent,
        TurnRequest::new("err", "hi").model("badkey/echo-1"),
    );
    assert_eq!(error.tag, "invalid-api-key", "{host}: {error}");
    assert_eq!(
        error.val,
        json!({"provider": "badkey", "status": 401, "message": "mock error 401"}),
        "{host}"
    );

    let error = turn(&mut agent, TurnRequest::new("../x", "hi"));
    assert_eq!(error.tag, "usage", "{host}: {error}");
    assert!(
        text(&error).contains("invalid session key"),
        "{host}: {error}"
    );

    let error = turn(
        &mut agent,
        TurnRequest::new("err", "hi").model("openai/gpt-4o-mini"),
    );
    assert_eq!(error.tag, "config", "{host}: {error}");
    assert!(text(&error).contains("OPENAI_API_KEY"), "{host}: {error}");

    for error in [
        agent.show_session("nope").err(),
        agent.remove_session("nope").err(),
    ] {
        let error = error.unwrap_or_else(|| panic!("{host}: a missing session was found"));
        assert_eq!(error.tag, "no-such-session", "{host}: {error}");
        assert!(text(&error).contains("nope"), "{host}: {error}");
    }

    // Streaming: a bad request fails at start-turn, the provider's failure
    // comes from next.
    let error = agent
        .stream(&TurnRequest::new("../x", "hi").streamed())
        .err();
    assert_eq!(error.map(|e| e.tag).as_deref(), Some("usage"), "{host}");
    let failed = agent
        .stream(&down.streamed())
        .unwrap_or_else(|e| panic!("{host}: start-turn failed before any request: {e}"));
    assert!(failed.pieces.is_empty(), "{host}: {failed:?}");
    let error = failed.end.expect_err("the stream ended well against a 503");
    assert_eq!(
        (error.tag.as_str(), &error.val["status"]),
        ("provider-status", &json!(503)),
        "{host}"
    );
    // Once failed, the stream says so again rather than a none that would
    // read as "complete and saved".
    let again = failed.again.expect("next was called again after the error");
    let again = again.expect_err("next after an error answered ok");
    assert!(
        again.tag == "usage" && text(&again).contains("already ended"),
        "{host}: {again}"
    );

    assert!(
        !weft.session_file("err").exists(),
        "{host}: a failed turn was saved"
    );
    assert!(!agent.stderr().contains(TEST_KEY), "{host}: the key leaked");
    let reply = agent.turn(&TurnRequest::new("after", "still here"));
    assert_eq!(
        reply.as_deref(),
        Ok("echo: still here [history 1]"),
        "{host}"
    );
}

/// A string payload.
fn text(error: &HostError) -> &str {
    error
        .val
        .as_str()
        .unwrap_or_else(|| panic!("{error} carries no text"))
}

#[test]
fn python_conversation() {
    conversation(Host::Python);
}

#[test]
fn python_dropped_stream_saves_nothing() {
    dropped_stream(Host::Python);
}

#[test]
fn python_typed_errors() {
    typed_errors(Host::Python);
}

#[test]
fn node_conversation() {
    conversation(Host::Node);
}

#[test]
fn node_dropped_stream_saves_nothing() {
    dropped_stream(Host::Node);
}

#[test]
fn node_typed_errors() {
    typed_errors(Host::Node);
}

/// The examples, run as `examples/README.md` says: a streamed turn printed
/// whole, the session continued by the next run, an error named by its case.
fn example(language: &str) {
    let server = Server::start();
    let weft = home(&server);
    let keys = [("MOCK_API_KEY", TEST_KEY)];
    let first = hosts::example(language, weft.home(), &keys, "hello example");
    assert_eq!(first.code, 0, "{first}");
    assert_eq!(first.stdout, "echo: hello example [history 1]\n", "{first}");
    assert_eq!(only_request(&server).json()["stream"], json!(true));
    let second = hosts::example(language, weft.home(), &keys, "and again");
    assert_eq!(second.stdout, "echo: and again [history 3]\n", "{second}");
    assert_eq!(weft.session_lines("default").len(), 5);

    weft.write_config(&openai_config(&server.base("status-401")));
    let failed = hosts::example(language, weft.home(), &keys, "hi");
    assert_eq!(failed.code, 1, "{failed}");
    assert!(
        failed.stderr.starts_with("error: invalid-api-key: "),
        "{failed}"
    );
    assert!(failed.stderr.contains("mock error 401"), "{failed}");
}

#[test]
fn python_example() {
    example("python");
}

#[test]
fn js_example() {
    example("js");
}

/// A WAVE `turn` call with the configured model.
fn wave_turn(session: &str, message: &str, stream: bool) -> String {
    format!(
        "turn({{session: {session:?}, message: {message:?}, options: {{stream: {stream}, tools: false}}}})"
    )
}

/// A WAVE `turn` call with a model chosen for it.
fn wave_turn_with(session: &str, model: &str) -> String {
    format!(
        "turn({{session: {session:?}, message: \"hi\", options: {{model: some({model:?}), stream: false, tools: false}}}})"
    )
}

/// `wasmtime run --invoke`: every plain function, one fresh instance per
/// call, the home carrying the conversation from one to the next. The
/// exit code is 0 whatever the result: stdout tells.
#[test]
fn wasmtime_invoke_turns_and_sessions() {
    let server = Server::start();
    let weft = home(&server);
    let invoke = |call: &str| {
        let out = hosts::invoke(weft.home(), &KEYS, call);
        assert_eq!(out.code, 0, "{out}");
        out.stdout
    };

    assert_eq!(
        invoke(&wave_turn("s", "hi", false)),
        "ok(\"echo: hi [history 1]\")\n"
    );
    assert_eq!(only_request(&server).json()["stream"], json!(false));
    assert_eq!(
        invoke(&wave_turn("s", "again", true)),
        "ok(\"echo: again [history 3]\")\n"
    );
    assert_eq!(only_request(&server).json()["stream"], json!(true));

    let list = invoke("list-sessions()");
    assert!(
        list.starts_with("ok([{key: \"s\", messages: 4, updated: \""),
        "{list}"
    );
    let show = invoke("show-session(\"s\")");
    assert!(
        show.starts_with("ok([{role: \"user\", text: \"hi")
            && show.contains("{role: \"assistant\", text: \"echo: again [history 3]"),
        "{show}"
    );
    let status = invoke("status()");
    assert!(
        status.contains(r#"\"platform\": \"wasm32-wasip2\""#)
            && status.contains(r#"\"home\": \"/config\""#),
        "{status}"
    );
    assert_eq!(invoke("remove-session(\"s\")"), "ok\n");
    assert!(!weft.session_file("s").exists());
    assert_eq!(invoke("list-sessions()"), "ok([])\n");
    assert_eq!(
        invoke("remove-session(\"s\")"),
        "err(no-such-session(\"no session named \\'s\\'\"))\n"
    );
}

/// `wasmtime run --invoke`: each error case printed as that case.
#[test]
fn wasmtime_invoke_typed_errors() {
    let server = Server::start();
    let weft = home(&server);
    let cases = [
        (
            wave_turn_with("err", "badkey/echo-1"),
            "err(invalid-api-key({provider: \"badkey\", status: 401, message: \"mock error 401\"}))\n",
        ),
        (
            wave_turn_with("err", "down/echo-1"),
            "err(provider-status({provider: \"down\", status: 503, message: \"mock error 503\"}))\n",
        ),
    ];
    for (call, expected) in cases {
        let out = hosts::invoke(weft.home(), &KEYS, &call);
        assert_eq!((out.code, out.stdout.as_str()), (0, expected), "{out}");
    }
    let prefixes = [
        (
            wave_turn("../x", "hi", false),
            "err(usage(\"invalid session key",
        ),
        (
            wave_turn_with("err", "openai/gpt-4o-mini"),
            "err(config(\"config: no API key",
        ),
    ];
    for (call, prefix) in prefixes {
        let out = hosts::invoke(weft.home(), &KEYS, &call);
        assert!(
            out.code == 0 && out.stdout.starts_with(prefix),
            "expected {prefix}...:\n{out}"
        );
    }
    assert!(
        !weft.session_file("err").exists(),
        "a failed turn was saved"
    );
    assert!(server.requests().len() == 2, "{:?}", server.requests());
}

/// The command component under `jco run` with a preopened home: the reply
/// is printed and the session saved (preview2-shim refuses some of the
/// file opens wasmtime allows), then continued by the next run.
#[test]
fn jco_run_command_saves_its_session() {
    let server = Server::start();
    let weft = home(&server);
    let command = clawft_harness::weft::artifact("CLAWFT_WASIP2", "wasm32-wasip2");
    let keys = [("MOCK_API_KEY", TEST_KEY)];
    let first = hosts::jco_run(&command, weft.home(), &keys, &["agent", "-m", "hi jco"]);
    assert_eq!(
        (first.code, first.stdout.as_str()),
        (0, "echo: hi jco [history 1]\n"),
        "{first}"
    );
    assert_eq!(
        weft.session_lines("default").len(),
        3,
        "not saved:\n{first}"
    );
    let second = hosts::jco_run(&command, weft.home(), &keys, &["agent", "-m", "again"]);
    assert_eq!(
        (second.code, second.stdout.as_str()),
        (0, "echo: again [history 3]\n"),
        "{second}"
    );
    let list = hosts::jco_run(&command, weft.home(), &keys, &["sessions", "list"]);
    assert!(
        list.code == 0 && list.stdout.contains("4 messages"),
        "{list}"
    );
    assert_eq!(server.requests().len(), 2);
}
