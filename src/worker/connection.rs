//! One client connection as the event loop holds it: what has been read and not yet parsed,
//! where the current request stands, what is waiting to be written, and — derived from all
//! that, in one place — its deadline.

use super::queue::Peer;
use crate::app::Response;
use crate::http::{encode_response_into, BodyReader, HeadScan, RequestHead, ResponseMeta};
use crate::log;
use crate::metrics;
use crate::shared::monotonic_ns;
use crate::statsd;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

/// A request head must arrive within this long of its first byte; a new connection must send
/// one within this long of being accepted (slowloris).
pub(super) const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// A request body must arrive within this long of the head.
pub(super) const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// A client must take some of an answer within this long (it is reset by every byte it takes).
pub(super) const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// While the server shuts down, how long a connection that has sent nothing yet gets to send
/// its request.
pub(super) const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);
/// A receive buffer larger than this is given back when the connection goes idle.
const KEEP_BUFFER: usize = 4 * 1024;

/// What a connection is waiting for. Each state has its own time limit, counted from when the
/// connection entered it (or, while writing, from the client's last progress). A connection
/// whose request is queued or running is not here at all: the handler thread has it, and
/// `--timeout` bounds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    /// Reading a request head (or waiting for the first one).
    Head,
    /// Reading a request body.
    Body,
    /// Writing answers the client has not taken yet.
    Writing,
    /// Kept alive between requests.
    Idle,
}

pub(super) struct Conn {
    pub(super) fd: OwnedFd,
    pub(super) peer: Peer,
    /// Received bytes not yet consumed.
    pub(super) buf: Vec<u8>,
    /// How far the current head has been scanned (each byte is looked at once).
    pub(super) scan: HeadScan,
    /// Set while a body is being read after its head.
    pub(super) body: Option<(Box<RequestHead>, BodyReader)>,
    /// Response bytes not yet written.
    pub(super) out: Vec<u8>,
    pub(super) close_after_out: bool,
    /// Requests answered on this connection.
    pub(super) served: u64,
    /// When the current request's first byte arrived (`CLOCK_MONOTONIC` ns).
    pub(super) request_start_ns: u64,
    /// The state the deadline is counted in, and since when.
    timer: (State, Instant),
    /// Whether epoll watches the connection for writability (else readability).
    pub(super) wants_write: bool,
    /// Set when the server shuts down: a connection still waiting for a request's first byte
    /// is given up at this moment.
    pub(super) shutdown_by: Option<Instant>,
    /// Accepted on the `--metrics-bind` listener.
    pub(super) metrics_port: bool,
}

impl Conn {
    pub(super) fn new(fd: OwnedFd, peer: Peer, served: u64, leftover: Vec<u8>) -> Conn {
        let mut conn = Conn {
            fd,
            peer,
            buf: leftover,
            scan: HeadScan::default(),
            body: None,
            out: Vec::new(),
            close_after_out: false,
            served,
            request_start_ns: monotonic_ns(),
            timer: (State::Head, Instant::now()),
            wants_write: false,
            shutdown_by: None,
            metrics_port: false,
        };
        conn.timer.0 = conn.state();
        conn
    }

    pub(super) fn state(&self) -> State {
        if !self.out.is_empty() {
            State::Writing
        } else if self.body.is_some() {
            State::Body
        } else if !self.buf.is_empty() || self.served == 0 {
            State::Head
        } else {
            State::Idle
        }
    }

    /// Restarts the timer when the state changed, or when the client took bytes of an answer.
    /// Called after every piece of work on the connection.
    pub(super) fn refresh(&mut self, now: Instant, wrote: bool) {
        let state = self.state();
        if state != self.timer.0 || (state == State::Writing && wrote) {
            self.timer = (state, now);
        }
        if state == State::Idle && self.buf.capacity() > KEEP_BUFFER {
            // An idle connection holds no memory for the head it may never send.
            self.buf = Vec::new();
        }
    }

    /// The one place that decides when the connection is given up on.
    pub(super) fn deadline(&self, keep_alive: Duration) -> Instant {
        let (state, since) = self.timer;
        let deadline = since
            + match state {
                State::Head => HEAD_TIMEOUT,
                State::Body => BODY_TIMEOUT,
                State::Writing => WRITE_TIMEOUT,
                State::Idle => keep_alive,
            };
        match self.shutdown_by {
            Some(by) if state == State::Head && self.buf.is_empty() => deadline.min(by),
            _ => deadline,
        }
    }

    /// Since when the connection has been idle between requests, if it is.
    pub(super) fn idle_since(&self) -> Option<Instant> {
        (self.state() == State::Idle && self.timer.0 == State::Idle).then_some(self.timer.1)
    }

    /// Whether nothing of a request is in hand: the connection could move to another worker.
    pub(super) fn is_between_requests(&self) -> bool {
        self.buf.is_empty() && self.out.is_empty() && self.body.is_none()
    }

    /// Queues the answer to `head` and writes its access-log line: the one place every
    /// response, inline or from a handler thread, goes through.
    pub(super) fn respond(&mut self, head: &RequestHead, response: &Response, keep_alive: bool) {
        let meta = ResponseMeta {
            version: head.version,
            keep_alive,
            head_only: head.method == "HEAD",
        };
        encode_response_into(&mut self.out, response, meta);
        self.served += 1;
        let elapsed = Duration::from_nanos(monotonic_ns().saturating_sub(self.request_start_ns));
        metrics::record_response(&head.path, &head.method, response.status, elapsed);
        statsd::request(response.status, elapsed);
        if log::enabled(log::Level::Debug) {
            log::debug(&format!("{} {}", head.method, head.path));
        }
        if response.status == 503 && response.body.windows(11).any(|w| w == b"timeout_sec") {
            // The alarm Gunicorn users have on `WORKER TIMEOUT` needs a line to match.
            log::warning(&format!(
                "Request timed out (pid:{}): {} {} after {:.3} s",
                std::process::id(),
                head.method,
                head.path,
                elapsed.as_secs_f64()
            ));
        }
        // A request ended: whatever comes next (its answer going out, the next head) is timed
        // afresh from now.
        self.timer = (State::Writing, Instant::now());
        if !keep_alive {
            self.close_after_out = true;
            self.buf.clear();
        }
        if log::access_enabled() {
            log::access(&log::AccessEntry {
                peer: &self.peer.ip,
                peer_port: self.peer.port,
                method: &head.method,
                target: &head.target,
                path: &head.path,
                query: &head.query,
                protocol: head.version.as_str(),
                status: response.status,
                // Gunicorn 21.2 counts a HEAD answer's body as the application gave it.
                body_bytes: response.body.len(),
                request_headers: &head.headers,
                response_headers: &response.headers,
                content_type: response.content_type,
                content_length: response.body.len(),
                duration: elapsed,
            });
        }
        if !self.buf.is_empty() {
            // The next pipelined request started arriving with this one.
            self.request_start_ns = monotonic_ns();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::parse_head;

    fn conn(served: u64, leftover: &[u8]) -> Conn {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let peer = Peer {
            ip: String::new(),
            port: None,
        };
        Conn::new(OwnedFd::from(a), peer, served, leftover.to_vec())
    }

    fn head() -> RequestHead {
        parse_head(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n", &Default::default())
            .unwrap()
            .unwrap()
    }

    const KEEP: Duration = Duration::from_secs(5);

    #[test]
    fn a_new_connection_gets_the_head_timeout_from_accept() {
        let c = conn(0, b"");
        assert_eq!(c.state(), State::Head);
        let t0 = c.timer.1;
        assert_eq!(c.deadline(KEEP), t0 + HEAD_TIMEOUT);
    }

    /// A client that completes one pipelined request every few seconds, always leaving a byte of
    /// the next, is making progress: each new head gets its own full time.
    #[test]
    fn each_pipelined_head_gets_its_own_time() {
        let mut c = conn(0, b"G");
        let start = Instant::now();
        c.timer = (State::Head, start);
        for round in 1..=10u32 {
            let now = start + Duration::from_secs(2 * u64::from(round));
            // The head completed (its last bytes and one byte of the next arrived) and was
            // answered; the answer was written at once.
            c.respond(&head(), &Response::json(200, &serde_json::json!({})), true);
            c.refresh(now, false);
            assert_eq!(c.state(), State::Writing);
            c.out.clear();
            c.refresh(now, true);
            assert_eq!(
                c.state(),
                State::Head,
                "one byte of the next request is in hand"
            );
            assert_eq!(c.deadline(KEEP), now + HEAD_TIMEOUT, "round {round}");
        }
    }

    #[test]
    fn writing_counts_from_the_clients_last_progress_and_idle_uses_keep_alive() {
        let mut c = conn(1, b"");
        let t0 = c.timer.1;
        c.refresh(t0 + Duration::from_millis(500), false);
        assert_eq!(c.state(), State::Idle);
        assert_eq!(c.deadline(KEEP), t0 + KEEP);
        c.out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        c.refresh(t0 + Duration::from_secs(1), false);
        assert_eq!(
            c.deadline(KEEP),
            t0 + Duration::from_secs(1) + WRITE_TIMEOUT
        );
        c.refresh(t0 + Duration::from_secs(20), false);
        assert_eq!(
            c.deadline(KEEP),
            t0 + Duration::from_secs(1) + WRITE_TIMEOUT,
            "no progress: no new time"
        );
        c.refresh(t0 + Duration::from_secs(25), true);
        assert_eq!(
            c.deadline(KEEP),
            t0 + Duration::from_secs(25) + WRITE_TIMEOUT
        );
    }

    #[test]
    fn an_idle_connection_gives_back_a_large_buffer() {
        let mut c = conn(1, b"");
        c.buf.reserve(64 * 1024);
        c.refresh(Instant::now(), false);
        assert!(c.buf.capacity() <= KEEP_BUFFER);
    }
}
