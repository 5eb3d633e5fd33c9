// Quick test: a 75 s ramp to 20 VUs on the default parameters with 1 s think time — a short
// look at behaviour under rising load, between the smoke test and the full load test.
//
//   k6 run -e BASE_URL=http://127.0.0.1:8000 k6-tests/quick-test.js
//
// Stages: 0 -> 5 VUs (15 s), -> 20 (20 s), hold 20 (25 s), -> 0 (15 s).
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
  requestThresholds,
  schedule,
  scaled,
  scaledStages,
} from './lib/common.js';

const PARAMS = heavyParams({ prime_limit: 500000, hash_rounds: 1000000, io_kb: 128 });
const THINK_TIME = envNumber('THINK_TIME', 1);

const SCENARIO = {
  executor: 'ramping-vus',
  startVUs: 0,
  stages: scaledStages([
    { duration: '15s', target: 5 },
    { duration: '20s', target: 20 },
    { duration: '25s', target: 20 },
    { duration: '15s', target: 0 },
  ]),
  gracefulRampDown: scaled('10s'),
};

export const options = {
  scenarios: { quick: SCENARIO },
  thresholds: requestThresholds({ latency_total_ms: ['p(50)<1000', 'p(95)<3000'] }),
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
  return buildSummary(data, { scenario: 'quick', params: PARAMS, thinkTime: THINK_TIME, schedule: schedule(SCENARIO) });
}
