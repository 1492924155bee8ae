//! `exec`: runs one allowed program in the workspace, natively only (WASI
//! has no processes, so the wasm builds never offer it).
//!
//! What confines it, and what does not: no shell (the program and its
//! arguments are passed as they are, so `;` or `|` mean nothing), only
//! programs named in `tools.exec.allow` (by bare name, found on `PATH`),
//! the workspace as working directory, an environment holding only `PATH`,
//! `LANG` and a private, empty `HOME` (no API keys, no dotfiles the model
//! wrote), arguments that are absolute paths or climb out with `..`
//! refused, a timeout that stops the program's whole process group, and an
//! output cap. An allowed program still does all it can be told to do:
//! `git`, `cargo`, `make`, `npm` and interpreters run code from files in
//! the workspace, and any program can read what the user can. That is why
//! `exec` is off unless the config enables it, and why its allowlist
//! should name plain programs.

use super::{Args, Kind, Param, Spec, ToolSettings};

pub const AVAILABLE: bool = cfg!(not(target_os = "wasi"));

pub const SPEC: Spec = Spec {
    name: "exec",
    description: "Run a program in the workspace and return its output. Only allowed \
                  programs run; there is no shell, so pass each argument separately.",
    params: &[
        Param {
            name: "program",
            kind: Kind::String,
            required: true,
            doc: "The program's name, e.g. \"ls\" or \"git\".",
        },
        Param {
            name: "args",
            kind: Kind::StringList,
            required: false,
            doc: "Its arguments, one string each; paths relative to the workspace.",
        },
    ],
};

#[cfg(not(target_os = "wasi"))]
pub fn run(settings: &ToolSettings, args: &Args) -> Result<(String, String), String> {
    let program: String = args.get("program")?;
    let arguments: Vec<String> = args.opt("args")?.unwrap_or_default();
    if !settings.exec_allow.contains(&program) || program.contains('/') {
        return Err(format!(
            "'{program}' is not an allowed program; allowed: {}",
            settings.exec_allow.join(", ")
        ));
    }
    if let Some(arg) = arguments.iter().find(|a| reaches_outside(a)) {
        return Err(format!(
            "argument '{arg}' reaches outside the workspace; use paths relative to it"
        ));
    }
    run_program(settings, &program, &arguments)
}

/// Whether an argument names a place outside the workspace: an absolute or
/// `~` path, as the whole argument, after `=`, `:`, `@`, `,` or a space, or
/// after a cluster of short options (`-vC/etc`); or a `..` among its path
/// parts anywhere (`-C..`, `cat ../x`). A check on words, which a program
/// that finds paths by other means passes: it is not a sandbox.
#[cfg(not(target_os = "wasi"))]
fn reaches_outside(arg: &str) -> bool {
    let attached = arg
        .strip_prefix('-')
        .filter(|rest| !rest.starts_with('-'))
        .map(|rest| rest.trim_start_matches(|c: char| c.is_ascii_alphabetic()));
    let rooted = std::iter::once(arg)
        .chain(arg.split(['=', ':', '@', ',', ' ']).skip(1))
        .chain(attached)
        .any(|part| part.starts_with(['/', '~']));
    let climbs = arg
        .split(|c: char| "/=:,;@ \t'\"".contains(c))
        .chain(attached.into_iter().flat_map(|value| value.split('/')))
        .any(|part| part == "..");
    rooted || climbs
}

#[cfg(not(target_os = "wasi"))]
fn run_program(
    settings: &ToolSettings,
    program: &str,
    arguments: &[String],
) -> Result<(String, String), String> {
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    use std::sync::mpsc::{self, RecvTimeoutError};
    use std::time::{Duration, Instant};
    /// The most output kept from each of stdout and stderr.
    const MAX_OUTPUT_BYTES: usize = 256 << 10;
    /// How long output may still arrive once the program is stopped (a
    /// child that left its process group can hold a pipe open).
    const AFTERWARDS: Duration = Duration::from_secs(2);

    super::files::ensure_workspace(&settings.workspace)?;
    let home =
        PrivateHome::create().map_err(|e| format!("cannot create a home for '{program}': {e}"))?;
    let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
    let mut command = Command::new(program);
    command
        .args(arguments)
        .current_dir(&settings.workspace)
        .env_clear()
        .env("PATH", path)
        .env("HOME", &home.0)
        .env("LANG", "C.UTF-8")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        // A group of its own, so its children go with it.
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    #[cfg(target_os = "linux")]
    {
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: runs in the child between fork and exec, and calls only
        // async-signal-safe functions. In a group of its own the program no
        // longer gets the terminal's Ctrl-C, so it is killed when weft dies.
        unsafe {
            command.pre_exec(move || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if libc::getppid() != parent {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
    }
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot run '{program}': {e}"))?;
    let group = child.id() as i32;
    // Each pipe is read to its end on a thread of its own (so a chatty
    // program never blocks on a full pipe); what it read comes here, the
    // first bytes of each kept, the rest only counted.
    let (pieces, arrived) = mpsc::channel::<(usize, Option<(Vec<u8>, usize)>)>();
    let drain = |which: usize, pipe: Option<Box<dyn std::io::Read + Send>>| {
        let pieces = pieces.clone();
        std::thread::spawn(move || {
            let mut kept = 0;
            if let Some(mut pipe) = pipe {
                let mut buf = [0u8; 8192];
                while let Ok(n @ 1..) = pipe.read(&mut buf) {
                    let keep = n.min(MAX_OUTPUT_BYTES - kept);
                    kept += keep;
                    if pieces
                        .send((which, Some((buf[..keep].to_vec(), n))))
                        .is_err()
                    {
                        return;
                    }
                }
            }
            let _ = pieces.send((which, None));
        });
    };
    drain(0, child.stdout.take().map(|p| Box::new(p) as _));
    drain(1, child.stderr.take().map(|p| Box::new(p) as _));
    drop(pieces);
    // Per pipe: the bytes kept and the count read; and how many pipes ended.
    let mut outputs = [(Vec::new(), 0usize), (Vec::new(), 0usize)];
    let mut ended = 0;
    let mut take = |piece: (usize, Option<(Vec<u8>, usize)>), ended: &mut usize| match piece {
        (which, Some((bytes, n))) => {
            outputs[which].0.extend_from_slice(&bytes);
            outputs[which].1 += n;
        }
        (_, None) => *ended += 1,
    };
    let started = Instant::now();
    let status = loop {
        match arrived.recv_timeout(Duration::from_millis(10)) {
            Ok(piece) => take(piece, &mut ended),
            Err(RecvTimeoutError::Timeout) => {}
            // Both pipes ended before the program did.
            Err(RecvTimeoutError::Disconnected) => std::thread::sleep(Duration::from_millis(10)),
        }
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break Some(status);
        }
        if started.elapsed() > settings.exec_timeout {
            break None;
        }
    };
    // The program and anything it left running in the background: a child
    // holding the pipes would otherwise hold the turn.
    // SAFETY: kill() with a negative pid signals the process group this
    // spawn created; it touches no memory.
    unsafe {
        libc::kill(-group, libc::SIGKILL);
    }
    let _ = child.wait();
    let stopped = Instant::now();
    while ended < 2 {
        match arrived.recv_timeout(AFTERWARDS.saturating_sub(stopped.elapsed())) {
            Ok(piece) => take(piece, &mut ended),
            Err(_) => break,
        }
    }
    drop(home);
    let [(stdout, out_total), (stderr, err_total)] = outputs;
    // Notes on cut output go first: the toolbox may cut the end again.
    let mut notes = String::new();
    for (stream, kept, total) in [
        ("stdout", &stdout, out_total),
        ("stderr", &stderr, err_total),
    ] {
        if total > kept.len() {
            notes.push_str(&format!(
                "[{stream} cut: the first {} of {total} bytes are shown]\n",
                kept.len()
            ));
        }
    }
    let mut text = notes + &String::from_utf8_lossy(&stdout);
    if !stderr.is_empty() {
        text.push_str("\n[stderr]\n");
        text.push_str(&String::from_utf8_lossy(&stderr));
    }
    match status {
        None => Err(format!(
            "'{program}' did not finish within {} s and was stopped; output so far:\n{text}",
            settings.exec_timeout.as_secs_f32()
        )),
        Some(status) => {
            let code = status
                .code()
                .map_or_else(|| "a signal".to_owned(), |c| c.to_string());
            let summary = format!("{program} -> exit {code}");
            Ok((format!("[exit {code}]\n{text}"), summary))
        }
    }
}

/// A fresh, empty, private directory for one program's `HOME`, so no
/// dotfile the model can write in the workspace (a `.gitconfig` alias, say)
/// configures it. Created anew (it must not exist yet, so no one else can
/// have prepared it) and removed afterwards.
#[cfg(not(target_os = "wasi"))]
struct PrivateHome(std::path::PathBuf);

#[cfg(not(target_os = "wasi"))]
impl PrivateHome {
    fn create() -> std::io::Result<PrivateHome> {
        use std::os::unix::fs::DirBuilderExt;
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!(
            "clawft-exec-{}-{nanos}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        Ok(PrivateHome(dir))
    }
}

#[cfg(not(target_os = "wasi"))]
impl Drop for PrivateHome {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Never offered under WASI (see [`AVAILABLE`]), so never reached.
#[cfg(target_os = "wasi")]
pub fn run(_settings: &ToolSettings, _args: &Args) -> Result<(String, String), String> {
    Err("a WebAssembly host has no processes to run".into())
}

#[cfg(all(test, unix, not(target_os = "wasi")))]
mod tests {
    use super::super::{tests::settings, Caller, Toolbox};
    use crate::conversation::ToolCall;

    fn run(tools: &Toolbox, arguments: serde_json::Value) -> (bool, String) {
        let outcome = tools.run(&ToolCall {
            id: "c".into(),
            name: "exec".into(),
            arguments: arguments.to_string(),
        });
        (outcome.is_error, outcome.content)
    }

    #[test]
    fn only_allowed_programs_run_in_the_workspace_without_secrets() {
        let dir = crate::test_support::scratch();
        let mut s = settings(dir.path());
        s.exec = true;
        s.exec_allow = vec!["sh".into(), "pwd".into()];
        s.exec_timeout = std::time::Duration::from_millis(500);
        let tools = Toolbox::new(&s, Caller::Cli);
        use serde_json::json;
        // An existing workspace keeps its permissions; only a missing one
        // is created private.
        #[cfg(unix)]
        let mode = |p: &std::path::Path| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(p).unwrap().permissions().mode() & 0o777
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let (err, said) = run(&tools, json!({"program": "pwd"}));
        assert!(!err, "{said}");
        assert!(said.contains(&dir.path().display().to_string()), "{said}");
        #[cfg(unix)]
        assert_eq!(mode(dir.path()), 0o755);
        let (err, said) = run(
            &tools,
            json!({"program": "sh", "args": ["-c", "echo ${OPENAI_API_KEY:-none}"]}),
        );
        assert!(!err && said.contains("none"), "{said}");
        let (err, said) = run(&tools, json!({"program": "rm", "args": ["-rf", "x"]}));
        assert!(err && said.contains("not an allowed program"), "{said}");
        let (err, said) = run(&tools, json!({"program": "/bin/sh"}));
        assert!(err && said.contains("not an allowed program"), "{said}");
        for bad in [
            "/etc/passwd",
            "../x",
            "~/.clawft/config.json",
            "--file=/etc/passwd",
        ] {
            let (err, said) = run(&tools, json!({"program": "sh", "args": [bad]}));
            assert!(
                err && said.contains("outside the workspace"),
                "{bad}: {said}"
            );
        }
        let (err, said) = run(&tools, json!({"program": "sh", "args": ["-c", "sleep 5"]}));
        assert!(err && said.contains("did not finish"), "{said}");
    }

    #[test]
    fn arguments_that_climb_out_are_refused_wherever_they_hide() {
        for bad in [
            "-C..",
            "-C../x",
            "cat ../x",
            "--dir=a/../../x",
            "-f/etc/passwd",
            "x:..",
            "-vC/",
            "-rf/etc/passwd",
            "-d@/etc/passwd",
            "file:///etc/passwd",
            "x:/etc",
            "cat ~/.ssh/id_ed25519",
            // Cannot be told from -rf/etc: pass "-I", "src/include" instead.
            "-Isrc/include",
        ] {
            assert!(super::reaches_outside(bad), "{bad}");
        }
        for fine in ["-C", "src/main.rs", "a..b", "--all", "-v", "...", "-n3"] {
            assert!(!super::reaches_outside(fine), "{fine}");
        }
    }

    #[test]
    fn the_timeout_stops_background_children_and_dotfiles_do_not_configure() {
        let dir = crate::test_support::scratch();
        let mut s = settings(dir.path());
        s.exec = true;
        s.exec_allow = vec!["sh".into()];
        s.exec_timeout = std::time::Duration::from_millis(300);
        let tools = Toolbox::new(&s, Caller::Cli);
        use serde_json::json;
        // A grandchild holding the pipes open no longer holds the turn.
        let started = std::time::Instant::now();
        let (err, said) = run(
            &tools,
            json!({"program": "sh", "args": ["-c", "sleep 30 & echo started"]}),
        );
        assert!(!err && said.contains("started"), "{said}");
        assert!(started.elapsed().as_secs() < 10, "{:?}", started.elapsed());
        // Nor does one that leaves the group (setsid), past a short grace.
        let started = std::time::Instant::now();
        let (_, said) = run(
            &tools,
            json!({"program": "sh", "args": ["-c", "setsid sleep 30 & echo hi"]}),
        );
        assert!(said.contains("hi"), "{said}");
        assert!(started.elapsed().as_secs() < 10, "{:?}", started.elapsed());
        // HOME is not the workspace, so a .gitconfig written there is not
        // read; it is a new empty directory each time, removed afterwards.
        std::fs::write(dir.path().join(".profile"), "x").unwrap();
        let home = || {
            let (_, said) = run(
                &tools,
                json!({"program": "sh", "args": ["-c", "echo \"$HOME\"; ls -A \"$HOME\""]}),
            );
            assert_eq!(said.lines().count(), 2, "HOME is not empty: {said}");
            said.lines().nth(1).unwrap_or_default().to_owned()
        };
        let (first, second) = (home(), home());
        assert!(
            first.contains("clawft-exec-") && first != second,
            "{first} {second}"
        );
        assert!(
            !std::path::Path::new(&first).exists(),
            "{first} was left behind"
        );
    }

    #[test]
    fn large_output_is_read_to_the_end_and_cut_with_a_note() {
        let dir = crate::test_support::scratch();
        let mut s = settings(dir.path());
        s.exec = true;
        s.exec_allow = vec!["head".into()];
        let tools = Toolbox::new(&s, Caller::Cli);
        let (err, said) = run(
            &tools,
            serde_json::json!({"program": "head", "args": ["-c", "1048576", "/dev/zero"]}),
        );
        // The absolute path is refused; write the bytes in the workspace instead.
        assert!(err, "{said}");
        std::fs::write(dir.path().join("big"), vec![b'a'; 1 << 20]).unwrap();
        let (err, said) = run(
            &tools,
            serde_json::json!({"program": "head", "args": ["-c", "1048576", "big"]}),
        );
        assert!(!err && said.starts_with("[exit 0]"), "{}", &said[..40]);
        assert!(
            said.starts_with(
                "[exit 0]\n[stdout cut: the first 262144 of 1048576 bytes are shown]\naaa"
            ),
            "{}",
            &said[..120]
        );
    }
}
