//! The metrics as text: Prometheus' exposition format (0.0.4), or OpenMetrics 1.0 when the
//! scraper asks for it in `Accept`. The shared counters come from [`Metrics`]; what only the
//! answering worker can see at scrape time (listen backlogs, process CPU and memory, the
//! platform) comes in a [`Scrape`].

use super::{ExitCause, Histogram, Metrics, Route, Traffic, BUCKETS, METHODS, STATUSES};
use std::fmt::Write;
use std::sync::atomic::Ordering;

pub const PROMETHEUS_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
pub const OPENMETRICS_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Whether an `Accept` header asks for OpenMetrics.
pub fn wants_openmetrics(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| a.contains("application/openmetrics-text"))
}

/// What the answering worker reads at scrape time.
#[derive(Debug, Default)]
pub struct Scrape {
    /// Per listener: its address, connections waiting to be accepted, and the backlog's size.
    pub backlogs: Vec<(String, u64, u64)>,
    /// Per process (the master and each live worker): pid, role, CPU seconds, resident bytes.
    pub processes: Vec<(i32, &'static str, f64, u64)>,
    pub version: &'static str,
    pub platform: Vec<(&'static str, String)>,
    /// The cgroup's CPU, throttling and memory now (each absent where its file is).
    pub cgroup: crate::platform::cgroup::Usage,
    /// The network namespace's interfaces (`/proc/net/dev`, loopback left out).
    pub interfaces: Vec<crate::platform::net::Interface>,
    /// The scrape is itself a request in flight: left out of the gauge, so an idle server reads
    /// zero (the answering worker leaves its connection out of its connection gauges).
    pub own_request: bool,
    /// The kernel says the shared queue holds nothing: the depth is 0 whatever the counter says
    /// (a worker killed between counting a job and sending it, or receiving it and counting it,
    /// cannot leave the gauge above zero on an idle server).
    pub queue_empty: bool,
}

struct Out {
    text: String,
    openmetrics: bool,
}

impl Out {
    /// `# HELP` and `# TYPE` for a family; counters are named without `_total` in OpenMetrics.
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let name = if self.openmetrics && kind == "counter" {
            name.trim_end_matches("_total")
        } else {
            name
        };
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{k}=\"{}\"", escape(v));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
    }

    fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &Histogram) {
        let mut cumulative = 0;
        for (bound, bucket) in BUCKETS.iter().zip(&h.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let le = format!("{bound:?}");
            let mut with_le = labels.to_vec();
            with_le.push(("le", &le));
            self.sample(&format!("{name}_bucket"), &with_le, cumulative);
        }
        // Read the count last and never show fewer than the buckets hold: observers add to a
        // bucket before the count, so a scrape in between must still be consistent.
        cumulative += h.over.load(Ordering::Relaxed);
        let count = h.count.load(Ordering::Relaxed).max(cumulative);
        let mut inf = labels.to_vec();
        inf.push(("le", "+Inf"));
        self.sample(&format!("{name}_bucket"), &inf, count);
        let sum = h.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        self.sample(&format!("{name}_sum"), labels, sum);
        self.sample(&format!("{name}_count"), labels, count);
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Renders every metric family.
pub fn render(m: &Metrics, scrape: &Scrape, openmetrics: bool) -> String {
    let mut o = Out {
        text: String::with_capacity(32 * 1024),
        openmetrics,
    };
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let traffic = m.totals();

    o.family(
        "heavy_api_requests_total",
        "counter",
        "Requests answered, by route, method and status (status 0: any other).",
    );
    for route in Route::ALL {
        for (mi, method) in METHODS.iter().enumerate() {
            for (si, status) in STATUSES.iter().enumerate() {
                let n = load(&traffic.requests[route as usize][mi][si]);
                if n > 0 {
                    let status = status.to_string();
                    o.sample(
                        "heavy_api_requests_total",
                        &[
                            ("route", route.label()),
                            ("method", method),
                            ("status", &status),
                        ],
                        n,
                    );
                }
            }
        }
    }

    o.family(
        "heavy_api_request_duration_seconds",
        "histogram",
        "Time from a request's first byte to its answer being queued for writing, by route.",
    );
    for route in Route::ALL {
        o.histogram(
            "heavy_api_request_duration_seconds",
            &[("route", route.label())],
            &traffic.duration[route as usize],
        );
    }

    let p = &traffic.phases;
    for (name, help, h) in [
        (
            "queue",
            "Time heavy requests waited to start: for a handler thread, or the event loop.",
            &p.queue,
        ),
        (
            "cpu",
            "Wall-clock time of heavy requests' CPU phase (primes and hashing).",
            &p.cpu,
        ),
        (
            "cpu_thread",
            "CPU time the handler thread got during the CPU phase.",
            &p.cpu_thread,
        ),
        (
            "cpu_wait",
            "CPU phase wall time minus thread CPU: waiting for a core.",
            &p.cpu_wait,
        ),
        (
            "io",
            "Time of heavy requests' file append and read-back.",
            &p.io,
        ),
        ("fsync", "Time of the fsync in the I/O phase.", &p.fsync),
        (
            "throttled",
            "The cgroup's CFS throttled time while the request ran.",
            &p.throttled,
        ),
        (
            "steal",
            "The host's steal time (all CPUs) while the request ran.",
            &p.steal,
        ),
    ] {
        let family = format!("heavy_api_request_{name}_seconds");
        o.family(&family, "histogram", help);
        o.histogram(&family, &[], h);
    }

    let sum = |f: fn(&super::WorkerGauges) -> i64| -> i64 { m.live_workers().map(f).sum() };
    let own = i64::from(scrape.own_request);
    o.family(
        "heavy_api_requests_in_flight",
        "gauge",
        "Requests read and not yet answered (the scrape itself left out).",
    );
    o.sample(
        "heavy_api_requests_in_flight",
        &[],
        (sum(|w| w.in_flight.load(Ordering::Relaxed)) - own).max(0),
    );
    o.family(
        "heavy_api_queue_depth",
        "gauge",
        "Heavy requests waiting on the shared queue for a handler thread.",
    );
    o.sample(
        "heavy_api_queue_depth",
        &[],
        if scrape.queue_empty {
            0
        } else {
            m.queue_depth.load(Ordering::Relaxed).max(0)
        },
    );
    o.family(
        "heavy_api_queue_full_total",
        "counter",
        "Heavy requests answered 503 because the shared queue was full.",
    );
    o.sample("heavy_api_queue_full_total", &[], load(&m.queue_full));
    o.family(
        "heavy_api_queue_frames_rejected_total",
        "counter",
        "Shared-queue datagrams that did not decode as a frame; each client was answered 500.",
    );
    o.sample(
        "heavy_api_queue_frames_rejected_total",
        &[],
        load(&m.queue_frames_rejected),
    );
    o.family(
        "heavy_api_connections",
        "gauge",
        "Open client connections: active (a request in hand) or idle (kept alive); the \
         scrape's own left out.",
    );
    o.sample(
        "heavy_api_connections",
        &[("state", "active")],
        sum(|w| w.connections_active.load(Ordering::Relaxed)).max(0),
    );
    o.sample(
        "heavy_api_connections",
        &[("state", "idle")],
        sum(|w| w.connections_idle.load(Ordering::Relaxed)).max(0),
    );
    o.family(
        "heavy_api_connections_refused_total",
        "counter",
        "Times a worker at its connection limit left connections in the listen backlog.",
    );
    o.sample(
        "heavy_api_connections_refused_total",
        &[],
        load(&m.connections_refused),
    );
    o.family(
        "heavy_api_connections_evicted_total",
        "counter",
        "Connections closed at the connection limit to make room: the least productive \
         (silent longest, no complete request in hand) first.",
    );
    o.sample(
        "heavy_api_connections_evicted_total",
        &[],
        load(&m.connections_evicted),
    );
    o.family(
        "heavy_api_log_lines_dropped_total",
        "counter",
        "Log lines dropped because the log's destination did not keep up (a full pipe).",
    );
    for (i, log) in ["error", "access"].into_iter().enumerate() {
        o.sample(
            "heavy_api_log_lines_dropped_total",
            &[("log", log)],
            load(&m.log_lines_dropped[i]),
        );
    }

    o.family("heavy_api_workers", "gauge", "Worker processes alive.");
    o.sample("heavy_api_workers", &[], m.live_workers().count());
    o.family(
        "heavy_api_workers_booted_total",
        "counter",
        "Workers that finished booting.",
    );
    o.sample(
        "heavy_api_workers_booted_total",
        &[],
        load(&m.workers_booted),
    );
    o.family(
        "heavy_api_worker_exits_total",
        "counter",
        "Workers that exited, by cause (timeout: killed for a stale heartbeat).",
    );
    for cause in ExitCause::ALL {
        o.sample(
            "heavy_api_worker_exits_total",
            &[("cause", cause.label())],
            load(&m.worker_exits[cause as usize]),
        );
    }
    o.family(
        "heavy_api_timeouts_total",
        "counter",
        "Timeouts: heavy requests answered 503 at --timeout, and workers killed for a stale \
         heartbeat.",
    );
    o.sample(
        "heavy_api_timeouts_total",
        &[("kind", "request")],
        load(&m.request_timeouts),
    );
    o.sample(
        "heavy_api_timeouts_total",
        &[("kind", "heartbeat")],
        load(&m.worker_exits[ExitCause::Timeout as usize]),
    );

    o.family(
        "heavy_api_listen_backlog",
        "gauge",
        "Connections waiting in a listener's accept queue (TCP listeners).",
    );
    for (listener, waiting, _) in &scrape.backlogs {
        o.sample(
            "heavy_api_listen_backlog",
            &[("listener", listener)],
            waiting,
        );
    }
    o.family(
        "heavy_api_listen_backlog_max",
        "gauge",
        "Size of a listener's accept queue.",
    );
    for (listener, _, max) in &scrape.backlogs {
        o.sample(
            "heavy_api_listen_backlog_max",
            &[("listener", listener)],
            max,
        );
    }

    o.family(
        "heavy_api_process_cpu_seconds_total",
        "counter",
        "CPU time (user and system) of the master and each live worker.",
    );
    for (pid, role, cpu, _) in &scrape.processes {
        let pid = pid.to_string();
        o.sample(
            "heavy_api_process_cpu_seconds_total",
            &[("pid", &pid), ("role", role)],
            cpu,
        );
    }
    o.family(
        "heavy_api_process_resident_memory_bytes",
        "gauge",
        "Resident memory of the master and each live worker.",
    );
    for (pid, role, _, rss) in &scrape.processes {
        let pid = pid.to_string();
        o.sample(
            "heavy_api_process_resident_memory_bytes",
            &[("pid", &pid), ("role", role)],
            rss,
        );
    }
    render_utilization(&mut o, &traffic, scrape);
    o.family(
        "heavy_api_draining",
        "gauge",
        "1 once the server has begun to stop or drain (readiness answers 503).",
    );
    o.sample(
        "heavy_api_draining",
        &[],
        u8::from(m.draining.load(Ordering::Relaxed)),
    );
    o.family("heavy_api_build_info", "gauge", "The running build.");
    o.sample(
        "heavy_api_build_info",
        &[
            ("version", scrape.version),
            ("arch", std::env::consts::ARCH),
        ],
        1,
    );
    o.family(
        "heavy_api_platform_info",
        "gauge",
        "The platform under the server (see /heavy/info/).",
    );
    let labels: Vec<(&str, &str)> = scrape
        .platform
        .iter()
        .map(|(k, v)| (*k, v.as_str()))
        .collect();
    o.sample("heavy_api_platform_info", &labels, 1);
    if openmetrics {
        o.text.push_str("# EOF\n");
    }
    o.text
}

/// What utilization needs: bytes at the HTTP layer, the namespace's interfaces, the cgroup.
fn render_utilization(o: &mut Out, traffic: &Traffic, scrape: &Scrape) {
    o.family(
        "heavy_api_http_received_bytes_total",
        "counter",
        "Bytes read from client sockets (all workers; /metrics scrapes included).",
    );
    o.sample(
        "heavy_api_http_received_bytes_total",
        &[],
        traffic.http_received_bytes.load(Ordering::Relaxed),
    );
    o.family(
        "heavy_api_http_sent_bytes_total",
        "counter",
        "Bytes written to client sockets (all workers; /metrics scrapes included).",
    );
    o.sample(
        "heavy_api_http_sent_bytes_total",
        &[],
        traffic.http_sent_bytes.load(Ordering::Relaxed),
    );

    type Field = fn(&crate::platform::net::Interface) -> u64;
    let interface_families: [(&str, &str, Field); 4] = [
        (
            "heavy_api_network_receive_bytes_total",
            "Bytes received by a network interface of the server's namespace (/proc/net/dev).",
            |i| i.receive_bytes,
        ),
        (
            "heavy_api_network_transmit_bytes_total",
            "Bytes sent by a network interface of the server's namespace (/proc/net/dev).",
            |i| i.transmit_bytes,
        ),
        (
            "heavy_api_network_receive_packets_total",
            "Packets received by a network interface of the server's namespace.",
            |i| i.receive_packets,
        ),
        (
            "heavy_api_network_transmit_packets_total",
            "Packets sent by a network interface of the server's namespace.",
            |i| i.transmit_packets,
        ),
    ];
    for (name, help, field) in interface_families {
        o.family(name, "counter", help);
        for i in &scrape.interfaces {
            o.sample(name, &[("interface", &i.name)], field(i));
        }
    }

    let cg = &scrape.cgroup;
    let secs = |d: Option<std::time::Duration>| d.map(|d| d.as_secs_f64());
    let counters: [(&str, &str, Option<f64>); 4] = [
        (
            "heavy_api_cgroup_cpu_usage_seconds_total",
            "CPU time used by every process of the server's cgroup (cpu.stat usage_usec; v1 \
             cpuacct.usage).",
            secs(cg.cpu_usage),
        ),
        (
            "heavy_api_cgroup_cpu_periods_total",
            "CFS enforcement periods elapsed while the cgroup had runnable tasks (nr_periods).",
            cg.periods.map(|n| n as f64),
        ),
        (
            "heavy_api_cgroup_cpu_throttled_periods_total",
            "CFS periods in which the cgroup used up its CPU quota and was throttled \
             (nr_throttled).",
            cg.throttled_periods.map(|n| n as f64),
        ),
        (
            "heavy_api_cgroup_cpu_throttled_seconds_total",
            "Time the cgroup's tasks were throttled for exceeding the CPU quota.",
            secs(cg.throttled_time),
        ),
    ];
    for (name, help, value) in counters {
        o.family(name, "counter", help);
        if let Some(v) = value {
            o.sample(name, &[], v);
        }
    }
    let gauges: [(&str, &str, Option<f64>); 3] = [
        (
            "heavy_api_cgroup_cpu_limit_cpus",
            "The cgroup's CPU quota in CPUs (absent: no quota).",
            cg.cpu_quota,
        ),
        (
            "heavy_api_cgroup_memory_usage_bytes",
            "Memory charged to the server's cgroup, page cache included (memory.current; v1 \
             memory.usage_in_bytes).",
            cg.memory_usage.map(|b| b as f64),
        ),
        (
            "heavy_api_cgroup_memory_limit_bytes",
            "The cgroup's memory limit (memory.max; absent: no limit).",
            cg.memory_limit.map(|b| b as f64),
        ),
    ];
    for (name, help, value) in gauges {
        o.family(name, "gauge", help);
        if let Some(v) = value {
            o.sample(name, &[], v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::SharedMap;
    use std::time::Duration;

    fn sample_metrics() -> SharedMap<Metrics> {
        let m: SharedMap<Metrics> = SharedMap::new().unwrap();
        m.traffic().requests[Route::Health as usize][0][0].fetch_add(3, Ordering::Relaxed);
        m.traffic().duration[Route::Health as usize].observe(Duration::from_millis(2));
        m.traffic().phases.queue.observe(Duration::from_secs(200));
        m
    }

    #[test]
    fn prometheus_text_has_help_type_and_consistent_histograms() {
        let m = sample_metrics();
        let scrape = Scrape {
            platform: vec![("cpu_model", "AMD \"EPYC\"".into())],
            version: "0.1.0",
            ..Scrape::default()
        };
        let text = render(&m, &scrape, false);
        assert!(text.contains("# TYPE heavy_api_requests_total counter\n"));
        assert!(text.contains(
            "heavy_api_requests_total{route=\"/heavy/health/\",method=\"GET\",status=\"200\"} 3\n"
        ));
        assert!(text.contains(
            "heavy_api_request_duration_seconds_bucket{route=\"/heavy/health/\",le=\"0.0025\"} 1\n"
        ));
        assert!(text.contains("heavy_api_request_queue_seconds_bucket{le=\"120.0\"} 0\n"));
        assert!(text.contains("heavy_api_request_queue_seconds_bucket{le=\"+Inf\"} 1\n"));
        assert!(text.contains("heavy_api_request_queue_seconds_count 1\n"));
        assert!(text.contains("cpu_model=\"AMD \\\"EPYC\\\"\""));
        assert!(!text.contains("# EOF"));
    }

    #[test]
    fn utilization_families_show_what_was_read_and_leave_out_what_was_not() {
        let m = sample_metrics();
        m.traffic()
            .http_received_bytes
            .store(1234, Ordering::Relaxed);
        m.traffic().http_sent_bytes.store(5678, Ordering::Relaxed);
        let scrape = Scrape {
            cgroup: crate::platform::cgroup::Usage {
                cpu_usage: Some(Duration::from_micros(2_500_000)),
                periods: Some(40),
                throttled_periods: Some(3),
                throttled_time: Some(Duration::from_millis(250)),
                memory_usage: Some(64 << 20),
                memory_limit: None,
                cpu_quota: Some(1.5),
            },
            interfaces: vec![crate::platform::net::Interface {
                name: "eth1".into(),
                receive_bytes: 10,
                receive_packets: 1,
                transmit_bytes: 20,
                transmit_packets: 2,
            }],
            ..Scrape::default()
        };
        let text = render(&m, &scrape, false);
        for line in [
            "heavy_api_http_received_bytes_total 1234\n",
            "heavy_api_http_sent_bytes_total 5678\n",
            "heavy_api_network_receive_bytes_total{interface=\"eth1\"} 10\n",
            "heavy_api_network_transmit_packets_total{interface=\"eth1\"} 2\n",
            "heavy_api_cgroup_cpu_usage_seconds_total 2.5\n",
            "heavy_api_cgroup_cpu_periods_total 40\n",
            "heavy_api_cgroup_cpu_throttled_periods_total 3\n",
            "heavy_api_cgroup_cpu_throttled_seconds_total 0.25\n",
            "heavy_api_cgroup_memory_usage_bytes 67108864\n",
            "heavy_api_cgroup_cpu_limit_cpus 1.5\n",
            "# TYPE heavy_api_cgroup_memory_limit_bytes gauge\n",
        ] {
            assert!(text.contains(line), "no {line:?} in\n{text}");
        }
        assert!(
            !text.contains("\nheavy_api_cgroup_memory_limit_bytes "),
            "no limit: no sample"
        );
        let om = render(&m, &scrape, true);
        assert!(om.contains("# TYPE heavy_api_http_sent_bytes counter\n"));
        assert!(om.contains("heavy_api_http_sent_bytes_total 5678\n"));
    }

    #[test]
    fn openmetrics_names_counters_without_total_and_ends_with_eof() {
        let text = render(&sample_metrics(), &Scrape::default(), true);
        assert!(text.contains("# TYPE heavy_api_requests counter\n"));
        assert!(text.contains("heavy_api_requests_total{"));
        assert!(text.ends_with("# EOF\n"));
        assert!(wants_openmetrics(Some(
            "application/openmetrics-text;version=1.0.0,text/plain;q=0.5"
        )));
        assert!(!wants_openmetrics(Some("text/plain")));
    }
}
