// Autoscaling test: the original project's load meant to make ECS scale the service out. 20 VUs
// rising to 50 over five minutes with 0.1 s think time on the default parameters, so the CPU of a
// 2-vCPU task stays pinned long enough for a CPU target-tracking policy to add tasks.
//
//   k6 run -e BASE_URL=http://my-alb.example k6-tests/autoscale-test.js
//
// ramping-vus from 20: -> 30 (1 m), -> 50 (3 m), -> 0 (1 m): 5 min. Requests time out after 120 s
// (the server's --timeout). Thresholds (the original's): latency_total_ms p95 < 5 s, failed
// requests < 1 %, more than 50 heavy requests per second over the run.
//
// 50 VUs with 0.1 s think time ask for about 50 / (0.1 + latency) req/s; one 2-vCPU task serves
// about 20 (docs/LOAD_TESTS.md). Environment: BASE_URL, PRIME_LIMIT (500000), HASH_ROUNDS
// (1000000), IO_KB (128), THINK_TIME (0.1), VU_SCALE, DURATION_SCALE, MIX, SEED, IO_SYNC,
// PROGRESS_EVERY (100), REQUEST_TIMEOUT (120s), SUMMARY_DIR, IMPOSSIBLE_THRESHOLD.

import { sleep } from 'k6';
import {
  HEAVY_TAG,
  SUMMARY_TREND_STATS,
  buildSummary,
  envNumber,
  envString,
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
const THINK_TIME = envNumber('THINK_TIME', 0.1);
const TIMEOUT = envString('REQUEST_TIMEOUT', '120s');
const SCENARIO = {
  executor: 'ramping-vus',
  startVUs: scaledVus(20),
  stages: scaledStages([
    { duration: '1m', target: 30 },
    { duration: '3m', target: 50 },
    { duration: '1m', target: 0 },
  ]),
  gracefulRampDown: scaled('30s'),
};

export const options = {
  scenarios: { autoscale: SCENARIO },
  thresholds: withThresholds({
    latency_total_ms: ['p(95)<5000'],
    [`http_req_failed{name:${HEAVY_TAG}}`]: ['rate<0.01'],
    [`http_reqs{name:${HEAVY_TAG}}`]: ['rate>50'],
  }),
  summaryTrendStats: SUMMARY_TREND_STATS,
};

export function setup() {
  return requireHealthy();
}

export default function () {
  heavyRequest(PARAMS, TIMEOUT);
  sleep(THINK_TIME);
}

export function handleSummary(data) {
  return buildSummary(data, { scenario: 'autoscale', params: PARAMS, thinkTime: THINK_TIME, schedule: schedule(SCENARIO) });
}
