//! Test support: start the real `heavy-api` binary on a loopback port, wait until it is ready,
//! watch its log, and speak HTTP/1.1 to it over raw sockets.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_heavy-api");

/// A running server; killed (SIGKILL, with its workers) when dropped.
pub struct Server {
    pub child: Child,
    pub port: u16,
    pub log: Arc<(Mutex<Vec<String>>, Condvar)>,
    pub io_file: std::path::PathBuf,
}

pub fn temp_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "heavy-api-it-{}-{tag}-{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos() ^ rand_u32() as u128
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn rand_u32() -> u32 {
    let mut b = [0u8; 4];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut b)
        .unwrap();
    u32::from_ne_bytes(b)
}

impl Server {
    /// Starts `heavy-api --bind 127.0.0.1:0 <args>` and waits for `Listening at` and a 200 from
    /// the health endpoint.
    pub fn start(args: &[&str]) -> Server {
        Server::start_with(args, &[])
    }

    pub fn start_with(args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(BIN);
        let io_file = temp_dir("io").join("data.bin");
        cmd.args(["--bind", "127.0.0.1:0", "--io-file"])
            .arg(&io_file)
            .args(args);
        Server::spawn(cmd, env, io_file)
    }

    /// Starts an arbitrary command line that runs the server (`unshare ... heavy-api ...`).
    pub fn spawn(mut cmd: Command, env: &[(&str, &str)], io_file: std::path::PathBuf) -> Server {
        cmd.env_remove("WEB_CONCURRENCY")
            .env_remove("PORT")
            .env_remove("HEAVY_API_CMD_ARGS")
            .env_remove("GUNICORN_CMD_ARGS");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start heavy-api");
        let log = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        for stream in [
            Box::new(child.stderr.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stdout.take().unwrap()),
        ] {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    let (lines, cv) = &*log;
                    lines.lock().unwrap().push(line);
                    cv.notify_all();
                }
            });
        }
        let mut server = Server {
            child,
            port: 0,
            log,
            io_file,
        };
        let line = server.wait_for_log("Listening at: ", Duration::from_secs(20));
        let port: u16 = line
            .rsplit_once(':')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        server.port = port;
        server.wait_healthy(Duration::from_secs(20));
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
                "server not healthy; log:\n{}",
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
                "no {count}x {needle:?} in log:\n{}",
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

    /// Worker pids, from the `Booting worker with pid:` lines of workers still alive.
    pub fn worker_pids(&self) -> Vec<i32> {
        children_of(self.pid())
    }

    pub fn signal(&self, sig: i32) {
        unsafe { libc::kill(self.pid(), sig) };
    }

    /// Waits for the master to exit; returns its exit code.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
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
        // The master first, so it cannot replace the workers killed next.
        let workers = children_of(self.pid());
        let _ = self.child.kill();
        for pid in workers {
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let _ = self.child.wait();
    }
}

/// Direct children of `pid`, from /proc.
pub fn children_of(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")) {
        out.extend(
            text.split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok()),
        );
    }
    out.sort();
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

pub fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s
}

/// Reads one response (Content-Length framed; `head_only` for answers to HEAD).
pub fn read_response(reader: &mut BufReader<TcpStream>, head_only: bool) -> std::io::Result<Resp> {
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
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
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
