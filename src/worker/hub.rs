//! What a worker's event loop and its handler threads share.

use super::queue::{Job, JobQueue};
use crate::app::App;
use crate::config::Config;
use crate::shared::{ServerState, SharedMap, WorkerSlot};
use nix::sys::eventfd::{EfdFlags, EventFd};
use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

/// A kept-alive connection going back from a handler thread to its worker's event loop.
pub struct Handback {
    pub fd: OwnedFd,
    /// Bytes of the next request(s) already read.
    pub leftover: Vec<u8>,
    pub peer: String,
}

pub struct Hub {
    pub app: Arc<App>,
    pub config: Arc<Config>,
    pub queue: Arc<JobQueue>,
    pub state: Arc<SharedMap<ServerState>>,
    pub slot: Arc<SharedMap<WorkerSlot>>,
    /// The worker is shutting down: no keep-alive, no new work from the shared queue (unless it
    /// is the last serving worker and drains it).
    pub stopping: AtomicBool,
    /// The event loop has closed its last connection; nothing more comes from it.
    pub loop_done: AtomicBool,
    /// Heavy requests of a stopping worker: run by its own threads, never put on the shared
    /// queue, so no request can be left there after the last worker drained it.
    local: Mutex<VecDeque<(Job, OwnedFd)>>,
    local_ready: Condvar,
    handbacks: Mutex<Vec<Handback>>,
    /// Wakes the event loop when a connection is handed back.
    pub wake: EventFd,
    /// Per handler thread: when its current request started ([`crate::shared::monotonic_ms`]),
    /// 0 when idle. The event loop turns this into the heartbeat.
    pub busy_since_ms: Vec<AtomicU64>,
}

impl Hub {
    pub fn new(
        app: Arc<App>,
        config: Arc<Config>,
        queue: Arc<JobQueue>,
        state: Arc<SharedMap<ServerState>>,
        slot: Arc<SharedMap<WorkerSlot>>,
    ) -> nix::Result<Hub> {
        let threads = config.threads;
        Ok(Hub {
            app,
            config,
            queue,
            state,
            slot,
            stopping: AtomicBool::new(false),
            loop_done: AtomicBool::new(false),
            local: Mutex::new(VecDeque::new()),
            local_ready: Condvar::new(),
            handbacks: Mutex::new(Vec::new()),
            wake: EventFd::from_value_and_flags(0, EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)?,
            busy_since_ms: (0..threads).map(|_| AtomicU64::new(0)).collect(),
        })
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    pub fn push_local(&self, job: Job, fd: OwnedFd) {
        self.local
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back((job, fd));
        self.local_ready.notify_one();
    }

    pub fn pop_local(&self) -> Option<(Job, OwnedFd)> {
        self.local
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front()
    }

    pub fn local_is_empty(&self) -> bool {
        self.local
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }

    /// Sleeps until a local job arrives or `timeout` passes.
    pub fn wait_local(&self, timeout: std::time::Duration) {
        let guard = self.local.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_empty() {
            let _ = self.local_ready.wait_timeout(guard, timeout);
        }
    }

    pub fn notify_all_local(&self) {
        self.local_ready.notify_all();
    }

    pub fn hand_back(&self, handback: Handback) {
        self.handbacks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(handback);
        let _ = self.wake.write(1);
    }

    pub fn take_handbacks(&self) -> Vec<Handback> {
        let _ = self.wake.read();
        std::mem::take(&mut *self.handbacks.lock().unwrap_or_else(|e| e.into_inner()))
    }
}
