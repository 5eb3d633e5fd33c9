//! The application: the two endpoints of the original Django service and their kernels, and the
//! endpoints that describe the server (`/heavy/info/`, `/heavy/ready/`, `/metrics`).
//!
//! Nothing here knows about sockets, processes or threads. The HTTP layer asks [`App::route`]
//! what a request is; cheap answers (health, info, every error) come back at once, heavy work
//! comes back as [`Route::Heavy`] and is run later, on a handler thread, by [`App::run_heavy`];
//! readiness and metrics depend on the server's state, which the worker fills in.

pub mod kernels;
pub mod query;

use crate::io_store::DataFile;
use crate::platform;
use kernels::{Deadline, TimedOut};
pub use query::HeavyParams;
use serde_json::{json, Value};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub const HEALTH_PATH: &str = "/heavy/health/";
pub const HEAVY_PATH: &str = "/heavy/cpu-io-no-db/";
pub const READY_PATH: &str = "/heavy/ready/";
pub const INFO_PATH: &str = "/heavy/info/";
pub const METRICS_PATH: &str = "/metrics";
const PATHS: [&str; 5] = [HEALTH_PATH, HEAVY_PATH, READY_PATH, INFO_PATH, METRICS_PATH];
const ALLOWED_METHODS: &str = "GET, HEAD";

/// Upper bounds on the work one request may ask for (`--max-prime-limit` and friends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_prime_limit: i64,
    pub max_hash_rounds: i64,
    pub max_io_kb: i64,
    /// Accept `fault=panic` (robustness tests only; `--enable-fault-injection`).
    pub fault_injection: bool,
}

impl Default for Limits {
    /// Ten times what the original's documentation ever asks for.
    fn default() -> Self {
        Limits {
            max_prime_limit: 10_000_000,
            max_hash_rounds: 20_000_000,
            max_io_kb: 4096,
            fault_injection: false,
        }
    }
}

pub use crate::response::{Response, JSON};

/// What a request turned out to be.
#[derive(Debug, PartialEq)]
pub enum Route {
    /// Answer now: health, redirects and every error. Cheap enough for an event loop.
    Ready(Response),
    /// CPU and I/O work for a handler thread.
    Heavy(HeavyParams),
    /// `/heavy/ready/`: the worker answers from the server's state.
    Readiness,
    /// `/metrics`: the worker answers from the shared metrics.
    Metrics,
}

/// The application with its configuration.
#[derive(Debug, Clone)]
pub struct App {
    limits: Limits,
    data: DataFile,
    /// The `/heavy/info/` answer's body (the platform fingerprint and the server's settings),
    /// made once at boot.
    info: Vec<u8>,
    /// The worker's pid, for the answer's `pid` (read once: `getpid` is a system call). An
    /// `App` is made in the worker, after the fork.
    pid: u32,
}

impl App {
    pub fn new(limits: Limits, data: DataFile) -> Self {
        App {
            limits,
            data,
            info: b"{}\n".to_vec(),
            pid: std::process::id(),
        }
    }

    /// Sets what `/heavy/info/` answers.
    pub fn with_info(mut self, info: &Value) -> Self {
        self.info = serde_json::to_vec(info).expect("JSON values always serialise");
        self.info.push(b'\n');
        self
    }

    pub fn data_file(&self) -> &DataFile {
        &self.data
    }

    /// Classifies a request. `method` is as sent, `path` is percent-encoded as sent, `query` is
    /// what follows `?` (empty if none). `HEAD` is routed like `GET`.
    pub fn route(&self, method: &str, path: &str, query: &str) -> Route {
        let known = PATHS.contains(&path);
        if !known {
            // Django's APPEND_SLASH: the known paths without their slash redirect permanently.
            let slashed = format!("{path}/");
            if PATHS.contains(&slashed.as_str()) && is_get_or_head(method) {
                let location = if query.is_empty() {
                    slashed
                } else {
                    format!("{slashed}?{query}")
                };
                return Route::Ready(
                    Response::error(301, "moved permanently", json!({ "location": location }))
                        .with_header("Location", location),
                );
            }
            return Route::Ready(Response::error(404, "not found", json!({ "path": path })));
        }
        if !is_get_or_head(method) {
            return Route::Ready(
                Response::error(
                    405,
                    "method not allowed",
                    json!({ "method": method, "allowed": ["GET", "HEAD"] }),
                )
                .with_header("Allow", ALLOWED_METHODS),
            );
        }
        match path {
            HEALTH_PATH => return Route::Ready(health()),
            READY_PATH => return Route::Readiness,
            METRICS_PATH => return Route::Metrics,
            INFO_PATH => {
                return Route::Ready(Response {
                    status: 200,
                    content_type: JSON,
                    headers: Vec::new(),
                    body: self.info.clone(),
                })
            }
            _ => {}
        }
        match HeavyParams::from_query(query, &self.limits) {
            Ok(params) => Route::Heavy(params),
            Err(err) => {
                let mut extra = json!({ "param": err.param });
                if let Some(max) = err.max {
                    extra["max"] = json!(max);
                }
                Route::Ready(Response::error(400, &err.message, extra))
            }
        }
    }

    /// Runs the heavy endpoint: primes, hash chain, then the file append + read. `queued` is how
    /// long the request waited to start (for a handler thread, or the event loop). Gives up with [`TimedOut`] once `deadline`
    /// passes; the caller answers with [`timeout_response`]. Measures what the platform gave
    /// the request (see [`Timings`]) and reports it in `Server-Timing`.
    pub fn run_heavy(
        &self,
        params: HeavyParams,
        deadline: Deadline,
        queued: Duration,
    ) -> Result<(Response, Timings), TimedOut> {
        if params.panic {
            panic!("fault injection: a panic inside a request handler");
        }
        // Work answered by the event loop (about a microsecond) is not split: the thread clock
        // and the cgroup's cpu.stat cost more than the work, and under load the cpu.stat reads
        // of every worker contend (p99 150-290 ms at 1,000 connections, measured).
        let split = !params.runs_inline();
        // The counters are read before the clock starts: reading them is the server's own cost,
        // not the request's, and would otherwise show as waiting for a core.
        let platform_before = split.then(platform::Counters::now);
        let thread_before = split.then(platform::thread_cpu_time);
        let start = Instant::now();
        let cpu = (|| -> Result<_, TimedOut> {
            let primes = kernels::count_primes_below(params.prime_limit, deadline)?;
            let digest = kernels::sha256_chain(params.hash_rounds, deadline)?;
            Ok((primes, digest))
        })();
        let (primes_found, digest) = cpu?;
        let cpu_end = Instant::now();
        let cpu_thread = thread_before.map(|t| platform::thread_cpu_time().saturating_sub(t));
        deadline.check()?;
        let io = self
            .data
            .append_and_read(params.io_kb as u64, params.io_sync);
        let end = Instant::now();
        let platform = platform_before.map(|p| p.since(platform::Counters::now()));
        let cpu = cpu_end - start;
        let timings = Timings {
            queue: queued,
            cpu,
            cpu_thread,
            cpu_wait: cpu_thread.map(|t| cpu.saturating_sub(t)),
            io: end - cpu_end,
            fsync: io.as_ref().map(|s| s.fsync).unwrap_or_default(),
            total: end - start,
            throttled: platform.and_then(|p| p.throttled),
            steal: platform.and_then(|p| p.steal),
        };
        if let Err(err) = io {
            return Ok((
                Response::error(
                    500,
                    &format!("io failed: {err}"),
                    json!({ "io_file": self.data.path().display().to_string() }),
                ),
                timings,
            ));
        }
        let body = json!({
            "primes_found": primes_found,
            "prime_limit": params.prime_limit,
            "hash_rounds": params.hash_rounds,
            "io_kb": params.io_kb,
            "cpu_time_sec": round2(timings.cpu.as_secs_f64()),
            "total_time_sec": round2(timings.total.as_secs_f64()),
            "io_time_sec": round2(timings.io.as_secs_f64()),
            "digest": kernels::to_hex(&digest),
            "pid": self.pid,
        });
        let response =
            Response::json(200, &body).with_header("Server-Timing", timings.server_timing());
        Ok((response, timings))
    }
}

/// Where a heavy request's time went. `cpu` is the wall-clock time of the CPU phase; of it,
/// `cpu_thread` is CPU the thread actually got and `cpu_wait` the rest (waiting for a core).
/// `throttled` (the cgroup's CFS throttling) and `steal` (the hypervisor's, all CPUs) are what
/// those machine-wide counters moved while the request ran; absent where not readable. The
/// split (`cpu_thread`, `cpu_wait`, `throttled`, `steal`) is absent for work the event loop
/// answers (`HeavyParams::runs_inline`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timings {
    pub queue: Duration,
    pub cpu: Duration,
    pub cpu_thread: Option<Duration>,
    pub cpu_wait: Option<Duration>,
    pub io: Duration,
    pub fsync: Duration,
    pub total: Duration,
    pub throttled: Option<Duration>,
    pub steal: Option<Duration>,
}

impl Timings {
    /// The `Server-Timing` header's value, in milliseconds.
    pub fn server_timing(&self) -> String {
        let phases = [
            ("queue", Some(self.queue)),
            ("cpu", Some(self.cpu)),
            ("cpu_thread", self.cpu_thread),
            ("cpu_wait", self.cpu_wait),
            ("io", Some(self.io)),
            ("fsync", Some(self.fsync)),
            ("throttled", self.throttled),
            ("steal", self.steal),
            ("total", Some(self.total)),
        ];
        let shown: Vec<String> = phases
            .iter()
            .filter_map(|(name, value)| Some(format!("{name};dur={:.3}", millis((*value)?))))
            .collect();
        shown.join(", ")
    }
}

/// The answer to a heavy request whose `--timeout` passed (before or during its work).
pub fn timeout_response(timeout: Duration, worked: Duration) -> Response {
    let secs = timeout.as_secs_f64();
    Response::error(
        503,
        &format!("request timed out: it exceeded the server's {secs} s timeout"),
        json!({ "timeout_sec": secs }),
    )
    .with_header("Server-Timing", format!("total;dur={:.3}", millis(worked)))
}

fn health() -> Response {
    // The hottest path of all (every probe): formatted directly, not through a JSON map.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let mut body = Vec::with_capacity(64);
    body.extend_from_slice(b"{\"status\":\"healthy\",\"timestamp\":");
    serde_json::to_writer(&mut body, &now.as_secs_f64()).expect("a finite float");
    body.extend_from_slice(b"}\n");
    Response {
        status: 200,
        content_type: JSON,
        headers: Vec::new(),
        body,
    }
}

fn is_get_or_head(method: &str) -> bool {
    method == "GET" || method == "HEAD"
}

/// Python's `round(x, 2)` for the timing fields (ties are immaterial for measurements).
fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An app for routing: its data file is never touched (a path no one can create).
    fn app() -> App {
        App::new(
            Limits::default(),
            DataFile::new("/proc/heavy-api-routing-only/data.bin"),
        )
    }

    fn body(resp: &Response) -> Value {
        serde_json::from_slice(&resp.body).unwrap()
    }

    fn ready(route: Route) -> Response {
        match route {
            Route::Ready(r) => r,
            other => panic!("expected an immediate answer, got {other:?}"),
        }
    }

    #[test]
    fn server_endpoints_route_to_the_worker_or_answer_info() {
        let info = json!({"platform": {"cpu_model": "test"}});
        let a = app().with_info(&info);
        assert_eq!(a.route("GET", READY_PATH, ""), Route::Readiness);
        assert_eq!(a.route("HEAD", METRICS_PATH, ""), Route::Metrics);
        assert_eq!(ready(a.route("POST", METRICS_PATH, "")).status, 405);
        let resp = ready(a.route("GET", INFO_PATH, ""));
        assert_eq!(body(&resp), info);
        assert_eq!(ready(a.route("GET", "/heavy/ready", "")).status, 301);
    }

    #[test]
    fn health_is_immediate_and_well_formed() {
        let resp = ready(app().route("GET", HEALTH_PATH, ""));
        assert_eq!(resp.status, 200);
        let v = body(&resp);
        assert_eq!(v["status"], "healthy");
        let ts = v["timestamp"].as_f64().unwrap();
        assert!(ts > 1.7e9, "{ts}");
        assert_eq!(
            v.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["status", "timestamp"]
        );
    }

    #[test]
    fn heavy_routes_to_work_with_defaults() {
        assert_eq!(
            app().route("GET", HEAVY_PATH, ""),
            Route::Heavy(HeavyParams::default())
        );
        assert_eq!(
            app().route("HEAD", HEAVY_PATH, ""),
            Route::Heavy(HeavyParams::default())
        );
    }

    #[test]
    fn heavy_response_has_the_original_keys_in_order() {
        let params = HeavyParams {
            prime_limit: 1000,
            hash_rounds: 10,
            io_kb: 4,
            io_sync: true,
            panic: false,
            corrupt_frame: false,
        };
        let dir = tempfile::tempdir().unwrap();
        let (resp, timings) = App::new(Limits::default(), DataFile::new(dir.path().join("io")))
            .run_heavy(params, Deadline::none(), Duration::from_millis(3))
            .unwrap();
        let cpu_thread = timings.cpu_thread.unwrap();
        assert!(cpu_thread <= timings.cpu + Duration::from_millis(1));
        assert_eq!(
            timings.cpu_wait,
            Some(timings.cpu.saturating_sub(cpu_thread))
        );
        assert_eq!(resp.status, 200);
        let v = body(&resp);
        let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        assert_eq!(
            &keys[..7],
            [
                "primes_found",
                "prime_limit",
                "hash_rounds",
                "io_kb",
                "cpu_time_sec",
                "total_time_sec",
                "io_time_sec"
            ]
        );
        assert_eq!(v["primes_found"], 168);
        assert_eq!(v["prime_limit"], 1000);
        assert_eq!(v["hash_rounds"], 10);
        assert_eq!(v["io_kb"], 4);
        assert_eq!(
            v["digest"],
            "ca0f2064e5203ac0f6e64a57b0fda7552014d6fd79f813a5a118692d68aeac81"
        );
        assert!(v["cpu_time_sec"].is_f64());
        let timing = resp.header("Server-Timing").unwrap();
        assert!(timing.starts_with("queue;dur=3.000, cpu;dur="), "{timing}");
        for phase in ["cpu_thread", "cpu_wait", "io", "fsync", "total"] {
            assert!(
                timing.contains(&format!(" {phase};dur=")),
                "{phase}: {timing}"
            );
        }
    }

    #[test]
    fn work_answered_inline_is_timed_but_not_split() {
        let params =
            HeavyParams::from_query("prime_limit=2&hash_rounds=1&io_kb=0", &Limits::default())
                .unwrap();
        assert!(params.runs_inline());
        let dir = tempfile::tempdir().unwrap();
        let (resp, timings) = App::new(Limits::default(), DataFile::new(dir.path().join("io")))
            .run_heavy(params, Deadline::none(), Duration::ZERO)
            .unwrap();
        assert_eq!(resp.status, 200);
        assert_eq!(
            (
                timings.cpu_thread,
                timings.cpu_wait,
                timings.throttled,
                timings.steal
            ),
            (None, None, None, None)
        );
        let timing = resp.header("Server-Timing").unwrap();
        let names: Vec<_> = timing
            .split(", ")
            .map(|p| p.split(';').next().unwrap())
            .collect();
        assert_eq!(names, ["queue", "cpu", "io", "fsync", "total"], "{timing}");
    }

    #[test]
    fn timing_fields_are_rounded_to_two_decimals() {
        assert_eq!(round2(0.123456), 0.12);
        assert_eq!(round2(2.105_9), 2.11);
        assert_eq!(serde_json::to_string(&json!(round2(0.0))).unwrap(), "0.0");
    }

    #[test]
    fn an_expired_deadline_stops_the_work_and_answers_503() {
        let params = HeavyParams {
            prime_limit: 5_000_000,
            hash_rounds: 0,
            io_kb: 0,
            io_sync: true,
            panic: false,
            corrupt_frame: false,
        };
        let past = Deadline::at(Instant::now() - Duration::from_millis(1));
        assert!(matches!(
            app().run_heavy(params, past, Duration::ZERO),
            Err(TimedOut)
        ));
        let resp = timeout_response(Duration::from_secs(2), Duration::from_millis(2001));
        assert_eq!(resp.status, 503);
        assert_eq!(body(&resp)["timeout_sec"], 2.0);
    }

    #[test]
    fn errors_are_json_with_the_right_status() {
        let a = app();
        let resp = ready(a.route("GET", "/nope/", ""));
        assert_eq!(resp.status, 404);
        assert_eq!(body(&resp)["error"], "not found");

        let resp = ready(a.route("POST", HEAVY_PATH, ""));
        assert_eq!(resp.status, 405);
        assert_eq!(resp.header("Allow"), Some("GET, HEAD"));
        let resp = ready(a.route("DELETE", HEALTH_PATH, ""));
        assert_eq!(resp.status, 405);

        let resp = ready(a.route("GET", HEAVY_PATH, "prime_limit=abc"));
        assert_eq!(resp.status, 400);
        let v = body(&resp);
        assert_eq!(v["error"], "prime_limit must be an integer");
        assert_eq!(v["param"], "prime_limit");

        let resp = ready(a.route("GET", HEAVY_PATH, "io_kb=100000"));
        assert_eq!(resp.status, 400);
        assert_eq!(body(&resp)["max"], 4096);
    }

    #[test]
    fn missing_trailing_slash_redirects_like_django() {
        let resp = ready(app().route("GET", "/heavy/cpu-io-no-db", "io_kb=1"));
        assert_eq!(resp.status, 301);
        assert_eq!(
            resp.header("Location"),
            Some("/heavy/cpu-io-no-db/?io_kb=1")
        );
    }
}
