//! Runs clawft's components in the hosts a user would embed them in: the
//! wasmtime CLI (`wasmtime run --invoke`), Python (PyPI `wasmtime`) and
//! Node (`jco transpile` plus `@bytecodealliance/preview2-shim`, and `jco run`
//! for the command).
//!
//! `scripts/setup-hosts` installs the Python and npm packages into
//! `$CLAWFT_HOSTS` (default `target/hosts`). A missing host or artifact is a
//! loud failure naming the script that provides it, never a skip.
//!
//! Every host gets the same grants: the home directory preopened as
//! `/config`, outgoing `wasi:http`, and the keys in the environment (the
//! programs in `tests/hosts/` and `examples/` pass on the variables whose
//! names end in `_API_KEY`, and no others).

use std::collections::hash_map::DefaultHasher;
use std::fmt;
use std::fs;
use std::hash::{Hash, Hasher};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::Duration;

use serde_json::{json, Value};

use crate::weft::{run_to_end, target_dir, wasmtime, Output};

/// How long one host process (or one call into a running host) may take.
const LIMIT: Duration = Duration::from_secs(120);

/// The checkout: host programs, examples and scripts live here.
pub fn workspace_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

/// Where `scripts/setup-hosts` installed the hosts: `$CLAWFT_HOSTS` (relative
/// to the checkout, as the script reads it), else `target/hosts`.
pub fn hosts_dir() -> PathBuf {
    let dir = std::env::var_os("CLAWFT_HOSTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/hosts"));
    workspace_root().join(dir)
}

/// The library component: `$CLAWFT_AGENT_WASM`, else the shipped build in
/// `target/dist/wasm32-wasip2/`.
pub fn agent_wasm() -> PathBuf {
    let path = match std::env::var_os("CLAWFT_AGENT_WASM") {
        Some(path) => PathBuf::from(path),
        None => target_dir().join("dist/wasm32-wasip2/clawft-agent.wasm"),
    };
    assert!(
        path.is_file(),
        "{} is missing: build it with `scripts/build wasm32-wasip2` \
         (or set CLAWFT_AGENT_WASM to a built clawft-agent.wasm)",
        path.display()
    );
    path
}

/// The venv's Python, with `wasmtime` installed.
pub fn python() -> PathBuf {
    installed("venv/bin/python", "the Python venv with wasmtime")
}

/// The jco CLI.
pub fn jco() -> PathBuf {
    installed("node_modules/.bin/jco", "jco")
}

/// Node.js itself, which runs jco and the transpiled components.
pub fn node() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("node"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!("node not found on PATH: install Node.js 20 or newer (scripts/setup-hosts needs npm)")
        })
}

fn installed(relative: &str, what: &str) -> PathBuf {
    let path = hosts_dir().join(relative);
    assert!(
        path.exists(),
        "{what} is missing ({}): install the hosts with `scripts/setup-hosts` \
         (CLAWFT_HOSTS names another place for them)",
        path.display()
    );
    path
}

/// The library component transpiled by jco into an ES module, once per test
/// process (and kept under `$CLAWFT_HOSTS/gen` while the component and the
/// installed jco stay the same). Returns the module's path.
pub fn transpiled_agent() -> &'static Path {
    static MODULE: OnceLock<PathBuf> = OnceLock::new();
    MODULE.get_or_init(|| transpile(&agent_wasm(), "clawft-agent"))
}

/// `jco transpile WASM --name NAME` into `$CLAWFT_HOSTS/gen/NAME-HASH/`, where
/// Node finds preview2-shim in `$CLAWFT_HOSTS/node_modules` and a
/// `package.json` marks the generated `.js` as ES modules.
fn transpile(wasm: &Path, name: &str) -> PathBuf {
    let hosts = hosts_dir();
    let jco = jco();
    let mut hasher = DefaultHasher::new();
    fs::read(wasm)
        .unwrap_or_else(|e| panic!("read {}: {e}", wasm.display()))
        .hash(&mut hasher);
    fs::read(hosts.join("package-lock.json"))
        .ok()
        .hash(&mut hasher);
    let generated = hosts.join("gen");
    let out = generated.join(format!("{name}-{:016x}", hasher.finish()));
    let module = out.join(format!("{name}.js"));
    if module.is_file() {
        return module;
    }
    fs::create_dir_all(&generated).expect("create the gen directory");
    write_atomically(
        &generated.join("package.json"),
        b"{ \"type\": \"module\" }\n",
    );
    // Generated aside and renamed into place, so a concurrent test process
    // never sees half a module.
    let staging = tempfile::Builder::new()
        .prefix(".staging-")
        .tempdir_in(&generated)
        .expect("staging directory");
    let mut command = Command::new(node());
    command
        .arg(&jco)
        .arg("transpile")
        .arg(wasm)
        .arg("-o")
        .arg(staging.path())
        .args(["--name", name, "--no-typescript", "--quiet"]);
    let done = run(command);
    assert!(done.code == 0, "jco transpile failed:\n{done}");
    if fs::rename(staging.path(), &out).is_ok() {
        let _ = staging.keep();
        // Earlier builds' output is of no more use.
        for entry in fs::read_dir(&generated).into_iter().flatten().flatten() {
            let stale = entry
                .file_name()
                .to_string_lossy()
                .starts_with(&format!("{name}-"))
                && entry.path() != out;
            if stale {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }
    assert!(module.is_file(), "jco wrote no {}", module.display());
    module
}

/// A JavaScript host program from `tests/hosts/`, copied into
/// `$CLAWFT_HOSTS/programs/`: Node resolves `@bytecodealliance/preview2-shim`
/// from the importing file's directory, so the program must live above
/// `node_modules`' level, as it would in a user's own project.
pub fn js_program(file: &str) -> PathBuf {
    installed(
        "node_modules/@bytecodealliance/preview2-shim",
        "preview2-shim",
    );
    let source = workspace_root().join("tests/hosts").join(file);
    let text = fs::read(&source).unwrap_or_else(|e| panic!("read {}: {e}", source.display()));
    let dir = hosts_dir().join("programs");
    fs::create_dir_all(&dir).expect("create the programs directory");
    let path = dir.join(file);
    write_atomically(&path, &text);
    path
}

/// Writes a file through a temporary name, so readers see all or nothing.
fn write_atomically(path: &Path, bytes: &[u8]) {
    let dir = path.parent().expect("a file in a directory");
    let mut temp = tempfile::NamedTempFile::new_in(dir).expect("temporary file");
    temp.write_all(bytes).expect("write temporary file");
    temp.persist(path)
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// A host process environment: `PATH` (jco and npm scripts find node through
/// it) and exactly the variables given, nothing inherited.
fn clean_env(command: &mut Command, env: &[(&str, &str)]) {
    command.env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        command.env("PATH", path);
    }
    command.envs(env.iter().copied());
}

/// `wasmtime run -S http --dir HOME::/config --env NAME=VALUE... --invoke CALL
/// clawft-agent.wasm`: one call of an export, in WAVE syntax. The exit code
/// is 0 even when the call returns `err(...)`: read stdout.
pub fn invoke(home: &Path, env: &[(&str, &str)], call: &str) -> Output {
    let mut command = Command::new(wasmtime());
    command
        .args(["run", "-S", "http", "--dir"])
        .arg(format!("{}::/config", home.display()));
    for (name, value) in env {
        command.arg("--env").arg(format!("{name}={value}"));
    }
    command.args(["--invoke", call]).arg(agent_wasm());
    run(command)
}

/// `jco run --jco-import preopen.mjs WASM ARGS...`: a command component on
/// Node, with `home` preopened as `/config` by `tests/hosts/preopen.mjs`.
pub fn jco_run(wasm: &Path, home: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let preopen = js_program("preopen.mjs");
    let mut command = Command::new(node());
    clean_env(&mut command, env);
    command
        .env("CLAWFT_GUEST_HOME", home)
        .arg(jco())
        .arg("run")
        .arg("--jco-import")
        .arg(preopen)
        .arg(wasm)
        .args(args);
    run(command)
}

/// `scripts/example LANGUAGE MESSAGE` with `CLAWFT_HOME=home`: the one
/// command `examples/README.md` gives for each example. The script would
/// install what is missing; a test insists it is there already.
pub fn example(language: &str, home: &Path, env: &[(&str, &str)], message: &str) -> Output {
    let (_, _, wasm) = (python(), jco(), agent_wasm());
    let mut command = Command::new(workspace_root().join("scripts/example"));
    clean_env(&mut command, env);
    command
        .env("CLAWFT_HOSTS", hosts_dir())
        .env("CLAWFT_AGENT_WASM", wasm)
        .env("CLAWFT_HOME", home)
        .args([language, message]);
    run(command)
}

/// Runs a command to its end, within [`LIMIT`].
fn run(command: Command) -> Output {
    let shown = shown(&command);
    run_to_end(command, shown, None, LIMIT)
}

/// A command as a person would read it: program and arguments, without the
/// environment (which holds the test key).
fn shown(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|word| word.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A language that embeds the library component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host {
    /// `tests/hosts/agent_host.py` on PyPI wasmtime.
    Python,
    /// `tests/hosts/agent_host.mjs` on Node, calling jco's transpiled module.
    Node,
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Host::Python => "Python (wasmtime)",
            Host::Node => "Node (jco)",
        })
    }
}

impl Host {
    /// Starts the host program with one instance of the library component,
    /// `home` as `/config` and `env` in its environment.
    pub fn start(self, home: &Path, env: &[(&str, &str)]) -> Agent {
        let mut command = match self {
            Host::Python => {
                let mut c = Command::new(python());
                c.arg(workspace_root().join("tests/hosts/agent_host.py"))
                    .arg(agent_wasm());
                c
            }
            Host::Node => {
                let module = transpiled_agent();
                let mut c = Command::new(node());
                c.arg(js_program("agent_host.mjs")).arg(module);
                c
            }
        };
        clean_env(&mut command, env);
        command
            .arg(home)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let shown = shown(&command);
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {shown}: {e}"));
        let input = child.stdin.take().expect("piped stdin");
        let (send, replies) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        {
            let stderr = stderr.clone();
            let mut pipe = child.stderr.take().expect("piped stderr");
            thread::spawn(move || {
                let mut buffer = [0; 4096];
                while let Ok(n @ 1..) = pipe.read(&mut buffer) {
                    let text = String::from_utf8_lossy(&buffer[..n]).into_owned();
                    stderr.lock().unwrap().push_str(&text);
                }
            });
        }
        Agent {
            host: self,
            child,
            input,
            replies,
            stderr,
        }
    }
}

/// A host program running one instance of the library component; each
/// method is one call of the `clawft:agent/agent` interface, made by the
/// host in its own language.
pub struct Agent {
    host: Host,
    child: Child,
    input: ChildStdin,
    replies: Receiver<String>,
    stderr: Arc<Mutex<String>>,
}

/// One `turn-request`.
#[derive(Debug, Clone)]
pub struct TurnRequest {
    pub session: String,
    pub message: String,
    /// `provider/model`; none for the configured model.
    pub model: Option<String>,
    /// Ask the provider for a streamed reply.
    pub stream: bool,
    pub tools: bool,
}

impl TurnRequest {
    /// A request with the configured model, not streamed, without tools.
    pub fn new(session: &str, message: &str) -> TurnRequest {
        TurnRequest {
            session: session.into(),
            message: message.into(),
            model: None,
            stream: false,
            tools: false,
        }
    }

    pub fn model(mut self, model: &str) -> TurnRequest {
        self.model = Some(model.into());
        self
    }

    pub fn streamed(mut self) -> TurnRequest {
        self.stream = true;
        self
    }

    fn to_json(&self) -> Value {
        json!({
            "session": self.session, "message": self.message, "model": self.model,
            "stream": self.stream, "tools": self.tools,
        })
    }
}

/// An `error` the component returned, as the host language received it: the
/// variant's case and its payload.
#[derive(Debug, Clone, PartialEq)]
pub struct HostError {
    pub tag: String,
    /// A string, or for `provider-status` and `invalid-api-key` an object
    /// with `provider`, `status` and `message`.
    pub val: Value,
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.tag, self.val)
    }
}

/// What a host took from a `turn-stream`.
#[derive(Debug, Clone)]
pub struct Streamed {
    /// Each piece `next` returned, in order.
    pub pieces: Vec<String>,
    /// When each piece arrived, in milliseconds after `start-turn` was called.
    pub arrived_ms: Vec<f64>,
    /// How the stream ended: `Ok` once `next` returned none (or when the host
    /// dropped it after the pieces it wanted), else the error `next` returned.
    pub end: Result<(), HostError>,
    /// What one more `next` returned after the end (none when the host
    /// dropped the stream early).
    pub again: Option<Result<Option<String>, HostError>>,
}

impl Agent {
    /// `turn`: the whole reply.
    pub fn turn(&mut self, request: &TurnRequest) -> Result<String, HostError> {
        let reply = self.call(json!({"fn": "turn", "request": request.to_json()}))?;
        Ok(self.expect_string(reply))
    }

    /// `start-turn`, then `[method]turn-stream.next` until it returns none,
    /// then the stream is dropped.
    pub fn stream(&mut self, request: &TurnRequest) -> Result<Streamed, HostError> {
        self.stream_taking(request, None)
    }

    /// `start-turn`, `next` for at most `pieces` pieces, then the stream is
    /// dropped, abandoning the turn.
    pub fn stream_then_drop(
        &mut self,
        request: &TurnRequest,
        pieces: usize,
    ) -> Result<Streamed, HostError> {
        self.stream_taking(request, Some(pieces))
    }

    fn stream_taking(
        &mut self,
        request: &TurnRequest,
        take: Option<usize>,
    ) -> Result<Streamed, HostError> {
        let answer =
            self.call(json!({"fn": "stream", "request": request.to_json(), "take": take}))?;
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .into_iter()
                .flatten()
                .map(|p| p.as_str().unwrap_or_default().to_owned())
                .collect()
        };
        let times = answer["ms"].as_array().into_iter().flatten();
        Ok(Streamed {
            pieces: strings(&answer["pieces"]),
            arrived_ms: times.map(|t| t.as_f64().unwrap_or(f64::NAN)).collect(),
            end: match &answer["end"] {
                Value::Null => Ok(()),
                error => Err(self.expect_error(error)),
            },
            again: match &answer["again"] {
                Value::Null => None,
                again => Some(match again.get("err") {
                    Some(error) => Err(self.expect_error(error)),
                    None => Ok(again["ok"].as_str().map(str::to_owned)),
                }),
            },
        })
    }

    /// `list-sessions`: objects with `key`, `messages` and `updated`.
    pub fn list_sessions(&mut self) -> Result<Vec<Value>, HostError> {
        let list = self.call(json!({"fn": "list-sessions"}))?;
        Ok(self.expect_list(list))
    }

    /// `show-session`: objects with `role`, `text` and `timestamp`.
    pub fn show_session(&mut self, key: &str) -> Result<Vec<Value>, HostError> {
        let list = self.call(json!({"fn": "show-session", "key": key}))?;
        Ok(self.expect_list(list))
    }

    /// `remove-session`.
    pub fn remove_session(&mut self, key: &str) -> Result<(), HostError> {
        let done = self.call(json!({"fn": "remove-session", "key": key}))?;
        assert!(done.is_null(), "{}: remove-session gave {done}", self.host);
        Ok(())
    }

    /// `status`, parsed: the JSON `weft status` prints.
    pub fn status(&mut self) -> Value {
        let text = match self.call(json!({"fn": "status"})) {
            Ok(reply) => self.expect_string(reply),
            Err(e) => panic!("{}: status cannot fail, yet returned {e}", self.host),
        };
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{}: status is not JSON ({e}): {text}", self.host))
    }

    /// What the host wrote on stderr so far (the guest's stderr included).
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Sends one call and waits for its answer: `{"ok": value}` or
    /// `{"err": {"tag", "val"}}`.
    fn call(&mut self, call: Value) -> Result<Value, HostError> {
        let line = format!("{call}\n");
        if let Err(e) = self.input.write_all(line.as_bytes()) {
            self.fail(&format!("could not be sent {call} ({e})"));
        }
        let answer = match self.replies.recv_timeout(LIMIT) {
            Ok(answer) => answer,
            Err(RecvTimeoutError::Timeout) => {
                self.fail(&format!("did not answer {call} within {LIMIT:?}"))
            }
            Err(RecvTimeoutError::Disconnected) => {
                self.fail(&format!("ended without answering {call}"))
            }
        };
        let mut answer: Value = serde_json::from_str(&answer)
            .unwrap_or_else(|e| self.fail(&format!("answered {call} with {answer:?} ({e})")));
        if let Some(error) = answer.get("err") {
            return Err(self.expect_error(error));
        }
        match answer.get_mut("ok") {
            Some(value) => Ok(value.take()),
            None => self.fail(&format!("answered {call} with {answer}")),
        }
    }

    fn expect_error(&self, error: &Value) -> HostError {
        match error["tag"].as_str() {
            Some(tag) => HostError {
                tag: tag.to_owned(),
                val: error["val"].clone(),
            },
            None => self.fail(&format!("gave an error without a case: {error}")),
        }
    }

    fn expect_string(&self, value: Value) -> String {
        match value {
            Value::String(text) => text,
            other => self.fail(&format!("gave {other} where a string belongs")),
        }
    }

    fn expect_list(&self, value: Value) -> Vec<Value> {
        match value {
            Value::Array(items) => items,
            other => self.fail(&format!("gave {other} where a list belongs")),
        }
    }

    /// Panics with the host's stderr, which says why when the host broke.
    fn fail(&self, what: &str) -> ! {
        // Give a dying host a moment to finish its traceback.
        thread::sleep(Duration::from_millis(200));
        panic!("{} {what}\nstderr:\n{}", self.host, self.stderr())
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
