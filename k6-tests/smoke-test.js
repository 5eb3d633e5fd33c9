// Smoke test: 10 VUs for 30 s on light parameters with 0.5 s think time. Proves the target
// answers correctly and fast before anything heavier is run.
//
//   k6 run -e BASE_URL=http://127.0.0.1:8000 k6-tests/smoke-test.js
//
// Environment: BASE_URL, PRIME_LIMIT (200000), HASH_ROUNDS (500000), IO_KB (64), THINK_TIME (0.5),
// VUS (10), VU_SCALE, DURATION_SCALE, MIX, SEED, IO_SYNC, PROGRESS_EVERY (100), SUMMARY_DIR,
// IMPOSSIBLE_THRESHOLD.

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
  scaledVus,
} from './lib/common.js';

const PARAMS = heavyParams({ prime_limit: 200000, hash_rounds: 500000, io_kb: 64 });
const THINK_TIME = envNumber('THINK_TIME', 0.5);
const VUS = Math.max(1, Math.floor(envNumber('VUS', scaledVus(10))));
const SCENARIO = {
  executor: 'constant-vus',
  vus: VUS,
  duration: scaled('30s'),
  gracefulStop: scaled('10s'),
};

export const options = {
  scenarios: { smoke: SCENARIO },
  thresholds: requestThresholds({ latency_total_ms: ['p(95)<2000'] }),
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
  return buildSummary(data, { scenario: 'smoke', params: PARAMS, thinkTime: THINK_TIME, schedule: schedule(SCENARIO) });
}
