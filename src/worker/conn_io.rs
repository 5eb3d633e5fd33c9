//! Connection I/O on the event loop: taking connections in (accepted, handed back, adopted),
//! driving each through its states as its socket becomes ready (epoll, edge-triggered), and
//! coming back next turn to one that has bytes left to read. The states themselves are the
//! connection's (`connection`).

use super::connection::{Conn, Next, Outcome};
use super::event_loop::EventLoop;
use super::queue::Peer;
use crate::log;
use nix::sys::epoll::{EpollEvent, EpollFlags};
use std::os::fd::OwnedFd;

impl EventLoop {
    /// Takes a connection into the loop. Its `leftover` bytes are not parsed yet: the caller
    /// does that (with [`EventLoop::advance`]) once anything it owes the client is queued first.
    /// Every connection counts against the limit, handed-back and adopted ones too: the least
    /// productive one makes room. (A connection coming back with an answer is taken even if
    /// every other one is working: its request was accepted, so it is answered.)
    pub(super) fn add_conn(
        &mut self,
        fd: OwnedFd,
        peer: Peer,
        served: u64,
        leftover: Vec<u8>,
        metrics_port: bool,
    ) -> Option<u64> {
        self.make_room();
        let conn = Conn::new(fd, peer, served, leftover)
            .on_metrics_port(metrics_port)
            .counted_in(self.hub.metrics);
        let token = self.next_token;
        self.next_token += 1;
        // Edge-triggered, both directions, once for the connection's stay: epoll reports a
        // socket when it becomes readable or writable, and the connection remembers what it
        // may still read (`Conn::may_read`). Level-triggered, epoll looked at every reported
        // socket again in the next wait, and a connection that began to wait for writability
        // (or stopped) cost a change of its watch (perf: ~1.5 % of a health request's CPU).
        // Registering reports what the socket holds already (a connection handed back).
        // EPOLLRDHUP: the client's close can come in one edge with its last bytes.
        let watch = EpollFlags::EPOLLIN
            | EpollFlags::EPOLLOUT
            | EpollFlags::EPOLLRDHUP
            | EpollFlags::EPOLLET;
        if let Err(err) = self.epoll.add(conn.fd(), EpollEvent::new(watch, token)) {
            log::error(&format!("cannot watch a connection: {err}"));
            return None;
        }
        self.conns.insert(token, conn);
        Some(token)
    }

    /// What epoll reported for a connection (empty: nothing new, but it may have more to
    /// read). Reads at most one chunk: a connection with more waits for the next turn.
    pub(super) fn on_conn_event(&mut self, token: u64, events: EpollFlags) {
        let now_ns = self.now_ns();
        let Some(conn) = self.conns.get_mut(token) else {
            return;
        };
        if events.contains(EpollFlags::EPOLLOUT) && conn.write(self.now).is_err() {
            return self.close(token);
        }
        let closed = EpollFlags::EPOLLRDHUP | EpollFlags::EPOLLHUP;
        if events.intersects(EpollFlags::EPOLLIN | EpollFlags::EPOLLERR | closed) {
            conn.readable(events.intersects(closed));
        }
        if conn.wants_read() && conn.read(&mut self.scratch, now_ns).is_err() {
            return self.close(token);
        }
        self.advance(token);
    }

    /// Connections left with bytes to read at the end of a piece of work (a full read, or
    /// answers the client had not taken yet): read in the next turn, as no new edge may come.
    pub(super) fn on_reads_left(&mut self) {
        for token in std::mem::take(&mut self.reads_left) {
            self.on_conn_event(token, EpollFlags::empty());
        }
    }

    /// Writes what is pending, then dispatches whatever complete requests the buffer holds, in
    /// order, until the connection has to wait (or leaves the loop with a request).
    pub(super) fn advance(&mut self, token: u64) {
        loop {
            // Asked every time: the request just answered may have been this worker's last
            // (`--max-requests`), and the pipelined ones behind it go to another worker.
            let pass_on = self.passes_connections_on();
            let limits = &self.hub.config.http_limits;
            let Some(conn) = self.conns.get_mut(token) else {
                return;
            };
            match conn.next(limits, self.access_log, pass_on, self.now) {
                Err(_) | Ok(Next::Done) => return self.close(token),
                Ok(Next::Wait) => break,
                Ok(Next::PassOn) => return self.retire_conn(token),
                Ok(Next::Invalid(err)) => conn.reject(&err),
                Ok(Next::Request(head)) => {
                    if !self.dispatch(token, *head) {
                        return;
                    }
                }
            }
        }
        self.rearm(token);
    }

    /// Re-indexes the connection for its new state; one with bytes left to read is read again
    /// in the next turn.
    pub(super) fn rearm(&mut self, token: u64) {
        self.conns.settle(token, self.now);
        if self.conns.get(token).is_some_and(Conn::wants_read) {
            self.reads_left.push(token);
        }
    }

    /// Connections the handler threads finished with (or that a sibling passed on): answer
    /// first, then carry on with any pipelined bytes that came with them.
    pub(super) fn on_handbacks(&mut self) {
        for back in self.hub.take_handbacks() {
            let finished = back.finished;
            let Some(token) = self.add_conn(back.fd, back.peer, back.served, back.leftover, false)
            else {
                if finished.is_some() {
                    // Its answer cannot be written: the request leaves the in-flight count.
                    self.hub.in_flight(-1);
                }
                continue;
            };
            match finished {
                Some(finished) => {
                    let keep_alive = self.keeps_alive(token, &finished.head);
                    let conn = self.conns.get_mut(token).expect("just added");
                    conn.set_request_start(back.received_ns);
                    let outcome = if finished.timed_out {
                        Outcome::TimedOut
                    } else {
                        Outcome::Normal
                    };
                    self.answer(
                        token,
                        &finished.head,
                        &finished.response,
                        keep_alive,
                        outcome,
                    );
                    self.advance(token);
                }
                None if self.stop_started.is_some() => self.retire_conn(token),
                None => self.advance(token),
            }
        }
    }

    pub(super) fn remove(&mut self, token: u64) -> Option<Conn> {
        let conn = self.conns.remove(token)?;
        let _ = self.epoll.delete(conn.fd());
        self.resume_accepting(self.now);
        Some(conn)
    }

    pub(super) fn close(&mut self, token: u64) {
        drop(self.remove(token));
    }
}
