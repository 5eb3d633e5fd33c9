//! The defects of issue #10, each reproduced against the real binary: a client, a signal, a
//! flag value or a fault that used to take down a worker, the master, or a request. Each test
//! waits on events (log lines, answers, exits) and names its time limit when it fails.

mod common;
use common::*;
use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

const SECS: Duration = Duration::from_secs(30);
/// A heavy request of microseconds that still goes to a handler thread (above the inline bound,
/// `HeavyParams::runs_inline`): these tests are about the hand-off.
const TINY: &str = "/heavy/cpu-io-no-db/?prime_limit=200&hash_rounds=1&io_kb=0";
/// Runs until killed: a `--timeout 0` server lets it go on far past any test's patience.
const ENDLESS: &str = "/heavy/cpu-io-no-db/?prime_limit=1000000000000&hash_rounds=0&io_kb=0";

/// A TCP connection whose receive window is as small as the kernel allows, made before
/// connecting (a window set after the handshake is not honoured).
fn small_window_connect(port: u16) -> TcpStream {
    use nix::sys::socket::{
        connect, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn,
    };
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::empty(),
        None,
    )
    .unwrap();
    setsockopt(&fd, sockopt::RcvBuf, &1024).unwrap();
    let addr = SockaddrIn::new(127, 0, 0, 1, port);
    connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &addr).unwrap();
    // SAFETY: a connected stream socket we own.
    unsafe { TcpStream::from_raw_fd(fd.into_raw_fd()) }
}

/// Item 1: a client that pipelines requests and never reads its answers used to pin a handler
/// thread in a blocking write until the master killed the whole worker (WORKER TIMEOUT). Now
/// the event loop holds the answers and stops reading that client; the worker stays.
#[test]
fn a_client_that_never_reads_cannot_get_its_worker_killed() {
    let server = Server::start(&["--workers", "1", "--threads", "2", "--timeout", "1"]);
    let pid = server.worker_pids();
    let mut greedy = small_window_connect(server.port);
    let requests: String = (0..20_000)
        .map(|_| format!("GET {TINY} HTTP/1.1\r\nHost: t\r\n\r\n"))
        .collect();
    let writer = {
        let mut s = greedy.try_clone().unwrap();
        thread::spawn(move || {
            // Blocks once the server stops reading; ends when the socket is shut down.
            let _ = s.write_all(requests.as_bytes());
        })
    };
    // With the old code the worker was aborted within timeout + 2 s + a tick; give it twice
    // that, while another client keeps being served by the same worker.
    let watch = Duration::from_secs(8);
    let until = Instant::now() + watch;
    while Instant::now() < until {
        assert_eq!(get(server.port, TINY).status, 200);
        assert_eq!(
            server.count_log("WORKER TIMEOUT"),
            0,
            "{}",
            server.log_text()
        );
        thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(server.worker_pids(), pid, "the worker was not replaced");
    // The greedy client did get answers, in order, as far as it read.
    let mut first = [0u8; 12];
    greedy.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    let _ = greedy.shutdown(std::net::Shutdown::Both);
    writer.join().unwrap();
}

/// A client that pipelines far more than one read takes (about 130 KB of heads in one write)
/// through a small receive window, and reads its answers slowly: the loop reads in chunks,
/// stops reading while answers wait for the client, and takes up reading again once they are
/// taken — with edge-triggered events, without being told the socket is still readable. Every
/// request is answered, in order.
#[test]
fn a_pipelining_client_that_reads_slowly_gets_every_answer_in_order() {
    const N: usize = 3_000;
    let server = Server::start(&["--workers", "1"]);
    let client = small_window_connect(server.port);
    client.set_read_timeout(Some(SECS)).unwrap();
    let requests: String = (0..N)
        .map(|i| format!("GET /missing-{i} HTTP/1.1\r\nHost: t\r\n\r\n"))
        .collect();
    let writer = {
        let mut s = client.try_clone().unwrap();
        thread::spawn(move || s.write_all(requests.as_bytes()).unwrap())
    };
    let mut reader = BufReader::new(client);
    for i in 0..N {
        if i % 500 == 0 {
            // Let the answers back up on the server.
            thread::sleep(Duration::from_millis(100));
        }
        let resp = read_response(&mut reader, false)
            .unwrap_or_else(|e| panic!("answer {i} of {N} not read within {SECS:?}: {e}"));
        assert_eq!(resp.status, 404, "answer {i}");
        assert_eq!(resp.json()["path"], format!("/missing-{i}"), "answer {i}");
    }
    writer.join().unwrap();
}

/// Item 3: each pipelined head has its own time. A client that completes one request every
/// 2 s, always sending the first byte of the next with it, used to get 408 at ~10 s.
#[test]
fn a_slow_but_progressing_pipelining_client_is_not_timed_out() {
    let server = Server::start(&["--workers", "1", "--keep-alive", "30"]);
    let mut s = connect(server.port);
    let mut reader = BufReader::new(s.try_clone().unwrap());
    let request = "GET /heavy/health/ HTTP/1.1\r\nHost: t\r\n\r\n";
    s.write_all(b"G").unwrap();
    for round in 0..7 {
        thread::sleep(Duration::from_secs(2));
        // The rest of this request and the first byte of the next.
        s.write_all(format!("{}G", &request[1..]).as_bytes())
            .unwrap();
        let resp = read_response(&mut reader, false)
            .unwrap_or_else(|e| panic!("round {round} (after {} s): {e}", 2 * (round + 1)));
        assert_eq!(resp.status, 200, "round {round}");
    }
}

/// Item 2, on the wire: heads past `--limit-request-head` get 431 before they are complete.
#[test]
fn a_head_past_the_cap_is_refused_while_it_arrives() {
    let server = Server::start(&["--workers", "1", "--limit-request-head", "4096"]);
    let mut s = connect(server.port);
    s.write_all(b"GET /heavy/health/ HTTP/1.1\r\nHost: t\r\n")
        .unwrap();
    for i in 0..100 {
        // Never finished: only the cap can stop it.
        if s.write_all(format!("X-Pad-{i}: {}\r\n", "p".repeat(100)).as_bytes())
            .is_err()
        {
            break;
        }
    }
    let resp = read_response(&mut BufReader::new(s), false).unwrap();
    assert_eq!(resp.status, 431);
    assert_eq!(resp.json()["error"], "request head is too large");
}

/// Item 4: a worker retired by TTOU with a request that will not end stops at the graceful
/// timeout by itself; one that cannot (stopped) is killed by the master.
#[test]
fn a_retired_worker_stops_within_the_graceful_timeout() {
    let server = Server::start(&[
        "--workers",
        "1",
        "--threads",
        "1",
        "--timeout",
        "0",
        "--graceful-timeout",
        "2",
        "--max-prime-limit",
        "1000000000000",
    ]);
    let oldest = two_workers_oldest_first(&server)[0];
    // Both threads busy for good: whichever worker retires has a request in flight.
    let a = start_request(server.port, ENDLESS);
    let b = start_request(server.port, ENDLESS);
    server.signal(libc::SIGTTOU);
    server.wait_for_log(
        &format!("Worker (pid:{oldest}) did not finish within the graceful timeout"),
        SECS,
    );
    wait_until("the retired worker to be gone", SECS, || {
        !server.worker_pids().contains(&oldest)
    });
    // Its client saw the connection close; the other request runs on.
    let mut results = vec![a, b];
    let done = wait_for_one(&mut results, SECS);
    assert!(done.is_err(), "the unfinished request got no answer");
    drop(server);
}

/// Item 4, the master's backstop: a retiree that cannot act on TERM is killed after
/// `--graceful-timeout`.
#[test]
fn the_master_kills_a_retiree_that_outlives_the_graceful_timeout() {
    let server = Server::start(&[
        "--workers",
        "1",
        "--timeout",
        "0",
        "--graceful-timeout",
        "1",
    ]);
    let oldest = two_workers_oldest_first(&server)[0];
    unsafe { libc::kill(oldest, libc::SIGSTOP) };
    server.signal(libc::SIGTTOU);
    server.wait_for_log(
        &format!("Worker (pid:{oldest}) outlived the graceful timeout; killing it"),
        SECS,
    );
    server.wait_for_log(&format!("Worker (pid:{oldest}) was sent SIGKILL"), SECS);
    assert_eq!(get(server.port, TINY).status, 200);
}

/// Item 4: INT or QUIT during a graceful TERM makes it quick.
#[test]
fn int_during_a_graceful_stop_makes_it_quick() {
    let mut server = Server::start(&[
        "--workers",
        "1",
        "--threads",
        "1",
        "--timeout",
        "0",
        "--graceful-timeout",
        "600",
        "--max-prime-limit",
        "1000000000000",
    ]);
    let inflight = start_request(server.port, ENDLESS);
    server.signal(libc::SIGTERM);
    server.wait_for_log("Handling signal: term", SECS);
    server.signal(libc::SIGINT);
    server.wait_for_log("Handling signal: int", SECS);
    // Well before the 600 s graceful timeout.
    assert_eq!(server.wait_exit(SECS), Some(0), "{}", server.log_text());
    assert!(inflight.join().unwrap().is_err());
}

/// Item 5: every numeric flag at the top of its range runs, serves and stops cleanly; one past
/// it is a one-line error naming the flag.
#[test]
fn extreme_flag_values_neither_panic_nor_crash_loop() {
    let maxima = [
        ("--timeout", "604800"),
        ("--graceful-timeout", "604800"),
        ("--keep-alive", "604800"),
        ("--max-requests", "4294967295"),
        ("--max-requests-jitter", "4294967295"),
        ("--backlog", "65535"),
        ("--worker-connections", "1000000"),
        ("--limit-request-line", "2147483647"),
        ("--limit-request-fields", "2147483647"),
        ("--limit-request-field_size", "2147483647"),
        ("--limit-request-head", "16777216"),
        ("--limit-request-body", "1099511627776"),
        ("--max-prime-limit", "1000000000000"),
        ("--max-hash-rounds", "1000000000000"),
    ];
    let mut args: Vec<&str> = vec!["--workers", "2"];
    for (flag, value) in maxima {
        args.extend([flag, value]);
    }
    let mut server = Server::start(&args);
    let mut s = connect(server.port);
    let mut reader = BufReader::new(s.try_clone().unwrap());
    for _ in 0..2 {
        write!(s, "GET {TINY} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        assert_eq!(read_response(&mut reader, false).unwrap().status, 200);
    }
    server.signal(libc::SIGTERM);
    assert_eq!(server.wait_exit(SECS), Some(0), "{}", server.log_text());
    let log = server.log_text();
    assert!(!log.contains("panicked"), "{log}");
    assert_eq!(
        server.count_log("Booting worker"),
        2,
        "no crash loop: {log}"
    );

    for (flag, value) in maxima {
        let over = (value.parse::<u128>().unwrap() + 1).to_string();
        for bad in [over.as_str(), "-1", "18446744073709551616"] {
            let out = Command::new(BIN)
                .args(["--check-config", flag, bad])
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{flag} {bad}: {err}");
            // clap's whole message (issue #15): the first line names the flag, the last points
            // to --help.
            let first = err.lines().next().unwrap_or_default();
            assert!(
                first.starts_with("Error: ") && first.contains(flag),
                "{flag} {bad}: {err}"
            );
            assert!(
                err.trim_end().ends_with("try '--help'."),
                "{flag} {bad}: {err}"
            );
        }
    }
}

/// Item 6: `fd://N` adopts only a listening socket.
#[test]
fn fd_binds_adopt_only_listening_sockets() {
    for fd in ["2", "77"] {
        let out = Command::new(BIN)
            .args(["--bind", &format!("fd://{fd}"), "--workers", "1"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains(&format!(
                "Can't use fd://{fd}: not an open listening socket"
            )),
            "{err}"
        );
    }
}

/// Item 6: a panic while a worker boots never runs the master's code in the child; it is
/// logged, and the master respawns with a growing delay instead of in a tight loop.
#[test]
fn a_worker_that_crashes_at_boot_is_respawned_with_backoff() {
    let dir = tempfile::tempdir().unwrap();
    let io = dir.path().join("data.bin");
    let mut child = Command::new(BIN)
        .args([
            "--bind",
            "127.0.0.1:0",
            "--workers",
            "1",
            "--fault-worker-boot",
            "panic",
        ])
        .arg("--io-file")
        .arg(&io)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let master = child.id() as i32;
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        for line in std::io::BufRead::lines(stderr).map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut log = Vec::new();
    let deadline = Instant::now() + SECS;
    while log
        .iter()
        .filter(|l: &&String| l.contains("next spawn in"))
        .count()
        < 4
    {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => log.push(line),
            Err(_) => {
                unsafe { libc::kill(master, libc::SIGKILL) };
                panic!("no 4 respawn delays within {SECS:?}:\n{}", log.join("\n"));
            }
        }
    }
    unsafe { libc::kill(master, libc::SIGTERM) };
    let status = child.wait().unwrap();
    log.extend(rx.try_iter());
    let text = log.join("\n");
    assert_eq!(status.code(), Some(0), "{text}");
    let delays: Vec<&str> = log
        .iter()
        .filter_map(|l| l.split("next spawn in ").nth(1))
        .take(4)
        .collect();
    assert_eq!(delays, ["0.1 s", "0.2 s", "0.4 s", "0.8 s"], "{text}");
    assert!(
        text.contains("Exception in worker process: fault injection: a panic while booting"),
        "{text}"
    );
    let ours = format!("] [{master}] [");
    for line in log
        .iter()
        .filter(|l| l.starts_with('[') && l.contains(": Master"))
    {
        assert!(line.contains(&ours), "master code ran in a child: {line}");
    }

    let out = Command::new(BIN)
        .args([
            "--bind",
            "127.0.0.1:0",
            "--fault-worker-boot",
            "error",
            "--io-file",
        ])
        .arg(&io)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{log}");
    assert!(log.contains("Reason: Worker failed to boot."), "{log}");
}

/// Item 7: `%({NAME}e)s` shows the request's environment, never the process's.
#[test]
fn environ_atoms_never_show_the_process_environment() {
    let server = Server::start_with(
        &[
            "--workers",
            "1",
            "--access-logfile",
            "-",
            "--access-logformat",
            "ENV %({HEAVY_API_SECRET}e)s %({HOME}e)s %({REMOTE_ADDR}e)s %({HTTP_X_TEAM}e)s %(s)s",
        ],
        &[("HEAVY_API_SECRET", "hunter2")],
    );
    let mut s = connect(server.port);
    s.write_all(b"GET /heavy/health/ HTTP/1.1\r\nHost: t\r\nX-Team: perf\r\n\r\n")
        .unwrap();
    read_response(&mut BufReader::new(s), false).unwrap();
    // (The start-up probe logged a line too, without the header.)
    let line = server.wait_for_log(" perf ", SECS);
    assert!(line.ends_with("ENV - - 127.0.0.1 perf 200"), "{line}");
    assert!(!server.log_text().contains("hunter2"));
}

/// Item 8: the io file's directory vanishing while workers recycle is a 5xx for heavy requests,
/// not a server that halts because a replacement worker "failed to boot"; it recovers by
/// itself.
#[test]
fn a_vanished_io_directory_during_recycling_is_no_outage() {
    let dir = tempfile::tempdir().unwrap();
    let io_dir = dir.path().join("io");
    std::fs::create_dir(&io_dir).unwrap();
    let io = io_dir.join("data.bin");
    let mut cmd = Command::new(BIN);
    cmd.args([
        "--bind",
        "127.0.0.1:0",
        "--workers",
        "2",
        "--max-requests",
        "3",
    ])
    .arg("--io-file")
    .arg(&io);
    let server = Server::spawn(cmd, &[], dir);
    assert_eq!(get(server.port, TINY).status, 200);
    std::fs::remove_dir_all(&io_dir).unwrap();
    let booted = server.count_log("Booting worker");
    let with_io = "/heavy/cpu-io-no-db/?prime_limit=10&hash_rounds=1&io_kb=1";
    for i in 0..12 {
        let resp = get(server.port, with_io);
        assert_eq!(resp.status, 500, "request {i}");
        assert!(resp.json()["error"]
            .as_str()
            .unwrap()
            .starts_with("io failed"));
        assert_eq!(get(server.port, "/heavy/health/").status, 200);
    }
    assert!(
        server.count_log("Booting worker") > booted + 2,
        "workers recycled"
    );
    assert!(!server.log_text().contains("Worker failed to boot"));
    std::fs::create_dir(&io_dir).unwrap();
    wait_until("heavy requests to succeed again", SECS, || {
        get(server.port, with_io).status == 200
    });
}

/// A keep-alive client that never retries: any connection closed under it is a failure.
fn strict_keep_alive_client(port: u16, requests: usize, mut between: impl FnMut(usize)) {
    let mut conn: Option<(TcpStream, BufReader<TcpStream>)> = None;
    for i in 0..requests {
        between(i);
        let (s, reader) = conn.get_or_insert_with(|| {
            let s = connect(port);
            let r = BufReader::new(s.try_clone().unwrap());
            (s, r)
        });
        s.write_all(format!("GET {TINY} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
            .unwrap_or_else(|e| panic!("request {i}: send failed: {e}"));
        let resp = read_response(reader, false).unwrap_or_else(|e| panic!("request {i}: {e}"));
        assert_eq!(resp.status, 200, "request {i}");
        if resp.header("Connection") == Some("close") {
            conn = None;
        }
    }
}

/// Item 8: recycling, HUP and TTOU lose no request of a client that does not retry.
#[test]
fn recycling_hup_and_ttou_fail_no_request_of_a_non_retrying_client() {
    let server = Server::start(&[
        "--workers",
        "2",
        "--max-requests",
        "10",
        "--max-requests-jitter",
        "5",
        "--keep-alive",
        "30",
    ]);
    // Several clients at once, so retiring workers always hold idle connections.
    let port = server.port;
    let clients: Vec<_> = (0..4)
        .map(|_| thread::spawn(move || strict_keep_alive_client(port, 150, |_| {})))
        .collect();
    let pid = server.pid();
    strict_keep_alive_client(port, 150, |i| match i {
        40 | 80 => unsafe {
            libc::kill(pid, libc::SIGHUP);
        },
        60 => unsafe {
            libc::kill(pid, libc::SIGTTIN);
        },
        100 => unsafe {
            libc::kill(pid, libc::SIGTTOU);
        },
        _ => {}
    });
    for c in clients {
        c.join().unwrap();
    }
    assert!(server.count_log("Autorestarting worker") >= 10);
}

/// Item 8: `--max-requests N` answers the N-th request with `Connection: close`.
#[test]
fn the_last_response_before_recycling_says_close() {
    let server = Server::start(&[
        "--workers",
        "1",
        "--max-requests",
        "3",
        "--keep-alive",
        "30",
        "--access-logfile",
        "-",
    ]);
    // Start-up probes already count toward the worker's three.
    server.wait_for_log("\"GET /heavy/health/ HTTP/1.1\" 200", SECS);
    let probes = server.count_log("\"GET /heavy/health/ HTTP/1.1\" 200");
    assert!(probes < 3, "{}", server.log_text());
    let mut s = connect(server.port);
    let mut reader = BufReader::new(s.try_clone().unwrap());
    let mut said = Vec::new();
    for _ in probes..3 {
        // Health is answered by the event loop itself: its answer is queued before the stop.
        write!(s, "GET /heavy/health/ HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        let resp = read_response(&mut reader, false).unwrap();
        said.push(resp.header("Connection").unwrap().to_string());
    }
    let mut want = vec!["keep-alive"; 2 - probes];
    want.push("close");
    assert_eq!(said, want, "{}", server.log_text());
    assert!(closed_within(&mut s, SECS));
}

/// Item 8: the io file is never followed through a symlink, and a FIFO in its place fails the
/// request at once instead of hanging a thread.
#[test]
fn the_io_file_refuses_symlinks_and_fifos() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("elsewhere");
    std::fs::write(&target, b"keep").unwrap();
    let link = dir.path().join("link.bin");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let out = Command::new(BIN)
        .args(["--bind", "127.0.0.1:0", "--io-file"])
        .arg(&link)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("symbolic link"), "{err}");
    assert_eq!(std::fs::read(&target).unwrap(), b"keep");

    let server = Server::start(&["--workers", "1"]);
    std::fs::remove_file(&server.io_file).unwrap();
    nix::unistd::mkfifo(&server.io_file, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let resp = get(
        server.port,
        "/heavy/cpu-io-no-db/?prime_limit=10&hash_rounds=1&io_kb=1",
    );
    assert_eq!(resp.status, 500);
    assert!(
        resp.json()["error"]
            .as_str()
            .unwrap()
            .contains("not a regular file"),
        "{:?}",
        resp.json()
    );
}

/// Item 8: framing is strict in the four places it used to be lenient.
#[test]
fn lenient_framing_is_refused() {
    let server = Server::start(&["--workers", "1"]);
    let post = "POST /heavy/health/ HTTP/1.1\r\nHost: t\r\n";
    for (what, request) in [
        (
            "empty Transfer-Encoding",
            format!("{post}Transfer-Encoding:\r\n\r\n"),
        ),
        (
            "bare LF after a chunk size",
            format!("{post}Transfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n"),
        ),
        (
            "control character in a chunk extension",
            format!("{post}Transfer-Encoding: chunked\r\n\r\n3;x=\u{1}\r\nabc\r\n0\r\n\r\n"),
        ),
        (
            "unterminated quote in a chunk extension",
            format!("{post}Transfer-Encoding: chunked\r\n\r\n3;x=\"a\r\nabc\r\n0\r\n\r\n"),
        ),
        (
            "a request line as a trailer",
            format!("{post}Transfer-Encoding: chunked\r\n\r\n0\r\nGET /x HTTP/1.1\r\n\r\n"),
        ),
    ] {
        let resp = raw(server.port, request.as_bytes()).unwrap();
        assert_eq!(resp.status, 400, "{what}");
    }
    assert_eq!(get(server.port, "/heavy/health/").status, 200);
}

/// Item 8: `--check-config` checks without writing.
#[test]
fn check_config_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let io = dir.path().join("data.bin");
    let out = Command::new(BIN)
        .arg("--check-config")
        .arg("--io-file")
        .arg(&io)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(!io.exists());
    let out = Command::new(BIN)
        .arg("--check-config")
        .arg("--io-file")
        .arg(dir.path().join("missing/data.bin"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

/// Item 8: the master raises the soft descriptor limit to the hard one.
#[test]
fn the_descriptor_limit_is_raised_to_the_hard_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["--bind", "127.0.0.1:0", "--workers", "1", "--io-file"])
        .arg(dir.path().join("data.bin"));
    with_descriptor_limit(&mut cmd, 64, 4096);
    let server = Server::spawn(cmd, &[], dir);
    let worker = server.worker_pids()[0];
    let limits = std::fs::read_to_string(format!("/proc/{worker}/limits")).unwrap();
    let open_files = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let soft: Vec<&str> = open_files.split_whitespace().collect();
    assert_eq!(&soft[3..5], ["4096", "4096"], "{open_files}");
    assert!(!server.log_text().contains("lowered to"));
}

/// From one worker, a second by TTIN: returns both, the oldest (the one TTOU retires) first.
/// (Workers spawned together may log their boot lines in either order.)
fn two_workers_oldest_first(server: &Server) -> Vec<i32> {
    server.wait_for_log("Booting worker with pid: ", SECS);
    let first = server.worker_pids();
    assert_eq!(first.len(), 1, "{first:?}\n{}", server.log_text());
    server.signal(libc::SIGTTIN);
    let both = server.wait_workers(2, SECS);
    let second = both.into_iter().find(|p| *p != first[0]).unwrap();
    server.wait_for_log(&format!("Booting worker with pid: {second}"), SECS);
    vec![first[0], second]
}

/// Waits until one of the requests has an outcome and returns it.
fn wait_for_one(
    pending: &mut Vec<thread::JoinHandle<std::io::Result<Resp>>>,
    within: Duration,
) -> std::io::Result<Resp> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(i) = pending.iter().position(|h| h.is_finished()) {
            return pending.remove(i).join().unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "no request finished within {within:?}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// Issue 22, defect 11: a client that pipelines five requests per connection and never retries
/// loses none when workers recycle under it (`--max-requests 7`: 39 of 150 went unanswered):
/// a retiring worker passes a connection on with the requests it already read.
#[test]
fn pipelining_clients_lose_no_request_across_recycling() {
    pipelined_requests_survive_recycling(TINY);
}

/// The same for requests the event loop answers itself (health, and heavy work smaller than a
/// hand-off): the `--max-requests`-th of them is answered on the loop, and the connection must
/// still move on with the requests behind it.
#[test]
fn pipelined_requests_answered_on_the_loop_survive_recycling() {
    pipelined_requests_survive_recycling(
        "/heavy/cpu-io-no-db/?prime_limit=2&hash_rounds=1&io_kb=0",
    );
    pipelined_requests_survive_recycling("/heavy/health/");
}

fn pipelined_requests_survive_recycling(path: &'static str) {
    let server = Server::start(&[
        "--workers",
        "2",
        "--threads",
        "2",
        "--max-requests",
        "7",
        "--keep-alive",
        "30",
    ]);
    let port = server.port;
    let clients: Vec<_> = (0..3)
        .map(|c| {
            thread::spawn(move || {
                for round in 0..10 {
                    let mut s = connect(port);
                    let mut reader = BufReader::new(s.try_clone().unwrap());
                    let mut batch = String::new();
                    for _ in 0..5 {
                        batch.push_str(&format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n"));
                    }
                    s.write_all(batch.as_bytes()).unwrap();
                    for i in 0..5 {
                        let resp = read_response(&mut reader, false).unwrap_or_else(|e| {
                            panic!("client {c} round {round}: request {i} of 5 unanswered: {e}")
                        });
                        assert_eq!(resp.status, 200, "client {c} round {round} request {i}");
                        if i < 4 {
                            assert_ne!(
                                resp.header("Connection"),
                                Some("close"),
                                "client {c} round {round}: closed with requests {}..5 sent",
                                i + 1
                            );
                        }
                    }
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    assert!(
        server.count_log("Autorestarting worker") >= 4,
        "workers recycled: {}",
        server.log_text()
    );
}

/// Issue 22, defect 11: while the server drains (`--drain-delay`) every answer says
/// `Connection: close`, so no client sends its next request into a connection about to close.
#[test]
fn answers_during_a_drain_say_close() {
    let mut server = Server::start(&["--workers", "1", "--keep-alive", "30", "--drain-delay", "3"]);
    let mut s = connect(server.port);
    let mut reader = BufReader::new(s.try_clone().unwrap());
    s.write_all(b"GET /heavy/health/ HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let before = read_response(&mut reader, false).unwrap();
    assert_eq!(before.header("Connection"), Some("keep-alive"));
    server.signal(libc::SIGTERM);
    server.wait_for_log("Draining for 3 s before stopping", SECS);
    s.write_all(format!("GET {TINY} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
        .unwrap();
    let during = read_response(&mut reader, false).unwrap();
    assert_eq!(during.status, 200);
    assert_eq!(during.header("Connection"), Some("close"), "{during:?}");
    assert!(
        closed_within(&mut s, SECS),
        "closed after the answer within {SECS:?}"
    );
    assert_eq!(server.wait_exit(SECS), Some(0));
}

/// Issue 22, defect 13: `--check-config` refuses a `--metrics-bind` on the `--bind` address
/// (or a wildcard over it) and control characters in `--dogstatsd-tags`, naming the setting.
#[test]
fn check_config_refuses_a_shared_metrics_address_and_control_characters_in_tags() {
    let dir = tempfile::tempdir().unwrap();
    let io = dir.path().join("data.bin");
    let check = |extra: &[&str]| {
        let out = Command::new(BIN)
            .arg("--check-config")
            .arg("--io-file")
            .arg(&io)
            .args(extra)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    for (bind, metrics) in [
        ("127.0.0.1:8000", "127.0.0.1:8000"),
        ("0.0.0.0:8000", "127.0.0.1:8000"),
    ] {
        let (code, err) = check(&["--bind", bind, "--metrics-bind", metrics]);
        assert_eq!(code, Some(1), "{bind} / {metrics}: {err}");
        assert!(
            err.contains("--metrics-bind") && err.contains("--bind"),
            "{err}"
        );
    }
    let (code, err) = check(&[
        "--bind",
        "127.0.0.1:8000",
        "--metrics-bind",
        "127.0.0.1:9000",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = check(&["--dogstatsd-tags", "env:prod\nevil:1"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("--dogstatsd-tags"), "{err}");
}
