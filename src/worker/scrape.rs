//! `/metrics`, answered by the event loop like health: the shared counters plus what this
//! worker reads at scrape time — its listeners' accept queues (`TCP_INFO`), the CPU and memory
//! of the master and every live worker (/proc), the cgroup's CPU and memory, the network
//! namespace's interface counters (/proc/net/dev), and the platform fingerprint.

use super::accept::Acceptor;
use crate::app::Response;
use crate::metrics::{exposition, Metrics};
use std::sync::atomic::Ordering;

/// The scrape's answer. The in-flight gauge leaves the scrape itself out (and the caller its
/// connection), so an idle server reads zero.
pub(super) fn metrics_response(
    metrics: Option<&Metrics>,
    queue_empty: bool,
    acceptor: &Acceptor,
    platform: &[(&'static str, String)],
    accept: Option<&str>,
) -> Response {
    let Some(m) = metrics else {
        return Response::text(503, exposition::PROMETHEUS_TYPE, String::new());
    };
    let mut processes = vec![];
    let master = nix::unistd::getppid().as_raw();
    processes.extend(process_usage(master, "master"));
    for w in m.live_workers() {
        processes.extend(process_usage(w.pid.load(Ordering::Relaxed), "worker"));
    }
    let scrape = exposition::Scrape {
        backlogs: acceptor
            .listeners()
            .filter_map(|(fd, url)| {
                let (waiting, max) = accept_queue(fd)?;
                Some((url.to_string(), waiting, max))
            })
            .collect(),
        processes,
        version: env!("CARGO_PKG_VERSION"),
        platform: platform.to_vec(),
        own_request: true,
        queue_empty,
        cgroup: crate::platform::cgroup::usage(),
        interfaces: crate::platform::net::interfaces(),
    };
    let openmetrics = exposition::wants_openmetrics(accept);
    let content_type = if openmetrics {
        exposition::OPENMETRICS_TYPE
    } else {
        exposition::PROMETHEUS_TYPE
    };
    Response::text(
        200,
        content_type,
        exposition::render(m, &scrape, openmetrics),
    )
}

/// A TCP listener's accept queue: connections waiting (`tcpi_unacked`) and its size
/// (`tcpi_sacked`), as `ss -lt` shows them. `None` for other sockets.
fn accept_queue(fd: i32) -> Option<(u64, u64)> {
    // SAFETY: an all-zero tcp_info is valid; getsockopt writes at most `len` bytes into it.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    // 10 is TCP_LISTEN in the kernel's TCP states.
    (rc == 0 && info.tcpi_state == 10)
        .then(|| (u64::from(info.tcpi_unacked), u64::from(info.tcpi_sacked)))
}

/// A process's CPU seconds (user + system) and resident bytes, from /proc/PID/stat.
fn process_usage(pid: i32, role: &'static str) -> Option<(i32, &'static str, f64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = text.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let rss_pages: u64 = fields.get(21)?.parse().ok()?;
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .unwrap_or(4096) as u64;
    Some((pid, role, ticks as f64 / hz, rss_pages * page))
}
