"""How busy the target was: CPU, memory and network over a run, from the server's /metrics sampled
during it (heavylab.run.scraper) and its limits from /heavy/info/.

- CPU used, in CPUs: the cgroup's CPU usage when the server exports it (it counts every process
  of the task, recycled workers included), else the sum of the server's processes' CPU;
  as a share of the usable CPUs (affinity) and of the cgroup quota when there is one;
- memory: the cgroup's usage when exported, else the processes' resident memory, against the
  cgroup's (or /heavy/info/'s) memory limit;
- network: bytes received and sent at the HTTP layer and, when exported, on the network
  namespace's interfaces; in all and per second;
- requests per CPU-second: heavy requests answered per second of CPU the server used — the
  efficiency number that decides cost.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from heavylab.results.metrics import METRICS_FILE, read

# The families read (heavy-api's names, docs/METRICS.md).
PROCESS_CPU = "heavy_api_process_cpu_seconds_total"
PROCESS_RSS = "heavy_api_process_resident_memory_bytes"
CGROUP_CPU = "heavy_api_cgroup_cpu_usage_seconds_total"
CGROUP_MEM = "heavy_api_cgroup_memory_usage_bytes"
CGROUP_MEM_LIMIT = "heavy_api_cgroup_memory_limit_bytes"
CGROUP_CPU_LIMIT = "heavy_api_cgroup_cpu_limit_cpus"
HTTP_IN = "heavy_api_http_received_bytes_total"
HTTP_OUT = "heavy_api_http_sent_bytes_total"
NET_IN = "heavy_api_network_receive_bytes_total"
NET_OUT = "heavy_api_network_transmit_bytes_total"
REQUESTS = "heavy_api_requests_total"
HEAVY_ROUTE = 'route="/heavy/cpu-io-no-db/"'


@dataclass
class Utilization:
    usable_cpus: float | None
    quota_cpus: float | None
    memory_limit_bytes: float | None
    cpu_source: str
    # Over time: (seconds since the first scrape, value) per quantity.
    series: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    totals: dict[str, float | None] = field(default_factory=dict)

    def summary(self) -> dict[str, float | None]:
        """Averages and peaks for the report's rows."""

        def avg(k):
            v = [y for _, y in self.series.get(k, [])]
            return sum(v) / len(v) if v else None

        def peak(k):
            v = [y for _, y in self.series.get(k, [])]
            return max(v) if v else None

        return {
            "cpu_used_cpus_avg": avg("cpu_used_cpus"),
            "cpu_used_cpus_max": peak("cpu_used_cpus"),
            "cpu_share_of_usable_avg": avg("cpu_share_of_usable"),
            "cpu_share_of_usable_max": peak("cpu_share_of_usable"),
            "cpu_share_of_quota_avg": avg("cpu_share_of_quota"),
            "memory_bytes_max": peak("memory_bytes"),
            "memory_share_of_limit_max": peak("memory_share_of_limit"),
            "http_in_bytes_per_sec_avg": avg("http_in_bytes_per_sec"),
            "http_out_bytes_per_sec_avg": avg("http_out_bytes_per_sec"),
            "net_in_bytes_per_sec_avg": avg("net_in_bytes_per_sec"),
            "net_out_bytes_per_sec_avg": avg("net_out_bytes_per_sec"),
            **self.totals,
        }


def _scrapes(rows) -> list[tuple[float, dict[str, float], dict[str, float]]]:
    """Per scrape (time order): its time, each family's sum, and the heavy requests."""
    by_t: dict[float, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    heavy: dict[float, float] = defaultdict(float)
    for t, metric, labels, value in rows:
        by_t[t][metric] += value
        if metric == REQUESTS and HEAVY_ROUTE in labels:
            heavy[t] += value
    return [(t, by_t[t], {"heavy": heavy[t]}) for t in sorted(by_t)]


def limits(info: dict | None) -> tuple[float | None, float | None, float | None]:
    p = (info or {}).get("platform") or {}
    cpus = p.get("affinity_cpus") or p.get("logical_cpus")
    quota = p.get("cpu_quota")
    mem = p.get("memory_limit_bytes")
    num = (int, float)
    return (
        float(cpus) if isinstance(cpus, num) else None,
        float(quota) if isinstance(quota, num) and quota > 0 else None,
        float(mem) if isinstance(mem, num) and mem > 0 else None,
    )


def utilization(rows, info: dict | None, processes_only: bool = False) -> Utilization | None:
    """None when fewer than two scrapes were taken (nothing over time to say). processes_only:
    the cgroup is not the server's own (a server the runner started beside k6 on this machine:
    their cgroup holds k6 and everything else), so CPU and memory are the server's processes'."""
    scrapes = _scrapes(rows)
    if len(scrapes) < 2:
        return None
    usable, quota, mem_limit = limits(info)
    has_cgroup_cpu = not processes_only and all(CGROUP_CPU in s for _, s, _ in scrapes)
    cpu_key = CGROUP_CPU if has_cgroup_cpu else PROCESS_CPU
    cgroup_mem = not processes_only and all(CGROUP_MEM in s for _, s, _ in scrapes)
    mem_key = CGROUP_MEM if cgroup_mem else PROCESS_RSS
    if mem_limit is None and not processes_only:
        lim = [s.get(CGROUP_MEM_LIMIT) for _, s, _ in scrapes if s.get(CGROUP_MEM_LIMIT)]
        mem_limit = lim[-1] if lim else None
    if quota is None and not processes_only:  # an older /heavy/info/ (or none): the quota gauge of /metrics
        q = [s.get(CGROUP_CPU_LIMIT) for _, s, _ in scrapes if s.get(CGROUP_CPU_LIMIT)]
        quota = q[-1] if q else None
    u = Utilization(
        usable,
        quota,
        mem_limit,
        "the cgroup's CPU usage" if has_cgroup_cpu else "the server's processes' CPU",
    )
    t0 = scrapes[0][0]
    series: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for (ta, a, _), (tb, b, _) in zip(scrapes, scrapes[1:], strict=False):
        dt = (tb - ta) / 1000.0
        if dt <= 0:
            continue
        at = (tb - t0) / 1000.0
        # A worker that exits takes its CPU counter with it: never a negative rate.
        cores = max(0.0, (b.get(cpu_key, 0.0) - a.get(cpu_key, 0.0)) / dt)
        series["cpu_used_cpus"].append((at, cores))
        if usable:
            series["cpu_share_of_usable"].append((at, cores / usable))
        if quota:
            series["cpu_share_of_quota"].append((at, cores / quota))
        for key, name in (
            (HTTP_IN, "http_in"),
            (HTTP_OUT, "http_out"),
            (NET_IN, "net_in"),
            (NET_OUT, "net_out"),
        ):
            if key in a and key in b:
                series[f"{name}_bytes_per_sec"].append((at, max(0.0, (b[key] - a[key]) / dt)))
    for t, s, _ in scrapes:
        if mem_key in s:
            series["memory_bytes"].append(((t - t0) / 1000.0, s[mem_key]))
            if mem_limit:
                series["memory_share_of_limit"].append(((t - t0) / 1000.0, s[mem_key] / mem_limit))
    u.series = dict(series)
    first, last = scrapes[0], scrapes[-1]

    def delta(key):
        if key in first[1] and key in last[1]:
            return max(0.0, last[1][key] - first[1][key])
        return None

    cpu_secs = delta(cpu_key)
    heavy = max(0.0, last[2]["heavy"] - first[2]["heavy"])
    u.totals = {
        "window_secs": (last[0] - first[0]) / 1000.0,
        "cpu_seconds": cpu_secs,
        "heavy_requests": heavy,
        "requests_per_cpu_second": heavy / cpu_secs if cpu_secs else None,
        "http_in_bytes": delta(HTTP_IN),
        "http_out_bytes": delta(HTTP_OUT),
        "net_in_bytes": delta(NET_IN),
        "net_out_bytes": delta(NET_OUT),
    }
    http = [u.totals[k] for k in ("http_in_bytes", "http_out_bytes")]
    u.totals["http_bytes_per_request"] = sum(http) / heavy if heavy and None not in http else None  # type: ignore[arg-type]
    return u


SLICES = 5
_CACHE: dict = {}


def load(run_dir: Path, info: dict | None, processes_only: bool = False) -> tuple[list, Utilization | None]:
    """A run folder's samples (METRICS_FILE) and their utilization; ([], None) without the file
    (an older runner, a server without /metrics): the report says "not measured", never 0."""
    f = Path(run_dir) / METRICS_FILE
    key = (str(f), processes_only)
    if key not in _CACHE:
        if not f.is_file():
            _CACHE[key] = ([], None)
        else:
            rows = read(f)
            _CACHE[key] = (rows, utilization(rows, info, processes_only))
    return _CACHE[key]


def slices(rows, info: dict | None, n: int = SLICES, processes_only: bool = False) -> list[Utilization]:
    """The run cut into n consecutive windows of scrapes (each sharing its edge scrape with the
    next, so no interval is lost): the time-to-time spread of one run."""
    times = sorted({r[0] for r in rows})
    if len(times) < n + 1:
        return []
    edges = [times[round(i * (len(times) - 1) / n)] for i in range(n + 1)]
    out = []
    for a, b in zip(edges, edges[1:], strict=False):
        u = utilization([r for r in rows if a <= r[0] <= b], info, processes_only)
        if u is not None:
            out.append(u)
    return out
