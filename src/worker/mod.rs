//! A worker process: one event loop thread that owns the connections, and `--threads` handler
//! threads that run heavy requests taken from the queue shared by all workers.
//!
//! ```text
//!  listeners ──accept──▶ event loop ──health, errors──▶ answered inline
//!                          │   ▲
//!            heavy request │   │ keep-alive connection handed back
//!                          ▼   │
//!              shared queue (all workers) ──▶ handler threads (any worker)
//! ```
//!
//! The worker knows HTTP (through `crate::http`) and the application (through `crate::app`); the
//! master knows neither, it only forks [`run`] and watches the [`WorkerSlot`] heartbeat.

mod connection;
mod event_loop;
mod handler;
mod hub;
pub mod queue;
mod socket;

use crate::app::io_store::DataFile;
use crate::app::App;
use crate::config::Config;
use crate::log;
use crate::shared::{monotonic_ms, ServerState, SharedMap, WorkerSlot};
use crate::signals::SignalPipe;
use queue::JobQueue;
use std::os::fd::RawFd;
use std::sync::Arc;

/// Exit status of a worker that could not boot: the master stops and exits with it too
/// (Gunicorn's WORKER_BOOT_ERROR).
pub const BOOT_ERROR: i32 = 3;

/// Everything a worker inherits from the master at fork.
pub struct WorkerContext {
    pub config: Arc<Config>,
    pub listeners: Vec<RawFd>,
    pub queue: Arc<JobQueue>,
    pub state: Arc<SharedMap<ServerState>>,
    pub slot: Arc<SharedMap<WorkerSlot>>,
    /// This worker's `--max-requests` after jitter (0: unlimited).
    pub max_requests: u64,
    /// The master's pid: when the worker's parent is no longer this, the master is gone.
    pub master_pid: i32,
}

/// Runs a worker to completion and returns its exit status. Called in the child after fork.
pub fn run(ctx: WorkerContext) -> i32 {
    let pid = std::process::id();
    log::info(&format!("Booting worker with pid: {pid}"));
    ctx.slot.beat(monotonic_ms());

    let signals = match install_signals() {
        Ok(s) => s,
        Err(err) => return boot_failure(&format!("cannot install signal handlers: {err}")),
    };
    for &fd in &ctx.listeners {
        if let Err(err) = socket::check_listener(fd) {
            return boot_failure(&format!("listener fd {fd} is not usable: {err}"));
        }
    }
    let data = DataFile::new(&ctx.config.io_file);
    if let Err(err) = data.prepare() {
        return boot_failure(&format!(
            "cannot use io file {}: {err}",
            data.path().display()
        ));
    }
    let app = Arc::new(App::new(ctx.config.app_limits, data));

    match event_loop::EventLoop::new(ctx, app, signals) {
        Ok(mut event_loop) => {
            event_loop.run();
            log::info(&format!("Worker exiting (pid: {pid})"));
            0
        }
        Err(err) => boot_failure(&format!("cannot start the event loop: {err}")),
    }
}

fn boot_failure(message: &str) -> i32 {
    log::error(&format!("Exception in worker process: {message}"));
    BOOT_ERROR
}

/// Gunicorn's worker signal table: TERM graceful, INT/QUIT quick, ABRT exit 1 (the master's
/// timeout kill), USR1 reopen logs; HUP and USR2 keep their default action (they kill a worker),
/// WINCH and PIPE are ignored.
fn install_signals() -> std::io::Result<SignalPipe> {
    use nix::sys::signal::{signal, SigHandler, Signal};
    // SAFETY: setting dispositions to SIG_DFL/SIG_IGN installs no Rust code as a handler.
    unsafe {
        for sig in [
            Signal::SIGHUP,
            Signal::SIGUSR2,
            Signal::SIGTTIN,
            Signal::SIGTTOU,
            Signal::SIGCHLD,
        ] {
            signal(sig, SigHandler::SigDfl).map_err(std::io::Error::from)?;
        }
        signal(Signal::SIGWINCH, SigHandler::SigIgn).map_err(std::io::Error::from)?;
        signal(Signal::SIGPIPE, SigHandler::SigIgn).map_err(std::io::Error::from)?;
        // The master's timeout kill must work even if the event loop is wedged: exit from the
        // handler itself (_exit is async-signal-safe).
        signal_hook::low_level::register(libc::SIGABRT, || libc::_exit(1))?;
    }
    let pipe = SignalPipe::install(&[libc::SIGTERM, libc::SIGINT, libc::SIGQUIT, libc::SIGUSR1])?;
    // The master forked us with every signal blocked; what arrived meanwhile is delivered now,
    // to these handlers.
    nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&nix::sys::signal::SigSet::empty()),
        None,
    )?;
    Ok(pipe)
}
