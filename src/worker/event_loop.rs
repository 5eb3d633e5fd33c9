//! The worker's event loop: the one thread that does socket I/O. It accepts connections
//! (`accept`), reads, parses and writes without blocking (`conn_io`), answers cheap requests
//! itself and hands heavy ones to the handler threads (`dispatch`), and writes the answers the
//! threads hand back. It never runs heavy work and never waits for a client, so health probes
//! are answered at once however busy the threads are, and the heartbeat never stalls.
//!
//! This file holds the loop itself: waiting (until the next deadline), accepting and evicting at
//! the connection limit, the heartbeat, signals, gauges, and stopping.

use super::accept::{Accepted, Acceptor};
use super::connection::State;
use super::conns::Conns;
use super::handler;
use super::hub::Hub;
use super::queue::Item;
use super::socket::has_pending_input;
use super::WorkerContext;
use crate::app::App;
use crate::http::HttpError;
use crate::log;
use crate::shared::{monotonic_ms, monotonic_ns};
use crate::signals::SignalPipe;
use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
use nix::sys::signal::Signal;
use std::os::fd::AsFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Most bytes one read takes.
pub(super) const READ_CHUNK: usize = 16 * 1024;
/// A busy handler thread counts as making progress this long past its request's `--timeout`
/// (by then the request has been answered 503 unless the thread is truly stuck).
const STUCK_GRACE: Duration = Duration::from_secs(2);
/// How often the accept pause and the parent are checked, and the heartbeat beats, when nothing
/// else wakes the loop: an idle worker wakes once a second (twice with `--timeout 1`, so the
/// heartbeat stays well inside it). Connection deadlines wake it when they are due.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// After stopping to listen for being ahead of its fair share, how long a worker looks again
/// every [`FAIR_SHARE_POLL_MS`] (a burst of connections is over well within it).
const FAIR_SHARE_WATCH: Duration = Duration::from_secs(1);
const FAIR_SHARE_POLL_MS: u16 = 5;
/// At the connection limit, a connection that has produced no request for this long (since its
/// accept or its last answer) may be evicted for a new one. Far longer than a client takes
/// between connecting and sending its request; short enough that a flood of silent (or
/// byte-dribbling) connections holds a worker's every slot for at most this long before the
/// next connection in the backlog gets one.
const EVICT_SILENT_AFTER: Duration = Duration::from_millis(250);
/// At the connection limit, how many of the least productive connections are looked at for one
/// to evict (those with unread bytes are served instead).
const EVICTION_LOOKS: usize = 16;
/// While stopping, how often the loop looks whether its threads are done.
const STOP_POLL_MS: u16 = 50;

pub(super) const SIGNAL_TOKEN: u64 = u64::MAX;
pub(super) const WAKE_TOKEN: u64 = u64::MAX - 1;
pub(super) const FIRST_CONN_TOKEN: u64 = 1 << 32;

pub struct EventLoop {
    pub(super) hub: Arc<Hub>,
    pub(super) epoll: Epoll,
    signals: SignalPipe,
    pub(super) acceptor: Acceptor,
    pub(super) platform_labels: Vec<(&'static str, String)>,
    pub(super) conns: Conns,
    pub(super) next_token: u64,
    /// How long the loop sleeps when nothing happens (see [`SWEEP_EVERY`]).
    idle_wait_ms: u16,
    /// The connection gauges as last published (active, idle).
    published: (usize, usize),
    /// The loop's clock: read once after each wait, for every deadline set in that turn
    /// (deadlines are seconds; one clock read per turn instead of several per request).
    pub(super) now: Instant,
    /// An instant and the same moment in [`monotonic_ns`] (both are `CLOCK_MONOTONIC`): turns
    /// the loop's clock into nanoseconds without reading the clock again.
    clock_base: (Instant, u64),
    /// More workers than usable CPUs: a busy loop yields instead of sleeping (see `run`).
    yield_when_busy: bool,
    /// Since when this worker has stopped listening for being ahead of its fair share.
    ahead_since: Option<Instant>,
    threads: Vec<JoinHandle<()>>,
    pub(super) requests: u64,
    pub(super) max_requests: u64,
    pub(super) stop_started: Option<Instant>,
    parent: nix::unistd::Pid,
    next_sweep: Instant,
    /// Whether an access log is written (fixed for a worker's life): request headers are kept
    /// only then.
    pub(super) access_log: bool,
    /// Connections to read again next turn (see `on_reads_left`).
    pub(super) reads_left: Vec<u64>,
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
            ctx.metrics,
            ctx.metrics_slot,
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
        // The most one connection holds while its head is unfinished: the head and one read.
        let per_connection = (ctx.config.http_limits.head + READ_CHUNK) as u64;
        let acceptor = Acceptor::new(ctx.listeners, &ctx.config, per_connection);
        let keep_alive = ctx.config.keep_alive.unwrap_or_default();
        let mut lp = EventLoop {
            hub,
            epoll,
            signals,
            acceptor,
            platform_labels: ctx.platform_labels,
            conns: Conns::new(keep_alive),
            next_token: FIRST_CONN_TOKEN,
            published: (usize::MAX, usize::MAX),
            ahead_since: None,
            yield_when_busy: ctx.config.workers > crate::platform::usable_cpus().count,
            now: Instant::now(),
            clock_base: (Instant::now(), monotonic_ns()),
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
            reads_left: Vec::new(),
            scratch: vec![0u8; READ_CHUNK].into_boxed_slice(),
            queue_buf: Vec::new(),
        };
        lp.acceptor.set_listening(&lp.epoll, true);
        if let Some(g) = lp.hub.gauges {
            g.accepting.store(true, Ordering::Release);
        }
        // Serving before booted: the master takes "booted but not serving" for a stop.
        lp.hub.slot.start_serving(&lp.hub.state);
        lp.hub.slot.booted.store(true, Ordering::Release);
        lp.hub.count(|m| {
            m.workers_booted.fetch_add(1, Ordering::Relaxed);
        });
        Ok(lp)
    }

    /// The loop's clock (read once per turn) in [`monotonic_ns`] terms.
    pub(super) fn now_ns(&self) -> u64 {
        let (instant, ns) = self.clock_base;
        ns + self.now.saturating_duration_since(instant).as_nanos() as u64
    }

    /// Runs until the worker has stopped and every request it took is answered.
    pub fn run(&mut self) {
        let mut events = vec![EpollEvent::empty(); 256];
        let mut busy = false;
        if self.yield_when_busy {
            // More loops than CPUs: a short scheduler slice, for this thread only (the handler
            // threads exist already and keep the default, so heavy work is not cut up). Side by
            // side with wrk, 4x2 on 2 CPUs: at 50 connections context switches per request 0.6
            // -> 0.22 machine-wide (nginx: 0.1-0.16) and throughput 0.96x -> 1.07x nginx's; at
            // 1,000 unchanged (1.01x). 0.1 ms did as well at 50 and worse at 1,000.
            crate::platform::request_short_slice();
        }
        loop {
            self.heartbeat();
            let mut timeout: u16 = if self.stop_started.is_some() {
                STOP_POLL_MS
            } else {
                self.idle_wait_ms
            };
            let holding_off = self.stop_started.is_none() && self.acceptor.is_holding_off();
            if let Some(since) = self.ahead_since.filter(|_| holding_off) {
                // Ahead of its share: look again soon while a burst is likely still arriving,
                // then at the usual pace (the others' counts change without waking this loop).
                if since.elapsed() < FAIR_SHARE_WATCH {
                    timeout = timeout.min(FAIR_SHARE_POLL_MS);
                }
            }
            let before = Instant::now();
            let room_at = if holding_off {
                let pause = self.acceptor.paused_until();
                self.room_at(before)
                    .map(|at| pause.map_or(at, |p| p.max(at)))
            } else {
                None
            };
            if let Some(due) = self.conns.next_deadline().into_iter().chain(room_at).min() {
                let until = due.saturating_duration_since(before);
                // Rounded up: waking a millisecond early would only wait again.
                let ms = until.as_millis() as u64 + 1;
                timeout = timeout.min(ms.min(u64::from(u16::MAX)) as u16);
            }
            if busy && self.yield_when_busy {
                // Under load, a turn that found work is followed by a look that does not
                // sleep: yield the CPU to whatever else is runnable (the other workers, the
                // clients), then take what arrived meanwhile. With more workers than CPUs,
                // sleeping and being woken for every few events was the largest cost of a health
                // request (perf: 15 % of the workers' time in the scheduler's switch under
                // epoll_wait; 9.6 -> 8.0 us of CPU per request at 4x2 on 2 CPUs, 50
                // connections). Only one such look per sleep, so an idle or lightly loaded loop
                // still sleeps; and not with a CPU per worker, where it bought no CPU and cost
                // tail latency (p99 290-430 ms against 10-12 ms at 2x2, 1,000 connections).
                // SAFETY: sched_yield takes no arguments and cannot fail in a way that matters.
                unsafe { libc::sched_yield() };
                timeout = 0;
            }
            if !self.reads_left.is_empty() {
                // Bytes are waiting already: look for events without sleeping.
                timeout = 0;
            }
            let n = match self.epoll.wait(&mut events, timeout) {
                Ok(n) => n,
                Err(Errno::EINTR) => 0,
                Err(err) => {
                    log::error(&format!("epoll_wait failed: {err}"));
                    0
                }
            };
            self.now = Instant::now();
            busy = n > 0 && timeout != 0;
            for event in &events[..n] {
                match event.data() {
                    SIGNAL_TOKEN => self.on_signals(),
                    WAKE_TOKEN => self.on_handbacks(),
                    token if token < FIRST_CONN_TOKEN => self.on_listener(token as usize),
                    token => self.on_conn_event(token, event.events()),
                }
            }
            self.on_reads_left();
            let now = self.now;
            self.expire(now);
            self.resume_accepting(now);
            if now >= self.next_sweep {
                self.next_sweep = now + Duration::from_millis(u64::from(self.idle_wait_ms));
                self.sweep(now);
            }
            self.publish_connection_gauges(None);
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
        // Drops of the log's writer are reported within a tick even if nothing else is logged.
        log::tick();
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
        if let Some(g) = self.hub.gauges {
            g.accepting.store(false, Ordering::Release);
        }
        self.hub.begin_stop();
        self.hub.slot.stop_serving(&self.hub.state);
        self.acceptor.close(&self.epoll);
        for token in self.conns.tokens() {
            if !self.conns.get(token).is_some_and(|c| c.is_passable()) {
                continue;
            }
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
        loop {
            let (item, fd) = match self.hub.queue.try_recv(&mut self.queue_buf) {
                Ok(Some(got)) => got,
                Ok(None) | Err(super::queue::RecvError::Other(_)) => break,
                Err(err) => {
                    handler::refuse(&self.hub, err);
                    continue;
                }
            };
            match item {
                Item::Heavy(job) => {
                    self.hub.count(|m| {
                        m.queue_depth.fetch_sub(1, Ordering::Relaxed);
                    });
                    self.hub.in_flight(1);
                    self.hub.push_local(*job, fd)
                }
                Item::Adopt {
                    peer,
                    served,
                    leftover,
                } => {
                    if let Some(token) = self.add_conn(fd, peer, served, leftover, false) {
                        self.retire_conn(token);
                    }
                }
            }
        }
    }

    /// A listener has a connection waiting. At the connection limit the least productive
    /// connection (waiting longest for a request, none in hand) makes room, so a flood of
    /// silent connections can never keep a real request out; only when every connection is
    /// working does the worker leave new ones in the backlog.
    pub(super) fn on_listener(&mut self, index: usize) {
        if self.ahead_of_the_others() {
            // Leave this one to a worker holding fewer: the kernel wakes the next waiter.
            self.acceptor.set_listening(&self.epoll, false);
            self.ahead_since.get_or_insert_with(Instant::now);
            return;
        }
        if !self.make_room() {
            self.acceptor.hold_off(&self.epoll, self.hub.metrics);
            return;
        }
        if let Accepted::Conn {
            fd,
            peer,
            metrics_port,
        } = self.acceptor.accept(&self.epoll, index)
        {
            if let Some(token) = self.add_conn(fd, peer, 0, Vec::new(), metrics_port) {
                // Clients send their request right after connecting: it is usually here
                // already, and reading it now saves a turn of the loop.
                self.on_conn_event(token, EpollFlags::EPOLLIN);
            }
        }
    }

    /// Below the connection limit, or brought below it by evicting the least productive
    /// connection. One that turns out to have sent something the loop has not read yet is
    /// served first (which may complete a request, or itself make room) and the next is
    /// looked at.
    /// False if every connection is working.
    pub(super) fn make_room(&mut self) -> bool {
        for _ in 0..EVICTION_LOOKS {
            if self.conns.len() < self.acceptor.limit() {
                return true;
            }
            let Some((since, token)) = self.conns.least_productive() else {
                return false;
            };
            if since.elapsed() < EVICT_SILENT_AFTER {
                return false;
            }
            let conn = self.conns.get(token).expect("indexed");
            if has_pending_input(conn.fd()) {
                self.on_conn_event(token, EpollFlags::EPOLLIN);
                continue;
            }
            self.hub.count(|m| {
                m.connections_evicted.fetch_add(1, Ordering::Relaxed);
            });
            self.close(token);
        }
        self.conns.len() < self.acceptor.limit()
    }

    /// When the connection limit lets one more in: now (there is room), or once the least
    /// productive connection has waited long enough to evict. `None`: every one works.
    fn room_at(&mut self, now: Instant) -> Option<Instant> {
        if self.conns.len() < self.acceptor.limit() {
            return Some(now);
        }
        self.conns
            .least_productive()
            .map(|(since, _)| since + EVICT_SILENT_AFTER)
    }

    /// Listens again when accepting was on hold, there is room now and this worker is not
    /// ahead of the others.
    pub(super) fn resume_accepting(&mut self, now: Instant) {
        if self.stop_started.is_some() || !self.acceptor.is_holding_off() {
            return;
        }
        let room = self.room_at(now).is_some_and(|at| at <= now);
        let fair = !self.ahead_of_the_others();
        if fair {
            self.ahead_since = None;
        }
        self.acceptor.resume(&self.epoll, now, room && fair);
    }

    /// Fair share: whether this worker holds more connections than the least busy accepting
    /// worker, plus a slack of 1 + an eighth. All workers wait on the listeners with
    /// `EPOLLEXCLUSIVE`, and one that loops faster than the others would otherwise take most of
    /// a burst (wrk opening 64 connections at once: 4 / 2 / 26 / 36). One that is ahead stops
    /// listening until the others catch up, so the kernel wakes them instead; the least busy
    /// one is never ahead, so someone always accepts. The counts are each worker's own,
    /// published after every turn of its loop.
    fn ahead_of_the_others(&self) -> bool {
        let Some(m) = self.hub.metrics else {
            return false;
        };
        let me = self.hub.gauges.map(|g| g as *const _);
        let least = m
            .live_workers()
            .filter(|w| Some(*w as *const _) != me && w.accepting.load(Ordering::Acquire))
            .map(|w| {
                w.connections_active.load(Ordering::Relaxed)
                    + w.connections_idle.load(Ordering::Relaxed)
            })
            .min();
        let Some(least) = least else {
            return false;
        };
        let least = least.max(0) as usize;
        self.conns.len() > least + 1 + least / 8
    }

    /// This worker's open connections, active and idle, into its metrics gauges, whenever they
    /// changed: exact after every turn of the loop. A scrape publishes them first without its
    /// own connection (`leave_out`).
    pub(super) fn publish_connection_gauges(&mut self, leave_out: Option<u64>) {
        let mut now = self.conns.active_and_idle();
        match leave_out.and_then(|token| self.conns.indexed_state(token)) {
            Some(State::Idle) => now.1 -= 1,
            Some(_) => now.0 -= 1,
            None => {}
        }
        if now == self.published {
            return;
        }
        self.published = now;
        if let Some(g) = self.hub.gauges {
            g.connections_active.store(now.0 as i64, Ordering::Relaxed);
            g.connections_idle.store(now.1 as i64, Ordering::Relaxed);
        }
    }

    /// Closes the connections whose deadline passed; one in the middle of a request is told
    /// why first (best effort: 408, then close).
    fn expire(&mut self, now: Instant) {
        for token in self.conns.expired(now) {
            let Some(conn) = self.conns.get_mut(token) else {
                continue;
            };
            if conn.is_mid_request() {
                conn.queue_last(&HttpError::new(408, "request timed out").to_response());
                let _ = conn.write(now);
            }
            self.close(token);
        }
    }

    /// Periodic housekeeping: the accept pause, the parent check.
    fn sweep(&mut self, now: Instant) {
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
