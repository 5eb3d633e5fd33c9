//! The worker's event loop: the one thread that does socket I/O. It accepts connections
//! (`accept`), reads, parses and writes without blocking (`conn_io`), answers cheap requests
//! itself and hands heavy ones to the handler threads (`dispatch`), and writes the answers the
//! threads hand back. It never runs heavy work and never waits for a client, so health probes
//! are answered at once however busy the threads are, and the heartbeat never stalls.
//!
//! This file holds the loop itself: waiting, the heartbeat, signals, housekeeping, and stopping.

use super::connection::{Conn, State};
use super::handler;
use super::hub::Hub;
use super::queue::Item;
use super::socket::write_nonblocking;
use super::WorkerContext;
use crate::app::App;
use crate::http::{encode_response, HttpError, ResponseMeta, Version};
use crate::log;
use crate::shared::monotonic_ms;
use crate::signals::SignalPipe;
use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
use nix::sys::signal::Signal;
use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Most bytes one read takes.
pub(super) const READ_CHUNK: usize = 16 * 1024;
/// A busy handler thread counts as making progress this long past its request's `--timeout`
/// (by then the request has been answered 503 unless the thread is truly stuck).
const STUCK_GRACE: Duration = Duration::from_secs(2);
/// How often deadlines, the accept pause and the parent are checked, and the heartbeat beats,
/// when nothing else wakes the loop: an idle worker wakes once a second (twice with
/// `--timeout 1`, so the heartbeat stays well inside it). Deadlines are all a second or more.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// While stopping, how often the loop looks whether its threads are done.
const STOP_POLL_MS: u16 = 50;

pub(super) const SIGNAL_TOKEN: u64 = u64::MAX;
pub(super) const WAKE_TOKEN: u64 = u64::MAX - 1;
pub(super) const FIRST_CONN_TOKEN: u64 = 1 << 32;

pub struct EventLoop {
    pub(super) hub: Arc<Hub>,
    pub(super) epoll: Epoll,
    signals: SignalPipe,
    /// The listening sockets, owned by this worker (closed when it stops); their addresses,
    /// and which is the `--metrics-bind` one.
    pub(super) listeners: Vec<OwnedFd>,
    pub(super) listener_urls: Vec<String>,
    pub(super) listener_is_metrics: Vec<bool>,
    pub(super) has_metrics_listener: bool,
    pub(super) platform_labels: Vec<(&'static str, String)>,
    pub(super) listening: bool,
    pub(super) accept_paused_until: Option<Instant>,
    pub(super) conns: HashMap<u64, Conn>,
    pub(super) next_token: u64,
    /// Most connections held at once: what the descriptors allow, or `--worker-connections`.
    pub(super) conn_limit: usize,
    /// How long the loop sleeps when nothing happens (see [`SWEEP_EVERY`]).
    idle_wait_ms: u16,
    /// When the "at the connection limit" warning was last logged.
    pub(super) limit_warned: Option<Instant>,
    threads: Vec<JoinHandle<()>>,
    pub(super) requests: u64,
    pub(super) max_requests: u64,
    pub(super) stop_started: Option<Instant>,
    parent: nix::unistd::Pid,
    next_sweep: Instant,
    /// Whether an access log is written (fixed for a worker's life): request headers are kept
    /// only then.
    pub(super) access_log: bool,
    /// Where reads land before they are appended to a connection's buffer.
    pub(super) scratch: Box<[u8]>,
    /// Receive buffer for draining the shared queue when this is the last worker stopping.
    queue_buf: Vec<u8>,
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
            crate::metrics::worker(ctx.metrics_slot),
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
        let conn_limit = super::accept::connection_limit(&ctx.config, ctx.listeners.len());
        let listener_urls = ctx.listeners.iter().map(|l| l.url.clone()).collect();
        let listener_is_metrics: Vec<bool> = ctx.listeners.iter().map(|l| l.metrics).collect();
        let mut lp = EventLoop {
            hub,
            epoll,
            signals,
            has_metrics_listener: listener_is_metrics.contains(&true),
            listener_urls,
            listener_is_metrics,
            platform_labels: ctx.platform_labels,
            listeners: ctx.listeners.into_iter().map(|l| l.fd).collect(),
            listening: false,
            accept_paused_until: None,
            conns: HashMap::new(),
            next_token: FIRST_CONN_TOKEN,
            conn_limit,
            limit_warned: None,
            idle_wait_ms: ctx
                .config
                .timeout
                .map_or(SWEEP_EVERY, |t| (t / 2).min(SWEEP_EVERY))
                .as_millis()
                .clamp(50, 1000) as u16,
            threads,
            requests: 0,
            max_requests: ctx.max_requests,
            stop_started: None,
            parent: nix::unistd::Pid::from_raw(ctx.master_pid),
            next_sweep: Instant::now(),
            access_log: log::access_enabled(),
            scratch: vec![0u8; READ_CHUNK].into_boxed_slice(),
            queue_buf: Vec::new(),
        };
        lp.set_listening(true);
        // Serving before booted: the master takes "booted but not serving" for a stop.
        lp.hub.slot.start_serving(&lp.hub.state);
        lp.hub.slot.booted.store(true, Ordering::Release);
        crate::metrics::with(|m| {
            m.workers_booted.fetch_add(1, Ordering::Relaxed);
        });
        Ok(lp)
    }

    /// Runs until the worker has stopped and every request it took is answered.
    pub fn run(&mut self) {
        let mut events = vec![EpollEvent::empty(); 256];
        loop {
            self.heartbeat();
            let timeout: u16 = if self.stop_started.is_some() {
                STOP_POLL_MS
            } else {
                self.idle_wait_ms
            };
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
                self.next_sweep = now + Duration::from_millis(u64::from(self.idle_wait_ms));
                self.sweep(now);
            }
            if self.stop_is_done(now) {
                break;
            }
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }

    /// Publishes progress for the master's timeout check. A handler thread stuck in one request
    /// well past its `--timeout` holds the heartbeat back, so a wedged worker is replaced;
    /// nothing a client does can (threads never wait for clients).
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
                Signal::SIGTERM => self.begin_stop(None),
                Signal::SIGINT | Signal::SIGQUIT => {
                    log::info(&format!("Worker exiting (pid: {})", std::process::id()));
                    std::process::exit(0);
                }
                Signal::SIGUSR1 => {
                    if let Err(err) = log::reopen() {
                        log::error(&format!("cannot reopen log files: {err}"));
                    }
                }
                _ => {}
            }
        }
    }

    /// Graceful stop (TERM, `--max-requests`, a lost master): no new connections, no new
    /// keep-alive; connections between requests go to the other workers (see `retire_conn`);
    /// every request already read is answered, with `Connection: close`. All of it within
    /// `--graceful-timeout`.
    pub(super) fn begin_stop(&mut self, reason: Option<&str>) {
        if self.stop_started.is_some() {
            return;
        }
        if let Some(reason) = reason {
            log::info(reason);
        }
        self.stop_started = Some(Instant::now());
        self.hub.begin_stop();
        self.hub.slot.stop_serving(&self.hub.state);
        self.set_listening(false);
        self.listeners.clear();
        let between: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, c)| c.is_between_requests())
            .map(|(&t, _)| t)
            .collect();
        for token in between {
            self.retire_conn(token);
        }
    }

    /// Whether a stop has finished: every connection closed or handed on and every thread done.
    /// Past `--graceful-timeout` the worker exits with whatever is left.
    fn stop_is_done(&mut self, now: Instant) -> bool {
        let Some(started) = self.stop_started else {
            return false;
        };
        if now >= started + self.hub.config.graceful_timeout {
            log::warning(&format!(
                "Worker (pid:{}) did not finish within the graceful timeout; exiting with {} \
                 connection(s) open",
                std::process::id(),
                self.conns.len()
            ));
            std::process::exit(0);
        }
        let state = &self.hub.state;
        if state.shutting_down.load(Ordering::Acquire)
            && state.serving_workers.load(Ordering::Acquire) <= 0
        {
            self.drain_shared_queue();
        }
        self.conns.is_empty() && self.hub.try_finish()
    }

    /// When the server shuts down, the last worker to stop takes what is left on the shared
    /// queue, so nothing queued is lost: requests run on its own threads, connections are
    /// adopted (and closed unless a request is waiting on them).
    fn drain_shared_queue(&mut self) {
        while let Ok(Some((item, fd))) = self.hub.queue.try_recv(&mut self.queue_buf) {
            match item {
                Item::Heavy(job) => self.hub.push_local(*job, fd),
                Item::Adopt { peer, served } => {
                    if let Some(token) = self.add_conn(fd, peer, served, Vec::new()) {
                        self.retire_conn(token);
                    }
                }
            }
        }
    }

    /// This worker's open connections, active and idle, into its metrics gauges.
    pub(super) fn publish_connection_gauges(&self) {
        if let Some(g) = self.hub.gauges {
            let idle = self
                .conns
                .values()
                .filter(|c| c.state() == State::Idle)
                .count() as i64;
            g.connections_idle.store(idle, Ordering::Relaxed);
            g.connections_active
                .store(self.conns.len() as i64 - idle, Ordering::Relaxed);
        }
    }

    /// Periodic housekeeping: deadlines, the accept pause, the parent check, the gauges.
    fn sweep(&mut self, now: Instant) {
        self.publish_connection_gauges();
        let keep_alive = self.hub.config.keep_alive.unwrap_or_default();
        let expired: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, c)| now >= c.deadline(keep_alive))
            .map(|(&t, _)| t)
            .collect();
        for token in expired {
            let conn = self.conns.get(&token).expect("live connection");
            let mid_request = match conn.state() {
                State::Head => !conn.buf.is_empty(),
                State::Body => true,
                State::Writing | State::Idle => false,
            };
            if mid_request {
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
        self.resume_accepting(now);
        if nix::unistd::getppid() != self.parent && self.stop_started.is_none() {
            // The master is gone: so is the server; no replacement will come.
            self.hub.state.shutting_down.store(true, Ordering::Release);
            let reason = format!(
                "Parent changed, shutting down: <Worker {}>",
                std::process::id()
            );
            self.begin_stop(Some(&reason));
        }
    }
}
