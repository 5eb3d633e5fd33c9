//! Gunicorn's master semantics on the real binary, with real signals.

mod common;
use common::*;
use std::io::{BufReader, Write};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

const SECS: Duration = Duration::from_secs(20);

fn wait_until(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// Runs GETs from two threads until stopped, one on a fresh connection per request and one on a
/// keep-alive connection. Like every HTTP client, the keep-alive one retries a request once on a
/// new connection when a *reused* connection closes before any answer byte (the server may close
/// an idle connection just as a request is sent); those retries are counted, not failed.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    retried: Arc<AtomicUsize>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl Load {
    fn start(port: u16, path: &'static str) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(AtomicUsize::new(0));
        let retried = Arc::new(AtomicUsize::new(0));
        let mut threads = Vec::new();
        {
            let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
            threads.push(thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match try_get(port, path) {
                        Ok(r) if r.status == 200 => ok.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            }));
        }
        {
            let (stop, ok, failed, retried) =
                (stop.clone(), ok.clone(), failed.clone(), retried.clone());
            threads.push(thread::spawn(move || {
                let mut conn: Option<(std::net::TcpStream, BufReader<std::net::TcpStream>)> = None;
                while !stop.load(Ordering::Relaxed) {
                    let reused = conn.is_some();
                    let (s, reader) = conn.get_or_insert_with(|| {
                        let s = connect(port);
                        let r = BufReader::new(s.try_clone().unwrap());
                        (s, r)
                    });
                    let sent =
                        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
                    let answer = sent.and_then(|_| read_response(reader, false));
                    match answer {
                        Ok(r) if r.status == 200 => {
                            ok.fetch_add(1, Ordering::Relaxed);
                            if r.header("Connection") == Some("close") {
                                conn = None;
                            }
                        }
                        Err(e) if reused && e.kind() != std::io::ErrorKind::InvalidData => {
                            retried.fetch_add(1, Ordering::Relaxed);
                            conn = None;
                        }
                        _ => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            conn = None;
                        }
                    }
                }
            }));
        }
        Load {
            stop,
            ok,
            failed,
            retried,
            threads,
        }
    }

    /// Stops the load; returns (succeeded, failed, retried on a reused connection).
    fn finish(self) -> (usize, usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
        let get = |a: &AtomicUsize| a.load(Ordering::Relaxed);
        (get(&self.ok), get(&self.failed), get(&self.retried))
    }
}

#[test]
fn boot_log_lines_follow_gunicorn() {
    let server = Server::start(&["--workers", "2"]);
    server.wait_for_log_count("Booting worker with pid: ", 2, SECS);
    let log = server.log_text();
    assert!(log.contains("[INFO] Starting heavy-api "), "{log}");
    assert!(
        log.contains(&format!(
            "[INFO] Listening at: http://127.0.0.1:{} ({})",
            server.port,
            server.pid()
        )),
        "{log}"
    );
    assert!(log.contains("[INFO] Using worker: threads"), "{log}");
    let line = log.lines().next().unwrap();
    // [2026-11-26 22:16:54 +0000] [2425] [INFO] ...
    assert!(
        line.starts_with('[') && line.as_bytes()[20] == b' ' && line[27..].starts_with(" ["),
        "{line}"
    );
}

#[test]
fn sigterm_finishes_accepted_requests_and_exits_0() {
    let mut server = Server::start(&["--workers", "2", "--threads", "2"]);
    let inflight: Vec<_> = (0..6)
        .map(|_| {
            start_request(
                server.port,
                "/heavy/cpu-io-no-db/?prime_limit=3000000&hash_rounds=0&io_kb=1",
            )
        })
        .collect();
    // An idle keep-alive connection must not hold up the stop.
    let mut idle = connect(server.port);
    idle.write_all(b"GET /heavy/health/ HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    read_response(&mut BufReader::new(idle.try_clone().unwrap()), false).unwrap();
    server.signal(libc::SIGTERM);
    for h in inflight {
        let resp = h.join().unwrap().expect("accepted request completes");
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("Connection"), Some("close"));
    }
    assert_eq!(server.wait_exit(SECS), Some(0));
    assert!(closed_within(&mut idle, Duration::from_secs(1)));
    let log = server.log_text();
    assert!(log.contains("Handling signal: term"), "{log}");
    assert_eq!(server.count_log("Worker exiting (pid: "), 2, "{log}");
    assert!(log.contains("[INFO] Shutting down: Master"), "{log}");
    assert!(
        try_get(server.port, "/heavy/health/").is_err(),
        "port closed after exit"
    );
}

#[test]
fn sigterm_kills_stragglers_at_the_graceful_timeout_and_still_exits_0() {
    let mut server = Server::start(&[
        "--workers",
        "1",
        "--threads",
        "1",
        "--graceful-timeout",
        "1",
        "--timeout",
        "0",
    ]);
    let slow = start_request(
        server.port,
        "/heavy/cpu-io-no-db/?prime_limit=10000000&hash_rounds=20000000&io_kb=0",
    );
    let t = Instant::now();
    server.signal(libc::SIGTERM);
    assert_eq!(server.wait_exit(SECS), Some(0));
    assert!(t.elapsed() < Duration::from_secs(10));
    assert!(slow.join().unwrap().is_err(), "the straggler was cut off");
}

#[test]
fn sigint_and_sigquit_stop_quickly() {
    for sig in [libc::SIGINT, libc::SIGQUIT] {
        let mut server = Server::start(&["--workers", "1", "--threads", "1", "--timeout", "0"]);
        let slow = start_request(
            server.port,
            "/heavy/cpu-io-no-db/?prime_limit=10000000&hash_rounds=20000000&io_kb=0",
        );
        let t = Instant::now();
        server.signal(sig);
        assert_eq!(server.wait_exit(SECS), Some(0));
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        assert!(slow.join().unwrap().is_err(), "in-flight work is aborted");
        let name = if sig == libc::SIGINT { "int" } else { "quit" };
        assert!(server
            .log_text()
            .contains(&format!("Handling signal: {name}")));
    }
}

#[test]
fn a_killed_worker_is_logged_and_replaced() {
    let server = Server::start(&["--workers", "2"]);
    wait_until("two workers", SECS, || server.worker_pids().len() == 2);
    let victim = server.worker_pids()[0];
    unsafe { libc::kill(victim, libc::SIGKILL) };
    server.wait_for_log(
        &format!("Worker (pid:{victim}) was sent SIGKILL! Perhaps out of memory?"),
        SECS,
    );
    wait_until("a replacement", SECS, || {
        let pids = server.worker_pids();
        pids.len() == 2 && !pids.contains(&victim)
    });
    assert_eq!(get(server.port, LIGHT).status, 200);
}

#[test]
fn ttin_and_ttou_change_the_worker_count_oldest_first() {
    let server = Server::start(&["--workers", "2"]);
    wait_until("two workers", SECS, || server.worker_pids().len() == 2);
    let first = server.worker_pids();
    server.signal(libc::SIGTTIN);
    wait_until("three workers", SECS, || server.worker_pids().len() == 3);
    server.wait_for_log("Handling signal: ttin", SECS);
    let oldest = *first.iter().min().unwrap();
    server.signal(libc::SIGTTOU);
    wait_until("two workers again", SECS, || {
        server.worker_pids().len() == 2
    });
    assert!(
        !server.worker_pids().contains(&oldest),
        "the oldest worker was retired"
    );
    server.signal(libc::SIGTTOU);
    wait_until("one worker", SECS, || server.worker_pids().len() == 1);
    server.signal(libc::SIGTTOU);
    server.wait_for_log_count("Handling signal: ttou", 3, SECS);
    thread::sleep(Duration::from_millis(1500));
    assert_eq!(server.worker_pids().len(), 1, "never below one worker");
    assert_eq!(get(server.port, LIGHT).status, 200);
}

#[test]
fn hup_replaces_every_worker_without_failing_a_request() {
    let server = Server::start(&["--workers", "2", "--threads", "2", "--keep-alive", "5"]);
    wait_until("two workers", SECS, || server.worker_pids().len() == 2);
    let before = server.worker_pids();
    let load = Load::start(server.port, LIGHT);
    thread::sleep(Duration::from_millis(300));
    for _ in 0..3 {
        server.signal(libc::SIGHUP);
        server.wait_for_log("Hang up: Master", SECS);
        thread::sleep(Duration::from_millis(500));
    }
    wait_until("new workers only", SECS, || {
        let now = server.worker_pids();
        now.len() == 2 && now.iter().all(|p| !before.contains(p))
    });
    let (ok, failed, retried) = load.finish();
    eprintln!(
        "HUP x3 under load: {ok} ok, {failed} failed, {retried} retried on a reused connection"
    );
    assert!(ok > 50, "{ok}");
    assert_eq!(
        failed,
        0,
        "{failed} of {} requests failed across HUP",
        ok + failed
    );
    assert_eq!(server.count_log("Hang up: Master"), 3);
}

#[test]
fn ttin_and_ttou_under_load_fail_no_request() {
    let server = Server::start(&["--workers", "2", "--threads", "2", "--keep-alive", "5"]);
    wait_until("two workers", SECS, || server.worker_pids().len() == 2);
    let load = Load::start(server.port, LIGHT);
    for _ in 0..3 {
        server.signal(libc::SIGTTIN);
        wait_until("three workers", SECS, || server.worker_pids().len() == 3);
        thread::sleep(Duration::from_millis(200));
        server.signal(libc::SIGTTOU);
        wait_until("two workers", SECS, || server.worker_pids().len() == 2);
        thread::sleep(Duration::from_millis(200));
    }
    let (ok, failed, retried) = load.finish();
    eprintln!("TTIN/TTOU x3 under load: {ok} ok, {failed} failed, {retried} retried on a reused connection");
    assert!(ok > 20);
    assert_eq!(
        failed,
        0,
        "{failed} of {} failed across TTIN/TTOU",
        ok + failed
    );
}

#[test]
fn hup_rereads_the_environment_arguments() {
    let dir = temp_dir("hup-env");
    let server = Server::start_with(&["--workers", "1"], &[]);
    drop(dir);
    // The arguments a running master re-reads come from its own environment, fixed at exec;
    // reload must at least keep serving with the same settings.
    server.signal(libc::SIGHUP);
    server.wait_for_log("Hang up: Master", SECS);
    wait_until("one worker", SECS, || server.worker_pids().len() == 1);
    assert_eq!(get(server.port, LIGHT).status, 200);
}

#[test]
fn max_requests_recycles_workers_and_serves_every_request() {
    let server = Server::start(&["--workers", "1", "--threads", "2", "--max-requests", "5"]);
    for i in 0..16 {
        let resp = get(server.port, LIGHT);
        assert_eq!(resp.status, 200, "request {i}");
    }
    assert!(
        server.count_log("Autorestarting worker after current request.") >= 2,
        "{}",
        server.log_text()
    );
    let load = Load::start(server.port, LIGHT);
    thread::sleep(Duration::from_secs(2));
    let (ok, failed, retried) = load.finish();
    eprintln!("max-requests 5 under load: {ok} ok, {failed} failed, {retried} retried on a reused connection");
    assert!(ok > 20);
    assert_eq!(
        failed,
        0,
        "{failed} of {} failed while recycling",
        ok + failed
    );
}

#[test]
fn a_stopped_worker_times_out_and_is_replaced() {
    let server = Server::start(&["--workers", "2", "--timeout", "2"]);
    wait_until("two workers", SECS, || server.worker_pids().len() == 2);
    let victim = server.worker_pids()[0];
    let other = server.worker_pids()[1];
    // Idle workers are never killed: wait past the timeout first.
    thread::sleep(Duration::from_secs(3));
    assert_eq!(server.count_log("WORKER TIMEOUT"), 0);
    unsafe { libc::kill(victim, libc::SIGSTOP) };
    server.wait_for_log(&format!("[CRITICAL] WORKER TIMEOUT (pid:{victim})"), SECS);
    wait_until("a replacement", SECS, || {
        let pids = server.worker_pids();
        pids.len() == 2 && !pids.contains(&victim) && pids.contains(&other)
    });
    assert_eq!(get(server.port, LIGHT).status, 200);
}

#[test]
fn a_worker_that_cannot_boot_stops_the_master_with_code_3() {
    let out = Command::new(BIN)
        .args([
            "--bind",
            "127.0.0.1:0",
            "--workers",
            "2",
            "--io-file",
            "/proc/heavy-api-nowhere/data.bin",
        ])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{log}");
    assert!(log.contains("Reason: Worker failed to boot."), "{log}");
    assert!(log.contains("[ERROR] Shutting down: Master"), "{log}");
    assert!(log.contains("exited with code 3"), "{log}");

    let out = Command::new(BIN)
        .args(["--bind", "fd://77", "--workers", "1"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_port_in_use_is_retried_then_exit_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let started = Instant::now();
    let out = Command::new(BIN)
        .args(["--bind", &format!("127.0.0.1:{port}")])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert_eq!(
        log.matches(&format!("Connection in use: ('127.0.0.1', {port})"))
            .count(),
        5,
        "{log}"
    );
    assert!(log.contains("Retrying in 1 second."));
    assert!(
        log.contains(&format!("Can't connect to ('127.0.0.1', {port})")),
        "{log}"
    );
    assert!(started.elapsed() >= Duration::from_secs(4));
}

#[test]
fn pidfile_is_written_guarded_and_removed() {
    let pidfile = temp_dir("pid").join("heavy.pid");
    let pid_arg = pidfile.to_str().unwrap();
    let mut server = Server::start(&["--workers", "1", "--pid", pid_arg]);
    assert_eq!(
        std::fs::read_to_string(&pidfile).unwrap().trim(),
        server.pid().to_string()
    );
    let out = Command::new(BIN)
        .args(["--bind", "127.0.0.1:0", "--pid", pid_arg])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Already running on PID"));
    server.signal(libc::SIGTERM);
    assert_eq!(server.wait_exit(SECS), Some(0));
    assert!(!pidfile.exists());
}

struct KillOnDrop(i32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for pid in children_of(self.0) {
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        unsafe { libc::kill(self.0, libc::SIGKILL) };
    }
}

fn server_log_settles(path: &std::path::Path, needle: &str) {
    wait_until(needle, SECS, || {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .contains(needle)
    });
}

#[test]
fn usr1_reopens_log_files() {
    let dir = temp_dir("logs");
    let (error_log, access_log) = (dir.join("error.log"), dir.join("access.log"));
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
    let mut child = Command::new(BIN)
        .args(["--bind", "127.0.0.1:0", "--workers", "1", "--io-file"])
        .arg(dir.join("data.bin"))
        .arg("--error-logfile")
        .arg(&error_log)
        .arg("--access-logfile")
        .arg(&access_log)
        .spawn()
        .unwrap();
    wait_until("Listening at", SECS, || {
        read(&error_log).contains("Listening at: ")
    });
    let text = read(&error_log);
    let line = text.lines().find(|l| l.contains("Listening at: ")).unwrap();
    let port: u16 = line
        .rsplit_once(':')
        .unwrap()
        .1
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    wait_until("healthy", SECS, || {
        try_get(port, "/heavy/health/").is_ok_and(|r| r.status == 200)
    });
    wait_until("an access line", SECS, || {
        read(&access_log).contains("/heavy/health/")
    });
    std::fs::rename(&error_log, dir.join("error.log.1")).unwrap();
    std::fs::rename(&access_log, dir.join("access.log.1")).unwrap();
    let _guard = KillOnDrop(child.id() as i32);
    unsafe { libc::kill(child.id() as i32, libc::SIGUSR1) };
    server_log_settles(&dir.join("error.log.1"), "Handling signal: usr1");
    unsafe { libc::kill(child.id() as i32, libc::SIGTTIN) };
    wait_until("a new error log", SECS, || {
        read(&error_log).contains("Handling signal: ttin")
    });
    // The worker reopens too: its next access line lands in the new file.
    wait_until("a new access log", SECS, || {
        let _ = try_get(port, "/heavy/health/?after");
        read(&access_log).contains("after")
    });
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

#[test]
fn the_access_log_has_gunicorns_default_format() {
    let server = Server::start(&["--workers", "1", "--access-logfile", "-"]);
    let mut s = connect(server.port);
    s.write_all(b"GET /heavy/health/?a=1 HTTP/1.1\r\nHost: t\r\nReferer: http://r/\r\nUser-Agent: tester/1\r\n\r\n").unwrap();
    read_response(&mut BufReader::new(s), false).unwrap();
    let line = server.wait_for_log("\"GET /heavy/health/?a=1 HTTP/1.1\"", SECS);
    assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
    assert!(
        line.ends_with("\"GET /heavy/health/?a=1 HTTP/1.1\" 200 52 \"http://r/\" \"tester/1\"")
            || line.contains("\" 200 5"),
        "{line}"
    );
    let _ = get(server.port, LIGHT);
    let heavy_line = server.wait_for_log("\"GET /heavy/cpu-io-no-db/", SECS);
    assert!(heavy_line.contains(" 200 "), "{heavy_line}");
}

#[test]
fn check_config_print_config_and_bad_flags() {
    let out = Command::new(BIN)
        .args(["--check-config", "--workers", "3"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let out = Command::new(BIN)
        .args(["--check-config", "--io-file", "/proc/nope/x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let out = Command::new(BIN)
        .args(["--print-config", "-w", "3"])
        .env("WEB_CONCURRENCY", "7")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        text.lines()
            .any(|l| l.starts_with("workers ") && l.ends_with("= 3")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("timeout ") && l.ends_with("= 120")),
        "{text}"
    );
    let out = Command::new(BIN)
        .args(["--workers", "zero"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.starts_with("Error: "), "{err}");
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("heavy-api "));
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--bind",
        "--workers",
        "--threads",
        "--timeout",
        "--graceful-timeout",
        "--keep-alive",
        "--max-requests",
        "--limit-request-field_size",
        "--access-logformat",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
}

#[test]
fn environment_arguments_apply_with_command_line_precedence() {
    let server = Server::start_with(
        &["--threads", "1"],
        &[
            ("HEAVY_API_CMD_ARGS", "--workers 3 --threads 4"),
            ("WEB_CONCURRENCY", "2"),
        ],
    );
    wait_until("three workers", SECS, || server.worker_pids().len() == 3);
    let log = server.log_text();
    assert!(log.contains("an event loop and 1 handler threads"), "{log}");
}

#[test]
fn the_healthcheck_subcommand_reports_health() {
    let server = Server::start(&["--workers", "1"]);
    let ok = Command::new(BIN)
        .args(["healthcheck", &format!("http://127.0.0.1:{}", server.port)])
        .status()
        .unwrap();
    assert_eq!(ok.code(), Some(0));
    let bad = Command::new(BIN)
        .args([
            "healthcheck",
            &format!("http://127.0.0.1:{}/nope/", server.port),
        ])
        .status()
        .unwrap();
    assert_eq!(bad.code(), Some(1));
}

#[test]
fn as_pid_1_of_a_pid_namespace_term_drains_and_exits_0() {
    if Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .status()
        .map(|s| !s.success())
        .unwrap_or(true)
    {
        eprintln!("skipping: cannot create a PID namespace here");
        return;
    }
    let io_file = temp_dir("pid1").join("data.bin");
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--pid",
        "--fork",
        "--mount-proc",
        BIN,
        "--bind",
        "127.0.0.1:0",
        "--workers",
        "2",
        "--io-file",
    ])
    .arg(&io_file);
    let mut server = Server::spawn(cmd, &[], io_file);
    // The master is unshare's child; inside the namespace it is PID 1.
    let master = children_of(server.pid())[0];
    let status = std::fs::read_to_string(format!("/proc/{master}/status")).unwrap();
    let nspid = status
        .lines()
        .find(|l| l.starts_with("NSpid:"))
        .unwrap()
        .to_string();
    assert!(nspid.trim_end().ends_with("\t1"), "{nspid}");
    // A killed worker is reaped and replaced by PID 1.
    wait_until("two workers", SECS, || children_of(master).len() == 2);
    let victim = children_of(master)[0];
    unsafe { libc::kill(victim, libc::SIGKILL) };
    wait_until("a replacement", SECS, || {
        let pids = children_of(master);
        pids.len() == 2 && !pids.contains(&victim)
    });
    let inflight = start_request(
        server.port,
        "/heavy/cpu-io-no-db/?prime_limit=2000000&hash_rounds=0&io_kb=1",
    );
    unsafe { libc::kill(master, libc::SIGTERM) };
    assert_eq!(inflight.join().unwrap().unwrap().status, 200);
    assert_eq!(server.wait_exit(SECS), Some(0));
    assert!(server.log_text().contains("Shutting down: Master"));
}

#[test]
fn sigterm_right_after_start_is_not_lost() {
    // A TERM that lands while some workers are still being forked must reach them too.
    for _ in 0..30 {
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        let mut child = Command::new(BIN)
            .args([
                "--bind",
                &format!("127.0.0.1:{port}"),
                "--workers",
                "4",
                "--graceful-timeout",
                "30",
            ])
            .arg("--io-file")
            .arg(temp_dir("early-term").join("data.bin"))
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let _guard = KillOnDrop(child.id() as i32);
        // Poll tightly: the point is to signal within a millisecond of the first answer.
        let deadline = Instant::now() + SECS;
        while try_get(port, "/heavy/health/").is_err() {
            assert!(Instant::now() < deadline, "never answered");
            thread::sleep(Duration::from_micros(500));
        }
        let t = Instant::now();
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        wait_until("the master to exit", Duration::from_secs(10), || {
            child.try_wait().unwrap().is_some()
        });
        assert_eq!(child.wait().unwrap().code(), Some(0));
        assert!(t.elapsed() < Duration::from_secs(10));
    }
}
