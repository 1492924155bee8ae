//! What the numbers were measured on: the machine and the tools.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

/// `name: value` lines describing this machine.
pub fn describe(scratch: &Path) -> Vec<(String, String)> {
    let cpuinfo = read("/proc/cpuinfo");
    let cpu = field(&cpuinfo, "model name").unwrap_or("unknown");
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_kib: u64 = field(&read("/proc/meminfo"), "MemTotal")
        .and_then(|v| v.trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let os = read("/etc/os-release")
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_owned())
        .unwrap_or_else(|| "unknown".into());
    let lscpu = Command::new("lscpu")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let virt = [
        field(&lscpu, "Hypervisor vendor").map(|v| format!("{v} hypervisor")),
        first_line("systemd-detect-virt", &["--container"])
            .filter(|v| v != "none")
            .map(|v| format!("{v} container")),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(", ");
    let virt = (!virt.is_empty()).then_some(virt);
    let fs = lines_of("df", &["--output=fstype", &scratch.display().to_string()])
        .into_iter()
        .nth(1);
    let mut lines = vec![
        ("CPU".into(), format!("{cpu} ({cores} cores available)")),
        (
            "RAM".into(),
            format!("{:.1} GiB", mem_kib as f64 / (1024.0 * 1024.0)),
        ),
        (
            "kernel".into(),
            format!(
                "Linux {} {}",
                read("/proc/sys/kernel/osrelease").trim(),
                std::env::consts::ARCH
            ),
        ),
        ("OS".into(), os),
    ];
    if let Some(virt) = virt {
        lines.push(("virtualisation".into(), virt));
    }
    let load: Vec<&str> = LOAD_AT_START
        .get()
        .map(|l| l.split_whitespace().take(3).collect())
        .unwrap_or_default();
    if !load.is_empty() {
        lines.push((
            "load average (1, 5, 15 min) when measuring began".into(),
            format!(
                "{} (anything else busy on the machine skews the times)",
                load.join(", ")
            ),
        ));
    }
    if let Some(fs) = fs {
        lines.push((
            "filesystem of the test homes".into(),
            format!("{fs} (under the target directory)"),
        ));
    }
    lines
}

/// `/proc/loadavg` as it was when measuring began.
static LOAD_AT_START: OnceLock<String> = OnceLock::new();

/// Notes the load average; call before measuring.
pub fn note_load() {
    let _ = LOAD_AT_START.set(read("/proc/loadavg"));
}

/// `tool: version` for everything the run used.
pub fn tools(wasmtime: &Path) -> Vec<(String, String)> {
    let wasmtime = wasmtime.display().to_string();
    let tools: [(&str, &str, &[&str]); 7] = [
        ("rustc", "rustc", &["--version"]),
        ("wasmtime", &wasmtime, &["--version"]),
        ("wasm-opt", "wasm-opt", &["--version"]),
        ("wasm-tools", "wasm-tools", &["--version"]),
        ("curl", "curl", &["--version"]),
        ("gzip", "gzip", &["--version"]),
        ("GNU time", crate::run::GNU_TIME, &["--version"]),
    ];
    tools
        .iter()
        .map(|(name, program, args)| {
            let mut version = first_line(program, args).unwrap_or_else(|| "not found".into());
            // Debian's GNU time says "UNKNOWN"; its package knows.
            if version.contains("UNKNOWN") {
                let package = ["-W", "-f", "${Version}", "time"];
                if let Some(package) = first_line("dpkg-query", &package) {
                    version = format!("GNU time, Debian package {package}");
                }
            }
            // curl and rustc add build details on the same line.
            if let Some((short, _)) = version.split_once(" (") {
                version = short.to_owned();
            }
            (name.to_string(), version)
        })
        .collect()
}

/// The commit measured, `-dirty` when the work tree has changes.
pub fn revision() -> String {
    let Some(commit) = first_line("git", &["rev-parse", "--short=12", "HEAD"]) else {
        return "unknown".into();
    };
    let dirty = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .map(|o| !o.stdout.is_empty())
        .unwrap_or(false);
    if dirty {
        format!("{commit} (with uncommitted changes)")
    } else {
        commit
    }
}

/// The current time, UTC, to the minute.
pub fn now() -> String {
    first_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_else(|| "unknown".into())
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The value of the first `name<tab>: value` line.
fn field<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == name).then(|| value.trim())
    })
}

/// The first line a command prints on stdout, if it runs.
fn first_line(program: &str, args: &[&str]) -> Option<String> {
    lines_of(program, args).into_iter().next()
}

/// The non-empty lines a command prints on stdout (none if it cannot run).
fn lines_of(program: &str, args: &[&str]) -> Vec<String> {
    let Ok(output) = Command::new(program).args(args).output() else {
        return Vec::new();
    };
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}
