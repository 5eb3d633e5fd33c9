//! Issue #11 on the real binary: metrics shared by every worker and surviving restarts, the
//! metrics listener, the platform fingerprint with and without an ECS metadata endpoint, the
//! per-request CPU phases, throttling under a real CPU quota, readiness during a drain, and
//! `--workers auto` under a CPU affinity.

mod common;
use common::*;
use std::collections::HashMap;
use std::io::{BufReader, Write};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::thread;
use std::time::Duration;

const SECS: Duration = Duration::from_secs(30);
const TINY: &str = "/heavy/cpu-io-no-db/?prime_limit=10&hash_rounds=1&io_kb=1";

/// The samples of a Prometheus text page: `name{labels}` -> value.
fn scrape(port: u16) -> HashMap<String, f64> {
    let resp = get(port, "/metrics");
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("Content-Type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    parse_samples(&String::from_utf8(resp.body).unwrap())
}

fn parse_samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').unwrap();
            (name.to_string(), value.parse().unwrap())
        })
        .collect()
}

fn requests(samples: &HashMap<String, f64>, route: &str, status: u16) -> f64 {
    let key =
        format!("heavy_api_requests_total{{route=\"{route}\",method=\"GET\",status=\"{status}\"}}");
    samples.get(&key).copied().unwrap_or(0.0)
}

/// Every histogram: buckets never decrease, and `+Inf` equals `_count`.
fn assert_histograms_consistent(samples: &HashMap<String, f64>) {
    let mut series: HashMap<String, Vec<(f64, f64)>> = HashMap::new();
    for (key, value) in samples {
        let Some((name, labels)) = key.split_once("_bucket{") else {
            continue;
        };
        let (rest, le) = labels.rsplit_once("le=\"").unwrap();
        let le = le.trim_end_matches("\"}");
        let le = if le == "+Inf" {
            f64::INFINITY
        } else {
            le.parse().unwrap()
        };
        series
            .entry(format!("{name}{{{rest}"))
            .or_default()
            .push((le, *value));
    }
    assert!(series.len() >= 10, "{:?}", series.keys());
    for (name, mut buckets) in series {
        buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap());
        assert!(
            buckets.windows(2).all(|w| w[0].1 <= w[1].1),
            "{name}: {buckets:?}"
        );
        let (base, labels) = name.split_once('{').unwrap();
        let labels = labels.trim_end_matches(',');
        let count_key = if labels.is_empty() {
            format!("{base}_count")
        } else {
            format!("{base}_count{{{labels}}}")
        };
        assert_eq!(
            buckets.last().unwrap().1,
            samples[&count_key],
            "{name}: +Inf equals _count"
        );
    }
}

#[test]
fn counters_are_shared_by_all_workers_and_survive_a_kill_and_a_hup() {
    let server = Server::start(&["--workers", "4", "--threads", "2"]);
    server.wait_workers(4, SECS);
    let before = scrape(server.port);
    for _ in 0..40 {
        assert_eq!(get(server.port, "/heavy/health/").status, 200);
    }
    for _ in 0..12 {
        assert_eq!(get(server.port, TINY).status, 200);
    }
    assert_eq!(get(server.port, "/nope").status, 404);
    // Scrapes land on different workers; every one sees the same totals.
    for _ in 0..6 {
        let now = scrape(server.port);
        let health = "/heavy/health/";
        assert_eq!(
            requests(&now, health, 200) - requests(&before, health, 200),
            40.0
        );
        assert_eq!(
            requests(&now, "/heavy/cpu-io-no-db/", 200)
                - requests(&before, "/heavy/cpu-io-no-db/", 200),
            12.0
        );
        assert_eq!(
            requests(&now, "other", 404) - requests(&before, "other", 404),
            1.0
        );
        assert_eq!(now["heavy_api_workers"], 4.0);
        assert_histograms_consistent(&now);
    }
    let victim = server.worker_pids()[0];
    unsafe { libc::kill(victim, libc::SIGKILL) };
    wait_until("a replacement worker", SECS, || {
        let pids = server.worker_pids();
        pids.len() == 4 && !pids.contains(&victim)
    });
    server.signal(libc::SIGHUP);
    server.wait_for_log("Hang up: Master", SECS);
    wait_until("the reload to finish", SECS, || {
        server.worker_pids().len() == 4 && server.count_log("Booting worker") >= 9
    });
    for _ in 0..8 {
        assert_eq!(get(server.port, TINY).status, 200);
    }
    let after = scrape(server.port);
    assert_eq!(
        requests(&after, "/heavy/cpu-io-no-db/", 200)
            - requests(&before, "/heavy/cpu-io-no-db/", 200),
        20.0,
        "nothing was reset by the kill or the reload"
    );
    assert!(after["heavy_api_worker_exits_total{cause=\"signal\"}"] >= 1.0);
    assert!(after["heavy_api_workers_booted_total"] >= 9.0);
    let phases = "heavy_api_request_cpu_thread_seconds_count";
    assert!(after[phases] >= 20.0, "{}", after[phases]);
}

#[test]
fn the_exposition_parses_with_the_reference_parser() {
    let server = Server::start(&["--workers", "2"]);
    assert_eq!(get(server.port, TINY).status, 200);
    let text = String::from_utf8(get(server.port, "/metrics").body).unwrap();
    let mut s = connect(server.port);
    s.write_all(
        b"GET /metrics HTTP/1.1\r\nHost: t\r\nAccept: application/openmetrics-text;version=1.0.0\r\n\r\n",
    )
    .unwrap();
    let om = read_response(&mut BufReader::new(s), false).unwrap();
    assert!(om
        .header("Content-Type")
        .unwrap()
        .starts_with("application/openmetrics-text; version=1.0.0"));
    let om = String::from_utf8(om.body).unwrap();
    assert!(om.ends_with("# EOF\n"));
    let python = std::env::var("HEAVY_API_PYTHON").unwrap_or_else(|_| "python3".into());
    let has_parser = Command::new(&python)
        .args(["-c", "import prometheus_client"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_parser {
        assert!(
            std::env::var_os("HEAVY_API_REQUIRE_PROMETHEUS_CLIENT").is_none(),
            "{python} cannot import prometheus_client"
        );
        eprintln!("skipped: {python} has no prometheus_client (scripts/test.sh installs it)");
        return;
    }
    for (format, page) in [("prometheus", &text), ("openmetrics", &om)] {
        let parse = if format == "prometheus" {
            "from prometheus_client.parser import text_string_to_metric_families as p"
        } else {
            "from prometheus_client.openmetrics.parser import text_string_to_metric_families as p"
        };
        let script = format!(
            "import sys\n{parse}\nnames = [f.name for f in p(sys.stdin.read())]\n\
             print(len(names))\nprint(' '.join(sorted(names)))"
        );
        let mut child = Command::new(&python)
            .args(["-c", &script])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(page.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{format}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for family in [
            "heavy_api_requests",
            "heavy_api_request_duration_seconds",
            "heavy_api_request_cpu_wait_seconds",
            "heavy_api_queue_depth",
            "heavy_api_connections",
            "heavy_api_workers",
            "heavy_api_listen_backlog",
            "heavy_api_platform_info",
            "heavy_api_http_received_bytes",
            "heavy_api_http_sent_bytes",
            "heavy_api_network_receive_bytes",
            "heavy_api_network_transmit_bytes",
            "heavy_api_cgroup_cpu_usage_seconds",
            "heavy_api_cgroup_memory_usage_bytes",
        ] {
            assert!(
                stdout.split_whitespace().any(|n| n == family),
                "{format}: no {family} in {stdout}"
            );
        }
    }
}

/// The interfaces of /proc/net/dev but lo.
fn interface_names() -> Vec<String> {
    let dev = std::fs::read_to_string("/proc/net/dev").unwrap_or_default();
    dev.lines()
        .skip(2)
        .filter_map(|l| Some(l.split_once(':')?.0.trim().to_string()))
        .filter(|n| n != "lo")
        .collect()
}

/// Issue 24: bytes at the HTTP layer, the cgroup's CPU and memory, the namespace's interfaces.
#[test]
fn utilization_counts_http_bytes_and_reads_the_cgroup_and_interfaces() {
    let at_start = interface_names();
    let server = Server::start(&["--workers", "2"]);
    let before = scrape(server.port);
    // A known pair: a request with a 50 000-byte body (read and discarded) and its answer,
    // counted on the wire by this client. Connection: close, so the answer ends at EOF.
    let body = vec![b'x'; 50_000];
    let mut request = format!(
        "GET /heavy/health/ HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    let mut s = connect(server.port);
    s.write_all(&request).unwrap();
    let mut answer = Vec::new();
    std::io::Read::read_to_end(&mut s, &mut answer).unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
    let after = scrape(server.port);
    let delta = |name: &str| after[name] - before[name];
    let received = delta("heavy_api_http_received_bytes_total");
    let sent = delta("heavy_api_http_sent_bytes_total");
    // Besides the pair, only the scrapes moved bytes: the second's request (read before it
    // rendered) and the first's answer (written before this test went on).
    assert!(
        received >= request.len() as f64 && received < request.len() as f64 + 1024.0,
        "received {received}, the request was {} bytes",
        request.len()
    );
    assert!(
        sent >= answer.len() as f64 && sent < answer.len() as f64 + 64.0 * 1024.0,
        "sent {sent}, the answer was {} bytes",
        answer.len()
    );

    // The cgroup: present wherever the files are, and sane.
    let v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let v1_cpuacct = ["/sys/fs/cgroup/cpuacct", "/sys/fs/cgroup/cpu,cpuacct"]
        .iter()
        .any(|d| std::path::Path::new(d).join("cpuacct.usage").exists());
    let usage = after.get("heavy_api_cgroup_cpu_usage_seconds_total");
    if v2 || v1_cpuacct {
        let usage = *usage.expect("the cgroup's CPU usage, its files being there");
        let processes: f64 = after
            .iter()
            .filter(|(k, _)| k.starts_with("heavy_api_process_cpu_seconds_total{"))
            .map(|(_, v)| v)
            .sum();
        assert!(
            usage >= processes,
            "the cgroup holds the server: {usage} s >= its processes' {processes} s"
        );
        assert!(usage >= before["heavy_api_cgroup_cpu_usage_seconds_total"]);
    } else {
        eprintln!("skipped the CPU usage check: no cgroup v2 and no v1 cpuacct.usage here");
    }
    match after.get("heavy_api_cgroup_memory_usage_bytes") {
        Some(&memory) => {
            assert!(memory > 0.0);
            if let Some(&limit) = after.get("heavy_api_cgroup_memory_limit_bytes") {
                assert!(memory <= limit, "{memory} <= {limit}");
            }
        }
        None if v2 => panic!("cgroup v2 without memory.current?"),
        None => eprintln!("skipped the memory check: no v1 memory controller for this process"),
    }
    if let (Some(periods), Some(throttled)) = (
        after.get("heavy_api_cgroup_cpu_periods_total"),
        after.get("heavy_api_cgroup_cpu_throttled_periods_total"),
    ) {
        assert!(throttled <= periods, "{throttled} <= {periods}");
        assert!(after.contains_key("heavy_api_cgroup_cpu_throttled_seconds_total"));
    } else {
        eprintln!("skipped the CFS period check: the cgroup has no CPU controller's cpu.stat");
    }

    // The interfaces: those of /proc/net/dev (this test shares the server's namespace). Other
    // programs on the machine may add or remove interfaces meanwhile: those present both before
    // the server started and now must be shown, and nothing that was in neither.
    let now = interface_names();
    let stable: Vec<&String> = now.iter().filter(|n| at_start.contains(n)).collect();
    if stable.is_empty() {
        eprintln!("skipped the interface check: no interface but lo in /proc/net/dev");
    }
    let shown: Vec<&str> = after
        .keys()
        .filter_map(|k| {
            k.strip_prefix("heavy_api_network_receive_bytes_total{interface=\"")?
                .strip_suffix("\"}")
        })
        .collect();
    let info = get(server.port, "/heavy/info/").json();
    let listed: Vec<&str> = info["platform"]["network_interfaces"]
        .as_array()
        .expect("network_interfaces in /heavy/info/")
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for (what, names) in [("/metrics", &shown), ("/heavy/info/", &listed)] {
        for name in &stable {
            assert!(
                names.contains(&name.as_str()),
                "{what}: no {name} in {names:?}"
            );
        }
        for name in names.iter() {
            assert!(
                *name != "lo" && (now.iter().chain(&at_start).any(|n| n == name)),
                "{what}: {name} is not an interface here"
            );
        }
    }
    assert!(info["platform"].get("instance_type").is_some(), "{info}");
}

#[test]
fn metrics_bind_keeps_metrics_off_the_main_port() {
    let server = Server::start(&["--workers", "2", "--metrics-bind", "127.0.0.1:0"]);
    let line = server.wait_for_log("Metrics at: http://127.0.0.1:", SECS);
    let metrics_port: u16 = line
        .rsplit_once(':')
        .and_then(|(_, rest)| rest.strip_suffix("/metrics"))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    assert_eq!(get(server.port, "/metrics").status, 404);
    assert_eq!(get(server.port, "/heavy/health/").status, 200);
    assert_eq!(get(metrics_port, "/metrics").status, 200);
    assert_eq!(get(metrics_port, "/heavy/health/").status, 404);
    let samples = scrape(metrics_port);
    let backlog = samples
        .keys()
        .find(|k| k.starts_with("heavy_api_listen_backlog_max{"))
        .expect("the accept queue's size");
    assert!(samples[backlog] > 0.0);
}

#[test]
fn the_fingerprint_reads_ecs_metadata_when_there_is_an_endpoint() {
    // Recorded task and container metadata (v4).
    let (uri, ecs) = ecs_endpoint(
        include_str!("data/ecs-task-v4.json").into(),
        include_str!("data/ecs-container-v4.json").into(),
    );
    let server = Server::start_with(
        &["--workers", "1"],
        &[("ECS_CONTAINER_METADATA_URI_V4", uri.as_str())],
    );
    ecs.join().unwrap();
    let info = get(server.port, "/heavy/info/").json();
    let task = &info["platform"]["ecs"];
    assert_eq!(task["launch_type"], "FARGATE", "{info}");
    assert_eq!(task["availability_zone"], "us-east-1b");
    assert_eq!(task["task_cpu"], 2.0);
    assert_eq!(task["task_memory_mib"], 4096.0);
    assert_eq!(task["platform_version"], "1.4.0");
    assert!(task["image_digest"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));
    assert!(server
        .wait_for_log("Platform: ", SECS)
        .contains("ECS FARGATE us-east-1b"));
    let samples = scrape(server.port);
    let info_metric = samples
        .keys()
        .find(|k| k.starts_with("heavy_api_platform_info{"))
        .unwrap();
    assert!(
        info_metric.contains("launch_type=\"FARGATE\""),
        "{info_metric}"
    );

    // Off ECS: no metadata, and no error.
    let plain = Server::start(&["--workers", "1"]);
    let info = get(plain.port, "/heavy/info/").json();
    assert!(info["platform"]["ecs"].is_null(), "{info}");
    assert!(info["platform"]["logical_cpus"].as_u64().unwrap() >= 1);
    assert!(!info["platform"]["cpu_model"].as_str().unwrap().is_empty());
    assert_eq!(plain.count_log("ECS task metadata unavailable"), 0);
}

#[test]
fn heavy_answers_report_thread_cpu_wait_and_fsync() {
    let server = Server::start(&["--workers", "1"]);
    let resp = get(server.port, TINY);
    let timing = resp.header("Server-Timing").unwrap();
    for phase in [
        "queue",
        "cpu",
        "cpu_thread",
        "cpu_wait",
        "io",
        "fsync",
        "total",
    ] {
        assert!(
            timing.contains(&format!("{phase};dur=")),
            "{phase} in {timing}"
        );
    }
    let no_sync = get(server.port, &format!("{TINY}&io_sync=none"));
    assert!(no_sync
        .header("Server-Timing")
        .unwrap()
        .contains("fsync;dur=0.000"));
    let bad = get(server.port, &format!("{TINY}&io_sync=sometimes"));
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["param"], "io_sync");
}

/// Milliseconds of one `Server-Timing` phase.
fn phase(resp: &Resp, name: &str) -> f64 {
    let timing = resp.header("Server-Timing").unwrap();
    timing
        .split(", ")
        .find_map(|p| p.strip_prefix(&format!("{name};dur=")))
        .unwrap_or_else(|| panic!("no {name} in {timing}"))
        .parse()
        .unwrap()
}

#[test]
fn cpu_wait_grows_when_more_threads_than_cores_run() {
    let cal = calibration();
    let server = Server::start(&[
        "--workers",
        "1",
        "--threads",
        "8",
        "--max-hash-rounds",
        NO_ROUNDS_CAP,
    ]);
    // Eight requests of 300 ms each at once, on at most two cores: each thread runs at most a
    // quarter of the time, so it waits for a core at least as long as it computes.
    let path = cal.request(Duration::from_millis(300));
    let pending: Vec<_> = (0..8).map(|_| start_request(server.port, &path)).collect();
    let answers: Vec<Resp> = pending
        .into_iter()
        .map(|h| h.join().unwrap().unwrap())
        .collect();
    let wait: f64 = answers.iter().map(|r| phase(r, "cpu_wait")).sum();
    let thread: f64 = answers.iter().map(|r| phase(r, "cpu_thread")).sum();
    assert!(
        wait >= thread,
        "8 threads on 2 cores: wait {wait:.1} ms against thread CPU {thread:.1} ms"
    );
}

/// A child cgroup with a CPU quota, where the test may create one (cgroup v2 `cpu.max`, or v1
/// `cpu.cfs_quota_us`); removed when dropped.
struct QuotaCgroup {
    dir: std::path::PathBuf,
    procs: std::path::PathBuf,
}

impl QuotaCgroup {
    fn create(quota_us: u64, period_us: u64) -> Result<QuotaCgroup, String> {
        let name = format!("heavy-api-test-{}", std::process::id());
        let v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers");
        let (dir, procs) = if v2.exists()
            && std::fs::read_to_string(v2)
                .unwrap_or_default()
                .contains("cpu")
        {
            let dir = std::path::Path::new("/sys/fs/cgroup").join(&name);
            std::fs::create_dir(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
            std::fs::write(dir.join("cpu.max"), format!("{quota_us} {period_us}"))
                .map_err(|e| format!("cpu.max: {e}"))?;
            (dir.clone(), dir.join("cgroup.procs"))
        } else {
            let dir = std::path::Path::new("/sys/fs/cgroup/cpu").join(&name);
            std::fs::create_dir(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
            let set = |f: &str, v: u64| {
                std::fs::write(dir.join(f), v.to_string()).map_err(|e| format!("{f}: {e}"))
            };
            set("cpu.cfs_period_us", period_us)?;
            set("cpu.cfs_quota_us", quota_us)?;
            (dir.clone(), dir.join("cgroup.procs"))
        };
        Ok(QuotaCgroup { dir, procs })
    }
}

impl Drop for QuotaCgroup {
    fn drop(&mut self) {
        // Empty once the server (and its workers) are gone.
        for _ in 0..100 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn a_real_cpu_quota_shows_as_throttling_and_sizes_workers_auto() {
    let cgroup = match QuotaCgroup::create(20_000, 100_000) {
        Ok(c) => c,
        Err(why) => {
            eprintln!("skipped: cannot create a cgroup with a CPU quota here ({why})");
            return;
        }
    };
    let procs = cgroup.procs.clone();
    let dir = temp_dir("quota");
    let mut cmd = Command::new(BIN);
    cmd.args([
        "--bind",
        "127.0.0.1:0",
        "--workers",
        "auto",
        "--threads",
        "2",
    ])
    .arg("--io-file")
    .arg(dir.path().join("data.bin"));
    unsafe {
        cmd.pre_exec(move || {
            std::fs::write(&procs, std::process::id().to_string())?;
            Ok(())
        });
    }
    let server = Server::spawn(cmd, &[], dir);
    let line = server.wait_for_log("Using 2 workers: ", SECS);
    assert!(line.contains("cgroup quota 0.2 CPUs x 2"), "{line}");
    // Two requests at once on 0.2 CPU: the task exceeds its quota in every period.
    let path = "/heavy/cpu-io-no-db/?prime_limit=300000&hash_rounds=0&io_kb=0";
    let a = start_request(server.port, path);
    let b = start_request(server.port, path);
    let throttled: f64 = [a, b]
        .into_iter()
        .map(|h| phase(&h.join().unwrap().unwrap(), "throttled"))
        .sum();
    assert!(
        throttled > 0.0,
        "throttled {throttled} ms under a 0.2 CPU quota"
    );
    let info = get(server.port, "/heavy/info/").json();
    assert_eq!(info["platform"]["cpu_quota"], 0.2);
    drop(server);
    drop(cgroup);
}

#[test]
fn workers_auto_follows_the_cpu_affinity() {
    for (cpus, workers) in [(1usize, 2usize), (2, 4)] {
        let online = std::thread::available_parallelism().map_or(1, |n| n.get());
        if cpus > online {
            eprintln!("skipped: {cpus} CPUs asked, {online} online");
            continue;
        }
        let dir = temp_dir("affinity");
        let mut cmd = Command::new(BIN);
        cmd.args(["--bind", "127.0.0.1:0", "--workers", "auto"])
            .arg("--io-file")
            .arg(dir.path().join("data.bin"));
        unsafe {
            cmd.pre_exec(move || {
                let mut set = nix::sched::CpuSet::new();
                for cpu in 0..cpus {
                    set.set(cpu).map_err(std::io::Error::from)?;
                }
                nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
                    .map_err(std::io::Error::from)
            });
        }
        let server = Server::spawn(cmd, &[], dir);
        let line = server.wait_for_log(&format!("Using {workers} workers: "), SECS);
        if !line.contains("cgroup quota") {
            assert!(
                line.ends_with(&format!("affinity {cpus} CPUs x 2")),
                "{line}"
            );
        }
        server.wait_workers(workers, SECS);
    }
}

#[test]
fn readiness_turns_503_during_a_drain_while_everything_is_served() {
    let mut server = Server::start(&["--workers", "2", "--drain-delay", "3"]);
    assert_eq!(get(server.port, "/heavy/ready/").json()["status"], "ready");
    server.signal(libc::SIGTERM);
    server.wait_for_log("Draining for 3 s before stopping", SECS);
    let ready = get(server.port, "/heavy/ready/");
    assert_eq!(ready.status, 503);
    assert_eq!(ready.json()["status"], "draining");
    assert_eq!(get(server.port, "/heavy/health/").status, 200);
    assert_eq!(get(server.port, TINY).status, 200);
    assert_eq!(server.wait_exit(SECS), Some(0), "{}", server.log_text());
    let log = server.log_text();
    let drain = log.find("Draining for").unwrap();
    let stop = log.find("Shutting down: Master").unwrap();
    assert!(drain < stop);
}

#[test]
fn the_healthcheck_probes_port() {
    let server = Server::start(&["--workers", "1"]);
    let probe = |port: u16| {
        Command::new(BIN)
            .arg("healthcheck")
            .env("PORT", port.to_string())
            .output()
            .unwrap()
    };
    let ok = probe(server.port);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    drop(server);
    let gone = probe(ok_port_closed());
    assert_eq!(gone.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&gone.stderr).contains("unhealthy"));
}

/// A loopback port nothing listens on (its listener is closed again at once).
fn ok_port_closed() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn gauges(port: u16) -> [f64; 4] {
    let m = scrape(port);
    let g = |k: &str| m.get(k).copied().unwrap_or(f64::NAN);
    [
        g("heavy_api_requests_in_flight"),
        g("heavy_api_queue_depth"),
        g("heavy_api_connections{state=\"active\"}"),
        g("heavy_api_connections{state=\"idle\"}"),
    ]
}

/// Issue 22, defect 6: the connection gauges are right at the next scrape (they lagged about a
/// second), and an idle server reads zero everywhere (the scrape no longer counts itself).
#[test]
fn gauges_are_exact_at_the_next_scrape_and_zero_when_idle() {
    let server = Server::start(&["--workers", "1", "--keep-alive", "30"]);
    server.wait_healthy(SECS);
    assert_eq!(gauges(server.port), [0.0; 4], "an idle server");
    // Three keep-alive connections, each after one answered request: idle, at once.
    let mut kept = Vec::new();
    for _ in 0..3 {
        let mut s = connect(server.port);
        s.write_all(b"GET /heavy/health/ HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        let mut reader = BufReader::new(s);
        assert_eq!(read_response(&mut reader, false).unwrap().status, 200);
        kept.push(reader);
    }
    // One more that has sent half a head: active.
    let mut half = connect(server.port);
    half.write_all(b"GET /heavy/health/ HTTP/1.1\r\n").unwrap();
    wait_until("the half head to be read", SECS, || {
        gauges(server.port)[2] == 1.0
    });
    assert_eq!(gauges(server.port), [0.0, 0.0, 1.0, 3.0]);
    drop(kept);
    drop(half);
    wait_until("every gauge back to zero", SECS, || {
        gauges(server.port) == [0.0; 4]
    });
}

/// Issue 22, defect 6: after a worker is killed with SIGKILL under load, every gauge returns
/// to zero once the load is over (`in_flight` used to stay at 1).
#[test]
fn gauges_return_to_zero_after_a_worker_is_killed_under_load() {
    let server = Server::start(&["--workers", "2", "--threads", "2"]);
    server.wait_workers(2, SECS);
    let port = server.port;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..6)
        .map(|_| {
            let stop = stop.clone();
            thread::spawn(move || {
                // Keep-alive clients; a connection lost with the killed worker is reopened.
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
                        continue;
                    };
                    s.set_read_timeout(Some(SECS)).unwrap();
                    let mut reader = BufReader::new(s.try_clone().unwrap());
                    for _ in 0..20 {
                        let sent = s.write_all(
                            format!("GET {TINY} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes(),
                        );
                        if sent.is_err() || read_response(&mut reader, false).is_err() {
                            break;
                        }
                    }
                }
            })
        })
        .collect();
    // Under load: requests are in flight; the gauges are never read below zero.
    wait_until("requests to be answered under load", SECS, || {
        scrape(port)
            .get("heavy_api_requests_total{route=\"/heavy/cpu-io-no-db/\",method=\"GET\",status=\"200\"}")
            .is_some_and(|&n| n >= 50.0)
    });
    let victim = server.worker_pids()[0];
    unsafe { libc::kill(victim, libc::SIGKILL) };
    wait_until("the killed worker to be replaced", SECS, || {
        let pids = server.worker_pids();
        pids.len() == 2 && !pids.contains(&victim)
    });
    for _ in 0..20 {
        let g = gauges(port);
        assert!(g.iter().all(|v| *v >= 0.0), "a gauge below zero: {g:?}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    wait_until("every gauge back to zero after the load", SECS, || {
        gauges(port) == [0.0; 4]
    });
}
