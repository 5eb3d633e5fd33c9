//! Connection floods: thousands of idle connections, and running out of file descriptors. The
//! server must stay healthy, keep its threads and descriptors bounded, and recover.

mod common;
use common::*;
use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
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

fn thread_count(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.count())
        .unwrap_or(0)
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
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(server.worker_pids().len() == 2
        && server.worker_pids().iter().all(|&p| thread_count(p) == 3))
    {
        assert!(Instant::now() < deadline, "workers did not boot");
        std::thread::sleep(Duration::from_millis(20));
    }
    let workers = server.worker_pids();
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
    let started = Instant::now();
    for _ in 0..10 {
        assert_eq!(get(server.port, "/heavy/health/").status, 200);
    }
    assert_eq!(get(server.port, LIGHT).status, 200);
    assert!(started.elapsed() < Duration::from_secs(5));
    let held: usize = workers.iter().map(|&p| fd_count(p)).sum();
    assert!(
        held >= 1500,
        "the workers hold the connections ({held} fds)"
    );
    let threads_after: Vec<usize> = workers.iter().map(|&p| thread_count(p)).collect();
    assert_eq!(threads_before, threads_after, "no thread per connection");
    drop(idle);
}

#[test]
fn a_worker_out_of_descriptors_recovers_once_they_free_up() {
    raise_fd_limit(20_000);
    let io_file = temp_dir("emfile").join("data.bin");
    let mut cmd = Command::new(BIN);
    cmd.args([
        "--bind",
        "127.0.0.1:0",
        "--workers",
        "1",
        "--threads",
        "2",
        "--io-file",
    ])
    .arg(&io_file);
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 64,
                rlim_max: 64,
            };
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            Ok(())
        });
    }
    let server = Server::spawn(cmd, &[], io_file);
    // Far more connections than the worker has descriptors: the rest wait in the backlog.
    let flood: Vec<TcpStream> = (0..200).map(|_| connect(server.port)).collect();
    server.wait_for_log("out of file descriptors", Duration::from_secs(20));
    drop(flood);
    // Once they are gone the worker accepts again: it never goes deaf.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if try_get(server.port, "/heavy/health/").is_ok_and(|r| r.status == 200) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the worker went deaf:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(get(server.port, LIGHT).status, 200);
    assert!(!server.log_text().contains("was sent SIG"));
}
