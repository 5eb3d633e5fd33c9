//! One client connection as the event loop holds it: what has been read and not yet parsed,
//! where the current request stands, what is waiting to be written, and its deadline.

use crate::app::Response;
use crate::http::{encode_response, BodyReader, HttpLimits, RequestHead, ResponseMeta};
use crate::log;
use crate::shared::monotonic_ns;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

/// How long a new connection may stay silent before it is closed.
pub(super) const FIRST_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) struct Conn {
    pub(super) fd: OwnedFd,
    pub(super) peer: String,
    /// Received bytes not yet consumed.
    pub(super) buf: Vec<u8>,
    pub(super) phase: Phase,
    /// Response bytes not yet written.
    pub(super) out: Vec<u8>,
    pub(super) close_after_out: bool,
    pub(super) served: u64,
    /// When the current request's first byte arrived (`CLOCK_MONOTONIC` ns); 0: none yet.
    pub(super) request_start_ns: u64,
    pub(super) deadline: Instant,
    pub(super) wants_write: bool,
    /// How much of `buf` the last incomplete parse saw, and where its unfinished line started:
    /// a head is parsed again only when a line ends or the open line outgrows the limits, so a
    /// head trickling in byte by byte costs linear time, not quadratic.
    pub(super) parsed_len: usize,
    pub(super) open_line_start: usize,
}

pub(super) enum Phase {
    Head,
    Body {
        head: Box<RequestHead>,
        body: BodyReader,
    },
}

impl Conn {
    pub(super) fn new(fd: OwnedFd, peer: String, now: Instant) -> Conn {
        Conn {
            fd,
            peer,
            buf: Vec::new(),
            phase: Phase::Head,
            out: Vec::new(),
            close_after_out: false,
            served: 0,
            request_start_ns: 0,
            deadline: now + FIRST_REQUEST_TIMEOUT,
            wants_write: false,
            parsed_len: 0,
            open_line_start: 0,
        }
    }

    /// Whether the bytes that came since the last incomplete parse can change its outcome.
    pub(super) fn head_may_be_ready(&self, limits: &HttpLimits) -> bool {
        if self.parsed_len == 0 || self.parsed_len > self.buf.len() {
            return true;
        }
        let longest_line = limits.request_line.max(limits.field_size) + 1;
        self.buf[self.parsed_len..].contains(&b'\n')
            || self.buf.len() - self.open_line_start > longest_line
    }

    pub(super) fn note_incomplete_head(&mut self) {
        self.parsed_len = self.buf.len();
        self.open_line_start = self
            .buf
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
    }

    pub(super) fn is_idle(&self) -> bool {
        self.buf.is_empty() && self.out.is_empty() && matches!(self.phase, Phase::Head)
    }
}

/// Queues an immediate answer on the connection and logs it.
pub(super) fn answer_inline(
    conn: &mut Conn,
    head: &RequestHead,
    response: &Response,
    keep_alive: bool,
) {
    let meta = ResponseMeta {
        version: head.version,
        keep_alive,
        head_only: head.method == "HEAD",
    };
    conn.out.extend_from_slice(&encode_response(response, meta));
    conn.served += 1;
    if !keep_alive {
        conn.close_after_out = true;
        conn.buf.clear();
    }
    if log::access_enabled() {
        log::access(&log::AccessEntry {
            peer: &conn.peer,
            method: &head.method,
            target: &head.target,
            path: &head.path,
            query: &head.query,
            protocol: head.version.as_str(),
            status: response.status,
            body_bytes: if meta.head_only {
                0
            } else {
                response.body.len()
            },
            request_headers: &head.headers,
            response_headers: &response.headers,
            duration: Duration::from_nanos(monotonic_ns().saturating_sub(conn.request_start_ns)),
        });
    }
    if !conn.buf.is_empty() {
        // The next pipelined request started arriving with this one.
        conn.request_start_ns = monotonic_ns();
    }
}
