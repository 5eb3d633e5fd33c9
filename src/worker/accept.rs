//! Accepting connections: the listeners in the epoll set, taking turns with the other workers,
//! backing off when descriptors run out, and the per-worker connection limit — derived from
//! descriptors and memory unless `--worker-connections` says otherwise.

use super::queue::Peer;
use super::socket::{peer_of, set_nodelay};
use super::WorkerListener;
use crate::config::Config;
use crate::log;
use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollEvent, EpollFlags};
use nix::sys::socket::{accept4, SockFlag};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// After running out of descriptors, pause accepting for this long.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// How often at most the "at the connection limit" warning is logged.
const LIMIT_WARNING_EVERY: Duration = Duration::from_secs(10);
/// The memory all workers' unfinished heads may hold at most, by default: this, or a quarter of
/// the cgroup's memory limit if that is less (the rest is the application's and the kernel's).
pub const HEAD_MEMORY_BUDGET: u64 = 256 << 20;

/// Descriptors a worker needs besides its connections: listeners, epoll sets, the signal pipe,
/// event fds, log files, and per handler thread a received connection, one waiting to be taken
/// back by the loop (`Hub::wait_for_room` bounds those), and a data-file open.
fn reserved_descriptors(threads: usize, listeners: usize) -> usize {
    32 + listeners + 3 * threads
}

/// What decides a worker's connection limit.
#[derive(Debug, Clone, Copy)]
pub struct LimitInputs {
    /// The soft descriptor limit (`None`: unknown).
    pub descriptors: Option<u64>,
    pub listeners: usize,
    pub threads: usize,
    pub workers: usize,
    /// `--worker-connections`, if given.
    pub wanted: Option<usize>,
    /// The most one connection can hold while its head is unfinished.
    pub per_connection: u64,
    /// The cgroup's memory limit, if any.
    pub memory_limit: Option<u64>,
}

/// The connection limit of one worker, and why it is what it is (for the boot log). Without
/// `--worker-connections` it is the least of what the descriptors allow (less the reserve
/// above, so a connection received from the shared queue can always be installed and answered)
/// and what keeps every worker's worst-case head memory within [`HEAD_MEMORY_BUDGET`] (or a
/// quarter of the memory limit). `--worker-connections` replaces the memory bound, never the
/// descriptor one.
pub fn connection_limit(i: &LimitInputs) -> (usize, String) {
    let fits = i.descriptors.map(|soft| {
        usize::try_from(soft)
            .unwrap_or(usize::MAX)
            .saturating_sub(reserved_descriptors(i.threads, i.listeners))
            .max(1)
    });
    let budget = match i.memory_limit {
        Some(limit) => HEAD_MEMORY_BUDGET.min(limit / 4),
        None => HEAD_MEMORY_BUDGET,
    };
    let by_memory =
        usize::try_from(budget / i.per_connection.max(1) / i.workers.max(1) as u64).unwrap_or(1);
    let by_memory = by_memory.max(1);
    match (i.wanted, fits) {
        (Some(wanted), Some(fits)) if fits < wanted => (
            fits,
            format!(
                "--worker-connections {wanted} lowered to {fits}: the descriptor limit is {}",
                i.descriptors.unwrap_or_default()
            ),
        ),
        (Some(wanted), _) => (wanted, format!("--worker-connections {wanted}")),
        (None, Some(fits)) if fits < by_memory => (
            fits,
            format!(
                "{fits} per worker: the descriptor limit ({}) less a reserve",
                i.descriptors.unwrap_or_default()
            ),
        ),
        (None, _) => (
            by_memory,
            format!(
                "{by_memory} per worker: {} workers x {by_memory} x {} KiB of unfinished head \
                 at most fit in {} MiB",
                i.workers,
                i.per_connection / 1024,
                budget >> 20
            ),
        ),
    }
}

/// What one accept gave.
pub enum Accepted {
    Conn {
        fd: OwnedFd,
        peer: Peer,
        metrics_port: bool,
    },
    /// Nothing (another worker was quicker, or the client gave up), or accepting paused.
    Nothing,
}

/// The worker's listening sockets and whether the worker is taking connections from them.
pub struct Acceptor {
    /// Owned by this worker (closed when it stops).
    listeners: Vec<OwnedFd>,
    urls: Vec<String>,
    is_metrics: Vec<bool>,
    listening: bool,
    paused_until: Option<Instant>,
    /// Most connections held at once (see [`connection_limit`]).
    limit: usize,
    /// When the "at the connection limit" warning was last logged.
    limit_warned: Option<Instant>,
}

impl Acceptor {
    pub fn new(listeners: Vec<WorkerListener>, config: &Config, per_connection: u64) -> Acceptor {
        let inputs = LimitInputs {
            descriptors: nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
                .ok()
                .map(|(soft, _)| soft),
            listeners: listeners.len(),
            threads: config.threads,
            workers: config.workers,
            wanted: config.worker_connections,
            per_connection,
            memory_limit: crate::platform::cgroup::Cgroup::current().memory_limit(),
        };
        let (limit, why) = connection_limit(&inputs);
        if why.contains("lowered") {
            log::warning(&why);
        } else {
            log::debug(&format!("Connection limit: {why}"));
        }
        Acceptor {
            urls: listeners.iter().map(|l| l.url.clone()).collect(),
            is_metrics: listeners.iter().map(|l| l.metrics).collect(),
            listeners: listeners.into_iter().map(|l| l.fd).collect(),
            listening: false,
            paused_until: None,
            limit,
            limit_warned: None,
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Until when accepting is paused after running out of descriptors.
    pub fn paused_until(&self) -> Option<Instant> {
        self.paused_until
    }

    /// Whether accepting is on hold (at the limit, out of descriptors, or stopped).
    pub fn is_holding_off(&self) -> bool {
        !self.listening && !self.listeners.is_empty()
    }

    pub fn has_metrics_listener(&self) -> bool {
        self.is_metrics.contains(&true)
    }

    /// Each listener's descriptor and address (the scrape reads their backlogs).
    pub fn listeners(&self) -> impl Iterator<Item = (i32, &str)> {
        self.listeners
            .iter()
            .zip(&self.urls)
            .map(|(fd, url)| (fd.as_raw_fd(), url.as_str()))
    }

    pub fn set_listening(&mut self, epoll: &Epoll, on: bool) {
        if on == self.listening {
            return;
        }
        for (index, fd) in self.listeners.iter().enumerate() {
            let result = if on {
                let flags = EpollFlags::EPOLLIN | EpollFlags::EPOLLEXCLUSIVE;
                epoll.add(fd, EpollEvent::new(flags, index as u64))
            } else {
                epoll.delete(fd)
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

    /// The worker stops: no more connections; the listeners close.
    pub fn close(&mut self, epoll: &Epoll) {
        self.set_listening(epoll, false);
        self.listeners.clear();
    }

    /// Takes one connection from listener `index` (one per wake-up, then this worker takes its
    /// turn at the back: so even 64 connections arriving at once spread within 1.5x across 4
    /// workers, `bench/balance.py`).
    pub fn accept(&mut self, epoll: &Epoll, index: usize) -> Accepted {
        let Some(listener) = self.listeners.get(index) else {
            return Accepted::Nothing;
        };
        match accept4(
            listener.as_fd(),
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        ) {
            Ok(fd) => {
                // Once per connection: the option stays with the socket when it travels to a
                // thread or another worker and back.
                set_nodelay(fd.as_fd());
                let peer = peer_of(fd.as_fd());
                self.take_turn(epoll, index);
                Accepted::Conn {
                    fd,
                    peer,
                    metrics_port: self.is_metrics[index],
                }
            }
            Err(Errno::EAGAIN) | Err(Errno::ECONNABORTED) | Err(Errno::EINTR) => Accepted::Nothing,
            Err(Errno::EMFILE) | Err(Errno::ENFILE) | Err(Errno::ENOBUFS) | Err(Errno::ENOMEM) => {
                log::warning("out of file descriptors; pausing accept");
                self.set_listening(epoll, false);
                self.paused_until = Some(Instant::now() + ACCEPT_BACKOFF);
                Accepted::Nothing
            }
            Err(err) => {
                log::error(&format!("accept failed: {err}"));
                Accepted::Nothing
            }
        }
    }

    /// At the limit with nothing to evict: leave further connections in the kernel's backlog
    /// (for other workers, or for later), and say so.
    pub fn hold_off(&mut self, epoll: &Epoll, metrics: Option<&crate::metrics::Metrics>) {
        if let Some(m) = metrics {
            m.connections_refused
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let now = Instant::now();
        if self
            .limit_warned
            .is_none_or(|at| now >= at + LIMIT_WARNING_EVERY)
        {
            self.limit_warned = Some(now);
            log::warning(&format!(
                "Worker at its connection limit ({}), every connection busy: new connections \
                 wait in the listen backlog",
                self.limit
            ));
        }
        self.set_listening(epoll, false);
    }

    /// Moves this worker to the back of the listener's queue of waiters. With `EPOLLEXCLUSIVE`
    /// the kernel wakes the first waiting epoll set in the order they were registered, so
    /// without this the first worker to register takes nearly every connection (measured: 59
    /// of 64); re-registering after each accept makes the workers take turns.
    fn take_turn(&mut self, epoll: &Epoll, index: usize) {
        let Some(fd) = self.listeners.get(index) else {
            return;
        };
        let flags = EpollFlags::EPOLLIN | EpollFlags::EPOLLEXCLUSIVE;
        let rotated = epoll
            .delete(fd)
            .and_then(|()| epoll.add(fd, EpollEvent::new(flags, index as u64)));
        if let Err(err) = rotated {
            log::error(&format!("cannot re-register a listener: {err}"));
        }
    }

    /// Listens again once an accept pause is over and there is room for one more connection.
    pub fn resume(&mut self, epoll: &Epoll, now: Instant, room: bool) {
        if self.listeners.is_empty() {
            return;
        }
        if self.paused_until.is_some_and(|until| now >= until) {
            self.paused_until = None;
        }
        if !self.listening && self.paused_until.is_none() && room {
            self.set_listening(epoll, true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> LimitInputs {
        LimitInputs {
            descriptors: Some(1_048_576),
            listeners: 1,
            threads: 4,
            workers: 4,
            wanted: None,
            per_connection: 80 * 1024,
            memory_limit: None,
        }
    }

    #[test]
    fn with_many_descriptors_memory_bounds_the_default() {
        let (limit, why) = connection_limit(&inputs());
        assert_eq!(limit, (256 << 20) / (80 * 1024) / 4);
        assert!(why.contains("256 MiB"), "{why}");
        let total = limit as u64 * 4 * 80 * 1024;
        assert!(total <= HEAD_MEMORY_BUDGET);
    }

    #[test]
    fn a_small_memory_limit_lowers_the_default() {
        let small = LimitInputs {
            memory_limit: Some(512 << 20),
            ..inputs()
        };
        let (limit, why) = connection_limit(&small);
        assert_eq!(limit, (128 << 20) / (80 * 1024) / 4);
        assert!(why.contains("128 MiB"), "{why}");
    }

    #[test]
    fn few_descriptors_bound_the_default_and_worker_connections() {
        let few = LimitInputs {
            descriptors: Some(1024),
            workers: 1,
            ..inputs()
        };
        assert_eq!(connection_limit(&few).0, 1024 - (32 + 1 + 12));
        let wanted = LimitInputs {
            wanted: Some(5000),
            ..few
        };
        let (limit, why) = connection_limit(&wanted);
        assert_eq!(limit, 1024 - 45);
        assert!(why.contains("lowered"), "{why}");
        let set = LimitInputs {
            wanted: Some(5000),
            ..inputs()
        };
        assert_eq!(
            connection_limit(&set).0,
            5000,
            "--worker-connections replaces the memory bound"
        );
    }
}
