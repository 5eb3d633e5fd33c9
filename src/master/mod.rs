//! The master (Gunicorn's arbiter): binds the listeners, forks the workers, and then does nothing
//! but supervise — handle signals one at a time, reap and replace dead workers, kill wedged
//! ones, and keep the worker count at its target. It never touches a client connection and
//! knows nothing of HTTP.

mod listeners;
mod pidfile;

use crate::config::Config;
use crate::log;
use crate::shared::{monotonic_ms, random_u64, ServerState, SharedMap, WorkerSlot};
use crate::signals::{self, SignalPipe};
use crate::worker::{self, queue::JobQueue, WorkerContext, BOOT_ERROR};
use listeners::Listener;
use nix::sys::signal::{kill, sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use pidfile::Pidfile;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The master's housekeeping interval (Gunicorn's: 1 s).
const TICK: Duration = Duration::from_secs(1);
/// How often a stopping master looks for exited workers.
const STOP_POLL: Duration = Duration::from_millis(50);
/// How often idle handler threads look at their worker's state.
const QUEUE_POLL: Duration = Duration::from_millis(100);
/// On reload, old workers are retired once the new ones have booted, or after this long.
const BOOT_WAIT: Duration = Duration::from_secs(10);

/// Exit status when the master gives up because a worker cannot boot.
const EXIT_BOOT_ERROR: i32 = BOOT_ERROR;

const HANDLED_SIGNALS: [libc::c_int; 10] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGHUP,
    libc::SIGTTIN,
    libc::SIGTTOU,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
    libc::SIGCHLD,
];

struct Worker {
    /// Spawn order: the oldest are retired first.
    age: u64,
    slot: Arc<SharedMap<WorkerSlot>>,
    spawned: Instant,
    /// Sent SIGABRT for a timeout; SIGKILL follows if it is still there next tick.
    aborted: bool,
    /// Sent SIGTERM to make room (TTOU, reload); no longer counts toward the target.
    retiring: bool,
}

struct Master {
    argv: Vec<String>,
    config: Arc<Config>,
    listeners: Vec<Listener>,
    queue: Arc<JobQueue>,
    state: Arc<SharedMap<ServerState>>,
    workers: HashMap<Pid, Worker>,
    target: usize,
    next_age: u64,
    signals: Option<SignalPipe>,
    pidfile: Option<Pidfile>,
}

/// Runs the server until it stops; returns the process exit status.
pub fn run(config: Config, argv: Vec<String>) -> i32 {
    match Master::start(config, argv) {
        Ok(master) => master.run(),
        Err(code) => code,
    }
}

impl Master {
    fn start(config: Config, argv: Vec<String>) -> Result<Master, i32> {
        log::info(&format!("Starting heavy-api {}", env!("CARGO_PKG_VERSION")));
        let fail = |message: String| {
            log::error(&message);
            1
        };
        let pidfile = match &config.pidfile {
            Some(path) => Some(Pidfile::create(path).map_err(fail)?),
            None => None,
        };
        let listeners =
            listeners::bind_all(&config.binds, config.backlog).map_err(|e| fail(e.0))?;
        let pid = std::process::id();
        let urls: Vec<&str> = listeners.iter().map(|l| l.url.as_str()).collect();
        log::info(&format!("Listening at: {} ({pid})", urls.join(",")));
        log::info(&format!(
            "Using worker: threads (an event loop and {} handler threads per worker)",
            config.threads
        ));
        let queue = JobQueue::new(QUEUE_POLL)
            .map_err(|e| fail(format!("cannot create the request queue: {e}")))?;
        let state = SharedMap::new().map_err(|e| fail(format!("cannot map shared memory: {e}")))?;
        let signals = SignalPipe::install(&HANDLED_SIGNALS)
            .map_err(|e| fail(format!("cannot install signal handlers: {e}")))?;
        // SAFETY: SIG_IGN installs no handler code; a closed client must not kill the master.
        unsafe {
            let _ = nix::sys::signal::signal(Signal::SIGPIPE, nix::sys::signal::SigHandler::SigIgn);
        }
        Ok(Master {
            argv,
            target: config.workers,
            config: Arc::new(config),
            listeners,
            queue: Arc::new(queue),
            state: Arc::new(state),
            workers: HashMap::new(),
            next_age: 0,
            signals: Some(signals),
            pidfile,
        })
    }

    /// The main loop: one signal per iteration, otherwise a tick of housekeeping.
    fn run(mut self) -> i32 {
        self.manage_workers();
        loop {
            match self.signals().pop() {
                Some(signal) => {
                    if signal != libc::SIGCHLD {
                        log::info(&format!("Handling signal: {}", signals::name(signal)));
                    }
                    match signal {
                        libc::SIGTERM => return self.stop(Signal::SIGTERM),
                        libc::SIGINT | libc::SIGQUIT => return self.stop(Signal::SIGQUIT),
                        libc::SIGHUP => self.reload(),
                        libc::SIGTTIN => self.target += 1,
                        libc::SIGTTOU => self.target = self.target.saturating_sub(1).max(1),
                        libc::SIGUSR1 => self.reopen_logs(),
                        libc::SIGUSR2 => {
                            log::warning("USR2 (binary upgrade) is not supported; ignored.")
                        }
                        libc::SIGWINCH => log::debug("SIGWINCH ignored. Not daemonized"),
                        _ => {}
                    }
                }
                None => self.signals().wait(TICK),
            }
            if let Some(code) = self.reap_workers() {
                return self.halt(code, "Worker failed to boot.");
            }
            self.murder_workers();
            self.manage_workers();
        }
    }

    fn signals(&self) -> &SignalPipe {
        self.signals
            .as_ref()
            .expect("signals are installed in the master")
    }

    /// Forks one worker. The child never returns from here.
    fn spawn_worker(&mut self) {
        let slot = match SharedMap::<WorkerSlot>::new() {
            Ok(slot) => Arc::new(slot),
            Err(err) => return log::error(&format!("cannot map a worker slot: {err}")),
        };
        slot.beat(monotonic_ms());
        let jitter = match self.config.max_requests_jitter {
            0 => 0,
            j => random_u64() % (j + 1),
        };
        let max_requests = if self.config.max_requests > 0 {
            self.config.max_requests + jitter
        } else {
            0
        };
        self.next_age += 1;
        let master_pid = std::process::id() as i32;
        // Signals stay blocked across the fork until the child has replaced the master's
        // handlers with its own; one arriving in between would otherwise reach the master's
        // queue instead of the worker. The worker unblocks them once its handlers are in place.
        let mut previous = SigSet::empty();
        let _ = sigprocmask(
            SigmaskHow::SIG_SETMASK,
            Some(&SigSet::all()),
            Some(&mut previous),
        );
        // SAFETY: the master is single-threaded, so the child starts from a consistent state.
        let forked = unsafe { fork() };
        if !matches!(forked, Ok(ForkResult::Child)) {
            let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&previous), None);
        }
        match forked {
            Ok(ForkResult::Child) => {
                if let Some(signals) = self.signals.take() {
                    signals.uninstall();
                }
                let ctx = WorkerContext {
                    config: self.config.clone(),
                    listeners: self.listeners.iter().map(Listener::raw_fd).collect(),
                    queue: self.queue.clone(),
                    state: self.state.clone(),
                    slot,
                    max_requests,
                    master_pid,
                };
                std::process::exit(worker::run(ctx));
            }
            Ok(ForkResult::Parent { child }) => {
                let worker = Worker {
                    age: self.next_age,
                    slot,
                    spawned: Instant::now(),
                    aborted: false,
                    retiring: false,
                };
                self.workers.insert(child, worker);
            }
            Err(err) => log::error(&format!("fork failed: {err}")),
        }
    }

    /// Reaps every exited child, logging as Gunicorn does. Returns an exit status if a worker
    /// failed to boot and the master must stop.
    fn reap_workers(&mut self) -> Option<i32> {
        let mut boot_failed = None;
        loop {
            let status = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => return boot_failed,
                Ok(status) => status,
            };
            let Some(pid) = status.pid() else { continue };
            let Some(worker) = self.workers.remove(&pid) else {
                // An orphan re-parented to us (we are PID 1 in a container): reaped, that's all.
                log::debug(&format!("Reaped unknown process (pid:{pid})"));
                continue;
            };
            worker.slot.stop_serving(&self.state);
            match status {
                WaitStatus::Exited(_, 0) => {}
                WaitStatus::Exited(_, code) => {
                    log::error(&format!("Worker (pid:{pid}) exited with code {code}"));
                    if code == BOOT_ERROR && !worker.slot.booted.load(Ordering::Acquire) {
                        boot_failed = Some(EXIT_BOOT_ERROR);
                    }
                }
                WaitStatus::Signaled(_, Signal::SIGKILL, _) => log::error(&format!(
                    "Worker (pid:{pid}) was sent SIGKILL! Perhaps out of memory?"
                )),
                WaitStatus::Signaled(_, signal, _) => {
                    log::error(&format!("Worker (pid:{pid}) was sent {}!", signal.as_str()))
                }
                _ => {}
            }
        }
    }

    /// Heartbeat check: a worker silent for longer than `--timeout` gets SIGABRT, then SIGKILL.
    fn murder_workers(&mut self) {
        let Some(timeout) = self.config.timeout else {
            return;
        };
        let now = monotonic_ms();
        for (pid, worker) in self.workers.iter_mut() {
            let silent = now.saturating_sub(worker.slot.heartbeat_ms.load(Ordering::Relaxed));
            if silent <= timeout.as_millis() as u64 {
                continue;
            }
            if !worker.aborted {
                log::critical(&format!("WORKER TIMEOUT (pid:{pid})"));
                worker.aborted = true;
                let _ = kill(*pid, Signal::SIGABRT);
            } else {
                let _ = kill(*pid, Signal::SIGKILL);
            }
        }
    }

    /// Spawns missing workers and retires the oldest extra ones (once their replacements run).
    fn manage_workers(&mut self) {
        let mut active: Vec<(u64, Pid)> = self
            .workers
            .iter()
            .filter(|(_, w)| !w.retiring)
            .map(|(pid, w)| (w.age, *pid))
            .collect();
        for _ in active.len()..self.target {
            self.spawn_worker();
        }
        if active.len() <= self.target {
            return;
        }
        active.sort();
        let (old, kept) = active.split_at(active.len() - self.target);
        let replacements_ready = kept.iter().all(|(_, pid)| {
            let w = &self.workers[pid];
            w.slot.booted.load(Ordering::Acquire) || w.spawned.elapsed() > BOOT_WAIT
        });
        if !replacements_ready {
            return;
        }
        for (_, pid) in old {
            if let Some(worker) = self.workers.get_mut(pid) {
                worker.retiring = true;
                let _ = kill(*pid, Signal::SIGTERM);
            }
        }
    }

    /// SIGHUP: re-read the configuration, start a full set of new workers, and retire the old
    /// ones gracefully once the new ones are up (in `manage_workers`).
    fn reload(&mut self) {
        log::info("Hang up: Master");
        match Config::reload(&self.argv) {
            Ok(config) => {
                if let Err(err) = log::init(
                    config.log_level,
                    &config.error_logfile,
                    config.access_logfile.as_deref(),
                    &config.access_logformat,
                ) {
                    log::error(&format!("cannot reopen logs after reload: {err}"));
                }
                if config.binds != self.config.binds {
                    match listeners::bind_all(&config.binds, config.backlog) {
                        Ok(new) => {
                            for old in std::mem::replace(&mut self.listeners, new) {
                                old.close();
                            }
                            let urls: Vec<&str> =
                                self.listeners.iter().map(|l| l.url.as_str()).collect();
                            log::info(&format!(
                                "Listening at: {} ({})",
                                urls.join(","),
                                std::process::id()
                            ));
                        }
                        Err(err) => log::error(&format!("{}; keeping the old listeners", err.0)),
                    }
                }
                self.target = config.workers;
                self.config = Arc::new(config);
            }
            Err(err) => log::error(&format!(
                "reload failed, keeping the old configuration: {err}"
            )),
        }
        for _ in 0..self.target {
            self.spawn_worker();
        }
    }

    fn reopen_logs(&mut self) {
        if let Err(err) = log::reopen() {
            log::error(&format!("cannot reopen log files: {err}"));
        }
        for pid in self.workers.keys() {
            let _ = kill(*pid, Signal::SIGUSR1);
        }
    }

    /// Stops every worker with `signal` (TERM: graceful, QUIT: quick), waits for them up to
    /// `--graceful-timeout`, kills what is left, and exits 0.
    fn stop(mut self, signal: Signal) -> i32 {
        self.stop_workers(signal);
        log::info("Shutting down: Master");
        self.cleanup();
        0
    }

    /// Stops everything after a fatal condition and exits with `code`.
    fn halt(mut self, code: i32, reason: &str) -> i32 {
        self.stop_workers(Signal::SIGTERM);
        log::error("Shutting down: Master");
        log::error(&format!("Reason: {reason}"));
        self.cleanup();
        code
    }

    fn stop_workers(&mut self, signal: Signal) {
        for listener in self.listeners.drain(..) {
            listener.close();
        }
        for pid in self.workers.keys() {
            let _ = kill(*pid, signal);
        }
        let deadline = Instant::now() + self.config.graceful_timeout;
        while !self.workers.is_empty() && Instant::now() < deadline {
            self.signals().wait(STOP_POLL);
            while self.signals().pop().is_some() {}
            self.reap_workers();
        }
        for pid in self.workers.keys() {
            let _ = kill(*pid, Signal::SIGKILL);
        }
        while !self.workers.is_empty() {
            let before = self.workers.len();
            self.reap_workers();
            if self.workers.len() == before {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    fn cleanup(&mut self) {
        if let Some(pidfile) = self.pidfile.take() {
            pidfile.remove();
        }
    }
}
