//! Accepting connections: the listeners in the epoll set, the per-worker connection limit, and
//! backing off when descriptors run out.

use super::connection::Conn;
use super::event_loop::EventLoop;
use super::queue::Peer;
use super::socket::{peer_of, set_nodelay};
use crate::config::Config;
use crate::log;
use nix::errno::Errno;
use nix::sys::epoll::{EpollEvent, EpollFlags};
use nix::sys::resource::{getrlimit, Resource};
use nix::sys::socket::{accept4, SockFlag};
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

/// After running out of descriptors, pause accepting for this long.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Most connections accepted per wake-up of one listener before this worker takes its turn at
/// the back of the queue (see `take_turn`): one, so that even 64 connections arriving at once
/// spread within 1.5x across 4 workers (`bench/balance.py`).
const ACCEPT_BATCH: usize = 1;

/// Descriptors a worker needs besides its connections: listeners, epoll sets, the signal pipe,
/// event fds, log files, and per handler thread a received connection, one waiting to be taken
/// back by the loop (`Hub::wait_for_room` bounds those), and a data-file open.
fn reserved_descriptors(config: &Config, listeners: usize) -> usize {
    32 + listeners + 3 * config.threads
}

/// What the descriptor limit allows (less the reserve above, so a connection received from the
/// shared queue can always be installed and answered, never lost), or `--worker-connections`
/// if lower.
pub(super) fn connection_limit(config: &Config, listeners: usize) -> usize {
    let Ok((soft, _)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return config.worker_connections.unwrap_or(1000);
    };
    let fits = usize::try_from(soft)
        .unwrap_or(usize::MAX)
        .saturating_sub(reserved_descriptors(config, listeners))
        .max(1);
    match config.worker_connections {
        Some(wanted) if fits < wanted => {
            log::warning(&format!(
                "--worker-connections {wanted} lowered to {fits}: the descriptor limit is {soft}"
            ));
            fits
        }
        Some(wanted) => wanted,
        None => fits,
    }
}

/// How often at most the "at the connection limit" warning is logged.
const LIMIT_WARNING_EVERY: Duration = Duration::from_secs(10);

impl EventLoop {
    pub(super) fn set_listening(&mut self, on: bool) {
        if on == self.listening {
            return;
        }
        for (index, fd) in self.listeners.iter().enumerate() {
            let result = if on {
                let flags = EpollFlags::EPOLLIN | EpollFlags::EPOLLEXCLUSIVE;
                self.epoll.add(fd, EpollEvent::new(flags, index as u64))
            } else {
                self.epoll.delete(fd)
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

    pub(super) fn on_listener(&mut self, index: usize) {
        let mut accepted = 0;
        for _ in 0..ACCEPT_BATCH {
            if self.conns.len() >= self.conn_limit && !self.evict_oldest_idle() {
                // At the bound with nothing idle: leave further connections in the kernel's
                // backlog (for other workers, or for later), and say so.
                crate::metrics::with(|m| {
                    m.connections_refused
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                });
                let now = Instant::now();
                if self
                    .limit_warned
                    .is_none_or(|at| now >= at + LIMIT_WARNING_EVERY)
                {
                    self.limit_warned = Some(now);
                    log::warning(&format!(
                        "Worker at its connection limit ({}), none idle: new connections wait \
                         in the listen backlog",
                        self.conn_limit
                    ));
                }
                self.set_listening(false);
                return;
            }
            let Some(listener) = self.listeners.get(index) else {
                return;
            };
            match accept4(
                listener.as_fd(),
                SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            ) {
                Ok(fd) => {
                    let peer = peer_of(fd.as_fd());
                    let metrics_port = self.listener_is_metrics[index];
                    if let Some(token) = self.add_conn(fd, peer, 0, Vec::new()) {
                        self.conns.get_mut(&token).expect("just added").metrics_port = metrics_port;
                    }
                    accepted += 1;
                }
                Err(Errno::EAGAIN) | Err(Errno::ECONNABORTED) | Err(Errno::EINTR) => break,
                Err(Errno::EMFILE) | Err(Errno::ENFILE) | Err(Errno::ENOBUFS)
                | Err(Errno::ENOMEM) => {
                    log::warning("out of file descriptors; pausing accept");
                    self.set_listening(false);
                    self.accept_paused_until = Some(Instant::now() + ACCEPT_BACKOFF);
                    return;
                }
                Err(err) => {
                    log::error(&format!("accept failed: {err}"));
                    return;
                }
            }
        }
        if accepted > 0 {
            self.take_turn(index);
        }
    }

    /// Moves this worker to the back of the listener's queue of waiters. With `EPOLLEXCLUSIVE`
    /// the kernel wakes the first waiting epoll set in the order they were registered, so
    /// without this the first worker to register takes nearly every connection (measured: 59
    /// of 64); re-registering after each batch makes the workers take turns.
    fn take_turn(&mut self, index: usize) {
        let Some(fd) = self.listeners.get(index) else {
            return;
        };
        let flags = EpollFlags::EPOLLIN | EpollFlags::EPOLLEXCLUSIVE;
        let rotated = self
            .epoll
            .delete(fd)
            .and_then(|()| self.epoll.add(fd, EpollEvent::new(flags, index as u64)));
        if let Err(err) = rotated {
            log::error(&format!("cannot re-register a listener: {err}"));
        }
    }

    /// Takes a connection into the loop (accepted, handed back, or adopted). Its `leftover`
    /// bytes are not parsed yet: the caller does that once anything it owes the client is
    /// queued first.
    pub(super) fn add_conn(
        &mut self,
        fd: OwnedFd,
        peer: Peer,
        served: u64,
        leftover: Vec<u8>,
    ) -> Option<u64> {
        set_nodelay(fd.as_fd());
        let conn = Conn::new(fd, peer, served, leftover);
        let token = self.next_token;
        self.next_token += 1;
        if let Err(err) = self
            .epoll
            .add(conn.fd.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, token))
        {
            log::error(&format!("cannot watch a connection: {err}"));
            return None;
        }
        self.conns.insert(token, conn);
        Some(token)
    }

    /// At the connection limit: closes the longest-idle keep-alive connection to make room for
    /// a new one (as nginx does). Its client sees a reused connection close, which clients
    /// retry. False if no connection is idle.
    fn evict_oldest_idle(&mut self) -> bool {
        let oldest = self
            .conns
            .iter()
            .filter_map(|(&token, c)| c.idle_since().map(|since| (since, token)))
            .min();
        match oldest {
            Some((_, token)) => {
                self.close(token);
                true
            }
            None => false,
        }
    }

    /// Listens again once an accept pause is over and there is room.
    pub(super) fn resume_accepting(&mut self, now: Instant) {
        if self.stop_started.is_some() {
            return;
        }
        if self.accept_paused_until.is_some_and(|until| now >= until) {
            self.accept_paused_until = None;
        }
        if !self.listening
            && self.accept_paused_until.is_none()
            && self.conns.len() < self.conn_limit
        {
            self.set_listening(true);
        }
    }
}
