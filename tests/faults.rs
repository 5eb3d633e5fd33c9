//! Faults inside a worker: a panicking handler, a full disk, a vanished data directory. Each gets
//! a clear 5xx JSON answer, and the worker keeps serving (no worker dies or is replaced).

mod common;
use common::*;
use std::process::Command;

fn assert_no_worker_died(server: &Server) {
    let log = server.log_text();
    assert!(
        !log.contains("was sent SIG") && !log.contains("exited with code"),
        "{log}"
    );
}

#[test]
fn a_panic_in_a_handler_is_a_500_and_the_worker_lives_on() {
    let server = Server::start(&[
        "--workers",
        "1",
        "--threads",
        "2",
        "--enable-fault-injection",
    ]);
    let workers = server.worker_pids();
    for _ in 0..3 {
        let resp = get(server.port, &format!("{LIGHT}&fault=panic"));
        assert_eq!(resp.status, 500);
        assert_eq!(resp.json()["error"], "internal server error");
    }
    assert_eq!(get(server.port, LIGHT).status, 200);
    assert_eq!(server.worker_pids(), workers);
    // The worker logs the panic after it answered: wait for the line.
    server.wait_for_log_count("Error handling request", 3, START_TIMEOUT);
    assert_no_worker_died(&server);
}

#[test]
fn fault_injection_is_off_by_default() {
    let server = Server::start(&["--workers", "1"]);
    assert_eq!(
        get(server.port, &format!("{LIGHT}&fault=panic")).status,
        200
    );
}

#[test]
fn a_vanished_data_directory_is_a_500_until_it_returns() {
    let server = Server::start(&["--workers", "1"]);
    let dir = server.io_file.parent().unwrap().to_path_buf();
    std::fs::remove_dir_all(&dir).unwrap();
    let resp = get(server.port, LIGHT);
    assert_eq!(resp.status, 500);
    let v = resp.json();
    assert!(
        v["error"].as_str().unwrap().starts_with("io failed: "),
        "{v}"
    );
    assert_eq!(v["io_file"], server.io_file.display().to_string());
    assert_eq!(get(server.port, "/heavy/health/").status, 200);
    std::fs::create_dir_all(&dir).unwrap();
    assert_eq!(get(server.port, LIGHT).status, 200);
    assert_no_worker_died(&server);
}

#[test]
fn a_full_disk_is_a_500_and_the_worker_keeps_serving() {
    let probe = Command::new("unshare").args(["--mount", "true"]).status();
    if !probe.map(|s| s.success()).unwrap_or(false) {
        eprintln!("skipping: cannot create a mount namespace here");
        return;
    }
    let dir = temp_dir("full");
    let io_file = dir.path().join("data.bin");
    // A 1.3 MiB tmpfs: the 1 MiB seed fits, a 512 KiB append does not.
    let script = format!(
        "mount -t tmpfs -o size=1300k tmpfs {dir} && exec {BIN} --bind 127.0.0.1:0 --workers 1 --io-file {file}",
        dir = dir.path().display(),
        file = io_file.display()
    );
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-c", &script]);
    let server = Server::spawn(cmd, &[], dir);
    let resp = get(
        server.port,
        "/heavy/cpu-io-no-db/?prime_limit=10&hash_rounds=1&io_kb=512",
    );
    assert_eq!(resp.status, 500);
    let error = resp.json()["error"].as_str().unwrap().to_string();
    assert!(error.contains("No space left on device"), "{error}");
    assert_eq!(get(server.port, "/heavy/health/").status, 200);
    // A request without I/O does not touch the file, so the full disk does not concern it.
    assert_eq!(
        get(
            server.port,
            "/heavy/cpu-io-no-db/?prime_limit=10&hash_rounds=1&io_kb=0"
        )
        .status,
        200
    );
    assert_no_worker_died(&server);
}

/// Issue 22, deliver 5: a shared-queue datagram that does not decode (here a frame of a version
/// no worker reads, `fault=frame`) is counted, logged and answered 500: its client is told,
/// never left waiting; the queue depth is back to zero and the workers live on.
#[test]
fn an_undecodable_queue_frame_is_counted_logged_and_answered() {
    let server = Server::start(&[
        "--workers",
        "2",
        "--threads",
        "2",
        "--enable-fault-injection",
    ]);
    let workers = server.wait_workers(2, START_TIMEOUT);
    for _ in 0..3 {
        let resp = get(server.port, &format!("{LIGHT}&fault=frame"));
        assert_eq!(resp.status, 500, "{resp:?}");
        assert_eq!(resp.header("Connection"), Some("close"));
    }
    assert_eq!(get(server.port, LIGHT).status, 200);
    server.wait_for_log_count("undecodable frame on the shared queue", 3, START_TIMEOUT);
    let metrics = String::from_utf8(get(server.port, "/metrics").body).unwrap();
    let sample = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in:\n{metrics}"))
    };
    assert_eq!(sample("heavy_api_queue_frames_rejected_total"), 3.0);
    assert_eq!(sample("heavy_api_queue_depth"), 0.0);
    assert_eq!(server.worker_pids(), workers);
    assert_no_worker_died(&server);
}
