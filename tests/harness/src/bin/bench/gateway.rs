//! The gateway under load: what `weft gateway` (native) and
//! `weft-gateway.wasm` under `wasmtime serve` add to a provider call, at
//! one and at many clients at once, how many requests a second they
//! answer, and their memory meanwhile; and how soon each answers its first
//! request after launch (for the start-up section).

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use clawft_harness::gateway::{Gateway, Host};
use clawft_harness::Server;
use serde_json::json;

use crate::load::{self, Answer, Load, Request};
use crate::report::{Report, Table};
use crate::stats::{ms, percentile, Stats};
use crate::{Bench, RssRows, KEY, KEY_VAR, MODEL};

/// The numbers of clients measured.
pub const CLIENTS: [usize; 2] = [1, 32];
/// What every client asks: a one-line chat, not streamed, no session (so
/// nothing is saved and clients do not wait on a session's lock).
const MESSAGE: &str = "hello there";

pub struct GatewayBench {
    table: Table,
    health: Table,
    requests: usize,
}

/// The stand-in's answer (or the gateway's, which carries it).
fn echoed(answer: &Answer) -> Result<(), String> {
    if answer.status != 200 {
        return Err("status is not 200".into());
    }
    if answer.text().contains(&format!("echo: {MESSAGE}")) {
        Ok(())
    } else {
        Err(format!("no \"echo: {MESSAGE}\" in the answer"))
    }
}

fn healthy(answer: &Answer) -> Result<(), String> {
    if answer.status == 200 {
        Ok(())
    } else {
        Err("GET /healthz is not 200".into())
    }
}

/// The client token both gateways are given: the wasm gateway serves no
/// chat without one (it cannot see whether it listens on loopback).
const TOKEN: &str = "bench-gateway-token";

/// A bench home with a client token and room for every client's turn at
/// once: the native gateway answers 429 beyond `maxConcurrentTurns` (8 by
/// default).
fn prepare_home(bench: &Bench, server: &Server) -> std::path::PathBuf {
    let home = bench.home("gateway", server);
    let path = home.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read config.json"))
            .expect("config.json");
    config["gateway"] = json!({"tokens": [TOKEN], "maxConcurrentTurns": max_clients()});
    std::fs::write(&path, config.to_string()).expect("write config.json");
    home
}

fn max_clients() -> usize {
    CLIENTS.into_iter().max().unwrap_or(1)
}

/// The two gateway hosts with the bench's artifacts.
pub fn hosts(bench: &Bench) -> [Host; 2] {
    [
        Host::native(bench.native_weft()),
        Host::Wasmtime {
            wasm: bench.shipped_component("weft-gateway.wasm"),
            wasmtime: bench.wasmtime().to_owned(),
        },
    ]
}

fn chat(addr: SocketAddr) -> Request {
    let body = json!({"model": MODEL, "stream": false,
                      "messages": [{"role": "user", "content": MESSAGE}]});
    Request::new(
        addr,
        "POST",
        "/v1/chat/completions",
        &[
            ("content-type".into(), "application/json".into()),
            ("authorization".into(), format!("Bearer {TOKEN}")),
        ],
        body.to_string().as_bytes(),
    )
}

pub fn measure(bench: &Bench, rss: &mut RssRows) -> GatewayBench {
    let server = Server::start();
    let home = prepare_home(bench, &server);
    let env = [(KEY_VAR, KEY)];
    let hosts = hosts(bench);
    let requests = bench.runs.requests;

    // The floor: the request a gateway sends the stand-in for the chat,
    // taken from the native gateway and sent straight to the stand-in.
    let direct = {
        let gateway = Gateway::start(&hosts[0], &home, &env);
        drop(server.take_requests());
        load::once(&chat(gateway.addr()), echoed);
        drop(gateway.stop());
        let sent = server
            .take_requests()
            .pop()
            .expect("the gateway called the stand-in");
        Request::new(
            server.addr(),
            &sent.method,
            &sent.path,
            &sent.headers,
            &sent.body,
        )
    };

    let mut table = Table::new(&[
        "path",
        ">clients",
        ">p50",
        ">p99",
        ">added p50",
        ">added p99",
        ">requests/s",
        ">RSS idle → peak",
    ]);
    for clients in CLIENTS {
        let per_client = (requests / clients).max(1);
        eprintln!("bench:   {clients} client(s), {per_client} requests each");
        let floor = load::run(&direct, clients, per_client, echoed);
        let (floor_p50, floor_p99) = (p(&floor, 50.0), p(&floor, 99.0));
        table.row(vec![
            "straight to the stand-in (floor)".into(),
            clients.to_string(),
            ms(floor_p50),
            ms(floor_p99),
            String::new(),
            String::new(),
            per_second(&floor),
            "–".into(),
        ]);
        for host in &hosts {
            let gateway = Gateway::start(host, &home, &env);
            let request = chat(gateway.addr());
            // Untimed: the first requests fault in what a turn touches.
            for _ in 0..WARM_UP {
                load::once(&request, echoed);
            }
            let idle = tree_kib(gateway.pid(), "VmRSS");
            let measured = load::run(&request, clients, per_client, echoed);
            let peak = tree_kib(gateway.pid(), "VmHWM");
            drop(gateway.stop());
            let (p50, p99) = (p(&measured, 50.0), p(&measured, 99.0));
            table.row(vec![
                shown(host),
                clients.to_string(),
                ms(p50),
                ms(p99),
                signed(p50, floor_p50),
                signed(p99, floor_p99),
                per_second(&measured),
                format!("{} → {}", mib(idle), mib(peak)),
            ]);
            rss.push((
                format!("{}, {clients} client(s) at once", shown(host)),
                peak,
            ));
        }
    }

    let mut health = Table::new(&["server", ">GET /healthz, one client"]);
    for host in &hosts {
        let gateway = Gateway::start(host, &home, &env);
        let request = Request::get(gateway.addr(), "/healthz");
        let times = load::run(&request, 1, requests.min(500), healthy).latencies;
        drop(gateway.stop());
        health.row(vec![shown(host), Stats::of(times).to_string()]);
    }
    GatewayBench {
        table,
        health,
        requests,
    }
}

/// Requests sent to a fresh gateway before it is measured.
const WARM_UP: usize = 5;

fn shown(host: &Host) -> String {
    if host.is_native() {
        "native `weft gateway`".into()
    } else {
        "`wasmtime serve` weft-gateway.wasm".into()
    }
}

fn p(load: &Load, pct: f64) -> Duration {
    percentile(&load.latencies, pct)
}

fn per_second(load: &Load) -> String {
    format!("{:.0}", load.per_second())
}

/// `a − b`, signed, in milliseconds.
fn signed(a: Duration, b: Duration) -> String {
    if a >= b {
        format!("+{}", ms(a - b))
    } else {
        format!("-{}", ms(b - a))
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// A `/proc/PID/status` field in KiB (`VmRSS`, `VmHWM`), summed over the
/// process and its descendants.
fn tree_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let own: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    own + children(pid)
        .into_iter()
        .map(|c| tree_kib(c, field))
        .sum::<u64>()
}

/// The children of every thread of `pid`.
fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|list| {
            list.split_whitespace()
                .filter_map(|c| c.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// From launch to the first `GET /healthz` answered, over `runs` launches
/// after one warm-up: `weft gateway --listen 127.0.0.1:0`, or `wasmtime
/// serve -C cache=y` with the compile cache warm.
pub fn first_answer(host: &Host, home: &Path, runs: usize) -> Stats {
    let times: Vec<Duration> = (0..=runs)
        .map(|_| launch_to_first_answer(host, home))
        .skip(1)
        .collect();
    Stats::of(times)
}

fn launch_to_first_answer(host: &Host, home: &Path) -> Duration {
    let (mut command, prefix) = match host {
        Host::Native(weft) => {
            let mut c = Command::new(weft);
            c.env_clear()
                .env("CLAWFT_HOME", home)
                .args(["gateway", "--listen", "127.0.0.1:0"]);
            (c, "listening on http://")
        }
        Host::Wasmtime { wasm, wasmtime } => {
            let mut c = Command::new(wasmtime);
            c.env_clear();
            // wasmtime finds its compile cache under $HOME/.cache.
            if let Some(user_home) = std::env::var_os("HOME") {
                c.env("HOME", user_home);
            }
            c.args(["serve", "-C", "cache=y", "-S", "cli", "--dir"])
                .arg(format!("{}::/config", home.display()))
                .args(["--addr", "127.0.0.1:0"])
                .arg(wasm);
            (c, "Serving HTTP on http://")
        }
    };
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
    let (lines, heard) = mpsc::channel();
    forward_lines(child.stdout.take().expect("piped stdout"), lines.clone());
    forward_lines(child.stderr.take().expect("piped stderr"), lines);
    let mut printed = Vec::new();
    let addr: SocketAddr = loop {
        let Ok(line) = heard.recv_timeout(Duration::from_secs(120)) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command:?} did not say where it listens: {printed:?}");
        };
        let found = line
            .trim()
            .strip_prefix(prefix)
            .and_then(|rest| rest.trim_end_matches('/').parse().ok());
        match found {
            Some(addr) => break addr,
            None => printed.push(line),
        }
    };
    let answered = load::Client::new(addr).exchange(&Request::get(addr, "/healthz"));
    let elapsed = started.elapsed();
    let _ = child.kill();
    let _ = child.wait();
    match answered {
        Ok(answer) if healthy(&answer).is_ok() => elapsed,
        other => panic!("{command:?}: GET /healthz: {other:?}"),
    }
}

fn forward_lines(pipe: impl Read + Send + 'static, to: mpsc::Sender<String>) {
    thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { return };
            if to.send(line).is_err() {
                return;
            }
        }
    });
}

impl GatewayBench {
    pub fn write(&self, report: &mut Report) {
        report.heading(2, "Gateway");
        report.para(&format!(
            "Clients in the bench process, each on its own keep-alive connection, \
             POST `/v1/chat/completions` (`{MODEL}`, one user message, not streamed, \
             no session header, so nothing is saved; with the gateway's client \
             token, which the wasm gateway requires) back to back, after one untimed \
             request each; {} requests in all at each level, the clients starting \
             together. Every answer is checked. The gateways run on the stand-in's \
             `ok` scenario with `gateway.maxConcurrentTurns` {} (the native default, \
             8, answers 429 beyond it), each freshly started and sent {WARM_UP} \
             untimed requests; `wasmtime serve` runs with its defaults (a fresh \
             instance per request). The floor is \
             the request the gateway sent the stand-in, sent straight to it by the \
             same client (the stand-in closes every connection, so each floor \
             request also connects, as the gateway does upstream). `added` is the \
             gateway's percentile minus the floor's at the same number of clients. \
             RSS is `/proc/PID/status` of the server and its children: `VmRSS` \
             after the warm-up, `VmHWM` after the load. Clients, stand-in and \
             gateway share the machine's cores.",
            self.requests,
            max_clients()
        ));
        report.table(&self.table);
        report.para(
            "The smallest request each serves, `GET /healthz` (no provider call), \
             one client, keep-alive: under `wasmtime serve` this is mostly the cost \
             of a fresh instance.",
        );
        report.table(&self.health);
    }
}
