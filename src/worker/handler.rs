//! Handler threads compute and nothing else: take a heavy request from the shared queue (or,
//! while the worker stops, from its local one), run it against its deadline, and hand the
//! connection with the finished response to this worker's event loop, which writes it. A thread
//! never waits for a client, so no client can hold a thread or the worker's heartbeat.

use super::hub::{Finished, Handback, Hub};
use super::queue::{Item, Job, RecvError};
use crate::app::kernels::Deadline;
use crate::app::{timeout_response, Response, Timings};
use crate::log;
use crate::metrics;
use crate::shared::{monotonic_ms, monotonic_ns};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use serde_json::json;
use std::os::fd::{AsFd, OwnedFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const QUEUE_TOKEN: u64 = 1;
const STOP_TOKEN: u64 = 2;

/// Starts handler thread `index`. Its epoll set is made here, so a failure is a boot error.
pub fn spawn(hub: Arc<Hub>, index: usize) -> std::io::Result<JoinHandle<()>> {
    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
    // EPOLLEXCLUSIVE: a new item wakes one idle thread (across all workers), not every one.
    epoll.add(
        hub.queue.recv_fd(),
        EpollEvent::new(
            EpollFlags::EPOLLIN | EpollFlags::EPOLLEXCLUSIVE,
            QUEUE_TOKEN,
        ),
    )?;
    epoll.add(
        hub.stop_signal.as_fd(),
        EpollEvent::new(EpollFlags::EPOLLIN, STOP_TOKEN),
    )?;
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
                } else {
                    hub.wait_for_room();
                    match next_shared(&hub, &epoll, &mut buf) {
                        Some(item) => item,
                        None => continue,
                    }
                };
                serve(&hub, index, item, fd);
            }
        })
}

/// Blocks until the shared queue has an item or the worker stops; `None` if this wake-up
/// brought nothing (another thread was quicker, or the worker is stopping). A thread woken for
/// an item takes it even if its worker has just begun to stop: the wake-up was this thread's
/// (`EPOLLEXCLUSIVE`), and leaving the item would strand it until the next one arrives.
fn next_shared(hub: &Hub, epoll: &Epoll, buf: &mut Vec<u8>) -> Option<(Item, OwnedFd)> {
    let mut events = [EpollEvent::empty(); 2];
    match epoll.wait(&mut events, EpollTimeout::NONE) {
        Ok(n) if events[..n].iter().any(|e| e.data() == QUEUE_TOKEN) => {}
        _ => return None,
    }
    match hub.queue.try_recv(buf) {
        Ok(Some((item, fd))) => {
            if matches!(item, Item::Heavy(_)) {
                metrics::with(|m| {
                    m.queue_depth.fetch_sub(1, Ordering::Relaxed);
                });
                hub.in_flight(1);
            }
            Some((item, fd))
        }
        Ok(None) => None,
        Err(RecvError::LostConnection) => {
            log::error("a connection passed on the shared queue was lost: out of file descriptors");
            None
        }
        Err(RecvError::Other(err)) => {
            log::error(&format!("shared queue receive failed: {err}"));
            // Not a tight loop on a persistent error.
            std::thread::sleep(Duration::from_millis(100));
            None
        }
    }
}

fn serve(hub: &Hub, index: usize, item: Item, fd: OwnedFd) {
    let handback = match item {
        Item::Adopt {
            peer,
            served,
            leftover,
        } => Handback {
            fd,
            peer,
            served,
            leftover,
            received_ns: 0,
            finished: None,
        },
        Item::Heavy(job) => {
            let job = *job;
            hub.busy_since_ms[index].store(monotonic_ms().max(1), Ordering::Release);
            let (response, timed_out) = run(hub, &job);
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
/// first byte arrived), and records where its time went. True with the answer: it timed out.
fn run(hub: &Hub, job: &Job) -> (Response, bool) {
    let started = Instant::now();
    let waited = Duration::from_nanos(monotonic_ns().saturating_sub(job.received_ns));
    let timeout = hub.config.timeout;
    if let Some(limit) = timeout {
        if waited >= limit {
            metrics::with(|m| {
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
        hub.app.run_heavy(job.params, deadline, waited)
    })) {
        Ok(Ok((response, timings))) => {
            record(&timings);
            (response, false)
        }
        Ok(Err(_timed_out)) => {
            metrics::with(|m| {
                m.request_timeouts.fetch_add(1, Ordering::Relaxed);
            });
            let worked = waited + started.elapsed();
            (timeout_response(timeout.unwrap_or_default(), worked), true)
        }
        Err(_panic) => {
            log::error(&format!("Error handling request {}", job.head.target));
            (
                Response::error(500, "internal server error", json!({})),
                false,
            )
        }
    }
}

/// A finished heavy request's phases, into the shared histograms.
fn record(t: &Timings) {
    metrics::with(|m| {
        let p = &m.phases;
        p.queue.observe(t.queue);
        p.cpu.observe(t.cpu);
        p.cpu_thread.observe(t.cpu_thread);
        p.cpu_wait.observe(t.cpu_wait);
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
