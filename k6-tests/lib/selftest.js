// Self-test of k6-tests/lib/common.js in k6's own runtime (no network): the MIX parser and its
// errors, the seeded request sequence (deterministic, the requested proportions, independent of
// VUs and segments because it depends only on the request's index), io_sync in the URL, and the
// schedules of the scenarios, and the Server-Timing parser on a header recorded from heavy-api. scripts/check-k6.sh runs it; any failed check makes k6 exit 99.
//
//   k6 run --quiet k6-tests/lib/selftest.js

import { check } from 'k6';
import { heavyUrl, parseDuration, parseMix, parseServerTiming, pickParams, schedule, uniform } from './common.js';

export const options = {
  iterations: 1,
  vus: 1,
  thresholds: { checks: ['rate==1'] },
};

function throws(fn, pattern) {
  try {
    fn();
  } catch (e) {
    return pattern.test(String(e));
  }
  return false;
}

export default function () {
  const base = { prime_limit: 500000, hash_rounds: 1000000, io_kb: 128 };
  const mix = parseMix('prime_limit=100000:70,500000:25,2000000:5;io_kb=64:50,512:50');
  const n = 20000;
  const counts = {};
  const io = {};
  const first = [];
  const again = [];
  for (let i = 0; i < n; i++) {
    const p = pickParams(base, i, mix, 7);
    counts[p.prime_limit] = (counts[p.prime_limit] || 0) + 1;
    io[p.io_kb] = (io[p.io_kb] || 0) + 1;
    if (i < 12) first.push(p.prime_limit);
  }
  for (let i = 0; i < 12; i++) again.push(pickParams(base, i, mix, 7).prime_limit);
  const other = [];
  for (let i = 0; i < 12; i++) other.push(pickParams(base, i, mix, 8).prime_limit);
  console.log(`MIX-SEQUENCE seed=7: ${first.join(',')}`);
  const share = (c) => (c || 0) / n;
  check(null, {
    'mix: two distributions parsed': () => mix.length === 2 && mix[0].choices.length === 3,
    'mix: same seed and index, same request': () => first.join() === again.join(),
    'mix: another seed, another sequence': () => first.join() !== other.join(),
    'mix: 70/25/5 within 1.5 points': () =>
      Math.abs(share(counts[100000]) - 0.7) < 0.015 &&
      Math.abs(share(counts[500000]) - 0.25) < 0.015 &&
      Math.abs(share(counts[2000000]) - 0.05) < 0.015,
    'mix: io_kb 50/50 within 1.5 points': () => Math.abs(share(io[64]) - 0.5) < 0.015,
    'mix: hash_rounds untouched': () => pickParams(base, 3, mix, 7).hash_rounds === 1000000,
    'mix: no MIX, base parameters': () => pickParams(base, 5, [], 7) === base,
    'uniform: in [0, 1)': () => {
      for (let i = 0; i < 1000; i++) {
        const u = uniform(1, i * 7919, 0);
        if (!(u >= 0 && u < 1)) return false;
      }
      return true;
    },
    'mix: percents must add up to 100': () =>
      throws(() => parseMix('prime_limit=1:50,2:40'), /add up to 90, not 100/),
    'mix: unknown parameter refused': () => throws(() => parseMix('primes=1:100'), /must start with one of/),
    'mix: value:percent required': () => throws(() => parseMix('io_kb=64'), /not value:percent/),
    'mix: a parameter once': () => throws(() => parseMix('io_kb=1:100;io_kb=2:100'), /appears twice/),
    'io_sync: not sent unless IO_SYNC is set': () => !/io_sync/.test(heavyUrl(base)),
    'server-timing: every phase of a recorded header': () => {
      const t = parseServerTiming(
        'queue;dur=0.093, cpu;dur=8.531, cpu_thread;dur=4.418, cpu_wait;dur=4.113, io;dur=8.125, ' +
          'fsync;dur=8.032, throttled;dur=0.000, steal;dur=0.000, total;dur=16.656',
      );
      return t.queue === 0.093 && t.cpu === 8.531 && t.cpu_thread === 4.418 && t.cpu_wait === 4.113 &&
        t.io === 8.125 && t.fsync === 8.032 && t.throttled === 0 && t.steal === 0 && t.total === 16.656;
    },
    'server-timing: optional phases stay absent': () => {
      const t = parseServerTiming('queue;dur=1, cpu;dur=2, io;dur=3, total;dur=5');
      return t.throttled === undefined && t.steal === undefined && t.cpu_thread === undefined;
    },
    'durations parse': () => parseDuration('1m30s') === 90 && parseDuration('500ms') === 0.5,
    'schedule: spike-like stages add up': () => {
      const plan = schedule({
        executor: 'ramping-vus',
        startVUs: 10,
        stages: [
          { duration: '10s', target: 50 },
          { duration: '30s', target: 50 },
          { duration: '10s', target: 0 },
        ],
      });
      return plan.planned_duration_sec === 50 && plan.stages[1].name === 'hold 50 VUs' &&
        plan.stages[0].name === '10 -> 50 VUs' && plan.stages[2].start_sec === 40;
    },
  });
}
