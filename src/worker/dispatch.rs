//! What happens to a complete request: answered here (health, every error, heavy work smaller
//! than a hand-off), or handed to a handler thread (heavy work) through the shared queue — or,
//! while this worker stops, its own local queue. Also where a retiring worker passes its
//! connections on.

use super::connection::{Outcome, SHUTDOWN_GRACE};
use super::event_loop::EventLoop;
use super::queue::{Item, Job, SendError};
use crate::app::{Response, Route, METRICS_PATH};
use crate::http::{HttpError, RequestHead};
use crate::log;
use serde_json::json;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;

impl EventLoop {
    /// Whether the answer to `head` keeps the connection open: the client wants it, keep-alive
    /// is on, and the server is not draining or shutting down (then every answer says
    /// `Connection: close`, so no client sends a request into a connection about to close). A
    /// retiring worker while the server goes on keeps it alive: the connection is passed on.
    pub(super) fn keeps_alive(&self, token: u64, head: &RequestHead) -> bool {
        let wanted = head.keep_alive
            && self.hub.config.keep_alive.is_some()
            && self.conns.get(token).is_some_and(|c| c.may_keep_alive());
        wanted
            && !self.server_stopping()
            && (self.stop_started.is_none() || self.passes_connections_on())
    }

    /// The server is draining (`--drain-delay`) or shutting down.
    fn server_stopping(&self) -> bool {
        self.hub.state.shutting_down.load(Ordering::Acquire)
            || self
                .hub
                .metrics
                .is_some_and(|m| m.draining.load(Ordering::Acquire))
    }

    /// This worker is retiring while the server goes on (recycling, HUP, TTOU): its connections
    /// move to the other workers (or its replacement) between requests.
    pub(super) fn passes_connections_on(&self) -> bool {
        self.stop_started.is_some() && !self.hub.state.shutting_down.load(Ordering::Acquire)
    }

    /// A complete request: answer it here, or queue it for a handler thread. Returns false if
    /// the connection left the loop with the request.
    pub(super) fn dispatch(&mut self, token: u64, head: RequestHead) -> bool {
        self.requests += 1;
        self.hub.in_flight(1);
        // `--max-requests N`: the N-th request is this worker's last; it is answered here (or
        // by this worker's threads) with `Connection: close`, as Gunicorn does.
        let last = self.max_requests > 0 && self.requests >= self.max_requests;
        // The last answer says `Connection: close`, as Gunicorn's does — unless the client has
        // already sent more (pipelining): then the connection stays open and moves to another
        // worker with those requests, so none is lost.
        let more = last && self.conns.get(token).is_some_and(|c| c.has_more_input());
        let keep_alive = self.keeps_alive(token, &head) && (!last || more);
        let mut head = head;
        if last && !keep_alive {
            // Decided now: a heavy request is answered after the stop has begun.
            head.keep_alive = false;
        }
        let metrics_port = self.conns.get(token).is_some_and(|c| c.is_metrics_port());
        let route = if metrics_port && head.path != METRICS_PATH {
            // The metrics listener serves the metrics only.
            Route::Ready(Response::error(
                404,
                "not found",
                json!({ "path": head.path }),
            ))
        } else {
            self.hub.app.route(&head.method, &head.path, &head.query)
        };
        let stays = match route {
            Route::Ready(response) => {
                self.answer(token, &head, &response, keep_alive, Outcome::Normal)
            }
            Route::Readiness => {
                let response = self.readiness();
                self.answer(token, &head, &response, keep_alive, Outcome::Normal)
            }
            Route::Metrics => {
                let response = if self.acceptor.has_metrics_listener() && !metrics_port {
                    // Served on --metrics-bind only, so a load balancer never reaches it.
                    Response::error(404, "not found", json!({ "path": head.path }))
                } else {
                    self.publish_connection_gauges(Some(token));
                    super::scrape::metrics_response(
                        self.hub.metrics,
                        self.hub.queue.is_empty().unwrap_or(false),
                        &self.acceptor,
                        &self.platform_labels,
                        head.accept.as_deref(),
                    )
                };
                self.answer(token, &head, &response, keep_alive, Outcome::Normal)
            }
            Route::Heavy(params) if params.runs_inline() => {
                // Less work than a hand-off: answered here, as health is.
                let received_ns = self
                    .conns
                    .get(token)
                    .expect("live connection")
                    .request_start_ns();
                let (response, timed_out) =
                    super::handler::run(&self.hub, &params, received_ns, &head.target);
                let outcome = if timed_out {
                    Outcome::TimedOut
                } else {
                    Outcome::Normal
                };
                self.answer(token, &head, &response, keep_alive, outcome)
            }
            Route::Heavy(params) => {
                let conn = self.conns.get_mut(token).expect("live connection");
                let job = Job {
                    head,
                    params,
                    received_ns: conn.request_start_ns(),
                    peer: conn.peer().clone(),
                    served: conn.served(),
                    leftover: conn.take_leftover(),
                };
                if self.stop_started.is_some() || last {
                    let conn = self.remove(token).expect("live connection");
                    self.hub.push_local(job, conn.into_fd());
                    false
                } else {
                    self.queue_job(token, job)
                }
            }
        };
        if last {
            self.begin_stop(Some("Autorestarting worker after current request."));
        }
        stays
    }

    /// Hands a heavy request to a thread: one of this worker's own if one is idle, else any
    /// worker's through the shared queue; answers 503 (full) or 431 (too large to pass on)
    /// itself when it cannot.
    fn queue_job(&mut self, token: u64, job: Job) -> bool {
        // (A `fault=frame` request goes by the queue: it is there to test the frame.)
        if self.hub.has_idle_thread() && !job.params.corrupt_frame {
            // The fast path: a thread of this worker is idle, so it takes the request in
            // process — no datagram, no descriptor passing, no other worker woken.
            let conn = self.remove(token).expect("live connection");
            let (peer, served, metrics_port) =
                (conn.peer().clone(), conn.served(), conn.is_metrics_port());
            match self.hub.offer_local(job, conn.into_fd()) {
                None => return false,
                Some((job, fd)) => {
                    // The idle thread was taken meanwhile: the shared queue, as any other.
                    let Some(token) = self.add_conn(fd, peer, served, Vec::new(), metrics_port)
                    else {
                        self.hub.in_flight(-1);
                        return false;
                    };
                    // Under its new token: the caller's token has left the loop, so an answer
                    // queued here (queue full) is written here.
                    if self.send_shared(token, job) {
                        self.advance(token);
                    }
                    return false;
                }
            }
        }
        self.send_shared(token, job)
    }

    /// Puts a heavy request on the shared queue, for an idle thread of any worker.
    fn send_shared(&mut self, token: u64, job: Job) -> bool {
        let conn = self.conns.get_mut(token).expect("live connection");
        let fd = conn.fd().as_raw_fd();
        let mut item = Item::Heavy(Box::new(job));
        // Counted before it is sent, so a thread taking it at once never sees the depth below
        // zero; taken back if it was not sent.
        self.hub.count(|m| {
            m.queue_depth.fetch_add(1, Ordering::Relaxed);
        });
        let mut sent = self.hub.queue.try_send(&item, fd);
        if matches!(sent, Err(SendError::TooLarge)) {
            // Huge (but legal) headers kept for the access log: keep what the format shows,
            // shortened, rather than refuse the request.
            if let Item::Heavy(job) = &mut item {
                shorten_logged_headers(&mut job.head.headers);
            }
            sent = self.hub.queue.try_send(&item, fd);
        }
        if sent.is_err() {
            self.hub.count(|m| {
                m.queue_depth.fetch_sub(1, Ordering::Relaxed);
            });
        }
        let Item::Heavy(job) = item else {
            unreachable!("built as a heavy item above")
        };
        let response = match sent {
            Ok(()) => {
                // Passed on: the worker whose thread takes it holds it now.
                self.hub.in_flight(-1);
                self.remove(token);
                return false;
            }
            Err(SendError::Full) => {
                self.hub.count(|m| {
                    m.queue_full.fetch_add(1, Ordering::Relaxed);
                });
                Response::error(
                    503,
                    "server busy: the request queue is full",
                    json!({ "retry_after_sec": 1 }),
                )
                .with_header("Retry-After", "1")
            }
            Err(SendError::TooLarge) => {
                HttpError::header_too_large("request headers too large to queue").to_response()
            }
            Err(SendError::Other(e)) => {
                log::error(&format!("cannot queue a request: {e}"));
                Response::error(500, "internal server error", json!({}))
            }
        };
        let job = *job;
        let conn = self.conns.get_mut(token).expect("live connection");
        conn.restore_leftover(job.leftover);
        self.answer(token, &job.head, &response, false, Outcome::Normal)
    }

    /// Queues the answer to a dispatched request on its connection (the request leaves the
    /// in-flight count). Returns true: the connection stays in the loop.
    pub(super) fn answer(
        &mut self,
        token: u64,
        head: &RequestHead,
        response: &Response,
        keep_alive: bool,
        outcome: Outcome,
    ) -> bool {
        self.hub.in_flight(-1);
        let conn = self.conns.get_mut(token).expect("live connection");
        conn.respond(head, response, keep_alive, outcome, self.now);
        true
    }

    /// `/heavy/ready/`: 200 while this worker and the server take work; 503 once a stop or a
    /// drain has begun, so load balancers stop sending before anything closes.
    fn readiness(&self) -> Response {
        let draining = self.stop_started.is_some()
            || self
                .hub
                .metrics
                .is_some_and(|m| m.draining.load(Ordering::Relaxed));
        if draining {
            Response::json(503, &json!({ "status": "draining" }))
        } else {
            Response::json(200, &json!({ "status": "ready" }))
        }
    }

    /// A stopping worker's connection that is between requests. While the server goes on (a
    /// recycle, TTOU, reload) it is passed on the shared queue to the other workers — or to
    /// this one's replacement — with the bytes of its next request(s) already read, so its
    /// client never sees it close: what the client sends meanwhile waits in the socket and goes
    /// along. When the whole server shuts down (or the queue is full) it closes if it was idle
    /// after an answer (the client retries on a reused connection); one that has sent nothing
    /// yet gets a second; one with a request arriving is answered here, with its last answer.
    pub(super) fn retire_conn(&mut self, token: u64) {
        let Some(conn) = self.conns.get(token) else {
            return;
        };
        let shutting_down = self.hub.state.shutting_down.load(Ordering::Acquire);
        if !shutting_down {
            let item = Item::Adopt {
                peer: conn.peer().clone(),
                served: conn.served(),
                leftover: conn.pending_bytes().to_vec(),
            };
            if self
                .hub
                .queue
                .try_send(&item, conn.fd().as_raw_fd())
                .is_ok()
            {
                self.close(token);
                return;
            }
        }
        let idle = conn.served() > 0 && !conn.has_more_input();
        let silent = conn.pending_bytes().is_empty();
        if idle {
            self.close(token);
        } else if shutting_down && silent {
            if let Some(conn) = self.conns.get_mut(token) {
                conn.give_until(self.now + SHUTDOWN_GRACE);
            }
            self.rearm(token);
        } else if let Some(conn) = self.conns.get_mut(token) {
            // Not passed on (the queue is full, or the server stops) with a request arriving:
            // served here, and its answer is the connection's last.
            conn.keep_here();
            self.advance(token);
        }
    }
}

/// Keeps only the headers the access-log format shows, each at most 1 KiB.
fn shorten_logged_headers(headers: &mut Vec<(String, String)>) {
    headers.retain(|(n, _)| log::access_reads_header(&n.to_ascii_lowercase()));
    for (_, value) in headers {
        let mut cut = value.len().min(1024);
        while !value.is_char_boundary(cut) {
            cut -= 1;
        }
        value.truncate(cut);
    }
}
