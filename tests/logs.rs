//! Issue 22 on the real binary: logs never hold up serving (a stalled access-log pipe costs log
//! lines, counted and reported, never answers), a healthy log loses nothing even at shutdown,
//! and no value from outside (the ECS metadata document) can forge a log line.

mod common;
use common::*;
use std::io::{BufReader, Write};
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::time::Duration;

const SECS: Duration = Duration::from_secs(30);
/// How long one request may take on a server whose access log nobody reads: it is answered at
/// once when logging never waits; without that it is never answered.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

fn dropped_access_lines(port: u16) -> f64 {
    let page = String::from_utf8(get(port, "/metrics").body).unwrap();
    page.lines()
        .find_map(|l| l.strip_prefix("heavy_api_log_lines_dropped_total{log=\"access\"} "))
        .unwrap_or_else(|| panic!("no access drop counter in /metrics:\n{page}"))
        .parse()
        .unwrap()
}

#[test]
fn a_stalled_access_log_pipe_costs_log_lines_never_answers() {
    // The access log goes to a pipe this test never reads; a small one fills sooner.
    let (read_end, write_end) = nix::unistd::pipe().unwrap();
    // SAFETY: a valid pipe descriptor.
    unsafe { libc::fcntl(write_end.as_raw_fd(), libc::F_SETPIPE_SZ, 4096) };
    let dir = temp_dir("stalled-log");
    let mut cmd = Command::new(BIN);
    cmd.args(["--bind", "127.0.0.1:0", "--io-file"])
        .arg(dir.path().join("data.bin"))
        .args(["--workers", "1", "--access-logfile", "-"]);
    let mut server = Server::launch_with_stdout(
        cmd,
        &[],
        dir,
        Some(Stdio::from(std::fs::File::from(write_end))),
    );
    server.wait_healthy(START_TIMEOUT);

    // Long request lines make long access lines: ~3 KiB each, so a few hundred fill the pipe
    // and the worker's 1 MiB queue.
    let target = format!("/heavy/health/?pad={}", "x".repeat(3000));
    let mut conn = connect(server.port);
    conn.set_read_timeout(Some(ANSWER_TIMEOUT)).unwrap();
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut answered = 0;
    let mut dropped = 0.0;
    while dropped == 0.0 {
        assert!(
            answered < 5000,
            "no access line dropped after {answered} requests"
        );
        for _ in 0..100 {
            write!(conn, "GET {target} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
            let resp = read_response(&mut reader, false).unwrap_or_else(|e| {
                panic!("request {answered} unanswered within {ANSWER_TIMEOUT:?}: {e}")
            });
            assert_eq!(resp.status, 200);
            answered += 1;
        }
        // Another connection is answered too, and reads the drop counter.
        dropped = dropped_access_lines(server.port);
    }
    // The pipe is still full: fresh connections are still served, and drops keep counting.
    for _ in 0..20 {
        assert_eq!(get(server.port, &target).status, 200);
    }
    assert!(dropped_access_lines(server.port) > dropped);
    let warning = server.wait_for_log("access log line(s) dropped", SECS);
    assert!(warning.contains("[WARNING]"), "{warning}");

    // A stop is not held up for ever by the lines that cannot be written.
    server.signal(libc::SIGTERM);
    assert_eq!(server.exit_code_within(Duration::from_secs(90)), Some(0));
    drop(read_end);
}

#[test]
fn with_a_healthy_pipe_every_access_line_arrives_in_order_even_at_shutdown() {
    let mut server = Server::start(&["--workers", "1", "--access-logfile", "-"]);
    let mut conn = connect(server.port);
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    const N: usize = 500;
    for i in 0..N {
        write!(conn, "GET /heavy/health/?n={i} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        assert_eq!(read_response(&mut reader, false).unwrap().status, 200);
    }
    drop((conn, reader));
    // Stopped right after the last answer: what is still queued is written before the exit.
    server.signal(libc::SIGTERM);
    assert_eq!(server.exit_code_within(Duration::from_secs(90)), Some(0));
    let seen: Vec<usize> = server
        .log_lines()
        .iter()
        .filter_map(|l| l.split_once("GET /heavy/health/?n="))
        .map(|(_, rest)| rest.split(' ').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(seen, (0..N).collect::<Vec<_>>());
    assert_eq!(server.count_log("dropped"), 0, "{}", server.log_text());
}

#[test]
fn a_newline_in_the_ecs_metadata_cannot_forge_a_log_line() {
    // The availability zone carries a forged log line, as a compromised or buggy endpoint could.
    let task = serde_json::json!({
        "LaunchType": "FARGATE",
        "AvailabilityZone": "us-east-1a\n[2026-01-01 00:00:00 +0000] [1] [CRITICAL] forged\r\x1b[2J",
    });
    let (uri, ecs) = ecs_endpoint(task.to_string(), "{}".into());
    let server = Server::start_with(
        &["--workers", "1"],
        &[("ECS_CONTAINER_METADATA_URI_V4", uri.as_str())],
    );
    ecs.join().unwrap();
    let platform = server.wait_for_log("Platform: ", SECS);
    assert!(
        platform.contains(
            r"ECS FARGATE us-east-1a\n[2026-01-01 00:00:00 +0000] [1] [CRITICAL] forged\r\x1b[2J"
        ),
        "the zone stays in its line, escaped: {platform}"
    );
    let forged: Vec<String> = server
        .log_lines()
        .into_iter()
        .filter(|l| l.starts_with("[2026-01-01") || l.contains('\x1b'))
        .collect();
    assert!(forged.is_empty(), "forged lines: {forged:?}");
}
