// Open model, constant arrival rate: RATE requests per second start whether or not earlier ones
// have been answered (no think time), so a slow server cannot slow the test down and hide its
// latency (coordinated omission). The building block of the capacity search
// (scripts/loadtest.sh --scenario capacity).
//
//   k6 run -e BASE_URL=http://127.0.0.1:8000 -e RATE=12 k6-tests/constant-rate-test.js
//
// constant-arrival-rate: RATE req/s (default 10, fractions allowed) for DURATION (default 60s).
// k6 keeps PRE_VUS VUs ready (default 2 x RATE + 2) and adds up to MAX_VUS (default 4 x RATE, at least
// 10); when every VU waits for an answer it cannot start the next request on time and counts a
// dropped iteration: the generator could not keep up, and the dropped_iterations threshold fails.
// Thresholds (the SLO): latency_total_ms p99 < SLO_P99_MS (2000), failed requests < SLO_ERRORS
// (0.01), dropped iterations <= MAX_DROPPED (0).
// Environment: BASE_URL, RATE, DURATION, PRE_VUS, MAX_VUS, SLO_P99_MS, SLO_ERRORS, MAX_DROPPED,
// PRIME_LIMIT (500000), HASH_ROUNDS (1000000), IO_KB (128), MIX, SEED, IO_SYNC, DURATION_SCALE,
// PROGRESS_EVERY (100), REQUEST_TIMEOUT (60s), SUMMARY_DIR, IMPOSSIBLE_THRESHOLD, GRACEFUL_STOP
// (10s: how long requests in flight at the end may finish), SUMMARY_SCENARIO (the scenario's name
// in the summary; the capacity search says "capacity").
// PROBE_VUS=N turns the run into the capacity search's closed-model probe: N VUs send the same
// requests back to back (constant-vus, no think time) for DURATION, with no thresholds: what the
// target serves flat out, and what one request costs it.

import {
  HEAVY_TAG,
  SUMMARY_TREND_STATS,
  arrivalRate,
  buildSummary,
  envNumber,
  envString,
  heavyParams,
  heavyRequest,
  requireHealthy,
  schedule,
  scaled,
  withThresholds,
} from './lib/common.js';

const PARAMS = heavyParams({ prime_limit: 500000, hash_rounds: 1000000, io_kb: 128 });
const RATE = envNumber('RATE', 10);
if (RATE < 0.01) throw new Error(`RATE must be at least 0.01 requests per second, got ${RATE}`);
const PRE_VUS = Math.max(1, Math.floor(envNumber('PRE_VUS', Math.ceil(2 * RATE) + 2)));
const MAX_VUS = Math.max(PRE_VUS, Math.floor(envNumber('MAX_VUS', Math.max(10, Math.ceil(4 * RATE)))));
const SLO_P99_MS = envNumber('SLO_P99_MS', 2000);
const SLO_ERRORS = envNumber('SLO_ERRORS', 0.01);
const MAX_DROPPED = Math.floor(envNumber('MAX_DROPPED', 0));
const PROBE_VUS = Math.floor(envNumber('PROBE_VUS', 0));
const GRACEFUL_STOP = scaled(envString('GRACEFUL_STOP', '10s'));
const SUMMARY_SCENARIO = envString('SUMMARY_SCENARIO', PROBE_VUS > 0 ? 'capacity-probe' : 'constant-rate');
const SCENARIO =
  PROBE_VUS > 0
    ? { executor: 'constant-vus', vus: PROBE_VUS, duration: scaled(envString('DURATION', '8s')), gracefulStop: GRACEFUL_STOP }
    : Object.assign(
        {
          executor: 'constant-arrival-rate',
          duration: scaled(envString('DURATION', '60s')),
          preAllocatedVUs: PRE_VUS,
          maxVUs: MAX_VUS,
          gracefulStop: GRACEFUL_STOP,
        },
        arrivalRate(RATE),
      );

export const options = {
  scenarios: { 'constant-rate': SCENARIO },
  thresholds:
    PROBE_VUS > 0
      ? {}
      : withThresholds({
          latency_total_ms: [`p(99)<${SLO_P99_MS}`],
          [`http_req_failed{name:${HEAVY_TAG}}`]: [`rate<${SLO_ERRORS}`],
          dropped_iterations: [`count<=${MAX_DROPPED}`],
        }),
  summaryTrendStats: SUMMARY_TREND_STATS,
};

export function setup() {
  return requireHealthy();
}

export default function () {
  heavyRequest(PARAMS);
}

export function handleSummary(data) {
  const plan = schedule(PROBE_VUS > 0 ? SCENARIO : Object.assign({}, SCENARIO, { rate: RATE }));
  return buildSummary(data, {
    scenario: SUMMARY_SCENARIO,
    params: PARAMS,
    thinkTime: 0,
    rate: PROBE_VUS > 0 ? undefined : RATE,
    schedule: plan,
  });
}
