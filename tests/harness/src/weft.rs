//! Runs a real build of `weft` (native binary, wasip2 component or wasip1
//! module in the wasmtime CLI) against a fresh home directory.
//!
//! Missing artifacts are a loud failure, never a skip: a test that cannot
//! find the component or wasmtime panics with the command that builds it.

use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

/// How long one `weft` run may take before it is killed and reported.
const RUN_LIMIT: Duration = Duration::from_secs(120);

/// Which build of weft to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Build {
    Native,
    /// The `wasm32-wasip2` component, run with `wasmtime run -S http`.
    Wasip2,
    /// The `wasm32-wasip1` module, run with plain `wasmtime run`.
    Wasip1,
}

impl Build {
    /// Whether `platform`, as `weft status` reports it, fits this build
    /// (natively: this machine's architecture, on Linux).
    pub fn matches_platform(self, platform: &str) -> bool {
        match self {
            Build::Native => {
                platform.starts_with(std::env::consts::ARCH) && platform.contains("linux")
            }
            Build::Wasip2 => platform == "wasm32-wasip2",
            Build::Wasip1 => platform == "wasm32-wasip1",
        }
    }

    pub fn has_http(self) -> bool {
        self != Build::Wasip1
    }

    /// The exit code of a usage or configuration error. WASI 0.2's stable
    /// `wasi:cli/exit` can only say success or failure (`exit-with-code` is
    /// unstable and would stop plain `wasmtime run -S http` from starting the
    /// component), so the component exits 1 where the others exit 2.
    pub fn usage_exit_code(self) -> i32 {
        match self {
            Build::Wasip2 => 1,
            Build::Native | Build::Wasip1 => 2,
        }
    }
}

/// One build of weft plus a temporary home directory for it.
pub struct Weft {
    pub build: Build,
    program: PathBuf,
    /// wasmtime for the wasm builds; an emulator (qemu) for a native binary
    /// of another architecture.
    runner: Option<PathBuf>,
    /// The exact platform `weft status` must report, when known.
    platform: Option<String>,
    home: HomeDir,
}

/// A home of its own (removed afterwards) or one shared with another runner.
enum HomeDir {
    Own(TempDir),
    Shared(PathBuf),
}

impl Weft {
    /// The native binary at `path` (in a clawft test: `env!("CARGO_BIN_EXE_weft")`).
    pub fn native(path: impl Into<PathBuf>) -> Weft {
        Weft::new(Build::Native, path.into(), None)
    }

    /// The static musl binary for `arch` (`x86_64` or `aarch64`):
    /// `$CLAWFT_WEFT_<ARCH>`, else the shipped build in `target/dist/`. A binary
    /// for another architecture than this machine's runs under qemu
    /// (`$CLAWFT_QEMU_<ARCH>`, else `qemu-<arch>-static` or `qemu-<arch>`).
    pub fn static_musl(arch: &str) -> Weft {
        let upper = arch.to_ascii_uppercase();
        let program = match std::env::var_os(format!("CLAWFT_WEFT_{upper}")) {
            Some(path) => PathBuf::from(path),
            None => {
                let target = format!("{arch}-unknown-linux-musl");
                let path = target_dir().join("dist").join(&target).join("weft");
                assert!(
                    path.is_file(),
                    "{} is missing: build it with `scripts/build {target}` (scripts/test does)",
                    path.display()
                );
                path
            }
        };
        let runner = (arch != std::env::consts::ARCH).then(|| {
            std::env::var_os(format!("CLAWFT_QEMU_{upper}"))
                .map(PathBuf::from)
                .or_else(|| find_program(&format!("qemu-{arch}-static")))
                .or_else(|| find_program(&format!("qemu-{arch}")))
                .unwrap_or_else(|| {
                    panic!("no qemu-{arch}-static to run {arch} binaries: apt-get install qemu-user-static")
                })
        });
        let mut weft = Weft::new(Build::Native, program, runner);
        weft.platform = Some(format!("{arch}-unknown-linux-musl"));
        weft
    }

    /// The wasip2 component: `$CLAWFT_WASIP2`, else the shipped (optimised)
    /// build in `target/dist/`.
    pub fn wasip2() -> Weft {
        let wasm = artifact("CLAWFT_WASIP2", "wasm32-wasip2");
        Weft::new(Build::Wasip2, wasm, Some(wasmtime()))
    }

    /// The wasip1 module: `$CLAWFT_WASIP1`, else the shipped (optimised)
    /// build in `target/dist/`.
    pub fn wasip1() -> Weft {
        let wasm = artifact("CLAWFT_WASIP1", "wasm32-wasip1");
        Weft::new(Build::Wasip1, wasm, Some(wasmtime()))
    }

    /// A build chosen at run time, with the component path given explicitly.
    pub fn wasip2_at(wasm: PathBuf, wasmtime: PathBuf) -> Weft {
        Weft::new(Build::Wasip2, wasm, Some(wasmtime))
    }

    fn new(build: Build, program: PathBuf, runner: Option<PathBuf>) -> Weft {
        assert!(
            program.is_file(),
            "{} is missing; build it first (see README.md, `scripts/test`)",
            program.display()
        );
        let home = tempfile::Builder::new()
            .prefix("clawft-home-")
            .tempdir()
            .expect("temp home");
        Weft {
            build,
            program,
            runner,
            platform: None,
            home: HomeDir::Own(home),
        }
    }

    /// Whether `weft status` reporting `platform` is right for this build.
    pub fn matches_platform(&self, platform: &str) -> bool {
        match &self.platform {
            Some(expected) => expected == platform,
            None => self.build.matches_platform(platform),
        }
    }

    /// The home directory on the host (the guest sees it as `/config`).
    pub fn home(&self) -> &Path {
        match &self.home {
            HomeDir::Own(dir) => dir.path(),
            HomeDir::Shared(path) => path,
        }
    }

    /// The tools' workspace on the host: `<home>/workspace`, which weft
    /// uses by default natively and the wasm runs get preopened as
    /// `/workspace`.
    pub fn workspace(&self) -> PathBuf {
        self.home().join("workspace")
    }

    /// The same build working in another runner's home, for concurrent runs.
    pub fn sharing_home(mut self, home: &Path) -> Weft {
        self.home = HomeDir::Shared(home.to_owned());
        self
    }

    /// Writes `config.json` into home.
    pub fn write_config(&self, config: &Value) {
        let text = serde_json::to_string_pretty(config).expect("config serializes");
        std::fs::write(self.home().join("config.json"), text).expect("write config");
    }

    /// Where the session with a plain key (letters, digits, `-`, `_`) lives.
    pub fn session_file(&self, key: &str) -> PathBuf {
        self.home().join("sessions").join(format!("{key}.jsonl"))
    }

    /// The session file's lines, or none if it does not exist.
    pub fn session_lines(&self, key: &str) -> Vec<Value> {
        match std::fs::read_to_string(self.session_file(key)) {
            Ok(text) => text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap_or(Value::Null))
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Starts building an invocation of `weft ARGS`.
    pub fn cmd<'a>(&'a self, args: &[&str]) -> Invocation<'a> {
        Invocation {
            weft: self,
            args: args.iter().map(|s| s.to_string()).collect(),
            env: Vec::new(),
            stdin: None,
            terminal: false,
        }
    }

    /// Shorthand for `cmd(args).run()`.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).run()
    }
}

/// One run of weft being prepared.
pub struct Invocation<'a> {
    weft: &'a Weft,
    args: Vec<String>,
    env: Vec<(String, String)>,
    stdin: Option<Vec<u8>>,
    /// Run on a pseudo-terminal (util-linux `script`): stdin is a TTY, and
    /// stdout and stderr arrive together on stdout, lines ending in CRLF.
    terminal: bool,
}

impl Invocation<'_> {
    /// Sets an environment variable for weft (passed with `--env` under wasmtime).
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    pub fn stdin(mut self, input: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(input.into());
        self
    }

    /// Runs weft on a pseudo-terminal, as a person at a shell would.
    pub fn on_terminal(mut self) -> Self {
        self.terminal = true;
        self
    }

    pub fn run(self) -> Output {
        let weft = self.weft;
        let home = weft.home().display().to_string();
        let mut command = match weft.build {
            Build::Native => {
                let mut c = match &weft.runner {
                    Some(emulator) => {
                        let mut c = Command::new(emulator);
                        c.arg(&weft.program);
                        c
                    }
                    None => Command::new(&weft.program),
                };
                // A clean environment: only what the test gives, plus home.
                c.env_clear().env("CLAWFT_HOME", &home);
                for (k, v) in &self.env {
                    c.env(k, v);
                }
                c.args(&self.args);
                c
            }
            Build::Wasip2 | Build::Wasip1 => {
                let mut c = Command::new(weft.runner.as_ref().expect("wasm builds have wasmtime"));
                c.arg("run");
                if weft.build == Build::Wasip2 {
                    c.args(["-S", "http"]);
                }
                c.arg("--dir").arg(format!("{home}::/config"));
                // The tools' workspace, as a host would grant it.
                let workspace = weft.workspace();
                std::fs::create_dir_all(&workspace).expect("create the workspace");
                c.arg("--dir")
                    .arg(format!("{}::/workspace", workspace.display()));
                for (k, v) in &self.env {
                    c.arg("--env").arg(format!("{k}={v}"));
                }
                c.arg(&weft.program).args(&self.args);
                c
            }
        };
        if self.terminal {
            let script = find_program("script")
                .expect("util-linux `script` (Debian: bsdutils) to make a pseudo-terminal");
            let mut on_pty = Command::new(script);
            on_pty.args(["-qec", &exact_line(&command), "/dev/null"]);
            if weft.build == Build::Native {
                // The same clean environment weft itself gets.
                on_pty.env_clear().env("CLAWFT_HOME", &home);
                on_pty.envs(self.env.iter().map(|(k, v)| (k, v)));
            }
            command = on_pty;
        }
        let shown = shell_line(&command, self.stdin.as_deref());
        run_to_end(command, shown, self.stdin, RUN_LIMIT)
    }
}

/// Runs `command` to its end with its output collected, writing `stdin` to
/// it if given, and kills it if it runs longer than `limit`. `shown` names
/// the command in the result and in a panic.
pub fn run_to_end(
    mut command: Command,
    shown: String,
    stdin: Option<Vec<u8>>,
    limit: Duration,
) -> Output {
    command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {shown}: {e}"));
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("piped stdin");
        thread::spawn(move || {
            let _ = pipe.write_all(&input);
        });
    }
    let stdout = collect(child.stdout.take().expect("piped stdout"));
    let stderr = collect(child.stderr.take().expect("piped stderr"));
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{shown} ran longer than {limit:?}");
        }
        thread::sleep(Duration::from_millis(5));
    };
    Output {
        command: shown,
        code: status.code().unwrap_or(-1),
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
        elapsed: started.elapsed(),
    }
}

/// Reads a pipe to its end on a thread of its own, as text.
fn collect(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// What a run printed and how it ended.
#[derive(Debug, Clone)]
pub struct Output {
    pub command: String,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}\n  exit {} after {:?}\n  stdout: {:?}\n  stderr: {:?}",
            self.command, self.code, self.elapsed, self.stdout, self.stderr
        )
    }
}

/// A command as `sh -c` must be given it: every word quoted as needed.
fn exact_line(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|word| shell_quote(&word.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A word as the shell reads it back: as it is when plainly safe, else in
/// single quotes.
fn shell_quote(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./:=@+,".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// A command as a person would type it: program names without their
/// directories, quotes only where needed, piped input shown with `echo`.
fn shell_line(command: &Command, stdin: Option<&[u8]>) -> String {
    let name = |path: &std::ffi::OsStr| {
        let path = Path::new(path);
        let name = path
            .file_name()
            .unwrap_or(path.as_os_str())
            .to_string_lossy();
        shell_quote(&name)
    };
    let mut words = vec![name(command.get_program())];
    for arg in command.get_args() {
        let text = arg.to_string_lossy();
        if text.ends_with(".wasm") {
            words.push(name(arg));
        } else {
            words.push(shell_quote(&text));
        }
    }
    let line = words.join(" ");
    match stdin {
        Some(input) if input.len() <= 80 => {
            let text = String::from_utf8_lossy(input);
            format!("echo {} | {line}", shell_quote(text.trim_end()))
        }
        Some(input) => format!("<{} bytes on stdin> | {line}", input.len()),
        None => line,
    }
}

/// The workspace's `target` directory.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"),
    }
}

/// A shipped wasm artifact: `$VAR` if set, else `target/dist/TARGET/weft.wasm`
/// (which must exist).
pub fn artifact(var: &str, target: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(var) {
        return PathBuf::from(path);
    }
    let path = target_dir().join("dist").join(target).join("weft.wasm");
    assert!(
        path.is_file(),
        "{} is missing: build it with `scripts/build {target}` \
         (or set {var} to a built weft.wasm)",
        path.display()
    );
    path
}

/// The wasmtime CLI: `$WASMTIME`, else `wasmtime` on PATH, else `~/.cargo/bin`.
pub fn wasmtime() -> PathBuf {
    if let Some(path) = std::env::var_os("WASMTIME") {
        return PathBuf::from(path);
    }
    let cargo_bin = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))
        .map(|c| c.join("bin/wasmtime"));
    find_program("wasmtime")
        .or(cargo_bin.filter(|p| p.is_file()))
        .unwrap_or_else(|| {
            panic!(
                "wasmtime not found: install it with \
                 `cargo install wasmtime-cli --locked --version 48.0.8` or set WASMTIME to its path"
            )
        })
}

/// A program on PATH.
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}
