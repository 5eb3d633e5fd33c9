//! Test support: start the real `heavy-api` binary on a loopback port, wait until it is ready,
//! watch its log, and speak HTTP/1.1 to it over raw sockets.
//!
//! Rules every integration test follows (issue #10, item 9):
//! - every wait has a deadline, and its failure message names it (`within 60 s`);
//! - nothing depends on how fast this machine is: work is sized in calibrated units
//!   ([`Calibration`]) and assertions are about order and placement, not wall time;
//! - ports come from the server's own `Listening at:` line (it binds `127.0.0.1:0`), never from
//!   a probe socket that is bound and dropped;
//! - everything a test creates lives in a [`tempfile::TempDir`] that it owns, so it is removed
//!   when the test ends, passing or failing.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_heavy-api");

/// How long a client waits for a response before it gives up (and says so). Generous: a loaded
/// 2-core machine may run the tests beside other builds; a correct server answers long before.
pub const READ_TIMEOUT: Duration = Duration::from_secs(180);

/// How long a connection the server must close may take to be closed (it closes at once; the
/// margin is for a loaded machine).
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long to wait for a server to start (its `Listening at:` line, then a healthy answer).
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Waits until `f` holds, polling every 20 ms; fails naming `what` and the timeout.
pub fn wait_until(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running server; killed (SIGKILL, with its workers) when dropped, and then its temporary
/// directory (which holds the io file) is removed.
pub struct Server {
    pub child: Child,
    pub port: u16,
    pub log: Arc<(Mutex<Vec<String>>, Condvar)>,
    pub io_file: std::path::PathBuf,
    /// Dropped after `Drop::drop` has killed the processes that use it.
    pub dir: tempfile::TempDir,
    /// How many of stdout and stderr are still open (every process of the server holds them).
    streams_open: Arc<std::sync::atomic::AtomicUsize>,
}

/// A new empty directory under the temp dir, removed (with its contents) when the guard drops.
pub fn temp_dir(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("heavy-api-it-{tag}-"))
        .tempdir()
        .expect("create a temporary directory")
}

/// The port of a `... Listening at: http://127.0.0.1:PORT (PID)` log line.
pub fn port_of_listening_line(line: &str) -> u16 {
    line.rsplit_once(':')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"))
}

impl Server {
    /// Starts `heavy-api --bind 127.0.0.1:0 <args>` and waits for `Listening at` and a 200 from
    /// the health endpoint.
    pub fn start(args: &[&str]) -> Server {
        Server::start_with(args, &[])
    }

    pub fn start_with(args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(BIN);
        let dir = temp_dir("io");
        cmd.args(["--bind", "127.0.0.1:0", "--io-file"])
            .arg(dir.path().join("data.bin"))
            .args(args);
        Server::spawn(cmd, env, dir)
    }

    /// Starts an arbitrary command line that runs the server (`unshare ... heavy-api ...`), and
    /// waits until it listens and answers health checks. The server owns `dir` (where its io
    /// file should be) and removes it when dropped. `io_file` is the command's `--io-file`
    /// argument, else `dir/data.bin`.
    pub fn spawn(cmd: Command, env: &[(&str, &str)], dir: tempfile::TempDir) -> Server {
        let server = Server::launch(cmd, env, dir);
        server.wait_healthy(START_TIMEOUT);
        server
    }

    /// As [`Server::spawn`], but returns as soon as the `Listening at:` line names the port,
    /// without waiting for a worker to answer.
    pub fn launch(cmd: Command, env: &[(&str, &str)], dir: tempfile::TempDir) -> Server {
        Server::launch_with_stdout(cmd, env, dir, None)
    }

    /// As [`Server::launch`], with the server's stdout given (`None`: read into the log, as
    /// stderr always is).
    pub fn launch_with_stdout(
        mut cmd: Command,
        env: &[(&str, &str)],
        dir: tempfile::TempDir,
        stdout: Option<Stdio>,
    ) -> Server {
        let io_file = cmd
            .get_args()
            .skip_while(|a| *a != "--io-file")
            .nth(1)
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| dir.path().join("data.bin"));
        cmd.env_remove("WEB_CONCURRENCY")
            .env_remove("PORT")
            .env_remove("HEAVY_API_CMD_ARGS")
            .env_remove("GUNICORN_CMD_ARGS");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null())
            .stdout(stdout.unwrap_or_else(Stdio::piped))
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start heavy-api");
        let log = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let mut streams = vec![Box::new(child.stderr.take().unwrap()) as Box<dyn Read + Send>];
        if let Some(stdout) = child.stdout.take() {
            streams.push(Box::new(stdout));
        }
        let streams_open = Arc::new(std::sync::atomic::AtomicUsize::new(streams.len()));
        for stream in streams {
            let log = log.clone();
            let streams_open = streams_open.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    let (lines, cv) = &*log;
                    lines.lock().unwrap().push(line);
                    cv.notify_all();
                }
                streams_open.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            });
        }
        let mut server = Server {
            child,
            port: 0,
            log,
            io_file,
            dir,
            streams_open,
        };
        let line = server.wait_for_log("Listening at: ", START_TIMEOUT);
        server.port = port_of_listening_line(&line);
        server
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn wait_healthy(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(resp) = try_get(self.port, "/heavy/health/") {
                if resp.status == 200 {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "server not healthy within {within:?}; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_lines(&self) -> Vec<String> {
        self.log.0.lock().unwrap().clone()
    }

    pub fn log_text(&self) -> String {
        self.log_lines().join("\n")
    }

    /// Waits for a log line containing `needle` (counting from the start) and returns it.
    pub fn wait_for_log(&self, needle: &str, within: Duration) -> String {
        self.wait_for_log_count(needle, 1, within)
    }

    /// Waits until `count` log lines contain `needle`; returns the last of them.
    pub fn wait_for_log_count(&self, needle: &str, count: usize, within: Duration) -> String {
        let deadline = Instant::now() + within;
        let (lines, cv) = &*self.log;
        let mut guard = lines.lock().unwrap();
        loop {
            let found: Vec<&String> = guard.iter().filter(|l| l.contains(needle)).collect();
            if found.len() >= count {
                return found[count - 1].clone();
            }
            let now = Instant::now();
            assert!(
                now < deadline,
                "no {count}x {needle:?} in the log within {within:?}; log:\n{}",
                guard.join("\n")
            );
            guard = cv.wait_timeout(guard, deadline - now).unwrap().0;
        }
    }

    pub fn count_log(&self, needle: &str) -> usize {
        self.log_lines()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// The master's live children (its workers), sorted by pid: a set, not an age order (pids
    /// wrap around). For the order workers were started in, see [`Server::booted_workers`].
    pub fn worker_pids(&self) -> Vec<i32> {
        children_of(self.pid())
    }

    /// Every worker that has logged `Booting worker with pid: N`, in the order of those lines.
    /// Each worker logs its own line after the fork, so workers spawned together (at start, at
    /// HUP) may log in either order: this is their age only for workers spawned one at a time,
    /// each after the previous one's line.
    pub fn booted_workers(&self) -> Vec<i32> {
        self.log_lines()
            .iter()
            .filter_map(|l| l.split_once("Booting worker with pid: "))
            .filter_map(|(_, pid)| pid.trim().parse().ok())
            .collect()
    }

    /// Waits until exactly `n` workers are alive; returns them (sorted by pid).
    pub fn wait_workers(&self, n: usize, within: Duration) -> Vec<i32> {
        let mut pids = Vec::new();
        wait_until(&format!("{n} live workers"), within, || {
            pids = self.worker_pids();
            pids.len() == n
        });
        pids
    }

    pub fn signal(&self, sig: i32) {
        unsafe { libc::kill(self.pid(), sig) };
    }

    /// Waits for the master to exit and returns its exit code (`None` if a signal ended it);
    /// fails, naming the timeout, if it is still running after `within`.
    pub fn exit_code_within(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.drain_log();
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "the master did not exit within {within:?}; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Once the master has exited: waits (up to 10 s, without failing) until every process of
    /// the server has closed its output and the log holds every line they wrote; a worker's
    /// `Worker exiting` line may still be in the pipe when the master's exit is seen.
    fn drain_log(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.streams_open.load(std::sync::atomic::Ordering::SeqCst) > 0
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits for the master to exit; returns its exit code (after the log is complete).
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.drain_log();
                return status.code();
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        kill_tree(self.pid());
        let _ = self.child.wait();
        // Nothing of the server runs any more, so nothing can recreate a file in its directory;
        // remove it here, retrying a transient failure, rather than leave it to TempDir's drop,
        // which ignores errors.
        let dir = self.dir.path().to_path_buf();
        for _ in 0..50 {
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}

/// The state letter of `/proc/PID/stat` (`R`, `S`, `T`, `Z`, ...); `None` once it is gone.
fn proc_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")
        .and_then(|(_, rest)| rest.chars().next())
}

/// SIGKILLs `root` and every descendant, with none able to fork a process this misses: each
/// is stopped (SIGSTOP) and seen stopped before its children are read. Returns once every one
/// of them is dead (gone or a zombie), so none can touch a file afterwards.
pub fn kill_tree(root: i32) {
    let mut all = Vec::new();
    let mut pending = vec![root];
    while let Some(pid) = pending.pop() {
        unsafe { libc::kill(pid, libc::SIGSTOP) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while matches!(proc_state(pid), Some(c) if !matches!(c, 'T' | 't' | 'Z' | 'X'))
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        pending.extend(children_of(pid));
        all.push(pid);
    }
    for &pid in &all {
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    for &pid in &all {
        while matches!(proc_state(pid), Some(c) if !matches!(c, 'Z' | 'X'))
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Direct children of `pid` (forked by any of its threads), from /proc, sorted.
pub fn children_of(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
                out.extend(
                    text.split_whitespace()
                        .filter_map(|p| p.parse::<i32>().ok()),
                );
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub version: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("bad JSON {e}: {:?}", String::from_utf8_lossy(&self.body)))
    }
}

/// A new connection with the [`READ_TIMEOUT`].
pub fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("connect to 127.0.0.1:{port}: {e}"));
    s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    s
}

/// Reads one response (Content-Length framed; `head_only` for answers to HEAD). A read that
/// times out fails with an error that names the socket's read timeout.
pub fn read_response(reader: &mut BufReader<TcpStream>, head_only: bool) -> std::io::Result<Resp> {
    read_response_inner(reader, head_only).map_err(|e| {
        if matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ) {
            let timeout = reader.get_ref().read_timeout().ok().flatten();
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no complete response within the client read timeout ({timeout:?}): {e}"),
            )
        } else {
            e
        }
    })
}

fn read_response_inner(
    reader: &mut BufReader<TcpStream>,
    head_only: bool,
) -> std::io::Result<Resp> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "closed before a response",
        ));
    }
    let mut parts = line.trim_end().splitn(3, ' ');
    let version = parts.next().unwrap_or_default().to_string();
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (n, v) = h.split_once(':').unwrap();
        headers.push((n.to_string(), v.trim().to_string()));
    }
    let len: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.parse().unwrap())
        .unwrap_or(0);
    let mut body = vec![0u8; if head_only || status == 100 { 0 } else { len }];
    reader.read_exact(&mut body)?;
    Ok(Resp {
        status,
        version,
        headers,
        body,
    })
}

/// Sends raw bytes on a new connection and reads one response.
pub fn raw(port: u16, request: &[u8]) -> std::io::Result<Resp> {
    let mut s = connect(port);
    s.write_all(request)?;
    read_response(&mut BufReader::new(s), false)
}

pub fn try_get(port: u16, path: &str) -> std::io::Result<Resp> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(READ_TIMEOUT))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )?;
    read_response(&mut BufReader::new(s), false)
}

pub fn get(port: u16, path: &str) -> Resp {
    try_get(port, path).unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// Reads until EOF; true if the peer closed the connection (EOF or reset) within `within`.
pub fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

/// Sends `GET /heavy/health/` and then `path` pipelined on one connection, and returns once the
/// health answer is back: by then the event loop has read (and queued) the second request. The
/// thread returned yields the second answer.
pub fn start_request(port: u16, path: &str) -> std::thread::JoinHandle<std::io::Result<Resp>> {
    let mut s = connect(port);
    let requests = format!(
        "GET /heavy/health/ HTTP/1.1\r\nHost: t\r\n\r\nGET {path} HTTP/1.1\r\nHost: t\r\n\r\n"
    );
    s.write_all(requests.as_bytes()).unwrap();
    let mut reader = BufReader::new(s);
    assert_eq!(read_response(&mut reader, false).unwrap().status, 200);
    std::thread::spawn(move || read_response(&mut reader, false))
}

pub const LIGHT: &str = "/heavy/cpu-io-no-db/?prime_limit=1000&hash_rounds=10&io_kb=1";

/// `--max-hash-rounds` for servers that get calibrated work: no cap gets in the way on a fast
/// machine.
pub const NO_ROUNDS_CAP: &str = "1000000000000";

/// A heavy request that only hashes: `rounds` SHA-256 rounds (linear in `rounds`, constant
/// memory), no primes, no io.
pub fn hashing(rounds: u64) -> String {
    format!("/heavy/cpu-io-no-db/?prime_limit=2&hash_rounds={rounds}&io_kb=0")
}

/// How fast this machine runs heavy work right now, so that tests ask for work in units of
/// "how long one request takes alone" instead of fixed sizes that a loaded machine may take
/// minutes over (or a fast one milliseconds). Measured once per test binary on a 1-worker
/// server of its own; servers that get calibrated work need `--max-hash-rounds`
/// [`NO_ROUNDS_CAP`].
#[derive(Debug, Clone, Copy)]
pub struct Calibration {
    /// Seconds per SHA-256 round in one handler thread, best of three runs.
    pub secs_per_round: f64,
}

/// The calibration of this test binary, measured on first use.
pub fn calibration() -> Calibration {
    static CAL: std::sync::OnceLock<Calibration> = std::sync::OnceLock::new();
    *CAL.get_or_init(|| {
        let server = Server::start(&["--workers", "1", "--max-hash-rounds", NO_ROUNDS_CAP]);
        let cal = Calibration::measure(server.port);
        eprintln!(
            "calibration: {:.3} us per hash round",
            cal.secs_per_round * 1e6
        );
        cal
    })
}

impl Calibration {
    /// Times `hashing(n)` alone on `port` (best of 3), growing `n` until one takes 100 ms.
    pub fn measure(port: u16) -> Calibration {
        let mut rounds = 10_000u64;
        loop {
            let best = (0..3)
                .map(|_| {
                    let started = Instant::now();
                    let resp = get(port, &hashing(rounds));
                    assert_eq!(resp.status, 200, "calibration request {rounds} rounds");
                    started.elapsed()
                })
                .min()
                .unwrap();
            if best >= Duration::from_millis(100) || rounds >= 1 << 36 {
                return Calibration {
                    secs_per_round: best.as_secs_f64() / rounds as f64,
                };
            }
            rounds *= 4;
        }
    }

    /// `hash_rounds` for a request that takes about `solo` alone on this machine.
    pub fn rounds_for(&self, solo: Duration) -> u64 {
        ((solo.as_secs_f64() / self.secs_per_round).ceil() as u64).max(1)
    }

    /// A request that takes about `solo` alone on this machine.
    pub fn request(&self, solo: Duration) -> String {
        hashing(self.rounds_for(solo))
    }
}

/// Starts `cmd` with the descriptor limit `soft` / `hard` (set in the child before exec).
pub fn with_descriptor_limit(cmd: &mut Command, soft: u64, hard: u64) {
    use std::os::unix::process::CommandExt;
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: soft,
                rlim_max: hard,
            };
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            Ok(())
        });
    }
}

/// Serves an ECS task metadata endpoint (v4) on loopback for the two reads a worker makes at
/// boot, as the ECS agent does: `task` (the document at `{uri}/task`) and the container's.
/// Returns the `ECS_CONTAINER_METADATA_URI_V4` to give the server, and the thread to join.
pub fn ecs_endpoint(task: String, container: String) -> (String, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        for _ in 0..2 {
            let Ok((mut s, _)) = listener.accept() else {
                return;
            };
            let mut line = String::new();
            BufReader::new(s.try_clone().unwrap())
                .read_line(&mut line)
                .unwrap();
            let body = if line.contains("/v4/abc/task") {
                &task
            } else {
                &container
            };
            write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
        }
    });
    (format!("http://127.0.0.1:{port}/v4/abc"), handle)
}
