//! Handler threads: take a heavy request from the shared queue (or, while the worker stops, from
//! its local one), run it against its deadline, answer, log, and hand a kept-alive connection
//! back to this worker's event loop.

use super::hub::{Handback, Hub};
use super::queue::Job;
use super::socket::write_all_within;
use crate::app::kernels::Deadline;
use crate::app::{timeout_response, HeavyParams, Response};
use crate::http::{encode_response, ResponseMeta, Version};
use crate::log;
use crate::shared::{monotonic_ms, monotonic_ns};
use serde_json::json;
use std::os::fd::{AsFd, OwnedFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a client may take to read a response before the thread gives up on it.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// How often an idle stopping thread looks again for work.
const STOP_POLL: Duration = Duration::from_millis(50);

pub fn spawn(hub: Arc<Hub>, index: usize) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("handler-{index}"))
        .spawn(move || {
            while let Some((job, fd)) = next_job(&hub) {
                hub.busy_since_ms[index].store(monotonic_ms().max(1), Ordering::Release);
                serve(&hub, job, fd);
                hub.busy_since_ms[index].store(0, Ordering::Release);
            }
        })
}

/// The next request to run, or `None` when this thread is done.
fn next_job(hub: &Hub) -> Option<(Job, OwnedFd)> {
    loop {
        if let Some(item) = hub.pop_local() {
            return Some(item);
        }
        if !hub.is_stopping() {
            match hub.queue.recv() {
                Ok(Some(item)) => return Some(item),
                Ok(None) => continue,
                Err(err) => {
                    log::error(&format!("shared queue receive failed: {err}"));
                    std::thread::sleep(STOP_POLL);
                    continue;
                }
            }
        }
        // Stopping. The last worker to stop drains the shared queue so nothing queued is lost;
        // while others still serve, they will take it.
        if hub.state.serving_workers.load(Ordering::Acquire) <= 0 {
            if let Ok(Some(item)) = hub.queue.try_recv() {
                return Some(item);
            }
        }
        if hub.loop_done.load(Ordering::Acquire) && hub.local_is_empty() {
            return None;
        }
        hub.wait_local(STOP_POLL);
    }
}

fn serve(hub: &Hub, job: Job, fd: OwnedFd) {
    let started_ns = monotonic_ns();
    let started = Instant::now();
    let waited = Duration::from_nanos(started_ns.saturating_sub(job.received_ns));
    let timeout = hub.config.timeout;
    let response = match timeout {
        Some(limit) if waited >= limit => timeout_response(limit, waited),
        _ => {
            let deadline = match timeout {
                Some(limit) => Deadline::at(started + (limit - waited)),
                None => Deadline::none(),
            };
            let params = HeavyParams {
                prime_limit: job.prime_limit,
                hash_rounds: job.hash_rounds,
                io_kb: job.io_kb,
                panic: job.panic,
            };
            let run = catch_unwind(AssertUnwindSafe(|| {
                hub.app.run_heavy(params, deadline, waited)
            }));
            match run {
                Ok(Ok(response)) => response,
                Ok(Err(_timed_out)) => {
                    timeout_response(timeout.unwrap_or_default(), waited + started.elapsed())
                }
                Err(_panic) => {
                    log::error(&format!("Error handling request {}", job.target));
                    Response::error(500, "internal server error", json!({}))
                }
            }
        }
    };
    let keep_alive = job.keep_alive && hub.config.keep_alive.is_some() && !hub.is_stopping();
    let meta = ResponseMeta {
        version: if job.http10 {
            Version::Http10
        } else {
            Version::Http11
        },
        keep_alive,
        head_only: job.method == "HEAD",
    };
    let bytes = encode_response(&response, meta);
    let sent = write_all_within(fd.as_fd(), &bytes, WRITE_TIMEOUT).is_ok();
    if log::access_enabled() {
        log::access(&log::AccessEntry {
            peer: &job.peer,
            method: &job.method,
            target: &job.target,
            path: &job.path,
            query: &job.query,
            protocol: meta.version.as_str(),
            status: response.status,
            body_bytes: if meta.head_only {
                0
            } else {
                response.body.len()
            },
            request_headers: &job.log_headers,
            response_headers: &response.headers,
            duration: Duration::from_nanos(monotonic_ns().saturating_sub(job.received_ns)),
        });
    }
    if sent && keep_alive {
        hub.hand_back(Handback {
            fd,
            leftover: job.leftover,
            peer: job.peer,
        });
    }
    // Otherwise `fd` drops here: the connection closes once every copy is gone.
}
