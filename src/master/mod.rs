//! The master (Gunicorn's arbiter): binds the listeners, forks the workers, and then does nothing
//! but supervise — handle signals one at a time, reap and replace dead workers, kill wedged
//! ones, and keep the worker count at its target. It never touches a client connection and
//! knows nothing of HTTP.

mod listeners;
mod pidfile;

use crate::config::Config;
use crate::io_store::DataFile;
use crate::log;
use crate::metrics::{self, ExitCause};
use crate::platform::fingerprint::Fingerprint;
use crate::shared::{monotonic_ms, random_u64, ServerState, SharedMap, WorkerSlot};
use crate::signals::{self, SignalPipe};
use crate::worker::{self, queue::JobQueue, WorkerContext, WorkerListener, BOOT_ERROR};
use crate::{proctitle, statsd};
use listeners::Listener;
use nix::sys::resource::{getrlimit, setrlimit, Resource};
use nix::sys::signal::{kill, sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use pidfile::Pidfile;
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The master's housekeeping interval (Gunicorn's: 1 s).
const TICK: Duration = Duration::from_secs(1);
/// How often a stopping master looks for exited workers.
const STOP_POLL: Duration = Duration::from_millis(50);
/// On reload, old workers are retired once the new ones have booted, or after this long.
const BOOT_WAIT: Duration = Duration::from_secs(10);
/// Respawn delays after workers that die before they finish booting: doubling from the first,
/// up to the last, until one boots.
const RESPAWN_BACKOFF_FIRST: Duration = Duration::from_millis(100);
const RESPAWN_BACKOFF_MAX: Duration = Duration::from_secs(10);

/// Exit status when the master gives up because a worker cannot boot.
const EXIT_BOOT_ERROR: i32 = BOOT_ERROR;

const HANDLED_SIGNALS: [Signal; 10] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGHUP,
    Signal::SIGTTIN,
    Signal::SIGTTOU,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGCHLD,
];

struct Worker {
    /// Spawn order: the oldest are retired first.
    age: u64,
    slot: Arc<SharedMap<WorkerSlot>>,
    spawned: Instant,
    /// Sent SIGABRT for a timeout; SIGKILL follows if it is still there next tick.
    aborted: bool,
    /// When it was sent SIGTERM to make room (TTOU, reload); it no longer counts toward the
    /// target, and is killed if it outlives `--graceful-timeout`.
    retired_at: Option<Instant>,
    /// Its slot in the shared metrics, freed when it is reaped.
    metrics_slot: Option<usize>,
}

struct Master {
    argv: Vec<String>,
    config: Arc<Config>,
    listeners: Vec<Listener>,
    /// `--metrics-bind`.
    metrics_listener: Option<Listener>,
    queue: Arc<JobQueue>,
    state: Arc<SharedMap<ServerState>>,
    workers: HashMap<Pid, Worker>,
    target: usize,
    next_age: u64,
    /// Workers in a row that died before they finished booting, and when the next may start.
    boot_deaths: u32,
    respawn_at: Option<Instant>,
    signals: Option<SignalPipe>,
    pidfile: Option<Pidfile>,
    /// `/heavy/info/` and the platform labels of the metrics, gathered once at start.
    info: Arc<serde_json::Value>,
    platform_labels: Vec<(&'static str, String)>,
    /// `--drain-delay`: when a TERM's drain ends and the stop begins.
    drain_until: Option<Instant>,
    /// The worker count last logged (`N workers`) and sent as the `gunicorn.workers` gauge.
    logged_workers: Option<usize>,
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
        if log::enabled(log::Level::Debug) {
            log::block(
                log::Level::Debug,
                "Current configuration:",
                &config.debug_block(),
            );
        }
        log::info(&format!("Starting heavy-api {}", env!("CARGO_PKG_VERSION")));
        for warning in &config.warnings {
            log::warning(warning);
        }
        let fail = |message: String| {
            log::error(&message);
            1
        };
        raise_descriptor_limit();
        metrics::init().map_err(|e| fail(format!("cannot map shared memory: {e}")))?;
        if let Some(m) = metrics::get() {
            log::count_drops_in(&m.log_lines_dropped);
        }
        let (fingerprint, ecs_warning) = Fingerprint::gather(&|k| std::env::var(k).ok());
        log::info(&fingerprint.summary());
        if let Some(warning) = ecs_warning {
            log::warning(&warning);
        }
        if let Some(source) = &config.workers_source {
            log::info(&format!("Using {} workers: {source}", config.workers));
        }
        // The data file is checked once, here: a fault in it later fails requests, not boots.
        DataFile::new(&config.io_file).prepare().map_err(|e| {
            fail(format!(
                "cannot use io file {}: {e}",
                config.io_file.display()
            ))
        })?;
        let pidfile = match &config.pidfile {
            Some(path) => Some(Pidfile::create(path).map_err(fail)?),
            None => None,
        };
        wait_for_bind_hosts(&config.binds).map_err(fail)?;
        let listeners =
            listeners::bind_all(&config.binds, config.backlog).map_err(|e| fail(e.0))?;
        if let Some(cap) = listeners::somaxconn().filter(|&cap| cap < config.backlog) {
            log::warning(&format!(
                "--backlog {} is capped at {cap} by net.core.somaxconn",
                config.backlog
            ));
        }
        let pid = std::process::id();
        let urls: Vec<&str> = listeners.iter().map(|l| l.url.as_str()).collect();
        log::debug("Arbiter booted");
        log::info(&format!("Listening at: {} ({pid})", urls.join(",")));
        let metrics_listener = match &config.metrics_bind {
            Some(spec) => {
                let listener = listeners::bind_all(std::slice::from_ref(spec), config.backlog)
                    .map_err(|e| fail(e.0))?
                    .remove(0);
                log::info(&format!("Metrics at: {}/metrics", listener.url));
                Some(listener)
            }
            None => None,
        };
        log::info(&format!("Using worker: {}", config.worker_class));
        let queue =
            JobQueue::new().map_err(|e| fail(format!("cannot create the request queue: {e}")))?;
        let state = SharedMap::new().map_err(|e| fail(format!("cannot map shared memory: {e}")))?;
        let signals = SignalPipe::install(&HANDLED_SIGNALS)
            .map_err(|e| fail(format!("cannot install signal handlers: {e}")))?;
        let info = serde_json::json!({
            "server": {
                "name": "heavy-api",
                "version": env!("CARGO_PKG_VERSION"),
                "workers": config.workers,
                "workers_source": config.workers_source,
                "threads": config.threads,
                "timeout_sec": config.timeout.map(|t| t.as_secs()),
                "keep_alive_sec": config.keep_alive.map(|t| t.as_secs()),
                // The listeners are bound: from here connections queue for the workers forked
                // next. With the ECS metadata's container start, the task's start-to-ready.
                "ready_at": log::utc_rfc3339(std::time::SystemTime::now()),
            },
            "platform": fingerprint,
        });
        Ok(Master {
            argv,
            metrics_listener,
            info: Arc::new(info),
            platform_labels: fingerprint.labels(),
            drain_until: None,
            logged_workers: None,
            target: config.workers,
            config: Arc::new(config),
            listeners,
            queue: Arc::new(queue),
            state: Arc::new(state),
            workers: HashMap::new(),
            next_age: 0,
            boot_deaths: 0,
            respawn_at: None,
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
                    if signal != Signal::SIGCHLD {
                        log::info(&format!("Handling signal: {}", signals::name(signal)));
                    }
                    match signal {
                        Signal::SIGTERM
                            if self.drain_until.is_none() && !self.config.drain_delay.is_zero() =>
                        {
                            self.begin_drain()
                        }
                        Signal::SIGTERM => return self.stop(Signal::SIGTERM),
                        Signal::SIGINT | Signal::SIGQUIT => return self.stop(Signal::SIGQUIT),
                        Signal::SIGHUP => self.reload(),
                        Signal::SIGTTIN => self.target += 1,
                        Signal::SIGTTOU => self.target = self.target.saturating_sub(1).max(1),
                        Signal::SIGUSR1 => self.reopen_logs(),
                        Signal::SIGUSR2 => {
                            log::warning("USR2 (binary upgrade) is not supported; ignored.")
                        }
                        Signal::SIGWINCH => log::debug("SIGWINCH ignored. Not daemonized"),
                        _ => {}
                    }
                }
                None => {
                    let now = Instant::now();
                    let wait = [self.respawn_at, self.drain_until]
                        .into_iter()
                        .flatten()
                        .map(|at| at.saturating_duration_since(now))
                        .fold(TICK, Duration::min);
                    self.signals().wait(wait);
                }
            }
            log::tick();
            if let Some(code) = self.reap_workers() {
                return self.halt(code, "Worker failed to boot.");
            }
            if self
                .drain_until
                .is_some_and(|until| Instant::now() >= until)
            {
                return self.stop(Signal::SIGTERM);
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

    /// Forks one worker.
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
        // Reserved before the fork so the child knows its slot; the pid is set after.
        let metrics_slot = metrics::get().and_then(|m| m.claim_slot(-1));
        // Signals stay blocked across the fork until the child has replaced the master's
        // handlers with its own; one arriving in between would otherwise reach the master's
        // queue instead of the worker. The worker unblocks them once its handlers are in place.
        let mut previous = SigSet::empty();
        let _ = sigprocmask(
            SigmaskHow::SIG_SETMASK,
            Some(&SigSet::all()),
            Some(&mut previous),
        );
        // The master's only other threads are its log writers; holding their locks across the
        // fork leaves the child none held.
        let log_locks = log::fork_guard();
        // SAFETY: no other thread of the master holds a lock the child needs (see above; glibc
        // keeps malloc usable across fork), so the child starts from a consistent state.
        let forked = unsafe { fork() };
        drop(log_locks);
        if !matches!(forked, Ok(ForkResult::Child)) {
            let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&previous), None);
        }
        match forked {
            Ok(ForkResult::Child) => {
                self.become_worker(slot, max_requests, master_pid, metrics_slot)
            }
            Ok(ForkResult::Parent { child }) => {
                if let (Some(m), Some(i)) = (metrics::get(), metrics_slot) {
                    m.workers[i].pid.store(child.as_raw(), Ordering::Release);
                }
                let worker = Worker {
                    age: self.next_age,
                    slot,
                    spawned: Instant::now(),
                    aborted: false,
                    retired_at: None,
                    metrics_slot,
                };
                self.workers.insert(child, worker);
            }
            Err(err) => {
                if let (Some(m), Some(i)) = (metrics::get(), metrics_slot) {
                    m.release_slot(i);
                }
                log::error(&format!("fork failed: {err}"))
            }
        }
    }

    /// In the child after fork: the master's state goes, the worker runs, and the process
    /// exits — it never returns into the master's loop, not even by a panic.
    fn become_worker(
        &mut self,
        slot: Arc<SharedMap<WorkerSlot>>,
        max_requests: u64,
        master_pid: i32,
        metrics_slot: Option<usize>,
    ) -> ! {
        drop(self.signals.take()); // the master's handlers and pipe
        proctitle::set(&proctitle::worker(&self.config.proc_name));
        let main = std::mem::take(&mut self.listeners)
            .into_iter()
            .map(|l| (l, false));
        let listeners = main
            .chain(self.metrics_listener.take().map(|l| (l, true)))
            .map(|(l, metrics)| WorkerListener {
                url: l.url.clone(),
                fd: l.into_fd(),
                metrics,
            })
            .collect();
        let ctx = WorkerContext {
            config: self.config.clone(),
            listeners,
            metrics: metrics::get(),
            metrics_slot,
            info: self.info.clone(),
            platform_labels: self.platform_labels.clone(),
            queue: self.queue.clone(),
            state: self.state.clone(),
            slot,
            max_requests,
            master_pid,
        };
        let code = catch_unwind(AssertUnwindSafe(|| worker::run(ctx))).unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into());
            log::error(&format!("Exception in worker process: {what}"));
            1
        });
        // `_exit` runs no exit handlers: the worker's queued log lines are written here.
        log::flush();
        // SAFETY: ends the child without running the master's exit handlers.
        unsafe { libc::_exit(code) }
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
            let booted = worker.slot.booted.load(Ordering::Acquire);
            let cause = match status {
                _ if worker.aborted => ExitCause::Timeout,
                WaitStatus::Exited(_, 0) => ExitCause::Clean,
                WaitStatus::Exited(..) => ExitCause::Error,
                _ => ExitCause::Signal,
            };
            metrics::with(|m| {
                m.worker_exits[cause as usize].fetch_add(1, Ordering::Relaxed);
                if let Some(i) = worker.metrics_slot {
                    m.release_slot(i);
                }
            });
            match status {
                WaitStatus::Exited(_, 0) => {}
                WaitStatus::Exited(_, code) => {
                    // Gunicorn logs a failed exit twice, the second time with a full stop
                    // (unless it is about to halt for a boot error).
                    log::error(&format!("Worker (pid:{pid}) exited with code {code}"));
                    if code == BOOT_ERROR && !booted {
                        boot_failed = Some(EXIT_BOOT_ERROR);
                    } else {
                        log::error(&format!("Worker (pid:{pid}) exited with code {code}."));
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
            if !booted && boot_failed.is_none() {
                self.back_off_respawn(pid);
            }
        }
    }

    /// A worker died before it finished booting: the next one starts after a delay that
    /// doubles with each such death in a row, so a worker that cannot start does not make the
    /// master fork in a tight loop.
    fn back_off_respawn(&mut self, pid: Pid) {
        self.boot_deaths += 1;
        let delay = RESPAWN_BACKOFF_FIRST
            .saturating_mul(1 << (self.boot_deaths - 1).min(16))
            .min(RESPAWN_BACKOFF_MAX);
        self.respawn_at = Some(Instant::now() + delay);
        log::warning(&format!(
            "Worker (pid:{pid}) died before it booted ({} in a row); next spawn in {:.1} s",
            self.boot_deaths,
            delay.as_secs_f64()
        ));
    }

    /// Kills workers that overstay: a heartbeat older than `--timeout` gets SIGABRT, then
    /// SIGKILL; a stopping worker still there `--graceful-timeout` after its stop began (TTOU,
    /// reload, or its own `--max-requests` stop) gets SIGKILL. The worker enforces its graceful
    /// timeout itself; this is the backstop.
    fn murder_workers(&mut self) {
        let now_ms = monotonic_ms();
        let now = Instant::now();
        let graceful = self.config.graceful_timeout;
        for (pid, worker) in self.workers.iter_mut() {
            if worker.retired_at.is_none()
                && worker.slot.booted.load(Ordering::Acquire)
                && !worker.slot.counted_serving.load(Ordering::Acquire)
            {
                // It stopped serving on its own (`--max-requests`, a lost parent check).
                worker.retired_at = Some(now);
            }
            if let Some(since) = worker.retired_at {
                if now >= since + graceful + TICK {
                    log::warning(&format!(
                        "Worker (pid:{pid}) outlived the graceful timeout; killing it"
                    ));
                    let _ = kill(*pid, Signal::SIGKILL);
                    continue;
                }
            }
            let Some(timeout) = self.config.timeout else {
                continue;
            };
            let silent = now_ms.saturating_sub(worker.slot.heartbeat_ms.load(Ordering::Relaxed));
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

    /// Spawns missing workers (unless a boot backoff is running) and retires the oldest extra
    /// ones once their replacements run. A worker that is stopping no longer counts.
    fn manage_workers(&mut self) {
        if self
            .workers
            .values()
            .any(|w| w.slot.booted.load(Ordering::Acquire))
        {
            self.boot_deaths = 0;
        }
        let mut active: Vec<(u64, Pid)> = self
            .workers
            .iter()
            .filter(|(_, w)| w.retired_at.is_none())
            .map(|(pid, w)| (w.age, *pid))
            .collect();
        let may_spawn = self.respawn_at.is_none_or(|at| Instant::now() >= at);
        if may_spawn && active.len() < self.target {
            self.respawn_at = None;
            for _ in active.len()..self.target {
                self.spawn_worker();
            }
        }
        if active.len() <= self.target {
            self.log_worker_count();
            return;
        }
        active.sort();
        let (old, kept) = active.split_at(active.len() - self.target);
        let replacements_ready = kept.iter().all(|(_, pid)| {
            let w = &self.workers[pid];
            w.slot.booted.load(Ordering::Acquire) || w.spawned.elapsed() > BOOT_WAIT
        });
        if !replacements_ready {
            self.log_worker_count();
            return;
        }
        let now = Instant::now();
        for (_, pid) in old {
            if let Some(worker) = self.workers.get_mut(pid) {
                worker.retired_at = Some(now);
                let _ = kill(*pid, Signal::SIGTERM);
            }
        }
        self.log_worker_count();
    }

    /// As Gunicorn: `N workers` at debug and the `gunicorn.workers` gauge, whenever the number
    /// of active workers changes.
    fn log_worker_count(&mut self) {
        let active = self
            .workers
            .values()
            .filter(|w| w.retired_at.is_none())
            .count();
        if self.logged_workers != Some(active) {
            self.logged_workers = Some(active);
            log::debug(&format!("{active} workers"));
            statsd::gauge("gunicorn.workers", active as u64);
        }
    }

    /// SIGHUP: re-read the configuration, start a full set of new workers, and retire the old
    /// ones gracefully once the new ones are up (in `manage_workers`).
    fn reload(&mut self) {
        log::info("Hang up: Master");
        let reloaded = Config::reload(&self.argv).and_then(|config| {
            // A new data file is prepared here, as at start, never by the workers.
            DataFile::new(&config.io_file)
                .prepare()
                .map(|()| config)
                .map_err(|e| format!("cannot use io file: {e}"))
        });
        match reloaded {
            Ok(config) => {
                if let Err(err) = log::init(
                    config.log_level,
                    &config.error_logfile,
                    config.access_logfile.as_deref(),
                    &config.access_logformat,
                ) {
                    log::error(&format!("cannot reopen logs after reload: {err}"));
                }
                if let Err(err) = statsd::init(
                    config.statsd.as_ref(),
                    &config.statsd_prefix,
                    &config.dogstatsd_tags,
                ) {
                    log::warning(&err.to_string());
                }
                for warning in &config.warnings {
                    log::warning(warning);
                }
                proctitle::set(&proctitle::master(&config.proc_name));
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
            Err(err) => {
                // As Gunicorn: the running configuration and its workers stay.
                log::error(&format!(
                    "reload failed, keeping the old configuration and workers: {err}"
                ));
                return;
            }
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

    /// TERM with `--drain-delay`: readiness turns 503 everywhere while everything is still
    /// served; the stop itself begins when the delay is over (or at a second TERM).
    fn begin_drain(&mut self) {
        metrics::with(|m| m.draining.store(true, Ordering::Release));
        log::info(&format!(
            "Draining for {} s before stopping: readiness answers 503",
            self.config.drain_delay.as_secs()
        ));
        self.drain_until = Some(Instant::now() + self.config.drain_delay);
    }

    /// Stops every worker with `signal` (TERM: graceful, QUIT: quick) and waits for them up to
    /// `--graceful-timeout`, then kills what is left. INT or QUIT during a graceful stop turns it
    /// into a quick one, as current Gunicorn does.
    fn stop_workers(&mut self, signal: Signal) {
        self.state.shutting_down.store(true, Ordering::Release);
        metrics::with(|m| m.draining.store(true, Ordering::Release));
        if let Some(listener) = self.metrics_listener.take() {
            listener.close();
        }
        for listener in self.listeners.drain(..) {
            listener.close();
        }
        for pid in self.workers.keys() {
            let _ = kill(*pid, signal);
        }
        let mut quick = signal == Signal::SIGQUIT;
        let deadline = Instant::now() + self.config.graceful_timeout;
        while !self.workers.is_empty() && Instant::now() < deadline {
            self.signals().wait(STOP_POLL);
            while let Some(more) = self.signals().pop() {
                if !quick && matches!(more, Signal::SIGINT | Signal::SIGQUIT) {
                    log::info(&format!("Handling signal: {}", signals::name(more)));
                    quick = true;
                    for pid in self.workers.keys() {
                        let _ = kill(*pid, Signal::SIGQUIT);
                    }
                }
            }
            self.reap_workers();
        }
        if self.workers.is_empty() {
            return;
        }
        let pids = |workers: &HashMap<Pid, Worker>| {
            let mut pids: Vec<i32> = workers.keys().map(|p| p.as_raw()).collect();
            pids.sort();
            pids.iter()
                .map(i32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        log::warning(&format!(
            "Killing worker(s) still running after the graceful timeout ({} s): pid {}",
            self.config.graceful_timeout.as_secs(),
            pids(&self.workers)
        ));
        for pid in self.workers.keys() {
            let _ = kill(*pid, Signal::SIGKILL);
        }
        // A killed process is normally gone at once; one in uninterruptible I/O (a hung
        // disk) is not, and the stop must not wait for it for ever.
        let bound = self.config.graceful_timeout.max(Duration::from_secs(1));
        let deadline = Instant::now() + bound;
        while !self.workers.is_empty() {
            let before = self.workers.len();
            self.reap_workers();
            if self.workers.len() == before {
                if Instant::now() >= deadline {
                    log::error(&format!(
                        "Worker(s) not gone {} s after SIGKILL (uninterruptible I/O?): pid {}; \
                         exiting without them",
                        bound.as_secs(),
                        pids(&self.workers)
                    ));
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        log::info("Killed workers reaped");
    }

    fn cleanup(&mut self) {
        if let Some(pidfile) = self.pidfile.take() {
            pidfile.remove();
        }
    }
}

/// Bind hosts are names that must resolve; like Gunicorn, a failure is retried five times a
/// second apart (DNS in a starting container may lag), then named as what it is.
fn wait_for_bind_hosts(binds: &[crate::config::BindSpec]) -> Result<(), String> {
    use std::net::ToSocketAddrs;
    for bind in binds {
        let crate::config::BindSpec::Tcp { host, port } = bind else {
            continue;
        };
        for attempt in 1..=5 {
            let why = match (host.as_str(), *port).to_socket_addrs() {
                Ok(mut addrs) => match addrs.next() {
                    Some(_) => break,
                    None => "no address".to_string(),
                },
                Err(e) => e.to_string(),
            };
            if attempt == 5 {
                return Err(format!(
                    "Can't connect to ('{host}', {port}): the host does not resolve ({why})"
                ));
            }
            log::error(&format!("Cannot resolve {host:?}: {why}"));
            log::error("Retrying in 1 second.");
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    Ok(())
}

/// Raises the soft descriptor limit to the hard one, so `--worker-connections` and the
/// connections in flight on the shared queue are not cut short by a low default soft limit.
fn raise_descriptor_limit() {
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    // An unlimited hard limit is still bounded by the kernel's per-process maximum.
    let ceiling = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok())
        .map_or(hard, |nr_open| hard.min(nr_open));
    if ceiling > soft {
        match setrlimit(Resource::RLIMIT_NOFILE, ceiling, hard) {
            Ok(()) => log::debug(&format!(
                "Raised the descriptor limit from {soft} to {ceiling}"
            )),
            Err(err) => log::warning(&format!("cannot raise the descriptor limit: {err}")),
        }
    }
}
