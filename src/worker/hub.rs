//! What a worker's event loop and its handler threads share, and how they hand work to each
//! other: the loop gives a thread a request (through the shared queue, or while stopping through
//! the local one), the thread gives the loop back the connection with the finished response.

use super::queue::{Job, JobQueue, Peer};
use crate::app::{App, Response};
use crate::config::Config;
use crate::http::RequestHead;
use crate::metrics::{Metrics, WorkerGauges};
use crate::shared::{ServerState, SharedMap, WorkerSlot};
use nix::sys::eventfd::{EfdFlags, EventFd};
use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// A request a handler thread has finished: the event loop writes and logs the answer.
pub struct Finished {
    pub head: RequestHead,
    pub response: Response,
    /// The request was stopped at `--timeout` (its answer is the 503 that says so).
    pub timed_out: bool,
}

/// A connection going (back) to an event loop: after a heavy request, or adopted from a
/// retiring sibling (`finished: None`).
pub struct Handback {
    pub fd: OwnedFd,
    pub peer: Peer,
    /// Requests answered on the connection before (the one finished here included).
    pub served: u64,
    /// Bytes of the next request(s) already read.
    pub leftover: Vec<u8>,
    /// When the finished request's first byte arrived (`CLOCK_MONOTONIC` ns).
    pub received_ns: u64,
    pub finished: Option<Box<Finished>>,
}

impl Handback {
    /// A connection passed on by a retiring sibling, between requests: no answer to write.
    pub fn adopted(fd: OwnedFd, peer: Peer, served: u64, leftover: Vec<u8>) -> Self {
        Handback {
            fd,
            peer,
            served,
            leftover,
            received_ns: 0,
            finished: None,
        }
    }
}

/// Heavy requests for this worker's own threads: while it stops (never put on the shared queue,
/// so no request can be left there after the last worker drained it), and while it serves, the
/// ones an idle thread of its own can take at once (no trip through the shared queue).
#[derive(Default)]
struct Local {
    jobs: VecDeque<(Job, OwnedFd)>,
    /// Threads waiting for a local job (the worker is stopping).
    parked: usize,
    /// The loop has finished: parked threads exit.
    exit: bool,
}

pub struct Hub {
    pub app: Arc<App>,
    pub config: Arc<Config>,
    pub queue: Arc<JobQueue>,
    pub state: Arc<SharedMap<ServerState>>,
    pub slot: Arc<SharedMap<WorkerSlot>>,
    /// The worker is shutting down: no keep-alive, no new work from the shared queue.
    stopping: AtomicBool,
    /// Readable once the worker stops (never read back): wakes threads waiting on the queue.
    pub stop_signal: EventFd,
    local: Mutex<Local>,
    local_ready: Condvar,
    handbacks: Mutex<Vec<Handback>>,
    /// Signalled when the loop takes the handbacks (room for more).
    handbacks_taken: Condvar,
    /// Wakes the event loop when a connection is handed back.
    pub wake: EventFd,
    /// Wakes an idle thread of this worker for a local job (a semaphore: one read, one wake).
    pub local_wake: EventFd,
    /// Idle threads not yet claimed by a local job: a thread adds itself before it waits for
    /// work and takes itself off when it wakes; [`Hub::offer_local`] claims one. A thread that
    /// finds none left to take off was claimed, and serves a local job first.
    pub idle_threads: AtomicUsize,
    /// Per handler thread: when its current request started ([`crate::shared::monotonic_ms`]),
    /// 0 when idle. The event loop turns this into the heartbeat.
    pub busy_since_ms: Vec<AtomicU64>,
    /// The shared metrics, handed in (absent in tests of single modules).
    pub metrics: Option<&'static Metrics>,
    /// This worker's gauges in them.
    pub gauges: Option<&'static WorkerGauges>,
}

impl Hub {
    pub fn new(
        app: Arc<App>,
        config: Arc<Config>,
        queue: Arc<JobQueue>,
        state: Arc<SharedMap<ServerState>>,
        slot: Arc<SharedMap<WorkerSlot>>,
        metrics: Option<&'static Metrics>,
        metrics_slot: Option<usize>,
    ) -> nix::Result<Hub> {
        let gauges = metrics.zip(metrics_slot).map(|(m, i)| &m.workers[i]);
        let threads = config.threads;
        let eventfd =
            || EventFd::from_value_and_flags(0, EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC);
        Ok(Hub {
            app,
            config,
            queue,
            state,
            slot,
            stopping: AtomicBool::new(false),
            stop_signal: eventfd()?,
            local: Mutex::new(Local::default()),
            local_ready: Condvar::new(),
            handbacks: Mutex::new(Vec::new()),
            handbacks_taken: Condvar::new(),
            wake: eventfd()?,
            // A semaphore: one wake-up per job offered. A plain counter let the first thread
            // woken read every offer's wake-up at once, and a second idle thread, woken for
            // the second job, found nothing to read and slept on while the job waited.
            local_wake: EventFd::from_value_and_flags(
                0,
                EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_SEMAPHORE,
            )?,
            idle_threads: AtomicUsize::new(0),
            busy_since_ms: (0..threads).map(|_| AtomicU64::new(0)).collect(),
            metrics,
            gauges,
        })
    }

    /// Runs `f` on the shared metrics, if there are any.
    pub fn count(&self, f: impl FnOnce(&Metrics)) {
        if let Some(m) = self.metrics {
            f(m)
        }
    }

    /// Requests this worker holds (read and not yet answered): `+1` when it takes one, `-1`
    /// when it answers one or passes it on.
    pub fn in_flight(&self, delta: i64) {
        if let Some(g) = self.gauges {
            g.in_flight.fetch_add(delta, Ordering::Relaxed);
        }
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// From now on threads take work only from the local queue.
    pub fn begin_stop(&self) {
        self.stopping.store(true, Ordering::Release);
        let _ = self.stop_signal.write(1);
        self.local_ready.notify_all();
    }

    fn local(&self) -> MutexGuard<'_, Local> {
        self.local.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// While serving: gives the job to an idle thread of this worker if one is free for it
    /// (claiming it), and wakes it. The job comes back if none is: it goes on the shared
    /// queue, where any idle thread of any worker takes it.
    pub fn offer_local(&self, job: Job, fd: OwnedFd) -> Option<(Job, OwnedFd)> {
        let mut local = self.local();
        if !take_one(&self.idle_threads) {
            return Some((job, fd));
        }
        local.jobs.push_back((job, fd));
        drop(local);
        let _ = self.local_wake.write(1);
        None
    }

    pub fn has_local(&self) -> bool {
        !self.local().jobs.is_empty()
    }

    /// Whether an idle thread of this worker is free for one more local job.
    pub fn has_idle_thread(&self) -> bool {
        self.idle_threads.load(Ordering::Acquire) > 0
    }

    /// A thread woke: it takes itself off the idle count. False if an offer had claimed its
    /// place (the count was already down to zero): a local job is this thread's.
    pub fn leave_idle(&self) -> bool {
        let _local = self.local();
        take_one(&self.idle_threads)
    }

    /// A local job, if one waits (for a thread of a serving worker; never blocks).
    pub fn try_local(&self) -> Option<(Job, OwnedFd)> {
        self.local().jobs.pop_front()
    }

    pub fn push_local(&self, job: Job, fd: OwnedFd) {
        self.local().jobs.push_back((job, fd));
        self.local_ready.notify_one();
    }

    /// For a thread of a stopping worker: the next local job, waiting for one until the loop
    /// says there will be none (`None`: exit).
    pub fn next_local(&self) -> Option<(Job, OwnedFd)> {
        let mut local = self.local();
        loop {
            if let Some(job) = local.jobs.pop_front() {
                return Some(job);
            }
            if local.exit {
                return None;
            }
            local.parked += 1;
            local = self
                .local_ready
                .wait(local)
                .unwrap_or_else(|e| e.into_inner());
            local.parked -= 1;
        }
    }

    /// For the loop of a stopping worker: if every thread waits for local work, none is queued
    /// and no connection is on its way back, tells the threads to exit and returns true. A
    /// thread hands its connection back before it parks, so "all parked" with nothing handed
    /// back means nothing is left in flight.
    pub fn try_finish(&self) -> bool {
        let mut local = self.local();
        if !local.jobs.is_empty() || local.parked < self.busy_since_ms.len() {
            return false;
        }
        if !self
            .handbacks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
        {
            return false;
        }
        local.exit = true;
        self.local_ready.notify_all();
        true
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
        let taken = std::mem::take(&mut *self.handbacks.lock().unwrap_or_else(|e| e.into_inner()));
        self.handbacks_taken.notify_all();
        taken
    }

    /// For a thread about to take work from the shared queue: waits while as many connections
    /// as there are threads wait for the loop to take them back. A loop that falls behind (a
    /// busy machine) then cannot be buried under connections its threads keep receiving: each
    /// holds a descriptor, and the worker's reserve counts on at most that many.
    pub fn wait_for_room(&self) {
        let limit = self.busy_since_ms.len();
        let mut pending = self.handbacks.lock().unwrap_or_else(|e| e.into_inner());
        while pending.len() >= limit && !self.is_stopping() {
            pending = self
                .handbacks_taken
                .wait_timeout(pending, std::time::Duration::from_millis(100))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// Takes one off a count if it is above zero.
fn take_one(count: &AtomicUsize) -> bool {
    count
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
        .is_ok()
}
