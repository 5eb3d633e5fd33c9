//! Server metrics in one block of shared memory that the master maps before it forks: every
//! worker updates the counters and histograms with lock-free atomics, so whichever worker
//! answers `/metrics` shows the same numbers, and a worker's restart (respawn, HUP, recycling)
//! resets nothing. What every request adds to ([`Traffic`]) is kept once per CPU and summed
//! when rendered, so workers on different CPUs never write the same cache line. Per-worker
//! gauges (requests in flight, open connections) live in a slot per worker that the master
//! frees when it reaps the worker, so a dead worker's gauges vanish instead of sticking.
//!
//! [`exposition`] renders it all as Prometheus text or OpenMetrics.

pub mod exposition;

use crate::shared::{SharedMap, ZeroedIsValid};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

/// Histogram bucket bounds in seconds: 1 ms to 120 s.
pub const BUCKETS: [f64; 16] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];
/// Worker slots: as many as `--workers` allows, plus room for retiring ones during a reload.
pub const SLOTS: usize = 2 * crate::config::MAX_WORKERS as usize;
/// Copies of [`Traffic`]: a CPU numbered `n` counts in copy `n % TRAFFIC_SHARDS` (64 copies of
/// about 4 KiB; a host with more CPUs shares copies between CPUs, rarely the same moment).
pub const TRAFFIC_SHARDS: usize = 64;

/// The `route` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Health,
    Heavy,
    Ready,
    Info,
    Metrics,
    Other,
}

impl Route {
    pub const ALL: [Route; 6] = [
        Route::Health,
        Route::Heavy,
        Route::Ready,
        Route::Info,
        Route::Metrics,
        Route::Other,
    ];

    pub fn of_path(path: &str) -> Route {
        match path {
            crate::app::HEALTH_PATH => Route::Health,
            crate::app::HEAVY_PATH => Route::Heavy,
            crate::app::READY_PATH => Route::Ready,
            crate::app::INFO_PATH => Route::Info,
            crate::app::METRICS_PATH => Route::Metrics,
            _ => Route::Other,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Route::Health => "/heavy/health/",
            Route::Heavy => "/heavy/cpu-io-no-db/",
            Route::Ready => "/heavy/ready/",
            Route::Info => "/heavy/info/",
            Route::Metrics => "/metrics",
            Route::Other => "other",
        }
    }
}

pub const METHODS: [&str; 3] = ["GET", "HEAD", "other"];
pub const STATUSES: [u16; 14] = [
    200, 301, 400, 404, 405, 408, 413, 417, 431, 500, 501, 503, 505, 0,
];

fn method_index(method: &str) -> usize {
    METHODS[..2].iter().position(|m| *m == method).unwrap_or(2)
}

fn status_index(status: u16) -> usize {
    STATUSES[..13]
        .iter()
        .position(|s| *s == status)
        .unwrap_or(13)
}

/// A cumulative histogram of durations.
#[derive(Default)]
#[repr(C)]
pub struct Histogram {
    /// Observations at or below each bound (not cumulative here; summed when rendered).
    pub buckets: [AtomicU64; BUCKETS.len()],
    /// Observations above the last bound.
    pub over: AtomicU64,
    pub count: AtomicU64,
    pub sum_ns: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, value: Duration) {
        let secs = value.as_secs_f64();
        match BUCKETS.iter().position(|&b| secs <= b) {
            Some(i) => self.buckets[i].fetch_add(1, Ordering::Relaxed),
            None => self.over.fetch_add(1, Ordering::Relaxed),
        };
        self.sum_ns.fetch_add(
            value.as_nanos().min(u64::MAX as u128) as u64,
            Ordering::Relaxed,
        );
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn add(&self, other: &Histogram) {
        for (a, b) in self.buckets.iter().zip(&other.buckets) {
            add(a, b);
        }
        add(&self.over, &other.over);
        add(&self.count, &other.count);
        add(&self.sum_ns, &other.sum_ns);
    }
}

fn add(into: &AtomicU64, from: &AtomicU64) {
    into.fetch_add(from.load(Ordering::Relaxed), Ordering::Relaxed);
}

/// The phases of a heavy request, as histograms.
#[derive(Default)]
#[repr(C)]
pub struct Phases {
    pub queue: Histogram,
    pub cpu: Histogram,
    pub cpu_thread: Histogram,
    pub cpu_wait: Histogram,
    pub io: Histogram,
    pub fsync: Histogram,
    pub throttled: Histogram,
    pub steal: Histogram,
}

impl Phases {
    fn all(&self) -> [&Histogram; 8] {
        [
            &self.queue,
            &self.cpu,
            &self.cpu_thread,
            &self.cpu_wait,
            &self.io,
            &self.fsync,
            &self.throttled,
            &self.steal,
        ]
    }
}

/// What requests add to as they are answered: one copy per CPU in [`Metrics`] (read with
/// [`Metrics::totals`]). Measured side by side (health, 4x2 on 2 CPUs, wrk at 1,000
/// connections), one copy shared by all workers cost 2-3 % of the CPU per request: eight
/// atomic adds per request on cache lines both CPUs write.
#[derive(Default)]
#[repr(C, align(64))]
pub struct Traffic {
    pub requests: [[[AtomicU64; STATUSES.len()]; METHODS.len()]; Route::ALL.len()],
    pub duration: [Histogram; Route::ALL.len()],
    pub phases: Phases,
    /// Bytes read from and written to client sockets by the event loops (HTTP heads, bodies,
    /// pipelined bytes; `/metrics` scrapes included): one add per read or write call.
    pub http_received_bytes: AtomicU64,
    pub http_sent_bytes: AtomicU64,
}

impl Traffic {
    fn add(&self, other: &Traffic) {
        for (a, b) in self
            .requests
            .iter()
            .flatten()
            .flatten()
            .zip(other.requests.iter().flatten().flatten())
        {
            add(a, b);
        }
        for (a, b) in self.duration.iter().zip(&other.duration) {
            a.add(b);
        }
        for (a, b) in self.phases.all().into_iter().zip(other.phases.all()) {
            a.add(b);
        }
        add(&self.http_received_bytes, &other.http_received_bytes);
        add(&self.http_sent_bytes, &other.http_sent_bytes);
    }
}

/// One worker's gauges, on cache lines of their own (each worker writes its own).
#[derive(Default)]
#[repr(C, align(64))]
pub struct WorkerGauges {
    /// The worker's pid; 0: the slot is free.
    pub pid: AtomicI32,
    /// Requests read and not yet answered that this worker holds (in its loop or its threads).
    pub in_flight: AtomicI64,
    pub connections_active: AtomicI64,
    pub connections_idle: AtomicI64,
    /// The worker takes new connections (booted, not stopping): the others compare their share
    /// of connections with its (see `worker::event_loop`'s fair share).
    pub accepting: AtomicBool,
}

/// Why a worker exited, as the master saw it.
#[derive(Debug, Clone, Copy)]
pub enum ExitCause {
    /// Exit status 0: a graceful stop, recycling, a reload.
    Clean,
    /// A non-zero exit status.
    Error,
    /// Killed by a signal it did not handle (SIGKILL included).
    Signal,
    /// Killed by the master for a stale heartbeat (`--timeout`).
    Timeout,
}

impl ExitCause {
    pub const ALL: [ExitCause; 4] = [
        ExitCause::Clean,
        ExitCause::Error,
        ExitCause::Signal,
        ExitCause::Timeout,
    ];
    pub fn label(self) -> &'static str {
        match self {
            ExitCause::Clean => "clean",
            ExitCause::Error => "error",
            ExitCause::Signal => "signal",
            ExitCause::Timeout => "timeout",
        }
    }
}

/// Everything, in shared memory.
#[repr(C)]
pub struct Metrics {
    traffic: [Traffic; TRAFFIC_SHARDS],
    /// Requests put on the shared queue and not yet taken off it.
    pub queue_depth: AtomicI64,
    /// Heavy requests answered 503 because the shared queue was full.
    pub queue_full: AtomicU64,
    /// Datagrams on the shared queue that did not decode as a frame (each logged, and its
    /// client answered 500).
    pub queue_frames_rejected: AtomicU64,
    /// Heavy requests answered 503 at `--timeout`.
    pub request_timeouts: AtomicU64,
    pub workers_booted: AtomicU64,
    pub worker_exits: [AtomicU64; ExitCause::ALL.len()],
    /// Connections not accepted because a worker was at its connection limit.
    pub connections_refused: AtomicU64,
    /// Connections closed to make room at the connection limit (the least productive first).
    pub connections_evicted: AtomicU64,
    /// Log lines dropped because their log's destination did not keep up, by log
    /// ([`crate::log`]'s writer: 0 error, 1 access).
    pub log_lines_dropped: [AtomicU64; 2],
    /// The server has begun to stop (or drain): readiness is 503.
    pub draining: AtomicBool,
    pub workers: [WorkerGauges; SLOTS],
}

// SAFETY: atomics only.
unsafe impl ZeroedIsValid for Metrics {}

static GLOBAL: OnceLock<SharedMap<Metrics>> = OnceLock::new();

/// Maps the metrics (the master, once, before it forks; workers inherit the mapping).
pub fn init() -> std::io::Result<()> {
    if GLOBAL.get().is_none() {
        let _ = GLOBAL.set(SharedMap::new()?);
    }
    Ok(())
}

/// The process's metrics, once [`init`] ran (tests of single modules run without them).
pub fn get() -> Option<&'static Metrics> {
    GLOBAL.get().map(|m| &**m)
}

/// Adds `delta` to a gauge or counter of the metrics, if they exist.
pub fn with(f: impl FnOnce(&Metrics)) {
    if let Some(m) = get() {
        f(m)
    }
}

impl Metrics {
    /// Counts one answered request, and its duration.
    pub fn record_response(&self, path: &str, method: &str, status: u16, duration: Duration) {
        let route = Route::of_path(path) as usize;
        let t = self.traffic();
        t.requests[route][method_index(method)][status_index(status)]
            .fetch_add(1, Ordering::Relaxed);
        t.duration[route].observe(duration);
    }

    /// Counts bytes read from a client socket.
    #[inline]
    pub fn add_received(&self, bytes: usize) {
        self.traffic()
            .http_received_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Counts bytes written to a client socket.
    #[inline]
    pub fn add_sent(&self, bytes: usize) {
        self.traffic()
            .http_sent_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// The copy of the traffic counters this CPU adds to. A thread moved to another CPU
    /// meanwhile still adds correctly (the adds are atomic), only to another CPU's line.
    pub fn traffic(&self) -> &Traffic {
        // SAFETY: no arguments; glibc reads the CPU from the thread's rseq area (or asks the
        // kernel), and returns -1 only where the kernel cannot tell.
        let cpu = unsafe { libc::sched_getcpu() };
        &self.traffic[usize::try_from(cpu).unwrap_or(0) % TRAFFIC_SHARDS]
    }

    /// Every CPU's traffic counters added up, for rendering.
    pub fn totals(&self) -> Box<Traffic> {
        let total = Box::<Traffic>::default();
        for shard in &self.traffic {
            total.add(shard);
        }
        total
    }

    /// A free worker slot for `pid` (the master, at fork). `None` if all are taken: that
    /// worker's gauges go uncounted.
    pub fn claim_slot(&self, pid: i32) -> Option<usize> {
        self.workers.iter().position(|w| {
            w.pid
                .compare_exchange(0, pid, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        })
    }

    /// Frees a dead worker's slot, with its gauges (the master, when it reaps it).
    pub fn release_slot(&self, index: usize) {
        let w = &self.workers[index];
        w.in_flight.store(0, Ordering::Relaxed);
        w.connections_active.store(0, Ordering::Relaxed);
        w.connections_idle.store(0, Ordering::Relaxed);
        w.accepting.store(false, Ordering::Relaxed);
        w.pid.store(0, Ordering::Release);
    }

    pub fn live_workers(&self) -> impl Iterator<Item = &WorkerGauges> {
        self.workers
            .iter()
            .filter(|w| w.pid.load(Ordering::Acquire) != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_put_each_value_in_one_bucket() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_millis(1));
        h.observe(Duration::from_millis(70));
        h.observe(Duration::from_secs(500));
        let b: Vec<u64> = h
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        assert_eq!(b[0], 2, "1 ms is in the 1 ms bucket (le)");
        assert_eq!(b[6], 1, "70 ms is in the 100 ms bucket");
        assert_eq!(h.over.load(Ordering::Relaxed), 1);
        assert_eq!(h.count.load(Ordering::Relaxed), 4);
    }

    #[test]
    fn slots_are_claimed_once_and_freed_with_their_gauges() {
        let m: SharedMap<Metrics> = SharedMap::new().unwrap();
        let a = m.claim_slot(100).unwrap();
        let b = m.claim_slot(200).unwrap();
        assert_ne!(a, b);
        m.workers[a].in_flight.store(3, Ordering::Relaxed);
        assert_eq!(m.live_workers().count(), 2);
        m.release_slot(a);
        assert_eq!(m.live_workers().count(), 1);
        assert_eq!(m.workers[a].in_flight.load(Ordering::Relaxed), 0);
        assert_eq!(m.claim_slot(300), Some(a), "a freed slot is reused");
    }

    #[test]
    fn every_cpus_traffic_is_in_the_totals() {
        let m: SharedMap<Metrics> = SharedMap::new().unwrap();
        // As if answered on three different CPUs (the first and last copies among them).
        for (shard, ms) in [(0, 2), (1, 70), (TRAFFIC_SHARDS - 1, 500)] {
            let t = &m.traffic[shard];
            t.requests[Route::Heavy as usize][0][0].fetch_add(1, Ordering::Relaxed);
            t.duration[Route::Heavy as usize].observe(Duration::from_millis(ms));
            t.phases.steal.observe(Duration::from_millis(ms));
            t.http_sent_bytes.fetch_add(100, Ordering::Relaxed);
        }
        m.add_received(7);
        let total = m.totals();
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        assert_eq!(load(&total.requests[Route::Heavy as usize][0][0]), 3);
        let d = &total.duration[Route::Heavy as usize];
        assert_eq!(load(&d.count), 3);
        assert_eq!(load(&d.sum_ns), 572_000_000);
        assert_eq!((load(&d.buckets[1]), load(&d.buckets[6])), (1, 1));
        assert_eq!(load(&d.buckets[8]), 1, "500 ms is in the 500 ms bucket");
        assert_eq!(load(&total.phases.steal.count), 3);
        assert_eq!(load(&total.http_sent_bytes), 300);
        assert_eq!(
            load(&total.http_received_bytes),
            7,
            "this CPU's copy counts too"
        );
        assert_eq!(
            m.totals().requests[1][0][0].load(Ordering::Relaxed),
            3,
            "reading adds nothing"
        );
    }

    #[test]
    fn labels_cover_every_value() {
        assert_eq!(method_index("GET"), 0);
        assert_eq!(method_index("DELETE"), 2);
        assert_eq!(
            STATUSES[status_index(418)],
            0,
            "other statuses share one label"
        );
        assert_eq!(Route::of_path("/nope"), Route::Other);
    }
}
