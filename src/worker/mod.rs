//! A worker process: one event loop thread that owns the connections and does all their I/O,
//! and `--threads` handler threads that only compute heavy requests taken from the queue shared
//! by all workers.
//!
//! ```text
//!  listeners ──accept──▶ event loop ──health, errors──▶ answered inline
//!                          │   ▲
//!            heavy request │   │ connection + finished response handed back; the loop writes it
//!                          ▼   │
//!              shared queue (all workers) ──▶ handler threads (any worker)
//! ```
//!
//! The worker knows HTTP (through `crate::http`) and the application (through `crate::app`); the
//! master knows neither, it only forks [`run`] and watches the [`WorkerSlot`] heartbeat.

mod accept;
mod conn_io;
mod connection;
mod conns;
mod dispatch;
mod event_loop;
mod handler;
mod hub;
pub mod queue;
mod scrape;
mod socket;

use crate::app::App;
use crate::config::Config;
use crate::io_store::DataFile;
use crate::log;
use crate::shared::{monotonic_ms, ServerState, SharedMap, WorkerSlot};
use crate::signals::SignalPipe;
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use queue::JobQueue;
use std::os::fd::OwnedFd;
use std::sync::Arc;

/// Exit status of a worker that could not boot: the master stops and exits with it too
/// (Gunicorn's WORKER_BOOT_ERROR).
pub const BOOT_ERROR: i32 = 3;

/// A listening socket, now the worker's own (the master checked it at bind).
pub struct WorkerListener {
    pub fd: OwnedFd,
    /// Its address, as `Listening at:` shows it (the metrics' `listener` label).
    pub url: String,
    /// The `--metrics-bind` listener: it serves `/metrics` only.
    pub metrics: bool,
}

/// Everything a worker inherits from the master at fork.
pub struct WorkerContext {
    pub config: Arc<Config>,
    pub listeners: Vec<WorkerListener>,
    pub queue: Arc<JobQueue>,
    pub state: Arc<SharedMap<ServerState>>,
    pub slot: Arc<SharedMap<WorkerSlot>>,
    /// This worker's `--max-requests` after jitter (0: unlimited).
    pub max_requests: u64,
    /// The master's pid: when the worker's parent is no longer this, the master is gone.
    pub master_pid: i32,
    /// The shared metrics (handed in by the master, which maps them before it forks), and this
    /// worker's slot in them.
    pub metrics: Option<&'static crate::metrics::Metrics>,
    pub metrics_slot: Option<usize>,
    /// What `/heavy/info/` answers, and the platform labels of the metrics.
    pub info: Arc<serde_json::Value>,
    pub platform_labels: Vec<(&'static str, String)>,
}

/// Runs a worker to completion and returns its exit status. Called in the child after fork.
pub fn run(ctx: WorkerContext) -> i32 {
    let pid = std::process::id();
    log::info(&format!("Booting worker with pid: {pid}"));
    ctx.slot.beat(monotonic_ms());

    match ctx.config.fault_worker_boot.as_deref() {
        Some("panic") => panic!("fault injection: a panic while booting"),
        Some(_) => return boot_failure("fault injection: a boot error"),
        None => {}
    }
    let signals = match install_signals() {
        Ok(s) => s,
        Err(err) => return boot_failure(&format!("cannot install signal handlers: {err}")),
    };
    // The master prepared the data file at start; a fault in it now (deleted, read-only, full)
    // fails heavy requests with a 5xx until it clears, never the boot of a replacement worker.
    let data = DataFile::new(&ctx.config.io_file);
    let app = Arc::new(App::new(ctx.config.app_limits, data).with_info(&ctx.info));

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

/// The master's timeout kill must work even if the event loop is wedged: exit from the handler
/// itself.
extern "C" fn exit_on_abort(_: libc::c_int) {
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(1) }
}

/// Gunicorn's worker signal table: TERM graceful, INT/QUIT quick, ABRT exit 1 (the master's
/// timeout kill), USR1 reopen logs; HUP and USR2 keep their default action (they kill a worker),
/// WINCH is ignored. (SIGPIPE is ignored by the Rust runtime, and every send says MSG_NOSIGNAL.)
fn install_signals() -> std::io::Result<SignalPipe> {
    let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
    let abort = SigAction::new(
        SigHandler::Handler(exit_on_abort),
        SaFlags::empty(),
        SigSet::empty(),
    );
    // SAFETY: SIG_DFL/SIG_IGN install no code; `exit_on_abort` is async-signal-safe.
    unsafe {
        for sig in [
            Signal::SIGHUP,
            Signal::SIGUSR2,
            Signal::SIGTTIN,
            Signal::SIGTTOU,
            Signal::SIGCHLD,
        ] {
            sigaction(sig, &default)?;
        }
        sigaction(Signal::SIGWINCH, &ignore)?;
        sigaction(Signal::SIGABRT, &abort)?;
    }
    let pipe = SignalPipe::install(&[
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
    ])?;
    // The master forked us with every signal blocked; what arrived meanwhile is delivered now,
    // to these handlers.
    nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&SigSet::empty()),
        None,
    )?;
    Ok(pipe)
}
