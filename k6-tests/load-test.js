// Load test: the original service's full ramp on the default parameters with 1 s think time.
//
//   k6 run -e BASE_URL=http://my-alb.example:80 k6-tests/load-test.js
//
// ramping-vus from 1: -> 5 (1 m), -> 20 (2 m), -> 50 (2 m), -> 100 (2 m), -> 150 (2 m), -> 0 (1 m).
// Thresholds (latency_total_ms, the request duration of heavy requests): p50 < 1 s, p95 < 3 s, p99 < 6 s; fewer than 50 throttled (429)
// and fewer than 10 server-error (5xx) answers.
//
// Sized for a deployment of several tasks: 150 VUs with 1 s think time ask for about
// 150 / (1 + latency) req/s, several times what one 2-vCPU task serves (about 20 req/s). On a
// smaller target scale the VUs (VU_SCALE) or lighten the parameters; see docs/LOAD_TESTS.md.
// Environment: BASE_URL, PRIME_LIMIT (500000), HASH_ROUNDS (1000000), IO_KB (128), THINK_TIME (1),
// VU_SCALE, DURATION_SCALE, MIX, SEED, IO_SYNC, PROGRESS_EVERY (100), SUMMARY_DIR, IMPOSSIBLE_THRESHOLD.

import { sleep } from 'k6';
import {
  SUMMARY_TREND_STATS,
  buildSummary,
  envNumber,
  heavyParams,
  heavyRequest,
  requireHealthy,
  schedule,
  scaled,
  scaledStages,
  scaledVus,
  withThresholds,
} from './lib/common.js';

const PARAMS = heavyParams({ prime_limit: 500000, hash_rounds: 1000000, io_kb: 128 });
const THINK_TIME = envNumber('THINK_TIME', 1);

const SCENARIO = {
  executor: 'ramping-vus',
  startVUs: scaledVus(1),
  stages: scaledStages([
    { duration: '1m', target: 5 },
    { duration: '2m', target: 20 },
    { duration: '2m', target: 50 },
    { duration: '2m', target: 100 },
    { duration: '2m', target: 150 },
    { duration: '1m', target: 0 },
  ]),
  gracefulRampDown: scaled('30s'),
};

export const options = {
  scenarios: { load: SCENARIO },
  thresholds: withThresholds({
    latency_total_ms: ['p(50)<1000', 'p(95)<3000', 'p(99)<6000'],
    throttled_requests: ['count<50'],
    server_errors: ['count<10'],
  }),
  summaryTrendStats: SUMMARY_TREND_STATS,
};

export function setup() {
  return requireHealthy();
}

export default function () {
  heavyRequest(PARAMS);
  sleep(THINK_TIME);
}

export function handleSummary(data) {
  return buildSummary(data, { scenario: 'load', params: PARAMS, thinkTime: THINK_TIME, schedule: schedule(SCENARIO) });
}
