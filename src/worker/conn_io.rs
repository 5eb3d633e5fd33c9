//! Connection I/O on the event loop: reading into a connection's buffer, turning its bytes into
//! requests in order, writing answers without blocking, and taking back connections from the
//! handler threads.

use super::connection::Conn;
use super::event_loop::EventLoop;
use super::socket::{read_nonblocking, write_nonblocking, ReadOutcome};
use crate::http::{parse_complete_head, response::CONTINUE, BodyFraming, BodyReader, HeadScan};
use crate::shared::monotonic_ns;
use nix::sys::epoll::{EpollEvent, EpollFlags};
use std::os::fd::AsFd;
use std::time::Instant;

impl EventLoop {
    pub(super) fn on_conn_event(&mut self, token: u64, events: EpollFlags) {
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        let mut wrote = false;
        if events.contains(EpollFlags::EPOLLOUT) {
            match write_out(conn) {
                Ok(progress) => wrote = progress,
                Err(()) => return self.close(token),
            }
        }
        if events.intersects(EpollFlags::EPOLLIN | EpollFlags::EPOLLHUP | EpollFlags::EPOLLERR)
            && conn.out.is_empty()
        {
            match read_nonblocking(conn.fd.as_fd(), &mut self.scratch) {
                ReadOutcome::Data(n) => {
                    if conn.buf.is_empty() && conn.body.is_none() {
                        conn.request_start_ns = monotonic_ns();
                    }
                    conn.buf.extend_from_slice(&self.scratch[..n]);
                }
                ReadOutcome::WouldBlock => {}
                ReadOutcome::Closed => return self.close(token),
            }
        }
        self.advance(token, wrote);
    }

    /// Writes what is pending, then parses and answers whatever complete requests the buffer
    /// holds, in order. A client that does not read its answers gets no more parsed until it
    /// does: what it sends meanwhile stays in the kernel.
    pub(super) fn advance(&mut self, token: u64, mut wrote: bool) {
        loop {
            let Some(conn) = self.conns.get_mut(&token) else {
                return;
            };
            match write_out(conn) {
                Ok(progress) => wrote |= progress,
                Err(()) => return self.close(token),
            }
            if !conn.out.is_empty() {
                break;
            }
            if conn.close_after_out {
                return self.close(token);
            }
            if let Some((_, body)) = &mut conn.body {
                match body.consume(&conn.buf) {
                    Ok(used) => {
                        conn.buf.drain(..used);
                        if !body.is_done() {
                            break;
                        }
                        let (head, _) = conn.body.take().expect("a body in progress");
                        if !self.dispatch(token, *head) {
                            return;
                        }
                    }
                    Err(err) => self.reject(token, &err),
                }
                continue;
            }
            if conn.buf.is_empty() {
                break;
            }
            let limits = &self.hub.config.http_limits;
            let head_len = match conn.scan.scan(&conn.buf, limits) {
                Ok(Some(len)) => len,
                Ok(None) => break,
                Err(err) => {
                    self.reject(token, &err);
                    continue;
                }
            };
            let parsed = parse_complete_head(&conn.buf[..head_len], limits, self.access_log);
            conn.buf.drain(..head_len);
            conn.scan = HeadScan::default();
            match parsed {
                Err(err) => self.reject(token, &err),
                Ok(head) if head.body == BodyFraming::None => {
                    // The common case: nothing to read after the head.
                    if !self.dispatch(token, head) {
                        return;
                    }
                }
                Ok(head) => {
                    if head.expect_continue {
                        conn.out.extend_from_slice(CONTINUE);
                    }
                    let body = BodyReader::new(head.body, limits.body);
                    conn.body = Some((Box::new(head), body));
                }
            }
        }
        self.rearm(token, wrote);
    }

    /// Restarts the connection's timer as its state says and watches it for what it waits for.
    fn rearm(&mut self, token: u64, wrote: bool) {
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        conn.refresh(Instant::now(), wrote);
        let wants_write = !conn.out.is_empty();
        if wants_write != conn.wants_write {
            conn.wants_write = wants_write;
            let flags = if wants_write {
                EpollFlags::EPOLLOUT
            } else {
                EpollFlags::EPOLLIN
            };
            if self
                .epoll
                .modify(conn.fd.as_fd(), &mut EpollEvent::new(flags, token))
                .is_err()
            {
                self.close(token);
            }
        }
    }

    /// Connections the handler threads finished with (or that a sibling passed on): answer
    /// first, then carry on with any pipelined bytes that came with them.
    pub(super) fn on_handbacks(&mut self) {
        for back in self.hub.take_handbacks() {
            let Some(token) = self.add_conn(back.fd, back.peer, back.served, back.leftover) else {
                continue;
            };
            match back.finished {
                Some(finished) => {
                    let keep_alive = self.keeps_alive(&finished.head);
                    let conn = self.conns.get_mut(&token).expect("just added");
                    conn.request_start_ns = back.received_ns;
                    self.answer(token, &finished.head, &finished.response, keep_alive);
                    self.advance(token, false);
                }
                None if self.stop_started.is_some() => self.retire_conn(token),
                None => self.advance(token, false),
            }
        }
    }

    pub(super) fn remove(&mut self, token: u64) -> Option<Conn> {
        let conn = self.conns.remove(&token)?;
        let _ = self.epoll.delete(conn.fd.as_fd());
        if !self.listening && self.conns.len() < self.conn_limit {
            self.resume_accepting(Instant::now());
        }
        Some(conn)
    }

    pub(super) fn close(&mut self, token: u64) {
        drop(self.remove(token));
    }
}

/// Writes as much pending output as the socket takes. `Ok(true)`: some went out. `Err`: the
/// peer is gone.
fn write_out(conn: &mut Conn) -> Result<bool, ()> {
    if conn.out.is_empty() {
        return Ok(false);
    }
    let n = write_nonblocking(conn.fd.as_fd(), &conn.out).map_err(drop)?;
    conn.out.drain(..n);
    if conn.out.is_empty() && conn.out.capacity() > 64 * 1024 {
        conn.out = Vec::new();
    }
    Ok(n > 0)
}
