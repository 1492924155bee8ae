//! `exec`: runs one allowed program in the workspace, natively only (WASI
//! has no processes, so the wasm builds never offer it).
//!
//! What confines it, and what does not: no shell (the program and its
//! arguments are passed as they are, so `;` or `|` mean nothing), only
//! programs named in `tools.exec.allow` (by bare name, found on `PATH`),
//! the workspace as working directory, an environment holding only `PATH`
//! and a `HOME` in the workspace (no API keys), arguments that are absolute
//! paths or climb out with `..` refused, a timeout and an output cap. A
//! program can still open files it is given by other means; that is why
//! `exec` is off unless the config enables it.

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

pub fn run(settings: &ToolSettings, args: &Args) -> Result<(String, String), String> {
    let program: String = args.get("program")?;
    let arguments: Vec<String> = args.opt("args")?.unwrap_or_default();
    if !settings.exec_allow.contains(&program) || program.contains('/') {
        return Err(format!(
            "'{program}' is not an allowed program; allowed: {}",
            settings.exec_allow.join(", ")
        ));
    }
    for arg in &arguments {
        let path_like = arg.split('=').next_back().unwrap_or(arg);
        if path_like.starts_with('/')
            || path_like.starts_with('~')
            || path_like.split('/').any(|part| part == "..")
        {
            return Err(format!(
                "argument '{arg}' reaches outside the workspace; use paths relative to it"
            ));
        }
    }
    run_program(settings, &program, &arguments)
}

#[cfg(not(target_os = "wasi"))]
fn run_program(
    settings: &ToolSettings,
    program: &str,
    arguments: &[String],
) -> Result<(String, String), String> {
    use std::io::Read;
    use std::process::{Command, Stdio};
    use std::time::Instant;
    /// The most output kept from each of stdout and stderr.
    const MAX_OUTPUT_BYTES: u64 = 256 << 10;

    std::fs::create_dir_all(&settings.workspace)
        .map_err(|e| format!("cannot create the workspace: {e}"))?;
    let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
    let mut child = Command::new(program)
        .args(arguments)
        .current_dir(&settings.workspace)
        .env_clear()
        .env("PATH", path)
        .env("HOME", &settings.workspace)
        .env("LANG", "C.UTF-8")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run '{program}': {e}"))?;
    // Read both pipes on their own threads so a chatty program cannot block.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut kept = Vec::new();
            if let Some(pipe) = pipe {
                let _ = pipe.take(MAX_OUTPUT_BYTES).read_to_end(&mut kept);
            }
            kept
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break Some(status);
        }
        if started.elapsed() > settings.exec_timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    let mut text = String::from_utf8_lossy(&stdout).into_owned();
    if !stderr.is_empty() {
        text.push_str("\n[stderr]\n");
        text.push_str(&String::from_utf8_lossy(&stderr));
    }
    match status {
        None => Err(format!(
            "'{program}' did not finish within {} s and was stopped; output so far:\n{text}",
            settings.exec_timeout.as_secs()
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

#[cfg(target_os = "wasi")]
fn run_program(
    _settings: &ToolSettings,
    program: &str,
    _arguments: &[String],
) -> Result<(String, String), String> {
    Err(format!(
        "'{program}' cannot run: a WebAssembly host has no processes"
    ))
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
        let (err, said) = run(&tools, json!({"program": "pwd"}));
        assert!(!err, "{said}");
        assert!(said.contains(&dir.path().display().to_string()), "{said}");
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
}
