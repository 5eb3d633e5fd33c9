//! Gunicorn's master semantics on the real binary, with real signals.

mod common;
use common::*;
use std::io::{BufReader, Write};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// The patience of every wait on the server (a log line, a worker count, an exit): generous,
/// because the machine may be loaded; each failure names it.
const SECS: Duration = Duration::from_secs(60);

/// Runs GETs from two threads until stopped, one on a fresh connection per request and one on a
/// keep-alive connection. The keep-alive one counts a *reused* connection that closes before any
/// answer byte as a retry (what a retrying client would do), and `check` demands zero of them as
/// well as zero failures: a retiring worker says `Connection: close` on its last answer and hands
/// its idle connections to a sibling, so a client that never retries loses nothing.
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

    fn succeeded(&self) -> usize {
        self.ok.load(Ordering::Relaxed)
    }

    /// Waits until `n` more requests have succeeded, so that the load overlaps what came before.
    fn wait_for_more(&self, n: usize, server: &Server) {
        let target = self.succeeded() + n;
        let deadline = Instant::now() + SECS;
        while self.succeeded() < target {
            assert!(
                Instant::now() < deadline,
                "the load made no progress: {} of {target} requests within {SECS:?} \
                 ({} failed, {} retried); log:\n{}",
                self.succeeded(),
                self.failed.load(Ordering::Relaxed),
                self.retried.load(Ordering::Relaxed),
                server.log_text()
            );
            thread::sleep(Duration::from_millis(10));
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

    /// Stops the load and asserts that no request failed and none needed a retry.
    fn check(self, what: &str, server: &Server) {
        let (ok, failed, retried) = self.finish();
        eprintln!("{what}: {ok} ok, {failed} failed, {retried} retried on a reused connection");
        assert!(
            failed == 0 && retried == 0,
            "{what}: {failed} failed and {retried} closed a reused connection without an answer \
             (of {}); log:\n{}",
            ok + failed + retried,
            server.log_text()
        );
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
    assert!(log.contains("[INFO] Using worker: gthread"), "{log}");
    let line = log.lines().next().unwrap();
    // [2026-11-26 22:16:54 +0000] [2425] [INFO] ...
    assert!(
        line.starts_with('[') && line.as_bytes()[20] == b' ' && line[27..].starts_with(" ["),
        "{line}"
    );
}

#[test]
fn sigterm_finishes_accepted_requests_and_exits_0() {
    let cal = calibration();
    let mut server = Server::start(&[
        "--workers",
        "2",
        "--threads",
        "2",
        "--graceful-timeout",
        "600",
        "--max-hash-rounds",
        NO_ROUNDS_CAP,
    ]);
    let work = cal.request(Duration::from_millis(500));
    let inflight: Vec<_> = (0..6).map(|_| start_request(server.port, &work)).collect();
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
    assert_eq!(server.exit_code_within(SECS), Some(0));
    assert!(
        closed_within(&mut idle, SECS),
        "the idle connection was not closed within {SECS:?} of the master's exit"
    );
    let log = server.log_text();
    assert!(log.contains("Handling signal: term"), "{log}");
    assert_eq!(server.count_log("Worker exiting (pid: "), 2, "{log}");
    assert!(log.contains("[INFO] Shutting down: Master"), "{log}");
    assert!(
        try_get(server.port, "/heavy/health/").is_err(),
        "port closed after exit"
    );
}

/// A request that would run for `solo` alone: far longer than any stop may take.
fn straggler(solo: Duration) -> String {
    calibration().request(solo)
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
        "--max-hash-rounds",
        NO_ROUNDS_CAP,
    ]);
    // The straggler would run 10 minutes alone; the master must not wait for it.
    let slow = start_request(server.port, &straggler(Duration::from_secs(600)));
    server.signal(libc::SIGTERM);
    assert_eq!(server.exit_code_within(SECS), Some(0));
    assert!(slow.join().unwrap().is_err(), "the straggler was cut off");
}

#[test]
fn sigint_and_sigquit_stop_quickly() {
    for sig in [libc::SIGINT, libc::SIGQUIT] {
        // A graceful stop would wait 10 minutes and the straggler would run as long: an exit
        // within SECS is a quick stop.
        let mut server = Server::start(&[
            "--workers",
            "1",
            "--threads",
            "1",
            "--timeout",
            "0",
            "--graceful-timeout",
            "600",
            "--max-hash-rounds",
            NO_ROUNDS_CAP,
        ]);
        let slow = start_request(server.port, &straggler(Duration::from_secs(600)));
        server.signal(sig);
        assert_eq!(server.exit_code_within(SECS), Some(0));
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
    let victim = server.wait_workers(2, SECS)[0];
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
    // One worker at a time, each spawned after the previous one has booted, so that the order
    // of the boot lines is their age (workers spawned together may log in either order, and
    // pids wrap around: neither the smallest pid nor the first line is the oldest then).
    let server = Server::start(&["--workers", "1"]);
    server.wait_for_log_count("Booting worker with pid: ", 1, SECS);
    for (n, ttin) in [(2, 1), (3, 2)] {
        server.signal(libc::SIGTTIN);
        server.wait_for_log_count("Handling signal: ttin", ttin, SECS);
        server.wait_for_log_count("Booting worker with pid: ", n, SECS);
        server.wait_workers(n, SECS);
    }
    let booted = server.booted_workers();
    assert_eq!(booted.len(), 3, "{}", server.log_text());
    let (oldest, middle, youngest) = (booted[0], booted[1], booted[2]);
    server.signal(libc::SIGTTOU);
    wait_until("the oldest worker to be retired", SECS, || {
        server.worker_pids() == sorted(&[middle, youngest])
    });
    server.signal(libc::SIGTTOU);
    wait_until("the next oldest to be retired", SECS, || {
        server.worker_pids() == [youngest]
    });
    assert!(!server.worker_pids().contains(&oldest));
    server.signal(libc::SIGTTOU);
    server.wait_for_log_count("Handling signal: ttou", 3, SECS);
    // Nothing to wait for when nothing happens: give a wrong retirement time to show.
    thread::sleep(Duration::from_millis(1500));
    assert_eq!(server.worker_pids(), [youngest], "never below one worker");
    assert_eq!(server.booted_workers().len(), 3, "and no replacement");
    assert_eq!(get(server.port, LIGHT).status, 200);
}

fn sorted(pids: &[i32]) -> Vec<i32> {
    let mut v = pids.to_vec();
    v.sort();
    v
}

#[test]
fn hup_replaces_every_worker_without_failing_a_request() {
    let server = Server::start(&["--workers", "2", "--threads", "2", "--keep-alive", "5"]);
    let mut generation = server.wait_workers(2, SECS);
    let load = Load::start(server.port, LIGHT);
    load.wait_for_more(20, &server);
    for round in 1..=3 {
        server.signal(libc::SIGHUP);
        server.wait_for_log_count("Hang up: Master", round, SECS);
        wait_until(
            &format!("a new generation of 2 after HUP {round}"),
            SECS,
            || {
                let now = server.worker_pids();
                let new = now.len() == 2 && now.iter().all(|p| !generation.contains(p));
                if new {
                    generation = now;
                }
                new
            },
        );
        load.wait_for_more(20, &server);
    }
    load.check("HUP x3 under load", &server);
    assert_eq!(server.count_log("Hang up: Master"), 3);
}

#[test]
fn ttin_and_ttou_under_load_fail_no_request() {
    let server = Server::start(&["--workers", "2", "--threads", "2", "--keep-alive", "5"]);
    server.wait_workers(2, SECS);
    let load = Load::start(server.port, LIGHT);
    load.wait_for_more(20, &server);
    for _ in 0..3 {
        server.signal(libc::SIGTTIN);
        server.wait_workers(3, SECS);
        load.wait_for_more(20, &server);
        server.signal(libc::SIGTTOU);
        server.wait_workers(2, SECS);
        load.wait_for_more(20, &server);
    }
    load.check("TTIN/TTOU x3 under load", &server);
}

/// HUP re-resolves the configuration: the new workers run with the settings of the extra
/// arguments in the environment (and `WEB_CONCURRENCY`), the command line still taking
/// precedence, and not with the defaults, the argv alone, or the worker count TTIN left.
/// (A running master's environment is fixed at exec, so what changes across the HUP is
/// the worker count, which the reload must take from the environment again.)
#[test]
fn hup_reapplies_the_environment_arguments_with_command_line_precedence() {
    for var in ["HEAVY_API_CMD_ARGS", "GUNICORN_CMD_ARGS"] {
        let server = Server::start_with(
            &["--limit-request-fields", "50"],
            &[
                (
                    var,
                    "--workers 3 --limit-request-line 200 --limit-request-fields 2",
                ),
                ("WEB_CONCURRENCY", "5"),
            ],
        );
        server.wait_workers(3, SECS);
        server.signal(libc::SIGTTIN);
        let before = server.wait_workers(4, SECS);
        server.signal(libc::SIGHUP);
        server.wait_for_log("Hang up: Master", SECS);
        wait_until(
            &format!("{var}: three new workers (the environment's --workers) after HUP"),
            SECS,
            || {
                let now = server.worker_pids();
                now.len() == 3 && now.iter().all(|p| !before.contains(p))
            },
        );
        // Three at start, one for TTIN, three for HUP (their lines may trail the processes).
        server.wait_for_log_count("Booting worker with pid: ", 7, SECS);
        // The environment's --limit-request-line holds in the new generation ...
        let long = format!("/heavy/health/?{}", "x".repeat(250));
        assert_eq!(
            get(server.port, &long).status,
            400,
            "{var}: a 270-byte line"
        );
        // ... and the command line's --limit-request-fields overrides the environment's.
        let five = "GET /heavy/health/ HTTP/1.1\r\nHost: t\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n";
        assert_eq!(
            raw(server.port, five.as_bytes()).unwrap().status,
            200,
            "{var}"
        );
        assert_eq!(get(server.port, LIGHT).status, 200);
        assert_eq!(
            server.count_log("Booting worker with pid: "),
            7,
            "{var}: no fourth worker after HUP; log:\n{}",
            server.log_text()
        );
    }
}

#[test]
fn max_requests_recycles_workers_and_serves_every_request() {
    let server = Server::start(&["--workers", "1", "--threads", "2", "--max-requests", "5"]);
    for i in 0..16 {
        let resp = get(server.port, LIGHT);
        assert_eq!(resp.status, 200, "request {i}");
    }
    // The health checks of the start count too: at least three recycles.
    server.wait_for_log_count("Autorestarting worker after current request.", 3, SECS);
    let recycled = server.count_log("Autorestarting worker after current request.");
    let load = Load::start(server.port, LIGHT);
    load.wait_for_more(100, &server);
    load.check("max-requests 5 under load", &server);
    assert!(
        server.count_log("Autorestarting worker after current request.") >= recycled + 10,
        "100 requests recycle the worker at least 10 times; log:\n{}",
        server.log_text()
    );
}

#[test]
fn a_stopped_worker_times_out_and_is_replaced() {
    let server = Server::start(&["--workers", "2", "--timeout", "2"]);
    let pids = server.wait_workers(2, SECS);
    let (victim, other) = (pids[0], pids[1]);
    // Idle workers are never killed: wait past the timeout first.
    thread::sleep(Duration::from_secs(3));
    assert_eq!(
        server.count_log("WORKER TIMEOUT"),
        0,
        "{}",
        server.log_text()
    );
    unsafe { libc::kill(victim, libc::SIGSTOP) };
    server.wait_for_log(&format!("[CRITICAL] WORKER TIMEOUT (pid:{victim})"), SECS);
    wait_until("a replacement", SECS, || {
        let pids = server.worker_pids();
        pids.len() == 2 && !pids.contains(&victim) && pids.contains(&other)
    });
    assert_eq!(get(server.port, LIGHT).status, 200);
}

/// Runs the binary to completion with `args` (and an io file in a directory of its own, removed
/// afterwards); returns its exit code and its error log.
fn run(args: &[&str]) -> (Option<i32>, String) {
    let dir = temp_dir("run");
    let out = Command::new(BIN)
        .args(["--io-file"])
        .arg(dir.path().join("data.bin"))
        .args(args)
        .env_remove("HEAVY_API_CMD_ARGS")
        .env_remove("GUNICORN_CMD_ARGS")
        .env_remove("WEB_CONCURRENCY")
        .env_remove("PORT")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_worker_that_cannot_boot_stops_the_master_with_code_3() {
    let (code, log) = run(&[
        "--bind",
        "127.0.0.1:0",
        "--workers",
        "2",
        "--fault-worker-boot",
        "error",
    ]);
    assert_eq!(code, Some(3), "{log}");
    assert!(log.contains("Reason: Worker failed to boot."), "{log}");
    assert!(log.contains("[ERROR] Shutting down: Master"), "{log}");
    assert!(log.contains("exited with code 3"), "{log}");
}

#[test]
fn a_bad_io_file_or_fd_stops_the_master_at_start_with_code_1() {
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
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(log.contains("cannot use io file"), "{log}");
    assert!(
        !log.contains("Booting worker"),
        "checked before any worker: {log}"
    );

    for fd in ["77", "2"] {
        let (code, log) = run(&["--bind", &format!("fd://{fd}"), "--workers", "1"]);
        assert_eq!(code, Some(1), "fd://{fd}: {log}");
        assert!(
            log.contains(&format!(
                "Can't use fd://{fd}: not an open listening socket"
            )),
            "fd://{fd}: {log}"
        );
    }
}

#[test]
fn a_port_in_use_is_retried_then_exit_1() {
    // Held for the whole test: the port is really in use.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let started = Instant::now();
    let (code, log) = run(&["--bind", &format!("127.0.0.1:{port}")]);
    assert_eq!(code, Some(1), "{log}");
    assert_eq!(
        log.matches(&format!("Connection in use: ('127.0.0.1', {port})"))
            .count(),
        5,
        "{log}"
    );
    assert_eq!(
        log.matches("Retrying in 1 second.").count(),
        5,
        "as Gunicorn, after each of the 5 attempts: {log}"
    );
    assert!(started.elapsed() >= Duration::from_secs(4), "{log}");
    assert!(
        log.contains(&format!("Can't connect to ('127.0.0.1', {port})")),
        "{log}"
    );
    drop(taken);
}

#[test]
fn pidfile_is_written_guarded_and_removed() {
    let dir = temp_dir("pid");
    let pidfile = dir.path().join("heavy.pid");
    let pid_arg = pidfile.to_str().unwrap();
    let mut server = Server::start(&["--workers", "1", "--pid", pid_arg]);
    assert_eq!(
        std::fs::read_to_string(&pidfile).unwrap().trim(),
        server.pid().to_string()
    );
    let (code, log) = run(&["--bind", "127.0.0.1:0", "--pid", pid_arg]);
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("Already running on PID"), "{log}");
    server.signal(libc::SIGTERM);
    assert_eq!(server.exit_code_within(SECS), Some(0));
    assert!(!pidfile.exists());
}

struct KillOnDrop(i32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        kill_tree(self.0);
    }
}

#[test]
fn usr1_reopens_log_files() {
    let dir = temp_dir("logs");
    let dir = dir.path();
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
    let _guard = KillOnDrop(child.id() as i32);
    wait_until("Listening at", SECS, || {
        read(&error_log).contains("Listening at: ")
    });
    let text = read(&error_log);
    let port = port_of_listening_line(text.lines().find(|l| l.contains("Listening at: ")).unwrap());
    wait_until("healthy", SECS, || {
        try_get(port, "/heavy/health/").is_ok_and(|r| r.status == 200)
    });
    wait_until("an access line", SECS, || {
        read(&access_log).contains("/heavy/health/")
    });
    std::fs::rename(&error_log, dir.join("error.log.1")).unwrap();
    std::fs::rename(&access_log, dir.join("access.log.1")).unwrap();
    unsafe { libc::kill(child.id() as i32, libc::SIGUSR1) };
    wait_until("the USR1 line in the old error log", SECS, || {
        read(&dir.join("error.log.1")).contains("Handling signal: usr1")
    });
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

/// Checks `line` against Gunicorn's default access log format with every field known:
/// `%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"`, the time as
/// `[29/Nov/2026:04:33:53 +0000]`.
fn assert_access_line(
    line: &str,
    request: &str,
    status: u16,
    length: usize,
    referer: &str,
    agent: &str,
) {
    let rest = line
        .strip_prefix("127.0.0.1 - - [")
        .unwrap_or_else(|| panic!("host, ident, user: {line:?}"));
    let (time, rest) = rest
        .split_once("] ")
        .unwrap_or_else(|| panic!("no time: {line:?}"));
    let t = time.as_bytes();
    let digits = |r: std::ops::Range<usize>| t[r].iter().all(u8::is_ascii_digit);
    assert!(
        t.len() == 26
            && digits(0..2)
            && t[2] == b'/'
            && t[3..6].iter().all(u8::is_ascii_alphabetic)
            && t[6] == b'/'
            && digits(7..11)
            && t[11] == b':'
            && digits(12..14)
            && t[14] == b':'
            && digits(15..17)
            && t[17] == b':'
            && digits(18..20)
            && t[20] == b' '
            && (t[21] == b'+' || t[21] == b'-')
            && digits(22..26),
        "time {time:?} in {line:?}"
    );
    assert_eq!(
        rest,
        format!("\"{request}\" {status} {length} \"{referer}\" \"{agent}\""),
        "{line:?}"
    );
}

#[test]
fn the_access_log_has_gunicorns_default_format() {
    let server = Server::start(&["--workers", "1", "--access-logfile", "-"]);
    let mut s = connect(server.port);
    s.write_all(b"GET /heavy/health/?a=1 HTTP/1.1\r\nHost: t\r\nReferer: http://r/\r\nUser-Agent: tester/1\r\n\r\n").unwrap();
    let health = read_response(&mut BufReader::new(s), false).unwrap();
    let line = server.wait_for_log("\"GET /heavy/health/?a=1 HTTP/1.1\"", SECS);
    assert_access_line(
        &line,
        "GET /heavy/health/?a=1 HTTP/1.1",
        200,
        health.body.len(),
        "http://r/",
        "tester/1",
    );
    let heavy = get(server.port, LIGHT);
    let heavy_line = server.wait_for_log("\"GET /heavy/cpu-io-no-db/", SECS);
    assert_access_line(
        &heavy_line,
        &format!("GET {LIGHT} HTTP/1.1"),
        200,
        heavy.body.len(),
        "-",
        "-",
    );
}

/// `--print-config=json`: one JSON object on stdout (nothing else there), the settings merged
/// from GUNICORN_CMD_ARGS, WEB_CONCURRENCY, PORT and the command line, exit 0, nothing bound.
#[test]
fn print_config_json_is_one_object_of_the_effective_settings() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["--print-config=json", "--threads", "3", "app:app"])
        .current_dir(dir.path())
        .env_remove("HEAVY_API_CMD_ARGS")
        .env("GUNICORN_CMD_ARGS", "--workers 5 --keep-alive 75 --preload")
        .env("WEB_CONCURRENCY", "9")
        .env("PORT", "8123")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = &j["settings"];
    assert_eq!(s["workers"], 5);
    assert_eq!(s["threads"], 3);
    assert_eq!(s["keepalive"], 75);
    assert_eq!(s["bind"], serde_json::json!(["0.0.0.0:8123"]));
    assert_eq!(s["timeout"], 120);
    assert!(!j["warnings"].as_array().unwrap().is_empty(), "{j}");
    assert!(!dir.path().join("heavy_api_io.bin").exists());
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
    // clap's whole message (issue #15): the error first, the --help hint last.
    assert!(err.lines().next().unwrap().contains("--workers"), "{err}");
    assert!(err.starts_with("Error: "), "{err}");
    assert!(err.trim_end().ends_with("try '--help'."), "{err}");
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
    // The boot line is Gunicorn's `Using worker: gthread` now (issue #15); the thread count
    // shows in /heavy/info/.
    let info = get(server.port, "/heavy/info/").json();
    assert_eq!(info["server"]["threads"], 1, "{info}");
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
    let dir = temp_dir("pid1");
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
        "--max-hash-rounds",
        NO_ROUNDS_CAP,
        "--io-file",
    ])
    .arg(dir.path().join("data.bin"));
    let mut server = Server::spawn(cmd, &[], dir);
    // The master is unshare's child; inside the namespace it is PID 1.
    let master = *children_of(server.pid())
        .first()
        .expect("unshare has forked the master");
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
        &calibration().request(Duration::from_millis(500)),
    );
    unsafe { libc::kill(master, libc::SIGTERM) };
    assert_eq!(inflight.join().unwrap().unwrap().status, 200);
    assert_eq!(server.exit_code_within(SECS), Some(0));
    assert!(server.log_text().contains("Shutting down: Master"));
}

#[test]
fn sigterm_right_after_start_is_not_lost() {
    // A TERM that lands while some workers are still being forked must reach them too.
    for round in 0..30 {
        let dir = temp_dir("early-term");
        let mut cmd = Command::new(BIN);
        cmd.args([
            "--bind",
            "127.0.0.1:0",
            "--workers",
            "4",
            "--graceful-timeout",
            "30",
            "--io-file",
        ])
        .arg(dir.path().join("data.bin"));
        // The port comes from the master's own `Listening at:` line, not from a probe socket.
        let mut server = Server::launch(cmd, &[], dir);
        // Poll tightly: the point is to signal within a millisecond of the first answer.
        let deadline = Instant::now() + SECS;
        while !try_get(server.port, "/heavy/health/").is_ok_and(|r| r.status == 200) {
            assert!(
                Instant::now() < deadline,
                "round {round}: no answer within {SECS:?}; log:\n{}",
                server.log_text()
            );
            thread::sleep(Duration::from_micros(500));
        }
        server.signal(libc::SIGTERM);
        assert_eq!(server.exit_code_within(SECS), Some(0), "round {round}");
    }
}

/// A HUP with a config file that breaks a bound (nesting, value size, NUL bytes, file size)
/// logs the error naming the file and line and keeps the running configuration and its
/// workers, as Gunicorn does; once the file is good again, the next HUP applies it.
#[test]
fn hup_with_a_bad_config_file_keeps_the_running_configuration_and_workers() {
    let dir = temp_dir("hup-conf");
    let conf = dir.path().join("gunicorn.conf.py");
    std::fs::write(&conf, "workers = 2\n").unwrap();
    let server = Server::start(&["-c", conf.to_str().unwrap()]);
    let before = sorted(&server.wait_workers(2, SECS));
    let deep = 100_000;
    let bad: [(Vec<u8>, &str); 4] = [
        (
            format!(
                "workers = 3\ntimeout = {}1{}\n",
                "(".repeat(deep),
                ")".repeat(deep)
            )
            .into(),
            ":2: timeout: expression nested deeper than 100 levels",
        ),
        (
            format!("workers = 3\na = 'x'\n{}", "a = a + a\n".repeat(40)).into(),
            ":23: a: a value larger than 1 MiB",
        ),
        (
            b"SECRET_KEY=s3cret\0workers = 3\n".to_vec(),
            ": not a config file (it contains NUL bytes)",
        ),
        (
            format!("workers = 3\n#{}\n", "x".repeat(2 << 20)).into(),
            ": larger than 1024 KiB",
        ),
    ];
    for (i, (content, why)) in bad.iter().enumerate() {
        std::fs::write(&conf, content).unwrap();
        server.signal(libc::SIGHUP);
        let line = server.wait_for_log_count(
            "reload failed, keeping the old configuration and workers: config file ",
            i + 1,
            SECS,
        );
        assert!(
            line.contains(&format!("{}{why}", conf.display())),
            "{why}: {line}"
        );
        assert!(!line.contains("s3cret"), "{line}");
        assert_eq!(get(server.port, LIGHT).status, 200, "{why}");
        assert_eq!(
            sorted(&server.worker_pids()),
            before,
            "{why}: the same workers serve"
        );
    }
    assert_eq!(
        server.count_log("Booting worker with pid: "),
        2,
        "no worker was started for a bad file; log:\n{}",
        server.log_text()
    );
    // The master is alive and still reloads.
    std::fs::write(&conf, "workers = 3\n").unwrap();
    server.signal(libc::SIGHUP);
    wait_until("three new workers after the good file's HUP", SECS, || {
        let now = server.worker_pids();
        now.len() == 3 && now.iter().all(|p| !before.contains(p))
    });
    assert_eq!(get(server.port, LIGHT).status, 200);
}

/// Issue 22, defect 13: a worker that cannot stop by itself (here: stopped with SIGSTOP) is
/// killed at the graceful timeout, the master says which, reaps it and exits, within a bound.
#[test]
fn a_stop_kills_and_reaps_a_worker_that_cannot_stop_and_says_so() {
    let mut server = Server::start(&["--workers", "1", "--graceful-timeout", "1"]);
    let worker = server.wait_workers(1, SECS)[0];
    unsafe { libc::kill(worker, libc::SIGSTOP) };
    server.signal(libc::SIGTERM);
    assert_eq!(server.exit_code_within(SECS), Some(0));
    let line = server.wait_for_log("Killing worker(s) still running", SECS);
    assert!(line.contains(&format!("pid {worker}")), "{line}");
    server.wait_for_log("Killed workers reaped", SECS);
}

/// Issue 22, defect 13: `--bind fd://3` given twice is adopted once (one owner, closed once),
/// with a WARNING naming the duplicate; the server serves on it and stops cleanly.
#[test]
fn a_descriptor_bound_twice_is_adopted_once() {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let raw = listener.as_raw_fd();
    let dir = temp_dir("fd-twice");
    let mut cmd = Command::new(BIN);
    cmd.args(["--bind", "fd://3", "--bind", "fd://3", "--workers", "1"])
        .arg("--io-file")
        .arg(dir.path().join("data.bin"));
    // SAFETY: dup2 and fcntl are async-signal-safe; the child gets the listener as fd 3.
    unsafe {
        cmd.pre_exec(move || {
            // dup2 onto itself keeps close-on-exec: clear it instead.
            let ok = if raw == 3 {
                libc::fcntl(3, libc::F_SETFD, 0) >= 0
            } else {
                libc::dup2(raw, 3) >= 0
            };
            if ok {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    let mut server = Server::spawn(cmd, &[], dir);
    drop(listener);
    assert_eq!(server.port, port);
    let warning = server.wait_for_log("given more than once", SECS);
    assert!(warning.contains("--bind fd://3"), "{warning}");
    assert_eq!(get(port, "/heavy/health/").status, 200);
    server.signal(libc::SIGTERM);
    assert_eq!(
        server.exit_code_within(SECS),
        Some(0),
        "{}",
        server.log_text()
    );
}
