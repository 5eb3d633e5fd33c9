//! What happens to a complete request: answered here (health, every error), or handed to a
//! handler thread (heavy work) through the shared queue — or, while this worker stops, its own
//! local queue. Also where a retiring worker passes its connections on.

use super::connection::{Outcome, SHUTDOWN_GRACE};
use super::event_loop::EventLoop;
use super::queue::{Item, Job, SendError};
use super::socket::has_pending_input;
use crate::app::{Response, Route, METRICS_PATH};
use crate::http::{HttpError, RequestHead};
use crate::log;
use crate::metrics;
use serde_json::json;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::time::Instant;

impl EventLoop {
    /// Whether the answer to `head` keeps the connection open: the client wants it,
    /// keep-alive is on, and this worker is not stopping.
    pub(super) fn keeps_alive(&self, head: &RequestHead) -> bool {
        head.keep_alive && self.hub.config.keep_alive.is_some() && self.stop_started.is_none()
    }

    /// A complete request: answer it here, or queue it for a handler thread. Returns false if
    /// the connection left the loop with the request.
    pub(super) fn dispatch(&mut self, token: u64, head: RequestHead) -> bool {
        self.requests += 1;
        self.hub.in_flight(1);
        // `--max-requests N`: the N-th request is this worker's last; it is answered here (or
        // by this worker's threads) with `Connection: close`, as Gunicorn does.
        let last = self.max_requests > 0 && self.requests >= self.max_requests;
        let keep_alive = self.keeps_alive(&head) && !last;
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
                        &self.acceptor,
                        &self.platform_labels,
                        head.accept.as_deref(),
                    )
                };
                self.answer(token, &head, &response, keep_alive, Outcome::Normal)
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

    /// Puts a heavy request on the shared queue; answers 503 (full) or 431 (too large to pass
    /// on) itself when it cannot.
    fn queue_job(&mut self, token: u64, job: Job) -> bool {
        let conn = self.conns.get_mut(token).expect("live connection");
        let fd = conn.fd().as_raw_fd();
        let mut item = Item::Heavy(Box::new(job));
        // Counted before it is sent, so a thread taking it at once never sees the depth below
        // zero; taken back if it was not sent.
        metrics::with(|m| {
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
            metrics::with(|m| {
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
                metrics::with(|m| {
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
        conn.respond(head, response, keep_alive, outcome);
        true
    }

    /// `/heavy/ready/`: 200 while this worker and the server take work; 503 once a stop or a
    /// drain has begun, so load balancers stop sending before anything closes.
    fn readiness(&self) -> Response {
        let draining = self.stop_started.is_some()
            || metrics::get().is_some_and(|m| m.draining.load(Ordering::Relaxed));
        if draining {
            Response::json(503, &json!({ "status": "draining" }))
        } else {
            Response::json(200, &json!({ "status": "ready" }))
        }
    }

    /// A stopping worker's connection that is between requests. While the server goes on (a
    /// recycle, TTOU, reload) it is passed on the shared queue to the other workers — or to
    /// this one's replacement — so its client never sees it close: what the client sends
    /// meanwhile waits in the socket and goes along. When the whole server shuts down it closes
    /// if it was idle after an answer (the client retries on a reused connection); one that has
    /// sent nothing yet, or whose request is already waiting in the socket, is answered here.
    pub(super) fn retire_conn(&mut self, token: u64) {
        let Some(conn) = self.conns.get(token) else {
            return;
        };
        if !self.hub.state.shutting_down.load(Ordering::Acquire) {
            let item = Item::Adopt {
                peer: conn.peer().clone(),
                served: conn.served(),
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
        if conn.served() > 0 && !has_pending_input(conn.fd()) {
            self.close(token);
        } else if let Some(conn) = self.conns.get_mut(token) {
            conn.give_until(Instant::now() + SHUTDOWN_GRACE);
            self.rearm(token);
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
