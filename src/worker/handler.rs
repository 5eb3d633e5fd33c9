//! Handler threads compute and nothing else: take a heavy request from the shared queue (or,
//! while the worker stops, from its local one), run it against its deadline, and hand the
//! connection with the finished response to this worker's event loop, which writes it. A thread
//! never waits for a client, so no client can hold a thread or the worker's heartbeat.

use super::hub::{Finished, Handback, Hub};
use super::queue::{Item, RecvError};
use crate::app::kernels::Deadline;
use crate::app::{timeout_response, HeavyParams, Response, Timings};
use crate::log;
use crate::shared::{monotonic_ms, monotonic_ns};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use serde_json::json;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const QUEUE_TOKEN: u64 = 1;
const STOP_TOKEN: u64 = 2;
const LOCAL_TOKEN: u64 = 3;

/// Starts handler thread `index`. Its epoll set is made here, so a failure is a boot error.
pub fn spawn(hub: Arc<Hub>, index: usize) -> std::io::Result<JoinHandle<()>> {
    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
    // EPOLLEXCLUSIVE: a new item on the shared queue wakes one idle thread (across all
    // workers), a local job one idle thread of this worker, not every one; a stop wakes all.
    let exclusive = EpollFlags::EPOLLIN | EpollFlags::EPOLLEXCLUSIVE;
    for (fd, flags, token) in [
        (hub.queue.recv_fd(), exclusive, QUEUE_TOKEN),
        (hub.stop_signal.as_fd(), EpollFlags::EPOLLIN, STOP_TOKEN),
        (hub.local_wake.as_fd(), exclusive, LOCAL_TOKEN),
    ] {
        epoll.add(fd, EpollEvent::new(flags, token))?;
    }
    std::thread::Builder::new()
        .name(format!("handler-{index}"))
        .spawn(move || {
            let mut buf = Vec::new();
            loop {
                let (item, fd) = if hub.is_stopping() {
                    match hub.next_local() {
                        Some((job, fd)) => (Item::Heavy(Box::new(job)), fd),
                        None => return,
                    }
                } else if let Some((job, fd)) = hub.try_local() {
                    (Item::Heavy(Box::new(job)), fd)
                } else {
                    hub.wait_for_room();
                    match next_work(&hub, &epoll, &mut buf) {
                        Some(item) => item,
                        None => continue,
                    }
                };
                serve(&hub, index, item, fd);
            }
        })
}

/// Blocks until there is work: an item on the shared queue, a local job offered by this
/// worker's loop, or the worker stopping (`None`). A thread woken for a shared item takes it
/// even if its worker has just begun to stop: the wake-up was this thread's (`EPOLLEXCLUSIVE`),
/// and leaving the item would strand it until the next one arrives. A thread claimed by a local
/// job while it was also woken for a shared item puts the shared one back on the queue for
/// another idle thread (or, if the queue is full, serves it next), so neither waits while a
/// thread anywhere is idle.
fn next_work(hub: &Hub, epoll: &Epoll, buf: &mut Vec<u8>) -> Option<(Item, OwnedFd)> {
    let mut events = [EpollEvent::empty(); 3];
    hub.idle_threads.fetch_add(1, Ordering::AcqRel);
    // Checked after counting itself idle: a job offered just before is not missed.
    let n = if hub.has_local() {
        0
    } else {
        epoll.wait(&mut events, EpollTimeout::NONE).unwrap_or(0)
    };
    let woke_for = |token| events[..n].iter().any(|e| e.data() == token);
    if woke_for(LOCAL_TOKEN) {
        let _ = hub.local_wake.read();
    }
    let claimed = !hub.leave_idle();
    let shared = if woke_for(QUEUE_TOKEN) {
        recv_shared(hub, buf)
    } else {
        None
    };
    if claimed || shared.is_none() {
        if let Some((job, fd)) = hub.try_local() {
            if let Some((item, item_fd)) = shared {
                put_back(hub, item, item_fd);
            }
            return Some((Item::Heavy(Box::new(job)), fd));
        }
    }
    if shared.is_some() && hub.has_local() {
        // A local job's wake-up came to this thread too: pass it to another idle one.
        let _ = hub.local_wake.write(1);
    }
    shared
}

/// A shared item this thread cannot take now: back on the queue for any idle thread, or, if
/// the queue is full, this thread's next local job.
fn put_back(hub: &Hub, item: Item, fd: OwnedFd) {
    if hub.queue.try_send(&item, fd.as_raw_fd()).is_ok() {
        if matches!(item, Item::Heavy(_)) {
            hub.in_flight(-1);
            hub.count(|m| {
                m.queue_depth.fetch_add(1, Ordering::Relaxed);
            });
        }
        return;
    }
    match item {
        Item::Heavy(job) => hub.push_local(*job, fd),
        // Adopting a connection is no work: its loop takes it now.
        Item::Adopt {
            peer,
            served,
            leftover,
        } => hub.hand_back(Handback::adopted(fd, peer, served, leftover)),
    }
}

fn recv_shared(hub: &Hub, buf: &mut Vec<u8>) -> Option<(Item, OwnedFd)> {
    match hub.queue.try_recv(buf) {
        Ok(Some((item, fd))) => {
            if matches!(item, Item::Heavy(_)) {
                hub.count(|m| {
                    m.queue_depth.fetch_sub(1, Ordering::Relaxed);
                });
                hub.in_flight(1);
            }
            Some((item, fd))
        }
        Ok(None) => None,
        Err(err @ RecvError::Other(_)) => {
            log::error(&err.to_string());
            // Not a tight loop on a persistent error.
            std::thread::sleep(Duration::from_millis(100));
            None
        }
        Err(err) => {
            refuse(hub, err);
            None
        }
    }
}

/// A receive that brought no usable item: logged, and an undecodable frame counted and its
/// connection answered 500 (`Connection: close`), so its client is told, never left waiting.
pub(super) fn refuse(hub: &Hub, err: RecvError) {
    log::error(&err.to_string());
    let RecvError::Undecodable { conn, heavy, .. } = err else {
        return;
    };
    let metrics = hub.metrics;
    hub.count(|m| {
        m.queue_frames_rejected.fetch_add(1, Ordering::Relaxed);
        if heavy {
            m.queue_depth.fetch_sub(1, Ordering::Relaxed);
        }
    });
    if let Some(conn) = conn {
        let response = Response::error(
            500,
            "internal server error: the request could not be passed between workers",
            json!({}),
        );
        let meta = crate::http::ResponseMeta {
            version: crate::http::Version::Http11,
            keep_alive: false,
            head_only: false,
        };
        let bytes = crate::http::encode_response(&response, meta);
        let _ = super::socket::write_nonblocking(conn.as_fd(), &bytes, metrics);
        if let Some(m) = metrics {
            m.record_response("", "", 500, Duration::ZERO);
        }
    }
}

fn serve(hub: &Hub, index: usize, item: Item, fd: OwnedFd) {
    let handback = match item {
        Item::Adopt {
            peer,
            served,
            leftover,
        } => Handback::adopted(fd, peer, served, leftover),
        Item::Heavy(job) => {
            let job = *job;
            hub.busy_since_ms[index].store(monotonic_ms().max(1), Ordering::Release);
            let (response, timed_out) = run(hub, &job.params, job.received_ns, &job.head.target);
            hub.busy_since_ms[index].store(0, Ordering::Release);
            Handback {
                fd,
                peer: job.peer,
                served: job.served,
                leftover: job.leftover,
                received_ns: job.received_ns,
                finished: Some(Box::new(Finished {
                    head: job.head,
                    response,
                    timed_out,
                })),
            }
        }
    };
    hub.hand_back(handback);
}

/// Runs the request within what is left of its `--timeout` (it has been waiting since its
/// first byte arrived, at `received_ns`), and records where its time went. True with the
/// answer: it timed out. (Also the event loop's, for a request that runs inline.)
pub(super) fn run(
    hub: &Hub,
    params: &HeavyParams,
    received_ns: u64,
    target: &str,
) -> (Response, bool) {
    let started = Instant::now();
    let waited = Duration::from_nanos(monotonic_ns().saturating_sub(received_ns));
    let timeout = hub.config.timeout;
    if let Some(limit) = timeout {
        if waited >= limit {
            hub.count(|m| {
                m.request_timeouts.fetch_add(1, Ordering::Relaxed);
            });
            return (timeout_response(limit, waited), true);
        }
    }
    let deadline = match timeout {
        Some(limit) => Deadline::at(started + (limit - waited)),
        None => Deadline::none(),
    };
    match catch_unwind(AssertUnwindSafe(|| {
        hub.app.run_heavy(*params, deadline, waited)
    })) {
        Ok(Ok((response, timings))) => {
            record(hub, &timings);
            (response, false)
        }
        Ok(Err(_timed_out)) => {
            hub.count(|m| {
                m.request_timeouts.fetch_add(1, Ordering::Relaxed);
            });
            let worked = waited + started.elapsed();
            (timeout_response(timeout.unwrap_or_default(), worked), true)
        }
        Err(_panic) => {
            log::error(&format!("Error handling request {target}"));
            (
                Response::error(500, "internal server error", json!({})),
                false,
            )
        }
    }
}

/// A finished heavy request's phases, into the shared histograms.
fn record(hub: &Hub, t: &Timings) {
    hub.count(|m| {
        let p = &m.traffic().phases;
        p.queue.observe(t.queue);
        p.cpu.observe(t.cpu);
        if let Some(v) = t.cpu_thread {
            p.cpu_thread.observe(v);
        }
        if let Some(v) = t.cpu_wait {
            p.cpu_wait.observe(v);
        }
        p.io.observe(t.io);
        p.fsync.observe(t.fsync);
        if let Some(v) = t.throttled {
            p.throttled.observe(v);
        }
        if let Some(v) = t.steal {
            p.steal.observe(v);
        }
    });
}
