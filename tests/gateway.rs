//! `weft gateway` end to end, natively and as `weft-gateway.wasm` under
//! `wasmtime serve`, against the provider stand-in on 127.0.0.1: the
//! official OpenAI Python SDK (streamed and whole, stateless and with a
//! session), raw requests for every refusal, tools, load, slow and vanishing
//! clients, and a graceful stop.
//!
//! Needs `target/dist/wasm32-wasip2/weft-gateway.wasm` (`scripts/build
//! wasm32-wasip2`), wasmtime, and the hosts venv (`scripts/setup-hosts`);
//! each test fails, naming what to run, when one is missing.
//!
//! Where `wasmtime serve` owns a behaviour, the wasm side checks only what
//! the guest owns: each request runs in a fresh instance, so the turn limit
//! (429) cannot span requests there (the host's knob is
//! `--max-concurrent-requests`) and is tested natively; wasmtime's hyper
//! reads the request head, so its 431 is checked on both but a head that
//! never ends is only cut natively (wasmtime has no head deadline: there
//! the test checks that others are served meanwhile); and wasmtime's
//! SIGTERM kills in-flight requests, so its graceful stop is tested through
//! `--shutdown-addr` (as SIGINT), the native one through SIGTERM.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use clawft_harness::gateway::{
    run_script, send_raw, whole_session, AccessLine, Gateway, Host, Reply, Request,
};
use clawft_harness::scenarios::TEST_KEY;
use clawft_harness::{Server, Weft};
use serde_json::{json, Value};

/// A client token distinctive enough that finding it in any output is a leak.
const TOKEN: &str = "gwtok-clawft-91d4e7a3b6";
/// The default model of [`config`]: the `mock` provider, answering `ok`.
const MODEL: &str = "mock/echo-1";
/// How long a test waits for an access line it expects.
const LOG_WAIT: Duration = Duration::from_secs(60);

fn native() -> Host {
    Host::native(env!("CARGO_BIN_EXE_weft"))
}

fn wasm() -> Host {
    Host::wasmtime()
}

/// A fresh home holding `config`.
fn home(config: &Value) -> Weft {
    let weft = Weft::native(env!("CARGO_BIN_EXE_weft"));
    weft.write_config(config);
    weft
}

/// One OpenAI-compatible provider per stand-in scenario, all keyed from
/// `$MOCK_API_KEY`, chosen by the request's `model`: `mock/...` answers at
/// once, `slow/...` after 2 s, `stall/...` streams a word then pauses 3 s,
/// `telltale/...` answers 401 repeating the key, `tools/...` is the scripted
/// model. `gateway` is the config's gateway section.
fn config(server: &Server, gateway: Value) -> Value {
    let provider = |scenario: &str| {
        json!({"apiBase": server.base(scenario), "protocol": "openai",
               "apiKeyEnv": "MOCK_API_KEY", "timeoutSecs": 30})
    };
    json!({
        "agents": {"defaults": {"model": MODEL, "maxTokens": 256}},
        "providers": {
            "mock": provider("ok"),
            "slow": provider("slow-2000"),
            "stall": provider("stall-3000"),
            "telltale": provider("echo-key"),
            "tools": provider("model"),
        },
        "gateway": gateway
    })
}

/// The gateway's environment: the provider key, and the token if given.
fn env(token: Option<&'static str>) -> Vec<(&'static str, &'static str)> {
    let mut env = vec![("MOCK_API_KEY", TEST_KEY)];
    if let Some(token) = token {
        env.push(("CLAWFT_GATEWAY_TOKEN", token));
    }
    env
}

fn user(text: &str) -> Value {
    json!([{"role": "user", "content": text}])
}

/// A stateless chat request for `model`.
fn chat(model: &str, message: &str, stream: bool) -> Request {
    Request::chat(&json!({"model": model, "messages": user(message), "stream": stream}))
}

fn send(gateway: &Gateway, request: &Request) -> Reply {
    gateway
        .authorized(request.clone())
        .send(gateway.addr())
        .unwrap_or_else(|e| panic!("{}: {request:?}: {e}", gateway.host()))
}

/// A normal turn must still be answered: after every fault.
fn still_serves(gateway: &Gateway, token: Option<&str>, after: &str) {
    let mut request = chat(MODEL, "still there?", true);
    if let Some(token) = token {
        request = request.bearer(token);
    }
    let reply = send(gateway, &request);
    assert_eq!(
        (reply.status, reply.content().as_str()),
        (200, "echo: still there? [history 1]"),
        "{}: after {after}: {reply}",
        gateway.host()
    );
}

/// An OpenAI-style error: status, `error.code`, and a message.
fn assert_error(reply: &Reply, status: u16, code: Option<&str>, what: &str) {
    assert_eq!(reply.status, status, "{what}: {reply}");
    assert_eq!(
        reply.header("content-type"),
        Some("application/json"),
        "{what}: {reply}"
    );
    let error = &reply.json()["error"];
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()) && error["type"].is_string(),
        "{what}: not an OpenAI error body: {reply}"
    );
    assert_eq!(error["code"].as_str(), code, "{what}: {reply}");
}

/// No token and no key anywhere in what the gateway printed.
fn assert_no_secrets(output: &str, host: &Host) {
    assert!(
        !output.contains(TOKEN),
        "{host}: the token is in the output:\n{output}"
    );
    assert!(
        !output.contains(TEST_KEY),
        "{host}: the API key is in the output:\n{output}"
    );
}

fn roles_and_texts(messages: &[Value]) -> Vec<(String, String)> {
    messages
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap_or("?").to_owned(),
                m["content"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------
// The official OpenAI SDK.

/// The `openai` version `tests/hosts/requirements.txt` pins.
fn pinned_sdk() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/hosts/requirements.txt");
    let text = std::fs::read_to_string(path).expect("tests/hosts/requirements.txt");
    text.lines()
        .find_map(|l| l.trim().strip_prefix("openai=="))
        .expect("requirements.txt pins openai")
        .to_owned()
}

/// `tests/hosts/gateway_sdk.py` against the gateway: models, stateless turns
/// (the history is the request's), a session (the history is the file's),
/// and the SDK's errors for a wrong token and an invalid request.
fn official_sdk(host: Host) {
    let server = Server::start();
    let weft = home(&config(
        &server,
        json!({"tokens": [TOKEN], "models": ["mock/echo-2"]}),
    ));
    let gateway = Gateway::start(&host, weft.home(), &env(None));
    let base_url = gateway.base_url();
    let run = run_script("gateway_sdk.py", &[&base_url, TOKEN, MODEL, "sdk"]);
    assert_eq!(run.code, 0, "{host}: {run}\ngateway:\n{}", gateway.output());
    let seen: Value = serde_json::from_str(run.stdout.trim())
        .unwrap_or_else(|e| panic!("{host}: the script's output is not JSON ({e}): {run}"));
    let what = format!("{host}: {}", run.stdout);
    assert!(!run.stdout.contains(TEST_KEY), "{what}");

    assert_eq!(seen["sdk"], json!(pinned_sdk()), "{what}");
    assert_eq!(seen["models"], json!([MODEL, "mock/echo-2"]), "{what}");

    // Stateless: five messages besides the system one went to the provider.
    let whole = &seen["stateless_whole"];
    assert_eq!(whole["content"], "echo: third [history 5]", "{what}");
    assert_eq!(
        (
            &whole["role"],
            &whole["finish"],
            &whole["object"],
            &whole["model"]
        ),
        (
            &json!("assistant"),
            &json!("stop"),
            &json!("chat.completion"),
            &json!(MODEL)
        ),
        "{what}"
    );
    let streamed = &seen["stateless_streamed"];
    assert_eq!(streamed["content"], "echo: third [history 5]", "{what}");
    assert!(
        streamed["text_chunks"].as_u64() > Some(1),
        "{what}: the text came in one chunk"
    );
    assert_eq!(
        (
            &streamed["role"],
            &streamed["finish"],
            &streamed["object"],
            &streamed["ids"]
        ),
        (
            &json!("assistant"),
            &json!("stop"),
            &json!("chat.completion.chunk"),
            &json!(1)
        ),
        "{what}"
    );

    // The session: each turn sees the ones before, from the file.
    for (i, turn) in seen["session"]
        .as_array()
        .expect("session turns")
        .iter()
        .enumerate()
    {
        let expected = format!("echo: turn {i} [history {}]", 2 * i + 1);
        assert_eq!(turn["content"], json!(expected), "{what}");
        assert_eq!(turn["finish"], "stop", "{what}");
    }
    let saved = whole_session(&weft.session_file("sdk")).unwrap_or_else(|e| panic!("{e}"));
    let mut expected = Vec::new();
    for i in 0..4 {
        expected.push(("user".to_owned(), format!("turn {i}")));
        expected.push((
            "assistant".to_owned(),
            format!("echo: turn {i} [history {}]", 2 * i + 1),
        ));
    }
    assert_eq!(roles_and_texts(&saved), expected, "{host}");

    // Errors as the SDK raises them.
    for name in ["wrong_token", "wrong_token_chat"] {
        let e = &seen[name];
        assert_eq!(
            (&e["status"], &e["class"], &e["type"], &e["code"]),
            (
                &json!(401),
                &json!("AuthenticationError"),
                &json!("authentication_error"),
                &json!("invalid_api_key")
            ),
            "{what}: {name}"
        );
    }
    let e = &seen["bad_request"];
    assert_eq!(
        (&e["status"], &e["class"], &e["type"]),
        (
            &json!(400),
            &json!("BadRequestError"),
            &json!("invalid_request_error")
        ),
        "{what}"
    );

    // One access line per call: 1 + 2 + 4 + 2 + 1.
    let lines = gateway.wait_for_access(10, LOG_WAIT, |_| true);
    assert_eq!(lines.len(), 10, "{host}: {lines:?}");
    let sessions: Vec<_> = lines
        .iter()
        .filter(|l| l.session.as_deref() == Some("sdk"))
        .collect();
    assert_eq!(sessions.len(), 4, "{host}: {lines:?}");
    assert!(
        sessions.iter().all(|l| l.status == 200),
        "{host}: {lines:?}"
    );
    let stopped = gateway.stop();
    assert_eq!(stopped.code, Some(0), "{host}: {}", stopped.output);
    assert_no_secrets(&stopped.output, &host);
}

#[test]
fn official_sdk_native() {
    official_sdk(native());
}

#[test]
fn official_sdk_wasmtime_serve() {
    official_sdk(wasm());
}

// ---------------------------------------------------------------------------
// Raw requests: routes, refusals, tokens, the access log.

/// Every route and refusal a client can reach with one request, each
/// followed by a normal turn; then the access log holds exactly one line
/// per request the gateway handled, and never the token or the key.
fn routes_and_refusals(host: Host) {
    let server = Server::start();
    let weft = home(&config(&server, json!({})));
    let gateway = Gateway::start(&host, weft.home(), &env(Some(TOKEN)));
    let h = gateway.host().clone();
    // (method, path, status) of every request that reaches the handler.
    let mut logged: Vec<(String, String, u16)> = Vec::new();
    let mut expect = |method: &str, path: &str, status: u16| {
        logged.push((method.to_owned(), path.to_owned(), status));
    };

    let reply = send(&gateway, &Request::get("/healthz"));
    assert_eq!(
        (reply.status, reply.json()),
        (200, json!({"status": "ok"})),
        "{h}: {reply}"
    );
    expect("GET", "/healthz", 200);
    let reply = send(&gateway, &Request::get("/readyz"));
    assert_eq!(
        (reply.status, reply.json()),
        (200, json!({"status": "ready"})),
        "{h}: {reply}"
    );
    expect("GET", "/readyz", 200);

    // Tokens: none, a wrong one, the right one.
    let reply = send(&gateway, &Request::get("/v1/models"));
    assert_error(
        &reply,
        401,
        Some("invalid_api_key"),
        &format!("{h}: no token"),
    );
    expect("GET", "/v1/models", 401);
    let reply = send(&gateway, &Request::get("/v1/models").bearer("gwtok-wrong"));
    assert_error(
        &reply,
        401,
        Some("invalid_api_key"),
        &format!("{h}: wrong token"),
    );
    expect("GET", "/v1/models", 401);
    let reply = send(&gateway, &chat(MODEL, "no token", false));
    assert_error(
        &reply,
        401,
        Some("invalid_api_key"),
        &format!("{h}: chat without a token"),
    );
    expect("POST", "/v1/chat/completions", 401);
    let reply = send(&gateway, &Request::get("/v1/models").bearer(TOKEN));
    assert_eq!(reply.status, 200, "{h}: {reply}");
    assert_eq!(reply.json()["data"][0]["id"], MODEL, "{h}: {reply}");
    expect("GET", "/v1/models", 200);
    still_serves(&gateway, Some(TOKEN), "the token checks");
    expect("POST", "/v1/chat/completions", 200);

    // Paths and methods.
    let reply = send(&gateway, &Request::get("/v1/embeddings").bearer(TOKEN));
    assert_error(
        &reply,
        404,
        Some("not_found"),
        &format!("{h}: unknown path"),
    );
    expect("GET", "/v1/embeddings", 404);
    let reply = send(
        &gateway,
        &Request::new("DELETE", "/v1/chat/completions").bearer(TOKEN),
    );
    assert_error(
        &reply,
        405,
        Some("method_not_allowed"),
        &format!("{h}: DELETE"),
    );
    assert_eq!(reply.header("allow"), Some("POST"), "{h}: {reply}");
    expect("DELETE", "/v1/chat/completions", 405);
    let reply = send(&gateway, &Request::new("POST", "/v1/models").bearer(TOKEN));
    assert_error(
        &reply,
        405,
        Some("method_not_allowed"),
        &format!("{h}: POST models"),
    );
    assert_eq!(reply.header("allow"), Some("GET"), "{h}: {reply}");
    expect("POST", "/v1/models", 405);
    still_serves(&gateway, Some(TOKEN), "404 and 405");
    expect("POST", "/v1/chat/completions", 200);

    // Bodies that are not a request.
    let invalid = [
        (
            "malformed JSON",
            br#"{"model": "mock/echo-1", "messages": [{"#.to_vec(),
        ),
        ("not an object", br#"["hi"]"#.to_vec()),
        ("messages not an array", br#"{"messages": "hi"}"#.to_vec()),
        (
            "stream a string",
            br#"{"messages": [{"role": "user", "content": "hi"}], "stream": "yes"}"#.to_vec(),
        ),
        (
            "content a number",
            br#"{"messages": [{"role": "user", "content": 5}]}"#.to_vec(),
        ),
        ("no messages", br#"{"messages": []}"#.to_vec()),
        (
            "unknown role",
            br#"{"messages": [{"role": "wizard", "content": "hi"}]}"#.to_vec(),
        ),
        (
            "max_tokens zero",
            br#"{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}"#.to_vec(),
        ),
    ];
    for (what, body) in invalid {
        let request = Request::new("POST", "/v1/chat/completions")
            .bearer(TOKEN)
            .header("content-type", "application/json")
            .body(body);
        let reply = send(&gateway, &request);
        assert_error(&reply, 400, None, &format!("{h}: {what}"));
        expect("POST", "/v1/chat/completions", 400);
        still_serves(&gateway, Some(TOKEN), what);
        expect("POST", "/v1/chat/completions", 200);
    }

    // A session key that cannot name a file.
    let reply = send(
        &gateway,
        &chat(MODEL, "hi", false).bearer(TOKEN).session("../escape"),
    );
    assert_error(
        &reply,
        400,
        None,
        &format!("{h}: a session key with a path"),
    );
    expect("POST", "/v1/chat/completions", 400);

    // A prefix that names no provider is part of the model name: with keys
    // present, the first provider (by name) with one gets `nosuch/gpt-x`
    // as it is (registry rule 5).
    server.take_requests();
    let reply = send(
        &gateway,
        &chat("nosuch/gpt-x", "which model?", false).bearer(TOKEN),
    );
    assert_eq!(reply.status, 200, "{h}: {reply}");
    let sent = server.take_requests();
    assert_eq!(sent.len(), 1, "{h}");
    assert_eq!(
        (sent[0].scenario(), &sent[0].json()["model"]),
        ("ok", &json!("nosuch/gpt-x")),
        "{h}"
    );
    expect("POST", "/v1/chat/completions", 200);
    // A provider clawft knows it cannot speak is a 400.
    let reply = send(
        &gateway,
        &chat("bedrock/claude-x", "hi", false).bearer(TOKEN),
    );
    assert_error(
        &reply,
        400,
        Some("model_not_found"),
        &format!("{h}: bedrock/"),
    );
    expect("POST", "/v1/chat/completions", 400);

    // The provider's error repeats the key: 502, with the key redacted.
    for stream in [false, true] {
        let reply = send(&gateway, &chat("telltale/x", "hi", stream).bearer(TOKEN));
        assert_error(
            &reply,
            502,
            Some("provider_error"),
            &format!("{h}: provider 401"),
        );
        assert!(
            !reply.text().contains(TEST_KEY),
            "{h}: the key leaked: {reply}"
        );
        expect("POST", "/v1/chat/completions", 502);
    }
    still_serves(&gateway, Some(TOKEN), "a provider error");
    expect("POST", "/v1/chat/completions", 200);

    // 10 MB, with a declared length and chunked: 413 from the guest.
    let big = Request::chat(&json!({"messages": user(&"x".repeat(10 << 20))})).bearer(TOKEN);
    let reply = send(&gateway, &big);
    assert_error(
        &reply,
        413,
        Some("request_too_large"),
        &format!("{h}: 10 MB"),
    );
    expect("POST", "/v1/chat/completions", 413);
    still_serves(&gateway, Some(TOKEN), "a 10 MB body");
    expect("POST", "/v1/chat/completions", 200);
    let reply = send(&gateway, &big.chunked());
    assert_error(
        &reply,
        413,
        Some("request_too_large"),
        &format!("{h}: 10 MB chunked"),
    );
    expect("POST", "/v1/chat/completions", 413);
    still_serves(&gateway, Some(TOKEN), "a 10 MB chunked body");
    expect("POST", "/v1/chat/completions", 200);

    // 200 headers of 100 bytes: over weft's 16 KiB and 128 headers, and
    // over hyper's 100 headers (wasmtime answers before the guest runs).
    let mut padded = Request::get("/healthz");
    for i in 0..200 {
        padded = padded.header(&format!("x-pad-{i}"), &"p".repeat(100));
    }
    let reply = send(&gateway, &padded);
    assert_eq!(reply.status, 431, "{h}: {reply}");
    still_serves(&gateway, Some(TOKEN), "headers too large");
    expect("POST", "/v1/chat/completions", 200);

    // Not HTTP at all.
    let reply = send_raw(gateway.addr(), b"HELLO\r\n\r\n").expect("an answer");
    assert_eq!(reply.status, 400, "{h}: {reply}");
    still_serves(&gateway, Some(TOKEN), "garbage");
    expect("POST", "/v1/chat/completions", 200);

    // Exactly one access line per handled request, in the documented shape.
    let lines = gateway.wait_for_access(logged.len(), LOG_WAIT, |_| true);
    let mut got: Vec<_> = lines
        .iter()
        .map(|l| (l.method.clone(), l.path.clone(), l.status))
        .collect();
    got.sort();
    logged.sort();
    assert_eq!(got, logged, "{h}: access lines:\n{}", gateway.output());
    assert!(
        lines.iter().all(|l| l.tools == 0 && l.session.is_none()),
        "{h}: {lines:?}"
    );
    let stopped = gateway.stop();
    assert_eq!(stopped.code, Some(0), "{h}: {}", stopped.output);
    if host.is_native() {
        // weft reads the head itself, and says why it refused one.
        assert!(
            stopped.output.contains(": 431 "),
            "{h}: no note of the 431:\n{}",
            stopped.output
        );
    }
    assert_no_secrets(&stopped.output, &host);
}

#[test]
fn routes_and_refusals_native() {
    routes_and_refusals(native());
}

#[test]
fn routes_and_refusals_wasmtime_serve() {
    routes_and_refusals(wasm());
}

/// Without a configured token a loopback native gateway serves everyone (a
/// wasm gateway always asks for one; the harness gives it its own). A model
/// whose prefix names no provider is a model name for the key fallback
/// (registry rules 4 and 5); with no provider holding a key (the local
/// `vllm` needs none) nothing is left to send it to: 400 `model_not_found`.
fn open_loopback_and_unknown_model(host: Host) {
    let server = Server::start();
    let weft = home(&json!({
        "agents": {"defaults": {"model": "vllm/echo-1"}},
        "providers": {"vllm": {"apiBase": server.base("ok")}}
    }));
    let gateway = Gateway::start(&host, weft.home(), &[]);
    let h = gateway.host().clone();
    let reply = send(&gateway, &Request::get("/v1/models"));
    assert_eq!(reply.status, 200, "{h}: {reply}");
    assert_eq!(reply.json()["data"][0]["id"], "vllm/echo-1", "{h}: {reply}");
    // No model field: the configured default.
    let reply = send(&gateway, &Request::chat(&json!({"messages": user("hi")})));
    assert_eq!(
        (reply.status, reply.content().as_str()),
        (200, "echo: hi [history 1]"),
        "{h}: {reply}"
    );
    assert_eq!(reply.json()["model"], "vllm/echo-1", "{h}: {reply}");
    assert_eq!(server.take_requests()[0].json()["model"], "echo-1", "{h}");

    for model in ["nosuch/gpt-x", "gpt-x"] {
        let reply = send(&gateway, &chat(model, "hi", true));
        assert_error(
            &reply,
            400,
            Some("model_not_found"),
            &format!("{h}: {model}"),
        );
        assert!(reply.text().contains(model), "{h}: {reply}");
    }
    assert!(
        server.take_requests().is_empty(),
        "{h}: an unknown model reached the provider"
    );
    let reply = send(&gateway, &chat("vllm/other-model", "hi", false));
    assert_eq!(reply.status, 200, "{h}: {reply}");
    assert_eq!(
        server.take_requests()[0].json()["model"],
        "other-model",
        "{h}"
    );
    let stopped = gateway.stop();
    assert_eq!(stopped.code, Some(0), "{h}: {}", stopped.output);
}

#[test]
fn open_loopback_and_unknown_model_native() {
    open_loopback_and_unknown_model(native());
}

#[test]
fn open_loopback_and_unknown_model_wasmtime_serve() {
    open_loopback_and_unknown_model(wasm());
}

/// `/readyz` says whether a turn could run: 200 when the config loads and
/// the sessions directory takes a file, an error status (and `/healthz`
/// still 200) when either fails; ready again once fixed, without a restart.
fn readiness(host: Host) {
    let server = Server::start();
    let weft = home(&config(&server, json!({})));
    let gateway = Gateway::start(&host, weft.home(), &env(None));
    let h = gateway.host().clone();
    let ready = || send(&gateway, &Request::get("/readyz"));
    assert_eq!(ready().status, 200, "{h}");

    // The sessions directory (made by the first probe) cannot be made: a
    // file is in its way.
    let sessions = weft.home().join("sessions");
    std::fs::remove_dir_all(&sessions).unwrap();
    std::fs::write(&sessions, "in the way").unwrap();
    assert_error(
        &ready(),
        503,
        Some("not_ready"),
        &format!("{h}: sessions is a file"),
    );
    assert_eq!(send(&gateway, &Request::get("/healthz")).status, 200, "{h}");
    std::fs::remove_file(&sessions).unwrap();
    assert_eq!(ready().status, 200, "{h}");

    // A config that does not parse.
    let good = std::fs::read(weft.home().join("config.json")).unwrap();
    std::fs::write(weft.home().join("config.json"), "{\"agents\": ").unwrap();
    let reply = ready();
    assert_error(
        &reply,
        503,
        Some("not_ready"),
        &format!("{h}: a broken config"),
    );
    assert_eq!(send(&gateway, &Request::get("/healthz")).status, 200, "{h}");
    std::fs::write(weft.home().join("config.json"), good).unwrap();
    assert_eq!(ready().status, 200, "{h}");
    still_serves(&gateway, None, "readiness failures");
    let stopped = gateway.stop();
    assert_eq!(stopped.code, Some(0), "{h}: {}", stopped.output);
}

#[test]
fn readiness_native() {
    readiness(native());
}

#[test]
fn readiness_wasmtime_serve() {
    readiness(wasm());
}

/// A non-loopback address without a token: refused before listening.
#[test]
fn non_loopback_needs_a_token_native() {
    let server = Server::start();
    let weft = home(&config(&server, json!({})));
    for token in [None, Some("   ")] {
        let mut run = weft.cmd(&["gateway", "--listen", "0.0.0.0:0"]);
        if let Some(token) = token {
            run = run.env("CLAWFT_GATEWAY_TOKEN", token);
        }
        let out = run.run();
        assert_ne!(out.code, 0, "{out}");
        assert!(
            out.stderr
                .contains("refusing to listen on 0.0.0.0:0 without a client token")
                && out.stderr.contains("CLAWFT_GATEWAY_TOKEN")
                && !out.stderr.contains("listening on"),
            "{out}"
        );
    }
    // A blank token in the config does not count either.
    weft.write_config(&config(&server, json!({"tokens": ["", " "]})));
    let out = weft.run(&["gateway", "--listen", "[::]:0"]);
    assert_ne!(out.code, 0, "{out}");
    assert!(out.stderr.contains("refusing to listen"), "{out}");
}

/// Without a token, only local clients: a request addressed to another
/// name (DNS rebinding) or sent by a page of another site is refused, and a
/// chat body must be declared JSON (a page's simple, preflight-free POST
/// is text/plain). Nothing reaches the provider or the workspace.
#[test]
fn no_token_serves_only_local_clients_native() {
    let server = Server::start();
    let weft = home(&config(&server, json!({})));
    let gateway = Gateway::start(&native(), weft.home(), &env(None));
    let port = gateway.addr().port();
    let plan = json!({"plan": [{"calls": [{"name": "write_file", "arguments": {"path": "planted.txt", "content": "x"}}]}]});
    let body = json!({"model": "tools/model-1", "messages": user(&plan.to_string())});
    let attacks = [
        (
            "text/plain",
            Request::chat(&body).header("host", &format!("127.0.0.1:{port}")),
        ),
        (
            "another host name",
            Request::chat(&body).header("host", &format!("attacker.example:{port}")),
        ),
        (
            "a foreign origin",
            Request::chat(&body).header("origin", "http://attacker.example"),
        ),
        (
            "the null origin",
            Request::chat(&body).header("origin", "null"),
        ),
    ];
    for (what, mut request) in attacks {
        if what == "text/plain" {
            request.headers.retain(|(n, _)| n != "content-type");
            request = request.header("content-type", "text/plain;charset=UTF-8");
        }
        let reply = send(&gateway, &request);
        let (status, code) = match what {
            "text/plain" => (415, "unsupported_media_type"),
            _ => (403, "forbidden"),
        };
        assert_error(&reply, status, Some(code), what);
    }
    let models = send(
        &gateway,
        &Request::get("/v1/models").header("host", "rebound.example"),
    );
    assert_error(&models, 403, Some("forbidden"), "models via another name");
    assert!(
        server.take_requests().is_empty(),
        "a refused request reached the provider"
    );
    assert!(!weft.workspace().join("planted.txt").exists());

    // Local names and local pages are served.
    for (host, origin) in [
        (format!("localhost:{port}"), None),
        (
            format!("127.0.0.1:{port}"),
            Some(format!("http://localhost:{port}")),
        ),
        (
            format!("[::1]:{port}"),
            Some("https://127.0.0.1".to_owned()),
        ),
    ] {
        let mut request = chat(MODEL, "hi", false).header("host", &host);
        if let Some(origin) = &origin {
            request = request.header("origin", origin);
        }
        let reply = send(&gateway, &request);
        assert_eq!(reply.status, 200, "{host} {origin:?}: {reply}");
    }
    let stopped = gateway.stop();
    assert_eq!(stopped.code, Some(0), "{}", stopped.output);
}

/// Tokens: the scheme is case-insensitive, configured tokens are trimmed,
/// and a short one is refused before the gateway listens.
#[test]
fn tokens_native() {
    let server = Server::start();
    let weft = home(&config(&server, json!({"tokens": [format!("  {TOKEN} ")]})));
    let gateway = Gateway::start(&native(), weft.home(), &env(None));
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let request =
            chat(MODEL, "hi", false).header("authorization", &format!("{scheme} {TOKEN}"));
        let reply = send(&gateway, &request);
        assert_eq!(reply.status, 200, "{scheme}: {reply}");
    }
    let reply = send(
        &gateway,
        &chat(MODEL, "hi", false).header("authorization", "Basic eDp5"),
    );
    assert_error(&reply, 401, Some("invalid_api_key"), "basic auth");
    // A short token written into the config while running: refused, not served.
    weft.write_config(&config(&server, json!({"tokens": ["short-token"]})));
    let reply = send(&gateway, &chat(MODEL, "hi", false).bearer("short-token"));
    assert_error(&reply, 500, Some("config_error"), "a short token");
    assert!(
        reply.text().contains("weft config check") && !reply.text().contains("gateway.tokens"),
        "{reply}"
    );
    gateway.stop();
    let check = weft.run(&["config", "check"]);
    assert!(
        check.code != 0
            && check
                .stderr
                .contains("gateway.tokens[0] is shorter than 16"),
        "{check}"
    );
    weft.write_config(&config(&server, json!({})));
    let out = weft
        .cmd(&["gateway", "--listen", "127.0.0.1:0"])
        .env("CLAWFT_GATEWAY_TOKEN", "1234")
        .run();
    assert_ne!(out.code, 0, "{out}");
    assert!(
        out.stderr
            .contains("$CLAWFT_GATEWAY_TOKEN is shorter than 16 characters")
            && !out.stderr.contains("1234"),
        "{out}"
    );
}

// ---------------------------------------------------------------------------
// Slow and vanishing clients.

/// Sends a request head a few bytes at a time, forever; returns what the
/// server answered when it gave up on it (an empty reply if it just closed).
fn slowloris(gateway: &Gateway, limit: Duration) -> Option<Vec<u8>> {
    let mut stream = TcpStream::connect(gateway.addr()).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    stream
        .write_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n")
        .unwrap();
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let mut i = 0;
    while started.elapsed() < limit {
        match stream.read(&mut buf) {
            Ok(0) => return Some(received),
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return Some(received),
        }
        if stream.write_all(format!("x-{i}: ").as_bytes()).is_err() {
            // Cut: read what came before the close.
            let _ = stream.read_to_end(&mut received);
            return Some(received);
        }
        i += 1;
    }
    None
}

/// The body arrives too slowly: 408 from whoever reads it (weft natively,
/// the guest under wasmtime). Natively a head that never ends is also cut,
/// with 408; wasmtime serve has no head deadline (its hyper waits), so
/// there only the other clients' service is checked while one is open.
fn slow_clients(host: Host) {
    let server = Server::start();
    let weft = home(&config(&server, json!({"ioTimeoutSecs": 2})));
    let gateway = Gateway::start(&host, weft.home(), &env(None));
    let h = gateway.host().clone();

    // A body that stops after 10 of 100 bytes.
    let mut stream = TcpStream::connect(gateway.addr()).unwrap();
    stream
        .write_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"message")
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.starts_with("HTTP/1.1 408 "),
        "{h}: slow body: {text:?}"
    );
    assert!(
        text.contains("\"code\":\"request_timeout\""),
        "{h}: {text:?}"
    );
    still_serves(&gateway, None, "a slow body");

    if host.is_native() {
        let cut = slowloris(&gateway, Duration::from_secs(60));
        let answer = cut.expect("the slow head was never cut");
        let text = String::from_utf8_lossy(&answer);
        assert!(
            text.is_empty() || text.starts_with("HTTP/1.1 408 "),
            "{h}: slowloris: {text:?}"
        );
    } else {
        // Held open by the host meanwhile; the others are served.
        let mut open = TcpStream::connect(gateway.addr()).unwrap();
        open.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-slow: ")
            .unwrap();
        still_serves(&gateway, None, "a slow head held open");
        drop(open);
    }
    still_serves(&gateway, None, "a slowloris client");
    let stopped = gateway.stop();
    assert_eq!(stopped.code, Some(0), "{h}: {}", stopped.output);
}

#[test]
fn slow_clients_native() {
    slow_clients(native());
}

#[test]
fn slow_clients_wasmtime_serve() {
    slow_clients(wasm());
}

/// A client that leaves mid-stream: the turn is saved whole or not at all,
/// the file stays whole, and the session's next turn works.
fn client_leaves_mid_stream(host: Host) {
    let server = Server::start();
    let weft = home(&config(&server, json!({})));
    let gateway = Gateway::start(&host, weft.home(), &env(None));
    let h = gateway.host().clone();
    let path = weft.session_file("cut");

    let reply = send(&gateway, &chat(MODEL, "one", false).session("cut"));
    assert_eq!(reply.content(), "echo: one [history 1]", "{h}: {reply}");

    // The stall provider sends a word, then waits 3 s: leave in between.
    let mut streaming = gateway
        .authorized(chat("stall/x", "two", true).session("cut"))
        .open(gateway.addr())
        .unwrap();
    streaming
        .read_until("echo:")
        .unwrap_or_else(|e| panic!("{h}: {e}"));
    streaming.abandon();
    // The turn ends when it next writes; its access line says so.
    gateway.wait_for_access(2, LOG_WAIT, |l| l.session.as_deref() == Some("cut"));

    let saved = whole_session(&path).unwrap_or_else(|e| panic!("{h}: {e}"));
    let texts = roles_and_texts(&saved);
    let kept = texts.len();
    assert!(
        kept == 2 || kept == 4,
        "{h}: neither saved whole nor not at all: {texts:?}"
    );
    if kept == 4 {
        assert_eq!(texts[2].1, "two", "{h}: {texts:?}");
        assert_eq!(texts[3].1, "echo: two [history 3]", "{h}: {texts:?}");
    }
    let reply = send(&gateway, &chat(MODEL, "three", true).session("cut"));
    let expected = format!("echo: three [history {}]", kept + 1);
    assert_eq!(
        (reply.status, reply.content()),
        (200, expected),
        "{h}: {reply}"
    );
    let saved = whole_session(&path).unwrap_or_else(|e| panic!("{h}: {e}"));
    assert_eq!(saved.len(), kept + 2, "{h}");
    let stopped = gateway.stop();
    assert_eq!(stopped.code, Some(0), "{h}: {}", stopped.output);
}

#[test]
fn client_leaves_mid_stream_native() {
    client_leaves_mid_stream(native());
}

#[test]
fn client_leaves_mid_stream_wasmtime_serve() {
    client_leaves_mid_stream(wasm());
}

// ---------------------------------------------------------------------------
// Limits on turns, and stopping.

/// With one turn allowed, a second one while the first runs gets 429 with
/// `Retry-After`; both are logged, and the gateway serves on. Native only:
/// under wasmtime serve each request has an instance of its own.
#[test]
fn turn_limit_429_native() {
    let server = Server::start();
    let weft = home(&config(&server, json!({"maxConcurrentTurns": 1})));
    let gateway = Gateway::start(&native(), weft.home(), &env(None));
    let addr = gateway.addr();
    let slow = thread::spawn(move || chat("slow/x", "slow one", false).send(addr));
    // Wait until the slow turn is at the provider, so it holds the place.
    let started = Instant::now();
    while !server
        .requests()
        .iter()
        .any(|r| r.scenario() == "slow-2000")
    {
        assert!(
            started.elapsed() < LOG_WAIT,
            "the slow turn never reached the provider"
        );
        thread::sleep(Duration::from_millis(10));
    }
    let reply = send(&gateway, &chat(MODEL, "too many", true));
    assert_error(&reply, 429, Some("too_many_turns"), "second turn");
    assert_eq!(reply.header("retry-after"), Some("1"), "{reply}");
    assert_eq!(reply.json()["error"]["type"], "rate_limit_error", "{reply}");
    // Routes that are not turns are not limited.
    assert_eq!(send(&gateway, &Request::get("/v1/models")).status, 200);
    let first = slow.join().unwrap().expect("the slow turn");
    assert_eq!(
        (first.status, first.content().as_str()),
        (200, "echo: slow one [history 1]"),
        "{first}"
    );
    still_serves(&gateway, None, "a 429");
    let lines = gateway.wait_for_access(3, LOG_WAIT, |l| l.path == "/v1/chat/completions");
    let mut statuses: Vec<u16> = lines.iter().map(|l| l.status).collect();
    statuses.sort();
    assert_eq!(statuses, [200, 200, 429], "{lines:?}");
    let stopped = gateway.stop();
    assert_eq!(stopped.code, Some(0), "{}", stopped.output);
}

/// A stop while a streamed turn is in flight: the turn finishes whole and
/// is saved, and the process exits 0; natively (SIGTERM) new connections
/// are refused meanwhile and an idle keep-alive client is let go. Under wasmtime the stop is its shutdown address
/// (as SIGINT; its SIGTERM kills in-flight requests): what happens to new
/// connections then is the host's.
fn graceful_stop(host: Host) {
    let server = Server::start();
    let weft = home(&config(&server, json!({})));
    let mut gateway = Gateway::start(&host, weft.home(), &env(None));
    let h = gateway.host().clone();
    let addr = gateway.addr();
    let mut streaming = gateway
        .authorized(chat("stall/x", "finish me", true).session("stop"))
        .open(addr)
        .unwrap();
    streaming
        .read_until("echo:")
        .unwrap_or_else(|e| panic!("{h}: {e}"));
    // Natively, an idle keep-alive connection does not hold up the stop.
    // (wasmtime serve 48 waits for such a connection to close, however
    // long: the host's.)
    let idle = host.is_native().then(|| {
        let mut idle = TcpStream::connect(addr).unwrap();
        idle.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
            .unwrap();
        let mut answer = [0u8; 512];
        let n = idle.read(&mut answer).unwrap();
        assert!(answer[..n].starts_with(b"HTTP/1.1 200 "), "{h}");
        idle
    });
    gateway.begin_stop();
    if host.is_native() {
        // The listener closes at once: new connections are refused while
        // the turn goes on. (wasmtime serve keeps its socket until it
        // exits and leaves new connections unanswered meanwhile: the host's.)
        let started = Instant::now();
        while !matches!(TcpStream::connect(addr), Err(e) if e.kind() == ErrorKind::ConnectionRefused)
        {
            assert!(
                started.elapsed() < LOG_WAIT,
                "{h}: still accepting after SIGTERM"
            );
            thread::sleep(Duration::from_millis(20));
        }
        assert!(gateway.is_running(), "{h}: exited before the turn finished");
    }
    let reply = streaming.finish().unwrap_or_else(|e| panic!("{h}: {e}"));
    assert_eq!(
        (reply.status, reply.content().as_str()),
        (200, "echo: finish me [history 1]"),
        "{h}: {reply}"
    );
    assert_eq!(
        reply.events().last().map(String::as_str),
        Some("[DONE]"),
        "{h}: {reply}"
    );
    let stopped = gateway.wait();
    assert_eq!(stopped.code, Some(0), "{h}: {}", stopped.output);
    drop(idle);
    let saved = whole_session(&weft.session_file("stop")).unwrap_or_else(|e| panic!("{h}: {e}"));
    assert_eq!(saved.len(), 2, "{h}: {saved:?}");
    if host.is_native() {
        assert!(
            stopped.output.contains("SIGTERM: shutting down"),
            "{}",
            stopped.output
        );
    }
}

#[test]
fn sigterm_lets_the_turn_finish_native() {
    graceful_stop(native());
}

#[test]
fn shutdown_lets_the_turn_finish_wasmtime_serve() {
    graceful_stop(wasm());
}

// ---------------------------------------------------------------------------
// Tools.

/// The scripted model writes a file and reads it back through the gateway:
/// the tools run in the workspace, the access line counts them, the
/// session holds the exchange; `exec` is offered only when the config
/// enables it for the gateway (and never in wasm, which has no exec).
fn tools(host: Host) {
    let server = Server::start();
    let weft = home(&config(&server, json!({})));
    // PATH so that exec, when offered, can find `echo`.
    let mut environment = env(None);
    environment.push(("PATH", "/usr/bin:/bin"));
    let gateway = Gateway::start(&host, weft.home(), &environment);
    let h = gateway.host().clone();
    let plan = json!({"plan": [
        {"say": "Writing.", "calls": [{"name": "write_file", "arguments": {"path": "notes.md", "content": "via the gateway"}}]},
        {"calls": [{"name": "read_file", "arguments": {"path": "notes.md"}}]}
    ]})
    .to_string();
    for (stream, session) in [(true, "tools-a"), (false, "tools-b")] {
        server.take_requests();
        let reply = send(
            &gateway,
            &chat("tools/model-1", &plan, stream).session(session),
        );
        assert_eq!(reply.status, 200, "{h}: {reply}");
        // Streamed, each tool shows as an SSE comment (SDKs skip those).
        let comments = reply.text().matches("\n: tool ").count();
        assert_eq!(comments, if stream { 2 } else { 0 }, "{h}: {reply}");
        let content = reply.content();
        assert!(content.starts_with("Writing."), "{h}: {content:?}");
        assert!(
            content.ends_with("done after 2 rounds: via the gateway"),
            "{h}: {content:?}"
        );
        let sent = server.take_requests();
        assert_eq!(sent.len(), 3, "{h}: three rounds at the provider");
        let offered: Vec<String> = sent[0].json()["tools"]
            .as_array()
            .expect("tools offered")
            .iter()
            .map(|t| t["function"]["name"].as_str().unwrap_or("").to_owned())
            .collect();
        assert!(
            offered.contains(&"read_file".to_owned()),
            "{h}: {offered:?}"
        );
        assert!(
            !offered.contains(&"exec".to_owned()),
            "{h}: exec offered: {offered:?}"
        );
        let saved =
            whole_session(&weft.session_file(session)).unwrap_or_else(|e| panic!("{h}: {e}"));
        let roles: Vec<_> = saved
            .iter()
            .map(|m| m["role"].as_str().unwrap_or("?"))
            .collect();
        assert_eq!(
            roles,
            [
                "user",
                "assistant",
                "tool",
                "assistant",
                "tool",
                "assistant"
            ],
            "{h}"
        );
    }
    let written = std::fs::read_to_string(weft.workspace().join("notes.md")).unwrap();
    assert_eq!(written, "via the gateway", "{h}");

    // The client's own tools are refused, not quietly swapped for the
    // gateway's; tool_choice "none" turns the gateway's off; one answer only.
    let with = |extra: Value| {
        let mut body = json!({"model": "tools/model-1", "messages": user(&plan)});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        Request::chat(&body)
    };
    for extra in [
        json!({"tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]}),
        json!({"functions": [{"name": "get_weather"}]}),
        json!({"tool_choice": "required"}),
        json!({"n": 2}),
    ] {
        let reply = send(&gateway, &with(extra.clone()));
        assert_error(
            &reply,
            400,
            Some("unsupported_parameter"),
            &format!("{h}: {extra}"),
        );
    }
    server.take_requests();
    let reply = send(&gateway, &with(json!({"tool_choice": "none", "tools": []})));
    assert_eq!(
        (reply.status, reply.content().as_str()),
        (200, "no tools offered; round 0"),
        "{h}: {reply}"
    );
    assert!(
        server.take_requests()[0].json().get("tools").is_none(),
        "{h}: tools offered with tool_choice none"
    );

    // An answer cut at max_tokens says so, whole and streamed.
    let cut = json!({"plan": [], "cut": true}).to_string();
    for stream in [false, true] {
        let reply = send(&gateway, &chat("tools/model-1", &cut, stream));
        assert_eq!(reply.status, 200, "{h}: {reply}");
        let reasons: Vec<Value> = if stream {
            reply
                .events()
                .iter()
                .filter_map(|e| serde_json::from_str::<Value>(e).ok())
                .map(|e| e["choices"][0]["finish_reason"].clone())
                .filter(|r| !r.is_null())
                .collect()
        } else {
            vec![reply.json()["choices"][0]["finish_reason"].clone()]
        };
        assert_eq!(reasons, [json!("length")], "{h}: stream {stream}: {reply}");
    }

    // Continuing a session, the last message is the user's new one.
    let ends_with_assistant = Request::chat(&json!({"model": "tools/model-1", "messages": [
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}))
    .session("tools-a");
    let reply = send(&gateway, &ends_with_assistant);
    assert_error(&reply, 400, None, &format!("{h}: ends with the assistant"));
    let empty = Request::chat(&json!({"model": "tools/model-1", "messages": user("  ")}))
        .session("tools-a");
    assert_error(&send(&gateway, &empty), 400, None, &format!("{h}: empty"));
    let lines = gateway.wait_for_access(2, LOG_WAIT, |l| l.tools > 0);
    assert!(
        lines.iter().all(|l| l.tools == 2 && l.status == 200),
        "{h}: {lines:?}"
    );

    // exec enabled, but not for the gateway: still not offered.
    let exec_plan = json!({"plan": [{"calls": [{"name": "exec", "arguments": {"program": "echo", "args": ["from", "exec"]}}]}]}).to_string();
    let mut with_exec = config(&server, json!({}));
    with_exec["tools"] = json!({"exec": {"enable": true, "allow": ["echo"]}});
    weft.write_config(&with_exec);
    let offered_exec = |reply: &Reply, sent: &[clawft_harness::server::Recorded]| {
        assert_eq!(reply.status, 200, "{h}: {reply}");
        sent[0].json()["tools"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| t["function"]["name"] == "exec")
    };
    server.take_requests();
    let reply = send(&gateway, &chat("tools/model-1", &exec_plan, false));
    assert!(
        !offered_exec(&reply, &server.take_requests()),
        "{h}: exec offered"
    );
    // Enabled for the gateway: offered and run natively; wasm has no exec.
    with_exec["tools"]["exec"]["gateway"] = json!(true);
    weft.write_config(&with_exec);
    let reply = send(&gateway, &chat("tools/model-1", &exec_plan, false));
    let offered = offered_exec(&reply, &server.take_requests());
    assert_eq!(offered, host.is_native(), "{h}: exec offered: {offered}");
    if host.is_native() {
        assert!(reply.content().contains("from exec"), "{h}: {reply}");
    }
    let stopped = gateway.stop();
    assert_eq!(stopped.code, Some(0), "{h}: {}", stopped.output);
    assert_no_secrets(&stopped.output, &host);
}

#[test]
fn tools_native() {
    tools(native());
}

#[test]
fn tools_wasmtime_serve() {
    tools(wasm());
}

// ---------------------------------------------------------------------------
// Load.

const CLIENTS: usize = 32;
const TURNS: usize = 10;
const SESSIONS: usize = 8;

/// 32 clients x 10 turns over 8 sessions at once: every turn answered with
/// its own echo, every session file whole (1 metadata line and a user and
/// an assistant line per turn, each answer right after its question).
fn load(host: Host) {
    let server = Server::start();
    let weft = home(&config(&server, json!({"maxConcurrentTurns": CLIENTS})));
    let gateway = Gateway::start(&host, weft.home(), &env(Some(TOKEN)));
    let h = gateway.host().clone();
    let addr = gateway.addr();
    let failures: Vec<String> = thread::scope(|scope| {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                scope.spawn(move || {
                    let mut failures = Vec::new();
                    for t in 0..TURNS {
                        let message = format!("c{c} t{t}");
                        let request = chat(MODEL, &message, t % 2 == 0)
                            .bearer(TOKEN)
                            .session(&format!("load-{}", c % SESSIONS));
                        match request.send(addr) {
                            Ok(reply)
                                if reply.status == 200
                                    && reply
                                        .content()
                                        .starts_with(&format!("echo: {message} [history ")) => {}
                            Ok(reply) => failures.push(format!("{message}: {reply}")),
                            Err(e) => failures.push(format!("{message}: {e}")),
                        }
                    }
                    failures
                })
            })
            .collect();
        clients
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .collect()
    });
    assert!(
        failures.is_empty(),
        "{h}: {} failed turns: {failures:#?}",
        failures.len()
    );

    for s in 0..SESSIONS {
        let path = weft.session_file(&format!("load-{s}"));
        let saved = whole_session(&path).unwrap_or_else(|e| panic!("{h}: {e}"));
        let per_session = CLIENTS / SESSIONS * TURNS;
        assert_eq!(saved.len(), 2 * per_session, "{h}: {}", path.display());
        let mut asked = BTreeMap::new();
        for pair in saved.chunks(2) {
            let question = pair[0]["content"].as_str().unwrap_or("?");
            let answer = pair[1]["content"].as_str().unwrap_or("?");
            assert!(
                pair[0]["role"] == "user"
                    && pair[1]["role"] == "assistant"
                    && answer.starts_with(&format!("echo: {question} [history ")),
                "{h}: {}: {pair:?}",
                path.display()
            );
            *asked.entry(question.to_owned()).or_insert(0) += 1;
        }
        let expected: BTreeMap<String, i32> = (0..CLIENTS)
            .filter(|c| c % SESSIONS == s)
            .flat_map(|c| (0..TURNS).map(move |t| (format!("c{c} t{t}"), 1)))
            .collect();
        assert_eq!(asked, expected, "{h}: {}", path.display());
    }
    let lines = gateway.wait_for_access(CLIENTS * TURNS, LOG_WAIT, |_| true);
    assert!(lines.iter().all(|l: &AccessLine| l.status == 200), "{h}");
    let stopped = gateway.stop();
    assert_eq!(stopped.code, Some(0), "{h}: {}", stopped.output);
    assert_no_secrets(&stopped.output, &host);
}

#[test]
fn load_native() {
    load(native());
}

#[test]
fn load_wasmtime_serve() {
    load(wasm());
}

/// `wasmtime serve` listens on 0.0.0.0 unless told otherwise, and the
/// handler cannot see its address: the wasm gateway serves nothing but
/// /healthz until a token is configured, and says what to set.
#[test]
fn wasmtime_serve_never_serves_without_a_token() {
    let server = Server::start();
    let weft = home(&config(&server, json!({})));
    // A blank token counts as none (the harness would give it its own).
    let gateway = Gateway::start(
        &wasm(),
        weft.home(),
        &[("MOCK_API_KEY", TEST_KEY), ("CLAWFT_GATEWAY_TOKEN", " ")],
    );
    for request in [chat(MODEL, "hi", false), Request::get("/v1/models")] {
        let reply = request.send(gateway.addr()).expect("an answer");
        assert_error(&reply, 401, Some("invalid_api_key"), "no token configured");
        assert!(
            reply.json()["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("no client token is configured")),
            "{reply}"
        );
    }
    let health = Request::get("/healthz")
        .send(gateway.addr())
        .expect("an answer");
    assert_eq!(health.status, 200, "{health}");
}
