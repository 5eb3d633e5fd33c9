//! Connection floods: thousands of idle connections, and a descriptor limit far below
//! `--worker-connections`. The server must stay healthy, keep its threads and descriptors
//! bounded, and answer every request.

mod common;
use common::*;
use std::collections::HashMap;
use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

fn raise_fd_limit(to: u64) {
    let lim = libc::rlimit {
        rlim_cur: to,
        rlim_max: to,
    };
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
}

fn fd_count(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Threads that serve: the event loop and handler threads, not the log writers (`log-error`,
/// `log-access`), which each process starts with its first line of that log.
fn thread_count(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.flatten()
                .filter(|t| {
                    let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
                    !comm.starts_with("log-")
                })
                .count()
        })
        .unwrap_or(0)
}

/// Times 10 health checks and a light request, one after the other.
fn probes(port: u16) -> Duration {
    let started = Instant::now();
    for _ in 0..10 {
        assert_eq!(get(port, "/heavy/health/").status, 200);
    }
    assert_eq!(get(port, LIGHT).status, 200);
    started.elapsed()
}

#[test]
fn thousands_of_idle_connections_cost_no_threads_and_health_stays_green() {
    raise_fd_limit(20_000);
    let server = Server::start(&[
        "--workers",
        "2",
        "--threads",
        "2",
        "--worker-connections",
        "4000",
    ]);
    // Each worker runs its event loop and two handler threads once booted.
    wait_until(
        "two workers with 3 threads each",
        Duration::from_secs(60),
        || {
            let pids = server.worker_pids();
            pids.len() == 2 && pids.iter().all(|&p| thread_count(p) == 3)
        },
    );
    let workers = server.worker_pids();
    let without = probes(server.port);
    let threads_before: Vec<usize> = workers.iter().map(|&p| thread_count(p)).collect();
    let mut idle: Vec<TcpStream> = Vec::new();
    for i in 0..3000 {
        let mut s = connect(server.port);
        if i % 2 == 0 {
            // Half have been served once and are parked as keep-alive connections.
            s.write_all(b"GET /heavy/health/ HTTP/1.1\r\nHost: t\r\n\r\n")
                .unwrap();
            read_response(&mut BufReader::new(s.try_clone().unwrap()), false).unwrap();
        }
        idle.push(s);
    }
    // As fast as before the flood, within a wide margin (a per-connection scan would not be).
    let with_idle = probes(server.port);
    assert!(
        with_idle <= without * 20 + Duration::from_secs(2),
        "10 health checks and a light request took {with_idle:?} with 3000 idle connections, \
         {without:?} without"
    );
    let held: usize = workers.iter().map(|&p| fd_count(p)).sum();
    assert!(
        held >= 1500,
        "the workers hold the connections ({held} fds)"
    );
    let threads_after: Vec<usize> = workers.iter().map(|&p| thread_count(p)).collect();
    assert_eq!(threads_before, threads_after, "no thread per connection");
    drop(idle);
}

/// A 1-worker server with `args`, started with a limit of 64 descriptors.
fn server_with_64_descriptors(name: &str, args: &[&str]) -> Server {
    raise_fd_limit(20_000);
    let dir = temp_dir(name);
    let mut cmd = Command::new(BIN);
    cmd.args(["--bind", "127.0.0.1:0", "--workers", "1"])
        .args(args)
        .arg("--io-file")
        .arg(dir.path().join("data.bin"));
    with_descriptor_limit(&mut cmd, 64, 64);
    Server::spawn(cmd, &[], dir)
}

/// Five health probes, each answered 200 within `bound` (else the failure names `during`).
fn health_probes_answered_within(server: &Server, bound: Duration, during: &str) {
    for round in 0..5 {
        let mut s = connect(server.port);
        s.set_read_timeout(Some(bound)).unwrap();
        s.write_all(b"GET /heavy/health/ HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .unwrap();
        let resp = read_response(&mut BufReader::new(s), false).unwrap_or_else(|e| {
            panic!(
                "health probe {round} unanswered within {bound:?} during {during}: {e}; log:\n{}",
                server.log_text()
            )
        });
        assert_eq!(resp.status, 200);
    }
}

#[test]
fn a_worker_out_of_descriptors_holds_fewer_connections_and_answers_every_request() {
    let server = server_with_64_descriptors(
        "emfile",
        &["--threads", "2", "--worker-connections", "1000"],
    );
    // The worker fits --worker-connections to its 64 descriptors instead of running out.
    let line = server.wait_for_log(
        "--worker-connections 1000 lowered to ",
        Duration::from_secs(60),
    );
    let held: usize = line
        .split("lowered to ")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no lowered limit in {line:?}"));
    assert!(
        line.ends_with("the descriptor limit is 64") && (1..64).contains(&held),
        "{line}"
    );
    // Far more connections than it may hold, each with a heavy request: those beyond the limit
    // wait in the backlog, and every one gets an answer (200, or 503 with Retry-After).
    let mut flood: Vec<TcpStream> = (0..100).map(|_| connect(server.port)).collect();
    for s in &mut flood {
        s.write_all(
            format!("GET {LIGHT} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .unwrap();
    }
    let mut answers: HashMap<u16, usize> = HashMap::new();
    for (i, s) in flood.into_iter().enumerate() {
        let resp = read_response(&mut BufReader::new(s), false).unwrap_or_else(|e| {
            panic!(
                "connection {i} got no answer: {e}; log:\n{}",
                server.log_text()
            )
        });
        match resp.status {
            200 => {}
            503 => assert!(resp.header("Retry-After").is_some(), "{resp:?}"),
            other => panic!("connection {i}: {other} {resp:?}"),
        }
        *answers.entry(resp.status).or_default() += 1;
    }
    eprintln!("100 connections against {held} allowed: {answers:?}");
    assert_eq!(get(server.port, "/heavy/health/").status, 200);
    assert_eq!(get(server.port, LIGHT).status, 200);
    let log = server.log_text();
    assert!(!log.contains("out of file descriptors"), "{log}");
    assert!(!log.contains("was sent SIG"), "{log}");
}

/// Issue 22, defect 3: at the connection limit, connections that send nothing are evicted
/// (silent longest first) for new ones, so a flood of them at a low descriptor limit cannot
/// keep health probes out; before, only idle keep-alive connections were, and probes waited for
/// the silent ones' 10 s head timeout.
#[test]
fn a_flood_of_silent_connections_cannot_keep_health_out() {
    let server = server_with_64_descriptors("silent", &[]);
    server.wait_healthy(Duration::from_secs(60));
    // Four times what the worker may hold (about 40 with 64 descriptors), none sending a byte.
    let mut flood: Vec<TcpStream> = (0..160).map(|_| connect(server.port)).collect();
    // Each probe is answered within a bound well under the 10 s head timeout that used to
    // free the slots.
    const PROBE: Duration = Duration::from_secs(5);
    health_probes_answered_within(&server, PROBE, "a silent flood");
    // The oldest silent connection was the one evicted first.
    assert!(
        closed_within(&mut flood[0], PROBE),
        "the longest-silent connection was not closed within {PROBE:?}"
    );
    let metrics = get(server.port, "/metrics");
    let text = String::from_utf8_lossy(&metrics.body);
    let evicted: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("heavy_api_connections_evicted_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no eviction counter in:\n{text}"));
    assert!(evicted >= 1.0, "evicted {evicted}");
    drop(flood);
}

/// The same flood, but each connection dribbles a head one byte every 100 ms (slowloris): bytes
/// alone are not progress, so these are evicted as the silent ones are; before, each byte made
/// its connection look fresh and probes waited for the 10 s head timeout.
#[test]
fn a_flood_of_connections_dribbling_heads_cannot_keep_health_out() {
    let server = server_with_64_descriptors("dribble", &[]);
    server.wait_healthy(Duration::from_secs(60));
    let flood: Vec<TcpStream> = (0..160).map(|_| connect(server.port)).collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let dribbler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut flood = flood;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // An evicted connection's write fails: it is simply left out.
                flood.retain_mut(|s| s.write_all(b"X").is_ok());
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    const PROBE: Duration = Duration::from_secs(5);
    health_probes_answered_within(&server, PROBE, "a dribbling flood");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    dribbler.join().unwrap();
}
