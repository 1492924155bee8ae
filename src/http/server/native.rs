//! The native HTTP/1.1 server behind `weft gateway`.
//!
//! ureq-proto's sans-IO state machine parses each request and frames each
//! response; this module owns everything around it: the sockets and their
//! deadlines, a fixed pool of worker threads (one connection each at a
//! time), the connection cap, and a graceful stop. Blocking I/O throughout,
//! no async runtime.
//!
//! What a client may not do, and what it gets:
//! - more than [`Limits::max_connections`] connections: 503 with
//!   `Retry-After`, written at once by the accept loop;
//! - a head over [`Limits::max_head`] bytes (or over 128 headers): 431; a
//!   body over [`Limits::max_body`]: 413, before any byte of it is read
//!   when its length is declared (no `100 Continue` is sent then);
//! - a head slower than [`Limits::io_timeout_secs`] (at most 10 s), or a
//!   body slower than `io_timeout_secs`: 408; a piece of the answer not
//!   taken within `io_timeout_secs`: the connection is dropped and the
//!   handler's send fails;
//! - ambiguous framing, which ureq-proto leaves to the server: both
//!   `Content-Length` and `Transfer-Encoding`, or `Transfer-Encoding` in
//!   HTTP/1.0, or HTTP/1.1 without exactly one `Host`: 400; a transfer
//!   coding other than `chunked`: 501; a POST, PUT or PATCH without a
//!   length: 411.
//!
//! Every refusal closes the connection after a short drain, so the client
//! reads the answer rather than a reset. Answers without a `content-length`
//! are streamed (chunked, each piece sent at once); an HTTP/1.0 client,
//! which has no chunked coding, gets them whole with a length instead.

use std::io::{self, Read, Write};
use std::mem;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use ureq_proto::http::{header, HeaderMap, HeaderName, Method, Request, Response, StatusCode};
use ureq_proto::http::{HeaderValue, Version};
use ureq_proto::server::state::{Cleanup, ProvideResponse, RecvBody, RecvRequest, SendBody};
use ureq_proto::server::{RecvRequestResult, Reply, SendResponseResult};

use crate::error::Error;
use crate::gateway::{send_error, ApiError, Handler, Incoming, Limits, Respond, Served};

/// The longest a request head may take, however long `io_timeout_secs` is:
/// a slow head is the slowloris attack, and it holds a worker.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an idle keep-alive connection waits for its next request.
const IDLE_TIMEOUT: Duration = Duration::from_secs(5);
/// Blocking reads and writes return this often, so a worker notices a stop.
const SLICE: Duration = Duration::from_millis(100);
/// How long a refused connection is drained before it closes: closing with
/// unread bytes makes the kernel send a reset, which can destroy the answer
/// before the client reads it.
const LINGER: Duration = Duration::from_secs(1);
/// Refused connections being drained at once; more are closed straight away.
const MAX_LINGERING: usize = 64;
/// The pause after a failed accept (out of file descriptors), not to spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);
/// Bytes of response framed at a time, and of request read at a time.
const BUFFER: usize = 16 << 10;
/// The longest any configured wait is taken to be, in seconds (a day), so
/// no deadline can overflow.
const LONGEST_SECS: u64 = 24 * 60 * 60;

/// How to serve.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where to listen; port 0 picks a free one (see [`Server::addr`]).
    pub listen: SocketAddr,
    pub limits: Limits,
    /// Threads serving connections, one connection each at a time; more
    /// than `limits.max_connections` would never be busy. Accepted
    /// connections beyond the workers wait for one (within the cap).
    pub workers: usize,
}

/// Serves until SIGTERM or SIGINT, then stops accepting, lets in-flight
/// requests finish within `limits.grace_secs`, and returns Ok(()). A
/// second signal ends the process at once (status 128 + the signal).
pub fn serve(
    handler: &dyn Handler,
    options: &Options,
    log: &(dyn Fn(&str) + Sync),
) -> Result<(), Error> {
    let server = Server::bind(options)?;
    let stopper = server.stopper();
    let mut signals = Signals::new([SIGINT, SIGTERM])
        .map_err(|e| Error::io("installing the SIGTERM and SIGINT handlers", e))?;
    let signals_done = signals.handle();
    thread::scope(|scope| {
        thread::Builder::new()
            .name("gateway-signals".into())
            .spawn_scoped(scope, move || {
                let mut stopping = false;
                for signal in signals.forever() {
                    let name = if signal == SIGINT {
                        "SIGINT"
                    } else {
                        "SIGTERM"
                    };
                    if stopping {
                        log(&format!("{name} again: exiting now"));
                        std::process::exit(128 + signal);
                    }
                    log(&format!("{name}: shutting down"));
                    stopper.stop();
                    stopping = true;
                }
            })
            .map_err(|e| Error::io("starting the signal thread", e))?;
        let served = server.run(handler, log);
        signals_done.close();
        served
    })
}

/// A bound listener, ready to [`run`](Server::run).
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    addr: SocketAddr,
    limits: Limits,
    workers: usize,
    control: Arc<Control>,
}

/// Stops a running [`Server`] from any thread: it accepts nothing more,
/// closes idle connections, and lets the requests in flight finish within
/// the grace period.
#[derive(Debug, Clone)]
pub struct Stopper {
    control: Arc<Control>,
    /// Where a connection of our own wakes the accept loop.
    wake: SocketAddr,
}

/// What the accept loop, the workers and [`Stopper`] share.
#[derive(Debug, Default)]
struct Control {
    /// No new connections; idle ones close.
    stopping: AtomicBool,
    /// The grace period is over: reads and writes in flight fail.
    cut: AtomicBool,
    /// Every connection has ended: the drain thread leaves.
    finished: AtomicBool,
}

impl Control {
    fn stopping(&self) -> bool {
        self.stopping.load(SeqCst)
    }

    fn cut(&self) -> bool {
        self.cut.load(SeqCst)
    }
}

impl Stopper {
    pub fn stop(&self) {
        self.control.stopping.store(true, SeqCst);
        // The accept loop is blocked in accept(): a connection wakes it.
        // Connecting can fail while file descriptors run out; try again.
        for _ in 0..3 {
            if TcpStream::connect_timeout(&self.wake, Duration::from_secs(1)).is_ok() {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Server {
    pub fn bind(options: &Options) -> Result<Server, Error> {
        let listen = options.listen;
        let listener = TcpListener::bind(listen).map_err(|e| Error::io(listen, e))?;
        let addr = listener.local_addr().map_err(|e| Error::io(listen, e))?;
        let max_connections = options.limits.max_connections.max(1);
        Ok(Server {
            listener,
            addr,
            limits: Limits {
                max_connections,
                ..options.limits
            },
            workers: options.workers.clamp(1, max_connections),
            control: Arc::default(),
        })
    }

    /// The address listened on, with the port chosen when 0 was asked.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn stopper(&self) -> Stopper {
        let wake_ip = match self.addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        Stopper {
            control: self.control.clone(),
            wake: SocketAddr::new(wake_ip, self.addr.port()),
        }
    }

    /// Serves until [`Stopper::stop`], then waits for the connections
    /// still open (requests in flight, queued connections) for
    /// `limits.grace_secs`, cuts what is left, and returns when every
    /// worker is done. `log` gets one line per request and one per event.
    pub fn run(self, handler: &dyn Handler, log: &(dyn Fn(&str) + Sync)) -> Result<(), Error> {
        let Server {
            listener,
            addr,
            limits,
            workers,
            control,
        } = self;
        let (queue, waiting) = mpsc::sync_channel::<TcpStream>(limits.max_connections);
        let waiting = Mutex::new(waiting);
        let (closing, to_close) = mpsc::sync_channel::<TcpStream>(MAX_LINGERING);
        let shared = Shared {
            handler,
            log,
            limits,
            timeouts: Timeouts::new(&limits),
            control: &control,
            open: AtomicUsize::new(0),
            closing,
        };
        thread::scope(|scope| {
            let mut started = Ok(());
            for n in 0..workers {
                let spawned = thread::Builder::new()
                    .name(format!("gateway-{n}"))
                    .spawn_scoped(scope, || work(&waiting, &shared));
                if let Err(e) = spawned {
                    started = Err(e);
                    break;
                }
            }
            if started.is_ok() {
                started = thread::Builder::new()
                    .name("gateway-drain".into())
                    .spawn_scoped(scope, || drain_closing(to_close, &control))
                    .map(drop);
            }
            if let Err(e) = started {
                control.finished.store(true, SeqCst);
                return Err(Error::io("starting the gateway's threads", e));
            }
            log(&format!("listening on http://{addr}"));
            accept(&listener, &queue, &shared);
            // From here new connections are refused by the kernel.
            drop(listener);
            drop(queue);
            finish(&shared);
            Ok(())
        })
    }
}

/// The deadlines derived from [`Limits::io_timeout_secs`].
#[derive(Debug, Clone, Copy)]
struct Timeouts {
    head: Duration,
    idle: Duration,
    body: Duration,
    /// For each piece of an answer.
    write: Duration,
}

impl Timeouts {
    fn new(limits: &Limits) -> Timeouts {
        let io = Duration::from_secs(limits.io_timeout_secs.clamp(1, LONGEST_SECS));
        Timeouts {
            head: io.min(HEAD_TIMEOUT),
            idle: io.min(IDLE_TIMEOUT),
            body: io,
            write: io,
        }
    }
}

/// What every thread of a running server reads.
struct Shared<'a> {
    handler: &'a dyn Handler,
    log: &'a (dyn Fn(&str) + Sync),
    limits: Limits,
    timeouts: Timeouts,
    control: &'a Control,
    /// Connections accepted and not yet closed, queued ones included.
    open: AtomicUsize,
    /// Answered connections to drain and close (see [`LINGER`]).
    closing: SyncSender<TcpStream>,
}

impl Shared<'_> {
    /// Hands a connection whose answer is written to the drain thread.
    fn close_gently(&self, stream: TcpStream) {
        // A full drain queue: close now, a reset is the lesser harm.
        let _ = self.closing.try_send(stream);
    }
}

fn accept(listener: &TcpListener, queue: &SyncSender<TcpStream>, shared: &Shared) {
    let max = shared.limits.max_connections;
    let busy = canned(&ApiError {
        status: 503,
        message: format!("{max} connections are open already; try again shortly"),
        kind: "server_error",
        code: Some("too_many_connections"),
        headers: vec![("retry-after", "1".to_owned())],
    });
    let mut failing = false;
    while !shared.control.stopping() {
        let (mut stream, peer) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, say: say so once, and wait for
                // connections to close instead of spinning.
                if !failing {
                    (shared.log)(&format!("cannot accept connections: {e}"));
                    failing = true;
                }
                thread::sleep(ACCEPT_BACKOFF);
                continue;
            }
        };
        failing = false;
        if shared.control.stopping() {
            break;
        }
        if shared.open.load(SeqCst) >= max {
            (shared.log)(&format!("refused {peer}: {max} connections open (503)"));
            // The socket's buffer is empty: the answer goes out whole
            // without blocking the accept loop.
            let _ = stream.set_nonblocking(true);
            let _ = stream.write(&busy);
            shared.close_gently(stream);
            continue;
        }
        shared.open.fetch_add(1, SeqCst);
        // Never full: the queue holds max_connections and open counts them.
        if queue.try_send(stream).is_err() {
            shared.open.fetch_sub(1, SeqCst);
        }
    }
}

/// After the accept loop: waits for the open connections within the grace
/// period, then cuts the rest.
fn finish(shared: &Shared) {
    let open = shared.open.load(SeqCst);
    let grace = shared.limits.grace_secs.min(LONGEST_SECS);
    (shared.log)(&format!(
        "stopped accepting; open connections: {open}; {grace} s to finish"
    ));
    let deadline = Instant::now() + Duration::from_secs(grace);
    while shared.open.load(SeqCst) > 0 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    let left = shared.open.load(SeqCst);
    if left > 0 {
        (shared.log)(&format!(
            "grace period over; cutting the open connections: {left}"
        ));
        shared.control.cut.store(true, SeqCst);
    }
    shared.control.finished.store(true, SeqCst);
}

fn work(waiting: &Mutex<Receiver<TcpStream>>, shared: &Shared) {
    loop {
        let next = waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .recv();
        let Ok(stream) = next else { return };
        if !shared.control.cut() {
            Connection::new(stream, shared).serve();
        }
        shared.open.fetch_sub(1, SeqCst);
    }
}

/// Drains answered connections for up to [`LINGER`] each, so their
/// clients read the answer, then closes them.
fn drain_closing(to_close: Receiver<TcpStream>, control: &Control) {
    let mut lingering: Vec<(TcpStream, Instant)> = Vec::new();
    let mut scratch = vec![0u8; BUFFER];
    while !control.finished.load(SeqCst) {
        let wait = if lingering.is_empty() {
            SLICE
        } else {
            Duration::from_millis(10)
        };
        match to_close.recv_timeout(wait) {
            Ok(stream) => {
                let ready = stream.set_nonblocking(true).is_ok()
                    && stream.shutdown(Shutdown::Write).is_ok();
                if ready && lingering.len() < MAX_LINGERING {
                    lingering.push((stream, Instant::now() + LINGER));
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        let now = Instant::now();
        lingering.retain_mut(|(stream, until)| *until > now && still_sending(stream, &mut scratch));
    }
}

/// Reads and drops what a non-blocking socket holds; false once the
/// client has closed its side (or the socket failed).
fn still_sending(stream: &mut TcpStream, scratch: &mut [u8]) -> bool {
    // At most 1 MiB a turn, so one fast sender cannot hold up the others.
    for _ in 0..64 {
        match stream.read(scratch) {
            Ok(0) => return false,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    true
}

/// Why reading a request ended without one for the handler.
enum Refused {
    /// Answer this, then close.
    Answer(ApiError),
    /// Close without a word: the client left, went quiet between requests,
    /// or the server is stopping.
    Close,
}

/// What happens after an exchange.
enum Next {
    KeepAlive,
    Close,
    Refuse(ApiError),
}

/// How a wait for more bytes ended.
enum Filled {
    More,
    TimedOut,
    Closed,
}

/// One client connection, served by one worker from accept to close.
struct Connection<'a> {
    stream: TcpStream,
    peer: Option<SocketAddr>,
    /// Bytes read and not yet parsed: a head in progress, body bytes, or
    /// the next (pipelined) request.
    input: Vec<u8>,
    filled: usize,
    /// Where responses are framed.
    out: Vec<u8>,
    shared: &'a Shared<'a>,
}

impl<'a> Connection<'a> {
    fn new(stream: TcpStream, shared: &'a Shared<'a>) -> Connection<'a> {
        let _ = stream.set_nodelay(true);
        // Every blocking call returns after a slice; the loops keep the
        // real deadlines and watch for a stop.
        let _ = stream.set_read_timeout(Some(SLICE));
        let _ = stream.set_write_timeout(Some(SLICE));
        Connection {
            peer: stream.peer_addr().ok(),
            stream,
            input: vec![0; shared.limits.max_head.max(BUFFER)],
            filled: 0,
            out: vec![0; BUFFER],
            shared,
        }
    }

    fn serve(mut self) {
        let mut first = true;
        loop {
            let next = match self.read_head(first) {
                Ok((reply, request)) => self.exchange(reply, &request),
                Err(Refused::Close) => Next::Close,
                Err(Refused::Answer(err)) => {
                    let peer = self
                        .peer
                        .map_or_else(|| "a client".into(), |p| p.to_string());
                    (self.shared.log)(&format!("refused {peer}: {} {}", err.status, err.message));
                    Next::Refuse(err)
                }
            };
            match next {
                Next::KeepAlive if !self.shared.control.stopping() => first = false,
                Next::KeepAlive | Next::Close => return,
                Next::Refuse(err) => return self.refuse(&err),
            }
        }
    }

    /// Answers outside the state machine (the request is not, or not
    /// wholly, read), then closes gently.
    fn refuse(mut self, err: &ApiError) {
        let answer = canned(err);
        let timeouts = self.shared.timeouts;
        if write_by_deadline(
            &mut self.stream,
            &answer,
            timeouts.write,
            self.shared.control,
        )
        .is_ok()
        {
            self.shared.close_gently(self.stream);
        }
    }

    /// Waits for a whole request head: within the head timeout once its
    /// first byte is here, after at most the idle timeout between requests.
    fn read_head(&mut self, first: bool) -> Result<(Reply<RecvRequest>, Request<()>), Refused> {
        let timeouts = self.shared.timeouts;
        let max_head = self.shared.limits.max_head;
        let mut reply = Reply::new().map_err(|_| Refused::Close)?;
        let mut idle = !first && self.filled == 0;
        let mut deadline = Instant::now() + if idle { timeouts.idle } else { timeouts.head };
        loop {
            if self.filled > 0 {
                match reply.try_request(&self.input[..self.filled]) {
                    Ok((used, Some(_))) if used > max_head => {
                        return Err(Refused::Answer(ApiError::head_too_large(max_head)))
                    }
                    Ok((used, Some(request))) => {
                        self.consume(used);
                        return Ok((reply, request));
                    }
                    Ok((_, None)) if self.filled >= max_head => {
                        return Err(Refused::Answer(ApiError::head_too_large(max_head)))
                    }
                    Ok((_, None)) => {}
                    Err(ureq_proto::Error::HttpParseTooManyHeaders) => {
                        return Err(Refused::Answer(ApiError::head_too_large(max_head)))
                    }
                    Err(e) => {
                        return Err(Refused::Answer(ApiError::invalid(&format!(
                            "the request is not valid HTTP/1.1: {e}"
                        ))))
                    }
                }
            }
            match self.fill(deadline, idle) {
                Filled::More if idle => {
                    idle = false;
                    deadline = Instant::now() + timeouts.head;
                }
                Filled::More => {}
                Filled::TimedOut if self.filled > 0 => {
                    return Err(Refused::Answer(ApiError::timed_out(&format!(
                        "the request head took longer than {} s",
                        timeouts.head.as_secs()
                    ))))
                }
                Filled::TimedOut | Filled::Closed => return Err(Refused::Close),
            }
        }
    }

    /// Reads the body, lets the handler answer and logs the access line.
    fn exchange(&mut self, reply: Reply<RecvRequest>, request: &Request<()>) -> Next {
        let started = Instant::now();
        let method = request.method().as_str();
        let path = request.uri().path();
        let received = check_framing(request, self.shared.limits.max_body)
            .map_err(Refused::Answer)
            .and_then(|()| self.read_body(reply));
        let (provide, body) = match received {
            Ok(received) => received,
            Err(Refused::Answer(err)) => {
                self.access(method, path, err.status, started, &Served::default());
                return Next::Refuse(err);
            }
            Err(Refused::Close) => return Next::Close,
        };
        let headers: Vec<(String, String)> = request
            .headers()
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.as_str().to_owned(), value)
            })
            .collect();
        let incoming = Incoming {
            method,
            path,
            headers: &headers,
            body: &body,
        };
        let shared = self.shared;
        let mut exchange = Exchange {
            stream: &mut self.stream,
            out: &mut self.out,
            phase: Phase::Ready(provide),
            http10: request.version() == Version::HTTP_10,
            client_closes: has_token(request.headers(), header::CONNECTION, "close"),
            close: false,
            status: None,
            timeouts: shared.timeouts,
            control: shared.control,
        };
        let served = shared.handler.handle(&incoming, &mut exchange);
        let keep_alive = exchange.finish();
        let status = match (exchange.status, served.status) {
            (Some(sent), 0) => sent,
            (Some(_), status) => status,
            // The exchange answered for a handler that did not.
            (None, _) => 500,
        };
        self.access(method, path, status, started, &served);
        if keep_alive {
            Next::KeepAlive
        } else {
            Next::Close
        }
    }

    fn read_body(
        &mut self,
        reply: Reply<RecvRequest>,
    ) -> Result<(Reply<ProvideResponse>, Vec<u8>), Refused> {
        let timeouts = self.shared.timeouts;
        let recv = match reply.proceed() {
            Some(RecvRequestResult::ProvideResponse(provide)) => return Ok((provide, Vec::new())),
            Some(RecvRequestResult::Send100(ask)) => {
                let mut line = [0u8; 64];
                let (n, recv) = ask.accept(&mut line).map_err(|_| Refused::Close)?;
                write_by_deadline(
                    &mut self.stream,
                    &line[..n],
                    timeouts.write,
                    self.shared.control,
                )
                .map_err(|_| Refused::Close)?;
                recv
            }
            Some(RecvRequestResult::RecvBody(recv)) => recv,
            // Only before a whole head, which the caller has.
            None => return Err(Refused::Close),
        };
        self.read_body_bytes(recv)
    }

    fn read_body_bytes(
        &mut self,
        mut recv: Reply<RecvBody>,
    ) -> Result<(Reply<ProvideResponse>, Vec<u8>), Refused> {
        let max_body = self.shared.limits.max_body;
        let timeout = self.shared.timeouts.body;
        let deadline = Instant::now() + timeout;
        let mut body = Vec::new();
        loop {
            let mut progress = false;
            if self.filled > 0 {
                // Decoding never makes more bytes than it takes.
                let start = body.len();
                body.resize(start + self.filled, 0);
                let (used, made) = recv
                    .read(&self.input[..self.filled], &mut body[start..])
                    .map_err(|e| {
                        Refused::Answer(ApiError::invalid(&format!(
                            "the request body is malformed: {e}"
                        )))
                    })?;
                body.truncate(start + made);
                self.consume(used);
                progress = used > 0 || made > 0;
                if body.len() > max_body {
                    return Err(Refused::Answer(ApiError::too_large(max_body)));
                }
            }
            if recv.is_ended() {
                let provide = recv.proceed().map_err(|_| Refused::Close)?;
                return Ok((provide, body));
            }
            if progress {
                continue;
            }
            if self.filled == self.input.len() {
                // A chunk-size line longer than the whole buffer.
                return Err(Refused::Answer(ApiError::invalid(
                    "the request body's chunked coding is malformed",
                )));
            }
            match self.fill(deadline, false) {
                Filled::More => {}
                Filled::TimedOut => {
                    return Err(Refused::Answer(ApiError::timed_out(&format!(
                        "the request body took longer than {} s",
                        timeout.as_secs()
                    ))))
                }
                Filled::Closed => return Err(Refused::Close),
            }
        }
    }

    /// Reads what arrives before `deadline`. While `idle` (between
    /// requests), a stop ends the wait.
    fn fill(&mut self, deadline: Instant, idle: bool) -> Filled {
        let control = self.shared.control;
        loop {
            if control.cut() || (idle && control.stopping()) {
                return Filled::Closed;
            }
            if Instant::now() >= deadline {
                return Filled::TimedOut;
            }
            match self.stream.read(&mut self.input[self.filled..]) {
                Ok(0) => return Filled::Closed,
                Ok(n) => {
                    self.filled += n;
                    return Filled::More;
                }
                Err(e) if waits(&e) => {}
                Err(_) => return Filled::Closed,
            }
        }
    }

    fn consume(&mut self, used: usize) {
        self.input.copy_within(used..self.filled, 0);
        self.filled -= used;
    }

    fn access(&self, method: &str, path: &str, status: u16, started: Instant, served: &Served) {
        (self.shared.log)(&served.access_line(method, path, status, started.elapsed()));
    }
}

/// The framing decisions ureq-proto leaves to a server, made before any
/// body byte is read: anything ambiguous is refused (and the connection
/// closed), so no request can hide inside another.
fn check_framing(request: &Request<()>, max_body: usize) -> Result<(), ApiError> {
    let headers = request.headers();
    let codings: Vec<&HeaderValue> = headers.get_all(header::TRANSFER_ENCODING).iter().collect();
    let length = headers.contains_key(header::CONTENT_LENGTH);
    let http10 = request.version() == Version::HTTP_10;
    if !http10 && headers.get_all(header::HOST).iter().count() != 1 {
        return Err(ApiError::invalid(
            "an HTTP/1.1 request needs exactly one Host header",
        ));
    }
    if !codings.is_empty() {
        if http10 {
            return Err(ApiError::invalid(
                "HTTP/1.0 has no Transfer-Encoding; send Content-Length",
            ));
        }
        if length {
            return Err(ApiError::invalid(
                "a request may not have both Content-Length and Transfer-Encoding",
            ));
        }
        let chunked =
            matches!(codings[..], [only] if only.as_bytes().eq_ignore_ascii_case(b"chunked"));
        if !chunked {
            return Err(ApiError::new(
                501,
                "invalid_request_error",
                Some("unsupported_transfer_encoding"),
                "the only transfer coding served is chunked".into(),
            ));
        }
    }
    let method = request.method();
    let wants_body = method == Method::POST || method == Method::PUT || method == Method::PATCH;
    if wants_body && codings.is_empty() && !length {
        return Err(ApiError::new(
            411,
            "invalid_request_error",
            Some("length_required"),
            "the request needs a Content-Length".into(),
        ));
    }
    // ureq-proto rejects a malformed length when it reads the head.
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > max_body as u64) {
        return Err(ApiError::too_large(max_body));
    }
    Ok(())
}

/// Whether a header lists a token (`Connection: keep-alive, close`).
fn has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Where one response stands.
enum Phase {
    /// Nothing sent yet.
    Ready(Reply<ProvideResponse>),
    /// Head sent; the body goes out piece by piece.
    Body(Reply<SendBody>),
    /// A streamed answer collected for an HTTP/1.0 client, sent whole at
    /// the end with its length.
    Collecting(Reply<ProvideResponse>, Response<()>, Vec<u8>),
    /// The response is on the wire; it has no body (HEAD, 204, 304) or
    /// the body is complete. Further pieces are dropped.
    Done(Reply<Cleanup>),
    /// A write failed, or the server cut the exchange: the connection
    /// closes after it.
    Broken,
}

/// The handler's [`Respond`]: frames through ureq-proto and writes each
/// piece to the socket at once, within the write timeout.
struct Exchange<'c> {
    stream: &'c mut TcpStream,
    out: &'c mut [u8],
    phase: Phase,
    http10: bool,
    client_closes: bool,
    /// This response says `connection: close`.
    close: bool,
    /// The status sent, once `start` succeeded.
    status: Option<u16>,
    timeouts: Timeouts,
    control: &'c Control,
}

impl Exchange<'_> {
    fn response(&self, status: u16, headers: &[(&str, &str)]) -> io::Result<Response<()>> {
        if !(200..=599).contains(&status) {
            return Err(invalid_input("a status must be from 200 to 599"));
        }
        let mut response = Response::builder().status(status);
        for (name, value) in headers {
            response = response.header(*name, *value);
        }
        if self.close {
            response = response.header(header::CONNECTION, "close");
        }
        response
            .body(())
            .map_err(|e| invalid_input(&format!("a response head: {e}")))
    }

    /// Sends the head; the phase is then `Body` or `Done`.
    fn send_head(
        &mut self,
        provide: Reply<ProvideResponse>,
        response: Response<()>,
    ) -> io::Result<()> {
        let mut head = provide
            .provide(response)
            .map_err(|e| invalid_input(&format!("a response head: {e}")))?;
        while !head.is_finished() {
            let n = head
                .write(self.out)
                .map_err(|e| invalid_input(&format!("a response head: {e}")))?;
            self.write(n)?;
        }
        self.phase = match head.proceed() {
            SendResponseResult::SendBody(body) => Phase::Body(body),
            SendResponseResult::Cleanup(cleanup) => Phase::Done(cleanup),
        };
        Ok(())
    }

    /// Frames and writes one piece; an empty piece ends a body.
    fn send_body(&mut self, body: &mut Reply<SendBody>, mut piece: &[u8]) -> io::Result<()> {
        loop {
            let (used, made) = body
                .write(piece, self.out)
                .map_err(|e| invalid_input(&format!("a response body: {e}")))?;
            self.write(made)?;
            piece = &piece[used..];
            if piece.is_empty() {
                return Ok(());
            }
            if used == 0 && made == 0 {
                return Err(invalid_input("a response body that cannot be framed"));
            }
        }
    }

    fn write(&mut self, framed: usize) -> io::Result<()> {
        write_by_deadline(
            self.stream,
            &self.out[..framed],
            self.timeouts.write,
            self.control,
        )
    }

    /// Completes the response after the handler returned; true if the
    /// connection may carry another request.
    fn finish(&mut self) -> bool {
        if let Phase::Ready(_) = self.phase {
            // The handler answered nothing: a bug, but the client hears.
            // The status stays unset, so the access line says 500 whatever
            // the handler reported.
            let _ = send_error(self, &ApiError::no_answer());
            self.status = None;
        }
        if let Phase::Collecting(..) = self.phase {
            if let Phase::Collecting(provide, mut response, whole) =
                mem::replace(&mut self.phase, Phase::Broken)
            {
                response
                    .headers_mut()
                    .insert(header::CONTENT_LENGTH, whole.len().into());
                if self.send_head(provide, response).is_ok() {
                    let _ = self.send(&whole);
                }
            }
        }
        let cleanup = match mem::replace(&mut self.phase, Phase::Broken) {
            Phase::Done(cleanup) => cleanup,
            Phase::Body(mut body) => {
                // The last chunk, or nothing for a length already sent in full.
                if !body.is_finished() && self.send_body(&mut body, &[]).is_err() {
                    return false;
                }
                if !body.is_finished() {
                    // Short of its content-length: only closing tells.
                    return false;
                }
                body.proceed()
            }
            Phase::Ready(_) | Phase::Collecting(..) | Phase::Broken => return false,
        };
        !cleanup.must_close_connection() && !self.close && !self.control.stopping()
    }
}

impl Respond for Exchange<'_> {
    fn start(&mut self, status: u16, headers: &[(&str, &str)]) -> io::Result<()> {
        let provide = match mem::replace(&mut self.phase, Phase::Broken) {
            Phase::Ready(provide) => provide,
            other => {
                self.phase = other;
                return Err(invalid_input("the response has started already"));
            }
        };
        // HTTP/1.0 connections are not kept: no keep-alive handshake.
        self.close = self.http10 || self.client_closes || self.control.stopping();
        let response = match self.response(status, headers) {
            Ok(response) => response,
            Err(e) => {
                self.phase = Phase::Ready(provide);
                return Err(e);
            }
        };
        self.status = Some(status);
        if self.http10 && !response.headers().contains_key(header::CONTENT_LENGTH) {
            self.phase = Phase::Collecting(provide, response, Vec::new());
            return Ok(());
        }
        self.send_head(provide, response)
    }

    fn send(&mut self, piece: &[u8]) -> io::Result<()> {
        if self.control.cut() {
            self.phase = Phase::Broken;
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the server is shutting down",
            ));
        }
        self.phase = match mem::replace(&mut self.phase, Phase::Broken) {
            // An empty piece would end a chunked body early.
            Phase::Body(body) if piece.is_empty() => Phase::Body(body),
            Phase::Body(mut body) => {
                self.send_body(&mut body, piece)?;
                Phase::Body(body)
            }
            Phase::Collecting(provide, response, mut whole) => {
                whole.extend_from_slice(piece);
                Phase::Collecting(provide, response, whole)
            }
            Phase::Done(cleanup) => Phase::Done(cleanup),
            Phase::Ready(provide) => {
                self.phase = Phase::Ready(provide);
                return Err(invalid_input("send before start"));
            }
            Phase::Broken => {
                return Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "the client is gone",
                ))
            }
        };
        Ok(())
    }
}

/// A whole answer framed here, for requests refused before (or without)
/// reading them, where ureq-proto has no state to answer from: status
/// line, the error's headers, `connection: close`, the body.
#[derive(Default)]
struct Canned(Vec<u8>);

impl Respond for Canned {
    fn start(&mut self, status: u16, headers: &[(&str, &str)]) -> io::Result<()> {
        let reason = StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("");
        write!(self.0, "HTTP/1.1 {status} {reason}\r\n")?;
        for (name, value) in headers {
            write!(self.0, "{name}: {value}\r\n")?;
        }
        self.0.extend_from_slice(b"connection: close\r\n\r\n");
        Ok(())
    }

    fn send(&mut self, piece: &[u8]) -> io::Result<()> {
        self.0.extend_from_slice(piece);
        Ok(())
    }
}

fn canned(err: &ApiError) -> Vec<u8> {
    let mut answer = Canned::default();
    // Writing to memory cannot fail.
    let _ = send_error(&mut answer, err);
    answer.0
}

/// Writes all of `data` within `timeout`. The socket's own timeout bounds
/// each write() call only, and a client taking a byte at a time would
/// renew it forever; this bounds the whole piece.
fn write_by_deadline(
    stream: &mut TcpStream,
    mut data: &[u8],
    timeout: Duration,
    control: &Control,
) -> io::Result<()> {
    let deadline = Instant::now() + timeout;
    while !data.is_empty() {
        if control.cut() {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the server is shutting down",
            ));
        }
        if Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client takes no more of the answer",
            ));
        }
        match stream.write(data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(e) if waits(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A socket call that ran out its slice (Linux reports EAGAIN, not a
/// timeout) or was interrupted by a signal: try again.
fn waits(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

fn invalid_input(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::sync::mpsc::Sender;
    use std::thread::JoinHandle;

    /// Long enough never to fire in a passing test, short enough to fail
    /// a broken one instead of hanging it.
    const PATIENCE: Duration = Duration::from_secs(20);

    fn limits() -> Limits {
        Limits {
            max_body: 1024,
            max_head: 1024,
            max_turns: 4,
            max_connections: 8,
            io_timeout_secs: 5,
            grace_secs: 5,
        }
    }

    /// What the test handler saw of its sends.
    #[derive(Debug, PartialEq)]
    enum Report {
        /// Every piece went out.
        Sent(usize),
        /// The send after `after` pieces failed.
        Failed { after: usize, kind: io::ErrorKind },
    }

    /// Answers by path: `/echo` whole, the others streamed.
    struct TestHandler {
        /// `/gated` sends its next piece when the test says so.
        gate: Mutex<Receiver<()>>,
        reports: Mutex<Sender<Report>>,
    }

    impl TestHandler {
        fn report(&self, report: Report) {
            let _ = self.reports.lock().unwrap().send(report);
        }

        /// Streams `count` pieces made by `piece`, which may wait first.
        fn stream(&self, out: &mut dyn Respond, count: usize, piece: impl Fn(usize) -> Vec<u8>) {
            if out
                .start(200, &[("content-type", "text/event-stream")])
                .is_err()
            {
                return self.report(Report::Failed {
                    after: 0,
                    kind: io::ErrorKind::Other,
                });
            }
            for i in 0..count {
                if let Err(e) = out.send(&piece(i)) {
                    return self.report(Report::Failed {
                        after: i,
                        kind: e.kind(),
                    });
                }
            }
            self.report(Report::Sent(count));
        }
    }

    impl Handler for TestHandler {
        fn handle(&self, request: &Incoming<'_>, out: &mut dyn Respond) -> Served {
            let mut served = Served {
                status: 200,
                session: crate::http::header(request.headers, "x-clawft-session")
                    .map(str::to_owned),
                tool_calls: 0,
            };
            match request.path {
                "/echo" => {
                    let text =
                        format!("{} {} {}", request.method, request.path, request.body.len());
                    let length = text.len().to_string();
                    let _ = out
                        .start(
                            200,
                            &[("content-type", "text/plain"), ("content-length", &length)],
                        )
                        .and_then(|()| out.send(text.as_bytes()));
                }
                "/gated" => self.stream(out, 3, |i| {
                    let _ = self.gate.lock().unwrap().recv_timeout(PATIENCE);
                    format!("piece {i}\n").into_bytes()
                }),
                "/pieces" => self.stream(out, 3, |i| vec![b'a' + i as u8]),
                "/drip" => self.stream(out, 4000, |_| {
                    thread::sleep(Duration::from_millis(5));
                    b"data: drip\n\n".to_vec()
                }),
                "/flood" => self.stream(out, 40_000, |_| vec![b'x'; 256 << 10]),
                "/silent" => served.status = 0,
                _ => {
                    served.status = 404;
                    let _ = send_error(out, &ApiError::not_found(request.path));
                }
            }
            served
        }
    }

    /// A server on 127.0.0.1, port chosen by the system, stopped when dropped.
    struct TestServer {
        addr: SocketAddr,
        stopper: Stopper,
        run: Option<JoinHandle<Result<(), Error>>>,
        lines: Arc<Mutex<Vec<String>>>,
        gate: Sender<()>,
        reports: Receiver<Report>,
    }

    impl TestServer {
        fn start(limits: Limits, workers: usize) -> TestServer {
            let options = Options {
                listen: "127.0.0.1:0".parse().unwrap(),
                limits,
                workers,
            };
            let server = Server::bind(&options).unwrap();
            let (addr, stopper) = (server.addr(), server.stopper());
            let (gate, gate_rx) = mpsc::channel();
            let (reports_tx, reports) = mpsc::channel();
            let lines = Arc::new(Mutex::new(Vec::new()));
            let log_lines = lines.clone();
            let run = thread::spawn(move || {
                let handler = TestHandler {
                    gate: Mutex::new(gate_rx),
                    reports: Mutex::new(reports_tx),
                };
                server.run(&handler, &|line: &str| {
                    log_lines.lock().unwrap().push(line.to_owned())
                })
            });
            TestServer {
                addr,
                stopper,
                run: Some(run),
                lines,
                gate,
                reports,
            }
        }

        fn connect(&self) -> Client {
            Client::connect(self.addr)
        }

        fn report(&self) -> Report {
            self.reports
                .recv_timeout(PATIENCE)
                .expect("a report from the handler")
        }

        fn open_gate(&self) {
            self.gate.send(()).unwrap();
        }

        fn log(&self) -> Vec<String> {
            self.lines.lock().unwrap().clone()
        }

        /// Stops the server and waits for `run` to return.
        fn stop(mut self) -> Result<(), Error> {
            self.stopper.stop();
            self.run.take().unwrap().join().unwrap()
        }

        /// Whether `/echo` still answers on a new connection.
        fn still_serves(&self) -> bool {
            let mut client = self.connect();
            client.send(&get("/echo"));
            client.response().0.status == 200
        }
    }

    impl Drop for TestServer {
        fn drop(&mut self) {
            if let Some(run) = self.run.take() {
                self.stopper.stop();
                let _ = run.join();
            }
        }
    }

    fn get(path: &str) -> String {
        format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n")
    }

    struct Head {
        status: u16,
        headers: Vec<(String, String)>,
    }

    impl Head {
        fn header(&self, name: &str) -> Option<&str> {
            crate::http::header(&self.headers, name)
        }
    }

    /// A raw HTTP/1.1 client: requests are written as given, responses read
    /// the simple way a test can check.
    struct Client {
        reader: BufReader<TcpStream>,
    }

    impl Client {
        fn connect(addr: SocketAddr) -> Client {
            let stream = TcpStream::connect(addr).unwrap();
            stream.set_read_timeout(Some(PATIENCE)).unwrap();
            Client {
                reader: BufReader::new(stream),
            }
        }

        fn send(&mut self, raw: &str) {
            self.reader.get_mut().write_all(raw.as_bytes()).unwrap();
        }

        fn line(&mut self) -> String {
            let mut line = String::new();
            self.reader.read_line(&mut line).unwrap();
            line.trim_end_matches(['\r', '\n']).to_owned()
        }

        fn head(&mut self) -> Head {
            let status_line = self.line();
            let status = status_line
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("not a status line: {status_line:?}"));
            let mut headers = Vec::new();
            loop {
                let line = self.line();
                if line.is_empty() {
                    return Head { status, headers };
                }
                let (name, value) = line.split_once(':').expect("a header line");
                headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
            }
        }

        /// One chunk of a chunked body; empty for the last.
        fn chunk(&mut self) -> Vec<u8> {
            let size = usize::from_str_radix(&self.line(), 16).expect("a chunk size");
            let mut data = vec![0; size + 2];
            self.reader.read_exact(&mut data).unwrap();
            data.truncate(size);
            data
        }

        /// A whole response to anything but HEAD.
        fn response(&mut self) -> (Head, Vec<u8>) {
            let head = self.head();
            let mut body = Vec::new();
            if let Some(length) = head.header("content-length") {
                body.resize(length.parse().unwrap(), 0);
                self.reader.read_exact(&mut body).unwrap();
            } else if head.header("transfer-encoding") == Some("chunked") {
                loop {
                    let chunk = self.chunk();
                    if chunk.is_empty() {
                        break;
                    }
                    body.extend_from_slice(&chunk);
                }
            } else {
                self.reader.read_to_end(&mut body).unwrap();
            }
            (head, body)
        }

        /// Whether the server has closed the connection (a reset counts).
        fn closed(&mut self) -> bool {
            let mut rest = Vec::new();
            match self.reader.read_to_end(&mut rest) {
                Ok(_) => rest.is_empty(),
                Err(e) => e.kind() == io::ErrorKind::ConnectionReset,
            }
        }
    }

    #[test]
    fn streamed_pieces_arrive_one_by_one() {
        let server = TestServer::start(limits(), 2);
        let mut client = server.connect();
        client.send(&get("/gated"));
        let head = client.head();
        assert_eq!(head.status, 200);
        assert_eq!(head.header("transfer-encoding"), Some("chunked"));
        for i in 0..3 {
            // The handler makes piece i+1 only after the next gate: piece i
            // arrives while it waits, alone.
            server.open_gate();
            assert_eq!(client.chunk(), format!("piece {i}\n").as_bytes());
        }
        assert_eq!(client.chunk(), b"");
        assert_eq!(server.report(), Report::Sent(3));
    }

    #[test]
    fn bodies_over_the_limit_are_413_before_they_are_sent() {
        let server = TestServer::start(limits(), 2);
        let refused = [
            // Declared too long: refused on the head alone.
            "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10000000\r\n\r\n".to_owned(),
            // The same with Expect: no 100 Continue comes first.
            "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10000000\r\nExpect: 100-continue\r\n\r\n"
                .to_owned(),
            // Chunked: refused once the body read passes the limit.
            format!(
                "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n{}",
                format!("200\r\n{}\r\n", "x".repeat(512)).repeat(3)
            ),
        ];
        for request in &refused {
            let mut client = server.connect();
            client.send(request);
            let (head, body) = client.response();
            assert_eq!(head.status, 413, "{request:.60}");
            assert!(String::from_utf8_lossy(&body).contains("\"code\":\"request_too_large\""));
            assert_eq!(head.header("connection"), Some("close"));
            assert!(client.closed());
        }
        // Within the limit, with Expect: 100 Continue, then the answer.
        let mut client = server.connect();
        client.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1024\r\nExpect: 100-continue\r\n\r\n");
        assert_eq!(client.head().status, 100);
        client.send(&"x".repeat(1024));
        assert_eq!(client.response().1, b"POST /echo 1024");
    }

    #[test]
    fn a_client_that_sends_a_refused_body_anyway_reads_the_413() {
        let server = TestServer::start(limits(), 2);
        let mut client = server.connect();
        let body = "x".repeat(8 << 20);
        // As a client that does not wait for 100 Continue: head and body at
        // once. Closing on the unread body would reset the connection
        // and destroy the answer; the server drains it first.
        let request = format!(
            "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let sent = client.reader.get_mut().write_all(request.as_bytes());
        assert!(sent.is_ok(), "{sent:?}");
        assert_eq!(client.response().0.status, 413);
    }

    #[test]
    fn heads_over_the_limit_are_431() {
        let server = TestServer::start(limits(), 2);
        let long = format!(
            "GET /echo HTTP/1.1\r\nHost: t\r\nx-long: {}\r\n\r\n",
            "a".repeat(2000)
        );
        let many = format!(
            "GET /echo HTTP/1.1\r\nHost: t\r\n{}\r\n",
            "h: 1\r\n".repeat(130)
        );
        for request in [long, many] {
            let mut client = server.connect();
            client.send(&request);
            let (head, body) = client.response();
            assert_eq!(head.status, 431);
            assert!(String::from_utf8_lossy(&body).contains("headers_too_large"));
            assert!(client.closed());
        }
        assert!(server.still_serves());
        assert!(server
            .log()
            .iter()
            .any(|l| l.starts_with("refused 127.0.0.1:") && l.contains(": 431 ")));
    }

    #[test]
    fn a_slow_head_is_cut_off() {
        let server = TestServer::start(
            Limits {
                io_timeout_secs: 1,
                ..limits()
            },
            2,
        );
        let mut client = server.connect();
        client.send("GET /echo HTTP/1.1\r\nHost: t\r\n");
        // One header byte at a time, never the end of the head.
        let mut writer = client.reader.get_ref().try_clone().unwrap();
        let done = Arc::new(AtomicBool::new(false));
        let dripping = done.clone();
        let drip = thread::spawn(move || {
            while !dripping.load(SeqCst) && writer.write_all(b"x").is_ok() {
                thread::sleep(Duration::from_millis(50));
            }
        });
        let (head, _) = client.response();
        done.store(true, SeqCst);
        drip.join().unwrap();
        assert_eq!(head.status, 408);
        assert!(server.still_serves());
    }

    #[test]
    fn connections_over_the_cap_get_503() {
        let server = TestServer::start(
            Limits {
                max_connections: 2,
                ..limits()
            },
            2,
        );
        // Accepted in order: the first two fill the cap.
        let mut first = server.connect();
        let mut second = server.connect();
        let mut third = server.connect();
        let (head, body) = third.response();
        assert_eq!(head.status, 503);
        assert_eq!(head.header("retry-after"), Some("1"));
        assert!(String::from_utf8_lossy(&body).contains("too_many_connections"));
        for client in [&mut first, &mut second] {
            client.send(&get("/echo"));
            assert_eq!(client.response().0.status, 200);
        }
        assert!(server
            .log()
            .iter()
            .any(|l| l.contains("2 connections open (503)")));
    }

    #[test]
    fn keep_alive_serves_requests_in_turn_on_one_connection() {
        let server = TestServer::start(limits(), 2);
        let mut client = server.connect();
        client.send(&get("/echo?token=secret-in-query"));
        assert_eq!(client.response().1, b"GET /echo 0");
        // A HEAD answer has no body: the next answer must parse.
        client.send("HEAD /echo HTTP/1.1\r\nHost: t\r\n\r\n");
        let head = client.head();
        assert_eq!(
            (head.status, head.header("content-length")),
            (200, Some("12"))
        );
        client.send(
            "POST /echo HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer secret-token\r\n\
             X-Clawft-Session: work\r\nContent-Length: 5\r\n\r\nhello",
        );
        assert_eq!(client.response().1, b"POST /echo 5");
        // Pipelined: both in one write, answered in order.
        client.send(&(get("/pieces") + &get("/echo")));
        assert_eq!(client.response().1, b"abc");
        assert_eq!(client.response().1, b"GET /echo 0");

        // Access lines are written after the answer: stop to see them all.
        let log = server.lines.clone();
        server.stop().unwrap();
        let log = log.lock().unwrap();
        let requests: Vec<&String> = log.iter().filter(|l| l.contains(" tools=")).collect();
        assert_eq!(requests.len(), 5, "{log:?}");
        assert!(
            requests[0].starts_with("GET /echo 200 ")
                && requests[0].ends_with("ms session=- tools=0")
        );
        assert!(
            requests[2].starts_with("POST /echo 200 ")
                && requests[2].ends_with(" session=work tools=0")
        );
        assert!(!log.iter().any(|l| l.contains("secret")), "{log:?}");
    }

    #[test]
    fn ambiguous_framing_is_refused_and_the_connection_closed() {
        let server = TestServer::start(limits(), 2);
        let cases = [
            (
                "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
                "HTTP/1.1",
                400,
            ),
            ("Transfer-Encoding: gzip, chunked\r\n", "HTTP/1.1", 501),
            (
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
                "HTTP/1.1",
                501,
            ),
            ("Transfer-Encoding: chunked\r\n", "HTTP/1.0", 400),
            ("", "HTTP/1.1", 411),
            ("Content-Length: +5\r\n", "HTTP/1.1", 400),
            (
                "Content-Length: 5\r\nContent-Length: 6\r\n",
                "HTTP/1.1",
                400,
            ),
        ];
        for (headers, version, status) in cases {
            let mut client = server.connect();
            client.send(&format!(
                "POST /echo {version}\r\nHost: t\r\n{headers}\r\n0\r\n\r\n"
            ));
            assert_eq!(client.response().0.status, status, "{headers}");
            assert!(client.closed(), "{headers}");
        }
        for hosts in ["", "Host: a\r\nHost: b\r\n"] {
            let mut client = server.connect();
            client.send(&format!("GET /echo HTTP/1.1\r\n{hosts}\r\n"));
            assert_eq!(client.response().0.status, 400, "{hosts}");
            assert!(client.closed());
        }
        assert!(server.still_serves());
    }

    #[test]
    fn stopping_lets_the_request_in_flight_finish_and_run_return() {
        let server = TestServer::start(limits(), 2);
        let mut streaming = server.connect();
        streaming.send(&get("/gated"));
        assert_eq!(streaming.head().status, 200);
        server.open_gate();
        assert_eq!(streaming.chunk(), b"piece 0\n");
        let mut idle = server.connect();
        idle.send(&get("/echo"));
        assert_eq!(idle.response().0.status, 200);

        server.stopper.stop();
        // Idle connections close; the stream in flight goes on to its end.
        assert!(idle.closed());
        server.open_gate();
        server.open_gate();
        assert_eq!(streaming.chunk(), b"piece 1\n");
        assert_eq!(streaming.chunk(), b"piece 2\n");
        assert_eq!(streaming.chunk(), b"");
        assert!(streaming.closed());

        let addr = server.addr;
        let log = server.lines.clone();
        server.stop().unwrap();
        assert!(TcpStream::connect(addr).is_err(), "still listening");
        let log = log.lock().unwrap();
        assert!(
            log.iter().any(|l| l.starts_with("stopped accepting")),
            "{log:?}"
        );
        assert!(
            log.iter().any(|l| l.starts_with("GET /gated 200 ")),
            "{log:?}"
        );
    }

    #[test]
    fn after_the_grace_period_a_stream_is_cut_and_run_returns() {
        let server = TestServer::start(
            Limits {
                grace_secs: 1,
                ..limits()
            },
            2,
        );
        let mut client = server.connect();
        client.send(&get("/drip"));
        assert_eq!(client.head().status, 200);
        assert_eq!(client.chunk(), b"data: drip\n\n");
        server.stopper.stop();
        let kind = match server.report() {
            Report::Failed { kind, .. } => kind,
            other => panic!("the stream was not cut: {other:?}"),
        };
        assert_eq!(kind, io::ErrorKind::ConnectionAborted);
        let log = server.lines.clone();
        server.stop().unwrap();
        assert!(log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l == "grace period over; cutting the open connections: 1"));
    }

    #[test]
    fn a_client_gone_mid_stream_fails_the_sends_after() {
        let server = TestServer::start(limits(), 2);
        let mut client = server.connect();
        client.send(&get("/drip"));
        assert_eq!(client.head().status, 200);
        assert_eq!(client.chunk(), b"data: drip\n\n");
        drop(client);
        match server.report() {
            Report::Failed { after, .. } => assert!(after < 4000),
            other => panic!("every send succeeded: {other:?}"),
        }
        assert!(server.still_serves());
    }

    #[test]
    fn a_client_that_never_reads_is_dropped() {
        let server = TestServer::start(
            Limits {
                io_timeout_secs: 1,
                ..limits()
            },
            2,
        );
        let mut client = server.connect();
        client.send(&get("/flood"));
        match server.report() {
            Report::Failed { kind, .. } => assert_eq!(kind, io::ErrorKind::TimedOut),
            other => panic!("the flood went out: {other:?}"),
        }
        assert!(server.still_serves());
    }

    #[test]
    fn an_http10_client_gets_a_stream_whole() {
        let server = TestServer::start(limits(), 2);
        let mut client = server.connect();
        client.send("GET /pieces HTTP/1.0\r\n\r\n");
        let (head, body) = client.response();
        assert_eq!(head.status, 200);
        assert_eq!(head.header("content-length"), Some("3"));
        assert_eq!(head.header("transfer-encoding"), None);
        assert_eq!(head.header("connection"), Some("close"));
        assert_eq!(body, b"abc");
        assert!(client.closed());
    }

    #[test]
    fn a_handler_that_answers_nothing_gives_500() {
        let server = TestServer::start(limits(), 2);
        let mut client = server.connect();
        client.send(&get("/silent"));
        let (head, body) = client.response();
        assert_eq!(head.status, 500);
        assert!(String::from_utf8_lossy(&body).contains("\"type\":\"server_error\""));
        let log = server.lines.clone();
        server.stop().unwrap();
        assert!(log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.starts_with("GET /silent 500 ")));
    }

    #[test]
    fn garbage_never_stops_the_server() {
        let server = TestServer::start(limits(), 2);
        let chunked = "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n";
        let inputs = [
            "\0\x01\x02\x7f\u{ff}garbage\r\n\r\n".to_owned(),
            "GET / HTTP/9.9\r\n\r\n".to_owned(),
            "GET\r\n\r\n".to_owned(),
            "\r\n\r\n\r\n\r\n".to_owned(),
            "GET / HTTP/1.1\r\nHost: t\r\nno colon here\r\n\r\n".to_owned(),
            "GET / HTTP/1.1\r\nHost: t\r\nx: \u{1}\r\n\r\n".to_owned(),
            "GET http://t/echo?q=1 HTTP/1.1\r\nHost: t\r\n\r\n".to_owned(),
            "OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n".to_owned(),
            "CONNECT t:443 HTTP/1.1\r\nHost: t\r\n\r\n".to_owned(),
            "HEAD /pieces HTTP/1.0\r\n\r\n".to_owned(),
            "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999999999999999999\r\n\r\n"
                .to_owned(),
            format!("{chunked}zz\r\n"),
            format!("{chunked}fffffffffffffffffffffff\r\n"),
            format!("{chunked}5\r\nhello\r\n0\r\nx-trailer: 1\r\n\r\n"),
            format!("{chunked}{}", "1".repeat(20_000)),
            format!("{chunked}5;ext=1\r\nhelloXX0\r\n\r\n"),
        ];
        for input in &inputs {
            let mut client = server.connect();
            client.send(input);
            // Whatever the answer, the server ends it: no hang, no crash.
            let _ = client.reader.get_ref().shutdown(Shutdown::Write);
            let mut rest = Vec::new();
            let read = client.reader.read_to_end(&mut rest);
            assert!(
                read.is_ok()
                    || read
                        .as_ref()
                        .is_err_and(|e| e.kind() == io::ErrorKind::ConnectionReset),
                "{input:?}: {read:?}"
            );
        }
        assert!(server.still_serves());
    }

    #[test]
    fn binding_a_taken_address_names_it() {
        let server = TestServer::start(limits(), 1);
        let options = Options {
            listen: server.addr,
            limits: limits(),
            workers: 1,
        };
        match Server::bind(&options) {
            Err(Error::Io { path, source }) => {
                assert_eq!(path, server.addr.to_string());
                assert_eq!(source.kind(), io::ErrorKind::AddrInUse);
            }
            other => panic!("bound twice: {other:?}"),
        }
    }
}
