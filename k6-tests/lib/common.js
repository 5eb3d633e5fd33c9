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

export const BASE_URL = envString('BASE_URL', 'http://localhost:8000').replace(/\/+$/, '');
export const DURATION_SCALE = envNumber('DURATION_SCALE', 1);
export const VU_SCALE = envNumber('VU_SCALE', 1);
export const PROGRESS_EVERY = Math.floor(envNumber('PROGRESS_EVERY', 100));
export const REQUEST_TIMEOUT = envString('REQUEST_TIMEOUT', '60s');

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
// HASH_ROUNDS and IO_KB.
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
    `&hash_rounds=${params.hash_rounds}&io_kb=${params.io_kb}`
  );
}

// Trend statistics every scenario reports (k6's default set lacks p(50), p(99) and count).
export const SUMMARY_TREND_STATS = ['avg', 'min', 'med', 'max', 'p(50)', 'p(90)', 'p(95)', 'p(99)', 'count'];

// Adds the deliberately unreachable threshold when IMPOSSIBLE_THRESHOLD is set, so CI can prove
// that a failing threshold makes k6 exit 99.
export function withThresholds(thresholds) {
  const out = {};
  for (const [k, v] of Object.entries(thresholds)) out[k] = v.slice();
  if (envString('IMPOSSIBLE_THRESHOLD', '') !== '') {
    out.http_req_duration = (out.http_req_duration || []).concat(['p(50)<0.001']);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Metrics

export const cpuTime = new Trend('custom_cpu_time_ms', true);
export const ioTime = new Trend('custom_io_time_ms', true);
export const serverQueue = new Trend('server_queue_ms', true);
export const serverTotal = new Trend('server_total_ms', true);
export const serverCpu = new Trend('server_cpu_ms', true);
export const serverIo = new Trend('server_io_ms', true);
export const throttled = new Counter('throttled_requests');
export const serverErrors = new Counter('server_errors');

// "queue;dur=0.3, cpu;dur=38.9, io;dur=9.7, total;dur=48.6" -> {queue: 0.3, cpu: 38.9, ...}
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

// setup(): one health probe; the test stops at once if the target is not healthy.
export function requireHealthy() {
  const url = `${BASE_URL}/heavy/health/`;
  const res = http.get(url, { tags: { name: 'health' }, timeout: '10s' });
  const body = res.status === 200 ? jsonBody(res) : null;
  if (!body || body.status !== 'healthy') {
    const msg = `health check failed: GET ${url} -> status ${res.status} ${res.error || ''}`.trim();
    exec.test.abort(msg);
    fail(msg);
  }
  return { health_status: res.status, started: new Date().toISOString() };
}

let lastStatus = 0;
let lastCpu = null;

// One GET of the heavy endpoint: checks, custom metrics from the body and Server-Timing,
// throttle/5xx counters, and a progress line every PROGRESS_EVERY iterations of the test.
export function heavyRequest(params) {
  const res = http.get(heavyUrl(params), { tags: { name: 'cpu-io-no-db' }, timeout: REQUEST_TIMEOUT });
  const body = res.status === 200 ? jsonBody(res) : null;

  check(res, {
    'status is 200': (r) => r.status === 200,
    'primes_found is a number': () => body !== null && typeof body.primes_found === 'number',
  });

  // Counters get a sample on every request so they appear (as 0) in every summary.
  throttled.add(res.status === 429 ? 1 : 0);
  serverErrors.add(res.status >= 500 && res.status <= 599 ? 1 : 0);

  if (body !== null) {
    if (typeof body.cpu_time_sec === 'number') cpuTime.add(body.cpu_time_sec * 1000);
    if (typeof body.io_time_sec === 'number') ioTime.add(body.io_time_sec * 1000);
  }
  const timing = parseServerTiming(res.headers['Server-Timing']);
  if (timing.queue !== undefined) serverQueue.add(timing.queue);
  if (timing.total !== undefined) serverTotal.add(timing.total);
  if (timing.cpu !== undefined) serverCpu.add(timing.cpu);
  if (timing.io !== undefined) serverIo.add(timing.io);

  lastStatus = res.status;
  lastCpu = body !== null && typeof body.cpu_time_sec === 'number' ? body.cpu_time_sec : lastCpu;
  if (PROGRESS_EVERY > 0) {
    const n = exec.scenario.iterationInTest + 1;
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
// End-of-test summary

const REPORT_TRENDS = [
  ['http_req_duration', 'request duration (client)'],
  ['http_req_waiting', 'time to first byte'],
  ['server_queue_ms', 'queue: waiting for a handler thread'],
  ['server_total_ms', 'service: cpu + io on the server'],
  ['server_cpu_ms', 'cpu (Server-Timing)'],
  ['server_io_ms', 'io (Server-Timing)'],
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
  const reqs = v('http_reqs');
  const failed = v('http_req_failed');
  const checks = v('checks');
  const thresholds = collectThresholds(data);
  return {
    scenario: info.scenario,
    base_url: BASE_URL,
    params: info.params,
    think_time_sec: info.thinkTime,
    duration_scale: DURATION_SCALE,
    vu_scale: VU_SCALE,
    impossible_threshold: envString('IMPOSSIBLE_THRESHOLD', '') !== '',
    test_run_duration_sec: data.state.testRunDurationMs / 1000,
    requests: reqs.count || 0,
    throughput_rps: reqs.rate || 0,
    failed_requests: failed.passes || 0,
    error_rate: failed.rate || 0,
    throttled_requests: v('throttled_requests').count || 0,
    server_errors: v('server_errors').count || 0,
    checks_rate: checks.rate === undefined ? null : checks.rate,
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
      `io_kb=${d.params.io_kb}; think time ${d.think_time_sec} s`,
  );
  lines.push(
    `- duration ${num(d.test_run_duration_sec, 1)} s (DURATION_SCALE=${d.duration_scale}, ` +
      `VU_SCALE=${d.vu_scale}), max ${d.max_vus} VUs`,
  );
  lines.push(`- thresholds: **${d.thresholds_passed ? 'all passed' : 'FAILED'}**`);
  lines.push('');
  lines.push('## Requests');
  lines.push('');
  lines.push('| requests | throughput (req/s) | failed | error rate | 429 throttled | 5xx | checks passed |');
  lines.push('| ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  lines.push(
    `| ${d.requests} | ${num(d.throughput_rps)} | ${d.failed_requests} | ${pct(d.error_rate)} | ` +
      `${d.throttled_requests} | ${d.server_errors} | ${pct(d.checks_rate)} |`,
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
      `(${pct(d.error_rate)}), ${d.throttled_requests} throttled (429), ${d.server_errors} 5xx`,
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

// handleSummary() body shared by the scenarios: stdout text, SUMMARY_DIR/summary.json (k6's
// summary data plus a "heavy_api" block of derived numbers) and SUMMARY_DIR/summary.md.
export function buildSummary(data, info) {
  const d = derive(data, info);
  const dir = envString('SUMMARY_DIR', '.').replace(/\/+$/, '');
  const prefix = dir === '' || dir === '.' ? '' : `${dir}/`;
  const full = Object.assign({}, data, { heavy_api: d });
  const out = {};
  out.stdout = textSummary(data, d);
  out[`${prefix}summary.json`] = JSON.stringify(full, null, 2);
  out[`${prefix}summary.md`] = markdownSummary(data, d);
  return out;
}
