// Open model, ramping arrival rate: the request rate climbs from a tenth of RATE to RATE, holds,
// and falls back, whatever the latency (no think time, no coordinated omission). Shows where
// latency starts to climb as the offered load rises.
//
//   k6 run -e BASE_URL=http://127.0.0.1:8000 -e RATE=20 k6-tests/ramping-rate-test.js
//
// ramping-arrival-rate from RATE/10: -> RATE/2 (20 s), -> RATE (20 s), hold RATE (20 s),
// -> RATE/10 (10 s): 70 s; RATE defaults to 10 req/s. VUs and thresholds as constant-rate-test.js
// (PRE_VUS, MAX_VUS, SLO_P99_MS, SLO_ERRORS, MAX_DROPPED).
// Environment: BASE_URL, RATE, PRE_VUS, MAX_VUS, SLO_P99_MS, SLO_ERRORS, MAX_DROPPED,
// PRIME_LIMIT (500000), HASH_ROUNDS (1000000), IO_KB (128), MIX, SEED, IO_SYNC, DURATION_SCALE,
// PROGRESS_EVERY (100), REQUEST_TIMEOUT (60s), SUMMARY_DIR, IMPOSSIBLE_THRESHOLD.

import {
  HEAVY_TAG,
  SUMMARY_TREND_STATS,
  arrivalRate,
  buildSummary,
  envNumber,
  heavyParams,
  heavyRequest,
  requireHealthy,
  schedule,
  scaled,
  withThresholds,
} from './lib/common.js';

const PARAMS = heavyParams({ prime_limit: 500000, hash_rounds: 1000000, io_kb: 128 });
const RATE = envNumber('RATE', 10);
if (RATE < 0.1) throw new Error(`RATE must be at least 0.1 requests per second, got ${RATE}`);
const PRE_VUS = Math.max(1, Math.floor(envNumber('PRE_VUS', Math.ceil(2 * RATE) + 2)));
const MAX_VUS = Math.max(PRE_VUS, Math.floor(envNumber('MAX_VUS', Math.max(10, Math.ceil(4 * RATE)))));
const SLO_P99_MS = envNumber('SLO_P99_MS', 2000);
const SLO_ERRORS = envNumber('SLO_ERRORS', 0.01);
const MAX_DROPPED = Math.floor(envNumber('MAX_DROPPED', 0));
const unit = arrivalRate(RATE);
const at = (fraction) => arrivalRate(RATE * fraction).rate;
const SCENARIO = {
  executor: 'ramping-arrival-rate',
  startRate: at(0.1),
  timeUnit: unit.timeUnit,
  preAllocatedVUs: PRE_VUS,
  maxVUs: MAX_VUS,
  stages: [
    { duration: scaled('20s'), target: at(0.5) },
    { duration: scaled('20s'), target: at(1) },
    { duration: scaled('20s'), target: at(1) },
    { duration: scaled('10s'), target: at(0.1) },
  ],
  gracefulStop: scaled('10s'),
};

export const options = {
  scenarios: { 'ramping-rate': SCENARIO },
  thresholds: withThresholds({
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

// Stage targets in req/s for the report (k6's are per 100 s).
function planInReqPerSec() {
  const plan = schedule(SCENARIO);
  let from = SCENARIO.startRate / 100;
  for (const st of plan.stages) {
    const to = st.target / 100;
    st.name = from === to ? `hold ${to} req/s` : `${from} -> ${to} req/s`;
    st.target = to;
    from = to;
  }
  return plan;
}

export function handleSummary(data) {
  return buildSummary(data, { scenario: 'ramping-rate', params: PARAMS, thinkTime: 0, rate: RATE, schedule: planInReqPerSec() });
}
