//! One client connection as the event loop holds it, as a state machine. Its fields are private:
//! every transition — bytes read, a head or body completed, an answer queued or written, the
//! connection handed on — is a method here, and its state, deadline and eviction rank are
//! derived from what it holds, in one place.
//!
//! ```text
//!   accept ─▶ Head ─(head with body)─▶ Body ─┐
//!              │  ▲                          │ complete request
//!              │  └───────── Idle ◀──┐       ▼
//!              │ complete request    │   [dispatch] ─ heavy ─▶ queued: the connection leaves
//!              └──────────────────▶ Writing ◀─ answer ──────── the loop with its job, and
//!                                    │                         comes back with its answer
//!                       last answer  ▼
//!                                 Closing ─▶ closed
//! ```

use super::queue::Peer;
use super::socket::{read_nonblocking, write_nonblocking, ReadOutcome};
use crate::app::Response;
use crate::http::{
    encode_response_into, parse_complete_head, response::CONTINUE, BodyFraming, BodyReader,
    HeadScan, HttpError, HttpLimits, RequestHead, ResponseMeta, Version,
};
use crate::log;
use crate::metrics::Metrics;
use crate::shared::monotonic_ns;
use crate::statsd;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
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
/// An output buffer larger than this is given back once written.
const KEEP_OUT: usize = 64 * 1024;

/// What a connection is waiting for. Each state has its own time limit, counted from when the
/// connection entered it (or, while writing, from the client's last progress). A connection
/// whose request is queued or running is not here at all: it travels with its job, and
/// `--timeout` bounds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    /// Reading a request head (or waiting for the first one).
    Head,
    /// Reading a request body.
    Body,
    /// Writing answers the client has not taken yet.
    Writing,
    /// Writing the last answer: the connection closes once it is out.
    Closing,
    /// Kept alive between requests.
    Idle,
}

impl State {
    pub(super) const ALL: [State; 5] = [
        State::Head,
        State::Body,
        State::Writing,
        State::Closing,
        State::Idle,
    ];

    pub(super) fn index(self) -> usize {
        self as usize
    }
}

/// What a response is, beyond its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    Normal,
    /// A heavy request stopped at `--timeout`.
    TimedOut,
}

/// What the connection's bytes amount to next (see [`Conn::next`]).
pub(super) enum Next {
    /// A complete request: dispatch it.
    Request(Box<RequestHead>),
    /// The bytes broke the protocol: answer with [`Conn::reject`].
    Invalid(HttpError),
    /// Nothing to do until the socket is ready again (the client is to take the pending
    /// answer, or to send more).
    Wait,
    /// The last answer has gone out: close.
    Done,
    /// Everything owed is written and the connection may move on (asked for with `pass_on`):
    /// the retiring worker passes it, with any bytes of its next request, to another worker.
    PassOn,
}

/// The peer is gone (a read or write failed, or it closed).
#[derive(Debug)]
pub(super) struct Gone;

pub(super) struct Conn {
    fd: OwnedFd,
    peer: Peer,
    /// Received bytes not yet consumed.
    buf: Vec<u8>,
    /// How far the current head has been scanned (each byte is looked at once).
    scan: HeadScan,
    /// Set while a body is being read after its head.
    body: Option<(Box<RequestHead>, BodyReader)>,
    /// Response bytes not yet written.
    out: Vec<u8>,
    close_after_out: bool,
    /// Requests answered on this connection.
    served: u64,
    /// When the current request's first byte arrived (`CLOCK_MONOTONIC` ns).
    request_start_ns: u64,
    /// The state the deadline is counted in, and since when.
    timer: (State, Instant),
    /// Since when the connection has produced nothing: accepted, or last answered. Bytes alone
    /// do not count (a client dribbling a head a byte at a time is not productive); a complete
    /// request does. The least productive connection is the one waiting longest.
    waiting_since: Instant,
    /// The socket may hold bytes not read yet: epoll said it became readable (its events are
    /// edge-triggered) and no read since has found it empty.
    may_read: bool,
    /// The client has closed its side: reads go on until they return nothing (a short read
    /// stops at the end of the data, not at the close, and no new edge follows).
    peer_closed: bool,
    /// Set when the server shuts down: a connection still waiting for a request's first byte
    /// is given up at this moment.
    shutdown_by: Option<Instant>,
    /// Accepted on the `--metrics-bind` listener.
    metrics_port: bool,
    /// A retiring worker could not pass the connection on: it serves it here, and its next
    /// answer says `Connection: close`.
    kept_here: bool,
    /// The shared metrics its bytes and answers are counted in (handed in by the loop).
    metrics: Option<&'static Metrics>,
}

impl Conn {
    pub(super) fn new(fd: OwnedFd, peer: Peer, served: u64, leftover: Vec<u8>) -> Conn {
        let now = Instant::now();
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
            timer: (State::Head, now),
            waiting_since: now,
            may_read: false,
            peer_closed: false,
            shutdown_by: None,
            metrics_port: false,
            kept_here: false,
            metrics: None,
        };
        conn.timer.0 = conn.state();
        conn
    }

    /// Counts the connection's bytes and answers in `metrics`.
    pub(super) fn counted_in(mut self, metrics: Option<&'static Metrics>) -> Conn {
        self.metrics = metrics;
        self
    }

    pub(super) fn on_metrics_port(mut self, yes: bool) -> Conn {
        self.metrics_port = yes;
        self
    }

    pub(super) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    pub(super) fn peer(&self) -> &Peer {
        &self.peer
    }

    pub(super) fn served(&self) -> u64 {
        self.served
    }

    pub(super) fn is_metrics_port(&self) -> bool {
        self.metrics_port
    }

    pub(super) fn request_start_ns(&self) -> u64 {
        self.request_start_ns
    }

    /// A request handed back from a handler thread started when it was first received.
    pub(super) fn set_request_start(&mut self, ns: u64) {
        self.request_start_ns = ns;
    }

    pub(super) fn state(&self) -> State {
        if !self.out.is_empty() {
            if self.close_after_out {
                State::Closing
            } else {
                State::Writing
            }
        } else if self.body.is_some() {
            State::Body
        } else if !self.buf.is_empty() || self.served == 0 {
            State::Head
        } else {
            State::Idle
        }
    }

    /// Reads what the socket has; a request whose first bytes these are started at `now_ns`
    /// (the loop's clock for this turn: when it learned the bytes were there). `Err`: the peer
    /// closed or failed.
    pub(super) fn read(&mut self, scratch: &mut [u8], now_ns: u64) -> Result<(), Gone> {
        match read_nonblocking(self.fd.as_fd(), scratch, self.metrics) {
            ReadOutcome::Data(n) => {
                if self.buf.is_empty() && self.body.is_none() {
                    self.request_start_ns = now_ns;
                }
                self.buf.extend_from_slice(&scratch[..n]);
                // A stream socket fills a read while it has bytes: a short one emptied it —
                // unless the client closed, whose end a next read returns.
                self.may_read = n == scratch.len() || self.peer_closed;
                Ok(())
            }
            ReadOutcome::WouldBlock => {
                self.may_read = false;
                Ok(())
            }
            ReadOutcome::Closed => Err(Gone),
        }
    }

    /// epoll said the socket became readable (or hung up, or failed: a read tells which);
    /// `closed`: the client has closed its side.
    pub(super) fn readable(&mut self, closed: bool) {
        self.may_read = true;
        self.peer_closed |= closed;
    }

    /// Whether the socket is to be read now: it may hold bytes, and the client takes its
    /// answers.
    pub(super) fn wants_read(&self) -> bool {
        self.may_read && !self.reading_paused()
    }

    /// Whether reading is on hold: a client that does not take its answers gets nothing more
    /// read until it does (what it sends meanwhile stays in the kernel).
    pub(super) fn reading_paused(&self) -> bool {
        !self.out.is_empty()
    }

    /// Writes as much pending output as the socket takes; a client taking bytes of an answer
    /// restarts its write time (`now`: the loop's clock). `Err`: the peer is gone.
    pub(super) fn write(&mut self, now: Instant) -> Result<(), Gone> {
        if self.out.is_empty() {
            return Ok(());
        }
        let n = write_nonblocking(self.fd.as_fd(), &self.out, self.metrics).map_err(|_| Gone)?;
        self.out.drain(..n);
        if self.out.is_empty() && self.out.capacity() > KEEP_OUT {
            self.out = Vec::new();
        }
        if n > 0 {
            self.timer.1 = now;
        }
        Ok(())
    }

    /// Writes what is pending, then turns buffered bytes into the next request, in order. A
    /// head announcing a body moves to reading the body (answering `100 Continue` if asked).
    /// With `pass_on` (the worker is retiring), a passable connection stops there instead.
    pub(super) fn next(
        &mut self,
        limits: &HttpLimits,
        keep_headers: bool,
        pass_on: bool,
        now: Instant,
    ) -> Result<Next, Gone> {
        loop {
            self.write(now)?;
            if !self.out.is_empty() {
                return Ok(Next::Wait);
            }
            if self.close_after_out {
                return Ok(Next::Done);
            }
            if pass_on && self.is_passable() {
                return Ok(Next::PassOn);
            }
            if let Some((_, body)) = &mut self.body {
                let used = match body.consume(&self.buf) {
                    Ok(used) => used,
                    Err(err) => return Ok(Next::Invalid(err)),
                };
                self.buf.drain(..used);
                if !body.is_done() {
                    return Ok(Next::Wait);
                }
                let (head, _) = self.body.take().expect("a body in progress");
                return Ok(Next::Request(head));
            }
            if self.buf.is_empty() {
                return Ok(Next::Wait);
            }
            let head_len = match self.scan.scan(&self.buf, limits) {
                Ok(Some(len)) => len,
                Ok(None) => return Ok(Next::Wait),
                Err(err) => return Ok(Next::Invalid(err)),
            };
            let parsed = parse_complete_head(&self.buf[..head_len], limits, keep_headers);
            self.buf.drain(..head_len);
            self.scan = HeadScan::default();
            match parsed {
                Err(err) => return Ok(Next::Invalid(err)),
                Ok(head) if head.body == BodyFraming::None => {
                    return Ok(Next::Request(Box::new(head)))
                }
                Ok(head) => {
                    if head.expect_continue {
                        self.out.extend_from_slice(CONTINUE);
                    }
                    let body = BodyReader::new(head.body, limits.body);
                    self.body = Some((Box::new(head), body));
                }
            }
        }
    }

    /// The bytes read and not yet parsed (they travel with a connection passed on).
    pub(super) fn pending_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// The bytes already read past the current request (pipelining), taken to travel with it.
    pub(super) fn take_leftover(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }

    /// Puts back bytes that were to travel with a request that could not be passed on.
    pub(super) fn restore_leftover(&mut self, leftover: Vec<u8>) {
        self.buf = leftover;
    }

    /// Gives the connection's descriptor up (it leaves the loop with a job or for a sibling).
    pub(super) fn into_fd(self) -> OwnedFd {
        self.fd
    }

    /// The one place that decides when the connection is given up on.
    pub(super) fn deadline(&self, keep_alive: Duration) -> Instant {
        let (state, since) = self.timer;
        let deadline = since
            + match state {
                State::Head => HEAD_TIMEOUT,
                State::Body => BODY_TIMEOUT,
                State::Writing | State::Closing => WRITE_TIMEOUT,
                State::Idle => keep_alive,
            };
        match self.shutdown_by {
            Some(by) if state == State::Head && self.buf.is_empty() => deadline.min(by),
            _ => deadline,
        }
    }

    /// Whether a request is partly read: a connection given up on then is told why (408).
    pub(super) fn is_mid_request(&self) -> bool {
        match self.state() {
            State::Head => !self.buf.is_empty(),
            State::Body => true,
            State::Writing | State::Closing | State::Idle => false,
        }
    }

    /// For eviction at the connection limit: since when the connection has produced nothing,
    /// if it holds no complete request (waiting for a head, or idle between requests).
    /// Connections reading a body or being written to are doing work and are never evicted.
    pub(super) fn unproductive_since(&self) -> Option<Instant> {
        matches!(self.state(), State::Head | State::Idle).then_some(self.waiting_since)
    }

    /// Whether a retiring worker may pass the connection on: no answer going out, no body half
    /// read, not closing. Bytes of its next request(s) already read go along with it.
    pub(super) fn is_passable(&self) -> bool {
        self.out.is_empty() && self.body.is_none() && !self.close_after_out && !self.kept_here
    }

    /// A retiring worker could not pass the connection on: it is served here, and its next
    /// answer is its last.
    pub(super) fn keep_here(&mut self) {
        self.kept_here = true;
    }

    /// Whether the connection may be kept alive after its current request.
    pub(super) fn may_keep_alive(&self) -> bool {
        !self.kept_here
    }

    /// Whether more of the client's requests are already here or waiting in the socket.
    pub(super) fn has_more_input(&self) -> bool {
        !self.buf.is_empty() || super::socket::has_pending_input(self.fd.as_fd())
    }

    /// Restarts the timer when the state changed, and gives back an idle connection's memory.
    pub(super) fn settle(&mut self, now: Instant) {
        let state = self.state();
        if state != self.timer.0 {
            self.timer = (state, now);
        }
        if state == State::Idle && self.buf.capacity() > KEEP_BUFFER {
            // An idle connection holds no memory for the head it may never send.
            self.buf = Vec::new();
        }
    }

    /// The server is shutting down: a connection that has sent nothing gets until `by`.
    pub(super) fn give_until(&mut self, by: Instant) {
        self.shutdown_by = Some(by);
    }

    /// Queues the answer to `head` and writes its access-log line: the one place every
    /// response, inline or from a handler thread, goes through.
    pub(super) fn respond(
        &mut self,
        head: &RequestHead,
        response: &Response,
        keep_alive: bool,
        outcome: Outcome,
        now: Instant,
    ) {
        let meta = ResponseMeta {
            version: head.version,
            keep_alive,
            head_only: head.method == "HEAD",
        };
        encode_response_into(&mut self.out, response, meta);
        self.served += 1;
        let elapsed = Duration::from_nanos(monotonic_ns().saturating_sub(self.request_start_ns));
        if let Some(m) = self.metrics {
            m.record_response(&head.path, &head.method, response.status, elapsed);
        }
        statsd::request(response.status, elapsed);
        if log::enabled(log::Level::Debug) {
            log::debug(&format!("{} {}", head.method, head.path));
        }
        if outcome == Outcome::TimedOut {
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
        // afresh from now; the connection produced a request.
        self.timer = (State::Writing, now);
        self.waiting_since = now;
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

    /// Answers a request that broke the protocol, then closes: after a framing error nothing
    /// that follows can be trusted.
    pub(super) fn reject(&mut self, err: &HttpError) {
        log::warning(&format!(
            "Invalid request from ip={}: {}",
            self.peer.ip,
            err.log_text()
        ));
        self.queue_last(&err.to_response());
        let elapsed = monotonic_ns().saturating_sub(self.request_start_ns);
        if let Some(m) = self.metrics {
            m.record_response("", "", err.status, Duration::from_nanos(elapsed));
        }
    }

    /// Queues a final answer outside any request (an error, a 408 at the deadline) and closes
    /// once it is out: nothing more is read.
    pub(super) fn queue_last(&mut self, response: &Response) {
        let meta = ResponseMeta {
            version: Version::Http11,
            keep_alive: false,
            head_only: false,
        };
        encode_response_into(&mut self.out, response, meta);
        self.close_after_out = true;
        self.buf.clear();
        self.body = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::parse_head;

    /// A connection on one end of a socket pair; the other end is kept open for the test's
    /// life (leaked: a few descriptors per test process).
    fn conn(served: u64, leftover: &[u8]) -> Conn {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        std::mem::forget(b);
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
            let ok = Response::json(200, &serde_json::json!({}));
            c.respond(&head(), &ok, true, Outcome::Normal, now);
            c.settle(now);
            assert_eq!(c.state(), State::Writing);
            c.out.clear();
            c.timer = (State::Writing, now);
            c.settle(now);
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
        c.settle(t0 + Duration::from_millis(500));
        assert_eq!(c.state(), State::Idle);
        assert_eq!(c.deadline(KEEP), t0 + KEEP);
        c.out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        let t1 = t0 + Duration::from_secs(1);
        c.settle(t1);
        assert_eq!(c.deadline(KEEP), t1 + WRITE_TIMEOUT);
        c.settle(t0 + Duration::from_secs(20));
        assert_eq!(
            c.deadline(KEEP),
            t1 + WRITE_TIMEOUT,
            "no progress: no new time"
        );
        let before_write = Instant::now();
        c.write(Instant::now()).unwrap();
        assert!(c.out.is_empty(), "the socket pair took the bytes");
        assert!(
            c.timer.1 >= before_write && c.timer.1 != t1,
            "progress restarts the write time"
        );
    }

    #[test]
    fn an_idle_connection_gives_back_a_large_buffer() {
        let mut c = conn(1, b"");
        c.buf.reserve(64 * 1024);
        c.settle(Instant::now());
        assert!(c.buf.capacity() <= KEEP_BUFFER);
    }

    #[test]
    fn requests_come_out_in_order_and_a_body_is_read_before_its_request() {
        let limits = HttpLimits::default();
        let mut c = conn(
            0,
            b"GET /a HTTP/1.1\r\nHost: t\r\n\r\nPOST /b HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nab",
        );
        let Next::Request(first) = c.next(&limits, false, false, Instant::now()).unwrap() else {
            panic!("the first request is complete")
        };
        assert_eq!(first.path, "/a");
        assert!(matches!(
            c.next(&limits, false, false, Instant::now()).unwrap(),
            Next::Wait
        ));
        assert_eq!(c.state(), State::Body, "one byte of the body is missing");
        c.buf.extend_from_slice(b"c");
        let Next::Request(second) = c.next(&limits, false, false, Instant::now()).unwrap() else {
            panic!("the body is complete")
        };
        assert_eq!(second.path, "/b");
    }

    #[test]
    fn only_connections_without_a_request_in_hand_rank_for_eviction() {
        let mut c = conn(0, b"");
        assert!(c.unproductive_since().is_some(), "a silent new connection");
        c.buf
            .extend_from_slice(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\n");
        assert!(matches!(
            c.next(&HttpLimits::default(), false, false, Instant::now())
                .unwrap(),
            Next::Wait
        ));
        assert_eq!(c.state(), State::Body);
        assert!(c.unproductive_since().is_none(), "reading a body is work");
        let mut closing = conn(1, b"");
        closing.queue_last(&Response::json(408, &serde_json::json!({})));
        assert_eq!(closing.state(), State::Closing);
        assert!(closing.unproductive_since().is_none());
    }
}
