//! The application: the two endpoints of the original Django service and their kernels.
//!
//! Nothing here knows about sockets, processes or threads. The HTTP layer asks [`App::route`]
//! what a request is; cheap answers (health, every error) come back at once, heavy work comes
//! back as [`Route::Heavy`] and is run later, on a handler thread, by [`App::run_heavy`].

pub mod io_store;
pub mod kernels;
pub mod query;

use io_store::DataFile;
use kernels::{Deadline, TimedOut};
pub use query::HeavyParams;
use serde_json::{json, Value};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub const HEALTH_PATH: &str = "/heavy/health/";
pub const HEAVY_PATH: &str = "/heavy/cpu-io-no-db/";
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

/// A response as the application sees it: status, JSON body and any extra headers.
/// The HTTP layer adds framing and the standard headers.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(status: u16, value: &Value) -> Self {
        let mut body = serde_json::to_vec(value).expect("JSON values always serialise");
        body.push(b'\n');
        Response {
            status,
            headers: Vec::new(),
            body,
        }
    }

    /// An error answer: `{"error": message, ...extra}`.
    pub fn error(status: u16, message: &str, extra: Value) -> Self {
        let mut value = json!({ "error": message });
        if let (Some(map), Value::Object(more)) = (value.as_object_mut(), extra) {
            map.extend(more);
        }
        Response::json(status, &value)
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What a request turned out to be.
#[derive(Debug, PartialEq)]
pub enum Route {
    /// Answer now: health, redirects and every error. Cheap enough for an event loop.
    Ready(Response),
    /// CPU and I/O work for a handler thread.
    Heavy(HeavyParams),
}

/// The application with its configuration.
#[derive(Debug, Clone)]
pub struct App {
    limits: Limits,
    data: DataFile,
}

impl App {
    pub fn new(limits: Limits, data: DataFile) -> Self {
        App { limits, data }
    }

    pub fn data_file(&self) -> &DataFile {
        &self.data
    }

    /// Classifies a request. `method` is as sent, `path` is percent-encoded as sent, `query` is
    /// what follows `?` (empty if none). `HEAD` is routed like `GET`.
    pub fn route(&self, method: &str, path: &str, query: &str) -> Route {
        let known = path == HEALTH_PATH || path == HEAVY_PATH;
        if !known {
            // Django's APPEND_SLASH: the known paths without their slash redirect permanently.
            let slashed = format!("{path}/");
            if (slashed == HEALTH_PATH || slashed == HEAVY_PATH) && is_get_or_head(method) {
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
        if path == HEALTH_PATH {
            return Route::Ready(health());
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
    /// long the request waited for a handler thread (reported in `Server-Timing`). Gives up with
    /// [`TimedOut`] once `deadline` passes; the caller answers with [`timeout_response`].
    pub fn run_heavy(
        &self,
        params: HeavyParams,
        deadline: Deadline,
        queued: Duration,
    ) -> Result<Response, TimedOut> {
        if params.panic {
            panic!("fault injection: a panic inside a request handler");
        }
        let start = Instant::now();
        let cpu = (|| -> Result<_, TimedOut> {
            let primes = kernels::count_primes_below(params.prime_limit, deadline)?;
            let digest = kernels::sha256_chain(params.hash_rounds, deadline)?;
            Ok((primes, digest))
        })();
        let (primes_found, digest) = cpu?;
        let cpu_end = Instant::now();
        deadline.check()?;
        if let Err(err) = self.data.append_and_read(params.io_kb as u64) {
            return Ok(Response::error(
                500,
                &format!("io failed: {err}"),
                json!({ "io_file": self.data.path().display().to_string() }),
            ));
        }
        let end = Instant::now();
        let (cpu_time, total_time, io_time) = (cpu_end - start, end - start, end - cpu_end);
        let body = json!({
            "primes_found": primes_found,
            "prime_limit": params.prime_limit,
            "hash_rounds": params.hash_rounds,
            "io_kb": params.io_kb,
            "cpu_time_sec": round2(cpu_time.as_secs_f64()),
            "total_time_sec": round2(total_time.as_secs_f64()),
            "io_time_sec": round2(io_time.as_secs_f64()),
            "digest": kernels::to_hex(&digest),
            "pid": std::process::id(),
        });
        Ok(Response::json(200, &body).with_header(
            "Server-Timing",
            format!(
                "queue;dur={:.3}, cpu;dur={:.3}, io;dur={:.3}, total;dur={:.3}",
                millis(queued),
                millis(cpu_time),
                millis(io_time),
                millis(total_time)
            ),
        ))
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
    let timestamp = serde_json::to_string(&now.as_secs_f64()).expect("a finite float");
    let body = format!("{{\"status\":\"healthy\",\"timestamp\":{timestamp}}}\n");
    Response {
        status: 200,
        headers: Vec::new(),
        body: body.into_bytes(),
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

    fn app() -> App {
        let path =
            std::env::temp_dir().join(format!("heavy-api-app-test-{}.bin", std::process::id()));
        App::new(Limits::default(), DataFile::new(path))
    }

    fn body(resp: &Response) -> Value {
        serde_json::from_slice(&resp.body).unwrap()
    }

    fn ready(route: Route) -> Response {
        match route {
            Route::Ready(r) => r,
            Route::Heavy(p) => panic!("expected an immediate answer, got heavy work {p:?}"),
        }
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
            panic: false,
        };
        let resp = app()
            .run_heavy(params, Deadline::none(), Duration::from_millis(3))
            .unwrap();
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
        assert!(
            timing.contains("io;dur=") && timing.contains("total;dur="),
            "{timing}"
        );
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
            panic: false,
        };
        let past = Deadline::at(Instant::now() - Duration::from_millis(1));
        assert_eq!(app().run_heavy(params, past, Duration::ZERO), Err(TimedOut));
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
