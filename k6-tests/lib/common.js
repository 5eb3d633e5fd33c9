// Shared code of the heavy-api k6 scenarios: configuration from __ENV, the heavy request with its
// checks and custom metrics, progress lines, and an offline handleSummary() (no remote imports:
// k6 replaces its own end-of-test summary when handleSummary() exists, so this module prints a
// compact text summary itself and writes summary.json / summary.md).

import http from 'k6/http';
import { check, fail } from 'k6';
import exec from 'k6/execution';
import { Counter, Trend } from 'k6/metrics';

// ---------------------------------------------------------------------------------------------
// Configuration

export function envString(name, fallback) {
  const v = __ENV[name];
  return v === undefined || v === '' ? fallback : String(v);
}

export function envNumber(name, fallback) {
  const raw = __ENV[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0) {
    throw new Error(`${name} must be a non-negative number, got ${JSON.stringify(raw)}`);
  }
  return n;
}

export function envChoice(name, choices, fallback) {
  const v = envString(name, fallback);
  if (v !== fallback && !choices.includes(v)) {
    throw new Error(`${name} must be one of ${choices.join(', ')}, got ${JSON.stringify(v)}`);
  }
  return v;
}

export const BASE_URL = envString('BASE_URL', 'http://localhost:8000').replace(/\/+$/, '');
export const DURATION_SCALE = envNumber('DURATION_SCALE', 1);
export const VU_SCALE = envNumber('VU_SCALE', 1);
export const PROGRESS_EVERY = Math.floor(envNumber('PROGRESS_EVERY', 100));
export const REQUEST_TIMEOUT = envString('REQUEST_TIMEOUT', '60s');
// The heavy requests carry this `name` tag. Thresholds on k6's built-in HTTP metrics filter on it
// and the latency/count aliases below record heavy requests only, so the health probe of setup()
// stays outside the request metrics and thresholds.
export const HEAVY_TAG = 'cpu-io-no-db';
// IO_SYNC=fsync|none is sent as the io_sync query parameter; unset, no parameter is sent (the
// server's default is fsync, as the original's).
export const IO_SYNC = envChoice('IO_SYNC', ['fsync', 'none'], '');
// SEED fixes the sequence drawn from MIX: request i of the test gets the same parameters on every
// platform, run and execution segment.
export const SEED = Math.floor(envNumber('SEED', 1));

// "1m30s" / "45s" / "2m" / "500ms" / plain seconds -> seconds.
export function parseDuration(text) {
  if (typeof text === 'number') return text;
  const s = String(text).trim();
  if (/^\d+(\.\d+)?$/.test(s)) return Number(s);
  const re = /(\d+(?:\.\d+)?)(ms|h|m|s)/g;
  let total = 0;
  let consumed = 0;
  let m;
  while ((m = re.exec(s)) !== null) {
    const n = Number(m[1]);
    total += m[2] === 'h' ? n * 3600 : m[2] === 'm' ? n * 60 : m[2] === 's' ? n : n / 1000;
    consumed += m[0].length;
  }
  if (consumed !== s.length || consumed === 0) throw new Error(`bad duration: ${text}`);
  return total;
}

// A duration multiplied by DURATION_SCALE, never shorter than one second.
export function scaled(duration) {
  const secs = Math.max(1, Math.round(parseDuration(duration) * DURATION_SCALE));
  return `${secs}s`;
}

// A VU count multiplied by VU_SCALE; a positive target never drops to zero.
export function scaledVus(vus) {
  if (vus <= 0) return 0;
  return Math.max(1, Math.round(vus * VU_SCALE));
}

// ramping-vus stages with both durations and targets scaled.
export function scaledStages(stages) {
  return stages.map((st) => ({ duration: scaled(st.duration), target: scaledVus(st.target) }));
}

// The heavy endpoint's parameters: each script's defaults, overridable by PRIME_LIMIT,
// HASH_ROUNDS and IO_KB; MIX draws some of them per request (see pickParams).
export function heavyParams(defaults) {
  return {
    prime_limit: Math.floor(envNumber('PRIME_LIMIT', defaults.prime_limit)),
    hash_rounds: Math.floor(envNumber('HASH_ROUNDS', defaults.hash_rounds)),
    io_kb: Math.floor(envNumber('IO_KB', defaults.io_kb)),
  };
}

export function heavyUrl(params) {
  return (
    `${BASE_URL}/heavy/cpu-io-no-db/?prime_limit=${params.prime_limit}` +
    `&hash_rounds=${params.hash_rounds}&io_kb=${params.io_kb}` +
    (IO_SYNC === '' ? '' : `&io_sync=${IO_SYNC}`)
  );
}

// ---------------------------------------------------------------------------------------------
// Workload mixes: MIX='prime_limit=100000:70,500000:25,2000000:5;io_kb=64:50,512:50'
// (fortio's value:percent style; one distribution per parameter, separated by ';'; the percents of
// a parameter add up to 100).

const MIX_PARAMS = ['prime_limit', 'hash_rounds', 'io_kb'];

export function parseMix(text) {
  const mix = [];
  if (text === undefined || text === null || String(text).trim() === '') return mix;
  for (const part of String(text).split(';')) {
    if (part.trim() === '') continue;
    const eq = part.indexOf('=');
    const name = eq < 0 ? '' : part.slice(0, eq).trim();
    if (!MIX_PARAMS.includes(name)) {
      throw new Error(`MIX: "${part.trim()}" must start with one of ${MIX_PARAMS.join(', ')} and '='`);
    }
    if (mix.some((m) => m.param === name)) throw new Error(`MIX: ${name} appears twice`);
    const choices = [];
    let total = 0;
    for (const item of part.slice(eq + 1).split(',')) {
      const m = /^\s*(\d+)\s*:\s*(\d+(?:\.\d+)?)\s*$/.exec(item);
      if (!m) throw new Error(`MIX: "${item.trim()}" in ${name} is not value:percent (e.g. 100000:70)`);
      const percent = Number(m[2]);
      if (percent <= 0) throw new Error(`MIX: ${name} value ${m[1]} has a zero percent`);
      total += percent;
      choices.push({ value: Number(m[1]), percent, upTo: total });
    }
    if (Math.abs(total - 100) > 1e-9) {
      throw new Error(`MIX: the percents of ${name} add up to ${total}, not 100`);
    }
    mix.push({ param: name, choices });
  }
  return mix;
}

export const MIX = parseMix(envString('MIX', ''));
export const MIX_TEXT = envString('MIX', '');

// murmur3's 32-bit finaliser: a well-mixed, platform-independent hash of (seed, index, stream).
function mix32(h) {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

// A uniform number in [0, 1) that depends only on the seed, the request's index in the test and
// the parameter: the same on every platform, whatever the VU count or execution segment.
export function uniform(seed, index, stream) {
  let h = mix32((seed ^ 0x9e3779b9) >>> 0);
  h = mix32((h ^ (index % 4294967296)) >>> 0);
  h = mix32((h ^ Math.floor(index / 4294967296) ^ Math.imul(stream + 1, 0x27d4eb2d)) >>> 0);
  return h / 4294967296;
}

// The parameters of request `index` of the test: the base ones with MIX's draws applied.
export function pickParams(base, index, mix, seed) {
  const m = mix === undefined ? MIX : mix;
  if (m.length === 0) return base;
  const out = Object.assign({}, base);
  m.forEach((dist, stream) => {
    const u = uniform(seed === undefined ? SEED : seed, index, stream) * 100;
    const choice = dist.choices.find((c) => u < c.upTo) || dist.choices[dist.choices.length - 1];
    out[dist.param] = choice.value;
  });
  return out;
}

// Open model: a rate in requests per second as k6's integer `rate` per `timeUnit` (hundredths of a
// request per second, so 11.5 req/s is 1150 per 100 s and execution segments split it exactly).
export function arrivalRate(reqPerSec) {
  return { rate: Math.max(1, Math.round(reqPerSec * 100)), timeUnit: '100s' };
}

// Trend statistics every scenario reports (k6's default set lacks p(50), p(99) and count).
export const SUMMARY_TREND_STATS = ['avg', 'min', 'med', 'max', 'p(50)', 'p(90)', 'p(95)', 'p(99)', 'count'];

// Adds the deliberately unreachable threshold when IMPOSSIBLE_THRESHOLD is set, so CI can prove
// that a failing threshold makes k6 exit 99.
export function withThresholds(thresholds) {
  const out = {};
  for (const [k, v] of Object.entries(thresholds)) out[k] = v.slice();
  if (envString('IMPOSSIBLE_THRESHOLD', '') !== '') {
    out.latency_total_ms = (out.latency_total_ms || []).concat(['p(50)<0.001']);
  }
  return out;
}

// The common thresholds of a scenario on heavy requests only: request failures (k6's definition:
// status >= 400 or no answer) on the tagged sub-metric, checks, and no 429 or 5xx at all.
export function requestThresholds(extra) {
  return withThresholds(
    Object.assign(
      {
        [`http_req_failed{name:${HEAVY_TAG}}`]: ['rate<0.01'],
        checks: ['rate>0.99'],
        throttled_requests: ['count<1'],
        server_errors: ['count<1'],
      },
      extra,
    ),
  );
}

// ---------------------------------------------------------------------------------------------
// Metrics

export const cpuTime = new Trend('custom_cpu_time_ms', true);
export const ioTime = new Trend('custom_io_time_ms', true);
export const serverQueue = new Trend('server_queue_ms', true);
export const serverTotal = new Trend('server_total_ms', true);
export const serverCpu = new Trend('server_cpu_ms', true);
export const serverIo = new Trend('server_io_ms', true);
// The server's per-request CPU truth (heavy-api with /heavy/info/; absent from older servers, so
// these trends then have no samples): the CPU the handler thread really got in the CPU phase, the
// time it waited for a core (CPU-phase wall time - thread CPU), the fsync inside the io phase, the
// cgroup's CFS throttled time and the host's steal time during the request (both deltas of
// counters shared by the whole task or host, so they show the platform, not this request alone).
export const serverCpuThread = new Trend('server_cpu_thread_ms', true);
export const serverCpuWait = new Trend('server_cpu_wait_ms', true);
export const serverFsync = new Trend('server_fsync_ms', true);
export const serverThrottled = new Trend('server_throttled_ms', true);
export const serverSteal = new Trend('server_steal_ms', true);
export const throttled = new Counter('throttled_requests');
export const serverErrors = new Counter('server_errors');
// The original project's metric names, kept so dashboards built for it keep working. They hold
// heavy requests only (never the health probe).
export const latencyTotal = new Trend('latency_total_ms', true); // client: the request's duration
export const latencyServer = new Trend('latency_server_ms', true); // server: cpu + io
export const latencyQueue = new Trend('latency_queue_ms', true); // waiting before the work
export const successfulRequests = new Counter('successful_requests'); // status 200
export const requestsTotal = new Counter('custom_requests_total'); // heavy requests sent

// "queue;dur=0.3, cpu;dur=38.9, cpu_thread;dur=37.1, io;dur=9.7, total;dur=48.6"
//   -> {queue: 0.3, cpu: 38.9, cpu_thread: 37.1, ...}
export function parseServerTiming(header) {
  const out = {};
  if (!header) return out;
  for (const entry of String(header).split(',')) {
    const parts = entry.trim().split(';');
    const name = parts[0].trim();
    if (!name) continue;
    for (const p of parts.slice(1)) {
      const [key, value] = p.split('=');
      if (key && key.trim().toLowerCase() === 'dur' && value !== undefined) {
        const n = Number(value.trim().replace(/^"|"$/g, ''));
        if (Number.isFinite(n)) out[name] = n;
      }
    }
  }
  return out;
}

function jsonBody(res) {
  try {
    return res.json();
  } catch (e) {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------
// Requests

// setup(): one health probe; the test stops at once if the target is not healthy. The probe is
// tagged name=health and feeds none of the heavy-request metrics or thresholds. Returns the time
// the scenarios start (setup ends right before them), which the report uses as t = 0.
export function requireHealthy() {
  const url = `${BASE_URL}/heavy/health/`;
  const res = http.get(url, { tags: { name: 'health' }, timeout: '10s' });
  const body = res.status === 200 ? jsonBody(res) : null;
  if (!body || body.status !== 'healthy') {
    const msg = `health check failed: GET ${url} -> status ${res.status} ${res.error || ''}`.trim();
    exec.test.abort(msg);
    fail(msg);
  }
  return { health_status: res.status, started: new Date().toISOString(), started_ms: Date.now() };
}

let lastStatus = 0;
let lastCpu = null;

// One GET of the heavy endpoint: checks, custom metrics from the body and Server-Timing,
// throttle/5xx counters (each 429 and 5xx is logged when it happens, with its VU), and a progress
// line every PROGRESS_EVERY iterations of the test. With MIX, the parameters of the request are
// drawn from it by the request's index in the test (the same sequence everywhere).
export function heavyRequest(baseParams, timeout) {
  const index = exec.scenario.iterationInTest;
  const params = pickParams(baseParams, index);
  const url = heavyUrl(params);
  const res = http.get(url, { tags: { name: HEAVY_TAG }, timeout: timeout || REQUEST_TIMEOUT });
  const body = res.status === 200 ? jsonBody(res) : null;

  check(res, {
    'status is 200': (r) => r.status === 200,
    'primes_found is a number': () => body !== null && typeof body.primes_found === 'number',
  });

  // Counters get a sample on every request so they appear (as 0) in every summary.
  throttled.add(res.status === 429 ? 1 : 0);
  serverErrors.add(res.status >= 500 && res.status <= 599 ? 1 : 0);
  requestsTotal.add(1);
  successfulRequests.add(res.status === 200 ? 1 : 0);
  if (res.status === 429 || (res.status >= 500 && res.status <= 599)) {
    const retry = res.headers['Retry-After'] ? `, Retry-After ${res.headers['Retry-After']}` : '';
    console.warn(
      `[status ${res.status}] VU ${exec.vu.idInTest}, request ${index + 1}: GET ${url} -> ` +
        `${res.status} after ${res.timings.duration.toFixed(1)} ms${retry}`,
    );
  }

  if (body !== null) {
    if (typeof body.cpu_time_sec === 'number') cpuTime.add(body.cpu_time_sec * 1000);
    if (typeof body.io_time_sec === 'number') ioTime.add(body.io_time_sec * 1000);
  }
  const timing = parseServerTiming(res.headers['Server-Timing']);
  if (timing.queue !== undefined) serverQueue.add(timing.queue);
  if (timing.total !== undefined) serverTotal.add(timing.total);
  if (timing.cpu !== undefined) serverCpu.add(timing.cpu);
  if (timing.io !== undefined) serverIo.add(timing.io);
  if (timing.cpu_thread !== undefined) serverCpuThread.add(timing.cpu_thread);
  if (timing.cpu_wait !== undefined) serverCpuWait.add(timing.cpu_wait);
  if (timing.fsync !== undefined) serverFsync.add(timing.fsync);
  // throttled is absent without a cpu cgroup controller, steal without /proc/stat: no sample
  // then, rather than a false 0.
  if (timing.throttled !== undefined) serverThrottled.add(timing.throttled);
  if (timing.steal !== undefined) serverSteal.add(timing.steal);

  // The original's names: total = the client's view; server = the work (Server-Timing total, or
  // the body's total_time_sec); queue = Server-Timing queue, or what the client saw beyond the work.
  latencyTotal.add(res.timings.duration);
  let server = timing.total;
  if (server === undefined && body !== null && typeof body.total_time_sec === 'number') {
    server = body.total_time_sec * 1000;
  }
  if (server !== undefined) {
    latencyServer.add(server);
    latencyQueue.add(timing.queue !== undefined ? timing.queue : Math.max(0, res.timings.duration - server));
  }

  lastStatus = res.status;
  lastCpu = body !== null && typeof body.cpu_time_sec === 'number' ? body.cpu_time_sec : lastCpu;
  if (PROGRESS_EVERY > 0) {
    const n = index + 1;
    if (n % PROGRESS_EVERY === 0) {
      const cpu = lastCpu === null ? 'n/a' : `${lastCpu}s`;
      const queue = timing.queue === undefined ? '' : `, queue ${timing.queue.toFixed(1)}ms`;
      console.log(
        `[progress] ${n} requests, last status ${lastStatus}, last cpu ${cpu}${queue}, ` +
          `${exec.instance.vusActive} VUs active`,
      );
    }
  }
  return res;
}

// ---------------------------------------------------------------------------------------------
// The schedule: stages with their start and end (seconds after the scenario starts), for the
// report's per-stage table and the aborted-run check (a run shorter than its plan).

export function schedule(scenario) {
  const stages = [];
  let t = 0;
  const unit = scenario.executor === 'ramping-arrival-rate' ? ' req/s' : ' VUs';
  if (scenario.stages) {
    let from = scenario.executor === 'ramping-arrival-rate' ? scenario.startRate || 0 : scenario.startVUs || 0;
    for (const st of scenario.stages) {
      const d = parseDuration(st.duration);
      const what = from === st.target ? `hold ${st.target}${unit}` : `${from} -> ${st.target}${unit}`;
      stages.push({ name: what, start_sec: t, end_sec: t + d, target: st.target });
      t += d;
      from = st.target;
    }
  } else {
    const d = parseDuration(scenario.duration);
    const what =
      scenario.executor === 'constant-arrival-rate'
        ? `${scenario.rate} req/s`
        : `${scenario.vus} VUs`;
    stages.push({ name: what, start_sec: 0, end_sec: d, target: scenario.rate || scenario.vus });
    t = d;
  }
  return { executor: scenario.executor, planned_duration_sec: t, stages };
}

// ---------------------------------------------------------------------------------------------
// End-of-test summary

const REPORT_TRENDS = [
  ['latency_total_ms', 'request duration (client; = http_req_duration without the health probe)'],
  ['server_queue_ms', 'queue: waiting for a handler thread'],
  ['server_total_ms', 'service: cpu + io on the server'],
  ['server_cpu_ms', 'cpu (Server-Timing)'],
  ['server_io_ms', 'io (Server-Timing)'],
  ['server_cpu_thread_ms', 'cpu_thread: CPU the handler thread got'],
  ['server_cpu_wait_ms', 'cpu_wait: waiting for a core in the cpu phase'],
  ['server_fsync_ms', 'fsync (inside io)'],
  ['server_throttled_ms', 'throttled: cgroup CFS throttling during the request'],
  ['server_steal_ms', 'steal: host steal time during the request'],
  ['custom_cpu_time_ms', 'cpu_time_sec x 1000 (body)'],
  ['custom_io_time_ms', 'io_time_sec x 1000 (body)'],
  ['iteration_duration', 'iteration (request + think time)'],
];

function metricValues(data, name) {
  const m = data.metrics[name];
  return m && m.values ? m.values : null;
}

function num(v, digits) {
  if (v === undefined || v === null || !Number.isFinite(v)) return 'n/a';
  return v.toFixed(digits === undefined ? 2 : digits);
}

function pct(v) {
  if (v === undefined || v === null || !Number.isFinite(v)) return 'n/a';
  return `${(v * 100).toFixed(2)}%`;
}

function collectChecks(group, out) {
  for (const c of group.checks || []) out.push(c);
  for (const g of group.groups || []) collectChecks(g, out);
  return out;
}

function collectThresholds(data) {
  const out = [];
  for (const [name, m] of Object.entries(data.metrics)) {
    if (!m.thresholds) continue;
    for (const [expr, t] of Object.entries(m.thresholds)) out.push({ metric: name, threshold: expr, ok: !!t.ok });
  }
  out.sort((a, b) => (a.metric + a.threshold).localeCompare(b.metric + b.threshold));
  return out;
}

// The numbers the markdown, the text summary and scripts/compare.py share.
export function derive(data, info) {
  const v = (name) => metricValues(data, name) || {};
  const sent = v('custom_requests_total');
  const ok = v('successful_requests');
  const failedSub = metricValues(data, `http_req_failed{name:${HEAVY_TAG}}`);
  const requests = sent.count || 0;
  const checks = v('checks');
  const thresholds = collectThresholds(data);
  const plan = info.schedule || null;
  const setupData = data.setup_data || {};
  return {
    scenario: info.scenario,
    base_url: BASE_URL,
    params: info.params,
    mix: MIX_TEXT || null,
    seed: MIX_TEXT ? SEED : null,
    io_sync: IO_SYNC || null,
    rate_per_sec: info.rate === undefined ? null : info.rate,
    think_time_sec: info.thinkTime,
    duration_scale: DURATION_SCALE,
    vu_scale: VU_SCALE,
    impossible_threshold: envString('IMPOSSIBLE_THRESHOLD', '') !== '',
    test_run_duration_sec: data.state.testRunDurationMs / 1000,
    planned_duration_sec: plan ? plan.planned_duration_sec : null,
    executor: plan ? plan.executor : null,
    stages: plan ? plan.stages : [],
    started_ms: typeof setupData.started_ms === 'number' ? setupData.started_ms : null,
    requests,
    throughput_rps: sent.rate || 0,
    successful_requests: ok.count || 0,
    failed_requests: failedSub ? failedSub.passes || 0 : requests - (ok.count || 0),
    error_rate: failedSub ? failedSub.rate || 0 : requests ? (requests - (ok.count || 0)) / requests : 0,
    throttled_requests: v('throttled_requests').count || 0,
    server_errors: v('server_errors').count || 0,
    dropped_iterations: v('dropped_iterations').count || 0,
    checks_rate: checks.rate === undefined ? null : checks.rate,
    checks_count: (checks.passes || 0) + (checks.fails || 0),
    max_vus: v('vus_max').max || 0,
    thresholds_passed: thresholds.every((t) => t.ok),
    thresholds,
  };
}

function markdownSummary(data, d) {
  const lines = [];
  lines.push(`# k6 summary: ${d.scenario}`);
  lines.push('');
  lines.push(`- target: \`${d.base_url}\``);
  lines.push(
    `- parameters: prime_limit=${d.params.prime_limit}, hash_rounds=${d.params.hash_rounds}, ` +
      `io_kb=${d.params.io_kb}` +
      (d.mix ? `; MIX=${d.mix} (SEED=${d.seed})` : '') +
      (d.io_sync ? `; io_sync=${d.io_sync}` : '') +
      (d.rate_per_sec !== null ? `; arrival rate ${d.rate_per_sec} req/s` : `; think time ${d.think_time_sec} s`),
  );
  lines.push(
    `- duration ${num(d.test_run_duration_sec, 1)} s (DURATION_SCALE=${d.duration_scale}, ` +
      `VU_SCALE=${d.vu_scale}), max ${d.max_vus} VUs`,
  );
  lines.push(`- thresholds: **${d.thresholds_passed ? 'all passed' : 'FAILED'}**`);
  lines.push('');
  lines.push('## Requests');
  lines.push('');
  lines.push('| requests | throughput (req/s) | failed | error rate | 429 throttled | 5xx | checks passed | dropped iterations |');
  lines.push('| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  lines.push(
    `| ${d.requests} | ${num(d.throughput_rps)} | ${d.failed_requests} | ${pct(d.error_rate)} | ` +
      `${d.throttled_requests} | ${d.server_errors} | ${pct(d.checks_rate)} | ${d.dropped_iterations} |`,
  );
  lines.push('');
  lines.push('## Latency (ms)');
  lines.push('');
  lines.push('| metric | what | p50 | p90 | p95 | p99 | avg | max | count |');
  lines.push('| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const [name, what] of REPORT_TRENDS) {
    const t = metricValues(data, name);
    if (!t) continue;
    lines.push(
      `| \`${name}\` | ${what} | ${num(t['p(50)'])} | ${num(t['p(90)'])} | ${num(t['p(95)'])} | ` +
        `${num(t['p(99)'])} | ${num(t.avg)} | ${num(t.max)} | ${t.count === undefined ? 'n/a' : t.count} |`,
    );
  }
  lines.push('');
  lines.push('## Thresholds');
  lines.push('');
  if (d.thresholds.length === 0) {
    lines.push('none');
  } else {
    lines.push('| metric | threshold | result |');
    lines.push('| --- | --- | --- |');
    for (const t of d.thresholds) {
      lines.push(`| \`${t.metric}\` | \`${t.threshold}\` | ${t.ok ? 'passed' : '**FAILED**'} |`);
    }
  }
  lines.push('');
  const checks = collectChecks(data.root_group || {}, []);
  if (checks.length > 0) {
    lines.push('## Checks');
    lines.push('');
    lines.push('| check | passed | failed |');
    lines.push('| --- | ---: | ---: |');
    for (const c of checks) lines.push(`| ${c.name} | ${c.passes} | ${c.fails} |`);
    lines.push('');
  }
  return lines.join('\n');
}

function textSummary(data, d) {
  const lines = [];
  const pad = (s, n) => (s.length >= n ? s : s + ' '.repeat(n - s.length));
  lines.push('');
  lines.push(`  ===== ${d.scenario} summary =====`);
  lines.push(`  target ${d.base_url}, ${num(d.test_run_duration_sec, 1)} s, max ${d.max_vus} VUs`);
  lines.push('');
  lines.push('  THRESHOLDS');
  for (const t of d.thresholds) lines.push(`    ${t.ok ? '✓' : '✗'} ${t.metric}: '${t.threshold}'`);
  if (d.thresholds.length === 0) lines.push('    (none)');
  lines.push('');
  lines.push('  CHECKS');
  for (const c of collectChecks(data.root_group || {}, [])) {
    lines.push(`    ${c.fails === 0 ? '✓' : '✗'} ${c.name}: ${c.passes} passed, ${c.fails} failed`);
  }
  lines.push('');
  lines.push('  REQUESTS');
  lines.push(
    `    ${d.requests} requests, ${num(d.throughput_rps)} req/s, ${d.failed_requests} failed ` +
      `(${pct(d.error_rate)}), ${d.throttled_requests} throttled (429), ${d.server_errors} 5xx` +
      (d.dropped_iterations ? `, ${d.dropped_iterations} dropped iterations (k6 could not keep the rate)` : ''),
  );
  lines.push('');
  lines.push(`  ${pad('TRENDS (ms)', 22)} ${['p50', 'p90', 'p95', 'p99', 'avg', 'max'].map((h) => pad(h, 9)).join(' ')}`);
  for (const [name] of REPORT_TRENDS) {
    const t = metricValues(data, name);
    if (!t) continue;
    const cols = ['p(50)', 'p(90)', 'p(95)', 'p(99)', 'avg', 'max'].map((k) => pad(num(t[k]), 9));
    lines.push(`    ${pad(name, 20)} ${cols.join(' ')}`);
  }
  lines.push('');
  lines.push(`  RESULT: thresholds ${d.thresholds_passed ? 'passed' : 'FAILED'}`);
  lines.push('');
  return lines.join('\n');
}

// handleSummary() body shared by the scenarios: stdout text (also SUMMARY_DIR/summary.txt),
// SUMMARY_DIR/summary.json (k6's summary data plus a "heavy_api" block of derived numbers) and
// SUMMARY_DIR/summary.md. SUMMARY_DIR defaults to results/ (k6 cannot create a folder: the
// runner does; for a bare `k6 run`, mkdir -p results first), never the current folder.
export function buildSummary(data, info) {
  const d = derive(data, info);
  const dir = envString('SUMMARY_DIR', 'results').replace(/\/+$/, '');
  const prefix = dir === '' || dir === '.' ? '' : `${dir}/`;
  const full = Object.assign({}, data, { heavy_api: d });
  const out = {};
  out.stdout = textSummary(data, d);
  out[`${prefix}summary.txt`] = out.stdout;
  out[`${prefix}summary.json`] = JSON.stringify(full, null, 2);
  out[`${prefix}summary.md`] = markdownSummary(data, d);
  return out;
}
