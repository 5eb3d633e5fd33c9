//! The worker's event loop: accepts connections, reads and parses requests without blocking,
//! answers cheap ones (health, every error) itself, parks idle keep-alive connections, and puts
//! heavy requests on the shared queue. It never runs heavy work, so health probes and errors are
//! answered at once however busy the handler threads are, and an idle connection costs no thread.

use super::connection::{answer_inline, Conn, Phase};
use super::handler;
use super::hub::{Handback, Hub};
use super::queue::{Job, SendError};
use super::socket::{
    has_pending_input, peer_name, read_nonblocking, set_nodelay, write_nonblocking, ReadOutcome,
};
use super::WorkerContext;
use crate::app::{App, Response, Route};
use crate::http::{
    encode_response, parse_head_with, response::CONTINUE, BodyFraming, BodyReader, HttpError,
    RequestHead, ResponseMeta, Version,
};
use crate::log;
use crate::shared::{monotonic_ms, monotonic_ns};
use crate::signals::SignalPipe;
use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
use nix::sys::socket::{accept4, SockFlag};
use serde_json::json;
use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A request head must arrive within this long of its first byte (slowloris).
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// A request body must arrive within this long of the head.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// While the worker stops, how long a just-accepted connection gets to send its request.
const STOP_GRACE_FOR_NEW: Duration = Duration::from_secs(1);
/// How long a connection may take to read an answer the loop is writing.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Most bytes one read takes; also the bound on pipelined bytes carried with a job.
const READ_CHUNK: usize = 16 * 1024;
/// A busy handler thread counts as making progress this long past its request's `--timeout`
/// (by then the request has been answered 503 unless the thread is truly stuck).
const STUCK_GRACE: Duration = Duration::from_secs(2);
/// After running out of descriptors, pause accepting for this long.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

const SIGNAL_TOKEN: u64 = u64::MAX;
const WAKE_TOKEN: u64 = u64::MAX - 1;
const FIRST_CONN_TOKEN: u64 = 1 << 32;

/// What to do with a connection after working on it.
enum Next {
    Keep,
    /// Moved to the shared or local queue; forget it here.
    Gone,
}

pub struct EventLoop {
    hub: Arc<Hub>,
    epoll: Epoll,
    signals: SignalPipe,
    listeners: Vec<RawFd>,
    listening: bool,
    accept_paused_until: Option<Instant>,
    conns: HashMap<u64, Conn>,
    next_token: u64,
    threads: Vec<JoinHandle<()>>,
    requests: u64,
    max_requests: u64,
    stop_started: Option<Instant>,
    parent: nix::unistd::Pid,
    next_sweep: Instant,
    /// Whether an access log is written (fixed for a worker's life): request headers are kept
    /// only then.
    access_log: bool,
}

impl EventLoop {
    pub fn new(
        ctx: WorkerContext,
        app: Arc<App>,
        signals: SignalPipe,
    ) -> std::io::Result<EventLoop> {
        let hub = Arc::new(Hub::new(
            app,
            ctx.config.clone(),
            ctx.queue,
            ctx.state,
            ctx.slot,
        )?);
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        epoll.add(
            signals.fd(),
            EpollEvent::new(EpollFlags::EPOLLIN, SIGNAL_TOKEN),
        )?;
        epoll.add(
            hub.wake.as_fd(),
            EpollEvent::new(EpollFlags::EPOLLIN, WAKE_TOKEN),
        )?;
        let mut threads = Vec::with_capacity(ctx.config.threads);
        for index in 0..ctx.config.threads {
            threads.push(handler::spawn(hub.clone(), index)?);
        }
        let mut lp = EventLoop {
            hub,
            epoll,
            signals,
            listeners: ctx.listeners,
            listening: false,
            accept_paused_until: None,
            conns: HashMap::new(),
            next_token: FIRST_CONN_TOKEN,
            threads,
            requests: 0,
            max_requests: ctx.max_requests,
            stop_started: None,
            parent: nix::unistd::Pid::from_raw(ctx.master_pid),
            next_sweep: Instant::now(),
            access_log: log::access_enabled(),
        };
        lp.set_listening(true);
        lp.hub.slot.booted.store(true, Ordering::Release);
        lp.hub.slot.start_serving(&lp.hub.state);
        Ok(lp)
    }

    /// Runs until the worker has stopped and every connection is finished.
    pub fn run(&mut self) {
        let mut events = vec![EpollEvent::empty(); 256];
        loop {
            self.heartbeat();
            let timeout = self.wait_timeout();
            let n = match self.epoll.wait(&mut events, timeout) {
                Ok(n) => n,
                Err(Errno::EINTR) => 0,
                Err(err) => {
                    log::error(&format!("epoll_wait failed: {err}"));
                    0
                }
            };
            for event in &events[..n] {
                match event.data() {
                    SIGNAL_TOKEN => self.on_signals(),
                    WAKE_TOKEN => self.on_handbacks(),
                    token if token < FIRST_CONN_TOKEN => self.on_listener(token as usize),
                    token => self.on_conn_event(token, event.events()),
                }
            }
            let now = Instant::now();
            if now >= self.next_sweep {
                self.next_sweep = now + Duration::from_millis(250);
                self.sweep(now);
            }
            if self.stop_started.is_some() && self.is_drained() {
                break;
            }
        }
        self.hub.loop_done.store(true, Ordering::Release);
        self.hub.notify_all_local();
        // Keep the heartbeat going while the last requests finish, so the master only kills
        // this worker at the graceful timeout, never for looking wedged.
        while self.threads.iter().any(|t| !t.is_finished()) {
            self.heartbeat();
            std::thread::sleep(Duration::from_millis(50));
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }

    fn wait_timeout(&self) -> u16 {
        if self.stop_started.is_some() {
            50
        } else {
            250
        }
    }

    fn is_drained(&self) -> bool {
        self.conns.is_empty() && self.hub.local_is_empty()
    }

    /// Publishes progress for the master's timeout check. A handler thread stuck in one request
    /// well past its `--timeout` holds the heartbeat back, so a wedged worker is replaced.
    fn heartbeat(&self) {
        let now = monotonic_ms();
        let mut beat = now;
        if let Some(timeout) = self.hub.config.timeout {
            let allowed = (timeout + STUCK_GRACE).as_millis() as u64;
            for busy in &self.hub.busy_since_ms {
                let since = busy.load(Ordering::Acquire);
                if since != 0 && now.saturating_sub(since) > allowed {
                    // Report the last moment the thread was still within its allowance.
                    beat = beat.min(since + allowed - timeout.as_millis() as u64);
                }
            }
        }
        self.hub.slot.beat(beat);
    }

    fn on_signals(&mut self) {
        while let Some(signal) = self.signals.pop() {
            match signal {
                libc::SIGTERM => self.begin_stop(None),
                libc::SIGINT | libc::SIGQUIT => {
                    log::info(&format!("Worker exiting (pid: {})", std::process::id()));
                    std::process::exit(0);
                }
                libc::SIGUSR1 => {
                    if let Err(err) = log::reopen() {
                        log::error(&format!("cannot reopen log files: {err}"));
                    }
                }
                _ => {}
            }
        }
    }

    /// Graceful stop: no new connections, no new keep-alive, finish what was accepted.
    fn begin_stop(&mut self, reason: Option<&str>) {
        if self.stop_started.is_some() {
            return;
        }
        if let Some(reason) = reason {
            log::info(reason);
        }
        self.stop_started = Some(Instant::now());
        self.hub.stopping.store(true, Ordering::Release);
        self.hub.slot.stop_serving(&self.hub.state);
        self.set_listening(false);
        for &fd in &self.listeners {
            // SAFETY: the listeners are this process's inherited copies; nothing else uses them.
            unsafe { libc::close(fd) };
        }
        self.listeners.clear();
        let now = Instant::now();
        let tokens: Vec<u64> = self.conns.keys().copied().collect();
        for token in tokens {
            let conn = self.conns.get_mut(&token).expect("live connection");
            if !conn.is_idle() {
                continue;
            }
            if conn.served > 0 && !has_pending_input(conn.fd.as_fd()) {
                // An idle keep-alive connection: clients retry a request on a reused connection
                // that closes, so close it now.
                self.close(token);
            } else {
                conn.deadline = conn.deadline.min(now + STOP_GRACE_FOR_NEW);
            }
        }
        self.hub.notify_all_local();
    }

    fn set_listening(&mut self, on: bool) {
        if on == self.listening {
            return;
        }
        for (index, &fd) in self.listeners.iter().enumerate() {
            // SAFETY: the listener descriptors stay open while the loop runs.
            let fd = unsafe { BorrowedFd::borrow_raw(fd) };
            let result = if on {
                let flags = EpollFlags::EPOLLIN | EpollFlags::EPOLLEXCLUSIVE;
                self.epoll.add(fd, EpollEvent::new(flags, index as u64))
            } else {
                self.epoll.delete(fd)
            };
            if let Err(err) = result {
                log::error(&format!(
                    "cannot {} listener: {err}",
                    if on { "watch" } else { "unwatch" }
                ));
            }
        }
        self.listening = on;
    }

    fn on_listener(&mut self, index: usize) {
        let Some(&fd) = self.listeners.get(index) else {
            return;
        };
        // SAFETY: the listener descriptors stay open while the loop runs.
        let listener = unsafe { BorrowedFd::borrow_raw(fd) };
        let limit = self.hub.config.worker_connections;
        for _ in 0..64 {
            if self.conns.len() >= limit {
                // At the bound: leave further connections in the kernel's backlog (for other
                // workers, or for later).
                self.set_listening(false);
                return;
            }
            match accept4(listener, SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC) {
                Ok(fd) => self.add_conn(fd, Vec::new(), None, 0),
                Err(Errno::EAGAIN) | Err(Errno::ECONNABORTED) | Err(Errno::EINTR) => return,
                Err(Errno::EMFILE) | Err(Errno::ENFILE) | Err(Errno::ENOBUFS)
                | Err(Errno::ENOMEM) => {
                    log::warning("out of file descriptors; pausing accept");
                    self.set_listening(false);
                    self.accept_paused_until = Some(Instant::now() + ACCEPT_BACKOFF);
                    return;
                }
                Err(err) => {
                    log::error(&format!("accept failed: {err}"));
                    return;
                }
            }
        }
    }

    fn add_conn(&mut self, fd: OwnedFd, leftover: Vec<u8>, peer: Option<String>, served: u64) {
        set_nodelay(fd.as_fd());
        let now = Instant::now();
        let peer = peer.unwrap_or_else(|| peer_name(fd.as_fd()));
        let mut conn = Conn::new(fd, peer, now);
        conn.served = served;
        if served > 0 {
            conn.deadline = now + self.hub.config.keep_alive.unwrap_or_default();
        }
        let token = self.next_token;
        self.next_token += 1;
        if let Err(err) = self
            .epoll
            .add(conn.fd.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, token))
        {
            log::error(&format!("cannot watch a connection: {err}"));
            return;
        }
        let has_leftover = !leftover.is_empty();
        conn.buf = leftover;
        if has_leftover {
            conn.request_start_ns = monotonic_ns();
            conn.deadline = now + HEAD_TIMEOUT;
        }
        self.conns.insert(token, conn);
        if has_leftover {
            self.advance(token);
        }
    }

    fn on_handbacks(&mut self) {
        for Handback { fd, leftover, peer } in self.hub.take_handbacks() {
            if self.stop_started.is_some() && leftover.is_empty() && !has_pending_input(fd.as_fd())
            {
                continue; // stopping: close it (drop)
            }
            self.add_conn(fd, leftover, Some(peer), 1);
        }
    }

    fn on_conn_event(&mut self, token: u64, events: EpollFlags) {
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        if events.contains(EpollFlags::EPOLLOUT) {
            match write_nonblocking(conn.fd.as_fd(), &conn.out) {
                Ok(n) => {
                    conn.out.drain(..n);
                }
                Err(_) => return self.close(token),
            }
        }
        if events.intersects(EpollFlags::EPOLLIN | EpollFlags::EPOLLHUP | EpollFlags::EPOLLERR)
            && conn.out.is_empty()
        {
            let mut chunk = [0u8; READ_CHUNK];
            match read_nonblocking(conn.fd.as_fd(), &mut chunk) {
                ReadOutcome::Data(n) => {
                    if conn.buf.is_empty() && matches!(conn.phase, Phase::Head) {
                        conn.request_start_ns = monotonic_ns();
                        conn.deadline = Instant::now() + HEAD_TIMEOUT;
                    }
                    conn.buf.extend_from_slice(&chunk[..n]);
                }
                ReadOutcome::WouldBlock => {}
                ReadOutcome::Closed => return self.close(token),
            }
        }
        self.advance(token);
    }

    /// Parses and answers whatever complete requests the connection's buffer holds, in order.
    fn advance(&mut self, token: u64) {
        loop {
            let Some(conn) = self.conns.get_mut(&token) else {
                return;
            };
            if !conn.out.is_empty() {
                // Earlier answers go out first (pipelining keeps order); if the client is not
                // reading, wait for it before parsing more.
                match write_nonblocking(conn.fd.as_fd(), &conn.out) {
                    Ok(n) => drop(conn.out.drain(..n)),
                    Err(_) => return self.close(token),
                }
                if !conn.out.is_empty() {
                    break;
                }
            }
            if conn.close_after_out {
                return self.close(token);
            }
            let next = match &mut conn.phase {
                Phase::Head => {
                    let limits = &self.hub.config.http_limits;
                    if conn.buf.is_empty() || !conn.head_may_be_ready(limits) {
                        break;
                    }
                    match parse_head_with(&conn.buf, limits, self.access_log) {
                        Ok(None) => {
                            conn.note_incomplete_head();
                            break;
                        }
                        Ok(Some(head)) => {
                            conn.buf.drain(..head.head_len);
                            conn.parsed_len = 0;
                            if head.body == BodyFraming::None {
                                // The common case: nothing to read after the head.
                                self.dispatch(token, head)
                            } else {
                                if head.expect_continue {
                                    conn.out.extend_from_slice(CONTINUE);
                                }
                                let body =
                                    BodyReader::new(head.body, self.hub.config.http_limits.body);
                                conn.phase = Phase::Body {
                                    head: Box::new(head),
                                    body,
                                };
                                conn.deadline = Instant::now() + BODY_TIMEOUT;
                                Next::Keep
                            }
                        }
                        Err(err) => self.reject(token, &err),
                    }
                }
                Phase::Body { body, .. } => match body.consume(&conn.buf) {
                    Ok(used) => {
                        conn.buf.drain(..used);
                        if !body.is_done() {
                            break;
                        }
                        let Phase::Body { head, .. } =
                            std::mem::replace(&mut conn.phase, Phase::Head)
                        else {
                            unreachable!()
                        };
                        self.dispatch(token, *head)
                    }
                    Err(err) => self.reject(token, &err),
                },
            };
            match next {
                Next::Keep => continue,
                Next::Gone => return,
            }
        }
        self.flush_and_rearm(token);
    }

    /// Answers a request that broke the protocol, then closes.
    fn reject(&mut self, token: u64, err: &HttpError) -> Next {
        let conn = self.conns.get_mut(&token).expect("live connection");
        log::warning(&format!(
            "Invalid request from ip={}: {}",
            conn.peer, err.message
        ));
        let meta = ResponseMeta {
            version: Version::Http11,
            keep_alive: false,
            head_only: false,
        };
        conn.out
            .extend_from_slice(&encode_response(&err.to_response(), meta));
        conn.close_after_out = true;
        conn.buf.clear();
        Next::Keep
    }

    /// A complete request: answer it here, or queue it for a handler thread.
    fn dispatch(&mut self, token: u64, head: RequestHead) -> Next {
        self.requests += 1;
        self.hub.slot.requests.fetch_add(1, Ordering::Relaxed);
        let stopping = self.stop_started.is_some();
        let conn = self.conns.get_mut(&token).expect("live connection");
        let route = self.hub.app.route(&head.method, &head.path, &head.query);
        let next = match route {
            Route::Ready(response) => {
                let keep = head.keep_alive && self.hub.config.keep_alive.is_some() && !stopping;
                answer_inline(conn, &head, &response, keep);
                Next::Keep
            }
            Route::Heavy(params) => {
                let mut job = Job {
                    method: head.method.clone(),
                    target: head.target.clone(),
                    path: head.path.clone(),
                    query: head.query.clone(),
                    http10: head.version == Version::Http10,
                    keep_alive: head.keep_alive,
                    prime_limit: params.prime_limit,
                    hash_rounds: params.hash_rounds,
                    io_kb: params.io_kb,
                    panic: params.panic,
                    received_ns: conn.request_start_ns,
                    peer: conn.peer.clone(),
                    log_headers: head.headers.clone(),
                    leftover: std::mem::take(&mut conn.buf),
                };
                if stopping {
                    let conn = self.remove(token).expect("live connection");
                    self.hub.push_local(job, conn.fd);
                    Next::Gone
                } else {
                    let mut sent = self.hub.queue.try_send(&job, conn.fd.as_raw_fd());
                    if matches!(sent, Err(SendError::TooLarge)) {
                        // Huge (but legal) headers kept for the access log: keep what the
                        // default format shows, shortened, rather than refuse the request.
                        job.log_headers.retain(|(n, _)| {
                            ["referer", "user-agent", "authorization"]
                                .iter()
                                .any(|k| n.eq_ignore_ascii_case(k))
                        });
                        for (_, value) in &mut job.log_headers {
                            let mut cut = value.len().min(1024);
                            while !value.is_char_boundary(cut) {
                                cut -= 1;
                            }
                            value.truncate(cut);
                        }
                        sent = self.hub.queue.try_send(&job, conn.fd.as_raw_fd());
                    }
                    match sent {
                        Ok(()) => {
                            self.remove(token);
                            Next::Gone
                        }
                        Err(err) => {
                            conn.buf = job.leftover;
                            let response = match err {
                                SendError::Full => Response::error(
                                    503,
                                    "server busy: the request queue is full",
                                    json!({ "retry_after_sec": 1 }),
                                )
                                .with_header("Retry-After", "1"),
                                SendError::TooLarge => HttpError::header_too_large(
                                    "request headers too large to queue",
                                )
                                .to_response(),
                                SendError::Other(e) => {
                                    log::error(&format!("cannot queue a request: {e}"));
                                    Response::error(500, "internal server error", json!({}))
                                }
                            };
                            answer_inline(conn, &head, &response, false);
                            Next::Keep
                        }
                    }
                }
            }
        };
        if self.max_requests > 0 && self.requests >= self.max_requests && !stopping {
            self.begin_stop(Some("Autorestarting worker after current request."));
        }
        next
    }

    /// Writes what can be written now and sets the connection's interest and deadline.
    fn flush_and_rearm(&mut self, token: u64) {
        let keep_alive = self.hub.config.keep_alive.unwrap_or_default();
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        if !conn.out.is_empty() {
            match write_nonblocking(conn.fd.as_fd(), &conn.out) {
                Ok(n) => {
                    conn.out.drain(..n);
                }
                Err(_) => return self.close(token),
            }
        }
        if conn.out.is_empty() && conn.close_after_out {
            return self.close(token);
        }
        let wants_write = !conn.out.is_empty();
        if wants_write {
            conn.deadline = Instant::now() + WRITE_TIMEOUT;
        } else if conn.is_idle() && conn.served > 0 {
            conn.deadline = Instant::now() + keep_alive;
        }
        if wants_write != conn.wants_write {
            conn.wants_write = wants_write;
            let flags = if wants_write {
                EpollFlags::EPOLLOUT
            } else {
                EpollFlags::EPOLLIN
            };
            if self
                .epoll
                .modify(conn.fd.as_fd(), &mut EpollEvent::new(flags, token))
                .is_err()
            {
                self.close(token);
            }
        }
    }

    /// Periodic housekeeping: timeouts, the accept pause, the parent check.
    fn sweep(&mut self, now: Instant) {
        let expired: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, c)| now >= c.deadline)
            .map(|(&t, _)| t)
            .collect();
        for token in expired {
            let conn = &mut self.conns.get_mut(&token).expect("live connection");
            let mid_request = !conn.buf.is_empty() || matches!(conn.phase, Phase::Body { .. });
            if mid_request && conn.out.is_empty() {
                // Best effort: tell a slow client why, then close.
                let resp = HttpError::new(408, "request timed out").to_response();
                let meta = ResponseMeta {
                    version: Version::Http11,
                    keep_alive: false,
                    head_only: false,
                };
                let _ = write_nonblocking(conn.fd.as_fd(), &encode_response(&resp, meta));
            }
            self.close(token);
        }
        if let Some(until) = self.accept_paused_until {
            if now >= until && self.stop_started.is_none() {
                self.accept_paused_until = None;
                self.set_listening(true);
            }
        }
        if !self.listening
            && self.accept_paused_until.is_none()
            && self.stop_started.is_none()
            && self.conns.len() < self.hub.config.worker_connections
        {
            self.set_listening(true);
        }
        if nix::unistd::getppid() != self.parent && self.stop_started.is_none() {
            let reason = format!(
                "Parent changed, shutting down: <Worker {}>",
                std::process::id()
            );
            self.begin_stop(Some(&reason));
        }
    }

    fn remove(&mut self, token: u64) -> Option<Conn> {
        let conn = self.conns.remove(&token)?;
        let _ = self.epoll.delete(conn.fd.as_fd());
        if !self.listening && self.stop_started.is_none() && self.accept_paused_until.is_none() {
            self.set_listening(true);
        }
        Some(conn)
    }

    fn close(&mut self, token: u64) {
        drop(self.remove(token));
    }
}
