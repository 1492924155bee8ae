//! Running programs and timing them.
//!
//! A run's time is wall-clock from spawn to exit as this process sees it,
//! with stdout and stderr read through pipes. Every series starts with one
//! untimed warm-up run (page cache, wasmtime's compile cache).

use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::stats::Stats;

/// A program, its arguments and its whole environment (nothing is inherited).
#[derive(Debug, Clone)]
pub struct Run {
    program: PathBuf,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
}

impl Run {
    pub fn new(program: impl Into<PathBuf>) -> Run {
        Run {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
        }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Run {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<S: AsRef<OsStr>>(mut self, args: &[S]) -> Run {
        self.args.extend(args.iter().map(|a| a.as_ref().to_owned()));
        self
    }

    pub fn env(mut self, name: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Run {
        self.env
            .push((name.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// The same run under `wrapper` (e.g. `/usr/bin/time -f %M -o FILE`).
    fn wrapped(&self, wrapper: &Path, wrapper_args: &[&OsStr]) -> Run {
        let mut args: Vec<OsString> = wrapper_args.iter().map(|a| a.to_os_string()).collect();
        args.push(self.program.clone().into_os_string());
        args.extend(self.args.iter().cloned());
        Run {
            program: wrapper.to_owned(),
            args,
            env: self.env.clone(),
        }
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    /// The command line, for messages.
    pub fn shown(&self) -> String {
        let mut words = vec![self.program.display().to_string()];
        words.extend(self.args.iter().map(|a| a.to_string_lossy().into_owned()));
        words.join(" ")
    }

    /// Runs once; returns how long it took and what it printed.
    pub fn once(&self) -> (Duration, Output) {
        let started = Instant::now();
        let output = self
            .command()
            .output()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.shown()));
        (started.elapsed(), output)
    }
}

/// What a run must have done for its time to count.
pub type Check<'a> = &'a dyn Fn(&Output) -> Result<(), String>;

/// Exit status 0.
pub fn succeeded(output: &Output) -> Result<(), String> {
    if output.status.success() {
        Ok(())
    } else {
        Err(format!("exit status {}", output.status))
    }
}

/// Panics with the run and its output: a run that did not do its job has no
/// meaningful time, and the report must not pretend otherwise.
pub fn verify(run: &Run, output: &Output, check: Check<'_>) {
    if let Err(why) = check(output) {
        panic!(
            "{}: {why}\nstdout: {}\nstderr: {}",
            run.shown(),
            tail(&output.stdout),
            tail(&output.stderr)
        );
    }
}

fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let start = text.len().saturating_sub(600);
    let start = (start..=text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(text.len());
    text[start..].trim_end().to_owned()
}

/// One warm-up run, then `runs` timed runs, each checked.
pub fn series(run: &Run, runs: usize, check: Check<'_>) -> Stats {
    series_with(runs, check, || run.clone(), |_| {})
}

/// As [`series`], building each run afresh and calling `before` (untimed)
/// ahead of every run, warm-up included.
pub fn series_with(
    runs: usize,
    check: Check<'_>,
    make: impl Fn() -> Run,
    mut before: impl FnMut(usize),
) -> Stats {
    let mut times = Vec::with_capacity(runs);
    for i in 0..=runs {
        before(i);
        let run = make();
        let (elapsed, output) = run.once();
        verify(&run, &output, check);
        if i > 0 {
            times.push(elapsed);
        }
    }
    Stats::of(times)
}

/// When a run was started, when the first byte of its stdout arrived, and
/// what it printed.
pub struct FirstByte {
    pub started: Instant,
    pub first_byte: Option<Instant>,
    pub output: Output,
}

/// Runs once, noting the moment stdout's first byte can be read.
pub fn first_byte(run: &Run) -> FirstByte {
    let mut command = run.command();
    let started = Instant::now();
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", run.shown()));
    let mut err_pipe = child.stderr.take().expect("piped stderr");
    let stderr = thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = err_pipe.read_to_end(&mut bytes);
        bytes
    });
    let mut out_pipe = child.stdout.take().expect("piped stdout");
    let mut stdout = Vec::new();
    let mut first_byte = None;
    let mut buffer = [0u8; 8192];
    loop {
        match out_pipe.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                first_byte.get_or_insert_with(Instant::now);
                stdout.extend_from_slice(&buffer[..n]);
            }
        }
    }
    let status = child.wait().expect("wait for the child");
    FirstByte {
        started,
        first_byte,
        output: Output {
            status,
            stdout,
            stderr: stderr.join().unwrap_or_default(),
        },
    }
}

/// The peak resident set size of a run in KiB, from GNU time's `%M`.
pub fn peak_rss_kib(run: &Run, scratch: &Path, check: Check<'_>) -> u64 {
    let report = scratch.join("time-rss.txt");
    let wrapped = run.wrapped(
        Path::new(GNU_TIME),
        &[
            "-f".as_ref(),
            "%M".as_ref(),
            "-o".as_ref(),
            report.as_os_str(),
        ],
    );
    let (_, output) = wrapped.once();
    verify(&wrapped, &output, check);
    let text = std::fs::read_to_string(&report).unwrap_or_default();
    text.lines()
        .filter_map(|l| l.trim().parse().ok())
        .next_back()
        .unwrap_or_else(|| panic!("GNU time wrote no %M for {}: {text:?}", run.shown()))
}

/// A program on PATH, as a full path (runs get no PATH of their own).
pub fn on_path(name: &str) -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(name))
                .find(|candidate| candidate.is_file())
        })
        .unwrap_or_else(|| panic!("{name} is not on PATH (scripts/bench installs it)"))
}

/// Debian's `time` package.
pub const GNU_TIME: &str = "/usr/bin/time";
